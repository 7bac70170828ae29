//! [`ParsedTrace`] as pretty JSON, byte for byte what `serde_json`'s
//! pretty printer writes for it, without going through `serde`.
//!
//! On a walk of 113k files the JSON is a third of the trace's size, and
//! `serde_json` looks up every byte of every string in its escape table: a
//! tenth of `parse-strace`'s instructions, on the thread the parse waits
//! for (docs/architecture.md, "Benchmarks"). Paths almost never need an
//! escape, so each string is checked in one pass of many bytes a step and
//! copied whole. The tests hold the output to `serde_json`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use super::distinct::{merged, merged_text, SortedText};
use super::facts::ParsedTrace;
use super::seen::{PathSet, SETS};

/// Output gathered before each write to the underlying writer.
const CHUNK: usize = 64 << 10;

impl ParsedTrace {
    /// Writes the facts as `serde_json::to_writer_pretty` would (two-space
    /// indent, fields in declaration order, no trailing newline), faster.
    pub fn write_json_pretty(&self, w: &mut dyn Write) -> io::Result<()> {
        write_pretty(self, None, w)
    }
}

/// Writes `t` as [`ParsedTrace::write_json_pretty`] does, its path sets
/// taken from `sorted` (in `PathSet` order; `t`'s own are empty) when
/// given (the union of its parts).
pub(crate) fn write_pretty(
    t: &ParsedTrace,
    sorted: Option<&[[SortedText; SETS]]>,
    w: &mut dyn Write,
) -> io::Result<()> {
    let mut out = Out {
        buf: Vec::with_capacity(CHUNK + 4096),
        w,
    };
    let path_set = |out: &mut Out<'_>, set: &BTreeSet<String>, which: PathSet| match sorted {
        Some(parts) => {
            let [a, rest @ ..] = parts else {
                return out.list(1, 0, std::iter::empty());
            };
            let a = &a[which.index()];
            match rest {
                [] => out.list(1, a.len(), a.iter()),
                // Each thread of a parse filled a part.
                [b] => {
                    let b = &b[which.index()];
                    out.list(1, a.len() + b.len(), merged_text(a, b))
                }
                _ => {
                    let mut len = a.len();
                    let mut union: Box<dyn Iterator<Item = &str>> = Box::new(a.iter());
                    for part in rest {
                        let b = &part[which.index()];
                        len += b.len();
                        union = Box::new(merged(union, b.iter()));
                    }
                    out.list(1, len, union)
                }
            }
        }
        None => out.list(1, set.len(), set.iter().map(String::as_str)),
    };
    out.raw(b"{");
    out.key(1, "binaries_executed", true)?;
    path_set(&mut out, &t.binaries_executed, PathSet::BinariesExecuted)?;
    out.key(1, "shared_libs_loaded", false)?;
    path_set(&mut out, &t.shared_libs_loaded, PathSet::SharedLibsLoaded)?;
    out.key(1, "cert_paths_read", false)?;
    path_set(&mut out, &t.cert_paths_read, PathSet::CertPathsRead)?;
    out.key(1, "files_read", false)?;
    path_set(&mut out, &t.files_read, PathSet::FilesRead)?;
    out.key(1, "files_written", false)?;
    path_set(&mut out, &t.files_written, PathSet::FilesWritten)?;
    out.key(1, "shell_invocations", false)?;
    out.raw(t.shell_invocations.to_string().as_bytes());
    out.key(1, "network_endpoints_touched", false)?;
    out.raw(b"{");
    out.key(2, "outbound", true)?;
    out.set(2, &t.network_endpoints_touched.outbound)?;
    out.key(2, "inbound", false)?;
    out.set(2, &t.network_endpoints_touched.inbound)?;
    out.raw(b"\n  }");
    out.key(1, "unix_sockets", false)?;
    out.set(1, &t.unix_sockets)?;
    out.key(1, "resolved", false)?;
    out.map(1, &t.resolved)?;
    out.key(1, "paths_probed", false)?;
    path_set(&mut out, &t.paths_probed, PathSet::PathsProbed)?;
    out.raw(b"\n}");
    out.flush()
}

/// A buffer in front of the writer.
struct Out<'w> {
    buf: Vec<u8>,
    w: &'w mut dyn Write,
}

impl Out<'_> {
    fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Hands the buffer to the writer once it is full.
    fn spill(&mut self) -> io::Result<()> {
        if self.buf.len() >= CHUNK {
            self.w.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// A new line indented `level` deep (two spaces a level).
    fn newline(&mut self, level: usize) {
        self.buf.push(b'\n');
        for _ in 0..level {
            self.buf.extend_from_slice(b"  ");
        }
    }

    /// `"key": ` as a member of an object at `level`, after a comma unless
    /// it is the `first`.
    fn key(&mut self, level: usize, key: &str, first: bool) -> io::Result<()> {
        if !first {
            self.buf.push(b',');
        }
        self.newline(level);
        self.string(key);
        self.buf.extend_from_slice(b": ");
        self.spill()
    }

    /// A set as an array whose key is at `level`.
    fn set(&mut self, level: usize, set: &BTreeSet<String>) -> io::Result<()> {
        self.list(level, set.len(), set.iter().map(String::as_str))
    }

    /// `len` strings as an array whose key is at `level`.
    fn list<'s>(
        &mut self,
        level: usize,
        len: usize,
        strings: impl Iterator<Item = &'s str>,
    ) -> io::Result<()> {
        if len == 0 {
            self.raw(b"[]");
            return Ok(());
        }
        self.buf.push(b'[');
        for (i, s) in strings.enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            self.newline(level + 1);
            self.string(s);
            self.spill()?;
        }
        self.newline(level);
        self.buf.push(b']');
        Ok(())
    }

    /// A map as an object whose key is at `level`.
    fn map(&mut self, level: usize, map: &BTreeMap<String, String>) -> io::Result<()> {
        if map.is_empty() {
            self.raw(b"{}");
            return Ok(());
        }
        self.buf.push(b'{');
        for (i, (k, v)) in map.iter().enumerate() {
            self.key(level + 1, k, i == 0)?;
            self.string(v);
        }
        self.newline(level);
        self.buf.push(b'}');
        self.spill()
    }

    /// A JSON string, escaped as `serde_json` escapes: `"`, `\` and the
    /// control bytes below 0x20, nothing else.
    fn string(&mut self, s: &str) {
        let b = s.as_bytes();
        self.buf.push(b'"');
        // Nearly every string has nothing to escape: one pass over it
        // without an early exit (many bytes a step), then one copy.
        if !any_to_escape(b) {
            self.buf.extend_from_slice(b);
        } else {
            let mut start = 0;
            for (i, &c) in b.iter().enumerate() {
                if must_escape(c) {
                    self.buf.extend_from_slice(&b[start..i]);
                    escape(c, &mut self.buf);
                    start = i + 1;
                }
            }
            self.buf.extend_from_slice(&b[start..]);
        }
        self.buf.push(b'"');
    }
}

/// Whether a byte of `b` must be escaped: 16 bytes a step, without an
/// early exit, so that the compiler checks each step's bytes side by side.
fn any_to_escape(b: &[u8]) -> bool {
    let mut chunks = b.chunks_exact(16);
    let mut found = 0u8;
    for chunk in &mut chunks {
        for &c in chunk {
            found |= u8::from(must_escape(c));
        }
    }
    for &c in chunks.remainder() {
        found |= u8::from(must_escape(c));
    }
    found != 0
}

/// Whether `serde_json` escapes the byte `c`.
fn must_escape(c: u8) -> bool {
    (c < 0x20) | (c == b'"') | (c == b'\\')
}

/// The escape `serde_json` writes for `c`.
fn escape(c: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match c {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(c >> 4)],
            HEX[usize::from(c & 0xf)],
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(t: &ParsedTrace) -> String {
        let mut v = Vec::new();
        t.write_json_pretty(&mut v).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn an_empty_trace_is_serde_json_s() {
        let t = ParsedTrace::default();
        assert_eq!(ours(&t), serde_json::to_string_pretty(&t).unwrap());
    }

    #[test]
    fn every_field_and_every_ascii_byte_is_serde_json_s() {
        let mut t = ParsedTrace::default();
        // Every ASCII byte, at every offset within a word, and non-ASCII
        // text around it.
        let ascii: String = (0u8..0x80).map(char::from).collect();
        for pad in 0..9 {
            let p = "p".repeat(pad);
            t.files_read.insert(format!("{p}{ascii}"));
            t.files_read.insert(format!("{p}é{ascii}ü/x"));
            for c in (0u8..0x80).map(char::from) {
                t.paths_probed.insert(format!("/{p}{c}ü{p}"));
            }
        }
        t.binaries_executed.insert("/bin/sh".into());
        t.shared_libs_loaded.insert("/lib/libc.so.6".into());
        t.cert_paths_read.insert("/etc/ssl/a \"b\".pem".into());
        t.files_written.insert("/tmp/tab\there".into());
        t.shell_invocations = 12_345;
        t.network_endpoints_touched
            .outbound
            .insert("1.2.3.4:5".into());
        t.network_endpoints_touched
            .inbound
            .insert("[::1]:80".into());
        t.unix_sockets.insert("@abstract\\x00".into());
        t.resolved.insert("/a\u{7f}".into(), "/b\n".into());
        t.resolved.insert("/c".into(), "/d".into());
        assert_eq!(ours(&t), serde_json::to_string_pretty(&t).unwrap());
        // One member in each nested place.
        let mut one = ParsedTrace::default();
        one.network_endpoints_touched
            .inbound
            .insert("0.0.0.0:1".into());
        one.resolved.insert("/x".into(), "/y".into());
        assert_eq!(ours(&one), serde_json::to_string_pretty(&one).unwrap());
    }
}
