//! The probe contract: what a probe declares and what it returns.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cancel::CancelToken;

use codegenie_spec::inputs::DeclaredInput;

/// How expensive a probe is; the coordinator runs light probes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Heaviness {
    /// Reads files, parses manifests: seconds at most.
    Light,
    /// Builds images, runs containers: minutes.
    Heavy,
}

impl Heaviness {
    /// The name used in the DSL and the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            Heaviness::Light => "light",
            Heaviness::Heavy => "heavy",
        }
    }
}

/// Whether a probe's output may be reused from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheStrategy {
    /// Reuse the output while the declared inputs' content and tokens are unchanged.
    Content,
    /// Always run.
    None,
}

/// How much a probe's output can be trusted (the envelope's confidence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Weak evidence.
    Low,
    /// Partial evidence.
    Medium,
    /// Complete evidence.
    High,
}

/// A file a probe hands to the writer, stored under `.codegenie/context/raw/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// File name relative to the `raw/` folder (no `/`, no `..`).
    pub name: String,
    /// Where the content comes from.
    pub source: ArtifactSource,
}

/// The content of an [`Artifact`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactSource {
    /// Bytes held in memory (small artifacts).
    Bytes(Vec<u8>),
    /// A file the probe wrote (large artifacts are streamed, never loaded whole).
    File(PathBuf),
}

/// What a probe returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeOutput {
    /// The probe's slice of the repository context (written as `<probe>.json`).
    pub schema_slice: serde_json::Value,
    /// The envelope's confidence.
    pub confidence: Confidence,
    /// Raw artifacts to store beside the slice.
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
    /// Human-readable warnings.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Why this output must not be reused, when it reflects a passing fault
    /// of the environment (an engine that stopped answering, a full disk)
    /// rather than the repository: the coordinator then does not cache it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_cacheable: Option<String>,
    /// The slice as the probe's own type, when the probe made it in this
    /// run ([`ProbeOutput::of`]); a cached output has only its JSON.
    #[serde(skip)]
    pub typed: TypedSlice,
}

/// A probe's slice as its own Rust type, handed to later probes and the
/// caller without a JSON round trip (docs/architecture.md, "Typed
/// hand-offs"). Two outputs compare by their JSON, never by this.
#[derive(Clone, Default)]
pub struct TypedSlice(Option<Arc<dyn Any + Send + Sync>>);

impl PartialEq for TypedSlice {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for TypedSlice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "TypedSlice(Some(..))"
        } else {
            "TypedSlice(None)"
        })
    }
}

impl ProbeOutput {
    /// An output with a slice and confidence, no artifacts and no warnings.
    pub fn new(schema_slice: serde_json::Value, confidence: Confidence) -> Self {
        ProbeOutput {
            schema_slice,
            confidence,
            artifacts: Vec::new(),
            warnings: Vec::new(),
            not_cacheable: None,
            typed: TypedSlice::default(),
        }
    }

    /// An output whose slice is `value`: serialised once for storage, and
    /// kept as it is for the probes and callers of this run
    /// ([`ProbeOutput::value`]). A value that cannot be serialised is an
    /// error, never a `null` slice.
    pub fn of<T: Serialize + Send + Sync + 'static>(
        value: T,
        confidence: Confidence,
    ) -> Result<Self, serde_json::Error> {
        let mut out = ProbeOutput::new(serde_json::to_value(&value)?, confidence);
        out.typed = TypedSlice(Some(Arc::new(value)));
        Ok(out)
    }

    /// The slice as `T`: the probe's own value when it was made in this run,
    /// else parsed from the JSON (a cached output, or one of another type).
    pub fn value<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
    ) -> Result<Arc<T>, serde_json::Error> {
        if let Some(v) = self.typed.0.clone().and_then(|a| a.downcast::<T>().ok()) {
            return Ok(v);
        }
        serde_json::from_value(self.schema_slice.clone()).map(Arc::new)
    }
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// An I/O error on a known path.
    #[error("{path}")]
    Io {
        /// The path being read or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The probe's own failure, explained.
    #[error("{0}")]
    Failed(String),
    /// Any other typed error.
    #[error(transparent)]
    Other(#[from] Box<dyn std::error::Error + Send + Sync>),
}

impl ProbeError {
    /// A failure with a message.
    pub fn failed(msg: impl Into<String>) -> Self {
        ProbeError::Failed(msg.into())
    }

    /// Wrap an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ProbeError::Io {
            path: path.into(),
            source,
        }
    }
}

/// The repository being analysed.
#[derive(Debug, Clone)]
pub struct RepoSnapshot {
    root: PathBuf,
}

impl RepoSnapshot {
    /// Open a repository at `root`; it must be an existing directory.
    pub fn open(root: impl AsRef<Path>) -> std::io::Result<Self> {
        let root = std::fs::canonicalize(root.as_ref())?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(RepoSnapshot { root })
    }

    /// The repository root (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether a repository-relative path exists as a regular file (a symlink
    /// counts only if it resolves inside the repository).
    pub fn has_file(&self, rel: impl AsRef<Path>) -> bool {
        let path = self.root.join(rel);
        match std::fs::canonicalize(&path) {
            Ok(p) => p.starts_with(&self.root) && p.is_file(),
            Err(_) => false,
        }
    }

    /// Where codegenie keeps its state for this repository.
    pub fn codegenie_dir(&self) -> PathBuf {
        self.root.join(".codegenie")
    }
}

/// Error a token resolver may return.
pub type ResolverError = Box<dyn std::error::Error + Send + Sync>;

/// What a resolver returns when its caller chose not to resolve the token
/// (an image build is expensive: `codegenie cache explain` builds only with
/// `--resolve`). The token is then unresolved with
/// `UnresolvedReason::NotRequested` and this message, not a failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TokenNotRequested(pub String);

/// Resolves the `image-digest:<resolved>` token: the digest of the repository's
/// container image, or `None` when there is none.
///
/// Bound in [`ProbeContext::image_digest_resolver`]; any `Fn(&RepoSnapshot) ->
/// Result<Option<String>, ResolverError>` closure is one. For the cache key,
/// no context, no resolver bound, `Ok(None)` and `Err(_)` all fold to one
/// empty sentinel (the reason is logged as `image_digest_unresolved_reason`),
/// while two different digests give two different keys. `Ok(Some(""))` is a
/// value, not the sentinel.
pub trait ImageDigestResolver: Send + Sync {
    /// Resolve the digest for `repo`.
    fn resolve(&self, repo: &RepoSnapshot) -> Result<Option<String>, ResolverError>;
}

impl<F> ImageDigestResolver for F
where
    F: Fn(&RepoSnapshot) -> Result<Option<String>, ResolverError> + Send + Sync,
{
    fn resolve(&self, repo: &RepoSnapshot) -> Result<Option<String>, ResolverError> {
        self(repo)
    }
}

/// Resolves the `trace-config:<resolved>` token: what changes a runtime
/// trace's evidence beyond the repository (backend, tracer, scenarios,
/// limits), as readable text, from the repository and the probe settings.
///
/// Bound in [`ProbeContext::trace_config_resolver`]; unbound, the token is
/// the empty sentinel (as for [`ImageDigestResolver`]).
pub trait TraceConfigResolver: Send + Sync {
    /// Resolve the configuration for `repo` under `settings`.
    fn resolve(
        &self,
        repo: &RepoSnapshot,
        settings: &ProbeSettings,
    ) -> Result<Option<String>, ResolverError>;
}

/// Typed settings for probes: at most one value per type. A probe documents
/// the type it reads (the runtime trace reads
/// `runtime_trace::settings::TraceSettings`); a caller inserts a value of that
/// type. Absent means the probe's defaults.
#[derive(Clone, Default)]
pub struct ProbeSettings {
    values: BTreeMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl ProbeSettings {
    /// Set the value of type `T`, replacing any earlier one.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) -> &mut Self {
        self.values.insert(TypeId::of::<T>(), Arc::new(value));
        self
    }

    /// The value of type `T`, if one was set.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
    }

    /// How many values are set.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no value is set.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl std::fmt::Debug for ProbeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeSettings")
            .field("values", &self.values.len())
            .finish()
    }
}

/// What a long-running probe reports about its progress. The runtime never
/// draws anything itself: the CLI turns these into progress bars on a
/// terminal, and a library caller may ignore them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProgressEvent<'a> {
    /// A phase of unknown length began (e.g. `building image`).
    Phase(&'a str),
    /// `total` units of work (e.g. scenarios) are planned.
    Planned {
        /// How many.
        total: u64,
    },
    /// One unit began.
    Started(&'a str),
    /// One unit ended.
    Finished(&'a str),
    /// The probe's progress is over.
    Done,
}

/// Receives a probe's [`ProgressEvent`]s.
pub trait ProgressSink: Send + Sync {
    /// One event, from the probe's thread.
    fn event(&self, probe: &str, event: ProgressEvent<'_>);
}

/// What the coordinator hands a probe besides the repository.
#[derive(Clone, Default)]
pub struct ProbeContext {
    /// Resolver for `image-digest:<resolved>`; `None` when unbound.
    pub image_digest_resolver: Option<Arc<dyn ImageDigestResolver>>,
    /// Resolver for `trace-config:<resolved>`; `None` when unbound.
    pub trace_config_resolver: Option<Arc<dyn TraceConfigResolver>>,
    /// Typed settings, read by the probes that document them.
    pub settings: ProbeSettings,
    /// Where progress goes; `None` reports nothing.
    pub progress: Option<Arc<dyn ProgressSink>>,
    /// Tripped when the work should stop (Ctrl-C, a probe timeout); a
    /// long-running probe checks it between steps and cleans up.
    pub cancel: CancelToken,
    /// The outputs of the probes that ran (or were cached) before this one
    /// in the same gather, by name: how a `runs_last` probe reads another's
    /// evidence ([`ProbeContext::output_of`]).
    pub earlier: Arc<BTreeMap<String, ProbeOutput>>,
    /// A fresh folder for this run's intermediate files (e.g. raw traces that
    /// wait for the writer's redaction). The coordinator creates it under
    /// `.codegenie/work/` and removes it when the probe's record is dropped,
    /// after the output has been cached and written; artifacts may point into it.
    pub scratch_dir: Option<PathBuf>,
}

impl ProbeContext {
    /// The output of probe `name` earlier in this gather, if it produced one.
    pub fn output_of(&self, name: &str) -> Option<&ProbeOutput> {
        self.earlier.get(name)
    }

    /// The output of the probe `name` earlier in this gather, as `T`
    /// ([`ProbeOutput::value`]); `None` when it gave none.
    pub fn output_as<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        name: &str,
    ) -> Option<Result<Arc<T>, serde_json::Error>> {
        self.output_of(name).map(ProbeOutput::value)
    }

    /// Report a progress event of `probe`, if anyone listens.
    pub fn progress(&self, probe: &str, event: ProgressEvent<'_>) {
        if let Some(sink) = &self.progress {
            sink.event(probe, event);
        }
    }
}

impl std::fmt::Debug for ProbeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeContext")
            .field(
                "image_digest_resolver",
                &self.image_digest_resolver.as_ref().map(|_| "bound"),
            )
            .field(
                "trace_config_resolver",
                &self.trace_config_resolver.as_ref().map(|_| "bound"),
            )
            .field("settings", &self.settings)
            .field("progress", &self.progress.as_ref().map(|_| "bound"))
            .field("cancelled", &self.cancel.is_cancelled())
            .field("earlier", &self.earlier.keys().collect::<Vec<_>>())
            .field("scratch_dir", &self.scratch_dir)
            .finish()
    }
}

/// How long a probe may run when it does not say ([`Probe::timeout`]).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The trait a probe author implements. Register the implementation with
/// `#[register_probe(...)]` on the `impl Probe for T` block; `run` may be
/// written as a plain `async fn`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a codegenie probe",
    note = "implement `codegenie::Probe` for `{Self}` and put `#[register_probe(...)]` on that impl block"
)]
pub trait Probe: Send + Sync + 'static {
    /// Version of the output schema; bump it when the slice changes shape (it is
    /// part of the cache key).
    fn version(&self) -> u32 {
        1
    }

    /// Inputs whose content decides the output (see `declared_inputs!`).
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        &[]
    }

    /// Whether outputs are reused from the cache.
    fn cache_strategy(&self) -> CacheStrategy {
        CacheStrategy::Content
    }

    /// How long `run` may take before the coordinator abandons it.
    fn timeout(&self) -> Duration {
        DEFAULT_TIMEOUT
    }

    /// Whether the probe has anything to look at in this repository.
    fn applies(&self, _repo: &RepoSnapshot) -> bool {
        true
    }

    /// Gather the evidence.
    fn run(
        &self,
        repo: &RepoSnapshot,
        ctx: &ProbeContext,
    ) -> impl Future<Output = Result<ProbeOutput, ProbeError>> + Send;
}

/// Run `work` on a blocking thread (it waits on processes or the disk) and
/// hand its output back to the async coordinator: how a probe whose work
/// blocks writes `run`. `what` names the work if its thread dies.
pub async fn run_blocking_work<E>(
    what: &'static str,
    work: impl FnOnce() -> Result<ProbeOutput, E> + Send + 'static,
) -> Result<ProbeOutput, ProbeError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ProbeError::failed(format!("{what} task failed: {e}")))?
        .map_err(|e| ProbeError::Other(Box::new(e)))
}

/// A boxed probe future.
pub type BoxProbeFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ProbeOutput, ProbeError>> + Send + 'a>>;

/// The object-safe face of [`Probe`], implemented for every probe; the
/// registry and coordinator work with `dyn DynProbe`.
pub trait DynProbe: Send + Sync {
    /// See [`Probe::version`].
    fn version(&self) -> u32;
    /// See [`Probe::declared_inputs`].
    fn declared_inputs(&self) -> &'static [DeclaredInput];
    /// See [`Probe::cache_strategy`].
    fn cache_strategy(&self) -> CacheStrategy;
    /// See [`Probe::timeout`].
    fn timeout(&self) -> Duration;
    /// See [`Probe::applies`].
    fn applies(&self, repo: &RepoSnapshot) -> bool;
    /// See [`Probe::run`].
    fn run_boxed<'a>(&'a self, repo: &'a RepoSnapshot, ctx: &'a ProbeContext)
        -> BoxProbeFuture<'a>;
}

impl<T: Probe> DynProbe for T {
    fn version(&self) -> u32 {
        Probe::version(self)
    }
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        Probe::declared_inputs(self)
    }
    fn cache_strategy(&self) -> CacheStrategy {
        Probe::cache_strategy(self)
    }
    fn timeout(&self) -> Duration {
        Probe::timeout(self)
    }
    fn applies(&self, repo: &RepoSnapshot) -> bool {
        Probe::applies(self, repo)
    }
    fn run_boxed<'a>(
        &'a self,
        repo: &'a RepoSnapshot,
        ctx: &'a ProbeContext,
    ) -> BoxProbeFuture<'a> {
        Box::pin(Probe::run(self, repo, ctx))
    }
}

/// How the registry builds a registered probe. Implemented for every
/// `Probe + Default`; `#[register_probe]` names it so a missing `Default` is
/// reported once, on the probe's type.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be registered: a registered probe must implement `Default`",
    label = "the registry builds this probe with `Default::default()`",
    note = "add `#[derive(Default)]` to `{Self}`, or implement `Default` and `Probe` for it"
)]
pub trait RegisteredProbe {
    /// Build the probe.
    fn construct() -> Box<dyn DynProbe>;
}

impl<T: Probe + Default> RegisteredProbe for T {
    fn construct() -> Box<dyn DynProbe> {
        Box::new(T::default())
    }
}
