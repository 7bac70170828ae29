//! What a trace line tells while the trace is still being written: the
//! program a successful `execve` ran, when named by an absolute path, so
//! that its interpreter can be asked of the container before it stops
//! (docs/architecture.md, "Container flow"). The parse proper still reads
//! every line afterwards; this only lets an answer be ready when it asks.

use super::call::{call_name, parse_call_named};
use super::paths::normalize_in_place;
use super::prefix::split_head;
use super::rules::is_self_exe;
use super::unescape::{decode_into, leading_literal};

/// The absolute path (normalised as the parse normalises it) that the
/// finished, successful `execve` on `line` ran; `None` for any other line,
/// an unfinished or failed call, a relative or truncated name, and
/// `/proc/self/exe`.
pub(crate) fn absolute_exec(line: &[u8]) -> Option<String> {
    let head = split_head(line)?;
    let name = call_name(head.body)?;
    if name != b"execve" {
        return None;
    }
    let call = parse_call_named(head.body, name.len())?;
    if call.ret.value != Some(0) {
        return None;
    }
    let (lit, rest) = leading_literal(call.arg(0)?)?;
    if !rest.is_empty() {
        // `"..."...`: strace cut the name.
        return None;
    }
    let mut path = String::new();
    decode_into(lit, &mut Vec::new(), &mut path);
    if !path.starts_with('/') {
        return None;
    }
    normalize_in_place(&mut path, &mut String::new());
    (!is_self_exe(&path)).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_successful_exec_by_absolute_path_names_its_program() {
        let l = br#"12 execve("/usr/bin/node", ["node", "-e", "x"], 0x7ffd /* 5 vars */) = 0"#;
        assert_eq!(absolute_exec(l).as_deref(), Some("/usr/bin/node"));
        let l = br#"[pid 7] 10:11:12.123 execve("/usr//lib/../bin/env", ["env"], 0x1 /* 0 vars */) = 0"#;
        assert_eq!(absolute_exec(l).as_deref(), Some("/usr/bin/env"));
    }

    #[test]
    fn any_other_line_names_nothing() {
        for l in [
            // Failed, unfinished, resumed, relative, cut, self, another call.
            &br#"12 execve("/usr/local/bin/node", ["node"], 0x1 /* 0 vars */) = -1 ENOENT (No such file or directory)"#[..],
            br#"12 execve("/usr/bin/node", ["node"], 0x1 /* 0 vars */ <unfinished ...>"#,
            br#"12 <... execve resumed>) = 0"#,
            br#"12 execve("./run.sh", ["./run.sh"], 0x1 /* 0 vars */) = 0"#,
            br#"12 execve("/very/long"..., ["x"], 0x1 /* 0 vars */) = 0"#,
            br#"12 execve("/proc/self/exe", ["x"], 0x1 /* 0 vars */) = 0"#,
            br#"12 execveat(3</usr/bin>, "node", ["node"], 0x1 /* 0 vars */, 0) = 0"#,
            br#"12 openat(AT_FDCWD</>, "/etc/passwd", O_RDONLY) = 3</etc/passwd>"#,
            b"",
            b"\xff\xfe garbage (",
        ] {
            assert_eq!(absolute_exec(l), None, "{}", String::from_utf8_lossy(l));
        }
    }

    proptest::proptest! {
        /// Total: any bytes, with or without an exec's shape, give an
        /// answer and no panic; an answer is absolute and normalised.
        #[test]
        fn any_line_gives_an_answer(
            head in "[0-9]{0,6} ?(execve\\(\")?",
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..96),
        ) {
            let mut line = head.into_bytes();
            line.extend(tail);
            if let Some(p) = absolute_exec(&line) {
                proptest::prop_assert!(p.starts_with('/'));
                proptest::prop_assert!(!p.contains("//") && !p.contains("/./"));
            }
        }
    }
}
