//! Build script: validates the default scenarios (`scenarios/*.yaml`, which
//! the runtime embeds with `include_str!`) with the same schema module the
//! runtime uses, so a broken default fails the build.

// One definition of the schema: the runtime's module, included here.
#[allow(dead_code)]
#[path = "codegenie-runtime/src/runtime_trace/scenarios.rs"]
mod scenarios;
#[allow(dead_code)]
#[path = "codegenie-runtime/src/runtime_trace/yaml_guard.rs"]
mod yaml_guard;

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=scenarios");
    println!("cargo:rerun-if-changed=codegenie-runtime/src/runtime_trace/scenarios.rs");
    println!("cargo:rerun-if-changed=codegenie-runtime/src/runtime_trace/yaml_guard.rs");
    let dir = Path::new("scenarios");
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => fail(&format!("cannot read {}: {e}", dir.display())),
    };
    let mut checked = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => fail(&format!("cannot read {}: {e}", path.display())),
        };
        if let Err(e) = scenarios::parse_scenarios(&text, &path.display().to_string()) {
            fail(&format!("invalid default scenarios: {e}"));
        }
        checked += 1;
    }
    if !dir.join("default.yaml").is_file() {
        fail("scenarios/default.yaml is missing");
    }
    println!("cargo:rustc-env=CODEGENIE_DEFAULT_SCENARIO_FILES={checked}");
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    println!("cargo:warning={msg}");
    std::process::exit(1);
}
