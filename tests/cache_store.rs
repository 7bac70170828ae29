//! The on-disk store over real files: round trips, corrupt and truncated
//! entries, two processes writing the same key, pruning.
// Tests drive the built binary, the engine and mounts directly; the
// product itself starts processes only through its exec layer.
#![allow(clippy::disallowed_methods)]

mod fs_support;

use fs_support::files_under;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use codegenie::ProbeCache;
use codegenie::{Artifact, ArtifactSource, Confidence, ContentCache, ProbeOutput};
use codegenie_runtime::cache::{CacheStore, StoreError};

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn key(n: u8) -> String {
    format!("{:02x}{}", n, &KEY[2..])
}

fn output(tag: &str) -> ProbeOutput {
    let mut out = ProbeOutput::new(
        serde_json::json!({ "tag": tag, "list": (0..2000).collect::<Vec<u32>>() }),
        Confidence::Medium,
    );
    out.warnings.push(format!("warning {tag}"));
    out.artifacts.push(Artifact {
        name: "bytes.txt".into(),
        source: ArtifactSource::Bytes(format!("artifact {tag}\n").repeat(100).into_bytes()),
    });
    out
}

fn entry_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(dir).unwrap().flatten() {
        let name = shard.file_name().to_string_lossy().into_owned();
        if name.len() == 2 {
            for e in std::fs::read_dir(shard.path()).unwrap().flatten() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn put_then_get_round_trips_slice_warnings_and_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let store = CacheStore::new(dir.path());
    let mut out = output("a");
    let file_src = dir.path().join("trace.txt");
    std::fs::write(&file_src, "execve(\"/bin/sh\")\n").unwrap();
    out.artifacts.push(Artifact {
        name: "trace.txt".into(),
        source: ArtifactSource::File(file_src.clone()),
    });
    store.put("demo", KEY, &out).unwrap();
    assert!(dir.path().join("01").join(format!("{KEY}.json")).is_file());
    let got = store.get("demo", KEY).unwrap().expect("hit");
    assert_eq!(got.schema_slice, out.schema_slice);
    assert_eq!(got.confidence, out.confidence);
    assert_eq!(got.warnings, out.warnings);
    assert_eq!(got.artifacts[0], out.artifacts[0]);
    let ArtifactSource::File(p) = &got.artifacts[1].source else {
        panic!("a file artifact comes back as a file");
    };
    assert_ne!(
        p, &file_src,
        "served from the store, not the probe's temp file"
    );
    assert_eq!(std::fs::read(p).unwrap(), std::fs::read(&file_src).unwrap());
    assert!(store.get("demo", &key(2)).unwrap().is_none());
}

#[test]
fn secrets_never_reach_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = CacheStore::new(dir.path());
    let mut out = ProbeOutput::new(
        serde_json::json!({"argv": ["app", "--password=hunter2"]}),
        Confidence::High,
    );
    out.artifacts.push(Artifact {
        name: "env".into(),
        source: ArtifactSource::Bytes(
            b"x\n-----BEGIN PRIVATE KEY-----\nMIIEsecret\n-----END PRIVATE KEY-----\n".to_vec(),
        ),
    });
    store.put("demo", KEY, &out).unwrap();
    let mut all = Vec::new();
    for e in files_under(dir.path()) {
        all.extend(std::fs::read(e).unwrap());
    }
    let all = String::from_utf8_lossy(&all);
    assert!(!all.contains("hunter2"), "{all}");
    assert!(!all.contains("MIIEsecret"), "{all}");
}

#[test]
fn a_truncated_entry_is_a_miss_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ContentCache::with_store(CacheStore::new(dir.path()));
    cache.put("demo", KEY, &output("a")).unwrap();
    let path = cache.store().entry_path(KEY).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let err = cache.store().get("demo", KEY).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    let warning = codegenie::error_chain(cache.get("demo", KEY).unwrap_err().as_ref());
    assert!(warning.contains("corrupt cache entry"), "{warning}");
    assert!(warning.contains("treated as a miss"), "{warning}");
    // Storing again repairs it.
    cache.put("demo", KEY, &output("a")).unwrap();
    assert!(cache.get("demo", KEY).unwrap().is_some());
}

#[test]
fn garbage_tampered_or_foreign_entries_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = CacheStore::new(dir.path());
    let path = store.entry_path(KEY).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();

    std::fs::write(&path, [0xffu8, 0x00, 0x13, 0x37, b'{']).unwrap();
    assert!(matches!(
        store.get("demo", KEY),
        Err(StoreError::Corrupt { .. })
    ));

    // Valid JSON whose payload was edited: the checksum catches it.
    store.put("demo", KEY, &output("a")).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("warning a", "warning b", 1)).unwrap();
    let err = store.get("demo", KEY).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");

    // Another probe's entry under this key.
    store.put("demo", KEY, &output("a")).unwrap();
    let err = store.get("other", KEY).unwrap_err();
    assert!(err.to_string().contains("expected `other`"), "{err}");

    // A missing artifact blob.
    for b in files_under(&dir.path().join("blobs")) {
        std::fs::remove_file(b).unwrap();
    }
    let err = store.get("demo", KEY).unwrap_err();
    assert!(err.to_string().contains("artifact `bytes.txt`"), "{err}");
}

#[test]
fn keys_and_names_that_could_escape_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = CacheStore::new(dir.path());
    assert!(matches!(
        store.put("demo", "../../x", &output("a")),
        Err(StoreError::BadKey(_))
    ));
    assert!(matches!(
        store.get("../demo", KEY),
        Err(StoreError::BadProbeName(_))
    ));
}

const CHILD_DIR: &str = "CODEGENIE_TEST_CACHE_CHILD_DIR";

/// Runs only as a child process of `two_processes_writing_the_same_key`:
/// stores and reads back the same key in a loop.
#[test]
fn concurrent_writer_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let store = CacheStore::new(dir);
    let expected = output("shared");
    for _ in 0..150 {
        store.put("demo", KEY, &expected).unwrap();
        let got = store
            .get("demo", KEY)
            .unwrap()
            .expect("an entry is always whole");
        assert_eq!(got.schema_slice, expected.schema_slice);
        assert_eq!(got.artifacts, expected.artifacts);
    }
}

#[test]
fn two_processes_writing_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let spawn = || {
        Command::new(&exe)
            .args(["--exact", "concurrent_writer_child", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (spawn(), spawn());
    let (sa, sb) = (a.wait().unwrap(), b.wait().unwrap());
    assert!(sa.success() && sb.success(), "{sa} {sb}");
    let store = CacheStore::new(dir.path());
    let got = store.get("demo", KEY).unwrap().unwrap();
    assert_eq!(got.schema_slice, output("shared").schema_slice);
    let leftovers: Vec<_> = files_under(dir.path())
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn set_mtime(path: &Path, secs_ago: u64) {
    let t = SystemTime::now() - Duration::from_secs(secs_ago);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn prune_removes_least_recently_used_until_the_size_fits() {
    let dir = tempfile::tempdir().unwrap();
    let store = CacheStore::new(dir.path());
    for n in 0..5u8 {
        store
            .put("demo", &key(n), &output(&format!("e{n}")))
            .unwrap();
        // Entry n was last used (5 - n) hours ago: entry 0 is the oldest.
        set_mtime(&store.entry_path(&key(n)).unwrap(), 3600 * (5 - n as u64));
    }
    // A hit counts as a use: entry 0 becomes the newest.
    assert!(store.get("demo", &key(0)).unwrap().is_some());
    let before = store.prune(u64::MAX).unwrap();
    assert_eq!(before.entries_removed, 0);
    let each = before.bytes_before / 5;
    let report = store.prune(each * 2 + each / 2).unwrap();
    assert!(report.bytes_after <= each * 2 + each / 2, "{report:?}");
    assert_eq!(report.entries_removed, 3, "{report:?}");
    assert_eq!(report.blobs_removed, 3, "{report:?}");
    let kept: Vec<bool> = (0..5).map(|n| store.contains(&key(n))).collect();
    assert_eq!(kept, vec![true, false, false, false, true]);
    assert!(
        store.get("demo", &key(4)).unwrap().is_some(),
        "kept entries stay whole"
    );
    assert_eq!(entry_files(dir.path()).len(), 2);
}

#[test]
fn prune_drops_corrupt_entries_whatever_the_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = CacheStore::new(dir.path());
    store.put("demo", KEY, &output("a")).unwrap();
    let p = store.entry_path(&key(7)).unwrap();
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, "garbage").unwrap();
    let report = store.prune(u64::MAX).unwrap();
    assert_eq!(report.entries_removed, 1);
    assert!(!p.exists());
    assert!(store.get("demo", KEY).unwrap().is_some());
}

#[test]
fn prune_spares_young_unreferenced_blobs_of_a_store_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let store = CacheStore::new(dir.path());
    store.put("demo", KEY, &output("a")).unwrap();
    // A blob whose entry another process has not written yet.
    let orphan = dir.path().join("blobs").join("ee").join(key(0xee));
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, "pending").unwrap();
    assert_eq!(store.prune(u64::MAX).unwrap().blobs_removed, 0);
    assert!(
        orphan.exists(),
        "a young blob may belong to a store in progress"
    );
    set_mtime(&orphan, 3600);
    assert_eq!(store.prune(u64::MAX).unwrap().blobs_removed, 1);
    assert!(!orphan.exists(), "an old unreferenced blob is a leftover");
    assert!(
        store.get("demo", KEY).unwrap().is_some(),
        "referenced blobs stay"
    );
}

#[test]
fn a_removed_entry_is_a_miss_and_others_stay() {
    let dir = tempfile::tempdir().unwrap();
    let store = CacheStore::new(dir.path());
    store.put("demo", &key(1), &output("a")).unwrap();
    store.put("demo", &key(2), &output("b")).unwrap();
    assert!(store.remove(&key(1)).unwrap());
    assert!(store.get("demo", &key(1)).unwrap().is_none());
    // Control: the other entry still serves, and a second remove finds nothing.
    assert!(store.get("demo", &key(2)).unwrap().is_some());
    assert!(!store.remove(&key(1)).unwrap());
    assert!(matches!(store.remove("../x"), Err(StoreError::BadKey(_))));
}
