//! The run journal (docs/architecture.md, "Portfolio"): one JSON file in the
//! portfolio's state folder, rewritten atomically at every change of a
//! repository's state, so a run killed at any moment leaves a journal that
//! says what is done. A later run skips a repository whose entry is `done`
//! with the same fingerprint (its files, its scenario file, the minimize
//! setting); everything else runs again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic_file::{write_atomically, AtomicWriteError};
use crate::inputs::walk::match_and_hash;
use crate::inputs::CacheKeyError;

use super::manifest::RepoEntry;
use super::report::RepoReport;

/// The journal's file name in the state folder.
pub const JOURNAL_FILE: &str = "journal.json";
const JOURNAL_VERSION: u32 = 1;

/// A repository's state in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// Started and not finished (a run that died leaves this: run again).
    Running,
    /// Finished with evidence.
    Done,
    /// Finished without evidence.
    Failed,
}

/// One repository in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Its state.
    pub state: EntryState,
    /// The engine it is or was on.
    pub engine: String,
    /// What its evidence depends on, when computed.
    pub fingerprint: Option<String>,
    /// Its report line when finished.
    pub report: Option<RepoReport>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct JournalFile {
    version: u32,
    repositories: BTreeMap<String, JournalEntry>,
}

/// What went wrong with the journal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The journal exists but cannot be read.
    #[error("cannot read the portfolio journal {path}")]
    Read {
        /// The journal.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The journal is not one this build wrote: it is left alone.
    #[error("the portfolio journal {path} is not readable by this build; move it away (or pass --fresh) to start over")]
    Corrupt {
        /// The journal.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Writing it failed.
    #[error("cannot write the portfolio journal")]
    Write(#[from] AtomicWriteError),
    /// A repository's fingerprint could not be computed.
    #[error("cannot fingerprint repository {repo}")]
    Fingerprint {
        /// The repository.
        repo: String,
        /// Why.
        #[source]
        source: CacheKeyError,
    },
}

/// The journal of one portfolio.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: JournalFile,
}

impl Journal {
    /// Open the journal in `state_dir` (empty when there is none yet).
    pub fn open(state_dir: &Path) -> Result<Journal, JournalError> {
        let path = state_dir.join(JOURNAL_FILE);
        let file = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: JournalFile =
                    serde_json::from_slice(&bytes).map_err(|source| JournalError::Corrupt {
                        path: path.clone(),
                        source,
                    })?;
                if file.version != JOURNAL_VERSION {
                    return Err(JournalError::Corrupt {
                        path,
                        source: serde::de::Error::custom(format!(
                            "version {} (this build writes {JOURNAL_VERSION})",
                            file.version
                        )),
                    });
                }
                file
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => JournalFile {
                version: JOURNAL_VERSION,
                repositories: BTreeMap::new(),
            },
            Err(source) => return Err(JournalError::Read { path, source }),
        };
        Ok(Journal { path, file })
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry of repository `name`.
    pub fn entry(&self, name: &str) -> Option<&JournalEntry> {
        self.file.repositories.get(name)
    }

    /// Set the entry of `name` and write the journal.
    pub fn record(&mut self, name: &str, entry: JournalEntry) -> Result<(), JournalError> {
        self.file.repositories.insert(name.to_owned(), entry);
        self.save()
    }

    fn save(&self) -> Result<(), JournalError> {
        write_atomically(&self.path, |w| {
            // Its reports carry errors and argv, redacted as the fleet
            // report's are; fingerprints are hashes, which no rule matches.
            let mut tree = serde_json::to_value(&self.file).map_err(std::io::Error::other)?;
            crate::redact::redact_json(&mut tree);
            serde_json::to_writer_pretty(&mut *w, &tree).map_err(std::io::Error::other)?;
            w.write_all(b"\n")
        })?;
        Ok(())
    }
}

/// What a repository's evidence depends on: every file of the repository
/// (`.git/` and codegenie's outputs aside), the scenario file the manifest
/// gives it, and whether it is minimized.
pub fn fingerprint(repo: &RepoEntry, minimize: bool) -> Result<String, JournalError> {
    let err = |source| JournalError::Fingerprint {
        repo: repo.name.clone(),
        source,
    };
    let globs = ["**".to_owned(), ".codegenie/scenarios.yaml".to_owned()];
    let matches = match_and_hash(&repo.root, &globs).map_err(err)?;
    let mut h = blake3::Hasher::new();
    let mut field = |bytes: &[u8]| {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    for g in &matches {
        for f in &g.files {
            field(f.path.as_bytes());
            field(f.blake3.as_bytes());
        }
    }
    match &repo.scenarios {
        Some(p) => {
            let digest = crate::inputs::walk::hash_file(p, &mut vec![0; 64 * 1024]).map_err(err)?;
            field(b"scenarios");
            field(digest.as_bytes());
        }
        None => field(b"no scenarios"),
    }
    field(if minimize { b"minimize" } else { b"trace only" });
    Ok(h.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dir: &Path) -> RepoEntry {
        RepoEntry {
            name: "a".into(),
            root: dir.to_owned(),
            scenarios: None,
            line: None,
        }
    }

    #[test]
    fn fingerprints_follow_content_and_settings() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        let e = entry(d.path());
        let a = fingerprint(&e, false).unwrap();
        assert_eq!(a, fingerprint(&e, false).unwrap(), "stable");
        assert_ne!(a, fingerprint(&e, true).unwrap(), "minimize counts");
        // Codegenie's own outputs do not count.
        std::fs::create_dir_all(d.path().join(".codegenie/context")).unwrap();
        std::fs::write(d.path().join(".codegenie/context/x.json"), "{}").unwrap();
        assert_eq!(a, fingerprint(&e, false).unwrap());
        std::fs::write(d.path().join(".codegenie/scenarios.yaml"), "version: 1\n").unwrap();
        let b = fingerprint(&e, false).unwrap();
        assert_ne!(a, b, "the repository's scenario file counts");
        std::fs::write(d.path().join("Dockerfile"), "FROM scratch\nCMD [\"x\"]\n").unwrap();
        assert_ne!(b, fingerprint(&e, false).unwrap(), "content counts");
    }

    #[test]
    fn the_journal_survives_a_reopen_and_refuses_garbage() {
        let d = tempfile::tempdir().unwrap();
        let mut j = Journal::open(d.path()).unwrap();
        assert!(j.entry("a").is_none());
        let e = JournalEntry {
            state: EntryState::Running,
            engine: "unix:///x.sock".into(),
            fingerprint: Some("f".into()),
            report: None,
        };
        j.record("a", e.clone()).unwrap();
        assert_eq!(Journal::open(d.path()).unwrap().entry("a"), Some(&e));
        std::fs::write(d.path().join(JOURNAL_FILE), "{not json").unwrap();
        assert!(matches!(
            Journal::open(d.path()),
            Err(JournalError::Corrupt { .. })
        ));
    }
}
