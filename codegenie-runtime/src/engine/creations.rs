//! Containers and volumes this process is asking an engine to make. An
//! interrupted run closes the gate before it sweeps (docs/architecture.md,
//! "Pipeline"): the probes' threads are not waited for, so without it one of
//! them could make a container after the sweep's listing, and a create the
//! engine was still answering would land after it. Closing refuses every
//! later creation and waits, bounded, for those in flight to be answered,
//! so that the sweep lists what they made.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::EngineError;

/// Creations in flight, and whether new ones are refused.
pub(crate) struct Gate {
    state: Mutex<State>,
    answered: Condvar,
}

#[derive(Default)]
struct State {
    closed: bool,
    in_flight: usize,
}

/// One creation in flight; it is answered when this is dropped.
pub(crate) struct Creating<'a> {
    gate: &'a Gate,
}

impl Gate {
    pub(crate) const fn new() -> Self {
        Gate {
            state: Mutex::new(State {
                closed: false,
                in_flight: 0,
            }),
            answered: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is two plain values: a panic elsewhere leaves it whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Before asking an engine to make `what`: refused once the gate closed.
    pub(crate) fn enter(&self, what: &'static str) -> Result<Creating<'_>, EngineError> {
        let mut s = self.state();
        if s.closed {
            return Err(EngineError::Interrupted { what });
        }
        s.in_flight += 1;
        Ok(Creating { gate: self })
    }

    /// Refuse every later creation and wait, at most `limit`, until those in
    /// flight are answered; how many were still in flight at the limit.
    pub(crate) fn close(&self, limit: Duration) -> usize {
        let until = Instant::now() + limit;
        let mut s = self.state();
        s.closed = true;
        while s.in_flight > 0 {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = self
                .answered
                .wait_timeout(s, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        s.in_flight
    }
}

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        let mut s = self.gate.state();
        s.in_flight -= 1;
        if s.in_flight == 0 {
            self.gate.answered.notify_all();
        }
    }
}

/// This process's gate: every container and volume it makes passes it.
static CREATIONS: Gate = Gate::new();

/// Enter this process's gate before asking an engine to make `what`.
pub(crate) fn enter(what: &'static str) -> Result<Creating<'static>, EngineError> {
    CREATIONS.enter(what)
}

/// Refuse every later container and volume creation of this process, on
/// every engine, and wait at most `limit` for those in flight to be
/// answered; how many were not. The interrupt path calls it before it
/// removes the run's containers, so that the removal sees all of them.
pub fn close_creations(limit: Duration) -> usize {
    CREATIONS.close(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn closing_waits_for_a_creation_in_flight_then_refuses_new_ones() {
        let gate = Gate::new();
        let creating = gate.enter("container").unwrap();
        let answered = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(200));
                answered.store(true, Ordering::SeqCst);
                drop(creating);
            });
            // Close returns only after the creation in flight was answered.
            assert_eq!(gate.close(Duration::from_secs(10)), 0);
            assert!(answered.load(Ordering::SeqCst));
        });
        match gate.enter("volume") {
            Err(EngineError::Interrupted { what }) => assert_eq!(what, "volume"),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a creation passed a closed gate"),
        };
    }

    #[test]
    fn control_an_unanswered_creation_is_counted_at_the_limit() {
        let gate = Gate::new();
        let _creating = gate.enter("container").unwrap();
        let started = Instant::now();
        assert_eq!(gate.close(Duration::from_millis(100)), 1);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[test]
    fn an_open_gate_lets_creations_through() {
        let gate = Gate::new();
        let a = gate.enter("container").unwrap();
        let b = gate.enter("volume").unwrap();
        drop((a, b));
        assert_eq!(gate.close(Duration::ZERO), 0);
    }
}
