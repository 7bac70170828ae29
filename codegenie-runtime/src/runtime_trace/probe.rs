//! `RuntimeTraceProbe`: resolves the image digest, loads the scenarios, runs
//! them one at a time under strace in hardened containers, and aggregates
//! the evidence into the runtime_trace slice (DESIGN.md §1, §5).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::probe::{
    Artifact, ArtifactSource, CacheStrategy, Probe, ProbeContext, ProbeError, ProbeOutput,
    RepoSnapshot,
};
use crate::{declared_inputs, register_probe, DeclaredInput};

use super::bundle::{Bundle, BundleError};
use super::container::ContainerRunner;
use super::engine::{Engine, EngineError, ImageConfig};
use super::host;
use super::model::{ScenarioOutcome, ScenarioReason, ScenarioResult};
use super::scenarios::{self, Ready, ScenarioError, ScenarioFile, DEFAULT_READY_TIMEOUT_S};
use super::sequence::{self, ScenarioRun};
use super::settings::{self as limits, Backend, SettingError, TraceSettings};
use super::slice::{self, AggregateInputs};
use super::steps::ResolvedApp;

/// The embedded default scenarios (validated by the root `build.rs`).
pub const DEFAULT_SCENARIOS: &str = include_str!("../../../scenarios/default.yaml");
/// Where a repository's own scenarios live.
pub const SCENARIO_FILE: &str = ".codegenie/scenarios.yaml";
/// The slice's folder of raw artifacts, relative to the context folder.
pub const ARTIFACT_URI: &str = "raw";
/// The full files-read list artifact.
pub const FILES_READ_ARTIFACT: &str = "runtime-files-read.txt";

/// Why the probe could not run.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The container engine is missing or does not answer.
    #[error("EngineUnavailable: {detail}")]
    EngineUnavailable {
        /// What the engine (or its absence) said.
        detail: String,
    },
    /// The scenario file is malformed.
    #[error("malformed scenario file {0}")]
    Scenarios(#[from] ScenarioError),
    /// A setting has a bad value.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// The tool bundle could not be assembled.
    #[error("cannot assemble the tool bundle: {0}")]
    Bundle(#[from] BundleError),
    /// An engine command failed outside a scenario.
    #[error(transparent)]
    Engine(EngineError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The requested backend cannot run here.
    #[error("the {0} backend is not available: {1}")]
    BackendUnavailable(&'static str, String),
    /// Containers cannot be used and the host backend was not asked for: the
    /// repository's commands are untrusted, so they never run on this machine
    /// unless the user says so.
    #[error("{reason}; the runtime trace runs a repository's code only in hardened containers unless asked otherwise: pass `--backend host` (setting `runtime_trace.backend=host`) to run its scenarios on this machine in a private network namespace")]
    NoContainerBackend {
        /// Why containers cannot be used.
        reason: String,
    },
}

impl From<EngineError> for TraceError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Unavailable { detail } => TraceError::EngineUnavailable { detail },
            other => TraceError::Engine(other),
        }
    }
}

impl From<TraceError> for ProbeError {
    fn from(e: TraceError) -> Self {
        ProbeError::Other(Box::new(e))
    }
}

/// Traces the repository's container at runtime: which binaries ran, which
/// libraries and certificates were loaded, which files and endpoints were
/// touched, how often a shell ran. Evidence for a distroless migration.
#[derive(Debug, Default)]
pub struct RuntimeTraceProbe;

#[register_probe(heaviness = "heavy", runs_last = false)]
impl Probe for RuntimeTraceProbe {
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        declared_inputs![
            "Dockerfile",
            ".codegenie/scenarios.yaml",
            "image-digest:<resolved>"
        ]
    }

    fn cache_strategy(&self) -> CacheStrategy {
        CacheStrategy::Content
    }

    fn timeout(&self) -> Duration {
        // Build + the whole scenario loop + cleanup.
        super::engine::BUILD_TIMEOUT + limits::AGGREGATE_TIMEOUT + Duration::from_secs(120)
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
        tokio::task::spawn_blocking(move || run_blocking(&repo, &ctx))
            .await
            .map_err(|e| ProbeError::failed(format!("runtime trace task failed: {e}")))?
            .map_err(ProbeError::from)
    }
}

/// Load `.codegenie/scenarios.yaml`, else the embedded defaults. A malformed
/// file is an error, never a fallback.
pub fn load_scenarios(repo: &RepoSnapshot) -> Result<ScenarioFile, TraceError> {
    let path = repo.root().join(SCENARIO_FILE);
    match read_bounded(&path, MAX_SCENARIO_FILE_BYTES) {
        Ok(Ok(text)) => Ok(scenarios::parse_scenarios(&text, SCENARIO_FILE)?),
        Ok(Err(len)) => Err(TraceError::Scenarios(scenarios::ScenarioError {
            source_name: SCENARIO_FILE.to_owned(),
            line: None,
            column: None,
            message: format!(
                "the file has {len} bytes or more; at most {MAX_SCENARIO_FILE_BYTES} are read"
            ),
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(scenarios::parse_scenarios(
            DEFAULT_SCENARIOS,
            "<embedded scenarios/default.yaml>",
        )?),
        Err(source) => Err(TraceError::Io { path, source }),
    }
}

/// The largest scenario file read; a bigger one is an error (a hostile
/// repository must not make the probe read or parse gigabytes).
pub const MAX_SCENARIO_FILE_BYTES: u64 = 1024 * 1024;

/// Read `path` as text if it has at most `limit` bytes; `Ok(Err(n))` when it
/// has more (`n` bytes were seen before stopping).
fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Result<String, u64>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Ok(Err(bytes.len() as u64));
    }
    String::from_utf8(bytes)
        .map(Ok)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Apply the image's defaults to the scenario file's `app` section.
pub fn resolve_app(file: &ScenarioFile, image: &ImageConfig) -> ResolvedApp {
    let argv = file.app.command.clone().unwrap_or_else(|| image.argv());
    let port = file.app.port.or_else(|| image.first_tcp_port());
    let ready = match (&file.app.ready, port) {
        (Some(r), _) => r.clone(),
        (None, Some(port)) => Ready::TcpPort {
            port,
            timeout_s: DEFAULT_READY_TIMEOUT_S,
        },
        (None, None) => Ready::After { seconds: 2.0 },
    };
    ResolvedApp { argv, port, ready }
}

fn every(file: &ScenarioFile, outcome: ScenarioOutcome) -> Vec<ScenarioResult> {
    file.scenarios
        .iter()
        .map(|s| sequence::not_run(&s.name, outcome.clone()))
        .collect()
}

fn run_blocking(repo: &RepoSnapshot, ctx: &ProbeContext) -> Result<ProbeOutput, TraceError> {
    let started = Instant::now();
    let mut settings = TraceSettings::from_map(&ctx.settings)?;
    settings.scratch_dir = ctx.scratch_dir.clone();
    let file = load_scenarios(repo)?;
    if !cfg!(target_os = "linux") {
        // strace exists only on Linux; nothing else (sudo, dtruss) is ever tried.
        let results = every(
            &file,
            ScenarioOutcome::Failed(ScenarioReason::StraceUnavailable),
        );
        return Ok(output(
            &results,
            AggregateInputs::default(),
            Vec::new(),
            Vec::new(),
        ));
    }
    let auto = settings.backend.is_none();
    if settings.backend == Some(Backend::Host) {
        return run_host(repo, &file, &settings, Vec::new());
    }
    let engine = Engine::new(settings.engine);
    let resolved = match &ctx.image_digest_resolver {
        None => Err("no image-digest resolver is bound".to_owned()),
        Some(r) => match with_spinner("building image", || r.resolve(repo)) {
            Ok(Some(d)) => Ok(d),
            Ok(None) => Err("the resolver returned no digest".to_owned()),
            Err(e) => match e.downcast_ref::<EngineError>() {
                Some(EngineError::BuildFailed {
                    exit_code,
                    log_tail,
                }) => {
                    tracing::info!(reason = "image build failed", exit_code = ?exit_code, "image_digest_unresolved");
                    let results = every(
                        &file,
                        ScenarioOutcome::Skipped(ScenarioReason::ImageBuildFailed {
                            exit_code: *exit_code,
                            log_tail: log_tail.clone(),
                        }),
                    );
                    return Ok(output(
                        &results,
                        AggregateInputs::default(),
                        Vec::new(),
                        Vec::new(),
                    ));
                }
                Some(EngineError::BuildTimedOut { after_ms }) => {
                    tracing::info!(
                        reason = "image build timed out",
                        after_ms,
                        "image_digest_unresolved"
                    );
                    let results = every(
                        &file,
                        ScenarioOutcome::Skipped(ScenarioReason::ImageBuildTimeout {
                            after_ms: *after_ms,
                        }),
                    );
                    return Ok(output(
                        &results,
                        AggregateInputs::default(),
                        Vec::new(),
                        Vec::new(),
                    ));
                }
                Some(EngineError::Unavailable { detail }) => {
                    return Err(TraceError::EngineUnavailable {
                        detail: detail.clone(),
                    })
                }
                _ => Err(format!("the resolver failed: {e}")),
            },
        },
    };
    let digest = match resolved {
        Ok(d) => d,
        Err(_) if auto && !repo.has_file("Dockerfile") => {
            return Err(TraceError::NoContainerBackend {
                reason: format!("{} has no Dockerfile", repo.root().display()),
            });
        }
        Err(reason) => {
            tracing::info!(reason = %reason, "image_digest_unresolved");
            let results = every(
                &file,
                ScenarioOutcome::Skipped(ScenarioReason::ImageDigestUnresolved),
            );
            let mut out = output(&results, AggregateInputs::default(), Vec::new(), Vec::new());
            out.warnings
                .push(format!("image digest unresolved: {reason}"));
            return Ok(out);
        }
    };
    tracing::info!(digest = %digest, "image_digest_resolved");
    if let Err(e) = engine.ping() {
        return Err(e.into());
    }
    let mut warnings = Vec::new();
    match engine.sweep_orphans() {
        Ok(0) => {}
        Ok(n) => warnings.push(format!(
            "removed {n} leftover container(s) of earlier interrupted runs"
        )),
        Err(e) => warnings.push(format!("cannot check for leftovers of earlier runs: {e}")),
    }
    let image = engine.image_config(&digest)?;
    let app = resolve_app(&file, &image);
    let helper = match &settings.helper {
        Some(h) => h.clone(),
        None => std::env::current_exe().map_err(|source| TraceError::Io {
            path: PathBuf::from("/proc/self/exe"),
            source,
        })?,
    };
    let bundle = Bundle::assemble(&helper)?;
    let run_id = settings.run_id.clone().unwrap_or_else(new_run_id);
    let work_dir = run_work_dir(repo, &settings, &run_id);
    reset_dir(&work_dir)?;
    let mut runner = ContainerRunner {
        engine: &engine,
        bundle: &bundle,
        image: &digest,
        run_id: &run_id,
        work_dir: &work_dir,
        limits: &settings.limits,
        interpreters: Default::default(),
        progress: scenario_bar(file.scenarios.len() as u64),
    };
    let runs = runner.run_all(&file.scenarios, &app);
    // Safety net: nothing labelled with this run may outlive it.
    match engine.remove_run(&run_id) {
        Ok(0) => {}
        Ok(n) => warnings.push(format!("removed {n} leftover container(s) of run {run_id}")),
        Err(e) => warnings.push(format!("cannot check for leftover containers: {e}")),
    }
    let out = finish(runs, Some(digest), warnings);
    tracing::info!(
        wall_clock_ms = started.elapsed().as_millis() as u64,
        confidence = ?out.confidence,
        "trace_finished"
    );
    Ok(out)
}

fn run_host(
    repo: &RepoSnapshot,
    file: &ScenarioFile,
    settings: &TraceSettings,
    warnings: Vec<String>,
) -> Result<ProbeOutput, TraceError> {
    let seccomp_bpf =
        host::check_host_backend().map_err(|e| TraceError::BackendUnavailable("host", e))?;
    let app = resolve_app(file, &ImageConfig::default());
    let run_id = settings.run_id.clone().unwrap_or_else(new_run_id);
    let work_dir = run_work_dir(repo, settings, &run_id);
    reset_dir(&work_dir)?;
    let mut runner = host::HostRunner {
        repo_root: repo.root(),
        work_dir: &work_dir,
        limits: &settings.limits,
        interpreters: Default::default(),
        progress: scenario_bar(file.scenarios.len() as u64),
        seccomp_bpf,
    };
    let runs = runner.run_all(&file.scenarios, &app);
    Ok(finish(runs, None, warnings))
}

/// Collect the runs' traces as artifacts and build the output.
fn finish(
    runs: Vec<ScenarioRun>,
    digest: Option<String>,
    mut warnings: Vec<String>,
) -> ProbeOutput {
    let mut results = Vec::new();
    let mut artifacts = Vec::new();
    for mut run in runs {
        warnings.append(&mut run.warnings);
        if let Some(file) = run.trace_file {
            let name = format!("runtime-trace-{}.strace", run.result.name);
            run.result.artifact = Some(format!("{ARTIFACT_URI}/{name}"));
            artifacts.push(Artifact {
                name,
                source: ArtifactSource::File(file),
            });
        }
        results.push(run.result);
    }
    let traced = results.iter().any(|r| r.trace.is_some());
    let inputs = AggregateInputs {
        built_image_digest: digest.clone(),
        last_traced_image_digest: digest.filter(|_| traced),
        artifact_uri: Some(ARTIFACT_URI.to_owned()),
        full_list_uri: Some(format!("{ARTIFACT_URI}/{FILES_READ_ARTIFACT}")),
    };
    output(&results, inputs, artifacts, warnings)
}

/// The probe output: the aggregated slice, the raw traces and the files-read list.
fn output(
    results: &[ScenarioResult],
    inputs: AggregateInputs,
    mut artifacts: Vec<Artifact>,
    warnings: Vec<String>,
) -> ProbeOutput {
    let has_list = inputs.full_list_uri.is_some();
    let slice = slice::aggregate(results, &inputs);
    if has_list {
        let mut list = String::new();
        for f in slice::files_read_full_list(results) {
            list.push_str(&f);
            list.push('\n');
        }
        artifacts.push(Artifact {
            name: FILES_READ_ARTIFACT.to_owned(),
            source: ArtifactSource::Bytes(list.into_bytes()),
        });
    }
    let confidence = slice.trace_coverage_confidence.envelope();
    let schema_slice = serde_json::to_value(&slice).unwrap_or_else(|e| {
        // The slice is plain data; this cannot fail, but never panic on it.
        serde_json::json!({ "error": format!("cannot serialise the slice: {e}") })
    });
    ProbeOutput {
        schema_slice,
        confidence,
        artifacts,
        warnings,
        not_cacheable: environment_fault(results),
    }
}

/// The first outcome that a passing fault of the environment (not the
/// repository) explains: such an output is never reused from the cache.
fn environment_fault(results: &[ScenarioResult]) -> Option<String> {
    results.iter().find_map(|r| {
        let reason = match &r.outcome {
            ScenarioOutcome::Completed => return None,
            ScenarioOutcome::Failed(reason) | ScenarioOutcome::Skipped(reason) => reason,
        };
        match reason {
            // What the app itself did: worth reusing.
            ScenarioReason::ScenarioTimeout { .. }
            | ScenarioReason::UnexpectedExit { .. }
            | ScenarioReason::OutOfMemory { .. } => None,
            // A build can fail for a passing reason (a `RUN` step's download);
            // rebuilding from the engine's layer cache is cheap.
            ScenarioReason::ImageBuildFailed { .. }
            | ScenarioReason::StraceUnavailable
            | ScenarioReason::AggregateTimeout
            | ScenarioReason::ImageBuildTimeout { .. }
            | ScenarioReason::ImageDigestUnresolved
            | ScenarioReason::EngineUnavailable { .. }
            | ScenarioReason::Other { .. } => Some(format!(
                "scenario `{}`: {}",
                r.name,
                serde_json::to_string(reason).unwrap_or_default()
            )),
        }
    })
}

/// Progress bars only on a terminal; logs and tests see nothing.
fn on_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

fn scenario_bar(n: u64) -> indicatif::ProgressBar {
    if !on_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(n);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} [{pos}/{len}] {msg} ({elapsed})")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn with_spinner<T>(msg: &'static str, f: impl FnOnce() -> T) -> T {
    if !on_terminal() {
        return f();
    }
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message(msg);
    spinner.enable_steady_tick(Duration::from_millis(120));
    let out = f();
    spinner.finish_and_clear();
    out
}

/// Where the raw traces of run `run_id` wait for the writer (and the
/// cache) to take them; one folder per run, so concurrent runs never mix.
pub fn work_dir(repo: &RepoSnapshot, run_id: &str) -> PathBuf {
    repo.codegenie_dir()
        .join("work")
        .join("runtime_trace")
        .join(run_id)
}

/// The folder of this run's raw traces: inside the coordinator's scratch
/// folder (removed with the probe's record), else [`work_dir`].
fn run_work_dir(repo: &RepoSnapshot, settings: &TraceSettings, run_id: &str) -> PathBuf {
    match &settings.scratch_dir {
        Some(scratch) => scratch.join(run_id),
        None => work_dir(repo, run_id),
    }
}

/// Remove the raw (unredacted) traces of run `run_id` once the writer has
/// stored the redacted copies and the cache its blobs.
pub fn clean_work_dir(repo: &RepoSnapshot, run_id: &str) -> std::io::Result<()> {
    match std::fs::remove_dir_all(work_dir(repo, run_id)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn reset_dir(dir: &Path) -> Result<(), TraceError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(TraceError::Io {
                path: dir.to_owned(),
                source,
            })
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| TraceError::Io {
        path: dir.to_owned(),
        source,
    })
}

/// A run id unique on this machine: pid and time.
fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{:x}", std::process::id(), nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_app_did_is_cacheable() {
        use crate::runtime_trace::model::ScenarioReason as R;
        let with = |outcome| {
            let mut r = sequence::not_run("s", ScenarioOutcome::Completed);
            r.outcome = outcome;
            environment_fault(&[r])
        };
        assert_eq!(with(ScenarioOutcome::Completed), None);
        for app in [
            R::ScenarioTimeout { elapsed_ms: 1 },
            R::UnexpectedExit { code: 3 },
            R::OutOfMemory {
                limit: "512m".into(),
            },
        ] {
            assert_eq!(with(ScenarioOutcome::Failed(app.clone())), None, "{app:?}");
        }
        for env in [
            R::EngineUnavailable { detail: "x".into() },
            R::StraceUnavailable,
            R::AggregateTimeout,
            R::ImageDigestUnresolved,
            R::ImageBuildTimeout { after_ms: 1 },
            R::ImageBuildFailed {
                exit_code: Some(1),
                log_tail: String::new(),
            },
            R::Other {
                detail: "no space left on device".into(),
            },
        ] {
            let why = with(ScenarioOutcome::Skipped(env.clone()));
            assert!(
                why.is_some_and(|w| w.starts_with("scenario `s`")),
                "{env:?}"
            );
        }
    }

    #[test]
    fn defaults_embed_and_parse() {
        let f = scenarios::parse_scenarios(DEFAULT_SCENARIOS, "default").unwrap();
        assert_eq!(f.scenarios.len(), 5);
    }

    #[test]
    fn app_defaults_come_from_the_image() {
        let f = scenarios::parse_scenarios(DEFAULT_SCENARIOS, "default").unwrap();
        let img: ImageConfig = serde_json::from_str(
            r#"{"Entrypoint":["/app/start.sh"],"Cmd":["--port","8080"],"ExposedPorts":{"8080/tcp":{}}}"#,
        )
        .unwrap();
        let app = resolve_app(&f, &img);
        assert_eq!(app.argv, ["/app/start.sh", "--port", "8080"]);
        assert_eq!(app.port, Some(8080));
        assert_eq!(
            app.ready,
            Ready::TcpPort {
                port: 8080,
                timeout_s: 30
            }
        );
        let bare = resolve_app(&f, &ImageConfig::default());
        assert_eq!(bare.ready, Ready::After { seconds: 2.0 });
    }

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
        let msg = e.to_string();
        assert!(msg.contains(".codegenie/scenarios.yaml:4:"), "{msg}");
    }
}
