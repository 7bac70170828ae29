//! Where a scenario's time goes, on the real engine: every phase of
//! `backend::run_one` is in the scenario's result, and together they fit in
//! its wall clock.

// The test asks the engine CLI what a run left behind.
#![allow(clippy::disallowed_methods)]

mod trace_support;

use trace_support::*;

const PHASES: [&str; 10] = [
    "create", "install", "start", "ready", "steps", "stop", "judge", "copy_out", "parse", "remove",
];

/// Each phase as a number, checked present; their sum.
fn phases_of(scenario: &serde_json::Value) -> u64 {
    let phases = scenario["phases_ms"]
        .as_object()
        .unwrap_or_else(|| panic!("no phases_ms in {scenario:#}"));
    assert_eq!(phases.len(), PHASES.len(), "{phases:#?}");
    PHASES
        .iter()
        .map(|p| {
            phases
                .get(*p)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or_else(|| panic!("phase {p} missing in {phases:#?}"))
        })
        .sum()
}

#[test]
fn every_phase_of_a_container_scenario_is_timed_within_its_wall_clock() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/service");
    write_scenarios(
        repo.path(),
        "version: 1\napp:\n  ready: { log_line: \"listening on\", timeout_s: 20 }\n\
         scenarios:\n  - name: startup\n    steps: [ { wait_ready: {} } ]\n",
    );
    let id = run_id("phases");
    let rec = run_probe(repo.path(), context(&id, &[]), false);
    let slice = &rec.output.as_ref().expect("an output").schema_slice;
    let sc = scenario(slice, "startup");
    assert_eq!(sc["outcome"]["kind"], "completed", "{sc:#}");
    let sum = phases_of(sc);
    let wall = sc["wall_clock_ms"].as_u64().unwrap();
    assert!(
        sum <= wall,
        "phases sum to {sum} ms, wall clock {wall} ms: {sc:#}"
    );
    let p = &sc["phases_ms"];
    // A container is created, started (through the API the start answers
    // once it runs, so `ready` has nothing left to wait for), stopped by
    // SIGTERM and removed. Its trace's folder is its own trace volume on
    // this machine, so `install` has nothing to do and the copy out is a
    // read of a local file, each of which can take under a millisecond.
    for busy in ["create", "start", "stop", "remove"] {
        assert!(p[busy].as_u64().unwrap() > 0, "{busy} took no time: {p:#}");
    }
    assert!(
        labelled_containers(&id).is_empty(),
        "containers left behind"
    );
}

#[test]
fn scenarios_of_a_run_share_its_tools_and_leave_nothing() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/service");
    write_scenarios(
        repo.path(),
        "version: 1\nscenarios:\n  - name: one\n    command: [\"sh\", \"-c\", \"exit 0\"]\n\
         \x20 - name: two\n    command: [\"sh\", \"-c\", \"exit 0\"]\n",
    );
    let id = run_id("phases-shared");
    let rec = run_probe(repo.path(), context(&id, &[]), false);
    let slice = &rec.output.as_ref().expect("an output").schema_slice;
    for name in ["one", "two"] {
        let sc = scenario(slice, name);
        assert_eq!(sc["outcome"]["kind"], "completed", "{sc:#}");
        let sum = phases_of(sc);
        assert!(sum <= sc["wall_clock_ms"].as_u64().unwrap(), "{sc:#}");
        // A one-shot command without steps is not polled for running.
        assert_eq!(sc["phases_ms"]["ready"], 0, "{sc:#}");
    }
    assert!(
        labelled_containers(&id).is_empty(),
        "containers left behind"
    );
    // The run's tool volume (or image) went with its last container.
    for kind in ["volume", "image"] {
        let out = std::process::Command::new("docker")
            .args([kind, "ls", "-q", "--filter"])
            .arg(format!("label=codegenie.run={id}"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "",
            "{kind} left behind"
        );
    }
}

#[test]
fn the_host_backend_times_the_same_phases() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/host-service");
    let id = run_id("phases-host");
    let rec = run_probe(
        repo.path(),
        context(
            &id,
            &[Setting::Backend(codegenie::runtime_trace::Backend::Host)],
        ),
        false,
    );
    let slice = &rec.output.as_ref().expect("an output").schema_slice;
    let scenarios = slice["scenarios"].as_array().unwrap();
    let ran: Vec<_> = scenarios
        .iter()
        .filter(|s| s["outcome"]["kind"] != "skipped")
        .collect();
    assert!(!ran.is_empty(), "{slice:#}");
    for sc in ran {
        let sum = phases_of(sc);
        let wall = sc["wall_clock_ms"].as_u64().unwrap();
        assert!(
            sum <= wall,
            "phases sum to {sum} ms, wall clock {wall} ms: {sc:#}"
        );
        // No container: nothing to create or install.
        assert_eq!(sc["phases_ms"]["create"], 0, "{sc:#}");
        assert_eq!(sc["phases_ms"]["install"], 0, "{sc:#}");
    }
}

#[test]
fn an_interpreter_asked_while_the_app_runs_is_the_one_that_ran_the_program() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/rewrite-after-exec");
    // Through the API, with the trace on this machine: /app/tool.sh's
    // interpreter is asked while the app runs, before it rewrites the file.
    let id = run_id("prefetch");
    let rec = run_probe(repo.path(), context(&id, &[]), false);
    let slice = &rec.output.as_ref().expect("an output").schema_slice;
    assert_eq!(scenario(slice, "batch_job")["outcome"]["kind"], "completed");
    assert_eq!(
        slice["interpreters"]["/app/tool.sh"], "/bin/sh",
        "{slice:#}"
    );
    assert_eq!(slice["interpreters"]["/app/start.sh"], "/bin/sh");
    // The control: through the CLI alone every lookup comes after the stop,
    // and reads the rewritten file.
    let id = run_id("prefetch-control");
    let rec = run_probe(repo.path(), context(&id, &[Setting::CliOnly]), false);
    let slice = &rec.output.as_ref().expect("an output").schema_slice;
    assert_eq!(scenario(slice, "batch_job")["outcome"]["kind"], "completed");
    assert_eq!(
        slice["interpreters"]["/app/tool.sh"], "/bin/busybox",
        "{slice:#}"
    );
    assert!(labelled_containers(&id).is_empty());
}
