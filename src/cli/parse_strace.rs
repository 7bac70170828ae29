//! `codegenie parse-strace FILE [FILE...]`: the facts of strace output as
//! ParsedTrace JSON (several files are unioned; `-` reads stdin).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use codegenie_runtime::strace::{
    parse_file_sorted, parse_trace_sorted, ParseOptions, ParsedTrace, SortedFacts,
};

use super::CliError;

/// Arguments of `codegenie parse-strace`.
#[derive(Debug, Args)]
pub struct ParseStraceArgs {
    /// Trace files written by `strace -f` (`-` for stdin).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Also report, on stderr, how many lines were skipped as malformed.
    #[arg(long)]
    pub stats: bool,
}

/// A trace that could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseStraceError {
    /// Opening the file failed.
    #[error("cannot open {path}")]
    Open {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Reading the file failed part-way.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

pub(super) fn run(args: ParseStraceArgs) -> Result<u8, CliError> {
    let opts = ParseOptions::default();
    let mut out = io::stdout().lock();
    if let [file] = args.files.as_slice() {
        // One trace: its path sets are printed from the sorted buffers the
        // parse leaves them in, never made into a `String` each.
        let facts = parse_file(file, &opts, args.stats)?;
        facts.write_json_pretty(&mut out)?;
        finish_output(&mut out)?;
        // The process ends here: freeing every path would cost time for
        // nothing (docs/architecture.md, "Benchmarks").
        std::mem::forget(facts);
        return Ok(0);
    }
    let mut union = ParsedTrace::default();
    // What a trace found beyond the union's facts, kept to the end unfreed
    // like them.
    let mut unfreed = Vec::new();
    for file in &args.files {
        let facts = parse_file(file, &opts, args.stats)?.into_facts();
        union.merge(facts.trace);
        unfreed.push(facts.missing);
    }
    union.write_json_pretty(&mut out)?;
    finish_output(&mut out)?;
    // The process ends here: freeing every path one by one would cost a
    // twentieth of the run on a trace of 100k+ distinct files
    // (docs/architecture.md, "Benchmarks").
    std::mem::forget(union);
    std::mem::forget(unfreed);
    Ok(0)
}

/// The facts of one trace file (`-`: stdin), its count of malformed lines
/// on stderr when `stats`.
fn parse_file(file: &Path, opts: &ParseOptions, stats: bool) -> Result<SortedFacts, CliError> {
    let name = file.display().to_string();
    let facts = if name == "-" {
        parse_trace_sorted(io::stdin().lock(), opts).map_err(|source| ParseStraceError::Read {
            path: "<stdin>".into(),
            source,
        })?
    } else {
        let f = File::open(file).map_err(|source| ParseStraceError::Open {
            path: name.clone(),
            source,
        })?;
        parse_file_sorted(&f, opts).map_err(|source| ParseStraceError::Read {
            path: name.clone(),
            source,
        })?
    };
    if stats {
        eprintln!(
            "{name}: {} malformed line(s) skipped",
            facts.malformed_lines()
        );
    }
    Ok(facts)
}

/// The newline after the JSON, and the rest of it out. The JSON is written
/// in chunks: stdout is line-buffered, and one write per line would
/// dominate.
fn finish_output(out: &mut impl Write) -> io::Result<()> {
    out.write_all(b"\n")?;
    out.flush()
}
