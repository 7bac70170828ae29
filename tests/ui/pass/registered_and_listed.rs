use codegenie::prelude::*;

#[derive(Default)]
pub struct LockfileProbe;

#[register_probe(heaviness = "light")]
impl Probe for LockfileProbe {
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        declared_inputs!["**/Cargo.lock", "image-digest:<resolved>"]
    }

    async fn run(&self, _repo: &RepoSnapshot, _ctx: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
        Ok(ProbeOutput::new(serde_json::json!({}), Confidence::High))
    }
}

#[derive(Default)]
pub struct ReportProbe;

#[register_probe(heaviness = "heavy", runs_last = true)]
impl Probe for ReportProbe {
    async fn run(&self, _repo: &RepoSnapshot, _ctx: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
        Ok(ProbeOutput::new(serde_json::json!({}), Confidence::Low))
    }
}

fn main() {
    let registry = codegenie::Registry::load().expect("no duplicate names");
    // Registered, named from the type, in run order: light, then heavy (the
    // built-in runtime_trace), then runs_last (the built-in
    // minimal_image, then this one, by name).
    assert_eq!(
        registry.names(),
        ["lockfile", "runtime_trace", "minimal_image", "report"]
    );
    let lockfile = (registry.get("lockfile").unwrap().construct)();
    let inputs: Vec<String> = lockfile.declared_inputs().iter().map(|i| i.to_string()).collect();
    assert_eq!(inputs, ["**/Cargo.lock", "image-digest:<resolved>"]);
    assert_eq!(
        lockfile.declared_inputs()[1],
        DeclaredInput::Token(codegenie::TokenKind::ImageDigest)
    );
    assert!(registry.get("report").unwrap().runs_last);
}
