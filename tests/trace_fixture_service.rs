//! The runtime trace end to end on the real Docker engine: the fixture
//! service (a shell-script entrypoint in a FROM-scratch busybox image) runs
//! the five default scenarios in hardened containers under strace.

mod trace_support;

use trace_support::*;

#[test]
fn fixture_service_evidence_then_cache_hit() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/service");
    let id = run_id("service");

    let watch = EngineWatch::start(&id);
    let rec = run_probe(repo.path(), context(&id, &[]), true);
    let seen = watch.finish_all();
    let (most_at_once, distinct) = (seen.most_at_once, seen.distinct);

    assert!(
        matches!(rec.status, codegenie::ProbeStatus::Ran),
        "{:?}",
        rec.status
    );
    let out = rec.output.as_ref().unwrap();
    let s = &out.schema_slice;
    assert_eq!(s["trace_coverage_confidence"], "high", "{s:#}");
    assert_eq!(
        strings(&s["scenarios_run"]),
        [
            "startup",
            "smoke_test",
            "healthcheck",
            "shutdown",
            "error_path"
        ]
    );

    // Binaries, including the entrypoint script, its child script and their
    // `#!` interpreter (loaded by the kernel without any traced open).
    let bins = strings(&s["binaries_executed"]);
    for b in ["/app/start.sh", "/app/prepare.sh", "/bin/sh"] {
        assert!(bins.contains(&b.to_owned()), "{b} not in {bins:?}");
    }
    assert_eq!(s["interpreters"]["/app/start.sh"], "/bin/sh");
    assert_eq!(s["interpreters"]["/app/prepare.sh"], "/bin/sh");
    assert!(s["shell_invocations"].as_u64().unwrap() > 0);

    assert_eq!(
        strings(&s["cert_paths_read"]),
        ["/etc/ssl/certs/ca-certificates.crt"]
    );
    assert!(strings(&s["files_written"]).contains(&"/tmp/prepared".to_owned()));
    let outbound = strings(&s["network_endpoints_touched"]["outbound"]);
    assert_eq!(outbound, ["127.0.0.1:5432"]);
    let inbound = strings(&s["network_endpoints_touched"]["inbound"]);
    assert!(
        inbound.iter().any(|e| e.ends_with(":8080")),
        "inbound {inbound:?}"
    );

    // Shutdown: the app itself got SIGTERM (not strace) and exited cleanly.
    let shutdown = scenario(s, "shutdown");
    assert!(
        strings(&shutdown["signals_seen"]).contains(&"SIGTERM".to_owned()),
        "{shutdown:#}"
    );
    assert_eq!(shutdown["exit_status"]["kind"], "exited");
    assert_eq!(shutdown["exit_status"]["code"], 0);
    assert_eq!(s["built_image_digest"], s["last_traced_image_digest"]);
    assert!(s["built_image_digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));

    // One container per scenario, never two at once, none left behind.
    assert_eq!(most_at_once, 1, "containers overlapped or were never seen");
    assert_eq!(distinct, 5);
    assert!(labelled_containers(&id).is_empty());

    // The hardening of every scenario container, as the engine reports it.
    let hc = seen
        .host_config
        .expect("a scenario container was inspected");
    assert_eq!(hc["NetworkMode"], "none", "{hc:#}");
    assert_eq!(hc["CapDrop"], serde_json::json!(["ALL"]));
    assert_eq!(hc["SecurityOpt"], serde_json::json!(["no-new-privileges"]));
    assert_eq!(hc["PidsLimit"], 256);
    assert_eq!(hc["Memory"], 512 * 1024 * 1024);
    assert_eq!(hc["NanoCpus"], 1_000_000_000u64);
    // No engine-side log: a flood cannot fill the engine's disk.
    assert_eq!(hc["LogConfig"]["Type"], "none");

    // Artifacts through the writer, secrets redacted.
    let ctx_dir = repo.path().join(".codegenie/context");
    let raw = std::fs::read_to_string(ctx_dir.join("raw/runtime-trace-startup.strace")).unwrap();
    assert!(raw.contains("execve(\"/app/start.sh\""), "{raw}");
    assert!(!raw.contains("hunter2fixture"), "secret left in the trace");
    assert!(raw.contains("[REDACTED:password]"));
    let files = std::fs::read_to_string(ctx_dir.join("raw/runtime-files-read.txt")).unwrap();
    assert!(files
        .lines()
        .any(|l| l == "/etc/ssl/certs/ca-certificates.crt"));
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ctx_dir.join("runtime_trace.json")).unwrap())
            .unwrap();
    assert!(written["_meta"]["redactions"].as_u64().unwrap() >= 5);
    assert_eq!(
        written["per_scenario_artifacts"]["startup"],
        "raw/runtime-trace-startup.strace"
    );

    // Second run: same Dockerfile, scenarios and image digest → cache hit, no container.
    let id2 = run_id("service-again");
    let watch = EngineWatch::start(&id2);
    let again = run_probe(repo.path(), context(&id2, &[]), true);
    let (most, seen) = watch.finish();
    assert!(
        matches!(again.status, codegenie::ProbeStatus::CacheHit),
        "{:?} key {:?} vs {:?}; warnings {:?} / {:?}",
        again.status,
        again.cache_key,
        rec.cache_key,
        again.warnings,
        rec.warnings
    );
    assert_eq!((most, seen), (0, 0));
    // The cache stores what the writer wrote: the same evidence, redacted
    // (exec argv carry the fixture's password).
    let mut stored = written.clone();
    stored.as_object_mut().unwrap().remove("_meta");
    assert_eq!(again.output.unwrap().schema_slice, stored);
}

#[test]
fn a_non_root_image_user_is_traced_too() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/service");
    let dockerfile = repo.path().join("Dockerfile");
    let mut text = std::fs::read_to_string(&dockerfile).unwrap();
    text.push_str("USER 1000\n");
    std::fs::write(&dockerfile, text).unwrap();
    std::fs::create_dir_all(repo.path().join(".codegenie")).unwrap();
    std::fs::write(
        repo.path().join(".codegenie/scenarios.yaml"),
        "version: 1\nscenarios:\n  - name: shutdown\n    steps: [ { wait_ready: {} }, { signal: SIGTERM }, { wait_exit: { timeout_s: 10 } } ]\n",
    )
    .unwrap();
    let id = run_id("non-root");
    let rec = run_probe(repo.path(), context(&id, &[]), false);
    let s = &rec.output.expect("an output").schema_slice;
    let shutdown = scenario(s, "shutdown");
    assert_eq!(shutdown["outcome"]["kind"], "completed", "{shutdown:#}");
    assert!(strings(&shutdown["signals_seen"]).contains(&"SIGTERM".to_owned()));
    assert!(strings(&s["binaries_executed"]).contains(&"/app/start.sh".to_owned()));
    assert!(labelled_containers(&id).is_empty());
}
