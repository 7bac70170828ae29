//! Starting, watching and killing one process.

use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::capture::{pump, Buffer, Captured, LineWatch};
use super::{ExecError, Program, KEPT_ENV};

/// Process groups started and not yet reaped, for [`kill_all`].
static LIVE_GROUPS: Mutex<std::collections::BTreeSet<i32>> =
    Mutex::new(std::collections::BTreeSet::new());

fn track(pgid: Pid, live: bool) {
    let mut set = LIVE_GROUPS.lock().unwrap_or_else(|p| p.into_inner());
    if live {
        set.insert(pgid.as_raw());
    } else {
        set.remove(&pgid.as_raw());
    }
}

/// Kill (SIGKILL) every process group this process started and has not yet
/// reaped: what an interrupted command does before exiting, since handles
/// are not dropped on `exit`. Returns how many groups were signalled.
pub fn kill_all() -> usize {
    let groups: Vec<i32> = LIVE_GROUPS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .copied()
        .collect();
    for g in &groups {
        let _ = killpg(Pid::from_raw(*g), Signal::SIGKILL);
    }
    groups.len()
}

/// Default cap on captured bytes per stream.
pub(crate) const DEFAULT_CAPTURE_LIMIT: usize = 1 << 20;

/// What to run: an allowlisted program, its argv, and limits.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    program: Program,
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
    timeout: Duration,
    capture_limit: usize,
    watch_line: Option<Vec<u8>>,
    private_network: bool,
    stdin_file: Option<PathBuf>,
    env: Vec<(&'static str, Option<OsString>)>,
    /// How some arguments are shown in [`ExecSpec::display`] instead of
    /// their value (index into `args`, what to show).
    shown_as: Vec<(usize, String)>,
}

impl ExecSpec {
    /// Run `program` with no arguments, a 60 s timeout and a 1 MiB capture per stream.
    pub fn new(program: Program) -> Self {
        ExecSpec {
            program,
            args: Vec::new(),
            cwd: None,
            timeout: Duration::from_secs(60),
            capture_limit: DEFAULT_CAPTURE_LIMIT,
            watch_line: None,
            private_network: false,
            stdin_file: None,
            env: Vec::new(),
            shown_as: Vec::new(),
        }
    }

    /// Feed the child's stdin from the file at `path` (read by the child
    /// through its own descriptor, so nothing is buffered here) instead of
    /// `/dev/null`. An unreadable file is [`ExecError::Stdin`] at spawn.
    pub fn stdin_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.stdin_file = Some(path.into());
        self
    }

    /// Set (`Some`) or remove (`None`) one of the [`KEPT_ENV`] variables for
    /// this process only (an engine endpoint: `DOCKER_HOST`, `DOCKER_CONTEXT`).
    /// Any other name is refused when the process starts
    /// ([`ExecError::EnvNotKept`]): the environment stays scrubbed.
    pub fn env(mut self, key: &'static str, value: Option<impl Into<OsString>>) -> Self {
        self.env.push((key, value.map(Into::into)));
        self
    }

    /// Start the process in a new network namespace with only loopback up
    /// (needs CAP_SYS_ADMIN; the spawn fails with the kernel's error otherwise).
    pub fn private_network(mut self) -> Self {
        self.private_network = true;
        self
    }

    /// Append one argument.
    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Append an argument whose value must never be shown (an `ENV` or
    /// `LABEL` value of an image config, which may hold a secret):
    /// [`ExecSpec::display`], and so every error that names the command,
    /// shows `shown` instead.
    pub fn arg_shown_as(mut self, a: impl Into<OsString>, shown: impl Into<String>) -> Self {
        self.shown_as.push((self.args.len(), shown.into()));
        self.args.push(a.into());
        self
    }

    /// Append arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Working directory of the child.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// How long [`run`] waits before killing the process group.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Cap on captured bytes per stream (head and tail are kept).
    pub fn capture_limit(mut self, bytes: usize) -> Self {
        self.capture_limit = bytes.max(2);
        self
    }

    /// Flag [`Running::line_seen`] when a stdout or stderr line contains `needle`.
    pub fn watch_line(mut self, needle: impl Into<Vec<u8>>) -> Self {
        self.watch_line = Some(needle.into());
        self
    }

    /// The argv as text, for logs.
    pub fn display(&self) -> String {
        let mut s = self.program.name().to_owned();
        for (i, a) in self.args.iter().enumerate() {
            s.push(' ');
            match self.shown_as.iter().find(|(at, _)| *at == i) {
                Some((_, shown)) => s.push_str(shown),
                None => s.push_str(&a.to_string_lossy()),
            }
        }
        s
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// It exited with this code.
    Exited(i32),
    /// A signal (this number) ended it.
    Signaled(i32),
    /// It ran past its timeout and its process group was killed.
    TimedOut,
}

/// A process that ended, with its captured output.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The executed path.
    pub path: PathBuf,
    /// How it ended.
    pub termination: Termination,
    /// Captured stdout.
    pub stdout: Captured,
    /// Captured stderr.
    pub stderr: Captured,
    /// Wall-clock time.
    pub elapsed: Duration,
}

impl Finished {
    /// Exited with code 0.
    pub fn success(&self) -> bool {
        self.termination == Termination::Exited(0)
    }

    /// The exit code, if it exited.
    pub fn code(&self) -> Option<i32> {
        match self.termination {
            Termination::Exited(c) => Some(c),
            _ => None,
        }
    }
}

/// A running process in its own process group; dropping it kills the group.
#[derive(Debug)]
pub struct Running {
    child: Option<Child>,
    path: PathBuf,
    pgid: Pid,
    stdout: Arc<Mutex<Buffer>>,
    stderr: Arc<Mutex<Buffer>>,
    readers: Vec<JoinHandle<()>>,
    seen: Arc<AtomicBool>,
    started: Instant,
    termination: Option<Termination>,
}

/// Takes a stream's bytes as they arrive; `false` once it wants no more.
type Sink = Box<dyn FnMut(&[u8]) -> bool + Send>;

/// Where a child's stdout goes.
enum StdoutTo {
    /// The bounded capture of [`ExecSpec::capture_limit`].
    Capture,
    /// Handed to a sink as it arrives, until the sink wants no more.
    Sink(Sink),
}

/// Start `spec` and return a handle; the caller waits or kills.
pub fn spawn(spec: &ExecSpec) -> Result<Running, ExecError> {
    spawn_with(spec, StdoutTo::Capture)
}

/// Run `spec` to completion (or its timeout), handing its stdout to `sink`
/// as it arrives instead of capturing it. Once `sink` returns `false`
/// nothing more is read and the process group is killed at once, so a
/// caller that wants only the head of a stream never waits for (or stores)
/// the rest; [`Finished::termination`] then shows the kill. The returned
/// `stdout` capture is empty.
pub fn run_into(
    spec: &ExecSpec,
    sink: impl FnMut(&[u8]) -> bool + Send + 'static,
) -> Result<Finished, ExecError> {
    let mut running = spawn_with(spec, StdoutTo::Sink(Box::new(sink)))?;
    let deadline = running.started + spec.timeout;
    if running.wait_until(deadline)?.is_none() {
        running.kill();
        running.termination = Some(Termination::TimedOut);
    }
    Ok(running.finish())
}

/// Feed `reader` to `sink` until EOF or the sink has enough; then kill `pgid`.
fn pump_into(mut reader: impl std::io::Read, mut sink: Sink, pgid: Pid) {
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        if !sink(&chunk[..n]) {
            // The group leader still holds this pipe's other end, so it
            // has not exited and its group id names no one else.
            let _ = killpg(pgid, Signal::SIGKILL);
            return;
        }
    }
}

fn spawn_with(spec: &ExecSpec, stdout_to: StdoutTo) -> Result<Running, ExecError> {
    let path = spec.program.resolve()?;
    let stdin = match &spec.stdin_file {
        None => Stdio::null(),
        Some(file) => {
            Stdio::from(
                std::fs::File::open(file).map_err(|source| ExecError::Stdin {
                    path: file.clone(),
                    source,
                })?,
            )
        }
    };
    // The one place a process is started (see clippy.toml).
    #[allow(clippy::disallowed_methods)]
    let mut cmd = Command::new(&path);
    cmd.args(&spec.args)
        .env_clear()
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group: a timeout kills the program and everything it started.
        .process_group(0);
    for key in KEPT_ENV {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    for (key, value) in &spec.env {
        if !KEPT_ENV.contains(key) {
            return Err(ExecError::EnvNotKept { key });
        }
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    if spec.private_network {
        // SAFETY: the hook only makes async-signal-safe system calls.
        unsafe {
            cmd.pre_exec(super::netns::enter_private_network);
        }
    }
    tracing::debug!(argv = %spec.display(), "exec");
    let mut child = cmd.spawn().map_err(|source| ExecError::Spawn {
        path: path.clone(),
        source,
    })?;
    let pgid = Pid::from_raw(child.id() as i32);
    track(pgid, true);
    let seen = Arc::new(AtomicBool::new(false));
    let watch = spec.watch_line.as_ref().map(|needle| LineWatch {
        needle: needle.clone(),
        seen: seen.clone(),
    });
    let stdout = Arc::new(Mutex::new(Buffer::new(spec.capture_limit)));
    let stderr = Arc::new(Mutex::new(Buffer::new(spec.capture_limit)));
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        match stdout_to {
            StdoutTo::Capture => {
                let (b, w) = (stdout.clone(), watch.clone());
                readers.push(std::thread::spawn(move || pump(out, b, w)));
            }
            StdoutTo::Sink(sink) => {
                readers.push(std::thread::spawn(move || pump_into(out, sink, pgid)));
            }
        }
    }
    if let Some(err) = child.stderr.take() {
        let (b, w) = (stderr.clone(), watch);
        readers.push(std::thread::spawn(move || pump(err, b, w)));
    }
    Ok(Running {
        child: Some(child),
        path,
        pgid,
        stdout,
        stderr,
        readers,
        seen,
        started: Instant::now(),
        termination: None,
    })
}

/// Run `spec` to completion (or its timeout) and return what it printed.
pub fn run(spec: &ExecSpec) -> Result<Finished, ExecError> {
    let mut running = spawn(spec)?;
    let deadline = running.started + spec.timeout;
    if running.wait_until(deadline)?.is_none() {
        running.kill();
        running.termination = Some(Termination::TimedOut);
    }
    Ok(running.finish())
}

impl Running {
    /// The process id (also the process group id).
    pub fn pid(&self) -> u32 {
        self.pgid.as_raw() as u32
    }

    /// Whether a watched line was printed (see [`ExecSpec::watch_line`]).
    pub fn line_seen(&self) -> bool {
        self.seen.load(Ordering::SeqCst)
    }

    /// Captured stdout so far.
    pub fn stdout_snapshot(&self) -> Captured {
        self.stdout.lock().map(|b| b.snapshot()).unwrap_or_default()
    }

    /// Captured stderr so far.
    pub fn stderr_snapshot(&self) -> Captured {
        self.stderr.lock().map(|b| b.snapshot()).unwrap_or_default()
    }

    /// How it ended, if it has.
    pub fn try_wait(&mut self) -> Result<Option<Termination>, ExecError> {
        if let Some(t) = self.termination {
            return Ok(Some(t));
        }
        let Some(child) = self.child.as_mut() else {
            return Ok(self.termination);
        };
        let status = child.try_wait().map_err(|source| ExecError::Wait {
            path: self.path.clone(),
            source,
        })?;
        if let Some(st) = status {
            let t = match (st.code(), st.signal()) {
                (Some(c), _) => Termination::Exited(c),
                (None, Some(s)) => Termination::Signaled(s),
                (None, None) => Termination::Signaled(0),
            };
            self.termination = Some(t);
            track(self.pgid, false);
            return Ok(Some(t));
        }
        Ok(None)
    }

    /// Wait until the process ends or `deadline` passes (`None`).
    pub fn wait_until(&mut self, deadline: Instant) -> Result<Option<Termination>, ExecError> {
        let mut poll = Backoff::new();
        loop {
            if let Some(t) = self.try_wait()? {
                return Ok(Some(t));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            std::thread::sleep((deadline - now).min(poll.next()));
        }
    }

    /// Kill the whole process group (SIGKILL) and reap the process.
    pub fn kill(&mut self) {
        if self.termination.is_some() {
            return;
        }
        // ESRCH (already gone) is fine: the group is dead either way.
        let _ = killpg(self.pgid, Signal::SIGKILL);
        if let Some(child) = self.child.as_mut() {
            if let Ok(st) = child.wait() {
                self.termination = Some(match (st.code(), st.signal()) {
                    (Some(c), _) => Termination::Exited(c),
                    (_, Some(s)) => Termination::Signaled(s),
                    _ => Termination::Signaled(0),
                });
                track(self.pgid, false);
            }
        }
    }

    /// Wait for the end of output and return the result. Kills the group
    /// first if the process is still running.
    pub fn finish(mut self) -> Finished {
        if !matches!(self.try_wait(), Ok(Some(_))) {
            self.kill();
        }
        // A leftover group member holding the pipes would block the readers:
        // give them a moment, then kill the rest of the group.
        let grace = Instant::now() + Duration::from_millis(500);
        let mut poll = Backoff::new();
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < grace {
            std::thread::sleep(poll.next());
        }
        if self.readers.iter().any(|r| !r.is_finished()) {
            let _ = killpg(self.pgid, Signal::SIGKILL);
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Finished {
            path: self.path.clone(),
            termination: self.termination.unwrap_or(Termination::Signaled(0)),
            stdout: self.stdout_snapshot(),
            stderr: self.stderr_snapshot(),
            elapsed: self.started.elapsed(),
        }
    }
}

/// The pauses between two looks at a process: short first (most programs
/// we run end within milliseconds, and a fixed 20 ms pause cost each of
/// them a whole pause), doubling up to 20 ms for the long ones.
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_micros(250);
    const MOST: Duration = Duration::from_millis(20);

    fn new() -> Self {
        Backoff(Self::FIRST)
    }

    fn next(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(Self::MOST);
        now
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.termination.is_none() {
            self.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_at_a_process_start_short_and_double_to_the_most() {
        let mut b = Backoff::new();
        let pauses: Vec<u128> = (0..9).map(|_| b.next().as_micros()).collect();
        assert_eq!(
            pauses,
            [250, 500, 1000, 2000, 4000, 8000, 16000, 20000, 20000]
        );
    }

    /// Live (non-zombie) members of a process group, read from /proc.
    fn live_members(pgid: Pid) -> Vec<i32> {
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid pgrp ...
            let Some(after) = stat.rsplit_once(") ").map(|(_, a)| a) else {
                continue;
            };
            let f: Vec<&str> = after.split_whitespace().collect();
            if f.len() > 2 && f[0] != "Z" && f[2] == pgid.as_raw().to_string() {
                out.push(e.file_name().to_string_lossy().parse().unwrap_or(0));
            }
        }
        out
    }

    /// The tests that start and kill process groups take turns.
    fn serial() -> std::sync::MutexGuard<'static, ()> {
        static LOCK: Mutex<()> = Mutex::new(());
        LOCK.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// These tests drive real processes through strace (an allowlisted program).
    fn require_strace() {
        assert!(
            Program::Strace.resolve().is_ok(),
            "strace is required for the exec-layer tests (apt-get install strace)"
        );
    }

    #[test]
    fn environment_is_scrubbed_and_stdin_is_null() {
        require_strace();
        let _serial = serial();
        std::env::set_var("CODEGENIE_TEST_SECRET", "leak");
        // strace runs `env` (found on the kept PATH) and `cat` sees /dev/null.
        let out = run(&ExecSpec::new(Program::Strace).args([
            "-e",
            "trace=none",
            "-o",
            "/dev/null",
            "env",
        ]))
        .unwrap();
        assert!(out.success(), "{:?}", out.stderr.text());
        let text = out.stdout.text();
        assert!(!text.contains("CODEGENIE_TEST_SECRET"), "{text}");
        for line in text.lines() {
            let key = line.split('=').next().unwrap_or_default();
            assert!(KEPT_ENV.contains(&key), "unexpected variable {key}");
        }
        let cat = run(&ExecSpec::new(Program::Strace)
            .args(["-e", "trace=none", "-o", "/dev/null", "cat"])
            .timeout(Duration::from_secs(10)))
        .unwrap();
        assert!(cat.success());
        assert!(cat.stdout.bytes.is_empty());
    }

    #[test]
    fn stdin_can_come_from_a_file() {
        require_strace();
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        std::fs::write(&input, b"fed through stdin\n").unwrap();
        let out = run(&ExecSpec::new(Program::Strace)
            .args(["-e", "trace=none", "-o", "/dev/null", "cat"])
            .stdin_file(&input)
            .timeout(Duration::from_secs(10)))
        .unwrap();
        assert!(out.success(), "{}", out.stderr.text());
        assert_eq!(out.stdout.text(), "fed through stdin\n");
        let missing = run(&ExecSpec::new(Program::Strace).stdin_file(dir.path().join("nope")));
        assert!(
            matches!(missing, Err(ExecError::Stdin { .. })),
            "{missing:?}"
        );
    }

    #[test]
    fn per_process_engine_variables_are_set_removed_and_limited() {
        require_strace();
        let env = |spec: ExecSpec| {
            let out = run(&spec.args(["-e", "trace=none", "-o", "/dev/null", "env"])).unwrap();
            assert!(out.success(), "{:?}", out.stderr.text());
            out.stdout.text()
        };
        let set = env(ExecSpec::new(Program::Strace)
            .env("DOCKER_HOST", Some("unix:///tmp/engine-b.sock"))
            .env("DOCKER_CONTEXT", None::<&str>));
        assert!(
            set.lines()
                .any(|l| l == "DOCKER_HOST=unix:///tmp/engine-b.sock"),
            "{set}"
        );
        assert!(!set.contains("DOCKER_CONTEXT="), "{set}");
        // Control: without the override the variable is not invented.
        let plain = env(ExecSpec::new(Program::Strace));
        assert!(!plain.contains("engine-b.sock"), "{plain}");
        let refused = run(&ExecSpec::new(Program::Strace).env("LD_PRELOAD", Some("x.so")));
        assert!(
            matches!(refused, Err(ExecError::EnvNotKept { key: "LD_PRELOAD" })),
            "{refused:?}"
        );
    }

    #[test]
    fn timeout_kills_the_whole_process_group() {
        require_strace();
        let _serial = serial();
        let started = Instant::now();
        let mut running =
            spawn(&ExecSpec::new(Program::Strace).args(["-f", "-o", "/dev/null", "sleep", "30"]))
                .unwrap();
        let pgid = Pid::from_raw(running.pid() as i32);
        assert!(running
            .wait_until(Instant::now() + Duration::from_millis(300))
            .unwrap()
            .is_none());
        running.kill();
        let done = running.finish();
        assert!(
            matches!(done.termination, Termination::Signaled(9)),
            "{:?}",
            done.termination
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        // The traced `sleep` was in the group too: nothing is left alive.
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(live_members(pgid), Vec::<i32>::new());
    }

    #[test]
    fn private_network_has_only_loopback() {
        require_strace();
        let _serial = serial();
        // `cat /proc/net/dev` run by strace inside the new namespace.
        let out = run(&ExecSpec::new(Program::Strace)
            .args([
                "-e",
                "trace=none",
                "-o",
                "/dev/null",
                "cat",
                "/proc/net/dev",
            ])
            .private_network())
        .unwrap();
        assert!(out.success(), "{}", out.stderr.text());
        let ifaces: Vec<String> = out
            .stdout
            .text()
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next().map(|s| s.trim().to_owned()))
            .collect();
        assert_eq!(ifaces, ["lo"]);
    }

    #[test]
    fn run_reports_a_timeout() {
        require_strace();
        let _serial = serial();
        let out = run(&ExecSpec::new(Program::Strace)
            .args(["-o", "/dev/null", "sleep", "30"])
            .timeout(Duration::from_millis(200)))
        .unwrap();
        assert_eq!(out.termination, Termination::TimedOut);
        assert!(out.elapsed < Duration::from_secs(10));
    }

    #[test]
    fn dropping_a_handle_kills_the_group() {
        require_strace();
        let _serial = serial();
        let running =
            spawn(&ExecSpec::new(Program::Strace).args(["-f", "-o", "/dev/null", "sleep", "30"]))
                .unwrap();
        let pgid = Pid::from_raw(running.pid() as i32);
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !live_members(pgid).is_empty(),
            "the group runs before the drop"
        );
        drop(running);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(live_members(pgid), Vec::<i32>::new());
    }
}
