//! The least work any parser of a trace must do to print its paths, as a
//! floor for `parse_strace_walk` (docs/architecture.md, "Benchmarks").
//!
//! It reads the file as `parse-strace` does (256 KiB blocks by positioned
//! reads, claimed by two threads), keeps each line's first string literal
//! as written, sorts each thread's literals and drops repeats, and writes
//! the merge of both lists as JSON lines. It skips everything the parser
//! contract asks beyond that: no call names, pids, flags, return values or
//! `-y` decorations, no decoding or normal form, no process state, one set
//! instead of seven. It runs in the bench's own process, so it pays no
//! program start or exit either. Whatever a parser does, it does at least
//! this, so its time is a floor, not a target.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The block size `parse-strace` reads.
const BLOCK: usize = 256 << 10;
/// Read past a block's end for its last line (the walk's lines are shorter).
const TAIL: usize = 64 << 10;

/// One thread's literals, end to end in one buffer.
#[derive(Default)]
struct Literals {
    text: Vec<u8>,
    spans: Vec<Range<usize>>,
}

impl Literals {
    fn get(&self, r: &Range<usize>) -> &[u8] {
        &self.text[r.clone()]
    }

    /// The first literal of each line in `lines`.
    fn scan(&mut self, lines: &[u8]) {
        for line in lines.split(|&b| b == b'\n') {
            let Some(open) = memchr::memchr(b'"', line) else {
                continue;
            };
            let rest = &line[open + 1..];
            let Some(close) = memchr::memchr(b'"', rest) else {
                continue;
            };
            let start = self.text.len();
            self.text.extend_from_slice(&rest[..close]);
            self.spans.push(start..self.text.len());
        }
    }

    /// Sorted, each literal once.
    fn sorted(mut self) -> Self {
        let text = std::mem::take(&mut self.text);
        self.spans
            .sort_unstable_by(|a, b| text[a.clone()].cmp(&text[b.clone()]));
        self.spans
            .dedup_by(|a, b| text[a.clone()] == text[b.clone()]);
        self.text = text;
        self
    }
}

/// Claims blocks of `file` until none is left and scans the lines that
/// start in each.
fn worker(file: &File, len: usize, next: &AtomicUsize) -> Literals {
    let mut found = Literals::default();
    let mut buf = vec![0u8; BLOCK + TAIL + 1];
    loop {
        let b = next.fetch_add(1, Ordering::Relaxed);
        let start = b * BLOCK;
        if start >= len {
            return found.sorted();
        }
        // The byte before the block tells whether a line starts at its first.
        let from = start.saturating_sub(1);
        let want = buf.len().min(len - from);
        let mut got = 0;
        while got < want {
            let n = file
                .read_at(&mut buf[got..want], (from + got) as u64)
                .expect("read the trace");
            if n == 0 {
                break;
            }
            got += n;
        }
        let data = &buf[..got];
        let first = if b == 0 {
            0
        } else {
            memchr::memchr(b'\n', data).map_or(got, |i| i + 1)
        };
        // Lines that start before the next block, the last one whole.
        let limit = start - from + BLOCK;
        let end = if limit >= got {
            got
        } else {
            memchr::memchr(b'\n', &data[limit - 1..]).map_or(got, |i| limit + i)
        };
        if first < end {
            found.scan(&data[first..end]);
        }
    }
}

/// Runs the least work on `trace`, writing to `/dev/null`; returns its wall
/// time and the number of distinct literals it printed.
pub(crate) fn run(trace: &Path) -> (Duration, usize) {
    let started = Instant::now();
    let file = File::open(trace).expect("open the trace");
    let len = file.metadata().expect("the trace's size").len() as usize;
    let next = AtomicUsize::new(0);
    let (a, b) = std::thread::scope(|s| {
        let other = s.spawn(|| worker(&file, len, &next));
        let a = worker(&file, len, &next);
        (a, other.join().expect("the second thread"))
    });
    let sink = File::create("/dev/null").expect("open /dev/null");
    let mut out = BufWriter::with_capacity(64 << 10, sink);
    out.write_all(b"{\n  \"files_read\": [\n").unwrap();
    let (mut i, mut j, mut printed) = (0, 0, 0);
    while i < a.spans.len() || j < b.spans.len() {
        let order = match (a.spans.get(i), b.spans.get(j)) {
            (Some(x), Some(y)) => a.get(x).cmp(b.get(y)),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let lit = match order {
            std::cmp::Ordering::Greater => {
                j += 1;
                b.get(&b.spans[j - 1])
            }
            o => {
                i += 1;
                j += usize::from(o.is_eq());
                a.get(&a.spans[i - 1])
            }
        };
        if printed > 0 {
            out.write_all(b",\n").unwrap();
        }
        out.write_all(b"    \"").unwrap();
        out.write_all(lit).unwrap();
        out.write_all(b"\"").unwrap();
        printed += 1;
    }
    out.write_all(b"\n  ]\n}\n").unwrap();
    out.flush().unwrap();
    (started.elapsed(), printed)
}
