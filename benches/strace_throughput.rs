//! Parser throughput (the library: `parse_trace` on bytes in memory) on a
//! real trace, against a plain newline count of the same bytes (what `wc -l`
//! does), in the same run, single-threaded both.
//!
//! The trace is `$STRACE_BENCH_TRACE` when set, else the one
//! `benches/support/big_trace.rs` records (the real strace on a program
//! touching 120k files; recorded on first use). An unreadable trace fails
//! the benchmark: it never measures other input than it names.

use std::path::PathBuf;
use std::time::Duration;

use codegenie::strace::{parse_trace, ParseOptions};
use criterion::{criterion_group, Criterion, Throughput};

// The benchmark records its input with strace.
#[allow(clippy::disallowed_methods)]
#[path = "support/big_trace.rs"]
mod big_trace;

fn trace() -> (PathBuf, Vec<u8>) {
    let path = std::env::var_os("STRACE_BENCH_TRACE")
        .map(PathBuf::from)
        .unwrap_or_else(big_trace::ensure);
    match std::fs::read(&path) {
        Ok(bytes) => (path, bytes),
        Err(e) => panic!("cannot read the trace {}: {e}", path.display()),
    }
}

fn bench(c: &mut Criterion) {
    let (name, bytes) = trace();
    let lines = memchr::memchr_iter(b'\n', &bytes).count();
    eprintln!(
        "trace: {}, {} bytes, {lines} lines",
        name.display(),
        bytes.len()
    );
    let mut g = c.benchmark_group("strace");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("parse_trace", |b| {
        b.iter(|| parse_trace(&bytes[..], &ParseOptions::default()).unwrap())
    });
    g.bench_function("newline_count_like_wc_l", |b| {
        b.iter(|| memchr::memchr_iter(b'\n', &bytes).count())
    });
    g.finish();
}

criterion_group!(benches, bench);

// What `criterion_main!` expands to, behind the same gate as the other
// benchmarks: `cargo bench` passes `--bench`, `cargo test --benches` does
// not, and the setup alone (files, images, traces) is too heavy for a test run.
fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
