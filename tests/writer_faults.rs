//! The writer on a full disk (a real, size-limited tmpfs): a clear I/O error,
//! no temp files, and nothing stale left looking complete.

use std::path::Path;
use std::process::Command;

use codegenie::coordinator::{ProbeRecord, ProbeStatus};
use codegenie::writer::{WriteError, Writer};
use codegenie::{Artifact, ArtifactSource, Confidence, ProbeOutput};

struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    /// Mount a tmpfs of `size` on a fresh folder; `None` when not root.
    fn mount(size: &str) -> Option<Tmpfs> {
        if !nix_is_root() {
            eprintln!("SKIP: mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "mount -t tmpfs failed");
        Some(Tmpfs(dir))
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

fn nix_is_root() -> bool {
    // Our real uid, from procfs.
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
                .unwrap_or(false)
        })
        .unwrap_or(false)
}

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
    walk(dir)
        .into_iter()
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[test]
fn disk_full_is_a_clear_error_and_leaves_nothing_looking_complete() {
    let Some(fs) = Tmpfs::mount("256k") else {
        return;
    };
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
    assert!(err.to_string().contains("No space left on device"), "{err}");
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
