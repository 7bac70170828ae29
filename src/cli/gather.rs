//! `codegenie gather`: run probes on a repository and write the context.

use std::path::PathBuf;

use clap::Args;
use codegenie_runtime::pipeline::RunPlan;
use codegenie_runtime::ProbeStatus;

use super::trace::{BuildArgs, RunSettingsArgs};
use super::{CliError, Interrupted, EXIT_PROBE_FAILED};

/// Arguments of `codegenie gather`.
#[derive(Debug, Args)]
pub struct GatherArgs {
    /// The repository to analyse.
    pub repo: PathBuf,
    /// Run only this probe (repeatable).
    #[arg(long = "only", value_name = "NAME")]
    pub only: Vec<String>,
    /// Neither read nor write the cache.
    #[arg(long, conflicts_with = "refresh")]
    pub no_cache: bool,
    /// Run every selected probe even on a cache hit, and store the new outputs.
    #[arg(long)]
    pub refresh: bool,
    /// How the repository's image is built.
    #[command(flatten)]
    pub build: BuildArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(args: GatherArgs) -> Result<u8, CliError> {
    // The runtime trace's defaults, with a run id chosen here so that an
    // interrupted gather removes its containers by label.
    let plan = RunPlan {
        probes: args.only.clone(),
        no_cache: args.no_cache,
        refresh: args.refresh,
        build: args.build.options(args.no_cache),
        trace: RunSettingsArgs::default().settings(None),
        ..RunPlan::default()
    };
    let pipeline = super::open_pipeline(&args.repo, plan)?;
    let report = match super::gather_interruptibly(&pipeline)? {
        Ok(report) => report,
        Err(Interrupted(code)) => return Ok(code),
    };
    let written = pipeline.write(&report)?;
    let mut failed = false;
    let mut rows = Vec::new();
    for (rec, written) in report.records.iter().zip(written) {
        failed |= matches!(
            rec.status,
            ProbeStatus::Failed { .. } | ProbeStatus::TimedOut { .. }
        );
        let (status, detail) = match &rec.status {
            ProbeStatus::Ran => ("ran".to_owned(), String::new()),
            ProbeStatus::CacheHit => ("cache_hit".to_owned(), String::new()),
            ProbeStatus::Skipped { reason } => ("skipped".to_owned(), reason.clone()),
            ProbeStatus::Failed { error } => ("failed".to_owned(), super::redacted(error)),
            ProbeStatus::TimedOut { after_ms } => {
                ("timed_out".to_owned(), format!("after {after_ms} ms"))
            }
        };
        let out = written
            .map(|w| w.json.display().to_string())
            .unwrap_or_default();
        rows.push([
            rec.name.to_owned(),
            status,
            format!("{} ms", rec.duration_ms),
            out,
            detail,
        ]);
    }
    if args.json {
        super::print_json(&report)?;
    } else {
        super::probes::print_table(&["PROBE", "STATUS", "TIME", "OUTPUT", "DETAIL"], &rows)?;
    }
    Ok(if failed { EXIT_PROBE_FAILED } else { 0 })
}
