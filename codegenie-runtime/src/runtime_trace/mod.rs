//! The runtime-trace probe: build the image, run scenarios under strace in
//! hardened containers (or on the host when asked), and report the evidence.
//!
//! - [`probe`]: `RuntimeTraceProbe` and the run from digest to output;
//! - [`scenarios`] (the schema) and [`scenario_file`] (which file, the app's
//!   defaults); [`settings`]: the typed settings and limits;
//! - `sequence`: one scenario at a time under the timeouts, trace → result;
//! - `backend`: the one per-scenario path; `container` and `host`: the two
//!   backends behind it; `steps`: the step driver they share; `disk_watch`:
//!   the bound on what a container writes;
//! - [`bundle`]: the tool bundle copied into containers; [`agent`]: the
//!   in-container helpers (`codegenie agent ...`);
//! - [`results`], [`slice`](mod@slice), [`output`]: results, the slice, the probe output;
//! - [`config_token`]: the `trace-config:<resolved>` token (backend,
//!   tracer, scenarios, limits in the cache key);
//! - [`work_dir`]: where raw traces wait for the writer;
//! - [`dockerfile`]: why a Dockerfile is unusable.

pub mod agent;
mod backend;
pub mod bundle;
pub mod config_token;
mod container;
mod disk_watch;
pub mod dockerfile;
mod error;
mod host;
pub mod output;
mod prefetch;
pub mod probe;
pub mod results;
pub mod scenario_file;
pub use codegenie_spec::scenarios;
mod sequence;
pub mod settings;
pub mod slice;
mod steps;
pub mod work_dir;

pub use config_token::TraceConfig;
pub use error::HostBackendError;
pub use probe::{RuntimeTraceProbe, TraceError, PROBE_NAME};
pub use settings::{Backend, OnBuilt, RunId, RunLimits, TraceSettings};
pub use slice::RuntimeTraceSlice;
