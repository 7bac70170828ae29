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

/// What `.codegenie/.gitignore` says: nothing of codegenie's state is
/// committed (a committed cache would be served to every clone; see
/// docs/architecture.md, "Repository state"), only the scenario file, which
/// is the repository's own input.
pub const GITIGNORE: &str = "# codegenie's state (cache, evidence, work folders): never committed.\n*\n!/.gitignore\n!/scenarios.yaml\n";

/// Make `.codegenie/` in the repository at `root` and its `.gitignore`
/// ([`GITIGNORE`]) when either is missing; an existing `.gitignore` is the
/// repository's and stays as it is. Call after [`check_state_dirs`].
pub fn ensure_state_dir(root: &Path) -> Result<(), StateDirError> {
    let dir = root.join(".codegenie");
    std::fs::create_dir_all(&dir).map_err(|source| StateDirError::Io {
        path: dir.clone(),
        source,
    })?;
    let path = dir.join(".gitignore");
    // `create_new` never follows a link in the last component: a planted
    // `.gitignore` link is left alone, not written through.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut f) => std::io::Write::write_all(&mut f, GITIGNORE.as_bytes())
            .map_err(|source| StateDirError::Io { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StateDirError::Io { path, source }),
    }
}

/// Whether the git index of the repository at `root` (`<root>/.git/index`)
/// lists a file under `.codegenie/cache/`: a cache that came with the
/// repository, which the run must not trust. A plain byte search: index
/// versions 2 and 3 store each path whole; version 4 prefix-compresses paths
/// and a linked worktree keeps its index elsewhere, so there this can miss
/// (docs/architecture.md, "Repository state"). No index: `Ok(false)`.
pub fn git_tracks_cache(root: &Path) -> Result<bool, StateDirError> {
    let path = root.join(".git/index");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(false)
        }
        Err(source) => return Err(StateDirError::Io { path, source }),
    };
    // Anywhere in the index: a nested repository's cache matches too, which
    // costs an uncached run, never a trusted entry.
    const NEEDLE: &[u8] = b".codegenie/cache/";
    Ok(bytes.windows(NEEDLE.len()).any(|w| w == NEEDLE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_folder_gets_a_gitignore_once_and_a_users_own_is_kept() {
        let repo = tempfile::tempdir().unwrap();
        ensure_state_dir(repo.path()).unwrap();
        let path = repo.path().join(".codegenie/.gitignore");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), GITIGNORE);
        std::fs::write(&path, "cache/\n").unwrap();
        ensure_state_dir(repo.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "cache/\n");
    }

    #[test]
    fn a_cache_in_the_git_index_is_seen() {
        let repo = tempfile::tempdir().unwrap();
        assert!(!git_tracks_cache(repo.path()).unwrap(), "no .git");
        std::fs::create_dir(repo.path().join(".git")).unwrap();
        let index = repo.path().join(".git/index");
        // An entry's path follows its 16-bit flags (the low 12 bits: its length).
        std::fs::write(&index, b"DIRC\0\0\0\x02\0\x19.codegenie/scenarios.yaml\0").unwrap();
        assert!(
            !git_tracks_cache(repo.path()).unwrap(),
            "only the scenarios"
        );
        std::fs::write(
            &index,
            b"DIRC\0\0\0\x02\0\x1c.codegenie/cache/ab/ab12.json\0",
        )
        .unwrap();
        assert!(git_tracks_cache(repo.path()).unwrap());
    }

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
