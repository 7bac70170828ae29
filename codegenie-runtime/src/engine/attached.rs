//! A started container's main process as the one who started it sees it:
//! its end, its output (bounded, stdout and stderr apart) and a watched
//! line. Through the API client this is an attach stream and a wait, with no
//! process of ours per scenario; through the CLI it is `docker start -a`
//! (docs/architecture.md, "Engine access").

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::query_parameters::{AttachContainerOptions, WaitContainerOptions};
use futures_util::StreamExt;

use crate::exec::{self, Buffer, Feed, Finished, LineWatch, Running, Termination};

use super::api::{api_error, Api};
use super::EngineError;

/// What a started container's main process is to its starter.
#[derive(Debug)]
pub enum StartedApp {
    /// `docker start -a`: the client's exit is the container's.
    Client(Running),
    /// The engine's attach stream and wait, through the API client.
    Stream(Attached),
}

impl StartedApp {
    /// Whether a watched line was printed.
    pub fn line_seen(&self) -> bool {
        match self {
            StartedApp::Client(r) => r.line_seen(),
            StartedApp::Stream(a) => a.seen.load(Ordering::SeqCst),
        }
    }

    /// How it ended, if it has.
    pub fn try_wait(&mut self) -> Result<Option<Termination>, EngineError> {
        match self {
            StartedApp::Client(r) => r.try_wait().map_err(client_error),
            StartedApp::Stream(a) => a.try_wait(),
        }
    }

    /// Wait until `deadline` for the end; `None` if it is still running.
    pub fn wait_until(&mut self, deadline: Instant) -> Result<Option<Termination>, EngineError> {
        match self {
            StartedApp::Client(r) => r.wait_until(deadline).map_err(client_error),
            StartedApp::Stream(a) => a.wait_until(deadline),
        }
    }

    /// Stop following the container (it keeps running until it is killed or
    /// removed): the client is killed, or the stream and the wait dropped.
    pub fn kill(&mut self) {
        match self {
            StartedApp::Client(r) => r.kill(),
            StartedApp::Stream(a) => a.detach(),
        }
    }

    /// What it printed and how it ended (stopped following first if it
    /// still runs).
    pub fn finish(self) -> Finished {
        match self {
            StartedApp::Client(r) => r.finish(),
            StartedApp::Stream(a) => a.finish(),
        }
    }
}

fn client_error(e: exec::ExecError) -> EngineError {
    EngineError::Command {
        command: "docker start -a".into(),
        detail: crate::errors::error_chain(&e),
    }
}

/// The end of an attached container as the wait reported it.
type End = Option<Result<Termination, EngineError>>;

/// A container started through the API, its output read from the attach
/// stream (opened before the start, so no first line is missed) and its
/// end from the engine's wait, both on the client's runtime.
#[derive(Debug)]
pub struct Attached {
    container: String,
    seen: Arc<AtomicBool>,
    stdout: Arc<Mutex<Buffer>>,
    stderr: Arc<Mutex<Buffer>>,
    /// Set once by the wait, which then notifies.
    end: Arc<(Mutex<End>, Condvar)>,
    output: tokio::task::JoinHandle<()>,
    wait: tokio::task::JoinHandle<()>,
    /// Taken when the wait's answer is read, or when we stop following.
    termination: Option<Termination>,
    started: Instant,
}

/// Longest the end of the output is awaited once the container stopped:
/// the engine closes the stream right after the exit.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

impl Api {
    /// Attach to the created `container`, start it and wait for its end,
    /// capturing up to `limit` bytes per stream and flagging a line that
    /// contains `watch`.
    pub(super) fn start_attached(
        &self,
        container: &str,
        watch: Option<&str>,
        limit: usize,
        timeout: Duration,
    ) -> Result<Attached, EngineError> {
        let started = Instant::now();
        let attach = AttachContainerOptions {
            stream: true,
            stdout: true,
            stderr: true,
            ..AttachContainerOptions::default()
        };
        let mut attached = self.call(
            "attach to container",
            timeout,
            self.docker().attach_container(container, Some(attach)),
        )?;
        let seen = Arc::new(AtomicBool::new(false));
        let watch = watch.map(|w| LineWatch {
            needle: w.as_bytes().to_vec(),
            seen: seen.clone(),
        });
        let stdout = Arc::new(Mutex::new(Buffer::new(limit)));
        let stderr = Arc::new(Mutex::new(Buffer::new(limit)));
        let (mut out, mut err) = (
            Feed::new(stdout.clone(), watch.clone()),
            Feed::new(stderr.clone(), watch),
        );
        let output = self.runtime().spawn(async move {
            while let Some(Ok(part)) = attached.output.next().await {
                match part {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        out.push(&message)
                    }
                    LogOutput::StdErr { message } => err.push(&message),
                    LogOutput::StdIn { .. } => {}
                }
            }
        });
        if let Err(e) = self.call(
            "start container",
            timeout,
            self.docker().start_container(
                container,
                None::<bollard::query_parameters::StartContainerOptions>,
            ),
        ) {
            output.abort();
            return Err(e);
        }
        // Asked after the start returned: `not-running` then answers with
        // this run's exit, even one that came before the question.
        let end: Arc<(Mutex<End>, Condvar)> = Arc::default();
        let docker = self.docker().clone();
        let (id, told) = (container.to_owned(), end.clone());
        let wait = self.runtime().spawn(async move {
            let options = WaitContainerOptions {
                condition: "not-running".into(),
            };
            let answer = docker.wait_container(&id, Some(options)).next().await;
            let ended = match answer {
                Some(Ok(r)) => Ok(Termination::Exited(exit_code(r.status_code))),
                // bollard reports a non-zero status as an error; it is an exit.
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, error })) => {
                    if !error.is_empty() {
                        tracing::debug!(container = %id, error, "the engine's wait reported an error with the exit");
                    }
                    Ok(Termination::Exited(exit_code(code)))
                }
                Some(Err(e)) => Err(api_error("wait for container", e)),
                None => Err(EngineError::Output {
                    command: "wait for container".into(),
                    detail: "the engine closed the wait without an answer".into(),
                }),
            };
            let (lock, cv) = &*told;
            *lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(ended);
            cv.notify_all();
        });
        Ok(Attached {
            container: container.to_owned(),
            seen,
            stdout,
            stderr,
            end,
            output,
            wait,
            termination: None,
            started,
        })
    }
}

/// The engine's status code as a process exit code (the engine gives
/// 128 + N for death by signal N, as the CLI client exits).
fn exit_code(code: i64) -> i32 {
    i32::try_from(code).unwrap_or(i32::MAX)
}

impl Attached {
    fn try_wait(&mut self) -> Result<Option<Termination>, EngineError> {
        self.wait_until(Instant::now())
    }

    fn wait_until(&mut self, deadline: Instant) -> Result<Option<Termination>, EngineError> {
        if let Some(t) = self.termination {
            return Ok(Some(t));
        }
        let (lock, cv) = &*self.end;
        let mut end = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match &*end {
                Some(Ok(t)) => {
                    self.termination = Some(*t);
                    return Ok(Some(*t));
                }
                Some(Err(e)) => return Err(e.clone()),
                None => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            end = cv
                .wait_timeout(end, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Stop following: drop the stream and the wait. Recorded as the CLI
    /// client killed would be, since nobody saw the container's own end.
    fn detach(&mut self) {
        if matches!(self.try_wait(), Ok(Some(_))) {
            return;
        }
        self.output.abort();
        self.wait.abort();
        tracing::debug!(container = %self.container, "stopped following the container");
        self.termination = Some(Termination::Signaled(
            nix::sys::signal::Signal::SIGKILL as i32,
        ));
    }

    fn finish(mut self) -> Finished {
        if !matches!(self.try_wait(), Ok(Some(_))) {
            self.detach();
        }
        let grace = Instant::now() + OUTPUT_GRACE;
        while !self.output.is_finished() && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.output.abort();
        let snapshot = |b: &Arc<Mutex<Buffer>>| b.lock().map(|b| b.snapshot()).unwrap_or_default();
        Finished {
            path: PathBuf::from("container ".to_owned() + &self.container),
            termination: self.termination.unwrap_or(Termination::Signaled(0)),
            stdout: snapshot(&self.stdout),
            stderr: snapshot(&self.stderr),
            elapsed: self.started.elapsed(),
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.output.abort();
        self.wait.abort();
    }
}
