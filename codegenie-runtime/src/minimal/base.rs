//! The base a minimal image is built on (`--base IMAGE`, default `scratch`;
//! DESIGN §8, "Relative to a base"): its filesystem indexed with file
//! digests, its package database, its config and its users; and what of
//! the kept entries it already holds, so the Dockerfile adds only the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, ImageConfig};

use super::closure::{resolve_parents, Node};
use super::image_fs::{index_stream_hashed, ImageIndex};
use super::packages::{read_databases, PackageManager};
use super::units::{Added, PackageKind};
use super::MinimizeError;

/// The reference that means an empty base.
pub const SCRATCH: &str = "scratch";

/// A base image, read.
#[derive(Debug, Clone, Default)]
pub struct Base {
    /// As given (`gcr.io/distroless/cc-debian12:nonroot`, `scratch`).
    pub reference: String,
    /// Its image id (`None` for `scratch`).
    pub id: Option<String>,
    /// Its config.
    pub config: ImageConfig,
    /// Its filesystem (empty for `scratch`), with file digests.
    pub index: ImageIndex,
    /// Its dpkg or apk packages: name → version.
    pub packages: BTreeMap<String, String>,
}

/// What the report says of the base.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseRef {
    /// The reference given.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Its image id (empty for `scratch`).
    pub id: String,
}

/// Files the evidence names that live in these folders at run time only:
/// never taken from the original, never recursed into.
const RUNTIME_DIRS: &[&str] = &[
    "/", "/proc", "/sys", "/dev", "/etc", "/run", "/tmp", "/var/tmp",
];

impl Base {
    /// The empty base.
    pub fn scratch() -> Base {
        Base {
            reference: SCRATCH.to_owned(),
            ..Base::default()
        }
    }

    /// Read `reference` from `engine` (its export streamed into the index,
    /// nothing written on the host). Nothing is pulled: a base the engine
    /// lacks is [`MinimizeError::NoBase`].
    pub fn load(engine: &Engine, reference: &str) -> Result<Base, MinimizeError> {
        let id = Base::resolve(engine, reference)?;
        Base::load_resolved(engine, reference, id)
    }

    /// The id of `reference` in `engine` (`None` for `scratch`), or
    /// [`MinimizeError::NoBase`]: one engine call, so a missing base fails
    /// before any export starts.
    pub fn resolve(engine: &Engine, reference: &str) -> Result<Option<String>, MinimizeError> {
        if reference == SCRATCH {
            return Ok(None);
        }
        let id = engine
            .image_id(reference)?
            .ok_or_else(|| MinimizeError::NoBase {
                base: reference.to_owned(),
            })?;
        Ok(Some(id))
    }

    /// [`Base::load`] of a reference [`Base::resolve`] gave `id` for.
    pub fn load_resolved(
        engine: &Engine,
        reference: &str,
        id: Option<String>,
    ) -> Result<Base, MinimizeError> {
        let Some(id) = id else {
            return Ok(Base::scratch());
        };
        // Streamed: nothing of the base is written on the host.
        let index = engine.export_streamed(&id, |r| {
            index_stream_hashed(r, Path::new("docker export (base)"))
        })??;
        let config = engine.image_config(&id)?;
        let packages = read_databases(&index.captured)
            .packages
            .into_iter()
            .filter(|p| p.manager == PackageManager::Dpkg || p.manager == PackageManager::Apk)
            .map(|p| (p.name, p.version))
            .collect();
        Ok(Base {
            reference: reference.to_owned(),
            id: Some(id),
            config,
            index,
            packages,
        })
    }

    /// The report's view.
    pub fn reference(&self) -> BaseRef {
        BaseRef {
            reference: self.reference.clone(),
            id: self.id.clone().unwrap_or_default(),
        }
    }

    /// The user the minimal image runs as: the base's configured user when
    /// it is not root, else the base's `nonroot` account (distroless
    /// `:latest` images have one and run as root), else none (the
    /// original's user stays).
    pub fn nonroot_user(&self) -> Option<String> {
        let u = self.config.user.trim();
        if !u.is_empty() && !is_root(u) {
            return Some(u.to_owned());
        }
        self.passwd_entry("nonroot").map(|(uid, _)| uid.to_string())
    }

    /// The `(uid, gid)` of the first line of the base's `/etc/passwd` whose
    /// name is `user`, or whose uid is `user` when it is a number.
    /// (A number is always a uid, as the engine takes it.)
    fn passwd_entry(&self, user: &str) -> Option<(u64, u64)> {
        let numeric = user.parse::<u64>().ok();
        self.lines("/etc/passwd").into_iter().find_map(|f| {
            let (uid, gid) = (f.get(2)?.parse::<u64>().ok()?, f.get(3)?.parse().ok()?);
            let hit = match numeric {
                Some(n) => n == uid,
                None => f[0] == user,
            };
            hit.then_some((uid, gid))
        })
    }

    /// The gid of group `group` (a name, or a number taken as a gid) in the
    /// base's `/etc/group`.
    fn group_entry(&self, group: &str) -> Option<u64> {
        let numeric = group.parse::<u64>().ok();
        self.lines("/etc/group").into_iter().find_map(|f| {
            let gid = f.get(2)?.parse::<u64>().ok()?;
            let hit = match numeric {
                Some(n) => n == gid,
                None => f[0] == group,
            };
            hit.then_some(gid)
        })
    }

    /// The `:`-separated fields of each line of a captured account file.
    fn lines(&self, path: &str) -> Vec<Vec<String>> {
        let text = self
            .index
            .captured
            .files
            .get(path)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        text.lines()
            .map(|l| l.split(':').map(str::to_owned).collect())
            .collect()
    }

    /// The uid and gid a container of this base runs with as `user`
    /// (`name`, `uid`, `name:group`, `uid:gid`), resolved as the engine
    /// resolves `USER` (runc's `GetExecUser`): a name through the base's
    /// `/etc/passwd` (its gid there), a number as that uid (its passwd gid
    /// when listed, else group 0); a group through `/etc/group`, or as a
    /// number. A name or group the base does not list is
    /// [`MinimizeError::UnknownUser`]: the container would not start as it.
    pub fn account(&self, user: &str) -> Result<(u64, u64), MinimizeError> {
        let unknown = || MinimizeError::UnknownUser {
            base: self.reference.clone(),
            user: user.to_owned(),
        };
        let (name, group) = match user.split_once(':') {
            Some((n, g)) => (n, Some(g)),
            None => (user, None),
        };
        let (uid, passwd_gid) = match (self.passwd_entry(name), name.parse::<u64>()) {
            (Some(entry), _) => entry,
            (None, Ok(uid)) => (uid, 0),
            (None, Err(_)) => return Err(unknown()),
        };
        let gid = match group {
            None => passwd_gid,
            Some(g) => match (self.group_entry(g), g.parse::<u64>()) {
                (Some(gid), _) | (None, Ok(gid)) => gid,
                (None, Err(_)) => return Err(unknown()),
            },
        };
        Ok((uid, gid))
    }

    /// The Debian release the base is built from (`12`), from its
    /// `os-release`.
    pub fn debian_release(&self) -> Option<String> {
        debian_release(&self.index)
    }
}

/// Whether `user` is root (`""`, `root`, `0`, `0:0`).
pub fn is_root(user: &str) -> bool {
    matches!(user.split(':').next().unwrap_or(user), "" | "root" | "0")
}

/// The Debian release of an image (`12`), from its `os-release`.
pub fn debian_release(index: &ImageIndex) -> Option<String> {
    for f in ["/etc/os-release", "/usr/lib/os-release"] {
        let Some(bytes) = index.captured.files.get(f) else {
            continue;
        };
        let text = String::from_utf8_lossy(bytes);
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim_matches('"').to_owned())
        };
        if field("ID=").as_deref() == Some("debian") {
            return field("VERSION_ID=");
        }
    }
    None
}

/// The entries the Dockerfile adds on top of a base.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// Folders whose whole subtree (as the original holds it) is added.
    pub trees: BTreeSet<String>,
    /// Every other added entry.
    pub entries: BTreeSet<String>,
    /// Kept packages the base holds at the same version: `name version`.
    pub held_packages: Vec<String>,
    /// Kept non-folder entries the base holds (same bytes, same link).
    pub held_entries: usize,
    /// Links of the original where the base has a folder (`/lib` in a
    /// merged-/usr original on an unmerged base): not added, the base's
    /// folder stays.
    pub folder_in_base: BTreeSet<String>,
}

impl Delta {
    /// Whether the Dockerfile adds `path`: an added entry, or inside a
    /// tree added whole.
    pub fn adds(&self, path: &str) -> bool {
        if self.entries.contains(path) || self.trees.contains(path) {
            return true;
        }
        let mut p = path;
        while let Some((parent, _)) = p.rsplit_once('/') {
            if parent.is_empty() {
                break;
            }
            if self.trees.contains(parent) {
                return true;
            }
            p = parent;
        }
        false
    }

    /// The units of `added` (the original's, as the closure kept them)
    /// that the Dockerfile adds onto the base: not a package the base
    /// holds at the same version (listed in `held_packages` instead), and
    /// of the rest, each package and tree only when one of its paths is
    /// added, each lone file only when it is.
    pub fn added_units(&self, added: &Added) -> Added {
        let held: BTreeSet<&str> = self.held_packages.iter().map(String::as_str).collect();
        Added {
            packages: added
                .packages
                .iter()
                .filter(|p| {
                    let os = matches!(p.kind, PackageKind::Dpkg | PackageKind::Apk);
                    !(os && held.contains(format!("{} {}", p.name, p.version).as_str()))
                        && p.paths.iter().any(|q| self.adds(q))
                })
                .cloned()
                .collect(),
            trees: added
                .trees
                .iter()
                .filter(|t| self.adds(&t.path) || t.paths.iter().any(|q| self.adds(q)))
                .cloned()
                .collect(),
            files: added
                .files
                .iter()
                .filter(|f| self.adds(f))
                .cloned()
                .collect(),
        }
    }
}

/// Why a kept entry cannot go onto the base as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path} is a folder in the original and a symlink in the base ({target}): copying it would replace the base's link; pick a base with the same /usr layout")]
pub struct LinkConflict {
    /// The entry.
    pub path: String,
    /// The base's link target.
    pub target: String,
}

/// What of `keep` (entries of `original`, whose units are `added`) the
/// base lacks; `named` are the evidence's paths (a name through a link the
/// base replaces by a folder is added at that name too).
pub fn delta(
    original: &ImageIndex,
    keep: &BTreeSet<String>,
    added: &Added,
    named: &BTreeSet<String>,
    base: &Base,
) -> Result<Delta, LinkConflict> {
    let tree = &original.tree;
    let btree = &base.index.tree;
    let mut out = Delta::default();
    let mut held: BTreeSet<&String> = BTreeSet::new();
    for p in &added.packages {
        if matches!(p.kind, PackageKind::Dpkg | PackageKind::Apk)
            && base.packages.get(&p.name) == Some(&p.version)
        {
            out.held_packages.push(format!("{} {}", p.name, p.version));
            held.extend(&p.paths);
        }
    }
    let mut add: BTreeSet<String> = BTreeSet::new();
    for e in keep {
        if e == "/" {
            continue;
        }
        let Some(node) = tree.get(e) else { continue };
        let in_base = resolve_parents(btree, e);
        let bnode = in_base.as_ref().and_then(|p| btree.get(p));
        // A base link on the way to `e` where the original has a folder.
        if let Some(Node::Symlink(target)) = btree.get(e) {
            if *node == Node::Dir {
                return Err(LinkConflict {
                    path: e.clone(),
                    target: target.clone(),
                });
            }
        }
        let is_held = match node {
            Node::Dir => matches!(bnode, Some(Node::Dir)),
            Node::Symlink(t) => match btree.get(e) {
                Some(Node::Symlink(bt)) => bt == t,
                Some(Node::Dir) => {
                    out.folder_in_base.insert(e.clone());
                    true
                }
                _ => false,
            },
            Node::File | Node::Hardlink(_) => {
                held.contains(e)
                    || match (original.digests.get(e), in_base.as_ref()) {
                        (Some(d), Some(bp)) => base.index.digests.get(bp) == Some(d),
                        _ => false,
                    }
            }
        };
        if is_held {
            if *node != Node::Dir {
                out.held_entries += 1;
            }
        } else {
            add.insert(e.clone());
        }
    }
    // A name the app used through a link the base replaces by a folder:
    // the pick archives it at that name (tar reads through the link). Not
    // a shared library: the loader finds it in the next folder of its
    // search path (`/usr/lib/...`), and a second copy would double it.
    for n in named.iter().filter(|n| !is_shared_library(n)) {
        let through = out.folder_in_base.iter().any(|l| {
            n.strip_prefix(l.as_str())
                .is_some_and(|r| r.starts_with('/'))
        });
        if through {
            if let Some(real) = resolve_parents(tree, n) {
                if add.contains(&real) && matches!(tree.get(&real), Some(Node::File)) {
                    add.insert(n.clone());
                }
            }
        }
    }
    // Whole subtrees: a folder all of whose entries in the original are
    // added is archived recursively (the app's tree, a node_modules package).
    let mut trees: BTreeSet<String> = BTreeSet::new();
    for d in add.iter().filter(|p| tree.get(*p) == Some(&Node::Dir)) {
        if RUNTIME_DIRS.contains(&d.as_str()) || trees.iter().any(|t| under(d, t)) {
            continue;
        }
        let prefix = format!("{d}/");
        let whole = tree
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .all(|(p, _)| add.contains(p));
        if whole {
            trees.insert(d.clone());
        }
    }
    out.entries = add
        .into_iter()
        .filter(|p| !trees.contains(p) && !trees.iter().any(|t| under(p, t)))
        .collect();
    out.trees = trees;
    Ok(out)
}

/// Whether `p` names a shared library (`libz.so.1`, `ld-linux-x86-64.so.2`).
fn is_shared_library(p: &str) -> bool {
    let name = p.rsplit('/').next().unwrap_or(p);
    name.ends_with(".so") || name.contains(".so.")
}

/// Whether `p` is strictly below folder `dir`.
fn under(p: &str, dir: &str) -> bool {
    p.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::minimal::units::{KeptPackage, UnitReason};

    fn index(entries: &[(&str, Node, &[u8])]) -> ImageIndex {
        let mut ix = ImageIndex::default();
        for (p, n, body) in entries {
            ix.tree.insert(p.to_string(), n.clone());
            if *n == Node::File {
                ix.digests.insert(p.to_string(), blake3::hash(body));
            }
        }
        ix
    }

    #[test]
    fn the_base_holds_same_packages_same_bytes_and_folders() {
        use Node::*;
        let original = index(&[
            ("/app", Dir, b""),
            ("/app/server.js", File, b"js"),
            ("/app/lib", Dir, b""),
            ("/app/lib/a.js", File, b"a"),
            ("/lib", Symlink("usr/lib".into()), b""),
            ("/usr", Dir, b""),
            ("/usr/lib", Dir, b""),
            ("/usr/lib/libc.so.6", File, b"libc 2.36"),
            ("/usr/lib/libsqlite3.so.0", File, b"sqlite"),
            ("/usr/lib/app.conf", File, b"conf"),
            ("/etc", Dir, b""),
            ("/etc/ssl", Dir, b""),
            ("/etc/ssl/cert.pem", File, b"same"),
            ("/etc/other.conf", File, b"ours"),
        ]);
        let mut base = Base::scratch();
        base.reference = "cc".into();
        base.index = index(&[
            ("/lib", Dir, b""),
            ("/lib/libc.so.6", File, b"libc 2.36 (another build)"),
            ("/usr", Dir, b""),
            ("/usr/lib", Dir, b""),
            ("/etc", Dir, b""),
            ("/etc/ssl", Dir, b""),
            ("/etc/ssl/cert.pem", File, b"same"),
            ("/etc/other.conf", File, b"theirs"),
        ]);
        base.packages.insert("libc6".into(), "2.36-9".into());
        let keep: BTreeSet<String> = original.tree.keys().cloned().collect();
        let pkg = |name: &str, version: &str, path: &str| KeptPackage {
            kind: PackageKind::Dpkg,
            name: name.into(),
            version: version.into(),
            arch: None,
            reason: UnitReason {
                path: path.into(),
                usage: crate::minimal::PathUse::LibraryMapped,
                scenario: None,
                program: None,
            },
            files: 1,
            bytes: 1,
            paths: [path.to_owned()].into(),
        };
        let added = Added {
            packages: vec![
                pkg("libc6", "2.36-9", "/usr/lib/libc.so.6"),
                pkg("libsqlite3-0", "3.40.1-2", "/usr/lib/libsqlite3.so.0"),
            ],
            ..Added::default()
        };
        let named: BTreeSet<String> = [
            "/lib/libsqlite3.so.0".to_owned(),
            "/lib/app.conf".to_owned(),
        ]
        .into();
        let d = delta(&original, &keep, &added, &named, &base).unwrap();
        assert_eq!(d.held_packages, ["libc6 2.36-9"]);
        assert_eq!(d.trees, BTreeSet::from(["/app".to_owned()]));
        assert_eq!(
            d.entries,
            BTreeSet::from([
                "/etc/other.conf".to_owned(),
                // Named through `/lib`, a folder in the base: added there
                // too, but for a library (the loader looks in /usr/lib next).
                "/lib/app.conf".to_owned(),
                "/usr/lib/app.conf".to_owned(),
                "/usr/lib/libsqlite3.so.0".to_owned(),
            ]),
            "same bytes, a held package and the base's folders are not added"
        );
        assert_eq!(d.folder_in_base, BTreeSet::from(["/lib".to_owned()]));
        assert_eq!(d.held_entries, 3, "libc, cert.pem, the /lib link");

        // The control: on scratch, everything but `/` is added.
        let d = delta(&original, &keep, &added, &named, &Base::scratch()).unwrap();
        assert!(d.held_packages.is_empty() && d.held_entries == 0);
        assert!(
            d.trees.contains("/usr") && d.trees.contains("/app"),
            "{d:?}"
        );
        assert!(
            d.entries.contains("/lib") && d.trees.contains("/etc/ssl") && !d.trees.contains("/etc")
        );

        // What the report lists as added: what the Dockerfile adds.
        let mut with_lone = added.clone();
        with_lone.files = vec!["/etc/ssl/cert.pem".into(), "/etc/other.conf".into()];
        with_lone.trees = vec![crate::minimal::units::KeptTree {
            path: "/app".into(),
            files: 2,
            bytes: 3,
            reason: with_lone.packages[0].reason.clone(),
            paths: ["/app".to_owned(), "/app/server.js".to_owned()].into(),
        }];
        let mut on_base = delta(&original, &keep, &added, &named, &base).unwrap();
        let shown = on_base.added_units(&with_lone);
        let names: Vec<&str> = shown.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["libsqlite3-0"], "the held libc6 is left out");
        assert_eq!(shown.files, ["/etc/other.conf"], "same bytes in the base");
        assert_eq!(shown.trees.len(), 1);
        // A held package stays out even when an entry of it is added (a
        // folder the base lacks): the base's copy is the one that runs.
        on_base.entries.insert("/usr/lib/libc.so.6".into());
        assert_eq!(on_base.added_units(&with_lone).packages.len(), 1);
        // The control: on scratch (`d`), nothing is held and all is listed.
        let shown = d.added_units(&with_lone);
        assert_eq!(shown.packages.len(), 2);
        assert_eq!(shown.files.len(), 2);
        assert_eq!(shown.trees.len(), 1);

        // A folder of the original that is a link in the base: refused.
        let mut merged = Base::scratch();
        merged.index = index(&[("/app", Symlink("srv".into()), b"")]);
        assert!(delta(&original, &keep, &added, &named, &merged).is_err());
    }

    #[test]
    fn the_user_is_the_bases_nonroot_one() {
        let mut b = Base::scratch();
        assert_eq!(b.nonroot_user(), None);
        b.index.captured.files.insert(
            "/etc/passwd".into(),
            b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n".to_vec(),
        );
        assert_eq!(b.nonroot_user().as_deref(), Some("65532"));
        b.config.user = "1000".into();
        assert_eq!(b.nonroot_user().as_deref(), Some("1000"));
        b.config.user = "root".into();
        assert_eq!(b.nonroot_user().as_deref(), Some("65532"));
    }

    #[test]
    fn a_user_is_resolved_as_the_engine_does_or_is_an_error() {
        let mut b = Base::scratch();
        b.reference = "gcr.io/distroless/cc-debian13:nonroot".into();
        b.index.captured.files.insert(
            "/etc/passwd".into(),
            b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n".to_vec(),
        );
        b.index.captured.files.insert(
            "/etc/group".into(),
            b"root:x:0:\nnonroot:x:65532:\nstaff:x:50:\n".to_vec(),
        );
        assert_eq!(b.account("nonroot").unwrap(), (65532, 65532));
        assert_eq!(b.account("nonroot:staff").unwrap(), (65532, 50));
        // Numbers are taken as they are: a listed uid has its gid, an
        // unlisted one runs in group 0 (as the engine runs it).
        assert_eq!(b.account("65532").unwrap(), (65532, 65532));
        assert_eq!(b.account("4242").unwrap(), (4242, 0));
        assert_eq!(b.account("4242:4242").unwrap(), (4242, 4242));
        assert_eq!(b.account("65532:1000").unwrap(), (65532, 1000));
        // A name the base does not list is not guessed.
        for user in ["app", "app:app", "nonroot:nogroup"] {
            let err = b.account(user).unwrap_err();
            let MinimizeError::UnknownUser { base, user: u } = &err else {
                panic!("{user}: {err:?}");
            };
            assert_eq!((base.as_str(), u.as_str()), (b.reference.as_str(), user));
            let msg = err.to_string();
            assert!(msg.contains(user) && msg.contains("cc-debian13"), "{msg}");
        }
        // No passwd at all (scratch): only numbers resolve.
        let s = Base::scratch();
        assert_eq!(s.account("65532:65532").unwrap(), (65532, 65532));
        assert!(matches!(
            s.account("nonroot"),
            Err(MinimizeError::UnknownUser { .. })
        ));
    }
}
