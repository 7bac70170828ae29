//! Any bytes, read through a small buffer so lines straddle refills: the
//! parser must return (never panic), and agree with a whole-buffer read.
#![no_main]

use codegenie_runtime::strace::{parse_trace, ParseOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = ParseOptions::default();
    let whole = parse_trace(data, &opts).expect("reading a slice cannot fail");
    let small = parse_trace(std::io::BufReader::with_capacity(7, data), &opts)
        .expect("reading a slice cannot fail");
    assert_eq!(whole, small);
});
