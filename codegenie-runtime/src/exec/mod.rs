//! The exec layer: the only place codegenie starts processes.
//!
//! Every process is an allowlisted [`Program`] started with an argv (never
//! through a shell), a scrubbed environment (only [`KEPT_ENV`] survives),
//! stdin from `/dev/null` (or a file the caller names), bounded output capture, and its own process group,
//! which is killed on timeout and when the handle is dropped.

mod capture;
mod netns;
mod process;
mod program;

pub use capture::Captured;
pub(crate) use capture::{Buffer, Feed, LineWatch};
pub use netns::in_network_of;
pub(crate) use process::DEFAULT_CAPTURE_LIMIT;
pub use process::{kill_all, run, run_into, spawn, ExecSpec, Finished, Running, Termination};
pub use program::{host_loader, Program};

use std::path::PathBuf;

/// Environment variables passed through to child processes; everything else is dropped.
pub const KEPT_ENV: [&str; 7] = [
    "PATH",
    "HOME",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    // A `tcp://` DOCKER_HOST with TLS, as the Docker CLI reads it.
    "DOCKER_TLS_VERIFY",
    "DOCKER_CERT_PATH",
];

/// Why a process could not be started or waited for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The program is not installed (not found on `PATH`).
    #[error("`{program}` was not found on PATH")]
    NotFound {
        /// The program's name.
        program: String,
    },
    /// The program's path could not be determined.
    #[error("cannot locate `{program}`: {detail}")]
    Unresolvable {
        /// The program's name.
        program: String,
        /// Why.
        detail: String,
    },
    /// `spawn` failed.
    #[error("cannot start {path}")]
    Spawn {
        /// The resolved program path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file meant for the child's stdin cannot be opened.
    #[error("cannot open {path} as the child's stdin")]
    Stdin {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A per-process variable outside [`KEPT_ENV`] was asked for.
    #[error("`{key}` is not a variable child processes may receive")]
    EnvNotKept {
        /// The variable's name.
        key: &'static str,
    },
    /// Waiting for the process failed.
    #[error("cannot wait for {path}")]
    Wait {
        /// The resolved program path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}
