//! Why a runtime trace could not run, and what its backends report: one
//! place below every other part of the trace, so that reading scenarios,
//! preparing the work folder and running backends share one error type
//! without depending on the probe that uses them.

use std::path::PathBuf;

use crate::engine::EngineError;
use crate::exec;

use super::bundle::BundleError;
use super::scenarios::ScenarioError;

/// An error a backend reports about its own operations.
pub(crate) type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// Why the probe could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The container engine is missing or does not answer.
    #[error("the container engine is unavailable: {detail}")]
    EngineUnavailable {
        /// What the engine (or its absence) said.
        detail: String,
    },
    /// The scenario file is malformed.
    #[error("malformed scenario file")]
    Scenarios(#[from] ScenarioError),
    /// The tool bundle could not be assembled.
    #[error("cannot assemble the tool bundle")]
    Bundle(#[from] BundleError),
    /// An engine command failed outside a scenario.
    #[error(transparent)]
    Engine(EngineError),
    /// A file could not be read or written.
    #[error("{path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The host backend cannot run here.
    #[error("the host backend is not available")]
    HostUnavailable(#[from] HostBackendError),
    /// Containers cannot be used and the host backend was not asked for: the
    /// repository's commands are untrusted, so they never run on this machine
    /// unless the user says so.
    #[error("{reason}; the runtime trace runs a repository's code only in hardened containers unless asked otherwise: pass `--backend host` to run its scenarios on this machine in a private network namespace")]
    NoContainerBackend {
        /// Why containers cannot be used.
        reason: String,
    },
}

impl From<EngineError> for TraceError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Unavailable { detail } => TraceError::EngineUnavailable { detail },
            other => TraceError::Engine(other),
        }
    }
}

/// Why the host backend cannot run on this machine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostBackendError {
    /// No private network namespace can be made (it needs CAP_SYS_ADMIN).
    #[error("cannot create a private network namespace for the app")]
    NoNamespace(#[source] exec::ExecError),
    /// strace is there but does not run.
    #[error("strace does not run: {termination:?} {stderr}")]
    StraceFails {
        /// How `strace -V` ended.
        termination: exec::Termination,
        /// What it said.
        stderr: String,
    },
    /// strace's version could not be read.
    #[error("cannot read strace's version")]
    Version(#[source] BundleError),
}
