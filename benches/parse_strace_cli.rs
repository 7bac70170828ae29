//! `codegenie parse-strace` end to end (the release binary: read, parse,
//! JSON on stdout to /dev/null) on a real trace of 120k distinct files,
//! against `wc -l` on the same file, in one run, alternating, with the file
//! in the page cache. Goals: at least 300 MB/s, at most 10x `wc -l`, and a
//! peak RSS that follows the distinct facts, not the trace's size.
//!
//! The trace is the one `benches/support/big_trace.rs` records (the real
//! strace on a program touching 120k files). Needs strace, python3 and GNU
//! time (`/usr/bin/time`, for the peak RSS); a missing one fails the
//! benchmark.
//! `cargo bench --bench parse_strace_cli`.
// The benchmark drives the built binary, `wc` and the recording script.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::Command;

#[path = "support/big_trace.rs"]
mod big_trace;
use big_trace::FILES;
#[path = "support/measure.rs"]
mod measure;
use measure::{load, median, peak_rss_kib, timed};

const ROUNDS: usize = 7;

/// The facts of one run, checked to be the ones the program produced, and
/// their number.
fn distinct_facts(bin: &str, trace: &Path) -> usize {
    let out = Command::new(bin)
        .arg("parse-strace")
        .arg(trace)
        .output()
        .expect("run parse-strace");
    assert!(out.status.success(), "parse-strace failed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let len = |k: &str| v[k].as_array().map_or(0, Vec::len);
    for k in ["files_written", "files_read"] {
        assert!(
            len(k) >= FILES,
            "{k} has {} entries, fewer than the {FILES} files the program touched: {} is not the expected trace",
            len(k),
            trace.display()
        );
    }
    let mut n = v["resolved"].as_object().map_or(0, |m| m.len());
    for k in [
        "binaries_executed",
        "shared_libs_loaded",
        "cert_paths_read",
        "files_read",
        "files_written",
        "unix_sockets",
        "paths_probed",
    ] {
        n += len(k);
    }
    n
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: only
    // measure when asked to.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_codegenie");
    let trace = big_trace::ensure();
    let bytes = std::fs::metadata(&trace).unwrap().len();
    let facts = distinct_facts(bin, &trace); // also warms the page cache
    let (mut wc, mut parse) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        wc.push(timed("wc", &[Path::new("-l"), trace.as_path()]));
        parse.push(timed(bin, &[Path::new("parse-strace"), trace.as_path()]));
    }
    let (wc, parse) = (median(&mut wc), median(&mut parse));
    let rss = peak_rss_kib(bin, &[Path::new("parse-strace"), trace.as_path()]);
    let mb_s = |d: std::time::Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    println!(
        "parse_strace_cli: {:.1} MB trace, {facts} distinct facts; parse-strace {:.0} ms ({:.0} MB/s, goal >= 300), \
         wc -l {:.0} ms ({:.0} MB/s), ratio {:.2}x (goal <= 10); peak RSS {:.1} MiB; median of {ROUNDS}; load {}",
        bytes as f64 / 1e6,
        parse.as_secs_f64() * 1e3,
        mb_s(parse),
        wc.as_secs_f64() * 1e3,
        mb_s(wc),
        parse.as_secs_f64() / wc.as_secs_f64(),
        rss as f64 / 1024.0,
        load()
    );
}
