//! Hostile `.codegenie/scenarios.yaml` files: each is a clear error naming
//! the file (and the line where one exists), in bounded time and memory,
//! and never a silent fallback to the defaults.

use std::time::{Duration, Instant};

use codegenie::RepoSnapshot;
use codegenie_runtime::runtime_trace::scenario_file::load_scenarios;

/// Load `yaml` as a repository's scenario file; the error text and the time taken.
fn load(yaml: &[u8]) -> (String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    std::fs::create_dir_all(dir.path().join(".codegenie")).unwrap();
    std::fs::write(dir.path().join(".codegenie/scenarios.yaml"), yaml).unwrap();
    let repo = RepoSnapshot::open(dir.path()).unwrap();
    let started = Instant::now();
    let r = load_scenarios(&repo);
    let took = started.elapsed();
    match r {
        Ok(f) => panic!("accepted: {f:?}"),
        Err(e) => (codegenie::error_chain(&e), took),
    }
}

fn report(case: &str, msg: &str, took: Duration) {
    eprintln!(
        "ROW | scenarios.yaml: {case} | {msg} | {} ms",
        took.as_millis()
    );
}

#[test]
fn an_alias_bomb_is_refused_quickly() {
    // Nine levels of nine aliases: 9^9 (387 million) strings once expanded,
    // anchored where the schema allows lists.
    let mut y = String::from("version: 1\nscenarios:\n  - name: a0\n    command: &a0 [\"lol\"]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        let refs = [prev.as_str(); 9].join(", ");
        y.push_str(&format!("  - name: a{i}\n    command: &a{i} [{refs}]\n"));
    }
    let (msg, took) = load(y.as_bytes());
    assert!(msg.contains(".codegenie/scenarios.yaml:4:"), "{msg}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    report("alias bomb (9^9)", &msg, took);
}

#[test]
fn a_100_mib_file_is_refused_without_reading_it_all() {
    let mut y = b"version: 1\nscenarios:\n  - name: startup\n    steps: [ { wait_ready: {} } ]\n# "
        .to_vec();
    y.resize(100 * 1024 * 1024, b'x');
    y.push(b'\n');
    let (msg, took) = load(&y);
    assert!(msg.contains(".codegenie/scenarios.yaml"), "{msg}");
    assert!(msg.contains("104857"), "{msg}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    report("100 MiB file", &msg, took);
}

#[test]
fn deep_nesting_is_refused_with_a_line() {
    let depth = 100_000;
    let mut y = String::from("version: 1\nscenarios:\n  - name: startup\n    steps: ");
    y.push_str(&"[".repeat(depth));
    y.push_str(&"]".repeat(depth));
    y.push('\n');
    let (msg, took) = load(y.as_bytes());
    assert!(msg.contains(".codegenie/scenarios.yaml:4:"), "{msg}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    report("100k nested lists", &msg, took);
}

#[test]
fn deep_block_nesting_within_the_size_cap_stays_fast() {
    // Block nesting needs indentation: the 1 MiB cap allows about 1000 levels.
    let mut y = String::from("version: 1\nscenarios:\n  - name: startup\n    steps:\n");
    for i in 0..1000 {
        y.push_str(&" ".repeat(6 + i));
        y.push_str("-\n");
    }
    assert!(y.len() < 1024 * 1024);
    let (msg, took) = load(y.as_bytes());
    assert!(msg.contains(".codegenie/scenarios.yaml:"), "{msg}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    report("1000 nested block lists", &msg, took);
}

#[test]
fn schema_errors_name_their_line() {
    let cases: [(&str, &str, &str); 5] = [
        (
            "unknown field",
            "version: 1\nscenarios:\n  - name: startup\n    steps: [ { wait_ready: {} } ]\n    retries: 3\n",
            ":5:",
        ),
        (
            "wrong type",
            "version: 1\napp:\n  ready: { tcp_port: \"eighty\", timeout_s: 5 }\nscenarios:\n  - name: startup\n    steps: [ { wait_ready: {} } ]\n",
            ":3:",
        ),
        (
            "duplicate scenario names",
            "version: 1\nscenarios:\n  - name: startup\n    steps: [ { wait_ready: {} } ]\n  - name: startup\n    steps: [ { wait_ready: {} } ]\n",
            ":5:",
        ),
        ("empty list", "version: 1\nscenarios: []\n", ":2:"),
        ("not a mapping", "- just\n- a list\n", ":1:"),
    ];
    for (case, yaml, line) in cases {
        let (msg, took) = load(yaml.as_bytes());
        assert!(
            msg.contains(&format!(".codegenie/scenarios.yaml{line}")),
            "{case}: {msg}"
        );
        report(case, &msg, took);
    }
}

#[test]
fn a_symlink_loop_is_an_io_error_not_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let cg = dir.path().join(".codegenie");
    std::fs::create_dir_all(&cg).unwrap();
    std::os::unix::fs::symlink("loop-b", cg.join("loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", cg.join("loop-b")).unwrap();
    std::os::unix::fs::symlink("loop-a", cg.join("scenarios.yaml")).unwrap();
    let repo = RepoSnapshot::open(dir.path()).unwrap();
    let msg = codegenie::error_chain(&load_scenarios(&repo).unwrap_err());
    assert!(msg.contains("scenarios.yaml"), "{msg}");
    assert!(msg.contains("symbolic links"), "{msg}");
    report("symlink loop", &msg, Duration::ZERO);
}

/// A made-up secret that must never be printed.
const SECRET: &str = "zq7-SECRET-VALUE-4f1c9e";

#[test]
fn a_link_that_leaves_the_repository_is_refused_unread() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("credentials");
    std::fs::write(&target, format!("{SECRET}\n")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".codegenie")).unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join(".codegenie/scenarios.yaml")).unwrap();
    let repo = RepoSnapshot::open(dir.path()).unwrap();
    let msg = codegenie::error_chain(&load_scenarios(&repo).unwrap_err());
    assert!(msg.contains("outside the repository"), "{msg}");
    assert!(
        !msg.contains(SECRET) && !msg.contains("credentials"),
        "{msg}"
    );
    // A link inside the repository is followed as before.
    std::fs::write(
        dir.path().join("scenarios-real.yaml"),
        "version: 1\nscenarios:\n  - name: startup\n    steps: [ { wait_ready: {} } ]\n",
    )
    .unwrap();
    std::fs::remove_file(dir.path().join(".codegenie/scenarios.yaml")).unwrap();
    std::os::unix::fs::symlink(
        "../scenarios-real.yaml",
        dir.path().join(".codegenie/scenarios.yaml"),
    )
    .unwrap();
    assert_eq!(load_scenarios(&repo).unwrap().scenarios.len(), 1);
    report(
        "link to a file outside the repository",
        &msg,
        Duration::ZERO,
    );
}

#[test]
fn errors_name_the_position_never_the_values() {
    for (case, yaml) in [
        ("a whole-file value", format!("{SECRET}\n")),
        (
            "a value of the wrong type",
            format!("version: 1\nscenarios:\n  - name: a\n    command: \"{SECRET}\"\n"),
        ),
        (
            "an unknown key shaped like a token",
            format!("version: 1\napp:\n  ready: {{ {SECRET}: 1 }}\nscenarios:\n  - name: a\n    command: [x]\n"),
        ),
    ] {
        // Control: the schema parser's own message quotes the value.
        let raw = codegenie_runtime::runtime_trace::scenarios::parse_scenarios(&yaml, "s")
            .unwrap_err()
            .to_string();
        assert!(raw.contains(SECRET), "{case}: {raw}");
        let (msg, took) = load(yaml.as_bytes());
        assert!(msg.contains(".codegenie/scenarios.yaml:"), "{case}: {msg}");
        assert!(!msg.contains(SECRET), "{case}: {msg}");
        report(&format!("error on {case}"), &msg, took);
    }
}

#[test]
fn a_fifo_is_refused_instead_of_blocking() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".codegenie")).unwrap();
    // A test may start `mkfifo`; the product starts processes only through its exec layer.
    #[allow(clippy::disallowed_methods)]
    let made = std::process::Command::new("mkfifo")
        .arg(dir.path().join(".codegenie/scenarios.yaml"))
        .status()
        .unwrap();
    assert!(made.success());
    let repo = RepoSnapshot::open(dir.path()).unwrap();
    let started = Instant::now();
    let msg = codegenie::error_chain(&load_scenarios(&repo).unwrap_err());
    assert!(msg.contains("not a regular file"), "{msg}");
    report("a FIFO", &msg, started.elapsed());
}
