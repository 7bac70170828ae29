//! Build script: validates the default scenarios (`scenarios/*.yaml`; the
//! runtime embeds `scenarios/default.yaml` through `codegenie-spec`) with the
//! schema the runtime uses, so a broken default fails the build.

use std::path::Path;

use codegenie_spec::scenarios::parse_scenarios;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=scenarios");
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
        if let Err(e) = parse_scenarios(&text, &path.display().to_string()) {
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
