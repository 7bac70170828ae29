//! Fuzz the streaming strace parser: any bytes, with and without the
//! interpreters context, must parse without a panic, and the results must
//! serialise.
#![no_main]

use std::collections::BTreeMap;

use codegenie_runtime::strace::{parse_trace, ParseOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let plain = parse_trace(data, &ParseOptions::default()).expect("a slice reader never fails");
    serde_json::to_string(&plain.trace).expect("facts serialise");
    // Scripts run by the fixtures' shell: exercises the interpreter paths.
    let opts = ParseOptions {
        interpreters: BTreeMap::from([
            ("/app/start.sh".to_owned(), "/bin/sh".to_owned()),
            ("/bin/busybox".to_owned(), "/lib/ld.so".to_owned()),
        ]),
    };
    let with = parse_trace(data, &opts).expect("a slice reader never fails");
    serde_json::to_string(&with.trace).expect("facts serialise");
});
