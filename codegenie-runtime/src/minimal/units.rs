//! The unit closure: from the paths the evidence names to the units a
//! minimal image keeps whole (docs/architecture.md, "Minimal image", units).
//!
//! The file closure ([`Closure`]) says which tree entries the evidence
//! reached (each named path, the links on its way and their targets). Each
//! reached entry that is not a folder then brings its unit:
//!
//! 1. the OS package that lists it (dpkg or apk, from the image's own
//!    database; [`super::packages`]): every path it lists but docs;
//! 2. else the language package that holds it ([`super::lang`]): its
//!    folders whole and the files it lists;
//! 3. else, outside the system folders, the app's own tree: the topmost
//!    folder (`/app`), or the second level under `/opt` and `/srv`
//!    (`/opt/x`), or the third under `/usr/src` (`/usr/src/app`), whole but
//!    for the OS and language packages inside it (units of their own, kept
//!    when named). A tree over [`UnitLimits`] keeps only its reached
//!    files, and says so;
//! 4. else the entry alone (a file in a system folder no package owns, a
//!    top-level file like `/server.js`).
//!
//! System folders (never an app tree): `/usr` (but `/usr/src/<x>`), `/lib*`,
//! `/bin`, `/sbin`, `/etc`, `/var`, `/proc`, `/sys`, `/dev`, `/tmp`, `/run`,
//! `/boot`, `/mnt`, `/media`, and also `/root` and `/home`: users' home
//! folders hold package-manager caches (npm, pip, gem) far more often than
//! an app, so only what the evidence reached there is kept.
//!
//! Every unit carries its reason: the best-ranked named path that brought
//! it (first scenario, then strongest use), how it was used, the scenario,
//! and the program where the evidence has it. Whatever cannot be cut into
//! units (no package database, a corrupt one, a tree over the cap) falls
//! back to files, and [`UnitClosure::fallbacks`] says which and why.
//!
//! [`Granularity::File`] keeps the file closure alone (the cut before
//! units), verified only for the paths the scenarios reached; coverage is
//! computed all the same. Pure: the image index and the evidence in.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::closure::{resolve_parents, Closure, Node, Tree};
use super::image_fs::ImageIndex;
use super::lang::{language_packages, LanguageKind};
use super::packages::{is_doc, read_databases, PackageManager};
use super::{EvidencePaths, PathEvidence, PathUse};

/// How finely the minimal image is cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// Units kept whole: OS packages, language packages, the app's tree.
    #[default]
    Unit,
    /// Only the paths the evidence reached: verified only for the paths the
    /// scenarios reached.
    File,
}

impl Granularity {
    /// What `verified` covers at this granularity, for the report.
    pub fn verified_scope(self) -> &'static str {
        match self {
            Granularity::Unit => {
                "verified for the scenarios run; every package and app tree they reached is kept whole"
            }
            Granularity::File => "verified only for the paths the scenarios reached",
        }
    }
}

impl std::fmt::Display for Granularity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Granularity::Unit => "unit",
            Granularity::File => "file",
        })
    }
}

impl std::str::FromStr for Granularity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "unit" | "units" => Ok(Granularity::Unit),
            "file" | "files" => Ok(Granularity::File),
            other => Err(format!("{other:?} is not a granularity (unit or file)")),
        }
    }
}

/// Caps on one app tree kept whole; a larger tree keeps only its reached
/// files (reported in [`UnitClosure::fallbacks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitLimits {
    /// Most files (non-folders) in one tree.
    pub max_tree_files: usize,
    /// Most bytes of file content in one tree.
    pub max_tree_bytes: u64,
}

impl Default for UnitLimits {
    fn default() -> Self {
        UnitLimits {
            max_tree_files: 50_000,
            max_tree_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// Why a unit is kept: the named path that brought it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitReason {
    /// The path as the app named it.
    pub path: String,
    /// How it was used.
    pub usage: PathUse,
    /// The first scenario that named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// The program behind the use, where the evidence has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
}

impl std::fmt::Display for UnitReason {
    /// `/usr/lib/x86_64-linux-gnu/libsqlite3.so.0 mapped in startup`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.path, self.usage.verb())?;
        if let Some(p) = &self.program {
            write!(f, " for {p}")?;
        }
        if let Some(s) = &self.scenario {
            write!(f, " in {s}")?;
        }
        Ok(())
    }
}

/// Which kind of package a kept package is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageKind {
    /// A dpkg package (by name and version in an emitted Dockerfile).
    Dpkg,
    /// An apk package.
    Apk,
    /// A `node_modules` package (copied as its folder).
    Npm,
    /// A Python distribution (its `RECORD`'s files and package folders).
    Python,
    /// A Ruby gem (its folder and gemspec).
    Gem,
}

impl PackageKind {
    /// Whether this is an OS package (dpkg or apk).
    pub fn is_os(self) -> bool {
        matches!(self, PackageKind::Dpkg | PackageKind::Apk)
    }
}

impl From<PackageManager> for PackageKind {
    fn from(m: PackageManager) -> Self {
        match m {
            PackageManager::Dpkg => PackageKind::Dpkg,
            PackageManager::Apk => PackageKind::Apk,
        }
    }
}

impl From<LanguageKind> for PackageKind {
    fn from(k: LanguageKind) -> Self {
        match k {
            LanguageKind::Npm => PackageKind::Npm,
            LanguageKind::Python => PackageKind::Python,
            LanguageKind::Gem => PackageKind::Gem,
        }
    }
}

/// A package kept whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptPackage {
    /// Its kind.
    pub kind: PackageKind,
    /// Its name.
    pub name: String,
    /// Its version (empty where the image does not say: npm folders).
    pub version: String,
    /// Its architecture, where the database gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Why it is kept.
    pub reason: UnitReason,
    /// Its entries in the image (folders not counted).
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Its tree paths kept (docs excluded), each as the image holds it. Not
    /// in the report (a runtime package lists thousands).
    #[serde(skip)]
    pub paths: BTreeSet<String>,
}

impl KeptPackage {
    /// The one-line comment for an emitted Dockerfile:
    /// `libsqlite3-0 3.40.1-2: /usr/lib/x86_64-linux-gnu/libsqlite3.so.0 mapped in startup`.
    pub fn comment(&self) -> String {
        if self.version.is_empty() {
            format!("{}: {}", self.name, self.reason)
        } else {
            format!("{} {}: {}", self.name, self.version, self.reason)
        }
    }
}

/// An app tree kept whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptTree {
    /// The tree's folder (`/app`, `/opt/x`).
    pub path: String,
    /// Its files (non-folders), OS and language packages inside it excluded.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Why it is kept.
    pub reason: UnitReason,
    /// Its tree paths kept, folders included. Not in the report.
    #[serde(skip)]
    pub paths: BTreeSet<String>,
}

/// What the unit closure added, by unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Added {
    /// Packages kept whole (OS packages first, then language packages).
    pub packages: Vec<KeptPackage>,
    /// App trees kept whole.
    pub trees: Vec<KeptTree>,
    /// Entries kept alone (no unit holds them), non-folders only: at file
    /// granularity, every entry the evidence reached.
    pub files: Vec<String>,
}

/// Something kept at file granularity that units would have covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fallback {
    /// What fell back: a package, a database file, a tree, or `os_packages`.
    pub scope: String,
    /// Why, as a sentence.
    pub reason: String,
}

/// How much of the app's own trees the scenarios reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// Files in the app trees the evidence reached (packages inside excluded).
    pub app_files: usize,
    /// Of those, files the evidence named (read, probed, executed...).
    pub app_files_read: usize,
    /// Files never named, sorted, the first [`NEVER_READ_SHOWN`]: where a
    /// scenario is worth adding.
    pub never_read: Vec<String>,
}

/// How many never-read app files the report lists.
pub const NEVER_READ_SHOWN: usize = 50;

/// The closure at a granularity, with its units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitClosure {
    /// The entries to keep (and the named paths the image lacks).
    pub closure: Closure,
    /// The granularity asked for.
    pub granularity: Granularity,
    /// The units and lone files kept.
    pub added: Added,
    /// What fell back to files, and why.
    pub fallbacks: Vec<Fallback>,
    /// App tree coverage.
    pub coverage: Coverage,
}

/// The app tree that holds `path`, if `path` is outside the system folders
/// (see the module docs).
pub fn app_tree_of(path: &str) -> Option<String> {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let first = *comps.first()?;
    const SYSTEM: &[&str] = &[
        "usr", "bin", "sbin", "etc", "var", "proc", "sys", "dev", "tmp", "run", "boot", "mnt",
        "media", "root", "home",
    ];
    match first {
        "usr" if comps.len() >= 4 && comps[1] == "src" => Some(format!("/usr/src/{}", comps[2])),
        "opt" | "srv" if comps.len() >= 3 => Some(format!("/{first}/{}", comps[1])),
        "opt" | "srv" => None,
        f if SYSTEM.contains(&f) || f.starts_with("lib") => None,
        _ if comps.len() >= 2 => Some(format!("/{first}")),
        _ => None,
    }
}

fn is_file(node: &Node) -> bool {
    !matches!(node, Node::Dir)
}

/// The tree entries at or under `root`.
fn subtree<'a>(tree: &'a Tree, root: &'a str) -> impl Iterator<Item = (&'a String, &'a Node)> + 'a {
    let prefix = format!("{root}/");
    tree.range(root.to_owned()..)
        .take_while(move |(p, _)| p.as_str() == root || p.starts_with(&prefix))
}

/// The reason for a unit brought by `named` with `ev`.
fn reason(named: &str, ev: Option<&PathEvidence>) -> UnitReason {
    UnitReason {
        path: named.to_owned(),
        usage: ev.map_or(PathUse::Read, |e| e.usage),
        scenario: ev.and_then(|e| e.scenario.clone()),
        program: ev.and_then(|e| e.program.clone()),
    }
}

/// The closure of `evidence` over `index` at `granularity`.
pub fn unit_closure(
    index: &ImageIndex,
    evidence: &EvidencePaths,
    granularity: Granularity,
    limits: &UnitLimits,
) -> UnitClosure {
    let tree = &index.tree;
    let mut closure = Closure::of(
        tree,
        evidence.named.iter().map(String::as_str),
        evidence.written.iter().map(String::as_str),
    );
    // Each reached non-folder entry → the best-ranked named path that
    // reached it (the named paths in rank order, the first one wins).
    let mut ranked: Vec<(&String, Option<&PathEvidence>)> = evidence
        .named
        .iter()
        .map(|p| (p, evidence.first_use.get(p)))
        .collect();
    ranked.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0)));
    // `None` sorts first: evidence without a first use goes last instead.
    ranked.sort_by_key(|(_, ev)| ev.is_none());
    let mut origin: BTreeMap<String, usize> = BTreeMap::new();
    for (i, (path, _)) in ranked.iter().enumerate() {
        let one = Closure::of(tree, [path.as_str()], []);
        for e in one.keep {
            if tree.get(&e).is_some_and(is_file) {
                origin.entry(e).or_insert(i);
            }
        }
    }
    let reason_of = |i: usize| reason(ranked[i].0, ranked[i].1);

    let mut out = UnitClosure {
        granularity,
        ..UnitClosure::default()
    };
    let lang = language_packages(tree, &index.captured);
    let dbs = read_databases(&index.captured);

    // Tree path → the OS package that lists it (docs excluded); the lists
    // name paths before symlinks (`/lib/...` in a merged-/usr image).
    let mut owner: BTreeMap<String, usize> = BTreeMap::new();
    let mut pkg_paths: Vec<BTreeSet<String>> = vec![BTreeSet::new(); dbs.packages.len()];
    if granularity == Granularity::Unit {
        for (i, p) in dbs.packages.iter().enumerate() {
            for listed in p.files.iter().filter(|f| !is_doc(f)) {
                // A folder in the package's own list (`/lib`, a link in a
                // merged-/usr image) is every package's: never owned.
                let below = format!("{listed}/");
                if p.files
                    .range(below.clone()..)
                    .next()
                    .is_some_and(|n| n.starts_with(&below))
                {
                    continue;
                }
                let Some(tp) = resolve_parents(tree, listed) else {
                    continue;
                };
                if is_doc(&tp) || !tree.get(&tp).is_some_and(is_file) {
                    continue;
                }
                owner.entry(tp.clone()).or_insert(i);
                pkg_paths[i].insert(tp);
            }
        }
    }

    let mut os_trigger: BTreeMap<usize, usize> = BTreeMap::new();
    let mut lang_trigger: BTreeMap<usize, usize> = BTreeMap::new();
    let mut tree_trigger: BTreeMap<String, usize> = BTreeMap::new();
    let mut lone = Vec::new();
    for (entry, &i) in &origin {
        let os = owner.get(entry).copied();
        let lp = lang.owner_of(entry);
        let app = app_tree_of(entry);
        if let (None, None, Some(root)) = (os, lp, &app) {
            // Coverage is counted at either granularity.
            let best = tree_trigger.entry(root.clone()).or_insert(i);
            *best = (*best).min(i);
        }
        if granularity == Granularity::File {
            lone.push(entry.clone());
            continue;
        }
        match (os, lp, app) {
            (Some(p), _, _) => {
                let best = os_trigger.entry(p).or_insert(i);
                *best = (*best).min(i);
            }
            (None, Some(l), _) => {
                let best = lang_trigger.entry(l).or_insert(i);
                *best = (*best).min(i);
            }
            (None, None, Some(_)) => {}
            (None, None, None) => lone.push(entry.clone()),
        }
    }

    if granularity == Granularity::Unit {
        if dbs.managers.is_empty() {
            out.fallbacks.push(Fallback {
                scope: "os_packages".into(),
                reason:
                    "the image has no package database (dpkg or apk): OS paths are kept as files"
                        .into(),
            });
        }
        for e in &dbs.errors {
            out.fallbacks.push(Fallback {
                scope: e
                    .package()
                    .map_or_else(|| "os_packages".to_owned(), str::to_owned),
                reason: format!("{e}; its paths are kept as files"),
            });
        }
        for e in &lang.errors {
            out.fallbacks.push(Fallback {
                scope: "language_packages".into(),
                reason: format!("{e}; its paths are kept as files"),
            });
        }
        for (&p, &i) in &os_trigger {
            let pkg = &dbs.packages[p];
            let paths = std::mem::take(&mut pkg_paths[p]);
            for path in &paths {
                closure.insert(tree, path);
            }
            out.added.packages.push(KeptPackage {
                kind: pkg.manager.into(),
                name: pkg.name.clone(),
                version: pkg.version.clone(),
                arch: pkg.arch.clone(),
                reason: reason_of(i),
                files: paths.len(),
                bytes: paths.iter().filter_map(|p| index.sizes.get(p)).sum(),
                paths,
            });
        }
        for (&l, &i) in &lang_trigger {
            let pkg = &lang.packages[l];
            let mut paths = BTreeSet::new();
            for root in &pkg.roots {
                paths.extend(subtree(tree, root).map(|(p, _)| p.clone()));
            }
            paths.extend(pkg.files.iter().filter(|f| tree.contains_key(*f)).cloned());
            for path in &paths {
                closure.insert(tree, path);
            }
            let files: Vec<&String> = paths
                .iter()
                .filter(|p| tree.get(*p).is_some_and(is_file))
                .collect();
            out.added.packages.push(KeptPackage {
                kind: pkg.kind.into(),
                name: pkg.name.clone(),
                version: pkg.version.clone().unwrap_or_default(),
                arch: None,
                reason: reason_of(i),
                files: files.len(),
                bytes: files.iter().filter_map(|p| index.sizes.get(*p)).sum(),
                paths,
            });
        }
        out.added
            .packages
            .sort_by(|a, b| (!a.kind.is_os(), &a.name).cmp(&(!b.kind.is_os(), &b.name)));
    }

    // App trees: whole but for the packages inside them.
    let mut read = 0usize;
    let mut app_files = 0usize;
    let mut never_read = Vec::new();
    for (root, &i) in &tree_trigger {
        let mut paths = BTreeSet::new();
        let (mut files, mut bytes) = (0usize, 0u64);
        for (p, node) in subtree(tree, root) {
            if owner.contains_key(p) || lang.owner_of(p).is_some() {
                continue;
            }
            if is_file(node) {
                files += 1;
                bytes += index.sizes.get(p).copied().unwrap_or(0);
                if matches!(node, Node::File | Node::Hardlink(_)) {
                    app_files += 1;
                    if origin.contains_key(p) {
                        read += 1;
                    } else {
                        never_read.push(p.clone());
                    }
                }
            }
            paths.insert(p.clone());
        }
        if granularity == Granularity::File {
            continue;
        }
        if files > limits.max_tree_files || bytes > limits.max_tree_bytes {
            out.fallbacks.push(Fallback {
                scope: root.clone(),
                reason: format!(
                    "the tree holds {files} files, {bytes} bytes: over the cap of {} files, {} bytes; only the files the scenarios reached are kept",
                    limits.max_tree_files, limits.max_tree_bytes
                ),
            });
            lone.extend(
                origin
                    .keys()
                    .filter(|p| app_tree_of(p).as_deref() == Some(root.as_str()))
                    .filter(|p| !owner.contains_key(*p) && lang.owner_of(p).is_none())
                    .cloned(),
            );
            continue;
        }
        for p in &paths {
            closure.insert(tree, p);
        }
        out.added.trees.push(KeptTree {
            path: root.clone(),
            files,
            bytes,
            reason: reason_of(i),
            paths,
        });
    }
    never_read.sort();
    never_read.truncate(NEVER_READ_SHOWN);
    out.coverage = Coverage {
        app_files,
        app_files_read: read,
        never_read,
    };
    lone.sort();
    lone.dedup();
    out.added.files = lone;
    out.closure = closure;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::minimal::packages::DPKG_STATUS;

    /// A merged-/usr Debian image: zlib1g and tzdata from dpkg (lists name
    /// `/lib/...`, the tree holds `/usr/lib/...`), a Node app in `/app` with
    /// two modules, one never required.
    fn image() -> ImageIndex {
        let mut ix = ImageIndex::default();
        let t = &mut ix.tree;
        for d in [
            "/usr",
            "/usr/lib",
            "/usr/lib/x86_64-linux-gnu",
            "/usr/share",
            "/usr/share/doc",
            "/usr/share/doc/zlib1g",
            "/usr/share/zoneinfo",
            "/usr/share/zoneinfo/Etc",
            "/usr/share/zoneinfo/Europe",
            "/usr/bin",
            "/etc",
            "/app",
            "/app/lib",
            "/app/data",
            "/app/node_modules",
            "/app/node_modules/express",
            "/app/node_modules/express/lib",
            "/app/node_modules/unused",
            "/var",
            "/var/lib",
            "/var/lib/dpkg",
            "/var/lib/dpkg/info",
        ] {
            t.insert(d.into(), Node::Dir);
        }
        t.insert("/lib".into(), Node::Symlink("usr/lib".into()));
        t.insert(
            "/usr/lib/x86_64-linux-gnu/libz.so.1".into(),
            Node::Symlink("libz.so.1.2.13".into()),
        );
        t.insert(
            "/etc/localtime".into(),
            Node::Symlink("/usr/share/zoneinfo/Etc/UTC".into()),
        );
        for (f, size) in [
            ("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13", 120_000),
            ("/usr/share/doc/zlib1g/copyright", 1_000),
            ("/usr/share/zoneinfo/Etc/UTC", 114),
            ("/usr/share/zoneinfo/Europe/Berlin", 705),
            ("/usr/bin/node", 80_000_000),
            ("/usr/lib/x86_64-linux-gnu/libunowned.so", 10),
            ("/app/server.js", 500),
            ("/app/lib/report.js", 300),
            ("/app/node_modules/express/package.json", 100),
            ("/app/node_modules/express/index.js", 200),
            ("/app/node_modules/express/lib/router.js", 400),
            ("/app/node_modules/unused/package.json", 100),
            ("/app/node_modules/unused/index.js", 100),
        ] {
            t.insert(f.into(), Node::File);
            ix.sizes.insert(f.into(), size);
        }
        let status = "Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.2.13.dfsg-1\n\nPackage: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a-0+deb12u1\n";
        let lists = [
            (DPKG_STATUS.to_owned(), status.to_owned()),
            (
                "/var/lib/dpkg/info/zlib1g:amd64.list".into(),
                "/.\n/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libz.so.1.2.13\n/usr/share/doc/zlib1g/copyright\n/lib/x86_64-linux-gnu/libz.so.1\n".into(),
            ),
            (
                "/var/lib/dpkg/info/tzdata.list".into(),
                "/usr/share/zoneinfo\n/usr/share/zoneinfo/Etc/UTC\n/usr/share/zoneinfo/Europe/Berlin\n".into(),
            ),
        ];
        for (p, text) in lists {
            t.insert(p.clone(), Node::File);
            ix.captured.files.insert(p, text.into_bytes());
        }
        ix
    }

    /// The evidence of one `startup` scenario: node runs, maps zlib by its
    /// soname link, reads the app's entry file, one express file, and the
    /// local time (a link into the zone data).
    fn evidence() -> EvidencePaths {
        let mut e = EvidencePaths::default();
        let at = |usage| PathEvidence {
            scenario_index: 0,
            usage,
            scenario: Some("startup".into()),
            program: None,
        };
        e.add("/usr/bin/node", at(PathUse::Executed));
        e.add(
            "/lib/x86_64-linux-gnu/libz.so.1",
            at(PathUse::LibraryMapped),
        );
        e.add(
            "/usr/lib/x86_64-linux-gnu/libunowned.so",
            at(PathUse::LibraryMapped),
        );
        e.add("/app/server.js", at(PathUse::Read));
        e.add("/app/node_modules/express/index.js", at(PathUse::Read));
        e.add("/etc/localtime", at(PathUse::Read));
        e.written.insert("/app/data/notes.db".into());
        e
    }

    fn cut(ix: &ImageIndex, g: Granularity) -> UnitClosure {
        unit_closure(ix, &evidence(), g, &UnitLimits::default())
    }

    #[test]
    fn units_keep_whole_packages_and_the_app_tree_with_reasons() {
        let u = cut(&image(), Granularity::Unit);
        let keep = &u.closure.keep;
        for p in [
            // zlib1g whole, through the merged-/usr link.
            "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13",
            "/usr/lib/x86_64-linux-gnu/libz.so.1",
            // tzdata whole: a zone the scenarios never used.
            "/usr/share/zoneinfo/Europe/Berlin",
            // The app's tree whole: a lazily required file, the data folder.
            "/app/lib/report.js",
            "/app/data",
            // express whole.
            "/app/node_modules/express/lib/router.js",
            // An unowned system file stays a file.
            "/usr/lib/x86_64-linux-gnu/libunowned.so",
        ] {
            assert!(keep.contains(p), "{p} not kept");
        }
        assert!(
            !keep.contains("/usr/share/doc/zlib1g/copyright"),
            "docs are never kept"
        );
        assert!(
            !keep.contains("/app/node_modules/unused/index.js"),
            "a package inside the app tree is kept only when named"
        );
        assert_eq!(u.fallbacks, []);

        let names: Vec<(&str, &str)> = u
            .added
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("tzdata", "2024a-0+deb12u1"),
                ("zlib1g", "1:1.2.13.dfsg-1"),
                ("express", "")
            ]
        );
        let zlib = &u.added.packages[1];
        assert_eq!(
            zlib.comment(),
            "zlib1g 1:1.2.13.dfsg-1: /lib/x86_64-linux-gnu/libz.so.1 mapped in startup"
        );
        assert_eq!((zlib.files, zlib.bytes), (2, 120_000));
        assert_eq!(u.added.packages[0].reason.path, "/etc/localtime");
        assert_eq!(u.added.packages[2].kind, PackageKind::Npm);

        assert_eq!(u.added.trees.len(), 1);
        let app = &u.added.trees[0];
        assert_eq!((app.path.as_str(), app.files, app.bytes), ("/app", 2, 800));
        assert_eq!(app.reason.to_string(), "/app/server.js read in startup");
        assert!(u
            .added
            .files
            .contains(&"/usr/lib/x86_64-linux-gnu/libunowned.so".to_owned()));
        assert!(!u.added.files.contains(&"/app/lib/report.js".to_owned()));

        assert_eq!(
            u.coverage,
            Coverage {
                app_files: 2,
                app_files_read: 1,
                never_read: vec!["/app/lib/report.js".into()],
            }
        );
    }

    #[test]
    fn control_file_granularity_keeps_only_what_was_reached() {
        let ix = image();
        let u = cut(&ix, Granularity::File);
        let keep = &u.closure.keep;
        for p in [
            "/usr/share/zoneinfo/Europe/Berlin",
            "/app/lib/report.js",
            "/app/node_modules/express/lib/router.js",
        ] {
            assert!(!keep.contains(p), "{p} kept at file granularity");
        }
        assert!(keep.contains("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13"));
        assert!(keep.contains("/usr/share/zoneinfo/Etc/UTC"));
        assert!(u.added.packages.is_empty() && u.added.trees.is_empty());
        assert!(u.added.files.contains(&"/app/server.js".to_owned()));
        // The same closure as the plain file cut.
        let e = evidence();
        let plain = Closure::of(
            &ix.tree,
            e.named.iter().map(String::as_str),
            e.written.iter().map(String::as_str),
        );
        assert_eq!(u.closure, plain);
        assert_eq!(u.coverage.never_read, ["/app/lib/report.js"]);
    }

    #[test]
    fn a_corrupt_database_falls_back_for_that_package_and_says_so() {
        let mut ix = image();
        ix.captured.files.insert(
            "/var/lib/dpkg/info/tzdata.list".into(),
            b"/usr/share/zoneinfo\nusr/share/zoneinfo/Etc/UTC\n".to_vec(),
        );
        let u = cut(&ix, Granularity::Unit);
        assert!(!u.closure.keep.contains("/usr/share/zoneinfo/Europe/Berlin"));
        assert!(u.closure.keep.contains("/usr/share/zoneinfo/Etc/UTC"));
        assert!(u
            .closure
            .keep
            .contains("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13"));
        assert_eq!(u.fallbacks.len(), 1, "{:?}", u.fallbacks);
        assert_eq!(u.fallbacks[0].scope, "tzdata");
        assert!(
            u.fallbacks[0].reason.contains("tzdata.list:2"),
            "{}",
            u.fallbacks[0].reason
        );
        assert!(u.added.packages.iter().all(|p| p.name != "tzdata"));
    }

    #[test]
    fn no_package_database_falls_back_to_files_for_os_paths() {
        let mut ix = image();
        ix.captured.files.clear();
        let u = cut(&ix, Granularity::Unit);
        assert_eq!(u.fallbacks.len(), 1);
        assert_eq!(u.fallbacks[0].scope, "os_packages");
        assert!(!u.closure.keep.contains("/usr/share/zoneinfo/Europe/Berlin"));
        // The app's tree is still a unit.
        assert!(u.closure.keep.contains("/app/lib/report.js"));
    }

    #[test]
    fn a_tree_over_the_cap_keeps_only_its_reached_files() {
        let ix = image();
        let limits = UnitLimits {
            max_tree_files: 1,
            ..UnitLimits::default()
        };
        let u = unit_closure(&ix, &evidence(), Granularity::Unit, &limits);
        assert!(u.added.trees.is_empty());
        assert!(!u.closure.keep.contains("/app/lib/report.js"));
        assert!(u.closure.keep.contains("/app/server.js"));
        assert!(u.added.files.contains(&"/app/server.js".to_owned()));
        assert!(u
            .fallbacks
            .iter()
            .any(|f| f.scope == "/app" && f.reason.contains("over the cap")));
    }

    #[test]
    fn app_trees_and_system_folders() {
        assert_eq!(app_tree_of("/app/lib/x.js").as_deref(), Some("/app"));
        assert_eq!(
            app_tree_of("/opt/java/lib/security/java.security").as_deref(),
            Some("/opt/java")
        );
        assert_eq!(
            app_tree_of("/srv/site/index.html").as_deref(),
            Some("/srv/site")
        );
        assert_eq!(
            app_tree_of("/usr/src/app/index.js").as_deref(),
            Some("/usr/src/app")
        );
        for p in [
            "/server.js",
            "/opt/file",
            "/usr/lib/x",
            "/lib64/ld.so",
            "/etc/passwd",
            "/home/node/.npm/x",
            "/root/.cache/pip/x",
            "/var/lib/x",
            "/tmp/x",
            "/usr/src/file.c",
        ] {
            assert_eq!(app_tree_of(p), None, "{p}");
        }
    }

    #[test]
    fn the_interpreter_names_its_program_and_the_first_scenario_wins() {
        let mut e = EvidencePaths::default();
        e.add(
            "/lib/x86_64-linux-gnu/libz.so.1",
            PathEvidence {
                scenario_index: 2,
                usage: PathUse::Read,
                scenario: Some("healthcheck".into()),
                program: None,
            },
        );
        e.add(
            "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13",
            PathEvidence {
                scenario_index: 0,
                usage: PathUse::Interpreter,
                scenario: Some("startup".into()),
                program: Some("/app/run".into()),
            },
        );
        let u = unit_closure(&image(), &e, Granularity::Unit, &UnitLimits::default());
        let zlib = u
            .added
            .packages
            .iter()
            .find(|p| p.name == "zlib1g")
            .unwrap();
        assert_eq!(
            zlib.reason.to_string(),
            "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13 run as interpreter for /app/run in startup"
        );
    }
}
