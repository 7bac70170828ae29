//! The container backend's per-scenario flow (DESIGN.md §7): create a
//! hardened container, copy the tool bundle in, start the app under the
//! bundled strace, drive the steps, stop the app through its own root
//! process, copy the trace out, read interpreters, remove the container.
//! Scenarios run strictly one at a time; each container is removed before
//! the next is created.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::exec::{Running, Termination};
use crate::strace::{self, ParseOptions, TraceFacts};

use super::bundle::{self, Bundle};
use super::engine::{CreateOptions, Engine, EngineError};
use super::interp;
use super::model::{ScenarioOutcome, ScenarioReason, ScenarioResult};
use super::scenarios::{HttpStep, Ready, Scenario, Step};

/// Per-scenario time limit (DESIGN.md §5).
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);
/// Time limit of the whole scenario loop (DESIGN.md §5).
pub const AGGREGATE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the app gets between SIGTERM and SIGKILL when it is stopped.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Limits and timeouts of a run.
#[derive(Debug, Clone)]
pub struct RunLimits {
    /// Per-scenario timeout.
    pub scenario_timeout: Duration,
    /// Whole-loop timeout.
    pub aggregate_timeout: Duration,
    /// SIGTERM → SIGKILL grace when stopping.
    pub stop_grace: Duration,
    /// `--pids-limit`.
    pub pids_limit: u32,
    /// `--memory`.
    pub memory: String,
    /// `--cpus`.
    pub cpus: String,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            scenario_timeout: SCENARIO_TIMEOUT,
            aggregate_timeout: AGGREGATE_TIMEOUT,
            stop_grace: STOP_GRACE,
            pids_limit: 256,
            memory: "512m".to_owned(),
            cpus: "1".to_owned(),
        }
    }
}

/// How the app starts and when it is ready, with the image's defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedApp {
    /// The app's argv.
    pub argv: Vec<String>,
    /// The app's port.
    pub port: Option<u16>,
    /// Readiness.
    pub ready: Ready,
}

/// One scenario's outcome plus its raw trace file, if one was collected.
#[derive(Debug)]
pub struct ScenarioRun {
    /// The result (trace and interpreters filled in when a trace was parsed).
    pub result: ScenarioResult,
    /// The raw trace on the host.
    pub trace_file: Option<PathBuf>,
    /// Problems that did not change the outcome (e.g. a trace that could not be copied).
    pub warnings: Vec<String>,
}

/// Why a step sequence stopped early.
enum Stop {
    Timeout,
    Reason(ScenarioReason),
}

impl From<EngineError> for Stop {
    fn from(e: EngineError) -> Self {
        Stop::Reason(match e {
            EngineError::Unavailable { detail } => ScenarioReason::EngineUnavailable { detail },
            other => ScenarioReason::Other {
                detail: other.to_string(),
            },
        })
    }
}

/// Runs scenarios in containers of one image.
pub struct ContainerRunner<'a> {
    /// The engine.
    pub engine: &'a Engine,
    /// The tool bundle.
    pub bundle: &'a Bundle,
    /// The image digest.
    pub image: &'a str,
    /// The run label's value.
    pub run_id: &'a str,
    /// Where raw traces are written on the host.
    pub work_dir: &'a Path,
    /// Limits.
    pub limits: &'a RunLimits,
    /// `{path: interpreter}` read from the image so far (shared by scenarios).
    pub interpreters: BTreeMap<String, Option<String>>,
    /// Progress display (hidden when stderr is not a terminal).
    pub progress: indicatif::ProgressBar,
}

impl ContainerRunner<'_> {
    /// Run every scenario, one at a time, under the aggregate timeout.
    pub fn run_all(&mut self, scenarios: &[Scenario], app: &ResolvedApp) -> Vec<ScenarioRun> {
        let loop_deadline = Instant::now() + self.limits.aggregate_timeout;
        let mut runs = Vec::new();
        for sc in scenarios {
            let now = Instant::now();
            if now >= loop_deadline {
                runs.push(ScenarioRun {
                    result: not_run(
                        &sc.name,
                        ScenarioOutcome::Skipped(ScenarioReason::AggregateTimeout),
                    ),
                    trace_file: None,
                    warnings: Vec::new(),
                });
                self.progress.inc(1);
                continue;
            }
            let deadline = (now + self.limits.scenario_timeout).min(loop_deadline);
            tracing::info!(scenario = %sc.name, "scenario_started");
            self.progress.set_message(format!("scenario {}", sc.name));
            let run = self.run_one(sc, app, deadline);
            self.progress.inc(1);
            tracing::info!(
                scenario = %sc.name,
                wall_clock_ms = run.result.wall_clock_ms,
                result = outcome_kind(&run.result.outcome),
                "scenario_finished"
            );
            runs.push(run);
        }
        self.progress.finish_and_clear();
        runs
    }

    /// Run one scenario in a fresh container that is always removed.
    pub fn run_one(&mut self, sc: &Scenario, app: &ResolvedApp, deadline: Instant) -> ScenarioRun {
        let started = Instant::now();
        let mut warnings = Vec::new();
        let argv = sc.command.clone().unwrap_or_else(|| app.argv.clone());
        if argv.is_empty() {
            let mut r = not_run(
                &sc.name,
                ScenarioOutcome::Failed(ScenarioReason::Other {
                    detail:
                        "the image has no ENTRYPOINT or CMD and the scenario file gives no command"
                            .to_owned(),
                }),
            );
            r.wall_clock_ms = ms(started.elapsed());
            return ScenarioRun {
                result: r,
                trace_file: None,
                warnings,
            };
        }
        let create = CreateOptions {
            image: self.image.to_owned(),
            run_id: self.run_id.to_owned(),
            entrypoint: bundle::LOADER.to_owned(),
            args: bundle::strace_argv(&argv),
            pids_limit: self.limits.pids_limit,
            memory: self.limits.memory.clone(),
            cpus: self.limits.cpus.clone(),
        };
        let container = match self.engine.create(&create) {
            Ok(id) => Container {
                engine: self.engine,
                id,
                removed: false,
            },
            Err(e) => {
                let mut r = not_run(&sc.name, ScenarioOutcome::Failed(Stop::from(e).reason()));
                r.wall_clock_ms = ms(started.elapsed());
                return ScenarioRun {
                    result: r,
                    trace_file: None,
                    warnings,
                };
            }
        };
        let outcome = self.drive(&container, sc, app, deadline, started);
        let trace_file = self.work_dir.join(format!("{}.strace", sc.name));
        let copied = match self
            .engine
            .copy_out(&container.id, bundle::TRACE_OUT, &trace_file)
        {
            Ok(()) => Some(trace_file),
            Err(e) => {
                warnings.push(format!("scenario {}: no trace collected: {e}", sc.name));
                None
            }
        };
        let mut result = not_run(&sc.name, outcome);
        if let Some(file) = &copied {
            match self.parse_with_interpreters(&container.id, file) {
                Ok((facts, interps)) => {
                    result.exit_status = facts.root_exit.clone();
                    result.signals_seen = facts.root_signals.clone();
                    result.trace = Some(facts.trace);
                    result.interpreters = interps;
                    if facts.malformed_lines > 0 {
                        warnings.push(format!(
                            "scenario {}: {} trace lines were not understood",
                            sc.name, facts.malformed_lines
                        ));
                    }
                }
                Err(e) => warnings.push(format!("scenario {}: {e}", sc.name)),
            }
        }
        if let Err(e) = container.remove() {
            warnings.push(format!("scenario {}: {e}", sc.name));
        }
        result.wall_clock_ms = ms(started.elapsed());
        ScenarioRun {
            result,
            trace_file: copied,
            warnings,
        }
    }

    /// Copy the bundle in, start, run the steps, stop. Returns the outcome.
    fn drive(
        &self,
        c: &Container<'_>,
        sc: &Scenario,
        app: &ResolvedApp,
        deadline: Instant,
        started: Instant,
    ) -> ScenarioOutcome {
        if let Err(e) = self.engine.copy_in(self.bundle.dir(), &c.id, bundle::ROOT) {
            return ScenarioOutcome::Failed(Stop::from(e).reason());
        }
        let watch = match &app.ready {
            Ready::LogLine { line, .. } => Some(line.as_str()),
            _ => None,
        };
        let mut app_proc = match self.engine.start_attached(&c.id, watch) {
            Ok(r) => r,
            Err(e) => return ScenarioOutcome::Failed(Stop::from(e).reason()),
        };
        let mut ctl = Control {
            engine: self.engine,
            container: &c.id,
            app: &mut app_proc,
            deadline,
            exited_expectedly: false,
        };
        // `start -a` returns before the container runs; `exec` needs it running.
        let steps = ctl.wait_running().and_then(|()| ctl.run_steps(sc, app));
        let one_shot = match (&steps, &sc.command) {
            (Ok(()), Some(_)) => ctl.wait_one_shot(sc.expected_exit_code.unwrap_or(0)),
            _ => steps,
        };
        ctl.stop(self.limits.stop_grace);
        match one_shot {
            Ok(()) => ScenarioOutcome::Completed,
            Err(Stop::Timeout) => ScenarioOutcome::Failed(ScenarioReason::ScenarioTimeout {
                elapsed_ms: ms(started.elapsed()),
            }),
            Err(Stop::Reason(r)) => ScenarioOutcome::Failed(r),
        }
    }

    /// Parse the trace; read the interpreter of every executed path from the
    /// container and parse again with them until no new path appears.
    fn parse_with_interpreters(
        &mut self,
        container: &str,
        file: &Path,
    ) -> Result<(TraceFacts, BTreeMap<String, String>), String> {
        let mut known: BTreeMap<String, String> = BTreeMap::new();
        let mut facts = parse_file(file, &known)?;
        for _ in 0..4 {
            let mut added = false;
            for bin in facts.trace.binaries_executed.clone() {
                if bin.starts_with("/proc/") || known.contains_key(&bin) {
                    continue;
                }
                let interp = match self.interpreters.get(&bin) {
                    Some(i) => i.clone(),
                    None => {
                        let i = self.read_interpreter(container, &bin);
                        self.interpreters.insert(bin.clone(), i.clone());
                        i
                    }
                };
                if let Some(i) = interp {
                    known.insert(bin, i);
                    added = true;
                }
            }
            if !added {
                break;
            }
            facts = parse_file(file, &known)?;
        }
        Ok((facts, known))
    }

    /// The interpreter of `path` in the container (`None` when it has none or
    /// cannot be read).
    fn read_interpreter(&self, container: &str, path: &str) -> Option<String> {
        let tmp = tempfile::tempdir().ok()?;
        let dest = tmp.path().join("file");
        if let Err(e) = self.engine.copy_out(container, path, &dest) {
            tracing::debug!(path, error = %e, "cannot read executed file from the container");
            return None;
        }
        use std::io::Read;
        let mut head = Vec::new();
        std::fs::File::open(&dest)
            .ok()?
            .take(interp::HEAD_BYTES as u64)
            .read_to_end(&mut head)
            .ok()?;
        interp::interpreter_of(&head)
    }
}

fn parse_file(file: &Path, interpreters: &BTreeMap<String, String>) -> Result<TraceFacts, String> {
    let f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let opts = ParseOptions {
        interpreters: interpreters.clone(),
    };
    strace::parse_trace(std::io::BufReader::new(f), &opts)
        .map_err(|e| format!("{}: {e}", file.display()))
}

/// A created container; removed on drop if not removed explicitly.
struct Container<'a> {
    engine: &'a Engine,
    id: String,
    removed: bool,
}

impl Container<'_> {
    fn remove(mut self) -> Result<(), EngineError> {
        self.removed = true;
        self.engine.remove(&self.id)
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        if !self.removed {
            if let Err(e) = self.engine.remove(&self.id) {
                tracing::warn!(container = %self.id, error = %e, "cannot remove scenario container");
            }
        }
    }
}

/// Drives one running scenario container.
struct Control<'a> {
    engine: &'a Engine,
    container: &'a str,
    app: &'a mut Running,
    deadline: Instant,
    /// Set after a signal step: the app may now exit.
    exited_expectedly: bool,
}

impl Control<'_> {
    fn remaining(&self) -> Result<Duration, Stop> {
        let now = Instant::now();
        if now >= self.deadline {
            Err(Stop::Timeout)
        } else {
            Ok(self.deadline - now)
        }
    }

    /// The app's exit as a failure, if it exited when it should not have.
    fn check_alive(&mut self) -> Result<(), Stop> {
        match self.app.try_wait() {
            Ok(Some(t)) if !self.exited_expectedly => Err(Stop::Reason(exit_reason(t))),
            Ok(_) => Ok(()),
            Err(e) => Err(Stop::Reason(ScenarioReason::Other {
                detail: e.to_string(),
            })),
        }
    }

    fn wait_running(&mut self) -> Result<(), Stop> {
        loop {
            if self.engine.is_running(self.container)? {
                return Ok(());
            }
            if let Ok(Some(t)) = self.app.try_wait() {
                // A one-shot command may finish before we look; that is its outcome.
                return if self.exited_expectedly {
                    Ok(())
                } else {
                    match t {
                        Termination::Exited(_) => Ok(()),
                        other => Err(Stop::Reason(exit_reason(other))),
                    }
                };
            }
            self.remaining()?;
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn run_steps(&mut self, sc: &Scenario, app: &ResolvedApp) -> Result<(), Stop> {
        for step in &sc.steps {
            self.remaining()?;
            match step {
                Step::WaitReady(_) => self.wait_ready(&app.ready)?,
                Step::Exec(argv) => {
                    let out = self
                        .engine
                        .exec_in(self.container, argv, self.remaining()?)?;
                    if out.termination == Termination::TimedOut {
                        return Err(Stop::Timeout);
                    }
                    if !out.success() {
                        return Err(Stop::Reason(ScenarioReason::Other {
                            detail: format!(
                                "exec step {argv:?} ended with {:?}: {}",
                                out.termination,
                                out.stderr.tail_text(512).trim()
                            ),
                        }));
                    }
                }
                Step::Http(h) => self.http(h, app.port)?,
                Step::Signal(sig) => {
                    self.exited_expectedly = true;
                    self.helper(&["signal".into(), "--signal".into(), sig.as_str().into()])?;
                }
                Step::WaitExit(w) => {
                    let own = Instant::now() + Duration::from_secs(w.timeout_s);
                    let until = own.min(self.deadline);
                    match self.app.wait_until(until) {
                        Ok(Some(_)) => {}
                        Ok(None) if until == self.deadline => return Err(Stop::Timeout),
                        Ok(None) => {
                            return Err(Stop::Reason(ScenarioReason::Other {
                                detail: format!("the app did not exit within {} s", w.timeout_s),
                            }))
                        }
                        Err(e) => {
                            return Err(Stop::Reason(ScenarioReason::Other {
                                detail: e.to_string(),
                            }))
                        }
                    }
                }
            }
            self.check_alive()?;
        }
        Ok(())
    }

    fn wait_one_shot(&mut self, expected: i32) -> Result<(), Stop> {
        match self.app.wait_until(self.deadline) {
            Ok(Some(Termination::Exited(code))) if code == expected => Ok(()),
            Ok(Some(t)) => Err(Stop::Reason(exit_reason(t))),
            Ok(None) => Err(Stop::Timeout),
            Err(e) => Err(Stop::Reason(ScenarioReason::Other {
                detail: e.to_string(),
            })),
        }
    }

    fn wait_ready(&mut self, ready: &Ready) -> Result<(), Stop> {
        match ready {
            Ready::TcpPort { port, timeout_s } => {
                let budget = Duration::from_secs(*timeout_s).min(self.remaining()?);
                let out = self.helper_with_timeout(
                    &[
                        "wait-listen".into(),
                        "--port".into(),
                        port.to_string(),
                        "--timeout-ms".into(),
                        budget.as_millis().to_string(),
                    ],
                    budget + Duration::from_secs(10),
                );
                self.check_alive()?;
                match out {
                    Ok(_) => Ok(()),
                    Err(_) if Instant::now() >= self.deadline => Err(Stop::Timeout),
                    Err(Stop::Reason(ScenarioReason::Other { detail })) => {
                        Err(Stop::Reason(ScenarioReason::Other {
                            detail: format!("not ready: nothing listens on port {port} ({detail})"),
                        }))
                    }
                    Err(e) => Err(e),
                }
            }
            Ready::LogLine { line, timeout_s } => {
                let until = (Instant::now() + Duration::from_secs(*timeout_s)).min(self.deadline);
                loop {
                    if self.app.line_seen() {
                        return Ok(());
                    }
                    self.check_alive()?;
                    if Instant::now() >= until {
                        if until == self.deadline {
                            return Err(Stop::Timeout);
                        }
                        return Err(Stop::Reason(ScenarioReason::Other {
                            detail: format!(
                                "not ready: no line containing {line:?} within {timeout_s} s"
                            ),
                        }));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            Ready::After { seconds } => {
                let until = (Instant::now() + Duration::from_secs_f64(*seconds)).min(self.deadline);
                while Instant::now() < until {
                    self.check_alive()?;
                    std::thread::sleep(Duration::from_millis(20));
                }
                self.remaining().map(|_| ())
            }
        }
    }

    fn http(&mut self, h: &HttpStep, port: Option<u16>) -> Result<(), Stop> {
        let Some(port) = port else {
            return Err(Stop::Reason(ScenarioReason::Other {
                detail: "an http step needs `app.port` or an EXPOSEd TCP port".to_owned(),
            }));
        };
        let mut args = vec![
            "http".to_owned(),
            "--port".to_owned(),
            port.to_string(),
            "--method".to_owned(),
            h.method.clone(),
            "--path".to_owned(),
            h.path.clone(),
            "--repeat".to_owned(),
            h.repeat.to_string(),
            "--interval-ms".to_owned(),
            h.interval_ms.to_string(),
        ];
        if let Some(b) = &h.body {
            // `=` keeps a body starting with `-` from reading as an option.
            args.push(format!("--body={b}"));
        }
        let out = self.helper(&args)?;
        let codes: Vec<u16> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if codes.len() != h.repeat as usize {
            return Err(Stop::Reason(ScenarioReason::Other {
                detail: format!("http step got {} of {} responses", codes.len(), h.repeat),
            }));
        }
        if let Some(expect) = &h.expect_status {
            if let Some(bad) = codes.iter().find(|c| !expect.accepts(**c)) {
                return Err(Stop::Reason(ScenarioReason::Other {
                    detail: format!("{} {} returned {bad}, expected {expect}", h.method, h.path),
                }));
            }
        }
        Ok(())
    }

    fn helper(&mut self, args: &[String]) -> Result<String, Stop> {
        let t = self.remaining()?;
        self.helper_with_timeout(args, t)
    }

    /// Run `codegenie agent <args>` in the container; its stdout on success.
    fn helper_with_timeout(&mut self, args: &[String], timeout: Duration) -> Result<String, Stop> {
        let t = timeout.min(self.remaining()?);
        let out = self
            .engine
            .exec_in(self.container, &bundle::helper_argv(args), t)?;
        match out.termination {
            Termination::Exited(0) => Ok(out.stdout.text()),
            Termination::TimedOut => Err(Stop::Timeout),
            other => Err(Stop::Reason(ScenarioReason::Other {
                detail: format!(
                    "helper `{}` ended with {other:?}: {}",
                    args.first().map(String::as_str).unwrap_or_default(),
                    out.stderr.tail_text(512).trim()
                ),
            })),
        }
    }

    /// Stop the app unless it already exited: SIGTERM to its root process,
    /// grace, SIGKILL, then the container itself. strace (PID 1) stays alive
    /// until the app exits, so the trace keeps the app's own exit lines.
    fn stop(&mut self, grace: Duration) {
        let exited = |c: &mut Self| matches!(c.app.try_wait(), Ok(Some(_)));
        if exited(self) {
            return;
        }
        for (sig, wait) in [("SIGTERM", grace), ("SIGKILL", Duration::from_secs(5))] {
            let args = ["signal".to_owned(), "--signal".to_owned(), sig.to_owned()];
            if let Err(e) = self.engine.exec_in(
                self.container,
                &bundle::helper_argv(&args),
                Duration::from_secs(15),
            ) {
                tracing::debug!(error = %e, signal = sig, "cannot signal the app");
            }
            if matches!(self.app.wait_until(Instant::now() + wait), Ok(Some(_))) {
                return;
            }
        }
        if let Err(e) = self.engine.kill(self.container) {
            tracing::debug!(error = %e, "cannot kill the container");
        }
        let _ = self
            .app
            .wait_until(Instant::now() + Duration::from_secs(10));
        self.app.kill();
    }
}

impl Stop {
    fn reason(self) -> ScenarioReason {
        match self {
            Stop::Timeout => ScenarioReason::ScenarioTimeout { elapsed_ms: 0 },
            Stop::Reason(r) => r,
        }
    }
}

fn exit_reason(t: Termination) -> ScenarioReason {
    match t {
        Termination::Exited(code) => ScenarioReason::UnexpectedExit { code },
        // The engine CLI reports a container killed by signal N as 128 + N.
        Termination::Signaled(s) => ScenarioReason::UnexpectedExit { code: 128 + s },
        Termination::TimedOut => ScenarioReason::Other {
            detail: "the engine client timed out".to_owned(),
        },
    }
}

/// A result for a scenario that produced no trace.
pub fn not_run(name: &str, outcome: ScenarioOutcome) -> ScenarioResult {
    ScenarioResult {
        name: name.to_owned(),
        outcome,
        wall_clock_ms: 0,
        exit_status: None,
        signals_seen: Vec::new(),
        trace: None,
        artifact: None,
        interpreters: BTreeMap::new(),
    }
}

/// `completed`, `failed` or `skipped`, for logs.
pub fn outcome_kind(o: &ScenarioOutcome) -> &'static str {
    match o {
        ScenarioOutcome::Completed => "completed",
        ScenarioOutcome::Failed(_) => "failed",
        ScenarioOutcome::Skipped(_) => "skipped",
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}
