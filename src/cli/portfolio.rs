//! `codegenie portfolio <manifest.yaml>`: trace (and minimize, when asked)
//! every repository of the manifest over its engines, resumably, and print
//! the fleet report (docs/architecture.md, "Portfolio").

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use codegenie_runtime::engine::Engine;
use codegenie_runtime::portfolio::report::{
    blocker_summary, confidence_str, minimal_summary, scenario_summary, EngineState,
};
use codegenie_runtime::portfolio::{
    run_portfolio, Counts, FleetReport, Manifest, PortfolioError, PortfolioEvent, PortfolioOptions,
    PortfolioProgress,
};
use codegenie_runtime::runtime_trace::RunId;
use codegenie_runtime::CancelToken;

use super::trace::RunSettingsArgs;
use super::{CliError, EXIT_PROBE_FAILED};

/// The state folder's parent, beside the manifest.
pub const STATE_DIR: &str = ".codegenie-portfolio";

/// Arguments of `codegenie portfolio`.
#[derive(Debug, Args)]
pub struct PortfolioArgs {
    /// The manifest (`version: 1`, `engines`, `repositories`, `minimize`).
    pub manifest: PathBuf,
    /// Print the fleet report as JSON.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print the fleet report as markdown.
    #[arg(long)]
    pub markdown: bool,
    /// The portfolio's state folder (journal, reports) [default:
    /// `.codegenie-portfolio/<manifest name>/` beside the manifest].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Run every repository again, whatever the journal says is done.
    #[arg(long)]
    pub fresh: bool,
    /// Run settings (limits, engine CLI, run label).
    #[command(flatten)]
    pub run: RunSettingsArgs,
    /// CI reports.
    #[command(flatten)]
    pub reports: super::reports::ReportArgs,
}

/// Progress lines on stderr: what changed, then the counts.
struct LineProgress;

impl PortfolioProgress for LineProgress {
    fn update(&self, event: PortfolioEvent<'_>, c: &Counts) {
        let what = match event {
            PortfolioEvent::Skipped { repo } => format!("{repo}: done earlier, skipped"),
            PortfolioEvent::Started { repo, engine } => format!("{repo}: started on {engine}"),
            PortfolioEvent::Finished {
                repo,
                engine,
                status,
            } => format!("{repo}: {} on {engine}", status.as_str()),
            PortfolioEvent::EngineUnreachable { engine, detail } => {
                format!("engine {engine} does not answer, running on the others: {detail}")
            }
            PortfolioEvent::EngineDown { engine, detail } => {
                format!("engine {engine} stopped answering: {detail}")
            }
            PortfolioEvent::Requeued { repo, engine } => {
                format!("{repo}: queued again (left {engine})")
            }
            _ => return,
        };
        let engines: Vec<String> = c
            .engines
            .iter()
            .map(|(name, running, finished, down)| {
                if *down {
                    format!("{name}: DOWN, {finished} finished")
                } else {
                    format!("{name}: {running} running, {finished} finished")
                }
            })
            .collect();
        eprintln!(
            "portfolio: {what} [{}/{} finished, {} running, {} queued; {}]",
            c.finished,
            c.total,
            c.running,
            c.queued,
            engines.join("; ")
        );
    }
}

fn default_state_dir(manifest: &Path) -> PathBuf {
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let stem = manifest
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "portfolio".to_owned());
    dir.join(STATE_DIR).join(stem)
}

pub(super) fn run(args: PortfolioArgs) -> Result<u8, CliError> {
    args.reports.check()?;
    let manifest = Manifest::load(&args.manifest)?;
    let settings = args.run.settings(None);
    let checked = manifest.check_engines(settings.engine)?;
    let prefix: RunId = match &args.run.run_id {
        Some(id) => id.clone(),
        None => RunId::unique("portfolio-"),
    };
    let cancel = CancelToken::new();
    let opts = PortfolioOptions {
        kind: settings.engine,
        state_dir: args
            .state_dir
            .clone()
            .unwrap_or_else(|| default_state_dir(&manifest.path)),
        helper: settings.helper.clone(),
        limits: settings.limits.clone(),
        run_id: prefix.clone(),
        progress: Arc::new(LineProgress),
        cancel: cancel.clone(),
        fresh: args.fresh,
    };
    // The cleanup after Ctrl-C skips the engines that did not answer: the
    // run made nothing there, and each would cost its client's timeout.
    let engines: Vec<_> = manifest
        .engines
        .iter()
        .enumerate()
        .filter(|(i, _)| checked.unreachable(*i).is_none())
        .map(|(_, e)| e.clone())
        .collect();
    let outcome = super::interruptibly(run_portfolio(&manifest, &checked, opts), &cancel, || {
        for e in &engines {
            super::remove_run_leftovers(&Engine::at(settings.engine, e.endpoint.clone()), &prefix);
        }
    })?;
    let report = match outcome {
        Ok(Ok(report)) => report,
        Ok(Err(PortfolioError::Interrupted)) => return Ok(130),
        Ok(Err(e)) => return Err(e.into()),
        Err(super::Interrupted(code)) => return Ok(code),
    };
    args.reports.write_portfolio(&manifest, &report)?;
    if args.json {
        super::print_json(&report)?;
    } else if args.markdown {
        super::outln(format_args!("{}", report.to_markdown().trim_end()))?;
    } else {
        print_report(&report)?;
    }
    Ok(if report.totals.failed > 0 {
        EXIT_PROBE_FAILED
    } else {
        0
    })
}

fn print_report(r: &FleetReport) -> Result<(), CliError> {
    let rows: Vec<[String; 7]> = r
        .repositories
        .iter()
        .map(|x| {
            [
                x.path.clone(),
                x.engine.clone().unwrap_or_else(|| "-".to_owned()),
                match (x.status, x.evidence) {
                    (s, Some(e)) => format!("{} ({})", s.as_str(), e.as_str()),
                    (s, None) => s.as_str().to_owned(),
                },
                x.confidence.map_or("-", confidence_str).to_owned(),
                scenario_summary(&x.scenarios),
                minimal_summary(x),
                match &x.error {
                    Some(e) => format!("error: {e}"),
                    None => blocker_summary(&x.blockers),
                },
            ]
        })
        .collect();
    super::probes::print_table(
        &[
            "REPOSITORY",
            "ENGINE",
            "STATUS",
            "CONFIDENCE",
            "SCENARIOS",
            "MINIMAL IMAGE",
            "BLOCKERS",
        ],
        &rows,
    )?;
    let t = &r.totals;
    super::outln(format_args!(
        "\n{} repositories: {} done, {} skipped (done earlier), {} failed; {} ready for a distroless base, {} without a verified minimal image",
        t.repositories, t.done, t.skipped, t.failed, t.ready, t.unverified
    ))?;
    for b in &r.common_blockers {
        super::outln(format_args!(
            "blocker {}: {} ({})",
            b.kind,
            b.repositories.len(),
            b.repositories.join(", ")
        ))?;
    }
    for e in &r.engines {
        match &e.state {
            EngineState::Up => super::outln(format_args!(
                "engine {} ({} slots): up, {} finished",
                e.engine, e.slots, e.repositories_finished
            ))?,
            EngineState::Down { detail, requeued } => super::outln(format_args!(
                "engine {} ({} slots): STOPPED ANSWERING ({detail}); {} finished, moved to other engines: {}",
                e.engine,
                e.slots,
                e.repositories_finished,
                requeued.join(", ")
            ))?,
            EngineState::Unreachable { detail } => super::outln(format_args!(
                "engine {} ({} slots): unreachable: {detail}",
                e.engine, e.slots
            ))?,
        }
    }
    super::outln(format_args!("wall clock: {} ms", r.wall_clock_ms))?;
    Ok(())
}
