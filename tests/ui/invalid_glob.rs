use codegenie::prelude::*;

#[derive(Default)]
pub struct DemoProbe;

#[register_probe(heaviness = "light")]
impl Probe for DemoProbe {
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        declared_inputs!["src/[a-"]
    }

    async fn run(&self, _repo: &RepoSnapshot, _ctx: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
        Ok(ProbeOutput::new(serde_json::json!({}), Confidence::High))
    }
}

fn main() {}
