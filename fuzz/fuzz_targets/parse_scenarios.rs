//! Fuzz the scenario-file parser. Any text must give a file or a typed error
//! (with a position when the parser knows one), never a panic, in bounded
//! time: the depth and alias guards run before serde_yaml.
#![no_main]

use codegenie_runtime::runtime_trace::scenarios::parse_scenarios;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse_scenarios(&text, ".codegenie/scenarios.yaml") {
        Ok(file) => assert!(!file.scenarios.is_empty(), "an accepted file has scenarios"),
        Err(e) => assert!(e.to_string().starts_with(".codegenie/scenarios.yaml")),
    }
});
