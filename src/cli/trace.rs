//! `codegenie trace <repo>`: run the runtime-trace probe through the
//! coordinator (so the cache applies) and write its slice and artifacts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use codegenie_runtime::engine::{BuildNetwork, BuildOptions, EngineKind, KEEP_IMAGES};
use codegenie_runtime::pipeline::RunPlan;
use codegenie_runtime::runtime_trace::results::ScenarioOutcome;
use codegenie_runtime::runtime_trace::{
    Backend, RunId, RuntimeTraceSlice, TraceSettings, PROBE_NAME,
};
use codegenie_runtime::{ProbeRecord, ProbeStatus};

use super::{CliError, Interrupted, EXIT_PROBE_FAILED, EXIT_SCENARIO_FAILED};

/// Where the scenarios run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// Hardened containers on the Docker engine.
    Docker,
    /// This machine, in a private network namespace (no resource limits:
    /// only for repositories you trust).
    Host,
}

/// The container engine's command-line client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// `docker`
    Docker,
    /// `podman`
    Podman,
}

/// How the repository's image is built, for every command that builds it.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The network of the image build's `RUN` steps. The build runs the
    /// repository's own `RUN` commands, which are untrusted: with `default`
    /// (the engine's network, so `npm ci` works) they can reach anything
    /// this machine can; `none` cuts them off.
    #[arg(long, value_enum, default_value_t = BuildNetworkArg::Default)]
    pub build_network: BuildNetworkArg,
    /// Trace images (and, for `minimize`, minimal images) of this
    /// repository kept on the engine after a build, the one just built
    /// included: older ones that codegenie tagged are removed (images it
    /// did not tag are never touched).
    #[arg(long, value_name = "N", default_value_t = KEEP_IMAGES as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_images: u64,
}

impl BuildArgs {
    /// `--keep-images`, as a count.
    pub(crate) fn keep_images(&self) -> usize {
        usize::try_from(self.keep_images).unwrap_or(usize::MAX)
    }

    /// The build options; with `no_cache`, no remembered build answers
    /// (`--no-cache` neither reads nor writes any cache).
    pub(crate) fn options(&self, no_cache: bool) -> BuildOptions {
        BuildOptions {
            network: self.build_network.into(),
            keep_images: self.keep_images(),
            remember: !no_cache,
            ..BuildOptions::default()
        }
    }
}

/// The network of the image build's `RUN` steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuildNetworkArg {
    /// The engine's default network: `RUN npm ci` can fetch packages, and
    /// so can any `RUN` step of the repository reach what this machine reaches.
    Default,
    /// No network for `RUN` steps (`docker build --network none`).
    None,
}

impl From<BuildNetworkArg> for BuildNetwork {
    fn from(a: BuildNetworkArg) -> Self {
        match a {
            BuildNetworkArg::Default => BuildNetwork::Default,
            BuildNetworkArg::None => BuildNetwork::None,
        }
    }
}

/// Arguments of `codegenie trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The repository to trace (a Dockerfile, or `app.command` in
    /// `.codegenie/scenarios.yaml` for the host backend).
    pub repo: PathBuf,
    /// Where the scenarios run [default: docker]. The repository's code is
    /// untrusted: it runs on this machine only with `--backend host`.
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
    /// Neither read nor write the cache.
    #[arg(long, conflicts_with = "refresh")]
    pub no_cache: bool,
    /// Trace even on a cache hit, and store the new evidence.
    #[arg(long)]
    pub refresh: bool,
    /// How the repository's image is built.
    #[command(flatten)]
    pub build: BuildArgs,
    /// Print the coordinator's record as JSON.
    #[arg(long)]
    pub json: bool,
    /// Run settings (limits, engine, run label).
    #[command(flatten)]
    pub run: RunSettingsArgs,
    /// CI reports.
    #[command(flatten)]
    pub reports: super::reports::JunitArgs,
}

/// Settings of a runtime trace that tests and operators tune; hidden from
/// the help because the defaults are the contract.
#[derive(Debug, Args, Default)]
pub struct RunSettingsArgs {
    /// The container engine's client.
    #[arg(long, value_enum, hide = true)]
    pub engine: Option<EngineArg>,
    /// The `codegenie.run` label of this run's containers ([A-Za-z0-9_.-]).
    #[arg(long, hide = true)]
    pub run_id: Option<RunId>,
    /// Per-scenario time limit in milliseconds.
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub scenario_timeout_ms: Option<u64>,
    /// Time limit of all scenarios together, in milliseconds.
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub aggregate_timeout_ms: Option<u64>,
    /// SIGTERM-to-SIGKILL grace when stopping the app, in milliseconds.
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub stop_grace_ms: Option<u64>,
}

impl RunSettingsArgs {
    /// The typed settings, with a run id chosen here when none was given so
    /// that an interrupted run can remove its containers by label.
    pub(crate) fn settings(&self, backend: Option<BackendArg>) -> TraceSettings {
        let mut s = TraceSettings {
            backend: backend.map(|b| match b {
                BackendArg::Docker => Backend::Container,
                BackendArg::Host => Backend::Host,
            }),
            engine: match self.engine {
                Some(EngineArg::Podman) => EngineKind::Podman,
                Some(EngineArg::Docker) | None => EngineKind::Docker,
            },
            run_id: Some(self.run_id.clone().unwrap_or_else(|| RunId::unique("cli-"))),
            ..TraceSettings::default()
        };
        let ms = Duration::from_millis;
        if let Some(v) = self.scenario_timeout_ms {
            s.limits.scenario_timeout = ms(v);
        }
        if let Some(v) = self.aggregate_timeout_ms {
            s.limits.aggregate_timeout = ms(v);
        }
        if let Some(v) = self.stop_grace_ms {
            s.limits.stop_grace = ms(v);
        }
        s
    }
}

pub(super) fn run(args: TraceArgs) -> Result<u8, CliError> {
    args.reports.check()?;
    let mut plan = RunPlan::trace(args.run.settings(args.backend));
    plan.no_cache = args.no_cache;
    plan.refresh = args.refresh;
    plan.build = args.build.options(args.no_cache);
    let pipeline = super::open_pipeline(&args.repo, plan)?;
    let report = match super::gather_interruptibly(&pipeline)? {
        Ok(report) => report,
        Err(Interrupted(code)) => return Ok(code),
    };
    let repo = pipeline.repo();
    let rec = report
        .records
        .iter()
        .find(|r| r.name == PROBE_NAME)
        .ok_or("the runtime_trace probe is not registered in this binary")?;
    args.reports.write_trace(&args.repo, rec)?;
    if args.json {
        super::print_json(rec)?;
    }
    match &rec.status {
        ProbeStatus::Skipped { .. } => {
            // A Dockerfile that is there but unusable is named as such.
            let why = codegenie_runtime::runtime_trace::dockerfile::problem(repo.root())
                .map(|p| format!(" ({p})"))
                .unwrap_or_default();
            return Err(format!(
                "nothing to trace: {} has no Dockerfile and no .codegenie/scenarios.yaml{why}",
                repo.root().display()
            )
            .into());
        }
        ProbeStatus::Failed { error } => {
            eprintln!("error: runtime trace failed: {}", super::redacted(error));
            return Ok(EXIT_PROBE_FAILED);
        }
        ProbeStatus::TimedOut { after_ms } => {
            eprintln!("error: runtime trace timed out after {after_ms} ms");
            return Ok(EXIT_PROBE_FAILED);
        }
        ProbeStatus::Ran | ProbeStatus::CacheHit => {}
    }
    let written = pipeline
        .write(&report)?
        .into_iter()
        .zip(&report.records)
        .find(|(_, r)| r.name == PROBE_NAME)
        .and_then(|(w, _)| w);
    let slice = typed_slice(rec)?;
    if !args.json {
        if let Some(slice) = &slice {
            print_summary(
                rec,
                slice,
                written.as_ref().map(|w| w.json.display().to_string()),
            )?;
        }
    }
    // The evidence is written either way; a failed scenario still fails CI.
    let failed = slice.is_some_and(|s| !s.scenarios_failed.is_empty());
    Ok(if failed { EXIT_SCENARIO_FAILED } else { 0 })
}

/// The record's runtime_trace slice, typed.
fn typed_slice(rec: &ProbeRecord) -> Result<Option<Arc<RuntimeTraceSlice>>, CliError> {
    let Some(out) = &rec.output else {
        return Ok(None);
    };
    let slice = out
        .value()
        .map_err(|e| format!("the runtime_trace slice does not have its schema: {e}"))?;
    Ok(Some(slice))
}

fn print_summary(
    rec: &ProbeRecord,
    slice: &RuntimeTraceSlice,
    path: Option<String>,
) -> Result<(), CliError> {
    let status = match rec.status {
        ProbeStatus::CacheHit => "cache hit",
        _ => "ran",
    };
    super::outln(format_args!(
        "runtime_trace: {status} in {} ms, confidence {}",
        rec.duration_ms,
        serde_json::to_value(slice.trace_coverage_confidence)?
            .as_str()
            .unwrap_or("?")
    ))?;
    let rows: Vec<[String; 4]> = slice
        .scenarios
        .iter()
        .map(|sc| {
            let (kind, detail) = match &sc.outcome {
                ScenarioOutcome::Completed => ("completed", String::new()),
                ScenarioOutcome::Failed(r) => ("failed", r.to_string()),
                ScenarioOutcome::Skipped(r) => ("skipped", r.to_string()),
            };
            [
                sc.name.clone(),
                kind.to_owned(),
                format!("{} ms", sc.wall_clock_ms),
                detail,
            ]
        })
        .collect();
    super::probes::print_table(&["SCENARIO", "RESULT", "TIME", "DETAIL"], &rows)?;
    let net = &slice.network_endpoints_touched;
    super::outln(format_args!(
        "binaries {}, shared libs {}, certs {}, shell invocations {}, outbound {}, inbound {}",
        slice.binaries_executed.len(),
        slice.shared_libs_loaded.len(),
        slice.cert_paths_read.len(),
        slice.shell_invocations,
        net.outbound.len(),
        net.inbound.len(),
    ))?;
    for w in rec.output.iter().flat_map(|o| &o.warnings) {
        super::outln(format_args!("warning: {}", super::redacted(w)))?;
    }
    if let Some(p) = path {
        super::outln(format_args!("written: {p}"))?;
    }
    Ok(())
}
