//! What the engine is asked to do and what it answers in kind: which CLI,
//! how an image is built, how a scenario container is created, what a
//! capped copy kept. Shared by the CLI path and the API client.

use std::time::Duration;

use super::BUILD_TIMEOUT;

/// How many images of each kind a run keeps per repository unless told
/// otherwise: the one it used and two before it, enough to go back one
/// edit without a rebuild.
pub const KEEP_IMAGES: usize = 3;

/// Which engine CLI to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineKind {
    /// `docker`
    #[default]
    Docker,
    /// `podman`
    Podman,
}

impl EngineKind {
    /// Parse a setting value (`docker` or `podman`).
    pub fn parse(s: &str) -> Option<EngineKind> {
        match s {
            "docker" => Some(EngineKind::Docker),
            "podman" => Some(EngineKind::Podman),
            _ => None,
        }
    }
}

/// The network `RUN` steps of an image build get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BuildNetwork {
    /// The engine's default (bridge): `RUN npm ci` can fetch packages, and
    /// the repository's build steps can reach anything this machine can.
    #[default]
    Default,
    /// No network (`--network none`): build steps cannot reach anything.
    None,
}

/// How an image is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// Past this the build client is killed (the engine cancels the build).
    pub timeout: Duration,
    /// The network of `RUN` steps.
    pub network: BuildNetwork,
    /// Trace images of the repository kept after a build (the built one
    /// included; at least 1): older ones codegenie tagged are removed
    /// (docs/architecture.md, "Image hygiene").
    pub keep_images: usize,
    /// Whether a resolver may answer from remembered builds instead of
    /// building (docs/architecture.md, "Remembered builds"); off with
    /// `--no-cache`, which neither reads nor writes any cache.
    pub remember: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            timeout: BUILD_TIMEOUT,
            network: BuildNetwork::Default,
            keep_images: KEEP_IMAGES,
            remember: true,
        }
    }
}

/// How a scenario container is created (the hardening of docs/architecture.md, "Container flow", is fixed).
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The image (digest).
    pub image: String,
    /// Value of the run label.
    pub run_id: String,
    /// The entrypoint override (the bundled loader).
    pub entrypoint: String,
    /// The arguments after the entrypoint.
    pub args: Vec<String>,
    /// `--pids-limit`.
    pub pids_limit: u32,
    /// `--memory`.
    pub memory: String,
    /// `--cpus`.
    pub cpus: String,
    /// Paths mounted as tmpfs of a size in bytes (`--tmpfs PATH:size=N`).
    pub tmpfs: Vec<(String, u64)>,
    /// Named volumes mounted in it (`--mount type=volume,...`): the run's
    /// tool volume, read-only in scenario containers.
    pub mounts: Vec<VolumeMount>,
}

/// A named volume mounted in a container; never filled from the image
/// (`volume-nocopy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    /// The volume's name.
    pub volume: String,
    /// Where it is mounted.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
}

impl VolumeMount {
    /// The `--mount` value the engine CLI takes.
    pub(crate) fn cli_value(&self) -> String {
        let mut v = format!(
            "type=volume,src={},dst={},volume-nocopy",
            self.volume, self.target
        );
        if self.read_only {
            v.push_str(",readonly");
        }
        v
    }
}

/// What a capped copy out of a container kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CappedCopy<T> {
    /// What was kept (nothing more for a copy to a file).
    pub kept: T,
    /// The file's full size in the container.
    pub size: u64,
    /// The bytes kept.
    pub written: u64,
}

impl<T> CappedCopy<T> {
    /// Whether the file was longer than the cap.
    pub fn truncated(&self) -> bool {
        self.written < self.size
    }
}
