//! The cache inside the coordinator: a hit never enters `run()`, returns the
//! stored output, and a miss stores it.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use codegenie::prelude::*;
use codegenie::Writer;
use codegenie::{ContentCache, Registry};
use codegenie::{Coordinator, GatherOptions, GatherReport, ProbeStatus};

static HIT_RUNS: AtomicUsize = AtomicUsize::new(0);
static NONE_RUNS: AtomicUsize = AtomicUsize::new(0);
static BYPASS_RUNS: AtomicUsize = AtomicUsize::new(0);
static CORRUPT_RUNS: AtomicUsize = AtomicUsize::new(0);
static FAULT_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Reads its input and reports how many times it ran.
async fn counting_run(repo: &RepoSnapshot, runs: &AtomicUsize) -> Result<ProbeOutput, ProbeError> {
    let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
    let path = repo.root().join("input.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| ProbeError::io(&path, e))?;
    let mut out = ProbeOutput::new(
        serde_json::json!({ "input": text, "run_number": n }),
        Confidence::High,
    );
    out.warnings.push("from the probe".into());
    out.artifacts.push(Artifact {
        name: "counting.txt".into(),
        source: ArtifactSource::Bytes(format!("run {n}\n").into_bytes()),
    });
    Ok(out)
}

#[derive(Default)]
struct HitProbe;

#[register_probe(name = "cache_hit_counter", heaviness = "light")]
impl Probe for HitProbe {
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        declared_inputs!["input.txt", "conf/*.toml"]
    }
    async fn run(&self, repo: &RepoSnapshot, _: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
        counting_run(repo, &HIT_RUNS).await
    }
}

/// Its output reflects a passing fault of the environment.
#[derive(Default)]
struct FaultProbe;

#[register_probe(name = "cache_fault_counter")]
impl Probe for FaultProbe {
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        declared_inputs!["input.txt"]
    }
    async fn run(&self, repo: &RepoSnapshot, _: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
        let mut out = counting_run(repo, &FAULT_RUNS).await?;
        out.not_cacheable = Some("the engine stopped answering".into());
        Ok(out)
    }
}

#[derive(Default)]
struct NoneProbe;

#[register_probe(name = "cache_none_counter")]
impl Probe for NoneProbe {
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        declared_inputs!["input.txt"]
    }
    fn cache_strategy(&self) -> CacheStrategy {
        CacheStrategy::None
    }
    async fn run(&self, repo: &RepoSnapshot, _: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
        counting_run(repo, &NONE_RUNS).await
    }
}

#[derive(Default)]
struct BypassProbe;

#[register_probe(name = "cache_bypass_counter")]
impl Probe for BypassProbe {
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        declared_inputs!["input.txt"]
    }
    async fn run(&self, repo: &RepoSnapshot, _: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
        counting_run(repo, &BYPASS_RUNS).await
    }
}

#[derive(Default)]
struct CorruptProbe;

#[register_probe(name = "cache_corrupt_counter")]
impl Probe for CorruptProbe {
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        declared_inputs!["input.txt"]
    }
    async fn run(&self, repo: &RepoSnapshot, _: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
        counting_run(repo, &CORRUPT_RUNS).await
    }
}

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("input.txt"), "v1\n").unwrap();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    std::fs::write(dir.path().join("conf/app.toml"), "a = 1\n").unwrap();
    dir
}

fn gather(root: &Path, probe: &str, no_cache: bool) -> GatherReport {
    let repo = RepoSnapshot::open(root).unwrap();
    let coordinator = Coordinator::new(Registry::load().unwrap())
        .with_cache(Arc::new(ContentCache::for_repo_root(repo.root())));
    let opts = GatherOptions {
        only: vec![probe.to_owned()],
        no_cache,
        ctx: ProbeContext::default(),
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(coordinator.gather(&repo, &opts)).unwrap()
}

/// The written context file without the fields that legitimately differ
/// between a run and a hit (status and time of writing).
fn written_without_status(root: &Path, report: &GatherReport) -> serde_json::Value {
    let written = Writer::new(&std::fs::canonicalize(root).unwrap())
        .write_record(&report.records[0])
        .unwrap()
        .unwrap();
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(written.json).unwrap()).unwrap();
    let meta = v["_meta"].as_object_mut().unwrap();
    meta.remove("status");
    meta.remove("written_at");
    v
}

#[test]
fn a_hit_does_not_enter_run_and_returns_the_stored_output() {
    let t = repo();
    let first = gather(t.path(), "cache_hit_counter", false);
    assert_eq!(first.records[0].status, ProbeStatus::Ran);
    assert_eq!(HIT_RUNS.load(Ordering::SeqCst), 1);
    let first_written = written_without_status(t.path(), &first);
    let first_artifact =
        std::fs::read(t.path().join(".codegenie/context/raw/counting.txt")).unwrap();

    let second = gather(t.path(), "cache_hit_counter", false);
    assert_eq!(second.records[0].status, ProbeStatus::CacheHit);
    assert_eq!(HIT_RUNS.load(Ordering::SeqCst), 1, "run() entered on a hit");
    assert_eq!(second.records[0].cache_key, first.records[0].cache_key);
    assert_eq!(second.records[0].output, first.records[0].output);
    assert_eq!(written_without_status(t.path(), &second), first_written);
    let second_artifact =
        std::fs::read(t.path().join(".codegenie/context/raw/counting.txt")).unwrap();
    assert_eq!(first_artifact, second_artifact);

    // Touching an undeclared file: still a hit.
    std::fs::write(t.path().join("README.md"), "x").unwrap();
    assert_eq!(
        gather(t.path(), "cache_hit_counter", false).records[0].status,
        ProbeStatus::CacheHit
    );
    // Editing a declared file: a miss, and run() sees the new content.
    std::fs::write(t.path().join("conf/app.toml"), "a = 2\n").unwrap();
    let third = gather(t.path(), "cache_hit_counter", false);
    assert_eq!(third.records[0].status, ProbeStatus::Ran);
    assert_eq!(HIT_RUNS.load(Ordering::SeqCst), 2);
    assert_ne!(third.records[0].cache_key, first.records[0].cache_key);
}

#[test]
fn cache_strategy_none_always_runs_and_stores_nothing() {
    let t = repo();
    for expected in 1..=2 {
        let r = gather(t.path(), "cache_none_counter", false);
        assert_eq!(r.records[0].status, ProbeStatus::Ran);
        assert_eq!(r.records[0].cache_key, None);
        assert_eq!(NONE_RUNS.load(Ordering::SeqCst), expected);
    }
    assert!(!t.path().join(".codegenie/cache").exists());
}

#[test]
fn outputs_marked_not_cacheable_are_never_stored() {
    let t = repo();
    for expected in 1..=2 {
        let r = gather(t.path(), "cache_fault_counter", false);
        assert_eq!(r.records[0].status, ProbeStatus::Ran);
        assert!(r.records[0].cache_key.is_some());
        assert_eq!(
            r.records[0].warnings,
            ["not cached: the engine stopped answering"]
        );
        assert_eq!(FAULT_RUNS.load(Ordering::SeqCst), expected);
    }
    let entries = std::fs::read_dir(t.path().join(".codegenie/cache"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit())
                })
                .count()
        })
        .unwrap_or(0);
    assert_eq!(entries, 0, "no cache entry may hold a faulty output");
}

#[test]
fn no_cache_neither_reads_nor_writes() {
    let t = repo();
    gather(t.path(), "cache_bypass_counter", true);
    assert!(!t.path().join(".codegenie/cache").exists());
    let cached = gather(t.path(), "cache_bypass_counter", false);
    assert_eq!(cached.records[0].status, ProbeStatus::Ran);
    let bypass = gather(t.path(), "cache_bypass_counter", true);
    assert_eq!(
        bypass.records[0].status,
        ProbeStatus::Ran,
        "an entry exists but is bypassed"
    );
    assert_eq!(BYPASS_RUNS.load(Ordering::SeqCst), 3);
}

#[test]
fn a_corrupt_entry_runs_the_probe_with_a_warning_and_is_replaced() {
    let t = repo();
    let first = gather(t.path(), "cache_corrupt_counter", false);
    let key = first.records[0].cache_key.clone().unwrap();
    let entry = t
        .path()
        .join(".codegenie/cache")
        .join(&key[..2])
        .join(format!("{key}.json"));
    std::fs::write(&entry, b"{\"format\":\"codegenie.cache-entry.v1\",\"pro").unwrap();
    let second = gather(t.path(), "cache_corrupt_counter", false);
    assert_eq!(second.records[0].status, ProbeStatus::Ran);
    assert!(
        second.records[0]
            .warnings
            .iter()
            .any(|w| w.contains("corrupt cache entry")),
        "{:?}",
        second.records[0].warnings
    );
    assert_eq!(CORRUPT_RUNS.load(Ordering::SeqCst), 2);
    let third = gather(t.path(), "cache_corrupt_counter", false);
    assert_eq!(third.records[0].status, ProbeStatus::CacheHit);
}
