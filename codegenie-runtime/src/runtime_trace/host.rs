//! The host backend: the same scenarios, run on this machine under the
//! host's strace in a private network namespace (only loopback), for
//! repositories without a Dockerfile and machines without a container engine.
//! The app is `app.command` (or a scenario's one-shot `command`), started in
//! the repository root with the exec layer's scrubbed environment.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::exec::{self, ExecSpec, Program, Running};
use crate::interp;
use crate::procfs::ProcStat;

use super::agent::{self, Settled};
use super::backend::{ScenarioBackend, TraceCopy};
use super::bundle::{host_strace_has_seccomp_bpf, strace_options};
use super::error::{BackendError, HostBackendError};
use super::scenarios::{HttpStep, Ready, Scenario};
use super::steps::{AppOps, ResolvedApp, Stop};

/// Check that this machine can run the host backend: strace is installed
/// and a private network namespace can be created (CAP_SYS_ADMIN). Returns
/// whether strace has `--seccomp-bpf`.
pub(super) fn check_host_backend() -> Result<bool, HostBackendError> {
    let out = exec::run(
        &ExecSpec::new(Program::Strace)
            .arg("-V")
            .private_network()
            .timeout(Duration::from_secs(10)),
    )
    .map_err(HostBackendError::NoNamespace)?;
    if out.success() {
        host_strace_has_seccomp_bpf().map_err(HostBackendError::Version)
    } else {
        Err(HostBackendError::StraceFails {
            termination: out.termination,
            stderr: out.stderr.text().trim().to_owned(),
        })
    }
}

/// Runs scenarios on this machine.
pub(crate) struct HostBackend<'a> {
    /// The repository root (the app's working directory).
    pub(crate) repo_root: &'a Path,
    /// Where strace writes each scenario's trace.
    pub(crate) work_dir: &'a Path,
    /// Whether the host's strace has `--seccomp-bpf`.
    pub(crate) seccomp_bpf: bool,
}

/// The strace command line of a scenario, not started yet.
pub(crate) struct HostCommand {
    spec: ExecSpec,
    trace_file: PathBuf,
}

/// strace and the app under it.
pub(crate) struct HostSession {
    running: Running,
    strace_pid: i32,
    root: Option<i32>,
    trace_file: PathBuf,
}

impl ScenarioBackend for HostBackend<'_> {
    type Created = HostCommand;
    type Session = HostSession;
    type Ops<'s>
        = HostOps<'s>
    where
        Self: 's;
    type App = Running;

    fn no_command(&self) -> &'static str {
        "the host backend needs `app.command` in .codegenie/scenarios.yaml (there is no image to take an ENTRYPOINT from)"
    }

    fn create(
        &mut self,
        scenario: &Scenario,
        argv: &[String],
        app: &ResolvedApp,
    ) -> Result<HostCommand, Stop> {
        // strace writes straight into the work folder: nothing to copy out.
        let trace_file = self.work_dir.join(format!("{}.strace", scenario.name));
        let mut spec = ExecSpec::new(Program::Strace)
            .args(strace_options(self.seccomp_bpf))
            .arg("-o")
            .arg(&trace_file)
            .arg("--")
            .args(argv)
            .cwd(self.repo_root)
            .private_network()
            .capture_limit(256 * 1024);
        if let Ready::LogLine { line, .. } = &app.ready {
            spec = spec.watch_line(line.as_bytes().to_vec());
        }
        Ok(HostCommand { spec, trace_file })
    }

    fn start(&mut self, created: HostCommand, _app: &ResolvedApp) -> Result<HostSession, Stop> {
        let HostCommand { spec, trace_file } = created;
        let running = exec::spawn(&spec).map_err(|e| Stop::other(e.to_string()))?;
        Ok(HostSession {
            strace_pid: running.pid() as i32,
            running,
            root: None,
            trace_file,
        })
    }

    fn parts<'s>(&'s self, s: &'s mut HostSession) -> (HostOps<'s>, &'s mut Running) {
        let ops = HostOps {
            strace_pid: s.strace_pid,
            root: &mut s.root,
            trace_file: &s.trace_file,
        };
        (ops, &mut s.running)
    }

    fn collect_trace(
        &mut self,
        s: &mut HostSession,
        dest: &Path,
        limit: u64,
        _deadline: Instant,
    ) -> Result<TraceCopy, BackendError> {
        // Reap strace first: the group is already gone or killed here.
        let done = s.running.wait_until(Instant::now());
        tracing::debug!(termination = ?done, "host scenario ended");
        if !s.trace_file.is_file() {
            return Err("strace wrote no trace".into());
        }
        if s.trace_file != dest {
            std::fs::rename(&s.trace_file, dest)?;
        }
        // The trace is already on the host; past the cap it is cut where it lies.
        let size = std::fs::metadata(dest)?.len();
        if size > limit {
            std::fs::OpenOptions::new()
                .write(true)
                .open(dest)?
                .set_len(limit)?;
        }
        Ok(TraceCopy {
            size,
            written: size.min(limit),
        })
    }

    fn interpreter_of(
        &self,
        _s: &HostSession,
        path: &str,
        _deadline: Instant,
    ) -> Option<interp::Interpreter> {
        interp::interpreter_in_file(&self.repo_root.join(path))
    }

    fn remove(&mut self, s: HostSession) -> Result<(), BackendError> {
        let done = s.running.finish();
        tracing::debug!(termination = ?done.termination, "strace reaped");
        Ok(())
    }
}

/// The host backend's [`AppOps`]: /proc, `kill` and `setns` on the app's root process.
pub(crate) struct HostOps<'a> {
    strace_pid: i32,
    root: &'a mut Option<i32>,
    trace_file: &'a Path,
}

impl HostOps<'_> {
    /// The app's root process: strace's first child (it appears right after the fork).
    fn root(&mut self) -> Result<i32, Stop> {
        if let Some(r) = *self.root {
            // Still strace's child? (Otherwise it was a passing process; look again.)
            let proc_root = std::path::Path::new("/proc");
            if ProcStat::read(proc_root, r).and_then(|s| s.live_parent()) == Some(self.strace_pid) {
                return Ok(r);
            }
            *self.root = None;
        }
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(pid) = first_child_of(self.strace_pid) {
                tracing::debug!(strace = self.strace_pid, app = pid, "app root process");
                *self.root = Some(pid);
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

impl AppOps for HostOps<'_> {
    fn settle(&mut self, quiet: Duration, max: Duration) -> Result<Settled, Stop> {
        Ok(agent::settle(self.trace_file, quiet, max))
    }

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
        let per_request = timeout.min(agent::HTTP_REQUEST_TIMEOUT);
        let result = exec::in_network_of(root, move || {
            let mut codes = Vec::new();
            let headers: Vec<(String, String)> = h.headers.into_iter().collect();
            agent::http_repeat(
                port,
                &agent::Request {
                    method: &h.method,
                    path: &h.path,
                    headers: &headers,
                    body: h.body.as_deref(),
                },
                (h.repeat, Duration::from_millis(h.interval_ms)),
                per_request,
                |code| {
                    codes.push(code);
                    Ok(())
                },
            )
            .map(|()| codes)
        })
        .map_err(|e| Stop::other(format!("cannot enter the app's network namespace: {e}")))?;
        result.map_err(|e| Stop::other(crate::errors::error_chain(&e)))
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

    fn root_pid(&mut self) -> Result<i32, Stop> {
        self.root()
    }

    fn wait_gone(&mut self, pid: i32, timeout: Duration) -> Result<bool, Stop> {
        Ok(agent::wait_gone(Path::new("/proc"), pid, timeout))
    }

    fn kill_survivors(&mut self) -> Result<Vec<String>, Stop> {
        Ok(agent::kill_traced(Path::new("/proc"), self.strace_pid))
    }

    fn force_stop(&mut self) {
        // The caller kills strace's process group next.
    }
}
