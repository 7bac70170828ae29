//! The disk bound (docs/architecture.md, "Disk bound"): while a scenario
//! runs, a helper thread measures what its container wrote into its own
//! filesystem every [`POLL`] and kills the container once that passes the
//! limit. The engine reports the size itself (`docker container inspect
//! --size`, the writable layer), so this works on every storage driver,
//! fuse-overlayfs included, where `--storage-opt size` does not. The watch
//! measures every [`POLL`] while the layer is far from the limit and sooner
//! as it nears it (half the time the last growth rate leaves, down to
//! [`MIN_POLL`]), so the host sees at most the limit plus what the app
//! writes within one measurement, not within a whole poll: a `dd` into the
//! page cache writes 1 GB/s, 250 MB in one fixed poll.
//!
//! The same thread watches the run's [`CancelToken`]: a cancelled run (a
//! probe timeout, Ctrl-C) kills the container at once, so a long step
//! ends within one poll instead of at its own timeout.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cancel::CancelToken;

use super::error::BackendError;

/// How often the writable layer is measured. At the ~200 MB/s a container
/// writes on a common disk this keeps the overshoot near 50-100 MB, and one
/// measurement costs the engine 30-130 ms.
pub(crate) const POLL: Duration = Duration::from_millis(250);

/// The shortest wait between measurements near the limit.
pub(crate) const MIN_POLL: Duration = Duration::from_millis(10);

/// How long to wait before the next measurement: `every`, or less when the
/// growth between the last two measurements (`grew` bytes in `took`) would
/// reach the limit sooner than twice that.
fn next_wait(
    every: Duration,
    limit_bytes: u64,
    now_bytes: u64,
    grew: u64,
    took: Duration,
) -> Duration {
    if grew == 0 || took.is_zero() {
        return every;
    }
    let left = limit_bytes.saturating_sub(now_bytes) as f64;
    let rate = grew as f64 / took.as_secs_f64();
    Duration::from_secs_f64(left / rate / 2.0).clamp(MIN_POLL.min(every), every)
}

/// What the watch measures and how it stops a container.
pub(crate) trait DiskMeter: Send + 'static {
    /// Bytes written into the container's filesystem so far.
    fn written(&mut self) -> Result<u64, BackendError>;
    /// Stop everything in the container now.
    fn kill(&mut self) -> Result<(), BackendError>;
}

/// What a watch saw, once finished.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DiskReport {
    /// The limit it enforced.
    pub(crate) limit_bytes: u64,
    /// The largest size measured, the measurement after the stop included.
    pub(crate) peak_bytes: u64,
    /// Whether the limit was passed (and the container killed).
    pub(crate) exceeded: bool,
    /// Whether the run was cancelled while watching (and the container killed).
    pub(crate) cancelled: bool,
    /// The last measurement that failed, if any did.
    pub(crate) last_error: Option<String>,
}

/// A running watch; [`DiskWatch::finish`] ends it.
pub(crate) struct DiskWatch {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<DiskReport>>,
}

impl DiskWatch {
    /// Measure `meter` every `every` and kill once it passes `limit_bytes`
    /// or `cancel` trips.
    pub(crate) fn start(
        meter: impl DiskMeter,
        limit_bytes: u64,
        every: Duration,
        cancel: CancelToken,
    ) -> DiskWatch {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || watch(meter, limit_bytes, every, &cancel, rx));
        DiskWatch {
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// Stop watching; one last measurement gives the peak.
    pub(crate) fn finish(mut self) -> DiskReport {
        self.stop.take();
        // A watch that died says so: the bound was not enforced.
        self.thread
            .take()
            .map(|t| {
                t.join().unwrap_or_else(|_| DiskReport {
                    last_error: Some("the disk watch stopped on a panic".into()),
                    ..DiskReport::default()
                })
            })
            .unwrap_or_default()
    }
}

impl Drop for DiskWatch {
    fn drop(&mut self) {
        // Dropping the sender ends the thread at its next wake-up.
        self.stop.take();
    }
}

fn watch(
    mut meter: impl DiskMeter,
    limit_bytes: u64,
    every: Duration,
    cancel: &CancelToken,
    stop: mpsc::Receiver<()>,
) -> DiskReport {
    let mut report = DiskReport {
        limit_bytes,
        ..DiskReport::default()
    };
    let mut wait = every;
    let mut last: Option<(u64, Instant)> = None;
    loop {
        let stopping = match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => false,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
        };
        match meter.written() {
            Ok(n) => {
                report.peak_bytes = report.peak_bytes.max(n);
                let at = Instant::now();
                wait = match last {
                    Some((before, then)) => next_wait(
                        every,
                        limit_bytes,
                        n,
                        n.saturating_sub(before),
                        at.duration_since(then),
                    ),
                    None => every,
                };
                last = Some((n, at));
            }
            Err(e) => report.last_error = Some(e.to_string()),
        }
        if report.peak_bytes > limit_bytes && !report.exceeded {
            report.exceeded = true;
            tracing::warn!(
                limit_bytes,
                observed_bytes = report.peak_bytes,
                "disk_limit_exceeded"
            );
            if let Err(e) = meter.kill() {
                report.last_error = Some(format!("cannot kill the container: {e}"));
            }
        }
        if cancel.is_cancelled() && !report.cancelled && !report.exceeded {
            report.cancelled = true;
            tracing::info!("run cancelled: killing the scenario's container");
            if let Err(e) = meter.kill() {
                report.last_error = Some(format!("cannot kill the container: {e}"));
            }
        }
        if stopping {
            return report;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A filesystem that grows by `step` per measurement until killed.
    struct Growing {
        size: Arc<AtomicU64>,
        step: u64,
        killed: Arc<AtomicU64>,
    }

    impl DiskMeter for Growing {
        fn written(&mut self) -> Result<u64, BackendError> {
            if self.killed.load(Ordering::SeqCst) == 0 {
                self.size.fetch_add(self.step, Ordering::SeqCst);
            }
            Ok(self.size.load(Ordering::SeqCst))
        }
        fn kill(&mut self) -> Result<(), BackendError> {
            self.killed.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn growing(step: u64) -> (Growing, Arc<AtomicU64>, Arc<AtomicU64>) {
        let (size, killed) = (Arc::default(), Arc::<AtomicU64>::default());
        let g = Growing {
            size: Arc::clone(&size),
            step,
            killed: Arc::clone(&killed),
        };
        (g, size, killed)
    }

    #[test]
    fn passing_the_limit_kills_once_and_reports_the_peak() {
        let (meter, size, killed) = growing(10);
        let w = DiskWatch::start(meter, 35, Duration::from_millis(1), CancelToken::new());
        while killed.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let r = w.finish();
        assert!(r.exceeded);
        assert_eq!(r.peak_bytes, 40);
        assert_eq!(size.load(Ordering::SeqCst), 40);
        assert_eq!(killed.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn under_the_limit_nothing_is_killed_and_finish_measures_once_more() {
        let (meter, _size, killed) = growing(1);
        let w = DiskWatch::start(
            meter,
            1 << 40,
            Duration::from_secs(3600),
            CancelToken::new(),
        );
        let r = w.finish();
        assert!(!r.exceeded);
        // The poll never came; the final measurement did.
        assert_eq!(r.peak_bytes, 1);
        assert_eq!(killed.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn cancelling_the_run_kills_within_a_poll() {
        let (meter, _size, killed) = growing(0);
        let cancel = CancelToken::new();
        let w = DiskWatch::start(meter, 1 << 40, Duration::from_millis(5), cancel.clone());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(killed.load(Ordering::SeqCst), 0);
        cancel.cancel();
        while killed.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let r = w.finish();
        assert!(r.cancelled && !r.exceeded);
        assert_eq!(killed.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_wait_shortens_as_the_growth_nears_the_limit() {
        let every = Duration::from_millis(250);
        let sec = Duration::from_secs(1);
        // Nothing grew: the full poll.
        assert_eq!(next_wait(every, 1000, 10, 0, sec), every);
        // 100 B/s with 900 B left: 4.5 s away, the full poll.
        assert_eq!(next_wait(every, 1000, 100, 100, sec), every);
        // 1 GB/s with 128 MB left: 64 ms is half the way.
        let w = next_wait(every, 256_000_000, 128_000_000, 1_000_000_000, sec);
        assert_eq!(w.as_millis(), 64);
        // At or past the limit: the floor, never zero.
        assert_eq!(next_wait(every, 1000, 1000, 10, sec), MIN_POLL);
        assert_eq!(next_wait(every, 1000, 2000, 10, sec), MIN_POLL);
    }

    /// A filesystem that grows with the clock, `per_ms` bytes a millisecond,
    /// until killed: a writer that does not wait for the watch.
    struct Timed {
        started: Instant,
        per_ms: u64,
        killed_at: Option<u64>,
    }

    impl DiskMeter for Timed {
        fn written(&mut self) -> Result<u64, BackendError> {
            let now = self.started.elapsed().as_millis() as u64 * self.per_ms;
            Ok(self.killed_at.unwrap_or(now))
        }
        fn kill(&mut self) -> Result<(), BackendError> {
            self.killed_at = Some(self.written()?);
            Ok(())
        }
    }

    #[test]
    fn a_fast_writer_is_stopped_within_a_measurement_not_a_poll() {
        // 10 bytes a millisecond against a limit of 10,000 and a 200 ms
        // poll: measured every poll, the kill comes at 1,200 ms and 12,000
        // bytes (2,000 over); measured sooner as the limit nears, within
        // a few milliseconds of it.
        let meter = Timed {
            started: Instant::now(),
            per_ms: 10,
            killed_at: None,
        };
        let r = DiskWatch::start(
            meter,
            10_000,
            Duration::from_millis(200),
            CancelToken::new(),
        );
        std::thread::sleep(Duration::from_millis(1500));
        let r = r.finish();
        assert!(r.exceeded);
        let over = r.peak_bytes - 10_000;
        assert!(over < 1000, "{over} bytes over the limit");
    }

    struct Failing;
    impl DiskMeter for Failing {
        fn written(&mut self) -> Result<u64, BackendError> {
            Err("engine down".into())
        }
        fn kill(&mut self) -> Result<(), BackendError> {
            Ok(())
        }
    }

    #[test]
    fn a_failing_measurement_is_reported_not_hidden() {
        let r =
            DiskWatch::start(Failing, 1, Duration::from_secs(3600), CancelToken::new()).finish();
        assert_eq!(r.last_error.as_deref(), Some("engine down"));
        assert!(!r.exceeded);
    }
}
