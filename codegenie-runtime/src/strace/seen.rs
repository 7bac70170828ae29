//! The path sets of a parse while it runs, filled on a second thread once a
//! trace turns out to be big, and sorted in parallel at its end.
//!
//! The parse itself is sequential: pids, fds and working folders depend on
//! line order. Adding a path to its set (hashing it, comparing, allocating
//! it: see `distinct`) does not, and on a big trace it is a fifth of the
//! work. So past [`HANDOFF`] paths the parser writes each path into a
//! batch and sends full batches to a worker that owns the sets. The
//! channel holds at most [`IN_FLIGHT`] batches, so memory stays bounded by
//! the distinct facts plus a few batches, whatever the trace's size.
//! Small traces (most scenarios) never start a thread.

use std::collections::BTreeSet;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use super::distinct::{DistinctSet, SortedText, SPLIT};

/// Which set a path goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathSet {
    BinariesExecuted,
    SharedLibsLoaded,
    CertPathsRead,
    FilesRead,
    FilesWritten,
    PathsProbed,
    Missing,
}

/// How many sets there are.
pub(crate) const SETS: usize = 7;

impl PathSet {
    const ALL: [PathSet; SETS] = [
        PathSet::BinariesExecuted,
        PathSet::SharedLibsLoaded,
        PathSet::CertPathsRead,
        PathSet::FilesRead,
        PathSet::FilesWritten,
        PathSet::PathsProbed,
        PathSet::Missing,
    ];

    /// Its place among the sets that [`Seen::finish`] returns.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Paths added before a worker is started: below this the thread would
/// cost more than it saves.
const HANDOFF: usize = 16 << 10;
/// Bytes of a batch sent to the worker.
const BATCH: usize = 64 << 10;
/// Batches queued for the worker at most.
const IN_FLIGHT: usize = 8;

type Sets = [DistinctSet; SETS];

/// The sets, here or on the worker.
pub(crate) struct Seen {
    mode: Mode,
    /// Paths added so far (until the handoff).
    added: usize,
    /// Never hand the sets off nor sort them on another thread: the parse
    /// already runs on two.
    here: bool,
}

enum Mode {
    Here(Box<Sets>),
    Worker(Worker),
}

struct Worker {
    /// Records of `[set: u8][len: u32 LE][bytes]`.
    batch: Vec<u8>,
    to_worker: SyncSender<Vec<u8>>,
    /// Emptied batches, sent back for reuse.
    returned: Receiver<Vec<u8>>,
    thread: JoinHandle<Box<Sets>>,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            mode: Mode::Here(Box::default()),
            added: 0,
            here: false,
        }
    }
}

/// The sets, sorted: one per [`PathSet`], in its order.
pub(crate) type SortedSets = [BTreeSet<String>; SETS];

impl Seen {
    /// Sets that stay on the thread that fills them.
    pub(crate) fn here() -> Self {
        Seen {
            here: true,
            ..Seen::default()
        }
    }

    /// Adds `path` to `set`.
    pub(crate) fn insert(&mut self, set: PathSet, path: &str) {
        match &mut self.mode {
            Mode::Here(sets) => {
                sets[set.index()].insert(path);
                self.added += 1;
                if self.added == HANDOFF && !self.here {
                    self.hand_off();
                }
            }
            Mode::Worker(w) => {
                // A path is at most a line, and a line at most 4 MiB.
                let len = u32::try_from(path.len()).unwrap_or(u32::MAX);
                let path = &path.as_bytes()[..len as usize];
                w.batch.push(set as u8);
                w.batch.extend_from_slice(&len.to_le_bytes());
                w.batch.extend_from_slice(path);
                if w.batch.len() >= BATCH {
                    w.send();
                }
            }
        }
    }

    /// Moves the sets to a worker thread, unless one cannot be started
    /// (then they stay here: slower, nothing lost).
    fn hand_off(&mut self) {
        if !two_cores() {
            return;
        }
        let (to_worker, from_parser) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (to_parser, returned) = mpsc::channel::<Vec<u8>>();
        // The sets follow once the thread runs, so a failed start keeps them.
        let (sets_to_worker, sets_from_parser) = mpsc::channel::<Box<Sets>>();
        let spawned = std::thread::Builder::new()
            .name("strace-paths".into())
            .spawn(move || {
                let mut sets = sets_from_parser.recv().unwrap_or_default();
                for batch in from_parser {
                    fill(&mut sets, &batch);
                    // The parser may be gone; then the buffer is freed.
                    let _ = to_parser.send(batch);
                }
                sets
            });
        let Ok(thread) = spawned else {
            return;
        };
        let Mode::Here(sets) = std::mem::replace(
            &mut self.mode,
            Mode::Worker(Worker {
                batch: Vec::with_capacity(BATCH + 256),
                to_worker,
                returned,
                thread,
            }),
        ) else {
            return;
        };
        // The worker holds the receiver until it has taken them.
        let _ = sets_to_worker.send(sets);
    }

    /// Every set, sorted; large sets are sorted side by side.
    pub(crate) fn finish(self) -> SortedSets {
        sort_all(&mut self.into_sets(), DistinctSet::take_sorted)
    }

    /// [`Seen::finish`], each set left as its strings in one buffer.
    pub(crate) fn finish_text(self) -> [SortedText; SETS] {
        let here = self.here;
        let mut sets = self.into_sets();
        if here {
            // The parse runs on two threads, each sorting its own sets at
            // the same time: more threads would only take turns.
            return sets.each_mut().map(|s| s.take_sorted_text(false));
        }
        sort_all(&mut sets, DistinctSet::take_sorted_text)
    }

    /// The sets, back from the worker if they went to one.
    fn into_sets(self) -> Box<Sets> {
        match self.mode {
            Mode::Here(sets) => sets,
            Mode::Worker(mut w) => {
                w.send();
                drop(w.to_worker);
                match w.thread.join() {
                    Ok(sets) => sets,
                    // The worker only inserts into sets; a panic there is
                    // a bug, reported as the parse's own.
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        }
    }
}

impl Worker {
    /// Sends the batch at hand, taking a returned buffer for the next one.
    fn send(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let next = self
            .returned
            .try_recv()
            .map(|mut b| {
                b.clear();
                b
            })
            .unwrap_or_else(|_| Vec::with_capacity(BATCH + 256));
        let full = std::mem::replace(&mut self.batch, next);
        // Fails only if the worker is gone, which `finish` reports.
        let _ = self.to_worker.send(full);
    }
}

/// Adds the records of one batch to their sets.
fn fill(sets: &mut Sets, mut batch: &[u8]) {
    while let [set, a, b, c, d, rest @ ..] = batch {
        let len = u32::from_le_bytes([*a, *b, *c, *d]) as usize;
        let (path, rest) = rest.split_at(len.min(rest.len()));
        // Written from a `&str` by `insert`: always UTF-8.
        if let (Ok(path), Some(kind)) = (
            std::str::from_utf8(path),
            PathSet::ALL.get(usize::from(*set)),
        ) {
            sets[kind.index()].insert(path);
        }
        batch = rest;
    }
}

/// Whether a second thread can run beside this one.
pub(crate) fn two_cores() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
}

/// Paths that are worth sorting on a second thread.
const SORT_APART: usize = 8 << 10;

/// Sorts every set. When the sets are large, they are split into two
/// groups of about the same number of paths (largest first, each to the
/// lighter group), one sorted on a second thread while this one sorts the
/// other.
/// `take` sorts one set, in two halves side by side when asked.
fn sort_all<T: Default + Send>(
    sets: &mut Sets,
    take: fn(&mut DistinctSet, bool) -> T,
) -> [T; SETS] {
    let mut order: Vec<usize> = (0..SETS).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sets[i].len()));
    // One set holding most paths (a walk that opens every file once): two
    // groups of sets cannot be even, so that set is sorted in two halves.
    let largest = sets[order[0]].len();
    let total: usize = sets.iter().map(DistinctSet::len).sum();
    if largest >= SPLIT && largest * 2 > total && two_cores() {
        let mut out: [T; SETS] = Default::default();
        for (i, (o, s)) in out.iter_mut().zip(sets.iter_mut()).enumerate() {
            *o = take(s, i == order[0]);
        }
        return out;
    }
    let (mut here, mut there) = (0usize, 0usize);
    let mut apart = [false; SETS];
    for i in order {
        if there < here {
            apart[i] = true;
            there += sets[i].len();
        } else {
            here += sets[i].len();
        }
    }
    // Asked only for large sets: the answer reads cgroup files, and every
    // scenario's (small) trace is parsed.
    if there <= SORT_APART || !two_cores() {
        apart = [false; SETS];
    }
    // The group sorted apart, moved out of `sets`.
    let mut theirs: Vec<(usize, DistinctSet)> = (0..SETS)
        .filter(|&i| apart[i])
        .map(|i| (i, std::mem::take(&mut sets[i])))
        .collect();
    let sort_group = |group: &mut Vec<(usize, DistinctSet)>| -> Vec<(usize, T)> {
        group
            .iter_mut()
            .map(|(i, s)| (*i, take(s, false)))
            .collect()
    };
    let mut out: [T; SETS] = Default::default();
    let mut sorted_apart = None;
    std::thread::scope(|scope| {
        let handle = (!theirs.is_empty())
            .then(|| {
                std::thread::Builder::new()
                    .name("strace-sort".into())
                    .spawn_scoped(scope, || sort_group(&mut theirs))
                    .ok()
            })
            .flatten();
        for (o, s) in out.iter_mut().zip(sets.iter_mut()) {
            *o = take(s, false);
        }
        if let Some(handle) = handle {
            match handle.join() {
                Ok(sorted) => sorted_apart = Some(sorted),
                // Sorting strings does not panic; if it did, it is a bug,
                // reported as the parse's own.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    // Without a second thread, the group is sorted here.
    let sorted_apart = sorted_apart.unwrap_or_else(|| sort_group(&mut theirs));
    for (i, sorted) in sorted_apart {
        out[i] = sorted;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sets after `n` paths (each twice, and an empty one), and whether
    /// they were filled on the worker.
    fn filled(n: usize) -> (SortedSets, bool) {
        let mut seen = Seen::default();
        for i in (0..n).rev() {
            let set = PathSet::ALL[i % SETS];
            seen.insert(set, &format!("/data/{:02}/f{i}", i % 13));
            // Every path twice, and an empty one: duplicates stay single.
            seen.insert(set, &format!("/data/{:02}/f{i}", i % 13));
            seen.insert(PathSet::Missing, "");
        }
        let handed_off = matches!(seen.mode, Mode::Worker(_));
        (seen.finish(), handed_off)
    }

    fn expected(n: usize) -> SortedSets {
        let mut out: SortedSets = Default::default();
        for i in 0..n {
            out[i % SETS].insert(format!("/data/{:02}/f{i}", i % 13));
        }
        out[PathSet::Missing.index()].insert(String::new());
        out
    }

    #[test]
    fn a_small_parse_keeps_its_sets_here() {
        let (sets, handed_off) = filled(100);
        assert_eq!(sets, expected(100));
        assert!(!handed_off, "a small parse started a thread");
    }

    #[test]
    fn a_big_parse_hands_its_sets_over_and_loses_nothing() {
        // Past the handoff, across many batches, sorted apart.
        let n = HANDOFF * 4 + 17;
        let (sets, handed_off) = filled(n);
        assert_eq!(sets, expected(n));
        // Where a second thread can run, the worker filled them.
        assert_eq!(handed_off, two_cores());
    }

    #[test]
    fn a_long_path_travels_whole() {
        let mut seen = Seen::default();
        for i in 0..HANDOFF {
            seen.insert(PathSet::FilesRead, &format!("/f{i}"));
        }
        let long = format!("/{}", "é".repeat(BATCH));
        seen.insert(PathSet::FilesWritten, &long);
        let sets = seen.finish();
        assert!(sets[PathSet::FilesWritten.index()].contains(&long));
        assert_eq!(sets[PathSet::FilesRead.index()].len(), HANDOFF);
    }
}
