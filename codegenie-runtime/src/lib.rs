//! The codegenie runtime: the probe contract and registry, declared inputs
//! and the content-addressed cache, the coordinator, the exec layer and the
//! container engine, the strace parser, the runtime-trace probe, secret
//! redaction and the writer.
//!
//! Probe authors use the `codegenie` crate, which re-exports the part of
//! this crate they need. The layers, bottom to top, and what each may use,
//! are in `docs/architecture.md` ("Layers"): a module never imports from a
//! module above it.

// Generated code names the runtime `::codegenie::__private`; this lets the
// runtime register its own probes with the same macros.
extern crate self as codegenie;

// Foundations: no other module of this crate.
mod atomic_file;
mod cancel;
pub mod dockerfile;
mod errors;
mod interp;
mod procfs;
pub mod redact;
pub mod state_dir;
pub mod strace;
mod tar_head;

// Processes and the engine.
pub mod engine;
pub mod exec;

// The probe contract and what builds on it.
pub mod cache;
mod coordinator;
pub mod inputs;
pub mod minimal;
mod probe;
mod record;
mod registry;
pub mod runtime_trace;
pub mod writer;

// One run of probes on one repository, for every caller.
pub mod pipeline;

// Many repositories over many engines, above single runs.
pub mod portfolio;

// CI reports of all of the above.
pub mod ci_report;

pub use cache::{CacheError, ContentCache, ProbeCache};
pub use cancel::CancelToken;
pub use codegenie_macros::{declared_inputs, register_probe};
pub use coordinator::{Coordinator, CoordinatorError, GatherOptions};
pub use errors::error_chain;
pub use inputs::{parse_declared_input, CacheKeyError, DeclaredInput, TokenKind};
pub use probe::run_blocking_work;
pub use probe::{
    Artifact, ArtifactSource, BoxProbeFuture, CacheStrategy, Confidence, DynProbe, Heaviness,
    ImageDigestResolver, Probe, ProbeContext, ProbeError, ProbeOutput, ProbeSettings,
    ProgressEvent, ProgressSink, RepoSnapshot, ResolverError, TokenNotRequested,
    TraceConfigResolver, DEFAULT_TIMEOUT,
};
pub use record::{GatherReport, ProbeRecord, ProbeStatus};
pub use registry::{ProbeRegistration, Registry, RegistryError};

/// What probe authors need: `use codegenie::prelude::*;`.
pub mod prelude {
    pub use crate::{
        declared_inputs, register_probe, Artifact, ArtifactSource, CacheStrategy, Confidence,
        DeclaredInput, Heaviness, Probe, ProbeContext, ProbeError, ProbeOutput, RepoSnapshot,
    };
}

/// Items the macros' generated code uses. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::inputs::{DeclaredInput, TokenKind};
    pub use crate::probe::{DynProbe, Heaviness, Probe, RegisteredProbe};
    pub use crate::registry::{ProbeRegistration, PROBES};
    pub use linkme;
}
