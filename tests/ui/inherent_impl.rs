use codegenie::prelude::*;

#[derive(Default)]
pub struct DemoProbe;

#[register_probe(heaviness = "light")]
impl DemoProbe {
    pub fn new() -> Self {
        DemoProbe
    }
}

fn main() {}
