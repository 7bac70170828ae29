//! `codegenie minimize <repo>`: trace (or reuse the cached trace), build the
//! minimal image the evidence names, prove it by re-running every scenario
//! on it, and report distroless readiness.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use codegenie_runtime::minimal::probe::{
    summary_markdown, MinimizeSettings, ReadinessReport, READINESS_PROBE,
};
use codegenie_runtime::runtime_trace::scenarios::parse_scenarios;
use codegenie_runtime::runtime_trace::{work_dir, PROBE_NAME};
use codegenie_runtime::writer::Writer;
use codegenie_runtime::{GatherOptions, ProbeStatus};
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

/// Largest verification scenarios file read.
const MAX_VERIFY_FILE_BYTES: u64 = 1024 * 1024;

pub(super) fn run(args: MinimizeArgs) -> Result<ExitCode, CliError> {
    args.reports.check()?;
    let verify_with = match &args.verify_with {
        Some(path) => {
            let len = std::fs::metadata(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                .len();
            if len > MAX_VERIFY_FILE_BYTES {
                return Err(format!(
                    "{}: {len} bytes; at most {MAX_VERIFY_FILE_BYTES} are read",
                    path.display()
                )
                .into());
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Some(parse_scenarios(&text, &path.display().to_string())?)
        }
        None => None,
    };
    let no_cache = args.no_cache || verify_with.is_some();
    let (repo, coordinator) = super::open_with_coordinator(&args.repo, no_cache)?;
    let settings = args.run.settings(Some(BackendArg::Docker));
    let mut ctx = super::probe_context(settings.engine, args.build.options(no_cache));
    ctx.settings.insert(settings.clone());
    ctx.settings.insert(MinimizeSettings {
        verify_with,
        tag: args.tag.clone(),
        keep_images: Some(args.build.keep_images()),
    });
    let opts = GatherOptions {
        only: vec![PROBE_NAME.to_owned(), READINESS_PROBE.to_owned()],
        no_cache,
        refresh: false,
        ctx,
    };
    let report = match super::gather_interruptibly(&coordinator, &repo, &opts, &settings)? {
        Ok(report) => report,
        Err(Interrupted(code)) => return Ok(ExitCode::from(code)),
    };
    let writer = Writer::new(repo.root());
    for rec in &report.records {
        writer.write_record(rec)?;
    }
    if let Some(run_id) = &settings.run_id {
        if let Err(e) = work_dir::clean_work_dir(&repo, run_id) {
            eprintln!("warning: cannot remove the raw traces: {e}");
        }
    }
    args.reports.write_minimize(&args.repo, &report.records)?;
    for rec in &report.records {
        match &rec.status {
            ProbeStatus::Failed { error } => {
                eprintln!("error: {} failed: {error}", rec.name);
                return Ok(ExitCode::from(EXIT_PROBE_FAILED));
            }
            ProbeStatus::TimedOut { after_ms } => {
                eprintln!("error: {} timed out after {after_ms} ms", rec.name);
                return Ok(ExitCode::from(EXIT_PROBE_FAILED));
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
    let r: ReadinessReport = serde_json::from_value(out.schema_slice.clone())
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
    Ok(if r.verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_VERIFIED)
    })
}
