//! The engine CLI itself: which program, which endpoint, and how one
//! command runs through the exec layer and reads its answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::exec::{self, ExecSpec, Finished, Program};

use super::api::{self, Api, Route};
use super::{EngineEndpoint, EngineError, EngineKind, COMMAND_TIMEOUT, LOG_TAIL_BYTES};

/// A container engine CLI.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(super) program: Program,
    pub(super) endpoint: EngineEndpoint,
    pub(super) kind: EngineKind,
    /// The API client, connected on first use and shared by clones (and by
    /// every `Engine` of the process on the same route); `None` where only
    /// the CLI reaches the engine (engine/api.rs).
    api: Arc<OnceLock<Option<Arc<Api>>>>,
}

/// The process's client on `route`, connected (and its API version
/// negotiated) by the first `Engine` that asks: a run makes several
/// `Engine` values for one engine (the build's resolver, the probe), and a
/// negotiation is a `/version`, which asks each of the engine's components.
/// A failed connection is not remembered: the next `Engine` tries again.
fn connected(route: &Route) -> Option<Arc<Api>> {
    type Slot = Arc<Mutex<Option<Arc<Api>>>>;
    static CLIENTS: OnceLock<Mutex<HashMap<Route, Slot>>> = OnceLock::new();
    let slot = {
        let mut clients = CLIENTS
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Arc::clone(clients.entry(route.clone()).or_default())
    };
    // One connection attempt at a time per route; other routes go on.
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(api) = &*slot {
        return Some(Arc::clone(api));
    }
    match Api::connect(route) {
        Ok(a) => Some(Arc::clone(slot.insert(Arc::new(a)))),
        Err(e) => {
            tracing::debug!(?route, error = %crate::errors::error_chain(&e), "no engine API client: using the CLI");
            None
        }
    }
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
            kind,
            api: Arc::default(),
        }
    }

    /// The engine's API client, if one reaches it: connected and its
    /// version negotiated on the first call, then shared by every clone.
    pub(super) fn api(&self) -> Option<&Api> {
        self.api
            .get_or_init(|| {
                let route = api::route(
                    self.kind,
                    &self.endpoint,
                    &|k| std::env::var(k).ok(),
                    api::cli_current_context(),
                )?;
                connected(&route)
            })
            .as_deref()
    }

    /// The engine this CLI talks to.
    pub fn endpoint(&self) -> &EngineEndpoint {
        &self.endpoint
    }

    pub(super) fn spec(&self) -> ExecSpec {
        self.endpoint
            .apply(ExecSpec::new(self.program.clone()).timeout(COMMAND_TIMEOUT))
    }

    pub(super) fn run(&self, spec: ExecSpec) -> Result<Finished, EngineError> {
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
    pub(super) fn ok(&self, spec: ExecSpec) -> Result<Finished, EngineError> {
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
        if let Some(api) = self.api() {
            return api.server_version().map_err(|e| EngineError::Unavailable {
                detail: crate::errors::error_chain(&e),
            });
        }
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
}

pub(super) fn is_digest(s: &str) -> bool {
    s.len() == 71 && s.starts_with("sha256:") && s[7..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// A boolean as a Go template prints it.
pub(super) fn printed_bool(text: &str) -> Option<bool> {
    match text {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// The ids an engine listing printed, one a line (`-q`, `--format {{.ID}}`).
pub(super) fn ids_of(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;

    use super::*;
    use crate::engine::DockerHost;

    /// An engine stand-in on a unix socket: answers `/version` with
    /// `api_version` and `/_ping` with `OK`, keeps connections alive as the
    /// engine does, and records each request line.
    fn engine_at(dir: &std::path::Path, api_version: &str) -> (String, Arc<Mutex<Vec<String>>>) {
        let sock = dir.join("engine.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let api_version = api_version.to_owned();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (log, api_version) = (Arc::clone(&log), api_version.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut conn = conn;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        // The rest of the head; these requests have no body.
                        let mut header = String::new();
                        while reader.read_line(&mut header).unwrap_or(0) > 0 && header != "\r\n" {
                            header.clear();
                        }
                        let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                        log.lock().unwrap().push(path.clone());
                        let body = if path.ends_with("/version") {
                            format!(r#"{{"Version":"99.0.1-test","ApiVersion":"{api_version}"}}"#)
                        } else {
                            "OK".to_owned()
                        };
                        let kind = if body == "OK" {
                            "text/plain"
                        } else {
                            "application/json"
                        };
                        let _ = write!(
                            conn,
                            "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                    }
                });
            }
        });
        (format!("unix://{}", sock.display()), seen)
    }

    fn at(url: &str) -> Engine {
        Engine::at(
            EngineKind::Docker,
            EngineEndpoint::Host(DockerHost::new(url, None).unwrap()),
        )
    }

    #[test]
    fn engines_on_one_route_share_one_negotiation_and_speak_its_version() {
        let d = tempfile::tempdir().unwrap();
        let (url, seen) = engine_at(d.path(), "1.40");
        let (first, second) = (at(&url), at(&url));
        assert_eq!(first.ping().unwrap(), "99.0.1-test");
        assert_eq!(second.ping().unwrap(), "99.0.1-test");
        assert!(Arc::ptr_eq(
            &connected(&api::Route::Unix(url[7..].to_owned())).unwrap(),
            &connected(&api::Route::Unix(url[7..].to_owned())).unwrap()
        ));
        // One `/version` for both, then a `/_ping` each; the client speaks
        // the version the engine said it speaks (lower than its own).
        assert_eq!(*seen.lock().unwrap(), ["/version", "/_ping", "/_ping"]);
        assert_eq!(
            second.api().unwrap().docker().client_version().to_string(),
            "1.40"
        );
        // The control: another route negotiates for itself.
        let other = tempfile::tempdir().unwrap();
        let (url, seen) = engine_at(other.path(), "1.41");
        at(&url).ping().unwrap();
        assert_eq!(*seen.lock().unwrap(), ["/version", "/_ping"]);
    }

    #[test]
    fn an_engine_without_a_readable_api_version_is_left_to_the_cli_and_asked_again() {
        let d = tempfile::tempdir().unwrap();
        let (url, seen) = engine_at(d.path(), "one point forty");
        assert!(at(&url).api().is_none());
        assert!(at(&url).api().is_none());
        // Not remembered: each `Engine` tries again.
        assert_eq!(*seen.lock().unwrap(), ["/version", "/version"]);
    }

    #[test]
    fn digests_are_checked() {
        assert!(is_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_digest("sha256:xyz"));
        assert!(!is_digest(""));
    }
}
