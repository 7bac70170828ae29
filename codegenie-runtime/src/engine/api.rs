//! The engine's HTTP API (docs/architecture.md, "Engine API"): the calls a
//! scenario makes many of (create, inspect, exec, copy out, kill, remove)
//! go through one long-lived client per route, shared by every
//! [`Engine`](super::Engine) of the process, instead of a CLI process each. The CLI stays for what the API client cannot reach
//! (Podman's CLI, `ssh://` hosts, Docker contexts, an unverified TLS host)
//! and for the long calls whose cost is not the process (build, import,
//! export, `start -a`, whose process is the scenario's one, as `docker run`
//! is).
//!
//! The client speaks to the engine the CLI would: the same `DOCKER_HOST`,
//! `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`; a `DOCKER_CONTEXT` or a
//! current context in the CLI's config sends everything to the CLI, which
//! resolves contexts. Its API version is negotiated with the engine once.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountType, MountVolumeOptions,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    ContainerArchiveInfoOptions, CreateContainerOptions, DownloadFromContainerOptions,
    InspectContainerOptions, KillContainerOptions, RemoveContainerOptions,
};
use bollard::{ClientVersion, Docker};
use futures_util::StreamExt;

use crate::exec::{Finished, Termination};
use crate::tar_head::{Head, TarError, TarHead};

use super::options::{CappedCopy, CreateOptions};
use super::{EngineEndpoint, EngineError, EngineKind, COMMAND_TIMEOUT};

/// How the API client reaches the engine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Route {
    /// A unix socket (its path).
    Unix(String),
    /// Plain HTTP over TCP (`host:port`).
    Http(String),
    /// HTTPS over TCP with client certificates, the server verified.
    Tls {
        /// `host:port`.
        addr: String,
        /// The folder holding `ca.pem`, `cert.pem` and `key.pem`.
        certs: PathBuf,
    },
}

/// The route the API client takes to the engine the CLI would reach, or
/// `None` where only the CLI can go. `env` reads the process environment,
/// `current_context` is the CLI config's `currentContext`.
pub(super) fn route(
    kind: EngineKind,
    endpoint: &EngineEndpoint,
    env: &dyn Fn(&str) -> Option<String>,
    current_context: Option<String>,
) -> Option<Route> {
    if kind != EngineKind::Docker {
        return None;
    }
    match endpoint {
        EngineEndpoint::Context(_) => None,
        EngineEndpoint::Host(h) => host_route(h.url(), h.tls_cert_path().map(Path::to_owned)),
        EngineEndpoint::Ambient => {
            if env("DOCKER_CONTEXT").is_some_and(|c| !c.is_empty()) {
                return None;
            }
            match env("DOCKER_HOST").filter(|h| !h.is_empty()) {
                Some(url) => {
                    let verify = env("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
                    if !verify && env("DOCKER_TLS").is_some_and(|v| !v.is_empty()) {
                        // TLS without verifying the server: the CLI's choice to make.
                        return None;
                    }
                    let certs = verify.then(|| {
                        env("DOCKER_CERT_PATH")
                            .filter(|p| !p.is_empty())
                            .map(PathBuf::from)
                            .or_else(|| env("HOME").map(|h| Path::new(&h).join(".docker")))
                            .unwrap_or_default()
                    });
                    host_route(&url, certs)
                }
                None if current_context.is_some_and(|c| !c.is_empty() && c != "default") => None,
                None => Some(Route::Unix("/var/run/docker.sock".into())),
            }
        }
    }
}

fn host_route(url: &str, certs: Option<PathBuf>) -> Option<Route> {
    if let Some(path) = url.strip_prefix("unix://") {
        return Some(Route::Unix(path.to_owned()));
    }
    let addr = url.strip_prefix("tcp://")?.trim_end_matches('/').to_owned();
    Some(match certs {
        Some(certs) => Route::Tls { addr, certs },
        None => Route::Http(addr),
    })
}

/// The CLI config's current context (`$DOCKER_CONFIG/config.json`, or
/// `~/.docker/config.json`), if it names one.
pub(super) fn cli_current_context() -> Option<String> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")))?;
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    config
        .get("currentContext")
        .and_then(|c| c.as_str())
        .map(str::to_owned)
}

/// An API call that did not answer in time.
#[derive(Debug, thiserror::Error)]
#[error("no answer within {after_ms} ms")]
struct NoAnswer {
    after_ms: u128,
}

/// One client, its runtime, and the engine's negotiated API version.
pub(super) struct Api {
    docker: Docker,
    /// The engine's version, as its negotiation answered it.
    server_version: String,
    /// Taken only by `drop`.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Api {
    /// The last clone of an `Engine` may go inside an async task (a
    /// portfolio's worker), where dropping a runtime blocks and tokio
    /// panics: shut it down without waiting for its worker.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("version", &self.docker.client_version())
            .finish()
    }
}

/// An object's labels.
pub(super) type Labels = HashMap<String, String>;

pub(super) fn api_error(
    call: &str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> EngineError {
    EngineError::Api {
        call: call.to_owned(),
        source: Arc::new(e),
    }
}

impl Api {
    /// Connect along `route` and negotiate the API version; an engine that
    /// does not answer gives an error (and the caller the CLI).
    pub(super) fn connect(route: &Route) -> Result<Api, EngineError> {
        // One worker drives the connections; callers block on it from any
        // thread (the scenario's and the disk watch's).
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("codegenie-engine-api")
            .enable_all()
            .build()
            .map_err(|e| api_error("start the API client", e))?;
        let secs = COMMAND_TIMEOUT.as_secs();
        let docker = client_for(route, secs, bollard::API_DEFAULT_VERSION)?;
        // The negotiation by hand: bollard's asks `/version` and drops the
        // engine's own version, which `ping` answers with.
        let answer = within(
            &runtime,
            "negotiate the API version",
            NEGOTIATE_TIMEOUT,
            docker.version(),
        )?;
        let server = answer
            .api_version
            .as_deref()
            .and_then(client_version)
            .ok_or_else(|| {
                api_error(
                    "negotiate the API version",
                    NoApiVersion {
                        answered: answer.api_version.clone(),
                    },
                )
            })?;
        let ours = docker.client_version();
        let docker = if (server.major_version, server.minor_version)
            < (ours.major_version, ours.minor_version)
        {
            client_for(route, secs, &server)?
        } else {
            docker
        };
        Ok(Api {
            docker,
            server_version: answer.version.unwrap_or_default(),
            runtime: Some(runtime),
        })
    }

    /// The client.
    pub(super) fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The client's runtime (present until the client is dropped).
    pub(super) fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime is taken only when the client is dropped")
    }

    pub(super) fn call<T>(
        &self,
        call: &str,
        timeout: Duration,
        f: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, EngineError> {
        within(self.runtime(), call, timeout, f)
    }

    /// `docker create` with the hardening of docs/architecture.md,
    /// "Container flow", field for field.
    pub(super) fn create(
        &self,
        o: &CreateOptions,
        owner: Option<(String, String)>,
    ) -> Result<String, EngineError> {
        let memory = memory_bytes(&o.memory).ok_or_else(|| EngineError::Output {
            command: "create".into(),
            detail: format!(
                "memory limit `{}` is not a size (512m, 1g, 1073741824)",
                o.memory
            ),
        })?;
        let nano_cpus = nano_cpus(&o.cpus).ok_or_else(|| EngineError::Output {
            command: "create".into(),
            detail: format!("CPU limit `{}` is not a positive decimal (1, 0.5)", o.cpus),
        })?;
        let mut labels = HashMap::from([(super::RUN_LABEL.to_owned(), o.run_id.clone())]);
        labels.extend(owner);
        let body = ContainerCreateBody {
            image: Some(o.image.clone()),
            entrypoint: Some(vec![o.entrypoint.clone()]),
            cmd: Some(o.args.clone()),
            labels: Some(labels),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges".into()]),
                pids_limit: Some(i64::from(o.pids_limit)),
                memory: Some(memory),
                nano_cpus: Some(nano_cpus),
                tmpfs: (!o.tmpfs.is_empty()).then(|| {
                    o.tmpfs
                        .iter()
                        .map(|(path, size)| (path.clone(), format!("size={size}")))
                        .collect()
                }),
                mounts: (!o.mounts.is_empty()).then(|| {
                    o.mounts
                        .iter()
                        .map(|m| Mount {
                            typ: Some(MountType::VOLUME),
                            source: Some(m.volume.clone()),
                            target: Some(m.target.clone()),
                            read_only: Some(m.read_only),
                            volume_options: Some(MountVolumeOptions {
                                no_copy: Some(true),
                                ..MountVolumeOptions::default()
                            }),
                            ..Mount::default()
                        })
                        .collect()
                }),
                // Output is read through the attach stream (bounded capture); a
                // log driver would keep a flood on the engine's disk.
                log_config: Some(HostConfigLogConfig {
                    typ: Some("none".into()),
                    config: None,
                }),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        };
        let _creating = super::creations::enter("container")?;
        let made = self.call(
            "create container",
            COMMAND_TIMEOUT,
            self.docker
                .create_container(None::<CreateContainerOptions>, body),
        )?;
        for w in made.warnings {
            tracing::warn!(warning = %w, "engine warning on create");
        }
        Ok(made.id)
    }

    /// The id of `image`; `None` when the engine has no such image (it
    /// answers 404).
    pub(super) fn image_id(&self, image: &str) -> Result<Option<String>, EngineError> {
        let inspected = self.call("inspect image", COMMAND_TIMEOUT, async {
            unless_absent(self.docker.inspect_image(image).await).map(|i| i.map(|i| i.id))
        })?;
        match inspected {
            None => Ok(None),
            Some(Some(id)) if !id.is_empty() => Ok(Some(id)),
            Some(_) => Err(EngineError::Output {
                command: "inspect image".into(),
                detail: format!("the engine gave no id for {image}"),
            }),
        }
    }

    /// The config of `image` as the client types it (`None`: the image has
    /// none, as the CLI prints `null` for it).
    pub(super) fn image_config(
        &self,
        image: &str,
    ) -> Result<Option<bollard::models::ImageConfig>, EngineError> {
        let inspect = self.call(
            "inspect image",
            COMMAND_TIMEOUT,
            self.docker.inspect_image(image),
        )?;
        Ok(inspect.config)
    }

    /// Make the named volume with `labels`; its mount point, as the engine
    /// names it on its own machine.
    pub(super) fn create_volume(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> Result<String, EngineError> {
        let _creating = super::creations::enter("volume")?;
        let request = VolumeCreateRequest {
            name: Some(name.to_owned()),
            labels: Some(labels),
            ..VolumeCreateRequest::default()
        };
        self.call(
            "create volume",
            COMMAND_TIMEOUT,
            self.docker.create_volume(request),
        )
        .map(|v| v.mountpoint)
    }

    /// Remove the named volume (an error while a container uses it).
    pub(super) fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        self.call(
            "remove volume",
            COMMAND_TIMEOUT,
            self.docker
                .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>),
        )
    }

    /// The volumes carrying the label `key`: name and labels.
    pub(super) fn volumes_labelled(&self, key: &str) -> Result<Vec<(String, Labels)>, EngineError> {
        let options = bollard::query_parameters::ListVolumesOptions {
            filters: Some(HashMap::from([("label".to_owned(), vec![key.to_owned()])])),
        };
        let listed = self.call(
            "list volumes",
            COMMAND_TIMEOUT,
            self.docker.list_volumes(Some(options)),
        )?;
        Ok(listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.name, v.labels))
            .collect())
    }

    /// Every container (running or not) carrying the label filter `label`
    /// (`key` or `key=value`): id and labels.
    pub(super) fn containers_labelled(
        &self,
        label: &str,
    ) -> Result<Vec<(String, Labels)>, EngineError> {
        let options = bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_owned(),
                vec![label.to_owned()],
            )])),
            ..Default::default()
        };
        let listed = self.call(
            "list containers",
            COMMAND_TIMEOUT,
            self.docker.list_containers(Some(options)),
        )?;
        Ok(listed
            .into_iter()
            .filter_map(|c| Some((c.id?, c.labels.unwrap_or_default())))
            .collect())
    }

    /// Ids of the images matching every filter of `filters` (`reference`,
    /// `label`).
    pub(super) fn image_ids(&self, filters: &[(&str, &str)]) -> Result<Vec<String>, EngineError> {
        Ok(self
            .images_matching(filters)?
            .into_iter()
            .map(|i| i.id)
            .collect())
    }

    /// The images matching every filter of `filters`.
    pub(super) fn images_matching(
        &self,
        filters: &[(&str, &str)],
    ) -> Result<Vec<bollard::models::ImageSummary>, EngineError> {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in filters {
            map.entry((*k).to_owned())
                .or_default()
                .push((*v).to_owned());
        }
        let options = bollard::query_parameters::ListImagesOptions {
            filters: Some(map),
            ..Default::default()
        };
        self.call(
            "list images",
            COMMAND_TIMEOUT,
            self.docker.list_images(Some(options)),
        )
    }

    /// Tag `image` as `reference` (`repository:tag`).
    pub(super) fn tag(&self, image: &str, reference: &str) -> Result<(), EngineError> {
        // A colon before the last `/` is a registry's port, not a tag.
        let (repo, tag) = reference
            .rsplit_once(':')
            .filter(|(_, tag)| !tag.contains('/'))
            .unwrap_or((reference, "latest"));
        let options = bollard::query_parameters::TagImageOptions {
            repo: Some(repo.to_owned()),
            tag: Some(tag.to_owned()),
        };
        self.call(
            "tag image",
            COMMAND_TIMEOUT,
            self.docker.tag_image(image, Some(options)),
        )
    }

    /// Whether the engine answers (`/_ping`, which gathers nothing, where
    /// `/version` asks the engine's components), and its version as the
    /// negotiation learnt it (`docker version --format {{.Server.Version}}`).
    pub(super) fn server_version(&self) -> Result<String, EngineError> {
        self.call("ping", COMMAND_TIMEOUT, self.docker.ping())?;
        Ok(self.server_version.clone())
    }

    /// Unpack the tar archive `tar` at `path` in the container (`docker cp`
    /// from a stream: no process, no copy on the host's disk).
    pub(super) fn upload(
        &self,
        container: &str,
        path: &str,
        tar: Vec<u8>,
        timeout: Duration,
    ) -> Result<(), EngineError> {
        let options = bollard::query_parameters::UploadToContainerOptions {
            path: path.to_owned(),
            ..Default::default()
        };
        self.call(
            "copy into container",
            timeout,
            self.docker.upload_to_container(
                container,
                Some(options),
                bollard::body_full(tar.into()),
            ),
        )
    }

    fn inspect(
        &self,
        container: &str,
        size: bool,
    ) -> Result<bollard::models::ContainerInspectResponse, EngineError> {
        self.call(
            if size {
                "inspect container with sizes"
            } else {
                "inspect container"
            },
            if size {
                Duration::from_secs(30)
            } else {
                COMMAND_TIMEOUT
            },
            self.docker
                .inspect_container(container, Some(InspectContainerOptions { size })),
        )
    }

    /// Whether the container runs.
    pub(super) fn is_running(&self, container: &str) -> Result<bool, EngineError> {
        let i = self.inspect(container, false)?;
        Ok(i.state.and_then(|s| s.running).unwrap_or(false))
    }

    /// Whether the OOM killer ended a process in the container.
    pub(super) fn oom_killed(&self, container: &str) -> Result<bool, EngineError> {
        let i = self.inspect(container, false)?;
        Ok(i.state.and_then(|s| s.oom_killed).unwrap_or(false))
    }

    /// The writable layer's size and the OOM flag, in one inspect.
    pub(super) fn size_and_oom(&self, container: &str) -> Result<(u64, bool), EngineError> {
        let i = self.inspect(container, true)?;
        let size = i.size_rw.unwrap_or(0).max(0) as u64;
        Ok((size, i.state.and_then(|s| s.oom_killed).unwrap_or(false)))
    }

    /// The container's storage driver and the folders it names (`UpperDir`,
    /// `MergedDir`, ...).
    pub(super) fn graph_driver(
        &self,
        container: &str,
    ) -> Result<(String, HashMap<String, String>), EngineError> {
        let d = self
            .inspect(container, false)?
            .graph_driver
            .unwrap_or_default();
        Ok((d.name, d.data))
    }

    /// SIGKILL to the container's PID 1.
    pub(super) fn kill(&self, container: &str) -> Result<(), EngineError> {
        self.call(
            "kill container",
            COMMAND_TIMEOUT,
            self.docker.kill_container(
                container,
                Some(KillContainerOptions {
                    signal: "SIGKILL".into(),
                }),
            ),
        )
    }

    /// Remove the container and its anonymous volumes, running or not;
    /// what the engine answered.
    pub(super) fn remove(&self, container: &str) -> Result<Removal, EngineError> {
        self.call("remove container", COMMAND_TIMEOUT, async {
            let options = RemoveContainerOptions {
                v: true,
                force: true,
                link: false,
            };
            match unless_absent(self.docker.remove_container(container, Some(options)).await) {
                Ok(Some(())) => Ok(Removal::Removed),
                Ok(None) => Ok(Removal::Gone),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 409,
                    message,
                }) if message.contains(REMOVAL_IN_PROGRESS) => Ok(Removal::InProgress),
                Err(e) => Err(e),
            }
        })
    }

    /// Whether the container exists (the engine does not answer 404).
    pub(super) fn container_exists(&self, container: &str) -> Result<bool, EngineError> {
        self.call("inspect container", COMMAND_TIMEOUT, async {
            unless_absent(self.docker.inspect_container(container, None).await).map(|i| i.is_some())
        })
    }

    /// Run `argv` in the running container, its output captured as the
    /// exec layer captures a process's (at most `limit` bytes a stream, head
    /// and tail), `TimedOut` past `timeout`.
    pub(super) fn exec(
        &self,
        container: &str,
        argv: &[String],
        timeout: Duration,
        limit: usize,
    ) -> Result<Finished, EngineError> {
        let started = Instant::now();
        let exec = self.call(
            "create exec",
            COMMAND_TIMEOUT,
            self.docker.create_exec(
                container,
                CreateExecOptions::<String> {
                    cmd: Some(argv.to_vec()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..CreateExecOptions::default()
                },
            ),
        )?;
        let mut stdout = crate::exec::Buffer::new(limit);
        let mut stderr = crate::exec::Buffer::new(limit);
        let ran = self.runtime().block_on(async {
            let run = async {
                match self.docker.start_exec(&exec.id, None).await? {
                    StartExecResults::Attached { mut output, .. } => {
                        while let Some(part) = output.next().await {
                            match part? {
                                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                                    stdout.push(&message)
                                }
                                LogOutput::StdErr { message } => stderr.push(&message),
                                LogOutput::StdIn { .. } => {}
                            }
                        }
                    }
                    StartExecResults::Detached => {}
                }
                self.docker.inspect_exec(&exec.id).await
            };
            tokio::time::timeout(timeout, run).await
        });
        let termination = match ran {
            Err(_) => Termination::TimedOut,
            Ok(Err(e)) => return Err(api_error("run exec", e)),
            Ok(Ok(inspect)) => match inspect.exit_code {
                Some(code) => Termination::Exited(code as i32),
                None => {
                    return Err(EngineError::Output {
                        command: "exec inspect".into(),
                        detail: "the exec ended without an exit code".into(),
                    })
                }
            },
        };
        Ok(Finished {
            path: PathBuf::from(argv.first().map_or("", String::as_str)),
            termination,
            stdout: stdout.snapshot(),
            stderr: stderr.snapshot(),
            elapsed: started.elapsed(),
        })
    }

    /// The first regular file of the archive of `path` (a link followed,
    /// as `docker cp -L` does: the engine resolves it), pushed into `out`
    /// until `limit` bytes; the stream is dropped as soon as the reader
    /// wants no more. The archive is asked for at once: only a path that
    /// turns out to be a link costs the stat that resolves it and a second
    /// archive (each request mounts a stopped container's filesystem).
    pub(super) fn copy_stream<W: std::io::Write>(
        &self,
        container: &str,
        path: &str,
        mut out: W,
        limit: u64,
        timeout: Duration,
    ) -> Result<CappedCopy<W>, EngineError> {
        let deadline = Instant::now() + timeout;
        let mut source = path.to_owned();
        let mut hops = 0;
        let head = loop {
            match self.archive_head(container, &source, &mut out, limit, deadline)? {
                Ok(head) => break head,
                // The link's target from its own header: one request a
                // hop, each resolved by the engine in the container's scope.
                Err(TarError::Symlink {
                    target: Some(target),
                }) if hops < MAX_LINK_HOPS => {
                    hops += 1;
                    source = link_source(&source, &target);
                }
                // A name the header cannot hold whole, or a long chain:
                // the engine's own resolution.
                Err(TarError::Symlink { .. }) => {
                    let stat = self.call(
                        "stat a path in the container",
                        deadline.saturating_duration_since(Instant::now()),
                        self.docker.get_container_archive_info(
                            container,
                            Some(ContainerArchiveInfoOptions { path: path.into() }),
                        ),
                    )?;
                    let resolved = if stat.link_target.is_empty() {
                        path
                    } else {
                        &stat.link_target
                    };
                    break self
                        .archive_head(container, resolved, &mut out, limit, deadline)?
                        .map_err(copy_error)?;
                }
                Err(e) => return Err(copy_error(e)),
            }
        };
        Ok(CappedCopy {
            size: head.size,
            written: head.written,
            kept: out,
        })
    }

    /// The first member of the archive of `source`, at most `limit` bytes
    /// of it into `out`; the outer error is the engine's, the inner what
    /// the archive held.
    fn archive_head<W: std::io::Write>(
        &self,
        container: &str,
        source: &str,
        out: &mut W,
        limit: u64,
        deadline: Instant,
    ) -> Result<Result<Head<()>, TarError>, EngineError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut tar = TarHead::new(out, limit);
        let read = self.runtime().block_on(async {
            tokio::time::timeout(left, async {
                let mut body = self.docker.download_from_container(
                    container,
                    Some(DownloadFromContainerOptions {
                        path: source.to_owned(),
                    }),
                );
                while let Some(chunk) = body.next().await {
                    if !tar.push(&chunk?) {
                        break;
                    }
                }
                Ok::<(), bollard::errors::Error>(())
            })
            .await
        });
        match read {
            Err(_) => Err(api_error(
                "copy out of the container",
                NoAnswer {
                    after_ms: left.as_millis(),
                },
            )),
            Ok(Err(e)) => Err(api_error("copy out of the container", e)),
            Ok(Ok(())) => Ok(tar.finish().map(|h| Head {
                out: (),
                size: h.size,
                written: h.written,
            })),
        }
    }
}

/// Links followed one by one before the engine is asked to resolve the rest.
const MAX_LINK_HOPS: usize = 8;

/// Where the link at `path` points: `target` itself when absolute, else
/// beside the link. Left unnormalised: the engine resolves `..` and linked
/// folders in the container's scope.
fn link_source(path: &str, target: &str) -> String {
    if target.starts_with('/') {
        return target.to_owned();
    }
    let folder = path.rsplit_once('/').map_or("", |(folder, _)| folder);
    format!("{folder}/{target}")
}

fn copy_error(e: TarError) -> EngineError {
    EngineError::Output {
        command: "copy out of the container".into(),
        detail: crate::errors::error_chain(&e),
    }
}

/// A client for `route` speaking API `version` (no request is made).
fn client_for(route: &Route, secs: u64, version: &ClientVersion) -> Result<Docker, EngineError> {
    match route {
        Route::Unix(path) => Docker::connect_with_unix(path, secs, version),
        Route::Http(addr) => Docker::connect_with_http(addr, secs, version),
        Route::Tls { addr, certs } => Docker::connect_with_ssl(
            addr,
            &certs.join("key.pem"),
            &certs.join("cert.pem"),
            &certs.join("ca.pem"),
            secs,
            version,
        ),
    }
    .map_err(|e| api_error("connect", e))
}

/// `major.minor` as the API writes its version.
fn client_version(text: &str) -> Option<ClientVersion> {
    let (major, minor) = text.split_once('.')?;
    Some(ClientVersion {
        major_version: major.parse().ok()?,
        minor_version: minor.parse().ok()?,
    })
}

/// An engine whose `/version` names no API version we can read.
#[derive(Debug, thiserror::Error)]
#[error("the engine's API version is {answered:?}, not major.minor")]
struct NoApiVersion {
    answered: Option<String>,
}

/// How long the version negotiation may take: an engine that does not
/// answer it is left to the CLI, whose errors say why.
const NEGOTIATE_TIMEOUT: Duration = Duration::from_secs(10);

fn within<T>(
    runtime: &tokio::runtime::Runtime,
    call: &str,
    timeout: Duration,
    f: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, EngineError> {
    // The timer is made inside the runtime: it needs its clock.
    match runtime.block_on(async { tokio::time::timeout(timeout, f).await }) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(api_error(call, e)),
        Err(_) => Err(api_error(
            call,
            NoAnswer {
                after_ms: timeout.as_millis(),
            },
        )),
    }
}

/// `None` where the engine answered 404: no such object.
fn unless_absent<T>(
    answer: Result<T, bollard::errors::Error>,
) -> Result<Option<T>, bollard::errors::Error> {
    match answer {
        Ok(v) => Ok(Some(v)),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What the engine answered to one removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Removal {
    /// This call removed it.
    Removed,
    /// There was no such container.
    Gone,
    /// Another call is removing it.
    InProgress,
}

/// The engine's words for a removal another call already started (a 409).
pub(super) const REMOVAL_IN_PROGRESS: &str = "is already in progress";

/// A memory size as `docker --memory` reads it (go-units `RAMInBytes`): a
/// decimal number, then an optional binary unit `b`, `k`, `m`, `g`, `t` or
/// `p`, with an optional `b`/`ib` after it, any case.
pub(super) fn memory_bytes(text: &str) -> Option<i64> {
    let t = text.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim_start();
    let number: f64 = number.parse().ok().filter(|n: &f64| n.is_finite())?;
    let base = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .or_else(|| unit.strip_suffix('i'))
        .unwrap_or(unit);
    let power = match base {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return None,
    };
    let bytes = number * 1024f64.powi(power);
    (bytes >= 1.0 && bytes < i64::MAX as f64).then_some(bytes as i64)
}

/// `--cpus` as the engine's `NanoCpus`.
pub(super) fn nano_cpus(text: &str) -> Option<i64> {
    let n: f64 = text.trim().parse().ok()?;
    (n.is_finite() && n > 0.0 && n < 1e6).then(|| (n * 1e9).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_s_target_is_beside_it_unless_absolute() {
        assert_eq!(link_source("/bin/sh", "dash"), "/bin/dash");
        assert_eq!(
            link_source("/lib64/ld.so", "../lib/x86_64-linux-gnu/ld.so"),
            "/lib64/../lib/x86_64-linux-gnu/ld.so"
        );
        assert_eq!(link_source("/usr/bin/node", "/opt/node"), "/opt/node");
        assert_eq!(link_source("/x", "y"), "/y");
    }
    use crate::engine::DockerHost;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_client_goes_where_the_cli_would() {
        let ambient = EngineEndpoint::Ambient;
        let d = EngineKind::Docker;
        assert_eq!(
            route(d, &ambient, &env(&[]), None),
            Some(Route::Unix("/var/run/docker.sock".into()))
        );
        assert_eq!(
            route(
                d,
                &ambient,
                &env(&[("DOCKER_HOST", "unix:///run/x.sock")]),
                None
            ),
            Some(Route::Unix("/run/x.sock".into()))
        );
        assert_eq!(
            route(
                d,
                &ambient,
                &env(&[("DOCKER_HOST", "tcp://127.0.0.1:2375")]),
                None
            ),
            Some(Route::Http("127.0.0.1:2375".into()))
        );
        assert_eq!(
            route(
                d,
                &ambient,
                &env(&[
                    ("DOCKER_HOST", "tcp://127.0.0.1:2376"),
                    ("DOCKER_TLS_VERIFY", "1"),
                    ("DOCKER_CERT_PATH", "/certs"),
                ]),
                None
            ),
            Some(Route::Tls {
                addr: "127.0.0.1:2376".into(),
                certs: "/certs".into()
            })
        );
        // Only the CLI: contexts, ssh, unverified TLS, Podman.
        assert_eq!(
            route(d, &ambient, &env(&[("DOCKER_CONTEXT", "farm")]), None),
            None
        );
        assert_eq!(route(d, &ambient, &env(&[]), Some("farm".into())), None);
        assert_eq!(
            route(d, &ambient, &env(&[]), Some("default".into())),
            Some(Route::Unix("/var/run/docker.sock".into()))
        );
        assert_eq!(
            route(
                d,
                &ambient,
                &env(&[("DOCKER_HOST", "ssh://me@localhost")]),
                None
            ),
            None
        );
        assert_eq!(
            route(
                d,
                &ambient,
                &env(&[("DOCKER_HOST", "tcp://127.0.0.1:2376"), ("DOCKER_TLS", "1")]),
                None
            ),
            None
        );
        assert_eq!(route(EngineKind::Podman, &ambient, &env(&[]), None), None);
        let host = EngineEndpoint::Host(DockerHost::new("unix:///s.sock", None).unwrap());
        // An explicit host wins over the environment, as it does for the CLI.
        assert_eq!(
            route(d, &host, &env(&[("DOCKER_CONTEXT", "farm")]), None),
            Some(Route::Unix("/s.sock".into()))
        );
    }

    #[test]
    fn memory_sizes_read_as_docker_reads_them() {
        assert_eq!(memory_bytes("512m"), Some(512 << 20));
        assert_eq!(memory_bytes("512M"), Some(512 << 20));
        assert_eq!(memory_bytes("1g"), Some(1 << 30));
        assert_eq!(memory_bytes("1GiB"), Some(1 << 30));
        assert_eq!(memory_bytes("1gb"), Some(1 << 30));
        assert_eq!(memory_bytes("1.5k"), Some(1536));
        assert_eq!(memory_bytes("1073741824"), Some(1 << 30));
        for bad in [
            "",
            "m",
            "12x",
            "1 gigabyte",
            "-1m",
            "0",
            "1e9",
            "1bb",
            "1kbb",
        ] {
            assert_eq!(memory_bytes(bad), None, "{bad:?}");
        }
        assert_eq!(nano_cpus("1"), Some(1_000_000_000));
        assert_eq!(nano_cpus("0.5"), Some(500_000_000));
        for bad in ["", "0", "-1", "x", "inf"] {
            assert_eq!(nano_cpus(bad), None, "{bad:?}");
        }
    }
}
