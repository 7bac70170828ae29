//! Property tests: literal decoding, unfinished/resumed joining, lexical
//! path normalisation, paths as opened, and no input panics.

use codegenie::strace::{parse_trace, ParseOptions};
use codegenie_runtime::strace::literal::{render, unescape};
use codegenie_runtime::strace::paths::{join, normalize};
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

/// The components a lexical walk keeps: `.` and empty ones dropped, `..`
/// popping a kept name (at the root it is dropped, on a relative path with
/// nothing to pop it is kept).
fn model(path: &str) -> (bool, Vec<&str>) {
    let absolute = path.starts_with('/');
    let mut stack: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => match stack.last() {
                Some(&last) if last != ".." => {
                    stack.pop();
                }
                _ if absolute => {}
                _ => stack.push(".."),
            },
            c => stack.push(c),
        }
    }
    (absolute, stack)
}

/// Path-like text: names, `.`, `..` and runs of `/`, plus a few odd bytes.
fn path_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("/".to_owned()),
            Just("//".to_owned()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            "[a-z]{1,3}",
            "[\\\\é\\n\\\\x.-]{1,3}",
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn normalisation_is_idempotent_and_canonical(p in path_text()) {
        let n = normalize(&p);
        prop_assert_eq!(normalize(&n), n.clone());
        prop_assert_eq!(n.starts_with('/'), p.starts_with('/'));
        prop_assert!(!n.contains("//"), "{}", n);
        prop_assert!(n == "/" || n == "." || !n.ends_with('/'), "{}", n);
        let comps: Vec<&str> = n.split('/').filter(|c| !c.is_empty()).collect();
        // `.` only as the whole of an empty relative path.
        prop_assert!(n == "." || !comps.contains(&"."), "{}", n);
        if n.starts_with('/') {
            prop_assert!(!comps.contains(&".."), "no `..` above the root: {}", n);
        } else {
            // `..` only as a leading run of a relative path.
            let names = comps.iter().skip_while(|c| **c == "..");
            prop_assert!(names.clone().all(|c| *c != ".."), "{}", n);
        }
    }

    #[test]
    fn normalisation_matches_a_component_walk(p in path_text()) {
        let (absolute, stack) = model(&p);
        let want = match (absolute, stack.is_empty()) {
            (true, _) => format!("/{}", stack.join("/")),
            (false, true) => ".".to_owned(),
            (false, false) => stack.join("/"),
        };
        prop_assert_eq!(normalize(&p), want);
    }

    #[test]
    fn normalisation_never_panics(p in any::<String>()) {
        let n = normalize(&p);
        prop_assert_eq!(normalize(&n), n);
    }

    #[test]
    fn joining_is_normalising_the_concatenation(dir in path_text(), rel in path_text()) {
        let dir = format!("/{dir}");
        let j = join(&dir, &rel);
        prop_assert!(j.starts_with('/'));
        if rel.starts_with('/') {
            prop_assert_eq!(j, normalize(&rel));
        } else {
            prop_assert_eq!(j, normalize(&format!("{dir}/{rel}")));
        }
    }

    /// Whatever name an app opens or probes relative to a decorated cwd,
    /// the fact is absolute and normalised, and the resolved name is kept
    /// beside it only when it differs.
    #[test]
    fn opened_and_probed_names_are_absolute_and_normalised(
        cwd in "/[a-z]{1,3}(/[a-z]{1,3}){0,2}",
        rel in path_text(),
    ) {
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let want = join(&cwd, &rel);
        let trace = format!(
            "1 openat(AT_FDCWD<{cwd}>, \"{r}\", O_RDONLY) = 3</resolved/x>\n\
             1 newfstatat(AT_FDCWD<{cwd}>, \"{r}\", {{st_mode=S_IFREG|0644, ...}}, 0) = 0\n\
             1 access(\"{r}\", F_OK) = 0\n",
            r = esc(&rel),
        );
        let f = parse_trace(trace.as_bytes(), &ParseOptions::default()).unwrap();
        prop_assert_eq!(f.malformed_lines, 0);
        let excluded = ["/proc", "/sys", "/dev"]
            .iter()
            .any(|p| want == *p || want.starts_with(&format!("{p}/")));
        for p in f.trace.files_read.iter().chain(&f.trace.paths_probed) {
            prop_assert_eq!(p, &want);
        }
        if rel.is_empty() {
            // `""` opens nothing and probes nothing (AT_EMPTY_PATH).
            prop_assert!(f.trace.paths_probed.len() <= 1);
        } else if !excluded {
            prop_assert!(f.trace.paths_probed.contains(&want));
            prop_assert!(f.trace.files_read.contains(&want));
            let pair = f.trace.resolved.get(&want).map(String::as_str);
            prop_assert_eq!(pair, (want != "/resolved/x").then_some("/resolved/x"));
        }
    }

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
    fn mutated_real_lines_never_panic(cut in 0usize..700, junk in proptest::collection::vec(any::<u8>(), 0..8)) {
        let base = concat!(
            "12  10:00:00.000001 openat(AT_FDCWD</a>, \"x\\303\", O_RDONLY|O_CLOEXEC) = 3</a/x>\n",
            "[pid 13] execve(\"/proc/self/exe\", [\"sh\", \"-c\"], 0x1 /* 3 vars */ <unfinished ...>\n",
            "[pid 13] <... execve resumed>) = 0\n",
            "12 connect(3<TCP:[1->2]>, {sa_family=AF_INET6, sin6_port=htons(1), inet_pton(AF_INET6, \"::1\", &sin6_addr)}, 28) = 0\n",
            "12 mmap(NULL, 1, PROT_EXEC, MAP_PRIVATE, 3</l\\x>, 0) = 0x1\n",
            "13 execve(\"../b/./x\", [\"x\"], 0x1 /* 1 var */) = 0\n",
            "13 readlink(\"/proc/self/exe\", \"/usr/bin/x\"..., 4096) = 10\n",
            "13 statx(AT_FDCWD</w/..>, \"a//b\", AT_STATX_SYNC_AS_STAT, STATX_ALL, {stx_mask=0}) = 0\n",
            "13 newfstatat(3</e>, \"\", {st_mode=S_IFREG}, AT_EMPTY_PATH) = 0\n",
            "12 +++ killed by SIGKILL (core dumped) +++\n",
        ).as_bytes();
        let cut = cut.min(base.len());
        let mut input = base[..cut].to_vec();
        input.extend_from_slice(&junk);
        input.extend_from_slice(&base[cut..]);
        let _ = parse_trace(&input[..], &ParseOptions::default()).unwrap();
    }
}
