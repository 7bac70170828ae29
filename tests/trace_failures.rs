//! The runtime trace's failure paths on the real Docker engine: build
//! failure, missing Dockerfile, malformed scenarios, engine unavailable,
//! scenario and aggregate timeouts, and the one-shot command form.
// Tests drive the built binary, the engine and mounts directly; the
// product itself starts processes only through its exec layer.
#![allow(clippy::disallowed_methods)]

mod trace_support;

use std::process::Command;

use codegenie::ProbeStatus;
use trace_support::*;

#[test]
fn build_failure_skips_every_scenario_with_the_log_tail() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/build-failure");
    let id = run_id("build-failure");
    let rec = run_probe(repo.path(), context(&id, &[]), false);
    assert!(matches!(rec.status, ProbeStatus::Ran), "{:?}", rec.status);
    let s = &rec.output.unwrap().schema_slice;
    assert_eq!(s["trace_coverage_confidence"], "unavailable");
    assert_eq!(s["built_image_digest"], serde_json::Value::Null);
    assert_eq!(s["last_traced_image_digest"], serde_json::Value::Null);
    let skipped = strings(&s["scenarios_skipped"]);
    assert_eq!(skipped.len(), 5, "{s:#}");
    let startup = scenario(s, "startup");
    assert_eq!(startup["outcome"]["kind"], "skipped");
    let reason = &startup["outcome"]["detail"];
    assert_eq!(reason["reason"], "image_build_failed");
    assert_eq!(reason["exit_code"], 1);
    assert!(
        reason["log_tail"]
            .as_str()
            .unwrap()
            .contains("does-not-exist"),
        "{reason:#}"
    );
    assert!(labelled_containers(&id).is_empty());
}

#[test]
fn missing_dockerfile_is_a_clear_cli_error() {
    let repo = fixture_repo("tests/fixtures/no-dockerfile");
    let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("trace")
        .arg(repo.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no Dockerfile"), "{err}");
    // Through the coordinator the probe does not apply: nothing ran.
    let rec = run_probe(repo.path(), context(&run_id("no-dockerfile"), &[]), false);
    assert!(
        matches!(rec.status, ProbeStatus::Skipped { .. }),
        "{:?}",
        rec.status
    );
}

#[test]
fn malformed_scenarios_fail_with_a_line_and_start_nothing() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/service");
    write_scenarios(
        repo.path(),
        "version: 1\nscenarios:\n  - name: startup\n    steps:\n      - wait_ready: {}\n      - sleep: 3\n",
    );
    let id = run_id("malformed");
    let watch = EngineWatch::start(&id);
    let rec = run_probe(repo.path(), context(&id, &[]), false);
    let (most, _) = watch.finish();
    let ProbeStatus::Failed { error } = &rec.status else {
        panic!("expected a failure, got {:?}", rec.status)
    };
    assert!(error.contains(".codegenie/scenarios.yaml:6:"), "{error}");
    assert!(error.contains("sleep"), "{error}");
    assert_eq!(most, 0, "a container was created for a malformed file");
}

#[test]
fn an_unreachable_engine_is_engine_unavailable() {
    let repo = fixture_repo("tests/fixtures/service");
    let sock = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("trace")
        .arg(repo.path())
        .args(["--no-cache", "--backend", "docker"])
        .env(
            "DOCKER_HOST",
            format!("unix://{}/absent.sock", sock.path().display()),
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the container engine is unavailable"), "{err}");
}

#[test]
fn scenario_timeout_then_aggregate_timeout() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/service");
    // The ready line never comes; the scenario's own budget runs out first.
    write_scenarios(
        repo.path(),
        "version: 1\napp:\n  ready: { log_line: \"never printed\", timeout_s: 60 }\nscenarios:\n  - name: startup\n    steps: [ { wait_ready: {} } ]\n  - name: shutdown\n    steps: [ { wait_ready: {} }, { signal: SIGTERM } ]\n",
    );
    let id = run_id("timeout");
    let ctx = context(
        &id,
        &[
            Setting::ScenarioTimeoutMs(3000),
            // The budget covers wrap-ups too: half (3 s) is kept for the
            // first scenario's, which leaves no room to start the second.
            Setting::AggregateTimeoutMs(6000),
        ],
    );
    let started = std::time::Instant::now();
    let rec = run_probe(repo.path(), ctx, false);
    assert!(matches!(rec.status, ProbeStatus::Ran), "{:?}", rec.status);
    let s = &rec.output.unwrap().schema_slice;
    let startup = scenario(s, "startup");
    assert_eq!(startup["outcome"]["kind"], "failed", "{startup:#}");
    assert_eq!(startup["outcome"]["detail"]["reason"], "scenario_timeout");
    let elapsed = startup["outcome"]["detail"]["elapsed_ms"].as_u64().unwrap();
    assert!((3000..30_000).contains(&elapsed), "{elapsed}");
    // The stopped app still left a trace.
    assert_eq!(
        startup["artifact"], "raw/runtime-trace-startup.strace",
        "{startup:#}"
    );
    let shutdown = scenario(s, "shutdown");
    assert_eq!(shutdown["outcome"]["kind"], "skipped");
    assert_eq!(shutdown["outcome"]["detail"]["reason"], "aggregate_timeout");
    assert_eq!(s["trace_coverage_confidence"], "unavailable");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(labelled_containers(&id).is_empty());
}

#[test]
fn one_shot_commands_compare_the_exit_code() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/service");
    write_scenarios(
        repo.path(),
        "version: 1\nscenarios:\n  - name: batch_ok\n    command: [\"sh\", \"-c\", \"cat /etc/ssl/certs/ca-certificates.crt > /dev/null; exit 3\"]\n    expected_exit_code: 3\n  - name: batch_bad\n    command: [\"sh\", \"-c\", \"exit 3\"]\n",
    );
    let id = run_id("one-shot");
    let rec = run_probe(repo.path(), context(&id, &[]), false);
    let s = &rec.output.unwrap().schema_slice;
    let ok = scenario(s, "batch_ok");
    assert_eq!(ok["outcome"]["kind"], "completed", "{ok:#}");
    assert_eq!(ok["exit_status"]["code"], 3);
    let bad = scenario(s, "batch_bad");
    assert_eq!(bad["outcome"]["kind"], "failed", "{bad:#}");
    assert_eq!(bad["outcome"]["detail"]["reason"], "unexpected_exit");
    assert_eq!(bad["outcome"]["detail"]["code"], 3);
    assert_eq!(s["trace_coverage_confidence"], "medium");
    assert!(
        strings(&s["cert_paths_read"]).contains(&"/etc/ssl/certs/ca-certificates.crt".to_owned())
    );
    assert!(labelled_containers(&id).is_empty());
}

#[test]
fn ctrl_c_removes_the_run_s_containers() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/service");
    write_scenarios(
        repo.path(),
        "version: 1\napp:\n  ready: { log_line: \"never printed\", timeout_s: 100 }\nscenarios:\n  - name: startup\n    steps: [ { wait_ready: {} } ]\n",
    );
    let id = run_id("interrupt");
    let child = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("trace")
        .arg(repo.path())
        .args(["--no-cache", "--run-id"])
        .arg(&id)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while labelled_containers(&id).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no scenario container appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(
        labelled_containers(&id).is_empty(),
        "containers left behind"
    );
}
