//! Bounded output capture: the first and the last bytes of a stream are kept,
//! the middle is counted and dropped, so a chatty child never grows memory.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Captured output of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// The kept bytes: the head, then (if anything was dropped) the tail.
    pub bytes: Vec<u8>,
    /// How many bytes were dropped between head and tail.
    pub dropped: u64,
}

impl Captured {
    /// Whether the whole stream was kept.
    pub fn is_complete(&self) -> bool {
        self.dropped == 0
    }

    /// The kept bytes as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The last `n` bytes as text, starting at a line boundary when possible.
    pub fn tail_text(&self, n: usize) -> String {
        let start = self.bytes.len().saturating_sub(n);
        let slice = &self.bytes[start..];
        let slice = match (start > 0, slice.iter().position(|&b| b == b'\n')) {
            (true, Some(i)) if i + 1 < slice.len() => &slice[i + 1..],
            _ => slice,
        };
        String::from_utf8_lossy(slice).into_owned()
    }
}

/// A bounded buffer fed by a reader thread.
#[derive(Debug)]
pub(crate) struct Buffer {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    dropped: u64,
    half: usize,
}

impl Buffer {
    pub(crate) fn new(limit: usize) -> Self {
        let half = (limit / 2).max(1);
        Buffer {
            head: Vec::new(),
            tail: VecDeque::new(),
            dropped: 0,
            half,
        }
    }

    pub(crate) fn push(&mut self, mut data: &[u8]) {
        let room = self.half - self.head.len();
        if room > 0 {
            let n = room.min(data.len());
            self.head.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        for &b in data {
            if self.tail.len() == self.half {
                self.tail.pop_front();
                self.dropped += 1;
            }
            self.tail.push_back(b);
        }
    }

    pub(crate) fn snapshot(&self) -> Captured {
        let mut bytes = self.head.clone();
        bytes.extend(self.tail.iter().copied());
        Captured {
            bytes,
            dropped: self.dropped,
        }
    }
}

/// Watches a stream for a line containing a needle.
#[derive(Debug, Clone)]
pub(crate) struct LineWatch {
    pub(crate) needle: Vec<u8>,
    pub(crate) seen: Arc<AtomicBool>,
}

/// One stream's capture and line watch, fed chunk by chunk as the bytes
/// arrive: from a child's pipe ([`pump`]) or from an engine's attach
/// stream, with the same bounds either way.
#[derive(Debug)]
pub(crate) struct Feed {
    buf: Arc<Mutex<Buffer>>,
    watch: Option<LineWatch>,
    /// The current partial line, bounded so a newline-free stream cannot grow it.
    line: Vec<u8>,
}

impl Feed {
    /// The longest partial line kept for the watch.
    const MAX_LINE: usize = 64 * 1024;

    pub(crate) fn new(buf: Arc<Mutex<Buffer>>, watch: Option<LineWatch>) -> Feed {
        Feed {
            buf,
            watch,
            line: Vec::new(),
        }
    }

    /// Capture `data` and flag the watch when a line holds its needle.
    pub(crate) fn push(&mut self, data: &[u8]) {
        if let Ok(mut b) = self.buf.lock() {
            b.push(data);
        }
        if let Some(w) = &self.watch {
            for &byte in data {
                if byte == b'\n' {
                    check_line(&self.line, w);
                    self.line.clear();
                } else if self.line.len() < Self::MAX_LINE {
                    self.line.push(byte);
                }
            }
            // A ready message may not end with a newline yet.
            check_line(&self.line, w);
        }
    }
}

/// Copy `reader` into `buf` until EOF, flagging `watch` when a line contains
/// its needle. Runs on its own thread.
pub(crate) fn pump(mut reader: impl Read, buf: Arc<Mutex<Buffer>>, watch: Option<LineWatch>) {
    let mut chunk = [0u8; 8192];
    let mut feed = Feed::new(buf, watch);
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        feed.push(&chunk[..n]);
    }
}

fn check_line(line: &[u8], w: &LineWatch) {
    if !w.needle.is_empty() && memchr::memmem::find(line, &w.needle).is_some() {
        w.seen.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_head_and_tail_and_counts_the_middle() {
        let mut b = Buffer::new(8);
        b.push(b"0123456789abcdef");
        let c = b.snapshot();
        assert_eq!(c.bytes, b"0123cdef");
        assert_eq!(c.dropped, 8);
        assert!(!c.is_complete());
    }

    #[test]
    fn small_streams_are_complete() {
        let mut b = Buffer::new(64);
        b.push(b"hello ");
        b.push(b"world");
        let c = b.snapshot();
        assert_eq!(c.text(), "hello world");
        assert!(c.is_complete());
    }

    #[test]
    fn tail_text_starts_at_a_line() {
        let c = Captured {
            bytes: b"first line\nsecond line\nthird\n".to_vec(),
            dropped: 0,
        };
        assert_eq!(c.tail_text(12), "third\n");
        assert_eq!(c.tail_text(1000), "first line\nsecond line\nthird\n");
    }

    #[test]
    fn watch_flags_a_matching_line() {
        let seen = Arc::new(AtomicBool::new(false));
        let watch = LineWatch {
            needle: b"listening".to_vec(),
            seen: seen.clone(),
        };
        let buf = Arc::new(Mutex::new(Buffer::new(16)));
        pump(&b"booting\nnow listening on 8080\n"[..], buf, Some(watch));
        assert!(seen.load(Ordering::SeqCst));
    }

    #[test]
    fn watch_ignores_a_needle_split_across_lines() {
        let seen = Arc::new(AtomicBool::new(false));
        let watch = LineWatch {
            needle: b"listening".to_vec(),
            seen: seen.clone(),
        };
        let buf = Arc::new(Mutex::new(Buffer::new(16)));
        pump(&b"listen\ning\n"[..], buf, Some(watch));
        assert!(!seen.load(Ordering::SeqCst));
    }
}
