//! The runtime-trace probe: build the image, run scenarios under strace in
//! hardened containers (or on the host), and report the evidence.

pub mod model;
pub mod slice;
