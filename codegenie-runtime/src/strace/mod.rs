//! The pure, streaming strace parser (DESIGN.md §4).
//!
//! Text written by `strace -f` goes in (with or without `-o`, `-y`,
//! `-t/-tt/-ttt/-r`); [`TraceFacts`] come out. Lines are scanned with
//! `memchr` straight from the reader's buffer, only the syscalls the facts
//! come from are parsed, and memory grows with the number of distinct facts
//! and live processes, never with the trace's size.

mod call;
mod collect;
mod join;
mod lines;
mod model;
pub mod paths;
mod pidhash;
mod prefix;
mod procs;
pub mod rules;
mod sockaddr;
mod unescape;

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
/// The only error is the reader's own I/O error.
pub fn parse_trace<R: BufRead>(reader: R, opts: &ParseOptions) -> std::io::Result<TraceFacts> {
    let mut collector = collect::Collector::new(opts, None);
    lines::for_each_line(reader, |line| match line {
        lines::Line::Text(t) => collector.line(t),
        lines::Line::Overlong => collector.malformed(),
    })?;
    Ok(collector.finish().0)
}

/// Parse one trace in a single pass, asking `lookup` for the interpreter
/// (`#!` or `PT_INTERP`) of each executed path that `opts.interpreters` does
/// not know, once per path, at its first exec. Returns the facts and every
/// interpreter found (`{path: interpreter}`, chains included).
pub fn parse_trace_with_lookup<R: BufRead>(
    reader: R,
    opts: &ParseOptions,
    lookup: &mut dyn FnMut(&str) -> Option<String>,
) -> std::io::Result<(TraceFacts, BTreeMap<String, String>)> {
    let mut collector = collect::Collector::new(opts, Some(lookup));
    lines::for_each_line(reader, |line| match line {
        lines::Line::Text(t) => collector.line(t),
        lines::Line::Overlong => collector.malformed(),
    })?;
    Ok(collector.finish())
}

/// Decoding of strace C-string literals (exposed for property tests).
pub mod literal {
    /// Decodes a literal's content (without quotes) to bytes.
    pub fn unescape(lit: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(lit.len());
        super::unescape::unescape_into(lit, &mut out);
        out
    }

    /// Renders bytes as UTF-8 text, each invalid byte as `\xHH`.
    pub fn render(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len());
        super::unescape::render_into(bytes, &mut out);
        out
    }
}

impl ParsedTrace {
    /// Adds every fact of `other` (sets are unioned, counts summed).
    pub fn union(&mut self, other: &ParsedTrace) {
        self.binaries_executed
            .extend(other.binaries_executed.iter().cloned());
        self.shared_libs_loaded
            .extend(other.shared_libs_loaded.iter().cloned());
        self.cert_paths_read
            .extend(other.cert_paths_read.iter().cloned());
        self.files_read.extend(other.files_read.iter().cloned());
        self.files_written
            .extend(other.files_written.iter().cloned());
        self.shell_invocations += other.shell_invocations;
        self.network_endpoints_touched
            .outbound
            .extend(other.network_endpoints_touched.outbound.iter().cloned());
        self.network_endpoints_touched
            .inbound
            .extend(other.network_endpoints_touched.inbound.iter().cloned());
        self.unix_sockets.extend(other.unix_sockets.iter().cloned());
    }
}
