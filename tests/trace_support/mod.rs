//! Shared helpers of the runtime-trace tests: fixture repositories built
//! FROM scratch with Debian's static busybox, probe runs through the real
//! coordinator and the real Docker engine, and an engine watcher.
// Tests drive the built binary, the engine and mounts directly; the
// product itself starts processes only through its exec layer.
#![allow(clippy::disallowed_methods)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use codegenie::runtime_trace::{Backend, TraceSettings};
use codegenie::{ContentCache, ProbeContext, Registry, RepoSnapshot};
use codegenie::{Coordinator, GatherOptions, ProbeRecord};
use codegenie_runtime::engine::{BuildDigestResolver, Engine, EngineKind, RUN_LABEL};

pub mod services;

/// Busybox applets the fixture scripts use, as symlinks in `/bin`.
const APPLETS: [&str; 5] = ["sh", "cat", "nc", "httpd", "sleep"];

/// What the tests need on this machine, made once per machine by
/// `tests/fixtures/prepare.sh` (system tools, the static busybox, the
/// Debian fixture images, each cached by its recipe): run once per test
/// process, under the script's own lock, so `cargo test` sets itself up on
/// a fresh machine and two test binaries never build the same image twice.
pub fn prepared() {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let done = DONE.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/prepare.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed ({}):\n{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = done {
        panic!("the test fixtures could not be prepared: {e}");
    }
}

/// The static busybox placed by `tests/fixtures/fetch-busybox.sh`.
pub fn busybox() -> PathBuf {
    prepared();
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bin/busybox")
}

/// Docker-heavy tests take turns, within a test binary and across binaries
/// (a runner that starts several at once): two cores are shared, and the
/// engine observations of one test must not see another test's containers.
/// This turn is the engine alone: no other test holds a turn meanwhile.
pub fn engine_lock() -> EngineLock {
    take_turn(Turn::Alone)
}

/// A turn shared with at most one other [`engine_share`] holder, never
/// with an [`engine_lock`] holder: for a test whose engine observations
/// are only its own (containers and exports under its run id, images it
/// built) and whose timings have room to spare. Two at a time because a
/// traced service leaves about half of two cores idle: its scenarios wait
/// on the app and the engine, the app on strace.
/// `CODEGENIE_TESTS_ENGINE_ALONE=1` makes every turn a turn alone: to tell
/// a failure that sharing causes from one of the test itself, and to time
/// the tests without sharing.
pub fn engine_share() -> EngineLock {
    if std::env::var_os("CODEGENIE_TESTS_ENGINE_ALONE").is_some_and(|v| v == "1") {
        return take_turn(Turn::Alone);
    }
    take_turn(Turn::Shared)
}

/// Most [`engine_share`] holders at once, on this machine.
const SHARED_TURNS: usize = 2;

enum Turn {
    Alone,
    Shared,
}

/// The turns are `flock`s, which hold between open files of one process as
/// between processes: the lock file exclusively for a turn alone, or
/// shared plus one of [`SHARED_TURNS`] slot files for a shared turn.
fn take_turn(turn: Turn) -> EngineLock {
    use nix::fcntl::{Flock, FlockArg};
    prepared();
    let open = |path: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("the engine lock file {path} opens: {e}"))
    };
    let main = open("/tmp/codegenie-engine-tests.lock");
    let arg = match turn {
        Turn::Alone => FlockArg::LockExclusive,
        Turn::Shared => FlockArg::LockShared,
    };
    let file = Flock::lock(main, arg)
        .map_err(|(_, e)| e)
        .expect("the engine lock is taken");
    let slot = match turn {
        Turn::Alone => None,
        Turn::Shared => Some(loop {
            let free = (0..SHARED_TURNS).find_map(|i| {
                let slot = open(&format!("/tmp/codegenie-engine-tests.slot{i}.lock"));
                Flock::lock(slot, FlockArg::LockExclusiveNonblock).ok()
            });
            match free {
                Some(slot) => break slot,
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        }),
    };
    EngineLock {
        _slot: slot,
        _file: file,
    }
}

/// Held while a test uses the engine ([`engine_lock`], [`engine_share`]).
pub struct EngineLock {
    // Dropped in this order: the slot before the shared lock it sits under.
    _slot: Option<nix::fcntl::Flock<std::fs::File>>,
    _file: nix::fcntl::Flock<std::fs::File>,
}

/// Copy a fixture folder into a fresh temp dir, adding busybox and its applets under `bin/`.
pub fn fixture_repo(fixture: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fixture_repo_at(fixture, dir.path());
    dir
}

/// Like [`fixture_repo`], at a chosen path (a small disk, an odd name).
pub fn fixture_repo_at(fixture: &str, dest: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(fixture);
    copy_tree(&src, dest);
    let bin = dest.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(busybox(), bin.join("busybox")).unwrap();
    for a in APPLETS {
        let link = bin.join(a);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link).unwrap();
        }
    }
}

fn copy_tree(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        // Outputs of earlier runs in the source tree (a local demo run) are not fixture content.
        if src.file_name() == Some(std::ffi::OsStr::new(".codegenie"))
            && ["cache", "context", "work"]
                .iter()
                .any(|d| e.file_name() == *d)
        {
            continue;
        }
        let to = dest.join(e.file_name());
        let ty = e.file_type().unwrap();
        if ty.is_dir() {
            copy_tree(&e.path(), &to);
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), to).unwrap();
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// A unique run id for the `codegenie.run` label.
pub fn run_id(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("test-{test}-{}-{nanos:x}", std::process::id())
}

/// One runtime-trace setting a test changes from the defaults.
#[derive(Debug, Clone, Copy)]
pub enum Setting {
    /// The backend.
    Backend(Backend),
    /// Per-scenario timeout, ms.
    ScenarioTimeoutMs(u64),
    /// Whole-run timeout, ms.
    AggregateTimeoutMs(u64),
    /// SIGTERM-to-SIGKILL grace, ms.
    StopGraceMs(u64),
    /// Bytes a scenario may write into its container's filesystem.
    DiskLimitBytes(u64),
    /// Bytes of a raw trace brought to the host.
    TraceCapBytes(u64),
    /// Executed paths whose interpreter a run reads.
    InterpreterLookups(usize),
    /// `--pids-limit`.
    PidsLimit(u32),
    /// The longest wait for the app to settle after `wait_ready` (0: off).
    SettleMaxMs(u64),
    /// The engine through its CLI alone (the default context), as for
    /// Podman or an `ssh://` engine.
    CliOnly,
}

/// A probe context like the CLI's, bundling the real `codegenie` binary.
pub fn context(run_id: &str, extra: &[Setting]) -> ProbeContext {
    let mut settings = TraceSettings {
        helper: Some(env!("CARGO_BIN_EXE_codegenie").into()),
        run_id: Some(run_id.parse().expect("a valid run id")),
        ..TraceSettings::default()
    };
    for s in extra {
        let ms = std::time::Duration::from_millis;
        match *s {
            Setting::Backend(b) => settings.backend = Some(b),
            Setting::ScenarioTimeoutMs(v) => settings.limits.scenario_timeout = ms(v),
            Setting::AggregateTimeoutMs(v) => settings.limits.aggregate_timeout = ms(v),
            Setting::StopGraceMs(v) => settings.limits.stop_grace = ms(v),
            Setting::DiskLimitBytes(v) => settings.limits.disk_limit_bytes = v,
            Setting::TraceCapBytes(v) => settings.limits.trace_cap_bytes = v,
            Setting::InterpreterLookups(v) => settings.limits.interpreter_lookups = v,
            Setting::PidsLimit(v) => settings.limits.pids_limit = v,
            Setting::SettleMaxMs(v) => settings.limits.settle_max = ms(v),
            Setting::CliOnly => {
                settings.endpoint = codegenie_runtime::engine::EngineEndpoint::Context(
                    codegenie_runtime::engine::ContextName::new("default").unwrap(),
                )
            }
        }
    }
    let mut ctx = ProbeContext {
        image_digest_resolver: Some(Arc::new(BuildDigestResolver::new(Engine::new(
            EngineKind::Docker,
        )))),
        trace_config_resolver: Some(Arc::new(codegenie::runtime_trace::TraceConfig)),
        ..Default::default()
    };
    ctx.settings.insert(settings);
    ctx
}

/// Run the runtime_trace probe through the coordinator (with the content
/// cache) and write its outputs, like `codegenie trace`.
pub fn run_probe(repo: &Path, ctx: ProbeContext, cache: bool) -> ProbeRecord {
    let snapshot = RepoSnapshot::open(repo).unwrap();
    let mut coordinator = Coordinator::new(Registry::load().unwrap());
    if cache {
        coordinator =
            coordinator.with_cache(Arc::new(ContentCache::for_repo_root(snapshot.root())));
    }
    let opts = GatherOptions {
        only: vec!["runtime_trace".to_owned()],
        no_cache: !cache,
        ctx,
        ..Default::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt.block_on(coordinator.gather(&snapshot, &opts)).unwrap();
    let rec = report.records.into_iter().next().expect("one record");
    codegenie::Writer::new(snapshot.root())
        .write_record(&rec)
        .unwrap();
    rec
}

/// Builds a `FROM scratch` image holding busybox (`/bin/busybox`) and a
/// `/marker` file with `marker` (so that different markers give different
/// images), with `labels` (`KEY=VALUE`), tagged `tag`.
pub fn busybox_image(tag: &str, marker: &str, labels: &[&str]) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy(busybox(), ctx.path().join("busybox")).unwrap();
    std::fs::write(ctx.path().join("marker"), marker).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY marker /marker\n",
    )
    .unwrap();
    let out = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .args(labels.iter().flat_map(|l| ["--label", l]))
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Write `.codegenie/scenarios.yaml`.
pub fn write_scenarios(repo: &Path, yaml: &str) {
    std::fs::create_dir_all(repo.join(".codegenie")).unwrap();
    std::fs::write(repo.join(".codegenie/scenarios.yaml"), yaml).unwrap();
}

/// Asserts that one of `warnings` contains `needle`.
pub fn assert_warned(warnings: &[String], needle: &str) {
    assert!(
        warnings.iter().any(|w| w.contains(needle)),
        "no warning with {needle:?} in {warnings:#?}"
    );
}

/// Every path in the image's file system.
pub fn image_paths(image: &str) -> Vec<String> {
    let created = Command::new("docker")
        .args(["create", image])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let id = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    let export = Command::new("sh")
        .arg("-c")
        .arg(format!("docker export {id} | tar -t"))
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rm", "-f", &id]).output();
    assert!(export.status.success(), "{export:?}");
    String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Whether the engine has an image `reference` (an id or a tag).
pub fn image_exists(reference: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", reference])
        .output()
        .unwrap()
        .status
        .success()
}

/// Whether the image `image` names the repository at `repo` in its
/// `codegenie.repository` label (its canonical path).
pub fn names_repository(image: &str, repo: &Path) -> bool {
    let out = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"codegenie.repository\"}}",
            image,
        ])
        .output()
        .expect("docker CLI");
    assert!(out.status.success(), "docker image inspect failed: {out:?}");
    let canonical = std::fs::canonicalize(repo).unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == canonical.to_string_lossy()
}

/// Scenario containers of a run, asked of the engine: those carrying
/// `codegenie.run=<run_id>` and an owner label. The container a run's tool
/// image is committed from carries the run label but no owner label (its
/// labels become the image's, which scenario containers inherit).
pub fn labelled_containers(run_id: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-a", "-q", "--filter"])
        .arg(format!("label={RUN_LABEL}={run_id}"))
        .args(["--filter", "label=codegenie.owner"])
        .output()
        .expect("docker CLI");
    assert!(out.status.success(), "docker ps failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// What an [`EngineWatch`] saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Most containers of the run that existed at once.
    pub most_at_once: usize,
    /// Distinct containers.
    pub distinct: usize,
    /// `HostConfig` of the first container, inspected while it existed.
    pub host_config: Option<serde_json::Value>,
}

/// Polls the engine for a run's containers from a thread, recording the
/// most that existed at once and every id seen.
pub struct EngineWatch {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Seen>>,
}

impl EngineWatch {
    /// Start watching `run_id`.
    pub fn start(run_id: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, id) = (stop.clone(), run_id.to_owned());
        let handle = std::thread::spawn(move || {
            let mut max = 0;
            let mut seen = std::collections::BTreeSet::new();
            let mut host_config = None;
            while !s.load(Ordering::SeqCst) {
                let now = labelled_containers(&id);
                max = max.max(now.len());
                if host_config.is_none() {
                    host_config = now.first().and_then(|c| inspect_host_config(c));
                }
                seen.extend(now);
                std::thread::sleep(Duration::from_millis(25));
            }
            Seen {
                most_at_once: max,
                distinct: seen.len(),
                host_config,
            }
        });
        EngineWatch {
            stop,
            handle: Some(handle),
        }
    }

    /// Stop; returns (most containers at once, distinct containers seen).
    pub fn finish(self) -> (usize, usize) {
        let seen = self.finish_all();
        (seen.most_at_once, seen.distinct)
    }

    /// Stop; everything seen.
    pub fn finish_all(mut self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap()
    }
}

/// A container's `HostConfig`, if it still exists.
fn inspect_host_config(id: &str) -> Option<serde_json::Value> {
    let out = Command::new("docker")
        .args(["inspect", "--format", "{{json .HostConfig}}", id])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// The scenario result named `name` in a slice.
pub fn scenario<'a>(slice: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    slice["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no scenario {name} in {slice:#}"))
}

/// The strings of a JSON array.
pub fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// The owner value of a process of this host that is gone: this process's
/// pid with another start time (a reused pid is not the owner).
pub fn dead_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let start: u64 = after_comm.split(' ').nth(19).unwrap().parse().unwrap();
    format!(
        "{}/{}/{}/{}",
        host.trim(),
        ns.display(),
        std::process::id(),
        start + 1
    )
}
