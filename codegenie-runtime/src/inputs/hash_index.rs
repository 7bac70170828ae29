//! An index of content hashes keyed by file metadata, so an unchanged file is
//! not read again (as git's index does). Keys stay content-addressed: the hash index
//! only saves recomputing a blake3 that is known.
//!
//! A remembered hash is reused only when size, mtime, ctime, inode and device
//! are all unchanged *and* the file's last change (mtime or ctime, whichever
//! is later) is more than [`RACY_MARGIN_NS`] older than the moment its hash was
//! taken. Any write updates ctime, which no user call can set back, and the
//! margin rules out a write in the same timestamp tick as the hashing.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A change this close to the hashing time makes an index entry untrusted.
pub const RACY_MARGIN_NS: i128 = 2_000_000_000;
/// Memo entries for files not seen for this long are dropped when saved.
const FORGET_AFTER_NS: i128 = 7 * 24 * 3600 * 1_000_000_000;
/// Format tag of a saved index.
pub const HASH_INDEX_FORMAT: &str = "codegenie.hash-index.v1";

/// The metadata an index entry is valid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i128,
    /// Status change time, ns since the epoch.
    pub ctime_ns: i128,
    /// Inode number.
    pub ino: u64,
    /// Device number.
    pub dev: u64,
}

impl FileStamp {
    /// The stamp of `meta` (from `lstat`).
    pub fn of(meta: &std::fs::Metadata) -> Self {
        FileStamp {
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }
}

/// One remembered hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The metadata when hashed.
    pub stamp: FileStamp,
    /// blake3 of the content, hex.
    pub blake3: String,
    /// When hashing started (ns since the epoch); reading came after.
    pub hashed_at_ns: i128,
}

impl IndexEntry {
    /// The hash, if this entry may stand for a file whose metadata is now `stamp`.
    pub fn reusable_for(&self, stamp: &FileStamp) -> Option<&str> {
        let last_change = self.stamp.mtime_ns.max(self.stamp.ctime_ns);
        (self.stamp == *stamp && last_change + RACY_MARGIN_NS < self.hashed_at_ns)
            .then_some(self.blake3.as_str())
    }
}

/// Remembered hashes by repository-relative path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashIndex {
    /// [`HASH_INDEX_FORMAT`].
    pub format: String,
    /// Entries by path.
    pub files: HashMap<String, IndexEntry>,
}

impl HashIndex {
    /// An empty index.
    pub fn new() -> Self {
        HashIndex {
            format: HASH_INDEX_FORMAT.to_owned(),
            files: HashMap::new(),
        }
    }

    /// Add `newer` (entries from a later walk) over `self`, and forget entries
    /// not refreshed for a week.
    pub fn merge(&mut self, newer: HashIndex) {
        self.files.extend(newer.files);
        let cutoff = now_ns() - FORGET_AFTER_NS;
        self.files.retain(|_, e| e.hashed_at_ns >= cutoff);
    }
}

/// Now, in ns since the epoch.
pub fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(t: i128) -> FileStamp {
        FileStamp {
            size: 1,
            mtime_ns: t,
            ctime_ns: t,
            ino: 7,
            dev: 1,
        }
    }

    #[test]
    fn reused_only_for_the_same_stamp_changed_well_before_hashing() {
        let e = IndexEntry {
            stamp: stamp(100),
            blake3: "h".into(),
            hashed_at_ns: 100 + RACY_MARGIN_NS + 1,
        };
        assert_eq!(e.reusable_for(&stamp(100)), Some("h"));
        assert_eq!(e.reusable_for(&stamp(101)), None);
        let racy = IndexEntry {
            hashed_at_ns: 100 + RACY_MARGIN_NS,
            ..e.clone()
        };
        assert_eq!(racy.reusable_for(&stamp(100)), None);
        let moved = FileStamp {
            ino: 8,
            ..stamp(100)
        };
        assert_eq!(e.reusable_for(&moved), None);
    }
}
