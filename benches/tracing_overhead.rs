//! What tracing costs a real Node workload, on the real engine, in one run:
//! the same image, the same limits (`--cpus=1 --memory=512m
//! --pids-limit=256 --network=none`, the runtime trace's defaults), run
//! untraced (`docker run --rm`) and traced (`codegenie trace --no-cache` of
//! one scenario: the whole command, build check and tool bundle included).
//!
//! Workloads, on the node-express fixture (`tests/fixtures/node-express-service`,
//! on the Debian base image of `tests/fixtures/debian/build-base.sh`):
//! - `startup`: the service until its `listening on` line, then SIGTERM
//!   (`docker stop` untraced; the scenario's own stop traced);
//! - `open_heavy`: a one-shot script, written at bench time, that requires
//!   express 20 times with the module cache cleared and then opens 18,000
//!   files under `/usr`.
//!
//! Rounds alternate; medians are reported, with the traced scenario's
//! `phases_ms` (where the time over the bare run goes). Needs Docker and the
//! base image. `cargo bench --bench tracing_overhead`.
// The benchmark drives the built binary and the engine CLI directly.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/fixture.rs"]
mod fixture;
use fixture::copy_tree;

const ROUNDS: usize = 3;
const LIMITS: [&str; 4] = [
    "--cpus=1",
    "--memory=512m",
    "--pids-limit=256",
    "--network=none",
];
const BASE: &str = "codegenie-fixture-debian:bookworm";

const OPEN_HEAVY: &str = r#"// Bench workload: module loading and opens, nothing else.
const fs = require('fs');
const path = require('path');
for (let i = 0; i < 20; i++) {
  for (const k of Object.keys(require.cache)) delete require.cache[k];
  require('express');
}
const files = [];
(function walk(dir) {
  let entries;
  try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch (e) { return; }
  for (const e of entries) {
    if (files.length >= 6000) return;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p); else if (e.isFile()) files.push(p);
  }
})('/usr');
let opened = 0;
while (opened < 18000) {
  for (const f of files) {
    try { fs.closeSync(fs.openSync(f, 'r')); } catch (e) {}
    if (++opened >= 18000) break;
  }
}
console.log(`opened ${opened} files`);
"#;

const STARTUP: &str = "version: 1\napp:\n  ready: { log_line: \"listening on\", timeout_s: 60 }\n\
    scenarios:\n  - name: startup\n    steps: [ { wait_ready: {} } ]\n";
const ONE_SHOT: &str = "version: 1\nscenarios:\n  - name: open_heavy\n    command: [\"node\", \"/app/open_heavy.js\"]\n    expected_exit_code: 0\n";

fn run_ok(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The fixture plus the open-heavy script, in a temp repository.
fn repo() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    copy_tree(
        &root.join("tests/fixtures/node-express-service"),
        dir.path(),
    );
    std::fs::write(dir.path().join("open_heavy.js"), OPEN_HEAVY).unwrap();
    let dockerfile = std::fs::read_to_string(dir.path().join("Dockerfile")).unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("{dockerfile}COPY open_heavy.js /app/\n"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join(".codegenie")).unwrap();
    dir
}

/// One traced run of `scenarios`: the whole command's time and the
/// scenario's result, checked completed.
fn traced(repo: &Path, scenarios: &str) -> (Duration, serde_json::Value) {
    std::fs::write(repo.join(".codegenie/scenarios.yaml"), scenarios).unwrap();
    let started = Instant::now();
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_codegenie"))
            .args(["trace", "--no-cache", "--json"])
            .arg(repo),
        "codegenie trace",
    );
    let took = started.elapsed();
    let slice: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.join(".codegenie/context/runtime_trace.json")).unwrap(),
    )
    .unwrap();
    let sc = slice["scenarios"][0].clone();
    assert_eq!(sc["outcome"]["kind"], "completed", "{sc:#}");
    (took, sc)
}

/// The service untraced: until its ready line, then `docker stop`.
fn bare_startup(image: &str) -> Duration {
    let name = format!("codegenie-bench-tracing-{}", std::process::id());
    let started = Instant::now();
    let mut child = Command::new("docker")
        .args(["run", "--rm", "--log-driver=none", "--name", &name])
        .args(LIMITS)
        .arg(image)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker run");
    let out = BufReader::new(child.stdout.take().unwrap());
    let ready = out
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("listening on"));
    assert!(ready, "the service never said it was listening");
    run_ok(Command::new("docker").args(["stop", &name]), "docker stop");
    child.wait().unwrap();
    started.elapsed()
}

/// The script untraced.
fn bare_open_heavy(image: &str) -> Duration {
    let started = Instant::now();
    run_ok(
        Command::new("docker")
            .args(["run", "--rm", "--log-driver=none"])
            .args(LIMITS)
            .args([image, "node", "/app/open_heavy.js"]),
        "docker run",
    );
    started.elapsed()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: only
    // measure when asked to.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let base = Command::new("docker")
        .args(["image", "inspect", BASE])
        .output()
        .expect("docker CLI");
    assert!(
        base.status.success(),
        "{BASE} is missing: run tests/fixtures/debian/build-base.sh first"
    );
    let repo = repo();
    let tag = format!("codegenie-bench-tracing:{}", std::process::id());
    // The same context the trace builds: a cache hit for the trace after this.
    run_ok(
        Command::new("docker")
            .args(["build", "-q", "-t", &tag])
            .arg(repo.path()),
        "docker build",
    );
    let mut report = Vec::new();
    for (name, scenarios) in [("startup", STARTUP), ("open_heavy", ONE_SHOT)] {
        let bare = |image: &str| match name {
            "startup" => bare_startup(image),
            _ => bare_open_heavy(image),
        };
        // Warm both sides once (page cache, the trace's build).
        traced(repo.path(), scenarios);
        bare(&tag);
        let (mut t, mut b, mut results) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let (took, sc) = traced(repo.path(), scenarios);
            t.push(took);
            results.push((took, sc));
            b.push(bare(&tag));
        }
        let (tm, bm) = (median(&mut t), median(&mut b));
        let sc = &results.iter().find(|(took, _)| *took == tm).unwrap().1;
        report.push(format!(
            "tracing_overhead {name}: traced {:.2} s (scenario {} ms), untraced {:.2} s, ratio {:.2}x; \
             traced scenario phases_ms {}",
            tm.as_secs_f64(),
            sc["wall_clock_ms"],
            bm.as_secs_f64(),
            tm.as_secs_f64() / bm.as_secs_f64(),
            sc["phases_ms"]
        ));
    }
    run_ok(Command::new("docker").args(["rmi", &tag]), "docker rmi");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    for line in report {
        println!("{line}");
    }
    println!(
        "median of {ROUNDS}; load {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
