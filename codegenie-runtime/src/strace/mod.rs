//! The pure, streaming strace parser (the parser contract,
//! docs/architecture.md, "Parser").
//!
//! Text written by `strace -f` goes in (with or without `-o`, `-y`,
//! `-t/-tt/-ttt/-r`); [`TraceFacts`] come out. Lines are scanned with
//! `memchr` straight from the reader's buffer, only the syscalls the facts
//! come from are parsed, and memory grows with the number of distinct facts
//! and live processes, never with the trace's size. The parser is total:
//! any input parses, what is not understood is counted, nothing panics.
//!
//! One step per module: `lines` (splitting), `prefix` (pid and timestamp),
//! `join` (unfinished/resumed), `unescape` (literals), `call` (arguments),
//! `sockaddr`, [`paths`] (lexical joining and normalisation), `procs`
//! (per-process fds, binary, cwd), `pre` (the part of a line's work that
//! needs no process state), `collect` (the facts), `distinct` (the sets of
//! distinct paths while collecting), `seen` (those sets, filled on a second
//! thread for a big trace), `blocks` (a big file parsed in blocks on two
//! threads), [`rules`], `facts`, `json` (the facts as `parse-strace`
//! prints them), `live` (what a line tells while the trace is written).

mod blocks;
mod call;
mod collect;
mod distinct;
mod facts;
mod join;
mod json;
mod lines;
mod live;
pub mod paths;
mod pidhash;
mod pre;
mod prefix;
mod procs;
pub mod rules;
mod seen;
mod sockaddr;
mod unescape;

pub(crate) use live::absolute_exec;

/// Bytes as text the way trace paths are written (invalid UTF-8 as `\xHH`),
/// so names read from an image match names read from a trace.
pub(crate) use unescape::render_into;

pub use facts::{
    ExecRecord, ExitStatus, NetworkEndpoints, ParsedTrace, TraceFacts, MAX_EXEC_RECORDS,
};

use std::collections::BTreeMap;
use std::io::BufRead;

/// Optional context for a parse.
#[derive(Debug, Clone, Default)]
pub struct ParseOptions {
    /// `#!`/`PT_INTERP` interpreters of executed paths (`{path: interpreter}`),
    /// read from the image by the probe (the runtime-trace slice contract,
    /// docs/architecture.md). Empty for `parse-strace`. When not empty it is
    /// taken as complete: an executed path missing from it is not a script,
    /// so the process runs that path itself and a `/proc/self/exe` target
    /// seen in the trace is its resolved name (see [`ParsedTrace::resolved`]).
    pub interpreters: BTreeMap<String, String>,
    /// Whether the trace includes `chdir`/`fchdir` (the product's own
    /// traces do). Then a process's known cwd is exact, and a relative exec
    /// is made absolute against it at once; otherwise an untraced `chdir`
    /// may have made it stale, so the cwd is forgotten at each exec and a
    /// relative exec waits for the new program to show its cwd.
    pub chdir_traced: bool,
}

/// Parse one trace, streaming. Never panics; malformed lines are counted.
/// The only error is the reader's own I/O error.
pub fn parse_trace<R: BufRead>(reader: R, opts: &ParseOptions) -> std::io::Result<TraceFacts> {
    let mut collector = collect::Collector::new(opts, None);
    lines::for_each_line(reader, |line| match line {
        lines::Line::Text(t) => collector.line(t),
        lines::Line::Overlong => collector.malformed(),
    })?;
    Ok(collector.finish().0)
}

/// Parse one trace as [`parse_trace`] does, keeping its path sets sorted
/// in one buffer each instead of a set of `String`s: what `parse-strace`
/// prints a single trace from (docs/architecture.md, "Benchmarks").
pub fn parse_trace_sorted<R: BufRead>(
    reader: R,
    opts: &ParseOptions,
) -> std::io::Result<SortedFacts> {
    let mut collector = collect::Collector::new(opts, None);
    lines::for_each_line(reader, |line| match line {
        lines::Line::Text(t) => collector.line(t),
        lines::Line::Overlong => collector.malformed(),
    })?;
    let (facts, sets) = collector.finish_text();
    Ok(SortedFacts {
        facts,
        parts: vec![sets],
    })
}

/// Files smaller than this are parsed on one thread: a second costs more
/// than it saves.
const PARALLEL_FROM: u64 = 2 << 20;

/// Parse one trace file as [`parse_trace_sorted`] does. A big regular file
/// is read in blocks and parsed on two threads (see `blocks`), with the
/// same facts, up to the length it had when the parse started (what a
/// tracer appends meanwhile is not read); anything else (a pipe, a small
/// file) is read as a stream to its end.
pub fn parse_file_sorted(
    file: &std::fs::File,
    opts: &ParseOptions,
) -> std::io::Result<SortedFacts> {
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() < PARALLEL_FROM || !seen::two_cores() {
        return parse_trace_sorted(std::io::BufReader::with_capacity(1 << 20, file), opts);
    }
    let src = blocks::FileSource {
        file,
        len: meta.len(),
    };
    let (facts, parts) = blocks::parse(&src, opts, blocks::BLOCK)?;
    Ok(SortedFacts { facts, parts })
}

/// The facts of one trace with its path sets still sorted strings in one
/// buffer each (see [`parse_trace_sorted`]).
#[derive(Debug)]
pub struct SortedFacts {
    /// Every fact but the path sets, which are empty here.
    facts: TraceFacts,
    /// The path sets, in `seen::PathSet` order, in one or more parts
    /// (each thread of a parse fills its own) whose union they are.
    parts: Vec<[distinct::SortedText; seen::SETS]>,
}

impl SortedFacts {
    /// Lines that were not understood and were skipped.
    pub fn malformed_lines(&self) -> u64 {
        self.facts.malformed_lines
    }

    /// Writes the evidence as [`ParsedTrace::write_json_pretty`] writes
    /// that of [`SortedFacts::into_facts`].
    pub fn write_json_pretty(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        json::write_pretty(&self.facts.trace, Some(&self.parts), w)
    }

    /// The facts, path sets and all, as [`parse_trace`] gives them.
    pub fn into_facts(self) -> TraceFacts {
        let SortedFacts { mut facts, parts } = self;
        let mut sets: [std::collections::BTreeSet<String>; seen::SETS] = Default::default();
        for part in parts {
            for (set, text) in sets.iter_mut().zip(part) {
                let mut more = text.into_set();
                set.append(&mut more);
            }
        }
        let [binaries, libs, certs, read, written, probed, missing] = sets;
        let t = &mut facts.trace;
        t.binaries_executed = binaries;
        t.shared_libs_loaded = libs;
        t.cert_paths_read = certs;
        t.files_read = read;
        t.files_written = written;
        t.paths_probed = probed;
        facts.missing = missing;
        facts
    }
}

/// Parse one trace in a single pass, asking `lookup` for the interpreter
/// (`#!` or `PT_INTERP`) of each executed absolute path that
/// `opts.interpreters` does not know, once per path, at its first exec (a
/// relative exec once its cwd shows). Returns the facts and every
/// interpreter found (`{path: interpreter}`, chains included).
pub fn parse_trace_with_lookup<R: BufRead>(
    reader: R,
    opts: &ParseOptions,
    lookup: &mut dyn FnMut(&str) -> Option<String>,
) -> std::io::Result<(TraceFacts, BTreeMap<String, String>)> {
    let mut collector = collect::Collector::new(opts, Some(lookup));
    lines::for_each_line(reader, |line| match line {
        lines::Line::Text(t) => collector.line(t),
        lines::Line::Overlong => collector.malformed(),
    })?;
    Ok(collector.finish())
}

/// Decoding of strace C-string literals (exposed for property tests).
pub mod literal {
    /// Decodes a literal's content (without quotes) to bytes.
    pub fn unescape(lit: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(lit.len());
        super::unescape::unescape_into(lit, &mut out);
        out
    }

    /// Renders bytes as UTF-8 text, each invalid byte as `\xHH`.
    pub fn render(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len());
        super::unescape::render_into(bytes, &mut out);
        out
    }
}

impl ParsedTrace {
    /// [`ParsedTrace::union`] taking `other` by value: its facts move
    /// instead of being copied, so unioning one big trace into an empty one
    /// costs no second copy of every path.
    pub fn merge(&mut self, mut other: ParsedTrace) {
        self.binaries_executed.append(&mut other.binaries_executed);
        self.shared_libs_loaded
            .append(&mut other.shared_libs_loaded);
        self.cert_paths_read.append(&mut other.cert_paths_read);
        self.files_read.append(&mut other.files_read);
        self.files_written.append(&mut other.files_written);
        self.shell_invocations += other.shell_invocations;
        let net = &mut self.network_endpoints_touched;
        net.outbound
            .append(&mut other.network_endpoints_touched.outbound);
        net.inbound
            .append(&mut other.network_endpoints_touched.inbound);
        self.unix_sockets.append(&mut other.unix_sockets);
        // As within one trace, the first resolution of a name is kept.
        if self.resolved.is_empty() {
            self.resolved = other.resolved;
        } else {
            for (k, v) in other.resolved {
                self.resolved.entry(k).or_insert(v);
            }
        }
        self.paths_probed.append(&mut other.paths_probed);
    }

    /// Adds every fact of `other` (sets and maps are unioned, counts summed).
    pub fn union(&mut self, other: &ParsedTrace) {
        self.binaries_executed
            .extend(other.binaries_executed.iter().cloned());
        self.shared_libs_loaded
            .extend(other.shared_libs_loaded.iter().cloned());
        self.cert_paths_read
            .extend(other.cert_paths_read.iter().cloned());
        self.files_read.extend(other.files_read.iter().cloned());
        self.files_written
            .extend(other.files_written.iter().cloned());
        self.shell_invocations += other.shell_invocations;
        self.network_endpoints_touched
            .outbound
            .extend(other.network_endpoints_touched.outbound.iter().cloned());
        self.network_endpoints_touched
            .inbound
            .extend(other.network_endpoints_touched.inbound.iter().cloned());
        self.unix_sockets.extend(other.unix_sockets.iter().cloned());
        // As within one trace, the first resolution of a name is kept.
        for (k, v) in &other.resolved {
            self.resolved.entry(k.clone()).or_insert_with(|| v.clone());
        }
        self.paths_probed.extend(other.paths_probed.iter().cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_facts_print_and_become_the_facts_of_a_plain_parse() {
        // Every path set, and past the handoff to the sets' thread and the
        // size at which one set is sorted in two halves.
        let mut trace = String::from("1 execve(\"/bin/sh\", [\"sh\"], 0x1 /* 1 var */) = 0\n");
        for i in 0..40_000 {
            let d = i % 7;
            trace.push_str(&format!(
                "1 openat(AT_FDCWD</w>, \"d{d}/f{i}\", O_RDONLY) = 3</w/d{d}/f{i}>\n"
            ));
        }
        trace.push_str(concat!(
            "1 openat(AT_FDCWD</w>, \"/etc/ssl/a.pem\", O_RDONLY) = 3</etc/ssl/a.pem>\n",
            "1 mmap(NULL, 8, PROT_READ|PROT_EXEC, MAP_PRIVATE, 3</etc/ssl/a.pem>, 0) = 0x7f00\n",
            "1 openat(AT_FDCWD</w>, \"out\", O_WRONLY|O_CREAT, 0644) = 4</w/out>\n",
            "1 newfstatat(AT_FDCWD</w>, \"/usr\", {st_mode=S_IFDIR|0755, st_size=4096, ...}, 0) = 0\n",
            "1 access(\"/nope\", F_OK) = -1 ENOENT (No such file or directory)\n",
            "1 connect(5<socket:[1]>, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr(\"1.2.3.4\")}, 16) = 0\n",
            "1 +++ exited with 0 +++\n",
        ));
        let opts = ParseOptions::default();
        let plain = parse_trace(trace.as_bytes(), &opts).unwrap();
        let t = &plain.trace;
        for (name, len) in [
            ("binaries", t.binaries_executed.len()),
            ("libs", t.shared_libs_loaded.len()),
            ("certs", t.cert_paths_read.len()),
            ("read", t.files_read.len()),
            ("written", t.files_written.len()),
            ("probed", t.paths_probed.len()),
            ("missing", plain.missing.len()),
            ("outbound", t.network_endpoints_touched.outbound.len()),
        ] {
            assert!(len > 0, "no {name}");
        }
        let sorted = parse_trace_sorted(trace.as_bytes(), &opts).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        plain.trace.write_json_pretty(&mut a).unwrap();
        sorted.write_json_pretty(&mut b).unwrap();
        assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
        assert_eq!(sorted.malformed_lines(), plain.malformed_lines);
        assert_eq!(sorted.into_facts(), plain);
    }
}
