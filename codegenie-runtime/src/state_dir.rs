//! codegenie's state folders in a repository (`.codegenie/`, its `cache/`,
//! `context/` and `work/`) must stay inside the repository: a symlink that
//! leads elsewhere would make codegenie write (and later remove) files
//! outside it, so it is refused before anything is written
//! (docs/architecture.md, "Repository state").

use std::path::{Path, PathBuf};

/// The state folder and the folders codegenie writes under it.
const CHECKED: [&str; 4] = [
    ".codegenie",
    ".codegenie/cache",
    ".codegenie/context",
    ".codegenie/work",
];

/// A state folder that leads out of the repository.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateDirError {
    /// The folder resolves outside the repository.
    #[error("{path} leads out of the repository (to {target}); codegenie writes its state only inside the repository: replace the link with a folder")]
    Escapes {
        /// The state folder as named in the repository.
        path: PathBuf,
        /// Where it resolves to.
        target: PathBuf,
    },
    /// The folder exists but cannot be resolved.
    #[error("cannot resolve {path}")]
    Io {
        /// The state folder.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Check that every existing state folder of the repository at `root`
/// resolves inside it (missing ones are fine: they are created as folders).
pub fn check_state_dirs(root: &Path) -> Result<(), StateDirError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StateDirError::Io { path, source }
    };
    let root = std::fs::canonicalize(root).map_err(io(root))?;
    for rel in CHECKED {
        let path = root.join(rel);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&path)(e)),
            Ok(_) => {}
        }
        let target = match std::fs::canonicalize(&path) {
            Ok(t) => t,
            // A dangling link: where it would lead cannot be checked.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let target = std::fs::read_link(&path).unwrap_or_default();
                return Err(StateDirError::Escapes { path, target });
            }
            Err(e) => return Err(io(&path)(e)),
        };
        if !target.starts_with(&root) {
            return Err(StateDirError::Escapes { path, target });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_folder_leading_out_is_refused_and_an_inner_link_is_not() {
        let repo = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let cg = repo.path().join(".codegenie");
        std::fs::create_dir(&cg).unwrap();
        assert!(check_state_dirs(repo.path()).is_ok());
        // The control: a link that stays inside the repository is fine.
        std::fs::create_dir(repo.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink("../elsewhere", cg.join("cache")).unwrap();
        assert!(check_state_dirs(repo.path()).is_ok());
        std::os::unix::fs::symlink(outside.path(), cg.join("context")).unwrap();
        let e = check_state_dirs(repo.path()).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, StateDirError::Escapes { .. }), "{msg}");
        assert!(
            msg.contains(".codegenie/context leads out of the repository"),
            "{msg}"
        );
    }
}
