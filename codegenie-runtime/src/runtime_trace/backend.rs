//! The one path every scenario takes, whatever runs it: pick the command,
//! start the app under strace, wait until it runs, drive the steps, stop it
//! through its own root process, let the backend judge the end (an OOM kill),
//! bring the trace to the host, parse it with the interpreters of executed
//! paths, and remove what the scenario created. A backend (containers, or
//! this machine) supplies only the operations behind [`ScenarioBackend`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::disk_watch::{DiskReport, DiskWatch};
use super::results::{PhasesMs, ScenarioOutcome, ScenarioReason};
use super::scenarios::Scenario;
use super::sequence::{attach_trace, ms, not_run, outcome_of, Deadlines, ScenarioRun};
use super::settings::RunLimits;
use super::steps::{AppOps, AppProcess, Driver, ResolvedApp, Stop};
use crate::cancel::CancelToken;
use crate::interp::Interpreter;

pub(crate) use super::error::BackendError;

/// What a backend does for one scenario; [`run_one`] calls these in order.
pub(crate) trait ScenarioBackend {
    /// What the app will run in, before it starts: a created container, or
    /// the strace command line.
    type Created;
    /// A started app: its container, or its strace process.
    type Session;
    /// The step operations on a running session.
    type Ops<'s>: AppOps
    where
        Self: 's;
    /// The traced process of a session.
    type App: AppProcess;

    /// Why a scenario without a command cannot run here.
    fn no_command(&self) -> &'static str;

    /// Prepare `argv` to run under strace, which writes its trace where
    /// [`Self::collect_trace`] finds it.
    fn create(
        &mut self,
        scenario: &Scenario,
        argv: &[String],
        app: &ResolvedApp,
    ) -> Result<Self::Created, Stop>;

    /// Put the tools (strace, the helper) where the app runs, when each
    /// scenario needs its own copy.
    fn install_tools(&mut self, _created: &mut Self::Created) -> Result<(), Stop> {
        Ok(())
    }

    /// Start what [`Self::create`] prepared.
    fn start(&mut self, created: Self::Created, app: &ResolvedApp) -> Result<Self::Session, Stop>;

    /// Start asking interpreters of the programs the app runs while its
    /// trace is written (docs/architecture.md, "Capped copies"), at most
    /// `limit` and none of `known`; nothing where the backend cannot read
    /// the trace before the stop, or gains nothing by it.
    fn prefetch_interpreters(
        &mut self,
        _session: &mut Self::Session,
        _known: BTreeSet<String>,
        _limit: usize,
    ) {
    }

    /// Start bounding what the session writes into its filesystem
    /// (docs/architecture.md, "Disk bound") and stopping it when `cancel`
    /// trips; `None` where the backend cannot.
    fn watch_disk(
        &self,
        _session: &Self::Session,
        _limit_bytes: u64,
        _cancel: &CancelToken,
    ) -> Option<DiskWatch> {
        None
    }

    /// Wait until the started app runs (or a one-shot command already ended).
    fn ready(&self, _session: &mut Self::Session, _deadline: Instant) -> Result<(), Stop> {
        Ok(())
    }

    /// The step operations and the traced process of `session`.
    fn parts<'s>(&'s self, session: &'s mut Self::Session) -> (Self::Ops<'s>, &'s mut Self::App);

    /// After the app stopped: a better explanation of the outcome, if the
    /// backend has one (an OOM kill), and anything worth a warning.
    fn judge(
        &mut self,
        _session: &mut Self::Session,
        _scenario: &str,
        outcome: ScenarioOutcome,
        _warnings: &mut Vec<String>,
    ) -> ScenarioOutcome {
        outcome
    }

    /// Bring at most `limit` bytes of the trace of `session` to `dest` on
    /// the host, by `deadline`.
    fn collect_trace(
        &mut self,
        session: &mut Self::Session,
        dest: &Path,
        limit: u64,
        deadline: Instant,
    ) -> Result<TraceCopy, BackendError>;

    /// The `#!` or `PT_INTERP` interpreter of an executed path, read where
    /// the app ran (at most its first `interp::HEAD_BYTES`), by `deadline`.
    fn interpreter_of(
        &self,
        session: &Self::Session,
        path: &str,
        deadline: Instant,
    ) -> Option<Interpreter>;

    /// Remove what the scenario created.
    fn remove(&mut self, session: Self::Session) -> Result<(), BackendError>;
}

/// How much of a trace reached the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceCopy {
    /// The trace's full size where it was written.
    pub(crate) size: u64,
    /// The bytes brought to the host.
    pub(crate) written: u64,
}

/// What every scenario of a run shares.
pub(crate) struct RunShared<'a> {
    /// Limits and timeouts.
    pub(crate) limits: &'a RunLimits,
    /// Where raw traces are written on the host.
    pub(crate) work_dir: &'a Path,
    /// `{path: interpreter}` read so far, shared by the scenarios of a run.
    pub(crate) interpreters: BTreeMap<String, Option<String>>,
    /// The `PT_INTERP` loaders met so far: never looked up themselves.
    pub(crate) loaders: BTreeSet<String>,
    /// Trips when the run is cancelled.
    pub(crate) cancel: CancelToken,
    /// Interpreter lookups this run may still make.
    pub(crate) lookups_left: usize,
    /// Executed paths whose interpreter was not read because the lookups
    /// (or the time) ran out.
    pub(crate) lookups_skipped: usize,
}

/// The time since the last lap, in whole milliseconds: consecutive laps
/// cover consecutive phases, so their sum never exceeds the wall clock.
struct Laps(Instant);

impl Laps {
    fn lap(&mut self) -> u64 {
        let now = Instant::now();
        let took = ms(now - self.0);
        self.0 = now;
        took
    }
}

/// Run one scenario on `backend`, from start to removal.
pub(crate) fn run_one<B: ScenarioBackend>(
    backend: &mut B,
    shared: &mut RunShared<'_>,
    sc: &Scenario,
    app: &ResolvedApp,
    deadlines: Deadlines,
) -> ScenarioRun {
    let (deadline, after_steps) = (deadlines.steps, deadlines.hard);
    let started = Instant::now();
    let mut laps = Laps(started);
    let mut phases = PhasesMs::default();
    let mut warnings = Vec::new();
    let early = |outcome, warnings, phases: Option<PhasesMs>| {
        let mut result = not_run(&sc.name, outcome);
        result.wall_clock_ms = ms(started.elapsed());
        result.phases_ms = phases;
        log_phases(&sc.name, phases.as_ref());
        ScenarioRun {
            result,
            trace_file: None,
            warnings,
        }
    };
    let argv = sc.command.clone().unwrap_or_else(|| app.argv.clone());
    if argv.is_empty() {
        let detail = backend.no_command().to_owned();
        return early(
            ScenarioOutcome::Failed(ScenarioReason::Other { detail }),
            warnings,
            None,
        );
    }
    if shared.cancel.is_cancelled() {
        let detail = "the run was cancelled".to_owned();
        return early(
            ScenarioOutcome::Skipped(ScenarioReason::Other { detail }),
            warnings,
            None,
        );
    }
    let created = backend.create(sc, &argv, app);
    phases.create = laps.lap();
    let mut created = match created {
        Ok(c) => c,
        Err(stop) => return early(outcome_of(Err(stop), started), warnings, Some(phases)),
    };
    let installed = backend.install_tools(&mut created);
    phases.install = laps.lap();
    if let Err(stop) = installed {
        // Dropping what was created removes it.
        drop(created);
        phases.remove = laps.lap();
        return early(outcome_of(Err(stop), started), warnings, Some(phases));
    }
    let session = backend.start(created, app);
    let mut session = match session {
        Ok(s) => s,
        Err(stop) => {
            phases.start = laps.lap();
            return early(outcome_of(Err(stop), started), warnings, Some(phases));
        }
    };
    // Paths this run asked before, and loaders, are not asked again.
    let known = shared
        .interpreters
        .keys()
        .chain(&shared.loaders)
        .cloned()
        .collect();
    let limit = shared.lookups_left.min(PREFETCH_LIMIT);
    backend.prefetch_interpreters(&mut session, known, limit);
    let disk = backend.watch_disk(&session, shared.limits.disk_limit_bytes, &shared.cancel);
    phases.start = laps.lap();
    // Only steps need the app running (their helpers go through the
    // backend); a one-shot command without steps is judged by its exit, so
    // it is not polled for a running state it may never be seen in.
    let ready = if sc.command.is_some() && sc.steps.is_empty() {
        Ok(())
    } else {
        backend.ready(&mut session, deadline)
    };
    phases.ready = laps.lap();
    let outcome = {
        let (ops, running) = backend.parts(&mut session);
        let mut driver = Driver {
            ops,
            app: running,
            deadline,
            exited_expectedly: false,
            root: None,
            warnings: Vec::new(),
            settle: (shared.limits.settle_quiet, shared.limits.settle_max),
        };
        let outcome = ready.and_then(|()| driver.run(sc, app));
        phases.steps = laps.lap();
        let end = driver.stop(shared.limits.stop_grace);
        warnings.append(&mut driver.warnings);
        warnings.extend(end.warning(&sc.name, shared.limits.stop_grace));
        phases.stop = laps.lap();
        outcome_of(outcome, started)
    };
    let disk = disk.map(DiskWatch::finish);
    let outcome = backend.judge(&mut session, &sc.name, outcome, &mut warnings);
    let outcome = judge_disk(&sc.name, disk.as_ref(), outcome, &mut warnings);
    phases.judge = laps.lap();
    let dest = shared.work_dir.join(format!("{}.strace", sc.name));
    let cap = shared.limits.trace_cap_bytes;
    let (trace_file, outcome): (Option<PathBuf>, _) =
        match backend.collect_trace(&mut session, &dest, cap, after_steps) {
            Ok(copy) => (
                Some(dest),
                judge_trace_copy(&sc.name, copy, cap, outcome, &mut warnings),
            ),
            Err(e) => {
                warnings.push(format!("scenario {}: no trace collected: {e}", sc.name));
                // Steps that ran without leaving evidence do not count as coverage.
                let outcome = match outcome {
                    ScenarioOutcome::Completed => ScenarioOutcome::Failed(ScenarioReason::Other {
                        detail: format!("no trace collected: {e}"),
                    }),
                    other => other,
                };
                (None, outcome)
            }
        };
    phases.copy_out = laps.lap();
    let mut result = not_run(&sc.name, outcome);
    if let Some(file) = &trace_file {
        let mut budget = LookupBudget {
            left: &mut shared.lookups_left,
            skipped: &mut shared.lookups_skipped,
            loaders: &mut shared.loaders,
            deadline: after_steps,
        };
        attach_trace(
            &mut result,
            file,
            &mut warnings,
            &mut shared.interpreters,
            |path| budget.look_up(path, |p| backend.interpreter_of(&session, p, after_steps)),
        );
    }
    phases.parse = laps.lap();
    if let Err(e) = backend.remove(session) {
        warnings.push(format!("scenario {}: {e}", sc.name));
    }
    phases.remove = laps.lap();
    result.wall_clock_ms = ms(started.elapsed());
    result.phases_ms = Some(phases);
    log_phases(&sc.name, Some(&phases));
    ScenarioRun {
        result,
        trace_file,
        warnings,
    }
}

/// Most lookups asked while one scenario's app runs (fewer if the run's
/// budget has fewer left); the parse asks for the rest, within the budget.
const PREFETCH_LIMIT: usize = 16;

/// The run's interpreter lookups: at most so many, none after the
/// deadline, and none for an ELF loader met before.
struct LookupBudget<'a> {
    left: &'a mut usize,
    skipped: &'a mut usize,
    loaders: &'a mut BTreeSet<String>,
    deadline: Instant,
}

impl LookupBudget<'_> {
    /// The interpreter of `path`, asked of `ask` if the budget allows.
    fn look_up(
        &mut self,
        path: &str,
        ask: impl FnOnce(&str) -> Option<Interpreter>,
    ) -> Option<String> {
        // The kernel never reads an interpreter of a `PT_INTERP` loader.
        if self.loaders.contains(path) {
            return None;
        }
        if *self.left == 0 || Instant::now() >= self.deadline {
            *self.skipped += 1;
            return None;
        }
        *self.left -= 1;
        let found = ask(path)?;
        if found.loader {
            self.loaders.insert(found.path.clone());
        }
        Some(found.path)
    }
}

/// Where a scenario's time went, at debug level (the same figures are in
/// the scenario's result).
fn log_phases(scenario: &str, phases: Option<&PhasesMs>) {
    let Some(p) = phases else {
        return;
    };
    tracing::debug!(
        scenario,
        create_ms = p.create,
        install_ms = p.install,
        start_ms = p.start,
        ready_ms = p.ready,
        steps_ms = p.steps,
        stop_ms = p.stop,
        judge_ms = p.judge,
        copy_out_ms = p.copy_out,
        parse_ms = p.parse,
        remove_ms = p.remove,
        "scenario_phases"
    );
}

/// A scenario whose container passed the disk bound failed for that reason,
/// whatever the kill made of its exit.
fn judge_disk(
    scenario: &str,
    disk: Option<&DiskReport>,
    outcome: ScenarioOutcome,
    warnings: &mut Vec<String>,
) -> ScenarioOutcome {
    let Some(d) = disk else {
        return outcome;
    };
    tracing::info!(
        scenario,
        peak_bytes = d.peak_bytes,
        limit_bytes = d.limit_bytes,
        "disk_peak"
    );
    if let Some(e) = &d.last_error {
        warnings.push(format!(
            "scenario {scenario}: the disk bound could not measure the container: {e}"
        ));
    }
    if d.exceeded {
        ScenarioOutcome::Failed(ScenarioReason::DiskLimit {
            limit_bytes: d.limit_bytes,
            observed_bytes: d.peak_bytes,
        })
    } else if d.cancelled {
        ScenarioOutcome::Failed(ScenarioReason::Cancelled)
    } else {
        outcome
    }
}

/// A trace cut at the cap leaves a completed scenario incomplete evidence:
/// it fails for that reason (so confidence drops); any other outcome keeps
/// its own reason and the cut becomes a warning.
fn judge_trace_copy(
    scenario: &str,
    copy: TraceCopy,
    cap: u64,
    outcome: ScenarioOutcome,
    warnings: &mut Vec<String>,
) -> ScenarioOutcome {
    if copy.written >= copy.size {
        return outcome;
    }
    let reason = ScenarioReason::TraceTruncated {
        limit_bytes: cap,
        trace_bytes: copy.size,
    };
    warnings.push(format!("scenario {scenario}: {reason}"));
    match outcome {
        ScenarioOutcome::Completed => ScenarioOutcome::Failed(reason),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loader_is_not_looked_up_and_the_budget_holds() {
        let (mut left, mut skipped, mut loaders) = (3, 0, BTreeSet::new());
        let mut budget = LookupBudget {
            left: &mut left,
            skipped: &mut skipped,
            loaders: &mut loaders,
            deadline: Instant::now() + std::time::Duration::from_secs(60),
        };
        let mut asked = Vec::new();
        let mut ask = |path: &str, found: Option<(&str, bool)>| {
            budget.look_up(path, |p| {
                asked.push(p.to_owned());
                found.map(|(path, loader)| Interpreter {
                    path: path.into(),
                    loader,
                })
            })
        };
        assert_eq!(
            ask("/usr/bin/node", Some(("/lib64/ld.so", true))).as_deref(),
            Some("/lib64/ld.so")
        );
        // The loader is not read; a script's interpreter is (the control).
        assert_eq!(ask("/lib64/ld.so", Some(("/never", false))), None);
        assert_eq!(
            ask("/app/run.sh", Some(("/bin/sh", false))).as_deref(),
            Some("/bin/sh")
        );
        assert_eq!(ask("/bin/sh", None), None);
        // The budget of three is spent: the next path is skipped, unread.
        assert_eq!(ask("/usr/bin/env", Some(("/x", false))), None);
        assert_eq!(asked, ["/usr/bin/node", "/app/run.sh", "/bin/sh"]);
        assert_eq!((left, skipped), (0, 1));
    }
}
