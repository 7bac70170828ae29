//! Cache-hit path end to end in a 20k-file repository: key (walk, match,
//! hash index), store lookup and check, and writing the context file.
//! Goal: <= 20 ms for the probe whose globs match all 20k files.
//!
//! - `hit_glob_20k_files`: the probe declares `package.json`, `Dockerfile`
//!   and `node_modules/**/*.js`, which match every one of the 20 000 files,
//!   so each hit walks them and checks each against the hash index (nothing
//!   changed, so nothing is read).
//! - `hit_two_literal_files`: a probe declaring only the two literal files,
//!   which are looked up directly: the floor of a hit, for scale.
//! - Baseline, `walk_and_stat_20k_files`: the same folders walked with the
//!   key's walker (same settings, one thread per core) taking each file's
//!   metadata, without matching, the hash index or the store: what any hit
//!   that must notice a changed file costs at least.
//!
//! Same run, same tree, page cache warm, a new coordinator and cache per
//! round as in a new process. No token is declared, so no resolver runs.

use std::sync::Arc;

use codegenie::prelude::*;
use codegenie::Writer;
use codegenie::{ContentCache, Registry};
use codegenie::{Coordinator, GatherOptions, ProbeStatus};
use codegenie_runtime::cache::manifest_for;
use criterion::{criterion_group, Criterion};
use ignore::{WalkBuilder, WalkState};

const PACKAGES: usize = 100;
const FILES_PER_PACKAGE: usize = 200;

/// Declares the two literal files only.
#[derive(Default)]
struct TwoFilesProbe;

#[register_probe(name = "bench_two_files", heaviness = "light")]
impl Probe for TwoFilesProbe {
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        declared_inputs!["package.json", "Dockerfile"]
    }
    async fn run(&self, repo: &RepoSnapshot, _: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
        Ok(ProbeOutput::new(
            serde_json::json!({ "has_dockerfile": repo.has_file("Dockerfile"), "deps": (0..200).collect::<Vec<u32>>() }),
            Confidence::High,
        ))
    }
}

/// Declares globs that match every file of the repository.
#[derive(Default)]
struct GlobProbe;

#[register_probe(name = "bench_glob_20k", heaviness = "light")]
impl Probe for GlobProbe {
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        declared_inputs!["package.json", "Dockerfile", "node_modules/**/*.js"]
    }
    async fn run(&self, repo: &RepoSnapshot, _: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
        Ok(ProbeOutput::new(
            serde_json::json!({ "has_dockerfile": repo.has_file("Dockerfile"), "deps": (0..200).collect::<Vec<u32>>() }),
            Confidence::High,
        ))
    }
}

/// Every file under the repository's `node_modules`, with its metadata,
/// through the key's walker; returns how many.
fn walk_and_stat(root: &std::path::Path) -> usize {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let files = std::sync::atomic::AtomicUsize::new(0);
    WalkBuilder::new(root.join("node_modules"))
        .standard_filters(false)
        .follow_links(false)
        .threads(threads)
        .build_parallel()
        .run(|| {
            let files = &files;
            Box::new(move |entry| {
                let entry = entry.unwrap();
                if entry.metadata().unwrap().is_file() {
                    files.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                WalkState::Continue
            })
        });
    files.into_inner()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("package.json"), "{\"name\":\"demo\"}\n").unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    for d in 0..PACKAGES {
        let sub = dir.path().join(format!("node_modules/pkg{d}"));
        std::fs::create_dir_all(&sub).unwrap();
        for i in 0..FILES_PER_PACKAGE {
            std::fs::write(sub.join(format!("f{i}.js")), "x").unwrap();
        }
    }
    let repo = RepoSnapshot::open(dir.path()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let writer = Writer::new(repo.root());
    let gather_once = |probe: &str| {
        let opts = GatherOptions {
            only: vec![probe.into()],
            no_cache: false,
            ctx: ProbeContext::default(),
            ..Default::default()
        };
        let coordinator = Coordinator::new(Registry::load().unwrap())
            .with_cache(Arc::new(ContentCache::for_repo_root(repo.root())));
        let report = rt.block_on(coordinator.gather(&repo, &opts)).unwrap();
        writer.write_record(&report.records[0]).unwrap();
        report.records[0].status.clone()
    };
    for probe in ["bench_two_files", "bench_glob_20k"] {
        assert_eq!(gather_once(probe), ProbeStatus::Ran);
        assert_eq!(gather_once(probe), ProbeStatus::CacheHit);
    }
    // The glob probe's key must have covered every file.
    let manifest = manifest_for(&repo, "bench_glob_20k", &GlobProbe, None).unwrap();
    let matched: usize = manifest.inputs.globs.iter().map(|g| g.files.len()).sum();
    assert_eq!(matched, 2 + PACKAGES * FILES_PER_PACKAGE);

    let mut g = c.benchmark_group("cache_hit_20k_file_repo");
    g.bench_function("walk_and_stat_20k_files", |b| {
        b.iter(|| assert_eq!(walk_and_stat(repo.root()), PACKAGES * FILES_PER_PACKAGE))
    });
    g.bench_function("hit_glob_20k_files", |b| {
        b.iter(|| assert_eq!(gather_once("bench_glob_20k"), ProbeStatus::CacheHit))
    });
    g.bench_function("hit_two_literal_files", |b| {
        b.iter(|| assert_eq!(gather_once("bench_two_files"), ProbeStatus::CacheHit))
    });
    g.finish();
}

criterion_group!(benches, bench);

// What `criterion_main!` expands to, behind the same gate as the other
// benchmarks: `cargo bench` passes `--bench`, `cargo test --benches` does
// not, and the setup alone (files, images, traces) is too heavy for a test run.
fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
