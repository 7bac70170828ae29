//! Path and name rules of the contract: exclusions, certificates, shells,
//! open flags, and interpreter chains.

use std::collections::BTreeMap;

/// Program names that count as a shell.
pub const SHELLS: &[&str] = &["sh", "bash", "dash", "ash", "zsh", "ksh", "mksh"];

/// Whether `name` (a program basename) is a shell.
pub fn is_shell(name: &str) -> bool {
    SHELLS.contains(&name)
}

/// The last `/`-separated component.
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `/proc`, `/sys`, `/dev` and everything under them.
pub fn is_pseudo_fs(path: &str) -> bool {
    ["/proc", "/sys", "/dev"].iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|r| r.is_empty() || r.starts_with('/'))
    })
}

/// A `-y` name that is not a file: `socket:[N]`, `pipe:[N]`, `anon_inode:...`.
pub fn is_special_name(name: &str) -> bool {
    ["socket:[", "pipe:[", "anon_inode:"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// Names that never count as files read or written: pseudo filesystems and
/// names of things that are not files.
pub fn is_excluded(name: &str) -> bool {
    is_pseudo_fs(name) || is_special_name(name)
}

/// A `-y` name that does not name a path: memfd files (`/memfd:x (deleted)`
/// as the kernel links them) and deleted files.
pub fn is_unnamed(name: &str) -> bool {
    name.starts_with("/memfd:") || name.starts_with("memfd:") || name.ends_with(" (deleted)")
}

/// The names under which a process reads its own binary's link.
pub fn is_self_exe(path: &str) -> bool {
    path == "/proc/self/exe" || path == "/proc/thread-self/exe"
}

const CERT_DIRS: &[&str] = &[
    "/etc/ssl/",
    "/etc/pki/",
    "/etc/ca-certificates/",
    "/usr/share/ca-certificates/",
    "/usr/local/share/ca-certificates/",
];

/// A certificate path: under a certificate folder (except `*.cnf`), or
/// named `*.pem`, `*.crt`, `*.cer` in any case.
pub fn is_cert(path: &str) -> bool {
    let ends = |suffix: &str| {
        path.len() >= suffix.len()
            && path.as_bytes()[path.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
    };
    if ends(".pem") || ends(".crt") || ends(".cer") {
        return true;
    }
    CERT_DIRS.iter().any(|d| path.starts_with(d)) && !path.ends_with(".cnf")
}

/// What an open's flags say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct OpenFlags {
    /// `O_ACCMODE` bits: 0 read-only, 1 write-only, 2 read-write.
    pub access: u8,
    /// `O_CREAT`.
    pub create: bool,
    /// `O_DIRECTORY`, or `O_TMPFILE` (which includes its bit: the path
    /// names a directory to create an unnamed file in).
    pub directory: bool,
}

impl OpenFlags {
    /// Counts for `files_read`.
    pub(crate) fn reads(&self) -> bool {
        self.access != 1
    }
    /// Counts for `files_written`.
    pub(crate) fn writes(&self) -> bool {
        self.access == 1 || self.access == 2 || self.create
    }
}

/// An open call's dirfd, path and flags arguments (`open`, `openat`, and
/// `openat2`, whose flags are a field of its `how`).
pub(crate) type OpenArgs<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, Option<&'a [u8]>);

/// The path sets a successful open of `path` (absolute, not itself
/// excluded) adds to, its fd's `-y` name being `resolved`. `false` when that
/// name leads into `/dev` or `/proc`, or to a pipe (nginx's `access.log ->
/// /dev/stdout`): then the path is only probed (it must exist), neither a
/// file read nor a pair.
pub(crate) fn record_open(
    seen: &mut super::seen::Seen,
    path: &str,
    resolved: Option<&str>,
    flags: OpenFlags,
) -> bool {
    use super::seen::PathSet;
    if resolved.is_some_and(is_excluded) {
        seen.insert(PathSet::PathsProbed, path);
        return false;
    }
    if flags.directory {
        return true;
    }
    if flags.reads() {
        if is_cert(path) || resolved.is_some_and(|r| r != path && is_cert(r)) {
            seen.insert(PathSet::CertPathsRead, path);
        }
        seen.insert(PathSet::FilesRead, path);
    }
    if flags.writes() {
        seen.insert(PathSet::FilesWritten, path);
    }
    true
}

/// See [`OpenArgs`].
pub(crate) fn open_args<'a>(call: &super::call::Call<'a>) -> OpenArgs<'a> {
    match call.name {
        b"open" => (None, call.arg(0), call.arg(1)),
        b"openat" => (call.arg(0), call.arg(1), call.arg(2)),
        _ => (
            call.arg(0),
            call.arg(1),
            call.arg(2).and_then(|h| super::call::field(h, b"flags")),
        ),
    }
}

/// [`parse_open_flags`] remembering its last text: a trace repeats a few
/// flag sets.
#[derive(Debug, Default)]
pub(crate) struct FlagsMemo(Option<(Vec<u8>, Option<OpenFlags>)>);

impl FlagsMemo {
    /// The flags of `text`, parsed once for a run of the same text.
    pub(crate) fn parse(&mut self, text: &[u8]) -> Option<OpenFlags> {
        match &self.0 {
            Some((last, parsed)) if last.as_slice() == text => *parsed,
            _ => {
                let parsed = parse_open_flags(text);
                let (last, held) = self.0.get_or_insert_with(Default::default);
                last.clear();
                last.extend_from_slice(text);
                *held = parsed;
                parsed
            }
        }
    }
}

/// Parses `O_RDONLY|O_CLOEXEC`, `O_WRONLY|O_CREAT|0x400000` or a number.
/// Numeric bits use the generic Linux values (x86, arm64, riscv).
pub(crate) fn parse_open_flags(text: &[u8]) -> Option<OpenFlags> {
    let mut f = OpenFlags::default();
    let mut any = false;
    for tok in text.split(|&b| b == b'|') {
        let tok = tok.trim_ascii();
        any = true;
        match tok {
            b"O_RDONLY" => {}
            b"O_WRONLY" => f.access = 1,
            b"O_RDWR" => f.access = 2,
            b"O_CREAT" => f.create = true,
            b"O_DIRECTORY" | b"O_TMPFILE" => f.directory = true,
            // Other flag names (`O_CLOEXEC`): no number starts with `O` or `_`.
            _ if tok.starts_with(b"O_") || tok.starts_with(b"__O_") => {}
            _ => {
                if let Some(v) = parse_number(tok) {
                    f.access |= (v & 3) as u8;
                    f.create |= v & 0o100 != 0;
                    f.directory |= v & 0o200000 != 0;
                } else if !tok.starts_with(b"O_") && !tok.starts_with(b"__O_") {
                    return None;
                }
            }
        }
    }
    any.then_some(f)
}

/// `0x1f`, `0755` or `42`.
pub(crate) fn parse_number(tok: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(tok).ok()?;
    if let Some(h) = s.strip_prefix("0x") {
        u64::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

/// Whether a `PROT_*` argument includes `PROT_EXEC`.
pub(crate) fn prot_exec(text: &[u8]) -> bool {
    text.split(|&b| b == b'|').any(|t| {
        let t = t.trim_ascii();
        t == b"PROT_EXEC" || parse_number(t).is_some_and(|v| v & 4 != 0)
    })
}

/// A value of an interpreters map: the interpreter, if there is one.
pub trait InterpreterEntry {
    /// The interpreter.
    fn interpreter(&self) -> Option<&str>;
}

impl InterpreterEntry for String {
    fn interpreter(&self) -> Option<&str> {
        Some(self)
    }
}

impl InterpreterEntry for Option<String> {
    fn interpreter(&self) -> Option<&str> {
        self.as_deref()
    }
}

/// A `PT_INTERP` loader (`ld-linux-x86-64.so.2`, `ld-musl-x86_64.so.1`,
/// `ld.so`): running it does not change what `/proc/self/exe` names.
pub fn is_elf_loader(path: &str) -> bool {
    let b = basename(path);
    b.starts_with("ld-") || b.starts_with("ld.so") || b.starts_with("ld64.so")
}

/// The script interpreter a process runs after exec'ing `path` (following
/// `#!` chains a few levels, as the kernel does), or `None` when `path` is not
/// a script per the map (an ELF with a `PT_INTERP` loader is not a script).
pub fn script_interpreter<'a, V: InterpreterEntry>(
    path: &str,
    interpreters: &'a BTreeMap<String, V>,
) -> Option<&'a str> {
    let mut current: Option<&'a str> = None;
    let mut key = path;
    for _ in 0..4 {
        match interpreters.get(key).and_then(|v| v.interpreter()) {
            Some(i) if !is_elf_loader(i) => {
                current = Some(i);
                key = i;
            }
            _ => break,
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_paths() {
        for p in [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/ssl/certs/abcd1234.0",
            "/etc/pki/tls/cert.pem",
            "/etc/ca-certificates/update.d/x",
            "/usr/share/ca-certificates/mozilla/X.crt",
            "/usr/local/share/ca-certificates/corp",
            "/app/certs/server.PEM",
            "/app/a.Cer",
        ] {
            assert!(is_cert(p), "{p}");
        }
        for p in [
            "/etc/ssl/openssl.cnf",
            "/etc/hosts",
            "/app/pem",
            "/app/x.pem.bak",
            "/etc/ssl",
        ] {
            assert!(!is_cert(p), "{p}");
        }
    }

    #[test]
    fn pseudo_filesystems() {
        assert!(is_pseudo_fs("/proc"));
        assert!(is_pseudo_fs("/proc/self/maps"));
        assert!(is_pseudo_fs("/dev/null"));
        assert!(is_pseudo_fs("/sys/fs/cgroup"));
        assert!(!is_pseudo_fs("/devices"));
        assert!(!is_pseudo_fs("/app/proc/x"));
        assert!(is_excluded("socket:[123]") && is_excluded("pipe:[9]"));
        assert!(is_excluded("anon_inode:[eventfd]") && is_excluded("/dev/pts/0"));
        assert!(!is_excluded("/app/socket:[1]"));
        assert!(is_unnamed("/memfd:x (deleted)") && is_unnamed("memfd:jit"));
        assert!(is_unnamed("/tmp/#123 (deleted)") && !is_unnamed("/tmp/x"));
    }

    #[test]
    fn open_flags() {
        let f = |s: &str| parse_open_flags(s.as_bytes()).unwrap();
        assert!(f("O_RDONLY|O_CLOEXEC").reads() && !f("O_RDONLY|O_CLOEXEC").writes());
        assert!(!f("O_WRONLY|O_CREAT|O_TRUNC").reads() && f("O_WRONLY").writes());
        assert!(f("O_RDWR").reads() && f("O_RDWR").writes());
        assert!(f("O_RDONLY|O_CREAT").reads() && f("O_RDONLY|O_CREAT").writes());
        assert!(f("O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_DIRECTORY").directory);
        assert_eq!(f("0x241").access, 1);
        assert!(f("0x241").create);
        assert!(!f("O_RDONLY|0x200000").directory);
        assert!(f("O_RDWR|O_TMPFILE").directory);
        assert!(f("0x410002").directory, "numeric O_TMPFILE");
        assert!(parse_open_flags(b"garbage").is_none());
    }

    #[test]
    fn interpreter_chains_skip_elf_loaders() {
        let m: BTreeMap<String, String> = [
            ("/app/run.sh", "/bin/sh"),
            ("/bin/sh", "/lib/ld-musl-x86_64.so.1"),
            ("/app/tool.py", "/app/wrapper.sh"),
            ("/app/wrapper.sh", "/bin/bash"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
        assert_eq!(script_interpreter("/app/run.sh", &m), Some("/bin/sh"));
        assert_eq!(script_interpreter("/bin/sh", &m), None);
        assert_eq!(script_interpreter("/app/tool.py", &m), Some("/bin/bash"));
        assert_eq!(script_interpreter("/usr/bin/env", &m), None);
    }
}
