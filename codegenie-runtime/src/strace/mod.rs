//! The pure, streaming strace parser (DESIGN.md §4).

mod model;

pub use model::{ExitStatus, NetworkEndpoints, ParsedTrace, TraceFacts};

use std::collections::BTreeMap;
use std::io::BufRead;

/// Optional context for a parse.
#[derive(Debug, Clone, Default)]
pub struct ParseOptions {
    /// `#!`/`PT_INTERP` interpreters of executed paths (`{path: interpreter}`),
    /// read from the image by the probe (DESIGN.md §5). Empty for `parse-strace`.
    pub interpreters: BTreeMap<String, String>,
}

/// Parse one trace, streaming. Never panics; malformed lines are counted.
pub fn parse_trace<R: BufRead>(reader: R, opts: &ParseOptions) -> std::io::Result<TraceFacts> {
    let _ = (reader, opts);
    unimplemented!("strace parser: issue 4")
}
