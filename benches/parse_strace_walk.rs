//! `codegenie parse-strace` end to end (the release binary: read, parse,
//! JSON on stdout to /dev/null) on a real 34 MB trace of a walk opening
//! 113k distinct files once each, against two baselines on the same file in
//! the same run: `wc -l`, and the Python oracle (`benches/support/oracle.py`,
//! the parser contract written plainly in Python, checked here to print the
//! same facts). Runs alternate (wc, parse-strace, and the oracle every
//! other round), with the file in the page cache; medians are quoted with
//! the load average before and after. Goals: at least 100x the oracle, at
//! most 10x `wc -l`; MB/s and peak RSS (parse-strace and the oracle) are
//! printed beside them. Beside them, in the same rounds, the least work
//! any parser must do on the file (`support/least_work.rs`): a floor, which
//! tells whether a goal is within reach of any parser on this machine.
//!
//! This is the other character of trace beside `parse_strace_cli`'s: every
//! path distinct and met once, one set holding nearly all of them
//! (docs/architecture.md, "Benchmarks"). The trace is the one
//! `benches/support/big_trace.rs` records with `benches/make_walk_trace.sh`.
//! Needs strace, python3 and GNU time (`/usr/bin/time`); a missing one fails
//! the benchmark.
//! `cargo bench --bench parse_strace_walk`.
// The benchmark drives the built binary, `wc`, python3 and the recording script.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[path = "support/big_trace.rs"]
mod big_trace;
use big_trace::WALK_FILES;
#[path = "support/least_work.rs"]
mod least_work;
#[path = "support/measure.rs"]
mod measure;
use measure::{load, median, peak_rss_kib, timed};

/// Rounds of `wc -l` and `parse-strace`; the oracle runs in every other one.
const ROUNDS: usize = 9;

/// The oracle's script.
fn oracle() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/support/oracle.py")
}

/// python3, as the recording script finds it.
fn python() -> PathBuf {
    let system = Path::new("/usr/bin/python3");
    if system.is_file() {
        return system.to_path_buf();
    }
    PathBuf::from("python3")
}

/// The JSON `program args` prints.
fn json_of(program: &Path, args: &[&Path]) -> serde_json::Value {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} failed: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Checks that the oracle and `parse-strace` agree on the trace, and that
/// it is the walk's: every file read. Returns the number of files read.
fn check_agreement(bin: &Path, trace: &Path) -> usize {
    let ours = json_of(bin, &[Path::new("parse-strace"), trace]);
    let theirs = json_of(&python(), &[Path::new("-S"), &oracle(), trace]);
    if ours != theirs {
        let differing: Vec<&String> = ours
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| theirs.get(k.as_str()) != Some(*v))
            .map(|(k, _)| k)
            .collect();
        panic!("the oracle and parse-strace differ on {differing:?}: the baseline would not be the same work");
    }
    let read = ours["files_read"].as_array().map_or(0, Vec::len);
    assert!(
        read >= WALK_FILES,
        "files_read has {read} entries, fewer than the {WALK_FILES} files the walk opened: {} is not the expected trace",
        trace.display()
    );
    read
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: only
    // measure when asked to.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_codegenie"));
    let trace = big_trace::ensure_walk();
    let bytes = std::fs::metadata(&trace).unwrap().len();
    let load_before = load();
    let read = check_agreement(bin, &trace); // also warms the page cache
    let oracle = oracle();
    let parse_args = [Path::new("parse-strace"), trace.as_path()];
    let oracle_args = [Path::new("-S"), oracle.as_path(), trace.as_path()];
    let (mut wc, mut parse, mut py, mut least) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut literals = 0;
    for round in 0..ROUNDS {
        wc.push(timed("wc", &[Path::new("-l"), trace.as_path()]));
        parse.push(timed(bin, &parse_args));
        let (took, n) = least_work::run(&trace);
        least.push(took);
        literals = n;
        if round % 2 == 0 {
            py.push(timed(python(), &oracle_args));
        }
    }
    let rounds_py = py.len();
    let (wc, parse, py) = (median(&mut wc), median(&mut parse), median(&mut py));
    let least = median(&mut least);
    let rss = peak_rss_kib(bin, &parse_args);
    let rss_py = peak_rss_kib(python(), &oracle_args);
    let mb_s = |d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "parse_strace_walk: {:.1} MB trace, {read} files read; parse-strace {:.0} ms ({:.0} MB/s), \
         wc -l {:.1} ms ({:.0} MB/s), oracle {:.0} ms ({:.1} MB/s); \
         parse-strace is {:.0}x the oracle (goal >= 100) and {:.1}x wc -l (goal <= 10); \
         peak RSS {:.1} MiB (oracle {:.1} MiB); the least work (two threads, in process, \
         {literals} literals kept) {:.1} ms: parse-strace is {:.2}x it, and the oracle goal's \
         {:.1} ms is {:.2}x it; medians of {ROUNDS} ({rounds_py} for the oracle), \
         alternating; load {load_before} before, {} after",
        bytes as f64 / 1e6,
        ms(parse),
        mb_s(parse),
        ms(wc),
        mb_s(wc),
        ms(py),
        mb_s(py),
        py.as_secs_f64() / parse.as_secs_f64(),
        parse.as_secs_f64() / wc.as_secs_f64(),
        rss as f64 / 1024.0,
        rss_py as f64 / 1024.0,
        ms(least),
        parse.as_secs_f64() / least.as_secs_f64(),
        ms(py) / 100.0,
        ms(py) / 100.0 / ms(least),
        load()
    );
}
