//! Timing helpers of the command-line benchmarks: wall time of a program
//! with its stdout thrown away, peak RSS from GNU time, medians and the
//! machine's load.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Wall time of one run of `program args` with stdout to /dev/null.
pub(crate) fn timed<S: AsRef<OsStr>>(program: impl AsRef<OsStr>, args: &[S]) -> Duration {
    let program = program.as_ref();
    let started = Instant::now();
    let status = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.to_string_lossy()));
    let took = started.elapsed();
    assert!(
        status.success(),
        "{} failed: {status}",
        program.to_string_lossy()
    );
    took
}

/// Peak RSS in KiB of one run of `program args`, from GNU time.
pub(crate) fn peak_rss_kib<S: AsRef<OsStr>>(program: impl AsRef<OsStr>, args: &[S]) -> u64 {
    let time = Path::new("/usr/bin/time");
    assert!(
        time.is_file(),
        "GNU time (/usr/bin/time) is needed for the peak RSS; install the `time` package"
    );
    let out = Command::new(time)
        .args(["-f", "%M"])
        .arg(program.as_ref())
        .args(args)
        .stdout(Stdio::null())
        .output()
        .expect("run /usr/bin/time");
    assert!(out.status.success(), "the run under GNU time failed");
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in GNU time's output: {text}"))
}

/// The median of `v` (sorted in place).
pub(crate) fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The 1, 5 and 15 minute load averages, as the kernel prints them.
pub(crate) fn load() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
