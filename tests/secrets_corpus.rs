//! Every plaintext of the secret corpus, put in a probe's slice, in in-memory
//! artifacts and in file artifacts, is absent from every file the writer
//! leaves under `.codegenie/`, and the redaction count says so.

mod fs_support;

use fs_support::files_under;
use std::path::Path;

use codegenie::Writer;
use codegenie::{Artifact, ArtifactSource, Confidence, ProbeOutput};
use codegenie::{ProbeRecord, ProbeStatus};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/secrets");

struct Secret {
    plaintext: String,
    line: String,
}

fn corpus() -> Vec<Secret> {
    let text = std::fs::read_to_string(Path::new(FIXTURES).join("corpus.tsv")).unwrap();
    let mut out: Vec<Secret> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 3, "corpus line: {l}");
            Secret {
                plaintext: cols[1].to_owned(),
                line: cols[2].replace("{}", cols[1]),
            }
        })
        .collect();
    // Real PEM private keys (RSA and Ed25519, made for this test), multi-line.
    for f in ["test-key.pem", "test-ed25519.pem"] {
        let pem = std::fs::read_to_string(Path::new(FIXTURES).join(f)).unwrap();
        let body = pem.lines().nth(1).unwrap().to_owned();
        out.push(Secret {
            plaintext: body,
            line: pem,
        });
    }
    out
}

#[test]
fn no_plaintext_survives_the_writer() {
    let secrets = corpus();
    assert!(secrets.len() >= 12);
    let dir = tempfile::tempdir().unwrap();
    let all_lines: String = secrets.iter().map(|s| format!("{}\n", s.line)).collect();
    let on_disk = dir.path().join("app-output.log");
    std::fs::write(&on_disk, &all_lines).unwrap();
    let slice = serde_json::json!({
        "argv": secrets.iter().map(|s| s.line.clone()).collect::<Vec<_>>(),
        "nested": { "env": [secrets[0].line.clone()] },
    });
    let mut out = ProbeOutput::new(slice, Confidence::High);
    out.warnings
        .push(format!("smoke test printed {}", secrets[6].line));
    out.artifacts = vec![
        Artifact {
            name: "stdout.txt".into(),
            source: ArtifactSource::Bytes(all_lines.clone().into_bytes()),
        },
        Artifact {
            name: "trace.strace".into(),
            source: ArtifactSource::File(on_disk),
        },
    ];
    let record = ProbeRecord {
        scratch: None,
        name: "secrets",
        status: ProbeStatus::Ran,
        duration_ms: 0,
        cache_key: None,
        output: Some(out),
        warnings: vec![],
    };
    let written = Writer::new(dir.path())
        .write_record(&record)
        .unwrap()
        .unwrap();

    let files = files_under(&dir.path().join(".codegenie"));
    assert_eq!(files.len(), 3, "{files:?}");
    for f in &files {
        let content = std::fs::read(f).unwrap();
        let content = String::from_utf8_lossy(&content);
        for s in &secrets {
            assert!(
                !content.contains(&s.plaintext),
                "{} still contains {}",
                f.display(),
                s.plaintext
            );
        }
    }
    // Each secret is counted once per place it was written: twice in the
    // artifacts, once in the slice (twice for the first), once in warnings.
    let expected = secrets.len() as u64 * 3 + 2;
    assert_eq!(written.redactions, expected);
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&written.json).unwrap()).unwrap();
    assert_eq!(doc["_meta"]["redactions"], expected);
}

/// Secret shapes kept apart from the patterns (vendor tokens, credentials in
/// URLs, flags, headers, env assignments, connection strings, a JSON key):
/// each line of `corpus-unseen.tsv`, redacted alone, keeps no plaintext.
#[test]
fn shapes_written_apart_from_the_patterns_are_redacted() {
    let text = std::fs::read_to_string(Path::new(FIXTURES).join("corpus-unseen.tsv")).unwrap();
    let mut missed = Vec::new();
    let mut n = 0;
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = l.split('\t').collect();
        assert_eq!(cols.len(), 3, "corpus line: {l}");
        let line = cols[2].replace("{}", cols[1]);
        let mut red = codegenie_runtime::redact::Redactor::new();
        let out = if line.starts_with('{') {
            let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
            red.redact_json(&mut v);
            v.to_string()
        } else {
            red.redact_str(&line)
        };
        if out.contains(cols[1]) || red.count() == 0 {
            missed.push(format!("{}: {out}", cols[0]));
        }
        n += 1;
    }
    assert!(n >= 15, "{n}");
    assert_eq!(missed, Vec::<String>::new());
}
