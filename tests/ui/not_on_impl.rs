use codegenie::prelude::*;

#[register_probe(heaviness = "light")]
pub struct DemoProbe;

fn main() {}
