//! What a traced scenario costs over a bare container, on the real engine,
//! in one run: `codegenie trace <repo> --no-cache` on a busybox FROM-scratch
//! repository whose `.codegenie/scenarios.yaml` has six one-shot
//! `command: ["/bin/true"]` scenarios, against six bare
//! `docker run --rm --network=none --cap-drop=ALL IMG /bin/true` of the same
//! image, one after another. Goal: traced at most 1.5x the bare runs.
//!
//! Both sides start from the same state: the image is built and in the
//! engine's cache before timing, so the trace's build is a cache hit (it
//! still asks the engine, as every run does); the probe cache is bypassed.
//! The traced side is the whole command (build check, bundle, six
//! scenarios, evidence written); the bare side is six container lives.
//! Rounds alternate; medians are reported. One extra `-v` trace is written
//! to `$CARGO_TARGET_DIR/bench-data/scenario_overhead.log` to show where the
//! time goes.
//!
//! With `CODEGENIE_BENCH_BASELINE_BIN` naming another `codegenie` binary
//! (an earlier build), that binary is timed too, in the same rounds, as a
//! third side: before and after a change, measured together.
//!
//! Needs Docker and `tests/fixtures/bin/busybox` (tests/fixtures/fetch-busybox.sh).
//! `cargo bench --bench scenario_overhead`.
// The benchmark drives the built binary and the engine CLI directly.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const SCENARIOS: usize = 6;
const ROUNDS: usize = 5;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// A FROM-scratch busybox repository with six one-shot scenarios.
fn repo() -> tempfile::TempDir {
    let busybox = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bin/busybox");
    assert!(
        busybox.is_file(),
        "run tests/fixtures/fetch-busybox.sh first ({} is missing)",
        busybox.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(&busybox, bin.join("busybox")).unwrap();
    for a in ["sh", "true"] {
        std::os::unix::fs::symlink("busybox", bin.join(a)).unwrap();
    }
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY bin/ /bin/\nENTRYPOINT [\"/bin/true\"]\n",
    )
    .unwrap();
    let mut yaml = String::from("version: 1\nscenarios:\n");
    for i in 0..SCENARIOS {
        yaml.push_str(&format!(
            "  - name: true_{i}\n    command: [\"/bin/true\"]\n    expected_exit_code: 0\n"
        ));
    }
    std::fs::create_dir_all(dir.path().join(".codegenie")).unwrap();
    std::fs::write(dir.path().join(".codegenie/scenarios.yaml"), yaml).unwrap();
    dir
}

fn run(cmd: &mut Command, what: &str) -> Output {
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

/// The traced side: one `codegenie trace` of the six scenarios, checked
/// (in the slice it wrote) to have run them all, none failed.
fn traced(repo: &Path, extra: &[&str]) -> (Duration, Output) {
    traced_by(Path::new(env!("CARGO_BIN_EXE_codegenie")), repo, extra)
}

fn traced_by(bin: &Path, repo: &Path, extra: &[&str]) -> (Duration, Output) {
    let started = Instant::now();
    let out = run(
        Command::new(bin)
            .args(["trace", "--no-cache", "--json"])
            .args(extra)
            .arg(repo),
        "codegenie trace",
    );
    let took = started.elapsed();
    let slice: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.join(".codegenie/context/runtime_trace.json"))
            .expect("the trace wrote its slice"),
    )
    .expect("slice JSON");
    let run = slice["scenarios_run"].to_string();
    for i in 0..SCENARIOS {
        assert!(
            run.contains(&format!("\"true_{i}\"")),
            "scenario true_{i} did not run: {slice}"
        );
    }
    assert_eq!(
        slice["scenarios_failed"].as_array().map(Vec::len),
        Some(0),
        "a scenario failed: {slice}"
    );
    (took, out)
}

/// The bare side: six `docker run --rm` of the image running `/bin/true`.
fn bare(image: &str) -> Duration {
    let started = Instant::now();
    for _ in 0..SCENARIOS {
        run(
            Command::new("docker").args([
                "run",
                "--rm",
                "--network=none",
                "--cap-drop=ALL",
                image,
                "/bin/true",
            ]),
            "docker run",
        );
    }
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
    let repo = repo();
    let tag = format!("codegenie-bench-overhead:{}", std::process::id());
    // The same context the trace builds: a cache hit for the trace after this.
    run(
        Command::new("docker")
            .args(["build", "-q", "-t", &tag])
            .arg(repo.path()),
        "docker build",
    );
    // Warm both sides once (the trace's own build, the bundle's files).
    traced(repo.path(), &[]);
    bare(&tag);
    let baseline = std::env::var_os("CODEGENIE_BENCH_BASELINE_BIN").map(PathBuf::from);
    if let Some(bin) = &baseline {
        traced_by(bin, repo.path(), &[]);
    }
    let (mut t, mut b, mut o) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        t.push(traced(repo.path(), &[]).0);
        b.push(bare(&tag));
        if let Some(bin) = &baseline {
            o.push(traced_by(bin, repo.path(), &[]).0);
        }
    }
    let (t, b) = (median(&mut t), median(&mut b));
    if let Some(bin) = &baseline {
        let o = median(&mut o);
        println!(
            "scenario_overhead: baseline {} traced {:.2} s, ratio {:.2}x the bare runs",
            bin.display(),
            o.as_secs_f64(),
            o.as_secs_f64() / b.as_secs_f64()
        );
    }
    let (_, verbose) = traced(repo.path(), &["-v"]);
    let log = target_dir().join("bench-data/scenario_overhead.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(&log, &verbose.stderr).unwrap();
    run(Command::new("docker").args(["rmi", &tag]), "docker rmi");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "scenario_overhead: {SCENARIOS} one-shot /bin/true scenarios traced {:.2} s, \
         {SCENARIOS} bare docker run {:.2} s, ratio {:.2}x (goal <= 1.5); median of {ROUNDS}; \
         load {}; -v log of one trace: {}",
        t.as_secs_f64(),
        b.as_secs_f64(),
        t.as_secs_f64() / b.as_secs_f64(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        log.display()
    );
}
