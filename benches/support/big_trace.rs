//! The big real trace shared by the parser benchmarks: recorded once by
//! `benches/make_big_trace.sh` (the real strace, with the runtime trace's own
//! options, on a Python program that creates, reads, stats and misses 120k
//! files) into `$CARGO_TARGET_DIR/bench-data/`, never committed. Recording
//! takes a minute or two and needs strace and python3; when it cannot be
//! recorded the benchmark fails.

use std::path::{Path, PathBuf};

use codegenie_runtime::runtime_trace::bundle;

/// Distinct files the recorded program creates, then reads, stats and misses.
#[allow(dead_code)] // Not every benchmark checks the facts.
pub(crate) const FILES: usize = 120_000;

/// The target directory the benchmark was built in.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The recorded trace, recorded now unless an earlier run left it.
pub(crate) fn ensure() -> PathBuf {
    let dir = target_dir().join("bench-data");
    let trace = dir.join("big-120k-files.trace");
    if trace.is_file() {
        return trace;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/make_big_trace.sh");
    eprintln!("recording {} (a minute or two)...", trace.display());
    // The benchmarks opt out of the exec-layer rule: this is a test tool.
    let status = std::process::Command::new("sh")
        .arg(&script)
        .arg(&trace)
        .args(bundle::strace_options(true))
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        status.success() && trace.is_file(),
        "recording the trace with {} failed ({status}); it needs strace and python3",
        script.display()
    );
    trace
}
