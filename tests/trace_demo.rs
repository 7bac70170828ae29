//! The README's main command, `codegenie trace examples/demo-service`, on a
//! copy of the demo repository, through the real binary and engine.
// Tests drive the built binary, the engine and mounts directly; the
// product itself starts processes only through its exec layer.
#![allow(clippy::disallowed_methods)]

mod trace_support;

use std::process::Command;

use trace_support::*;

#[test]
fn codegenie_trace_on_the_demo_service() {
    let _engine = engine_lock();
    let repo = fixture_repo("examples/demo-service");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_codegenie"))
            .arg("trace")
            .arg(repo.path())
            .output()
            .unwrap()
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("confidence high"), "{stdout}");
    assert!(stdout.contains("migrate      completed"), "{stdout}");
    let slice: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.path().join(".codegenie/context/runtime_trace.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(strings(&slice["scenarios_run"]).len(), 6);
    // Redacted traces stay; the raw ones are removed once written.
    assert!(repo
        .path()
        .join(".codegenie/context/raw/runtime-trace-startup.strace")
        .is_file());
    // Raw traces wait in the coordinator's scratch folder,
    // `.codegenie/work/runtime_trace-XXXX/`: the folder of scratch folders
    // exists (the run made one) and is empty (it was removed).
    let work = repo.path().join(".codegenie/work");
    let left: Vec<_> = std::fs::read_dir(&work)
        .expect("the run made its scratch folder under .codegenie/work")
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(strings(&slice["binaries_executed"]).contains(&"/app/migrate.sh".to_owned()));
    assert!(strings(&slice["files_written"]).contains(&"/tmp/migrated".to_owned()));
    assert_eq!(
        strings(&slice["network_endpoints_touched"]["outbound"]),
        ["127.0.0.1:5432"]
    );

    let again = run();
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("cache hit"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
}
