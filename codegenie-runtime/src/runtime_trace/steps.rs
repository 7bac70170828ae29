//! The step driver shared by the backends: readiness, exec, http, signal,
//! wait_exit, the one-shot form and the final stop (docs/architecture.md, "Scenarios"). What a
//! step does to the app goes through [`AppOps`], which each backend implements.

use std::time::{Duration, Instant};

use crate::exec::{Running, Termination};

use super::agent::Settled;
use super::results::ScenarioReason;
use super::scenarios::{HttpStep, Ready, Scenario, Step};

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

/// Why a step sequence stopped early.
#[derive(Debug)]
pub(super) enum Stop {
    /// The scenario's deadline passed.
    Timeout,
    /// Anything else.
    Reason(ScenarioReason),
}

impl Stop {
    /// A failure explained in words.
    pub(super) fn other(detail: impl Into<String>) -> Self {
        Stop::Reason(ScenarioReason::Other {
            detail: detail.into(),
        })
    }
}

/// What the steps do to a running app; one implementation per backend.
pub(super) trait AppOps {
    /// Wait until a TCP socket listens on `port` in the app's network namespace.
    fn wait_listen(&mut self, port: u16, timeout: Duration) -> Result<(), Stop>;
    /// Send the requests of `h` to `127.0.0.1:port` in the app's network
    /// namespace; the status of each response.
    fn http(&mut self, port: u16, h: &HttpStep, timeout: Duration) -> Result<Vec<u16>, Stop>;
    /// Send `signal` (e.g. `SIGTERM`) to the app's root process.
    fn signal(&mut self, signal: &str) -> Result<(), Stop>;
    /// Run `argv` beside the app (not traced); success or a failure.
    fn exec(&mut self, argv: &[String], timeout: Duration) -> Result<(), Stop>;
    /// The pid of the app's root process (strace's traced child).
    fn root_pid(&mut self) -> Result<i32, Stop>;
    /// Wait up to `timeout` for process `pid` to exit; whether it did.
    fn wait_gone(&mut self, pid: i32, timeout: Duration) -> Result<bool, Stop>;
    /// SIGKILL whatever strace still traces; `pid name` of each.
    fn kill_survivors(&mut self) -> Result<Vec<String>, Stop>;
    /// Last resort when the app ignores SIGKILL to its root (e.g. kill the container).
    fn force_stop(&mut self);
    /// Wait until the trace has not grown for `quiet`, at most `max`
    /// ([`super::agent::settle`]).
    fn settle(&mut self, quiet: Duration, max: Duration) -> Result<Settled, Stop>;
}

/// The traced process as the steps see it: strace on the host, or the
/// container's main process followed through the engine.
pub(crate) trait AppProcess {
    /// Why a wait could not be answered.
    type Error: std::fmt::Display + std::fmt::Debug;
    /// How it ended, if it has.
    fn try_wait(&mut self) -> Result<Option<Termination>, Self::Error>;
    /// Wait until `deadline` for its end; `None` if it still runs.
    fn wait_until(&mut self, deadline: Instant) -> Result<Option<Termination>, Self::Error>;
    /// Whether the ready line was printed.
    fn line_seen(&self) -> bool;
    /// Stop following it (killed, where it is our process).
    fn kill(&mut self);
}

impl AppProcess for Running {
    type Error = crate::exec::ExecError;
    fn try_wait(&mut self) -> Result<Option<Termination>, Self::Error> {
        Running::try_wait(self)
    }
    fn wait_until(&mut self, deadline: Instant) -> Result<Option<Termination>, Self::Error> {
        Running::wait_until(self, deadline)
    }
    fn line_seen(&self) -> bool {
        Running::line_seen(self)
    }
    fn kill(&mut self) {
        Running::kill(self)
    }
}

impl AppProcess for crate::engine::StartedApp {
    type Error = crate::engine::EngineError;
    fn try_wait(&mut self) -> Result<Option<Termination>, Self::Error> {
        crate::engine::StartedApp::try_wait(self)
    }
    fn wait_until(&mut self, deadline: Instant) -> Result<Option<Termination>, Self::Error> {
        crate::engine::StartedApp::wait_until(self, deadline)
    }
    fn line_seen(&self) -> bool {
        crate::engine::StartedApp::line_seen(self)
    }
    fn kill(&mut self) {
        crate::engine::StartedApp::kill(self)
    }
}

/// Drives one running scenario.
pub(super) struct Driver<'a, O: AppOps, A: AppProcess> {
    /// The backend's operations.
    pub ops: O,
    /// The traced process (strace, or the container's main process).
    pub app: &'a mut A,
    /// The scenario's deadline.
    pub deadline: Instant,
    /// Set after a signal or wait_exit step: the app may now exit.
    pub exited_expectedly: bool,
    /// The app's root process, once known.
    pub root: Option<i32>,
    /// Problems that do not change the outcome (survivors killed, ...).
    pub warnings: Vec<String>,
    /// After the app is ready, wait for it to settle: (quiet, at most).
    pub settle: (Duration, Duration),
}

impl<O: AppOps, A: AppProcess> Driver<'_, O, A> {
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
            Err(e) => Err(Stop::other(e.to_string())),
        }
    }

    /// Run the scenario's steps, then, for the one-shot form, wait for the
    /// command's exit and compare its code.
    pub(super) fn run(&mut self, sc: &Scenario, app: &ResolvedApp) -> Result<(), Stop> {
        // Learn the root process while it certainly is the root: once it has
        // exited, its survivors are strace's children too.
        if sc.command.is_none() {
            if let Err(e) = self.root() {
                tracing::debug!(error = ?e, "app root process not found at start");
            }
        }
        self.run_steps(sc, app)?;
        if sc.command.is_some() {
            self.wait_one_shot(sc.expected_exit_code.unwrap_or(0))?;
        }
        Ok(())
    }

    fn run_steps(&mut self, sc: &Scenario, app: &ResolvedApp) -> Result<(), Stop> {
        for step in &sc.steps {
            let left = self.remaining()?;
            match step {
                Step::WaitReady(_) => {
                    self.wait_ready(&app.ready)?;
                    self.settle()?;
                }
                Step::Exec(argv) => self.ops.exec(argv, left)?,
                Step::Http(h) => self.http(h, app.port)?,
                Step::Signal(sig) => {
                    self.exited_expectedly = true;
                    self.signal(sig.as_str())?;
                }
                Step::WaitExit(w) => {
                    // Waiting for an exit means the exit is expected, with or
                    // without a signal before it.
                    self.exited_expectedly = true;
                    let own = Instant::now() + Duration::from_secs(w.timeout_s);
                    let until = own.min(self.deadline);
                    if !self.wait_app_exit(until)? {
                        if until == self.deadline {
                            return Err(Stop::Timeout);
                        }
                        return Err(Stop::other(format!(
                            "the app did not exit within {} s",
                            w.timeout_s
                        )));
                    }
                }
            }
            self.check_alive()?;
        }
        Ok(())
    }

    /// Send a signal step's signal: a failed helper whose app has ended
    /// delivered it ([`Self::ended_under_helper`]).
    fn signal(&mut self, sig: &str) -> Result<(), Stop> {
        match self.ops.signal(sig) {
            Err(e) if !self.ended_under_helper() => Err(e),
            _ => Ok(()),
        }
    }

    /// The app's root process, asked of the backend once.
    fn root(&mut self) -> Result<i32, Stop> {
        if let Some(r) = self.root {
            return Ok(r);
        }
        let r = self.ops.root_pid()?;
        self.root = Some(r);
        Ok(r)
    }

    /// Wait until `until` for the app to exit, with Docker's meaning: the app
    /// has exited when its root process has, whatever descendants survive.
    /// Survivors are then killed and named in a warning, so that strace (PID 1)
    /// ends as the container would. Whether the app exited in time.
    fn wait_app_exit(&mut self, until: Instant) -> Result<bool, Stop> {
        if matches!(self.app.try_wait(), Ok(Some(_))) {
            return Ok(true);
        }
        let root = match self.root() {
            Ok(r) => r,
            // No root left to find: it exited, and strace is about to.
            Err(_) => return Ok(matches!(self.app.wait_until(until), Ok(Some(_)))),
        };
        let left = until.saturating_duration_since(Instant::now());
        match self.ops.wait_gone(root, left) {
            Ok(true) => {
                self.end_survivors();
                Ok(true)
            }
            Ok(false) => Ok(false),
            // A root that leaves no survivor ends strace and with it the
            // container, taking the helper that watched it along.
            Err(e) if self.ended_under_helper() => {
                tracing::debug!(error = ?e, "the helper ended with the app");
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    /// After a helper failed: whether the app ended meanwhile (within a
    /// moment). An app's end ends strace (PID 1) and with it the container,
    /// which can take a helper running beside it along before it exits.
    fn ended_under_helper(&mut self) -> bool {
        matches!(
            self.app.wait_until(Instant::now() + Duration::from_secs(2)),
            Ok(Some(_))
        )
    }

    /// After the root exited: kill what strace still traces, name it, and
    /// give strace a moment to write its last lines and exit.
    fn end_survivors(&mut self) {
        match self.ops.kill_survivors() {
            Ok(killed) if !killed.is_empty() => self.warnings.push(format!(
                "the app's root process exited; killed {} process(es) it left running: {}",
                killed.len(),
                killed.join(", ")
            )),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = ?e, "cannot kill the app's survivors"),
        }
        let _ = self.app.wait_until(Instant::now() + Duration::from_secs(5));
    }

    fn wait_one_shot(&mut self, expected: i32) -> Result<(), Stop> {
        match self.app.wait_until(self.deadline) {
            Ok(Some(Termination::Exited(code))) if code == expected => Ok(()),
            Ok(Some(t)) => Err(Stop::Reason(exit_reason(t))),
            Ok(None) => Err(Stop::Timeout),
            Err(e) => Err(Stop::other(e.to_string())),
        }
    }

    fn wait_ready(&mut self, ready: &Ready) -> Result<(), Stop> {
        match ready {
            Ready::TcpPort { port, timeout_s } => {
                let budget = Duration::from_secs(*timeout_s).min(self.remaining()?);
                let out = self.ops.wait_listen(*port, budget);
                self.check_alive()?;
                match out {
                    Ok(()) => Ok(()),
                    Err(_) if Instant::now() >= self.deadline => Err(Stop::Timeout),
                    Err(Stop::Reason(ScenarioReason::Other { detail })) => Err(Stop::other(
                        format!("not ready: nothing listens on port {port} ({detail})"),
                    )),
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
                        return Err(Stop::other(format!(
                            "not ready: no line containing {line:?} within {timeout_s} s"
                        )));
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

    /// Ready is not done: an app may go on reading what it reads at startup
    /// after its port answers (a worker thread, a lazy first load). Wait,
    /// bounded, until the trace stops growing, so startup evidence does not
    /// depend on how fast the next step comes.
    fn settle(&mut self) -> Result<(), Stop> {
        let (quiet, max) = self.settle;
        if max.is_zero() {
            return Ok(());
        }
        let max = max.min(self.remaining()?);
        let s = self.ops.settle(quiet, max)?;
        self.check_alive()?;
        if !s.quiet {
            tracing::debug!(waited_ms = s.waited.as_millis() as u64, "app_not_settled");
        }
        Ok(())
    }

    fn http(&mut self, h: &HttpStep, port: Option<u16>) -> Result<(), Stop> {
        let Some(port) = port else {
            return Err(Stop::other(
                "an http step needs `app.port` or an EXPOSEd TCP port",
            ));
        };
        let left = self.remaining()?;
        let codes = self.ops.http(port, h, left)?;
        if codes.len() != h.repeat as usize {
            return Err(Stop::other(format!(
                "http step got {} of {} responses",
                codes.len(),
                h.repeat
            )));
        }
        if let Some(expect) = &h.expect_status {
            if let Some(bad) = codes.iter().find(|c| !expect.accepts(**c)) {
                return Err(Stop::other(format!(
                    "{} {} returned {bad}, expected {expect}",
                    h.method, h.path
                )));
            }
        }
        Ok(())
    }

    /// Stop the app unless it already exited: SIGTERM to its root process,
    /// grace, SIGKILL, then the backend's last resort. strace stays alive
    /// until the app exits, so the trace keeps the app's own exit lines.
    /// Returns what it took.
    pub(super) fn stop(&mut self, grace: Duration) -> StopEnd {
        if matches!(self.app.try_wait(), Ok(Some(_))) {
            return StopEnd::AlreadyExited;
        }
        for (sig, wait, end) in [
            ("SIGTERM", grace, StopEnd::Terminated),
            ("SIGKILL", Duration::from_secs(5), StopEnd::Killed),
        ] {
            if let Err(e) = self.ops.signal(sig) {
                tracing::debug!(error = ?e, signal = sig, "cannot signal the app");
            }
            if matches!(self.wait_app_exit(Instant::now() + wait), Ok(true)) {
                return end;
            }
        }
        self.ops.force_stop();
        let _ = self
            .app
            .wait_until(Instant::now() + Duration::from_secs(10));
        self.app.kill();
        StopEnd::Forced
    }
}

/// How [`Driver::stop`] ended the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StopEnd {
    /// It had exited already.
    AlreadyExited,
    /// SIGTERM ended it within the grace.
    Terminated,
    /// It outlived the grace and SIGKILL ended it.
    Killed,
    /// Signals did not end it; the backend's last resort did.
    Forced,
}

impl StopEnd {
    /// A warning for an app that had to be killed, naming the grace it ignored.
    pub(super) fn warning(self, scenario: &str, grace: Duration) -> Option<String> {
        let how = match self {
            StopEnd::AlreadyExited | StopEnd::Terminated => return None,
            StopEnd::Killed => "SIGKILL",
            StopEnd::Forced => "killing its container (signals could not be delivered)",
        };
        Some(format!(
            "scenario {scenario}: the app did not stop within {} ms of SIGTERM; stopped by {how}",
            grace.as_millis()
        ))
    }
}

/// A process end as a scenario failure.
pub(super) fn exit_reason(t: Termination) -> ScenarioReason {
    match t {
        Termination::Exited(code) => ScenarioReason::UnexpectedExit { code },
        // Shells and engine clients report death by signal N as 128 + N.
        Termination::Signaled(s) => ScenarioReason::UnexpectedExit { code: 128 + s },
        Termination::TimedOut => ScenarioReason::Other {
            detail: "the traced process timed out".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime_trace::scenarios::{SignalName, WaitExit};

    /// Ops whose `signal` helper fails, as one does when the container ends
    /// under it; `wait_gone` reports the root gone.
    struct HelperKilled;

    impl AppOps for HelperKilled {
        fn wait_listen(&mut self, _: u16, _: Duration) -> Result<(), Stop> {
            Ok(())
        }
        fn http(&mut self, _: u16, _: &HttpStep, _: Duration) -> Result<Vec<u16>, Stop> {
            Ok(vec![])
        }
        fn signal(&mut self, _: &str) -> Result<(), Stop> {
            Err(Stop::other("helper `signal` ended with Exited(137): "))
        }
        fn exec(&mut self, _: &[String], _: Duration) -> Result<(), Stop> {
            Ok(())
        }
        fn root_pid(&mut self) -> Result<i32, Stop> {
            Ok(7)
        }
        fn wait_gone(&mut self, _: i32, _: Duration) -> Result<bool, Stop> {
            Ok(true)
        }
        fn kill_survivors(&mut self) -> Result<Vec<String>, Stop> {
            Ok(vec![])
        }
        fn force_stop(&mut self) {}
        fn settle(&mut self, _: Duration, _: Duration) -> Result<Settled, Stop> {
            Ok(Settled {
                quiet: true,
                waited: Duration::ZERO,
            })
        }
    }

    /// The traced process: ended with `end` or still running.
    struct App {
        end: Option<Termination>,
    }

    impl AppProcess for App {
        type Error = String;
        fn try_wait(&mut self) -> Result<Option<Termination>, String> {
            Ok(self.end)
        }
        fn wait_until(&mut self, _: Instant) -> Result<Option<Termination>, String> {
            Ok(self.end)
        }
        fn line_seen(&self) -> bool {
            false
        }
        fn kill(&mut self) {}
    }

    fn shutdown() -> Scenario {
        Scenario {
            name: "shutdown".into(),
            command: None,
            expected_exit_code: None,
            steps: vec![
                Step::Signal(SignalName::SIGTERM),
                Step::WaitExit(WaitExit { timeout_s: 5 }),
            ],
        }
    }

    fn run(app: &mut App) -> Result<(), Stop> {
        let mut driver = Driver {
            ops: HelperKilled,
            app,
            deadline: Instant::now() + Duration::from_secs(30),
            exited_expectedly: false,
            root: None,
            warnings: vec![],
            settle: (Duration::ZERO, Duration::ZERO),
        };
        let resolved = ResolvedApp {
            argv: vec!["app".into()],
            port: None,
            ready: Ready::After { seconds: 0.0 },
        };
        driver.run(&shutdown(), &resolved)
    }

    #[test]
    fn a_signal_helper_taken_along_by_the_app_it_ended_delivered_its_signal() {
        let mut ended = App {
            end: Some(Termination::Exited(0)),
        };
        assert!(run(&mut ended).is_ok());
    }

    #[test]
    fn control_a_failed_signal_helper_beside_a_running_app_fails_the_step() {
        let mut running = App { end: None };
        match run(&mut running) {
            Err(Stop::Reason(ScenarioReason::Other { detail })) => {
                assert!(detail.contains("helper `signal`"), "{detail}")
            }
            other => panic!("expected the helper's failure, got {other:?}"),
        }
    }
}
