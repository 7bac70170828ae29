//! `codegenie gather` / `cache explain` / `cache prune` end to end: this test
//! binary re-runs itself as the CLI (with the probe below registered) and reads
//! what the command printed.
// Tests drive the built binary, the engine and mounts directly; the
// product itself starts processes only through its exec layer.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::Command;

use clap::Parser;
use codegenie::prelude::*;

#[derive(Default)]
struct CliDemoProbe;

#[register_probe(name = "cli_demo", heaviness = "light")]
impl Probe for CliDemoProbe {
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        declared_inputs!["input.txt", "src/**/*.rs", "image-digest:<resolved>"]
    }
    async fn run(&self, repo: &RepoSnapshot, _: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
        let path = repo.root().join("input.txt");
        let text = std::fs::read_to_string(&path).map_err(|e| ProbeError::io(&path, e))?;
        Ok(ProbeOutput::new(
            serde_json::json!({ "input": text }),
            Confidence::High,
        ))
    }
}

const CLI_ARGS: &str = "CODEGENIE_TEST_CLI_ARGS";

/// The CLI with the arguments in `CODEGENIE_TEST_CLI_ARGS`, run only as the
/// child of the tests below (`--ignored --exact cli_child`): it is this
/// binary, so the probe above is registered. It exits with the CLI's own
/// exit code.
#[test]
#[ignore = "runs only as the CLI child of the tests in this file"]
fn cli_child() {
    let args = std::env::var(CLI_ARGS).expect("run as the CLI child, with its arguments");
    let mut argv = vec!["codegenie".to_owned()];
    argv.extend(serde_json::from_str::<Vec<String>>(&args).unwrap());
    println!("--- cli output ---");
    let code = match codegenie::cli::Cli::try_parse_from(argv) {
        Ok(cli) => match codegenie::cli::run(cli) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e}");
                codegenie::cli::EXIT_ERROR
            }
        },
        Err(e) => {
            eprintln!("{e}");
            codegenie::cli::EXIT_ERROR
        }
    };
    std::process::exit(i32::from(code));
}

/// Run the CLI; returns (exit code, what it printed).
fn cli(args: &[&str]) -> (i32, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "cli_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CLI_ARGS, serde_json::to_string(args).unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let printed = stdout
        .split_once("--- cli output ---\n")
        .map(|(_, s)| s.to_owned())
        .unwrap_or_default();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), printed + &stderr)
}

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("input.txt"), "v1\n").unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/main.rs"), "fn main() {}\n").unwrap();
    dir
}

fn explain_json(root: &Path) -> serde_json::Value {
    let (code, out) = cli(&[
        "cache",
        "explain",
        root.to_str().unwrap(),
        "--probe",
        "cli_demo",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}");
    let json_start = out.find('{').unwrap_or_else(|| panic!("no JSON in {out}"));
    let mut de = serde_json::Deserializer::from_str(&out[json_start..]).into_iter();
    de.next().unwrap().unwrap()
}

fn gather_status(root: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "gather",
        root.to_str().unwrap(),
        "--only",
        "cli_demo",
        "--json",
    ];
    args.extend_from_slice(extra);
    let (code, out) = cli(&args);
    assert_eq!(code, 0, "{out}");
    let json_start = out.find('{').unwrap();
    let mut de =
        serde_json::Deserializer::from_str(&out[json_start..]).into_iter::<serde_json::Value>();
    let report = de.next().unwrap().unwrap();
    report["records"][0]["status"]["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn gather_twice_hits_and_no_cache_bypasses() {
    let t = repo();
    assert_eq!(gather_status(t.path(), &[]), "ran");
    assert_eq!(gather_status(t.path(), &[]), "cache_hit");
    assert_eq!(gather_status(t.path(), &["--no-cache"]), "ran");
}

#[test]
fn two_gathers_at_once_both_succeed_and_leave_a_usable_cache() {
    let t = repo();
    let spawn = || {
        let args = ["gather", t.path().to_str().unwrap(), "--only", "cli_demo"];
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "cli_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CLI_ARGS, serde_json::to_string(&args).unwrap())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    for _ in 0..5 {
        std::fs::write(
            t.path().join("input.txt"),
            format!("{:?}\n", std::time::Instant::now()),
        )
        .unwrap();
        let (mut a, mut b) = (spawn(), spawn());
        let (sa, sb) = (a.wait().unwrap(), b.wait().unwrap());
        assert!(sa.success() && sb.success(), "{sa} {sb}");
        assert_eq!(gather_status(t.path(), &[]), "cache_hit");
    }
}

#[test]
fn explain_lists_files_tokens_key_and_what_changed() {
    let t = repo();
    let before = explain_json(t.path());
    assert_eq!(before["probe"], "cli_demo");
    assert_eq!(before["entry"]["state"], "absent");
    assert_eq!(before["previous_key"], serde_json::Value::Null);
    let key = before["key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 64);
    let globs = before["inputs"]["globs"].as_array().unwrap();
    let files: Vec<&str> = globs
        .iter()
        .flat_map(|g| g["files"].as_array().unwrap())
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(files, vec!["input.txt", "src/main.rs"]);
    let blake3 = globs[0]["files"][0]["blake3"].as_str().unwrap();
    assert_eq!(blake3, blake3::hash(b"v1\n").to_hex().as_str());
    let token = &before["inputs"]["tokens"][0];
    assert_eq!(token["token"], "image-digest:<resolved>");
    // No Dockerfile here: whatever resolver the CLI binds, the digest is unresolved.
    let reason = token["value"]["unresolved"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        [
            "resolver_unbound",
            "resolver_returned_none",
            "resolver_failed"
        ]
        .contains(&reason),
        "{token}"
    );

    assert_eq!(gather_status(t.path(), &[]), "ran");
    let after_run = explain_json(t.path());
    assert_eq!(after_run["entry"]["state"], "present");
    assert_eq!(after_run["previous_key"].as_str(), Some(key.as_str()));
    assert!(after_run["changes"].as_array().unwrap().is_empty());

    std::fs::write(t.path().join("input.txt"), "v2\n").unwrap();
    std::fs::write(t.path().join("src/new.rs"), "\n").unwrap();
    let changed = explain_json(t.path());
    assert_ne!(changed["key"].as_str(), Some(key.as_str()));
    assert_eq!(changed["entry"]["state"], "absent");
    let changes = changed["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["change"] == "file_modified" && c["path"] == "input.txt"),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c["change"] == "file_added" && c["path"] == "src/new.rs"),
        "{changes:?}"
    );

    let (code, text) = cli(&[
        "cache",
        "explain",
        t.path().to_str().unwrap(),
        "--probe",
        "cli_demo",
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("modified input.txt"), "{text}");
    assert!(
        text.contains("token image-digest:<resolved> = <unresolved: "),
        "{text}"
    );
    assert!(text.contains("(empty sentinel)"), "{text}");
    assert!(text.contains(changed["key"].as_str().unwrap()), "{text}");
}

#[test]
fn explain_of_an_unknown_probe_is_an_error() {
    let t = repo();
    let (code, out) = cli(&[
        "cache",
        "explain",
        t.path().to_str().unwrap(),
        "--probe",
        "nope",
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("no probe named `nope`"), "{out}");
}

#[test]
fn prune_shrinks_the_store_and_rejects_bad_sizes() {
    let t = repo();
    assert_eq!(gather_status(t.path(), &[]), "ran");
    let (code, out) = cli(&[
        "cache",
        "prune",
        t.path().to_str().unwrap(),
        "--max-size",
        "0",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}");
    let json_start = out.find('{').unwrap();
    let mut de =
        serde_json::Deserializer::from_str(&out[json_start..]).into_iter::<serde_json::Value>();
    let report = de.next().unwrap().unwrap();
    assert_eq!(report["entries_removed"], 1);
    assert_eq!(report["bytes_after"], 0);
    assert_eq!(
        gather_status(t.path(), &[]),
        "ran",
        "the pruned entry is gone"
    );

    let (code, out) = cli(&[
        "cache",
        "prune",
        t.path().to_str().unwrap(),
        "--max-size",
        "12 parsecs",
    ]);
    assert_ne!(code, 0);
    assert!(out.contains("unknown unit"), "{out}");
}
