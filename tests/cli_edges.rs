//! The CLI as a pipeline member: a closed stdout ends it quietly with the
//! status shells give a process ended by SIGPIPE, and logs carry no colour
//! codes when stderr is not a terminal.
// Tests drive the built binary directly.
#![allow(clippy::disallowed_methods)]

use std::process::{Command, Stdio};

fn codegenie() -> Command {
    Command::new(env!("CARGO_BIN_EXE_codegenie"))
}

#[test]
fn a_closed_stdout_ends_quietly_with_141() {
    let trace = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/strace/shell_pipeline_y.trace"
    );
    let mut child = codegenie()
        .args(["parse-strace", trace])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -0`: the reader is gone before the first write.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(stderr.is_empty(), "nothing on stderr, got: {stderr}");

    // Control: the same command with a reader prints the facts and exits 0.
    let ok = codegenie().args(["parse-strace", trace]).output().unwrap();
    assert_eq!(ok.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("binaries_executed"));
}

#[test]
fn logs_have_no_colour_codes_off_a_terminal() {
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(repo.path().join("README"), "x").unwrap();
    let out = codegenie()
        .args(["-v", "gather", "--no-cache"])
        .arg(repo.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dispatch"), "debug logs expected: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in logs: {stderr:?}"
    );
}
