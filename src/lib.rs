//! # codegenie
//!
//! Hard evidence about a code repository. Probes declare what they read; the
//! coordinator runs them (light first, heavy next, `runs_last` last), reuses
//! cached outputs while declared inputs are unchanged, and the writer puts the
//! redacted results under `.codegenie/context/`.
//!
//! ## Writing a probe
//!
//! ```
//! use codegenie::prelude::*;
//!
//! /// Counts the Rust files of a repository.
//! #[derive(Default)]
//! pub struct RustFilesProbe;
//!
//! #[register_probe(heaviness = "light", runs_last = false)]
//! impl Probe for RustFilesProbe {
//!     fn declared_inputs(&self) -> &'static [DeclaredInput] {
//!         declared_inputs!["**/*.rs", "Cargo.toml"]
//!     }
//!
//!     async fn run(&self, repo: &RepoSnapshot, _ctx: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
//!         let found = repo.has_file("Cargo.toml");
//!         Ok(ProbeOutput::new(serde_json::json!({ "cargo_manifest": found }), Confidence::High))
//!     }
//! }
//!
//! let registry = codegenie::Registry::load().unwrap();
//! assert!(registry.get("rust_files").is_some());
//! ```
//!
//! A binary that links your probes and calls [`cli::main`] is a complete
//! `codegenie` CLI with them registered.
#![warn(missing_docs)]

pub use codegenie_runtime::*;

pub mod cli;
