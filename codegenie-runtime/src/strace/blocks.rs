//! A big trace file parsed on two threads, with the facts of the
//! sequential parse.
//!
//! The file is cut into fixed blocks of bytes; the lines of a block are
//! those that start in it (the last may run on past its end). Each block
//! is read with positioned reads and put through [`Pre`] by whichever
//! thread claims it, into records: the lines' effects on process state,
//! the paths they named in a buffer of their own, or the line itself when
//! it must be taken whole. Each thread adds paths to sets of its own,
//! which are the same in any order. The collector then takes the records
//! block after block, in file order, on the first thread, which otherwise
//! prepares blocks too: the work follows whichever thread is free, and
//! the order-dependent part (pids, cwds, fd tables, joined calls) sees the
//! lines exactly as a sequential parse does.
//!
//! Blocks are claimed at most [`AHEAD`] past the one the collector is at,
//! so memory is a few blocks beyond the distinct facts, whatever the
//! file's size.

use std::io;
use std::ops::Range;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use super::collect::Collector;
use super::distinct::SortedText;
use super::facts::TraceFacts;
use super::lines::MAX_LINE;
use super::pre::{Fast, Opened, Pre};
use super::seen::{Seen, SETS};
use super::ParseOptions;

/// Bytes of a block.
pub(crate) const BLOCK: usize = 256 << 10;
/// Blocks claimed past the one the collector is at, at most.
const AHEAD: usize = 4;
/// Bytes read at a time past a block's end, to finish its last line.
const TAIL_READ: usize = 64 << 10;

/// Bytes that can be read at any offset, by two threads at once.
pub(crate) trait Source: Sync {
    /// Its length when the parse starts (bytes added later are not read).
    fn size(&self) -> u64;
    /// Reads at `offset` as `pread` does: fewer bytes than asked, or 0 at
    /// the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

/// A file and its length when the parse started.
pub(crate) struct FileSource<'f> {
    pub(crate) file: &'f std::fs::File,
    pub(crate) len: u64,
}

impl Source for FileSource<'_> {
    fn size(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self.file, buf, offset)
    }
}

impl Source for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let rest = usize::try_from(offset)
            .ok()
            .and_then(|o| self.get(o..))
            .unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }
}

/// One line of a prepared block.
#[derive(Debug)]
enum Rec {
    /// A line the collector takes whole (its place in the block's bytes).
    Whole(Range<usize>),
    /// A line longer than [`MAX_LINE`].
    Overlong,
    /// A line whose stateless work is done.
    Fast {
        pid: Option<u32>,
        /// The dirfd argument, in the block's bytes.
        dirfd: Option<Range<usize>>,
        opened: Option<OpenedRec>,
    },
}

/// [`Opened`] with its strings in the block's `paths`.
#[derive(Debug)]
struct OpenedRec {
    fd: Option<i32>,
    path: Range<usize>,
    resolved: Option<Range<usize>>,
    pair: bool,
}

/// A block read and put through [`Pre`]; its buffers are reused.
#[derive(Default)]
struct Prepared {
    bytes: Bytes,
    recs: Vec<Rec>,
    /// The paths of its opens, end to end.
    paths: String,
}

/// Reads the lines that start in block `b` into `bytes` (cleared first)
/// and returns where they lie in it.
fn read_block<S: Source + ?Sized>(
    src: &S,
    b: usize,
    size: usize,
    bytes: &mut Bytes,
) -> io::Result<Range<usize>> {
    bytes.len = 0;
    let len = src.size();
    let start = (b as u64).saturating_mul(size as u64);
    if start >= len {
        return Ok(0..0);
    }
    let end = start.saturating_add(size as u64).min(len);
    // The byte before the block tells whether a line starts at its first.
    let from = start.saturating_sub(1);
    let got = read_more(src, bytes, from, (end - from) as usize)?;
    let first = if b == 0 {
        0
    } else {
        match memchr::memchr(b'\n', bytes.get()) {
            Some(i) => i + 1,
            None => return Ok(0..0),
        }
    };
    if first >= bytes.len {
        // Every byte of the block belongs to a line that started before.
        return Ok(0..0);
    }
    // The last line that starts here may end past the block.
    let mut pos = from + got as u64;
    if bytes.get().last() != Some(&b'\n') && pos < len {
        let tail = memchr::memrchr(b'\n', &bytes.get()[first..]).map_or(first, |i| first + i + 1);
        loop {
            // Too long to be a line already: the block's last, overlong.
            if bytes.len - tail > MAX_LINE || pos >= len {
                break;
            }
            let old = bytes.len;
            let want = TAIL_READ.min((len - pos) as usize);
            let got = read_more(src, bytes, pos, want)?;
            if got == 0 {
                break;
            }
            pos += got as u64;
            if let Some(i) = memchr::memchr(b'\n', &bytes.get()[old..]) {
                bytes.len = old + i + 1;
                break;
            }
        }
    }
    Ok(first..bytes.len)
}

/// Appends up to `want` bytes read at `offset` to `bytes`; fewer only at
/// the source's end. Returns how many.
fn read_more<S: Source + ?Sized>(
    src: &S,
    bytes: &mut Bytes,
    offset: u64,
    want: usize,
) -> io::Result<usize> {
    let old = bytes.len;
    let buf = &mut bytes.buf;
    // Zeroed once when it grows, then reused: not zeroed for every read.
    if buf.len() < old + want {
        buf.resize(old + want, 0);
    }
    let mut got = 0;
    while got < want {
        match src.read_at(&mut buf[old + got..old + want], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.len = old + got;
    Ok(got)
}

/// A reused read buffer: `buf[..len]` holds what was read.
#[derive(Default)]
struct Bytes {
    buf: Vec<u8>,
    len: usize,
}

impl Bytes {
    fn get(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The lines of `text` as [`super::lines::for_each_line`] gives them:
/// `(place, overlong)`, the last one without a newline if the text does
/// not end with one.
fn each_line(text: Range<usize>, bytes: &[u8], mut f: impl FnMut(Range<usize>, bool)) {
    let mut start = text.start;
    for nl in memchr::memchr_iter(b'\n', &bytes[text.clone()]) {
        let nl = text.start + nl;
        f(start..nl, nl - start > MAX_LINE);
        start = nl + 1;
    }
    if start < text.end {
        f(start..text.end, text.end - start > MAX_LINE);
    }
}

/// Reads block `b` into `prep` and puts its lines through `pre`.
fn prepare<S: Source + ?Sized>(
    src: &S,
    b: usize,
    size: usize,
    pre: &mut Pre,
    seen: &mut Seen,
    prep: &mut Prepared,
) -> io::Result<()> {
    let Prepared { bytes, recs, paths } = prep;
    recs.clear();
    paths.clear();
    let text = read_block(src, b, size, bytes)?;
    let bytes = bytes.get();
    let base = bytes.as_ptr() as usize;
    each_line(text, bytes, |line, overlong| {
        if overlong {
            recs.push(Rec::Overlong);
            return;
        }
        let rec = match pre.line(&bytes[line.clone()], seen) {
            None => Rec::Whole(line),
            Some(fast) => Rec::Fast {
                pid: fast.pid,
                // A slice of the line: its place is its address's offset.
                dirfd: fast.dirfd.map(|d| {
                    let at = d.as_ptr() as usize - base;
                    at..at + d.len()
                }),
                opened: fast.opened.map(|o| {
                    let path = push(paths, o.path);
                    // Mostly the fd's name is the path itself (see `pre`).
                    let resolved = o.resolved.map(|r| {
                        if std::ptr::eq(r, o.path) {
                            path.clone()
                        } else {
                            push(paths, r)
                        }
                    });
                    OpenedRec {
                        fd: o.fd,
                        path,
                        resolved,
                        pair: o.pair,
                    }
                }),
            },
        };
        recs.push(rec);
    });
    Ok(())
}

/// Appends `s` to `paths` and returns its place.
fn push(paths: &mut String, s: &str) -> Range<usize> {
    let start = paths.len();
    paths.push_str(s);
    start..paths.len()
}

/// Hands the records of a prepared block to the collector, in order.
fn collect(collector: &mut Collector<'_>, prep: &Prepared) {
    let bytes = prep.bytes.get();
    let paths = prep.paths.as_str();
    for rec in &prep.recs {
        match rec {
            Rec::Whole(line) => collector.whole_line(&bytes[line.clone()]),
            Rec::Overlong => collector.malformed(),
            Rec::Fast { pid, dirfd, opened } => collector.fast(Fast {
                pid: *pid,
                dirfd: dirfd.clone().map(|d| &bytes[d]),
                opened: opened.as_ref().map(|o| Opened {
                    fd: o.fd,
                    path: &paths[o.path.clone()],
                    resolved: o.resolved.clone().map(|r| &paths[r]),
                    pair: o.pair,
                }),
            }),
        }
    }
}

/// What the two threads share.
struct State {
    /// The next block nobody has claimed.
    next: usize,
    /// The block the collector is at.
    at: usize,
    /// Prepared blocks the collector has not reached.
    ready: std::collections::BTreeMap<usize, io::Result<Prepared>>,
    /// Emptied blocks, for reuse.
    free: Vec<Prepared>,
    /// The collector stopped (an error): the helper stops too.
    stop: bool,
    /// The helper has ended (or never started).
    helper_done: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait(st)
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Marks the helper as ended however it ends, so the collector never waits
/// for a block it will not prepare.
struct HelperGuard<'s>(&'s Shared);

impl Drop for HelperGuard<'_> {
    fn drop(&mut self) {
        self.0.lock().helper_done = true;
        self.0.changed.notify_all();
    }
}

/// The second thread: claims and prepares blocks until none are left,
/// then sorts the sets it filled.
fn helper<S: Source + ?Sized>(
    src: &S,
    size: usize,
    blocks: usize,
    shared: &Shared,
) -> [SortedText; SETS] {
    let _guard = HelperGuard(shared);
    let mut pre = Pre::default();
    let mut seen = Seen::here();
    loop {
        let (b, mut prep) = {
            let mut st = shared.lock();
            loop {
                if st.stop || st.next >= blocks {
                    drop(st);
                    return seen.finish_text();
                }
                if st.next < st.at + AHEAD {
                    let b = st.next;
                    st.next += 1;
                    break (b, st.free.pop().unwrap_or_default());
                }
                st = shared.wait(st);
            }
        };
        let done = prepare(src, b, size, &mut pre, &mut seen, &mut prep).map(|()| prep);
        shared.lock().ready.insert(b, done);
        shared.changed.notify_all();
    }
}

/// What the collector does next.
enum Job {
    /// Take the records of the block it is at.
    Collect(io::Result<Prepared>),
    /// Prepare this block, ahead.
    Prepare(usize, Prepared),
    /// The helper ended without preparing the block it claimed.
    HelperGone,
}

/// Parses `src` in blocks of `size` bytes on two threads (one if a second
/// cannot start): the facts, and the path sets of each thread, sorted.
pub(crate) fn parse<S: Source + ?Sized>(
    src: &S,
    opts: &ParseOptions,
    size: usize,
) -> io::Result<(TraceFacts, Vec<[SortedText; SETS]>)> {
    let size = size.max(1);
    let blocks = usize::try_from(src.size().div_ceil(size as u64)).unwrap_or(usize::MAX);
    let shared = Shared {
        state: Mutex::new(State {
            next: 0,
            at: 0,
            ready: Default::default(),
            free: Vec::new(),
            stop: false,
            helper_done: false,
        }),
        changed: Condvar::new(),
    };
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("strace-blocks".into())
            .spawn_scoped(scope, || helper(src, size, blocks, &shared));
        let helper = match spawned {
            Ok(h) => Some(h),
            Err(_) => {
                shared.lock().helper_done = true;
                None
            }
        };
        let mine = collect_all(src, opts, size, blocks, &shared);
        if mine.is_err() {
            shared.lock().stop = true;
            shared.changed.notify_all();
        }
        let theirs = match helper.map(|h| h.join()) {
            Some(Ok(sets)) => Some(sets),
            // Preparing lines does not panic; if it did, it is a bug,
            // reported as the parse's own.
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => None,
        };
        let (facts, sets) = mine?;
        let mut parts = vec![sets];
        parts.extend(theirs);
        Ok((facts, parts))
    })
}

/// The first thread: the collector over every block in order, preparing
/// blocks ahead while the one it is at is not ready.
fn collect_all<S: Source + ?Sized>(
    src: &S,
    opts: &ParseOptions,
    size: usize,
    blocks: usize,
    shared: &Shared,
) -> io::Result<(TraceFacts, [SortedText; SETS])> {
    let mut collector = Collector::new(opts, None);
    collector.keep_sets_here();
    let mut pre = Pre::default();
    let mut at = 0;
    while at < blocks {
        let job = {
            let mut st = shared.lock();
            loop {
                if let Some(done) = st.ready.remove(&at) {
                    break Job::Collect(done);
                }
                if st.next < blocks && st.next < at + AHEAD {
                    let b = st.next;
                    st.next += 1;
                    break Job::Prepare(b, st.free.pop().unwrap_or_default());
                }
                if st.helper_done {
                    break Job::HelperGone;
                }
                st = shared.wait(st);
            }
        };
        match job {
            Job::Collect(done) => {
                let prep = done?;
                collect(&mut collector, &prep);
                at += 1;
                let mut st = shared.lock();
                st.at = at;
                st.free.push(prep);
                drop(st);
                shared.changed.notify_all();
            }
            Job::Prepare(b, mut prep) => {
                let done =
                    prepare(src, b, size, &mut pre, collector.seen_mut(), &mut prep).map(|()| prep);
                shared.lock().ready.insert(b, done);
            }
            // Its panic is reported when it is joined; an end without one
            // would be a bug, and the facts would be short.
            Job::HelperGone => {
                return Err(io::Error::other("the parse's second thread ended early"));
            }
        }
    }
    Ok(collector.finish_text())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strace::{lines, parse_trace_sorted, SortedFacts};
    use proptest::prelude::*;

    /// The lines of `data` read in blocks of `size`, as `(text, overlong)`.
    fn lines_in_blocks(data: &[u8], size: usize) -> Vec<Option<Vec<u8>>> {
        let mut out = Vec::new();
        let mut bytes = Bytes::default();
        for b in 0..data.len().div_ceil(size) {
            let text = read_block(data, b, size, &mut bytes).unwrap();
            each_line(text, bytes.get(), |line, overlong| {
                out.push((!overlong).then(|| bytes.get()[line].to_vec()));
            });
        }
        out
    }

    /// The lines of `data` read as a stream, as from a file: through a
    /// buffer smaller than a line may be, so a line longer than
    /// [`MAX_LINE`] is always overlong.
    fn lines_streamed(data: &[u8]) -> Vec<Option<Vec<u8>>> {
        let mut out = Vec::new();
        let reader = std::io::BufReader::with_capacity(1 << 20, data);
        lines::for_each_line(reader, |l| match l {
            lines::Line::Text(t) => out.push(Some(t.to_vec())),
            lines::Line::Overlong => out.push(None),
        })
        .unwrap();
        out
    }

    /// The JSON and every other fact of a parse.
    fn outcome(facts: SortedFacts) -> (String, crate::strace::TraceFacts) {
        let mut json = Vec::new();
        facts.write_json_pretty(&mut json).unwrap();
        (String::from_utf8(json).unwrap(), facts.into_facts())
    }

    fn sequential(data: &[u8]) -> (String, crate::strace::TraceFacts) {
        let reader = std::io::BufReader::with_capacity(1 << 20, data);
        outcome(parse_trace_sorted(reader, &ParseOptions::default()).unwrap())
    }

    fn in_blocks(data: &[u8], size: usize) -> (String, crate::strace::TraceFacts) {
        let (facts, parts) = parse(data, &ParseOptions::default(), size).unwrap();
        outcome(SortedFacts { facts, parts })
    }

    #[test]
    fn blocks_give_the_lines_of_a_stream() {
        let cases: &[&[u8]] = &[
            b"",
            b"\n",
            b"\n\n\n",
            b"a",
            b"a\n",
            b"first line\nsecond\n\nlast-without-newline",
            b"ab\ncd\nef\n",
            b"\nx\n\ny",
        ];
        for data in cases {
            for size in 1..=12 {
                assert_eq!(
                    lines_in_blocks(data, size),
                    lines_streamed(data),
                    "{:?} in blocks of {size}",
                    String::from_utf8_lossy(data)
                );
            }
        }
    }

    /// Each line's length, `None` when overlong.
    fn lengths(lines: Vec<Option<Vec<u8>>>) -> Vec<Option<usize>> {
        lines.into_iter().map(|l| l.map(|l| l.len())).collect()
    }

    #[test]
    fn an_overlong_line_across_blocks_is_one_overlong_line() {
        for tail in [&b"\nok\n"[..], b"\nok", b""] {
            let mut data = b"before\n".to_vec();
            data.resize(data.len() + MAX_LINE + 3, b'a');
            data.extend_from_slice(tail);
            let want = lengths(lines_streamed(&data));
            assert_eq!(want[..2], [Some(6), None]);
            for size in [4096, MAX_LINE / 3, MAX_LINE + 1, 2 * MAX_LINE] {
                assert_eq!(
                    lengths(lines_in_blocks(&data, size)),
                    want,
                    "blocks of {size}"
                );
            }
        }
        // A line of exactly the limit is kept.
        let mut data = vec![b'b'; MAX_LINE];
        data.extend_from_slice(b"\nok\n");
        let want = lengths(lines_streamed(&data));
        assert_eq!(want, [Some(MAX_LINE), Some(2)]);
        assert_eq!(lengths(lines_in_blocks(&data, 100_000)), want);
    }

    /// Lines of every kind the collector treats apart, for pids 1 to 3:
    /// opens made absolute against a decoration or a cwd, probes, misses,
    /// execs (relative, `/proc/self/exe`), clones, exits, mappings,
    /// interrupted calls, notices and garbage.
    const LINES: &[&str] = &[
        "1 openat(AT_FDCWD</w>, \"a/b\", O_RDONLY) = 3</w/a/b>",
        "2 openat(AT_FDCWD</w/sub>, \"../c\", O_WRONLY|O_CREAT, 0644) = 4</w/c>",
        "1 openat(AT_FDCWD, \"rel\", O_RDONLY) = 5</w/rel>",
        "3 open(\"rel2\", O_RDWR) = 6</x/rel2>",
        "1 openat(AT_FDCWD</w>, \"/etc/ssl/c.pem\", O_RDONLY) = 3</etc/ssl/real.pem>",
        "2 openat(AT_FDCWD</w>, \"/lib/libz.so\", O_RDONLY|O_CLOEXEC) = 3</usr/lib/libz.so.1>",
        "2 openat(3</w/d>, \"x\", O_RDONLY) = 7</w/d/x>",
        "1 openat(AT_FDCWD</w>, \"/dev/null\", O_RDONLY) = 8</dev/null>",
        "1 openat(AT_FDCWD</w>, \"log\", O_WRONLY) = 9</dev/pts/0>",
        "1 openat(AT_FDCWD</w>, \"/proc/self/exe\", O_RDONLY) = 3</usr/bin/python3>",
        "1 openat(AT_FDCWD</w>, \"/nope\", O_RDONLY) = -1 ENOENT (No such file or directory)",
        "2 openat(AT_FDCWD, \"nope2\", O_RDONLY) = -1 ENOENT (No such file or directory)",
        "1 openat(AT_FDCWD</w>, \"d\", O_RDONLY|O_DIRECTORY) = 3</w/d>",
        "1 openat(AT_FDCWD</other>, \"caf\\303\\251\", O_RDONLY) = 3</other/caf\\303\\251>",
        "1 newfstatat(AT_FDCWD</w>, \"p\", {st_mode=S_IFREG|0644, st_size=1, ...}, 0) = 0",
        "2 newfstatat(3</w/a/b>, \"\", {st_mode=S_IFREG|0644, st_size=1, ...}, AT_EMPTY_PATH) = 0",
        "3 stat(\"q\", {st_mode=S_IFREG|0644, st_size=1, ...}) = 0",
        "1 access(\"/etc/ld.so.preload\", R_OK) = -1 ENOENT (No such file or directory)",
        "1 readlink(\"/proc/self/exe\", \"/usr/bin/python3\", 4096) = 16",
        "2 mmap(NULL, 8192, PROT_READ|PROT_EXEC, MAP_PRIVATE, 3</usr/lib/libz.so.1>, 0) = 0x7f00",
        "2 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, 3</usr/lib/libz.so.1>, 0) = 0x7f00",
        "1 clone(child_stack=NULL, flags=CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x1) = 2",
        "2 clone3({flags=CLONE_VM|CLONE_FILES, exit_signal=0}, 88 <unfinished ...>",
        "2 <... clone3 resumed>) = 3",
        "3 execve(\"./run\", [\"run\"], 0x1 /* 2 vars */) = 0",
        "3 execve(\"/bin/sh\", [\"sh\", \"-c\", \"x\"], 0x1 /* 2 vars */) = 0",
        "2 execve(\"/proc/self/exe\", [\"bash\"], 0x1 /* 2 vars */) = 0",
        "1 chdir(\"/w/sub\") = 0",
        "2 openat(AT_FDCWD</w>, \"half\", O_RDONLY <unfinished ...>",
        "2 <... openat resumed>) = 3</w/half>",
        "3 read(3</w/c>, \"abc\", 3) = 3",
        "1 connect(3<socket:[1]>, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr(\"1.2.3.4\")}, 16) = 0",
        "2 +++ exited with 0 +++",
        "3 +++ killed by SIGKILL +++",
        "1 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=2} ---",
        "strace: Process 3 attached",
        "openat(AT_FDCWD</w>, \"unprefixed\", O_RDONLY) = 3</w/unprefixed>",
        "1 vfork(strace: Process 2 attached",
        "garbage (",
        "",
    ];

    /// Traces of those lines, some cut short or with junk.
    fn trace() -> impl Strategy<Value = Vec<u8>> {
        (
            proptest::collection::vec((0..LINES.len(), 0u8..4), 0..60),
            proptest::collection::vec(any::<u8>(), 0..8),
            any::<bool>(),
        )
            .prop_map(|(picks, junk, newline_at_end)| {
                let mut t = Vec::new();
                for (i, variant) in picks {
                    let line = LINES[i];
                    match variant {
                        // A line cut short now and then.
                        0 => t.extend_from_slice(&line.as_bytes()[..line.len() / 2]),
                        // Another pid.
                        1 => t.extend_from_slice(line.replacen('1', "4", 1).as_bytes()),
                        _ => t.extend_from_slice(line.as_bytes()),
                    }
                    t.push(b'\n');
                }
                t.extend_from_slice(&junk);
                if !newline_at_end && t.last() == Some(&b'\n') {
                    t.pop();
                }
                t
            })
    }

    proptest! {
        #[test]
        fn blocks_give_the_lines_of_any_stream(
            data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'x'), any::<u8>()], 0..300),
            size in 1usize..40,
        ) {
            prop_assert_eq!(lines_in_blocks(&data, size), lines_streamed(&data));
        }

        #[test]
        fn a_parse_in_blocks_is_the_sequential_parse(data in trace(), size in 1usize..400) {
            prop_assert_eq!(in_blocks(&data, size), sequential(&data));
        }

        #[test]
        fn a_parse_of_any_bytes_in_blocks_is_the_sequential_parse(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            size in 1usize..64,
        ) {
            prop_assert_eq!(in_blocks(&data, size), sequential(&data));
        }
    }

    #[test]
    fn a_big_trace_in_blocks_is_the_sequential_parse() {
        // Every kind of line many times over, in blocks smaller and larger
        // than a line, past the size at which a set is sorted in two.
        let mut data = Vec::new();
        for i in 0..40_000 {
            data.extend_from_slice(LINES[i % LINES.len()].as_bytes());
            data.extend_from_slice(
                format!("\n1 openat(AT_FDCWD</w>, \"f{i}\", O_RDONLY) = 3</w/f{i}>\n").as_bytes(),
            );
        }
        let want = sequential(&data);
        assert!(want.1.trace.files_read.len() > 40_000);
        for size in [7, 4096, BLOCK] {
            assert_eq!(in_blocks(&data, size), want, "blocks of {size}");
        }
    }

    #[test]
    fn a_file_parses_in_blocks_as_a_stream() {
        use std::io::Write;
        let mut data = Vec::new();
        let mut i = 0;
        while data.len() < (super::super::PARALLEL_FROM as usize) * 2 {
            data.extend_from_slice(LINES[i % LINES.len()].as_bytes());
            data.extend_from_slice(
                format!("\n2 openat(AT_FDCWD</w>, \"g{i}\", O_RDONLY) = 3</w/g{i}>\n").as_bytes(),
            );
            i += 1;
        }
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        let from_file =
            outcome(crate::strace::parse_file_sorted(&f, &ParseOptions::default()).unwrap());
        assert_eq!(from_file, sequential(&data));
    }
}
