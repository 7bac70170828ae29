//! CI reports (docs/architecture.md, "CI reports"), read by parsers that
//! are not ours: JUnit XML by Python's `junitparser`, SARIF by the SARIF
//! 2.1.0 JSON schema. From typed results (every outcome, a portfolio of two
//! repositories, a shell in a continued `ENTRYPOINT`), and end to end with
//! the real engine: `trace --junit`, `minimize --junit --sarif`, and an
//! unwritable path that fails before any container is created.
// Tests drive the built binary directly.
#![allow(clippy::disallowed_methods)]

mod report_validators;
mod trace_support;

use std::path::Path;
use std::process::{Command, Output};

use codegenie_runtime::ci_report::junit::{fleet_suites, to_xml, trace_suite};
use codegenie_runtime::ci_report::sarif::{
    fleet_findings, readiness_findings, to_json, to_sarif, RepoFindings,
};
use codegenie_runtime::ci_report::{write_report, ReportFormat};
use codegenie_runtime::minimal::distroless::Blocker;
use codegenie_runtime::portfolio::FleetReport;
use codegenie_runtime::runtime_trace::results::{ScenarioOutcome, ScenarioReason, ScenarioResult};
use codegenie_runtime::runtime_trace::slice::{aggregate, AggregateInputs};
use report_validators::{case, suite};
use trace_support::*;

fn result(name: &str, outcome: ScenarioOutcome, ms: u64) -> ScenarioResult {
    let mut r = ScenarioResult::new(name, outcome);
    r.wall_clock_ms = ms;
    r
}

fn write_junit(path: &Path, suites: &[codegenie_runtime::ci_report::junit::Suite]) {
    write_report(
        ReportFormat::Junit,
        path,
        to_xml(suites).unwrap().as_bytes(),
    )
    .unwrap();
}

fn write_sarif(path: &Path, repos: &[RepoFindings]) {
    let log = to_json(&to_sarif(repos, Some(Path::new("/work")))).unwrap();
    write_report(ReportFormat::Sarif, path, log.as_bytes()).unwrap();
}

fn start_line(result: &serde_json::Value) -> u64 {
    result["locations"][0]["physicalLocation"]["region"]["startLine"]
        .as_u64()
        .unwrap()
}

#[test]
fn every_outcome_reads_back_through_junitparser() {
    let dir = tempfile::tempdir().unwrap();
    let all_done = aggregate(
        &[
            result("startup", ScenarioOutcome::Completed, 1200),
            result("healthcheck", ScenarioOutcome::Completed, 800),
        ],
        &AggregateInputs::default(),
    );
    let mixed = aggregate(
        &[
            result("startup", ScenarioOutcome::Completed, 1000),
            result(
                "error_path",
                ScenarioOutcome::Failed(ScenarioReason::UnexpectedExit { code: 3 }),
                400,
            ),
            result(
                "shutdown",
                ScenarioOutcome::Skipped(ScenarioReason::AggregateTimeout),
                0,
            ),
        ],
        &AggregateInputs::default(),
    );
    let path = dir.path().join("junit.xml");
    write_junit(
        &path,
        &[
            trace_suite("svc-ok", &all_done),
            trace_suite("svc <mixed> & co", &mixed),
        ],
    );
    let suites = report_validators::junit(&path);
    let ok = suite(&suites, "svc-ok");
    assert_eq!(
        (
            ok["tests"].as_u64(),
            ok["failures"].as_u64(),
            ok["skipped"].as_u64()
        ),
        (Some(2), Some(0), Some(0))
    );
    assert!(ok["cases"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["result"] == "passed"));
    assert_eq!(case(ok, "startup")["time"], 1.2);
    let mixed = suite(&suites, "svc <mixed> & co");
    assert_eq!(mixed["tests"], 3);
    assert_eq!(mixed["failures"], 1);
    assert_eq!(mixed["skipped"], 1);
    let failed = case(mixed, "error_path");
    assert_eq!(failed["result"], "failure");
    assert_eq!(failed["message"], "the app exited unexpectedly with code 3");
    assert_eq!(failed["type"], "unexpected_exit");
    assert_eq!(failed["time"], 0.4);
    let skipped = case(mixed, "shutdown");
    assert_eq!(skipped["result"], "skipped");
    assert_eq!(
        skipped["message"],
        "the run's time budget ran out before it started"
    );
    assert_eq!(case(mixed, "startup")["result"], "passed");
}

#[test]
fn a_shell_in_a_continued_entrypoint_is_reported_on_its_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("svc");
    std::fs::create_dir(&repo).unwrap();
    std::fs::write(
        repo.join("Dockerfile"),
        "# escape=`\nFROM debian AS build\nENTRYPOINT [\"/bin/bash\"]\n\nFROM scratch\n# the app\nCOPY --from=build / /\nEXPOSE 8080 `\n  80\nENTRYPOINT [\"/bin/sh\", `\n  # keep the shell for now\n  \"-c\", `\n  \"exec /app/server\"]\nCMD [\"--port\", \"80\"]\n",
    )
    .unwrap();
    let findings = readiness_findings(&[
        Blocker::Shell {
            path: "/bin/sh".into(),
            argv: vec!["/bin/sh".into(), "-c".into(), "exec /app/server".into()],
            scenario: "startup".into(),
        },
        Blocker::RootUser {
            user: String::new(),
        },
        Blocker::PrivilegedPort {
            address: "0.0.0.0:80".into(),
        },
        Blocker::WriteOutsideTmp {
            path: "/var/log".into(),
            files: 1,
        },
    ]);
    let path = dir.path().join("r.sarif");
    write_sarif(&path, &[RepoFindings::read(&repo, findings)]);
    let v = report_validators::sarif(&path);
    let run = &v["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "codegenie");
    let by_rule = |id: &str| {
        run["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["ruleId"] == id)
            .unwrap_or_else(|| panic!("no {id} result: {run:#}"))
    };
    // The final stage's ENTRYPOINT, not the earlier stage's (line 3).
    assert_eq!(start_line(by_rule("shell")), 10);
    // No USER: the final stage's FROM.
    assert_eq!(start_line(by_rule("root_user")), 5);
    assert_eq!(start_line(by_rule("privileged_port")), 8);
    assert_eq!(start_line(by_rule("write_outside_tmp")), 1);
    // One rule per kind, each result pointing at its own.
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let ids: std::collections::BTreeSet<&str> =
        rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), rules.len());
    for r in run["results"].as_array().unwrap() {
        assert_eq!(
            rules[r["ruleIndex"].as_u64().unwrap() as usize]["id"],
            r["ruleId"]
        );
    }
    // Control: the validator rejects a log that breaks the schema.
    let mut broken = v.clone();
    broken["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] =
        serde_json::json!(0);
    let bad = dir.path().join("bad.sarif");
    std::fs::write(&bad, serde_json::to_string(&broken).unwrap()).unwrap();
    let e = report_validators::sarif_verdict(&bad).unwrap_err();
    assert!(e.contains("startLine"), "{e}");
}

#[test]
fn a_portfolio_of_two_repositories() {
    let dir = tempfile::tempdir().unwrap();
    for (name, df) in [
        (
            "orders",
            "FROM scratch\nCOPY . /\nEXPOSE 80\nENTRYPOINT /app/start.sh\n",
        ),
        (
            "billing",
            "FROM scratch\nUSER root\nCMD [\"/app/billing\"]\n",
        ),
    ] {
        std::fs::create_dir(dir.path().join(name)).unwrap();
        std::fs::write(dir.path().join(name).join("Dockerfile"), df).unwrap();
    }
    let report: FleetReport = serde_json::from_value(serde_json::json!({
        "manifest": dir.path().join("fleet.yaml"), "run_id": "p", "wall_clock_ms": 9,
        "engines": [], "totals": {"repositories": 2, "done": 1, "failed": 1, "skipped": 0, "ready": 0, "unverified": 1},
        "common_blockers": [],
        "repositories": [
            {"path": "orders", "engine": "unix:///var/run/docker.sock", "status": "done", "evidence": "ran",
             "confidence": "medium", "verified": false, "size_bytes": {"original": 10, "minimal": 4},
             "minimize": {"status": "done", "minimal_image": "codegenie-min:1", "verified": false,
                          "size_bytes": {"original": 10, "minimal": 4}, "blockers": [],
                          "scenarios": [
                            {"name": "startup", "original": "completed", "minimal": "completed",
                             "missing": ["/app/lib/report.js"], "original_wall_clock_ms": 1500, "minimal_wall_clock_ms": 1400}
                          ]},
             "error": null, "requeued_from": [], "duration_ms": 5, "slice_path": null,
             "scenarios": [
                {"name": "startup", "outcome": "completed", "reason": null, "wall_clock_ms": 1500},
                {"name": "healthcheck", "outcome": "failed", "reason": "the scenario ran past its time limit (120000 ms)", "wall_clock_ms": 120000}
             ],
             "blockers": [
                {"kind": "shell", "evidence": ["2 shell invocation(s)", "/bin/sh"]},
                {"kind": "privileged_port", "evidence": ["0.0.0.0:80"]}
             ]},
            {"path": "billing", "engine": null, "status": "failed", "evidence": null, "confidence": null,
             "verified": null, "size_bytes": null, "minimize": {"status": "not_requested"},
             "error": "the image build failed (exit code 1)", "requeued_from": [], "duration_ms": 1,
             "slice_path": null, "scenarios": [],
             "blockers": [{"kind": "root_user", "evidence": ["user: root"]}]}
        ]
    }))
    .unwrap();
    let junit = dir.path().join("fleet.xml");
    write_junit(&junit, &fleet_suites(&report));
    let suites = report_validators::junit(&junit);
    // orders was minimized: its minimal image has a suite of its own, as
    // `codegenie minimize` writes it; billing was not.
    assert_eq!(suites.as_array().unwrap().len(), 3);
    let minimal = suite(&suites, "orders (minimal image)");
    let lacking = case(minimal, "startup");
    assert_eq!(
        lacking["result"], "failure",
        "a missing path fails the case"
    );
    assert_eq!(lacking["type"], "missing_paths");
    let orders = suite(&suites, "orders");
    assert_eq!(case(orders, "startup")["result"], "passed");
    assert_eq!(case(orders, "healthcheck")["result"], "failure");
    assert_eq!(case(orders, "healthcheck")["time"], 120.0);
    let billing = suite(&suites, "billing");
    let trace = case(billing, "trace");
    assert_eq!(trace["result"], "failure");
    assert_eq!(trace["message"], "the image build failed (exit code 1)");

    let repos: Vec<RepoFindings> = report
        .repositories
        .iter()
        .map(|r| RepoFindings::read(&Path::new("fleet").join(&r.path), Vec::new()))
        .zip(&report.repositories)
        .map(|(mut f, r)| {
            f.text = std::fs::read_to_string(dir.path().join(&r.path).join("Dockerfile")).ok();
            f.findings = fleet_findings(&r.blockers);
            f
        })
        .collect();
    let sarif = dir.path().join("fleet.sarif");
    write_sarif(&sarif, &repos);
    let v = report_validators::sarif(&sarif);
    let results = v["runs"][0]["results"].as_array().unwrap();
    let at: Vec<(String, String, u64)> = results
        .iter()
        .map(|r| {
            (
                r["ruleId"].as_str().unwrap().to_owned(),
                r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                start_line(r),
            )
        })
        .collect();
    assert_eq!(
        at,
        [
            ("shell".to_owned(), "fleet/orders/Dockerfile".to_owned(), 4),
            (
                "privileged_port".to_owned(),
                "fleet/orders/Dockerfile".to_owned(),
                3
            ),
            (
                "root_user".to_owned(),
                "fleet/billing/Dockerfile".to_owned(),
                2
            ),
        ]
    );
}

fn codegenie(args: &[&str], repo: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .args(args)
        .arg(repo)
        .args(extra)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout {}\nstderr {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn trace_junit_from_a_real_run_and_an_unwritable_path_that_starts_nothing() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/service");
    write_scenarios(
        repo.path(),
        "version: 1\napp:\n  ready: { log_line: \"listening\", timeout_s: 20 }\nscenarios:\n  - name: startup\n    steps:\n      - wait_ready: {}\n  - name: exits_three\n    command: [\"/bin/sh\", \"-c\", \"exit 3\"]\n    expected_exit_code: 0\n",
    );
    let out_dir = tempfile::tempdir().unwrap();

    // Unwritable: a missing folder, a folder, a filesystem that takes no
    // files. Each fails with exit 1 and no container.
    let missing = out_dir.path().join("no/such/dir/junit.xml");
    let id = run_id("junit-bad");
    let watch = EngineWatch::start(&id);
    let out = codegenie(
        &["trace"],
        repo.path(),
        &[
            "--no-cache",
            "--run-id",
            &id,
            "--junit",
            missing.to_str().unwrap(),
        ],
    );
    let (_, distinct) = watch.finish();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("JUnit report cannot be written"), "{err}");
    assert!(err.contains("no/such/dir"), "{err}");
    assert_eq!(
        distinct, 0,
        "a container was created before the path was checked"
    );
    assert!(!repo
        .path()
        .join(".codegenie/context/runtime_trace.json")
        .exists());
    for bad in [
        out_dir.path().to_str().unwrap(),
        "/proc/codegenie-junit.xml",
    ] {
        let out = codegenie(
            &["trace"],
            repo.path(),
            &["--no-cache", "--run-id", &id, "--junit", bad],
        );
        assert_eq!(out.status.code(), Some(1), "{bad}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot be written"),
            "{}",
            text(&out)
        );
    }
    assert!(labelled_containers(&id).is_empty());

    // Control: with a writable path the same run creates its containers
    // and writes the report.
    let path = out_dir.path().join("junit.xml");
    let id = run_id("junit-ok");
    let watch = EngineWatch::start(&id);
    let out = codegenie(
        &["trace"],
        repo.path(),
        &[
            "--no-cache",
            "--run-id",
            &id,
            "--junit",
            path.to_str().unwrap(),
        ],
    );
    let (_, distinct) = watch.finish();
    // A failed scenario keeps `trace`'s own exit code.
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(distinct >= 1, "the control run created no container");
    eprintln!(
        "JUNIT trace (tests/fixtures/service):\n{}",
        std::fs::read_to_string(&path).unwrap()
    );
    let suites = report_validators::junit(&path);
    let s = suite(&suites, repo.path().to_str().unwrap());
    assert_eq!(
        (s["tests"].as_u64(), s["failures"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(case(s, "startup")["result"], "passed");
    assert!(case(s, "startup")["time"].as_f64().unwrap() > 0.0);
    let failed = case(s, "exits_three");
    assert_eq!(failed["result"], "failure");
    assert_eq!(failed["type"], "unexpected_exit");
    assert!(
        failed["message"].as_str().unwrap().contains("code 3"),
        "{failed}"
    );
    // No probe file is left beside the report.
    let names: Vec<String> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["junit.xml"]);
}

#[test]
fn minimize_sarif_and_junit_from_a_real_run() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/service");
    // The shell's ENTRYPOINT spread over continuation lines with a comment
    // inside, after an earlier stage whose own ENTRYPOINT is a shell too.
    std::fs::write(
        repo.path().join("Dockerfile"),
        "# Fixture service, FROM scratch.\nFROM scratch AS unused\nENTRYPOINT [\"/bin/sh\"]\n\nFROM scratch\nCOPY bin/ /bin/\nCOPY rootfs/ /\nEXPOSE 8080\nENTRYPOINT [ \\\n  # the start script\n  \"/app/start.sh\" \\\n  ]\nCMD [\"--port\", \"8080\"]\n",
    )
    .unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let junit = out_dir.path().join("min.xml");
    let sarif = out_dir.path().join("min.sarif");
    // Unwritable first: nothing is built or started.
    let id = run_id("sarif-bad");
    let watch = EngineWatch::start(&id);
    let out = codegenie(
        &["minimize"],
        repo.path(),
        &[
            "--no-cache",
            "--run-id",
            &id,
            "--sarif",
            out_dir.path().join("none/min.sarif").to_str().unwrap(),
        ],
    );
    let (_, distinct) = watch.finish();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SARIF report cannot be written"),
        "{}",
        text(&out)
    );
    assert_eq!(distinct, 0);

    let id = run_id("sarif");
    let out = codegenie(
        &["minimize"],
        repo.path(),
        &[
            "--no-cache",
            "--json",
            "--run-id",
            &id,
            "--junit",
            junit.to_str().unwrap(),
            "--sarif",
            sarif.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    eprintln!(
        "JUNIT minimize (tests/fixtures/service):\n{}",
        std::fs::read_to_string(&junit).unwrap()
    );
    eprintln!(
        "SARIF minimize (tests/fixtures/service):\n{}",
        std::fs::read_to_string(&sarif).unwrap()
    );
    let suites = report_validators::junit(&junit);
    let name = repo.path().display().to_string();
    for image in ["original", "minimal"] {
        let s = suite(&suites, &format!("{name} ({image} image)"));
        assert_eq!(s["tests"], 5, "{s:#}");
        assert_eq!(s["failures"], 0, "{s:#}");
    }
    let v = report_validators::sarif(&sarif);
    let run = &v["runs"][0];
    let results = run["results"].as_array().unwrap();
    let shell = results
        .iter()
        .find(|r| r["ruleId"] == "shell")
        .unwrap_or_else(|| panic!("{run:#}"));
    assert_eq!(start_line(shell), 9, "{shell:#}");
    let root = results.iter().find(|r| r["ruleId"] == "root_user").unwrap();
    assert_eq!(start_line(root), 5);
    let uri = shell["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        .as_str()
        .unwrap();
    assert!(uri.ends_with("/Dockerfile"), "{uri}");
    // The start script runs `/app/prepare.sh password=hunter2fixture`: the
    // shell blocker quotes that argv, and the file holds it redacted.
    let written = std::fs::read_to_string(&sarif).unwrap();
    assert!(!written.contains("hunter2fixture"), "{written}");
    assert!(
        written.contains("password=[REDACTED:password]"),
        "{written}"
    );
    assert!(labelled_containers(&id).is_empty());
}

#[test]
fn portfolio_checks_its_report_paths_before_reading_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("fleet.yaml");
    std::fs::write(
        &manifest,
        "version: 1\nengines:\n  - host: unix:///var/run/docker.sock\nrepositories:\n  - path: a\n",
    )
    .unwrap();
    for flag in ["--junit", "--sarif"] {
        let bad = dir.path().join("gone/report");
        let out = codegenie(&["portfolio"], &manifest, &[flag, bad.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("report cannot be written"), "{err}");
        // Control: with a writable path the same command goes on, to the
        // manifest's own error (its repository is missing).
        let ok = dir.path().join("report");
        let out = codegenie(&["portfolio"], &manifest, &[flag, ok.to_str().unwrap()]);
        let err2 = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(!err2.contains("report cannot be written"), "{err2}");
        assert_ne!(err, err2);
        assert!(!ok.exists());
    }
    assert!(!dir.path().join(".codegenie-portfolio").exists());
}

#[test]
fn a_trace_that_fails_before_any_scenario_is_one_failing_case() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/service");
    // An engine that does not answer (port 1 on the loopback) fails the
    // probe before any scenario. (Unreadable scenarios stop the command
    // before the probe runs, exit 1, with nothing to report.)
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junit.xml");
    let id = run_id("junit-fail");
    let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("trace")
        .arg(repo.path())
        .args([
            "--no-cache",
            "--run-id",
            &id,
            "--junit",
            path.to_str().unwrap(),
        ])
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let suites = report_validators::junit(&path);
    let s = suite(&suites, repo.path().to_str().unwrap());
    assert_eq!(s["tests"], 1);
    let c = case(s, "runtime_trace");
    assert_eq!(c["result"], "failure");
    assert_eq!(c["type"], "probe_failed");
    let message = c["message"].as_str().unwrap();
    assert!(
        message.contains("the container engine is unavailable") && message.contains("127.0.0.1:1"),
        "{message}"
    );
    assert!(labelled_containers(&id).is_empty());
}
