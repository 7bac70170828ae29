//! Stripping the pid prefix (`N ` with `-o`, `[pid N] ` on stderr) and the
//! timestamp (`-t`, `-tt`, `-ttt`, `-r`) from a trace line.

/// A line split into its pid (when prefixed) and the rest.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Head<'a> {
    /// The pid prefix, absent on stderr output while a single process is traced.
    pub pid: Option<u32>,
    /// What follows the prefix and timestamp.
    pub body: &'a [u8],
}

/// Splits off the pid prefix and timestamp. `None` when a prefix or a
/// timestamp starts but is malformed.
pub(crate) fn split_head(line: &[u8]) -> Option<Head<'_>> {
    let mut rest = line.strip_suffix(b"\r").unwrap_or(line);
    let mut pid = None;
    if let Some(after) = rest.strip_prefix(b"[pid ") {
        let after = skip_spaces(after);
        let (n, after) = digits(after)?;
        let after = after.strip_prefix(b"]")?;
        pid = Some(parse_u32(n)?);
        rest = after;
    } else if rest.first().is_some_and(u8::is_ascii_digit) {
        let (n, after) = digits(rest)?;
        // `N ` is a pid; `N:`/`N.` starts a timestamp of an unprefixed line.
        if after.first() == Some(&b' ') {
            pid = Some(parse_u32(n)?);
            rest = after;
        }
    }
    rest = skip_spaces(rest);
    if rest.first().is_some_and(u8::is_ascii_digit) {
        rest = skip_timestamp(rest)?;
    }
    Some(Head { pid, body: rest })
}

/// `10:11:12`, `10:11:12.123456`, `1700000000.123456`, `0.000123`, then spaces.
fn skip_timestamp(s: &[u8]) -> Option<&[u8]> {
    let (_, mut s) = digits(s)?;
    let mut colons = 0;
    while let Some(after) = s.strip_prefix(b":") {
        let (_, after) = digits(after)?;
        s = after;
        colons += 1;
    }
    if colons != 0 && colons != 2 {
        return None;
    }
    if let Some(after) = s.strip_prefix(b".") {
        let (_, after) = digits(after)?;
        s = after;
    }
    if s.first() != Some(&b' ') {
        return None;
    }
    Some(skip_spaces(s))
}

fn skip_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    &s[n..]
}

/// A non-empty run of ASCII digits and what follows it.
fn digits(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
    (n > 0).then(|| s.split_at(n))
}

pub(crate) fn parse_u32(d: &[u8]) -> Option<u32> {
    if d.is_empty() || d.len() > 10 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in d {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    u32::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(l: &str) -> Option<(Option<u32>, String)> {
        split_head(l.as_bytes()).map(|h| (h.pid, String::from_utf8_lossy(h.body).into_owned()))
    }

    #[test]
    fn every_prefix_and_timestamp_form_is_stripped() {
        let cases = [
            ("9270  execve(x) = 0", Some(9270)),
            ("[pid 15449] execve(x) = 0", Some(15449)),
            ("[pid  449] execve(x) = 0", Some(449)),
            ("execve(x) = 0", None),
            ("09:10:16 execve(x) = 0", None),
            ("09:10:16.491928 execve(x) = 0", None),
            ("1700000000.491928 execve(x) = 0", None),
            ("     0.000123 execve(x) = 0", None),
            ("9270  09:10:16.491928 execve(x) = 0", Some(9270)),
            ("9270  1700000000.491928 execve(x) = 0", Some(9270)),
            ("9270       0.000123 execve(x) = 0", Some(9270)),
            ("[pid 15449] 09:10:16.498611 execve(x) = 0", Some(15449)),
            ("[pid 15449] 09:10:16 execve(x) = 0\r", Some(15449)),
        ];
        for (line, pid) in cases {
            assert_eq!(
                head(line),
                Some((pid, "execve(x) = 0".to_owned())),
                "{line}"
            );
        }
    }

    #[test]
    fn malformed_prefixes_are_rejected() {
        for line in [
            "[pid x] a()",
            "[pid 12 a()",
            "12:30 a()",
            "1.2.3 a()",
            "99999999999 a()",
        ] {
            assert_eq!(head(line), None, "{line}");
        }
    }
}
