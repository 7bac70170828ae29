//! What every backend shares around a scenario: strictly sequential runs
//! under the per-scenario and aggregate timeouts (docs/architecture.md, "Runtime trace"), and turning
//! a raw trace into a result, with the interpreters of executed paths.

use std::collections::BTreeMap;
use std::path::Path;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cancel::CancelToken;
use crate::probe::ProgressEvent;
use crate::strace::{self, ParseOptions, TraceFacts};

use super::results::{ScenarioOutcome, ScenarioReason, ScenarioResult};
use super::scenarios::Scenario;
use super::settings::RunLimits;
use super::steps::Stop;

/// One scenario's outcome plus its raw trace file, if one was collected.
#[derive(Debug)]
pub(crate) struct ScenarioRun {
    /// The result (trace and interpreters filled in when a trace was parsed).
    pub result: ScenarioResult,
    /// The raw trace on the host.
    pub trace_file: Option<PathBuf>,
    /// Problems that did not change the outcome (e.g. a trace that could not be copied).
    pub warnings: Vec<String>,
}

/// The instants one scenario works against (docs/architecture.md, "Deadlines").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadlines {
    /// The steps end by this: the scenario's own timeout, cut so that its
    /// wrap-up still fits in the run's budget.
    pub(crate) steps: Instant,
    /// The wrap-up (trace copy-out, interpreter lookups) ends by this; never
    /// later than the end of the run's budget.
    pub(crate) hard: Instant,
}

/// Time kept after a scenario's steps for its wrap-up: stopping the app
/// (grace, then SIGKILL), copying the trace out and reading interpreters.
/// At most half the run's budget, so short budgets still run steps.
pub(super) fn wrap_up(limits: &RunLimits) -> Duration {
    (limits.stop_grace + Duration::from_secs(15)).min(limits.aggregate_timeout / 2)
}

/// Run `one` for each scenario, one at a time: each gets the per-scenario
/// timeout cut to what is left of the aggregate one once its wrap-up is
/// reserved; once the aggregate budget cannot hold a wrap-up the rest are
/// `Skipped(AggregateTimeout)`.
pub(super) fn run_sequentially(
    scenarios: &[Scenario],
    limits: &RunLimits,
    cancel: &CancelToken,
    progress: &dyn Fn(ProgressEvent<'_>),
    mut one: impl FnMut(&Scenario, Deadlines) -> ScenarioRun,
) -> Vec<ScenarioRun> {
    let reserve = wrap_up(limits);
    let loop_deadline = Instant::now() + limits.aggregate_timeout;
    let mut runs = Vec::new();
    progress(ProgressEvent::Planned {
        total: scenarios.len() as u64,
    });
    for sc in scenarios {
        let now = Instant::now();
        if now + reserve >= loop_deadline || cancel.is_cancelled() {
            runs.push(ScenarioRun {
                result: not_run(
                    &sc.name,
                    ScenarioOutcome::Skipped(ScenarioReason::AggregateTimeout),
                ),
                trace_file: None,
                warnings: Vec::new(),
            });
            progress(ProgressEvent::Finished(&sc.name));
            continue;
        }
        let steps = (now + limits.scenario_timeout).min(loop_deadline - reserve);
        let deadlines = Deadlines {
            steps,
            hard: steps + reserve,
        };
        tracing::info!(scenario = %sc.name, "scenario_started");
        progress(ProgressEvent::Started(&sc.name));
        let run = one(sc, deadlines);
        progress(ProgressEvent::Finished(&sc.name));
        tracing::info!(
            scenario = %sc.name,
            wall_clock_ms = run.result.wall_clock_ms,
            result = outcome_kind(&run.result.outcome),
            "scenario_finished"
        );
        runs.push(run);
    }
    progress(ProgressEvent::Done);
    runs
}

/// Parse `file` in one pass, reading the interpreter of each executed path
/// with `interpreter_of` when the parser first meets it (cached in `cache`
/// across scenarios).
pub(super) fn parse_with_interpreters(
    file: &Path,
    cache: &mut BTreeMap<String, Option<String>>,
    mut interpreter_of: impl FnMut(&str) -> Option<String>,
) -> Result<(TraceFacts, BTreeMap<String, String>), TraceReadError> {
    let read_err = |source| TraceReadError {
        path: file.to_owned(),
        source,
    };
    let f = std::fs::File::open(file).map_err(read_err)?;
    let mut lookup = |path: &str| {
        cache
            .entry(path.to_owned())
            .or_insert_with(|| interpreter_of(path))
            .clone()
    };
    // The product's strace argv traces chdir (bundle::strace_options).
    let opts = ParseOptions {
        chdir_traced: true,
        ..ParseOptions::default()
    };
    strace::parse_trace_with_lookup(std::io::BufReader::new(f), &opts, &mut lookup)
        .map_err(read_err)
}

/// A collected trace that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the trace {path}")]
pub(super) struct TraceReadError {
    /// The trace file.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// Fill `result` from a collected trace; problems become warnings.
pub(super) fn attach_trace(
    result: &mut ScenarioResult,
    file: &Path,
    warnings: &mut Vec<String>,
    cache: &mut BTreeMap<String, Option<String>>,
    interpreter_of: impl FnMut(&str) -> Option<String>,
) {
    match parse_with_interpreters(file, cache, interpreter_of) {
        Ok((facts, interps)) => {
            result.exit_status = facts.root_exit.clone();
            result.signals_seen = facts.root_signals.clone();
            result.trace = Some(facts.trace);
            result.interpreters = interps;
            result.script_shell_invocations = facts.script_shell_invocations;
            result.missing = facts.missing;
            result.execs = facts.execs;
            if facts.malformed_lines > 0 {
                warnings.push(format!(
                    "scenario {}: {} trace lines were not understood",
                    result.name, facts.malformed_lines
                ));
            }
        }
        Err(e) => warnings.push(format!(
            "scenario {}: {}",
            result.name,
            crate::errors::error_chain(&e)
        )),
    }
}

/// The scenario outcome of a driver result.
pub(super) fn outcome_of(r: Result<(), Stop>, started: Instant) -> ScenarioOutcome {
    match r {
        Ok(()) => ScenarioOutcome::Completed,
        Err(Stop::Timeout) => ScenarioOutcome::Failed(ScenarioReason::ScenarioTimeout {
            elapsed_ms: ms(started.elapsed()),
        }),
        Err(Stop::Reason(r)) => ScenarioOutcome::Failed(r),
    }
}

/// A result for a scenario that produced no trace.
pub(crate) fn not_run(name: &str, outcome: ScenarioOutcome) -> ScenarioResult {
    ScenarioResult::new(name, outcome)
}

/// `completed`, `failed` or `skipped`, for logs.
pub(super) fn outcome_kind(o: &ScenarioOutcome) -> &'static str {
    match o {
        ScenarioOutcome::Completed => "completed",
        ScenarioOutcome::Failed(_) => "failed",
        ScenarioOutcome::Skipped(_) => "skipped",
    }
}

/// Milliseconds of a duration, saturating.
pub(super) fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::runtime_trace::scenarios::parse_scenarios;

    fn three() -> Vec<Scenario> {
        parse_scenarios(
            "version: 1\nscenarios:\n  - {name: a, command: [x]}\n  - {name: b, command: [x]}\n  - {name: c, command: [x]}\n",
            "s",
        )
        .unwrap()
        .scenarios
    }

    fn completed(name: &str) -> ScenarioRun {
        ScenarioRun {
            result: not_run(name, ScenarioOutcome::Completed),
            trace_file: None,
            warnings: Vec::new(),
        }
    }

    #[test]
    fn scenarios_run_in_order_one_at_a_time_with_their_own_deadline() {
        let limits = RunLimits {
            scenario_timeout: Duration::from_secs(7),
            ..RunLimits::default()
        };
        let mut calls = Vec::new();
        let runs = run_sequentially(&three(), &limits, &CancelToken::new(), &|_| {}, |sc, d| {
            let left = d.steps.saturating_duration_since(Instant::now());
            assert!(left <= Duration::from_secs(7) && left > Duration::from_secs(6));
            calls.push(sc.name.clone());
            completed(&sc.name)
        });
        assert_eq!(calls, ["a", "b", "c"]);
        assert!(runs
            .iter()
            .all(|r| r.result.outcome == ScenarioOutcome::Completed));
    }

    #[test]
    fn the_aggregate_budget_cuts_deadlines_then_skips_the_rest() {
        let limits = RunLimits {
            scenario_timeout: Duration::from_secs(60),
            aggregate_timeout: Duration::from_millis(150),
            ..RunLimits::default()
        };
        let runs = run_sequentially(&three(), &limits, &CancelToken::new(), &|_| {}, |sc, d| {
            // The first scenario's deadline is the aggregate one, not 60 s away,
            // and its wrap-up ends within the budget too.
            assert!(d.steps < d.hard);
            assert!(d.hard <= Instant::now() + Duration::from_millis(150));
            std::thread::sleep(d.hard.saturating_duration_since(Instant::now()));
            completed(&sc.name)
        });
        assert_eq!(runs[0].result.outcome, ScenarioOutcome::Completed);
        for r in &runs[1..] {
            assert_eq!(
                r.result.outcome,
                ScenarioOutcome::Skipped(ScenarioReason::AggregateTimeout)
            );
        }
    }
}
