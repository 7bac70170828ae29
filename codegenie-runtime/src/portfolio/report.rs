//! The fleet report (docs/architecture.md, "Portfolio"): per repository its
//! status, where its evidence came from, confidence, scenario outcomes, the
//! minimize outcome and blockers; per engine whether it stayed up; fleet
//! totals and the most common blockers. Serialised as the `--json` contract;
//! the CLI draws the table and markdown from the same value.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::atomic_file::{write_atomically, AtomicWriteError};
use crate::errors::error_chain;
use crate::redact::Redactor;

use crate::runtime_trace::results::ScenarioOutcome;
use crate::runtime_trace::slice::TraceCoverageConfidence;
use crate::runtime_trace::RuntimeTraceSlice;

use crate::minimal::minimize::MinimalImageReport;
use crate::minimal::verify::ScenarioComparison;

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetReport {
    /// The manifest.
    pub manifest: PathBuf,
    /// The prefix of every run label of this portfolio run.
    pub run_id: String,
    /// Wall-clock time of this run.
    pub wall_clock_ms: u64,
    /// Each engine and how it fared.
    pub engines: Vec<EngineReport>,
    /// Each repository, in manifest order.
    pub repositories: Vec<RepoReport>,
    /// Fleet totals.
    pub totals: Totals,
    /// Blockers by kind, most common first, with the repositories that have them.
    pub common_blockers: Vec<BlockerCount>,
}

/// One engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineReport {
    /// The engine (`DOCKER_HOST` value or `context <name>`).
    pub engine: String,
    /// Its slots.
    pub slots: u32,
    /// Repositories it finished (done or failed) in this run.
    pub repositories_finished: u32,
    /// Up, down with what it said and which repositories moved away, or
    /// unreachable from the start.
    pub state: EngineState,
}

/// Whether an engine answered, from the start to the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum EngineState {
    /// It answered until the end.
    Up,
    /// It stopped answering during the run.
    Down {
        /// What the client said.
        detail: String,
        /// Repositories that were running on it and were queued again.
        requeued: Vec<String>,
    },
    /// It did not answer when the run started: the run went on with the
    /// other engines and sent it no repository.
    Unreachable {
        /// What the client said.
        detail: String,
    },
}

/// An engine's error as the fleet report keeps it: the chain, redacted
/// (the report and the terminal are read in CI logs, and the client's
/// stderr can quote a proxy URL with its credentials).
pub(crate) fn engine_detail(e: &crate::engine::EngineError) -> String {
    Redactor::new().redact_str(&error_chain(e))
}

/// A repository's status in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepoStatus {
    /// Traced in this run (ran or a cache hit).
    Done,
    /// Could not be traced; `error` says why.
    Failed,
    /// Done in an earlier run and unchanged since (the journal): not run again.
    Skipped,
}

/// Where a repository's evidence came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceSource {
    /// The scenarios ran in this run.
    Ran,
    /// The repository's cache held the trace for its current inputs.
    CacheHit,
    /// The portfolio journal: done in an earlier run, inputs unchanged.
    Journal,
}

/// One scenario, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioLine {
    /// Its name.
    pub name: String,
    /// `completed`, `failed` or `skipped`.
    pub outcome: String,
    /// Why, when not completed.
    pub reason: Option<String>,
    /// Its wall-clock time (absent in journals written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_clock_ms: Option<u64>,
}

/// Something that keeps a repository from a distroless base.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Blocker {
    /// `shell`, `privileged_port`, ... (the kinds of the minimize report).
    pub kind: String,
    /// What shows it (paths, endpoints).
    pub evidence: Vec<String>,
}

/// What the minimize step gave for one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
#[non_exhaustive]
pub enum MinimizeOutcome {
    /// The manifest did not ask for it.
    NotRequested,
    /// It cannot run in this build or on this repository.
    Unavailable {
        /// Why.
        reason: String,
    },
    /// It ran.
    Done(MinimalImage),
    /// It ran and failed.
    Failed {
        /// The error chain.
        error: String,
    },
}

/// A minimal image and its verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinimalImage {
    /// The image id or tag in the engine.
    pub minimal_image: String,
    /// Every scenario that completed on the original completed on the
    /// minimal image, with no new missing path.
    pub verified: bool,
    /// Sizes of the original and the minimal image.
    pub size_bytes: ImageSizes,
    /// What stands between the repository and a distroless base.
    pub blockers: Vec<Blocker>,
    /// Every scenario on both images (the traced ones, then the extra
    /// verification ones); absent from journals written before it was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scenarios: Vec<ScenarioComparison>,
}

/// Image sizes in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSizes {
    /// The repository's own image.
    pub original: u64,
    /// The minimal image.
    pub minimal: u64,
}

impl MinimizeOutcome {
    /// The fleet report's view of a repository's minimal-image report.
    pub fn of(report: &MinimalImageReport) -> MinimizeOutcome {
        MinimizeOutcome::Done(MinimalImage {
            minimal_image: report.minimal_image.clone(),
            verified: report.verified,
            size_bytes: ImageSizes {
                original: report.size_bytes.original,
                minimal: report.size_bytes.minimal,
            },
            blockers: report
                .blockers
                .iter()
                .map(|b| Blocker {
                    kind: b.kind().to_owned(),
                    evidence: b.evidence(),
                })
                .collect(),
            scenarios: report
                .scenarios
                .iter()
                .chain(report.verify_with.iter().flat_map(|v| &v.scenarios))
                .cloned()
                .collect(),
        })
    }
}

/// The fleet report's file names in the state folder.
pub const REPORT_JSON: &str = "report.json";
/// The markdown report's file name in the state folder.
pub const REPORT_MARKDOWN: &str = "report.md";

/// One repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoReport {
    /// The path as written in the manifest.
    pub path: String,
    /// The engine that produced its evidence.
    pub engine: Option<String>,
    /// Done, failed or skipped.
    pub status: RepoStatus,
    /// Where the evidence came from.
    pub evidence: Option<EvidenceSource>,
    /// Trace coverage confidence.
    pub confidence: Option<TraceCoverageConfidence>,
    /// Each scenario's outcome.
    pub scenarios: Vec<ScenarioLine>,
    /// Whether the minimal image was verified (when minimized).
    pub verified: Option<bool>,
    /// Image sizes (when minimized).
    pub size_bytes: Option<ImageSizes>,
    /// The minimize step's outcome.
    pub minimize: MinimizeOutcome,
    /// What keeps it from a distroless base.
    pub blockers: Vec<Blocker>,
    /// Why it failed.
    pub error: Option<String>,
    /// Engines it was started on before the one that finished it, and why it moved.
    pub requeued_from: Vec<Requeue>,
    /// Time spent on it in this run.
    pub duration_ms: u64,
    /// Its `runtime_trace.json`, when written.
    pub slice_path: Option<PathBuf>,
}

/// A repository moved off an engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requeue {
    /// The engine it left.
    pub engine: String,
    /// What the engine said.
    pub detail: String,
}

/// Fleet totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Repositories in the manifest.
    pub repositories: u32,
    /// Traced in this run.
    pub done: u32,
    /// Could not be traced.
    pub failed: u32,
    /// Done earlier, skipped now.
    pub skipped: u32,
    /// Ready for a distroless base: a verified minimal image and no blockers.
    pub ready: u32,
    /// Traced but without a verified minimal image (not minimized, or
    /// minimize unavailable): whether a distroless base fits is unknown.
    pub unverified: u32,
    /// Engines that did not answer when the run started (absent from
    /// reports kept before it was counted).
    #[serde(default)]
    pub engines_unreachable: u32,
}

/// One blocker kind across the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockerCount {
    /// The kind.
    pub kind: String,
    /// The repositories that have it.
    pub repositories: Vec<String>,
}

/// The blockers a trace alone shows: a shell ran (distroless images have
/// none), the app bound a port below 1024 (needs root or a capability).
pub fn trace_blockers(slice: &RuntimeTraceSlice) -> Vec<Blocker> {
    let mut out = Vec::new();
    if slice.shell_invocations > 0 {
        let mut evidence: Vec<String> = slice
            .binaries_executed
            .iter()
            .filter(|p| {
                let base = p.rsplit('/').next().unwrap_or(p);
                crate::strace::rules::is_shell(base)
            })
            .cloned()
            .collect();
        evidence.insert(
            0,
            format!("{} shell invocation(s)", slice.shell_invocations),
        );
        out.push(Blocker {
            kind: "shell".to_owned(),
            evidence,
        });
    }
    let privileged: Vec<String> = slice
        .network_endpoints_touched
        .inbound
        .iter()
        .filter(|a| {
            a.rsplit(':')
                .next()
                .and_then(|p| p.parse::<u16>().ok())
                .is_some_and(|p| p < 1024)
        })
        .cloned()
        .collect();
    if !privileged.is_empty() {
        out.push(Blocker {
            kind: "privileged_port".to_owned(),
            evidence: privileged,
        });
    }
    out
}

/// The scenario lines of a slice.
pub fn scenario_lines(slice: &RuntimeTraceSlice) -> Vec<ScenarioLine> {
    slice
        .scenarios
        .iter()
        .map(|s| {
            let (outcome, reason) = match &s.outcome {
                ScenarioOutcome::Completed => ("completed", None),
                ScenarioOutcome::Failed(r) => ("failed", Some(r.to_string())),
                ScenarioOutcome::Skipped(r) => ("skipped", Some(r.to_string())),
            };
            ScenarioLine {
                name: s.name.clone(),
                outcome: outcome.to_owned(),
                reason,
                wall_clock_ms: Some(s.wall_clock_ms),
            }
        })
        .collect()
}

impl RepoReport {
    /// Ready for a distroless base: evidence in hand, a verified minimal
    /// image, no blockers.
    pub fn ready(&self) -> bool {
        self.status != RepoStatus::Failed && self.verified == Some(true) && self.blockers.is_empty()
    }
}

/// Totals and common blockers of `repositories`.
pub fn summarize(repositories: &[RepoReport]) -> (Totals, Vec<BlockerCount>) {
    let mut t = Totals {
        repositories: repositories.len() as u32,
        ..Totals::default()
    };
    let mut by_kind: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in repositories {
        match r.status {
            RepoStatus::Done => t.done += 1,
            RepoStatus::Failed => t.failed += 1,
            RepoStatus::Skipped => t.skipped += 1,
        }
        if r.ready() {
            t.ready += 1;
        } else if r.status != RepoStatus::Failed && r.verified.is_none() {
            t.unverified += 1;
        }
        for b in &r.blockers {
            let list = by_kind.entry(b.kind.as_str()).or_default();
            if !list.contains(&r.path) {
                list.push(r.path.clone());
            }
        }
    }
    let mut common: Vec<BlockerCount> = by_kind
        .into_iter()
        .map(|(kind, repositories)| BlockerCount {
            kind: kind.to_owned(),
            repositories,
        })
        .collect();
    // Most common first; ties by kind, so the order is stable.
    common.sort_by(|a, b| {
        b.repositories
            .len()
            .cmp(&a.repositories.len())
            .then(a.kind.cmp(&b.kind))
    });
    (t, common)
}

impl FleetReport {
    /// Write `report.json` and `report.md` into `state_dir`, atomically.
    /// Both are redacted as every file we write is: a repository's error
    /// and a blocker's evidence (a shell's argv) carry what the app and
    /// the engine said.
    pub fn save(&self, state_dir: &std::path::Path) -> Result<(), AtomicWriteError> {
        write_atomically(&state_dir.join(REPORT_JSON), |w| {
            let mut tree = serde_json::to_value(self).map_err(std::io::Error::other)?;
            crate::redact::redact_json(&mut tree);
            serde_json::to_writer_pretty(&mut *w, &tree).map_err(std::io::Error::other)?;
            w.write_all(b"\n")
        })?;
        let md = Redactor::new().redact_str(&self.to_markdown());
        write_atomically(&state_dir.join(REPORT_MARKDOWN), |w| {
            w.write_all(md.as_bytes())
        })
    }

    /// The report as markdown (a pull request comment, a wiki page).
    pub fn to_markdown(&self) -> String {
        use std::fmt::Write;
        let t = &self.totals;
        let mut s = String::new();
        let _ = writeln!(s, "# Fleet report: {}\n", self.manifest.display());
        let _ = writeln!(
            s,
            "{} repositories: {} done, {} skipped (done earlier), {} failed; **{} ready** for a distroless base, {} without a verified minimal image.\n",
            t.repositories, t.done, t.skipped, t.failed, t.ready, t.unverified
        );
        s.push_str("| repository | engine | status | evidence | confidence | scenarios | minimal image | blockers |\n");
        s.push_str("|---|---|---|---|---|---|---|---|\n");
        for r in &self.repositories {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                md_cell(&r.path),
                md_cell(r.engine.as_deref().unwrap_or("-")),
                r.status.as_str(),
                r.evidence.map_or("-", EvidenceSource::as_str),
                r.confidence.map_or("-", confidence_str),
                md_cell(&scenario_summary(&r.scenarios)),
                md_cell(&minimal_summary(r)),
                md_cell(&blocker_summary(&r.blockers)),
            );
        }
        if !self.common_blockers.is_empty() {
            s.push_str("\n## Most common blockers\n\n");
            for b in &self.common_blockers {
                let _ = writeln!(
                    s,
                    "- `{}`: {} ({})",
                    b.kind,
                    b.repositories.len(),
                    md_cell(&b.repositories.join(", "))
                );
            }
        }
        let failures: Vec<&RepoReport> = self
            .repositories
            .iter()
            .filter(|r| r.error.is_some())
            .collect();
        if !failures.is_empty() {
            s.push_str("\n## Failures\n\n");
            for r in failures {
                let _ = writeln!(
                    s,
                    "- {}: {}",
                    md_cell(&r.path),
                    md_cell(r.error.as_deref().unwrap_or(""))
                );
            }
        }
        s.push_str("\n## Engines\n\n");
        for e in &self.engines {
            let state = match &e.state {
                EngineState::Up => "up".to_owned(),
                EngineState::Down { detail, requeued } => format!(
                    "**stopped answering** ({}); moved to other engines: {}",
                    md_cell(detail),
                    md_cell(&requeued.join(", "))
                ),
                EngineState::Unreachable { detail } => {
                    format!("**unreachable**: {}", md_cell(detail))
                }
            };
            let _ = writeln!(
                s,
                "- {} ({} slots): {} finished, {state}",
                md_cell(&e.engine),
                e.slots,
                e.repositories_finished
            );
        }
        s
    }
}

impl RepoStatus {
    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            RepoStatus::Done => "done",
            RepoStatus::Failed => "failed",
            RepoStatus::Skipped => "skipped",
        }
    }
}

impl EvidenceSource {
    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceSource::Ran => "ran",
            EvidenceSource::CacheHit => "cache_hit",
            EvidenceSource::Journal => "journal",
        }
    }
}

/// The JSON name of a confidence.
pub fn confidence_str(c: TraceCoverageConfidence) -> &'static str {
    match c {
        TraceCoverageConfidence::High => "high",
        TraceCoverageConfidence::Medium => "medium",
        TraceCoverageConfidence::Low => "low",
        TraceCoverageConfidence::Unavailable => "unavailable",
    }
}

/// `4/5 completed (error_path: failed)`.
pub fn scenario_summary(lines: &[ScenarioLine]) -> String {
    if lines.is_empty() {
        return "-".to_owned();
    }
    let done = lines.iter().filter(|l| l.outcome == "completed").count();
    let others: Vec<String> = lines
        .iter()
        .filter(|l| l.outcome != "completed")
        .map(|l| format!("{}: {}", l.name, l.outcome))
        .collect();
    if others.is_empty() {
        format!("{done}/{} completed", lines.len())
    } else {
        format!("{done}/{} completed ({})", lines.len(), others.join(", "))
    }
}

/// `verified, 12.0 MB → 3.1 MB`, or the minimize outcome.
pub fn minimal_summary(r: &RepoReport) -> String {
    match &r.minimize {
        MinimizeOutcome::NotRequested => "not requested".to_owned(),
        MinimizeOutcome::Unavailable { reason } => format!("unavailable: {reason}"),
        MinimizeOutcome::Failed { error } => format!("failed: {error}"),
        MinimizeOutcome::Done(m) => format!(
            "{}, {} → {} bytes",
            if m.verified {
                "verified"
            } else {
                "NOT verified"
            },
            m.size_bytes.original,
            m.size_bytes.minimal
        ),
    }
}

/// `shell, privileged_port`, or `-`.
pub fn blocker_summary(b: &[Blocker]) -> String {
    if b.is_empty() {
        "-".to_owned()
    } else {
        b.iter()
            .map(|b| b.kind.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Text safe in a markdown table cell.
fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(path: &str, status: RepoStatus, verified: Option<bool>, kinds: &[&str]) -> RepoReport {
        RepoReport {
            path: path.into(),
            engine: None,
            status,
            evidence: None,
            confidence: None,
            scenarios: Vec::new(),
            verified,
            size_bytes: None,
            minimize: MinimizeOutcome::NotRequested,
            blockers: kinds
                .iter()
                .map(|k| Blocker {
                    kind: (*k).into(),
                    evidence: Vec::new(),
                })
                .collect(),
            error: None,
            requeued_from: Vec::new(),
            duration_ms: 0,
            slice_path: None,
        }
    }

    #[test]
    fn totals_and_common_blockers() {
        let repos = [
            repo("a", RepoStatus::Done, Some(true), &[]),
            repo("b", RepoStatus::Done, Some(true), &["shell"]),
            repo(
                "c",
                RepoStatus::Skipped,
                None,
                &["shell", "privileged_port"],
            ),
            repo("d", RepoStatus::Failed, None, &[]),
        ];
        let (t, common) = summarize(&repos);
        assert_eq!(
            t,
            Totals {
                repositories: 4,
                done: 2,
                failed: 1,
                skipped: 1,
                ready: 1,
                unverified: 1,
                engines_unreachable: 0,
            }
        );
        assert_eq!(common[0].kind, "shell");
        assert_eq!(common[0].repositories, ["b", "c"]);
        assert_eq!(common[1].kind, "privileged_port");
    }

    #[test]
    fn the_saved_report_is_redacted_and_still_reads() {
        let mut failed = repo("a", RepoStatus::Failed, None, &["shell"]);
        failed.error =
            Some("build failed: https://admin:hunter2hunter2@127.0.0.1:5000/v2/".to_owned());
        failed.blockers[0].evidence = vec!["argv: /app/prepare.sh password=hunter2fixture".into()];
        let report = FleetReport {
            manifest: "fleet.yaml".into(),
            run_id: "r".to_owned(),
            wall_clock_ms: 0,
            engines: Vec::new(),
            repositories: vec![failed],
            totals: Totals::default(),
            common_blockers: Vec::new(),
        };
        // The control: the report itself holds both secrets.
        let raw = serde_json::to_string(&report).unwrap() + &report.to_markdown();
        assert!(raw.contains("hunter2fixture") && raw.contains("hunter2hunter2"));
        let dir = tempfile::tempdir().unwrap();
        report.save(dir.path()).unwrap();
        for name in [REPORT_JSON, REPORT_MARKDOWN] {
            let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
            assert!(!text.contains("hunter2"), "{name}: {text}");
            assert!(text.contains("[REDACTED:"), "{name}: {text}");
        }
        let json = std::fs::read(dir.path().join(REPORT_JSON)).unwrap();
        let back: FleetReport = serde_json::from_slice(&json).unwrap();
        assert_eq!(back.repositories[0].path, "a");
    }

    #[test]
    fn an_unreachable_engine_reads_as_its_state_in_json_and_markdown() {
        let state = EngineState::Unreachable {
            detail: "no socket".to_owned(),
        };
        assert_eq!(
            serde_json::to_value(&state).unwrap(),
            serde_json::json!({"status": "unreachable", "detail": "no socket"})
        );
        let report = FleetReport {
            manifest: "fleet.yaml".into(),
            run_id: "r".to_owned(),
            wall_clock_ms: 0,
            engines: vec![EngineReport {
                engine: "unix:///b.sock".to_owned(),
                slots: 2,
                repositories_finished: 0,
                state,
            }],
            repositories: Vec::new(),
            totals: Totals::default(),
            common_blockers: Vec::new(),
        };
        let md = report.to_markdown();
        assert!(
            md.contains("- unix:///b.sock (2 slots): 0 finished, **unreachable**: no socket\n"),
            "{md}"
        );
        // A report kept before the count existed still reads.
        let mut old = serde_json::to_value(&report).unwrap();
        old["totals"]
            .as_object_mut()
            .unwrap()
            .remove("engines_unreachable");
        assert_eq!(serde_json::from_value::<FleetReport>(old).unwrap(), report);
    }

    #[test]
    fn blockers_from_a_trace() {
        let mut slice: RuntimeTraceSlice = serde_json::from_value(serde_json::json!({
            "artifact_uri": null, "per_scenario_artifacts": {}, "scenarios_run": [],
            "scenarios_failed": [], "scenarios_skipped": [],
            "binaries_executed": ["/app/start.sh", "/bin/sh", "/bin/busybox"],
            "shared_libs_loaded": [], "cert_paths_read": [],
            "files_read_at_runtime": {"summary": {"cert":0,"shared_lib":0,"config":0,"node_modules":0,"system":0,"app":0,"total":0}, "full_list_uri": null},
            "paths_probed_at_runtime": {"total": 0, "full_list_uri": null}, "resolved": {},
            "files_written": [], "shell_invocations": 2,
            "network_endpoints_touched": {"outbound": [], "inbound": ["0.0.0.0:80", "[::]:8080"]},
            "unix_sockets": [], "interpreters": {}, "built_image_digest": null,
            "last_traced_image_digest": null, "trace_coverage_confidence": "high",
            "tls_trust": {"node_ca_mode": null, "env": {}, "certs_read": false, "outbound_attempted": false, "verdict": "not_observed"},
            "scenarios": []
        }))
        .unwrap();
        let b = trace_blockers(&slice);
        assert_eq!(b[0].kind, "shell");
        assert_eq!(b[0].evidence, ["2 shell invocation(s)", "/bin/sh"]);
        assert_eq!(b[1].kind, "privileged_port");
        assert_eq!(b[1].evidence, ["0.0.0.0:80"]);
        // Control: no shell and an unprivileged port give no blocker.
        slice.shell_invocations = 0;
        slice.network_endpoints_touched.inbound = ["[::]:8080".to_owned()].into();
        assert!(trace_blockers(&slice).is_empty());
    }
}
