//! What the engine's storage makes cheap. Committing a container (or
//! building a layer on an image) costs a diff of the container's
//! filesystem against its image: a storage driver with a native diff
//! (overlay2 reporting `Native Overlay Diff: true`, btrfs, zfs, the
//! containerd snapshotter) reads only what changed, while any other
//! (fuse-overlayfs, vfs, overlay2 without native diff) walks the whole
//! image: 9–11 s for the 300 MB Debian image of the Node fixtures with
//! fuse-overlayfs, against 0.2 s to copy the tool bundle into one container
//! (docs/architecture.md, "Container flow").

use super::{Engine, EngineError};

impl Engine {
    /// Whether a new layer on an image costs only what the layer holds.
    pub fn diffs_natively(&self) -> Result<bool, EngineError> {
        let out =
            self.ok(self
                .spec()
                .args(["info", "--format", "{{.Driver}}\t{{json .DriverStatus}}"]))?;
        Ok(native_diff(&out.stdout.text()))
    }
}

/// Read `docker info`'s `Driver<TAB>DriverStatus` line.
fn native_diff(line: &str) -> bool {
    let (driver, status) = line
        .trim()
        .split_once('\t')
        .unwrap_or((line.trim(), "null"));
    let status: Vec<(String, String)> = serde_json::from_str(status).unwrap_or_default();
    let says = |key: &str| {
        status
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    match driver {
        "overlay2" => says("Native Overlay Diff") == Some("true"),
        "btrfs" | "zfs" => true,
        // The containerd image store: its overlay snapshotter diffs the
        // upper folder.
        "overlayfs" => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drivers_are_told_apart() {
        assert!(!native_diff("fuse-overlayfs\tnull"));
        assert!(!native_diff("vfs\tnull"));
        assert!(native_diff(
            r#"overlay2	[["Backing Filesystem","extfs"],["Supports d_type","true"],["Using metacopy","false"],["Native Overlay Diff","true"],["userxattr","false"]]"#
        ));
        assert!(!native_diff(
            r#"overlay2	[["Backing Filesystem","extfs"],["Native Overlay Diff","false"]]"#
        ));
        assert!(native_diff("overlayfs\tnull"));
        assert!(!native_diff(""));
    }
}
