//! A full disk during a real trace (the repository on a small tmpfs): the
//! CLI fails with a clear I/O error, nothing partial looks complete, no temp
//! file is left, the cache holds no entry, and once space is back the next
//! run traces again instead of being served a broken result.
// Tests drive the built binary, the engine and mounts directly; the
// product itself starts processes only through its exec layer.
#![allow(clippy::disallowed_methods)]

mod fs_support;

mod containment_support;
mod trace_support;

use fs_support::{files_under, Tmpfs};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use codegenie::runtime_trace::Backend;
use containment_support::row;
use trace_support::*;

/// Write zeros to `path` until the file system is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    // Whatever is left is smaller than a block: fill it byte by byte.
    while f.write_all(&[0]).is_ok() {}
}

fn trace(repo: &Path, id: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("trace")
        .arg(repo)
        .args(["--backend", "docker", "--json", "--run-id"])
        .arg(id)
        .output()
        .unwrap()
}

/// The fixture service copied onto a fresh 8 MiB tmpfs (kept mounted while
/// the returned guard lives).
fn service_on_small_disk() -> (Tmpfs, PathBuf) {
    let fs = Tmpfs::mount("8m");
    let repo = fs.path().join("repo");
    fixture_repo_at("tests/fixtures/service", &repo);
    (fs, repo)
}

#[test]
fn disk_full_while_writing_leaves_nothing_looking_complete() {
    let _engine = engine_lock();
    let (fs, repo) = service_on_small_disk();
    write_scenarios(
        &repo,
        "version: 1\nscenarios:\n  - name: batch_job\n    command: [\"sh\", \"-c\", \"cat /etc/ssl/certs/ca-certificates.crt > /dev/null; exit 0\"]\n",
    );
    let filler = fs.path().join("filler");
    fill(&filler);

    let id = run_id("disk-full");
    let started = Instant::now();
    let out = trace(&repo, &id);
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let context = repo.join(".codegenie/context");
    assert!(!context.join("runtime_trace.json").exists());
    // No half-written file anywhere: neither temp files nor cache entries.
    let mut stray: Vec<PathBuf> = files_under(&context);
    // Cache entries live in two-hex-digit shards; manifests and the hash
    // index record inputs, not outputs.
    let cache = repo.join(".codegenie/cache");
    stray.extend(files_under(&cache).into_iter().filter(|p| {
        p.strip_prefix(&cache)
            .ok()
            .and_then(|r| r.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .is_some_and(|s| s.len() == 2 && s.bytes().all(|b| b.is_ascii_hexdigit()))
    }));
    // Temp files of interrupted atomic writes, anywhere under the cache.
    stray.extend(files_under(&cache).into_iter().filter(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().contains(".tmp"))
    }));
    // An empty files-read list fits in a full file system; it is complete.
    stray.retain(|p| std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(true));
    assert_eq!(stray, Vec::<PathBuf>::new());
    assert!(labelled_containers(&id).is_empty());

    // Space is back: the next run traces (no cache hit on a broken entry).
    std::fs::remove_file(&filler).unwrap();
    let again = trace(&repo, &run_id("disk-freed"));
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(0), "{err}");
    let rec: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(rec["status"]["status"], "ran", "{rec:#}");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(context.join("runtime_trace.json")).unwrap())
            .unwrap();
    let slice = &written;
    assert_eq!(scenario(slice, "batch_job")["outcome"]["kind"], "completed");
    assert!(strings(&slice["cert_paths_read"])
        .contains(&"/etc/ssl/certs/ca-certificates.crt".to_owned()));
    assert!(context.join("runtime_trace.json").is_file());
    row(
        "disk full while writing (8 MiB tmpfs)",
        "I/O error exit 1, no partial or temp file, no cache entry; next run re-traces",
        "ENOSPC reported, nothing written, next run ran (no hit) with full evidence",
        took,
        "none",
    );
}

#[test]
fn a_trace_that_cannot_be_stored_does_not_count_as_coverage() {
    use codegenie::{Coordinator, GatherOptions};
    use codegenie::{Registry, RepoSnapshot};
    let _engine = engine_lock();
    let (fs, repo) = service_on_small_disk();
    write_scenarios(
        &repo,
        "version: 1\nscenarios:\n  - name: batch_job\n    command: [\"sh\", \"-c\", \"exit 0\"]\n",
    );
    fill(&fs.path().join("filler"));
    let id = run_id("trace-not-stored");
    let snapshot = RepoSnapshot::open(&repo).unwrap();
    let opts = GatherOptions {
        only: vec!["runtime_trace".to_owned()],
        no_cache: true,
        ctx: context(&id, &[Setting::Backend(Backend::Container)]),
        ..Default::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt
        .block_on(Coordinator::new(Registry::load().unwrap()).gather(&snapshot, &opts))
        .unwrap();
    let out = report.records[0].output.as_ref().expect("the probe ran");
    let s = &out.schema_slice;
    let sc = scenario(s, "batch_job");
    assert_eq!(sc["outcome"]["kind"], "failed", "{sc:#}");
    assert!(
        sc["outcome"]["detail"]["detail"]
            .as_str()
            .unwrap()
            .contains("no trace collected"),
        "{sc:#}"
    );
    assert_eq!(s["trace_coverage_confidence"], "unavailable");
    assert!(labelled_containers(&id).is_empty());
}
