//! Tool volumes: a named volume holding a folder of tools (the runtime
//! trace's bundle), filled once per run and mounted read-only in every
//! scenario container (docs/architecture.md, "Container flow"). Where the
//! engine is reached through its API: no commit and no copy per scenario,
//! and the app cannot change the tools a later scenario runs. Only the
//! engine's own operations are used (volume create, container create,
//! archive upload), so remote engines work too.
//!
//! Trace volumes: where the engine runs on this machine, each scenario
//! container gets an empty volume of its own at the trace's folder, so
//! that strace's writes (one `write` a line) go to this machine's disk
//! instead of through the container's storage driver (a FUSE round trip
//! each on fuse-overlayfs), and the trace is read from the volume's folder
//! here instead of through an archive request.
//!
//! Both carry the run label and the tools' owner label (the owner value of
//! the process that made them), so the orphan sweep removes those of runs
//! whose process is gone.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::options::{CreateOptions, VolumeMount};
use super::tools::TOOLS_OWNER_LABEL;
use super::{orphans, Engine, EngineError, RUN_LABEL};

/// The prefix of tool volumes' names.
pub const TOOLS_VOLUME_PREFIX: &str = "codegenie-tools-";

/// The prefix of trace volumes' names.
pub const TRACE_VOLUME_PREFIX: &str = "codegenie-trace-";

/// Whether `name` is a tool or a trace volume's.
fn is_run_volume(name: &str) -> bool {
    name.starts_with(TOOLS_VOLUME_PREFIX) || name.starts_with(TRACE_VOLUME_PREFIX)
}

/// How long filling a tool volume may take (a bundle is tens of MB).
const FILL_TIMEOUT: Duration = Duration::from_secs(120);

/// The name of `run_id`'s tool volume: the prefix and the run id when it is
/// a valid name (every id codegenie makes is), else a hash of it.
fn name_of(run_id: &str) -> String {
    format!("{TOOLS_VOLUME_PREFIX}{}", name_part(run_id))
}

/// `run_id` as a part of a volume's name: itself when valid (every id
/// codegenie makes is), else a hash of it.
fn name_part(run_id: &str) -> String {
    let valid = !run_id.is_empty()
        && run_id.len() <= 128
        && run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        run_id.to_owned()
    } else {
        blake3::hash(run_id.as_bytes()).to_hex()[..32].to_owned()
    }
}

/// How a tool volume is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFill {
    /// A copy into the volume's folder where that folder is on this machine
    /// (see [`Engine::make_trace_volume`]), else an upload.
    Nearest,
    /// Through the engine alone, as for an engine on another machine: a
    /// container of the template image (never started, hardened, each of
    /// the image's volumes a tmpfs so that no other volume is made) mounts
    /// the volume, the folder is uploaded there, and the container is
    /// removed.
    Upload,
}

/// A scenario container's trace volume: its name, and the folder on this
/// machine that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceVolume {
    /// The volume's name.
    pub name: String,
    /// The volume's folder on this machine (mode 0777: strace writes there
    /// as the image's user, whoever that is).
    pub host_dir: PathBuf,
}

/// A trace that could not be read from its volume's folder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceVolumeError {
    /// The trace could not be opened or read.
    #[error("cannot read the trace {path} in its volume")]
    Read {
        /// The trace's path on this machine.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Something other than a regular file is where the trace should be
    /// (the app can write in the folder): it is neither followed nor read.
    #[error("{path} in the trace volume is not a regular file; it is not read")]
    NotAFile {
        /// The trace's path on this machine.
        path: PathBuf,
    },
    /// The copy could not be written.
    #[error("cannot write the trace's copy {path}")]
    Write {
        /// The copy's path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// What a capped copy of a trace brought over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceRead {
    /// The trace's full size.
    pub size: u64,
    /// The bytes copied (at most the cap).
    pub written: u64,
}

impl TraceVolume {
    /// The file `name` in the volume and its size, opened for reading
    /// without following a link and without blocking (the app can write in
    /// the folder: it could leave a link to this machine's files, or a
    /// FIFO, in its place), and only if it is a regular file.
    pub fn open(&self, name: &str) -> Result<(File, u64), TraceVolumeError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.host_dir.join(name);
        let read = |source| TraceVolumeError::Read {
            path: path.clone(),
            source,
        };
        let src = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| match e.raw_os_error() {
                // O_NOFOLLOW on a link.
                Some(nix::libc::ELOOP) => TraceVolumeError::NotAFile { path: path.clone() },
                _ => read(e),
            })?;
        let meta = src.metadata().map_err(read)?;
        if !meta.is_file() {
            return Err(TraceVolumeError::NotAFile { path });
        }
        Ok((src, meta.len()))
    }

    /// Copy at most `limit` bytes of the file `name` in the volume to
    /// `dest`, opened as [`TraceVolume::open`] opens it.
    pub fn copy_capped(
        &self,
        name: &str,
        dest: &Path,
        limit: u64,
    ) -> Result<TraceRead, TraceVolumeError> {
        use std::io::{Read, Write};
        let (src, size) = self.open(name)?;
        let path = self.host_dir.join(name);
        let read = |source| TraceVolumeError::Read {
            path: path.clone(),
            source,
        };
        let write = |source| TraceVolumeError::Write {
            path: dest.to_owned(),
            source,
        };
        let mut out = File::create(dest).map_err(write)?;
        let mut capped = src.take(limit);
        let mut buf = vec![0u8; 256 << 10];
        let mut written = 0u64;
        loop {
            let n = match capped.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read(e)),
            };
            out.write_all(&buf[..n]).map_err(write)?;
            written += n as u64;
        }
        Ok(TraceRead {
            size: size.max(written),
            written,
        })
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

/// Copy the host folder `src`'s contents into the folder `dest`: folders,
/// files and links as they are (a link is made again, not followed), modes
/// kept.
fn copy_tree(src: &Path, dest: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let (from, to) = (entry.path(), dest.join(entry.file_name()));
        let meta = std::fs::symlink_metadata(&from)?;
        if meta.is_dir() {
            std::fs::create_dir(&to)?;
            copy_tree(&from, &to)?;
            std::fs::set_permissions(&to, meta.permissions())?;
        } else if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else {
            // `fs::copy` keeps the mode.
            std::fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

impl Engine {
    /// Whether tool volumes can be made here: the engine is reached through
    /// its API (the CLI path keeps tool images and per-scenario copies).
    pub fn has_tool_volumes(&self) -> bool {
        self.api().is_some()
    }

    /// Make run `run_id`'s tool volume holding the contents of the host
    /// folder `src`, filled as `fill` says, and return its name. The volume
    /// is removed again if filling it fails.
    pub fn make_tool_volume(
        &self,
        template: &str,
        image_volumes: &[String],
        run_id: &str,
        src: &Path,
        dest: &str,
        fill: ToolFill,
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
        let folder = api.create_volume(&name, labels.clone())?;
        let here = self
            .local_folder(&folder)
            .filter(|_| fill == ToolFill::Nearest);
        let filled = match here {
            // A copy on this machine: no container, no archive request (the
            // engine starts a process of its own for each, and mounts the
            // container's filesystem).
            Some(dir) => copy_tree(src, &dir).map_err(|e| EngineError::ToolContext {
                path: dir,
                source: Arc::new(e),
            }),
            None => (|| {
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
                let removed = api.remove(&container).map(|_| ());
                uploaded.and(removed)
            })(),
        };
        if let Err(e) = filled {
            if let Err(again) = api.remove_volume(&name) {
                tracing::warn!(volume = %name, error = %crate::errors::error_chain(&again), "cannot remove a tool volume that was not filled");
            }
            return Err(e);
        }
        Ok(name)
    }

    /// The folder of a volume this engine mounts at `mount_point`, where
    /// that folder is on this machine: the engine runs here (a unix
    /// socket) and the path is a folder, not a link. A volume's name is
    /// new, so an engine elsewhere (in a VM) cannot name a folder that is
    /// here by chance.
    fn local_folder(&self, mount_point: &str) -> Option<PathBuf> {
        let dir = PathBuf::from(mount_point);
        let here = self.is_local()
            && dir.is_absolute()
            && std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir());
        here.then_some(dir)
    }

    /// Make the trace volume numbered `n` of run `run_id` where the engine
    /// runs on this machine, reached through its API, and this process can
    /// open the volume's folder to every user; `None` anywhere else (the
    /// trace is then written in the container's writable layer, as before).
    pub fn make_trace_volume(
        &self,
        run_id: &str,
        n: u64,
    ) -> Result<Option<TraceVolume>, EngineError> {
        let Some(api) = self.api().filter(|_| self.is_local()) else {
            return Ok(None);
        };
        let name = format!("{TRACE_VOLUME_PREFIX}{}-{n}", name_part(run_id));
        let mut labels = HashMap::from([(RUN_LABEL.to_owned(), run_id.to_owned())]);
        if let Some(me) = orphans::current() {
            labels.insert(TOOLS_OWNER_LABEL.to_owned(), me.label_value());
        }
        let folder = api.create_volume(&name, labels)?;
        let opened = self.local_folder(&folder).filter(|dir| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).is_ok()
        });
        let Some(host_dir) = opened else {
            if let Err(e) = api.remove_volume(&name) {
                tracing::warn!(volume = %name, error = %crate::errors::error_chain(&e), "cannot remove a trace volume this process cannot open");
            }
            return Ok(None);
        };
        Ok(Some(TraceVolume { name, host_dir }))
    }

    /// Remove a tool or trace volume (every container using it must be gone).
    pub fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
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

    /// Remove the tool and trace volumes of every run `run` covers (itself
    /// and its parts); returns how many. API only: the CLI path makes none.
    pub fn remove_run_volumes_under(&self, run: &str) -> Result<usize, EngineError> {
        let Some(api) = self.api() else {
            return Ok(0);
        };
        let mut removed = 0;
        for (name, labels) in api.volumes_labelled(TOOLS_OWNER_LABEL)? {
            let ours = is_run_volume(&name)
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

    /// Remove the tool and trace volumes made by processes of this host that are gone
    /// (after their containers); returns how many. A volume still in use is
    /// left for a later sweep.
    pub(super) fn sweep_tool_volumes(&self, me: &orphans::Owner) -> Result<usize, EngineError> {
        let Some(api) = self.api() else {
            return Ok(0);
        };
        let mut removed = 0;
        for (name, labels) in api.volumes_labelled(TOOLS_OWNER_LABEL)? {
            let gone = is_run_volume(&name)
                && labels
                    .get(TOOLS_OWNER_LABEL)
                    .and_then(|v| orphans::Owner::parse(v))
                    .is_some_and(|o| o.is_gone(me));
            if !gone {
                continue;
            }
            match api.remove_volume(&name) {
                Ok(()) => {
                    tracing::info!(volume = %name, "removed a leftover volume");
                    removed += 1;
                }
                Err(e) => {
                    tracing::warn!(volume = %name, error = %crate::errors::error_chain(&e), "cannot remove a leftover volume")
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
