//! Where a run's raw (unredacted) traces wait for the writer: one folder per
//! run, inside the coordinator's scratch folder when there is one (removed
//! with the probe's record), else under `.codegenie/work/runtime_trace/`.
//! Concurrent runs on one repository never share a folder.

use std::path::{Path, PathBuf};

use crate::probe::RepoSnapshot;

use super::error::TraceError;
use super::settings::RunId;

/// The folder of run `run_id` when no scratch folder is given.
pub fn work_dir(repo: &RepoSnapshot, run_id: &RunId) -> PathBuf {
    repo.codegenie_dir()
        .join("work")
        .join("runtime_trace")
        .join(run_id.as_str())
}

/// The folder of this run's raw traces: inside `scratch` (the
/// coordinator's), else [`work_dir`].
pub(crate) fn run_work_dir(repo: &RepoSnapshot, scratch: Option<&Path>, run_id: &RunId) -> PathBuf {
    match scratch {
        Some(scratch) => scratch.join(run_id.as_str()),
        None => work_dir(repo, run_id),
    }
}

/// Remove the raw traces of run `run_id` once the writer has stored the
/// redacted copies and the cache its blobs.
pub fn clean_work_dir(repo: &RepoSnapshot, run_id: &RunId) -> std::io::Result<()> {
    match std::fs::remove_dir_all(work_dir(repo, run_id)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// An empty `dir`, whatever was there.
pub(crate) fn reset_dir(dir: &Path) -> Result<(), TraceError> {
    let io = |source| TraceError::Io {
        path: dir.to_owned(),
        source,
    };
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(io(source)),
    }
    std::fs::create_dir_all(dir).map_err(io)
}
