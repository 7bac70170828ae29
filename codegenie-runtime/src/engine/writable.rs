//! Measuring what a container wrote (docs/architecture.md, "Disk bound").
//! The engine's own measure, `container inspect --size`, also sizes the
//! whole image: on a 300 MB Debian image with fuse-overlayfs one call takes
//! 9–12 s of disk walking, which both delays the scenario and competes with
//! the app for the CPU. Where this machine can read the container's upper
//! layer (a local engine with an overlay driver), the layer is walked
//! instead: it holds only what the container wrote. Anywhere else (a remote
//! engine, another driver, a folder this user cannot read), the engine
//! measures, as before.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Engine, EngineEndpoint, EngineError};

/// How a container's writable layer is measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WritableLayer {
    /// Walk this folder on this machine (the overlay's upper directory).
    HostDir(PathBuf),
    /// Ask the engine (`container inspect --size`).
    Engine,
}

impl Engine {
    /// Whether this client's engine runs on this machine (a unix socket).
    pub(super) fn is_local(&self) -> bool {
        let unix = |url: &str| url.starts_with("unix://");
        match &self.endpoint {
            EngineEndpoint::Host(h) => unix(h.url()),
            EngineEndpoint::Context(_) => false,
            EngineEndpoint::Ambient => {
                std::env::var_os("DOCKER_CONTEXT").is_none()
                    && std::env::var("DOCKER_HOST").map_or(true, |h| unix(&h))
            }
        }
    }

    /// How `container`'s writable layer is measured: one inspect, without
    /// sizes; any doubt gives [`WritableLayer::Engine`].
    pub fn writable_layer(&self, container: &str) -> WritableLayer {
        if !self.is_local() {
            return WritableLayer::Engine;
        }
        let text = match self.api() {
            Some(api) => match api.graph_driver(container) {
                Ok((driver, folders)) => match folders.get("UpperDir") {
                    Some(upper) => format!("{driver}\t{upper}"),
                    None => return WritableLayer::Engine,
                },
                Err(_) => return WritableLayer::Engine,
            },
            None => {
                let out = self.run(self.spec().timeout(Duration::from_secs(30)).args([
                    "container",
                    "inspect",
                    "--format",
                    "{{.GraphDriver.Name}}\t{{index .GraphDriver.Data \"UpperDir\"}}",
                    container,
                ]));
                match out {
                    Ok(o) if o.success() => o.stdout.text(),
                    _ => return WritableLayer::Engine,
                }
            }
        };
        let Some((driver, upper)) = text.trim().split_once('\t') else {
            return WritableLayer::Engine;
        };
        let upper = Path::new(upper);
        if is_overlay(driver)
            && upper.is_absolute()
            && upper.is_dir()
            && std::fs::read_dir(upper).is_ok()
        {
            WritableLayer::HostDir(upper.to_owned())
        } else {
            WritableLayer::Engine
        }
    }

    /// Bytes `container` wrote into its writable layer, measured as `layer`
    /// says (the engine's `SizeRw` counts the same: file sizes, a hard
    /// link once).
    pub fn written_bytes(
        &self,
        layer: &WritableLayer,
        container: &str,
    ) -> Result<u64, EngineError> {
        match layer {
            WritableLayer::HostDir(dir) => Ok(host_folder_size(dir)),
            WritableLayer::Engine => self.writable_size(container),
        }
    }
}

/// Whether the storage driver `driver` is an overlay, whose folders
/// (`UpperDir`, `MergedDir`) are plain folders on the engine's machine.
pub(super) fn is_overlay(driver: &str) -> bool {
    matches!(driver, "overlay2" | "fuse-overlayfs" | "overlay")
}

/// Make the folder `name` (one component) with `mode` in a created, not yet
/// started container's upper layer `upper` on this machine: the overlay
/// shows it at `/name` once the container starts, as an upload through the
/// engine would, without the engine mounting the container for it.
pub fn make_folder_in_upper(upper: &Path, name: &str, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not one path component",
        ));
    }
    let dir = upper.join(name);
    std::fs::create_dir(&dir)?;
    // Not the umask's: strace writes there as the image's user.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
}

/// The total size of the regular files under `dir` on this machine, each
/// inode once, links not followed. Entries that vanish or cannot be read
/// while the container runs are skipped: the next measure sees what is
/// there then.
pub fn host_folder_size(dir: &Path) -> u64 {
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() && (meta.nlink() == 1 || seen.insert((meta.dev(), meta.ino())))
            {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_folder_is_made_in_the_upper_layer_with_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let upper = tempfile::tempdir().unwrap();
        make_folder_in_upper(upper.path(), ".codegenie-out", 0o777).unwrap();
        let meta = std::fs::symlink_metadata(upper.path().join(".codegenie-out")).unwrap();
        assert!(meta.is_dir());
        assert_eq!(
            meta.permissions().mode() & 0o7777,
            0o777,
            "the umask does not apply"
        );
        // One component only: nothing is made outside the layer.
        for bad in ["", "a/b", "..", ".", "../escape"] {
            assert!(
                make_folder_in_upper(upper.path(), bad, 0o777).is_err(),
                "{bad:?}"
            );
        }
        assert!(!upper.path().parent().unwrap().join("escape").exists());
    }

    #[test]
    fn a_folder_is_sized_by_its_files_and_a_hard_link_counts_once() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/one"), vec![0u8; 1000]).unwrap();
        std::fs::write(d.path().join("a/b/two"), vec![0u8; 24]).unwrap();
        std::fs::hard_link(d.path().join("a/one"), d.path().join("again")).unwrap();
        std::os::unix::fs::symlink("a/one", d.path().join("link")).unwrap();
        assert_eq!(host_folder_size(d.path()), 1024);
    }
}
