//! The container engine (`docker`, or `podman`), driven through the exec
//! layer: image build and inspection, and the container lifecycle.

mod build_memo;
pub mod context;
mod endpoint;
mod filesystem;
mod images;
pub(crate) mod orphans;
mod runs;
mod storage;
mod tools;
mod writable;

pub use endpoint::{ContextName, DockerHost, EndpointError, EngineEndpoint};
pub use filesystem::TRANSFER_TIMEOUT;
pub use images::{ImagePruneReport, RepositoryImage, KEEP_IMAGES, REPOSITORY_LABEL, TRACE_IMAGES};
pub use tools::TOOLS_REPOSITORY;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

use crate::exec::{self, ExecSpec, Finished, Program, Running};
use crate::probe::{ImageDigestResolver, RepoSnapshot, ResolverError};
use crate::tar_head::TarHead;

pub use context::BuildContextError;
pub use writable::WritableLayer;

/// The label put on everything a run creates: `codegenie.run=<run id>`.
pub const RUN_LABEL: &str = "codegenie.run";

/// How long an image build may take.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a short engine command (create, cp, rm, inspect) may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Bytes of build log kept for `ImageBuildFailed.log_tail`.
pub const LOG_TAIL_BYTES: usize = 4096;

/// Which engine CLI to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineKind {
    /// `docker`
    #[default]
    Docker,
    /// `podman`
    Podman,
}

impl EngineKind {
    /// Parse a setting value (`docker` or `podman`).
    pub fn parse(s: &str) -> Option<EngineKind> {
        match s {
            "docker" => Some(EngineKind::Docker),
            "podman" => Some(EngineKind::Podman),
            _ => None,
        }
    }
}

/// The network `RUN` steps of an image build get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BuildNetwork {
    /// The engine's default (bridge): `RUN npm ci` can fetch packages, and
    /// the repository's build steps can reach anything this machine can.
    #[default]
    Default,
    /// No network (`--network none`): build steps cannot reach anything.
    None,
}

/// How an image is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// Past this the build client is killed (the engine cancels the build).
    pub timeout: Duration,
    /// The network of `RUN` steps.
    pub network: BuildNetwork,
    /// Trace images of the repository kept after a build (the built one
    /// included; at least 1): older ones codegenie tagged are removed
    /// (docs/architecture.md, "Image hygiene").
    pub keep_images: usize,
    /// Whether a resolver may answer from remembered builds instead of
    /// building (docs/architecture.md, "Remembered builds"); off with
    /// `--no-cache`, which neither reads nor writes any cache.
    pub remember: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            timeout: BUILD_TIMEOUT,
            network: BuildNetwork::Default,
            keep_images: KEEP_IMAGES,
            remember: true,
        }
    }
}

/// What went wrong with the engine.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The engine CLI is missing or the engine does not answer.
    #[error("container engine unavailable: {detail}")]
    Unavailable {
        /// What the CLI (or its absence) said.
        detail: String,
    },
    /// `build` ran past its time limit and was stopped.
    #[error("image build did not finish within {after_ms} ms")]
    BuildTimedOut {
        /// The limit that ran out.
        after_ms: u64,
    },
    /// `build` failed.
    #[error("image build failed (exit code {exit_code:?}): {log_tail}")]
    BuildFailed {
        /// The build's exit code, if it exited.
        exit_code: Option<i32>,
        /// The end of the build output.
        log_tail: String,
    },
    /// The build context could not be assembled (a bad `.dockerignore`
    /// line, an unreadable file).
    #[error("cannot assemble the build context")]
    Context(#[source] Arc<BuildContextError>),
    /// An engine command failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and stderr.
        detail: String,
    },
    /// The engine said something that could not be understood.
    #[error("unexpected output from `{command}`: {detail}")]
    Output {
        /// The command line.
        command: String,
        /// Why it could not be read.
        detail: String,
    },
    /// An action that reads this machine's folders was asked of an engine
    /// that may run elsewhere.
    #[error("{action} needs the engine on this machine, but {detail}")]
    NotLocal {
        /// What was asked.
        action: &'static str,
        /// Why the engine may be elsewhere.
        detail: String,
    },
    /// The build context of a tool image could not be written.
    #[error("cannot write the tool image's build context {path}")]
    ToolContext {
        /// The context file (or the folder it goes in).
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
}

/// An image's config (`docker image inspect` → `.Config`): what the
/// scenarios start, and what a new image cut from its files must carry over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ImageConfig {
    /// `ENTRYPOINT`.
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`.
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    /// `EXPOSE`d ports (`"8080/tcp": {}`).
    #[serde(rename = "ExposedPorts", default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// `ENV`, as `KEY=value`.
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    /// `WORKDIR`.
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: String,
    /// `USER`.
    #[serde(rename = "User", default)]
    pub user: String,
    /// `VOLUME`s (`"/data": {}`).
    #[serde(rename = "Volumes", default)]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    /// `LABEL`s.
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
}

impl ImageConfig {
    /// ENTRYPOINT followed by CMD.
    pub fn argv(&self) -> Vec<String> {
        let mut v = self.entrypoint.clone().unwrap_or_default();
        v.extend(self.cmd.clone().unwrap_or_default());
        v
    }

    /// The lowest EXPOSEd TCP port.
    pub fn first_tcp_port(&self) -> Option<u16> {
        self.exposed_ports
            .as_ref()?
            .keys()
            .filter_map(|k| {
                let (port, proto) = k.split_once('/').unwrap_or((k.as_str(), "tcp"));
                (proto == "tcp").then(|| port.parse::<u16>().ok()).flatten()
            })
            .min()
    }
}

/// How a scenario container is created (the hardening of docs/architecture.md, "Container flow", is fixed).
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The image (digest).
    pub image: String,
    /// Value of the run label.
    pub run_id: String,
    /// The entrypoint override (the bundled loader).
    pub entrypoint: String,
    /// The arguments after the entrypoint.
    pub args: Vec<String>,
    /// `--pids-limit`.
    pub pids_limit: u32,
    /// `--memory`.
    pub memory: String,
    /// `--cpus`.
    pub cpus: String,
    /// Paths mounted as tmpfs of a size in bytes (`--tmpfs PATH:size=N`).
    pub tmpfs: Vec<(String, u64)>,
}

/// What a capped copy out of a container kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CappedCopy<T> {
    /// What was kept (nothing more for a copy to a file).
    pub kept: T,
    /// The file's full size in the container.
    pub size: u64,
    /// The bytes kept.
    pub written: u64,
}

impl<T> CappedCopy<T> {
    /// Whether the file was longer than the cap.
    pub fn truncated(&self) -> bool {
        self.written < self.size
    }
}

/// A container engine CLI.
#[derive(Debug, Clone)]
pub struct Engine {
    program: Program,
    endpoint: EngineEndpoint,
}

impl Engine {
    /// The CLI of `kind`, talking to the engine the environment names.
    pub fn new(kind: EngineKind) -> Self {
        Engine::at(kind, EngineEndpoint::Ambient)
    }

    /// The CLI of `kind`, talking to the engine at `endpoint` (Docker CLI
    /// variables: podman reads neither `DOCKER_HOST` nor contexts, so give
    /// it [`EngineEndpoint::Ambient`]).
    pub fn at(kind: EngineKind, endpoint: EngineEndpoint) -> Self {
        Engine {
            program: match kind {
                EngineKind::Docker => Program::Docker,
                EngineKind::Podman => Program::Podman,
            },
            endpoint,
        }
    }

    /// The engine this CLI talks to.
    pub fn endpoint(&self) -> &EngineEndpoint {
        &self.endpoint
    }

    fn spec(&self) -> ExecSpec {
        self.endpoint
            .apply(ExecSpec::new(self.program.clone()).timeout(COMMAND_TIMEOUT))
    }

    fn run(&self, spec: ExecSpec) -> Result<Finished, EngineError> {
        let shown = spec.display();
        exec::run(&spec).map_err(|e| match e {
            exec::ExecError::NotFound { .. } => EngineError::Unavailable {
                detail: e.to_string(),
            },
            other => EngineError::Command {
                command: shown,
                detail: other.to_string(),
            },
        })
    }

    /// Run and require success.
    fn ok(&self, spec: ExecSpec) -> Result<Finished, EngineError> {
        let shown = spec.display();
        let out = self.run(spec)?;
        if out.success() {
            Ok(out)
        } else {
            Err(EngineError::Command {
                command: shown,
                detail: format!(
                    "{:?}: {}",
                    out.termination,
                    out.stderr.tail_text(LOG_TAIL_BYTES).trim()
                ),
            })
        }
    }

    /// Check that the engine answers.
    pub fn ping(&self) -> Result<String, EngineError> {
        let out = self.run(
            self.spec()
                .args(["version", "--format", "{{.Server.Version}}"])
                .timeout(Duration::from_secs(20)),
        )?;
        if !out.success() {
            return Err(EngineError::Unavailable {
                detail: format!(
                    "{:?}: {}",
                    out.termination,
                    out.stderr.tail_text(LOG_TAIL_BYTES).trim()
                ),
            });
        }
        Ok(out.stdout.text().trim().to_owned())
    }

    /// Build the image of the repository at `repo_root` (its `Dockerfile`)
    /// and return its digest (`sha256:...`); the image is labelled with the
    /// repository ([`REPOSITORY_LABEL`]) and tagged
    /// `codegenie-trace:<short digest>`, and older trace images of the
    /// repository beyond [`BuildOptions::keep_images`] are removed.
    pub fn build(&self, repo_root: &Path) -> Result<String, EngineError> {
        self.build_with(repo_root, &BuildOptions::default())
    }

    /// [`Engine::build`] with a time limit: past it the build client is
    /// killed (the engine then cancels the build) and
    /// [`EngineError::BuildTimedOut`] returned.
    pub fn build_within(&self, repo_root: &Path, timeout: Duration) -> Result<String, EngineError> {
        self.build_with(
            repo_root,
            &BuildOptions {
                timeout,
                ..BuildOptions::default()
            },
        )
    }

    /// [`Engine::build`] with explicit options. The context is a tar of the
    /// repository (see [`context`]: `.dockerignore` honoured, `.codegenie/`
    /// never sent) written outside the repository and fed to `build -`.
    pub fn build_with(&self, repo_root: &Path, opts: &BuildOptions) -> Result<String, EngineError> {
        let labels = build_labels(repo_root)?;
        self.build_labelled(repo_root, opts, &labels)
    }

    fn build_labelled(
        &self,
        repo_root: &Path,
        opts: &BuildOptions,
        labels: &[(String, String)],
    ) -> Result<String, EngineError> {
        let tmp = tempfile::tempdir().map_err(|e| EngineError::Command {
            command: "build".into(),
            detail: format!("temp dir: {e}"),
        })?;
        let iid = tmp.path().join("iid");
        let tar_path = tmp.path().join("context.tar");
        let packed = context::write_context_tar(repo_root, &tar_path)
            .map_err(|e| EngineError::Context(Arc::new(e)))?;
        tracing::debug!(
            entries = packed.entries,
            bytes = packed.content_bytes,
            "build context packed"
        );
        let mut spec = self
            .spec()
            .arg("build")
            .arg("-q")
            .arg("--iidfile")
            .arg(&iid);
        if opts.network == BuildNetwork::None {
            spec = spec.args(["--network", "none"]);
        }
        for (k, v) in labels {
            spec = spec.arg("--label").arg(format!("{k}={v}"));
        }
        let out = self.run(spec.arg("-").stdin_file(&tar_path).timeout(opts.timeout))?;
        let timeout = opts.timeout;
        if out.termination == exec::Termination::TimedOut {
            return Err(EngineError::BuildTimedOut {
                after_ms: timeout.as_millis().min(u64::MAX as u128) as u64,
            });
        }
        if !out.success() {
            let mut log = out.stdout.tail_text(LOG_TAIL_BYTES);
            log.push_str(&out.stderr.tail_text(LOG_TAIL_BYTES));
            if let Some(line) = daemon_down_line(&log) {
                return Err(EngineError::Unavailable { detail: line });
            }
            let start = log.len().saturating_sub(LOG_TAIL_BYTES);
            let start = (start..log.len())
                .find(|i| log.is_char_boundary(*i))
                .unwrap_or(log.len());
            return Err(EngineError::BuildFailed {
                exit_code: out.code(),
                log_tail: log[start..].trim().to_owned(),
            });
        }
        let digest = std::fs::read_to_string(&iid)
            .map_err(|e| EngineError::Output {
                command: "build --iidfile".into(),
                detail: format!("{}: {e}", iid.display()),
            })?
            .trim()
            .to_owned();
        if !is_digest(&digest) {
            return Err(EngineError::Output {
                command: "build --iidfile".into(),
                detail: format!("`{digest}` is not an image digest"),
            });
        }
        let tag = format!("{TRACE_IMAGES}:{}", &digest[7..19]);
        self.ok(self.spec().args(["tag", &digest, &tag]))?;
        if let Some((_, repository)) = labels.iter().find(|(k, _)| k == REPOSITORY_LABEL) {
            self.tidy_images(TRACE_IMAGES, repository, opts.keep_images.max(1), &digest);
        }
        Ok(digest)
    }

    /// The config of `image`.
    pub fn image_config(&self, image: &str) -> Result<ImageConfig, EngineError> {
        let out =
            self.ok(self
                .spec()
                .args(["image", "inspect", "--format", "{{json .Config}}", image]))?;
        serde_json::from_slice(&out.stdout.bytes).map_err(|e| EngineError::Output {
            command: "image inspect".into(),
            detail: e.to_string(),
        })
    }

    /// Create a hardened container and return its id.
    pub fn create(&self, o: &CreateOptions) -> Result<String, EngineError> {
        let owner =
            orphans::current().map(|o| format!("{}={}", orphans::OWNER_LABEL, o.label_value()));
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

    /// Start a created container attached; the handle captures its output and
    /// flags a line containing `watch` when given.
    pub fn start_attached(
        &self,
        container: &str,
        watch: Option<&str>,
    ) -> Result<Running, EngineError> {
        let mut spec = self
            .spec()
            .args(["start", "-a", container])
            .capture_limit(256 * 1024);
        if let Some(w) = watch {
            spec = spec.watch_line(w.as_bytes().to_vec());
        }
        let shown = spec.display();
        exec::spawn(&spec).map_err(|e| EngineError::Command {
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
        self.run(
            self.spec()
                .args(["exec", container])
                .args(argv)
                .timeout(timeout),
        )
    }

    /// Whether the container is running.
    pub fn is_running(&self, container: &str) -> Result<bool, EngineError> {
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
        self.ok(self.spec().args(["kill", container]))?;
        Ok(())
    }

    /// Remove the container and its anonymous volumes, running or not.
    pub fn remove(&self, container: &str) -> Result<(), EngineError> {
        self.ok(self.spec().args(["rm", "-f", "-v", container]))?;
        Ok(())
    }

    /// Ids of every container (running or not) labelled with `run_id`.
    pub fn containers_of_run(&self, run_id: &str) -> Result<Vec<String>, EngineError> {
        let out = self.ok(self.spec().args([
            "ps",
            "-a",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label={RUN_LABEL}={run_id}"),
        ]))?;
        Ok(ids_of(&out.stdout.text()))
    }

    /// Remove every container labelled with `run_id`; returns how many.
    pub fn remove_run(&self, run_id: &str) -> Result<usize, EngineError> {
        let ids = self.containers_of_run(run_id)?;
        for id in &ids {
            self.remove(id)?;
        }
        Ok(ids.len())
    }
}

/// What [`Engine::sweep_orphans`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Containers (scenario containers, and containers a tool image was
    /// being made from).
    pub containers: usize,
    /// Tool images.
    pub images: usize,
}

impl Engine {
    /// Remove containers and tool images left by runs whose process is
    /// gone (killed before it could clean up); see the `orphans` module.
    pub fn sweep_orphans(&self) -> Result<Swept, EngineError> {
        let Some(me) = orphans::current() else {
            return Ok(Swept::default());
        };
        let (owner, tools) = (orphans::OWNER_LABEL, tools::TOOLS_OWNER_LABEL);
        // Scenario containers carry the owner label; a container a tool
        // image is made from carries only the tools' (and scenario containers
        // inherit that one from their tool image).
        let out = self.ok(self.spec().args([
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &format!("label={RUN_LABEL}"),
            "--format",
            &format!("{{{{.ID}}}}\t{{{{.Label \"{owner}\"}}}}\t{{{{.Label \"{tools}\"}}}}"),
        ]))?;
        let mut swept = Swept::default();
        for line in out.stdout.text().lines() {
            let mut fields = line.split('\t').map(str::trim);
            let (Some(id), Some(own), Some(tool)) = (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let (key, value) = if own.is_empty() {
                (tools, tool)
            } else {
                (owner, own)
            };
            let gone = orphans::Owner::parse(value).is_some_and(|o| o.is_gone(me));
            if !gone {
                continue;
            }
            if !self.label_set_at_creation(id, key, value) {
                tracing::warn!(
                    container = id,
                    "a container's owner label comes from its image, not from codegenie; left alone"
                );
                continue;
            }
            tracing::info!(
                container = id,
                owner = value,
                "removing a leftover container"
            );
            self.remove(id)?;
            swept.containers += 1;
        }
        // After the containers, which keep their images in use.
        swept.images = self.sweep_tool_images(me)?;
        Ok(swept)
    }
}

impl Engine {
    /// Whether `container`'s `key=value` label was set when it was created
    /// rather than inherited from its image (an image may carry any label).
    /// When the image cannot be asked, the answer is no: leave it alone.
    fn label_set_at_creation(&self, container: &str, key: &str, value: &str) -> bool {
        let image = match self.ok(self.spec().args([
            "container",
            "inspect",
            "--format",
            "{{.Image}}",
            container,
        ])) {
            Ok(out) => out.stdout.text().trim().to_owned(),
            Err(e) => {
                tracing::debug!(container, error = %e, "cannot inspect a candidate orphan");
                return false;
            }
        };
        let labels = self.ok(self.spec().args([
            "image",
            "inspect",
            "--format",
            "{{json .Config.Labels}}",
            &image,
        ]));
        match labels
            .map(|o| serde_json::from_slice::<Option<BTreeMap<String, String>>>(&o.stdout.bytes))
        {
            Ok(Ok(labels)) => labels.and_then(|l| l.get(key).cloned()).as_deref() != Some(value),
            Ok(Err(e)) => {
                tracing::debug!(container, error = %e, "unreadable image labels");
                false
            }
            Err(e) => {
                tracing::debug!(container, error = %e, "cannot inspect a candidate orphan's image");
                false
            }
        }
    }
}

fn is_digest(s: &str) -> bool {
    s.len() == 71 && s.starts_with("sha256:") && s[7..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The line of a client's output saying the daemon does not answer, if any.
fn daemon_down_line(log: &str) -> Option<String> {
    log.lines()
        .find(|l| {
            l.contains("Cannot connect to the Docker daemon")
                || l.contains("Is the docker daemon running")
        })
        .map(|l| l.trim().to_owned())
}

/// A boolean as a Go template prints it.
fn printed_bool(text: &str) -> Option<bool> {
    match text {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// The ids an engine listing printed, one a line (`-q`, `--format {{.ID}}`).
fn ids_of(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The default `image-digest:<resolved>` resolver: builds the repository's
/// Dockerfile (`build --iidfile`). No Dockerfile resolves to `None`; a
/// failed build is an [`EngineError`].
///
/// One build per run: the resolver remembers what it resolved for each
/// repository (digest or error), so the cache key and the traced image are
/// the same build (docs/architecture.md, "One build per run"). Make one
/// resolver per run; a resolver kept across edits would keep its first digest.
#[derive(Debug, Clone)]
pub struct BuildDigestResolver {
    engine: Engine,
    options: BuildOptions,
    resolved: Arc<Mutex<BTreeMap<PathBuf, Result<String, EngineError>>>>,
    /// Set by [`BuildDigestResolver::recall_only`]: never build, and say
    /// this when no remembered build answers.
    recall_only: Option<String>,
}

impl BuildDigestResolver {
    /// A resolver building with `engine` within [`BUILD_TIMEOUT`].
    pub fn new(engine: Engine) -> Self {
        BuildDigestResolver {
            engine,
            options: BuildOptions::default(),
            resolved: Arc::default(),
            recall_only: None,
        }
    }

    /// The same resolver, answering only from remembered builds (see
    /// [`BuildDigestResolver::recall`]): it never builds, and when no
    /// remembered build matches, the digest is unresolved
    /// ([`TokenNotRequested`](crate::probe::TokenNotRequested)) with `why`
    /// as the reason. For explaining a key without running anything.
    pub fn recall_only(mut self, why: impl Into<String>) -> Self {
        self.recall_only = Some(why.into());
        self
    }

    /// The same resolver with another build time limit.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = timeout;
        self
    }

    /// The same resolver with other build options.
    pub fn with_options(mut self, options: BuildOptions) -> Self {
        self.options = options;
        self
    }

    /// The digest building the repository at `root` would give, when the
    /// build is remembered and its inputs unchanged (docs/architecture.md,
    /// "Remembered builds"); nothing is built.
    pub fn recall(&self, root: &Path) -> Option<String> {
        let labels = build_labels(root).ok()?;
        let plan = build_memo::BuildPlan::of(&self.engine, root, &self.options, &labels).ok()?;
        plan.recall(&self.engine)
    }

    /// How many builds this resolver (and its clones) started.
    pub fn builds(&self) -> usize {
        self.resolved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

impl BuildDigestResolver {
    /// The digest of building `root`: remembered when every input of the
    /// build is known and unchanged, built otherwise.
    fn build_or_recall(&self, root: &Path) -> Result<String, EngineError> {
        let labels = build_labels(root)?;
        if !self.options.remember {
            return self.engine.build_labelled(root, &self.options, &labels);
        }
        let plan = match build_memo::BuildPlan::of(&self.engine, root, &self.options, &labels) {
            Ok(plan) => plan,
            Err(why) => {
                tracing::debug!(reason = %why, "build not remembered");
                return self.engine.build_labelled(root, &self.options, &labels);
            }
        };
        if let Some(digest) = plan.recall(&self.engine) {
            tracing::debug!(%digest, "build_recalled");
            return Ok(digest);
        }
        let digest = self.engine.build_labelled(root, &self.options, &labels)?;
        plan.remember(&self.engine, &digest);
        Ok(digest)
    }
}

/// The labels of a repository's trace image: [`REPOSITORY_LABEL`] with the
/// repository's canonical path (a moved repository is a new image, and
/// re-traced once).
fn build_labels(root: &Path) -> Result<Vec<(String, String)>, EngineError> {
    let canonical = std::fs::canonicalize(root).map_err(|e| {
        EngineError::Context(Arc::new(BuildContextError::Io {
            path: root.to_owned(),
            source: e,
        }))
    })?;
    Ok(vec![(
        REPOSITORY_LABEL.to_owned(),
        canonical.to_string_lossy().into_owned(),
    )])
}

impl ImageDigestResolver for BuildDigestResolver {
    fn resolve(&self, repo: &RepoSnapshot) -> Result<Option<String>, ResolverError> {
        if !repo.has_file("Dockerfile") {
            return Ok(None);
        }
        if let Some(why) = &self.recall_only {
            return match self.recall(repo.root()) {
                Some(digest) => Ok(Some(digest)),
                None => Err(Box::new(crate::probe::TokenNotRequested(why.clone()))),
            };
        }
        // Held across the build: a second caller waits for the first build
        // instead of starting its own.
        let mut resolved = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        let result = resolved
            .entry(repo.root().to_path_buf())
            .or_insert_with(|| self.build_or_recall(repo.root()));
        match result {
            Ok(d) => Ok(Some(d.clone())),
            Err(e) => Err(Box::new(e.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_config_argv_and_port() {
        let c: ImageConfig = serde_json::from_str(
            r#"{"Entrypoint":["/app/start.sh"],"Cmd":["--port","8080"],
                "ExposedPorts":{"9090/tcp":{},"8080/tcp":{},"53/udp":{}},"WorkingDir":"/app"}"#,
        )
        .unwrap();
        assert_eq!(c.argv(), ["/app/start.sh", "--port", "8080"]);
        assert_eq!(c.first_tcp_port(), Some(8080));
        let empty: ImageConfig = serde_json::from_str(r#"{"Entrypoint":null,"Cmd":null}"#).unwrap();
        assert!(empty.argv().is_empty());
        assert_eq!(empty.first_tcp_port(), None);
    }

    #[test]
    fn a_down_daemon_is_reported_by_its_line() {
        let log = "DEPRECATED: The legacy builder is deprecated\nCannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?\n";
        assert_eq!(
            daemon_down_line(log).as_deref(),
            Some("Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?")
        );
        assert_eq!(daemon_down_line("Step 2/3 : COPY x /\nno such file"), None);
    }

    #[test]
    fn digests_are_checked() {
        assert!(is_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_digest("sha256:xyz"));
        assert!(!is_digest(""));
    }
}
