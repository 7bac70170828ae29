//! Portfolios: many repositories traced (and minimized, when asked) over
//! several engines, resumably (docs/architecture.md, "Portfolio").
//!
//! - [`manifest`]: the manifest, checked, with line-numbered errors, and
//!   the engines that answer at the start;
//! - [`journal`]: what is done, written as it happens, and fingerprints;
//! - [`run`](mod@run): the scheduler over engines and slots, requeueing off
//!   an engine that stops answering;
//! - [`report`]: the fleet report (JSON contract, markdown).

pub mod journal;
pub mod manifest;
pub mod report;
pub mod run;

pub use journal::{Journal, JournalError};
pub use manifest::{EngineAnswer, EngineCheck, EngineEntry, Manifest, ManifestError, RepoEntry};
pub use report::{FleetReport, MinimizeOutcome, RepoReport, RepoStatus};
pub use run::{
    run_portfolio, Counts, NoProgress, PortfolioError, PortfolioEvent, PortfolioOptions,
    PortfolioProgress,
};
