//! Interrupting `codegenie trace` on the real engine: SIGTERM mid-scenario
//! removes the run's containers before exit; after a SIGKILL (no cleanup
//! possible) the next run removes the dead run's leftovers by label.
// Tests drive the built binary, the engine and mounts directly; the
// product itself starts processes only through its exec layer.
#![allow(clippy::disallowed_methods)]

mod containment_support;
mod trace_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use codegenie::runtime_trace::Backend;
use containment_support::*;
use trace_support::*;

/// A scenario that waits (up to 100 s) for a line the service never prints.
const WAITS: &str = "version: 1\napp:\n  ready: { log_line: \"never printed\", timeout_s: 100 }\nscenarios:\n  - name: startup\n    steps: [ { wait_ready: {} } ]\n";
/// [`WAITS`] and a second scenario, so that the run makes a tool image.
const WAITS_TWICE: &str = "version: 1\napp:\n  ready: { log_line: \"never printed\", timeout_s: 100 }\nscenarios:\n  - name: startup\n    steps: [ { wait_ready: {} } ]\n  - name: shutdown\n    steps: [ { wait_ready: {} } ]\n";

fn start_trace(repo: &std::path::Path, id: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("trace")
        .arg(repo)
        .args(["--no-cache", "--backend", "docker", "--run-id"])
        .arg(id)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait until the run's scenario container exists.
fn wait_for_container(id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while labelled_containers(id).is_empty() {
        assert!(Instant::now() < deadline, "no scenario container appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn send(child: &Child, signal: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn sigterm_mid_scenario_removes_the_run_s_containers_before_exit() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/service");
    write_scenarios(repo.path(), WAITS_TWICE);
    let id = run_id("sigterm");
    let child = start_trace(repo.path(), &id);
    wait_for_container(&id);
    let started = Instant::now();
    send(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    // Checked right after exit: nothing was left for a later sweep.
    let left = labelled_containers(&id);
    assert!(left.is_empty(), "containers left behind: {left:?}");
    assert_eq!(run_images(&id), Vec::<String>::new(), "tools left behind");
    // Nothing was written as if the run had completed.
    assert!(!repo
        .path()
        .join(".codegenie/context/runtime_trace.json")
        .exists());
    assert!(took < Duration::from_secs(15), "{took:?}");
    row(
        "SIGTERM to codegenie mid-scenario",
        "exit 143, run's containers removed before exit",
        &format!("exit {:?}, no slice written", out.status.code()),
        took,
        if left.is_empty() {
            "none"
        } else {
            "containers"
        },
    );
}

#[test]
fn a_run_after_a_sigkilled_run_removes_its_leftovers() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/service");
    write_scenarios(repo.path(), WAITS_TWICE);
    let dead = run_id("sigkilled");
    let mut child = start_trace(repo.path(), &dead);
    wait_for_container(&dead);
    send(&child, "KILL");
    let _ = child.wait();
    // A hard kill cleans nothing: the container outlives its run, and so
    // does the run's scratch folder (raw traces wait there unredacted).
    let dead_containers = labelled_containers(&dead);
    assert_eq!(dead_containers.len(), 1);
    let scratch = scratch_folders(repo.path());
    assert_eq!(scratch.len(), 1, "{scratch:?}");
    std::fs::write(scratch[0].join("startup.strace"), "raw trace\n").unwrap();
    // An image may carry the very owner label the dead run's container has:
    // a container of that image, made without codegenie, is not an orphan.
    let owner = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{index .Config.Labels \"codegenie.owner\"}}",
        ])
        .arg(&dead_containers[0])
        .output()
        .unwrap();
    let owner = String::from_utf8_lossy(&owner.stdout).trim().to_owned();
    assert!(owner.contains('/'), "{owner}");
    let spoof = spoofing_container(&owner);
    // The next run (another id, a scenario that finishes at once) sweeps it.
    write_scenarios(
        repo.path(),
        "version: 1\nscenarios:\n  - name: batch_job\n    command: [\"sh\", \"-c\", \"exit 0\"]\n",
    );
    let next = run_id("after-sigkill");
    let started = Instant::now();
    let rec = run_probe(
        repo.path(),
        context(&next, &[Setting::Backend(Backend::Container)]),
        false,
    );
    let took = started.elapsed();
    let out = rec.output.expect("the next run ran");
    assert_warned(
        &out.warnings,
        "leftover container(s) of earlier interrupted runs",
    );
    let left = labelled_containers(&dead);
    assert!(
        left.is_empty(),
        "the dead run's container survived: {left:?}"
    );
    // Its tools too (a volume through the engine's API, an image through
    // its CLI), and its scenario's trace volume, once the container that
    // used them was gone.
    assert_eq!(
        run_images(&dead),
        Vec::<String>::new(),
        "the dead run's tools survived"
    );
    let volumes = Command::new("docker")
        .args(["volume", "ls", "-q", "--filter"])
        .arg(format!("label=codegenie.run={dead}"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&volumes.stdout).trim(),
        "",
        "the dead run's tool or trace volume survived"
    );
    assert!(
        out.warnings.iter().any(|w| {
            w.contains("leftover tool or trace volume(s) of earlier interrupted runs")
                || w.contains("leftover tool image(s) of earlier interrupted runs")
        }),
        "{:#?}",
        out.warnings
    );
    assert!(labelled_containers(&next).is_empty());
    // The killed run's scratch folder is gone; the spoofing container stays.
    assert!(!scratch[0].exists(), "{:?}", scratch_folders(repo.path()));
    let spoof_left = Command::new("docker")
        .args(["inspect", "--format", "{{.Id}}", &spoof.0])
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rm", "-f", &spoof.0]).output();
    let _ = Command::new("docker")
        .args(["rmi", "-f", &spoof.1])
        .output();
    assert!(
        spoof_left.status.success(),
        "the sweep removed a container it did not create"
    );
    row(
        "SIGKILL to codegenie, then a second run",
        "second run removes the dead run's container (label set at creation) and scratch folder; an image-set owner label is not trusted",
        &format!(
            "container and scratch folder removed; a container of an image labelled {owner} left alone; warnings {:?}",
            out.warnings
        ),
        took,
        if left.is_empty() {
            "none"
        } else {
            "containers"
        },
    );
}

/// Images and volumes labelled with the run `id` (its tool image or tool
/// volume).
fn run_images(id: &str) -> Vec<String> {
    let mut left = Vec::new();
    for kind in ["image", "volume"] {
        let out = Command::new("docker")
            .args([kind, "ls", "-q", "--filter"])
            .arg(format!("label=codegenie.run={id}"))
            .output()
            .unwrap();
        left.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned),
        );
    }
    left
}

/// The coordinator's scratch folders in `repo`.
fn scratch_folders(repo: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(repo.join(".codegenie/work"))
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

/// A container made without codegenie from an image whose own labels carry
/// `codegenie.owner=<owner>`: (container id, image id).
fn spoofing_container(owner: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(busybox(), dir.path().join("busybox")).unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM scratch\nCOPY busybox /bin/busybox\nLABEL codegenie.owner=\"{owner}\"\nCMD [\"/bin/busybox\", \"true\"]\n"),
    )
    .unwrap();
    let img = Command::new("docker")
        .args(["build", "-q"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(img.status.success(), "{img:?}");
    let image = String::from_utf8_lossy(&img.stdout).trim().to_owned();
    let c = Command::new("docker")
        .args(["create", "--network=none", &image])
        .output()
        .unwrap();
    assert!(c.status.success(), "{c:?}");
    (String::from_utf8_lossy(&c.stdout).trim().to_owned(), image)
}

#[test]
fn a_cancelled_probe_kills_and_removes_its_container_mid_step() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/service");
    // The step would wait 100 s for a line that never comes.
    write_scenarios(
        repo.path(),
        &format!("{WAITS}  - name: shutdown\n    steps: [ {{ wait_ready: {{}} }} ]\n"),
    );
    let id = run_id("cancelled");
    let ctx = context(&id, &[Setting::Backend(Backend::Container)]);
    // What the coordinator trips on a probe timeout (a child of this token)
    // and the CLI on Ctrl-C or SIGTERM.
    let cancel = ctx.cancel.clone();
    let watcher = {
        let id = id.clone();
        std::thread::spawn(move || {
            wait_for_container(&id);
            // Control: the step is running, its container with it.
            let running = labelled_containers(&id).len();
            let at = Instant::now();
            cancel.cancel();
            (running, at)
        })
    };
    let rec = run_probe(repo.path(), ctx, false);
    let (running, cancelled_at) = watcher.join().unwrap();
    let took = cancelled_at.elapsed();
    let left = labelled_containers(&id);
    assert_eq!(running, 1);
    let s = rec.output.expect("the probe returned").schema_slice;
    let startup = scenario(&s, "startup");
    assert_eq!(startup["outcome"]["kind"], "failed", "{startup:#}");
    assert_eq!(
        startup["outcome"]["detail"]["reason"], "cancelled",
        "{startup:#}"
    );
    assert_eq!(scenario(&s, "shutdown")["outcome"]["kind"], "skipped");
    assert!(left.is_empty(), "containers left behind: {left:?}");
    assert_eq!(run_images(&id), Vec::<String>::new(), "tools left behind");
    // Within one poll of the watch plus the wrap-up, not the step's 100 s.
    assert!(took < Duration::from_secs(20), "{took:?}");
    row(
        "probe cancelled mid-step (coordinator timeout, Ctrl-C)",
        "container killed within a poll, scenario failed: cancelled, rest skipped, removed",
        &format!(
            "startup {} ({}), shutdown skipped; 1 container running at cancel",
            startup["outcome"]["kind"], startup["outcome"]["detail"]["reason"]
        ),
        took,
        if left.is_empty() {
            "none"
        } else {
            "containers"
        },
    );
}

/// `codegenie <args>`: exit code, stdout, stderr.
fn codegenie(args: &[&str], repo: &std::path::Path) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .args(args)
        .arg(repo)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Start a waiting trace on `repo` as `id`, SIGKILL it mid-scenario, and
/// check that its container outlives it.
fn killed_run(repo: &std::path::Path, id: &str) {
    let mut child = start_trace(repo, id);
    wait_for_container(id);
    send(&child, "KILL");
    let _ = child.wait();
    assert_eq!(
        labelled_containers(id).len(),
        1,
        "a SIGKILLed run cannot clean up: its container outlives it"
    );
}

#[test]
fn a_cache_hit_run_and_cache_prune_remove_a_sigkilled_run_s_container() {
    let _engine = engine_lock();
    // A repository traced once, so that its next trace is a cache hit.
    let cached = fixture_repo("tests/fixtures/service");
    write_scenarios(
        cached.path(),
        "version: 1\nscenarios:\n  - name: batch_job\n    command: [\"sh\", \"-c\", \"exit 0\"]\n",
    );
    let trace = ["trace", "--json", "--backend", "docker"];
    let (code, out, err) = codegenie(&trace, cached.path());
    assert_eq!(code, Some(0), "{out}\n{err}");
    // Another repository whose run waits, killed mid-scenario.
    let waits = fixture_repo("tests/fixtures/service");
    write_scenarios(waits.path(), WAITS);
    let dead = run_id("killed-then-hit");
    killed_run(waits.path(), &dead);

    let started = Instant::now();
    let (code, out, err) = codegenie(&trace, cached.path());
    let took = started.elapsed();
    assert_eq!(code, Some(0), "{out}\n{err}");
    let rec: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rec["status"]["status"], "cache_hit", "{rec:#}");
    let left = labelled_containers(&dead);
    assert!(
        left.is_empty(),
        "a cache-hit trace left the killed run's container: {left:?}\n{err}"
    );
    row(
        "SIGKILL to codegenie, then a cache-hit trace of another repository",
        "the hit sweeps the dead run's container",
        "removed",
        took,
        if left.is_empty() {
            "none"
        } else {
            "containers"
        },
    );

    // The same with `cache prune`, which talks to the engine too.
    let dead = run_id("killed-then-prune");
    killed_run(waits.path(), &dead);
    let started = Instant::now();
    let (code, out, err) = codegenie(
        &["cache", "prune", "--keep-images", "3", "--json"],
        cached.path(),
    );
    let took = started.elapsed();
    assert_eq!(code, Some(0), "{out}\n{err}");
    let left = labelled_containers(&dead);
    assert!(
        left.is_empty(),
        "cache prune left the killed run's container: {left:?}\n{err}"
    );
    row(
        "SIGKILL to codegenie, then cache prune",
        "prune sweeps the dead run's container",
        "removed",
        took,
        if left.is_empty() {
            "none"
        } else {
            "containers"
        },
    );
    for repo in [cached.path(), waits.path()] {
        codegenie(&["cache", "prune", "--keep-images", "0"], repo);
    }
}
