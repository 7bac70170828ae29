//! The container lifecycle: create (hardened), copy in and out, start,
//! exec, inspect, kill, remove.

use std::path::Path;
use std::time::Duration;

use crate::exec::{self, Finished};
use crate::tar_head::TarHead;

use super::api::{Removal, REMOVAL_IN_PROGRESS};
use super::attached::StartedApp;
use super::client::printed_bool;
use super::options::{CappedCopy, CreateOptions};
use super::{orphans, Engine, EngineError, COMMAND_TIMEOUT, LOG_TAIL_BYTES, RUN_LABEL};

impl Engine {
    /// Create a hardened container and return its id.
    pub fn create(&self, o: &CreateOptions) -> Result<String, EngineError> {
        if let Some(api) = self.api() {
            let owner =
                orphans::current().map(|o| (orphans::OWNER_LABEL.to_owned(), o.label_value()));
            return api.create(o, owner);
        }
        let owner = orphans::owner_label();
        let _creating = super::creations::enter("container")?;
        let out = self.ok(self
            .spec()
            .args(["create", "--network=none", "--cap-drop=ALL"])
            .arg("--security-opt=no-new-privileges")
            .arg(format!("--pids-limit={}", o.pids_limit))
            .arg(format!("--memory={}", o.memory))
            .arg(format!("--cpus={}", o.cpus))
            .args(
                o.tmpfs
                    .iter()
                    .flat_map(|(path, size)| ["--tmpfs".to_owned(), format!("{path}:size={size}")]),
            )
            .args(
                o.mounts
                    .iter()
                    .flat_map(|m| ["--mount".to_owned(), m.cli_value()]),
            )
            // Output is read through the attach stream (bounded capture); a
            // log driver would keep a flood on the engine's disk.
            .arg("--log-driver=none")
            .arg("--label")
            .arg(format!("{RUN_LABEL}={}", o.run_id))
            .args(owner.iter().flat_map(|l| ["--label", l.as_str()]))
            .arg("--entrypoint")
            .arg(&o.entrypoint)
            .arg(&o.image)
            .args(&o.args))?;
        let id = out.stdout.text().trim().to_owned();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(EngineError::Output {
                command: "create".into(),
                detail: format!("`{id}` is not a container id"),
            });
        }
        Ok(id)
    }

    /// Copy the contents of the host folder `src` into `dest` in the container.
    pub fn copy_in(&self, src: &Path, container: &str, dest: &str) -> Result<(), EngineError> {
        let mut from = src.as_os_str().to_owned();
        from.push("/.");
        self.ok(self
            .spec()
            .arg("cp")
            .arg(from)
            .arg(format!("{container}:{dest}")))?;
        Ok(())
    }

    /// Copy the file `path` (symlinks followed) out of the container to `dest` on the host.
    pub fn copy_out(&self, container: &str, path: &str, dest: &Path) -> Result<(), EngineError> {
        self.ok(self
            .spec()
            .args(["cp", "-L"])
            .arg(format!("{container}:{path}"))
            .arg(dest))?;
        Ok(())
    }

    /// The first `limit` bytes of the file `path` (symlinks followed) in the
    /// container, however large it is: the copy is a tar stream read only as
    /// far as needed (docs/architecture.md, "Capped copies").
    pub fn read_head(
        &self,
        container: &str,
        path: &str,
        limit: u64,
        timeout: Duration,
    ) -> Result<Vec<u8>, EngineError> {
        Ok(self
            .copy_stream(container, path, Vec::new(), limit, timeout)?
            .kept)
    }

    /// Copy at most `limit` bytes of the file `path` (symlinks followed) out
    /// of the container to `dest`; the result says how long the file was.
    pub fn copy_out_capped(
        &self,
        container: &str,
        path: &str,
        dest: &Path,
        limit: u64,
        timeout: Duration,
    ) -> Result<CappedCopy<()>, EngineError> {
        let file = std::fs::File::create(dest).map_err(|e| EngineError::Output {
            command: "cp".into(),
            detail: format!("cannot create {}: {e}", dest.display()),
        })?;
        let out = self.copy_stream(
            container,
            path,
            std::io::BufWriter::new(file),
            limit,
            timeout,
        )?;
        Ok(CappedCopy {
            kept: (),
            size: out.size,
            written: out.written,
        })
    }

    fn copy_stream<W: std::io::Write + Send + 'static>(
        &self,
        container: &str,
        path: &str,
        out: W,
        limit: u64,
        timeout: Duration,
    ) -> Result<CappedCopy<W>, EngineError> {
        use std::sync::{Arc, Mutex};
        if let Some(api) = self.api() {
            return api.copy_stream(container, path, out, limit, timeout);
        }
        let spec = self
            .spec()
            .args(["cp", "-L"])
            .arg(format!("{container}:{path}"))
            .arg("-")
            .timeout(timeout);
        let shown = spec.display();
        let reader = Arc::new(Mutex::new(Some(TarHead::new(out, limit))));
        let feed = Arc::clone(&reader);
        let finished = exec::run_into(&spec, move |data| {
            let mut r = feed.lock().unwrap_or_else(|p| p.into_inner());
            r.as_mut().is_some_and(|r| r.push(data))
        })
        .map_err(|e| EngineError::Command {
            command: shown.clone(),
            detail: e.to_string(),
        })?;
        let tar = reader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .expect("the reader thread has ended and left the reader");
        match tar.finish() {
            Ok(head) => Ok(CappedCopy {
                size: head.size,
                written: head.written,
                kept: head.out,
            }),
            // Nothing came: the engine said why (no such file, container gone).
            Err(_) if !finished.success() => Err(EngineError::Command {
                command: shown,
                detail: format!(
                    "{:?}: {}",
                    finished.termination,
                    finished.stderr.tail_text(LOG_TAIL_BYTES).trim()
                ),
            }),
            Err(e) => Err(EngineError::Output {
                command: shown,
                detail: crate::errors::error_chain(&e),
            }),
        }
    }

    /// Start a created container attached; the handle captures its output
    /// (256 KiB per stream) and flags a line containing `watch` when given.
    /// Through the API client the output comes from an attach stream opened
    /// before the start, with no process per container.
    pub fn start_attached(
        &self,
        container: &str,
        watch: Option<&str>,
    ) -> Result<StartedApp, EngineError> {
        const CAPTURE: usize = 256 * 1024;
        if let Some(api) = self.api() {
            return api
                .start_attached(container, watch, CAPTURE, COMMAND_TIMEOUT)
                .map(StartedApp::Stream);
        }
        let mut spec = self
            .spec()
            .args(["start", "-a", container])
            .capture_limit(CAPTURE);
        if let Some(w) = watch {
            spec = spec.watch_line(w.as_bytes().to_vec());
        }
        let shown = spec.display();
        exec::spawn(&spec)
            .map(StartedApp::Client)
            .map_err(|e| EngineError::Command {
                command: shown,
                detail: e.to_string(),
            })
    }

    /// Run `argv` in a running container.
    pub fn exec_in(
        &self,
        container: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<Finished, EngineError> {
        if let Some(api) = self.api() {
            return api.exec(container, argv, timeout, exec::DEFAULT_CAPTURE_LIMIT);
        }
        self.run(
            self.spec()
                .args(["exec", container])
                .args(argv)
                .timeout(timeout),
        )
    }

    /// Whether the container is running.
    pub fn is_running(&self, container: &str) -> Result<bool, EngineError> {
        if let Some(api) = self.api() {
            return api.is_running(container);
        }
        let out = self.ok(self.spec().args([
            "container",
            "inspect",
            "--format",
            "{{.State.Running}}",
            container,
        ]))?;
        let text = out.stdout.text();
        printed_bool(text.trim()).ok_or_else(|| EngineError::Output {
            command: "container inspect .State.Running".into(),
            detail: format!("`{}` is not a boolean", text.trim()),
        })
    }

    /// The size of the container's writable layer in bytes (what it wrote
    /// into its own filesystem; volumes and tmpfs mounts are not in it).
    pub fn writable_size(&self, container: &str) -> Result<u64, EngineError> {
        if let Some(api) = self.api() {
            return api.size_and_oom(container).map(|(size, _)| size);
        }
        let out = self.ok(self.spec().timeout(Duration::from_secs(30)).args([
            "container",
            "inspect",
            "--size",
            "--format",
            "{{.SizeRw}}",
            container,
        ]))?;
        let text = out.stdout.text();
        text.trim().parse().map_err(|_| EngineError::Output {
            command: "container inspect --size".into(),
            detail: format!("`{}` is not a size", text.trim()),
        })
    }

    /// The size of the container's writable layer and whether the kernel's
    /// OOM killer ended a process in it, in one inspect.
    pub fn size_and_oom(&self, container: &str) -> Result<(u64, bool), EngineError> {
        if let Some(api) = self.api() {
            return api.size_and_oom(container);
        }
        let out = self.ok(self.spec().timeout(Duration::from_secs(30)).args([
            "container",
            "inspect",
            "--size",
            "--format",
            "{{.SizeRw}} {{.State.OOMKilled}}",
            container,
        ]))?;
        let text = out.stdout.text();
        let bad = || EngineError::Output {
            command: "container inspect --size".into(),
            detail: format!("`{}` is not a size and a boolean", text.trim()),
        };
        let (size, oom) = text.trim().split_once(' ').ok_or_else(bad)?;
        let size = size.parse().map_err(|_| bad())?;
        let oom = printed_bool(oom).ok_or_else(bad)?;
        Ok((size, oom))
    }

    /// Whether the kernel's OOM killer ended a process in the container.
    pub fn oom_killed(&self, container: &str) -> Result<bool, EngineError> {
        if let Some(api) = self.api() {
            return api.oom_killed(container);
        }
        let out = self.ok(self.spec().args([
            "container",
            "inspect",
            "--format",
            "{{.State.OOMKilled}}",
            container,
        ]))?;
        let text = out.stdout.text();
        printed_bool(text.trim()).ok_or_else(|| EngineError::Output {
            command: "container inspect .State.OOMKilled".into(),
            detail: format!("`{}` is not a boolean", text.trim()),
        })
    }

    /// Kill the container (SIGKILL to its PID 1).
    pub fn kill(&self, container: &str) -> Result<(), EngineError> {
        if let Some(api) = self.api() {
            return api.kill(container);
        }
        self.ok(self.spec().args(["kill", container]))?;
        Ok(())
    }

    /// Remove the container and its anonymous volumes, running or not. A
    /// container already gone counts as removed, and one another call is
    /// removing (a scenario's own cleanup beside an interrupted run's sweep)
    /// is waited for, at most [`COMMAND_TIMEOUT`]: either way the caller
    /// wants it gone.
    pub fn remove(&self, container: &str) -> Result<(), EngineError> {
        match self.remove_once(container)? {
            Removal::Removed | Removal::Gone => Ok(()),
            Removal::InProgress => self.wait_removed(container, COMMAND_TIMEOUT),
        }
    }

    fn remove_once(&self, container: &str) -> Result<Removal, EngineError> {
        if let Some(api) = self.api() {
            return api.remove(container);
        }
        match self.ok(self.spec().args(["rm", "-f", "-v", container])) {
            Ok(_) => Ok(Removal::Removed),
            Err(e) if cli_said(&e, NO_SUCH_CONTAINER) => Ok(Removal::Gone),
            Err(e) if cli_said(&e, REMOVAL_IN_PROGRESS) => Ok(Removal::InProgress),
            Err(e) => Err(e),
        }
    }

    /// Whether the container exists.
    fn container_exists(&self, container: &str) -> Result<bool, EngineError> {
        if let Some(api) = self.api() {
            return api.container_exists(container);
        }
        match self.ok(self
            .spec()
            .args(["container", "inspect", "--format", "{{.Id}}", container]))
        {
            Ok(_) => Ok(true),
            Err(e) if cli_said(&e, NO_SUCH_CONTAINER) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn wait_removed(&self, container: &str, limit: Duration) -> Result<(), EngineError> {
        let until = std::time::Instant::now() + limit;
        while self.container_exists(container)? {
            if std::time::Instant::now() >= until {
                return Err(EngineError::Output {
                    command: "rm".into(),
                    detail: format!(
                        "container {container} was being removed by another call, and still exists after {} s",
                        limit.as_secs()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

/// The engine CLI's words for a container that does not exist (Docker
/// capitalises them, Podman does not).
const NO_SUCH_CONTAINER: &str = "no such container";

/// Whether a failed engine command's output holds `words`, in any case.
fn cli_said(e: &EngineError, words: &str) -> bool {
    matches!(e, EngineError::Command { detail, .. } if detail.to_ascii_lowercase().contains(words))
}
