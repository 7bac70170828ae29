//! Hostile repositories on the real engine: each must finish within its
//! timeouts, report a typed result and leave no container, extra image tag
//! or temp dir behind. Shortened timeouts keep the suite fast.
// Tests drive the built binary, the engine and mounts directly; the
// product itself starts processes only through its exec layer.
#![allow(clippy::disallowed_methods)]

mod containment_support;
mod trace_support;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use codegenie::runtime_trace::Backend;
use codegenie::ProbeStatus;
use codegenie_runtime::engine::{BuildDigestResolver, Engine, EngineKind};
use containment_support::*;
use trace_support::*;

/// Settings every case shares: the container backend and short timeouts.
const FAST: [Setting; 4] = [
    Setting::Backend(Backend::Container),
    Setting::ScenarioTimeoutMs(20000),
    Setting::AggregateTimeoutMs(40000),
    Setting::StopGraceMs(1000),
];

struct Case {
    slice: serde_json::Value,
    warnings: Vec<String>,
    took: Duration,
    leftovers: Leftovers,
}

/// Run the probe on a hostile fixture and collect what it left behind.
fn run_case(name: &str, repo: &std::path::Path, extra: &[Setting]) -> Case {
    run_case_as(&run_id(name), repo, extra)
}

/// [`run_case`] under a chosen run id (so the test can watch its containers).
fn run_case_as(id: &str, repo: &std::path::Path, extra: &[Setting]) -> Case {
    let id = id.to_owned();
    let mut settings: Vec<Setting> = FAST.to_vec();
    settings.extend_from_slice(extra);
    let before = tmp_entries();
    let started = Instant::now();
    let rec = run_probe(repo, context(&id, &settings), false);
    let took = started.elapsed();
    assert!(matches!(rec.status, ProbeStatus::Ran), "{:?}", rec.status);
    let out = rec.output.unwrap();
    let digest = out.schema_slice["built_image_digest"]
        .as_str()
        .map(str::to_owned);
    let leftovers = leftovers_and_cleanup(&id, &before, digest.as_deref());
    Case {
        slice: out.schema_slice,
        warnings: out.warnings,
        took,
        leftovers,
    }
}

fn outcome(s: &serde_json::Value, name: &str) -> (String, serde_json::Value) {
    let sc = scenario(s, name);
    (
        sc["outcome"]["kind"].as_str().unwrap().to_owned(),
        sc["outcome"]["detail"].clone(),
    )
}

/// `clone`/`fork`/`vfork` calls that the kernel refused with EAGAIN (the
/// pids limit) in a scenario's raw trace artifact.
fn refused_forks(repo: &std::path::Path, slice: &serde_json::Value, name: &str) -> usize {
    let rel = scenario(slice, name)["artifact"]
        .as_str()
        .unwrap()
        .to_owned();
    let trace = std::fs::read_to_string(repo.join(".codegenie/context").join(rel)).unwrap();
    trace
        .lines()
        // `clone(...) = -1 EAGAIN` or, with several processes, the
        // `<... clone resumed> ...) = -1 EAGAIN` half of a split call.
        .filter(|l| (l.contains("clone") || l.contains("fork")) && l.contains("= -1 EAGAIN"))
        .count()
}

#[test]
fn forkbomb_is_contained_by_the_pids_limit() {
    private_tmp();
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/hostile/forkbomb");
    // A counted bomb: 400 background processes, more than the limit of 256.
    write_scenarios(
        repo.path(),
        "version: 1\nscenarios:\n  - name: batch_job\n    command: [\"/app/spawn.sh\", \"400\"]\n    expected_exit_code: 0\n",
    );
    // Control: with room for 4096 processes the 400 all start.
    let control = run_case("forkbomb-control", repo.path(), &[Setting::PidsLimit(4096)]);
    let (kind, detail) = outcome(&control.slice, "batch_job");
    assert_eq!(kind, "completed", "{detail:#}");
    assert_eq!(refused_forks(repo.path(), &control.slice, "batch_job"), 0);
    assert_eq!(control.leftovers, Leftovers::default());
    // The defence: the kernel refuses forks past the limit (seen in the
    // trace as EAGAIN) and the shell gives up with its "can't fork" status.
    let c = run_case("forkbomb", repo.path(), &[]);
    let (kind, detail) = outcome(&c.slice, "batch_job");
    assert_eq!(kind, "failed", "{detail:#}");
    assert_eq!(detail["reason"], "unexpected_exit", "{detail:#}");
    assert_eq!(detail["code"], 2, "{detail:#}");
    let refused = refused_forks(repo.path(), &c.slice, "batch_job");
    assert!(refused > 0, "no fork was refused");
    assert_eq!(c.leftovers, Leftovers::default());
    // The real bomb (exponential, never ends by itself) is contained and
    // the run ends within its time.
    std::fs::remove_file(repo.path().join(".codegenie/scenarios.yaml")).unwrap();
    fixture_repo_at("tests/fixtures/hostile/forkbomb", repo.path());
    let bomb = run_case("forkbomb-exp", repo.path(), &[]);
    let (bomb_kind, bomb_detail) = outcome(&bomb.slice, "startup");
    let bomb_refused = refused_forks(repo.path(), &bomb.slice, "startup");
    assert!(bomb_refused > 0, "{bomb_kind} {bomb_detail:#}");
    assert!(bomb.took < Duration::from_secs(90), "{:?}", bomb.took);
    assert_eq!(bomb.leftovers, Leftovers::default());
    row(
        "fork bomb",
        "--pids-limit=256 refuses forks (EAGAIN in trace), typed result, no leftovers",
        &format!(
            "400 processes: {kind} {detail}, {refused} forks refused (control, limit 4096: completed, 0 refused); exponential bomb: {bomb_kind} {bomb_detail}, {bomb_refused} forks refused"
        ),
        c.took + control.took + bomb.took,
        &c.leftovers.describe(),
    );
}

#[test]
fn infinite_cpu_loop_hits_the_scenario_timeout() {
    private_tmp();
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/hostile/cpu-loop");
    let c = run_case("cpu-loop", repo.path(), &[Setting::ScenarioTimeoutMs(3000)]);
    let (kind, detail) = outcome(&c.slice, "batch_job");
    assert_eq!(kind, "failed");
    assert_eq!(detail["reason"], "scenario_timeout", "{detail:#}");
    let elapsed = detail["elapsed_ms"].as_u64().unwrap();
    assert!((3000..15_000).contains(&elapsed), "{elapsed}");
    assert!(c.took < Duration::from_secs(60), "{:?}", c.took);
    assert_eq!(c.leftovers, Leftovers::default());
    row(
        "infinite CPU loop",
        "failed: scenario_timeout after 3 s",
        &format!("{kind} {detail}"),
        c.took,
        &c.leftovers.describe(),
    );
}

#[test]
fn memory_hog_is_reported_out_of_memory() {
    private_tmp();
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/hostile/memory-hog");
    let c = run_case("memory-hog", repo.path(), &[]);
    let (kind, detail) = outcome(&c.slice, "batch_job");
    assert_eq!(kind, "failed", "{detail:#}");
    assert_eq!(detail["reason"], "out_of_memory", "{detail:#}");
    assert_eq!(detail["limit"], "512m");
    let sc = scenario(&c.slice, "batch_job");
    assert_eq!(sc["exit_status"]["signal"], "SIGKILL", "{sc:#}");
    assert_eq!(c.leftovers, Leftovers::default());
    row(
        "memory hog",
        "failed: out_of_memory (--memory=512m), app SIGKILLed",
        &format!("{kind} {detail}; exit {}", sc["exit_status"]),
        c.took,
        &c.leftovers.describe(),
    );
}

#[test]
fn log_flood_is_captured_within_bounds() {
    private_tmp();
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/hostile/log-flood");
    let rss_before = peak_rss_kib();
    let c = run_case("log-flood", repo.path(), &[]);
    let rss_after = peak_rss_kib();
    let grown_mib = rss_after.saturating_sub(rss_before) / 1024;
    let (kind, detail) = outcome(&c.slice, "batch_job");
    assert_eq!(kind, "completed", "{detail:#} {:?}", c.warnings);
    // 128 MiB went through the attached client; capture keeps 256 KiB.
    assert!(grown_mib < 48, "peak RSS grew by {grown_mib} MiB");
    assert_eq!(c.leftovers, Leftovers::default());
    row(
        "log flood (128 MiB)",
        "completed, capture bounded (256 KiB), host RSS flat",
        &format!(
            "{kind}; peak RSS {} -> {} MiB (+{grown_mib})",
            rss_before / 1024,
            rss_after / 1024
        ),
        c.took,
        &c.leftovers.describe(),
    );
}

#[test]
fn an_app_ignoring_sigterm_is_killed_after_the_grace() {
    private_tmp();
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/hostile/ignore-sigterm");
    let c = run_case("ignore-sigterm", repo.path(), &[]);
    let (kind, detail) = outcome(&c.slice, "shutdown");
    let sc = scenario(&c.slice, "shutdown");
    assert_eq!(kind, "failed", "{sc:#}");
    assert!(
        detail["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("did not exit within 2 s"),
        "{detail:#}"
    );
    // The trace shows the SIGTERMs it ignored and the SIGKILL that ended it.
    assert_eq!(sc["exit_status"]["signal"], "SIGKILL", "{sc:#}");
    assert!(strings(&sc["signals_seen"]).contains(&"SIGTERM".to_owned()));
    assert_warned(
        &c.warnings,
        "did not stop within 1000 ms of SIGTERM; stopped by SIGKILL",
    );
    assert_eq!(c.leftovers, Leftovers::default());
    row(
        "ignores SIGTERM",
        "grace 1 s then SIGKILL, reported",
        &format!(
            "{kind}: {}; exit {}; signals {}",
            detail["detail"], sc["exit_status"], sc["signals_seen"]
        ),
        c.took,
        &c.leftovers.describe(),
    );
}

#[test]
fn egress_is_blocked_and_every_attempt_is_evidence() {
    private_tmp();
    let _engine = engine_lock();
    // A port only the host's loopback serves.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let repo = fixture_repo("tests/fixtures/hostile/egress");
    write_scenarios(
        repo.path(),
        &format!(
            "version: 1\nscenarios:\n  - name: batch_job\n    command: [\"/app/egress.sh\", \"{port}\"]\n    expected_exit_code: 0\n"
        ),
    );
    let c = run_case("egress", repo.path(), &[]);
    let (kind, detail) = outcome(&c.slice, "batch_job");
    assert_eq!(kind, "completed", "{detail:#}");
    let outbound = strings(&c.slice["network_endpoints_touched"]["outbound"]);
    assert!(
        outbound.contains(&format!("127.0.0.1:{port}")),
        "{outbound:?}"
    );
    assert!(
        outbound.contains(&"127.0.0.1:53".to_owned()),
        "{outbound:?}"
    );
    // --network=none: the host's listener never saw a connection.
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    assert_eq!(c.leftovers, Leftovers::default());
    row(
        "egress (lookup + host loopback port)",
        "blocked by --network=none, both attempts in outbound",
        &format!("{kind}; outbound {outbound:?}; host listener accepted 0"),
        c.took,
        &c.leftovers.describe(),
    );
}

/// Run the setuid fixture's `crontab` as its unprivileged user in a
/// container with the product's hardening flags, with or without
/// `--security-opt=no-new-privileges`, and no tracer. Installing a crontab
/// writes into the root-only `/var/spool/cron/crontabs`, and listing it
/// reads the root-owned file back: both succeed only as root.
fn crontab_as_app(image: &str, no_new_privileges: bool) -> std::process::Output {
    let mut cmd = Command::new("docker");
    cmd.args([
        "run",
        "--rm",
        "--network=none",
        "--cap-drop=ALL",
        "--pids-limit=256",
        "--memory=512m",
    ]);
    if no_new_privileges {
        cmd.arg("--security-opt=no-new-privileges");
    }
    cmd.args(["--entrypoint", "/bin/busybox", image, "sh", "-c"])
        .arg("/opt/suid/crontab /app/evil.cron && /opt/suid/crontab -l")
        .output()
        .unwrap()
}

#[test]
fn setuid_escalation_is_blocked() {
    private_tmp();
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/hostile/setuid");
    let img = Command::new("docker")
        .args(["build", "-q"])
        .arg(repo.path())
        .output()
        .unwrap();
    assert!(img.status.success(), "{img:?}");
    let image = String::from_utf8_lossy(&img.stdout).trim().to_owned();
    // ptrace alone already keeps a traced process from gaining privileges,
    // so the proof runs the setuid binary outside any tracer. Control: the
    // product's flags without no-new-privileges, and it acts as root.
    let without = crontab_as_app(&image, false);
    assert!(without.status.success(), "{without:?}");
    assert_eq!(
        String::from_utf8_lossy(&without.stdout).trim(),
        "* * * * * /app/escalate.sh"
    );
    let with = crontab_as_app(&image, true);
    let with_err = String::from_utf8_lossy(&with.stderr).trim().to_owned();
    assert!(
        !with.status.success() && with_err.contains("must be suid"),
        "{with:?}"
    );
    // Through the product: an `exec` step runs beside the app, untraced,
    // in the product's own hardened container.
    write_scenarios(
        repo.path(),
        "version: 1\napp:\n  command: [\"/bin/busybox\", \"sleep\", \"60\"]\n  ready: { after_s: 1 }\nscenarios:\n  - name: escalate\n    steps:\n      - wait_ready: {}\n      - exec: [\"/opt/suid/crontab\", \"/app/evil.cron\"]\n",
    );
    let c = run_case("setuid", repo.path(), &[]);
    let (kind, detail) = outcome(&c.slice, "escalate");
    assert_eq!(kind, "failed", "{detail:#}");
    let text = detail["detail"].as_str().unwrap_or_default().to_owned();
    assert!(
        text.contains("exec step") && text.contains("must be suid"),
        "{text}"
    );
    assert_eq!(c.leftovers, Leftovers::default());
    remove_image(&image);
    row(
        "setuid escalation (untraced, crontab into a root-only dir)",
        "stays unprivileged (no-new-privileges); without it: writes as root",
        &format!(
            "product exec step: {kind}: {text}; control without no-new-privileges: installed and read back as root; with: {with_err:?}"
        ),
        c.took,
        &c.leftovers.describe(),
    );
}

/// Build-step containers still running `sleep 3607` (the endless fixture).
fn endless_build_containers() -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Command}}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("3607"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_build_that_never_ends_hits_the_build_timeout() {
    private_tmp();
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/hostile/endless-build");
    let id = run_id("endless-build");
    let mut ctx = context(&id, &FAST);
    ctx.image_digest_resolver = Some(std::sync::Arc::new(
        BuildDigestResolver::new(Engine::new(EngineKind::Docker))
            .with_timeout(Duration::from_secs(5)),
    ));
    let before = tmp_entries();
    let started = Instant::now();
    let rec = run_probe(repo.path(), ctx, false);
    let took = started.elapsed();
    let s = rec.output.unwrap().schema_slice;
    let (kind, detail) = outcome(&s, "startup");
    assert_eq!(kind, "skipped");
    assert_eq!(detail["reason"], "image_build_timeout", "{detail:#}");
    assert_eq!(detail["after_ms"], 5000);
    assert!(took < Duration::from_secs(30), "{took:?}");
    // The engine cancels the build when its client is killed; give it a moment.
    let mut stray = endless_build_containers();
    for _ in 0..50 {
        if stray.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        stray = endless_build_containers();
    }
    let mut leftovers = leftovers_and_cleanup(&id, &before, None);
    leftovers.containers.extend(stray);
    assert_eq!(leftovers, Leftovers::default());
    row(
        "endless build",
        "skipped: image_build_timeout after 5 s",
        &format!("{kind} {detail}"),
        took,
        &leftovers.describe(),
    );
}

/// The `bundle-blocked` fixture run with `scenarios` (YAML): every one of
/// `names` fails with a typed engine error naming `docker cp`, the run has no
/// coverage, and nothing is left behind.
fn blocked_bundle_case(run: &str, scenarios: &str, names: &[&str]) -> Case {
    private_tmp();
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/hostile/bundle-blocked");
    write_scenarios(repo.path(), scenarios);
    let c = run_case(run, repo.path(), &[]);
    for name in names {
        let (kind, detail) = outcome(&c.slice, name);
        assert_eq!(kind, "failed");
        assert_eq!(detail["reason"], "other");
        // The copy that failed, by the CLI or through the API, or, where
        // the tool volume was filled on this machine, its mount over the
        // image's file at the start; and why.
        let said = detail["detail"].as_str().unwrap();
        assert!(
            (said.contains("docker cp")
                || said.contains("copy into container")
                || said.contains("error mounting"))
                && said.contains("not a directory"),
            "{detail:#}"
        );
    }
    assert_eq!(c.slice["trace_coverage_confidence"], "unavailable");
    assert_eq!(c.leftovers, Leftovers::default());
    c
}

#[test]
fn a_bundle_copy_failure_fails_the_scenario_cleanly() {
    let c = blocked_bundle_case(
        "bundle-blocked",
        "version: 1\napp:\n  ready: { after_s: 1 }\nscenarios:\n  - name: startup\n    steps: [ { wait_ready: {} } ]\n",
        &["startup"],
    );
    let (kind, detail) = outcome(&c.slice, "startup");
    row(
        "bundle copy failure",
        "failed: typed engine error naming the copy (or the tools' mount) and the engine's answer",
        &format!("{kind} {}", detail["detail"]),
        c.took,
        &c.leftovers.describe(),
    );
}

#[test]
fn a_tool_image_that_cannot_be_made_fails_every_scenario_cleanly() {
    // Two scenarios: the run places the bundle once (its tool volume, or
    // its tool image where the engine is driven through its CLI).
    blocked_bundle_case(
        "tool-image-blocked",
        "version: 1\napp:\n  ready: { after_s: 1 }\nscenarios:\n  - name: startup\n    steps: [ { wait_ready: {} } ]\n  - name: shutdown\n    steps: [ { wait_ready: {} } ]\n",
        &["startup", "shutdown"],
    );
}

#[test]
fn a_disk_filler_is_stopped_at_the_disk_bound() {
    private_tmp();
    let _engine = engine_lock();
    const MIB: u64 = 1 << 20;
    const LIMIT: u64 = 128 * MIB;
    // What one poll (250 ms) lets a container write past the bound, with room.
    const SLACK: u64 = 256 * MIB;
    let bundle = std::fs::metadata(env!("CARGO_BIN_EXE_codegenie"))
        .unwrap()
        .len()
        + 16 * MIB;
    let repo = fixture_repo("tests/fixtures/hostile/disk-fill");

    // Control: with the bound out of the way, the same app writes 480 MiB
    // onto the host's disk and the scenario says `completed`. The test's
    // own sampler (every 200 ms) may miss the last writes before the
    // container goes, so it is asked for 400 MiB of them.
    let scenarios = std::fs::read_to_string(repo.path().join(".codegenie/scenarios.yaml")).unwrap();
    write_scenarios(
        repo.path(),
        &scenarios.replace(r#"["/app/fill.sh"]"#, r#"["/app/fill.sh", "480"]"#),
    );
    let id = run_id("disk-control");
    let watch = WritablePeak::start(&id);
    let control = run_case_as(&id, repo.path(), &[Setting::DiskLimitBytes(u64::MAX)]);
    let control_peak = watch.finish();
    let (kind, detail) = outcome(&control.slice, "batch_job");
    assert_eq!(kind, "completed", "{detail:#}");
    assert!(control_peak > 400 * MIB, "control peak {control_peak}");
    assert_eq!(control.leftovers, Leftovers::default());

    // The attack: writes without end; the bound kills it.
    write_scenarios(repo.path(), &scenarios);
    let id = run_id("disk-fill");
    let watch = WritablePeak::start(&id);
    let c = run_case_as(&id, repo.path(), &[Setting::DiskLimitBytes(LIMIT)]);
    let engine_peak = watch.finish();
    let (kind, detail) = outcome(&c.slice, "batch_job");
    assert_eq!(kind, "failed", "{detail:#}");
    assert_eq!(detail["reason"], "disk_limit", "{detail:#}");
    assert_eq!(detail["limit_bytes"], LIMIT);
    let observed = detail["observed_bytes"].as_u64().unwrap();
    assert!((LIMIT..LIMIT + SLACK).contains(&observed), "{observed}");
    // Seen by the test itself, the bundle included: the host never held
    // more than the bound, the bundle and one poll's writes.
    assert!(
        engine_peak < LIMIT + SLACK + bundle,
        "engine peak {engine_peak}"
    );
    assert!(c.took < Duration::from_secs(30), "{:?}", c.took);
    assert_eq!(c.leftovers, Leftovers::default());
    row(
        "disk filler (endless dd)",
        "failed: disk_limit at 128 MiB, host sees bound + one poll",
        &format!(
            "{kind} {detail}; peak writable layer {} MiB (bundle incl.); control without bound: completed, {} MiB written",
            engine_peak / MIB,
            control_peak / MIB
        ),
        c.took,
        &c.leftovers.describe(),
    );
}

#[test]
fn a_trace_flood_is_stopped_at_the_disk_bound() {
    private_tmp();
    let _engine = engine_lock();
    const MIB: u64 = 1 << 20;
    const LIMIT: u64 = 2 * MIB;
    // What one poll lets the trace grow past the bound, with room.
    const SLACK: u64 = 8 * MIB;
    let repo = fixture_repo("tests/fixtures/hostile/trace-flood");

    // Control: with the bound out of the way, 60,000 probes leave a trace
    // over the bound (the app itself writes nothing) and complete.
    let scenarios = std::fs::read_to_string(repo.path().join(".codegenie/scenarios.yaml")).unwrap();
    write_scenarios(
        repo.path(),
        &scenarios.replace(r#"["/app/flood.sh"]"#, r#"["/app/flood.sh", "60000"]"#),
    );
    let control = run_case(
        "trace-flood-control",
        repo.path(),
        &[Setting::DiskLimitBytes(u64::MAX)],
    );
    let (kind, detail) = outcome(&control.slice, "batch_job");
    assert_eq!(kind, "completed", "{detail:#}");
    let traced = std::fs::read_dir(repo.path().join(".codegenie/context/raw"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .max()
        .unwrap();
    assert!(traced > LIMIT, "control trace {traced}");
    assert_eq!(control.leftovers, Leftovers::default());

    // The flood without end: its trace alone passes the bound, which stops it.
    write_scenarios(repo.path(), &scenarios);
    let c = run_case(
        "trace-flood",
        repo.path(),
        &[Setting::DiskLimitBytes(LIMIT)],
    );
    let (kind, detail) = outcome(&c.slice, "batch_job");
    assert_eq!(kind, "failed", "{detail:#}");
    assert_eq!(detail["reason"], "disk_limit", "{detail:#}");
    let observed = detail["observed_bytes"].as_u64().unwrap();
    assert!((LIMIT..LIMIT + SLACK).contains(&observed), "{observed}");
    assert!(c.took < Duration::from_secs(60), "{:?}", c.took);
    assert_eq!(c.leftovers, Leftovers::default());
    row(
        "trace flood (probes without end, writes nothing)",
        "failed: disk_limit at 2 MiB, the trace counted",
        &format!(
            "{kind} {detail}; control without bound: completed, trace {} KiB",
            traced / 1024
        ),
        c.took,
        &c.leftovers.describe(),
    );
}

/// Executed `/app/s/N.sh` paths whose interpreter the slice reports.
fn small_scripts_read(slice: &serde_json::Value) -> usize {
    slice["interpreters"]
        .as_object()
        .map(|m| m.keys().filter(|k| k.starts_with("/app/s/")).count())
        .unwrap_or(0)
}

#[test]
fn interpreter_lookups_read_a_bounded_head_of_a_bounded_number_of_paths() {
    private_tmp();
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/hostile/many-execs");

    // The copy itself, on a container of the fixture's image: the head of a
    // 300 MiB executable is 64 KiB, read in a moment; the control (a whole
    // `docker cp`, as lookups did before) brings all 300 MiB to the host.
    let img = Command::new("docker")
        .args(["build", "-q"])
        .arg(repo.path())
        .output()
        .unwrap();
    assert!(img.status.success(), "{img:?}");
    let image = String::from_utf8_lossy(&img.stdout).trim().to_owned();
    let id = run_id("head");
    let created = Command::new("docker")
        .args(["create", "--network=none", "--label"])
        .arg(format!("codegenie.run={id}"))
        .arg(&image)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let container = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    let engine = Engine::new(EngineKind::Docker);
    let started = Instant::now();
    let head = engine
        .read_head(
            &container,
            "/app/big.sh",
            64 * 1024,
            Duration::from_secs(30),
        )
        .unwrap();
    let head_took = started.elapsed();
    assert_eq!(head.len(), 64 * 1024);
    assert!(head.starts_with(b"#!/bin/sh\n"));
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    engine
        .copy_out(&container, "/app/big.sh", &tmp.path().join("whole"))
        .unwrap();
    let whole_took = started.elapsed();
    let whole = std::fs::metadata(tmp.path().join("whole")).unwrap().len();
    assert!(whole > 300 << 20, "{whole}");
    drop(tmp);
    let _ = Command::new("docker")
        .args(["rm", "-f", &container])
        .output();

    // Through the probe: 20 lookups for the run, then no more.
    let c = run_case(
        "many-execs",
        repo.path(),
        &[Setting::InterpreterLookups(20)],
    );
    let (kind, detail) = outcome(&c.slice, "batch_job");
    assert_eq!(kind, "completed", "{detail:#}");
    let capped = small_scripts_read(&c.slice);
    assert!(
        capped > 0 && capped < 20,
        "{capped} {:#}",
        c.slice["interpreters"]
    );
    assert_warned(&c.warnings, "were not read for an interpreter");
    assert_eq!(c.leftovers, Leftovers::default());
    // Control: with room for every path, all 60 scripts are read, and the
    // big script's interpreter comes from its head.
    let control = run_case(
        "many-execs-all",
        repo.path(),
        &[Setting::InterpreterLookups(1000)],
    );
    assert_eq!(small_scripts_read(&control.slice), 60);
    assert_eq!(control.slice["interpreters"]["/app/big.sh"], "/bin/sh");
    assert_eq!(control.leftovers, Leftovers::default());
    remove_image(&image);
    row(
        "interpreter lookups (60 scripts + a 300 MiB one)",
        "64 KiB per path, at most N paths per run, warning for the rest",
        &format!(
            "head of 300 MiB file: 64 KiB in {:.2} s (whole copy: {} MiB in {:.2} s); lookups capped at 20: {capped} of 60 scripts read, warning; control (cap 1000): 60",
            head_took.as_secs_f64(),
            whole >> 20,
            whole_took.as_secs_f64()
        ),
        c.took,
        &c.leftovers.describe(),
    );
}

#[test]
fn a_trace_over_its_cap_is_cut_and_lowers_confidence() {
    private_tmp();
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/hostile/many-execs");
    // Control: under the default cap the scenario completes.
    let control = run_case("trace-cap-control", repo.path(), &[]);
    let (kind, _) = outcome(&control.slice, "batch_job");
    assert_eq!(kind, "completed");
    assert_eq!(control.slice["trace_coverage_confidence"], "medium");
    let c = run_case(
        "trace-cap",
        repo.path(),
        &[Setting::TraceCapBytes(16 * 1024)],
    );
    let (kind, detail) = outcome(&c.slice, "batch_job");
    assert_eq!(kind, "failed", "{detail:#}");
    assert_eq!(detail["reason"], "trace_truncated", "{detail:#}");
    assert_eq!(detail["limit_bytes"], 16 * 1024);
    assert!(detail["trace_bytes"].as_u64().unwrap() > 16 * 1024);
    assert_eq!(c.slice["trace_coverage_confidence"], "unavailable");
    // What was kept is still evidence: the first execs are there.
    assert!(strings(&c.slice["binaries_executed"]).contains(&"/app/run.sh".to_owned()));
    let raw = std::fs::read_dir(repo.path().join(".codegenie/context/raw"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .max()
        .unwrap();
    assert!(raw <= 16 * 1024, "{raw}");
    assert_eq!(c.leftovers, Leftovers::default());
    row(
        "trace over its cap (16 KiB)",
        "failed: trace_truncated, confidence drops, raw trace <= cap",
        &format!(
            "{kind} {detail}; confidence {} (control: completed, {})",
            c.slice["trace_coverage_confidence"], control.slice["trace_coverage_confidence"]
        ),
        c.took,
        &c.leftovers.describe(),
    );
}
