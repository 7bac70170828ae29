//! The `trace-config:<resolved>` token: everything beyond the repository
//! that changes a runtime trace's evidence, as readable text for `cache
//! explain` (docs/architecture.md, "Cache key"). A host-backend result never
//! serves a container run or the reverse; a new strace, new strace options,
//! other scenarios (the embedded defaults included) or other limits re-trace.

use crate::probe::{ProbeSettings, RepoSnapshot, ResolverError, TraceConfigResolver};

use super::bundle::strace_options;
use super::scenario_file::RunScenarios;
#[cfg(test)]
use super::scenario_file::SCENARIO_FILE;
use super::settings::{Backend, TraceSettings};

/// The default `trace-config:<resolved>` resolver (bound by the CLI).
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceConfig;

impl TraceConfigResolver for TraceConfig {
    fn resolve(
        &self,
        repo: &RepoSnapshot,
        settings: &ProbeSettings,
    ) -> Result<Option<String>, ResolverError> {
        let s = settings.get::<TraceSettings>().cloned().unwrap_or_default();
        Ok(Some(describe(repo, &s, &strace_version())?))
    }
}

/// The first line of `strace -V`, or `unavailable` (a run without strace
/// gives other evidence than one with it).
fn strace_version() -> String {
    match super::bundle::host_strace_version() {
        Ok(Some(text)) => text.lines().next().unwrap_or("unknown").trim().to_owned(),
        _ => "unavailable".to_owned(),
    }
}

/// The token's text for `repo` under `s` with strace `version`.
pub fn describe(
    repo: &RepoSnapshot,
    s: &TraceSettings,
    version: &str,
) -> Result<String, ResolverError> {
    let backend = match s.backend {
        Some(Backend::Host) => "host".to_owned(),
        Some(Backend::Container) | None => format!("container/{:?}", s.engine).to_lowercase(),
    };
    // Both option sets: which one a run uses follows from the version.
    let argv = format!(
        "{} | {}",
        strace_options(true).join(" "),
        strace_options(false).join(" ")
    );
    // The scenarios the run was given, else the ones the probe would read.
    let loaded;
    let scenarios = match &s.scenarios {
        Some(given) => given,
        None => {
            loaded = RunScenarios::load(repo, None)?;
            &loaded
        }
    };
    let l = &s.limits;
    Ok(format!(
        "backend={backend}; strace={version}; strace_argv={}; scenarios={}:{}; limits=scenario {}ms, all {}ms, grace {}ms, pids {}, memory {}, cpus {}, settle {}ms of {}ms",
        short_hash(argv.as_bytes()),
        scenarios.origin,
        &scenarios.text_hash[..16],
        l.scenario_timeout.as_millis(),
        l.aggregate_timeout.as_millis(),
        l.stop_grace.as_millis(),
        l.pids_limit,
        l.memory,
        l.cpus,
        l.settle_quiet.as_millis(),
        l.settle_max.as_millis(),
    ))
}

fn short_hash(b: &[u8]) -> String {
    blake3::hash(b).to_hex()[..16].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_scenarios_and_tracer_change_the_text() {
        let dir = tempfile::tempdir().unwrap();
        let repo = RepoSnapshot::open(dir.path()).unwrap();
        let container = TraceSettings::default();
        let host = TraceSettings {
            backend: Some(Backend::Host),
            ..TraceSettings::default()
        };
        let a = describe(&repo, &container, "strace -- version 6.1").unwrap();
        assert!(
            a.starts_with("backend=container/docker; strace=strace -- version 6.1;"),
            "{a}"
        );
        assert!(a.contains("scenarios=defaults:"), "{a}");
        assert_ne!(a, describe(&repo, &host, "strace -- version 6.1").unwrap());
        assert_ne!(
            a,
            describe(&repo, &container, "strace -- version 6.2").unwrap()
        );
        assert_eq!(
            a,
            describe(&repo, &container, "strace -- version 6.1").unwrap()
        );
        std::fs::create_dir(dir.path().join(".codegenie")).unwrap();
        std::fs::write(
            dir.path().join(SCENARIO_FILE),
            "version: 1\nscenarios:\n  - name: startup\n    steps: [ { wait_ready: {} } ]\n",
        )
        .unwrap();
        let own = describe(&repo, &container, "strace -- version 6.1").unwrap();
        assert!(
            own.contains("scenarios=.codegenie/scenarios.yaml:"),
            "{own}"
        );
    }
}
