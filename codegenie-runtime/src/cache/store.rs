//! The on-disk store: `.codegenie/cache/<2 hex>/<key>.json`, one entry per key.
//!
//! - Atomic: every file is written to a temp file in the same folder and renamed
//!   into place, so a reader sees a whole old file or a whole new one. Two
//!   processes storing the same key both rename a complete entry; the last
//!   rename wins and both entries are valid.
//! - Self-checking: an entry embeds its payload as text with the payload's
//!   blake3 and length; artifacts are content-addressed blobs
//!   (`blobs/<2 hex>/<blake3>`) checked on every read. A truncated, garbled or
//!   mismatched entry is a [`StoreError::Corrupt`], which callers treat as a miss.
//! - Redacted: slices, warnings and artifacts go through the redactor before
//!   they touch the disk, as everything the writer writes does.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::key::is_key;
use crate::atomic_file::{write_atomically, AtomicWriteError};
use crate::probe::{Artifact, ArtifactSource, Confidence, ProbeOutput};
use crate::redact::{self, Redactor};

/// Format tag of an entry file; entries of another format are misses.
pub const ENTRY_FORMAT: &str = "codegenie.cache-entry.v1";
/// Unreferenced blobs younger than this are left to a store in progress.
const BLOB_GRACE: Duration = Duration::from_secs(600);
/// Temp files older than this are leftovers of an interrupted write.
const TMP_GRACE: Duration = Duration::from_secs(3600);

/// Why the store could not read or write.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A key that is not 64 lowercase hex digits.
    #[error("`{0}` is not a cache key (64 lowercase hex digits)")]
    BadKey(String),
    /// A probe name that cannot name a file.
    #[error("probe name `{0}` cannot name a cache file (expected [a-z0-9_-]+)")]
    BadProbeName(String),
    /// An I/O error on a path.
    #[error("{path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// An entry that fails its checks (truncated, garbled, wrong checksum, missing blob).
    #[error("corrupt cache entry {path}: {reason}")]
    Corrupt {
        /// The entry.
        path: PathBuf,
        /// What check failed.
        reason: String,
    },
    /// An output that cannot be serialised.
    #[error("cannot serialise the cache entry of `{probe}`")]
    Json {
        /// The probe.
        probe: String,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// The atomic write failed.
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
}

/// An entry file as stored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    format: String,
    probe: String,
    key: String,
    /// Unix seconds; informative only (pruning uses the file's mtime).
    stored_at: u64,
    payload_len: u64,
    payload_blake3: String,
    /// The [`CachedOutput`] as JSON text, so the checksum covers exact bytes.
    payload: String,
}

/// A probe output as cached: artifacts by blob reference.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CachedOutput {
    schema_slice: serde_json::Value,
    confidence: Confidence,
    warnings: Vec<String>,
    artifacts: Vec<CachedArtifact>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CachedArtifact {
    name: String,
    /// Whether the probe handed bytes (returned as bytes) or a file (returned
    /// as the blob's path).
    in_memory: bool,
    blob: String,
    size: u64,
}

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Bytes of entries and blobs before.
    pub bytes_before: u64,
    /// Bytes of entries and blobs after.
    pub bytes_after: u64,
    /// Entries before.
    pub entries_before: usize,
    /// Entries removed (oldest use first, corrupt ones always).
    pub entries_removed: usize,
    /// Blobs removed (no longer referenced).
    pub blobs_removed: usize,
}

/// The store of one repository.
#[derive(Debug, Clone)]
pub struct CacheStore {
    dir: PathBuf,
}

impl CacheStore {
    /// The store in `dir` (usually `<repo>/.codegenie/cache`); created on first write.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CacheStore { dir: dir.into() }
    }

    /// The store of the repository at `root`.
    pub fn for_repo_root(root: &Path) -> Self {
        Self::new(root.join(".codegenie").join("cache"))
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the entry for `key` lives.
    pub fn entry_path(&self, key: &str) -> Result<PathBuf, StoreError> {
        if !is_key(key) {
            return Err(StoreError::BadKey(key.to_owned()));
        }
        Ok(self.dir.join(&key[..2]).join(format!("{key}.json")))
    }

    fn blob_path(&self, hash: &str) -> Result<PathBuf, StoreError> {
        if !is_key(hash) {
            return Err(StoreError::BadKey(hash.to_owned()));
        }
        Ok(self.dir.join("blobs").join(&hash[..2]).join(hash))
    }

    /// Remove the entry for `key` (its blobs go at the next prune); whether
    /// there was one.
    pub fn remove(&self, key: &str) -> Result<bool, StoreError> {
        let path = self.entry_path(key)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Whether an entry file exists for `key` (without checking it).
    pub fn contains(&self, key: &str) -> bool {
        self.entry_path(key).is_ok_and(|p| p.is_file())
    }

    /// The output stored for `probe` under `key`: `Ok(None)` when there is
    /// none, [`StoreError::Corrupt`] when the entry fails a check.
    pub fn get(&self, probe: &str, key: &str) -> Result<Option<ProbeOutput>, StoreError> {
        self.read(probe, key, true)
    }

    /// Like [`CacheStore::get`] but does not count as a use for pruning.
    pub fn peek(&self, probe: &str, key: &str) -> Result<Option<ProbeOutput>, StoreError> {
        self.read(probe, key, false)
    }

    fn read(
        &self,
        probe: &str,
        key: &str,
        mark_used: bool,
    ) -> Result<Option<ProbeOutput>, StoreError> {
        check_probe_name(probe)?;
        let path = self.entry_path(key)?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path, e)),
        };
        let cached = decode_entry(&path, &bytes, Some((probe, key)))?;
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.clone(),
            reason,
        };
        let mut artifacts = Vec::with_capacity(cached.artifacts.len());
        for a in cached.artifacts {
            let blob = self
                .blob_path(&a.blob)
                .map_err(|e| corrupt(e.to_string()))?;
            let (hash, size) = hash_path(&blob).map_err(|e| {
                corrupt(format!(
                    "artifact `{}`: blob {}: {e}",
                    a.name,
                    blob.display()
                ))
            })?;
            if hash != a.blob || size != a.size {
                return Err(corrupt(format!(
                    "artifact `{}`: blob {} does not match its checksum",
                    a.name,
                    blob.display()
                )));
            }
            let source = if a.in_memory {
                ArtifactSource::Bytes(std::fs::read(&blob).map_err(|e| io(&blob, e))?)
            } else {
                ArtifactSource::File(blob)
            };
            artifacts.push(Artifact {
                name: a.name,
                source,
            });
        }
        // Pruning removes the least recently used first; a hit counts as a use.
        if mark_used {
            if let Err(e) = touch(&path) {
                tracing::debug!(path = %path.display(), error = %crate::errors::error_chain(&e), "cannot update the entry's mtime");
            }
        }
        Ok(Some(ProbeOutput {
            schema_slice: cached.schema_slice,
            confidence: cached.confidence,
            artifacts,
            warnings: cached.warnings,
            not_cacheable: None,
            typed: Default::default(),
        }))
    }

    /// Store `output` for `probe` under `key` (redacted, atomically).
    pub fn put(&self, probe: &str, key: &str, output: &ProbeOutput) -> Result<(), StoreError> {
        check_probe_name(probe)?;
        let path = self.entry_path(key)?;
        let mut artifacts = Vec::with_capacity(output.artifacts.len());
        for a in &output.artifacts {
            let (blob, size) = match &a.source {
                ArtifactSource::Bytes(b) => self.put_blob(&mut &b[..])?,
                ArtifactSource::File(src) => {
                    let f = std::fs::File::open(src).map_err(|e| io(src, e))?;
                    self.put_blob(&mut std::io::BufReader::new(f))?
                }
            };
            artifacts.push(CachedArtifact {
                name: a.name.clone(),
                in_memory: matches!(a.source, ArtifactSource::Bytes(_)),
                blob,
                size,
            });
        }
        let mut red = Redactor::new();
        let mut schema_slice = output.schema_slice.clone();
        red.redact_json(&mut schema_slice);
        let warnings = output.warnings.iter().map(|w| red.redact_str(w)).collect();
        let cached = CachedOutput {
            schema_slice,
            confidence: output.confidence,
            warnings,
            artifacts,
        };
        let json_err = |source| StoreError::Json {
            probe: probe.to_owned(),
            source,
        };
        let payload = serde_json::to_string(&cached).map_err(json_err)?;
        let entry = EntryFile {
            format: ENTRY_FORMAT.to_owned(),
            probe: probe.to_owned(),
            key: key.to_owned(),
            stored_at: unix_now(),
            payload_len: payload.len() as u64,
            payload_blake3: blake3::hash(payload.as_bytes()).to_hex().to_string(),
            payload,
        };
        let bytes = serde_json::to_vec(&entry).map_err(json_err)?;
        write_atomically(&path, |w| w.write_all(&bytes))?;
        Ok(())
    }

    /// Redact `r` into a temp file while hashing it, then rename it to its
    /// content address. Returns (blake3 hex, size).
    fn put_blob(&self, r: &mut dyn std::io::BufRead) -> Result<(String, u64), StoreError> {
        let dir = self.dir.join("blobs");
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(|e| io(&dir, e))?;
        let tmp_path = tmp.path().to_path_buf();
        let (hash, size) = {
            let mut w = HashingWriter {
                inner: std::io::BufWriter::new(tmp.as_file_mut()),
                hasher: blake3::Hasher::new(),
                len: 0,
            };
            redact::redact_stream(r, &mut w).map_err(|e| io(&tmp_path, e))?;
            w.inner.flush().map_err(|e| io(&tmp_path, e))?;
            (w.hasher.finalize().to_hex().to_string(), w.len)
        };
        tmp.as_file().sync_all().map_err(|e| io(&tmp_path, e))?;
        let dest = self.blob_path(&hash)?;
        let parent = dest.parent().unwrap_or(&dir);
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        // Same content, same name: replacing a concurrent writer's blob is harmless.
        tmp.persist(&dest).map_err(|e| io(&dest, e.error))?;
        Ok((hash, size))
    }

    /// Remove entries, least recently used first, until entries and blobs take
    /// at most `max_bytes`; corrupt entries, unreferenced blobs and stale temp
    /// files are removed whatever the size.
    pub fn prune(&self, max_bytes: u64) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport::default();
        let mut entries: Vec<(PathBuf, u64, SystemTime, Vec<String>)> = Vec::new();
        let mut blobs: std::collections::BTreeMap<String, (PathBuf, u64, SystemTime)> =
            Default::default();
        let now = SystemTime::now();
        for shard in read_dir_opt(&self.dir)? {
            let name = shard.file_name().to_string_lossy().into_owned();
            if name == "blobs" {
                for blob_shard in read_dir_opt(&shard.path())? {
                    for blob in read_dir_opt(&blob_shard.path())? {
                        let (size, mtime) = size_mtime(&blob.path())?;
                        let name = blob.file_name().to_string_lossy().into_owned();
                        if is_key(&name) {
                            blobs.insert(name, (blob.path(), size, mtime));
                        } else {
                            remove_if_stale(&blob.path(), mtime, now)?;
                        }
                    }
                }
                continue;
            }
            if name.starts_with(".tmp-") {
                let (_, mtime) = size_mtime(&shard.path())?;
                remove_if_stale(&shard.path(), mtime, now)?;
                continue;
            }
            if !(name.len() == 2 && is_hex(&name)) {
                continue;
            }
            for entry in read_dir_opt(&shard.path())? {
                let path = entry.path();
                let (size, mtime) = size_mtime(&path)?;
                let fname = entry.file_name().to_string_lossy().into_owned();
                if fname.starts_with(".tmp-") {
                    remove_if_stale(&path, mtime, now)?;
                    continue;
                }
                if !fname.ends_with(".json") {
                    continue;
                }
                report.entries_before += 1;
                report.bytes_before += size;
                let refs = std::fs::read(&path)
                    .map_err(|e| io(&path, e))
                    .and_then(|b| decode_entry(&path, &b, None));
                match refs {
                    Ok(c) => {
                        let refs = c.artifacts.into_iter().map(|a| a.blob).collect();
                        entries.push((path, size, mtime, refs));
                    }
                    Err(StoreError::Corrupt { .. }) => {
                        remove(&path)?;
                        report.entries_removed += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let mut refcount: std::collections::BTreeMap<String, usize> = Default::default();
        for (_, _, _, refs) in &entries {
            for r in refs {
                *refcount.entry(r.clone()).or_default() += 1;
            }
        }
        report.bytes_before += blobs.values().map(|b| b.1).sum::<u64>();
        // Orphans from interrupted stores (old enough not to be a store in progress).
        let orphans: Vec<String> = blobs
            .iter()
            .filter(|(h, (_, _, mtime))| {
                !refcount.contains_key(*h) && is_stale(*mtime, now, BLOB_GRACE)
            })
            .map(|(h, _)| h.clone())
            .collect();
        for h in orphans {
            if let Some((p, _, _)) = blobs.remove(&h) {
                remove(&p)?;
                report.blobs_removed += 1;
            }
        }
        let mut total: u64 =
            entries.iter().map(|e| e.1).sum::<u64>() + blobs.values().map(|b| b.1).sum::<u64>();
        entries.sort_by_key(|e| e.2);
        let mut kept = 0;
        for (path, size, _, refs) in &entries {
            if total <= max_bytes {
                kept += 1;
                continue;
            }
            remove(path)?;
            total -= size;
            report.entries_removed += 1;
            for r in refs {
                let n = refcount.entry(r.clone()).or_default();
                *n = n.saturating_sub(1);
                if *n == 0 {
                    if let Some((p, s, _)) = blobs.remove(r) {
                        remove(&p)?;
                        total -= s;
                        report.blobs_removed += 1;
                    }
                }
            }
        }
        tracing::info!(
            kept,
            removed = report.entries_removed,
            bytes = total,
            "cache pruned"
        );
        report.bytes_after = total;
        Ok(report)
    }
}

/// Parse and check an entry's bytes; `expect` = (probe, key) it must belong to.
fn decode_entry(
    path: &Path,
    bytes: &[u8],
    expect: Option<(&str, &str)>,
) -> Result<CachedOutput, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let entry: EntryFile = serde_json::from_slice(bytes)
        .map_err(|e| corrupt(format!("not a readable entry ({e}); truncated or garbled")))?;
    if entry.format != ENTRY_FORMAT {
        return Err(corrupt(format!("unknown format `{}`", entry.format)));
    }
    if let Some((probe, key)) = expect {
        if entry.probe != probe || entry.key != key {
            return Err(corrupt(format!(
                "entry is for probe `{}` key {}, expected `{probe}` key {key}",
                entry.probe, entry.key
            )));
        }
    }
    let actual = blake3::hash(entry.payload.as_bytes()).to_hex().to_string();
    if entry.payload.len() as u64 != entry.payload_len || actual != entry.payload_blake3 {
        return Err(corrupt("payload does not match its checksum".to_owned()));
    }
    serde_json::from_str(&entry.payload)
        .map_err(|e| corrupt(format!("payload is not a cached output: {e}")))
}

/// Probe names become file names (entries are checked against them, manifests
/// are named after them): only `[a-z0-9_-]+`.
pub(crate) fn check_probe_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadProbeName(name.to_owned()))
    }
}

fn is_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

struct HashingWriter<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
    len: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hash_path(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    crate::inputs::walk::blake3_of(&mut f, &mut vec![0u8; 64 * 1024])
}

fn touch(path: &Path) -> std::io::Result<()> {
    std::fs::File::options()
        .write(true)
        .open(path)?
        .set_modified(SystemTime::now())
}

pub(crate) fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The entries of a folder; none when it does not exist (yet, or any more).
fn read_dir_opt(dir: &Path) -> Result<Vec<std::fs::DirEntry>, StoreError> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd.collect::<Result<Vec<_>, _>>().map_err(|e| io(dir, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io(dir, e)),
    }
}

fn size_mtime(path: &Path) -> Result<(u64, SystemTime), StoreError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok((m.len(), m.modified().map_err(|e| io(path, e))?)),
        // Removed by a concurrent prune: nothing left to count.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((0, SystemTime::UNIX_EPOCH)),
        Err(e) => Err(io(path, e)),
    }
}

fn is_stale(mtime: SystemTime, now: SystemTime, grace: Duration) -> bool {
    now.duration_since(mtime).is_ok_and(|age| age >= grace)
}

fn remove_if_stale(path: &Path, mtime: SystemTime, now: SystemTime) -> Result<(), StoreError> {
    if is_stale(mtime, now, TMP_GRACE) {
        remove(path)?;
    }
    Ok(())
}

/// Remove a file; already gone (a concurrent prune) is fine.
fn remove(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path, e)),
    }
}
