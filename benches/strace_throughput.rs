//! Parser throughput on a real trace, beside a plain newline count of the
//! same bytes (what `wc -l` does).
//!
//! The trace is `$STRACE_BENCH_TRACE`, else `target/strace-bench/usr_walk.trace`
//! (record it with `strace -f -y -o target/strace-bench/usr_walk.trace python3
//! -S walk.py /usr`, a program that opens every file under /usr), else the
//! committed fixtures repeated to 32 MB with distinct pids.

use std::path::{Path, PathBuf};
use std::time::Duration;

use codegenie::strace::{parse_trace, ParseOptions};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn trace() -> (String, Vec<u8>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = std::env::var_os("STRACE_BENCH_TRACE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/strace-bench/usr_walk.trace"));
    if let Ok(bytes) = std::fs::read(&path) {
        return (path.display().to_string(), bytes);
    }
    let dir = root.join("tests/fixtures/strace");
    let mut fixtures = Vec::new();
    for name in ["python_net_threads", "shell_pipeline_y", "busybox_chroot"] {
        fixtures.push(std::fs::read(dir.join(format!("{name}.trace"))).expect("fixture"));
    }
    let mut out = Vec::with_capacity(33 << 20);
    let mut round = 0u32;
    while out.len() < 32 << 20 {
        for f in &fixtures {
            out.extend_from_slice(&codegenie_bench_support::shift_pids(f, round * 100_000));
        }
        round += 1;
    }
    ("fixtures x repeated".into(), out)
}

mod codegenie_bench_support {
    /// Adds `offset` to the leading pid of every `N  ...` line.
    pub fn shift_pids(trace: &[u8], offset: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(trace.len() + trace.len() / 16);
        for line in trace.split_inclusive(|&b| b == b'\n') {
            let n = line.iter().take_while(|b| b.is_ascii_digit()).count();
            match std::str::from_utf8(&line[..n])
                .ok()
                .and_then(|d| d.parse::<u32>().ok())
            {
                Some(pid) if n > 0 => {
                    out.extend_from_slice((pid + offset).to_string().as_bytes());
                    out.extend_from_slice(&line[n..]);
                }
                _ => out.extend_from_slice(line),
            }
        }
        out
    }
}

fn bench(c: &mut Criterion) {
    let (name, bytes) = trace();
    let lines = memchr::memchr_iter(b'\n', &bytes).count();
    eprintln!("trace: {name}, {} bytes, {lines} lines", bytes.len());
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
criterion_main!(benches);
