//! Scenario results, the aggregator's input (docs/architecture.md, "Runtime trace").

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::strace::{ExecRecord, ExitStatus, ParsedTrace};

/// Why a scenario failed or was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum ScenarioReason {
    /// strace cannot run here (not Linux, or missing).
    StraceUnavailable,
    /// The scenario ran past its own timeout.
    ScenarioTimeout {
        /// Time spent when it was stopped.
        elapsed_ms: u64,
    },
    /// The whole run's time budget ran out before the scenario started.
    AggregateTimeout,
    /// `docker build` failed.
    ImageBuildFailed {
        /// The build's exit code, if it exited.
        exit_code: Option<i32>,
        /// The end of the build log (redacted).
        log_tail: String,
    },
    /// `docker build` ran past its time limit and was stopped.
    ImageBuildTimeout {
        /// The limit that ran out.
        after_ms: u64,
    },
    /// No image digest could be resolved.
    ImageDigestUnresolved,
    /// The app exited with an unexpected code.
    UnexpectedExit {
        /// The exit code.
        code: i32,
    },
    /// The kernel's OOM killer ended a process of the app (`--memory`).
    OutOfMemory {
        /// The memory limit (`--memory`).
        limit: String,
    },
    /// The container engine is missing or does not answer.
    EngineUnavailable {
        /// What the engine (or its absence) said.
        detail: String,
    },
    /// Anything else, explained.
    Other {
        /// The explanation.
        detail: String,
    },
    /// The container wrote more than the disk bound into its filesystem and
    /// was killed.
    DiskLimit {
        /// The bound (`RunLimits::disk_limit_bytes`).
        limit_bytes: u64,
        /// The largest writable-layer size seen.
        observed_bytes: u64,
    },
    /// The steps ran, but the raw trace was longer than the cap and only its
    /// head was read: the evidence is incomplete.
    TraceTruncated {
        /// The cap (`RunLimits::trace_cap_bytes`).
        limit_bytes: u64,
        /// The trace's full size.
        trace_bytes: u64,
    },
    /// The run was cancelled (a probe timeout, an interrupt) while the
    /// scenario ran, and its container was killed.
    Cancelled,
}

impl std::fmt::Display for ScenarioReason {
    /// A sentence for people (the CLI's DETAIL column); the JSON keeps the fields.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScenarioReason::StraceUnavailable => write!(f, "strace cannot run here"),
            ScenarioReason::ScenarioTimeout { elapsed_ms } => {
                write!(f, "the scenario ran past its time limit ({elapsed_ms} ms)")
            }
            ScenarioReason::AggregateTimeout => {
                write!(f, "the run's time budget ran out before it started")
            }
            ScenarioReason::ImageBuildFailed { exit_code, .. } => match exit_code {
                Some(c) => write!(f, "the image build failed (exit code {c})"),
                None => write!(f, "the image build failed"),
            },
            ScenarioReason::ImageBuildTimeout { after_ms } => {
                write!(f, "the image build ran past its limit of {after_ms} ms")
            }
            ScenarioReason::ImageDigestUnresolved => write!(f, "no image digest could be resolved"),
            ScenarioReason::UnexpectedExit { code } => {
                write!(f, "the app exited unexpectedly with code {code}")
            }
            ScenarioReason::OutOfMemory { limit } => {
                write!(f, "the OOM killer ended the app (memory limit {limit})")
            }
            ScenarioReason::EngineUnavailable { detail } => {
                write!(f, "the container engine is unavailable: {detail}")
            }
            ScenarioReason::Other { detail } => f.write_str(detail),
            ScenarioReason::DiskLimit {
                limit_bytes,
                observed_bytes,
            } => write!(
                f,
                "the app wrote {observed_bytes} bytes into its filesystem, over the limit of {limit_bytes}"
            ),
            ScenarioReason::TraceTruncated {
                limit_bytes,
                trace_bytes,
            } => write!(
                f,
                "the trace ({trace_bytes} bytes) was cut at {limit_bytes} bytes; its evidence is incomplete"
            ),
            ScenarioReason::Cancelled => write!(f, "the run was cancelled"),
        }
    }
}

/// The outcome of one scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum ScenarioOutcome {
    /// Every step ran.
    Completed,
    /// It started but did not complete.
    Failed(ScenarioReason),
    /// It never started.
    Skipped(ScenarioReason),
}

/// One scenario's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// Scenario name (`startup`, `smoke_test`, ...).
    pub name: String,
    /// Completed, failed or skipped, with the reason.
    pub outcome: ScenarioOutcome,
    /// Wall-clock time of the scenario.
    pub wall_clock_ms: u64,
    /// How the traced app ended, if known.
    pub exit_status: Option<ExitStatus>,
    /// Signals the traced app received.
    pub signals_seen: Vec<String>,
    /// The parsed trace, when one was collected (failed scenarios may have one).
    pub trace: Option<ParsedTrace>,
    /// Path of the raw trace artifact relative to the context folder, if kept.
    pub artifact: Option<String>,
    /// `#!`/`PT_INTERP` interpreters of executed paths (`{path: interpreter}`).
    #[serde(default)]
    pub interpreters: BTreeMap<String, String>,
    /// Successful execs of scripts whose interpreter is a shell, counted per
    /// exec (the slice adds them to `shell_invocations`).
    #[serde(default)]
    pub script_shell_invocations: u64,
    /// Paths the app asked for that did not exist (ENOENT), as named.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub missing: BTreeSet<String>,
    /// Distinct execs with their argv (shell commands, runtime flags).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub execs: Vec<ExecRecord>,
    /// Where the scenario's time went, for a scenario that was started
    /// (absent in records written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases_ms: Option<PhasesMs>,
}

/// Milliseconds one scenario spent in each phase of
/// `runtime_trace::backend::run_one`, in order (docs/architecture.md,
/// "Runtime trace"). The phases follow one another, so their sum is at most
/// the scenario's `wall_clock_ms`. A phase a backend does not have is 0: the
/// host backend has no `create` or `install` (strace starts straight away)
/// and its `copy_out` only measures the trace strace wrote in place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PhasesMs {
    /// Creating the container (with the hardening and limits).
    pub create: u64,
    /// Putting the tool bundle where the app runs, when a scenario does it
    /// itself (0 when the run installed it once for every scenario).
    pub install: u64,
    /// Starting the app under strace (and the disk watch): for a container,
    /// spawning the attached engine client, which starts it.
    pub start: u64,
    /// Until the app runs (or a one-shot command already ended): for a
    /// container, the engine starting it. 0 for a one-shot command without
    /// steps, which nothing needs running: its start is in `steps`.
    pub ready: u64,
    /// The scenario's steps (or waiting for the one-shot command).
    pub steps: u64,
    /// Stopping the app: SIGTERM, the grace, SIGKILL, unless it had exited.
    pub stop: u64,
    /// Judging the end: the disk watch's last measurement, which also says
    /// whether the OOM killer struck.
    pub judge: u64,
    /// Bringing the trace to the host.
    pub copy_out: u64,
    /// Parsing the trace, interpreter lookups included.
    pub parse: u64,
    /// Removing what the scenario created.
    pub remove: u64,
}

impl PhasesMs {
    /// The phases' sum.
    pub fn total(&self) -> u64 {
        [
            self.create,
            self.install,
            self.start,
            self.ready,
            self.steps,
            self.stop,
            self.judge,
            self.copy_out,
            self.parse,
            self.remove,
        ]
        .iter()
        .sum()
    }
}

impl ScenarioResult {
    /// A result with `outcome` and nothing else yet (no trace, no time).
    pub fn new(name: &str, outcome: ScenarioOutcome) -> Self {
        ScenarioResult {
            name: name.to_owned(),
            outcome,
            wall_clock_ms: 0,
            exit_status: None,
            signals_seen: Vec::new(),
            trace: None,
            artifact: None,
            interpreters: BTreeMap::new(),
            script_shell_invocations: 0,
            missing: BTreeSet::new(),
            execs: Vec::new(),
            phases_ms: None,
        }
    }
}
