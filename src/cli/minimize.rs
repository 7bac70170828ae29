//! `codegenie minimize <repo>`: trace (or reuse the cached trace), build the
//! minimal image the evidence names, prove it by re-running every scenario
//! on it, and report what a distroless base would need.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use codegenie_runtime::minimal::minimize::{
    summary_markdown, MinimalImageReport, MinimizeSettings, MINIMAL_IMAGE_PROBE,
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
    /// Build the minimal image on IMAGE (a maintained minimal base such as
    /// `gcr.io/distroless/cc-debian12:nonroot`, or `scratch`) with the
    /// Dockerfile written to `.codegenie/context/raw/Dockerfile.distroless`:
    /// the units the base lacks, taken from the repository's own last
    /// stage, then verified by the same scenarios. The base must be in the
    /// engine (nothing is pulled). Such runs are not cached.
    #[arg(long, value_name = "IMAGE")]
    pub base: Option<String>,
    /// How the repository's image is built.
    #[command(flatten)]
    pub build: BuildArgs,
    /// Run settings (limits, engine, run label).
    #[command(flatten)]
    pub run: RunSettingsArgs,
    /// CI reports.
    #[command(flatten)]
    pub reports: super::reports::ReportArgs,
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct JsonResult<'a> {
    minimal_image: &'a str,
    verified: bool,
    size_bytes: codegenie_runtime::minimal::minimize::Sizes,
    scenarios: Vec<JsonScenario<'a>>,
    missing: &'a std::collections::BTreeSet<String>,
    blockers: &'a [codegenie_runtime::minimal::distroless::Blocker],
    /// `unit` or `file`, and what the verification covers at it.
    granularity: codegenie_runtime::minimal::units::Granularity,
    verified_scope: &'a str,
    /// Where units could not be read and files were kept instead.
    granularity_fallback: &'a [codegenie_runtime::minimal::units::Fallback],
    /// What the minimal image holds: packages, app trees, lone files.
    added: &'a codegenie_runtime::minimal::units::Added,
    /// How much of the app's own trees the scenarios read.
    coverage: &'a codegenie_runtime::minimal::units::Coverage,
    /// The trace's confidence, which bounds what the verification proves.
    trace_coverage_confidence:
        Option<codegenie_runtime::runtime_trace::slice::TraceCoverageConfidence>,
    /// The base built on (`--base`): `ref` and `id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    base: Option<&'a codegenie_runtime::minimal::base::BaseRef>,
    /// The Dockerfile handed over, relative to the repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    dockerfile: Option<&'a str>,
    /// Whether that file built the verified image (`--base`); without
    /// `--base` it holds the same units on scratch, not built.
    dockerfile_built: bool,
    /// Config lines the Dockerfile does not set, and why.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    refused: &'a [codegenie_runtime::minimal::recipe::Refusal],
    /// Kept packages the base already holds.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    held_by_base: &'a [String],
    /// The user the image runs as.
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    /// Which base family fits (without `--base`).
    #[serde(skip_serializing_if = "Option::is_none")]
    suggested_base: Option<&'a codegenie_runtime::minimal::minimize::BaseSuggestion>,
    /// ENV keys of the original that look like secrets (values never shown).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    secret_env_keys: &'a [String],
}

#[derive(Debug, Serialize)]
struct JsonScenario<'a> {
    name: &'a str,
    original: &'a str,
    minimal: &'a str,
}

pub(super) fn run(args: MinimizeArgs) -> Result<u8, CliError> {
    args.reports.check()?;
    // The one scenario reader: bounded, regular files only, values kept
    // out of its errors.
    let verify_with = args
        .verify_with
        .as_deref()
        .map(RunScenarios::from_file)
        .transpose()?;
    // The cache key holds neither the granularity nor the base: a file cut
    // and a build on a base are not cached.
    let no_cache = args.no_cache
        || verify_with.is_some()
        || args.granularity == Granularity::File
        || args.base.is_some();
    let mut plan = RunPlan::minimize(
        args.run.settings(Some(BackendArg::Docker)),
        MinimizeSettings {
            verify_with,
            tag: args.tag.clone(),
            keep_images: Some(args.build.keep_images()),
            granularity: args.granularity,
            base: args.base.clone(),
            // Set by the pipeline, which joins it to the trace.
            prefetch: None,
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
    args.reports.write_minimize(&args.repo, &report.records)?;
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
        .find(|r| r.name == MINIMAL_IMAGE_PROBE)
        .ok_or("the minimal_image probe is not registered in this binary")?;
    let out = rec
        .output
        .as_ref()
        .ok_or("the minimal-image probe gave no output")?;
    let r: Arc<MinimalImageReport> = out
        .value()
        .map_err(|e| format!("the minimal-image report does not have its schema: {e}"))?;
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
            granularity: r.granularity,
            verified_scope: &r.verified_scope,
            granularity_fallback: &r.granularity_fallback,
            added: &r.added,
            coverage: &r.coverage,
            trace_coverage_confidence: r.trace_coverage_confidence,
            base: r.base.as_ref(),
            dockerfile: r.dockerfile.as_deref(),
            dockerfile_built: r.dockerfile_built,
            refused: &r.refused,
            held_by_base: &r.held_by_base,
            user: r.user.as_deref(),
            suggested_base: r.suggested_base.as_ref(),
            secret_env_keys: &r.secret_env_keys,
        })?;
    } else {
        outln!("{}", summary_markdown(&r).trim_end());
    }
    Ok(if r.verified { 0 } else { EXIT_NOT_VERIFIED })
}
