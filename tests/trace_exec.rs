//! `exec::kill_all`, in its own test process: it signals every process group
//! the process started, so it must not share a process with other tests.

use std::time::{Duration, Instant};

use codegenie_runtime::exec::{kill_all, spawn, ExecSpec, Program, Termination};

#[test]
fn kill_all_ends_every_unreaped_group() {
    assert!(
        Program::Strace.resolve().is_ok(),
        "strace is required (apt-get install strace)"
    );
    let spec = ExecSpec::new(Program::Strace).args(["-f", "-o", "/dev/null", "sleep", "30"]);
    let mut a = spawn(&spec).unwrap();
    let mut b = spawn(&spec).unwrap();
    // A reaped process is no longer tracked.
    let mut done = spawn(&ExecSpec::new(Program::Strace).arg("-V")).unwrap();
    assert!(done
        .wait_until(Instant::now() + Duration::from_secs(10))
        .unwrap()
        .is_some());
    assert_eq!(kill_all(), 2);
    for r in [&mut a, &mut b] {
        let t = r
            .wait_until(Instant::now() + Duration::from_secs(5))
            .unwrap();
        assert_eq!(t, Some(Termination::Signaled(9)));
    }
    assert_eq!(kill_all(), 0);
}
