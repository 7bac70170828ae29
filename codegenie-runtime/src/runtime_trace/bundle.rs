//! The tool bundle copied into every scenario container: the host's strace,
//! the `codegenie` helper binary, their shared-library closure and the host's
//! dynamic loader. Everything runs through the bundled loader, so the bundle
//! works in any image (scratch and distroless included).
//!
//! Layout inside the container (under [`ROOT`]):
//! `ld.so`, `lib/<soname>...`, `bin/strace`, `bin/codegenie`; the trace goes
//! to [`OUT_DIR`] beside it, a folder of the container's own, so that
//! [`ROOT`] can be a read-only volume shared by a run's containers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exec::{self, ExecSpec, Program};

/// Where the bundle lives inside a container.
pub const ROOT: &str = "/.codegenie";
/// The bundled dynamic loader.
pub const LOADER: &str = "/.codegenie/ld.so";
/// The bundled libraries (`--library-path`).
pub const LIB_DIR: &str = "/.codegenie/lib";
/// The bundled strace.
pub const STRACE: &str = "/.codegenie/bin/strace";
/// The bundled `codegenie` helper.
pub const HELPER: &str = "/.codegenie/bin/codegenie";
/// The folder strace writes the trace in, made in each container (mode
/// 0777: strace writes as the image's user, whoever that is).
pub const OUT_DIR: &str = "/.codegenie-out";
/// Where strace writes the trace.
pub const TRACE_OUT: &str = "/.codegenie-out/trace";

/// The strace options of docs/architecture.md, "Container flow" (**contract**), before `-o` and the
/// app argv; `--seccomp-bpf` (about 4x less overhead) is left out only for
/// an strace that lacks it.
pub fn strace_options(seccomp_bpf: bool) -> Vec<&'static str> {
    let mut v = vec!["-f"];
    if seccomp_bpf {
        v.push("--seccomp-bpf");
    }
    v.extend([
        "-y",
        "-s",
        "4096",
        "-e",
        "trace=execve,execveat,fork,vfork,clone,clone3,open,openat,openat2,connect,bind,mmap,stat,lstat,newfstatat,statx,access,faccessat,faccessat2,readlink,readlinkat,chdir,fchdir",
    ]);
    v
}

/// Whether the strace that printed `version_text` (`strace -V`) has
/// `--seccomp-bpf` (added in strace 5.3).
pub fn supports_seccomp_bpf(version_text: &str) -> bool {
    let Some(rest) = version_text
        .lines()
        .next()
        .and_then(|l| l.split("version ").nth(1))
    else {
        return false;
    };
    let mut parts = rest.trim().split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (5, 3)
}

/// Ask the host's strace whether it has `--seccomp-bpf`.
pub fn host_strace_has_seccomp_bpf() -> Result<bool, BundleError> {
    Ok(host_strace_version()?.is_some_and(|v| supports_seccomp_bpf(&v)))
}

/// What the host's `strace -V` printed (`None`: it ran and failed). Asked
/// once per process: the cache key's tracer token and the bundle both need
/// it in every run. A failure to start strace is not remembered.
pub(crate) fn host_strace_version() -> Result<Option<String>, BundleError> {
    static VERSION: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if let Some(v) = VERSION.get() {
        return Ok(v.clone());
    }
    let out = exec::run(
        &ExecSpec::new(Program::Strace)
            .arg("-V")
            .timeout(Duration::from_secs(10)),
    )?;
    let text = out.success().then(|| out.stdout.text());
    Ok(VERSION.get_or_init(|| text).clone())
}

/// Why the bundle could not be assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// A file could not be read or copied.
    #[error("{path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The loader could not list a binary's libraries.
    #[error("cannot list the shared libraries of {binary}: {detail}")]
    Closure {
        /// The binary.
        binary: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A program could not be started.
    #[error(transparent)]
    Exec(#[from] exec::ExecError),
}

fn io(path: &Path, source: std::io::Error) -> BundleError {
    BundleError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Parse the output of `ld.so --list BINARY`: `{soname: host path}`. The
/// vDSO (no path) is skipped; a library marked `not found` is an error.
pub fn parse_loader_list(text: &str) -> Result<BTreeMap<String, PathBuf>, String> {
    let mut libs = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("statically linked") {
            continue;
        }
        if let Some((name, rest)) = line.split_once(" => ") {
            let rest = rest.trim();
            if rest.starts_with("not found") {
                return Err(format!("{name} not found"));
            }
            let path = rest.split(" (").next().unwrap_or(rest).trim();
            if path.starts_with('/') {
                libs.insert(name.trim().to_owned(), PathBuf::from(path));
            }
        } else {
            // `/lib64/ld-linux-x86-64.so.2 (0x...)`: the loader itself.
            let path = line.split(" (").next().unwrap_or(line).trim();
            if path.starts_with('/') {
                let name = Path::new(path)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                libs.insert(name, PathBuf::from(path));
            }
        }
    }
    Ok(libs)
}

/// A scoped thread's result, its panic carried on.
pub(crate) fn joined<T>(r: std::thread::Result<T>) -> T {
    r.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// The shared-library closure of `binary`, by running the host loader with `--list`.
pub fn library_closure(binary: &Path) -> Result<BTreeMap<String, PathBuf>, BundleError> {
    let out = exec::run(
        &ExecSpec::new(Program::HostLoader)
            .arg("--list")
            .arg(binary)
            .timeout(Duration::from_secs(30)),
    )?;
    if !out.success() {
        return Err(BundleError::Closure {
            binary: binary.to_owned(),
            detail: format!("{:?}: {}", out.termination, out.stderr.text().trim()),
        });
    }
    parse_loader_list(&out.stdout.text()).map_err(|detail| BundleError::Closure {
        binary: binary.to_owned(),
        detail,
    })
}

/// An assembled bundle on the host, ready for `docker cp DIR/. CID:/.codegenie/`.
#[derive(Debug)]
pub struct Bundle {
    dir: tempfile::TempDir,
    /// Whether the bundled strace has `--seccomp-bpf`.
    pub seccomp_bpf: bool,
    /// Every file in the bundle, relative to its root (for reports).
    pub files: Vec<PathBuf>,
}

impl Bundle {
    /// Assemble the bundle around `helper` (the `codegenie` binary to put in).
    pub fn assemble(helper: &Path) -> Result<Bundle, BundleError> {
        let strace = Program::Strace.resolve()?;
        let loader = exec::host_loader()?;
        // Three independent questions to the host's programs: asked at once.
        let (closures, seccomp_bpf) = std::thread::scope(|s| {
            let of_strace = s.spawn(|| library_closure(&strace));
            let of_helper = s.spawn(|| library_closure(helper));
            let seccomp = s.spawn(host_strace_has_seccomp_bpf);
            (
                (joined(of_strace.join()), joined(of_helper.join())),
                joined(seccomp.join()),
            )
        });
        let dir = tempfile::Builder::new()
            .prefix("codegenie-bundle-")
            .tempdir()
            .map_err(|e| io(Path::new("/tmp"), e))?;
        let root = dir.path();
        for sub in ["lib", "bin"] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| io(&p, e))?;
        }
        let mut files = Vec::new();
        let mut put = |src: &Path, rel: &str| -> Result<(), BundleError> {
            let dest = root.join(rel);
            if !link_as_is(src, &dest) {
                // std::fs::copy follows symlinks: the bundle holds real files.
                std::fs::copy(src, &dest).map_err(|e| io(src, e))?;
                set_mode(&dest, 0o755)?;
            }
            files.push(PathBuf::from(rel));
            Ok(())
        };
        put(&loader, "ld.so")?;
        put(&strace, "bin/strace")?;
        put(helper, "bin/codegenie")?;
        let mut libs = closures.0?;
        libs.extend(closures.1?);
        for (soname, path) in &libs {
            put(path, &format!("lib/{soname}"))?;
        }
        files.sort();
        let seccomp_bpf = seccomp_bpf?;
        Ok(Bundle {
            dir,
            files,
            seccomp_bpf,
        })
    }

    /// The bundle's folder on the host.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The bytes the bundle adds to a container's writable layer when it is
    /// copied in (its regular files; folders and links are rounding error).
    pub fn size_bytes(&self) -> u64 {
        fn walk(dir: &Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return 0;
            };
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
                    _ => 0,
                })
                .sum()
        }
        walk(self.dir())
    }
}

/// Put `src` in the bundle at `dest` as a hard link, if it is a regular
/// file that every user may read and run, without set-id bits: then the
/// bundle needs no copy of it (a copy of the helper alone is tens of MB,
/// each run). Links are not followed into: the link is made to the file a
/// symlink names. `false`: a copy is needed (another filesystem, a mode the
/// bundle must change, or a link the kernel refuses).
fn link_as_is(src: &Path, dest: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(real) = std::fs::canonicalize(src) else {
        return false;
    };
    let fits = std::fs::metadata(&real).is_ok_and(|m| {
        let mode = m.permissions().mode();
        m.is_file() && mode & 0o755 == 0o755 && mode & 0o7000 == 0
    });
    fits && std::fs::hard_link(&real, dest).is_ok()
}

fn set_mode(p: &Path, mode: u32) -> Result<(), BundleError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(|e| io(p, e))
}

/// The container argv that runs `app` under the bundled strace.
pub fn strace_argv(app: &[String], seccomp_bpf: bool) -> Vec<String> {
    let mut v = vec![
        "--library-path".to_owned(),
        LIB_DIR.to_owned(),
        STRACE.to_owned(),
    ];
    v.extend(strace_options(seccomp_bpf).iter().map(|s| (*s).to_owned()));
    v.extend(["-o".to_owned(), TRACE_OUT.to_owned(), "--".to_owned()]);
    v.extend(app.iter().cloned());
    v
}

/// The container argv that runs `codegenie agent <args>` through the bundled loader.
pub fn helper_argv(agent_args: &[String]) -> Vec<String> {
    let mut v = vec![
        LOADER.to_owned(),
        "--library-path".to_owned(),
        LIB_DIR.to_owned(),
        HELPER.to_owned(),
        "agent".to_owned(),
    ];
    v.extend(agent_args.iter().cloned());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_everyone_may_run_is_linked_and_any_other_copied() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let d = tempfile::tempdir().unwrap();
        let file = |name: &str, mode: u32| {
            let p = d.path().join(name);
            std::fs::write(&p, name).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        let runnable = file("runnable", 0o755);
        std::os::unix::fs::symlink(&runnable, d.path().join("link")).unwrap();
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        // Linked: the same file, no copy (through a symlink, the file it names).
        for (src, dest) in [("runnable", "a"), ("link", "b")] {
            assert!(link_as_is(&d.path().join(src), &out.join(dest)), "{src}");
            let meta = std::fs::symlink_metadata(out.join(dest)).unwrap();
            assert!(meta.is_file());
            assert_eq!(meta.ino(), std::fs::metadata(&runnable).unwrap().ino());
        }
        // Not linked: a mode the bundle would change, or set-id bits.
        for (name, mode) in [("private", 0o700), ("readonly", 0o644), ("setuid", 0o4755)] {
            let src = file(name, mode);
            assert!(!link_as_is(&src, &out.join(name)), "{name}");
            assert!(!out.join(name).exists(), "{name}");
        }
    }

    #[test]
    fn parses_loader_list_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibunwind-ptrace.so.0 => /lib/x86_64-linux-gnu/libunwind-ptrace.so.0 (0x00007f4d)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f4d)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f4d)\n";
        let libs = parse_loader_list(text).unwrap();
        assert_eq!(
            libs.keys().map(String::as_str).collect::<Vec<_>>(),
            ["ld-linux-x86-64.so.2", "libc.so.6", "libunwind-ptrace.so.0"]
        );
        assert_eq!(
            libs["libc.so.6"],
            Path::new("/lib/x86_64-linux-gnu/libc.so.6")
        );
    }

    #[test]
    fn a_missing_library_is_an_error() {
        let e = parse_loader_list("\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(e.contains("libfoo.so.1"));
    }

    #[test]
    fn the_host_strace_closure_is_complete() {
        let strace = Program::Strace.resolve().expect("strace is required");
        let libs = library_closure(&strace).unwrap();
        assert!(libs.contains_key("libc.so.6"), "{libs:?}");
        assert!(libs.values().all(|p| p.is_absolute() && p.exists()));
    }

    #[test]
    fn assembles_a_bundle_with_loader_tools_and_libraries() {
        let me = std::env::current_exe().unwrap();
        let b = Bundle::assemble(&me).unwrap();
        for rel in ["ld.so", "bin/strace", "bin/codegenie", "lib/libc.so.6"] {
            assert!(b.dir().join(rel).is_file(), "{rel} missing: {:?}", b.files);
        }
        assert!(!b.dir().join("out").exists());
    }

    #[test]
    fn seccomp_bpf_needs_strace_5_3() {
        assert!(supports_seccomp_bpf("strace -- version 6.1\nCopyright"));
        assert!(supports_seccomp_bpf("strace -- version 5.3"));
        assert!(!supports_seccomp_bpf("strace -- version 5.2\n"));
        assert!(!supports_seccomp_bpf("strace -- version 4.26"));
        assert!(!supports_seccomp_bpf("garbage"));
        // The host's strace (6.1 here) has it.
        assert!(host_strace_has_seccomp_bpf().unwrap());
    }

    #[test]
    fn strace_argv_follows_the_contract() {
        let argv = strace_argv(&["/app/start.sh".to_owned()], true);
        let joined = argv.join(" ");
        let old = strace_argv(&["/app/start.sh".to_owned()], false).join(" ");
        assert!(
            !old.contains("--seccomp-bpf") && old.contains("-f -y -s 4096"),
            "{old}"
        );
        assert!(joined.starts_with("--library-path /.codegenie/lib /.codegenie/bin/strace -f --seccomp-bpf -y -s 4096 -e trace=execve,execveat,fork,vfork,clone,clone3,open,openat,openat2,connect,bind,mmap,stat,lstat,newfstatat,statx,access,faccessat,faccessat2,readlink,readlinkat,chdir,fchdir -o /.codegenie-out/trace -- /app/start.sh"), "{joined}");
    }
}
