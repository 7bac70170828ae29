//! Ready, then settled (docs/architecture.md, "Scenarios"), on the real
//! engine: an app whose port answers before it has read everything it reads
//! at startup (a worker still loading) keeps that evidence, because
//! `wait_ready` waits, bounded, until the trace stops growing. The control
//! turns settling off and loses the late read.

mod trace_support;

use trace_support::*;

/// The app listens at once, then keeps loading for about a second (a read
/// and an exec every 100 ms) and reads `/app/prepare.sh` last.
const SCENARIOS: &str = r#"version: 1
app:
  command: ["/bin/sh", "-c", "httpd -f -p 8080 -h /srv & i=0; while [ $i -lt 8 ]; do cat /etc/ssl/certs/ca-certificates.crt > /dev/null; sleep 0.1; i=$((i+1)); done; cat /app/prepare.sh > /dev/null; wait"]
  ready: { tcp_port: 8080, timeout_s: 20 }
scenarios:
  - name: startup
    steps: [ { wait_ready: {} } ]
"#;

fn late_read_seen(settle_max_ms: u64, name: &str) -> bool {
    let repo = fixture_repo("tests/fixtures/service");
    write_scenarios(repo.path(), SCENARIOS);
    let id = run_id(name);
    let rec = run_probe(
        repo.path(),
        context(&id, &[Setting::SettleMaxMs(settle_max_ms)]),
        false,
    );
    let slice = &rec.output.as_ref().expect("the trace ran").schema_slice;
    let startup = scenario(slice, "startup");
    assert_eq!(startup["outcome"]["kind"], "completed", "{startup:#}");
    assert!(labelled_containers(&id).is_empty());
    strings(&startup["trace"]["files_read"])
        .iter()
        .any(|p| p == "/app/prepare.sh")
}

#[test]
fn startup_evidence_waits_for_the_app_to_settle() {
    let _engine = engine_lock();
    assert!(
        late_read_seen(3_000, "settle-on"),
        "the read after the port answered is startup evidence"
    );
    // Control: without settling, the scenario ends as soon as the port
    // answers, a second before the late read.
    assert!(
        !late_read_seen(0, "settle-off"),
        "without settling the late read is lost (the test proves nothing otherwise)"
    );
}
