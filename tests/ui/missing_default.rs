use codegenie::prelude::*;

pub struct DemoProbe {
    pub limit: usize,
}

#[register_probe(heaviness = "light")]
impl Probe for DemoProbe {
    async fn run(&self, _repo: &RepoSnapshot, _ctx: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
        Ok(ProbeOutput::new(serde_json::json!({ "limit": self.limit }), Confidence::High))
    }
}

fn main() {}
