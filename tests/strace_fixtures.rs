//! Real traces recorded on Linux (see `fixtures/strace/record.sh`) against
//! expected JSON checked by hand against the parser contract
//! (docs/architecture.md, "Parser").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use codegenie::strace::{parse_trace, ExitStatus, ParseOptions, TraceFacts};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/strace")
}

fn parse(name: &str, opts: &ParseOptions) -> TraceFacts {
    let bytes = std::fs::read(fixtures().join(format!("{name}.trace"))).unwrap();
    parse_trace(&bytes[..], opts).unwrap()
}

fn expected(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join(format!("{name}.expected.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

const ALL: &[&str] = &[
    "busybox_chroot",
    "container_busybox",
    "non_utf8_r",
    "non_utf8_y_ttt",
    "python_net_threads",
    "relative_exec_probes",
    "shell_pipeline_y",
    "sigkill_t",
    "sigterm_exit",
    "stderr_tt",
];

#[test]
fn every_fixture_matches_its_expected_json() {
    for name in ALL {
        let facts = parse(name, &ParseOptions::default());
        assert_eq!(
            serde_json::to_value(&facts.trace).unwrap(),
            expected(name),
            "{name}"
        );
    }
}

#[test]
fn fixtures_parse_identically_through_a_one_byte_buffer() {
    for name in ALL {
        let bytes = std::fs::read(fixtures().join(format!("{name}.trace"))).unwrap();
        let tiny = std::io::BufReader::with_capacity(1, &bytes[..]);
        let a = parse_trace(tiny, &ParseOptions::default()).unwrap();
        assert_eq!(a, parse(name, &ParseOptions::default()), "{name}");
    }
}

#[test]
fn interpreters_given_up_front_or_looked_up_lazily_agree() {
    let map: BTreeMap<String, String> = [
        ("/app/run.sh", "/bin/sh"),
        ("/app/entry.sh", "/bin/sh"),
        ("/tmp/fxw/app/bin/run.sh", "/bin/sh"),
        ("/bin/sh", "/lib/ld-musl-x86_64.so.1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for name in ALL {
        let bytes = std::fs::read(fixtures().join(format!("{name}.trace"))).unwrap();
        let given = parse_trace(
            &bytes[..],
            &ParseOptions {
                interpreters: map.clone(),
                ..Default::default()
            },
        )
        .unwrap();
        let mut lookup = |p: &str| map.get(p).cloned();
        let (lazy, _) = codegenie::strace::parse_trace_with_lookup(
            &bytes[..],
            &ParseOptions::default(),
            &mut lookup,
        )
        .unwrap();
        assert_eq!(given, lazy, "{name}");
    }
}

#[test]
fn root_exit_and_signals() {
    let k = parse("sigkill_t", &ParseOptions::default());
    assert_eq!(
        k.root_exit,
        Some(ExitStatus::Killed {
            signal: "SIGKILL".into(),
            core_dumped: false
        })
    );
    let t = parse("sigterm_exit", &ParseOptions::default());
    assert_eq!(t.root_signals, ["SIGTERM"]);
    assert_eq!(t.root_exit, Some(ExitStatus::Exited { code: 3 }));
    // The shell's own SIGCHLDs are the root's; the children's exits are not.
    let p = parse("shell_pipeline_y", &ParseOptions::default());
    assert_eq!(p.root_exit, Some(ExitStatus::Exited { code: 0 }));
    assert!(p.root_signals.iter().all(|s| s == "SIGCHLD") && !p.root_signals.is_empty());
    // stderr output: the root is unprefixed, then `[pid N]`, then unprefixed again.
    let s = parse("stderr_tt", &ParseOptions::default());
    assert_eq!(s.root_exit, Some(ExitStatus::Exited { code: 2 }));
    assert_eq!(s.root_signals, ["SIGCHLD", "SIGCHLD"]);
}

#[test]
fn malformed_lines_are_counted_not_fatal() {
    // The only foreign line of the stderr trace is the tail of `ls`'s own
    // message interleaved with strace's (`) = 1`).
    assert_eq!(
        parse("stderr_tt", &ParseOptions::default()).malformed_lines,
        1
    );
    for name in ALL.iter().filter(|n| **n != "stderr_tt") {
        assert_eq!(
            parse(name, &ParseOptions::default()).malformed_lines,
            0,
            "{name}"
        );
    }
}

#[test]
fn busybox_script_interpreter_from_the_image() {
    let interpreters: BTreeMap<String, String> =
        [("/app/run.sh".to_owned(), "/bin/sh".to_owned())].into();
    let with = parse(
        "busybox_chroot",
        &ParseOptions {
            interpreters,
            ..Default::default()
        },
    );
    let without = parse("busybox_chroot", &ParseOptions::default());
    // The parser counts only `/bin/sh -c`; the script run by a shell is the slice's +1.
    assert_eq!(without.trace.shell_invocations, 1);
    assert_eq!(with.trace.shell_invocations, 1);
    assert_eq!(without.script_shell_invocations, 0);
    assert_eq!(with.script_shell_invocations, 1);
    assert!(with.trace.binaries_executed.contains("/bin/sh"));
    // busybox reads /proc/self/exe: with the map, the shell that runs is
    // known and resolves to busybox; without it nothing is claimed.
    assert_eq!(
        with.trace.resolved.get("/bin/sh").map(String::as_str),
        Some("/bin/busybox")
    );
    assert_eq!(without.trace.resolved.get("/bin/sh"), None);
}

#[test]
fn relative_execs_after_cd_use_the_cwd_the_program_shows() {
    let f = parse("relative_exec_probes", &ParseOptions::default());
    let b = &f.trace.binaries_executed;
    // `cd app && ./bin/run.sh`, then `cd data && ../bin/hello`: the shell's
    // last decorated call showed /tmp/fxw, which `cd` made stale.
    assert!(b.contains("/tmp/fxw/app/bin/run.sh") && b.contains("/tmp/fxw/app/bin/hello"));
    assert!(!b.contains("/tmp/fxw/bin/run.sh") && !b.contains("/tmp/bin/hello"));
    // Probes relative to the cwd, with and without a dirfd.
    let p = &f.trace.paths_probed;
    for path in [
        "/tmp/fxw/app/data/config",
        "/tmp/fxw/app/data/link",
        "/tmp/fxw/app/data",
        "/usr/lib/python3.11/os.py",
    ] {
        assert!(p.contains(path), "{path}");
    }
    assert!(!p.contains("/tmp/fxw/app/data/missing"), "a failed probe");
}

#[test]
fn every_fixture_path_is_normalised_and_the_loader_cache_is_no_library() {
    use codegenie_runtime::strace::paths::normalize;
    for name in ALL {
        let t = parse(name, &ParseOptions::default()).trace;
        let sets = [
            &t.binaries_executed,
            &t.shared_libs_loaded,
            &t.cert_paths_read,
            &t.files_read,
            &t.files_written,
            &t.paths_probed,
        ];
        for p in sets.into_iter().flatten().chain(t.resolved.keys()) {
            assert_eq!(&normalize(p), p, "{name}");
        }
        assert!(!t.shared_libs_loaded.contains("/etc/ld.so.cache"), "{name}");
        for lib in &t.shared_libs_loaded {
            assert!(t.files_read.contains(lib), "{name}: {lib} was opened");
        }
    }
}

#[test]
fn container_script_runs_its_shell_and_the_slice_says_so() {
    use codegenie::runtime_trace::{ScenarioOutcome, ScenarioResult};
    use codegenie_runtime::runtime_trace::slice::{aggregate, AggregateInputs};

    let interpreters: BTreeMap<String, String> =
        [("/app/entry.sh".to_owned(), "/bin/sh".to_owned())].into();
    let plain = parse("container_busybox", &ParseOptions::default());
    let f = parse(
        "container_busybox",
        &ParseOptions {
            interpreters: interpreters.clone(),
            ..Default::default()
        },
    );
    // Applets re-exec /proc/self/exe: without the map that names the script,
    // with it the shell that really runs, whose /proc/self/exe is busybox.
    assert_eq!(plain.trace.binaries_executed.len(), 1);
    assert_eq!(
        f.trace.binaries_executed.iter().collect::<Vec<_>>(),
        ["/app/entry.sh", "/bin/sh"]
    );
    assert!(plain.trace.resolved.is_empty());
    assert_eq!(
        f.trace.resolved.iter().collect::<Vec<_>>(),
        [(&"/bin/sh".to_owned(), &"/bin/busybox".to_owned())]
    );
    assert_eq!(f.trace.shell_invocations, 0);
    assert_eq!(f.script_shell_invocations, 1);
    assert_eq!(f.root_exit, Some(ExitStatus::Exited { code: 0 }));
    assert_eq!(f.root_signals, ["SIGCHLD"; 7]);

    let result = ScenarioResult {
        name: "startup".into(),
        outcome: ScenarioOutcome::Completed,
        wall_clock_ms: 1,
        exit_status: f.root_exit.clone(),
        signals_seen: f.root_signals.clone(),
        trace: Some(plain.trace.clone()),
        artifact: Some("raw/startup.trace".into()),
        interpreters,
        script_shell_invocations: f.script_shell_invocations,
        missing: f.missing.clone(),
        execs: f.execs.clone(),
        phases_ms: None,
    };
    let slice = aggregate(&[result], &AggregateInputs::default());
    assert!(slice.binaries_executed.contains("/bin/sh"));
    assert_eq!(slice.shell_invocations, 1);
    assert_eq!(slice.files_read_at_runtime.summary.cert, 1);
    assert_eq!(slice.files_read_at_runtime.summary.app, 1);
    assert_eq!(slice.files_read_at_runtime.summary.total, 2);
}
