//! strace C-string literals: decoding escapes to bytes, and rendering bytes as
//! UTF-8 with each invalid byte written `\xHH` (like Python's `backslashreplace`).

/// Decodes the content of a C literal (without its quotes) into `out`
/// (appended). Unknown escapes keep the escaped character, as C does; a
/// trailing lone backslash is kept.
pub(crate) fn unescape_into(lit: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < lit.len() {
        let Some(off) = memchr::memchr(b'\\', &lit[i..]) else {
            out.extend_from_slice(&lit[i..]);
            return;
        };
        out.extend_from_slice(&lit[i..i + off]);
        i += off + 1;
        let Some(&c) = lit.get(i) else {
            out.push(b'\\');
            return;
        };
        i += 1;
        match c {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'v' => out.push(0x0b),
            b'f' => out.push(0x0c),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match lit.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                // `\777` cannot come from strace; keep the low byte rather than fail.
                out.push((v & 0xff) as u8);
            }
            b'x' => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 {
                    match lit.get(i).and_then(|&d| (d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            i += 1;
                            n += 1;
                        }
                        None => break,
                    }
                }
                if n == 0 {
                    out.push(b'x');
                } else {
                    out.push(v as u8);
                }
            }
            other => out.push(other),
        }
    }
}

/// Appends `bytes` to `out` as UTF-8, each invalid byte as `\xHH` (lowercase).
pub(crate) fn render_into(mut bytes: &[u8], out: &mut String) {
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                return;
            }
            Err(e) => {
                let (good, bad) = bytes.split_at(e.valid_up_to());
                // `good` was just validated.
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                let n = e.error_len().unwrap_or(bad.len());
                for b in &bad[..n] {
                    push_hex(*b, out);
                }
                bytes = &bad[n..];
            }
        }
    }
}

fn push_hex(b: u8, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\x");
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 0xf)] as char);
}

/// Decodes a literal's content straight to rendered text, using `scratch`.
pub(crate) fn decode_into(lit: &[u8], scratch: &mut Vec<u8>, out: &mut String) {
    if memchr::memchr(b'\\', lit).is_none() {
        render_into(lit, out);
        return;
    }
    scratch.clear();
    unescape_into(lit, scratch);
    render_into(scratch, out);
}

/// [`leading_literal`], also telling whether the content has an escape
/// (a `\\`): found by the same search, so a plain literal is not searched
/// again to decode it.
pub(crate) fn literal_parts(s: &[u8]) -> Option<(&[u8], &[u8], bool)> {
    let body = s.strip_prefix(b"\"")?;
    match memchr::memchr2(b'"', b'\\', body)? {
        end if body[end] == b'"' => Some((&body[..end], &body[end + 1..], false)),
        _ => leading_literal(s).map(|(lit, rest)| (lit, rest, true)),
    }
}

/// The content of a leading `"..."` literal (strace may follow it with `...`
/// when truncated) and the bytes after its closing quote.
pub(crate) fn leading_literal(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let body = s.strip_prefix(b"\"")?;
    let mut i = 0;
    loop {
        let off = memchr::memchr2(b'"', b'\\', &body[i..])?;
        i += off;
        if body[i] == b'\\' {
            i += 2;
            if i > body.len() {
                return None;
            }
        } else {
            return Some((&body[..i], &body[i + 1..]));
        }
    }
}

/// Decodes the literal at the start of `a` into `out` (cleared first),
/// returning its content as written; `scratch` is a working buffer.
pub(crate) fn literal_into<'a>(
    a: &'a [u8],
    scratch: &mut Vec<u8>,
    out: &mut String,
) -> Option<&'a [u8]> {
    let (lit, _, escaped) = literal_parts(a)?;
    out.clear();
    if escaped {
        decode_into(lit, scratch, out);
    } else {
        render_into(lit, out);
    }
    Some(lit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(lit: &str) -> String {
        let mut s = String::new();
        decode_into(lit.as_bytes(), &mut Vec::new(), &mut s);
        s
    }

    #[test]
    fn every_escape_form_decodes() {
        assert_eq!(
            decode(r#"a\nb\tc\rd\ve\ff\ag\bh"#),
            "a\nb\tc\rd\u{b}e\u{c}f\u{7}g\u{8}h"
        );
        assert_eq!(decode(r#"q\"uote\\back\'s"#), "q\"uote\\back's");
        assert_eq!(decode(r"caf\303\251"), "café");
        assert_eq!(decode(r"caf\xc3\xa9"), "café");
        assert_eq!(decode(r"a\0b\12c\1010"), "a\0b\nc\u{41}0");
        assert_eq!(decode(r"bad\377\376name"), r"bad\xff\xfename");
        assert_eq!(decode(r"a,b\76c\74d"), "a,b>c<d");
        assert_eq!(decode(r"end\"), "end\\");
        assert_eq!(decode(r"\xZ"), "xZ");
    }

    #[test]
    fn invalid_utf8_is_backslash_replaced() {
        let mut s = String::new();
        render_into(b"ok\xe2\x82 \xff\xc3\xa9", &mut s);
        assert_eq!(s, r"ok\xe2\x82 \xffé");
    }

    #[test]
    fn leading_literal_finds_the_closing_quote() {
        assert_eq!(
            leading_literal(br#""a\"b\\", 3"#),
            Some((&br#"a\"b\\"#[..], &b", 3"[..]))
        );
        assert_eq!(
            leading_literal(br#""abc"..., 3"#).map(|x| x.0),
            Some(&b"abc"[..])
        );
        assert_eq!(leading_literal(br#""abc\"#), None);
        assert_eq!(leading_literal(b"NULL"), None);
    }
}
