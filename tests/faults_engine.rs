//! Environment faults through the CLI: a wrong `DOCKER_HOST`, no docker CLI,
//! no strace on the host. Each is a clear, typed error (exit 2), and nothing
//! is cached or written, so a later healthy run is not served a failure.
// Tests drive the built binary, the engine and mounts directly; the
// product itself starts processes only through its exec layer.
#![allow(clippy::disallowed_methods)]

mod fs_support;

mod containment_support;
mod trace_support;

use fs_support::files_under;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use containment_support::row;
use trace_support::*;

/// A PATH folder holding only the named host programs (symlinked).
fn path_with(programs: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for p in programs {
        let found = std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .map(|d| d.join(p))
            .find(|c| c.is_file())
            .unwrap_or_else(|| panic!("{p} is not installed"));
        std::os::unix::fs::symlink(found, dir.path().join(p)).unwrap();
    }
    dir
}

fn trace(repo: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codegenie"));
    cmd.arg("trace").arg(repo).args(["--backend", "docker"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Cache entries (`.codegenie/cache/<2 hex>/<key>.json`; the cache's
/// manifests and hash index record inputs, not outputs) and context files.
fn nothing_stored(repo: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let cache = repo.join(".codegenie/cache");
    let context = repo.join(".codegenie/context");
    if cache.exists() {
        found.extend(
            files_under(&cache)
                .into_iter()
                .filter(|p| is_cache_entry(&cache, p)),
        );
    }
    if context.exists() {
        found.extend(files_under(&context));
    }
    found
}

/// Whether `p` is an entry file under a two-hex-digit shard of `cache`.
fn is_cache_entry(cache: &Path, p: &Path) -> bool {
    p.strip_prefix(cache)
        .ok()
        .and_then(|r| r.components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .is_some_and(|shard| shard.len() == 2 && shard.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn a_wrong_docker_host_is_engine_unavailable_and_nothing_is_cached() {
    let repo = fixture_repo("tests/fixtures/service");
    let started = Instant::now();
    // Port 1 on the loopback: nothing answers there.
    let out = trace(
        repo.path(),
        &[("DOCKER_HOST", "tcp://127.0.0.1:1".as_ref())],
    );
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the container engine is unavailable"), "{err}");
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert_eq!(nothing_stored(repo.path()), Vec::<PathBuf>::new());
    row(
        "DOCKER_HOST=tcp://127.0.0.1:1",
        "engine unavailable, exit 2, nothing cached",
        "the container engine is unavailable, exit 2, cache and context empty",
        took,
        "none",
    );
}

#[test]
fn a_missing_docker_cli_is_engine_unavailable() {
    let repo = fixture_repo("tests/fixtures/service");
    let bin = path_with(&["strace"]);
    let started = Instant::now();
    let out = trace(repo.path(), &[("PATH", bin.path().as_os_str())]);
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the container engine is unavailable"), "{err}");
    assert!(
        !err.contains("EngineUnavailable"),
        "no Rust names for users: {err}"
    );
    assert!(err.contains("`docker` was not found on PATH"), "{err}");
    assert_eq!(nothing_stored(repo.path()), Vec::<PathBuf>::new());
    row(
        "docker CLI missing",
        "engine unavailable naming docker, exit 2",
        "the container engine is unavailable: `docker` was not found on PATH",
        took,
        "none",
    );
}

#[test]
fn missing_strace_on_the_host_is_a_clear_error_before_any_container() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/service");
    let bin = path_with(&["docker"]);
    let id = run_id("no-strace");
    let watch = EngineWatch::start(&id);
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("trace")
        .arg(repo.path())
        .args(["--backend", "docker", "--run-id"])
        .arg(&id)
        .env("PATH", bin.path())
        .output()
        .unwrap();
    let took = started.elapsed();
    let (most, _) = watch.finish();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("`strace` was not found on PATH"), "{err}");
    assert_eq!(most, 0, "a container was created without strace");
    assert_eq!(nothing_stored(repo.path()), Vec::<PathBuf>::new());
    row(
        "strace missing on the host",
        "typed bundle error naming strace, no container, exit 2",
        "cannot assemble the tool bundle: `strace` was not found on PATH",
        took,
        "none",
    );
}
