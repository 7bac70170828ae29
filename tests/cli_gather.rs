//! The CLI end to end, through the `file_census` example: a complete
//! `codegenie` binary with one extra probe declared with both macros.
// Tests drive the built binary, the engine and mounts directly; the
// product itself starts processes only through its exec layer.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::process::Command;

fn example_bin() -> PathBuf {
    // target/<profile>/deps/<this test> → target/<profile>/examples/file_census
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    // `cargo test --test cli_gather` alone does not rebuild examples; a build
    // of an up-to-date example is a no-op.
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", "file_census"])
            .status()
            .unwrap();
        assert!(status.success(), "building the file_census example failed");
    });
    profile_dir.join("examples").join("file_census")
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(example_bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn probes_lists_the_example_with_its_declared_inputs() {
    let out = run(&["probes", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let census = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "file_census")
        .expect("file_census is registered");
    assert_eq!(census["heaviness"], "light");
    assert_eq!(census["runs_last"], false);
    assert_eq!(
        census["declared_inputs"],
        serde_json::json!(["**/*", "image-digest:<resolved>"])
    );

    let table = run(&["probes"]);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.starts_with("NAME"), "{text}");
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("file_census "))
        .expect("a file_census row")
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        [
            "file_census",
            "light",
            "false",
            "content",
            "**/*,",
            "image-digest:<resolved>"
        ]
    );
    // The built-in probe is linked into every codegenie binary.
    assert!(
        text.lines().any(|l| l.starts_with("runtime_trace ")),
        "{text}"
    );
}

#[test]
fn gather_writes_the_probe_output() {
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join("src")).unwrap();
    std::fs::write(repo.path().join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(repo.path().join("src/lib.rs"), "\n").unwrap();
    std::fs::write(repo.path().join("Cargo.toml"), "[package]\n").unwrap();
    let out = run(&[
        "gather",
        repo.path().to_str().unwrap(),
        "--only",
        "file_census",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = repo.path().join(".codegenie/context/file_census.json");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(doc["total_files"], 3);
    assert_eq!(doc["by_extension"]["rs"], 2);
    assert_eq!(doc["by_extension"]["toml"], 1);
    assert_eq!(doc["_meta"]["probe"], "file_census");
    assert_eq!(doc["_meta"]["confidence"], "high");
    // A second gather does not count its own output folder.
    let again = run(&[
        "gather",
        repo.path().to_str().unwrap(),
        "--only",
        "file_census",
        "--no-cache",
    ]);
    assert!(again.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(doc["total_files"], 3);
}

#[test]
fn bad_arguments_are_clear_errors() {
    let repo = tempfile::tempdir().unwrap();
    let out = run(&[
        "gather",
        repo.path().to_str().unwrap(),
        "--only",
        "file_cenus",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no probe named `file_cenus` (did you mean `file_census`?)"),
        "{err}"
    );
    assert!(err.contains("file_census"), "{err}");

    let missing = repo.path().join("does-not-exist");
    let out = run(&["gather", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open repository"), "{err}");
    assert!(err.contains("does-not-exist"), "{err}");
}
