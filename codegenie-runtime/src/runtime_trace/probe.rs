//! `RuntimeTraceProbe`: resolves the image digest, loads the scenarios, runs
//! them one at a time under strace in hardened containers (or, when asked,
//! on this machine), and aggregates the evidence into the runtime_trace slice
//! (docs/architecture.md, "Runtime trace").

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::engine::{Engine, EngineError, ImageConfig};
use crate::probe::{
    run_blocking_work, CacheStrategy, Probe, ProbeContext, ProbeError, ProbeOutput, ProgressEvent,
    RepoSnapshot,
};
use crate::{declared_inputs, register_probe, DeclaredInput};

use super::backend::{run_one, RunShared, ScenarioBackend};
use super::bundle::{self, Bundle};
use super::container::{tool_image_failure, ContainerBackend, ToolImage, ToolVolume, ToolsFrom};
pub use super::error::TraceError;
use super::host::{self, HostBackend};
use super::output::{finish, output};
use super::results::{ScenarioOutcome, ScenarioReason, ScenarioResult};
use super::scenario_file::{load_scenarios, resolve_app, SCENARIO_FILE};
use super::scenarios::ScenarioFile;
use super::sequence::{self, run_sequentially};
use super::settings::{self as limits, Backend, OnBuilt, RunId, TraceSettings};
use super::slice::AggregateInputs;
use super::steps::ResolvedApp;
use super::work_dir::{reset_dir, run_work_dir};

/// Whether a tool image is cheaper than a bundle copy per scenario: always
/// where the storage driver diffs natively; elsewhere (fuse-overlayfs, vfs)
/// a commit walks the whole image, about 30 MB/s here, so only an image of
/// at most [`NAIVE_DIFF_MAX_BYTES`] (a second of walking, against about
/// 0.2 s a copy) gets one. Any doubt copies per scenario, which always works.
/// The run's result when its tools could not be placed (the tool volume or
/// image not made): every scenario fails for that reason.
fn tools_failed(
    e: EngineError,
    file: &ScenarioFile,
    digest: String,
    config: ImageConfig,
    warnings: Vec<String>,
) -> ProbeOutput {
    tracing::info!(error = %crate::errors::error_chain(&e), "tools_failed");
    let outcome = tool_image_failure(e);
    let runs = every(file, outcome)
        .into_iter()
        .map(|result| sequence::ScenarioRun {
            result,
            trace_file: None,
            warnings: Vec::new(),
        })
        .collect();
    finish(runs, Some(digest), config.env.unwrap_or_default(), warnings)
}

fn tool_image_pays(engine: &Engine, image: &str) -> bool {
    match engine.diffs_natively() {
        Ok(true) => true,
        Ok(false) => engine
            .image_size(image)
            .is_ok_and(|size| size <= NAIVE_DIFF_MAX_BYTES),
        Err(e) => {
            tracing::debug!(error = %crate::errors::error_chain(&e), "cannot tell the engine's storage driver");
            false
        }
    }
}

/// The largest image a tool image is made of on storage without native
/// diffs (see [`tool_image_pays`]).
const NAIVE_DIFF_MAX_BYTES: u64 = 32 << 20;

/// The probe's name, as registered.
pub const PROBE_NAME: &str = "runtime_trace";

impl From<TraceError> for ProbeError {
    fn from(e: TraceError) -> Self {
        ProbeError::Other(Box::new(e))
    }
}

/// Traces the repository's container at runtime: which binaries ran, which
/// libraries and certificates were loaded, which files and endpoints were
/// touched, how often a shell ran. Evidence for a distroless migration.
///
/// Settings: a [`TraceSettings`] in [`ProbeContext::settings`].
#[derive(Debug, Default)]
pub struct RuntimeTraceProbe;

#[register_probe(heaviness = "heavy", runs_last = false)]
impl Probe for RuntimeTraceProbe {
    // 2: paths as opened, `resolved`, `paths_probed_at_runtime`, `tls_trust`,
    // per-scenario `missing` and `execs`; an older cached slice is not reused.
    fn version(&self) -> u32 {
        2
    }

    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        declared_inputs![
            "Dockerfile",
            ".codegenie/scenarios.yaml",
            "image-digest:<resolved>",
            "trace-config:<resolved>"
        ]
    }

    fn cache_strategy(&self) -> CacheStrategy {
        CacheStrategy::Content
    }

    fn timeout(&self) -> Duration {
        // Build + the whole scenario loop + cleanup.
        crate::engine::BUILD_TIMEOUT + limits::AGGREGATE_TIMEOUT + Duration::from_secs(120)
    }

    /// A Dockerfile (container backend) or a scenario file (whose
    /// `app.command` the host backend can run).
    fn applies(&self, repo: &RepoSnapshot) -> bool {
        repo.has_file("Dockerfile") || repo.has_file(SCENARIO_FILE)
    }

    async fn run(
        &self,
        repo: &RepoSnapshot,
        ctx: &ProbeContext,
    ) -> Result<ProbeOutput, ProbeError> {
        let (repo, ctx) = (repo.clone(), ctx.clone());
        // Everything below blocks on child processes; keep it off the async workers.
        run_blocking_work("runtime trace", move || run_blocking(&repo, &ctx)).await
    }
}

fn every(file: &ScenarioFile, outcome: ScenarioOutcome) -> Vec<ScenarioResult> {
    file.scenarios
        .iter()
        .map(|s| sequence::not_run(&s.name, outcome.clone()))
        .collect()
}

/// An output where no scenario ran, each for `outcome`.
fn none_ran(file: &ScenarioFile, outcome: ScenarioOutcome) -> ProbeOutput {
    output(
        &every(file, outcome),
        AggregateInputs::default(),
        Vec::new(),
        Vec::new(),
    )
}

/// Why the image digest is not there, as the scenarios will say it.
enum Unresolved {
    /// Every scenario is skipped for this reason.
    Skip(ScenarioReason),
    /// No digest, for a reason that is only logged.
    Other(String),
}

/// Resolve the digest of the repository's image through the context's resolver.
fn resolve_digest(
    repo: &RepoSnapshot,
    ctx: &ProbeContext,
) -> Result<Result<String, Unresolved>, TraceError> {
    let Some(resolver) = &ctx.image_digest_resolver else {
        return Ok(Err(Unresolved::Other(
            "no image-digest resolver is bound".to_owned(),
        )));
    };
    ctx.progress(PROBE_NAME, ProgressEvent::Phase("building image"));
    let resolved = resolver.resolve(repo);
    ctx.progress(PROBE_NAME, ProgressEvent::Done);
    Ok(match resolved {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Err(Unresolved::Other(
            "the resolver returned no digest".to_owned(),
        )),
        Err(e) => match e.downcast_ref::<EngineError>() {
            Some(EngineError::BuildFailed {
                exit_code,
                log_tail,
            }) => {
                tracing::info!(reason = "image build failed", exit_code = ?exit_code, "image_digest_unresolved");
                Err(Unresolved::Skip(ScenarioReason::ImageBuildFailed {
                    exit_code: *exit_code,
                    log_tail: log_tail.clone(),
                }))
            }
            Some(EngineError::BuildTimedOut { after_ms }) => {
                tracing::info!(
                    reason = "image build timed out",
                    after_ms,
                    "image_digest_unresolved"
                );
                Err(Unresolved::Skip(ScenarioReason::ImageBuildTimeout {
                    after_ms: *after_ms,
                }))
            }
            Some(EngineError::Unavailable { detail }) => {
                return Err(TraceError::EngineUnavailable {
                    detail: detail.clone(),
                })
            }
            _ => Err(Unresolved::Other(format!(
                "the resolver failed: {}",
                crate::errors::error_chain(e.as_ref())
            ))),
        },
    })
}

/// The whole runtime trace of `repo`, on this thread, with no cache: what
/// [`RuntimeTraceProbe`] runs, for callers that must not reuse or store an
/// output (verifying a minimal image with `TraceSettings::image`).
pub fn run_blocking(repo: &RepoSnapshot, ctx: &ProbeContext) -> Result<ProbeOutput, TraceError> {
    let started = Instant::now();
    let settings = ctx
        .settings
        .get::<TraceSettings>()
        .cloned()
        .unwrap_or_default();
    let file = match &settings.scenarios {
        Some(s) => s.file.clone(),
        None => load_scenarios(repo)?,
    };
    if !cfg!(target_os = "linux") {
        // strace exists only on Linux; nothing else (sudo, dtruss) is ever tried.
        return Ok(none_ran(
            &file,
            ScenarioOutcome::Failed(ScenarioReason::StraceUnavailable),
        ));
    }
    if settings.backend == Some(Backend::Host) {
        return run_host(repo, ctx, &file, &settings);
    }
    let resolved = match &settings.image {
        Some(image) => Ok(image.clone()),
        None => resolve_digest(repo, ctx)?,
    };
    let digest = match resolved {
        Ok(d) => d,
        Err(Unresolved::Skip(reason)) => {
            return Ok(none_ran(&file, ScenarioOutcome::Skipped(reason)));
        }
        Err(Unresolved::Other(_)) if settings.backend.is_none() && !repo.has_file("Dockerfile") => {
            return Err(TraceError::NoContainerBackend {
                reason: format!("{} has no Dockerfile", repo.root().display()),
            });
        }
        Err(Unresolved::Other(reason)) => {
            tracing::info!(reason = %reason, "image_digest_unresolved");
            let mut out = none_ran(
                &file,
                ScenarioOutcome::Skipped(ScenarioReason::ImageDigestUnresolved),
            );
            out.warnings
                .push(format!("image digest unresolved: {reason}"));
            return Ok(out);
        }
    };
    tracing::info!(digest = %digest, "image_digest_resolved");
    if let (None, Some(OnBuilt(told))) = (&settings.image, &settings.on_built) {
        told(&digest);
    }
    let engine = Engine::at(settings.engine, settings.endpoint.clone());
    engine.ping()?;
    let mut warnings = Vec::new();
    let helper = match &settings.helper {
        Some(h) => h.clone(),
        None => std::env::current_exe().map_err(|source| TraceError::Io {
            path: PathBuf::from("/proc/self/exe"),
            source,
        })?,
    };
    // Three independent questions, asked at once: what earlier runs left
    // (the engine lists images, containers and volumes), the image's
    // config, and the bundle (the host's loader lists two closures).
    let (swept, config, bundle) = std::thread::scope(|s| {
        let swept = s.spawn(|| engine.sweep_orphans());
        let bundle = s.spawn(|| Bundle::assemble(&helper));
        let config = engine.image_config(&digest);
        (
            bundle::joined(swept.join()),
            config,
            bundle::joined(bundle.join()),
        )
    });
    match swept {
        Ok(swept) => {
            if swept.containers > 0 {
                warnings.push(format!(
                    "removed {} leftover container(s) of earlier interrupted runs",
                    swept.containers
                ));
            }
            if swept.images > 0 {
                warnings.push(format!(
                    "removed {} leftover tool image(s) of earlier interrupted runs",
                    swept.images
                ));
            }
            if swept.volumes > 0 {
                warnings.push(format!(
                    "removed {} leftover tool or trace volume(s) of earlier interrupted runs",
                    swept.volumes
                ));
            }
        }
        Err(e) => warnings.push(format!("cannot check for leftovers of earlier runs: {e}")),
    }
    let config = config?;
    let app = resolve_app(&file, &config);
    let bundle = bundle?;
    let run_id = settings.run_id.clone().unwrap_or_else(|| RunId::unique(""));
    // The bundle goes in once per run (docs/architecture.md, "Container
    // flow"): a read-only volume where the engine is reached through its
    // API; else an image, unless one scenario is all the run has, or making
    // an image costs a walk of the whole image on this engine's storage and
    // the image is large: then a copy into each container.
    let derived = Instant::now();
    let (mut volume, mut tools) = (None, None);
    let mode = if engine.has_tool_volumes() {
        match ToolVolume::make(&engine, &digest, &config, run_id.as_str(), &bundle) {
            Ok(v) => {
                let name = v.name.clone();
                volume = Some(v);
                ToolsFrom::Volume(name)
            }
            Err(e) => return Ok(tools_failed(e, &file, digest, config, warnings)),
        }
    } else if file.scenarios.len() < 2 || !tool_image_pays(&engine, &digest) {
        ToolsFrom::Copy
    } else {
        match ToolImage::derive(&engine, &digest, &config, run_id.as_str(), &bundle) {
            Ok(t) => {
                tools = Some(t);
                ToolsFrom::Image
            }
            Err(e) => return Ok(tools_failed(e, &file, digest, config, warnings)),
        }
    };
    if mode != ToolsFrom::Copy {
        tracing::info!(
            tools = ?mode,
            ms = derived.elapsed().as_millis() as u64,
            "tools_ready"
        );
    }
    let mut backend = ContainerBackend {
        engine: &engine,
        bundle: &bundle,
        image: tools.as_ref().map_or(digest.as_str(), |t| t.id.as_str()),
        tools: mode,
        run_id: run_id.as_str(),
        limits: &settings.limits,
        volumes: config
            .volumes
            .iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect(),
        trace_volumes: Some(0),
    };
    let runs = run_all(repo, ctx, &settings, &run_id, &file, &app, &mut backend)?;
    // Safety net: nothing labelled with this run may outlive it.
    match engine.remove_run(run_id.as_str()) {
        Ok(0) => {}
        Ok(n) => warnings.push(format!("removed {n} leftover container(s) of run {run_id}")),
        Err(e) => warnings.push(format!("cannot check for leftover containers: {e}")),
    }
    if let Some(Err(e)) = tools.map(ToolImage::remove) {
        warnings.push(format!("cannot remove the run's tool image: {e}"));
    }
    if let Some(Err(e)) = volume.take().map(ToolVolume::remove) {
        warnings.push(format!("cannot remove the run's tool volume: {e}"));
    }
    let out = finish(runs, Some(digest), config.env.unwrap_or_default(), warnings);
    tracing::info!(
        wall_clock_ms = started.elapsed().as_millis() as u64,
        confidence = ?out.confidence,
        "trace_finished"
    );
    Ok(out)
}

fn run_host(
    repo: &RepoSnapshot,
    ctx: &ProbeContext,
    file: &ScenarioFile,
    settings: &TraceSettings,
) -> Result<ProbeOutput, TraceError> {
    let seccomp_bpf = host::check_host_backend()?;
    let app = resolve_app(file, &ImageConfig::default());
    let run_id = settings.run_id.clone().unwrap_or_else(|| RunId::unique(""));
    let work_dir = run_work_dir(repo, ctx.scratch_dir.as_deref(), &run_id);
    let mut backend = HostBackend {
        repo_root: repo.root(),
        work_dir: &work_dir,
        seccomp_bpf,
    };
    let runs = run_all(repo, ctx, settings, &run_id, file, &app, &mut backend)?;
    Ok(finish(runs, None, Vec::new(), Vec::new()))
}

/// Every scenario on `backend`, one at a time, under the run's timeouts.
fn run_all<B: ScenarioBackend>(
    repo: &RepoSnapshot,
    ctx: &ProbeContext,
    settings: &TraceSettings,
    run_id: &RunId,
    file: &ScenarioFile,
    app: &ResolvedApp,
    backend: &mut B,
) -> Result<Vec<sequence::ScenarioRun>, TraceError> {
    let work_dir = run_work_dir(repo, ctx.scratch_dir.as_deref(), run_id);
    reset_dir(&work_dir)?;
    let mut shared = RunShared {
        limits: &settings.limits,
        work_dir: &work_dir,
        interpreters: Default::default(),
        loaders: Default::default(),
        cancel: ctx.cancel.clone(),
        lookups_left: settings.limits.interpreter_lookups,
        lookups_skipped: 0,
    };
    let mut runs = run_sequentially(
        &file.scenarios,
        &settings.limits,
        &ctx.cancel,
        &|event| ctx.progress(PROBE_NAME, event),
        |sc, deadlines| run_one(backend, &mut shared, sc, app, deadlines),
    );
    if shared.lookups_skipped > 0 {
        if let Some(last) = runs.last_mut() {
            last.warnings.push(format!(
                "{} executed path(s) were not read for an interpreter: the run's {} lookups or its time ran out",
                shared.lookups_skipped, settings.limits.interpreter_lookups
            ));
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbound_resolver_skips_every_scenario() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        let repo = RepoSnapshot::open(dir.path()).unwrap();
        let out = run_blocking(&repo, &ProbeContext::default()).unwrap();
        let s = &out.schema_slice;
        assert_eq!(s["trace_coverage_confidence"], "unavailable");
        assert_eq!(s["scenarios_skipped"].as_array().unwrap().len(), 5);
        assert_eq!(s["built_image_digest"], serde_json::Value::Null);
        assert_eq!(
            s["scenarios"][0]["outcome"]["detail"]["reason"],
            "image_digest_unresolved"
        );
    }

    #[test]
    fn resolver_returning_none_is_unresolved_too() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        let repo = RepoSnapshot::open(dir.path()).unwrap();
        let ctx = ProbeContext {
            image_digest_resolver: Some(std::sync::Arc::new(
                |_: &RepoSnapshot| -> Result<Option<String>, crate::ResolverError> { Ok(None) },
            )),
            ..Default::default()
        };
        let out = run_blocking(&repo, &ctx).unwrap();
        assert_eq!(
            out.schema_slice["scenarios_skipped"]
                .as_array()
                .unwrap()
                .len(),
            5
        );
    }

    #[test]
    fn a_malformed_scenario_file_is_an_error_not_a_fallback() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".codegenie")).unwrap();
        std::fs::write(
            dir.path().join(SCENARIO_FILE),
            "version: 1\nscenarios:\n  - name: startup\n    stepz: []\n",
        )
        .unwrap();
        let repo = RepoSnapshot::open(dir.path()).unwrap();
        let e = run_blocking(&repo, &ProbeContext::default()).unwrap_err();
        let msg = crate::errors::error_chain(&e);
        assert!(msg.contains(".codegenie/scenarios.yaml:4:"), "{msg}");
    }
}
