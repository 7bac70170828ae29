#![doc = include_str!("../README.md")]

// The public face of codegenie: what a probe author or an embedder needs,
// re-exported from the runtime. Everything else stays in `codegenie-runtime`.

pub use codegenie_runtime::prelude;
pub use codegenie_runtime::{declared_inputs, register_probe};

// The probe contract.
pub use codegenie_runtime::run_blocking_work;
pub use codegenie_runtime::{
    parse_declared_input, Artifact, ArtifactSource, BoxProbeFuture, CacheKeyError, CacheStrategy,
    CancelToken, Confidence, DeclaredInput, DynProbe, Heaviness, ImageDigestResolver, Probe,
    ProbeContext, ProbeError, ProbeOutput, ProbeSettings, ProgressEvent, ProgressSink,
    RepoSnapshot, ResolverError, TokenKind, TokenNotRequested, TraceConfigResolver,
    DEFAULT_TIMEOUT,
};

// Running probes: the registry, the coordinator and its cache, the writer.
pub use codegenie_runtime::writer::{WriteError, Writer, Written};
pub use codegenie_runtime::{
    error_chain, CacheError, ContentCache, Coordinator, CoordinatorError, GatherOptions,
    GatherReport, ProbeCache, ProbeRecord, ProbeRegistration, ProbeStatus, Registry, RegistryError,
};

/// The pure, streaming strace parser: `strace -f` text in, facts out.
pub mod strace {
    pub use codegenie_runtime::strace::{
        parse_trace, parse_trace_with_lookup, ExitStatus, NetworkEndpoints, ParseOptions,
        ParsedTrace, TraceFacts,
    };
}

/// The runtime-trace probe: its settings, its slice and scenario results.
pub mod runtime_trace {
    pub use codegenie_runtime::runtime_trace::results::{
        PhasesMs, ScenarioOutcome, ScenarioReason, ScenarioResult,
    };
    pub use codegenie_runtime::runtime_trace::scenarios::{parse_scenarios, ScenarioFile};
    pub use codegenie_runtime::runtime_trace::{
        Backend, RunId, RunLimits, RuntimeTraceProbe, RuntimeTraceSlice, TraceConfig, TraceError,
        TraceSettings, PROBE_NAME,
    };
}

#[doc(hidden)]
pub use codegenie_runtime::__private;

pub mod cli;
