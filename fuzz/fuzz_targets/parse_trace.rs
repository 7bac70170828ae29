//! Fuzz the streaming strace parser. Any bytes must parse without a panic:
//! read whole and through a 7-byte buffer (lines straddle refills) with the
//! same result, with and without interpreters (given up front or looked up
//! lazily, which must agree), and the facts must serialise.
#![no_main]

use std::collections::BTreeMap;

use codegenie_runtime::strace::{parse_trace, parse_trace_with_lookup, ParseOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let plain = parse_trace(data, &ParseOptions::default()).expect("a slice reader never fails");
    let small = parse_trace(std::io::BufReader::with_capacity(7, data), &ParseOptions::default())
        .expect("a slice reader never fails");
    assert_eq!(plain, small);
    serde_json::to_string(&plain.trace).expect("facts serialise");

    let map = BTreeMap::from([
        ("/app/start.sh".to_owned(), "/bin/sh".to_owned()),
        ("/bin/sh".to_owned(), "/lib/ld.so".to_owned()),
    ]);
    let given = parse_trace(data, &ParseOptions { interpreters: map.clone(), ..Default::default() })
        .expect("a slice reader never fails");
    let mut lookup = |p: &str| map.get(p).cloned();
    let (lazy, _) = parse_trace_with_lookup(data, &ParseOptions::default(), &mut lookup)
        .expect("a slice reader never fails");
    assert_eq!(given.trace, lazy.trace);
    serde_json::to_string(&given.trace).expect("facts serialise");
});
