//! The coordinator against probes registered with the real macros: run order,
//! `applies` gating, timeouts, failure and panic isolation, `--only`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use codegenie::__private::PROBES;
use codegenie::prelude::*;
use codegenie::Registry;
use codegenie::{Coordinator, GatherOptions, ProbeStatus};

/// Names in the order `run` was entered.
static RUN_LOG: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

fn log_run(name: &'static str) {
    RUN_LOG.lock().unwrap().push(name);
}

macro_rules! ok_probe {
    ($ty:ident, $name:literal, $($attr:tt)*) => {
        #[derive(Default)]
        pub struct $ty;

        #[register_probe(name = $name, $($attr)*)]
        impl Probe for $ty {
            async fn run(&self, _repo: &RepoSnapshot, _ctx: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
                log_run($name);
                Ok(ProbeOutput::new(serde_json::json!({ "probe": $name }), Confidence::High))
            }
        }
    };
}

ok_probe!(ZLight, "t_z_light", heaviness = "light");
ok_probe!(ALight, "t_a_light", heaviness = "light");
ok_probe!(AHeavy, "t_a_heavy", heaviness = "heavy");
ok_probe!(ALast, "t_a_last", heaviness = "light", runs_last = true);
ok_probe!(
    BHeavyLast,
    "t_b_heavy_last",
    heaviness = "heavy",
    runs_last = true
);

/// Fails with a typed error.
#[derive(Default)]
pub struct Failing;

#[register_probe(name = "t_failing", heaviness = "light")]
impl Probe for Failing {
    async fn run(
        &self,
        _repo: &RepoSnapshot,
        _ctx: &ProbeContext,
    ) -> Result<ProbeOutput, ProbeError> {
        log_run("t_failing");
        Err(ProbeError::failed("manifest is corrupt"))
    }
}

/// Panics inside `run`.
#[derive(Default)]
pub struct Panicking;

#[register_probe(name = "t_panicking", heaviness = "light")]
impl Probe for Panicking {
    async fn run(
        &self,
        _repo: &RepoSnapshot,
        _ctx: &ProbeContext,
    ) -> Result<ProbeOutput, ProbeError> {
        log_run("t_panicking");
        panic!("index out of bounds in probe");
    }
}

static SLOW_FINISHED: AtomicUsize = AtomicUsize::new(0);

/// Runs past its timeout.
#[derive(Default)]
pub struct Slow;

#[register_probe(name = "t_slow", heaviness = "heavy")]
impl Probe for Slow {
    fn timeout(&self) -> Duration {
        Duration::from_millis(200)
    }
    async fn run(
        &self,
        _repo: &RepoSnapshot,
        ctx: &ProbeContext,
    ) -> Result<ProbeOutput, ProbeError> {
        log_run("t_slow");
        // A well-behaved slow probe: it stops when its token trips (the
        // coordinator waits a bounded time for that after a timeout).
        for _ in 0..1500 {
            if ctx.cancel.is_cancelled() {
                return Err(ProbeError::failed("cancelled"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        SLOW_FINISHED.fetch_add(1, Ordering::SeqCst);
        Ok(ProbeOutput::new(serde_json::json!({}), Confidence::High))
    }
}

/// Applies only to repositories with a `Dockerfile`.
#[derive(Default)]
pub struct NeedsDockerfile;

#[register_probe(name = "t_needs_dockerfile", heaviness = "heavy")]
impl Probe for NeedsDockerfile {
    fn applies(&self, repo: &RepoSnapshot) -> bool {
        repo.has_file("Dockerfile")
    }
    async fn run(
        &self,
        _repo: &RepoSnapshot,
        _ctx: &ProbeContext,
    ) -> Result<ProbeOutput, ProbeError> {
        log_run("t_needs_dockerfile");
        Ok(ProbeOutput::new(serde_json::json!({}), Confidence::High))
    }
}

fn test_registry() -> Registry {
    Registry::from_entries(PROBES.iter().filter(|e| e.name.starts_with("t_"))).unwrap()
}

// Tests share RUN_LOG, so they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn runs_light_then_heavy_then_last_and_isolates_failures() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    RUN_LOG.lock().unwrap().clear();
    let repo_dir = tempfile::tempdir().unwrap();
    let repo = RepoSnapshot::open(repo_dir.path()).unwrap();
    let coordinator = Coordinator::new(test_registry());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt
        .block_on(coordinator.gather(&repo, &GatherOptions::default()))
        .unwrap();

    let order: Vec<&str> = report.records.iter().map(|r| r.name).collect();
    assert_eq!(
        order,
        [
            "t_a_light",
            "t_failing",
            "t_panicking",
            "t_scratch_user",
            "t_z_light",
            "t_a_heavy",
            "t_needs_dockerfile",
            "t_slow",
            "t_a_last",
            "t_b_heavy_last",
        ]
    );
    let status = |name: &str| {
        report
            .records
            .iter()
            .find(|r| r.name == name)
            .unwrap()
            .status
            .clone()
    };
    assert_eq!(
        status("t_failing"),
        ProbeStatus::Failed {
            error: "manifest is corrupt".into()
        }
    );
    match status("t_panicking") {
        ProbeStatus::Failed { error } => {
            assert!(error.contains("index out of bounds in probe"), "{error}")
        }
        other => panic!("expected failure, got {other:?}"),
    }
    assert_eq!(status("t_slow"), ProbeStatus::TimedOut { after_ms: 200 });
    assert!(matches!(
        status("t_needs_dockerfile"),
        ProbeStatus::Skipped { .. }
    ));
    // Probes after the failing, panicking and slow ones still ran.
    for name in ["t_z_light", "t_a_heavy", "t_a_last", "t_b_heavy_last"] {
        assert_eq!(status(name), ProbeStatus::Ran, "{name}");
    }
    // `run` was never entered for the probe that does not apply.
    assert!(!RUN_LOG.lock().unwrap().contains(&"t_needs_dockerfile"));
    // The timed-out probe was abandoned, not awaited to completion.
    assert_eq!(SLOW_FINISHED.load(Ordering::SeqCst), 0);
}

#[test]
fn applies_gates_on_the_repository() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    RUN_LOG.lock().unwrap().clear();
    let repo_dir = tempfile::tempdir().unwrap();
    std::fs::write(repo_dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let repo = RepoSnapshot::open(repo_dir.path()).unwrap();
    let coordinator = Coordinator::new(test_registry());
    let opts = GatherOptions {
        only: vec!["t_needs_dockerfile".into()],
        ..Default::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt.block_on(coordinator.gather(&repo, &opts)).unwrap();
    assert_eq!(report.records.len(), 1);
    assert_eq!(report.records[0].status, ProbeStatus::Ran);
    assert_eq!(*RUN_LOG.lock().unwrap(), ["t_needs_dockerfile"]);
}

#[test]
fn unknown_only_name_is_an_error_listing_the_probes() {
    let repo_dir = tempfile::tempdir().unwrap();
    let repo = RepoSnapshot::open(repo_dir.path()).unwrap();
    let coordinator = Coordinator::new(test_registry());
    let opts = GatherOptions {
        only: vec!["t_a_lihgt".into()],
        ..Default::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = match rt.block_on(coordinator.gather(&repo, &opts)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("an unknown probe name must be an error"),
    };
    assert!(
        err.starts_with("no probe named `t_a_lihgt` (did you mean `t_a_light`?)"),
        "{err}"
    );
    assert!(err.contains("t_a_light"), "{err}");
}

/// Writes a raw file with a secret into its scratch folder and hands it over
/// as an artifact.
#[derive(Default)]
pub struct ScratchUser;

#[register_probe(name = "t_scratch_user", heaviness = "light")]
impl Probe for ScratchUser {
    fn cache_strategy(&self) -> CacheStrategy {
        CacheStrategy::None
    }
    async fn run(
        &self,
        _repo: &RepoSnapshot,
        ctx: &ProbeContext,
    ) -> Result<ProbeOutput, ProbeError> {
        let dir = ctx.scratch_dir.as_ref().ok_or_else(|| {
            ProbeError::failed("the coordinator gives every run a scratch folder")
        })?;
        let raw = dir.join("raw.log");
        std::fs::write(&raw, "login password=opensesame42\n")
            .map_err(|e| ProbeError::io(&raw, e))?;
        let mut out = ProbeOutput::new(serde_json::json!({}), Confidence::High);
        out.artifacts.push(Artifact {
            name: "raw.log".into(),
            source: ArtifactSource::File(raw),
        });
        Ok(out)
    }
}

#[test]
fn scratch_folders_outlive_the_write_and_nothing_more() {
    let repo_dir = tempfile::tempdir().unwrap();
    let repo = RepoSnapshot::open(repo_dir.path()).unwrap();
    let coordinator = Coordinator::new(test_registry());
    let opts = GatherOptions {
        only: vec!["t_scratch_user".into()],
        ..Default::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt.block_on(coordinator.gather(&repo, &opts)).unwrap();
    let rec = &report.records[0];
    assert_eq!(rec.status, ProbeStatus::Ran);
    let scratch = rec.scratch.as_ref().unwrap().path().to_owned();
    assert!(scratch.starts_with(repo.root().join(".codegenie/work")));
    assert!(
        scratch.join("raw.log").exists(),
        "alive until the record is dropped"
    );

    let written = codegenie::Writer::new(repo.root())
        .write_record(rec)
        .unwrap()
        .unwrap();
    assert_eq!(written.redactions, 1);
    drop(report);
    assert!(!scratch.exists(), "scratch folder removed with the record");
    // Nothing under .codegenie/ holds the plaintext any more.
    let mut stack = vec![repo.root().join(".codegenie")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let text = std::fs::read_to_string(&p).unwrap();
                assert!(!text.contains("opensesame42"), "{}", p.display());
            }
        }
    }
}
