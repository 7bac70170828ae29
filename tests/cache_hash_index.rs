//! The hash index: unchanged files are not read again, and no change to a
//! declared file's content ever slips past it.

use std::path::Path;
use std::time::{Duration, SystemTime};

use codegenie::prelude::*;
use codegenie::ContentCache;
use codegenie::ProbeCache;
use codegenie_runtime::inputs::hash_index::RACY_MARGIN_NS;

#[derive(Default)]
struct Demo;

impl Probe for Demo {
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        declared_inputs!["src/*.txt"]
    }
    async fn run(&self, _: &RepoSnapshot, _: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
        Err(ProbeError::failed("never run"))
    }
}

fn key(root: &Path) -> String {
    // A new cache per call: the hash index is read from disk like a new process would.
    let cache = ContentCache::for_repo_root(root);
    let repo = RepoSnapshot::open(root).unwrap();
    cache
        .key(&repo, "demo", &Demo, &ProbeContext::default())
        .unwrap()
}

fn set_mtime(path: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// Wait until files written now are old enough for the hash index to trust.
fn outlive_racy_margin() {
    std::thread::sleep(Duration::from_nanos(RACY_MARGIN_NS as u64) + Duration::from_millis(300));
}

#[test]
fn the_memo_is_used_and_never_hides_a_change() {
    let t = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(t.path()).unwrap();
    std::fs::create_dir(root.join("src")).unwrap();
    for name in ["a", "b", "c"] {
        std::fs::write(root.join(format!("src/{name}.txt")), format!("{name}-one")).unwrap();
    }
    outlive_racy_margin();
    let base = key(&root); // hashes everything, index saved
    let memo_path = root.join(".codegenie/cache/hash-index.json");
    assert!(memo_path.is_file());
    assert_eq!(key(&root), base);

    // Reuse is real: an index entry claiming another hash for an unchanged
    // file is believed (white-box check that the file was not read again).
    let saved = std::fs::read_to_string(&memo_path).unwrap();
    let real = blake3::hash(b"a-one").to_hex().to_string();
    std::fs::write(&memo_path, saved.replace(&real, &"0".repeat(64))).unwrap();
    assert_ne!(key(&root), base, "the hash index was not consulted");
    std::fs::write(&memo_path, &saved).unwrap();
    assert_eq!(key(&root), base);

    // Same size, mtime put back: ctime still moves, so the change is seen.
    let b = root.join("src/b.txt");
    let mtime = std::fs::metadata(&b).unwrap().modified().unwrap();
    std::fs::write(&b, "b-two").unwrap();
    set_mtime(&b, mtime);
    let after_edit = key(&root);
    assert_ne!(after_edit, base);

    // Replaced by a rename: new inode, same size and mtime.
    let c = root.join("src/c.txt");
    let mtime = std::fs::metadata(&c).unwrap().modified().unwrap();
    std::fs::write(root.join("c.tmp"), "c-two").unwrap();
    set_mtime(&root.join("c.tmp"), mtime);
    std::fs::rename(root.join("c.tmp"), &c).unwrap();
    let after_replace = key(&root);
    assert_ne!(after_replace, after_edit);

    // And the keys equal what a index-less computation gives.
    std::fs::remove_file(&memo_path).unwrap();
    assert_eq!(key(&root), after_replace);
}

#[test]
fn a_garbage_memo_is_ignored() {
    let t = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(t.path()).unwrap();
    std::fs::create_dir(root.join("src")).unwrap();
    std::fs::write(root.join("src/a.txt"), "a").unwrap();
    let clean = key(&root);
    std::fs::write(
        root.join(".codegenie/cache/hash-index.json"),
        "\u{0}garbage",
    )
    .unwrap();
    assert_eq!(key(&root), clean);
}
