//! Property tests: literal decoding, unfinished/resumed joining, and no input panics.

use codegenie::strace::{parse_trace, ParseOptions};
use codegenie_runtime::strace::literal::{render, unescape};
use proptest::prelude::*;

/// Escapes bytes the way strace prints them (`\n`, `\"`, octal for the rest).
fn strace_escape(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        match b {
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            // Three digits, as strace writes them before a digit.
            _ => s.push_str(&format!("\\{b:03o}")),
        }
    }
    s
}

/// Undoes `render`'s `\xHH` (the input has no backslashes of its own).
fn unrender(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

proptest! {
    #[test]
    fn unescape_inverts_strace_escaping(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        prop_assert_eq!(unescape(strace_escape(&bytes).as_bytes()), bytes);
    }

    #[test]
    fn hex_escapes_decode_too(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let lit: String = bytes.iter().map(|b| format!("\\x{b:02x}")).collect();
        prop_assert_eq!(unescape(lit.as_bytes()), bytes);
    }

    #[test]
    fn render_is_identity_on_utf8_and_reversible_otherwise(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let bytes: Vec<u8> = bytes.into_iter().filter(|&b| b != b'\\').collect();
        let r = render(&bytes);
        if let Ok(s) = std::str::from_utf8(&bytes) {
            prop_assert_eq!(&r, s);
        }
        prop_assert_eq!(unrender(&r), bytes);
    }

    /// Splitting calls into `<unfinished ...>` / `<... resumed>` halves at any
    /// argument boundary and interleaving other pids' lines changes nothing.
    #[test]
    fn joining_restores_split_calls(
        names in proptest::collection::vec("[a-z]{1,6}", 1..8),
        splits in proptest::collection::vec(0usize..4, 8),
        order in proptest::collection::vec(any::<bool>(), 8),
    ) {
        let calls: Vec<(u32, String)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    100 + (i as u32 % 3),
                    format!("openat(AT_FDCWD</d>, \"{n}{i}\", O_RDWR|O_CREAT, 0600) = {}</d/{n}{i}>", i + 3),
                )
            })
            .collect();
        let whole: String = calls.iter().map(|(p, c)| format!("{p} {c}\n")).collect();
        let mut split = String::new();
        let mut pending: Vec<String> = Vec::new();
        for (i, (pid, call)) in calls.iter().enumerate() {
            let cuts: Vec<usize> = call.match_indices(", ").map(|(j, _)| j).collect();
            let cut = cuts[splits[i] % cuts.len()];
            let (head, tail) = call.split_at(cut);
            split.push_str(&format!("{pid} {head} <unfinished ...>\n"));
            let resumed = format!("{pid} <... openat resumed>{tail}\n");
            // Resume now or after the next pid's call; a pid never has two pending.
            if order[i] && pending.is_empty() && calls.get(i + 1).is_some_and(|(p, _)| p != pid) {
                pending.push(resumed);
            } else {
                split.push_str(&resumed);
                split.extend(pending.drain(..));
            }
        }
        split.extend(pending.drain(..));
        let a = parse_trace(whole.as_bytes(), &ParseOptions::default()).unwrap();
        let b = parse_trace(split.as_bytes(), &ParseOptions::default()).unwrap();
        prop_assert_eq!(b.malformed_lines, 0);
        prop_assert_eq!(a.trace, b.trace);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_trace(&bytes[..], &ParseOptions::default()).unwrap();
    }

    #[test]
    fn mutated_real_lines_never_panic(cut in 0usize..400, junk in proptest::collection::vec(any::<u8>(), 0..8)) {
        let base = concat!(
            "12  10:00:00.000001 openat(AT_FDCWD</a>, \"x\\303\", O_RDONLY|O_CLOEXEC) = 3</a/x>\n",
            "[pid 13] execve(\"/proc/self/exe\", [\"sh\", \"-c\"], 0x1 /* 3 vars */ <unfinished ...>\n",
            "[pid 13] <... execve resumed>) = 0\n",
            "12 connect(3<TCP:[1->2]>, {sa_family=AF_INET6, sin6_port=htons(1), inet_pton(AF_INET6, \"::1\", &sin6_addr)}, 28) = 0\n",
            "12 mmap(NULL, 1, PROT_EXEC, MAP_PRIVATE, 3</l\\x>, 0) = 0x1\n",
            "12 +++ killed by SIGKILL (core dumped) +++\n",
        ).as_bytes();
        let cut = cut.min(base.len());
        let mut input = base[..cut].to_vec();
        input.extend_from_slice(&junk);
        input.extend_from_slice(&base[cut..]);
        let _ = parse_trace(&input[..], &ParseOptions::default()).unwrap();
    }
}
