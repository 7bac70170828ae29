//! What went wrong with the engine, as a type callers can match on.

use std::path::PathBuf;
use std::sync::Arc;

use super::BuildContextError;

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
    /// An engine API call failed (the engine's answer, or none, is the
    /// source).
    #[error("engine API call `{call}` failed")]
    Api {
        /// What was asked.
        call: String,
        /// The client's error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
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
    /// The run was interrupted: this process makes no more containers or
    /// volumes, so that removing the run's leaves nothing behind.
    #[error("the run was interrupted: no {what} is made after that")]
    Interrupted {
        /// What was to be made (`container`, `volume`).
        what: &'static str,
    },
    /// A change for `import --change` that would not stay one instruction:
    /// the engine parses the changes joined by newlines, as one Dockerfile.
    #[error("the image's config cannot be carried by `import --change`: {shown} holds a line break or ends in a backslash, which would make an instruction of its own or swallow the next one")]
    UnsafeChange {
        /// The change, an ENV or LABEL one by its key alone, escaped.
        shown: String,
    },
}

/// The line of a client's output saying the daemon does not answer, if any.
pub(super) fn daemon_down_line(log: &str) -> Option<String> {
    log.lines()
        .find(|l| {
            l.contains("Cannot connect to the Docker daemon")
                || l.contains("Is the docker daemon running")
        })
        .map(|l| l.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_down_daemon_is_reported_by_its_line() {
        let log = "DEPRECATED: The legacy builder is deprecated\nCannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?\n";
        assert_eq!(
            daemon_down_line(log).as_deref(),
            Some("Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?")
        );
        assert_eq!(daemon_down_line("Step 2/3 : COPY x /\nno such file"), None);
    }
}
