//! The disk bound (docs/architecture.md, "Disk bound"): while a scenario
//! runs, a helper thread measures what its container wrote into its own
//! filesystem every [`POLL`] and kills the container once that passes the
//! limit. The engine reports the size itself (`docker container inspect
//! --size`, the writable layer), so this works on every storage driver,
//! fuse-overlayfs included, where `--storage-opt size` does not. The host
//! sees at most the limit plus what the app writes within one poll.
//!
//! The same thread watches the run's [`CancelToken`]: a cancelled run (a
//! probe timeout, Ctrl-C) kills the container at once, so a long step
//! ends within one poll instead of at its own timeout.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::cancel::CancelToken;

use super::error::BackendError;

/// How often the writable layer is measured. At the ~200 MB/s a container
/// writes on a common disk this keeps the overshoot near 50-100 MB, and one
/// measurement costs the engine 30-130 ms.
pub(crate) const POLL: Duration = Duration::from_millis(250);

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
        self.thread
            .take()
            .and_then(|t| t.join().ok())
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
    loop {
        let stopping = match stop.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => false,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
        };
        match meter.written() {
            Ok(n) => report.peak_bytes = report.peak_bytes.max(n),
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
