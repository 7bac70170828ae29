//! Docker's exit semantics under strace, on the real engine: the app has
//! exited when its root process exits, whatever descendants survive (the
//! survivors are then killed and named); `wait_exit` alone waits for the app
//! to exit by itself; HTTP steps send their headers.

mod trace_support;

use trace_support::*;

fn outcome(slice: &serde_json::Value, scenario: &str) -> serde_json::Value {
    slice["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == scenario)
        .unwrap_or_else(|| panic!("no scenario {scenario} in {slice:#}"))
        .clone()
}

#[test]
fn a_background_child_does_not_keep_the_app_alive_after_its_root_exits() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/background-child-service");
    let id = run_id("bg-child");
    let rec = run_probe(repo.path(), context(&id, &[]), false);
    let out = rec.output.as_ref().expect("an output");
    let s = &out.schema_slice;

    let shutdown = outcome(s, "shutdown");
    assert_eq!(shutdown["outcome"]["kind"], "completed", "{shutdown:#}");
    // The root's own exit is the scenario's exit, as `docker run` reports it.
    assert_eq!(shutdown["exit_status"]["kind"], "exited", "{shutdown:#}");
    assert_eq!(shutdown["exit_status"]["code"], 0, "{shutdown:#}");
    assert_eq!(s["trace_coverage_confidence"], "high", "{s:#}");
    // The server it left behind was killed and named.
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("left running") && w.contains("httpd")),
        "{:#?}",
        out.warnings
    );
    assert!(
        labelled_containers(&id).is_empty(),
        "containers left behind"
    );
}

#[test]
fn wait_exit_alone_waits_for_an_app_that_ends_by_itself() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/background-child-service");
    write_scenarios(
        repo.path(),
        "version: 1\n\
         app:\n  command: [\"/bin/sh\", \"-c\", \"echo up; sleep 1; exit 0\"]\n  ready: { log_line: up, timeout_s: 20 }\n\
         scenarios:\n\
         \x20 - name: ends_by_itself\n    steps: [ { wait_ready: {} }, { wait_exit: { timeout_s: 15 } } ]\n\
         \x20 - name: outlives_the_wait\n    command: [\"/bin/sh\", \"-c\", \"echo up; sleep 30\"]\n    steps: [ { wait_exit: { timeout_s: 2 } } ]\n",
    );
    let id = run_id("wait-exit");
    let rec = run_probe(repo.path(), context(&id, &[]), false);
    let s = &rec.output.as_ref().expect("an output").schema_slice;

    let ends = outcome(s, "ends_by_itself");
    assert_eq!(ends["outcome"]["kind"], "completed", "{ends:#}");
    assert_eq!(ends["exit_status"]["code"], 0, "{ends:#}");
    // Control: an app that does not exit in time still fails the wait.
    let outlives = outcome(s, "outlives_the_wait");
    assert_eq!(outlives["outcome"]["kind"], "failed", "{outlives:#}");
    assert!(
        outlives["outcome"]["detail"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("did not exit within 2 s")),
        "{outlives:#}"
    );
    assert!(
        labelled_containers(&id).is_empty(),
        "containers left behind"
    );
}
