//! What happened to each probe of a gather: the coordinator produces these
//! records, the writer stores their outputs, the CLI reports them.

use std::sync::Arc;

use serde::Serialize;

use crate::probe::ProbeOutput;

/// What happened to one probe.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum ProbeStatus {
    /// `run` completed.
    Ran,
    /// The output came from the cache; `run` was not entered.
    CacheHit,
    /// The probe did not run.
    Skipped {
        /// Why.
        reason: String,
    },
    /// `run` returned an error or panicked.
    Failed {
        /// The error.
        error: String,
    },
    /// `run` ran past the probe's timeout and was abandoned.
    TimedOut {
        /// The timeout.
        after_ms: u64,
    },
}

/// One probe's record.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeRecord {
    /// Probe name.
    pub name: &'static str,
    /// What happened.
    pub status: ProbeStatus,
    /// Time spent, including the cache lookup.
    pub duration_ms: u64,
    /// The cache key, when one was computed.
    pub cache_key: Option<String>,
    /// The output, for `Ran` and `CacheHit`.
    #[serde(skip)]
    pub output: Option<ProbeOutput>,
    /// Warnings from the coordinator (cache problems, ...).
    pub warnings: Vec<String>,
    /// The probe's scratch folder; removed when the last clone of the record
    /// is dropped (after the writer has stored the output).
    #[serde(skip)]
    pub scratch: Option<Arc<tempfile::TempDir>>,
}

/// The records of one gather, in run order.
#[derive(Debug, Clone, Serialize)]
pub struct GatherReport {
    /// One record per probe considered.
    pub records: Vec<ProbeRecord>,
}
