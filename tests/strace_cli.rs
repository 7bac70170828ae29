//! `codegenie parse-strace`: JSON on stdout, union of several files, stdin,
//! and errors that name the file.
// Tests drive the built binary, the engine and mounts directly; the
// product itself starts processes only through its exec layer.
#![allow(clippy::disallowed_methods)]

use std::io::Write;
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_codegenie"))
}

fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/strace/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn prints_the_exact_fields_of_the_contract() {
    let out = bin()
        .args(["parse-strace", &fixture("python_net_threads.trace")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Top-level keys in the order of the contract (the JSON is pretty-printed:
    // top-level keys are the lines indented by two spaces).
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("  \""))
        .filter_map(|l| l.split_once("\":").map(|(k, _)| k))
        .collect();
    assert_eq!(
        keys,
        [
            "binaries_executed",
            "shared_libs_loaded",
            "cert_paths_read",
            "files_read",
            "files_written",
            "shell_invocations",
            "network_endpoints_touched",
            "unix_sockets",
            "resolved",
            "paths_probed"
        ]
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("python_net_threads.expected.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(v, expected);
}

#[test]
fn several_files_are_unioned_and_dash_reads_stdin() {
    let mut child = bin()
        .args([
            "parse-strace",
            &fixture("sigkill_t.trace"),
            "-",
            &fixture("non_utf8_r.trace"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"9 connect(3, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr(\"127.0.0.1\")}, 16) = -1 ENETUNREACH (Network is unreachable)\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // sh from both traces, once each: 2; cat from the second.
    assert_eq!(v["shell_invocations"], 2);
    assert_eq!(
        v["binaries_executed"],
        serde_json::json!(["/usr/bin/cat", "/usr/bin/sh"])
    );
    assert_eq!(
        v["network_endpoints_touched"]["outbound"],
        serde_json::json!(["127.0.0.1:80"])
    );
    assert!(v["files_read"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "weird/café"));
}

#[test]
fn resolved_names_and_probes_are_unioned_across_files() {
    let out = bin()
        .args([
            "parse-strace",
            &fixture("python_net_threads.trace"),
            &fixture("relative_exec_probes.trace"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["resolved"]["/lib/x86_64-linux-gnu/libz.so.1"],
        "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13"
    );
    assert_eq!(
        v["resolved"]["/tmp/fxw/app/data/link"],
        "/tmp/fxw/app/data/config"
    );
    let probed = v["paths_probed"].as_array().unwrap();
    assert!(probed.iter().any(|p| p == "/tmp/fxw/net.py"));
    assert!(probed.iter().any(|p| p == "/tmp/fxw/app/data/config"));
}

#[test]
fn an_unreadable_file_is_named_in_the_error() {
    let out = bin()
        .args([
            "parse-strace",
            &fixture("sigkill_t.trace"),
            "/nonexistent/trace.txt",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/trace.txt"), "{err}");
    assert!(out.stdout.is_empty());
}

/// A walk's trace the way `strace -f -y` writes it: `n` distinct files,
/// each opened twice, in an order that is neither sorted nor reversed, a
/// few names with escapes. Returns the trace and the files' names.
fn walk_trace(n: usize) -> (String, Vec<String>) {
    let mut trace =
        String::from("7 execve(\"/usr/bin/walk\", [\"walk\"], 0x7ffd /* 3 vars */) = 0\n");
    let mut names = Vec::new();
    for k in 0..n {
        // A permutation of 0..n (n is not a multiple of 7919).
        let i = (k * 7919) % n;
        let (lit, name) = match i % 1000 {
            0 => (format!("q\\\"uote{i}"), format!("q\"uote{i}")),
            1 => (format!("caf\\303\\251{i}"), format!("café{i}")),
            2 => (format!("bad\\377{i}"), format!("bad\\xff{i}")),
            _ => (format!("f{i}.txt"), format!("f{i}.txt")),
        };
        let dir = format!("/walk/share/d{:03}", i % 211);
        for _ in 0..2 {
            trace.push_str(&format!(
                "7 openat(AT_FDCWD</walk>, \"{dir}/{lit}\", O_RDONLY|O_CLOEXEC) = 3<{dir}/{lit}>\n"
            ));
        }
        names.push(format!("{dir}/{name}"));
    }
    trace.push_str("7 +++ exited with 0 +++\n");
    (trace, names)
}

#[test]
fn a_walk_of_many_distinct_files_comes_out_whole_and_sorted() {
    // Past the handoff of the path sets to their thread, past the size at
    // which one set is sorted in two halves (`strace::distinct::SPLIT`),
    // and past the size at which a file is parsed on two threads.
    let n = 45_001;
    let (trace, mut names) = walk_trace(n);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("walk.trace");
    std::fs::write(&path, trace).unwrap();
    let out = bin().arg("parse-strace").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let read: Vec<&str> = v["files_read"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(read.len(), n);
    assert_eq!(read, names);
    assert_eq!(v["binaries_executed"], serde_json::json!(["/usr/bin/walk"]));
    assert_eq!(v["resolved"], serde_json::json!({}));
    // A file this big is parsed in blocks on two threads; stdin is read as
    // a stream on one: the same bytes out.
    let mut child = bin()
        .args(["parse-strace", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let trace = std::fs::read(&path).unwrap();
    let feeder = std::thread::spawn(move || stdin.write_all(&trace));
    let streamed = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(streamed.status.success());
    assert!(out.stdout == streamed.stdout, "the file and stdin differ");
}
