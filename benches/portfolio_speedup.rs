//! Portfolio wall time on two engines with two slots each against one
//! engine with one slot: the same repositories, the same run, the baseline
//! measured first under the same conditions. Target: at least 2.5x.
//!
//! What the figure means: the fixture services spend most of each scenario
//! waiting (their scenarios poll the app over HTTP with pauses, as
//! healthchecks do), so the work is the kind a fleet has: waiting on
//! services, not CPU. On a machine with two cores, CPU-bound traces would
//! not scale like this; the benchmark prints the load average so the figure
//! can be read against it.
//!
//! Needs Docker, `/usr/sbin/dockerd` + `unshare` (a second engine in its own
//! network namespace) and `tests/fixtures/bin/busybox`.
// The benchmark drives the built binary and dockerd directly.
#![allow(clippy::disallowed_methods)]

#[path = "../tests/portfolio_support/mod.rs"]
mod portfolio_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const REPOSITORIES: usize = 8;
const TARGET: f64 = 2.5;

/// Scenarios that wait on the service, as healthchecks do.
const SCENARIOS: &str = "version: 1
app:
  ready: { tcp_port: 8080, timeout_s: 20 }
scenarios:
  - name: startup
    steps: [ { wait_ready: {} }, { http: { path: /index.html, repeat: 6, interval_ms: 500 } } ]
  - name: healthcheck
    steps: [ { wait_ready: {} }, { http: { path: /index.html, repeat: 6, interval_ms: 500 } } ]
";

#[path = "support/fixture.rs"]
mod fixture;
use fixture::copy_tree;

/// `REPOSITORIES` copies of the fixture service under `root`, each with a
/// marker unique to this set, so neither the probe cache nor the engine's
/// build cache carries over from the other measurement.
fn fleet(root: &Path, set: &str) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"));
    let busybox = src.join("tests/fixtures/bin/busybox");
    assert!(
        busybox.is_file(),
        "run tests/fixtures/fetch-busybox.sh first"
    );
    (0..REPOSITORIES)
        .map(|i| {
            let name = format!("{set}-{i}");
            let dir = root.join(&name);
            copy_tree(&src.join("tests/fixtures/service"), &dir);
            let bin = dir.join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::copy(&busybox, bin.join("busybox")).unwrap();
            for a in ["sh", "cat", "nc", "httpd", "sleep"] {
                std::os::unix::fs::symlink("busybox", bin.join(a)).unwrap();
            }
            std::fs::write(dir.join("rootfs/srv/marker.txt"), format!("{name}\n")).unwrap();
            std::fs::create_dir_all(dir.join(".codegenie")).unwrap();
            std::fs::write(dir.join(".codegenie/scenarios.yaml"), SCENARIOS).unwrap();
            name
        })
        .collect()
}

fn run(root: &Path, name: &str, engines: &[(&str, u32)], repos: &[String]) -> Duration {
    let mut text = String::from("version: 1\nengines:\n");
    for (host, slots) in engines {
        text.push_str(&format!("  - host: {host}\n    slots: {slots}\n"));
    }
    text.push_str("repositories:\n");
    for r in repos {
        text.push_str(&format!("  - path: {r}\n"));
    }
    let manifest = root.join(format!("{name}.yaml"));
    std::fs::write(&manifest, text).unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("portfolio")
        .arg(&manifest)
        .arg("--json")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let took = started.elapsed();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{name}: no report ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success(), "{name}: {report:#}");
    assert_eq!(
        report["totals"]["done"].as_u64(),
        Some(REPOSITORIES as u64),
        "{name}: every repository must be traced: {report:#}"
    );
    for r in report["repositories"].as_array().unwrap() {
        assert_eq!(r["confidence"], "high", "{name}: {r:#}");
    }
    took
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    // `cargo bench` passes filter arguments; `cargo test --benches` passes
    // `--test`-style flags: this benchmark runs only under `cargo bench`.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let second = portfolio_support::SecondEngine::start();
    let host = second.host();
    let main_engine = "unix:///var/run/docker.sock";
    let root = tempfile::tempdir().unwrap();
    let baseline_repos = fleet(root.path(), "baseline");
    let spread_repos = fleet(root.path(), "spread");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "portfolio_speedup: {REPOSITORIES} repositories, {cores} cores, load before {}",
        loadavg()
    );
    let baseline = run(
        root.path(),
        "baseline",
        &[(main_engine, 1)],
        &baseline_repos,
    );
    println!(
        "  one engine, one slot:   {:>6.1} s  (load {})",
        baseline.as_secs_f64(),
        loadavg()
    );
    let spread = run(
        root.path(),
        "spread",
        &[(main_engine, 2), (&host, 2)],
        &spread_repos,
    );
    println!(
        "  two engines, two slots: {:>6.1} s  (load {})",
        spread.as_secs_f64(),
        loadavg()
    );
    let speedup = baseline.as_secs_f64() / spread.as_secs_f64();
    println!("  speed-up: {speedup:.2}x (target {TARGET}x)");
    drop(second);
    if speedup < TARGET {
        eprintln!("portfolio_speedup: {speedup:.2}x is below the {TARGET}x target");
        std::process::exit(1);
    }
}
