//! The unit closure: from the paths the evidence names to the units a
//! minimal image keeps whole (docs/architecture.md, "Minimal image", units).
//!
//! The file closure ([`Closure`]) says which tree entries the evidence
//! reached (each named path, the links on its way and their targets). Each
//! reached entry that is not a folder then brings its unit:
//!
//! 1. the OS package that lists it (dpkg or apk, from the image's own
//!    database; [`super::packages`]): every path it lists but docs;
//! 2. else, outside the system folders, the app's own tree: the topmost
//!    folder (`/app`), or the second level under `/opt` and `/srv`
//!    (`/opt/x`), or the third under `/usr/src` (`/usr/src/app`), whole
//!    (its `node_modules`, a virtualenv inside it, included) but for OS
//!    package files inside it. A tree over [`UnitLimits`] keeps only its
//!    reached files (with the language packages they are in), and says so;
//! 3. else the language package that holds it ([`super::lang`]; a global
//!    `site-packages`, a gem folder): its folders whole and its listed files;
//! 4. else the entry alone (a file in a system folder no package owns, a
//!    top-level file like `/server.js`).
//!
//! The image's scratch folders ([`SCRATCH_DIRS`]) are kept, empty. Then
//! what the kept units need beyond the paths reached: a kept app
//! tree's `package.json` dependencies that Node would resolve outside the
//! tree (Debian's `/usr/share/nodejs`, `/usr/lib/<triplet>/nodejs`) bring the
//! package holding them, and every kept OS package brings its run-time
//! dependencies (`Depends`, `Pre-Depends`, apk `D:`; the first installed
//! alternative, virtual names through `Provides`), transitively: the
//! library a kept package loads only on a path no scenario took (Python's
//! `_sqlite3` needs libsqlite3-0).
//!
//! System folders (never an app tree): `/usr` (but `/usr/src/<x>`), `/lib*`,
//! `/bin`, `/sbin`, `/etc`, `/var`, `/proc`, `/sys`, `/dev`, `/tmp`, `/run`,
//! `/boot`, `/mnt`, `/media`, and also `/root` and `/home`: users' home
//! folders hold package-manager caches (npm, pip, gem) far more often than
//! an app, so only what the evidence reached there is kept.
//!
//! Every unit carries its reason: the best-ranked named path that brought
//! it (first scenario, then strongest use), how it was used, the scenario,
//! and the program where the evidence has it; or the manifest that declares
//! it, or the package that depends on it. Whatever cannot be cut into
//! units (no package database, a corrupt one, a tree over the cap) falls
//! back to files, and [`UnitClosure::fallbacks`] says which and why.
//!
//! [`Granularity::File`] keeps the file closure alone (the cut before
//! units), verified only for the paths the scenarios reached; coverage is
//! computed all the same. Pure: the image index and the evidence in.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::app_tree::app_tree_of;
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

/// Scratch folders kept (empty, with their modes) whenever the image has
/// them, at unit granularity.
pub const SCRATCH_DIRS: &[&str] = &["/tmp", "/var/tmp"];

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

fn is_file(node: &Node) -> bool {
    !matches!(node, Node::Dir)
}

/// The tree entries at or under `root`.
fn subtree<'a>(tree: &'a Tree, root: &'a str) -> impl Iterator<Item = (&'a String, &'a Node)> + 'a {
    let prefix = format!("{root}/");
    tree.range(root.to_owned()..)
        .take_while(move |(p, _)| p.as_str() == root || p.starts_with(&prefix))
}

/// Record that `k` was reached by the named path of rank `i`, keeping the best.
fn keep_best<K: Ord>(m: &mut BTreeMap<K, usize>, k: K, i: usize) {
    let best = m.entry(k).or_insert(i);
    *best = (*best).min(i);
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

/// Where Node resolves a bare `require(name)` outside the app's own
/// `node_modules`: the global folders, Debian's among them.
const NODE_GLOBAL_DIRS: &[&str] = &[
    "/usr/local/lib/node_modules",
    "/usr/lib/node_modules",
    "/usr/share/nodejs",
    "/usr/lib/nodejs",
    "/usr/share/node_modules",
];

/// The names in a `package.json`'s `dependencies` and
/// `optionalDependencies`, or why it cannot be read.
fn declared_dependencies(bytes: &[u8]) -> Result<Vec<String>, String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for key in ["dependencies", "optionalDependencies"] {
        match v.get(key) {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(m)) => out.extend(m.keys().cloned()),
            Some(_) => return Err(format!("`{key}` is not an object")),
        }
    }
    Ok(out)
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

    // What each reached entry brings: its OS package, else its app tree
    // (language packages inside it included), else its language package,
    // else itself.
    let mut os_kept: BTreeMap<usize, UnitReason> = BTreeMap::new();
    let mut lang_trigger: BTreeMap<usize, usize> = BTreeMap::new();
    let mut tree_trigger: BTreeMap<String, usize> = BTreeMap::new();
    let mut lone = Vec::new();
    let mut os_trigger: BTreeMap<usize, usize> = BTreeMap::new();
    for (entry, &i) in &origin {
        let os = owner.get(entry).copied();
        let app = app_tree_of(entry).filter(|_| os.is_none());
        if let Some(root) = &app {
            // Coverage is counted at either granularity.
            keep_best(&mut tree_trigger, root.clone(), i);
        }
        if granularity == Granularity::File {
            lone.push(entry.clone());
            continue;
        }
        match (os, app, lang.owner_of(entry)) {
            (Some(p), _, _) => keep_best(&mut os_trigger, p, i),
            (None, Some(_), _) => {}
            (None, None, Some(l)) => keep_best(&mut lang_trigger, l, i),
            (None, None, None) => lone.push(entry.clone()),
        }
    }
    for (p, i) in os_trigger {
        os_kept.insert(p, reason_of(i));
    }

    if granularity == Granularity::Unit {
        // The scratch folders every base has: an app writes there on paths
        // no scenario took (sqlite's database under /tmp).
        for dir in SCRATCH_DIRS {
            if tree.get(*dir) == Some(&Node::Dir) {
                closure.insert(tree, dir);
            }
        }
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
    }

    // App trees: whole but for the OS packages inside them; coverage counts
    // the app's own files (language packages inside excluded).
    let mut read = 0usize;
    let mut app_files = 0usize;
    let mut never_read = Vec::new();
    let mut manifests = Vec::new();
    for (root, &i) in &tree_trigger {
        let mut paths = BTreeSet::new();
        let (mut files, mut bytes) = (0usize, 0u64);
        for (p, node) in subtree(tree, root) {
            if owner.contains_key(p) {
                continue;
            }
            if is_file(node) {
                files += 1;
                bytes += index.sizes.get(p).copied().unwrap_or(0);
                if matches!(node, Node::File | Node::Hardlink(_)) && lang.owner_of(p).is_none() {
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
                    "the tree holds {files} files, {bytes} bytes: over the cap of {} files, {} bytes; only the files the scenarios reached (and the language packages they are in) are kept",
                    limits.max_tree_files, limits.max_tree_bytes
                ),
            });
            for (p, &j) in origin.range(format!("{root}/")..) {
                if !p.starts_with(&format!("{root}/")) {
                    break;
                }
                if owner.contains_key(p) {
                    continue;
                }
                match lang.owner_of(p) {
                    Some(l) => keep_best(&mut lang_trigger, l, j),
                    None => lone.push(p.clone()),
                }
            }
            continue;
        }
        let manifest = format!("{root}/package.json");
        if let Some(bytes) = index.captured.files.get(&manifest) {
            manifests.push((manifest, bytes));
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

    if granularity == Granularity::Unit {
        // Declared, not yet required: a kept app's `package.json`
        // dependencies that resolve outside its tree (Debian's node
        // packages) bring the package that holds them.
        let mut lang_declared: BTreeMap<usize, UnitReason> = BTreeMap::new();
        let arch_dirs: Vec<String> = tree
            .range("/usr/lib/".to_owned()..)
            .take_while(|(p, _)| p.starts_with("/usr/lib/"))
            .filter(|(p, n)| {
                **n == Node::Dir && p.ends_with("/nodejs") && p.matches('/').count() == 4
            })
            .map(|(p, _)| p.clone())
            .collect();
        for (manifest, bytes) in manifests {
            let names = match declared_dependencies(bytes) {
                Ok(n) => n,
                Err(why) => {
                    out.fallbacks.push(Fallback {
                        scope: manifest.clone(),
                        reason: format!(
                            "{manifest}: {why}; its dependencies are kept only where reached"
                        ),
                    });
                    continue;
                }
            };
            let why = UnitReason {
                path: manifest.clone(),
                usage: PathUse::Declared,
                scenario: None,
                program: None,
            };
            for name in names.iter().filter(|n| !n.is_empty() && !n.contains("..")) {
                let found = NODE_GLOBAL_DIRS
                    .iter()
                    .map(|d| (*d).to_owned())
                    .chain(arch_dirs.iter().cloned())
                    .filter_map(|d| resolve_parents(tree, &format!("{d}/{name}/package.json")))
                    .find(|p| tree.get(p) == Some(&Node::File));
                let Some(found) = found else { continue };
                if let Some(&p) = owner.get(&found) {
                    os_kept.entry(p).or_insert_with(|| why.clone());
                } else if let Some(l) = lang.owner_of(&found) {
                    lang_declared.entry(l).or_insert_with(|| why.clone());
                }
            }
        }

        // What a kept OS package depends on (`Depends`, `Pre-Depends`, apk
        // `D:`): a library it loads only on the path no scenario took
        // (`_sqlite3` → libsqlite3-0). The first installed alternative
        // serves; virtual names through `Provides`.
        let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, p) in dbs.packages.iter().enumerate() {
            by_name.entry(p.name.as_str()).or_insert(i);
        }
        for (i, p) in dbs.packages.iter().enumerate() {
            for v in &p.provides {
                by_name.entry(v.as_str()).or_insert(i);
            }
        }
        let mut queue: Vec<usize> = os_kept.keys().copied().collect();
        while let Some(p) = queue.pop() {
            let parent = &dbs.packages[p];
            for group in &parent.depends {
                let Some(&dep) = group.iter().find_map(|n| by_name.get(n.as_str())) else {
                    continue;
                };
                if let std::collections::btree_map::Entry::Vacant(v) = os_kept.entry(dep) {
                    v.insert(UnitReason {
                        path: parent.name.clone(),
                        usage: PathUse::DependedOn,
                        scenario: None,
                        program: None,
                    });
                    queue.push(dep);
                }
            }
        }

        for (p, why) in os_kept {
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
                reason: why,
                files: paths.len(),
                bytes: paths.iter().filter_map(|p| index.sizes.get(p)).sum(),
                paths,
            });
        }
        let lang_kept = lang_trigger
            .into_iter()
            .map(|(l, i)| (l, reason_of(i)))
            .chain(lang_declared);
        let mut seen = BTreeSet::new();
        for (l, why) in lang_kept {
            if !seen.insert(l) {
                continue;
            }
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
                reason: why,
                files: files.len(),
                bytes: files.iter().filter_map(|p| index.sizes.get(*p)).sum(),
                paths,
            });
        }
        out.added
            .packages
            .sort_by(|a, b| (!a.kind.is_os(), &a.name).cmp(&(!b.kind.is_os(), &b.name)));
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
    /// `/lib/...`, the tree holds `/usr/lib/...`); Debian's node-sqlite3
    /// (depends on libsqlite3-0) that the app declares but no scenario
    /// required; a Node app in `/app` with its own `node_modules`; a Python
    /// distribution in a global `site-packages`.
    fn image() -> ImageIndex {
        let mut ix = ImageIndex::default();
        let t = &mut ix.tree;
        for d in [
            "/usr",
            "/usr/lib",
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib/x86_64-linux-gnu/nodejs",
            "/usr/lib/x86_64-linux-gnu/nodejs/sqlite3",
            "/usr/share",
            "/usr/share/doc",
            "/usr/share/doc/zlib1g",
            "/usr/share/zoneinfo",
            "/usr/share/zoneinfo/Etc",
            "/usr/share/zoneinfo/Europe",
            "/usr/bin",
            "/usr/local",
            "/usr/local/lib",
            "/usr/local/lib/python3.11",
            "/usr/local/lib/python3.11/site-packages",
            "/usr/local/lib/python3.11/site-packages/flask",
            "/usr/local/lib/python3.11/site-packages/flask-3.0.0.dist-info",
            "/etc",
            "/tmp",
            "/app",
            "/app/lib",
            "/app/data",
            "/app/node_modules",
            "/app/node_modules/express",
            "/app/node_modules/express/lib",
            "/app/node_modules/lazy",
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
            ("/usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6", 1_500_000),
            ("/usr/lib/x86_64-linux-gnu/nodejs/sqlite3/package.json", 90),
            ("/usr/lib/x86_64-linux-gnu/nodejs/sqlite3/sqlite3.js", 900),
            ("/usr/share/doc/zlib1g/copyright", 1_000),
            ("/usr/share/zoneinfo/Etc/UTC", 114),
            ("/usr/share/zoneinfo/Europe/Berlin", 705),
            ("/usr/bin/node", 80_000_000),
            ("/usr/lib/x86_64-linux-gnu/libunowned.so", 10),
            (
                "/usr/local/lib/python3.11/site-packages/flask/__init__.py",
                50,
            ),
            ("/usr/local/lib/python3.11/site-packages/flask/cli.py", 70),
            ("/app/server.js", 500),
            ("/app/lib/report.js", 300),
            ("/app/node_modules/express/package.json", 100),
            ("/app/node_modules/express/index.js", 200),
            ("/app/node_modules/express/lib/router.js", 400),
            ("/app/node_modules/lazy/package.json", 100),
            ("/app/node_modules/lazy/index.js", 100),
        ] {
            t.insert(f.into(), Node::File);
            ix.sizes.insert(f.into(), size);
        }
        let status = "Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.2.13.dfsg-1\nDepends: libc6 (>= 2.14)\n\n\
Package: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a-0+deb12u1\nDepends: debconf (>= 0.5) | debconf-2.0\n\n\
Package: node-sqlite3\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.1.6+ds1-1\nDepends: libsqlite3-0 (>= 3.7.15), nodejs:any\n\n\
Package: libsqlite3-0\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.40.1-2\nProvides: sqlite-virtual\n\n\
Package: unrelated\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n";
        let captured = [
            (DPKG_STATUS.to_owned(), status.to_owned()),
            (
                "/var/lib/dpkg/info/zlib1g:amd64.list".into(),
                "/.\n/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libz.so.1.2.13\n/usr/share/doc/zlib1g/copyright\n/lib/x86_64-linux-gnu/libz.so.1\n".into(),
            ),
            (
                "/var/lib/dpkg/info/tzdata.list".into(),
                "/usr/share/zoneinfo\n/usr/share/zoneinfo/Etc/UTC\n/usr/share/zoneinfo/Europe/Berlin\n".into(),
            ),
            (
                "/var/lib/dpkg/info/node-sqlite3:amd64.list".into(),
                "/usr/lib/x86_64-linux-gnu/nodejs/sqlite3\n/usr/lib/x86_64-linux-gnu/nodejs/sqlite3/package.json\n/usr/lib/x86_64-linux-gnu/nodejs/sqlite3/sqlite3.js\n".into(),
            ),
            (
                "/var/lib/dpkg/info/libsqlite3-0:amd64.list".into(),
                "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6\n".into(),
            ),
            ("/var/lib/dpkg/info/unrelated.list".into(), "/usr/lib/x86_64-linux-gnu/libunowned.so\n".into()),
            (
                "/app/package.json".into(),
                r#"{"name":"svc","dependencies":{"express":"^4","sqlite3":"^5","absent":"1"}}"#.into(),
            ),
            (
                "/usr/local/lib/python3.11/site-packages/flask-3.0.0.dist-info/RECORD".into(),
                "flask/__init__.py,,\nflask/cli.py,,\n".into(),
            ),
        ];
        for (p, text) in captured {
            t.insert(p.clone(), Node::File);
            ix.sizes.insert(p.clone(), text.len() as u64);
            ix.captured.files.insert(p, text.into_bytes());
        }
        ix
    }

    /// The evidence of one `startup` scenario: node runs, maps zlib by its
    /// soname link, reads the app's entry file, one express file, one flask
    /// file, and the local time (a link into the zone data).
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
        e.add("/app/server.js", at(PathUse::Read));
        e.add("/app/package.json", at(PathUse::Read));
        e.add("/app/node_modules/express/index.js", at(PathUse::Read));
        e.add(
            "/usr/local/lib/python3.11/site-packages/flask/__init__.py",
            at(PathUse::Read),
        );
        e.add("/etc/localtime", at(PathUse::Read));
        e.written.insert("/app/data/notes.db".into());
        e
    }

    fn cut(ix: &ImageIndex, g: Granularity) -> UnitClosure {
        unit_closure(ix, &evidence(), g, &UnitLimits::default())
    }

    fn kept<'a>(u: &'a UnitClosure, name: &str) -> Option<&'a KeptPackage> {
        u.added.packages.iter().find(|p| p.name == name)
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
            // The app's tree whole: a lazily required file, the data
            // folder, a module in its node_modules nothing required yet.
            "/app/lib/report.js",
            "/app/data",
            "/app/node_modules/express/lib/router.js",
            "/app/node_modules/lazy/index.js",
            // Declared by /app/package.json, held by Debian's node-sqlite3,
            // which depends on libsqlite3-0.
            "/usr/lib/x86_64-linux-gnu/nodejs/sqlite3/sqlite3.js",
            "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6",
            // A global Python distribution whole.
            "/usr/local/lib/python3.11/site-packages/flask/cli.py",
        ] {
            assert!(keep.contains(p), "{p} not kept");
        }
        assert!(
            !keep.contains("/usr/share/doc/zlib1g/copyright"),
            "docs are never kept"
        );
        assert!(
            !keep.contains("/usr/lib/x86_64-linux-gnu/libunowned.so"),
            "a package nothing reached, declared or depends on"
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
                ("libsqlite3-0", "3.40.1-2"),
                ("node-sqlite3", "5.1.6+ds1-1"),
                ("tzdata", "2024a-0+deb12u1"),
                ("zlib1g", "1:1.2.13.dfsg-1"),
                ("flask", "3.0.0"),
            ]
        );
        let zlib = kept(&u, "zlib1g").unwrap();
        assert_eq!(
            zlib.comment(),
            "zlib1g 1:1.2.13.dfsg-1: /lib/x86_64-linux-gnu/libz.so.1 mapped in startup"
        );
        assert_eq!((zlib.files, zlib.bytes), (2, 120_000));
        assert_eq!(kept(&u, "tzdata").unwrap().reason.path, "/etc/localtime");
        assert_eq!(
            kept(&u, "node-sqlite3").unwrap().comment(),
            "node-sqlite3 5.1.6+ds1-1: /app/package.json declares it"
        );
        assert_eq!(
            kept(&u, "libsqlite3-0").unwrap().comment(),
            "libsqlite3-0 3.40.1-2: node-sqlite3 depends on it"
        );
        assert_eq!(kept(&u, "flask").unwrap().kind, PackageKind::Python);

        assert_eq!(u.added.trees.len(), 1);
        let app = &u.added.trees[0];
        assert_eq!((app.path.as_str(), app.files), ("/app", 8));
        assert_eq!(
            app.reason.to_string(),
            "/app/node_modules/express/index.js read in startup"
        );
        assert!(!u.added.files.contains(&"/app/lib/report.js".to_owned()));
        assert!(
            u.added.files.contains(&"/lib".to_owned()),
            "the link on the way"
        );

        // The app's own files, its node_modules aside.
        assert_eq!(
            u.coverage,
            Coverage {
                app_files: 3,
                app_files_read: 2,
                never_read: vec!["/app/lib/report.js".into()],
            }
        );
    }

    #[test]
    fn controls_for_declared_and_depended_on_packages() {
        // No `Depends:` on node-sqlite3: libsqlite3-0 stays out.
        let mut ix = image();
        let status = String::from_utf8(ix.captured.files[DPKG_STATUS].clone()).unwrap();
        ix.captured.files.insert(
            DPKG_STATUS.into(),
            status
                .replace("Depends: libsqlite3-0 (>= 3.7.15), nodejs:any\n", "")
                .into_bytes(),
        );
        let u = cut(&ix, Granularity::Unit);
        assert!(kept(&u, "node-sqlite3").is_some());
        assert!(kept(&u, "libsqlite3-0").is_none());
        // A manifest that is not JSON: reported, and nothing is declared.
        let mut ix = image();
        ix.captured
            .files
            .insert("/app/package.json".into(), b"{\"dependencies\": [".to_vec());
        let u = cut(&ix, Granularity::Unit);
        assert!(kept(&u, "node-sqlite3").is_none());
        assert!(
            u.fallbacks.iter().any(|f| f.scope == "/app/package.json"),
            "{:?}",
            u.fallbacks
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
            "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6",
            "/usr/local/lib/python3.11/site-packages/flask/cli.py",
        ] {
            assert!(!keep.contains(p), "{p} kept at file granularity");
        }
        assert!(keep.contains("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13"));
        assert!(keep.contains("/usr/share/zoneinfo/Etc/UTC"));
        assert!(!keep.contains("/tmp"), "nothing was written there");
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
