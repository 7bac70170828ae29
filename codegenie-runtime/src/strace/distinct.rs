//! Sets of distinct paths while a parse runs, sorted once at its end.
//!
//! A big trace names hundreds of thousands of distinct paths, mostly once
//! per set. A sorted set compares long shared prefixes at every level of
//! every lookup; a plain hash set rehashes every string it holds, reading
//! each from the heap, each time it grows. Here the table holds each
//! string's 64-bit hash beside it: growing moves entries without touching
//! the strings, and a lookup compares text only when the hashes agree.
//! Two different strings with the same hash are kept apart in a small
//! overflow set, so a collision costs time, never a fact.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use super::pidhash::StrHasher;

/// Distinct strings, each stored once.
#[derive(Default)]
pub(crate) struct DistinctSet {
    by_hash: HashMap<u64, Box<str>, BuildHasherDefault<Prehashed>>,
    /// Strings whose hash another string in `by_hash` already has.
    collided: BTreeSet<Box<str>>,
}

impl DistinctSet {
    /// Adds `s` unless present; allocates only when it is new.
    pub(crate) fn insert(&mut self, s: &str) {
        let mut h = StrHasher::default();
        h.write(s.as_bytes());
        match self.by_hash.entry(h.finish()) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Box::from(s));
            }
            std::collections::hash_map::Entry::Occupied(o) => {
                if &**o.get() != s && !self.collided.contains(s) {
                    self.collided.insert(Box::from(s));
                }
            }
        }
    }

    /// How many distinct strings it holds.
    pub(crate) fn len(&self) -> usize {
        self.by_hash.len() + self.collided.len()
    }

    /// Every string, sorted, moved out (the set is left empty).
    pub(crate) fn take_sorted(&mut self) -> BTreeSet<String> {
        let by_hash = std::mem::take(&mut self.by_hash);
        let collided = std::mem::take(&mut self.collided);
        let mut all: Vec<Box<str>> = by_hash.into_values().chain(collided).collect();
        sort_bytewise(&mut all);
        // Collecting sorted input checks the order in one pass and builds
        // the tree in bulk.
        all.into_iter().map(String::from).collect()
    }
}

/// Sorts in byte order. Paths in one set share long prefixes (a temp
/// folder, `/usr/lib/python3/`), which a plain sort compares again at every
/// step, fetching both strings from the heap. Here strings are ordered by
/// 16 bytes at a time, held in the sorted vector (a most-significant-first
/// radix of sorts), and only what ties on them goes one level deeper.
fn sort_bytewise(all: &mut [Box<str>]) {
    sort_from(all, 0);
}

/// Below this many strings a plain sort is as quick.
const SMALL: usize = 32;
/// Deeper than this, ties are sorted plainly: bounded recursion, whatever
/// the input's strings.
const MAX_DEPTH: usize = 512;

/// Sorts `v`, whose strings all agree on their first `depth` bytes (a
/// string shorter than that reads as NUL-padded).
fn sort_from(v: &mut [Box<str>], depth: usize) {
    if v.len() <= SMALL || depth >= MAX_DEPTH {
        v.sort_unstable();
        return;
    }
    // Skip what every string shares beyond `depth` (a whole temp folder).
    let first = v[0].as_bytes().get(depth..).unwrap_or_default();
    let mut shared = first.len();
    for s in v.iter() {
        let tail = s.as_bytes().get(depth..).unwrap_or_default();
        shared = first[..shared]
            .iter()
            .zip(tail)
            .take_while(|(a, b)| a == b)
            .count();
    }
    let depth = depth + shared;
    // Big-endian and NUL-padded: strings whose keys differ differ in the
    // same direction (a string ending inside the window is a prefix of
    // every other string of its tie there); equal keys go a level deeper.
    let key = |s: &str| -> u128 {
        let tail = s.as_bytes().get(depth..).unwrap_or_default();
        let mut k = [0u8; 16];
        match tail.get(..16) {
            // The common case, one load (a copy of unknown length is a call).
            Some(window) => k.copy_from_slice(window),
            None => {
                for (d, &b) in k.iter_mut().zip(tail) {
                    *d = b;
                }
            }
        }
        u128::from_be_bytes(k)
    };
    // Keys beside the strings: sorting and finding ties touch no string.
    let mut keyed: Vec<(u128, Box<str>)> =
        v.iter_mut().map(|s| (key(s), std::mem::take(s))).collect();
    keyed.sort_unstable_by_key(|e| e.0);
    let mut i = 0;
    while i < keyed.len() {
        let k = keyed[i].0;
        let mut j = i + 1;
        while j < keyed.len() && keyed[j].0 == k {
            j += 1;
        }
        for (slot, (_, s)) in v[i..j].iter_mut().zip(keyed[i..j].iter_mut()) {
            *slot = std::mem::take(s);
        }
        let tie = &mut v[i..j];
        if tie.len() > 1 {
            if tie.iter().all(|s| s.len() <= depth + 16) {
                // Equal up to their ends, which NUL padding hides.
                tie.sort_unstable();
            } else {
                sort_from(tie, depth + 16);
            }
        }
        i = j;
    }
}

/// The identity hasher for keys that already are well-mixed hashes.
#[derive(Default, Clone, Copy)]
pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed with it; anything else still works.
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_and_sorted() {
        let mut s = DistinctSet::default();
        for p in ["/b", "/a", "/b", "/c/d", "/a"] {
            s.insert(p);
        }
        assert_eq!(
            s.take_sorted().into_iter().collect::<Vec<_>>(),
            ["/a", "/b", "/c/d"]
        );
        assert!(s.take_sorted().is_empty());
    }

    #[test]
    fn the_keyed_sort_is_byte_order() {
        let cases: &[&[&str]] = &[
            &[],
            &["/only"],
            &[
                "/tmp/x/data/d001/file0002.txt",
                "/tmp/x/data/d000/file0010.txt",
                "/tmp/x/data/d000/file0002.txt",
                "/tmp/x/data/d000/file0002.txt.bak",
                "/tmp/x/data/d000/file0002",
                "/tmp/x/data/d000/file0002\0",
                "/tmp/x/data/d000/file0002\u{7f}",
                "/tmp/x/data/d000/file0002é",
                "/tmp/x/data/d000/file000",
                "/tmp/x/data",
                "/tmp/x/data/a/very/long/name/that/ties/beyond/sixteen/bytes/1",
                "/tmp/x/data/a/very/long/name/that/ties/beyond/sixteen/bytes/0",
                "/",
            ],
            &["/a\0", "/a", "/a\0\0", "/b", "/a\0b"],
        ];
        let many: Vec<String> = (0..500)
            .rev()
            .flat_map(|i| {
                [
                    format!(
                        "/tmp/codegenie-big-trace.x/data/d{:03}/file{i:04}.txt",
                        i % 7
                    ),
                    format!("/tmp/codegenie-big-trace.x/data/d{:03}/file{i:04}", i % 7),
                    format!("/tmp/codegenie-big-trace.x/data/d{:03}/file{i:04}\0", i % 7),
                    format!("/usr/lib/python3/{i}"),
                ]
            })
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        for case in cases.iter().chain([&&many[..]]) {
            let mut ours: Vec<Box<str>> = case.iter().map(|&s| Box::from(s)).collect();
            let mut plain = ours.clone();
            sort_bytewise(&mut ours);
            plain.sort();
            assert_eq!(ours, plain, "{case:?}");
        }
    }

    #[test]
    fn a_hash_collision_keeps_both_strings() {
        let mut s = DistinctSet::default();
        // Another string already under the hash of `/second`.
        let mut h = StrHasher::default();
        h.write(b"/second");
        s.by_hash.insert(h.finish(), Box::from("/other"));
        for p in ["/second", "/first", "/second"] {
            s.insert(p);
        }
        assert_eq!(
            s.take_sorted().into_iter().collect::<Vec<_>>(),
            ["/first", "/other", "/second"]
        );
    }
}
