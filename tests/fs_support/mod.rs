//! File-system helpers shared by tests: a recursive file listing and a
//! size-limited tmpfs for disk-full faults.
// Tests drive the built binary, the engine and mounts directly; the
// product itself starts processes only through its exec layer.
#![allow(clippy::disallowed_methods)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every file below `dir` (not following folders' symlinks); empty when
/// `dir` does not exist.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A tmpfs of a given size mounted on a fresh folder, unmounted on drop.
/// Mounting needs root, as CI has.
pub struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    /// Mount a tmpfs of `size` (e.g. `256k`, `8m`).
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            st.success(),
            "mount -t tmpfs failed (these tests need root)"
        );
        Tmpfs(dir)
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}
