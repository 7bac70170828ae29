//! `codegenie cache explain`: every input and token value that went into a
//! probe's key, the key, whether an entry exists, and what changed since the
//! probe's last run.

use serde::Serialize;

use super::manifest::{diff, InputChange, InputManifest};
use super::manifest_with_index;
use super::store::{CacheStore, StoreError};
use crate::inputs::CacheKeyError;
use crate::probe::{CacheStrategy, DynProbe, ProbeContext, RepoSnapshot};

/// Whether the store has a usable entry for the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum EntryState {
    /// A valid entry: the next gather is a hit.
    Present,
    /// No entry: the next gather runs the probe.
    Absent,
    /// An entry that fails its checks (a miss).
    Corrupt(String),
}

/// Why a key could not be explained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExplainError {
    /// The inputs could not be resolved.
    #[error(transparent)]
    Key(#[from] CacheKeyError),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Everything about one probe's key.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// `content` or `none` (a `none` probe always runs; its key is informative).
    pub cache_strategy: &'static str,
    /// The key and every input that went into it.
    #[serde(flatten)]
    pub manifest: InputManifest,
    /// The store's entry for the key.
    pub entry: EntryState,
    /// The key of the probe's last run, if recorded.
    pub previous_key: Option<String>,
    /// What changed since then (empty when the key is the same).
    pub changes: Vec<InputChange>,
}

/// Explain `probe`'s key on `repo` without running it or touching the store.
pub fn explain(
    repo: &RepoSnapshot,
    store: &CacheStore,
    name: &str,
    probe: &dyn DynProbe,
    ctx: &ProbeContext,
) -> Result<Explanation, ExplainError> {
    // The hash index only saves reading unchanged files; an unreadable one is ignored.
    let hash_index = store.load_hash_index().ok();
    let (manifest, _) = manifest_with_index(repo, name, probe, Some(ctx), hash_index.as_ref())?;
    let entry = match store.peek(name, &manifest.key) {
        Ok(Some(_)) => EntryState::Present,
        Ok(None) => EntryState::Absent,
        Err(e @ StoreError::Corrupt { .. }) => EntryState::Corrupt(e.to_string()),
        Err(e) => return Err(e.into()),
    };
    let previous = store.load_manifest(name)?;
    let changes = match &previous {
        Some(p) if p.key != manifest.key => diff(p, &manifest),
        _ => Vec::new(),
    };
    Ok(Explanation {
        cache_strategy: match probe.cache_strategy() {
            CacheStrategy::Content => "content",
            CacheStrategy::None => "none",
        },
        previous_key: previous.map(|p| p.key),
        manifest,
        entry,
        changes,
    })
}
