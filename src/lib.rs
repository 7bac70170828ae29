#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub use codegenie_runtime::*;

pub mod cli;
