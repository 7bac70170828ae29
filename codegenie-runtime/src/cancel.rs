//! Cancellation that travels with the work instead of a process-wide flag:
//! the CLI trips a run's token on SIGINT/SIGTERM, the coordinator trips a
//! probe's token when the probe runs past its timeout, and long-running
//! probes check it between steps (the runtime trace before each scenario).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cancellation flag shared by clones; a [`child`](CancelToken::child) is
/// cancelled with its parent, never the reverse.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    own: Arc<AtomicBool>,
    parent: Option<Arc<CancelToken>>,
}

impl CancelToken {
    /// A token nobody has cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// A token cancelled when `self` is, or on its own.
    pub fn child(&self) -> Self {
        CancelToken {
            own: Arc::new(AtomicBool::new(false)),
            parent: Some(Arc::new(self.clone())),
        }
    }

    /// Cancel this token, its clones and its children.
    pub fn cancel(&self) {
        self.own.store(true, Ordering::SeqCst);
    }

    /// Whether this token or an ancestor was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.own.load(Ordering::SeqCst) || self.parent.as_ref().is_some_and(|p| p.is_cancelled())
    }
}

#[cfg(test)]
mod tests {
    use super::CancelToken;

    #[test]
    fn children_follow_parents_not_the_reverse() {
        let run = CancelToken::new();
        let probe = run.child();
        let other = run.child();
        probe.cancel();
        assert!(probe.is_cancelled());
        assert!(!run.is_cancelled() && !other.is_cancelled());
        run.cancel();
        assert!(other.is_cancelled());
        assert!(run.clone().is_cancelled());
    }
}
