//! Probes declared with both macros as a user writes them compile, register
//! and list: defaults only, every key of `#[register_probe]`, and the run
//! order of what is registered. An ordinary test binary rather than
//! trybuild `pass` cases, so the `ui` test only type-checks its project
//! (trybuild builds every case when one of them must run, which compiles
//! all dependencies to machine code a second time).

use codegenie::prelude::*;

/// Defaults only: named from the type, no inputs.
#[derive(Default)]
pub struct DemoProbe;

#[register_probe]
impl Probe for DemoProbe {
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        declared_inputs![]
    }

    async fn run(
        &self,
        _repo: &RepoSnapshot,
        _ctx: &ProbeContext,
    ) -> Result<ProbeOutput, ProbeError> {
        Ok(ProbeOutput::new(serde_json::json!({}), Confidence::High))
    }
}

/// Every key, and one input of each kind.
#[derive(Default)]
pub struct FullProbe;

#[register_probe(heaviness = "heavy", runs_last = false, name = "full")]
impl Probe for FullProbe {
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        declared_inputs![
            "Dockerfile",
            ".codegenie/scenarios.yaml",
            "image-digest:<resolved>",
            "src/**/*.{rs,toml}"
        ]
    }

    async fn run(
        &self,
        _repo: &RepoSnapshot,
        _ctx: &ProbeContext,
    ) -> Result<ProbeOutput, ProbeError> {
        Ok(ProbeOutput::new(serde_json::json!({}), Confidence::High))
    }
}

#[derive(Default)]
pub struct LockfileProbe;

#[register_probe(heaviness = "light")]
impl Probe for LockfileProbe {
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        declared_inputs!["**/Cargo.lock", "image-digest:<resolved>"]
    }

    async fn run(
        &self,
        _repo: &RepoSnapshot,
        _ctx: &ProbeContext,
    ) -> Result<ProbeOutput, ProbeError> {
        Ok(ProbeOutput::new(serde_json::json!({}), Confidence::High))
    }
}

#[derive(Default)]
pub struct ReportProbe;

#[register_probe(heaviness = "heavy", runs_last = true)]
impl Probe for ReportProbe {
    async fn run(
        &self,
        _repo: &RepoSnapshot,
        _ctx: &ProbeContext,
    ) -> Result<ProbeOutput, ProbeError> {
        Ok(ProbeOutput::new(serde_json::json!({}), Confidence::Low))
    }
}

fn inputs(registry: &codegenie::Registry, name: &str) -> Vec<String> {
    let probe = (registry.get(name).unwrap().construct)();
    probe
        .declared_inputs()
        .iter()
        .map(|i| i.to_string())
        .collect()
}

#[test]
fn declared_probes_register_in_run_order_with_their_inputs() {
    let registry = codegenie::Registry::load().expect("no duplicate names");
    // Named from the type unless `name` is given, in run order: light (the
    // default heaviness), then heavy (this binary's and the built-in
    // runtime_trace), then runs_last (the built-in minimal_image, then this
    // one); by name within each.
    assert_eq!(
        registry.names(),
        [
            "demo",
            "lockfile",
            "full",
            "runtime_trace",
            "minimal_image",
            "report"
        ]
    );
    assert!(inputs(&registry, "demo").is_empty());
    assert_eq!(
        inputs(&registry, "full"),
        [
            "Dockerfile",
            ".codegenie/scenarios.yaml",
            "image-digest:<resolved>",
            "src/**/*.{rs,toml}"
        ]
    );
    assert_eq!(
        inputs(&registry, "lockfile"),
        ["**/Cargo.lock", "image-digest:<resolved>"]
    );
    let lockfile = (registry.get("lockfile").unwrap().construct)();
    assert_eq!(
        lockfile.declared_inputs()[1],
        DeclaredInput::Token(codegenie::TokenKind::ImageDigest)
    );
    assert!(registry.get("report").unwrap().runs_last);
    assert!(!registry.get("full").unwrap().runs_last);
}
