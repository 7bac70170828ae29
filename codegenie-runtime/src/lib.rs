//! codegenie runtime: the probe contract and registry, declared inputs and the
//! content-addressed cache, the coordinator, the exec layer, the strace parser
//! and aggregator, the runtime-trace probe, secret redaction and the writer.
#![warn(missing_docs)]

// Generated code names the runtime `::codegenie::__private`; this lets the
// runtime register its own probes with the same macros.
extern crate self as codegenie;

pub mod cache;
pub mod coordinator;
pub mod exec;
pub mod inputs;
pub mod probe;
pub mod redact;
pub mod registry;
pub mod runtime_trace;
pub mod strace;
pub mod writer;

pub use cache::ContentCache;
pub use codegenie_macros::{declared_inputs, register_probe};
pub use coordinator::{Coordinator, GatherOptions, GatherReport, ProbeRecord, ProbeStatus};
pub use inputs::{parse_declared_input, CacheKeyError, DeclaredInput, TokenKind};
pub use probe::{
    Artifact, ArtifactSource, CacheStrategy, Confidence, DynProbe, Heaviness, ImageDigestResolver,
    Probe, ProbeContext, ProbeError, ProbeOutput, RepoSnapshot, ResolverError,
};
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
