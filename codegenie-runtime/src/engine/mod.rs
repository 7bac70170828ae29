//! The container engine (`docker`, or `podman`), driven through the exec
//! layer, one file per resource (docs/architecture.md, "Container flow"):
//!
//! - `client`: the CLI, its endpoint, one command and its answer;
//! - `api`: the engine's HTTP API, one client per engine, for the calls a
//!   scenario makes many of;
//! - `options`, `error`: what the engine is asked, what can go wrong;
//! - `build`, `resolver`, `build_memo`, [`context`]: image builds, the
//!   run's one build as the `image-digest` token, remembered builds, the
//!   build context;
//! - `config`, `images`, `filesystem`, `tools`, `storage`: image config,
//!   listing and pruning, export and import, the tool image, the storage
//!   driver;
//! - `container`, `writable`, `rootfs`: the container lifecycle, its
//!   writes, and its files read on this machine while it runs;
//! - `runs`, `orphans`: everything a run made, and what killed runs left;
//! - `creations`: the containers and volumes being made, closed when a run
//!   is interrupted.

mod api;
mod attached;
mod build;
mod build_memo;
mod client;
mod config;
mod container;
pub mod context;
mod creations;
mod endpoint;
mod error;
mod filesystem;
mod images;
mod options;
pub(crate) mod orphans;
mod resolver;
mod rootfs;
mod runs;
mod storage;
mod tools;
mod volumes;
mod writable;

use std::time::Duration;

pub use attached::{Attached, StartedApp};
pub use client::Engine;
pub use config::ImageConfig;
pub use context::BuildContextError;
pub use creations::close_creations;
pub use endpoint::{ContextName, DockerHost, EndpointError, EngineEndpoint};
pub use error::EngineError;
pub use filesystem::TRANSFER_TIMEOUT;
pub use images::{ImagePruneReport, RepositoryImage, REPOSITORY_LABEL, TRACE_IMAGES};
pub use options::{
    BuildNetwork, BuildOptions, CappedCopy, CreateOptions, EngineKind, VolumeMount, KEEP_IMAGES,
};
pub use resolver::BuildDigestResolver;
pub use rootfs::ContainerRoot;
pub use runs::{RunRemoval, Swept};
pub use tools::TOOLS_REPOSITORY;
pub use volumes::{
    ToolFill, TraceRead, TraceVolume, TraceVolumeError, TOOLS_VOLUME_PREFIX, TRACE_VOLUME_PREFIX,
};
pub use writable::{host_folder_size, make_folder_in_upper, WritableLayer};

/// The label put on everything a run creates: `codegenie.run=<run id>`.
pub const RUN_LABEL: &str = "codegenie.run";

/// Whether the run label `label` is `run`'s or one of its parts'
/// (`<run>.<part>`, at any depth): `cli-1` covers `cli-1` and
/// `cli-1.verify-minimal`, never `cli-12`.
pub fn run_covers(run: &str, label: &str) -> bool {
    label
        .strip_prefix(run)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// How long an image build may take.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a short engine command (create, cp, rm, inspect) may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Bytes of build log kept for `ImageBuildFailed.log_tail`.
pub const LOG_TAIL_BYTES: usize = 4096;
