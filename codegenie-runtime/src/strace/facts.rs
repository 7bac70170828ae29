//! What a trace tells: the facts of the parser contract
//! (docs/architecture.md, "Parser").
//!
//! Every path in these facts is a name as the app used it (made absolute and
//! lexically normalised, never symlink-resolved); where the kernel resolved
//! it to another name, the pair is in [`ParsedTrace::resolved`].

use std::collections::{BTreeMap, BTreeSet};

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
/// is exactly these fields, in this order; sets serialise sorted (byte order)
/// and unique.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedTrace {
    /// Paths of successful `execve`/`execveat` as named (relative ones made
    /// absolute against the process's cwd when the trace shows it, else kept
    /// relative); `/proc/self/exe` is the process's current binary.
    pub binaries_executed: BTreeSet<String>,
    /// Paths as opened of files mapped with `PROT_EXEC`.
    pub shared_libs_loaded: BTreeSet<String>,
    /// Certificate files read (classified by either name, reported as opened).
    pub cert_paths_read: BTreeSet<String>,
    /// Files opened for reading, as opened.
    pub files_read: BTreeSet<String>,
    /// Files opened for writing, as opened.
    pub files_written: BTreeSet<String>,
    /// Successful execs of a shell.
    pub shell_invocations: u64,
    /// Network endpoints.
    pub network_endpoints_touched: NetworkEndpoints,
    /// `sun_path` of AF_UNIX `connect`/`bind` (abstract names prefixed `@`).
    pub unix_sockets: BTreeSet<String>,
    /// `{path as opened or executed: resolved path}` wherever the two differ
    /// (the `-y` name of an opened fd; the `/proc/self/exe` target of a
    /// process whose binary is known). The first resolution seen is kept.
    #[serde(default)]
    pub resolved: BTreeMap<String, String>,
    /// Paths named by successful existence probes (`stat` family, `access`
    /// family, `readlink` family), made absolute and normalised.
    #[serde(default)]
    pub paths_probed: BTreeSet<String>,
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

/// One successful exec with its arguments (what a shell was asked to run,
/// which flags a runtime started with).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExecRecord {
    /// The executed path, as in `binaries_executed`.
    pub path: String,
    /// `argv` as strace printed it (cut at 64 arguments and `-s` bytes each).
    pub argv: Vec<String>,
}

/// Distinct execs kept per trace; beyond it they are counted only.
pub const MAX_EXEC_RECORDS: usize = 256;

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
    /// of `trace.shell_invocations`, which keeps the parser's definition (docs/architecture.md, "Parser", 9).
    #[serde(default)]
    pub script_shell_invocations: u64,
    /// Paths the app asked for that did not exist (`ENOENT` from an open, an
    /// exec or an existence probe), as named: where a cut-down image lacks
    /// what the original had, it shows here.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub missing: BTreeSet<String>,
    /// Distinct successful execs with their argv, in first-seen order (at
    /// most [`MAX_EXEC_RECORDS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub execs: Vec<ExecRecord>,
    /// Distinct execs beyond [`MAX_EXEC_RECORDS`], counted only.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub execs_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
