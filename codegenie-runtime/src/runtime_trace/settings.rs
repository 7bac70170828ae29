//! The probe's settings, read from `ProbeContext.settings` (all optional).
//!
//! | key | value | default |
//! |---|---|---|
//! | `runtime_trace.backend` | `docker` or `host` | automatic: the container engine when the repository has a Dockerfile and an engine answers, else the host |
//! | `runtime_trace.engine` | `docker` or `podman` | `docker` |
//! | `runtime_trace.scenario_timeout_ms` | milliseconds | 120000 |
//! | `runtime_trace.aggregate_timeout_ms` | milliseconds | 600000 |
//! | `runtime_trace.stop_grace_ms` | milliseconds | 5000 |
//! | `runtime_trace.helper` | path of the `codegenie` binary bundled for in-container helpers | the running executable |
//! | `runtime_trace.run_id` | value of the `codegenie.run` label on this run's containers (`[A-Za-z0-9_.-]+`) | pid and time |

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::engine::EngineKind;

/// Which backend runs the scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Containers on a Docker (or Podman) engine.
    Container,
    /// This machine, in a private network namespace.
    Host,
}

/// A setting with a value the probe does not accept.
#[derive(Debug, thiserror::Error)]
#[error("setting `{key}` = `{value}`: expected {expected}")]
pub struct SettingError {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// What is accepted.
    pub expected: &'static str,
}

/// Parsed settings.
#[derive(Debug, Clone)]
pub struct TraceSettings {
    /// The backend; `None` chooses automatically.
    pub backend: Option<Backend>,
    /// The engine CLI.
    pub engine: EngineKind,
    /// Timeouts and limits.
    pub limits: RunLimits,
    /// The helper binary to bundle.
    pub helper: Option<PathBuf>,
    /// The run label's value, when chosen by the caller.
    pub run_id: Option<String>,
}

impl TraceSettings {
    /// Read the settings; unknown values are errors, never silently defaulted.
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<Self, SettingError> {
        let bad = |key: &str, value: &str, expected| SettingError {
            key: key.to_owned(),
            value: value.to_owned(),
            expected,
        };
        let mut s = TraceSettings {
            backend: None,
            engine: EngineKind::Docker,
            limits: RunLimits::default(),
            helper: None,
            run_id: None,
        };
        if let Some(v) = map.get("runtime_trace.backend") {
            s.backend = match v.as_str() {
                "docker" | "podman" | "container" => Some(Backend::Container),
                "host" => Some(Backend::Host),
                _ => return Err(bad("runtime_trace.backend", v, "`docker` or `host`")),
            };
            if let Some(k) = EngineKind::parse(v) {
                s.engine = k;
            }
        }
        if let Some(v) = map.get("runtime_trace.engine") {
            s.engine = EngineKind::parse(v)
                .ok_or_else(|| bad("runtime_trace.engine", v, "`docker` or `podman`"))?;
        }
        let ms = |key: &str| -> Result<Option<Duration>, SettingError> {
            match map.get(key) {
                None => Ok(None),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(|n| Some(Duration::from_millis(n)))
                    .ok_or_else(|| bad(key, v, "a positive number of milliseconds")),
            }
        };
        if let Some(d) = ms("runtime_trace.scenario_timeout_ms")? {
            s.limits.scenario_timeout = d;
        }
        if let Some(d) = ms("runtime_trace.aggregate_timeout_ms")? {
            s.limits.aggregate_timeout = d;
        }
        if let Some(d) = ms("runtime_trace.stop_grace_ms")? {
            s.limits.stop_grace = d;
        }
        if let Some(v) = map.get("runtime_trace.run_id") {
            let ok = !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !ok {
                return Err(bad("runtime_trace.run_id", v, "1-128 of [A-Za-z0-9_.-]"));
            }
            s.run_id = Some(v.clone());
        }
        if let Some(v) = map.get("runtime_trace.helper") {
            s.helper = Some(PathBuf::from(v));
        }
        Ok(s)
    }
}

/// Per-scenario time limit (DESIGN.md §5).
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);
/// Time limit of the whole scenario loop (DESIGN.md §5).
pub const AGGREGATE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the app gets between SIGTERM and SIGKILL when it is stopped.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let s = TraceSettings::from_map(&BTreeMap::new()).unwrap();
        assert_eq!(s.backend, None);
        assert_eq!(s.limits.scenario_timeout, Duration::from_secs(120));
        assert_eq!(s.limits.aggregate_timeout, Duration::from_secs(600));
        let map = BTreeMap::from([
            ("runtime_trace.backend".to_owned(), "host".to_owned()),
            (
                "runtime_trace.scenario_timeout_ms".to_owned(),
                "1500".to_owned(),
            ),
        ]);
        let s = TraceSettings::from_map(&map).unwrap();
        assert_eq!(s.backend, Some(Backend::Host));
        assert_eq!(s.limits.scenario_timeout, Duration::from_millis(1500));
    }

    #[test]
    fn bad_values_are_errors() {
        for (k, v) in [
            ("runtime_trace.backend", "kubernetes"),
            ("runtime_trace.engine", "lxc"),
            ("runtime_trace.scenario_timeout_ms", "soon"),
            ("runtime_trace.aggregate_timeout_ms", "0"),
            ("runtime_trace.run_id", "a,b=c"),
        ] {
            let map = BTreeMap::from([(k.to_owned(), v.to_owned())]);
            let e = TraceSettings::from_map(&map).unwrap_err();
            assert_eq!(e.key, k);
        }
    }
}
