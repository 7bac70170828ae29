//! Measuring what a container wrote (docs/architecture.md, "Disk bound").
//! The engine's own measure, `container inspect --size`, also sizes the
//! whole image: on a 300 MB Debian image with fuse-overlayfs one call takes
//! 9–12 s of disk walking, which both delays the scenario and competes with
//! the app for the CPU. Where this machine can read the container's upper
//! layer (a local engine with an overlay driver), the layer is walked
//! instead: it holds only what the container wrote. Anywhere else (a remote
//! engine, another driver, a folder this user cannot read), the engine
//! measures, as before.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::options::CappedCopy;
use super::{Engine, EngineEndpoint, EngineError};

/// How a container's writable layer is measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WritableLayer {
    /// Walk this folder on this machine (the overlay's upper directory).
    HostDir(PathBuf),
    /// Ask the engine (`container inspect --size`).
    Engine,
}

impl Engine {
    /// Whether this client's engine runs on this machine (a unix socket).
    pub(super) fn is_local(&self) -> bool {
        let unix = |url: &str| url.starts_with("unix://");
        match &self.endpoint {
            EngineEndpoint::Host(h) => unix(h.url()),
            EngineEndpoint::Context(_) => false,
            EngineEndpoint::Ambient => {
                std::env::var_os("DOCKER_CONTEXT").is_none()
                    && std::env::var("DOCKER_HOST").map_or(true, |h| unix(&h))
            }
        }
    }

    /// How `container`'s writable layer is measured: one inspect, without
    /// sizes; any doubt gives [`WritableLayer::Engine`].
    pub fn writable_layer(&self, container: &str) -> WritableLayer {
        if !self.is_local() {
            return WritableLayer::Engine;
        }
        let text = match self.api() {
            Some(api) => match api.graph_driver(container) {
                Ok((driver, Some(upper))) => format!("{driver}\t{upper}"),
                _ => return WritableLayer::Engine,
            },
            None => {
                let out = self.run(self.spec().timeout(Duration::from_secs(30)).args([
                    "container",
                    "inspect",
                    "--format",
                    "{{.GraphDriver.Name}}\t{{index .GraphDriver.Data \"UpperDir\"}}",
                    container,
                ]));
                match out {
                    Ok(o) if o.success() => o.stdout.text(),
                    _ => return WritableLayer::Engine,
                }
            }
        };
        let Some((driver, upper)) = text.trim().split_once('\t') else {
            return WritableLayer::Engine;
        };
        let upper = Path::new(upper);
        let overlay = matches!(driver, "overlay2" | "fuse-overlayfs" | "overlay");
        if overlay && upper.is_absolute() && upper.is_dir() && std::fs::read_dir(upper).is_ok() {
            WritableLayer::HostDir(upper.to_owned())
        } else {
            WritableLayer::Engine
        }
    }

    /// Bytes `container` wrote into its writable layer, measured as `layer`
    /// says (the engine's `SizeRw` counts the same: file sizes, a hard
    /// link once).
    pub fn written_bytes(
        &self,
        layer: &WritableLayer,
        container: &str,
    ) -> Result<u64, EngineError> {
        match layer {
            WritableLayer::HostDir(dir) => Ok(dir_size(dir)),
            WritableLayer::Engine => self.writable_size(container),
        }
    }
}

/// Make the folder `name` (one component) with `mode` in a created, not yet
/// started container's upper layer `upper` on this machine: the overlay
/// shows it at `/name` once the container starts, as an upload through the
/// engine would, without the engine mounting the container for it.
pub fn make_folder_in_upper(upper: &Path, name: &str, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not one path component",
        ));
    }
    let dir = upper.join(name);
    std::fs::create_dir(&dir)?;
    // Not the umask's: strace writes there as the image's user.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
}

/// Copy at most `limit` bytes of the regular file `rel` (components below
/// `upper`) of a stopped container's upper layer `upper` to `dest`. The
/// app chose what is at that path: a component that is a link (which the
/// host would follow to its own files), a FIFO (which would block) or
/// anything else that is not a folder, then a regular file, is refused, and
/// the caller asks the engine instead.
pub fn copy_from_upper(
    upper: &Path,
    rel: &str,
    dest: &Path,
    limit: u64,
) -> std::io::Result<CappedCopy<()>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let refused = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned());
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let Some((file, folders)) = parts.split_last() else {
        return Err(refused("no file named"));
    };
    let mut at = upper.to_owned();
    for f in folders {
        if matches!(*f, "." | "..") {
            return Err(refused("`.` or `..` in the path"));
        }
        at.push(f);
        if !std::fs::symlink_metadata(&at)?.file_type().is_dir() {
            return Err(refused("a component is not a folder"));
        }
    }
    at.push(file);
    let mut src = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(&at)?;
    let meta = src.metadata()?;
    if !meta.file_type().is_file() {
        return Err(refused("not a regular file"));
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(dest)?);
    let written = std::io::copy(&mut (&mut src).take(limit), &mut out)?;
    std::io::Write::flush(&mut out)?;
    Ok(CappedCopy {
        kept: (),
        size: meta.len(),
        written,
    })
}

/// The total size of the regular files under `dir`, each inode once. Entries
/// that vanish or cannot be read while the container runs are skipped: the
/// next measure sees what is there then.
fn dir_size(dir: &Path) -> u64 {
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() && (meta.nlink() == 1 || seen.insert((meta.dev(), meta.ino())))
            {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_is_read_from_the_upper_layer_capped_and_links_the_app_left_are_refused() {
        let upper = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        let secret = host.path().join("shadow");
        std::fs::write(&secret, "host secret\n").unwrap();
        let out = upper.path().join(".codegenie-out");
        make_folder_in_upper(upper.path(), ".codegenie-out", 0o777).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, 0o777, "the umask does not apply");
        }
        for bad in ["", "a/b", "..", "."] {
            assert!(make_folder_in_upper(upper.path(), bad, 0o777).is_err(), "{bad:?}");
        }
        let dest = upper.path().join("copied");
        // The control: a regular file is read, up to the cap.
        std::fs::write(out.join("trace"), "0123456789").unwrap();
        let c = copy_from_upper(upper.path(), "/.codegenie-out/trace", &dest, 4).unwrap();
        assert_eq!((c.size, c.written), (10, 4));
        assert_eq!(std::fs::read(&dest).unwrap(), b"0123");
        // A link to a host file, in the file's place: following it would
        // read the host's file; it is refused.
        std::fs::remove_file(out.join("trace")).unwrap();
        std::os::unix::fs::symlink(&secret, out.join("trace")).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("trace")).unwrap(), "host secret\n");
        assert!(copy_from_upper(upper.path(), "/.codegenie-out/trace", &dest, 1 << 20).is_err());
        // A FIFO is refused without blocking.
        std::fs::remove_file(out.join("trace")).unwrap();
        nix::unistd::mkfifo(&out.join("trace"), nix::sys::stat::Mode::from_bits_truncate(0o666))
            .unwrap();
        assert!(copy_from_upper(upper.path(), "/.codegenie-out/trace", &dest, 1 << 20).is_err());
        // A link in the folder's place, to a host folder holding a `trace`.
        std::fs::remove_file(out.join("trace")).unwrap();
        std::fs::remove_dir(&out).unwrap();
        std::fs::write(host.path().join("trace"), "host file\n").unwrap();
        std::os::unix::fs::symlink(host.path(), &out).unwrap();
        assert!(copy_from_upper(upper.path(), "/.codegenie-out/trace", &dest, 1 << 20).is_err());
        assert!(copy_from_upper(upper.path(), "/../shadow", &dest, 1 << 20).is_err());
    }

    #[test]
    fn a_folder_is_sized_by_its_files_and_a_hard_link_counts_once() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/one"), vec![0u8; 1000]).unwrap();
        std::fs::write(d.path().join("a/b/two"), vec![0u8; 24]).unwrap();
        std::fs::hard_link(d.path().join("a/one"), d.path().join("again")).unwrap();
        std::os::unix::fs::symlink("a/one", d.path().join("link")).unwrap();
        assert_eq!(dir_size(d.path()), 1024);
    }
}
