//! The minimal image: the original image's filesystem cut down to exactly
//! what the runtime-trace evidence names (docs/architecture.md, "Minimal
//! image").
//!
//! - [`closure`]: named paths → entries to keep (links on the way included);
//! - [`image_fs`]: the image's tar stream indexed and filtered;
//! - [`build_minimal_image`]: export, filter, import with the original config;
//! - [`verify`]: the same scenarios on both images, compared;
//! - [`readiness`]: blockers for a distroless base, what it would need;
//! - [`probe`]: `DistrolessReadinessProbe`, all of it as a `runs_last` probe.

pub mod closure;
pub mod image_fs;
pub mod probe;
pub mod readiness;
pub mod verify;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::engine::{Engine, EngineError, REPOSITORY_LABEL};
use crate::runtime_trace::RuntimeTraceSlice;

use closure::Closure;
use image_fs::ImageFsError;

/// The repository of minimal image tags: `codegenie-min:<short digest>`.
pub const MINIMAL_REPOSITORY: &str = "codegenie-min";
/// The label naming the image a minimal image was cut from.
pub const MINIMAL_OF_LABEL: &str = "codegenie.minimal-of";

/// The paths a slice's evidence names, and the files the app wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvidencePaths {
    /// Every path the app used: executed, their interpreters, libraries,
    /// certificates, files read, paths probed, both sides of each resolved pair.
    pub named: BTreeSet<String>,
    /// Files the app wrote (their folders must exist).
    pub written: BTreeSet<String>,
}

impl EvidencePaths {
    /// The union over every traced scenario of `slice`.
    pub fn of(slice: &RuntimeTraceSlice) -> EvidencePaths {
        let mut e = EvidencePaths::default();
        for (path, interpreter) in &slice.interpreters {
            e.named.insert(path.clone());
            e.named.insert(interpreter.clone());
        }
        for t in slice.scenarios.iter().filter_map(|s| s.trace.as_ref()) {
            let n = &mut e.named;
            n.extend(t.binaries_executed.iter().cloned());
            n.extend(t.shared_libs_loaded.iter().cloned());
            n.extend(t.cert_paths_read.iter().cloned());
            n.extend(t.files_read.iter().cloned());
            n.extend(t.paths_probed.iter().cloned());
            for (opened, resolved) in &t.resolved {
                n.insert(opened.clone());
                n.insert(resolved.clone());
            }
            e.written.extend(t.files_written.iter().cloned());
        }
        e
    }
}

/// Why the minimal image could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MinimizeError {
    /// An engine command failed (export, import, inspect).
    #[error("the engine could not build the minimal image")]
    Engine(#[from] EngineError),
    /// The exported filesystem could not be read or filtered.
    #[error("cannot cut the image's filesystem down")]
    Filesystem(#[from] ImageFsError),
    /// The scratch folder for the export could not be made.
    #[error("cannot make a scratch folder in {path}")]
    Scratch {
        /// Where.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The evidence does not name the entrypoint: there is nothing to run.
    #[error("the evidence names no executed binary (did the trace run?)")]
    NoEvidence,
}

/// A minimal image built from an original one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinimalImage {
    /// The image id (`sha256:...`).
    pub image_id: String,
    /// Its tag, `codegenie-min:<short digest>`.
    pub tag: String,
    /// Its size in bytes, as the engine reports it.
    pub size_bytes: u64,
    /// The original image's size in bytes.
    pub original_size_bytes: u64,
    /// Filesystem entries kept.
    pub entries: usize,
    /// Named paths that the original image does not hold (created at run
    /// time, or virtual): nothing to copy for them.
    pub absent: BTreeSet<String>,
    /// Whether an image of the same tag existed and was reused.
    pub reused: bool,
}

/// The tag of the minimal image of `original` holding `keep` with `changes`:
/// the same inputs give the same tag, so an unchanged image is reused.
fn minimal_tag(original: &str, keep: &BTreeSet<String>, changes: &[String]) -> String {
    let mut h = blake3::Hasher::new();
    for part in std::iter::once(original)
        .chain(keep.iter().map(String::as_str))
        .chain(changes.iter().map(String::as_str))
    {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    format!("{MINIMAL_REPOSITORY}:{}", &h.finalize().to_hex()[..12])
}

/// Build (or reuse) the minimal image of `original` for `evidence`: export
/// its filesystem into `scratch`, keep the evidence closure, import it with
/// the original config (entrypoint, cmd, env, workdir, user, ports). Of
/// the repository's minimal images, the newest `keep` stay (this one always
/// among them; docs/architecture.md, "Image hygiene").
pub fn build_minimal_image(
    engine: &Engine,
    original: &str,
    evidence: &EvidencePaths,
    scratch: &Path,
    keep: usize,
) -> Result<MinimalImage, MinimizeError> {
    if evidence.named.is_empty() {
        return Err(MinimizeError::NoEvidence);
    }
    let work = tempfile::Builder::new()
        .prefix("minimal-")
        .tempdir_in(scratch)
        .map_err(|source| MinimizeError::Scratch {
            path: scratch.to_owned(),
            source,
        })?;
    let export = work.path().join("original.tar");
    engine.export_filesystem(original, &export)?;
    let tree = image_fs::index_tar(&export)?;
    let closure = Closure::of(
        &tree,
        evidence.named.iter().map(String::as_str),
        evidence.written.iter().map(String::as_str),
    );
    let config = engine.image_config(original)?;
    let mut changes = config.import_changes();
    changes.push(format!("LABEL {MINIMAL_OF_LABEL}={original}"));
    let tag = minimal_tag(original, &closure.keep, &changes);
    let original_size_bytes = engine.image_size(original)?;
    let (image_id, reused) = match engine.image_id(&tag)? {
        Some(id) => (id, true),
        None => {
            let cut = work.path().join("minimal.tar");
            image_fs::filter_tar(&export, &cut, &closure.keep)?;
            (engine.import_filesystem(&cut, &changes, &tag)?, false)
        }
    };
    // The minimal image carries the original's labels, the repository's
    // among them (docs/architecture.md, "Image hygiene").
    if let Some(repository) = config.labels.as_ref().and_then(|l| l.get(REPOSITORY_LABEL)) {
        engine.tidy_images(MINIMAL_REPOSITORY, repository, keep.max(1), &image_id);
    }
    tracing::info!(%tag, reused, entries = closure.keep.len(), "minimal_image");
    Ok(MinimalImage {
        size_bytes: engine.image_size(&image_id)?,
        image_id,
        tag,
        original_size_bytes,
        entries: closure.keep.len(),
        absent: closure.absent,
        reused,
    })
}
