//! Readers of the CI reports that are not ours: Python's `junitparser`
//! reads JUnit XML, Python's `jsonschema` checks SARIF against the vendored
//! OASIS SARIF 2.1.0 schema (`tests/fixtures/sarif-schema-2.1.0.json`).
//! `.ci/run` installs both (`pip install junitparser jsonschema`); a missing
//! one fails the test, never skips it.
// Tests run the validators directly.
#![allow(clippy::disallowed_methods)]
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

const JUNIT: &str = r#"
import json, sys
from junitparser import JUnitXml, TestSuite, Failure, Skipped, Error
xml = JUnitXml.fromfile(sys.argv[1])
suites = [xml] if isinstance(xml, TestSuite) else list(xml)
out = []
for s in suites:
    cases = []
    for c in s:
        kind, message, ty = "passed", None, None
        for r in c.result:
            kind = {Failure: "failure", Skipped: "skipped", Error: "error"}.get(type(r), type(r).__name__)
            message, ty = r.message, r.type
        cases.append({"name": c.name, "classname": c.classname, "time": c.time,
                      "result": kind, "message": message, "type": ty})
    out.append({"name": s.name, "tests": s.tests, "failures": s.failures,
                "skipped": s.skipped, "errors": s.errors, "time": s.time, "cases": cases})
print(json.dumps(out))
"#;

const SARIF: &str = r#"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
doc = json.load(open(sys.argv[2]))
cls = jsonschema.validators.validator_for(schema)
cls.check_schema(schema)
v = cls(schema, format_checker=cls.FORMAT_CHECKER)
errors = sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path))
for e in errors:
    print("/".join(map(str, e.absolute_path)) + ": " + e.message)
print(("valid" if not errors else "invalid") + " (" + cls.__name__ + ")")
sys.exit(1 if errors else 0)
"#;

fn python(script: &str, args: &[&Path]) -> std::process::Output {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("python3 cannot run ({e}): the CI-report tests need it"))
}

fn fail_on_missing_module(out: &std::process::Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("ModuleNotFoundError"),
        "{err}\ninstall the validators: python3 -m pip install junitparser jsonschema (.ci/run does)"
    );
}

/// The JUnit file as `junitparser` reads it: one object per suite with its
/// counts and cases (`result`: passed, failure, skipped or error). Panics
/// when it cannot be read.
pub fn junit(path: &Path) -> serde_json::Value {
    let out = python(JUNIT, &[path]);
    fail_on_missing_module(&out);
    assert!(
        out.status.success(),
        "junitparser cannot read {}: {}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!(
        "VERDICT | junitparser | {} | read, {} suite(s)",
        path.display(),
        v.as_array().map_or(0, Vec::len)
    );
    v
}

/// The schema validator's verdict on a SARIF file: `Ok("valid (...)")`, or
/// `Err` with every violation.
pub fn sarif_verdict(path: &Path) -> Result<String, String> {
    let schema =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sarif-schema-2.1.0.json");
    let out = python(SARIF, &[&schema, path]);
    fail_on_missing_module(&out);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "VERDICT | jsonschema SARIF 2.1.0 | {} | {}",
        path.display(),
        text.trim()
    );
    if out.status.success() {
        Ok(text.trim().to_owned())
    } else {
        Err(text)
    }
}

/// Panics unless the SARIF file is valid against the SARIF 2.1.0 schema;
/// returns it parsed.
pub fn sarif(path: &Path) -> serde_json::Value {
    if let Err(e) = sarif_verdict(path) {
        panic!(
            "{} is not valid SARIF 2.1.0:\n{e}\n{}",
            path.display(),
            std::fs::read_to_string(path).unwrap_or_default()
        );
    }
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The suite named `name`.
pub fn suite<'a>(suites: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    suites
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no suite {name}: {suites:#}"))
}

/// The case named `name` of a suite.
pub fn case<'a>(suite: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    suite["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}: {suite:#}"))
}
