//! The evidence closure: from the paths the evidence names to the exact set
//! of filesystem entries a minimal image must hold (docs/architecture.md,
//! "Minimal image").
//!
//! Every named path is walked one component at a time through the original
//! image's tree. Each directory on the way is kept (as a directory, without
//! its other contents); each symlink on the way is kept as a symlink and the
//! walk goes on through its target, so `/lib/x86_64-linux-gnu/libz.so.1`
//! brings `/lib` (a link to `usr/lib` in a merged-/usr image), the soname
//! link, and the file it names. A hard link also keeps the entry it links
//! to. Nothing else is kept. Pure: the tree is an index built from the
//! image's tar stream.

use std::collections::{BTreeMap, BTreeSet};

/// What a path is in the original image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file (or a device, fifo: anything with no target).
    File,
    /// A symbolic link with its target text.
    Symlink(String),
    /// A hard link to another entry (absolute path).
    Hardlink(String),
}

/// The original image's tree: absolute, lexically normal paths to nodes.
pub type Tree = BTreeMap<String, Node>;

/// The closure of a set of named paths over a [`Tree`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Closure {
    /// Entries to keep (absolute paths), each with every directory above it.
    pub keep: BTreeSet<String>,
    /// Named paths that are not in the image (created at run time, or
    /// virtual); nothing is kept for them beyond their existing parents.
    pub absent: BTreeSet<String>,
    /// Named paths whose walk went round a symlink loop (more than the
    /// kernel's 40 hops): the original holds the links, so the name is not
    /// absent from it; it cannot be opened there either (`ELOOP`). The links
    /// on the way are kept, as the original has them.
    pub link_loops: BTreeSet<String>,
}

/// Symlink hops followed for one path before giving up (as the kernel's 40).
const MAX_HOPS: usize = 40;

impl Closure {
    /// The closure of `named` (paths the app used) and of the parent folders
    /// of `written` (files the app created) over `tree`.
    pub fn of<'a>(
        tree: &Tree,
        named: impl IntoIterator<Item = &'a str>,
        written: impl IntoIterator<Item = &'a str>,
    ) -> Closure {
        let mut c = Closure::default();
        c.keep.insert("/".to_owned());
        for path in named {
            c.insert(tree, path);
        }
        for path in written {
            let norm = normalize(path);
            if let Some((parent, _)) = norm.rsplit_once('/') {
                c.insert(tree, if parent.is_empty() { "/" } else { parent });
            }
        }
        c
    }

    /// Keep `path` (a name the app could use) and what it takes: each
    /// directory on the way, each symlink on the way and its target, a hard
    /// link's target. A path the tree lacks goes to `absent`, one whose
    /// links go round in a loop to `link_loops`.
    pub fn insert(&mut self, tree: &Tree, path: &str) {
        let named = normalize(path);
        self.add(tree, &named, &named, 0);
    }

    /// Walk `path`, reached from the named path `named` after `hops` links.
    fn add(&mut self, tree: &Tree, named: &str, path: &str, hops: usize) {
        let path = normalize(path);
        if hops > MAX_HOPS {
            self.link_loops.insert(named.to_owned());
            return;
        }
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let mut cur = String::new();
        for (i, comp) in comps.iter().enumerate() {
            let parent = if cur.is_empty() {
                "/".to_owned()
            } else {
                cur.clone()
            };
            cur.push('/');
            cur.push_str(comp);
            match tree.get(&cur) {
                None => {
                    self.absent.insert(path.clone());
                    return;
                }
                Some(Node::Dir) => {
                    self.keep.insert(cur.clone());
                }
                Some(Node::Symlink(target)) => {
                    self.keep.insert(cur.clone());
                    let base = if target.starts_with('/') {
                        target.clone()
                    } else {
                        format!("{parent}/{target}")
                    };
                    let rest = comps[i + 1..].join("/");
                    let next = if rest.is_empty() {
                        base
                    } else {
                        format!("{base}/{rest}")
                    };
                    self.add(tree, named, &next, hops + 1);
                    return;
                }
                Some(node @ (Node::File | Node::Hardlink(_))) => {
                    self.keep.insert(cur.clone());
                    if let Node::Hardlink(target) = node {
                        self.add(tree, named, target, hops + 1);
                    }
                    if i + 1 != comps.len() {
                        // A file used as a folder: the rest cannot exist.
                        self.absent.insert(path.clone());
                    }
                    return;
                }
            }
        }
    }
}

/// The tree path `path` names with every folder on the way resolved through
/// the tree's symlinks, its last component left as it is (a link stays the
/// link): `/lib/x86_64-linux-gnu/libz.so.1` in a merged-/usr tree is
/// `/usr/lib/x86_64-linux-gnu/libz.so.1`. `None` when the tree lacks it.
pub fn resolve_parents(tree: &Tree, path: &str) -> Option<String> {
    let mut path = normalize(path);
    'hop: for _ in 0..=MAX_HOPS {
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let mut cur = String::new();
        for (i, comp) in comps.iter().enumerate() {
            let parent = if cur.is_empty() {
                "/".to_owned()
            } else {
                cur.clone()
            };
            cur.push('/');
            cur.push_str(comp);
            let last = i + 1 == comps.len();
            match tree.get(&cur)? {
                _ if last => return Some(cur),
                Node::Dir => {}
                Node::Symlink(target) => {
                    let base = if target.starts_with('/') {
                        target.clone()
                    } else {
                        format!("{parent}/{target}")
                    };
                    path = normalize(&format!("{base}/{}", comps[i + 1..].join("/")));
                    continue 'hop;
                }
                Node::File | Node::Hardlink(_) => return None,
            }
        }
        return Some("/".to_owned());
    }
    None
}

/// `path` made absolute and lexically normal (the parser's own rules).
pub fn normalize(path: &str) -> String {
    crate::strace::paths::join("/", path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A merged-/usr Debian tree with a soname link, as `docker export` shows it.
    fn debian() -> Tree {
        let mut t = Tree::new();
        for d in [
            "/usr",
            "/usr/lib",
            "/usr/lib/x86_64-linux-gnu",
            "/etc",
            "/etc/ssl",
            "/etc/ssl/certs",
            "/usr/bin",
            "/tmp",
            "/app",
        ] {
            t.insert(d.into(), Node::Dir);
        }
        t.insert("/lib".into(), Node::Symlink("usr/lib".into()));
        t.insert("/bin".into(), Node::Symlink("usr/bin".into()));
        t.insert(
            "/usr/lib/x86_64-linux-gnu/libz.so.1".into(),
            Node::Symlink("libz.so.1.2.13".into()),
        );
        t.insert(
            "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13".into(),
            Node::File,
        );
        t.insert("/usr/bin/dash".into(), Node::File);
        t.insert("/usr/bin/sh".into(), Node::Symlink("dash".into()));
        t.insert("/usr/lib/ssl".into(), Node::Dir);
        t.insert(
            "/usr/lib/ssl/cert.pem".into(),
            Node::Symlink("/etc/ssl/certs/ca-certificates.crt".into()),
        );
        t.insert("/etc/ssl/certs/ca-certificates.crt".into(), Node::File);
        t.insert("/usr/bin/node".into(), Node::File);
        t.insert(
            "/usr/bin/nodejs".into(),
            Node::Hardlink("/usr/bin/node".into()),
        );
        t.insert("/app/unused.js".into(), Node::File);
        t
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn every_link_on_the_way_and_its_target_are_kept() {
        let c = Closure::of(&debian(), ["/lib/x86_64-linux-gnu/libz.so.1"], []);
        assert_eq!(
            c.keep,
            set(&[
                "/",
                "/lib",
                "/usr",
                "/usr/lib",
                "/usr/lib/x86_64-linux-gnu",
                "/usr/lib/x86_64-linux-gnu/libz.so.1",
                "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13",
            ])
        );
        assert!(c.absent.is_empty());
    }

    #[test]
    fn absolute_links_shells_and_hard_links() {
        let c = Closure::of(
            &debian(),
            ["/usr/lib/ssl/cert.pem", "/bin/sh", "/usr/bin/nodejs"],
            [],
        );
        for p in [
            "/usr/lib/ssl/cert.pem",
            "/etc/ssl/certs/ca-certificates.crt",
            "/bin",
            "/usr/bin/sh",
            "/usr/bin/dash",
            "/usr/bin/nodejs",
            "/usr/bin/node",
        ] {
            assert!(c.keep.contains(p), "{p} missing from {:?}", c.keep);
        }
        assert!(!c.keep.contains("/app/unused.js"));
    }

    #[test]
    fn written_files_keep_their_folder_and_absent_paths_are_named() {
        let c = Closure::of(
            &debian(),
            ["/proc/self/status", "/app/../tmp/x"],
            ["/tmp/app.pid"],
        );
        assert!(c.keep.contains("/tmp"));
        assert!(!c.keep.contains("/tmp/app.pid"));
        assert_eq!(c.absent, set(&["/proc/self/status", "/tmp/x"]));
    }

    #[test]
    fn a_link_loop_is_reported_as_a_loop_not_as_absent() {
        let mut t = Tree::new();
        t.insert("/a".into(), Node::Symlink("b".into()));
        t.insert("/b".into(), Node::Symlink("a".into()));
        t.insert("/self".into(), Node::Symlink("/self".into()));
        let c = Closure::of(&t, ["/a/x", "/self", "/gone"], []);
        assert!(c.keep.contains("/a") && c.keep.contains("/b"));
        assert!(c.keep.contains("/self"));
        // The names as the app used them, not where the walk gave up.
        assert_eq!(c.link_loops, set(&["/a/x", "/self"]));
        // Control: a name the tree lacks is still absent, and only it.
        assert_eq!(c.absent, set(&["/gone"]));
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalize("/usr//lib/./x/../y/"), "/usr/lib/y");
        assert_eq!(normalize("/../.."), "/");
        assert_eq!(normalize("rel/p"), "/rel/p");
    }
}
