//! The pure, streaming strace parser (DESIGN.md §4).

mod model;

pub use model::{ExitStatus, NetworkEndpoints, ParsedTrace, TraceFacts};
