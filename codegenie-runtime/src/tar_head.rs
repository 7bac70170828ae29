//! The first file of a tar stream, bounded: `docker cp CONTAINER:PATH -`
//! writes a tar archive of one file, and codegenie wants at most a given
//! number of its first bytes (docs/architecture.md, "Capped copies"). The
//! reader is pushed bytes as they arrive and says when it wants no more, so
//! the copy can be stopped there instead of streaming a huge file whole.
//!
//! Understood: ustar/GNU headers (octal or base-256 sizes), with PAX (`x`,
//! `g`) and GNU long-name (`L`, `K`) records before the file, whose bodies
//! are skipped. A header whose checksum does not add up is an error, never a
//! guess.

use std::io::Write;

const BLOCK: usize = 512;

/// Why a tar stream could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum TarError {
    /// A header's checksum does not match its bytes.
    #[error("tar header at byte {offset} has a bad checksum")]
    Checksum {
        /// Where the header starts in the stream.
        offset: u64,
    },
    /// A header's size field is not a number.
    #[error("tar header at byte {offset} has an unreadable size")]
    Size {
        /// Where the header starts in the stream.
        offset: u64,
    },
    /// The member is not a regular file (a folder, a device...).
    #[error("the copied path is not a regular file (tar type `{kind}`)")]
    NotAFile {
        /// The tar type flag.
        kind: char,
    },
    /// The member is a symbolic link; its target when the header holds it
    /// whole (a longer one comes in a record this reader skips).
    #[error("the copied path is a symbolic link")]
    Symlink {
        /// The link's target, as stored.
        target: Option<String>,
    },
    /// The stream ended before the file's header or body did.
    #[error("the tar stream ended early")]
    Truncated,
    /// The destination could not be written.
    #[error("cannot write the copied file")]
    Write(#[source] std::io::Error),
}

#[derive(Debug)]
enum State {
    Header,
    Skip { left: u64 },
    Body { left: u64 },
    Done,
}

/// The first regular file of a tar stream, its first `limit` bytes written to `out`.
#[derive(Debug)]
pub(crate) struct TarHead<W: Write> {
    out: W,
    limit: u64,
    state: State,
    header: Vec<u8>,
    offset: u64,
    written: u64,
    size: Option<u64>,
    error: Option<TarError>,
    /// A GNU long link name came before the member: the header's own
    /// field holds only its start.
    long_link: bool,
}

/// What [`TarHead::finish`] found.
#[derive(Debug)]
pub(crate) struct Head<W> {
    /// The destination, holding at most `limit` bytes.
    pub(crate) out: W,
    /// The file's full size, from its header.
    pub(crate) size: u64,
    /// Bytes written to `out`.
    pub(crate) written: u64,
}

impl<W: Write> TarHead<W> {
    /// Keep at most `limit` bytes of the first file in `out`.
    pub(crate) fn new(out: W, limit: u64) -> Self {
        TarHead {
            out,
            limit,
            state: State::Header,
            header: Vec::with_capacity(BLOCK),
            offset: 0,
            written: 0,
            size: None,
            error: None,
            long_link: false,
        }
    }

    /// Take the next bytes of the stream; `false` once nothing more is
    /// wanted (the file's kept part is complete, or the stream is bad).
    pub(crate) fn push(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            let used = match self.step(data) {
                Ok(n) => n,
                Err(e) => {
                    self.error = Some(e);
                    self.state = State::Done;
                    return false;
                }
            };
            self.offset += used as u64;
            data = &data[used..];
            if matches!(self.state, State::Done) {
                return false;
            }
        }
        true
    }

    fn step(&mut self, data: &[u8]) -> Result<usize, TarError> {
        match &mut self.state {
            State::Done => Ok(data.len()),
            State::Skip { left } => {
                let n = (*left).min(data.len() as u64) as usize;
                *left -= n as u64;
                if *left == 0 {
                    self.state = State::Header;
                }
                Ok(n)
            }
            State::Body { left } => {
                let room = self.limit - self.written;
                let n = (*left).min(room).min(data.len() as u64) as usize;
                self.out.write_all(&data[..n]).map_err(TarError::Write)?;
                self.written += n as u64;
                *left -= n as u64;
                if *left == 0 || self.written == self.limit {
                    self.state = State::Done;
                }
                Ok(n)
            }
            State::Header => {
                let n = (BLOCK - self.header.len()).min(data.len());
                self.header.extend_from_slice(&data[..n]);
                if self.header.len() == BLOCK {
                    let start = self.offset + n as u64 - BLOCK as u64;
                    let block = std::mem::take(&mut self.header);
                    self.state = self.header_done(&block, start)?;
                }
                Ok(n)
            }
        }
    }

    fn header_done(&mut self, h: &[u8], offset: u64) -> Result<State, TarError> {
        if h.iter().all(|&b| b == 0) {
            // End-of-archive marker before any file.
            return Err(TarError::Truncated);
        }
        let stored = octal(&h[148..156]).ok_or(TarError::Checksum { offset })?;
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    b as u64
                }
            })
            .sum();
        if sum != stored {
            return Err(TarError::Checksum { offset });
        }
        let size = field_size(&h[124..136]).ok_or(TarError::Size { offset })?;
        if h[156] == b'K' {
            self.long_link = true;
        }
        match h[156] {
            b'x' | b'g' | b'L' | b'K' => Ok(State::Skip {
                left: size.div_ceil(BLOCK as u64) * BLOCK as u64,
            }),
            b'0' | 0 | b'7' => {
                self.size = Some(size);
                Ok(if size == 0 || self.limit == 0 {
                    State::Done
                } else {
                    State::Body { left: size }
                })
            }
            b'2' if !self.long_link => {
                let field = &h[157..257];
                let target = field
                    .iter()
                    .position(|&b| b == 0)
                    .and_then(|end| std::str::from_utf8(&field[..end]).ok())
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned);
                Err(TarError::Symlink { target })
            }
            b'2' => Err(TarError::Symlink { target: None }),
            other => Err(TarError::NotAFile {
                kind: other as char,
            }),
        }
    }

    /// The result once the stream ended or [`Self::push`] said it wants no more.
    pub(crate) fn finish(mut self) -> Result<Head<W>, TarError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let size = self.size.ok_or(TarError::Truncated)?;
        // A body cut short by the stream (not by the limit) is an error.
        if matches!(self.state, State::Body { .. }) {
            return Err(TarError::Truncated);
        }
        self.out.flush().map_err(TarError::Write)?;
        Ok(Head {
            out: self.out,
            size,
            written: self.written,
        })
    }
}

fn octal(field: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(field).ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

/// A size field: octal, or GNU base-256 (high bit set) for large files.
fn field_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let mut v: u64 = (field[0] & 0x7f) as u64;
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(b as u64)?;
        }
        Some(v)
    } else {
        octal(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ustar header for `name` of `size` bytes and type `kind`.
    fn header(name: &str, size: u64, kind: u8) -> Vec<u8> {
        let mut h = vec![0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| b as u64).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    fn archive(parts: &[(&str, &[u8], u8)]) -> Vec<u8> {
        let mut t = Vec::new();
        for (name, body, kind) in parts {
            t.extend(header(name, body.len() as u64, *kind));
            t.extend_from_slice(body);
            t.resize(t.len().div_ceil(BLOCK) * BLOCK, 0);
        }
        t.extend([0u8; 2 * BLOCK]);
        t
    }

    fn feed(t: &[u8], limit: u64, chunk: usize) -> (Result<Head<Vec<u8>>, TarError>, usize) {
        let mut r = TarHead::new(Vec::new(), limit);
        let mut fed = 0;
        for c in t.chunks(chunk) {
            fed += c.len();
            if !r.push(c) {
                break;
            }
        }
        (r.finish(), fed)
    }

    #[test]
    fn a_small_file_is_kept_whole_whatever_the_chunking() {
        let t = archive(&[("app.sh", b"#!/bin/sh\necho hi\n", b'0')]);
        for chunk in [1, 7, 512, 4096] {
            let (h, _) = feed(&t, 64 * 1024, chunk);
            let h = h.unwrap();
            assert_eq!(h.out, b"#!/bin/sh\necho hi\n");
            assert_eq!(h.written, h.size);
        }
    }

    #[test]
    fn a_big_file_stops_the_stream_at_the_limit() {
        let body = vec![7u8; 1 << 20];
        let t = archive(&[("big", &body, b'0')]);
        let (h, fed) = feed(&t, 1000, 4096);
        let h = h.unwrap();
        assert_eq!(h.out.len(), 1000);
        assert_eq!(h.size, 1 << 20);
        assert!(h.written < h.size);
        // Nothing past the first chunk that filled the limit was asked for.
        assert_eq!(fed, 4096);
    }

    #[test]
    fn pax_and_long_name_records_are_skipped() {
        let t = archive(&[
            ("././@PaxHeader", b"30 path=a/very/long/name/here\n", b'x'),
            ("././@LongLink", b"a/very/long/name/here\0", b'L'),
            ("a", b"\x7fELF", b'0'),
        ]);
        assert_eq!(feed(&t, 100, 100).0.unwrap().out, b"\x7fELF");
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let mut t = archive(&[("a", b"x", b'0')]);
        t[0] = b'b';
        assert!(matches!(
            feed(&t, 10, 512).0,
            Err(TarError::Checksum { offset: 0 })
        ));
        let t = archive(&[("d", b"", b'5')]);
        assert!(matches!(
            feed(&t, 10, 512).0,
            Err(TarError::NotAFile { kind: '5' })
        ));
        let t = archive(&[("a", b"hello", b'0')]);
        assert!(matches!(
            feed(&t[..515], 10, 512).0,
            Err(TarError::Truncated)
        ));
        assert!(matches!(feed(&[], 10, 512).0, Err(TarError::Truncated)));
        assert!(matches!(
            feed(&[0u8; 1024], 10, 512).0,
            Err(TarError::Truncated)
        ));
    }

    #[test]
    fn a_link_gives_its_target_unless_the_header_holds_only_its_start() {
        let mut link = header("sh", 0, b'2');
        link[157..161].copy_from_slice(b"dash");
        // The checksum again, over the link name.
        link[148..156].fill(b' ');
        let sum: u32 = link.iter().map(|&b| u32::from(b)).sum();
        link[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let mut t = link.clone();
        t.extend([0u8; 1024]);
        let (r, _) = feed(&t, 10, 512);
        assert!(
            matches!(r, Err(TarError::Symlink { target: Some(ref d) }) if d == "dash"),
            "{r:?}"
        );
        let mut long = archive(&[("././@LongLink", b"/a/long/target\0", b'K')]);
        long.truncate(long.len() - 1024);
        long.extend(link);
        long.extend([0u8; 1024]);
        let (r, _) = feed(&long, 10, 512);
        assert!(
            matches!(r, Err(TarError::Symlink { target: None })),
            "{r:?}"
        );
    }

    #[test]
    fn base_256_sizes_are_read() {
        let mut f = [0u8; 12];
        f[0] = 0x80;
        f[7] = 0x02; // 2 << 32
        assert_eq!(field_size(&f), Some(2 << 32));
    }
}
