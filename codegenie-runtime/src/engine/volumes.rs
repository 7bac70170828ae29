//! Tool volumes: a named volume holding a folder of tools (the runtime
//! trace's bundle), filled once per run and mounted read-only in every
//! scenario container (docs/architecture.md, "Container flow"). Where the
//! engine is reached through its API: no commit and no copy per scenario,
//! and the app cannot change the tools a later scenario runs. Only the
//! engine's own operations are used (volume create, container create,
//! archive upload), so remote engines work too.
//!
//! A tool volume carries the run label and the tools' owner label (the
//! owner value of the process that made it), so the orphan sweep removes
//! those of runs whose process is gone.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::options::{CreateOptions, VolumeMount};
use super::tools::TOOLS_OWNER_LABEL;
use super::{orphans, Engine, EngineError, RUN_LABEL};

/// The prefix of tool volumes' names.
pub const TOOLS_VOLUME_PREFIX: &str = "codegenie-tools-";

/// How long filling a tool volume may take (a bundle is tens of MB).
const FILL_TIMEOUT: Duration = Duration::from_secs(120);

/// The name of `run_id`'s tool volume: the prefix and the run id when it is
/// a valid name (every id codegenie makes is), else a hash of it.
fn name_of(run_id: &str) -> String {
    let valid = !run_id.is_empty()
        && run_id.len() <= 128
        && run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        format!("{TOOLS_VOLUME_PREFIX}{run_id}")
    } else {
        format!(
            "{TOOLS_VOLUME_PREFIX}{}",
            &blake3::hash(run_id.as_bytes()).to_hex()[..32]
        )
    }
}

/// The contents of the host folder `src` as a tar archive in memory, modes
/// kept, links not followed.
pub(crate) fn tar_of(src: &Path) -> Result<Vec<u8>, EngineError> {
    let err = |e: std::io::Error| EngineError::ToolContext {
        path: src.to_owned(),
        source: Arc::new(e),
    };
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    tar.append_dir_all(".", src).map_err(err)?;
    tar.into_inner().map_err(err)
}

/// A tar archive of one empty folder `name` with `mode`, owned by root.
pub(crate) fn folder_tar(name: &str, mode: u32) -> Result<Vec<u8>, EngineError> {
    let err = |e: std::io::Error| EngineError::ToolContext {
        path: name.into(),
        source: Arc::new(e),
    };
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(mode);
    header.set_size(0);
    header.set_mtime(0);
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_data(&mut header, format!("{name}/"), std::io::empty())
        .map_err(err)?;
    tar.into_inner().map_err(err)
}

impl Engine {
    /// Whether tool volumes can be made here: the engine is reached through
    /// its API (the CLI path keeps tool images and per-scenario copies).
    pub fn has_tool_volumes(&self) -> bool {
        self.api().is_some()
    }

    /// Make run `run_id`'s tool volume holding the contents of the host
    /// folder `src`, and return its name: the volume is created, a
    /// container of `template` (the traced image: it is on the engine; never
    /// started, hardened, each of `image_volumes` a tmpfs so that no other
    /// volume is made) mounts it at `dest`, the folder is uploaded there,
    /// and the container is removed. The volume is removed again if filling
    /// it fails.
    pub fn make_tool_volume(
        &self,
        template: &str,
        image_volumes: &[String],
        run_id: &str,
        src: &Path,
        dest: &str,
    ) -> Result<String, EngineError> {
        let api = self.api().ok_or_else(|| EngineError::Output {
            command: "volume create".into(),
            detail: "tool volumes need the engine's API".into(),
        })?;
        let name = name_of(run_id);
        let mut labels = HashMap::from([(RUN_LABEL.to_owned(), run_id.to_owned())]);
        if let Some(me) = orphans::current() {
            labels.insert(TOOLS_OWNER_LABEL.to_owned(), me.label_value());
        }
        api.create_volume(&name, labels.clone())?;
        let filled = (|| {
            let tar = tar_of(src)?;
            // The tools' owner label, not the scenario owner label: the
            // sweep removes such a container by it (see `runs`).
            let container = api.create(
                &CreateOptions {
                    image: template.to_owned(),
                    run_id: run_id.to_owned(),
                    entrypoint: format!("{dest}/never-runs"),
                    args: Vec::new(),
                    pids_limit: 1,
                    memory: "64m".to_owned(),
                    cpus: "0.1".to_owned(),
                    tmpfs: image_volumes.iter().map(|v| (v.clone(), 1 << 20)).collect(),
                    mounts: vec![VolumeMount {
                        volume: name.clone(),
                        target: dest.to_owned(),
                        read_only: false,
                    }],
                },
                labels
                    .get(TOOLS_OWNER_LABEL)
                    .map(|v| (TOOLS_OWNER_LABEL.to_owned(), v.clone())),
            )?;
            let uploaded = api.upload(&container, dest, tar, FILL_TIMEOUT);
            let removed = api.remove(&container);
            uploaded.and(removed)
        })();
        if let Err(e) = filled {
            if let Err(again) = api.remove_volume(&name) {
                tracing::warn!(volume = %name, error = %crate::errors::error_chain(&again), "cannot remove a tool volume that was not filled");
            }
            return Err(e);
        }
        Ok(name)
    }

    /// Remove a tool volume (every container using it must be gone).
    pub fn remove_tool_volume(&self, name: &str) -> Result<(), EngineError> {
        match self.api() {
            Some(api) => api.remove_volume(name),
            None => self
                .ok(self.spec().args(["volume", "rm", name]))
                .map(|_| ()),
        }
    }

    /// Make the empty folder `path` (an absolute path of one component)
    /// with `mode` in a created container.
    pub fn make_folder_in(
        &self,
        container: &str,
        path: &str,
        mode: u32,
    ) -> Result<(), EngineError> {
        let name = path.trim_start_matches('/');
        match self.api() {
            Some(api) => api.upload(
                container,
                "/",
                folder_tar(name, mode)?,
                Duration::from_secs(30),
            ),
            None => {
                let dir = tempfile::tempdir().map_err(|e| EngineError::ToolContext {
                    path: std::env::temp_dir(),
                    source: Arc::new(e),
                })?;
                let folder = dir.path().join(name);
                let made = std::fs::create_dir(&folder).and_then(|()| {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(mode))
                });
                made.map_err(|e| EngineError::ToolContext {
                    path: folder.clone(),
                    source: Arc::new(e),
                })?;
                self.copy_in(dir.path(), container, "/")
            }
        }
    }

    /// Remove the tool volumes of every run `run` covers (itself and its
    /// parts); returns how many. API only: the CLI path makes none.
    pub fn remove_run_volumes_under(&self, run: &str) -> Result<usize, EngineError> {
        let Some(api) = self.api() else {
            return Ok(0);
        };
        let mut removed = 0;
        for (name, labels) in api.volumes_labelled(TOOLS_OWNER_LABEL)? {
            let ours = name.starts_with(TOOLS_VOLUME_PREFIX)
                && labels
                    .get(RUN_LABEL)
                    .is_some_and(|label| super::run_covers(run, label));
            if ours {
                api.remove_volume(&name)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Remove the tool volumes made by processes of this host that are gone
    /// (after their containers); returns how many. A volume still in use is
    /// left for a later sweep.
    pub(super) fn sweep_tool_volumes(&self, me: &orphans::Owner) -> Result<usize, EngineError> {
        let Some(api) = self.api() else {
            return Ok(0);
        };
        let mut removed = 0;
        for (name, labels) in api.volumes_labelled(TOOLS_OWNER_LABEL)? {
            let gone = name.starts_with(TOOLS_VOLUME_PREFIX)
                && labels
                    .get(TOOLS_OWNER_LABEL)
                    .and_then(|v| orphans::Owner::parse(v))
                    .is_some_and(|o| o.is_gone(me));
            if !gone {
                continue;
            }
            match api.remove_volume(&name) {
                Ok(()) => {
                    tracing::info!(volume = %name, "removed a leftover tool volume");
                    removed += 1;
                }
                Err(e) => {
                    tracing::warn!(volume = %name, error = %crate::errors::error_chain(&e), "cannot remove a leftover tool volume")
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_volume_names() {
        assert_eq!(
            name_of("cli-1-ab.verify"),
            "codegenie-tools-cli-1-ab.verify"
        );
        let hashed = name_of("a run/with spaces");
        assert!(hashed.starts_with(TOOLS_VOLUME_PREFIX) && hashed.len() == 16 + 32);
        assert!(hashed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')));
    }

    #[test]
    fn a_folder_archive_holds_one_folder_with_its_mode() {
        let tar = folder_tar(".codegenie-out", 0o777).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let entries: Vec<(String, u32, bool)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().mode().unwrap(),
                    e.header().entry_type().is_dir(),
                )
            })
            .collect();
        assert_eq!(entries, vec![(".codegenie-out/".to_owned(), 0o777, true)]);
    }
}
