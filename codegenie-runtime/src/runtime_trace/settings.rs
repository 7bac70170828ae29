//! The runtime trace's settings: a [`TraceSettings`] in
//! `ProbeContext::settings` (absent: every default below).
//!
//! | field | meaning | default |
//! |---|---|---|
//! | `backend` | [`Backend::Container`] or [`Backend::Host`] | containers; a repository without a Dockerfile is an error, never a silent move to the host |
//! | `engine` | `docker` or `podman` | `docker` |
//! | `endpoint` | which engine that CLI talks to ([`EngineEndpoint`]) | the environment's |
//! | `scenarios` | the run's scenarios, read once ([`RunScenarios`]) | read by the probe: `.codegenie/scenarios.yaml`, else the defaults |
//! | `limits` | timeouts and container limits ([`RunLimits`]) | 120 s per scenario, 600 s in all, 5 s stop grace, 1 GiB written per scenario |
//! | `helper` | the `codegenie` binary bundled for in-container helpers | the running executable |
//! | `run_id` | the `codegenie.run` label of this run's containers | pid and time |
//! | `image` | an image to trace instead of building the Dockerfile | build the repository's image |
//! | `on_built` | told the image's id once the repository's image is built, before its scenarios | nobody |

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::engine::{EngineEndpoint, EngineKind};

use super::scenario_file::RunScenarios;

/// Which backend runs the scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Containers on a Docker (or Podman) engine.
    Container,
    /// This machine, in a private network namespace.
    Host,
}

/// The settings of one runtime trace.
#[derive(Debug, Clone, Default)]
pub struct TraceSettings {
    /// The backend; `None` uses containers.
    pub backend: Option<Backend>,
    /// The engine CLI.
    pub engine: EngineKind,
    /// The engine it talks to (a portfolio spreads repositories over several).
    pub endpoint: EngineEndpoint,
    /// Timeouts and limits.
    pub limits: RunLimits,
    /// The helper binary to bundle; `None` bundles the running executable.
    pub helper: Option<PathBuf>,
    /// The run label's value, when chosen by the caller (so that it can
    /// remove the run's containers by label after an interruption).
    pub run_id: Option<RunId>,
    /// Trace this image (id or tag) instead of building the repository's
    /// Dockerfile: how a minimal image is verified with the same scenarios.
    pub image: Option<String>,
    /// The run's scenarios, read once by the caller (the pipeline reads the
    /// repository's own file or the defaults, a portfolio manifest may name
    /// another file, `--verify-with` gives extra ones); `None`: the probe
    /// reads the repository's own file, else the defaults.
    pub scenarios: Option<RunScenarios>,
    /// Told the image's id once the trace has built the repository's image
    /// (not one given as `image`), before its scenarios run: a step after
    /// the trace that needs the image starts meanwhile (`minimize --base`
    /// exports it).
    pub on_built: Option<OnBuilt>,
}

/// A callback with the id of the image a trace built ([`TraceSettings::on_built`]).
#[derive(Clone)]
pub struct OnBuilt(pub std::sync::Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for OnBuilt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnBuilt")
    }
}

/// The value of the `codegenie.run` label: 1-128 of `[A-Za-z0-9_.-]`, so it
/// is safe in a label filter and a folder name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(String);

/// A run id that breaks the rules of [`RunId`].
#[derive(Debug, thiserror::Error)]
#[error("run id `{0}`: expected 1-128 of [A-Za-z0-9_.-]")]
pub struct RunIdError(String);

impl RunId {
    /// A run id unique on this machine: `prefix` (itself of `[A-Za-z0-9_.-]`,
    /// else left out), the pid and the time.
    pub fn unique(prefix: &str) -> RunId {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let base = format!("{}-{nanos:x}", std::process::id());
        format!("{prefix}{base}").parse().unwrap_or(RunId(base))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl RunId {
    /// The run id of a part of this run (`<self>.<part>`): its containers
    /// are the run's for [`RunId::covers`], so an interrupted run removes
    /// them too, while the run's own end-of-run sweep (its exact label)
    /// leaves them to the part.
    pub fn child(&self, part: &str) -> Result<RunId, RunIdError> {
        format!("{}.{part}", self.0).parse()
    }

    /// Whether `label` is this run's or one of its parts' ([`RunId::child`]).
    pub fn covers(&self, label: &str) -> bool {
        crate::engine::run_covers(&self.0, label)
    }
}

impl FromStr for RunId {
    type Err = RunIdError;
    fn from_str(v: &str) -> Result<Self, RunIdError> {
        let ok = !v.is_empty()
            && v.len() <= 128
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(RunId(v.to_owned()))
        } else {
            Err(RunIdError(v.to_owned()))
        }
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Per-scenario time limit.
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);
/// Time limit of the whole scenario loop.
pub const AGGREGATE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the app gets between SIGTERM and SIGKILL when it is stopped.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// How many bytes a scenario's container may write into its own filesystem
/// (its writable layer, the tool bundle included) before it is killed.
pub const DISK_LIMIT_BYTES: u64 = 1 << 30;
/// How much of a scenario's raw trace is brought to the host; the rest is
/// dropped and the scenario says so.
pub const TRACE_CAP_BYTES: u64 = 256 << 20;
/// How many distinct executed paths a run reads the interpreter of.
pub const INTERPRETER_LOOKUPS: usize = 256;

/// Limits and timeouts of a run.
#[derive(Debug, Clone)]
pub struct RunLimits {
    /// Per-scenario timeout.
    pub scenario_timeout: Duration,
    /// Whole-loop timeout.
    pub aggregate_timeout: Duration,
    /// SIGTERM → SIGKILL grace when stopping.
    pub stop_grace: Duration,
    /// `--pids-limit`.
    pub pids_limit: u32,
    /// `--memory`.
    pub memory: String,
    /// `--cpus`.
    pub cpus: String,
    /// Bytes a scenario's container may write into its filesystem before it
    /// is killed and the scenario fails with `disk_limit`
    /// (docs/architecture.md, "Disk bound").
    pub disk_limit_bytes: u64,
    /// Bytes of a raw trace copied to the host (docs/architecture.md,
    /// "Capped copies").
    pub trace_cap_bytes: u64,
    /// Distinct executed paths whose interpreter a run reads.
    pub interpreter_lookups: usize,
    /// After `wait_ready`, how long the trace must not grow for the app to
    /// count as settled (docs/architecture.md, "Scenarios").
    pub settle_quiet: Duration,
    /// The longest wait for the app to settle; zero turns settling off.
    pub settle_max: Duration,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            scenario_timeout: SCENARIO_TIMEOUT,
            aggregate_timeout: AGGREGATE_TIMEOUT,
            stop_grace: STOP_GRACE,
            pids_limit: 256,
            memory: "512m".to_owned(),
            cpus: "1".to_owned(),
            disk_limit_bytes: DISK_LIMIT_BYTES,
            trace_cap_bytes: TRACE_CAP_BYTES,
            interpreter_lookups: INTERPRETER_LOOKUPS,
            settle_quiet: SETTLE_QUIET,
            settle_max: SETTLE_MAX,
        }
    }
}

/// Default [`RunLimits::settle_quiet`]: a worker that reads its files
/// after the port answers does so within a few event-loop turns.
pub const SETTLE_QUIET: Duration = Duration::from_millis(300);
/// Default [`RunLimits::settle_max`]: a runtime that keeps loading (a JIT,
/// a warm-up) is not waited for past this.
pub const SETTLE_MAX: Duration = Duration::from_secs(3);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = TraceSettings::default();
        assert_eq!(s.backend, None);
        assert_eq!(s.engine, EngineKind::Docker);
        assert_eq!(s.limits.scenario_timeout, Duration::from_secs(120));
        assert_eq!(s.limits.aggregate_timeout, Duration::from_secs(600));
        assert_eq!(s.limits.disk_limit_bytes, 1 << 30);
    }

    #[test]
    fn run_ids_are_checked() {
        for bad in ["", "a,b=c", "a b", &"x".repeat(129)] {
            assert!(bad.parse::<RunId>().is_err(), "{bad:?}");
        }
        assert_eq!("cli-1.2_x".parse::<RunId>().unwrap().as_str(), "cli-1.2_x");
        let a = RunId::unique("t-");
        assert!(a.as_str().starts_with("t-"));
        assert!(a.as_str().parse::<RunId>().is_ok());
    }
}
