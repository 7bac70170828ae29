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
    /// Its run-time dependencies (`Depends` and `Pre-Depends`, apk `D:`):
    /// one group per dependency, each group's alternatives in order, by
    /// name (versions and architecture qualifiers dropped).
    pub depends: Vec<Vec<String>>,
    /// The virtual names it provides (`Provides`, apk `p:`).
    pub provides: BTreeSet<String>,
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
                Ok(Some(c)) => match dpkg_list(db, &c.name, c.arch.as_deref()) {
                    Ok(files) => found.push(c.package(PackageManager::Dpkg, files)),
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
                Ok(Some(c)) => {
                    let sums = format!("{status_d}{name}.md5sums");
                    match db.files.get(&sums) {
                        Some(text) => match md5sums_list(&sums, text, &c.name) {
                            Ok(files) => found.push(c.package(PackageManager::Dpkg, files)),
                            Err(e) => out.errors.push(e),
                        },
                        None => out.errors.push(PackageDbError::NoFileList {
                            file: sums,
                            package: c.name,
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

/// What an installed package's stanza says of it.
struct Control {
    name: String,
    version: String,
    arch: Option<String>,
    depends: Vec<Vec<String>>,
    provides: BTreeSet<String>,
}

impl Control {
    fn package(self, manager: PackageManager, files: BTreeSet<String>) -> OsPackage {
        OsPackage {
            manager,
            name: self.name,
            version: self.version,
            arch: self.arch,
            files,
            depends: self.depends,
            provides: self.provides,
        }
    }
}

/// A dependency or provided name without its version or architecture
/// (`libc6 (>= 2.14)`, `nodejs:any`, `so:libc.musl-x86_64.so.1>=1`).
fn dep_name(raw: &str) -> Option<String> {
    let end = raw
        .find(|c: char| c.is_whitespace() || "([<>=~".contains(c))
        .unwrap_or(raw.len());
    let name = &raw[..end];
    let name = match name.rsplit_once(':') {
        // `nodejs:any`, `libfoo:amd64`; apk's `so:` and `cmd:` are names.
        Some((n, _)) if !n.contains(':') && !matches!(n, "so" | "cmd" | "pc" | "py3") => n,
        _ => name,
    };
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/'))
        .then(|| name.to_owned())
}

/// dpkg's `Depends`-style field: `a (>= 1), b | c`.
fn dpkg_depends(value: &str) -> Vec<Vec<String>> {
    value
        .split(',')
        .map(|group| {
            group
                .split('|')
                .filter_map(|alt| dep_name(alt.trim()))
                .collect::<Vec<_>>()
        })
        .filter(|g| !g.is_empty())
        .collect()
}

/// The control of an installed package's stanza; `None` for a
/// package whose files are not on disk (`config-files`, `not-installed`).
/// `with_status`: the `status` file has a `Status:` field; `status.d`
/// control files do not (what is there is installed).
fn dpkg_package(
    file: &str,
    s: &Stanza,
    with_status: bool,
) -> Result<Option<Control>, PackageDbError> {
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
    let mut depends = dpkg_depends(s.get("Pre-Depends").unwrap_or_default());
    depends.extend(dpkg_depends(s.get("Depends").unwrap_or_default()));
    let provides = dpkg_depends(s.get("Provides").unwrap_or_default())
        .into_iter()
        .flatten()
        .collect();
    Ok(Some(Control {
        name: name.to_owned(),
        version: version.to_owned(),
        arch,
        depends,
        provides,
    }))
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
        depends: Vec<Vec<String>>,
        provides: BTreeSet<String>,
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
                depends: c.depends,
                provides: c.provides,
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
            // Space-separated; `!name` is a conflict, not a need.
            "D" => cur.depends.extend(
                value
                    .split_whitespace()
                    .filter(|d| !d.starts_with('!'))
                    .filter_map(dep_name)
                    .map(|d| vec![d]),
            ),
            "p" => cur
                .provides
                .extend(value.split_whitespace().filter_map(dep_name)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Excerpts of this Debian 12 machine's `/var/lib/dpkg/status`: a
    /// multi-arch library (its list is `zlib1g:amd64.list`), an `all`
    /// package with conffiles, and a removed package whose config stays.
    const STATUS: &str = "\
Package: zlib1g
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 168
Maintainer: Mark Brown <broonie@debian.org>
Architecture: amd64
Multi-Arch: same
Source: zlib
Version: 1:1.2.13.dfsg-1
Provides: libz1
Depends: libc6 (>= 2.14)
Breaks: libxml2 (<< 2.7.6.dfsg-2), texlive-binaries (<< 2009-12)
Conflicts: zlib1 (<= 1:1.0.4-7)
Description: compression library - runtime
 zlib is a library implementing the deflate compression method found
 in gzip and PKZIP.  This package includes the shared library.
Homepage: http://zlib.net/

Package: netbase
Status: install ok installed
Priority: important
Section: admin
Installed-Size: 36
Maintainer: Marco d'Itri <md@linux.it>
Architecture: all
Multi-Arch: foreign
Version: 6.4
Replaces: ebtables (<< 2.0.11-2)
Breaks: ebtables (<< 2.0.11-2)
Conffiles:
 /etc/ethertypes cd7fa874d85f7587e2ed11174d58cf83
 /etc/protocols 0c247591a720f534fe543401bd4844d6
 /etc/rpc 2d7748cd0feba2e43ee52d4d7f834188
 /etc/services 3975f0d8c4e1ecb25f035edfb1ba27ac
Description: Basic TCP/IP networking system
 This package provides the necessary infrastructure for basic TCP/IP based
 networking.
 .
 In particular, it supplies common name-to-number mappings in /etc/services,
 /etc/rpc, /etc/protocols and /etc/ethertypes.

Package: oldtool
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1
";

    /// `/var/lib/dpkg/info/zlib1g:amd64.list` of the same machine.
    const ZLIB_LIST: &str = "/.\n/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libz.so.1.2.13\n/usr\n/usr/share\n/usr/share/doc\n/usr/share/doc/zlib1g\n/usr/share/doc/zlib1g/changelog.Debian.gz\n/usr/share/doc/zlib1g/changelog.gz\n/usr/share/doc/zlib1g/copyright\n/lib/x86_64-linux-gnu/libz.so.1\n";
    /// `/var/lib/dpkg/info/netbase.list`.
    const NETBASE_LIST: &str = "/.\n/etc\n/etc/ethertypes\n/etc/protocols\n/etc/rpc\n/etc/services\n/usr\n/usr/share\n/usr/share/doc\n/usr/share/doc/netbase\n/usr/share/doc/netbase/changelog.gz\n/usr/share/doc/netbase/copyright\n";

    fn files(entries: &[(&str, &[u8])]) -> CapturedFiles {
        CapturedFiles {
            files: entries
                .iter()
                .map(|(p, b)| ((*p).to_owned(), b.to_vec()))
                .collect(),
            too_large: BTreeMap::new(),
        }
    }

    fn debian() -> CapturedFiles {
        files(&[
            (DPKG_STATUS, STATUS.as_bytes()),
            ("/var/lib/dpkg/info/zlib1g:amd64.list", ZLIB_LIST.as_bytes()),
            ("/var/lib/dpkg/info/netbase.list", NETBASE_LIST.as_bytes()),
        ])
    }

    fn names(dbs: &PackageDbs) -> Vec<&str> {
        dbs.packages.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn dpkg_status_and_lists() {
        let dbs = read_databases(&debian());
        assert_eq!(dbs.errors, []);
        assert_eq!(dbs.managers, [PackageManager::Dpkg].into());
        // The removed package's files are not on disk: not a package here.
        assert_eq!(names(&dbs), ["zlib1g", "netbase"]);
        let z = &dbs.packages[0];
        assert_eq!(z.version, "1:1.2.13.dfsg-1");
        assert_eq!(z.arch.as_deref(), Some("amd64"));
        assert!(z.files.contains("/lib/x86_64-linux-gnu/libz.so.1"));
        assert!(z.files.contains("/usr/share/doc/zlib1g/copyright"));
        assert!(!z.files.contains("/"), "the root is no package's");
        assert!(dbs.packages[1].files.contains("/etc/services"));
    }

    #[test]
    fn a_missing_list_or_a_bad_path_leaves_that_package_out_and_is_named() {
        let mut db = debian();
        db.files.remove("/var/lib/dpkg/info/netbase.list");
        let dbs = read_databases(&db);
        assert_eq!(names(&dbs), ["zlib1g"]);
        assert!(matches!(
            &dbs.errors[..],
            [PackageDbError::NoFileList { package, .. }] if package == "netbase"
        ));

        for (list, line) in [
            ("/etc\netc/services\n", 2),
            ("/etc\n/../../etc/shadow\n", 2),
        ] {
            let mut db = debian();
            db.files.insert(
                "/var/lib/dpkg/info/netbase.list".into(),
                list.as_bytes().to_vec(),
            );
            let dbs = read_databases(&db);
            assert_eq!(names(&dbs), ["zlib1g"], "{list:?}");
            let e = &dbs.errors[0];
            assert_eq!(e.package(), Some("netbase"));
            assert!(
                e.to_string()
                    .starts_with(&format!("/var/lib/dpkg/info/netbase.list:{line}: ")),
                "{e}"
            );
            assert!(matches!(
                e,
                PackageDbError::NotAbsolute { .. } | PackageDbError::OutsideImage { .. }
            ));
        }
    }

    #[test]
    fn a_corrupt_stanza_names_its_line_and_package() {
        let broken = STATUS.replace("Homepage: http://zlib.net/", "this line has no colon");
        let mut db = debian();
        db.files.insert(DPKG_STATUS.into(), broken.into_bytes());
        let dbs = read_databases(&db);
        assert_eq!(names(&dbs), ["netbase"]);
        match &dbs.errors[..] {
            [PackageDbError::Corrupt {
                file,
                line,
                package,
                ..
            }] => {
                assert_eq!(file, DPKG_STATUS);
                assert_eq!(*line, 18);
                assert_eq!(package.as_deref(), Some("zlib1g"));
            }
            other => panic!("{other:?}"),
        }
        // A stanza with no name, and one with no version.
        let mut db = debian();
        db.files.insert(
            DPKG_STATUS.into(),
            b"Status: install ok installed\n\nPackage: x\nStatus: install ok installed\n".to_vec(),
        );
        let dbs = read_databases(&db);
        assert!(dbs.packages.is_empty());
        assert_eq!(dbs.errors.len(), 2, "{:?}", dbs.errors);
        assert_eq!(dbs.errors[0].package(), None);
        assert_eq!(dbs.errors[1].package(), Some("x"));
    }

    #[test]
    fn distroless_status_d_with_md5sums() {
        let db = files(&[
            (
                "/var/lib/dpkg/status.d/netbase",
                b"Package: netbase\nVersion: 6.4\nArchitecture: all\n",
            ),
            (
                "/var/lib/dpkg/status.d/netbase.md5sums",
                b"fb890792a951c8267c816d7a1383a3ce  usr/share/doc/netbase/changelog.gz\n3975f0d8c4e1ecb25f035edfb1ba27ac  etc/services\n",
            ),
            (
                "/var/lib/dpkg/status.d/tzdata",
                b"Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n",
            ),
        ]);
        let dbs = read_databases(&db);
        assert_eq!(names(&dbs), ["netbase"]);
        assert_eq!(
            dbs.packages[0].files,
            ["/etc/services", "/usr/share/doc/netbase/changelog.gz"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        );
        // No md5sums: the package's files are unknown, and that is said.
        assert!(matches!(
            &dbs.errors[..],
            [PackageDbError::NoFileList { package, file }]
                if package == "tzdata" && file.ends_with("tzdata.md5sums")
        ));
    }

    #[test]
    fn apk_installed() {
        let text = b"C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nF:lib\nR:ld-musl-x86_64.so.1\nR:libc.musl-x86_64.so.1\n\nP:busybox\nV:1.36.1-r5\nA:x86_64\nF:bin\nR:busybox\nF:usr/share/man/man1\nR:busybox.1.gz\n";
        let dbs = read_databases(&files(&[(APK_INSTALLED, text)]));
        assert_eq!(dbs.errors, []);
        assert_eq!(dbs.managers, [PackageManager::Apk].into());
        assert_eq!(names(&dbs), ["musl", "busybox"]);
        assert!(dbs.packages[0].files.contains("/lib/ld-musl-x86_64.so.1"));
        assert_eq!(dbs.packages[1].version, "1.36.1-r5");
        assert!(dbs.packages[1].files.contains("/bin/busybox"));

        let bad = b"P:musl\nV:1.2.4-r2\nF:../..\nR:passwd\n";
        let dbs = read_databases(&files(&[(APK_INSTALLED, bad)]));
        assert!(dbs.packages.is_empty());
        assert!(matches!(
            &dbs.errors[..],
            [PackageDbError::OutsideImage { line: 4, package, .. }] if package == "musl"
        ));
        let bad = b"P:musl\nnot a field\n";
        let dbs = read_databases(&files(&[(APK_INSTALLED, bad)]));
        assert!(matches!(
            &dbs.errors[..],
            [PackageDbError::Corrupt { line: 2, package: Some(p), .. }] if p == "musl"
        ));
    }

    #[test]
    fn non_utf8_names_are_kept_without_loss() {
        let mut db = debian();
        db.files.insert(
            "/var/lib/dpkg/info/netbase.list".into(),
            b"/etc\n/etc/caf\xe9\n".to_vec(),
        );
        let dbs = read_databases(&db);
        assert_eq!(dbs.errors, []);
        assert!(dbs.packages[1].files.contains("/etc/caf\\xe9"));
    }

    #[test]
    fn a_database_over_the_cap_is_reported() {
        let mut db = debian();
        db.files.remove("/var/lib/dpkg/info/netbase.list");
        db.too_large
            .insert("/var/lib/dpkg/info/netbase.list".into(), (1 << 30, 1 << 25));
        let dbs = read_databases(&db);
        assert_eq!(names(&dbs), ["zlib1g"]);
        assert!(dbs
            .errors
            .iter()
            .any(|e| matches!(e, PackageDbError::TooLarge { bytes, .. } if *bytes == 1 << 30)));
        assert!(dbs.errors.iter().any(|e| e.package() == Some("netbase")));
    }

    #[test]
    fn dependencies_by_name() {
        assert_eq!(
            dpkg_depends(
                "libc6 (>= 2.14), debconf (>= 0.5) | debconf-2.0, nodejs:any, libfoo:amd64 [amd64]"
            ),
            [
                vec!["libc6".to_owned()],
                vec!["debconf".to_owned(), "debconf-2.0".to_owned()],
                vec!["nodejs".to_owned()],
                vec!["libfoo".to_owned()],
            ]
        );
        assert_eq!(
            dep_name("so:libc.musl-x86_64.so.1").as_deref(),
            Some("so:libc.musl-x86_64.so.1")
        );
        assert_eq!(dep_name("musl>=1.2").as_deref(), Some("musl"));
        let apk = b"P:libssl3\nV:3.1.4-r5\nD:so:libc.musl-x86_64.so.1 !openssl-legacy\np:so:libssl.so.3=3\nF:lib\nR:libssl.so.3\n";
        let dbs = read_databases(&files(&[(APK_INSTALLED, apk)]));
        assert_eq!(
            dbs.packages[0].depends,
            [vec!["so:libc.musl-x86_64.so.1".to_owned()]]
        );
        assert!(dbs.packages[0].provides.contains("so:libssl.so.3"));
        let dbs = read_databases(&debian());
        assert_eq!(dbs.packages[0].depends, [vec!["libc6".to_owned()]]);
        assert!(dbs.packages[0].provides.contains("libz1"));
    }

    #[test]
    fn database_files_and_docs() {
        assert!(is_database_file("/var/lib/dpkg/status"));
        assert!(is_database_file("/var/lib/dpkg/info/zlib1g:amd64.list"));
        assert!(!is_database_file("/var/lib/dpkg/info/zlib1g:amd64.md5sums"));
        assert!(is_database_file("/var/lib/dpkg/status.d/tzdata.md5sums"));
        assert!(!is_database_file("/var/lib/dpkg/status.d/x/y"));
        assert!(is_database_file("/lib/apk/db/installed"));
        assert!(is_doc("/usr/share/doc/zlib1g/copyright"));
        assert!(is_doc("/usr/share/man"));
        assert!(!is_doc("/usr/share/documents/x"));
    }

    proptest! {
        // Total: any bytes in any database file give packages and errors.
        #[test]
        fn parsers_are_total(
            status in proptest::collection::vec(any::<u8>(), 0..600),
            list in proptest::collection::vec(any::<u8>(), 0..300),
            apk in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let db = files(&[
                (DPKG_STATUS, &status),
                ("/var/lib/dpkg/info/x.list", &list),
                ("/var/lib/dpkg/status.d/y", &status),
                ("/var/lib/dpkg/status.d/y.md5sums", &list),
                (APK_INSTALLED, &apk),
            ]);
            let dbs = read_databases(&db);
            for p in &dbs.packages {
                for f in &p.files {
                    prop_assert!(f.starts_with('/'));
                    prop_assert!(!f.split('/').any(|c| c == ".."));
                }
            }
        }

        // Stanza-shaped text: every well-formed stanza is a package or the
        // reason it is not is an error; never both for one name.
        #[test]
        fn well_formed_stanzas_parse(
            pkgs in proptest::collection::btree_map("[a-z][a-z0-9+.-]{0,8}", "[0-9][a-z0-9.:~+-]{0,6}", 1..6),
            junk in proptest::option::of("[ -~]{0,20}"),
        ) {
            let mut status = String::new();
            let mut db = files(&[]);
            for (name, version) in &pkgs {
                status.push_str(&format!("Package: {name}\nStatus: install ok installed\nVersion: {version}\nDescription: x\n more\n"));
                if let Some(j) = &junk {
                    status.push_str(j);
                    status.push('\n');
                }
                status.push('\n');
                db.files.insert(format!("{DPKG_INFO}/{name}.list"), format!("/usr/lib/{name}.so\n").into_bytes());
            }
            db.files.insert(DPKG_STATUS.into(), status.into_bytes());
            let dbs = read_databases(&db);
            for name in pkgs.keys() {
                let ok = dbs.packages.iter().any(|p| &p.name == name);
                let bad = dbs.errors.iter().any(|e| e.package() == Some(name.as_str()));
                prop_assert!(ok != bad, "{name}: {:?} {:?}", dbs.packages, dbs.errors);
            }
            if junk.is_none() {
                prop_assert_eq!(dbs.errors.len(), 0);
                prop_assert_eq!(dbs.packages.len(), pkgs.len());
            }
        }
    }
}
