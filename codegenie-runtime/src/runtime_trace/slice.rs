//! The runtime_trace slice (DESIGN.md §5) and the pure aggregator that builds it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::model::ScenarioResult;
use crate::probe::Confidence;
use crate::strace::NetworkEndpoints;

/// How much of the scenario set completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceCoverageConfidence {
    /// Every scenario (at least two) completed.
    High,
    /// Some completed.
    Medium,
    /// Only `startup` completed.
    Low,
    /// None completed.
    Unavailable,
}

impl TraceCoverageConfidence {
    /// The probe envelope's confidence (`unavailable` maps to `low`).
    pub fn envelope(self) -> Confidence {
        match self {
            TraceCoverageConfidence::High => Confidence::High,
            TraceCoverageConfidence::Medium => Confidence::Medium,
            TraceCoverageConfidence::Low | TraceCoverageConfidence::Unavailable => Confidence::Low,
        }
    }
}

/// `files_read_at_runtime.summary`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCategorySummary {
    /// Certificates.
    pub cert: u64,
    /// Shared libraries.
    pub shared_lib: u64,
    /// `/etc/...`.
    pub config: u64,
    /// Under `/node_modules/`.
    pub node_modules: u64,
    /// `/usr/`, `/lib*/`, `/bin/`, `/sbin/`, `/opt/`.
    pub system: u64,
    /// Everything else.
    pub app: u64,
    /// All files read.
    pub total: u64,
}

/// `files_read_at_runtime`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesReadAtRuntime {
    /// Counts by category.
    pub summary: FileCategorySummary,
    /// Where the full list is stored (relative to the context folder).
    pub full_list_uri: Option<String>,
}

/// The runtime_trace slice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeTraceSlice {
    /// The folder of raw artifacts (relative to the context folder).
    pub artifact_uri: Option<String>,
    /// Raw trace per scenario (null when none was kept).
    pub per_scenario_artifacts: BTreeMap<String, Option<String>>,
    /// Names of completed scenarios.
    pub scenarios_run: Vec<String>,
    /// Names of failed scenarios.
    pub scenarios_failed: Vec<String>,
    /// Names of skipped scenarios.
    pub scenarios_skipped: Vec<String>,
    /// Union over scenarios, plus interpreters of executed scripts/ELFs.
    pub binaries_executed: BTreeSet<String>,
    /// Union over scenarios.
    pub shared_libs_loaded: BTreeSet<String>,
    /// Union over scenarios.
    pub cert_paths_read: BTreeSet<String>,
    /// Summary of files read, by category.
    pub files_read_at_runtime: FilesReadAtRuntime,
    /// Union over scenarios.
    pub files_written: BTreeSet<String>,
    /// Sum over scenarios, plus execs of scripts whose interpreter is a shell.
    pub shell_invocations: u64,
    /// Union over scenarios.
    pub network_endpoints_touched: NetworkEndpoints,
    /// Union over scenarios.
    pub unix_sockets: BTreeSet<String>,
    /// `{path: interpreter}` for executed paths.
    pub interpreters: BTreeMap<String, String>,
    /// Digest of the image built now.
    pub built_image_digest: Option<String>,
    /// Digest of the image the traces come from.
    pub last_traced_image_digest: Option<String>,
    /// Coverage confidence.
    pub trace_coverage_confidence: TraceCoverageConfidence,
    /// Every scenario's result.
    pub scenarios: Vec<ScenarioResult>,
}

/// What the aggregator needs besides the results.
#[derive(Debug, Clone, Default)]
pub struct AggregateInputs {
    /// Digest of the image built now.
    pub built_image_digest: Option<String>,
    /// Digest of the image traced.
    pub last_traced_image_digest: Option<String>,
    /// Folder of raw artifacts, relative to the context folder (e.g. `raw`).
    pub artifact_uri: Option<String>,
    /// Where the full files-read list is stored, relative to the context folder.
    pub full_list_uri: Option<String>,
}

/// Build the slice from scenario results (pure).
pub fn aggregate(results: &[ScenarioResult], inputs: &AggregateInputs) -> RuntimeTraceSlice {
    let _ = (results, inputs);
    unimplemented!("aggregator: issue 4")
}
