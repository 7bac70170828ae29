//! The rules that codegenie's proc-macros (compile time) and its runtime
//! (run time) must agree on, kept in one crate that both depend on so that
//! each builds from its own package and the two can never drift.
//!
//! - [`inputs`]: the token table and the rules of one declared-input entry;
//! - [`scenarios`] (feature `scenarios`): the scenario file schema;
//! - [`suggest`]: the workspace's one "did you mean" helper.
//!
//! Probe authors use the `codegenie` crate, which re-exports what they need.
#![forbid(unsafe_code)]

pub mod inputs;
#[cfg(feature = "scenarios")]
pub mod scenarios;
pub mod suggest;
#[cfg(feature = "scenarios")]
mod yaml_guard;
