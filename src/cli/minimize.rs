//! `codegenie minimize <repo>`: trace (or reuse the cached trace), build the
//! minimal image the evidence names, prove it by re-running every scenario
//! on it, and report distroless readiness.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use codegenie_runtime::minimal::probe::{
    summary_markdown, MinimizeSettings, ReadinessReport, READINESS_PROBE,
};
use codegenie_runtime::minimal::units::Granularity;
use codegenie_runtime::pipeline::RunPlan;
use codegenie_runtime::runtime_trace::scenario_file::RunScenarios;
use codegenie_runtime::ProbeStatus;
use serde::Serialize;

use super::trace::{BackendArg, BuildArgs, RunSettingsArgs};
use super::{CliError, Interrupted, EXIT_NOT_VERIFIED, EXIT_PROBE_FAILED};

/// Arguments of `codegenie minimize`.
#[derive(Debug, Args)]
pub struct MinimizeArgs {
    /// The repository (with a Dockerfile).
    pub repo: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Neither read nor write the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Also tag the minimal image NAME.
    #[arg(long, value_name = "NAME")]
    pub tag: Option<String>,
    /// Extra verification scenarios (a scenarios file), run on both the
    /// original and the minimal image. Such runs are never cached.
    #[arg(long, value_name = "FILE")]
    pub verify_with: Option<PathBuf>,
    /// How finely the image is cut: `unit` keeps every OS package, language
    /// package and app tree the evidence reached whole; `file` keeps only
    /// the paths reached (verified only for those). A `file` cut is never
    /// cached.
    #[arg(long, value_name = "unit|file", default_value = "unit")]
    pub granularity: Granularity,
    /// How the repository's image is built.
    #[command(flatten)]
    pub build: BuildArgs,
    /// Run settings (limits, engine, run label).
    #[command(flatten)]
    pub run: RunSettingsArgs,
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct JsonResult<'a> {
    minimal_image: &'a str,
    verified: bool,
    size_bytes: codegenie_runtime::minimal::probe::Sizes,
    scenarios: Vec<JsonScenario<'a>>,
    missing: &'a std::collections::BTreeSet<String>,
    blockers: &'a [codegenie_runtime::minimal::readiness::Blocker],
}

#[derive(Debug, Serialize)]
struct JsonScenario<'a> {
    name: &'a str,
    original: &'a str,
    minimal: &'a str,
}

pub(super) fn run(args: MinimizeArgs) -> Result<u8, CliError> {
    // The one scenario reader: bounded, regular files only, values kept
    // out of its errors.
    let verify_with = args
        .verify_with
        .as_deref()
        .map(RunScenarios::from_file)
        .transpose()?;
    // The cache key does not hold the granularity: a file cut is not cached.
    let no_cache = args.no_cache || verify_with.is_some() || args.granularity == Granularity::File;
    let mut plan = RunPlan::minimize(
        args.run.settings(Some(BackendArg::Docker)),
        MinimizeSettings {
            verify_with,
            tag: args.tag.clone(),
            keep_images: Some(args.build.keep_images()),
            granularity: args.granularity,
        },
    );
    plan.no_cache = no_cache;
    plan.build = args.build.options(no_cache);
    let pipeline = super::open_pipeline(&args.repo, plan)?;
    let report = match super::gather_interruptibly(&pipeline)? {
        Ok(report) => report,
        Err(Interrupted(code)) => return Ok(code),
    };
    pipeline.write(&report)?;
    for rec in &report.records {
        match &rec.status {
            ProbeStatus::Failed { error } => {
                eprintln!("error: {} failed: {}", rec.name, super::redacted(error));
                return Ok(EXIT_PROBE_FAILED);
            }
            ProbeStatus::TimedOut { after_ms } => {
                eprintln!("error: {} timed out after {after_ms} ms", rec.name);
                return Ok(EXIT_PROBE_FAILED);
            }
            ProbeStatus::Skipped { reason } => {
                return Err(format!("{}: {reason} (minimize needs a Dockerfile)", rec.name).into());
            }
            ProbeStatus::Ran | ProbeStatus::CacheHit => {}
        }
    }
    let rec = report
        .records
        .iter()
        .find(|r| r.name == READINESS_PROBE)
        .ok_or("the distroless_readiness probe is not registered in this binary")?;
    let out = rec
        .output
        .as_ref()
        .ok_or("the readiness probe gave no output")?;
    let r: Arc<ReadinessReport> = out
        .value()
        .map_err(|e| format!("the readiness report does not have its schema: {e}"))?;
    if args.json {
        super::print_json(&JsonResult {
            minimal_image: &r.minimal_image,
            verified: r.verified,
            size_bytes: r.size_bytes,
            scenarios: r
                .scenarios
                .iter()
                .chain(r.verify_with.iter().flat_map(|v| &v.scenarios))
                .map(|c| JsonScenario {
                    name: &c.name,
                    original: &c.original,
                    minimal: &c.minimal,
                })
                .collect(),
            missing: &r.missing,
            blockers: &r.blockers,
        })?;
    } else {
        outln!("{}", summary_markdown(&r).trim_end());
    }
    Ok(if r.verified { 0 } else { EXIT_NOT_VERIFIED })
}
