//! The minimize step of a portfolio (docs/architecture.md, "Portfolio"):
//! after a repository's trace, when the manifest asks for it, a
//! [`MinimizeStep`] builds and verifies the minimal image: [`Readiness`],
//! what `codegenie minimize` runs, on the repository's own engine.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::errors::error_chain;
use crate::minimal::probe::ReadinessReport;
use crate::probe::{Confidence, ProbeContext, ProbeOutput};
use crate::runtime_trace::{Backend, TraceSettings, PROBE_NAME};

use crate::engine::EngineEndpoint;
use crate::probe::RepoSnapshot;
use crate::runtime_trace::RuntimeTraceSlice;

use super::report::Blocker;

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
}

/// Image sizes in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSizes {
    /// The repository's own image.
    pub original: u64,
    /// The minimal image.
    pub minimal: u64,
}

/// Builds and verifies a repository's minimal image from its trace.
pub trait MinimizeStep: Send + Sync {
    /// Minimize `repo` on the engine at `endpoint`, from its trace `slice`.
    fn minimize(
        &self,
        repo: &RepoSnapshot,
        endpoint: &EngineEndpoint,
        slice: &RuntimeTraceSlice,
    ) -> MinimizeOutcome;
}

/// The minimize step of `codegenie minimize`: the distroless readiness
/// probe on the repository's engine, from the trace the portfolio just took.
#[derive(Debug, Clone, Copy, Default)]
pub struct Readiness;

impl MinimizeStep for Readiness {
    fn minimize(
        &self,
        repo: &RepoSnapshot,
        endpoint: &EngineEndpoint,
        slice: &RuntimeTraceSlice,
    ) -> MinimizeOutcome {
        let trace = match serde_json::to_value(slice) {
            Ok(v) => v,
            Err(e) => {
                return MinimizeOutcome::Failed {
                    error: e.to_string(),
                }
            }
        };
        let mut earlier = BTreeMap::new();
        earlier.insert(
            PROBE_NAME.to_owned(),
            ProbeOutput::new(trace, Confidence::Low),
        );
        let mut ctx = ProbeContext {
            earlier: Arc::new(earlier),
            ..ProbeContext::default()
        };
        ctx.settings.insert(TraceSettings {
            backend: Some(Backend::Container),
            endpoint: endpoint.clone(),
            ..TraceSettings::default()
        });
        let out = match crate::minimal::probe::readiness(repo, &ctx) {
            Ok(out) => out,
            Err(e) => {
                return MinimizeOutcome::Failed {
                    error: error_chain(&e),
                }
            }
        };
        let report: ReadinessReport = match serde_json::from_value(out.schema_slice) {
            Ok(r) => r,
            Err(e) => {
                return MinimizeOutcome::Failed {
                    error: e.to_string(),
                }
            }
        };
        MinimizeOutcome::Done(MinimalImage {
            minimal_image: report.minimal_image,
            verified: report.verified,
            size_bytes: ImageSizes {
                original: report.size_bytes.original,
                minimal: report.size_bytes.minimal,
            },
            blockers: report.blockers.iter().map(blocker).collect(),
        })
    }
}

/// A readiness blocker as the fleet report counts it: its kind and evidence.
fn blocker(b: &crate::minimal::readiness::Blocker) -> Blocker {
    let value = serde_json::to_value(b).unwrap_or_default();
    let kind = value["kind"].as_str().unwrap_or("unknown").to_owned();
    let evidence = value
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "kind")
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}: {s}"),
            other => format!("{k}: {other}"),
        })
        .collect();
    Blocker { kind, evidence }
}
