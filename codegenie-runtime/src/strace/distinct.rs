//! Sets of distinct paths while a parse runs, sorted once at its end.
//!
//! A big trace names hundreds of thousands of distinct paths, mostly once
//! per set. A sorted set compares long shared prefixes at every level of
//! every lookup; a plain hash set rehashes every string it holds, reading
//! each from the heap, each time it grows. Here the table holds each
//! string's 64-bit hash beside its place: growing moves entries without
//! touching the strings, and a lookup compares text only when the hashes
//! agree. Two different strings with the same hash are kept apart in a
//! small overflow set, so a collision costs time, never a fact.
//!
//! The strings themselves sit end to end in one buffer, in first-seen
//! order, not in an allocation each: adding one is a copy, not a `malloc`,
//! and the sort at the end reads them in the order they lie in memory
//! instead of chasing one pointer per string (on a walk of 113k files that
//! chase was a quarter of the whole run; docs/architecture.md,
//! "Benchmarks").

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

use super::pidhash::StrHasher;

/// Where one string lies in [`DistinctSet::text`].
type Span = Range<usize>;

/// Distinct strings, each stored once.
#[derive(Default)]
pub(crate) struct DistinctSet {
    /// Every distinct string of `spans`, end to end.
    text: String,
    /// Each distinct string's place in `text`, in first-seen order.
    spans: Vec<Span>,
    /// A string's hash to its index in `spans`.
    by_hash: HashMap<u64, usize, BuildHasherDefault<Prehashed>>,
    /// Strings whose hash another string in `by_hash` already has.
    collided: BTreeSet<Box<str>>,
}

impl DistinctSet {
    /// Adds `s` unless present.
    pub(crate) fn insert(&mut self, s: &str) {
        let mut h = StrHasher::default();
        h.write(s.as_bytes());
        match self.by_hash.entry(h.finish()) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(self.spans.len());
                let start = self.text.len();
                self.text.push_str(s);
                self.spans.push(start..self.text.len());
            }
            std::collections::hash_map::Entry::Occupied(o) => {
                let held = &self.text[self.spans[*o.get()].clone()];
                if held != s && !self.collided.contains(s) {
                    self.collided.insert(Box::from(s));
                }
            }
        }
    }

    /// How many distinct strings it holds.
    pub(crate) fn len(&self) -> usize {
        self.spans.len() + self.collided.len()
    }

    /// Every string, sorted, moved out (the set is left empty). A large set
    /// is sorted in two halves side by side when `two_threads`.
    pub(crate) fn take_sorted(&mut self, two_threads: bool) -> BTreeSet<String> {
        let (text, spans) = self.take_all();
        let sorted = if two_threads && spans.len() >= SPLIT {
            sort_split(&text, spans, |side| owned(&text, side))
        } else {
            let mut spans = spans;
            sort_from(&mut spans, &text, 0);
            owned(&text, &spans)
        };
        // Collecting sorted input checks the order in one pass and builds
        // the tree in bulk.
        sorted.into_iter().collect()
    }

    /// [`Self::take_sorted`] without making a `String` of each: the
    /// strings stay in one buffer, listed in byte order. `parse-strace`
    /// prints them from there; on a walk of 113k files the strings and
    /// the tree were a third of the memory the parse touched.
    pub(crate) fn take_sorted_text(&mut self, two_threads: bool) -> SortedText {
        let (text, mut spans) = self.take_all();
        if two_threads && spans.len() >= SPLIT {
            spans = sort_split(&text, spans, <[Span]>::to_vec);
        } else {
            sort_from(&mut spans, &text, 0);
        }
        SortedText { text, spans }
    }

    /// The strings and their places, moved out.
    fn take_all(&mut self) -> (String, Vec<Span>) {
        let DistinctSet {
            mut text,
            mut spans,
            by_hash,
            collided,
        } = std::mem::take(self);
        drop(by_hash);
        for s in collided {
            let start = text.len();
            text.push_str(&s);
            spans.push(start..text.len());
        }
        (text, spans)
    }
}

/// Distinct strings in one buffer, listed in byte order.
#[derive(Debug, Default)]
pub(crate) struct SortedText {
    text: String,
    /// Places in `text`, sorted by the strings there.
    spans: Vec<Span>,
}

impl SortedText {
    /// The strings in byte order.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.spans.iter().map(|sp| &self.text[sp.clone()])
    }

    /// How many strings it holds.
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    /// The strings as a set.
    pub(crate) fn into_set(self) -> BTreeSet<String> {
        self.iter().map(str::to_owned).collect()
    }
}

/// The union of two sorted lists in byte order, each string once (see
/// [`merged`]), comparing strings past the prefix all of them share: the
/// lists of one walk share a temporary folder, and comparing it again for
/// every string was most of writing the union.
pub(crate) fn merged_text<'s>(
    a: &'s SortedText,
    b: &'s SortedText,
) -> impl Iterator<Item = &'s str> + 's {
    let ends = [a, b].into_iter().flat_map(|t| {
        let first = t.spans.first().map(|sp| &t.text.as_bytes()[sp.clone()]);
        let last = t.spans.last().map(|sp| &t.text.as_bytes()[sp.clone()]);
        first.into_iter().chain(last)
    });
    // A sorted list's first and last strings share what all of its share.
    let mut shared: Option<&[u8]> = None;
    for e in ends {
        shared = Some(match shared {
            None => e,
            Some(p) => &p[..p.iter().zip(e).take_while(|(x, y)| x == y).count()],
        });
    }
    let skip = shared.map_or(0, <[u8]>::len);
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || {
        let x = a.spans.get(i).map(|sp| &a.text[sp.clone()]);
        let y = b.spans.get(j).map(|sp| &b.text[sp.clone()]);
        match (x, y) {
            (Some(x), Some(y)) => match x.as_bytes()[skip..].cmp(&y.as_bytes()[skip..]) {
                std::cmp::Ordering::Less => {
                    i += 1;
                    Some(x)
                }
                std::cmp::Ordering::Greater => {
                    j += 1;
                    Some(y)
                }
                std::cmp::Ordering::Equal => {
                    i += 1;
                    j += 1;
                    Some(x)
                }
            },
            (Some(x), None) => {
                i += 1;
                Some(x)
            }
            (None, y) => {
                j += 1;
                y
            }
        }
    })
}

/// The strings of two sorted, duplicate-free lists in byte order, each
/// once: the union of two threads' sets.
pub(crate) fn merged<'s>(
    a: impl Iterator<Item = &'s str>,
    b: impl Iterator<Item = &'s str>,
) -> impl Iterator<Item = &'s str> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) => match x.cmp(y) {
            std::cmp::Ordering::Less => a.next(),
            std::cmp::Ordering::Greater => b.next(),
            std::cmp::Ordering::Equal => {
                b.next();
                a.next()
            }
        },
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

/// The strings of `spans`, in their order.
fn owned(text: &str, spans: &[Span]) -> Vec<String> {
    spans.iter().map(|sp| text[sp.clone()].to_owned()).collect()
}

/// Below this many strings a set is sorted on one thread.
pub(crate) const SPLIT: usize = 32 << 10;

/// Sorts `spans` (at least [`SPLIT`] of them) on two threads and returns
/// what `finish` makes of each side's spans in byte order, first side
/// first. The strings are keyed once, split at the median key (ties stay
/// on one side, so each side sorts alone), and each side is sorted, and
/// finished, on its own thread. Without a second thread both sides are
/// sorted here.
fn sort_split<T: Send>(
    text: &str,
    spans: Vec<Span>,
    finish: impl Fn(&[Span]) -> Vec<T> + Sync,
) -> Vec<T> {
    let depth = shared_prefix(text, &spans, 0);
    let mut keyed: Vec<(u128, Span)> = spans
        .into_iter()
        .map(|sp| (key(text, &sp, depth), sp))
        .collect();
    let mid = keyed.len() / 2;
    keyed.select_nth_unstable_by_key(mid, |e| e.0);
    let pivot = keyed[mid].0;
    // Below `mid` every key is at most the pivot's: move the pivot's ties
    // from there to the upper side.
    let mut lower = 0;
    for i in 0..mid {
        if keyed[i].0 < pivot {
            keyed.swap(i, lower);
            lower += 1;
        }
    }
    let (low, high) = keyed.split_at_mut(lower);
    let sort_side = |side: &mut [(u128, Span)]| -> Vec<T> {
        let mut out: Vec<Span> = vec![0..0; side.len()];
        sort_keyed(side, &mut out, text, depth);
        finish(&out)
    };
    let (mut first, second) = std::thread::scope(|scope| {
        let other = std::thread::Builder::new()
            .name("strace-sort".into())
            .spawn_scoped(scope, || sort_side(high))
            .ok();
        let first = sort_side(low);
        let second = other.map(|h| match h.join() {
            Ok(sorted) => sorted,
            // Sorting strings does not panic; if it did, it is a bug,
            // reported as the parse's own.
            Err(panic) => std::panic::resume_unwind(panic),
        });
        (first, second)
    });
    // Without a second thread, the upper side is sorted here.
    let second = second.unwrap_or_else(|| sort_side(high));
    first.extend(second);
    first
}

/// Below this many strings a plain sort is as quick.
const SMALL: usize = 32;
/// Deeper than this, ties are sorted plainly: bounded recursion, whatever
/// the input's strings.
const MAX_DEPTH: usize = 512;

/// The bytes of `sp` in `text` from `depth` on (empty past its end).
fn tail<'t>(text: &'t str, sp: &Span, depth: usize) -> &'t [u8] {
    text.as_bytes()[sp.clone()].get(depth..).unwrap_or_default()
}

/// Sorts `v` in byte order. Paths in one set share long prefixes (a temp
/// folder, `/usr/lib/python3/`), which a plain sort compares again at every
/// step. Here strings are ordered by 16 bytes at a time, held in the sorted
/// vector (a most-significant-first radix of sorts), and only what ties on
/// them goes one level deeper. `v`'s strings all agree on their first
/// `depth` bytes (a string shorter than that reads as NUL-padded).
fn sort_from(v: &mut [Span], text: &str, depth: usize) {
    if v.len() <= SMALL || depth >= MAX_DEPTH {
        v.sort_unstable_by(|a, b| text[a.clone()].cmp(&text[b.clone()]));
        return;
    }
    let depth = shared_prefix(text, v, depth);
    // Keys beside the strings: sorting and finding ties touch no string.
    let mut keyed: Vec<(u128, Span)> = v
        .iter()
        .map(|sp| (key(text, sp, depth), sp.clone()))
        .collect();
    sort_keyed(&mut keyed, v, text, depth);
}

/// `depth` plus what every string of `v` shares beyond it (a whole temp
/// folder).
fn shared_prefix(text: &str, v: &[Span], depth: usize) -> usize {
    let Some(first) = v.first() else {
        return depth;
    };
    let first = tail(text, first, depth);
    let mut shared = first.len();
    for sp in v {
        shared = first[..shared]
            .iter()
            .zip(tail(text, sp, depth))
            .take_while(|(a, b)| a == b)
            .count();
    }
    depth + shared
}

/// The 16 bytes of `sp` from `depth`, big-endian and NUL-padded: strings
/// whose keys differ differ in the same direction (a string ending inside
/// the window is a prefix of every other string of its tie there); equal
/// keys go a level deeper.
fn key(text: &str, sp: &Span, depth: usize) -> u128 {
    let tail = tail(text, sp, depth);
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
}

/// Sorts `keyed` (keys at `depth`) and writes its spans, in byte order of
/// their strings, to `out` (as long as `keyed`).
fn sort_keyed(keyed: &mut [(u128, Span)], out: &mut [Span], text: &str, depth: usize) {
    keyed.sort_unstable_by_key(|e| e.0);
    let mut i = 0;
    while i < keyed.len() {
        let k = keyed[i].0;
        let mut j = i + 1;
        while j < keyed.len() && keyed[j].0 == k {
            j += 1;
        }
        for (slot, (_, sp)) in out[i..j].iter_mut().zip(keyed[i..j].iter()) {
            *slot = sp.clone();
        }
        let tie = &mut out[i..j];
        if tie.len() > 1 {
            if tie.iter().all(|sp| sp.len() <= depth + 16) {
                // Equal up to their ends, which NUL padding hides.
                tie.sort_unstable_by(|a, b| text[a.clone()].cmp(&text[b.clone()]));
            } else {
                sort_from(tie, text, depth + 16);
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

    fn sorted_text(strings: &[String]) -> SortedText {
        let mut s = DistinctSet::default();
        for p in strings {
            s.insert(p);
        }
        s.take_sorted_text(false)
    }

    proptest::proptest! {
        #[test]
        fn the_union_of_two_sorted_lists_is_sorted_and_distinct(
            a in proptest::collection::vec("/p(/[ab]{0,3}){0,3}", 0..20),
            b in proptest::collection::vec("/p(/[ab]{0,3}){0,3}", 0..20),
        ) {
            let (ta, tb) = (sorted_text(&a), sorted_text(&b));
            let mut want: Vec<&str> = a.iter().chain(&b).map(String::as_str).collect();
            want.sort_unstable();
            want.dedup();
            let got: Vec<&str> = merged_text(&ta, &tb).collect();
            proptest::prop_assert_eq!(&got, &want);
            let plain: Vec<&str> = merged(ta.iter(), tb.iter()).collect();
            proptest::prop_assert_eq!(plain, want);
        }
    }

    #[test]
    fn distinct_and_sorted() {
        let mut s = DistinctSet::default();
        for p in ["/b", "/a", "/b", "/c/d", "/a"] {
            s.insert(p);
        }
        assert_eq!(
            s.take_sorted(false).into_iter().collect::<Vec<_>>(),
            ["/a", "/b", "/c/d"]
        );
        assert!(s.take_sorted(false).is_empty());
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
            assert_eq!(sorted_by_set(case, false), plain_sort(case), "{case:?}");
        }
    }

    /// The strings sorted through a set, checked to be what the sorted
    /// text lists too.
    fn sorted_by_set(strings: &[&str], two_threads: bool) -> Vec<String> {
        let mut s = DistinctSet::default();
        let mut t = DistinctSet::default();
        for p in strings {
            s.insert(p);
            t.insert(p);
        }
        let sorted: Vec<String> = s.take_sorted(two_threads).into_iter().collect();
        let text = t.take_sorted_text(two_threads);
        assert_eq!(text.len(), sorted.len());
        assert!(text.iter().eq(sorted.iter().map(String::as_str)));
        sorted
    }

    fn plain_sort(strings: &[&str]) -> Vec<String> {
        let mut plain: Vec<String> = strings.iter().map(|&s| s.to_owned()).collect();
        plain.sort();
        plain.dedup();
        plain
    }

    #[test]
    fn a_large_set_split_in_two_is_byte_order() {
        // Past the split, with keys that tie across the median (three
        // first bytes after the shared prefix, then long shared runs),
        // names ending inside a key window, and NUL bytes.
        let n = SPLIT + 7_001;
        let many: Vec<String> = (0..n)
            .rev()
            .map(|i| match i % 4 {
                0 => format!("/p/{}/the-same-sixteen-bytes/{i}", i % 3),
                1 => format!("/p/{}/the-same-sixteen-bytes/{}", i % 3, i % 977),
                2 => format!("/p/{}/short{}", i % 3, i % 5),
                _ => format!("/p/{}/nul\0{}\0", i % 3, i),
            })
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let expected = plain_sort(&many);
        assert_eq!(sorted_by_set(&many, true), expected);
        assert_eq!(sorted_by_set(&many, false), expected);
        // Every key the same: the split leaves one side empty.
        let same: Vec<String> = (0..n).map(|i| format!("/q/0123456789abcdef/{i}")).collect();
        let same: Vec<&str> = same.iter().map(String::as_str).collect();
        assert_eq!(sorted_by_set(&same, true), plain_sort(&same));
    }

    #[test]
    fn a_hash_collision_keeps_both_strings() {
        let mut s = DistinctSet::default();
        // Another string already under the hash of `/second`.
        let mut h = StrHasher::default();
        h.write(b"/second");
        s.text.push_str("/other");
        s.spans.push(0..s.text.len());
        s.by_hash.insert(h.finish(), 0);
        for p in ["/second", "/first", "/second"] {
            s.insert(p);
        }
        assert_eq!(
            s.take_sorted(false).into_iter().collect::<Vec<_>>(),
            ["/first", "/other", "/second"]
        );
    }
}
