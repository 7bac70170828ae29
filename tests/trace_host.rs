//! The host backend: the same scenarios on this machine under strace, in a
//! private network namespace, for repositories without a Dockerfile or
//! machines without a container engine.
// Tests drive the built binary, the engine and mounts directly; the
// product itself starts processes only through its exec layer.
#![allow(clippy::disallowed_methods)]

mod trace_support;

use std::process::Command;

use codegenie::runtime_trace::Backend;
use codegenie::ProbeStatus;
use trace_support::*;

#[test]
fn host_backend_traces_the_app_in_its_own_network_namespace() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/host-service");
    let rec = run_probe(
        repo.path(),
        context(&run_id("host"), &[Setting::Backend(Backend::Host)]),
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
    // Relative execs are reported absolute, against the app's working
    // directory (the repository root on the host).
    let root = repo.path().canonicalize().unwrap();
    let service = format!("{}/service.sh", root.display());
    assert_eq!(s["interpreters"][service.as_str()], "/bin/sh", "{s:#}");
    let bins = strings(&s["binaries_executed"]);
    let httpd = format!("{}/bin/httpd", root.display());
    assert!(bins.contains(&httpd), "{bins:?}");
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
fn untrusted_code_never_runs_on_the_host_unless_asked() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/host-service");
    // The app leaves a mark wherever it runs.
    let service = repo.path().join("service.sh");
    let script = std::fs::read_to_string(&service).unwrap();
    let marked = script.replacen('\n', "\n: > ran-here\n", 1);
    std::fs::write(&service, marked).unwrap();
    let mark = repo.path().join("ran-here");
    // Exec steps run arbitrary commands, which only the container backend allows.
    let scenarios = repo.path().join(".codegenie/scenarios.yaml");
    let mut text = std::fs::read_to_string(&scenarios).unwrap();
    text.push_str("  - name: smoke_test\n    steps: [ { wait_ready: {} }, { exec: [\"./bin/cat\", \"www/index.html\"] } ]\n");
    std::fs::write(&scenarios, text).unwrap();
    let sock = tempfile::tempdir().unwrap();
    let trace = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_codegenie"))
            .arg("trace")
            .arg(repo.path())
            .arg("--no-cache")
            .args(extra)
            .env(
                "DOCKER_HOST",
                format!("unix://{}/absent.sock", sock.path().display()),
            )
            .output()
            .unwrap()
    };
    let slice_path = repo.path().join(".codegenie/context/runtime_trace.json");

    // No Dockerfile, no choice made: a clear refusal that says how to opt in.
    let out = trace(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("has no Dockerfile"), "{err}");
    assert!(err.contains("pass `--backend host`"), "{err}");
    assert!(
        !mark.exists(),
        "the app ran on the host without being asked"
    );
    assert!(!slice_path.exists());

    // A Dockerfile but no engine answering: EngineUnavailable, not the host.
    std::fs::write(repo.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let out = trace(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the container engine is unavailable"), "{err}");
    assert!(
        !mark.exists(),
        "the app ran on the host without being asked"
    );
    assert!(!slice_path.exists());

    // Asked for: the scenarios run on the host (exit 3: smoke_test's exec
    // step fails there, and the evidence is written).
    let out = trace(&["--backend", "host"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.code() == Some(3),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(mark.exists());
    let slice: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&slice_path).unwrap()).unwrap();
    assert_eq!(strings(&slice["scenarios_run"]).len(), 3);
    let smoke = scenario(&slice, "smoke_test");
    assert_eq!(smoke["outcome"]["kind"], "failed");
    assert!(smoke["outcome"]["detail"]["detail"]
        .as_str()
        .unwrap()
        .contains("need the container backend"));
    assert_eq!(slice["trace_coverage_confidence"], "medium");
}

/// Live processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        if stat
            .rsplit_once(") ")
            .is_some_and(|(_, a)| a.starts_with('Z'))
        {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(needle) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn ctrl_c_ends_strace_and_the_app_on_the_host() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/host-service");
    let scenarios = repo.path().join(".codegenie/scenarios.yaml");
    let text = std::fs::read_to_string(&scenarios).unwrap().replace(
        "{ tcp_port: 8080, timeout_s: 20 }",
        "{ log_line: never, timeout_s: 100 }",
    );
    std::fs::write(&scenarios, text).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("trace")
        .arg(repo.path())
        .args(["--no-cache", "--backend", "host"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // strace's argv names the trace file inside the repository.
    let needle = repo.path().join(".codegenie/work").display().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while processes_mentioning(&needle).is_empty() {
        assert!(std::time::Instant::now() < deadline, "strace never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The app: strace's children (the traced shell script).
    let strace = processes_mentioning(&needle);
    let mut app = Vec::new();
    while app.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the app never started"
        );
        app = children_of(&strace);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(processes_mentioning(&needle), Vec::<i32>::new());
    for pid in app {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty()
                || stat
                    .rsplit_once(") ")
                    .is_some_and(|(_, a)| a.starts_with('Z')),
            "app process {pid} survived: {stat}"
        );
    }
}

/// Live children of any of `parents`.
fn children_of(parents: &[i32]) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, a)| a.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid.is_some_and(|p| parents.contains(&p)) {
            out.push(pid);
        }
    }
    out
}
