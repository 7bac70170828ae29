//! Cache-hit path for a two-file probe, end to end: key (walk + hash), store
//! lookup and check, and writing the context file, in a 20k-file repository.
//! Goal: <= 20 ms. No token is declared, so no resolver runs.

use std::sync::Arc;

use codegenie::prelude::*;
use codegenie::Writer;
use codegenie::{ContentCache, Registry};
use codegenie::{Coordinator, GatherOptions, ProbeStatus};
use criterion::{criterion_group, criterion_main, Criterion};

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

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("package.json"), "{\"name\":\"demo\"}\n").unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    // A large repository around the two declared files: literal globs are
    // looked up directly, so these must not slow the hit down.
    for d in 0..100 {
        let sub = dir.path().join(format!("node_modules/pkg{d}"));
        std::fs::create_dir_all(&sub).unwrap();
        for i in 0..200 {
            std::fs::write(sub.join(format!("f{i}.js")), "x").unwrap();
        }
    }
    let repo = RepoSnapshot::open(dir.path()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let opts = GatherOptions {
        only: vec!["bench_two_files".into()],
        no_cache: false,
        ctx: ProbeContext::default(),
        ..Default::default()
    };
    let writer = Writer::new(repo.root());
    let gather_once = || {
        let coordinator = Coordinator::new(Registry::load().unwrap())
            .with_cache(Arc::new(ContentCache::for_repo_root(repo.root())));
        let report = rt.block_on(coordinator.gather(&repo, &opts)).unwrap();
        writer.write_record(&report.records[0]).unwrap();
        report.records[0].status.clone()
    };
    assert_eq!(gather_once(), ProbeStatus::Ran);
    assert_eq!(gather_once(), ProbeStatus::CacheHit);
    c.bench_function("cache_hit_two_file_probe_end_to_end", |b| {
        b.iter(|| assert_eq!(gather_once(), ProbeStatus::CacheHit))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
