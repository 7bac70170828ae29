//! The cache and the image build on the most common Dockerfile shape,
//! `COPY . /`, through the real binary and the real engine: codegenie's own
//! state never enters the build context, so the second run is a hit; one
//! build per run (the key's digest is the traced image); the key covers the
//! backend and the scenarios; `cache explain` builds only when asked.
// Tests drive the built binary and the engine directly; the product itself
// starts processes only through its exec layer.
#![allow(clippy::disallowed_methods)]

mod trace_support;

use std::path::Path;
use std::process::Command;

use trace_support::*;

const DOCKERFILE: &str = "FROM scratch\nCOPY . /\nENTRYPOINT [\"/app/start.sh\"]\n";
const SCENARIOS: &str = "version: 1\nscenarios:\n  - name: batch\n    command: [\"/bin/cat\", \"/app/version.txt\"]\n    expected_exit_code: 0\n";

/// A `COPY . /` repository: busybox under `bin/`, an app file, and its
/// scenario file reached through a symlink into `scenarios/` (which the
/// `.dockerignore` keeps out of the image).
fn copy_all_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    std::fs::create_dir_all(r.join("bin")).unwrap();
    std::fs::copy(busybox(), r.join("bin/busybox")).unwrap();
    for a in ["sh", "cat"] {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(a)).unwrap();
    }
    std::fs::create_dir_all(r.join("app")).unwrap();
    std::fs::write(r.join("app/version.txt"), "v1\n").unwrap();
    std::fs::write(r.join("app/start.sh"), "#!/bin/sh\ncat /app/version.txt\n").unwrap();
    std::fs::write(r.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(r.join(".dockerignore"), "scenarios/\n").unwrap();
    std::fs::create_dir_all(r.join("scenarios")).unwrap();
    std::fs::write(r.join("scenarios/trace.yaml"), SCENARIOS).unwrap();
    std::fs::create_dir_all(r.join(".codegenie")).unwrap();
    std::os::unix::fs::symlink(
        "../scenarios/trace.yaml",
        r.join(".codegenie/scenarios.yaml"),
    )
    .unwrap();
    dir
}

/// `codegenie trace <repo> --json <extra>`: the record, with the slice
/// written for it under `slice`.
fn trace(repo: &Path, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("trace")
        .arg(repo)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // 3: the evidence was written, and a scenario failed (these tests are
    // about what is cached, not about the fixture's outcome on each backend).
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rec: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    rec["slice"] = serde_json::from_slice(
        &std::fs::read(repo.join(".codegenie/context/runtime_trace.json")).unwrap(),
    )
    .unwrap();
    rec
}

fn status(rec: &serde_json::Value) -> &str {
    rec["status"]["status"].as_str().unwrap()
}

fn slice(rec: &serde_json::Value) -> &serde_json::Value {
    &rec["slice"]
}

/// The value of `token` in the probe's recorded input manifest (the key
/// of its last run).
fn manifest_token(repo: &Path, token: &str) -> String {
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.join(".codegenie/cache/manifests/runtime_trace.json")).unwrap(),
    )
    .unwrap();
    let t = m["inputs"]["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["token"] == token)
        .unwrap_or_else(|| panic!("no {token} in {m:#}"));
    t["value"]["resolved"]
        .as_str()
        .unwrap_or_else(|| panic!("{token} unresolved: {t}"))
        .to_owned()
}

#[test]
fn copy_all_dockerfile_hits_the_cache_and_keeps_codegenie_state_out_of_the_image() {
    let _engine = engine_lock();
    let repo = copy_all_repo();
    let r = repo.path();

    let first = trace(r, &[]);
    assert_eq!(status(&first), "ran", "{first:#}");
    let s = slice(&first);
    assert_eq!(strings(&s["scenarios_run"]), ["batch"], "{s:#}");
    let digest = s["built_image_digest"].as_str().unwrap().to_owned();
    // One build per run: the key's digest is the image traced.
    assert_eq!(s["last_traced_image_digest"], digest.as_str());
    assert_eq!(manifest_token(r, "image-digest:<resolved>"), digest);
    assert!(r.join(".codegenie/context/runtime_trace.json").is_file());

    // The second run builds again (the build cache answers) and gets the
    // same digest, because `.codegenie/` (now holding the cache and the
    // first run's evidence) is not in the context.
    let second = trace(r, &[]);
    assert_eq!(status(&second), "cache_hit", "{second:#}");
    assert_eq!(slice(&second)["built_image_digest"], digest.as_str());

    let paths = image_paths(&digest);
    assert!(paths.iter().any(|p| p == "app/version.txt"), "{paths:?}");
    assert!(
        !paths.iter().any(|p| p.starts_with(".codegenie")),
        "codegenie state in the image: {paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.starts_with("scenarios")),
        "{paths:?}"
    );

    // An edited app file is a new image: re-traced, with the new digest.
    std::fs::write(r.join("app/version.txt"), "v2\n").unwrap();
    let third = trace(r, &[]);
    assert_eq!(status(&third), "ran", "{third:#}");
    let new_digest = slice(&third)["built_image_digest"].as_str().unwrap();
    assert_ne!(new_digest, digest);
    assert_eq!(manifest_token(r, "image-digest:<resolved>"), new_digest);

    // The scenarios, edited through the symlink's target (which the image
    // does not contain), re-trace too.
    std::fs::write(
        r.join("scenarios/trace.yaml"),
        SCENARIOS.replace("batch", "batch_two"),
    )
    .unwrap();
    let fourth = trace(r, &[]);
    assert_eq!(status(&fourth), "ran", "{fourth:#}");
    assert_eq!(strings(&slice(&fourth)["scenarios_run"]), ["batch_two"]);
    // Raw artifacts reflect the last run only.
    let raw = r.join(".codegenie/context/raw");
    assert!(raw.join("runtime-trace-batch_two.strace").is_file());
    assert!(!raw.join("runtime-trace-batch.strace").exists());

    // --refresh runs on a hit and stores; --no-cache neither reads nor writes.
    let refreshed = trace(r, &["--refresh"]);
    assert_eq!(status(&refreshed), "ran");
    assert_eq!(status(&trace(r, &[])), "cache_hit");
    assert_eq!(status(&trace(r, &["--no-cache"])), "ran");
}

#[test]
fn a_host_backend_result_never_serves_a_container_run() {
    let _engine = engine_lock();
    let repo = copy_all_repo();
    let r = repo.path();
    assert_eq!(status(&trace(r, &[])), "ran");
    assert_eq!(status(&trace(r, &[])), "cache_hit");
    let host = trace(r, &["--backend", "host"]);
    assert_eq!(status(&host), "ran", "{host:#}");
    assert_eq!(slice(&host)["built_image_digest"], serde_json::Value::Null);
    assert!(manifest_token(r, "trace-config:<resolved>").starts_with("backend=host;"));
    // The container entry is still there, and still the container's.
    let back = trace(r, &[]);
    assert_eq!(status(&back), "cache_hit", "{back:#}");
    assert!(slice(&back)["built_image_digest"].is_string());
}

#[test]
fn cache_explain_builds_only_when_asked_and_then_shows_the_run_key() {
    let _engine = engine_lock();
    let repo = copy_all_repo();
    let r = repo.path();
    let first = trace(r, &[]);
    let digest = slice(&first)["built_image_digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let explain = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
            .args(["cache", "explain"])
            .arg(r)
            .args(["--probe", "runtime_trace", "--json"])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let token = |ex: &serde_json::Value| {
        ex["inputs"]["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["token"] == "image-digest:<resolved>")
            .unwrap()["value"]
            .clone()
    };
    // A remembered build answers without building: the key of the last
    // run, stable across calls.
    let recalled = explain(&[]);
    assert_eq!(
        token(&recalled)["resolved"],
        digest.as_str(),
        "{recalled:#}"
    );
    assert_eq!(recalled["key"], first["cache_key"]);
    assert_eq!(recalled["entry"]["state"], "present");
    assert_eq!(explain(&[])["key"], recalled["key"]);

    // An edited app file: no remembered build matches and nothing is
    // built, so the digest is unresolved and the message says why.
    std::fs::write(r.join("app/version.txt"), "v3\n").unwrap();
    let images_before = trace_images(r).len();
    let unresolved = explain(&[]);
    let v = token(&unresolved);
    assert_eq!(v["unresolved"]["reason"], "not_requested", "{v}");
    assert!(v.to_string().contains("--resolve"), "{v}");
    assert_eq!(
        trace_images(r).len(),
        images_before,
        "explain built an image"
    );
    // The control: with --resolve, the image is built and its digest shown.
    let resolved = explain(&["--resolve"]);
    let built = token(&resolved)["resolved"].as_str().unwrap().to_owned();
    assert_ne!(built, digest);
    assert_eq!(trace_images(r).len(), images_before + 1);
    assert_eq!(resolved["entry"]["state"], "absent");
    assert_eq!(explain(&["--resolve"])["key"], resolved["key"]);
    prune_images(r, 0);
}

/// `codegenie trace <repo> --json -v`: the record and the debug log.
fn trace_logged(repo: &Path) -> (serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("trace")
        .arg(repo)
        .args(["--json", "-v"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // 3: a default scenario failed on this one-shot app; the evidence stands.
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "{stdout}\n{stderr}"
    );
    (serde_json::from_str(&stdout).unwrap(), stderr)
}

/// A `FROM scratch` image holding busybox and `marker`, tagged `tag`.
fn base_image(tag: &str, marker: &str) {
    busybox_image(tag, marker, &[]);
}

#[test]
fn a_remembered_build_answers_until_an_input_or_a_base_image_changes() {
    let _engine = engine_lock();
    let base = format!("codegenie-test-memo-base:{}", std::process::id());
    base_image(&base, "one");
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    std::fs::create_dir_all(r.join("app")).unwrap();
    std::fs::write(r.join("app/version.txt"), "v1\n").unwrap();
    std::fs::write(
        r.join("Dockerfile"),
        format!("FROM {base}\nCOPY app /app\nENTRYPOINT [\"/bin/busybox\", \"cat\", \"/app/version.txt\"]\n"),
    )
    .unwrap();

    let (first, log) = trace_logged(r);
    assert_eq!(status(&first), "ran");
    assert!(!log.contains("build_recalled"), "{log}");
    let digest = slice_of(r)["built_image_digest"].clone();
    assert!(digest.is_string(), "{digest}");

    // Nothing changed: the remembered build answers, and the run is a hit.
    let (second, log) = trace_logged(r);
    assert_eq!(status(&second), "cache_hit", "{second:#}");
    assert!(log.contains("build_recalled"), "{log}");
    assert_eq!(slice_of(r)["built_image_digest"], digest);

    // The base image's tag now names another image: the same context
    // builds on it, so the build runs again and the evidence is new.
    let first_base = image_id(&base);
    base_image(&base, "two");
    let (third, log) = trace_logged(r);
    assert!(!log.contains("build_recalled"), "{log}");
    assert_eq!(status(&third), "ran", "{third:#}");
    assert_ne!(slice_of(r)["built_image_digest"], digest);

    // --no-cache neither reads nor writes remembered builds either.
    let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("trace")
        .arg(r)
        .args(["--json", "-v", "--no-cache"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("build_recalled"));

    prune_images(r, 0);
    let _ = Command::new("docker")
        .args(["rmi", &base, &first_base])
        .output();
}

/// The id of the image `reference`.
fn image_id(reference: &str) -> String {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The slice the last run wrote.
fn slice_of(repo: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(repo.join(".codegenie/context/runtime_trace.json")).unwrap(),
    )
    .unwrap()
}

/// `docker image ls` of the trace images labelled with `repo`: `(id, tag)`.
fn trace_images(repo: &Path) -> Vec<(String, String)> {
    let label = std::fs::canonicalize(repo).unwrap();
    let out = Command::new("docker")
        .args(["image", "ls", "--no-trunc", "--filter"])
        .arg(format!("label=codegenie.repository={}", label.display()))
        .args(["--format", "{{.ID}} {{.Repository}}:{{.Tag}}"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, t)| t.starts_with("codegenie-trace:"))
        .map(|(i, t)| (i.to_owned(), t.to_owned()))
        .collect()
}

/// `codegenie cache prune <repo> --keep-images <keep> --json`.
fn prune_images(repo: &Path, keep: usize) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .args(["cache", "prune"])
        .arg(repo)
        .args(["--keep-images", &keep.to_string(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_run_keeps_the_newest_trace_images_of_its_repository_and_nothing_else() {
    let _engine = engine_lock();
    let repo = copy_all_repo();
    let r = repo.path();
    let pid = std::process::id();

    let first = trace(r, &["--keep-images", "2"]);
    let first_digest = slice(&first)["built_image_digest"]
        .as_str()
        .unwrap()
        .to_owned();
    // The image names its repository.
    assert!(names_repository(&first_digest, r));
    // Somebody else's tag on the first image, and an image in codegenie's
    // tag repository that codegenie did not build: neither may go.
    let users = format!("codegenie-test-user:keep-{pid}");
    assert!(Command::new("docker")
        .args(["tag", &first_digest, &users])
        .status()
        .unwrap()
        .success());
    let unrelated = format!("codegenie-test-memo-base:unrelated-{pid}");
    base_image(&unrelated, "unrelated");
    let squatter = format!("codegenie-trace:not-ours-{pid}");
    assert!(Command::new("docker")
        .args(["tag", &unrelated, &squatter])
        .status()
        .unwrap()
        .success());

    let mut digests = vec![first_digest.clone()];
    for edit in 2..=6 {
        std::fs::write(r.join("app/version.txt"), format!("v{edit}\n")).unwrap();
        let rec = trace(r, &["--keep-images", "2"]);
        assert_eq!(status(&rec), "ran");
        digests.push(
            slice(&rec)["built_image_digest"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let left = trace_images(r);
    assert_eq!(left.len(), 2, "{left:?}");
    // The two newest: the last run's image and the one before it.
    let ids: Vec<&str> = left.iter().map(|(i, _)| i.as_str()).collect();
    assert!(ids.contains(&digests[5].as_str()), "{left:?} {digests:?}");
    assert!(ids.contains(&digests[4].as_str()), "{left:?} {digests:?}");
    assert!(!image_exists(&format!(
        "codegenie-trace:{}",
        &digests[1][7..19]
    )));
    // The first image lost codegenie's tag but stays under the user's.
    assert!(image_exists(&users));
    assert!(!image_exists(&format!(
        "codegenie-trace:{}",
        &first_digest[7..19]
    )));
    assert!(image_exists(&unrelated));
    assert!(image_exists(&squatter));

    // `cache prune` removes the rest of the repository's images, and again
    // nothing else.
    let pruned = prune_images(r, 0);
    assert_eq!(
        pruned["trace_images"]["removed"].as_array().unwrap().len(),
        2,
        "{pruned:#}"
    );
    assert!(trace_images(r).is_empty());
    assert!(image_exists(&users) && image_exists(&unrelated) && image_exists(&squatter));
    let _ = Command::new("docker")
        .args(["rmi", &users, &unrelated, &squatter])
        .output();
}

#[test]
fn a_state_folder_leading_out_of_the_repository_is_refused() {
    let repo = copy_all_repo();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), repo.path().join(".codegenie/context")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("trace")
        .arg(repo.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(".codegenie/context leads out of the repository"),
        "{stderr}"
    );
    // Nothing was written there.
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

/// `codegenie cache prune --orphaned --json`, with `env` set.
fn prune_orphaned(env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .args(["cache", "prune", "--orphaned", "--json"])
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// The tags a prune report lists under `kind` (`trace_images`) and `what`
/// (`removed`, `kept`).
fn listed(report: &serde_json::Value, kind: &str, what: &str) -> Vec<String> {
    strings(&report[kind][what])
}

#[test]
fn orphaned_images_go_with_their_repository_folder_and_nothing_else_does() {
    let _engine = engine_lock();
    let pid = std::process::id();
    let kept_repo = copy_all_repo();
    let gone_repo = copy_all_repo();
    for r in [kept_repo.path(), gone_repo.path()] {
        trace(r, &[]);
    }
    let kept: Vec<String> = trace_images(kept_repo.path())
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let gone: Vec<String> = trace_images(gone_repo.path())
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!((kept.len(), gone.len()), (1, 1), "{kept:?} {gone:?}");
    // A label that names no folder one can check (not absolute), in
    // codegenie's tag repository: it may not go.
    let odd = format!("codegenie-trace:relative-label-{pid}");
    busybox_image(&odd, "relative", &["codegenie.repository=relative/path"]);

    // The control: both folders are there, so neither image is an orphan.
    let out = prune_orphaned(&[]);
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let removed = listed(&report, "trace_images", "removed");
    assert!(
        !removed.iter().any(|t| kept.contains(t) || gone.contains(t)),
        "{report:#}"
    );
    assert!(image_exists(&gone[0]));

    // The repository's folder is deleted: its image is an orphan now.
    drop(gone_repo);
    let out = prune_orphaned(&[]);
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        listed(&report, "trace_images", "removed").contains(&gone[0]),
        "{report:#}"
    );
    assert!(
        listed(&report, "trace_images", "kept").contains(&kept[0]),
        "{report:#}"
    );
    assert!(
        listed(&report, "trace_images", "kept").contains(&odd),
        "{report:#}"
    );
    assert!(report["minimal_images"].is_object(), "{report:#}");
    assert!(!image_exists(&gone[0]));
    assert!(image_exists(&kept[0]) && image_exists(&odd));

    // An engine that may be on another machine is refused: the labels name
    // this machine's folders. (Nothing listens there; nothing is asked.)
    let out = prune_orphaned(&[("DOCKER_HOST", "tcp://127.0.0.1:9")]);
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "removing orphaned images needs the engine on this machine, \
             but DOCKER_HOST is \"tcp://127.0.0.1:9\""
        ),
        "{stderr}"
    );

    // `--orphaned` looks at every repository: it takes none.
    let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .args(["cache", "prune", "--orphaned"])
        .arg(kept_repo.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    prune_images(kept_repo.path(), 0);
    let _ = Command::new("docker").args(["rmi", &odd]).output();
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_state_folder_is_git_ignored_and_a_committed_cache_is_not_trusted() {
    let _engine = engine_lock();
    let dir = copy_all_repo();
    let r = dir.path();
    // `COPY . /` would otherwise pack `.git`, whose index each `git add` changes.
    std::fs::write(r.join(".dockerignore"), "scenarios/\n.git\n").unwrap();
    git(r, &["init", "-q"]);
    assert_eq!(status(&trace(r, &[])), "ran");
    let ignore = std::fs::read_to_string(r.join(".codegenie/.gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "*"), "{ignore}");
    // `git add -A` takes the repository's scenario file and the ignore file
    // (so clones ignore the state too), none of the state.
    git(r, &["add", "-A"]);
    let files = git(r, &["ls-files"]);
    assert!(
        files.lines().any(|l| l == ".codegenie/scenarios.yaml"),
        "{files}"
    );
    let state: Vec<&str> = files
        .lines()
        .filter(|l| {
            l.starts_with(".codegenie/")
                && !matches!(*l, ".codegenie/scenarios.yaml" | ".codegenie/.gitignore")
        })
        .collect();
    assert!(state.is_empty(), "state would be committed: {state:?}");
    // Control: the cache serves the unchanged repository.
    assert_eq!(status(&trace(r, &[])), "cache_hit");
    // A repository that commits its cache anyway: the entries are not trusted.
    git(r, &["add", "-f", ".codegenie/cache"]);
    let (rec, log) = trace_logged(r);
    assert_eq!(status(&rec), "ran", "{rec:#}");
    assert!(log.contains("a committed cache is not trusted"), "{log}");
    prune_images(r, 0);
}
