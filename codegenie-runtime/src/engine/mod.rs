//! The container engine (`docker`, or `podman`), driven through the exec
//! layer: image build and inspection, and the container lifecycle.

mod endpoint;
mod orphans;
mod runs;

pub use endpoint::{ContextName, DockerHost, EndpointError, EngineEndpoint};

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::exec::{self, ExecSpec, Finished, Program, Running};
use crate::probe::{ImageDigestResolver, RepoSnapshot, ResolverError};

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
}

/// The parts of an image's config the probe uses.
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

/// How a scenario container is created (the hardening of DESIGN.md §7 is fixed).
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

    /// Build the image of `context` (its `Dockerfile`) and return its digest
    /// (`sha256:...`); the image is also tagged `codegenie-trace:<short digest>`.
    pub fn build(&self, context: &Path) -> Result<String, EngineError> {
        self.build_within(context, BUILD_TIMEOUT)
    }

    /// [`Engine::build`] with a time limit: past it the build client is
    /// killed (the engine then cancels the build) and
    /// [`EngineError::BuildTimedOut`] returned.
    pub fn build_within(&self, context: &Path, timeout: Duration) -> Result<String, EngineError> {
        let tmp = tempfile::tempdir().map_err(|e| EngineError::Command {
            command: "build".into(),
            detail: format!("temp dir: {e}"),
        })?;
        let iid = tmp.path().join("iid");
        let out = self.run(
            self.spec()
                .arg("build")
                .arg("-q")
                .arg("--iidfile")
                .arg(&iid)
                .arg(context)
                .timeout(timeout),
        )?;
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
        let tag = format!("codegenie-trace:{}", &digest[7..19]);
        self.ok(self.spec().args(["tag", &digest, &tag]))?;
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
        Ok(out.stdout.text().trim() == "true")
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
        match out.stdout.text().trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(EngineError::Output {
                command: "container inspect .State.OOMKilled".into(),
                detail: format!("`{other}` is not a boolean"),
            }),
        }
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
        Ok(out
            .stdout
            .text()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
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

impl Engine {
    /// Remove containers left by runs whose process is gone (killed before
    /// it could clean up); returns how many (see the `orphans` module).
    pub fn sweep_orphans(&self) -> Result<usize, EngineError> {
        let Some(me) = orphans::current() else {
            return Ok(0);
        };
        let label = orphans::OWNER_LABEL;
        let out = self.ok(self.spec().args([
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &format!("label={label}"),
            "--format",
            &format!("{{{{.ID}}}}\t{{{{.Label \"{label}\"}}}}"),
        ]))?;
        let mut removed = 0;
        for line in out.stdout.text().lines() {
            let Some((id, value)) = line.split_once('\t') else {
                continue;
            };
            let gone = orphans::Owner::parse(value.trim()).is_some_and(|o| o.is_gone(me));
            if gone {
                tracing::info!(
                    container = id,
                    owner = value,
                    "removing a leftover container"
                );
                self.remove(id.trim())?;
                removed += 1;
            }
        }
        Ok(removed)
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

/// The default `image-digest:<resolved>` resolver: builds the repository's
/// Dockerfile (`build --iidfile`; the build cache makes repeats cheap). No
/// Dockerfile resolves to `None`; a failed build is an [`EngineError`].
#[derive(Debug, Clone)]
pub struct BuildDigestResolver {
    engine: Engine,
    timeout: Duration,
}

impl BuildDigestResolver {
    /// A resolver building with `engine` within [`BUILD_TIMEOUT`].
    pub fn new(engine: Engine) -> Self {
        BuildDigestResolver {
            engine,
            timeout: BUILD_TIMEOUT,
        }
    }

    /// The same resolver with another build time limit.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl ImageDigestResolver for BuildDigestResolver {
    fn resolve(&self, repo: &RepoSnapshot) -> Result<Option<String>, ResolverError> {
        if !repo.has_file("Dockerfile") {
            return Ok(None);
        }
        match self.engine.build_within(repo.root(), self.timeout) {
            Ok(d) => Ok(Some(d)),
            Err(e) => Err(Box::new(e)),
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
