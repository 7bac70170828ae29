//! The real traces shared by the parser benchmarks, recorded once into
//! `$CARGO_TARGET_DIR/bench-data/` (never committed) by the real strace
//! with the runtime trace's own options: `benches/make_big_trace.sh` (a
//! Python program that creates, reads, stats and misses 120k files: 127 MB,
//! paths met four times each) and `benches/make_walk_trace.sh` (a walk
//! opening each of 113k files once: 34 MB, every path distinct, as a walk
//! of an image's /usr). Recording takes a few minutes and needs strace and
//! python3; when a trace cannot be recorded the benchmark fails.

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

/// Distinct files the walk opens, each once.
#[allow(dead_code)] // Only the walk's benchmark uses it.
pub(crate) const WALK_FILES: usize = 113_000;

/// The big trace, recorded now unless an earlier run left it.
#[allow(dead_code)] // Not every benchmark parses it.
pub(crate) fn ensure() -> PathBuf {
    recorded("big-120k-files.trace", "make_big_trace.sh")
}

/// The walk's trace, recorded now unless an earlier run left it.
#[allow(dead_code)] // Only the walk's benchmark parses it.
pub(crate) fn ensure_walk() -> PathBuf {
    recorded("walk-113k-files.trace", "make_walk_trace.sh")
}

/// `bench-data/NAME`, recorded by `benches/SCRIPT` unless present.
fn recorded(name: &str, script: &str) -> PathBuf {
    let dir = target_dir().join("bench-data");
    let trace = dir.join(name);
    if trace.is_file() {
        return trace;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches")
        .join(script);
    eprintln!("recording {} (a few minutes)...", trace.display());
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
