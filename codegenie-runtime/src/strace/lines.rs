//! Splitting a byte stream into lines without copying, with a bound on line length.

use std::io::{self, BufRead};

/// Longest line kept; longer ones are reported as overlong and skipped, so
/// memory never grows with a pathological line.
pub(crate) const MAX_LINE: usize = 4 << 20;

/// A line handed to the consumer.
pub(crate) enum Line<'a> {
    /// A complete line without its `\n`.
    Text(&'a [u8]),
    /// A line longer than [`MAX_LINE`], dropped.
    Overlong,
}

/// Calls `f` for each line of `reader`. Lines inside the reader's buffer are
/// passed without copying; only lines that straddle a buffer refill are
/// assembled in a reused carry buffer.
pub(crate) fn for_each_line<R: BufRead>(
    mut reader: R,
    mut f: impl FnMut(Line<'_>),
) -> io::Result<()> {
    let mut carry: Vec<u8> = Vec::new();
    let mut overlong = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            if overlong {
                f(Line::Overlong);
            } else if !carry.is_empty() {
                f(Line::Text(&carry));
            }
            return Ok(());
        }
        let len = buf.len();
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', buf) {
            if carry.is_empty() && !overlong {
                f(Line::Text(&buf[start..nl]));
            } else {
                if !overlong && carry.len() + (nl - start) > MAX_LINE {
                    overlong = true;
                }
                if overlong {
                    f(Line::Overlong);
                } else {
                    carry.extend_from_slice(&buf[start..nl]);
                    f(Line::Text(&carry));
                }
                carry.clear();
                overlong = false;
            }
            start = nl + 1;
        }
        let rest = &buf[start..];
        if !overlong {
            if carry.len() + rest.len() > MAX_LINE {
                overlong = true;
                carry.clear();
                carry.shrink_to(64 << 10);
            } else {
                carry.extend_from_slice(rest);
            }
        }
        reader.consume(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8], cap: usize) -> Vec<Option<Vec<u8>>> {
        let reader = io::BufReader::with_capacity(cap, input);
        let mut out = Vec::new();
        for_each_line(reader, |l| match l {
            Line::Text(t) => out.push(Some(t.to_vec())),
            Line::Overlong => out.push(None),
        })
        .unwrap();
        out
    }

    #[test]
    fn lines_across_tiny_buffers_are_reassembled() {
        let input = b"first line\nsecond\n\nlast-without-newline";
        for cap in [1, 2, 3, 7, 64] {
            let got = collect(input, cap);
            assert_eq!(
                got,
                vec![
                    Some(b"first line".to_vec()),
                    Some(b"second".to_vec()),
                    Some(b"".to_vec()),
                    Some(b"last-without-newline".to_vec())
                ],
                "capacity {cap}"
            );
        }
    }

    #[test]
    fn overlong_line_is_reported_and_the_next_survives() {
        let mut input = vec![b'a'; MAX_LINE + 10];
        input.extend_from_slice(b"\nok\n");
        let got = collect(&input, 1 << 16);
        assert_eq!(got, vec![None, Some(b"ok".to_vec())]);
    }
}
