//! The secret corpus through a real trace: an app echoes each secret, passes
//! it in argv and writes it to files. After `codegenie trace`, no file under
//! `.codegenie/` holds any plaintext, and the slice counts the redactions.
// Tests drive the built binary, the engine and mounts directly; the
// product itself starts processes only through its exec layer.
#![allow(clippy::disallowed_methods)]

mod fs_support;

mod containment_support;
mod trace_support;

use fs_support::files_under;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use containment_support::row;
use trace_support::*;

const SECRETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/secrets");

/// (plaintext, the text the app handles) for every corpus entry and PEM key.
fn corpus() -> Vec<(String, String)> {
    // The writer's corpus and the shapes kept apart from the patterns.
    let text = ["corpus.tsv", "corpus-unseen.tsv"]
        .map(|f| std::fs::read_to_string(Path::new(SECRETS).join(f)).unwrap())
        .join("\n");
    let mut out: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols[1].to_owned(), cols[2].replace("{}", cols[1]))
        })
        .collect();
    for f in ["test-key.pem", "test-ed25519.pem"] {
        let pem = std::fs::read_to_string(Path::new(SECRETS).join(f)).unwrap();
        out.push((pem.lines().nth(1).unwrap().to_owned(), pem));
    }
    out
}

#[test]
fn no_secret_the_app_handled_survives_under_codegenie() {
    let _engine = engine_lock();
    let repo = fixture_repo("tests/fixtures/hostile/secrets-leak");
    let secrets = corpus();
    let dir = repo.path().join("rootfs/app/secrets");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (_, text)) in secrets.iter().enumerate() {
        std::fs::write(dir.join(format!("{i:02}")), text).unwrap();
    }
    let id = run_id("secrets");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("trace")
        .arg(repo.path())
        // With the cache (entries and manifests are scanned too) and debug
        // logs (stderr is scanned with the files).
        .args(["-v", "--backend", "docker", "--run-id"])
        .arg(&id)
        .output()
        .unwrap();
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let written = repo.path().join(".codegenie/context/runtime_trace.json");
    let slice: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&written).unwrap()).unwrap();
    assert_eq!(
        scenario(&slice, "smoke_test")["outcome"]["kind"],
        "completed",
        "{slice:#}"
    );
    // The app really handled every secret: one `sh` per secret ran.
    assert!(
        slice["shell_invocations"].as_u64().unwrap() >= secrets.len() as u64,
        "{slice:#}"
    );
    let mut hits = Vec::new();
    let files = files_under(&repo.path().join(".codegenie"));
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("/cache/")),
        "the cache was written: {files:?}"
    );
    let mut scanned: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| (f.display().to_string(), std::fs::read(f).unwrap()))
        .collect();
    scanned.push(("stderr".to_owned(), out.stderr.clone()));
    scanned.push(("stdout".to_owned(), out.stdout.clone()));
    for (name, bytes) in &scanned {
        for (plain, _) in &secrets {
            if memmem(bytes, plain.as_bytes()) {
                hits.push(format!("{name}: {plain}"));
            }
        }
    }
    assert_eq!(hits, Vec::<String>::new());
    let redactions = slice["_meta"]["redactions"].as_u64().unwrap();
    assert!(redactions >= secrets.len() as u64, "{redactions}");
    assert!(labelled_containers(&id).is_empty());
    row(
        "secret corpus (30 shapes: echo, argv, files; cache and -v logs on)",
        "0 plaintext hits under .codegenie/ (cache incl.), stdout, stderr",
        &format!(
            "0 hits in {} files + stdout + stderr ({} KiB of debug logs), {redactions} redactions",
            files.len(),
            out.stderr.len() / 1024
        ),
        took,
        "none",
    );
}

fn memmem(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_failed_import_names_env_keys_but_never_their_values() {
    // The engine refuses the import (no such tar): the error names the
    // command, as the CLI's last `error:` line does, with every change but
    // the ENV values, which an image may fill with secrets. It creates
    // nothing on the engine, so it does not take the engine lock.
    let engine =
        codegenie_runtime::engine::Engine::new(codegenie_runtime::engine::EngineKind::Docker);
    let changes = [
        r#"ENV AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY""#.to_owned(),
        r#"ENV DATABASE_PASSWORD="hunter2-correct-horse""#.to_owned(),
        "WORKDIR /app".to_owned(),
    ];
    let missing = tempfile::tempdir().unwrap().path().join("no-such.tar");
    let err = engine
        .import_filesystem(&missing, &changes, "codegenie-test-import:never")
        .expect_err("importing a missing tar fails");
    let text = codegenie::error_chain(&err);
    assert!(
        text.contains("AWS_SECRET_ACCESS_KEY"),
        "the command is named: {text}"
    );
    assert!(
        text.contains("WORKDIR /app"),
        "the other changes are shown: {text}"
    );
    assert!(!text.contains("wJalrXUtnFEMI"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}
