//! Atomic file replacement: a temp file in the destination's folder, filled,
//! synced, then renamed over the destination, so a reader sees the old file
//! or the new one, never a partial one. The writer and the cache both store
//! through it.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A file could not be written in place.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}")]
pub struct AtomicWriteError {
    /// The file (or folder) concerned.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> AtomicWriteError + '_ {
    move |source| AtomicWriteError {
        path: path.to_owned(),
        source,
    }
}

/// Write `dest` atomically: `fill` writes into a temp file in the same folder,
/// which is synced and renamed over `dest` only if `fill` succeeded.
pub(crate) fn write_atomically<T>(
    dest: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<T>,
) -> Result<T, AtomicWriteError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(at(dir))?;
    let value = {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        let v = fill(&mut w).map_err(at(dest))?;
        w.flush().map_err(at(dest))?;
        v
    };
    tmp.as_file().sync_all().map_err(at(dest))?;
    tmp.persist(dest).map_err(|e| at(dest)(e.error))?;
    Ok(value)
}
