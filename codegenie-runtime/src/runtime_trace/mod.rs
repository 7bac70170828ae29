//! The runtime-trace probe: build the image, run scenarios under strace in
//! hardened containers (or on the host), and report the evidence.
//!
//! - [`probe`]: `RuntimeTraceProbe`, backend choice, artifacts and slice;
//! - [`scenarios`]: the scenario file schema; [`settings`]: probe settings and limits;
//! - [`sequence`]: one scenario at a time under the timeouts, trace → result;
//! - [`steps`]: the step driver shared by the backends;
//! - [`container`] + [`engine`] + [`bundle`]: the container backend; [`host`]: the host backend;
//! - [`agent`]: the in-container helpers (`codegenie agent ...`);
//! - [`interp`]: `#!` and `PT_INTERP` reading; [`model`], [`slice`](mod@slice): results and the slice.

use std::sync::atomic::{AtomicBool, Ordering};

pub mod agent;
pub mod bundle;
pub mod container;
pub mod dockerfile;
pub mod engine;
pub mod host;
pub mod interp;
pub mod model;
pub mod orphans;
pub mod probe;
pub mod scenarios;
pub mod sequence;
pub mod settings;
pub mod slice;
pub mod steps;
pub mod yaml_guard;

static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Ask a running trace to stop starting containers (e.g. on Ctrl-C); the
/// caller then removes what is left by the run label.
pub fn cancel() {
    CANCELLED.store(true, Ordering::SeqCst);
}

/// Whether [`cancel`] was called.
pub fn is_cancelled() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}
