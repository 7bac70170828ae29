//! Which engine the CLI talks to: the one the environment names (the
//! default), a `DOCKER_HOST` value, or a Docker context. Reached the way the
//! Docker CLI reaches them (docs/architecture.md, "Portfolio"): the endpoint
//! becomes the client's `DOCKER_HOST` / `DOCKER_CONTEXT` for that process
//! only, so unix sockets, `tcp://` with TLS, `ssh://` and contexts all work
//! unchanged.

use std::path::PathBuf;

use crate::exec::ExecSpec;

/// Where an engine is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum EngineEndpoint {
    /// Whatever the environment says (`DOCKER_HOST`, `DOCKER_CONTEXT`, the
    /// CLI's current context): what a single `codegenie trace` uses.
    #[default]
    Ambient,
    /// A `DOCKER_HOST` value.
    Host(DockerHost),
    /// A Docker context name (`docker context ls`); its TLS material and
    /// ssh settings live in the context.
    Context(ContextName),
}

/// A checked `DOCKER_HOST` value: `unix://`, `tcp://` or `ssh://`, with an
/// optional TLS certificate folder for `tcp://` (`DOCKER_CERT_PATH`, with
/// `DOCKER_TLS_VERIFY=1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DockerHost {
    url: String,
    tls_cert_path: Option<PathBuf>,
}

/// A checked Docker context name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContextName(String);

/// An endpoint that cannot be a Docker endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// Not `unix://`, `tcp://` or `ssh://` with something after the scheme.
    #[error("`{value}` is not a DOCKER_HOST value (expected unix:///path, tcp://host:port or ssh://[user@]host)")]
    BadHost {
        /// The value given.
        value: String,
    },
    /// TLS material only makes sense for `tcp://`.
    #[error("TLS certificates are only used with a tcp:// host, not `{value}`")]
    TlsWithoutTcp {
        /// The host given.
        value: String,
    },
    /// Not a name `docker context create` accepts.
    #[error("`{value}` is not a Docker context name (expected [a-zA-Z0-9][a-zA-Z0-9_.+-]*)")]
    BadContext {
        /// The name given.
        value: String,
    },
}

impl DockerHost {
    /// Check a `DOCKER_HOST` value; `tls_cert_path` (a folder holding
    /// `ca.pem`, `cert.pem`, `key.pem`) only with `tcp://`.
    pub fn new(url: &str, tls_cert_path: Option<PathBuf>) -> Result<Self, EndpointError> {
        let rest = ["unix://", "tcp://", "ssh://"]
            .iter()
            .find_map(|scheme| url.strip_prefix(scheme));
        let ok = rest.is_some_and(|r| !r.is_empty() && !r.chars().any(char::is_whitespace));
        if !ok {
            return Err(EndpointError::BadHost {
                value: url.to_owned(),
            });
        }
        if tls_cert_path.is_some() && !url.starts_with("tcp://") {
            return Err(EndpointError::TlsWithoutTcp {
                value: url.to_owned(),
            });
        }
        Ok(DockerHost {
            url: url.to_owned(),
            tls_cert_path,
        })
    }

    /// The `DOCKER_HOST` value.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The TLS certificate folder, if the host is reached over TLS.
    pub fn tls_cert_path(&self) -> Option<&std::path::Path> {
        self.tls_cert_path.as_deref()
    }
}

impl ContextName {
    /// Check a context name.
    pub fn new(name: &str) -> Result<Self, EndpointError> {
        let mut bytes = name.bytes();
        let ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
            && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-'));
        if ok {
            Ok(ContextName(name.to_owned()))
        } else {
            Err(EndpointError::BadContext {
                value: name.to_owned(),
            })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl EngineEndpoint {
    /// Point `spec` (an engine CLI command) at this endpoint. The variables
    /// that would otherwise win are removed: the CLI prefers `DOCKER_HOST`
    /// over `DOCKER_CONTEXT`, so a context endpoint clears `DOCKER_HOST`.
    pub(crate) fn apply(&self, spec: ExecSpec) -> ExecSpec {
        const NONE: Option<&str> = None;
        match self {
            EngineEndpoint::Ambient => spec,
            EngineEndpoint::Host(h) => {
                let spec = spec
                    .env("DOCKER_HOST", Some(h.url.as_str()))
                    .env("DOCKER_CONTEXT", NONE);
                match &h.tls_cert_path {
                    Some(dir) => spec
                        .env("DOCKER_TLS_VERIFY", Some("1"))
                        .env("DOCKER_CERT_PATH", Some(dir.as_os_str())),
                    None => spec,
                }
            }
            EngineEndpoint::Context(c) => spec
                .env("DOCKER_CONTEXT", Some(c.0.as_str()))
                .env("DOCKER_HOST", NONE),
        }
    }
}

impl std::fmt::Display for EngineEndpoint {
    /// How reports name the engine: the host URL, `context <name>`, or
    /// `default` for the ambient one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineEndpoint::Ambient => f.write_str("default"),
            EngineEndpoint::Host(h) => f.write_str(&h.url),
            EngineEndpoint::Context(c) => write!(f, "context {}", c.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_checked() {
        for good in [
            "unix:///var/run/docker.sock",
            "tcp://127.0.0.1:2376",
            "ssh://builder@localhost",
        ] {
            assert_eq!(DockerHost::new(good, None).unwrap().url(), good);
        }
        for bad in [
            "",
            "unix://",
            "/var/run/docker.sock",
            "http://x",
            "tcp://a b",
        ] {
            assert!(
                matches!(
                    DockerHost::new(bad, None),
                    Err(EndpointError::BadHost { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(DockerHost::new("tcp://127.0.0.1:2376", Some("/certs".into())).is_ok());
        assert_eq!(
            DockerHost::new("unix:///x.sock", Some("/certs".into())),
            Err(EndpointError::TlsWithoutTcp {
                value: "unix:///x.sock".into()
            })
        );
    }

    #[test]
    fn context_names_are_checked() {
        assert_eq!(ContextName::new("farm-b.1").unwrap().as_str(), "farm-b.1");
        for bad in ["", "-x", "a b", "a/b"] {
            assert!(ContextName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn display_names_the_engine() {
        let h = EngineEndpoint::Host(DockerHost::new("unix:///s", None).unwrap());
        assert_eq!(h.to_string(), "unix:///s");
        let c = EngineEndpoint::Context(ContextName::new("farm").unwrap());
        assert_eq!(c.to_string(), "context farm");
        assert_eq!(EngineEndpoint::Ambient.to_string(), "default");
    }
}
