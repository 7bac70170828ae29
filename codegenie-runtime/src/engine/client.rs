//! The engine CLI itself: which program, which endpoint, and how one
//! command runs through the exec layer and reads its answer.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::exec::{self, ExecSpec, Finished, Program};

use super::api::{self, Api};
use super::{EngineEndpoint, EngineError, EngineKind, COMMAND_TIMEOUT, LOG_TAIL_BYTES};

/// A container engine CLI.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(super) program: Program,
    pub(super) endpoint: EngineEndpoint,
    pub(super) kind: EngineKind,
    /// The API client, connected on first use and shared by clones; `None`
    /// where only the CLI reaches the engine (engine/api.rs).
    api: Arc<OnceLock<Option<Api>>>,
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
                match Api::connect(&route) {
                    Ok(a) => Some(a),
                    Err(e) => {
                        tracing::debug!(?route, error = %crate::errors::error_chain(&e), "no engine API client: using the CLI");
                        None
                    }
                }
            })
            .as_ref()
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
        // Connecting negotiated the API version: the engine answered.
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
    use super::*;

    #[test]
    fn digests_are_checked() {
        assert!(is_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_digest("sha256:xyz"));
        assert!(!is_digest(""));
    }
}
