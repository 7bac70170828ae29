//! `codegenie minimize` through the CLI on the real engine: the minimal image
//! is built from the evidence alone and proven by re-running the scenarios;
//! an under-traced app is caught by extra verification scenarios; bad input
//! is a typed error with nothing half-written.
// Tests drive the built binary directly.
#![allow(clippy::disallowed_methods)]

mod trace_support;

use std::path::Path;
use std::process::{Command, Output};

use trace_support::*;

fn minimize(repo: &Path, id: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("minimize")
        .arg(repo)
        .args(["--json", "--no-cache", "--run-id", id])
        .args(extra)
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn ratio(v: &serde_json::Value) -> f64 {
    v["size_bytes"]["minimal"].as_f64().unwrap() / v["size_bytes"]["original"].as_f64().unwrap()
}

#[test]
fn node_service_is_verified_and_its_shell_use_is_a_blocker() {
    let _engine = engine_share();
    let repo = fixture_repo("tests/fixtures/node-express-service");
    let id = run_id("min-node");
    let out = minimize(repo.path(), &id, &[]);
    let v = json(&out);
    eprintln!("ROW | minimize node-express | {v:#}");
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["verified"], true);
    // The original's export ran beside the trace's scenarios, and was taken.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("export taken from the trace's run"),
        "{stderr}"
    );
    // Units (whole packages with their run-time dependencies, the app's
    // tree) cost more than the paths alone: the bound is the unit image's
    // (docs/architecture.md, "Minimal image").
    assert!(ratio(&v) <= 0.8, "{v:#}");
    assert!(v["minimal_image"]
        .as_str()
        .unwrap()
        .starts_with("codegenie-min:"));
    let scenarios = v["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 5);
    assert!(scenarios
        .iter()
        .all(|s| s["original"] == "completed" && s["minimal"] == "completed"));
    let shell = v["blockers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["kind"] == "shell")
        .unwrap_or_else(|| panic!("a shell blocker: {v:#}"));
    assert!(
        shell["argv"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "echo started"),
        "{shell:#}"
    );
    // The report and the proposal are written beside the other evidence.
    let ctx = repo.path().join(".codegenie/context");
    assert!(ctx.join("minimal_image.json").is_file());
    let handed = std::fs::read_to_string(ctx.join("raw/Dockerfile.distroless")).unwrap();
    // The base that fits is named; the file builds on scratch until
    // `--base` picks one.
    assert!(
        handed.contains("gcr.io/distroless/nodejs") && handed.contains("ARG BASE=scratch"),
        "{handed}"
    );
    assert!(
        handed.contains(r#"CMD ["node","/app/server.js"]"#)
            || handed.contains(r#"ENTRYPOINT ["node""#),
        "{handed}"
    );
    assert!(labelled_containers(&id).is_empty());
}

#[test]
fn busybox_service_is_verified() {
    let _engine = engine_share();
    let repo = fixture_repo("tests/fixtures/service");
    let id = run_id("min-busybox");
    // An older minimal image of the repository, as an earlier run leaves.
    let older = format!("codegenie-min:older-{}", std::process::id());
    let label = format!(
        "codegenie.repository={}",
        std::fs::canonicalize(repo.path()).unwrap().display()
    );
    busybox_image(&older, "older", &[&label]);
    let out = minimize(repo.path(), &id, &["--keep-images", "1"]);
    let v = json(&out);
    eprintln!(
        "ROW | minimize busybox service | verified {} | {} of {} bytes",
        v["verified"], v["size_bytes"]["minimal"], v["size_bytes"]["original"]
    );
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["verified"], true);
    // The app passes a password in argv (the shell blocker's evidence):
    // stdout reaches CI logs, and is redacted as the files are.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("hunter2fixture"), "{stdout}");
    assert!(stdout.contains("[REDACTED:"), "{stdout}");
    // What the image holds and how far the proof goes (docs/architecture.md,
    // "Minimal image"): the busybox image has no package database, so its
    // files are kept one by one and the report says so.
    assert_eq!(v["granularity"], "unit", "{v:#}");
    assert!(v["added"]["files"].is_array(), "{v:#}");
    assert!(v["coverage"]["app_files"].is_number(), "{v:#}");
    assert_eq!(v["trace_coverage_confidence"], "high", "{v:#}");
    assert!(
        !v["granularity_fallback"].as_array().unwrap().is_empty(),
        "{v:#}"
    );
    // The entrypoint is a shell script: distroless has no shell to run it.
    assert!(v["blockers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["kind"] == "shell"));
    // The minimal image names its repository, as the trace image does.
    let minimal = v["minimal_image"].as_str().unwrap();
    assert!(names_repository(minimal, repo.path()));
    // Without `--base`, the file handed over is the same units on scratch,
    // written by the code `--base` builds with and saying it was not built:
    // built from the repository alone, offline, it gives the image verified.
    assert_eq!(v["dockerfile_built"], false, "{v:#}");
    let path = ".codegenie/context/raw/Dockerfile.distroless";
    assert_eq!(v["dockerfile"], path, "{v:#}");
    let handed = std::fs::read_to_string(repo.path().join(path)).unwrap();
    assert!(
        handed.contains("ARG BASE=scratch") && handed.contains("not built by codegenie"),
        "{handed}"
    );
    let rebuilt = format!("codegenie-test-handover:{}", std::process::id());
    let built = Command::new("docker")
        .args(["build", "--network=none", "-q", "-t", &rebuilt, "-f"])
        .arg(repo.path().join(path))
        .arg(repo.path())
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}\n{handed}");
    let listing = |image: &str| {
        let mut paths: Vec<String> = image_paths(image)
            .into_iter()
            .map(|p| p.trim_end_matches('/').to_owned())
            .collect();
        paths.sort();
        paths
    };
    assert_eq!(listing(&rebuilt), listing(minimal), "{handed}");
    let config = |image: &str| {
        let out = Command::new("docker")
            .args(["image", "inspect", "--format"])
            .arg("{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{json .Config.ExposedPorts}}")
            .arg(image)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(config(&rebuilt), config(minimal));
    let _ = Command::new("docker")
        .args(["rmi", "-f", &rebuilt])
        .output();
    // `--keep-images 1` left only it: the older minimal image of the
    // repository lost codegenie's tag (a fixed 3 would have kept it).
    assert!(image_exists(minimal));
    assert!(!image_exists(&older), "{older} outlived --keep-images 1");

    // `cache prune` removes both kinds.
    let pruned = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .args(["cache", "prune"])
        .arg(repo.path())
        .args(["--keep-images", "0", "--json"])
        .output()
        .unwrap();
    let pruned = json(&pruned);
    assert_eq!(
        pruned["minimal_images"]["removed"],
        serde_json::json!([minimal]),
        "{pruned:#}"
    );
    assert_eq!(
        pruned["trace_images"]["removed"].as_array().unwrap().len(),
        1,
        "{pruned:#}"
    );
}

#[test]
fn extra_verification_scenarios_add_their_evidence_before_the_build() {
    let _engine = engine_share();
    let repo = fixture_repo("tests/fixtures/background-child-service");
    // A page the default scenarios never ask for.
    std::fs::write(repo.path().join("rootfs/www/extra.html"), "extra\n").unwrap();
    let verify = repo.path().join("verify.yaml");
    std::fs::write(
        &verify,
        "version: 1\nscenarios:\n  - name: extra_page\n    steps:\n      - wait_ready: {}\n      - http: { path: /extra.html, expect_status: 200 }\n",
    )
    .unwrap();
    // At file granularity (units would keep the whole `/www` tree anyway),
    // what the extra scenario reached on the original joins the evidence
    // before the build, so the page it asks for is in the minimal image.
    let id = run_id("min-under");
    let out = minimize(
        repo.path(),
        &id,
        &[
            "--granularity",
            "file",
            "--verify-with",
            verify.to_str().unwrap(),
        ],
    );
    let v = json(&out);
    eprintln!("ROW | minimize with extra scenarios | {v:#}");
    assert_eq!(out.status.code(), Some(0), "verified is exit 0: {v:#}");
    assert_eq!(v["verified"], true);
    let extra = v["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "extra_page")
        .unwrap();
    assert_eq!(extra["original"], "completed", "{extra:#}");
    assert_eq!(extra["minimal"], "completed", "{extra:#}");
    let kept = |v: &serde_json::Value| {
        v["added"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "/www/extra.html")
    };
    assert!(kept(&v), "the extra scenario's evidence was kept: {v:#}");
    assert!(labelled_containers(&id).is_empty());
    // Control: the same cut without the extra scenarios leaves the page out.
    let id = run_id("min-under-ctl");
    let out = minimize(repo.path(), &id, &["--granularity", "file"]);
    let v = json(&out);
    assert!(!kept(&v), "no scenario reached the page: {v:#}");
    assert!(labelled_containers(&id).is_empty());
}

#[test]
fn a_failed_trace_is_a_typed_error_and_nothing_half_written() {
    let _engine = engine_share();
    let repo = fixture_repo("tests/fixtures/build-failure");
    let id = run_id("min-bad");
    let out = minimize(repo.path(), &id, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no image was traced"), "{err}");
    assert!(!repo
        .path()
        .join(".codegenie/context/minimal_image.json")
        .exists());
}

#[test]
fn a_kept_setuid_file_is_a_setuid_blocker() {
    let _engine = engine_share();
    let repo = fixture_repo("tests/fixtures/hostile/setuid");
    let id = run_id("min-setuid");
    let out = minimize(repo.path(), &id, &[]);
    let v = json(&out);
    eprintln!("ROW | minimize setuid fixture | blockers {}", v["blockers"]);
    let setuid: Vec<&serde_json::Value> = v["blockers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["kind"] == "setuid")
        .collect();
    // The app runs `/opt/suid/su` (mode 4755); its folder is kept whole as
    // an app tree, `crontab` beside it included: both are named.
    assert_eq!(
        setuid,
        [
            &serde_json::json!({"kind": "setuid", "path": "/opt/suid/crontab", "mode": "4755"}),
            &serde_json::json!({"kind": "setuid", "path": "/opt/suid/su", "mode": "4755"}),
        ],
        "{v:#}"
    );
    // Control: kept files without the bits (the shell, busybox) are not named.
    assert!(!v["blockers"].to_string().contains("busybox"), "{v:#}");
    assert!(labelled_containers(&id).is_empty());
    let _ = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .args(["cache", "prune"])
        .arg(repo.path())
        .args(["--keep-images", "0"])
        .output();
}

/// `codegenie minimize <repo> --json -v` with the cache: the report and the log.
fn minimize_cached(repo: &Path) -> (Output, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("minimize")
        .arg(repo)
        .args(["--json", "-v"])
        .output()
        .unwrap();
    let v = json(&out);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, v, log)
}

/// Whether the log shows the minimal-image probe answered from the cache.
fn readiness_hit(log: &str) -> bool {
    log.lines()
        .any(|l| l.contains("cache_hit") && l.contains("minimal_image"))
}

#[test]
fn a_cached_minimal_image_that_is_gone_is_built_again() {
    let _engine = engine_share();
    let repo = fixture_repo("tests/fixtures/service");
    let (out, first, _) = minimize_cached(repo.path());
    assert_eq!(out.status.code(), Some(0), "{first:#}");
    let tag = first["minimal_image"].as_str().unwrap().to_owned();
    // Control: unchanged, the second run is a hit naming the same image.
    let (_, second, log) = minimize_cached(repo.path());
    assert!(readiness_hit(&log), "{log}");
    assert_eq!(second["minimal_image"], first["minimal_image"]);
    // The image goes, as `docker rmi` or `cache prune --keep-images 0` does.
    let rmi = Command::new("docker").args(["rmi", &tag]).output().unwrap();
    assert!(rmi.status.success(), "{rmi:?}");
    assert!(!image_exists(&tag));
    let started = std::time::Instant::now();
    let (out, third, log) = minimize_cached(repo.path());
    eprintln!(
        "ROW | minimize after the minimal image was removed | a hit naming a missing image is a miss, the image is built again | {} | {:.1} s | none",
        third["minimal_image"],
        started.elapsed().as_secs_f64()
    );
    assert_eq!(out.status.code(), Some(0), "{third:#}\n{log}");
    let again = third["minimal_image"].as_str().unwrap();
    assert!(
        image_exists(again),
        "the report names {again}, which the engine does not know\n{log}"
    );
    assert!(log.contains("gone from the engine"), "{log}");
    // And the rebuilt entry serves the next run.
    let (_, _, log) = minimize_cached(repo.path());
    assert!(readiness_hit(&log), "{log}");
    let _ = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .args(["cache", "prune"])
        .arg(repo.path())
        .args(["--keep-images", "0"])
        .output();
}

#[test]
fn a_base_the_engine_lacks_is_a_typed_error_before_any_export() {
    let _engine = engine_share();
    let repo = fixture_repo("tests/fixtures/service");
    let id = run_id("min-no-base");
    let base = format!("codegenie-no-such-base:{}", std::process::id());
    let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("minimize")
        .arg(repo.path())
        .args(["--json", "--no-cache", "--run-id", &id, "--base", &base])
        .env("RUST_LOG", "codegenie_runtime::exec=debug")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("the base \"{base}\" is not in the engine")),
        "{err}"
    );
    // The log names the engine commands the run made (the trace's build),
    // and no export: the base is looked up before either export starts.
    assert!(err.contains("exec argv=docker build"), "{err}");
    assert!(!err.contains("exec argv=docker export"), "{err}");
    assert!(!repo
        .path()
        .join(".codegenie/context/raw/Dockerfile.distroless")
        .exists());
    assert!(labelled_containers(&id).is_empty());
}

/// The containers the engine's exports use, whoever made them.
fn export_containers() -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-a", "-q", "--filter", "label=codegenie.export"])
        .output()
        .expect("docker CLI");
    assert!(out.status.success(), "docker ps failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `minimize --base` starts its two exports while the trace's scenarios
/// run (docs/architecture.md, "The Dockerfile is the product"): taken by
/// the build when they are of the image and base it asks for, stopped
/// otherwise, and their containers gone either way. The control: the same
/// exports with no stop give the index a stopped one does not.
#[test]
fn early_exports_are_taken_or_stopped_and_leave_no_container() {
    use codegenie_runtime::engine::{Engine, EngineEndpoint, EngineKind};
    use codegenie_runtime::minimal::prefetch::{self, exports, Prefetch};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    let _engine = engine_lock();
    let tag = format!("codegenie-test-prefetch:{}", std::process::id());
    busybox_image(&tag, "prefetch", &[]);
    let engine = Engine::at(EngineKind::Docker, EngineEndpoint::default());
    let base = "gcr.io/distroless/static-debian12:nonroot";
    let holds_busybox = |index: &codegenie_runtime::minimal::image_fs::ImageIndex| {
        index.sizes.keys().any(|k| k.ends_with("bin/busybox"))
    };

    // Taken once, by the image and base they were started for; a second
    // start while the first is held changes nothing.
    let early = Prefetch::default();
    early.start(engine.clone(), &tag, base);
    early.start(engine.clone(), "sha256:another", base);
    let (b, index) = early.take(&tag, base).expect("started").expect("exported");
    assert!(holds_busybox(&index));
    assert_eq!(b.reference, base);
    assert!(b.index.sizes.keys().any(|k| k.contains("etc/passwd")));
    assert!(early.take(&tag, base).is_none(), "taken once");

    // Of another image or base: stopped, and the build exports itself.
    for (original, other_base) in [("sha256:another", base), (tag.as_str(), "scratch")] {
        let early = Prefetch::default();
        early.start(engine.clone(), &tag, base);
        assert!(early.take(original, other_base).is_none());
    }

    // Without a base, the original's index alone: taken once by the cut of
    // the same image; not by another image, nor by a build on a base, and
    // the exports for a base are not the cut's either.
    let early = Prefetch::default();
    early.start_index(engine.clone(), &tag);
    let index = early.take_index(&tag).expect("started").expect("exported");
    assert!(holds_busybox(&index));
    assert!(early.take_index(&tag).is_none(), "taken once");
    let early = Prefetch::default();
    early.start_index(engine.clone(), &tag);
    assert!(early.take_index("sha256:another").is_none());
    early.start_index(engine.clone(), &tag);
    assert!(early.take(&tag, base).is_none());
    early.start(engine.clone(), &tag, base);
    assert!(early.take_index(&tag).is_none());
    let stopped = prefetch::index(&engine, &tag, Arc::new(AtomicBool::new(true)));
    assert!(
        codegenie_runtime::error_chain(&stopped.expect_err("stopped"))
            .contains("the export was stopped")
    );

    // Stopped: the export fails at its next read; not stopped, the
    // same call gives the index (the control).
    let stopped = exports(&engine, &tag, base, Arc::new(AtomicBool::new(true)));
    let err = stopped.expect_err("a stopped export gives no index");
    assert!(
        codegenie_runtime::error_chain(&err).contains("the export was stopped"),
        "{err:?}"
    );
    let (_, index) = exports(&engine, &tag, base, Arc::new(AtomicBool::new(false))).unwrap();
    assert!(holds_busybox(&index));
    // Nobody took them: the end of the run stops them. While one runs
    // (a 270 MB image takes seconds), its container carries this process
    // as its owner and a run label no run covers, so a killed run leaves it
    // to the next run's sweep.
    let early = Prefetch::default();
    early.start(engine.clone(), "codegenie-fixture-node:bookworm", base);
    let started = std::time::Instant::now();
    let labels = loop {
        if let Some(id) = export_containers().first() {
            let out = Command::new("docker")
                .args(["inspect", "-f", "{{json .Config.Labels}}", id])
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            if !v.is_null() {
                break v;
            }
        }
        assert!(started.elapsed().as_secs() < 20, "no export container");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    early.stop();
    assert_eq!(labels["codegenie.run"], "(export)", "{labels:#}");
    assert!(
        labels["codegenie.owner"]
            .as_str()
            .is_some_and(|o| o.contains(&format!("/{}/", std::process::id()))),
        "{labels:#}"
    );
    assert!(early.take(&tag, base).is_none());

    assert_eq!(export_containers(), Vec::<String>::new());
    let _ = Command::new("docker").args(["rmi", &tag]).output();
}
