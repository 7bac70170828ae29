//! The container backend (docs/architecture.md, "Container flow"): create a
//! hardened container with the tool bundle (the run's tool volume mounted
//! read-only, or its tool image, or a copy), start the app under the bundled strace,
//! run helpers through `docker exec`, check for an OOM kill, copy the trace
//! out, read interpreters, remove the container. The order
//! of these is [`run_one`](super::backend::run_one)'s; scenarios run strictly
//! one at a time, each container removed before the next is created.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cancel::CancelToken;
use crate::engine::{
    host_folder_size, make_folder_in_upper, ContainerRoot, CreateOptions, Engine, EngineError,
    ImageConfig, StartedApp, ToolFill, TraceVolume, VolumeMount, WritableLayer,
};
use crate::exec::Termination;
use crate::interp::{self, Interpreter};

use super::agent::{AgentCommand, Settled};
use super::backend::{BackendError, ScenarioBackend, TraceCopy};
use super::bundle::{self, Bundle};
use super::disk_watch::{self, DiskMeter, DiskWatch};
use super::prefetch::{Answers, Prefetch};
use super::results::{ScenarioOutcome, ScenarioReason};
use super::scenarios::{HttpStep, Ready, Scenario};
use super::settings::RunLimits;
use super::steps::{exit_reason, AppOps, ResolvedApp, Stop};

/// Runs scenarios in containers of one image.
pub(crate) struct ContainerBackend<'a> {
    /// The engine.
    pub(crate) engine: &'a Engine,
    /// The tool bundle.
    pub(crate) bundle: &'a Bundle,
    /// The run's tool image (the traced image plus the bundle), or the
    /// traced image when the bundle comes from a volume or a copy.
    pub(crate) image: &'a str,
    /// Where each container gets the bundle from.
    pub(crate) tools: ToolsFrom,
    /// The run label's value.
    pub(crate) run_id: &'a str,
    /// Limits.
    pub(crate) limits: &'a RunLimits,
    /// The image's `VOLUME`s: each becomes a tmpfs of the disk bound's size,
    /// because an anonymous volume's writes are outside the writable layer
    /// that the disk watch measures (docs/architecture.md, "Disk bound").
    pub(crate) volumes: Vec<String>,
    /// Trace volumes made so far (each scenario container gets its own),
    /// or `None` once one could not be made: the traces then go to the
    /// containers' writable layers (docs/architecture.md, "Container flow").
    pub(crate) trace_volumes: Option<u64>,
}

/// Where a scenario container gets the tool bundle from
/// (docs/architecture.md, "Container flow").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToolsFrom {
    /// The run's tool volume, mounted read-only at the bundle's root.
    Volume(String),
    /// The run's tool image, which the container is created from.
    Image,
    /// A copy into each container before it starts.
    Copy,
}

/// A scenario's container and the engine client attached to it.
pub(crate) struct ContainerSession<'a> {
    container: Container<'a>,
    app: StartedApp,
    /// The OOM flag of the disk watch's last measurement (`None` when it
    /// failed): that measurement comes after the app stopped, so the judge
    /// needs no inspect of its own.
    oom_seen: Arc<Mutex<Option<bool>>>,
    /// Interpreter lookups asked while the app runs, where its trace is
    /// written on this machine; then their answers.
    prefetch: Option<Prefetch>,
    answers: Answers,
}

impl<'a> ScenarioBackend for ContainerBackend<'a> {
    type Created = Container<'a>;
    type Session = ContainerSession<'a>;
    type Ops<'s>
        = ContainerOps<'s>
    where
        Self: 's;
    type App = StartedApp;

    fn no_command(&self) -> &'static str {
        "the image has no ENTRYPOINT or CMD and the scenario file gives no command"
    }

    fn create(
        &mut self,
        _scenario: &Scenario,
        argv: &[String],
        _app: &ResolvedApp,
    ) -> Result<Container<'a>, Stop> {
        let trace = self.trace_volume();
        let mut mounts = match &self.tools {
            ToolsFrom::Volume(name) => vec![VolumeMount {
                volume: name.clone(),
                target: bundle::ROOT.to_owned(),
                read_only: true,
            }],
            ToolsFrom::Image | ToolsFrom::Copy => Vec::new(),
        };
        mounts.extend(trace.as_ref().map(|t| VolumeMount {
            volume: t.name.clone(),
            target: bundle::OUT_DIR.to_owned(),
            read_only: false,
        }));
        // From here on, dropping the guard removes the trace volume.
        let trace = TraceGuard {
            engine: self.engine,
            volume: trace,
        };
        let create = CreateOptions {
            image: self.image.to_owned(),
            run_id: self.run_id.to_owned(),
            entrypoint: bundle::LOADER.to_owned(),
            args: bundle::strace_argv(argv, self.bundle.seccomp_bpf),
            pids_limit: self.limits.pids_limit,
            memory: self.limits.memory.clone(),
            cpus: self.limits.cpus.clone(),
            tmpfs: self
                .volumes
                .iter()
                .map(|v| (v.clone(), self.limits.disk_limit_bytes))
                .collect(),
            mounts,
        };
        // From here on, dropping the container removes it, then its trace
        // volume.
        Ok(Container {
            engine: self.engine,
            id: self.engine.create(&create).map_err(engine_stop)?,
            removed: false,
            layer: None,
            trace,
        })
    }

    fn install_tools(&mut self, container: &mut Container<'a>) -> Result<(), Stop> {
        if self.tools == ToolsFrom::Copy {
            self.engine
                .copy_in(self.bundle.dir(), &container.id, bundle::ROOT)
                .map_err(engine_stop)?;
        }
        // The trace's folder is the container's own: its trace volume, or
        // else a folder in its writable layer (bounded by the disk watch
        // either way), whatever holds the tools: made in that layer's
        // folder where this machine holds it (no engine mount), else
        // through the engine.
        let layer = self.engine.writable_layer(&container.id);
        if container.trace.volume.is_some() {
            container.layer = Some(layer);
            return Ok(());
        }
        let out_dir = bundle::OUT_DIR.trim_start_matches('/');
        let made = match &layer {
            WritableLayer::HostDir(upper) => match make_folder_in_upper(upper, out_dir, 0o777) {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot make the trace's folder in the upper layer; asking the engine");
                    false
                }
            },
            WritableLayer::Engine => false,
        };
        container.layer = Some(layer);
        if made {
            return Ok(());
        }
        self.engine
            .make_folder_in(&container.id, bundle::OUT_DIR, 0o777)
            .map_err(engine_stop)
    }

    fn start(
        &mut self,
        container: Container<'a>,
        app: &ResolvedApp,
    ) -> Result<ContainerSession<'a>, Stop> {
        let watch = match &app.ready {
            Ready::LogLine { line, .. } => Some(line.as_str()),
            _ => None,
        };
        let app = self
            .engine
            .start_attached(&container.id, watch)
            .map_err(engine_stop)?;
        Ok(ContainerSession {
            container,
            app,
            oom_seen: Arc::default(),
            prefetch: None,
            answers: Answers::new(),
        })
    }

    /// Where the trace is written on this machine (its trace volume).
    fn prefetch_interpreters(
        &mut self,
        s: &mut ContainerSession<'a>,
        known: BTreeSet<String>,
        limit: usize,
    ) {
        let Some(volume) = &s.container.trace.volume else {
            return;
        };
        if limit == 0 {
            return;
        }
        let (engine, id) = (self.engine.clone(), s.container.id.clone());
        // The running container's root on this machine, looked up at the
        // first program (off the scenario's path); without one, or where a
        // read there fails, the engine is asked.
        let root = std::sync::OnceLock::new();
        s.prefetch = Some(Prefetch::start(
            volume.clone(),
            trace_name(),
            known,
            limit,
            move |path| {
                let root = root.get_or_init(|| engine.container_root(&id));
                if let Some(head) = root.as_ref().and_then(|r| read_on_host(r, path)) {
                    return interp::interpreter_in(&head);
                }
                read_interpreter(&engine, &id, path, Instant::now() + PREFETCH_TIMEOUT)
            },
        ));
    }

    fn watch_disk(
        &self,
        s: &ContainerSession<'a>,
        limit_bytes: u64,
        cancel: &CancelToken,
    ) -> Option<DiskWatch> {
        let meter = EngineMeter {
            engine: self.engine.clone(),
            container: s.container.id.clone(),
            layer: s.container.layer.clone(),
            trace_dir: s
                .container
                .trace
                .volume
                .as_ref()
                .map(|t| t.host_dir.clone()),
            oom_seen: Arc::clone(&s.oom_seen),
            // A bundle copied into the container is codegenie's, not the app's.
            baseline: if self.tools == ToolsFrom::Copy {
                self.bundle.size_bytes()
            } else {
                0
            },
        };
        Some(DiskWatch::start(
            meter,
            limit_bytes,
            disk_watch::POLL,
            cancel.clone(),
        ))
    }

    /// `start -a` returns before the container runs, and `exec` needs it
    /// running; a one-shot command may also have ended already. The API's
    /// start returns after the container started.
    fn ready(&self, s: &mut ContainerSession<'a>, deadline: Instant) -> Result<(), Stop> {
        if let StartedApp::Stream(_) = s.app {
            // The API's start answers once the container runs (or ran):
            // nothing to poll.
            return match s.app.try_wait().map_err(engine_stop)? {
                None | Some(Termination::Exited(_)) => Ok(()),
                Some(other) => Err(Stop::Reason(exit_reason(other))),
            };
        }
        loop {
            if self
                .engine
                .is_running(&s.container.id)
                .map_err(engine_stop)?
            {
                return Ok(());
            }
            if let Ok(Some(t)) = s.app.try_wait() {
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

    fn parts<'s>(
        &'s self,
        s: &'s mut ContainerSession<'a>,
    ) -> (ContainerOps<'s>, &'s mut StartedApp) {
        let ops = ContainerOps {
            engine: self.engine,
            container: &s.container.id,
        };
        (ops, &mut s.app)
    }

    /// An OOM kill in the container explains a failure better than the exit
    /// code it caused; in a completed scenario it is worth a warning.
    fn judge(
        &mut self,
        s: &mut ContainerSession<'a>,
        scenario: &str,
        outcome: ScenarioOutcome,
        warnings: &mut Vec<String>,
    ) -> ScenarioOutcome {
        let seen = *s.oom_seen.lock().unwrap_or_else(|p| p.into_inner());
        let oom = match seen {
            Some(oom) => Ok(oom),
            None => self.engine.oom_killed(&s.container.id),
        };
        match oom {
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

    fn collect_trace(
        &mut self,
        s: &mut ContainerSession<'a>,
        dest: &Path,
        limit: u64,
        deadline: Instant,
    ) -> Result<TraceCopy, BackendError> {
        // The app has stopped: what was asked while it ran is answered.
        if let Some(p) = s.prefetch.take() {
            s.answers = p.finish();
        }
        // From the trace volume's folder on this machine: no FUSE between
        // strace and it, and the container has stopped, so every write is
        // there.
        if let Some(volume) = &s.container.trace.volume {
            let copy = volume.copy_capped(trace_name(), dest, limit)?;
            return Ok(TraceCopy {
                size: copy.size,
                written: copy.written,
            });
        }
        // Else through the engine, not from the upper layer on this
        // machine: on fuse-overlayfs the app's last writes can still be in
        // the FUSE mount's cache when the container is reported stopped
        // (docs/architecture.md, "Container flow").
        let copy = self.engine.copy_out_capped(
            &s.container.id,
            bundle::TRACE_OUT,
            dest,
            limit,
            time_until(deadline),
        )?;
        Ok(TraceCopy {
            size: copy.size,
            written: copy.written,
        })
    }

    fn interpreter_of(
        &self,
        s: &ContainerSession<'a>,
        path: &str,
        deadline: Instant,
    ) -> Option<Interpreter> {
        if let Some(answer) = s.answers.get(path) {
            return answer.clone();
        }
        read_interpreter(self.engine, &s.container.id, path, deadline)
    }

    fn remove(&mut self, s: ContainerSession<'a>) -> Result<(), BackendError> {
        Ok(s.container.remove()?)
    }
}

/// Longest a single interpreter lookup may take: a healthy engine answers
/// in well under a second, and a run has up to `interpreter_lookups` of them.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a lookup asked while the app runs may take: the scenario's
/// end waits for one in flight.
const PREFETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// The trace's name in its folder.
fn trace_name() -> &'static str {
    bundle::TRACE_OUT
        .strip_prefix(bundle::OUT_DIR)
        .unwrap_or(bundle::TRACE_OUT)
        .trim_start_matches('/')
}

/// What is left until `deadline` (at least a moment, so that a command
/// started at the deadline fails by its timeout rather than not at all).
fn time_until(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100))
}

/// The interpreter of `path` in the container (`None` when it has none or
/// cannot be read): only the file's first `interp::HEAD_BYTES` are copied,
/// however large it is.
fn read_interpreter(
    engine: &Engine,
    container: &str,
    path: &str,
    deadline: Instant,
) -> Option<Interpreter> {
    let timeout = time_until(deadline).min(LOOKUP_TIMEOUT);
    match engine.read_head(container, path, interp::HEAD_BYTES as u64, timeout) {
        Ok(head) => interp::interpreter_in(&head),
        Err(e) => {
            tracing::debug!(path, error = %crate::errors::error_chain(&e), "cannot read executed file from the container");
            None
        }
    }
}

/// The first `interp::HEAD_BYTES` of `path` read in the running
/// container's root on this machine; `None` asks the engine instead (the
/// container stopped, or the file is not a regular one there).
fn read_on_host(root: &ContainerRoot, path: &str) -> Option<Vec<u8>> {
    root.read_head(path, interp::HEAD_BYTES)
        .map_err(|e| tracing::debug!(path, error = %e, "cannot read executed file in the container's root here: asking the engine"))
        .ok()
}

/// The engine's measure of a container's writable layer, less the tool
/// bundle when it was copied into that layer (from a tool image it is below
/// the layer): the app's writes are bounded, not the tools that watch it.
struct EngineMeter {
    engine: Engine,
    container: String,
    /// The trace volume's folder on this machine, if the container has one:
    /// the trace is written there instead of in the layer, and counted.
    trace_dir: Option<std::path::PathBuf>,
    /// How the layer is measured, learnt on the first measure (in the
    /// watch's thread, off the scenario's path).
    layer: Option<WritableLayer>,
    oom_seen: Arc<Mutex<Option<bool>>>,
    baseline: u64,
}

impl DiskMeter for EngineMeter {
    fn written(&mut self) -> Result<u64, BackendError> {
        let layer = self
            .layer
            .get_or_insert_with(|| self.engine.writable_layer(&self.container));
        let trace = self.trace_dir.as_deref().map_or(0, host_folder_size);
        if let WritableLayer::HostDir(_) = layer {
            // Walked on this machine: the OOM question goes to the engine
            // after the stop (`judge`), in an inspect without `--size`.
            let total = self.engine.written_bytes(layer, &self.container)?;
            return Ok((total + trace).saturating_sub(self.baseline));
        }
        let measured = self.engine.size_and_oom(&self.container);
        *self.oom_seen.lock().unwrap_or_else(|p| p.into_inner()) =
            measured.as_ref().ok().map(|(_, oom)| *oom);
        Ok((measured?.0 + trace).saturating_sub(self.baseline))
    }
    fn kill(&mut self) -> Result<(), BackendError> {
        Ok(self.engine.kill(&self.container)?)
    }
}

/// The run's tool image (the traced image plus the tool bundle, see
/// `engine::tools`): every scenario container is created from it, so the
/// bundle is copied once per run. Removed on drop if not removed explicitly,
/// after the run's containers.
pub(crate) struct ToolImage<'a> {
    engine: &'a Engine,
    /// The image id.
    pub(crate) id: String,
    /// The traced image it was made from.
    base: String,
    removed: bool,
}

impl<'a> ToolImage<'a> {
    /// Derive the tool image of `image` (whose config is `config`) for `run_id`.
    pub(crate) fn derive(
        engine: &'a Engine,
        image: &str,
        config: &ImageConfig,
        run_id: &str,
        bundle: &Bundle,
    ) -> Result<ToolImage<'a>, EngineError> {
        let volumes: Vec<String> = config
            .volumes
            .iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect();
        let id = engine.derive_tool_image(
            image,
            !config.argv().is_empty(),
            &volumes,
            run_id,
            bundle.dir(),
            bundle::ROOT,
        )?;
        Ok(ToolImage {
            engine,
            id,
            base: image.to_owned(),
            removed: false,
        })
    }

    /// Remove the image (every container made from it must be gone).
    pub(crate) fn remove(mut self) -> Result<(), EngineError> {
        self.removed = true;
        self.engine.remove_tool_image(&self.id, Some(&self.base))
    }
}

impl Drop for ToolImage<'_> {
    fn drop(&mut self) {
        if !self.removed {
            if let Err(e) = self.engine.remove_tool_image(&self.id, Some(&self.base)) {
                tracing::warn!(image = %self.id, error = %crate::errors::error_chain(&e), "cannot remove the run's tool image");
            }
        }
    }
}

/// The run's tool volume (see `engine::volumes`): mounted read-only in
/// every scenario container. Removed on drop if not removed explicitly,
/// after the run's containers.
pub(crate) struct ToolVolume<'a> {
    engine: &'a Engine,
    /// The volume's name.
    pub(crate) name: String,
    removed: bool,
}

impl<'a> ToolVolume<'a> {
    /// Make the tool volume of `image` (whose config is `config`) for
    /// `run_id`, holding `bundle`.
    pub(crate) fn make(
        engine: &'a Engine,
        image: &str,
        config: &ImageConfig,
        run_id: &str,
        bundle: &Bundle,
    ) -> Result<ToolVolume<'a>, EngineError> {
        let volumes: Vec<String> = config
            .volumes
            .iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect();
        let name = engine.make_tool_volume(
            image,
            &volumes,
            run_id,
            bundle.dir(),
            bundle::ROOT,
            ToolFill::Nearest,
        )?;
        Ok(ToolVolume {
            engine,
            name,
            removed: false,
        })
    }

    /// Remove the volume (every container using it must be gone).
    pub(crate) fn remove(mut self) -> Result<(), EngineError> {
        self.removed = true;
        self.engine.remove_volume(&self.name)
    }
}

impl Drop for ToolVolume<'_> {
    fn drop(&mut self) {
        if !self.removed {
            if let Err(e) = self.engine.remove_volume(&self.name) {
                tracing::warn!(volume = %self.name, error = %crate::errors::error_chain(&e), "cannot remove the run's tool volume");
            }
        }
    }
}

/// Every scenario of a run whose tool image could not be made fails for
/// that reason (an engine that stopped answering says so).
pub(crate) fn tool_image_failure(e: EngineError) -> ScenarioOutcome {
    match engine_stop(e) {
        Stop::Reason(r) => ScenarioOutcome::Failed(r),
        Stop::Timeout => ScenarioOutcome::Failed(ScenarioReason::Other {
            detail: "the tools were not placed in time (tool volume or image)".to_owned(),
        }),
    }
}

/// A created container; removed on drop if not removed explicitly, and
/// then its trace volume.
pub(crate) struct Container<'a> {
    engine: &'a Engine,
    id: String,
    removed: bool,
    /// How its writable layer is reached, learnt before it starts.
    layer: Option<WritableLayer>,
    /// Its trace volume, if it has one: a field, so it is dropped after
    /// `drop` has removed the container (a volume in use cannot go).
    trace: TraceGuard<'a>,
}

impl Container<'_> {
    fn remove(mut self) -> Result<(), EngineError> {
        self.removed = true;
        self.engine.remove(&self.id)?;
        self.trace.remove()
    }
}

/// A scenario's trace volume, removed on drop if not removed explicitly
/// (after its container: a volume in use cannot be removed).
struct TraceGuard<'a> {
    engine: &'a Engine,
    volume: Option<TraceVolume>,
}

impl TraceGuard<'_> {
    fn remove(&mut self) -> Result<(), EngineError> {
        match self.volume.take() {
            Some(v) => self.engine.remove_volume(&v.name),
            None => Ok(()),
        }
    }
}

impl Drop for TraceGuard<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::warn!(error = %crate::errors::error_chain(&e), "cannot remove a scenario's trace volume");
        }
    }
}

impl ContainerBackend<'_> {
    /// A trace volume for the next container, unless this run cannot have
    /// them (docs/architecture.md, "Container flow"): the first that cannot
    /// be made turns them off for the run.
    fn trace_volume(&mut self) -> Option<TraceVolume> {
        let n = self.trace_volumes?;
        match self.engine.make_trace_volume(self.run_id, n) {
            Ok(Some(v)) => {
                self.trace_volumes = Some(n + 1);
                Some(v)
            }
            Ok(None) => {
                self.trace_volumes = None;
                None
            }
            Err(e) => {
                tracing::debug!(error = %crate::errors::error_chain(&e), "no trace volume; the trace goes to the writable layer");
                self.trace_volumes = None;
                None
            }
        }
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        if !self.removed {
            if let Err(e) = self.engine.remove(&self.id) {
                tracing::warn!(container = %self.id, error = %crate::errors::error_chain(&e), "cannot remove scenario container");
            }
        }
    }
}

/// The container backend's [`AppOps`]: helpers through `docker exec`.
pub(crate) struct ContainerOps<'a> {
    engine: &'a Engine,
    container: &'a str,
}

impl ContainerOps<'_> {
    /// Run `codegenie agent ...` in the container; its stdout on success.
    fn helper(&self, command: &AgentCommand, timeout: Duration) -> Result<String, Stop> {
        let out = self
            .engine
            .exec_in(
                self.container,
                &bundle::helper_argv(&command.to_args()),
                timeout,
            )
            .map_err(engine_stop)?;
        match out.termination {
            Termination::Exited(0) => Ok(out.stdout.text()),
            Termination::TimedOut => Err(Stop::Timeout),
            other => Err(Stop::other(format!(
                "helper `{}` ended with {other:?}: {}",
                command.name(),
                out.stderr.tail_text(512).trim()
            ))),
        }
    }
}

impl AppOps for ContainerOps<'_> {
    fn settle(&mut self, quiet: Duration, max: Duration) -> Result<Settled, Stop> {
        let command = AgentCommand::Settle {
            path: bundle::TRACE_OUT.into(),
            quiet_ms: quiet.as_millis() as u64,
            max_ms: max.as_millis() as u64,
        };
        let out = self.helper(&command, max + Duration::from_secs(10))?;
        out.parse()
            .map_err(|e| Stop::other(format!("helper `settle` answered {e}")))
    }

    fn wait_listen(&mut self, port: u16, timeout: Duration) -> Result<(), Stop> {
        let command = AgentCommand::WaitListen {
            port,
            timeout_ms: timeout.as_millis() as u64,
        };
        self.helper(&command, timeout + Duration::from_secs(10))
            .map(|_| ())
    }

    fn http(&mut self, port: u16, h: &HttpStep, timeout: Duration) -> Result<Vec<u16>, Stop> {
        let out = self.helper(&AgentCommand::http(port, h), timeout)?;
        Ok(out.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    fn signal(&mut self, signal: &str) -> Result<(), Stop> {
        let command = AgentCommand::Signal {
            signal: signal.to_owned(),
        };
        self.helper(&command, Duration::from_secs(15)).map(|_| ())
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

    fn root_pid(&mut self) -> Result<i32, Stop> {
        let out = self.helper(&AgentCommand::RootPid, Duration::from_secs(15))?;
        out.trim()
            .parse()
            .map_err(|_| Stop::other(format!("helper `root-pid` printed {out:?}")))
    }

    fn wait_gone(&mut self, pid: i32, timeout: Duration) -> Result<bool, Stop> {
        let command = AgentCommand::WaitGone {
            pid,
            timeout_ms: timeout.as_millis() as u64,
        };
        let out = self.helper(&command, timeout + Duration::from_secs(10))?;
        Ok(out.trim() == "exited")
    }

    fn kill_survivors(&mut self) -> Result<Vec<String>, Stop> {
        let out = self.helper(&AgentCommand::KillTraced, Duration::from_secs(15))?;
        Ok(out.lines().map(str::to_owned).collect())
    }

    fn force_stop(&mut self) {
        if let Err(e) = self.engine.kill(self.container) {
            tracing::debug!(error = %crate::errors::error_chain(&e), "cannot kill the container");
        }
    }
}

fn engine_stop(e: EngineError) -> Stop {
    Stop::Reason(match e {
        EngineError::Unavailable { detail } => ScenarioReason::EngineUnavailable { detail },
        // With its causes: an API call's error says what the engine answered
        // only in its source.
        other => ScenarioReason::Other {
            detail: crate::errors::error_chain(&other),
        },
    })
}
