//! The content-addressed probe cache: key composition ([`key`]), the on-disk
//! store ([`store`]), the per-probe input manifests that explain a changed key
//! ([`manifest`]), and [`ContentCache`], the coordinator's cache.

pub mod explain;
mod hash_index_file;
pub mod key;
pub mod manifest;
pub mod store;

use std::path::Path;
use std::sync::Mutex;

pub use explain::{explain, EntryState, Explanation};
pub use key::compose_key;
pub use manifest::{diff, InputChange, InputManifest};
pub use store::{CacheStore, PruneReport, StoreError};

use crate::inputs::{resolve_inputs_with, CacheKeyError, HashIndex};
use crate::probe::{DynProbe, ProbeContext, ProbeOutput, RepoSnapshot};

/// An error of a [`ProbeCache`] implementation (for [`ContentCache`], a
/// [`StoreError`]).
pub type CacheError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The cache as the coordinator sees it. A lookup error is a miss (the
/// implementation logs why); a store error is recorded as a warning.
pub trait ProbeCache: Send + Sync {
    /// The cache key for `probe` on `repo`, or an error when it cannot be computed.
    fn key(
        &self,
        repo: &RepoSnapshot,
        name: &str,
        probe: &dyn DynProbe,
        ctx: &ProbeContext,
    ) -> Result<String, CacheKeyError>;
    /// A stored output for `key`, if any. An error is a miss that the
    /// coordinator records as a warning (a corrupt or truncated entry).
    fn get(&self, name: &str, key: &str) -> Result<Option<ProbeOutput>, CacheError>;
    /// Store an output under `key`.
    fn put(&self, name: &str, key: &str, output: &ProbeOutput) -> Result<(), CacheError>;
}

/// A stored entry that cannot be used: the lookup is a miss.
#[derive(Debug, thiserror::Error)]
#[error("unusable entry, treated as a miss")]
pub struct UnusableEntry {
    /// Why the entry cannot be used.
    #[source]
    pub source: StoreError,
}

/// Resolve `probe`'s declared inputs on `repo` and compose its key; returns
/// the manifest (key included).
pub fn manifest_for(
    repo: &RepoSnapshot,
    name: &str,
    probe: &dyn DynProbe,
    ctx: Option<&ProbeContext>,
) -> Result<InputManifest, CacheKeyError> {
    manifest_with_index(repo, name, probe, ctx, None).map(|(m, _)| m)
}

/// [`manifest_for`] reusing the hashes `index` remembers for unchanged files;
/// also returns the hash index entries of this walk.
pub fn manifest_with_index(
    repo: &RepoSnapshot,
    name: &str,
    probe: &dyn DynProbe,
    ctx: Option<&ProbeContext>,
    hash_index: Option<&HashIndex>,
) -> Result<(InputManifest, HashIndex), CacheKeyError> {
    let (inputs, fresh) = resolve_inputs_with(repo, probe.declared_inputs(), ctx, hash_index)?;
    let key = compose_key(name, probe.version(), &inputs);
    Ok((
        InputManifest::new(name, probe.version(), &key, inputs),
        fresh,
    ))
}

/// The cache the coordinator uses for one repository: keys from declared
/// inputs, entries in `<repo>/.codegenie/cache/`. Hashes of unchanged files are
/// remembered across runs in the store's hash index.
#[derive(Debug)]
pub struct ContentCache {
    store: CacheStore,
    /// Loaded on first use; `None` until then.
    hash_index: Mutex<Option<HashIndex>>,
}

impl ContentCache {
    /// The cache of the repository at `root`.
    pub fn for_repo_root(root: &Path) -> Self {
        Self::with_store(CacheStore::for_repo_root(root))
    }

    /// The cache over an explicit store.
    pub fn with_store(store: CacheStore) -> Self {
        ContentCache {
            store,
            hash_index: Mutex::new(None),
        }
    }

    /// The store.
    pub fn store(&self) -> &CacheStore {
        &self.store
    }

    /// Compute `probe`'s manifest with the hash index, and save the hash index when
    /// this walk learnt something.
    fn manifest(
        &self,
        repo: &RepoSnapshot,
        name: &str,
        probe: &dyn DynProbe,
        ctx: &ProbeContext,
    ) -> Result<InputManifest, CacheKeyError> {
        let mut guard = self.hash_index.lock().unwrap_or_else(|p| p.into_inner());
        let hash_index = guard.get_or_insert_with(|| {
            self.store.load_hash_index().unwrap_or_else(|e| {
                tracing::warn!(error = %crate::errors::error_chain(&e), "hash index unreadable; hashing every file");
                HashIndex::new()
            })
        });
        let (manifest, fresh) =
            manifest_with_index(repo, name, probe, Some(ctx), Some(hash_index))?;
        let learnt = fresh.files.iter().any(|(path, e)| {
            hash_index
                .files
                .get(path)
                .and_then(|old| old.reusable_for(&e.stamp))
                != Some(e.blake3.as_str())
        });
        if learnt {
            hash_index.merge(fresh);
            if let Err(e) = self.store.save_hash_index(hash_index) {
                tracing::warn!(error = %crate::errors::error_chain(&e), "cannot save the hash index");
            }
        }
        Ok(manifest)
    }

    /// Record `manifest` as the probe's last key, logging what changed since
    /// the previous one. Failing to record is logged, never fatal: it only
    /// feeds `cache explain`.
    fn record_manifest(&self, manifest: &InputManifest) {
        let previous = match self.store.load_manifest(&manifest.probe) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(probe = %manifest.probe, error = %crate::errors::error_chain(&e), "previous input manifest unreadable; replacing it");
                None
            }
        };
        match &previous {
            Some(p) if p.key == manifest.key => return,
            Some(p) => {
                let changes = diff(p, manifest);
                let shown: Vec<String> = changes.iter().take(5).map(|c| c.to_string()).collect();
                tracing::info!(
                    probe = %manifest.probe,
                    previous_key = %p.key,
                    key = %manifest.key,
                    changes = changes.len(),
                    first_changes = %shown.join("; "),
                    "inputs changed since the last run"
                );
            }
            None => {}
        }
        if let Err(e) = self.store.save_manifest(manifest) {
            tracing::warn!(probe = %manifest.probe, error = %crate::errors::error_chain(&e), "cannot record the input manifest");
        }
    }
}

impl ProbeCache for ContentCache {
    fn key(
        &self,
        repo: &RepoSnapshot,
        name: &str,
        probe: &dyn DynProbe,
        ctx: &ProbeContext,
    ) -> Result<String, CacheKeyError> {
        let manifest = self.manifest(repo, name, probe, ctx)?;
        self.record_manifest(&manifest);
        Ok(manifest.key)
    }

    fn get(&self, name: &str, key: &str) -> Result<Option<ProbeOutput>, CacheError> {
        self.store.get(name, key).map_err(|source| {
            tracing::warn!(probe = name, error = %source, "cache entry unusable; treating as a miss");
            CacheError::from(UnusableEntry { source })
        })
    }

    fn put(&self, name: &str, key: &str, output: &ProbeOutput) -> Result<(), CacheError> {
        Ok(self.store.put(name, key, output)?)
    }
}
