//! `codegenie portfolio` on the real engine and a second engine of the
//! test's own (tests/portfolio_support): the same evidence as single runs,
//! a rerun that skips what is done, an engine stopped mid-run whose
//! repositories finish on the other, an engine that never answers beside
//! one that does, manifest errors with their line.
// Tests drive the built binary and the engine directly; the product itself
// starts processes only through its exec layer.
#![allow(clippy::disallowed_methods)]

mod portfolio_support;
mod trace_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use portfolio_support::SecondEngine;
use serde_json::Value;
use trace_support::{engine_lock, fixture_repo_at};

const MAIN_ENGINE: &str = "unix:///var/run/docker.sock";
const DEBIAN_BASE: &str = "codegenie-fixture-debian:bookworm";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_codegenie")
}

/// Fixture copies under `root`, named as in the manifest.
fn repos(root: &Path, specs: &[(&str, &str)]) {
    for (name, fixture) in specs {
        fixture_repo_at(fixture, &root.join(name));
    }
}

fn manifest(root: &Path, engines: &[(&str, u32)], repos: &[&str]) -> PathBuf {
    let mut text = String::from("version: 1\nengines:\n");
    for (host, slots) in engines {
        text.push_str(&format!("  - host: {host}\n    slots: {slots}\n"));
    }
    text.push_str("repositories:\n");
    for r in repos {
        text.push_str(&format!("  - path: {r}\n"));
    }
    let path = root.join("fleet.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn portfolio(manifest: &Path, extra: &[&str]) -> (Output, Value) {
    let out = Command::new(bin())
        .arg("portfolio")
        .arg(manifest)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); status {:?}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}

fn slice(repo: &Path) -> Value {
    let p = repo.join(".codegenie/context/runtime_trace.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!("{}: {e}", p.display());
    }))
    .unwrap()
}

/// The evidence a distroless image is built from, and how it was gathered.
fn evidence(slice: &Value) -> Value {
    let outcomes: Vec<Value> = slice["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| serde_json::json!([s["name"], s["outcome"]["kind"]]))
        .collect();
    serde_json::json!({
        "confidence": slice["trace_coverage_confidence"],
        "scenarios": outcomes,
        "binaries_executed": slice["binaries_executed"],
        "shared_libs_loaded": slice["shared_libs_loaded"],
        "cert_paths_read": slice["cert_paths_read"],
        "interpreters": slice["interpreters"],
        "inbound": slice["network_endpoints_touched"]["inbound"],
    })
}

fn repo_entry<'a>(report: &'a Value, path: &str) -> &'a Value {
    report["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == path)
        .unwrap_or_else(|| panic!("{path} is not in the report"))
}

fn no_containers_left(engine_args: &[&str], prefix: &str) {
    let out = Command::new("docker")
        .args(engine_args)
        .args(["ps", "-a", "--filter", "label=codegenie.run", "--format"])
        .arg("{{.Label \"codegenie.run\"}}")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.lines().any(|l| l.starts_with(prefix)),
        "containers of {prefix} left: {text}"
    );
}

#[test]
fn six_repositories_on_two_engines_give_the_evidence_of_single_runs_and_a_rerun_skips_them() {
    let _serial = engine_lock();
    let second = SecondEngine::start();
    second.load_image(DEBIAN_BASE);
    let root = tempfile::tempdir().unwrap();
    let specs = [
        ("svc/orders", "tests/fixtures/service"),
        ("svc/billing", "tests/fixtures/service"),
        ("svc/demo", "examples/demo-service"),
        ("svc/demo-eu", "examples/demo-service"),
        ("svc/web", "tests/fixtures/node-express-service"),
    ];
    repos(root.path(), &specs);
    // A sixth repository with its scenario file in the manifest's folder.
    repos(root.path(), &[("svc/search", "tests/fixtures/service")]);
    std::fs::create_dir_all(root.path().join("ops")).unwrap();
    std::fs::write(
        root.path().join("ops/search.yaml"),
        "version: 1\nscenarios:\n  - name: startup\n    steps: [ { wait_ready: {} } ]\n  - name: healthcheck\n    steps: [ { wait_ready: {} }, { http: { path: /index.html } } ]\n",
    )
    .unwrap();
    let mut names: Vec<&str> = specs.iter().map(|(n, _)| *n).collect();
    names.push("svc/search");
    let host = second.host();
    let m = manifest(root.path(), &[(MAIN_ENGINE, 2), (&host, 2)], &names);
    let text = std::fs::read_to_string(&m).unwrap().replace(
        "  - path: svc/search\n",
        "  - path: svc/search\n    scenarios: ops/search.yaml\n",
    );
    std::fs::write(&m, text).unwrap();
    let (out, report) = portfolio(&m, &["--run-id", "pftest-six"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{report:#}");
    assert_eq!(report["totals"]["repositories"], 6, "{report:#}");
    assert_eq!(report["totals"]["done"], 6, "{report:#}");
    assert_eq!(report["totals"]["failed"], 0, "{report:#}");
    // Work was spread: each engine finished repositories.
    for e in report["engines"].as_array().unwrap() {
        assert_eq!(e["state"]["status"], "up", "{e}");
        assert!(
            e["repositories_finished"].as_u64().unwrap() >= 1,
            "{report:#}"
        );
    }
    // Progress named repositories, engines and the counts.
    assert!(stderr.contains("started on"), "{stderr}");
    assert!(stderr.contains("finished,"), "{stderr}");
    // Single runs, one per fixture kind, on fresh copies (no shared cache).
    let single = tempfile::tempdir().unwrap();
    for fixture in [
        "tests/fixtures/service",
        "examples/demo-service",
        "tests/fixtures/node-express-service",
    ] {
        let dest = single.path().join(fixture.rsplit('/').next().unwrap());
        fixture_repo_at(fixture, &dest);
        let run = Command::new(bin())
            .arg("trace")
            .arg(&dest)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let expected = evidence(&slice(&dest));
        assert_eq!(
            expected["confidence"], "high",
            "the single run of {fixture} is the reference: {expected:#}"
        );
        for (name, f) in &specs {
            if f != &fixture {
                continue;
            }
            let got = evidence(&slice(&root.path().join(name)));
            assert_eq!(got, expected, "{name} ({fixture})");
            let line = repo_entry(&report, name);
            assert_eq!(line["status"], "done");
            assert_eq!(line["evidence"], "ran");
            assert_eq!(line["confidence"], "high");
            assert_eq!(line["minimize"]["status"], "not_requested");
            // Their start scripts run under a shell.
            assert_eq!(line["blockers"][0]["kind"], "shell", "{line:#}");
        }
    }
    // The manifest's scenario file replaced the repository's defaults.
    let search = repo_entry(&report, "svc/search");
    let ran: Vec<&Value> = search["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["name"])
        .collect();
    assert_eq!(ran, ["startup", "healthcheck"], "{search:#}");
    assert_eq!(search["confidence"], "high", "{search:#}");
    assert!(
        report["common_blockers"][0]["repositories"]
            .as_array()
            .unwrap()
            .len()
            >= 5,
        "{report:#}"
    );
    for args in [vec![], vec!["-H", host.as_str()]] {
        no_containers_left(&args, "pftest-six");
    }
    let state = root.path().join(".codegenie-portfolio/fleet");
    assert!(state.join("journal.json").is_file());
    let md = std::fs::read_to_string(state.join("report.md")).unwrap();
    assert!(md.contains("| svc/web |"), "{md}");
    assert!(md.contains("## Most common blockers"), "{md}");

    // A second run skips every finished repository, on the journal's word.
    let started = Instant::now();
    let (out, again) = portfolio(&m, &["--run-id", "pftest-six-again"]);
    assert!(out.status.success());
    assert_eq!(again["totals"]["skipped"], 6, "{again:#}");
    assert_eq!(again["totals"]["done"], 0, "{again:#}");
    for name in &names {
        let line = repo_entry(&again, name);
        assert_eq!(line["status"], "skipped");
        assert_eq!(line["evidence"], "journal");
        assert_eq!(line["confidence"], "high", "the evidence is still reported");
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    // Control: a changed repository runs again (here: its cache misses too).
    std::fs::write(
        root.path().join("svc/orders/rootfs/srv/extra.html"),
        "<p>changed</p>\n",
    )
    .unwrap();
    let (_, third) = portfolio(&m, &["--run-id", "pftest-six-third"]);
    assert_eq!(third["totals"]["skipped"], 5, "{third:#}");
    assert_eq!(repo_entry(&third, "svc/orders")["status"], "done");
    assert_eq!(repo_entry(&third, "svc/orders")["evidence"], "ran");
}

/// The journal's entries.
fn journal(state: &Path) -> Value {
    std::fs::read_to_string(state.join("journal.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

#[test]
fn an_engine_stopped_mid_run_has_its_repositories_finished_on_the_other() {
    let _serial = engine_lock();
    let mut second = SecondEngine::start();
    let root = tempfile::tempdir().unwrap();
    let specs = [
        ("a", "tests/fixtures/service"),
        ("b", "tests/fixtures/service"),
        ("c", "tests/fixtures/service"),
        ("d", "examples/demo-service"),
    ];
    repos(root.path(), &specs);
    let host = second.host();
    let m = manifest(
        root.path(),
        &[(&host, 2), (MAIN_ENGINE, 1)],
        &["a", "b", "c", "d"],
    );
    let state = root.path().join(".codegenie-portfolio/fleet");
    let child = Command::new(bin())
        .arg("portfolio")
        .arg(&m)
        .args(["--json", "--run-id", "pftest-down"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the second engine is running a repository, then stop it.
    let started = Instant::now();
    let on_second = loop {
        let j = journal(&state);
        let running: Vec<String> = j["repositories"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, e)| e["state"] == "running" && e["engine"] == host.as_str())
            .map(|(k, _)| k.clone())
            .collect();
        if !running.is_empty() {
            break running;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "nothing ran on the second engine: {j:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // Let its scenarios start, so the engine dies under a running trace.
    std::thread::sleep(Duration::from_secs(3));
    second.stop();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no report ({e}): {stderr}"));
    assert!(out.status.success(), "{stderr}\n{report:#}");
    // Nothing lost: every repository done, with full evidence.
    assert_eq!(report["totals"]["done"], 4, "{report:#}");
    for (name, _) in &specs {
        let line = repo_entry(&report, name);
        assert_eq!(line["status"], "done", "{line:#}");
        assert_eq!(line["confidence"], "high", "{line:#}");
        assert_eq!(
            slice(&root.path().join(name))["trace_coverage_confidence"],
            "high"
        );
    }
    // The report names the failed engine and what moved off it.
    let engine = report["engines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["engine"] == host.as_str())
        .unwrap();
    assert_eq!(engine["state"]["status"], "down", "{report:#}");
    let moved: Vec<String> = engine["state"]["requeued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(
        on_second.iter().all(|r| moved.contains(r)),
        "{on_second:?} should have moved: {report:#}"
    );
    for r in &moved {
        let line = repo_entry(&report, r);
        assert_eq!(line["engine"], MAIN_ENGINE, "{line:#}");
        assert_eq!(
            line["requeued_from"][0]["engine"],
            host.as_str(),
            "{line:#}"
        );
    }
    // Control: the engine that stayed up is reported up.
    let main = report["engines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["engine"] == MAIN_ENGINE)
        .unwrap();
    assert_eq!(main["state"]["status"], "up");
    assert!(stderr.contains("stopped answering"), "{stderr}");
    no_containers_left(&[], "pftest-down");
}

#[test]
fn manifest_problems_are_errors_with_the_manifest_line() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("a")).unwrap();
    std::fs::write(root.path().join("a/Dockerfile"), "FROM scratch\n").unwrap();
    // A folder without a Dockerfile is refused before it is walked.
    std::fs::create_dir_all(root.path().join("bare")).unwrap();
    let cases = [
        (
            "version: 1\nengines:\n  - host: unix:///var/run/docker.sock\nrepositories:\n  - path: a\n  - path: bare\n",
            "fleet.yaml:6: repository `bare` at",
        ),
        (
            "version: 1\nengines:\n  - host: unix:///var/run/docker.sock\nrepositories:\n  - path: /\n",
            "fleet.yaml:5: repository `/` is the filesystem root",
        ),
        (
            "version: 1\nengines:\n  - host: unix:///var/run/docker.sock\n    slotz: 2\nrepositories:\n  - path: a\n",
            "fleet.yaml:4:5: engines[0]: unknown field `slotz`",
        ),
        (
            "version: 1\nengines:\n  - host: unix:///var/run/docker.sock\nrepositories:\n  - path: a\n  - path: missing\n",
            "fleet.yaml:6: repository `missing` is not a folder",
        ),
        // No engine answers: refused at the first one's line (one engine
        // that answers beside it is a run: see
        // `an_unreachable_engine_beside_one_that_answers_is_reported_and_the_run_goes_on`).
        (
            "version: 1\nengines:\n  - host: unix:///nonexistent/engine.sock\nrepositories:\n  - path: a\n",
            "fleet.yaml:3: engine unix:///nonexistent/engine.sock does not answer",
        ),
    ];
    for (text, want) in cases {
        let m = root.path().join("fleet.yaml");
        std::fs::write(&m, text).unwrap();
        let out = Command::new(bin())
            .arg("portfolio")
            .arg(&m)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(want), "want {want:?} in {stderr}");
    }
    // Nothing ran, so no state was written.
    assert!(!root.path().join(".codegenie-portfolio").exists());
}

#[test]
fn an_unreachable_engine_beside_one_that_answers_is_reported_and_the_run_goes_on() {
    let _serial = engine_lock();
    let root = tempfile::tempdir().unwrap();
    repos(root.path(), &[("svc", "tests/fixtures/service")]);
    let gone = "unix:///nonexistent/engine.sock";
    let m = manifest(root.path(), &[(gone, 1), (MAIN_ENGINE, 1)], &["svc"]);
    let (out, report) = portfolio(&m, &["--run-id", "pftest-unreach"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{report:#}");
    let svc = repo_entry(&report, "svc");
    assert_eq!(svc["status"], "done", "{svc:#}");
    assert_eq!(svc["engine"], MAIN_ENGINE, "{svc:#}");
    assert_eq!(svc["confidence"], "high", "{svc:#}");
    assert_eq!(
        svc["requeued_from"],
        serde_json::json!([]),
        "it never went near the silent engine: {svc:#}"
    );
    let engine = |name: &str| {
        report["engines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["engine"] == name)
            .unwrap_or_else(|| panic!("{name} is not in the report: {report:#}"))
            .clone()
    };
    let silent = engine(gone);
    assert_eq!(silent["state"]["status"], "unreachable", "{silent:#}");
    assert_eq!(silent["repositories_finished"], 0, "{silent:#}");
    let detail = silent["state"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("container engine unavailable") && detail.contains("engine.sock"),
        "the client's words: {detail}"
    );
    // Control: the engine that answered is up and did the work.
    let main = engine(MAIN_ENGINE);
    assert_eq!(main["state"]["status"], "up", "{main:#}");
    assert_eq!(main["repositories_finished"], 1, "{main:#}");
    assert_eq!(report["totals"]["engines_unreachable"], 1, "{report:#}");
    assert_eq!(report["totals"]["done"], 1, "{report:#}");
    assert!(
        stderr.contains(&format!(
            "engine {gone} does not answer, running on the others"
        )),
        "{stderr}"
    );
    no_containers_left(&[], "pftest-unreach");
    // The text report names it too (this run skips the repository on the
    // journal's word, so it is quick), and so does report.md.
    let text = Command::new(bin())
        .arg("portfolio")
        .arg(&m)
        .args(["--run-id", "pftest-unreach-text"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert_eq!(
        text.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    assert!(
        stdout.contains(&format!("engine {gone} (1 slots): unreachable: ")),
        "{stdout}"
    );
    let md =
        std::fs::read_to_string(root.path().join(".codegenie-portfolio/fleet/report.md")).unwrap();
    assert!(
        md.contains(&format!(
            "- {gone} (1 slots): 0 finished, **unreachable**: "
        )),
        "{md}"
    );
}

#[test]
fn ctrl_c_removes_every_container_of_the_run_on_every_engine() {
    let _serial = engine_lock();
    let second = SecondEngine::start();
    let root = tempfile::tempdir().unwrap();
    let specs = [
        ("a", "tests/fixtures/service"),
        ("b", "tests/fixtures/service"),
        ("c", "tests/fixtures/service"),
    ];
    repos(root.path(), &specs);
    let host = second.host();
    let m = manifest(
        root.path(),
        &[(MAIN_ENGINE, 1), (&host, 2)],
        &["a", "b", "c"],
    );
    let child = Command::new(bin())
        .arg("portfolio")
        .arg(&m)
        .args(["--run-id", "pftest-int"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until both engines hold a container of the run.
    let has_container = |args: &[&str]| {
        let out = Command::new("docker")
            .args(args)
            .args(["ps", "-a", "--filter", "label=codegenie.run", "--format"])
            .arg("{{.Label \"codegenie.run\"}}")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.starts_with("pftest-int."))
    };
    let started = Instant::now();
    while !(has_container(&[]) && has_container(&["-H", &host])) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no container of the run appeared on both engines"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("removing the containers"), "{stderr}");
    no_containers_left(&[], "pftest-int");
    no_containers_left(&["-H", &host], "pftest-int");
    // The journal keeps the interrupted repositories as running: a later
    // run traces them again.
    let j = journal(&root.path().join(".codegenie-portfolio/fleet"));
    assert!(
        j["repositories"]
            .as_object()
            .unwrap()
            .values()
            .any(|e| e["state"] == "running"),
        "{j:#}"
    );
}

#[test]
fn one_repository_failing_never_stops_the_rest() {
    let _serial = engine_lock();
    let root = tempfile::tempdir().unwrap();
    repos(
        root.path(),
        &[
            ("broken", "tests/fixtures/build-failure"),
            ("ok", "tests/fixtures/service"),
        ],
    );
    let m = manifest(root.path(), &[(MAIN_ENGINE, 1)], &["broken", "ok"]);
    let (out, report) = portfolio(&m, &["--run-id", "pftest-fail"]);
    // Exit 2: the job ran, some repositories failed.
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    let broken = repo_entry(&report, "broken");
    assert_eq!(broken["status"], "failed", "{broken:#}");
    assert!(
        broken["error"]
            .as_str()
            .unwrap()
            .contains("the image build failed"),
        "{broken:#}"
    );
    // Control: the healthy repository after them was traced in full.
    let ok = repo_entry(&report, "ok");
    assert_eq!(ok["status"], "done", "{ok:#}");
    assert_eq!(ok["confidence"], "high");
    assert_eq!(report["totals"]["failed"], 1);
    assert_eq!(report["totals"]["done"], 1);
    // The engine stayed up: a repository's failure is not the engine's.
    assert_eq!(report["engines"][0]["state"]["status"], "up");
    // Failed repositories run again next time; the done one is skipped.
    let (_, again) = portfolio(&m, &["--run-id", "pftest-fail-again"]);
    assert_eq!(repo_entry(&again, "ok")["status"], "skipped");
    assert_eq!(repo_entry(&again, "broken")["status"], "failed");
}

#[test]
fn a_state_folder_that_leads_out_of_a_repository_is_refused_and_nothing_is_written_there() {
    let _serial = engine_lock();
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    repos(
        root.path(),
        &[
            ("linked", "tests/fixtures/service"),
            ("plain", "tests/fixtures/service"),
        ],
    );
    std::os::unix::fs::symlink(outside.path(), root.path().join("linked/.codegenie")).unwrap();
    let m = manifest(root.path(), &[(MAIN_ENGINE, 1)], &["linked", "plain"]);
    let (out, report) = portfolio(&m, &["--run-id", "pftest-statelink"]);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    let linked = repo_entry(&report, "linked");
    assert_eq!(linked["status"], "failed", "{linked:#}");
    let error = linked["error"].as_str().unwrap();
    assert!(error.contains(".codegenie"), "{error}");
    let written: Vec<_> = std::fs::read_dir(outside.path()).unwrap().collect();
    assert!(
        written.is_empty(),
        "nothing is written outside the repository: {written:?}"
    );
    // The control: the same repository with a state folder of its own is
    // traced, and its cache and context land in that folder.
    let plain = repo_entry(&report, "plain");
    assert_eq!(plain["status"], "done", "{plain:#}");
    assert!(root.path().join("plain/.codegenie/context").is_dir());
    no_containers_left(&[], "pftest-statelink");
}
