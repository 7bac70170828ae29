//! The image's own package databases, read from the contents the tar index
//! captured: which OS package owns which path (docs/architecture.md,
//! "Minimal image", units).
//!
//! - dpkg: `/var/lib/dpkg/status` (stanzas) with one file list per installed
//!   package, `/var/lib/dpkg/info/<pkg>[:<arch>].list`; distroless-style
//!   `/var/lib/dpkg/status.d/<pkg>` control files, whose file list is
//!   `status.d/<pkg>.md5sums` where present (regular files only, relative).
//! - apk: `/lib/apk/db/installed` (`P:` name, `V:` version, `A:` arch, `F:`
//!   folder, `R:` file in the last folder).
//!
//! Pure and total: any bytes give packages and typed errors, never a panic.
//! A package an error touches is left out, so its paths fall back to file
//! granularity; an error that cannot be tied to one package (a database file
//! over the cap, a stanza with no name) is reported all the same. Names that
//! are not UTF-8 are rendered as trace paths are (`\xHH` per invalid byte),
//! so they still match the tree and the evidence. A listed path that the
//! image does not hold (removed after install, as slim images do with docs)
//! is not an error: there is simply nothing to keep for it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The dpkg status file.
pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";
/// The folder of dpkg file lists.
pub const DPKG_INFO: &str = "/var/lib/dpkg/info";
/// The distroless-style folder of per-package control files.
pub const DPKG_STATUS_D: &str = "/var/lib/dpkg/status.d";
/// The apk database.
pub const APK_INSTALLED: &str = "/lib/apk/db/installed";

/// Folders whose files are never kept as part of a package.
pub const DOC_DIRS: &[&str] = &["/usr/share/doc", "/usr/share/man", "/usr/share/info"];

/// Whether `path` is a documentation file (under one of [`DOC_DIRS`]).
pub fn is_doc(path: &str) -> bool {
    DOC_DIRS.iter().any(|d| {
        path.strip_prefix(d)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Whether the tar index must capture the contents of `path` for
/// [`read_databases`] (a dpkg or apk database file).
pub fn is_database_file(path: &str) -> bool {
    if path == DPKG_STATUS || path == APK_INSTALLED {
        return true;
    }
    let child_of = |dir: &str| {
        path.strip_prefix(dir)
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
    };
    (child_of(DPKG_INFO) && path.ends_with(".list")) || child_of(DPKG_STATUS_D)
}

/// Which package manager a database belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageManager {
    /// Debian's dpkg (`status` or distroless `status.d`).
    Dpkg,
    /// Alpine's apk.
    Apk,
}

/// One installed OS package and the paths it lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsPackage {
    /// dpkg or apk.
    pub manager: PackageManager,
    /// Its name (`libsqlite3-0`).
    pub name: String,
    /// Its version (`3.40.1-2`).
    pub version: String,
    /// Its architecture, when the database gives one.
    pub arch: Option<String>,
    /// The paths it lists: absolute, lexically normal, as listed (not
    /// resolved through the image's symlinks: `/lib/...` in a merged-/usr
    /// image), docs included.
    pub files: BTreeSet<String>,
}

/// A package database entry that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackageDbError {
    /// A line or stanza that is not what the format allows.
    #[error("{file}:{line}: {reason}")]
    Corrupt {
        /// The database file.
        file: String,
        /// Its line (1-based).
        line: usize,
        /// What is wrong.
        reason: String,
        /// The package of the stanza, when it names one.
        package: Option<String>,
    },
    /// A file list names a relative path where an absolute one belongs.
    #[error("{file}:{line}: {path:?} is not an absolute path")]
    NotAbsolute {
        /// The file list.
        file: String,
        /// Its line (1-based).
        line: usize,
        /// The path as listed.
        path: String,
        /// The package it lists.
        package: String,
    },
    /// A file list names a path that leaves the image's root (`..`).
    #[error("{file}:{line}: {path:?} leaves the image's root")]
    OutsideImage {
        /// The file list.
        file: String,
        /// Its line (1-based).
        line: usize,
        /// The path as listed.
        path: String,
        /// The package it lists.
        package: String,
    },
    /// A database file over [`MAX_CAPTURED_FILE_BYTES`](super::image_fs::MAX_CAPTURED_FILE_BYTES) (or the total cap):
    /// not read.
    #[error(
        "{file}: {bytes} bytes, over the {cap}-byte cap for a package database file; not read"
    )]
    TooLarge {
        /// The database file.
        file: String,
        /// Its size.
        bytes: u64,
        /// The cap it exceeds.
        cap: u64,
    },
    /// An installed package whose file list is not in the image.
    #[error("{file}: no file list for the installed package {package:?}")]
    NoFileList {
        /// The file list looked for.
        file: String,
        /// The package.
        package: String,
    },
}

impl PackageDbError {
    /// The package this error leaves out, when it touches one.
    pub fn package(&self) -> Option<&str> {
        match self {
            PackageDbError::Corrupt { package, .. } => package.as_deref(),
            PackageDbError::NotAbsolute { package, .. }
            | PackageDbError::OutsideImage { package, .. }
            | PackageDbError::NoFileList { package, .. } => Some(package),
            PackageDbError::TooLarge { .. } => None,
        }
    }
}

/// What [`read_databases`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageDbs {
    /// Which databases the image has (none: fall back to files).
    pub managers: BTreeSet<PackageManager>,
    /// Every installed package no error touches.
    pub packages: Vec<OsPackage>,
    /// Every error, in file order; the packages they name are not in
    /// `packages`.
    pub errors: Vec<PackageDbError>,
}

/// Database file contents captured from the image, by absolute path, and
/// the files refused for their size (path → bytes, cap).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapturedFiles {
    /// Contents by absolute path.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Files not captured: path → (size, cap exceeded).
    pub too_large: BTreeMap<String, (u64, u64)>,
}

/// Every package database in `db` (see the module docs).
pub fn read_databases(db: &CapturedFiles) -> PackageDbs {
    let mut out = PackageDbs::default();
    for (file, &(bytes, cap)) in &db.too_large {
        out.errors.push(PackageDbError::TooLarge {
            file: file.clone(),
            bytes,
            cap,
        });
        if let Some(m) = manager_of(file) {
            out.managers.insert(m);
        }
    }
    let mut found = Vec::new();
    if let Some(text) = db.files.get(DPKG_STATUS) {
        out.managers.insert(PackageManager::Dpkg);
        let (stanzas, errors) = parse_stanzas(DPKG_STATUS, text);
        out.errors.extend(errors);
        for s in stanzas {
            match dpkg_package(DPKG_STATUS, &s, true) {
                Ok(Some((name, version, arch))) => match dpkg_list(db, &name, arch.as_deref()) {
                    Ok(files) => found.push(OsPackage {
                        manager: PackageManager::Dpkg,
                        name,
                        version,
                        arch,
                        files,
                    }),
                    Err(e) => out.errors.push(e),
                },
                Ok(None) => {}
                Err(e) => out.errors.push(e),
            }
        }
    }
    let status_d = format!("{DPKG_STATUS_D}/");
    for (file, text) in db.files.range(status_d.clone()..) {
        let Some(name) = file.strip_prefix(&status_d) else {
            break;
        };
        if name.ends_with(".md5sums") {
            continue;
        }
        out.managers.insert(PackageManager::Dpkg);
        let (stanzas, errors) = parse_stanzas(file, text);
        out.errors.extend(errors);
        for s in stanzas {
            match dpkg_package(file, &s, false) {
                Ok(Some((pkg, version, arch))) => {
                    let sums = format!("{status_d}{name}.md5sums");
                    match db.files.get(&sums) {
                        Some(text) => match md5sums_list(&sums, text, &pkg) {
                            Ok(files) => found.push(OsPackage {
                                manager: PackageManager::Dpkg,
                                name: pkg,
                                version,
                                arch,
                                files,
                            }),
                            Err(e) => out.errors.push(e),
                        },
                        None => out.errors.push(PackageDbError::NoFileList {
                            file: sums,
                            package: pkg,
                        }),
                    }
                }
                Ok(None) => {}
                Err(e) => out.errors.push(e),
            }
        }
    }
    if let Some(text) = db.files.get(APK_INSTALLED) {
        out.managers.insert(PackageManager::Apk);
        let (packages, errors) = apk_installed(APK_INSTALLED, text);
        found.extend(packages);
        out.errors.extend(errors);
    }
    // A package an error names is left out whole (its files fall back), even
    // when another stanza of the same name parsed.
    let bad: BTreeSet<&str> = out.errors.iter().filter_map(|e| e.package()).collect();
    found.retain(|p| !bad.contains(p.name.as_str()));
    out.packages = found;
    out
}

fn manager_of(file: &str) -> Option<PackageManager> {
    if file == APK_INSTALLED {
        Some(PackageManager::Apk)
    } else if file.starts_with("/var/lib/dpkg/") {
        Some(PackageManager::Dpkg)
    } else {
        None
    }
}

/// Bytes as text, invalid UTF-8 as `\xHH` (lossless, as trace paths are).
fn text(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    crate::strace::render_into(bytes, &mut s);
    s
}

/// The lines of `bytes` with their 1-based numbers (`\r\n` tolerated).
fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let trimmed = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    trimmed
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(move |_| !bytes.is_empty())
}

/// One control stanza: its first line and its fields (continuations joined
/// with `\n`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Stanza {
    line: usize,
    fields: BTreeMap<String, String>,
}

impl Stanza {
    fn get(&self, key: &str) -> Option<&str> {
        // Field names are case-insensitive (deb-control(5)).
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim())
    }
}

/// Control stanzas (deb822) of `bytes`: blank lines separate them. A line
/// that is neither `Field: value` nor a continuation makes its stanza
/// corrupt (an error naming the stanza's package where it has one).
fn parse_stanzas(file: &str, bytes: &[u8]) -> (Vec<Stanza>, Vec<PackageDbError>) {
    let mut stanzas = Vec::new();
    let mut errors = Vec::new();
    let mut cur: Option<Stanza> = None;
    let mut bad: Option<(usize, String)> = None;
    let mut last_key: Option<String> = None;
    let mut finish = |cur: &mut Option<Stanza>, bad: &mut Option<(usize, String)>| {
        if let Some(s) = cur.take() {
            match bad.take() {
                None => stanzas.push(s),
                Some((line, reason)) => errors.push(PackageDbError::Corrupt {
                    file: file.to_owned(),
                    line,
                    reason,
                    package: s.get("Package").map(str::to_owned),
                }),
            }
        }
    };
    for (n, raw) in lines(bytes) {
        if raw.iter().all(u8::is_ascii_whitespace) {
            finish(&mut cur, &mut bad);
            last_key = None;
            continue;
        }
        let stanza = cur.get_or_insert_with(|| Stanza {
            line: n,
            ..Stanza::default()
        });
        if raw[0] == b' ' || raw[0] == b'\t' {
            match &last_key {
                Some(k) => {
                    if let Some(v) = stanza.fields.get_mut(k) {
                        v.push('\n');
                        v.push_str(&text(&raw[1..]));
                    }
                }
                None => {
                    bad.get_or_insert((n, "a continuation line with no field before it".into()));
                }
            }
            continue;
        }
        let line = text(raw);
        match line.split_once(':') {
            Some((key, value))
                if !key.is_empty()
                    && !key.starts_with('#')
                    && !key.starts_with('-')
                    && key.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                if stanza.fields.contains_key(key) {
                    bad.get_or_insert((n, format!("the field {key:?} appears twice")));
                }
                stanza
                    .fields
                    .insert(key.to_owned(), value.trim().to_owned());
                last_key = Some(key.to_owned());
            }
            _ => {
                bad.get_or_insert((
                    n,
                    "a line that is neither `Field: value` nor a continuation".into(),
                ));
            }
        }
    }
    finish(&mut cur, &mut bad);
    (stanzas, errors)
}

/// dpkg status words under which a package's files are on disk.
const ON_DISK: &[&str] = &[
    "installed",
    "half-configured",
    "unpacked",
    "half-installed",
    "triggers-awaited",
    "triggers-pending",
];

/// (name, version, arch) of an installed package's stanza; `None` for a
/// package whose files are not on disk (`config-files`, `not-installed`).
/// `with_status`: the `status` file has a `Status:` field; `status.d`
/// control files do not (what is there is installed).
fn dpkg_package(
    file: &str,
    s: &Stanza,
    with_status: bool,
) -> Result<Option<(String, String, Option<String>)>, PackageDbError> {
    let corrupt = |reason: String, package: Option<String>| PackageDbError::Corrupt {
        file: file.to_owned(),
        line: s.line,
        reason,
        package,
    };
    let Some(name) = s.get("Package").filter(|n| valid_name(n)) else {
        return Err(corrupt(
            "a stanza with no valid `Package:` field".into(),
            None,
        ));
    };
    if with_status {
        let Some(status) = s.get("Status") else {
            return Err(corrupt(
                "a stanza with no `Status:` field".into(),
                Some(name.to_owned()),
            ));
        };
        let words: Vec<&str> = status.split_whitespace().collect();
        if words.len() != 3 {
            return Err(corrupt(
                format!("`Status: {status}` is not three words"),
                Some(name.to_owned()),
            ));
        }
        if !ON_DISK.contains(&words[2]) {
            return Ok(None);
        }
    }
    let Some(version) = s
        .get("Version")
        .filter(|v| !v.is_empty() && !v.contains(char::is_whitespace))
    else {
        return Err(corrupt(
            "an installed package with no valid `Version:` field".into(),
            Some(name.to_owned()),
        ));
    };
    let arch = s
        .get("Architecture")
        .filter(|a| !a.is_empty())
        .map(str::to_owned);
    Ok(Some((name.to_owned(), version.to_owned(), arch)))
}

/// A package name as dpkg and apk allow (no separators, no path syntax).
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n != "."
        && n != ".."
        && n.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

/// The `.list` of `name`: `<name>:<arch>.list` (multi-arch packages), else
/// `<name>.list`.
fn dpkg_list(
    db: &CapturedFiles,
    name: &str,
    arch: Option<&str>,
) -> Result<BTreeSet<String>, PackageDbError> {
    let plain = format!("{DPKG_INFO}/{name}.list");
    let candidates = arch
        .map(|a| format!("{DPKG_INFO}/{name}:{a}.list"))
        .into_iter()
        .chain(std::iter::once(plain.clone()));
    for file in candidates {
        if db.too_large.contains_key(&file) {
            // Its size is reported as `TooLarge`; the package is left out.
            return Err(PackageDbError::NoFileList {
                file,
                package: name.to_owned(),
            });
        }
        if let Some(bytes) = db.files.get(&file) {
            return file_list(&file, bytes, name);
        }
    }
    Err(PackageDbError::NoFileList {
        file: plain,
        package: name.to_owned(),
    })
}

/// A dpkg `.list`: one absolute path a line.
fn file_list(file: &str, bytes: &[u8], package: &str) -> Result<BTreeSet<String>, PackageDbError> {
    let mut out = BTreeSet::new();
    for (n, raw) in lines(bytes) {
        if raw.is_empty() {
            continue;
        }
        let path = text(raw);
        if !path.starts_with('/') {
            return Err(PackageDbError::NotAbsolute {
                file: file.to_owned(),
                line: n,
                path,
                package: package.to_owned(),
            });
        }
        out.insert(inside_root(file, n, &path, package)?);
    }
    out.remove("/");
    Ok(out)
}

/// A distroless `status.d/<pkg>.md5sums`: `<hex digest>  <relative path>`.
fn md5sums_list(
    file: &str,
    bytes: &[u8],
    package: &str,
) -> Result<BTreeSet<String>, PackageDbError> {
    let mut out = BTreeSet::new();
    for (n, raw) in lines(bytes) {
        if raw.is_empty() {
            continue;
        }
        let line = text(raw);
        let parsed = line.split_once("  ").filter(|(sum, p)| {
            !sum.is_empty() && sum.bytes().all(|b| b.is_ascii_hexdigit()) && !p.is_empty()
        });
        let Some((_, rel)) = parsed else {
            return Err(PackageDbError::Corrupt {
                file: file.to_owned(),
                line: n,
                reason: "not `<digest>  <path>`".into(),
                package: Some(package.to_owned()),
            });
        };
        let abs = if rel.starts_with('/') {
            rel.to_owned()
        } else {
            format!("/{rel}")
        };
        out.insert(inside_root(file, n, &abs, package)?);
    }
    out.remove("/");
    Ok(out)
}

/// `path` (absolute) normalised, or an error when a `..` would leave `/`.
fn inside_root(
    file: &str,
    line: usize,
    path: &str,
    package: &str,
) -> Result<String, PackageDbError> {
    let mut depth = 0usize;
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if depth == 0 {
                    return Err(PackageDbError::OutsideImage {
                        file: file.to_owned(),
                        line,
                        path: path.to_owned(),
                        package: package.to_owned(),
                    });
                }
                depth -= 1;
            }
            _ => depth += 1,
        }
    }
    Ok(super::closure::normalize(path))
}

/// Alpine's `installed`: stanzas of `X:value` lines.
fn apk_installed(file: &str, bytes: &[u8]) -> (Vec<OsPackage>, Vec<PackageDbError>) {
    #[derive(Default)]
    struct Cur {
        line: usize,
        name: Option<String>,
        version: Option<String>,
        arch: Option<String>,
        folder: String,
        files: BTreeSet<String>,
        bad: Option<PackageDbError>,
    }
    let mut packages = Vec::new();
    let mut errors = Vec::new();
    let mut finish = |c: Cur| {
        if c.line == 0 {
            return;
        }
        let corrupt = |reason: &str, package: Option<String>| PackageDbError::Corrupt {
            file: file.to_owned(),
            line: c.line,
            reason: reason.to_owned(),
            package,
        };
        match (c.bad, c.name, c.version) {
            (Some(e), name, _) => errors.push(match e {
                PackageDbError::Corrupt {
                    file,
                    line,
                    reason,
                    package: None,
                } => PackageDbError::Corrupt {
                    file,
                    line,
                    reason,
                    package: name,
                },
                PackageDbError::OutsideImage {
                    file, line, path, ..
                } => PackageDbError::OutsideImage {
                    file,
                    line,
                    path,
                    package: name.unwrap_or_default(),
                },
                other => other,
            }),
            (None, None, _) => errors.push(corrupt("a stanza with no valid `P:` line", None)),
            (None, Some(name), None) => {
                errors.push(corrupt("a package with no valid `V:` line", Some(name)))
            }
            (None, Some(name), Some(version)) => packages.push(OsPackage {
                manager: PackageManager::Apk,
                name,
                version,
                arch: c.arch,
                files: c.files,
            }),
        }
    };
    let mut cur = Cur::default();
    for (n, raw) in lines(bytes) {
        if raw.iter().all(u8::is_ascii_whitespace) {
            finish(std::mem::take(&mut cur));
            continue;
        }
        if cur.line == 0 {
            cur.line = n;
        }
        if cur.bad.is_some() {
            continue;
        }
        let line = text(raw);
        let Some((key, value)) = line.split_once(':').filter(|(k, _)| k.len() == 1) else {
            cur.bad = Some(PackageDbError::Corrupt {
                file: file.to_owned(),
                line: n,
                reason: "a line that is not `X:value`".into(),
                package: None,
            });
            continue;
        };
        match key {
            "P" if valid_name(value) => cur.name = Some(value.to_owned()),
            "V" if !value.is_empty() && !value.contains(char::is_whitespace) => {
                cur.version = Some(value.to_owned())
            }
            "A" if !value.is_empty() => cur.arch = Some(value.to_owned()),
            "F" => cur.folder = value.trim_matches('/').to_owned(),
            "R" if !value.is_empty() && !value.contains('/') => {
                let abs = format!("/{}/{value}", cur.folder);
                match inside_root(file, n, &abs, "") {
                    Ok(p) => {
                        if !cur.folder.is_empty() {
                            cur.files
                                .insert(super::closure::normalize(&format!("/{}", cur.folder)));
                        }
                        cur.files.insert(p);
                    }
                    Err(e) => cur.bad = Some(e),
                }
            }
            "P" | "V" | "R" => {
                cur.bad = Some(PackageDbError::Corrupt {
                    file: file.to_owned(),
                    line: n,
                    reason: format!("an invalid `{key}:` line"),
                    package: None,
                })
            }
            // Checksums, sizes, owners, dependencies: not needed here.
            _ => {}
        }
    }
    finish(cur);
    // A folder `F:` with `..` in it is caught through its files.
    (packages, errors)
}
