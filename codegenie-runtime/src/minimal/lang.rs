//! Language packages in the image's tree: the folders a runtime loads as a
//! whole, kept whole when any of their files is named (docs/architecture.md,
//! "Minimal image", units).
//!
//! - npm: `node_modules/<name>` or `node_modules/@scope/<name>` holding a
//!   `package.json` (its own nested `node_modules` included; each nested
//!   package is a unit of its own too, and a path belongs to the innermost);
//! - Python: a `<name>-<version>.dist-info/RECORD`: the files it lists
//!   (relative to the site folder that holds the `.dist-info`), the
//!   `.dist-info` folder, and each top-level package folder it lists an
//!   `__init__.py` for (a namespace folder shared by several distributions
//!   is not one package's: only its listed files go);
//! - Ruby: `<prefix>/gems/<name>-<version>/` with its
//!   `<prefix>/specifications/<name>-<version>.gemspec` (and its built
//!   extensions under `<prefix>/extensions/*/*/<name>-<version>/`).
//!
//! A `.jar` is one file: it needs nothing here. Pure: the tree and the
//! captured `RECORD` contents in, units and typed errors out.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::closure::{normalize, Node, Tree};
use super::packages::CapturedFiles;

/// Whether the tar index must capture the contents of `path` (a Python
/// distribution's `RECORD`).
pub fn is_captured_metadata(path: &str) -> bool {
    path.strip_suffix("/RECORD")
        .and_then(|d| d.rsplit('/').next())
        .is_some_and(|d| d.ends_with(".dist-info") && d.len() > ".dist-info".len())
}

/// Which ecosystem a language package belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LanguageKind {
    /// A `node_modules` package.
    Npm,
    /// A Python distribution (`*.dist-info/RECORD`).
    Python,
    /// A Ruby gem.
    Gem,
}

/// One language package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguagePackage {
    /// Its ecosystem.
    pub kind: LanguageKind,
    /// Its name (`express`, `@types/node`, `Flask`, `sinatra`).
    pub name: String,
    /// Its version, where the folder names it (dist-info, gem folders).
    pub version: Option<String>,
    /// Folders kept whole (absolute tree paths).
    pub roots: BTreeSet<String>,
    /// Files kept besides those folders (a `RECORD`'s entries, a gemspec).
    pub files: BTreeSet<String>,
}

/// A language package's metadata that cannot be used: its files fall back
/// to file granularity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LanguagePackageError {
    /// A `RECORD` line that is not CSV.
    #[error("{file}:{line}: {reason}")]
    Corrupt {
        /// The metadata file.
        file: String,
        /// Its line (1-based).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A `RECORD` entry that leaves the image's root (`..`).
    #[error("{file}:{line}: {path:?} leaves the image's root")]
    OutsideImage {
        /// The metadata file.
        file: String,
        /// Its line (1-based).
        line: usize,
        /// The entry as listed.
        path: String,
    },
    /// A `RECORD` over the capture cap, not read.
    #[error("{file}: {bytes} bytes, over the {cap}-byte cap; not read")]
    TooLarge {
        /// The metadata file.
        file: String,
        /// Its size.
        bytes: u64,
        /// The cap.
        cap: u64,
    },
}

/// Every language package of a tree, and who owns which path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LanguagePackages {
    /// The packages.
    pub packages: Vec<LanguagePackage>,
    /// Metadata that could not be used (those packages are not in `packages`).
    pub errors: Vec<LanguagePackageError>,
    roots: BTreeMap<String, usize>,
    files: BTreeMap<String, usize>,
}

impl LanguagePackages {
    /// The package that owns `path` (a tree path): a file it lists, else the
    /// innermost of its folders that holds `path`.
    pub fn owner_of(&self, path: &str) -> Option<usize> {
        if let Some(&i) = self.files.get(path) {
            return Some(i);
        }
        let mut cur = path;
        loop {
            if let Some(&i) = self.roots.get(cur) {
                return Some(i);
            }
            match cur.rsplit_once('/') {
                Some((parent, _)) if !parent.is_empty() => cur = parent,
                _ => return None,
            }
        }
    }

    /// Whether `path` is one of the package folders (kept whole as a unit).
    pub fn is_root(&self, path: &str) -> bool {
        self.roots.contains_key(path)
    }

    fn push(&mut self, p: LanguagePackage) {
        let i = self.packages.len();
        for r in &p.roots {
            // An inner package's folder stays its own (the innermost owns).
            self.roots.entry(r.clone()).or_insert(i);
        }
        for f in &p.files {
            self.files.entry(f.clone()).or_insert(i);
        }
        self.packages.push(p);
    }
}

/// Every language package in `tree` (see the module docs).
pub fn language_packages(tree: &Tree, captured: &CapturedFiles) -> LanguagePackages {
    let mut out = LanguagePackages::default();
    for (path, node) in tree {
        if *node != Node::File {
            continue;
        }
        if let Some(dir) = path.strip_suffix("/package.json") {
            if let Some(name) = npm_name(dir) {
                if tree.get(dir) == Some(&Node::Dir) {
                    out.push(LanguagePackage {
                        kind: LanguageKind::Npm,
                        name,
                        version: None,
                        roots: [dir.to_owned()].into(),
                        files: BTreeSet::new(),
                    });
                }
            }
        } else if let Some(gem) = gem_of(tree, path) {
            out.push(gem);
        }
    }
    for (file, &(bytes, cap)) in &captured.too_large {
        if is_captured_metadata(file) {
            out.errors.push(LanguagePackageError::TooLarge {
                file: file.clone(),
                bytes,
                cap,
            });
        }
    }
    for (file, bytes) in &captured.files {
        if !is_captured_metadata(file) {
            continue;
        }
        match python_dist(tree, file, bytes) {
            Ok(p) => out.push(p),
            Err(e) => out.errors.push(e),
        }
    }
    out
}

/// `dir`'s package name when it is `.../node_modules/<name>` or
/// `.../node_modules/@scope/<name>`.
fn npm_name(dir: &str) -> Option<String> {
    let (parent, name) = dir.rsplit_once('/')?;
    if name.is_empty() || name.starts_with('.') || name.starts_with('@') {
        return None;
    }
    if parent.ends_with("/node_modules") {
        return Some(name.to_owned());
    }
    let (grand, scope) = parent.rsplit_once('/')?;
    (scope.len() > 1 && scope.starts_with('@') && grand.ends_with("/node_modules"))
        .then(|| format!("{scope}/{name}"))
}

/// `name-version` split where the version starts (the first `-` followed by
/// a digit): `rack-protection-3.0.5` → (`rack-protection`, `3.0.5`).
fn split_name_version(nv: &str) -> Option<(&str, &str)> {
    let mut from = 0;
    while let Some(i) = nv[from..].find('-') {
        let at = from + i;
        if at > 0 && nv[at + 1..].starts_with(|c: char| c.is_ascii_digit()) {
            return Some((&nv[..at], &nv[at + 1..]));
        }
        from = at + 1;
    }
    None
}

/// The gem whose specification `path` is (`<prefix>/specifications/<nv>.gemspec`
/// with a `<prefix>/gems/<nv>` folder).
fn gem_of(tree: &Tree, path: &str) -> Option<LanguagePackage> {
    let (specs, file) = path.rsplit_once('/')?;
    let nv = file.strip_suffix(".gemspec")?;
    let prefix = specs.strip_suffix("/specifications")?;
    let dir = format!("{prefix}/gems/{nv}");
    if tree.get(&dir) != Some(&Node::Dir) {
        return None;
    }
    let (name, version) = split_name_version(nv)?;
    let mut roots: BTreeSet<String> = [dir].into();
    // Built native extensions: `<prefix>/extensions/<platform>/<abi>/<nv>`.
    let ext = format!("{prefix}/extensions/");
    for (p, node) in tree.range(ext.clone()..) {
        let Some(rest) = p.strip_prefix(&ext) else {
            break;
        };
        if *node == Node::Dir && rest.split('/').count() == 3 && rest.ends_with(&format!("/{nv}")) {
            roots.insert(p.clone());
        }
    }
    Some(LanguagePackage {
        kind: LanguageKind::Gem,
        name: name.to_owned(),
        version: Some(version.to_owned()),
        roots,
        files: [path.to_owned()].into(),
    })
}

/// The first CSV field of `line` (RFC 4180 quoting), or why it is not one.
fn first_csv_field(line: &str) -> Result<String, &'static str> {
    let Some(rest) = line.strip_prefix('"') else {
        return Ok(line.split(',').next().unwrap_or_default().to_owned());
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            if chars.peek() == Some(&'"') {
                chars.next();
                out.push('"');
                continue;
            }
            return match chars.next() {
                None | Some(',') => Ok(out),
                Some(_) => Err("text after a closing quote"),
            };
        }
        out.push(c);
    }
    Err("an unterminated quote")
}

/// The distribution whose `RECORD` is `file` with contents `bytes`.
fn python_dist(
    tree: &Tree,
    file: &str,
    bytes: &[u8],
) -> Result<LanguagePackage, LanguagePackageError> {
    let dist_info = file.strip_suffix("/RECORD").unwrap_or(file);
    let (site, dir) = dist_info.rsplit_once('/').unwrap_or(("", dist_info));
    let stem = dir.strip_suffix(".dist-info").unwrap_or(dir);
    let (name, version) = match stem.split_once('-') {
        Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
        None => (stem.to_owned(), None),
    };
    let mut text = String::with_capacity(bytes.len());
    crate::strace::render_into(bytes, &mut text);
    let mut roots: BTreeSet<String> = [dist_info.to_owned()].into();
    let mut files = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let rel = first_csv_field(line).map_err(|reason| LanguagePackageError::Corrupt {
            file: file.to_owned(),
            line: i + 1,
            reason: reason.to_owned(),
        })?;
        if rel.is_empty() {
            return Err(LanguagePackageError::Corrupt {
                file: file.to_owned(),
                line: i + 1,
                reason: "an empty path".into(),
            });
        }
        let joined = if rel.starts_with('/') {
            rel.clone()
        } else {
            format!("{site}/{rel}")
        };
        if leaves_root(&joined) {
            return Err(LanguagePackageError::OutsideImage {
                file: file.to_owned(),
                line: i + 1,
                path: rel,
            });
        }
        let abs = normalize(&joined);
        // `flask/__init__.py`: the folder `flask` is the package, whole.
        if let Some((top, "__init__.py")) = rel.split_once('/') {
            let folder = format!("{site}/{top}");
            if top != ".." && top != "." && tree.get(&folder) == Some(&Node::Dir) {
                roots.insert(folder);
            }
        }
        files.insert(abs);
    }
    Ok(LanguagePackage {
        kind: LanguageKind::Python,
        name,
        version,
        roots,
        files,
    })
}

/// Whether a `..` in `path` (absolute) climbs above `/`.
fn leaves_root(path: &str) -> bool {
    let mut depth = 0usize;
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." if depth == 0 => return true,
            ".." => depth -= 1,
            _ => depth += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tree(dirs: &[&str], files: &[&str]) -> Tree {
        let mut t = Tree::new();
        for d in dirs {
            t.insert((*d).to_owned(), Node::Dir);
        }
        for f in files {
            t.insert((*f).to_owned(), Node::File);
        }
        t
    }

    const SITE: &str = "/usr/local/lib/python3.11/site-packages";

    fn python_tree() -> Tree {
        let s = |p: &str| format!("{SITE}/{p}");
        let dirs = [
            s("flask"),
            s("flask/json"),
            s("flask-3.0.0.dist-info"),
            s("google"),
        ];
        let files = [
            s("flask/__init__.py"),
            s("flask/json/__init__.py"),
            s("flask/cli.py"),
            s("flask-3.0.0.dist-info/RECORD"),
            s("google/shared.py"),
            "/usr/local/bin/flask".to_owned(),
        ];
        let d: Vec<&str> = dirs.iter().map(String::as_str).collect();
        let f: Vec<&str> = files.iter().map(String::as_str).collect();
        tree(&d, &f)
    }

    fn record(text: &str) -> CapturedFiles {
        let mut c = CapturedFiles::default();
        c.files.insert(
            format!("{SITE}/flask-3.0.0.dist-info/RECORD"),
            text.as_bytes().to_vec(),
        );
        c
    }

    #[test]
    fn npm_folders_scoped_and_nested() {
        let t = tree(
            &[
                "/app/node_modules/express",
                "/app/node_modules/express/node_modules/debug",
                "/app/node_modules/@types/node",
                "/app/node_modules/.bin",
            ],
            &[
                "/app/node_modules/express/package.json",
                "/app/node_modules/express/index.js",
                "/app/node_modules/express/node_modules/debug/package.json",
                "/app/node_modules/express/node_modules/debug/src/index.js",
                "/app/node_modules/@types/node/package.json",
                "/app/node_modules/.bin/package.json",
                "/app/package.json",
            ],
        );
        let l = language_packages(&t, &CapturedFiles::default());
        let names: BTreeSet<&str> = l.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["@types/node", "debug", "express"].into());
        let name_of = |p: &str| l.owner_of(p).map(|i| l.packages[i].name.as_str());
        assert_eq!(
            name_of("/app/node_modules/express/index.js"),
            Some("express")
        );
        // The innermost package owns a nested one's files.
        assert_eq!(
            name_of("/app/node_modules/express/node_modules/debug/src/index.js"),
            Some("debug")
        );
        assert_eq!(name_of("/app/server.js"), None);
        assert_eq!(name_of("/app/package.json"), None);
    }

    #[test]
    fn python_record_and_its_package_folder() {
        let l = language_packages(
            &python_tree(),
            &record("flask/__init__.py,sha256=x,10\nflask/json/__init__.py,,\n\"google/shared.py\",,\n../../../bin/flask,,\nflask-3.0.0.dist-info/RECORD,,\n"),
        );
        assert_eq!(l.errors, []);
        let p = &l.packages[0];
        assert_eq!(
            (p.name.as_str(), p.version.as_deref()),
            ("flask", Some("3.0.0"))
        );
        // The package folder is whole (its never-listed cli.py too); the
        // shared namespace folder is not, only the file listed there.
        assert!(p.roots.contains(&format!("{SITE}/flask")));
        assert!(!p.roots.contains(&format!("{SITE}/google")));
        assert!(p.files.contains("/usr/local/bin/flask"));
        assert_eq!(l.owner_of(&format!("{SITE}/flask/cli.py")), Some(0));
        assert_eq!(l.owner_of(&format!("{SITE}/google/shared.py")), Some(0));
    }

    #[test]
    fn a_bad_record_is_an_error_with_its_line() {
        for (text, want) in [
            ("flask/__init__.py,,\n\"flask/x.py,,\n", "unterminated"),
            (
                "flask/__init__.py,,\n../../../../../../../etc/shadow,,\n",
                "leaves",
            ),
        ] {
            let l = language_packages(&python_tree(), &record(text));
            assert!(l.packages.is_empty());
            let e = l.errors[0].to_string();
            assert!(e.contains("RECORD:2: ") && e.contains(want), "{e}");
        }
    }

    #[test]
    fn gems_with_their_spec_and_extensions() {
        let p = "/usr/local/bundle";
        let t = tree(
            &[
                &format!("{p}/gems/rack-protection-3.0.5"),
                &format!("{p}/extensions/x86_64-linux/3.1.0/rack-protection-3.0.5"),
            ],
            &[
                &format!("{p}/gems/rack-protection-3.0.5/lib/rack/protection.rb"),
                &format!("{p}/specifications/rack-protection-3.0.5.gemspec"),
                &format!("{p}/specifications/orphan-1.0.gemspec"),
            ],
        );
        let l = language_packages(&t, &CapturedFiles::default());
        assert_eq!(l.packages.len(), 1);
        let g = &l.packages[0];
        assert_eq!(
            (g.name.as_str(), g.version.as_deref()),
            ("rack-protection", Some("3.0.5"))
        );
        assert_eq!(g.roots.len(), 2);
        assert_eq!(
            l.owner_of(&format!(
                "{p}/gems/rack-protection-3.0.5/lib/rack/protection.rb"
            )),
            Some(0)
        );
        assert_eq!(
            l.owner_of(&format!("{p}/specifications/rack-protection-3.0.5.gemspec")),
            Some(0)
        );
    }

    proptest! {
        #[test]
        fn record_parsing_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut c = CapturedFiles::default();
            c.files.insert(format!("{SITE}/flask-3.0.0.dist-info/RECORD"), bytes);
            let l = language_packages(&python_tree(), &c);
            prop_assert_eq!(l.packages.len() + l.errors.len(), 1);
            for p in &l.packages {
                for f in &p.files {
                    prop_assert!(f.starts_with('/') && !f.split('/').any(|c| c == ".."));
                }
            }
        }
    }
}
