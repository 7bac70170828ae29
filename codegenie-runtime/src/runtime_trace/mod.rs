//! The runtime-trace probe: build the image, run scenarios under strace in
//! hardened containers (or on the host), and report the evidence.

pub mod agent;
pub mod bundle;
pub mod container;
pub mod engine;
pub mod host;
pub mod interp;
pub mod model;
pub mod probe;
pub mod scenarios;
pub mod sequence;
pub mod settings;
pub mod slice;
pub mod steps;
