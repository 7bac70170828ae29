//! The host backend: the same scenarios, run on this machine under the
//! host's strace in a private network namespace (only loopback), for
//! repositories without a Dockerfile and machines without a container engine.
//! The app is `app.command` (or a scenario's one-shot `command`), started in
//! the repository root with the exec layer's scrubbed environment.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::exec::{self, ExecSpec, Program, Running};

use super::agent;
use super::bundle::{host_strace_has_seccomp_bpf, strace_options};
use super::interp;
use super::model::{ScenarioOutcome, ScenarioReason};
use super::scenarios::{HttpStep, Ready, Scenario};
use super::sequence::{attach_trace, not_run, outcome_of, run_sequentially, ScenarioRun};
use super::settings::RunLimits;
use super::steps::{AppOps, Driver, ResolvedApp, Stop};

/// Check that this machine can run the host backend: strace is installed
/// and a private network namespace can be created (CAP_SYS_ADMIN). Returns
/// whether strace has `--seccomp-bpf`.
pub fn check_host_backend() -> Result<bool, String> {
    let out = exec::run(
        &ExecSpec::new(Program::Strace)
            .arg("-V")
            .private_network()
            .timeout(Duration::from_secs(10)),
    )
    .map_err(|e| format!("cannot create a private network namespace for the app: {e}"))?;
    if out.success() {
        host_strace_has_seccomp_bpf().map_err(|e| e.to_string())
    } else {
        Err(format!(
            "strace does not run: {:?} {}",
            out.termination,
            out.stderr.text().trim()
        ))
    }
}

/// Runs scenarios on this machine.
pub struct HostRunner<'a> {
    /// The repository root (the app's working directory).
    pub repo_root: &'a Path,
    /// Where raw traces are written.
    pub work_dir: &'a Path,
    /// Limits.
    pub limits: &'a RunLimits,
    /// `{path: interpreter}` read so far.
    pub interpreters: BTreeMap<String, Option<String>>,
    /// Progress display.
    pub progress: indicatif::ProgressBar,
    /// Whether the host's strace has `--seccomp-bpf`.
    pub seccomp_bpf: bool,
}

impl HostRunner<'_> {
    /// Run every scenario, one at a time, under the aggregate timeout.
    pub fn run_all(&mut self, scenarios: &[Scenario], app: &ResolvedApp) -> Vec<ScenarioRun> {
        let (limits, progress) = (self.limits, self.progress.clone());
        run_sequentially(scenarios, limits, &progress, |sc, deadline| {
            self.run_one(sc, app, deadline)
        })
    }

    /// Run one scenario: the app under strace in a fresh network namespace.
    pub fn run_one(&mut self, sc: &Scenario, app: &ResolvedApp, deadline: Instant) -> ScenarioRun {
        let started = Instant::now();
        let mut warnings = Vec::new();
        let argv = sc.command.clone().unwrap_or_else(|| app.argv.clone());
        let finish = |outcome, warnings| {
            let mut r = not_run(&sc.name, outcome);
            r.wall_clock_ms = started.elapsed().as_millis() as u64;
            ScenarioRun {
                result: r,
                trace_file: None,
                warnings,
            }
        };
        if argv.is_empty() {
            return finish(
                ScenarioOutcome::Failed(ScenarioReason::Other {
                    detail: "the host backend needs `app.command` in .codegenie/scenarios.yaml (there is no image to take an ENTRYPOINT from)".to_owned(),
                }),
                warnings,
            );
        }
        let trace_file = self.work_dir.join(format!("{}.strace", sc.name));
        let mut spec = ExecSpec::new(Program::Strace)
            .args(strace_options(self.seccomp_bpf))
            .arg("-o")
            .arg(&trace_file)
            .arg("--")
            .args(&argv)
            .cwd(self.repo_root)
            .private_network()
            .capture_limit(256 * 1024);
        if let Ready::LogLine { line, .. } = &app.ready {
            spec = spec.watch_line(line.as_bytes().to_vec());
        }
        let mut running = match exec::spawn(&spec) {
            Ok(r) => r,
            Err(e) => {
                return finish(
                    ScenarioOutcome::Failed(ScenarioReason::Other {
                        detail: e.to_string(),
                    }),
                    warnings,
                )
            }
        };
        let strace_pid = running.pid() as i32;
        let mut driver = Driver {
            ops: HostOps {
                strace_pid,
                root: None,
            },
            app: &mut running,
            deadline,
            exited_expectedly: false,
        };
        let outcome = driver.run(sc, app);
        driver.stop(self.limits.stop_grace);
        let outcome = outcome_of(outcome, started);
        // Reap strace and read its output; the group is already gone or killed here.
        let done = finish_running(running);
        tracing::debug!(scenario = %sc.name, termination = ?done, "host scenario ended");
        let mut result = not_run(&sc.name, outcome);
        let copied = trace_file.is_file().then_some(trace_file);
        match &copied {
            Some(file) => attach_trace(
                &mut result,
                file,
                &mut warnings,
                &mut self.interpreters,
                |path| interp::interpreter_of_file(&self.repo_root.join(path)),
            ),
            None => warnings.push(format!("scenario {}: strace wrote no trace", sc.name)),
        }
        result.wall_clock_ms = started.elapsed().as_millis() as u64;
        ScenarioRun {
            result,
            trace_file: copied,
            warnings,
        }
    }
}

fn finish_running(r: Running) -> exec::Termination {
    r.finish().termination
}

/// The host backend's [`AppOps`]: /proc, `kill` and `setns` on the app's root process.
struct HostOps {
    strace_pid: i32,
    root: Option<i32>,
}

impl HostOps {
    /// The app's root process: strace's first child (it appears right after the fork).
    fn root(&mut self) -> Result<i32, Stop> {
        if let Some(r) = self.root {
            // Still strace's child? (Otherwise it was a passing process; look again.)
            let alive = std::fs::read_to_string(format!("/proc/{r}/stat"))
                .ok()
                .and_then(|s| agent::stat_ppid(&s))
                == Some(self.strace_pid);
            if alive {
                return Ok(r);
            }
            self.root = None;
        }
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(pid) = first_child_of(self.strace_pid) {
                tracing::debug!(strace = self.strace_pid, app = pid, "app root process");
                self.root = Some(pid);
                return Ok(pid);
            }
            if Instant::now() >= until {
                return Err(Stop::other("the traced app did not start"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The app's root process: the lowest-numbered live child of `parent` that
/// has exec'd something else (strace's own short-lived feature-test children
/// still run strace's executable).
fn first_child_of(parent: i32) -> Option<i32> {
    agent::traced_child_of(std::path::Path::new("/proc"), parent, None)
}

impl AppOps for HostOps {
    fn wait_listen(&mut self, port: u16, timeout: Duration) -> Result<(), Stop> {
        let until = Instant::now() + timeout;
        loop {
            let root = self.root()?;
            // /proc/PID/net shows the network namespace of PID, not ours.
            for f in ["tcp", "tcp6"] {
                if let Ok(text) = std::fs::read_to_string(format!("/proc/{root}/net/{f}")) {
                    if agent::proc_net_listens(&text, port) {
                        return Ok(());
                    }
                }
            }
            if Instant::now() >= until {
                return Err(Stop::other(format!(
                    "timed out after {} ms",
                    timeout.as_millis()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn http(&mut self, port: u16, h: &HttpStep, timeout: Duration) -> Result<Vec<u16>, Stop> {
        let root = self.root()?;
        let h = h.clone();
        let per_request = timeout.min(Duration::from_secs(10));
        let result = exec::in_network_of(root, move || {
            let mut codes = Vec::new();
            for i in 0..h.repeat {
                if i > 0 {
                    std::thread::sleep(Duration::from_millis(h.interval_ms));
                }
                codes.push(agent::http_request(
                    port,
                    &h.method,
                    &h.path,
                    h.body.as_deref(),
                    per_request,
                )?);
            }
            Ok::<_, agent::AgentError>(codes)
        })
        .map_err(|e| Stop::other(format!("cannot enter the app's network namespace: {e}")))?;
        result.map_err(|e| Stop::other(e.to_string()))
    }

    fn signal(&mut self, signal: &str) -> Result<(), Stop> {
        let sig: Signal = signal
            .parse()
            .map_err(|_| Stop::other(format!("unknown signal {signal}")))?;
        let root = self.root()?;
        kill(Pid::from_raw(root), sig).map_err(|e| Stop::other(format!("kill {root}: {e}")))
    }

    fn exec(&mut self, argv: &[String], _timeout: Duration) -> Result<(), Stop> {
        // Arbitrary host commands are outside the exec layer's allowlist.
        Err(Stop::other(format!(
            "exec step {argv:?}: exec steps need the container backend"
        )))
    }

    fn force_stop(&mut self) {
        // The caller kills strace's process group next.
    }
}
