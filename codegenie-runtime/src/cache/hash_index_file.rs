//! The repository's hash index on disk: `.codegenie/cache/hash-index.json`,
//! shared by every probe (see [`crate::inputs::hash_index`]).

use std::path::PathBuf;

use super::store::{io, CacheStore, StoreError};
use crate::atomic_file::write_atomically;
use crate::inputs::hash_index::{HashIndex, HASH_INDEX_FORMAT};

impl CacheStore {
    fn hash_index_path(&self) -> PathBuf {
        self.dir().join("hash-index.json")
    }

    /// The saved hash index; empty when none was saved. An unreadable index is
    /// [`StoreError::Corrupt`] (callers start from an empty one).
    pub fn load_hash_index(&self) -> Result<HashIndex, StoreError> {
        let path = self.hash_index_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashIndex::new()),
            Err(e) => return Err(io(&path, e)),
        };
        let index: HashIndex = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            reason: format!("not a readable hash index ({e})"),
        })?;
        if index.format != HASH_INDEX_FORMAT {
            return Err(StoreError::Corrupt {
                path,
                reason: format!("unknown format `{}`", index.format),
            });
        }
        Ok(index)
    }

    /// Save the hash index atomically (the last of two concurrent savers wins;
    /// every entry is checked against the file before use, so either is fine).
    pub fn save_hash_index(&self, index: &HashIndex) -> Result<(), StoreError> {
        let path = self.hash_index_path();
        let bytes = serde_json::to_vec(index).map_err(|source| StoreError::Json {
            probe: "hash-index".to_owned(),
            source,
        })?;
        write_atomically(&path, |w| w.write_all(&bytes))?;
        Ok(())
    }
}
