//! Hostile repository layouts: a Dockerfile that is a symlink out of the
//! repository, a symlink loop or a folder; a scenario file that is a symlink
//! loop; and a repository path with spaces and non-UTF-8 bytes, traced on
//! the real engine.
// Tests drive the built binary, the engine and mounts directly; the
// product itself starts processes only through its exec layer.
#![allow(clippy::disallowed_methods)]

mod containment_support;
mod trace_support;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use containment_support::row;
use trace_support::*;

fn trace(repo: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("trace")
        .arg(repo)
        .args(["--backend", "docker", "--no-cache"])
        .args(extra)
        .output()
        .unwrap()
}

/// (case, how to make the Dockerfile, what the error must say)
type Case<'a> = (&'a str, &'a dyn Fn(&Path), &'a str);

#[test]
fn an_unusable_dockerfile_is_named_precisely() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let cases: [Case; 3] = [
        (
            "symlink outside the repo",
            &|df| std::os::unix::fs::symlink(outside.path().join("Dockerfile"), df).unwrap(),
            "outside the repository",
        ),
        (
            "symlink loop",
            &|df| std::os::unix::fs::symlink("Dockerfile", df).unwrap(),
            "Too many levels of symbolic links",
        ),
        (
            "a folder",
            &|df| std::fs::create_dir(df).unwrap(),
            "is a folder",
        ),
    ];
    for (case, make, expected) in cases {
        let repo = tempfile::tempdir().unwrap();
        make(&repo.path().join("Dockerfile"));
        let started = Instant::now();
        let out = trace(repo.path(), &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{case}: {err}");
        assert!(err.contains(expected), "{case}: {err}");
        // Nothing outside the repository was read into the cache or context.
        assert!(!repo.path().join(".codegenie/context").exists(), "{case}");
        row(
            &format!("Dockerfile: {case}"),
            "exit 1 naming the problem, nothing built",
            expected,
            started.elapsed(),
            "none",
        );
    }
}

#[test]
fn a_scenario_file_that_is_a_symlink_loop_is_a_clear_error() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/service");
    let cg = repo.path().join(".codegenie");
    std::fs::create_dir_all(&cg).unwrap();
    std::os::unix::fs::symlink("scenarios.yaml", cg.join("scenarios.yaml")).unwrap();
    let id = run_id("scenario-loop");
    let started = Instant::now();
    let out = trace(repo.path(), &["--run-id", &id]);
    let err = String::from_utf8_lossy(&out.stderr);
    // Unreadable scenarios: the command cannot run (exit 1), before any build.
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(".codegenie/scenarios.yaml"), "{err}");
    assert!(err.contains("Too many levels of symbolic links"), "{err}");
    assert!(labelled_containers(&id).is_empty());
    row(
        "declared input .codegenie/scenarios.yaml is a symlink loop",
        "exit 1 before any build, I/O error naming the file (no fallback to defaults)",
        "Too many levels of symbolic links (os error 40)",
        started.elapsed(),
        "none",
    );
}

#[test]
fn a_repository_path_with_spaces_and_non_utf8_bytes_is_traced() {
    let _engine = engine_lock();
    let parent = tempfile::tempdir().unwrap();
    let repo = parent
        .path()
        .join(OsStr::from_bytes(b"my repo \xff\xfe (copy)"));
    fixture_repo_at("tests/fixtures/service", &repo);
    write_scenarios(
        &repo,
        "version: 1\nscenarios:\n  - name: batch_job\n    command: [\"sh\", \"-c\", \"cat /etc/ssl/certs/ca-certificates.crt > /dev/null\"]\n",
    );
    let id = run_id("odd-path");
    let started = Instant::now();
    let out = trace(&repo, &["--run-id", &id]);
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let slice: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.join(".codegenie/context/runtime_trace.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        scenario(&slice, "batch_job")["outcome"]["kind"],
        "completed"
    );
    assert!(strings(&slice["cert_paths_read"])
        .contains(&"/etc/ssl/certs/ca-certificates.crt".to_owned()));
    assert!(labelled_containers(&id).is_empty());
    row(
        "repo path with spaces and bytes ff fe",
        "traced normally",
        "completed, evidence written",
        took,
        "none",
    );
}
