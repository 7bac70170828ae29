//! The writer on a full disk (a real, size-limited tmpfs): a clear I/O error,
//! no temp files, and nothing stale left looking complete.

mod fs_support;

use fs_support::{files_under, Tmpfs};
use std::path::Path;

use codegenie::{Artifact, ArtifactSource, Confidence, ProbeOutput};
use codegenie::{ProbeRecord, ProbeStatus};
use codegenie::{WriteError, Writer};

fn record(artifact_bytes: usize) -> ProbeRecord {
    let mut out = ProbeOutput::new(serde_json::json!({"ok": true}), Confidence::High);
    out.artifacts = vec![
        Artifact {
            name: "small.txt".into(),
            source: ArtifactSource::Bytes(b"small\n".to_vec()),
        },
        Artifact {
            name: "big.strace".into(),
            source: ArtifactSource::Bytes(vec![b'x'; artifact_bytes]),
        },
    ];
    ProbeRecord {
        scratch: None,
        name: "demo",
        status: ProbeStatus::Ran,
        duration_ms: 0,
        cache_key: None,
        output: Some(out),
        warnings: vec![],
    }
}

fn tmp_leftovers(dir: &Path) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .map(|p| p.display().to_string())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

#[test]
fn disk_full_is_a_clear_error_and_leaves_nothing_looking_complete() {
    let fs = Tmpfs::mount("256k");
    let writer = Writer::new(fs.path());
    // A first, complete write.
    writer.write_record(&record(1000)).unwrap().unwrap();
    let json = fs.path().join(".codegenie/context/demo.json");
    assert!(json.exists());

    // A second write whose artifact does not fit.
    let err = writer.write_record(&record(1 << 20)).unwrap_err();
    match &err {
        WriteError::Io { path, source } => {
            assert!(path.ends_with("raw/big.strace"), "{}", path.display());
            assert_eq!(source.raw_os_error(), Some(28), "ENOSPC expected: {source}");
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert!(
        codegenie::error_chain(&err).contains("No space left on device"),
        "{err}"
    );
    // The old JSON no longer claims a complete output, this attempt's
    // artifacts are gone, and no temp file is left.
    assert!(!json.exists(), "stale JSON left looking complete");
    assert!(!fs.path().join(".codegenie/context/raw/small.txt").exists());
    assert_eq!(tmp_leftovers(fs.path()), Vec::<String>::new());
    // The old big artifact (from the complete write) is still the old one,
    // never a truncated new one.
    let big = std::fs::read(fs.path().join(".codegenie/context/raw/big.strace")).unwrap();
    assert_eq!(big.len(), 1000);
}
