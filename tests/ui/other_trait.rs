use codegenie::prelude::*;

#[derive(Default, Clone)]
pub struct DemoProbe;

#[register_probe(heaviness = "light")]
impl std::fmt::Display for DemoProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("demo")
    }
}

fn main() {}
