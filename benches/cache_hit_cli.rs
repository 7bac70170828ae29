//! A cache hit through the CLI against the cold trace, on the real engine,
//! in one run: `codegenie trace <repo> --json` on the demo
//! (`examples/demo-service`) and on a `COPY . /` repository. For each: the
//! first run (image build and every scenario traced: the baseline), then
//! hits answered by the remembered build (no `docker build`), then hits
//! with the remembered builds deleted before each run, so that the key
//! needs `docker build` from the engine's layer cache (what every hit cost
//! before builds were remembered). Goal: a hit at most 100 ms. Medians of
//! the rounds, which alternate between the two kinds of hit.
//!
//! Needs Docker and `tests/fixtures/bin/busybox` (tests/fixtures/fetch-busybox.sh).
//! `cargo bench --bench cache_hit_cli`.
// The benchmark drives the built binary and the engine CLI directly.
#![allow(clippy::disallowed_methods)]

#[path = "support/fixture.rs"]
mod fixture;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const ROUNDS: usize = 10;

/// `codegenie trace <repo> --json`: the wall time and the status.
fn trace(repo: &Path) -> (Duration, String) {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("trace")
        .arg(repo)
        .arg("--json")
        .output()
        .expect("run codegenie");
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "trace failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec: serde_json::Value = serde_json::from_str(&stdout).expect("the record is JSON");
    let status = rec["status"]["status"].as_str().unwrap_or("?").to_owned();
    (took, status)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn busybox() -> std::path::PathBuf {
    let b = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bin/busybox");
    assert!(
        b.is_file(),
        "run tests/fixtures/fetch-busybox.sh first ({} is missing)",
        b.display()
    );
    b
}

/// The demo, with busybox in place as `prepare.sh` puts it.
fn demo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-service");
    fixture::copy_tree(&src, dir.path());
    let _ = std::fs::remove_dir_all(dir.path().join(".codegenie/cache"));
    let _ = std::fs::remove_dir_all(dir.path().join(".codegenie/context"));
    std::fs::copy(busybox(), dir.path().join("bin/busybox")).unwrap();
    dir
}

/// The most common Dockerfile shape: `COPY . /` of the whole repository.
fn copy_all() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    std::fs::create_dir_all(r.join("bin")).unwrap();
    std::fs::copy(busybox(), r.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", r.join("bin/cat")).unwrap();
    std::fs::create_dir_all(r.join("app")).unwrap();
    for i in 0..200 {
        std::fs::write(r.join(format!("app/module_{i}.js")), format!("// {i}\n")).unwrap();
    }
    std::fs::write(r.join("app/version.txt"), "v1\n").unwrap();
    std::fs::write(
        r.join("Dockerfile"),
        "FROM scratch\nCOPY . /\nENTRYPOINT [\"/bin/cat\", \"/app/version.txt\"]\n",
    )
    .unwrap();
    std::fs::create_dir_all(r.join(".codegenie")).unwrap();
    std::fs::write(
        r.join(".codegenie/scenarios.yaml"),
        "version: 1\nscenarios:\n  - name: batch\n    command: [\"/bin/cat\", \"/app/version.txt\"]\n    expected_exit_code: 0\n",
    )
    .unwrap();
    dir
}

fn measure(name: &str, repo: &Path) {
    let (cold, status) = trace(repo);
    assert_eq!(status, "ran", "{name}: the first run traces");
    let memo = repo.join(".codegenie/cache/image-builds.json");
    let (mut remembered, mut rebuilt) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let (t, s) = trace(repo);
        assert_eq!(s, "cache_hit", "{name}");
        remembered.push(t);
        std::fs::remove_file(&memo).expect("the build was remembered");
        let (t, s) = trace(repo);
        assert_eq!(s, "cache_hit", "{name}");
        rebuilt.push(t);
    }
    let (r, b) = (median(&mut remembered), median(&mut rebuilt));
    println!(
        "cache_hit_cli/{name}: cold trace {:.0} ms; hit {:.0} ms (min {:.0}), {:.1}% of cold; \
         hit with docker build {:.0} ms; goal <= 100 ms; median of {ROUNDS}",
        cold.as_secs_f64() * 1e3,
        r.as_secs_f64() * 1e3,
        remembered[0].as_secs_f64() * 1e3,
        100.0 * r.as_secs_f64() / cold.as_secs_f64(),
        b.as_secs_f64() * 1e3,
    );
    // Leave no images behind.
    let _ = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .args(["cache", "prune"])
        .arg(repo)
        .args(["--keep-images", "0"])
        .output();
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: only
    // a real benchmark run drives the engine.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let demo = demo();
    measure("demo", demo.path());
    let all = copy_all();
    measure("copy_all", all.path());
}
