//! What a trace tells: the facts of DESIGN.md §4.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Network endpoints a trace touched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkEndpoints {
    /// `connect` targets on AF_INET/AF_INET6 (`1.2.3.4:5432`, `[::1]:5432`), whatever the result.
    pub outbound: BTreeSet<String>,
    /// `bind` addresses on AF_INET/AF_INET6 with a port other than 0.
    pub inbound: BTreeSet<String>,
}

/// The evidence of one or more traces. The JSON of `codegenie parse-strace`
/// is exactly these fields; sets serialise sorted (byte order) and unique.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedTrace {
    /// Paths of successful `execve`/`execveat`.
    pub binaries_executed: BTreeSet<String>,
    /// Paths mapped with `PROT_EXEC`.
    pub shared_libs_loaded: BTreeSet<String>,
    /// Certificate files read.
    pub cert_paths_read: BTreeSet<String>,
    /// Files opened for reading.
    pub files_read: BTreeSet<String>,
    /// Files opened for writing.
    pub files_written: BTreeSet<String>,
    /// Successful execs of a shell.
    pub shell_invocations: u64,
    /// Network endpoints.
    pub network_endpoints_touched: NetworkEndpoints,
    /// `sun_path` of AF_UNIX `connect`/`bind` (abstract names prefixed `@`).
    pub unix_sockets: BTreeSet<String>,
}

/// How the traced root process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ExitStatus {
    /// `+++ exited with N +++`
    Exited {
        /// The exit code.
        code: i32,
    },
    /// `+++ killed by SIGX +++`
    Killed {
        /// The signal name, e.g. `SIGKILL`.
        signal: String,
        /// Whether a core was dumped.
        core_dumped: bool,
    },
}

/// Everything a parse yields: the evidence plus what the scenario result needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceFacts {
    /// The evidence.
    pub trace: ParsedTrace,
    /// How the root (first-seen) process ended, if the trace says.
    pub root_exit: Option<ExitStatus>,
    /// Signals the root process received, in order (`SIGTERM`, ...).
    pub root_signals: Vec<String>,
    /// Root signals beyond the kept maximum (a SIGCHLD storm), counted only.
    #[serde(default)]
    pub root_signals_dropped: u64,
    /// Lines that were not understood and were skipped.
    pub malformed_lines: u64,
    /// Successful execs of scripts whose interpreter (from
    /// [`ParseOptions::interpreters`](super::ParseOptions)) is a shell; not part
    /// of `trace.shell_invocations`, which keeps the §4 definition.
    #[serde(default)]
    pub script_shell_invocations: u64,
}
