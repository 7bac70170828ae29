//! The minimize step of a portfolio (docs/architecture.md, "Portfolio"):
//! after a repository's trace, when the manifest asks for it, a
//! [`MinimizeStep`] builds and verifies the minimal image. This build has no
//! minimize command, so [`NotInThisBuild`] answers every repository with
//! [`MinimizeOutcome::Unavailable`]: a typed outcome in the report, never an
//! invented result.

use serde::{Deserialize, Serialize};

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

/// The reason [`NotInThisBuild`] gives.
pub const NOT_IN_THIS_BUILD: &str = "minimize is not available in this build";

/// The minimize step of a build without `codegenie minimize`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotInThisBuild;

impl MinimizeStep for NotInThisBuild {
    fn minimize(
        &self,
        _repo: &RepoSnapshot,
        _endpoint: &EngineEndpoint,
        _slice: &RuntimeTraceSlice,
    ) -> MinimizeOutcome {
        MinimizeOutcome::Unavailable {
            reason: NOT_IN_THIS_BUILD.to_owned(),
        }
    }
}
