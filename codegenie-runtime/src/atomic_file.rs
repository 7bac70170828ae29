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

/// Whether [`write_atomically`] could replace `dest` now, asked without
/// touching `dest`: its folder must exist (it is not created here), `dest`
/// must not be a folder, and a temp file must be creatable beside it (the
/// probe file is removed at once). Used before long work whose result goes
/// to `dest`, so that an unwritable path fails first.
pub(crate) fn check_writable(dest: &Path) -> Result<(), AtomicWriteError> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if dest.is_dir() {
        return Err(at(dest)(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "it is a folder",
        )));
    }
    if dest.file_name().is_none() {
        return Err(at(dest)(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "it names no file",
        )));
    }
    let probe = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(at(dir))?;
    probe.close().map_err(at(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writability_is_checked_without_creating_anything() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("report.xml");
        check_writable(&dest).unwrap();
        // Nothing is left behind: neither the file nor the probe.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let missing = dir.path().join("no/such/report.xml");
        let e = check_writable(&missing).unwrap_err();
        assert_eq!(e.source.kind(), std::io::ErrorKind::NotFound);
        assert!(!dir.path().join("no").exists());
        let e = check_writable(dir.path()).unwrap_err();
        assert_eq!(e.source.kind(), std::io::ErrorKind::IsADirectory);
        // Control: the same file is then written.
        write_atomically(&dest, |w| w.write_all(b"x")).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"x");
        check_writable(&dest).unwrap();
    }
}
