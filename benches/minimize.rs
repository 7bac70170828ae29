//! `codegenie minimize` against `codegenie trace` on the Debian Node/Express
//! fixture, through the CLI, in one run on the real engine (goal: minimize
//! at most 2x the trace). Both start from the same state: the image's build
//! layers are in the engine's cache, the probe cache is bypassed
//! (`--no-cache`), so each command traces the original image; minimize then
//! exports, cuts, imports and re-runs every scenario on the minimal image.
//!
//! Then `minimize --base` on two real services (Node + sqlite3 on the
//! distroless `cc` stand-in, gunicorn + Flask on `python3`), each round on
//! a repository changed by a label on its last stage, so that its
//! Dockerfile's pick stage is built again and not found in the engine's
//! build cache (the repository's own stages are built before timing, as
//! they are after the trace). Baselines from the same rounds: `trace`
//! alone; one `docker build` of the Dockerfile that `minimize --base`
//! handed over, on the same engine in the same state (the repository's
//! stages cached, its pick stage not); and from these the work the command
//! stands for, done by hand: the trace, that build, and the same scenarios
//! again on the built image, taken as a second trace (goal: at most 1.3x
//! of that). What is left above it is the command's own: the exports of
//! the original and the base, the delta and the checks
//! (docs/architecture.md, "Benchmarks").
//!
//! Needs Docker and the fixture images (tests/fixtures/prepare.sh, run
//! here). `cargo bench --bench minimize` (`CODEGENIE_BENCH_ROUNDS=N` for N
//! rounds instead of 3). With `CODEGENIE_BENCH_BASELINE_BIN` naming another
//! `codegenie` binary, each round also times its `minimize --base` on the
//! repository changed once more, after ours.
// The benchmark drives the built binary directly.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "support/fixture.rs"]
mod fixture;
use fixture::copy_tree;

fn timed(repo: &Path, command: &str) -> Duration {
    timed_with(repo, command, &[]).0
}

/// `codegenie COMMAND --no-cache --json EXTRA REPO`: its time and its JSON.
fn timed_with(repo: &Path, command: &str, extra: &[&str]) -> (Duration, serde_json::Value) {
    timed_by(
        Path::new(env!("CARGO_BIN_EXE_codegenie")),
        repo,
        command,
        extra,
    )
}

/// [`timed_with`] with the `codegenie` binary `bin`.
fn timed_by(
    bin: &Path,
    repo: &Path,
    command: &str,
    extra: &[&str],
) -> (Duration, serde_json::Value) {
    let started = Instant::now();
    let out = Command::new(bin)
        .args([command, "--no-cache", "--json"])
        .args(extra)
        .arg(repo)
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{command} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        took,
        serde_json::from_slice(&out.stdout).unwrap_or_default(),
    )
}

/// `docker build --network=none -f FILE REPO` with the engine's CLI and its
/// classic builder: its time and its output. A failed build fails the
/// benchmark.
fn docker_build(repo: &Path, file: &Path) -> (Duration, String) {
    let started = Instant::now();
    let out = Command::new("docker")
        .args(["build", "--network=none", "-f"])
        .arg(file)
        .arg(repo)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    let took = started.elapsed();
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "docker build -f {} failed: {}{}",
        file.display(),
        tail(&log),
        tail(&String::from_utf8_lossy(&out.stderr))
    );
    (took, log)
}

/// The last 2,000 bytes of `text` (a pick step lists every added path).
fn tail(text: &str) -> &str {
    let mut from = text.len().saturating_sub(2_000);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    &text[from..]
}

/// `docker build` of the Dockerfile that `minimize --base` handed over in
/// `repo`, its label `from` changed to `to` so that its pick stage misses
/// the build cache as it did for `minimize` (the repository's stages,
/// labelled `to` too, were built before, untimed). Checks that they came
/// from the cache and the pick step ran; the built image is removed.
fn build_handed_over(repo: &Path, handed_over: &str, from: &str, to: &str) -> Duration {
    let text = std::fs::read_to_string(repo.join(handed_over)).unwrap();
    assert!(
        text.contains(from),
        "the handed-over Dockerfile does not hold the repository's label {from}"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text.replace(from, to)).unwrap();
    let (took, log) = docker_build(repo, file.path());
    // The classic builder prints each step, then "Using cache" when the
    // cache had it, "Running in" for a RUN it runs. The repository's own
    // steps must all come from the cache (built before, untimed):
    // the baseline is the build a user runs after the evidence, not a
    // build of the app.
    let steps: Vec<&str> = log
        .split("\nStep ")
        .filter(|step| step.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    for step in steps
        .iter()
        .take_while(|step| !step.contains("AS codegenie-pick"))
        .filter(|step| !step.contains(" : FROM ") && !step.contains(" : ARG "))
    {
        assert!(
            step.contains("Using cache"),
            "a step of the repository's own stages was built again: {}",
            tail(step)
        );
    }
    // The pick step is the first RUN after the pick stage's FROM.
    let pick = steps
        .iter()
        .skip_while(|step| !step.contains("AS codegenie-pick"))
        .find(|step| step.contains(" : RUN "))
        .unwrap_or_else(|| panic!("no pick step in the build's output: {}", tail(&log)));
    assert!(
        pick.contains("Running in"),
        "the pick step came from the build cache; the baseline would not be the same work: {}",
        tail(pick)
    );
    if let Some(id) = log
        .lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
    {
        let _ = Command::new("docker").args(["rmi", id.trim()]).output();
    }
    took
}

/// `minimize --base` against `trace`, one `docker build` of the Dockerfile
/// it hands over, and both by hand (trace, build, trace), on `service`,
/// medians of `rounds`.
fn on_base(root: &Path, service: &str, base: &str, rounds: usize) {
    let repo = tempfile::tempdir().unwrap();
    copy_tree(
        &root.join("tests/fixtures/services").join(service),
        repo.path(),
    );
    let (mut trace, mut minimize, mut build, mut by_hand) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Another build of codegenie, timed in the same rounds (before and
    // after a change, on the same engine in the same state).
    let baseline = std::env::var_os("CODEGENIE_BENCH_BASELINE_BIN").map(std::path::PathBuf::from);
    let mut baseline_minimize = Vec::new();
    let dockerfile = repo.path().join("Dockerfile");
    let original = std::fs::read_to_string(&dockerfile).unwrap();
    for round in 0..rounds {
        // A new label on the repository's last stage gives the traced image
        // a new id, so the pick stage (`FROM original`) misses the engine's
        // build cache, as after any change to the repository; removing the
        // minimal image alone leaves the pick steps cached. The image is
        // built (untimed) before both timed commands, which then find it.
        let label = |kind: &str| {
            format!(
                "LABEL codegenie.bench.round=\"{}-{round}-{kind}\"\n",
                std::process::id()
            )
        };
        let (ours, theirs) = (label("minimize"), label("build"));
        std::fs::write(&dockerfile, format!("{original}{ours}")).unwrap();
        timed(repo.path(), "trace");
        let t = timed(repo.path(), "trace");
        trace.push(t);
        let (took, v) = timed_with(repo.path(), "minimize", &["--base", base]);
        assert_eq!(v["verified"], true, "{v:#}");
        minimize.push(took);
        // The same build as a user's: the repository changed again and
        // its own stages built (untimed) by the same client as the timed
        // build, whose context the engine's cache tells from the one the
        // trace sends; the handed-over file with the same change.
        let handed_over = v["dockerfile"].as_str().expect("a handed-over Dockerfile");
        std::fs::write(&dockerfile, format!("{original}{theirs}")).unwrap();
        docker_build(repo.path(), &dockerfile);
        let b = build_handed_over(repo.path(), handed_over, &ours, &theirs);
        build.push(b);
        // The verification is the same scenarios on the built image: a
        // second trace, by hand.
        let hand = t + b + t;
        by_hand.push(hand);
        // The next round builds the pick stage again.
        if let Some(tag) = v["minimal_image"].as_str() {
            let _ = Command::new("docker").args(["rmi", "-f", tag]).output();
        }
        let mut baseline_figure = String::new();
        if let Some(bin) = &baseline {
            // The same as ours: a changed repository, its image built first.
            std::fs::write(&dockerfile, format!("{original}{}", label("baseline"))).unwrap();
            timed(repo.path(), "trace");
            let (baseline_took, v) = timed_by(bin, repo.path(), "minimize", &["--base", base]);
            assert_eq!(v["verified"], true, "{v:#}");
            baseline_minimize.push(baseline_took);
            baseline_figure = format!(
                ", baseline minimize --base {:.2} s",
                baseline_took.as_secs_f64()
            );
            if let Some(tag) = v["minimal_image"].as_str() {
                let _ = Command::new("docker").args(["rmi", "-f", tag]).output();
            }
        }
        // Each round, so one slow round shows beside the medians.
        println!(
            "minimize-base/{service} round {round}: trace {:.2} s, minimize --base {:.2} s, docker build {:.2} s, by hand {:.2} s{baseline_figure}; load {}",
            t.as_secs_f64(),
            took.as_secs_f64(),
            b.as_secs_f64(),
            hand.as_secs_f64(),
            load_average(),
        );
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (t, m) = (median(&mut trace), median(&mut minimize));
    let (b, hand) = (median(&mut build), median(&mut by_hand));
    if let Some(bin) = &baseline {
        let baseline_median = median(&mut baseline_minimize);
        println!(
            "minimize-base/{service} on {base}: baseline {} minimize --base {:.2} s, this build {:.2} s ({:.2}x); by hand {:.2} s, so the baseline is {:.2}x by hand; medians of {rounds}",
            bin.display(),
            baseline_median.as_secs_f64(),
            m.as_secs_f64(),
            m.as_secs_f64() / baseline_median.as_secs_f64(),
            hand.as_secs_f64(),
            baseline_median.as_secs_f64() / hand.as_secs_f64(),
        );
    }
    // Sizes: the original, the unit image imported onto nothing, the image
    // on the base (the last round's, built again for its size).
    let (_, on) = timed_with(repo.path(), "minimize", &["--base", base]);
    let (_, cut) = timed_with(repo.path(), "minimize", &[]);
    let size = |v: &serde_json::Value| v["size_bytes"]["minimal"].as_u64().unwrap_or(0);
    let original = on["size_bytes"]["original"].as_u64().unwrap_or(0);
    let added = on["added"]["packages"]
        .as_array()
        .map(|a| a.iter().filter(|p| p["kind"] == "dpkg").count())
        .unwrap_or(0);
    let held = on["held_by_base"].as_array().map_or(0, Vec::len);
    println!(
        "minimize-base/{service} on {base}: trace {:.2} s, docker build of the handed-over Dockerfile {:.2} s, by hand (trace + build + trace) {:.2} s, minimize --base {:.2} s; \
         minimize --base is {:.2}x the same by hand (goal <= 1.3), {:.2}x trace + build, {:.2}x trace alone; medians of {rounds}; \
         sizes: original {original} B, unit cut on nothing {} B, on the base {} B; dpkg packages kept {added}, held by the base {held}; load {}",
        t.as_secs_f64(),
        b.as_secs_f64(),
        hand.as_secs_f64(),
        m.as_secs_f64(),
        m.as_secs_f64() / hand.as_secs_f64(),
        m.as_secs_f64() / (t + b).as_secs_f64(),
        m.as_secs_f64() / t.as_secs_f64(),
        size(&cut),
        size(&on),
        load_average(),
    );
}

/// The machine's load averages (1, 5 and 15 minutes).
fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: only
    // measure when asked to.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let prepared = Command::new("bash")
        .arg(root.join("tests/fixtures/prepare.sh"))
        .status()
        .unwrap();
    assert!(prepared.success(), "tests/fixtures/prepare.sh failed");
    let repo = tempfile::tempdir().unwrap();
    copy_tree(
        &root.join("tests/fixtures/node-express-service"),
        repo.path(),
    );
    // Warm the engine's build cache and the minimal image's base layers once.
    timed(repo.path(), "trace");
    // Three rounds by default; `CODEGENIE_BENCH_ROUNDS` sets fewer or more
    // (a round of the services on their bases takes minutes here).
    let rounds: usize = std::env::var("CODEGENIE_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|r| *r > 0)
        .unwrap_or(3);
    let (mut trace, mut minimize) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        trace.push(timed(repo.path(), "trace"));
        minimize.push(timed(repo.path(), "minimize"));
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (t, m) = (median(&mut trace), median(&mut minimize));
    println!(
        "minimize/node-express: trace {:.2} s, minimize {:.2} s, ratio {:.2} (goal <= 2.0); median of {rounds}; load {}",
        t.as_secs_f64(),
        m.as_secs_f64(),
        m.as_secs_f64() / t.as_secs_f64(),
        load_average(),
    );
    on_base(
        root,
        "node-sqlite3",
        "gcr.io/distroless/cc-debian12:nonroot",
        rounds,
    );
    on_base(
        root,
        "python-gunicorn",
        "gcr.io/distroless/python3-debian12:nonroot",
        rounds,
    );
}
