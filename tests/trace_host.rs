//! The host backend: the same scenarios on this machine under strace, in a
//! private network namespace, for repositories without a Dockerfile or
//! machines without a container engine.

mod trace_support;

use std::process::Command;

use codegenie::ProbeStatus;
use trace_support::*;

#[test]
fn host_backend_traces_the_app_in_its_own_network_namespace() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/host-service");
    let rec = run_probe(
        repo.path(),
        context(&run_id("host"), &[("runtime_trace.backend", "host")]),
        false,
    );
    assert!(matches!(rec.status, ProbeStatus::Ran), "{:?}", rec.status);
    let s = &rec.output.unwrap().schema_slice;
    assert_eq!(s["trace_coverage_confidence"], "high", "{s:#}");
    assert_eq!(
        strings(&s["scenarios_run"]),
        ["startup", "healthcheck", "shutdown"]
    );
    assert_eq!(s["built_image_digest"], serde_json::Value::Null);
    assert_eq!(s["interpreters"]["./service.sh"], "/bin/sh");
    let bins = strings(&s["binaries_executed"]);
    assert!(bins.contains(&"./bin/httpd".to_owned()), "{bins:?}");
    assert!(s["shell_invocations"].as_u64().unwrap() > 0);
    let certs = strings(&s["cert_paths_read"]);
    assert_eq!(certs.len(), 1);
    assert!(certs[0].ends_with("/certs/ca.pem"), "{certs:?}");
    assert_eq!(
        strings(&s["network_endpoints_touched"]["outbound"]),
        ["127.0.0.1:5432"]
    );
    let inbound = strings(&s["network_endpoints_touched"]["inbound"]);
    assert!(inbound.iter().any(|e| e.ends_with(":8080")), "{inbound:?}");
    let shutdown = scenario(s, "shutdown");
    assert!(strings(&shutdown["signals_seen"]).contains(&"SIGTERM".to_owned()));
    assert_eq!(shutdown["exit_status"]["code"], 0);
    // The raw trace went through the writer.
    let raw = repo
        .path()
        .join(".codegenie/context/raw/runtime-trace-healthcheck.strace");
    assert!(std::fs::read_to_string(raw).unwrap().contains("bind("));
}

#[test]
fn without_an_engine_the_automatic_choice_is_the_host() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/host-service");
    std::fs::write(repo.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    // Exec steps run arbitrary commands, which only the container backend allows.
    let scenarios = repo.path().join(".codegenie/scenarios.yaml");
    let mut text = std::fs::read_to_string(&scenarios).unwrap();
    text.push_str("  - name: smoke_test\n    steps: [ { wait_ready: {} }, { exec: [\"./bin/cat\", \"www/index.html\"] } ]\n");
    std::fs::write(&scenarios, text).unwrap();
    let sock = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("trace")
        .arg(repo.path())
        .arg("--no-cache")
        .env(
            "DOCKER_HOST",
            format!("unix://{}/absent.sock", sock.path().display()),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("warning: traced on the host backend"),
        "{stdout}"
    );
    let slice: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.path().join(".codegenie/context/runtime_trace.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(strings(&slice["scenarios_run"]).len(), 3);
    let smoke = scenario(&slice, "smoke_test");
    assert_eq!(smoke["outcome"]["kind"], "failed");
    assert!(smoke["outcome"]["detail"]["detail"]
        .as_str()
        .unwrap()
        .contains("need the container backend"));
    assert_eq!(slice["trace_coverage_confidence"], "medium");
}
