//! The container backend's per-scenario flow (DESIGN.md §7): create a
//! hardened container, copy the tool bundle in, start the app under the
//! bundled strace, drive the steps, stop the app through its own root
//! process, copy the trace out, read interpreters, remove the container.
//! Scenarios run strictly one at a time; each container is removed before
//! the next is created.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::exec::{Running, Termination};

use super::bundle::{self, Bundle};
use super::engine::{CreateOptions, Engine, EngineError};
use super::interp;
use super::model::{ScenarioOutcome, ScenarioReason};
use super::scenarios::{HttpStep, Ready, Scenario};
use super::sequence::{attach_trace, ms, not_run, outcome_of, run_sequentially, ScenarioRun};
use super::settings::RunLimits;
use super::steps::{exit_reason, AppOps, Driver, ResolvedApp, Stop};

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
        let (limits, progress) = (self.limits, self.progress.clone());
        run_sequentially(scenarios, limits, &progress, |sc, deadline| {
            self.run_one(sc, app, deadline)
        })
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
            args: bundle::strace_argv(&argv, self.bundle.seccomp_bpf),
            pids_limit: self.limits.pids_limit,
            memory: self.limits.memory.clone(),
            cpus: self.limits.cpus.clone(),
        };
        if super::is_cancelled() {
            return ScenarioRun {
                result: not_run(
                    &sc.name,
                    ScenarioOutcome::Skipped(ScenarioReason::Other {
                        detail: "the run was cancelled".to_owned(),
                    }),
                ),
                trace_file: None,
                warnings,
            };
        }
        let container = match self.engine.create(&create) {
            Ok(id) => Container {
                engine: self.engine,
                id,
                removed: false,
            },
            Err(e) => {
                let mut r = not_run(&sc.name, outcome_of(Err(engine_stop(e)), started));
                r.wall_clock_ms = ms(started.elapsed());
                return ScenarioRun {
                    result: r,
                    trace_file: None,
                    warnings,
                };
            }
        };
        let outcome = self.drive(&container, sc, app, deadline, started, &mut warnings);
        let outcome = self.check_oom(&container.id, &sc.name, outcome, &mut warnings);
        let trace_file = self.work_dir.join(format!("{}.strace", sc.name));
        let (copied, outcome) =
            match self
                .engine
                .copy_out(&container.id, bundle::TRACE_OUT, &trace_file)
            {
                Ok(()) => (Some(trace_file), outcome),
                Err(e) => {
                    warnings.push(format!("scenario {}: no trace collected: {e}", sc.name));
                    // Steps that ran without leaving evidence do not count as coverage.
                    let outcome = match outcome {
                        ScenarioOutcome::Completed => {
                            ScenarioOutcome::Failed(ScenarioReason::Other {
                                detail: format!("no trace collected: {e}"),
                            })
                        }
                        other => other,
                    };
                    (None, outcome)
                }
            };
        let mut result = not_run(&sc.name, outcome);
        if let Some(file) = &copied {
            let (engine, id) = (self.engine, container.id.clone());
            attach_trace(
                &mut result,
                file,
                &mut warnings,
                &mut self.interpreters,
                |path| read_interpreter(engine, &id, path),
            );
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
        warnings: &mut Vec<String>,
    ) -> ScenarioOutcome {
        if let Err(e) = self.engine.copy_in(self.bundle.dir(), &c.id, bundle::ROOT) {
            return outcome_of(Err(engine_stop(e)), started);
        }
        let watch = match &app.ready {
            Ready::LogLine { line, .. } => Some(line.as_str()),
            _ => None,
        };
        let mut app_proc = match self.engine.start_attached(&c.id, watch) {
            Ok(r) => r,
            Err(e) => return outcome_of(Err(engine_stop(e)), started),
        };
        let ops = ContainerOps {
            engine: self.engine,
            container: &c.id,
        };
        let ready = ops.wait_running(&mut app_proc, deadline);
        let mut driver = Driver {
            ops,
            app: &mut app_proc,
            deadline,
            exited_expectedly: false,
        };
        let outcome = ready.and_then(|()| driver.run(sc, app));
        let end = driver.stop(self.limits.stop_grace);
        warnings.extend(end.warning(&sc.name, self.limits.stop_grace));
        outcome_of(outcome, started)
    }

    /// An OOM kill in the container explains a failure better than the exit
    /// code it caused; in a completed scenario it is worth a warning.
    fn check_oom(
        &self,
        container: &str,
        scenario: &str,
        outcome: ScenarioOutcome,
        warnings: &mut Vec<String>,
    ) -> ScenarioOutcome {
        match self.engine.oom_killed(container) {
            Ok(false) => outcome,
            Ok(true) if outcome == ScenarioOutcome::Completed => {
                warnings.push(format!(
                    "scenario {scenario}: the OOM killer ended a process (--memory={})",
                    self.limits.memory
                ));
                outcome
            }
            Ok(true) => ScenarioOutcome::Failed(ScenarioReason::OutOfMemory {
                limit: self.limits.memory.clone(),
            }),
            Err(e) => {
                warnings.push(format!(
                    "scenario {scenario}: cannot check for an OOM kill: {e}"
                ));
                outcome
            }
        }
    }
}

/// The interpreter of `path` in the container (`None` when it has none or
/// cannot be read).
fn read_interpreter(engine: &Engine, container: &str, path: &str) -> Option<String> {
    let tmp = tempfile::tempdir().ok()?;
    let dest = tmp.path().join("file");
    if let Err(e) = engine.copy_out(container, path, &dest) {
        tracing::debug!(path, error = %e, "cannot read executed file from the container");
        return None;
    }
    interp::interpreter_of_file(&dest)
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

/// The container backend's [`AppOps`]: helpers through `docker exec`.
struct ContainerOps<'a> {
    engine: &'a Engine,
    container: &'a str,
}

impl ContainerOps<'_> {
    /// Run `codegenie agent <args>` in the container; its stdout on success.
    fn helper(&self, args: &[String], timeout: Duration) -> Result<String, Stop> {
        let out = self
            .engine
            .exec_in(self.container, &bundle::helper_argv(args), timeout)
            .map_err(engine_stop)?;
        match out.termination {
            Termination::Exited(0) => Ok(out.stdout.text()),
            Termination::TimedOut => Err(Stop::Timeout),
            other => Err(Stop::other(format!(
                "helper `{}` ended with {other:?}: {}",
                args.first().map(String::as_str).unwrap_or_default(),
                out.stderr.tail_text(512).trim()
            ))),
        }
    }

    /// Wait until the container runs (`start -a` returns before it does, and
    /// `exec` needs it running), or the traced command already ended.
    fn wait_running(&self, app: &mut Running, deadline: Instant) -> Result<(), Stop> {
        loop {
            if self
                .engine
                .is_running(self.container)
                .map_err(engine_stop)?
            {
                return Ok(());
            }
            if let Ok(Some(t)) = app.try_wait() {
                // A one-shot command may finish before we look; that is its outcome.
                return match t {
                    Termination::Exited(_) => Ok(()),
                    other => Err(Stop::Reason(exit_reason(other))),
                };
            }
            if Instant::now() >= deadline {
                return Err(Stop::Timeout);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl AppOps for ContainerOps<'_> {
    fn wait_listen(&mut self, port: u16, timeout: Duration) -> Result<(), Stop> {
        self.helper(
            &[
                "wait-listen".into(),
                "--port".into(),
                port.to_string(),
                "--timeout-ms".into(),
                timeout.as_millis().to_string(),
            ],
            timeout + Duration::from_secs(10),
        )
        .map(|_| ())
    }

    fn http(&mut self, port: u16, h: &HttpStep, timeout: Duration) -> Result<Vec<u16>, Stop> {
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
        let out = self.helper(&args, timeout)?;
        Ok(out.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    fn signal(&mut self, signal: &str) -> Result<(), Stop> {
        self.helper(
            &["signal".into(), "--signal".into(), signal.into()],
            Duration::from_secs(15),
        )
        .map(|_| ())
    }

    fn exec(&mut self, argv: &[String], timeout: Duration) -> Result<(), Stop> {
        let out = self
            .engine
            .exec_in(self.container, argv, timeout)
            .map_err(engine_stop)?;
        match out.termination {
            Termination::Exited(0) => Ok(()),
            Termination::TimedOut => Err(Stop::Timeout),
            other => Err(Stop::other(format!(
                "exec step {argv:?} ended with {other:?}: {}",
                out.stderr.tail_text(512).trim()
            ))),
        }
    }

    fn force_stop(&mut self) {
        if let Err(e) = self.engine.kill(self.container) {
            tracing::debug!(error = %e, "cannot kill the container");
        }
    }
}

fn engine_stop(e: EngineError) -> Stop {
    Stop::Reason(match e {
        EngineError::Unavailable { detail } => ScenarioReason::EngineUnavailable { detail },
        other => ScenarioReason::Other {
            detail: other.to_string(),
        },
    })
}
