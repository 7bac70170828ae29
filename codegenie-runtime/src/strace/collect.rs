//! The fact collector: consumes trace lines one at a time and accumulates the
//! facts of the parser contract (docs/architecture.md, "Parser").
//!
//! Paths are recorded as the app named them: a relative name is joined to
//! its dirfd's `-y` decoration, or to the process's latest known cwd, then
//! lexically normalised; the kernel's resolved name (the `-y` decoration of a
//! returned fd) only goes into `resolved`. The cwd is learnt from
//! `AT_FDCWD</dir>` decorations (`chdir` is not traced), so what is known can
//! predate an untraced `chdir`: it is forgotten at each exec (shells `cd`
//! then exec), a relative exec waits for the first cwd the new program
//! shows, and a name stays relative while no cwd is known.

use std::collections::{BTreeMap, BTreeSet};

use memchr::memmem;

use super::call::{field, has_dirfd, is_fd_probe, parse_call_named, parse_value, Call, Wanted};
use super::distinct::SortedText;
use super::facts::{ExecRecord, ExitStatus, TraceFacts, MAX_EXEC_RECORDS};
use super::join::{split_resumed, strip_unfinished, Joiner, UNFINISHED};
use super::paths::{join_into, normalize_in_place};
use super::pidhash::PidMap;
use super::pre::{Fast, Pre};
use super::prefix::{parse_u32, split_head};
use super::procs::Procs;
use super::rules::{
    basename, is_excluded, is_pseudo_fs, is_self_exe, is_shell, is_unnamed, open_args, prot_exec,
    record_open, script_interpreter, FlagsMemo, OpenFlags,
};
use super::seen::{PathSet, Seen, SortedSets, SETS};
use super::sockaddr::{parse_sockaddr, SockAddr};
use super::unescape::{decode_into, leading_literal, literal_into, render_into, unescape_into};
use super::ParseOptions;

/// Stand-in pid for unprefixed lines until the root's real pid shows.
const PSEUDO_ROOT: u32 = u32::MAX;
/// Root signals kept; more are counted, so memory stays bounded.
pub(crate) const MAX_ROOT_SIGNALS: usize = 4096;

/// Answers the interpreter of an executed path (`None`: not a script, no loader).
pub(crate) type InterpreterLookup<'a> = dyn FnMut(&str) -> Option<String> + 'a;

/// Streaming state of one parse.
pub(crate) struct Collector<'o> {
    /// `{path: interpreter}` known so far: the caller's map, plus what
    /// `lookup` answered (`None` = asked, not a script or ELF with a loader).
    interpreters: BTreeMap<String, Option<String>>,
    /// Asked once per executed path the map does not know.
    lookup: Option<&'o mut InterpreterLookup<'o>>,
    /// Whether a path missing from `interpreters` is known not to be a
    /// script (a lookup answers every path; a given map is taken as
    /// complete). Without either, a process's binary is never certain.
    knows_interpreters: bool,
    facts: TraceFacts,
    /// The path sets of `facts` while the parse runs (moved there, sorted,
    /// at the end).
    seen: Seen,
    /// The stateless part of each line's work.
    pre: Pre,
    procs: Procs,
    joiner: Joiner,
    root: Option<u32>,
    /// Pids announced by `strace: Process N attached` (stderr output).
    announced: PidMap<u32, ()>,
    joined: Vec<u8>,
    scratch: Vec<u8>,
    /// The path of the call at hand.
    path: String,
    /// A second name of the call at hand (a decoration, argv[0]).
    other: String,
    /// Scratch for normalising and joining.
    tmp: String,
    /// The `-y` name of the fd an open returned.
    resolved_name: String,
    /// The last open flags parsed, as written, and what they said.
    last_flags: FlagsMemo,
    /// See [`ParseOptions::chdir_traced`](super::ParseOptions).
    chdir_traced: bool,
}

impl<'o> Collector<'o> {
    pub(crate) fn new(opts: &ParseOptions, lookup: Option<&'o mut InterpreterLookup<'o>>) -> Self {
        Collector {
            knows_interpreters: lookup.is_some() || !opts.interpreters.is_empty(),
            interpreters: opts
                .interpreters
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect(),
            lookup,
            facts: TraceFacts::default(),
            seen: Seen::default(),
            pre: Pre::default(),
            procs: Procs::default(),
            joiner: Joiner::default(),
            root: None,
            announced: PidMap::default(),
            joined: Vec::new(),
            scratch: Vec::new(),
            path: String::new(),
            other: String::new(),
            tmp: String::new(),
            resolved_name: String::new(),
            last_flags: FlagsMemo::default(),
            chdir_traced: opts.chdir_traced,
        }
    }

    pub(crate) fn finish(mut self) -> (TraceFacts, BTreeMap<String, String>) {
        self.settle_pending_execs();
        move_into(self.seen.finish(), &mut self.facts);
        let interpreters = self
            .interpreters
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        (self.facts, interpreters)
    }

    /// [`Collector::finish`] without the interpreters, the path sets left
    /// sorted in one buffer each (see [`Seen::finish_text`]), the facts'
    /// own sets empty.
    pub(crate) fn finish_text(mut self) -> (TraceFacts, [SortedText; SETS]) {
        self.settle_pending_execs();
        let sets = self.seen.finish_text();
        (self.facts, sets)
    }

    /// Relative execs whose cwd never showed stay relative.
    fn settle_pending_execs(&mut self) {
        for pid in self.procs.pending_exec_pids() {
            self.settle_exec(pid, None);
        }
    }

    /// Ask the lookup about `path` (and, for a script, its interpreter, which
    /// has a loader or interpreter of its own), once per path.
    fn learn_interpreters(&mut self, path: &str) {
        let Some(lookup) = self.lookup.as_mut() else {
            return;
        };
        let mut key = path.to_owned();
        // Bounded like the kernel's own `#!` recursion.
        for _ in 0..5 {
            // Only an absolute path names a file in the image.
            if !key.starts_with('/') || key.starts_with("/proc/") {
                return;
            }
            let next = match self.interpreters.get(&key) {
                Some(known) => known.clone(),
                None => {
                    let found = lookup(&key);
                    self.interpreters.insert(key.clone(), found.clone());
                    found
                }
            };
            match next {
                Some(i) => key = i,
                None => return,
            }
        }
    }

    pub(crate) fn malformed(&mut self) {
        self.facts.malformed_lines += 1;
    }

    /// One line of trace text, without its newline.
    pub(crate) fn line(&mut self, line: &[u8]) {
        let mut pre = std::mem::take(&mut self.pre);
        match pre.line(line, &mut self.seen) {
            Some(fast) => self.fast(fast),
            None => self.whole_line(line),
        }
        self.pre = pre;
    }

    /// Keeps the path sets on this thread (the parse is already split
    /// between two); before any line.
    pub(crate) fn keep_sets_here(&mut self) {
        self.seen = Seen::here();
    }

    /// The sets this parse adds paths to, for a [`Pre`] working ahead.
    pub(crate) fn seen_mut(&mut self) -> &mut Seen {
        &mut self.seen
    }

    /// The effects on state of a line whose stateless work is done (see
    /// `pre`), in line order.
    pub(crate) fn fast(&mut self, fast: Fast<'_>) {
        let pid = self.resolve_pid(fast.pid);
        if let Some(d) = fast.dirfd {
            self.learn_cwd(pid, d);
        }
        let Some(o) = fast.opened else {
            return;
        };
        if let Some(fd) = o.fd {
            self.procs.opened(pid, fd, o.path, o.resolved);
        }
        if let (true, Some(r)) = (o.pair, o.resolved) {
            let resolved = &mut self.facts.trace.resolved;
            if !resolved.contains_key(o.path) {
                resolved.insert(o.path.to_owned(), r.to_owned());
            }
        }
    }

    /// A line taken whole: everything but what [`Pre`] does alone.
    pub(crate) fn whole_line(&mut self, line: &[u8]) {
        let Some(head) = split_head(line) else {
            return self.malformed();
        };
        let body = head.body;
        if let Some(notice) = body.strip_prefix(b"strace: ") {
            return self.notice(notice);
        }
        // Classify before resolving the pid: a foreign line (the app's own
        // output on stderr) must not create a process or rename the root.
        let kind = match body.first() {
            Some(b'+') if body.starts_with(b"+++ ") => Kind::Exit,
            Some(b'-') if body.starts_with(b"--- ") => Kind::Signal,
            Some(b'<') if body.starts_with(b"<... ") || body == UNFINISHED => Kind::Resumed,
            _ => match super::call::call_name(body) {
                Some(name) => Kind::Call(name.len()),
                None => return self.malformed(),
            },
        };
        let pid = self.resolve_pid(head.pid);
        match kind {
            Kind::Exit => self.exit_line(pid, body),
            Kind::Signal => self.signal_line(pid, body),
            Kind::Resumed => self.resumed_line(pid, body),
            Kind::Call(name_len) => self.call_line(pid, body, name_len),
        }
    }

    /// Maps a line's pid prefix to a process, learning the root.
    fn resolve_pid(&mut self, pid: Option<u32>) -> u32 {
        match pid {
            Some(p) => {
                match self.root {
                    None => self.root = Some(p),
                    // stderr output: the unprefixed root shows its real pid once
                    // a second process exists; any pid not announced as attached is it.
                    Some(PSEUDO_ROOT)
                        if !self.procs.is_live(p)
                            && !self.announced.contains_key(&p)
                            && self.procs.is_live(PSEUDO_ROOT) =>
                    {
                        self.procs.rename(PSEUDO_ROOT, p);
                        self.joiner.rename(PSEUDO_ROOT, p);
                        self.root = Some(p);
                    }
                    Some(_) => {}
                }
                self.procs.touch(p);
                p
            }
            None => {
                let p = match self.root {
                    None => {
                        self.root = Some(PSEUDO_ROOT);
                        PSEUDO_ROOT
                    }
                    Some(r) => self.procs.single_live().unwrap_or(r),
                };
                self.procs.touch(p);
                p
            }
        }
    }

    /// `strace: Process N attached` and other notices of strace itself.
    fn notice(&mut self, notice: &[u8]) {
        if let Some(n) = attached_pid(notice) {
            self.announced.insert(n, ());
            self.procs.touch(n);
        }
    }

    fn exit_line(&mut self, pid: u32, body: &[u8]) {
        let inner = body
            .strip_prefix(b"+++ ")
            .and_then(|b| b.strip_suffix(b" +++"));
        let status = match inner {
            Some(i) if i.starts_with(b"exited with ") => std::str::from_utf8(&i[12..])
                .ok()
                .and_then(|c| c.parse::<i32>().ok())
                .map(|code| ExitStatus::Exited { code }),
            Some(i) if i.starts_with(b"killed by ") => {
                let rest = &i[10..];
                let (sig, core_dumped) = match rest.strip_suffix(b" (core dumped)") {
                    Some(s) => (s, true),
                    None => (rest, false),
                };
                std::str::from_utf8(sig).ok().map(|s| ExitStatus::Killed {
                    signal: s.to_owned(),
                    core_dumped,
                })
            }
            // `+++ superseded by execve in pid N +++`: a thread's exec.
            Some(i) if i.starts_with(b"superseded by execve") => {
                self.settle_exec(pid, None);
                self.procs.exited(pid);
                self.announced.remove(&pid);
                self.joiner.forget(pid);
                return;
            }
            _ => None,
        };
        let Some(status) = status else {
            return self.malformed();
        };
        if Some(pid) == self.root {
            self.facts.root_exit = Some(status);
        }
        self.settle_exec(pid, None);
        self.procs.exited(pid);
        self.announced.remove(&pid);
        self.joiner.forget(pid);
    }

    fn signal_line(&mut self, pid: u32, body: &[u8]) {
        let Some(inner) = body
            .strip_prefix(b"--- ")
            .and_then(|b| b.strip_suffix(b" ---"))
        else {
            return self.malformed();
        };
        if !inner.starts_with(b"SIG") {
            // `--- stopped by SIGSTOP ---` and the like.
            return;
        }
        if Some(pid) != self.root {
            return;
        }
        let end = inner.iter().position(|&b| b == b' ').unwrap_or(inner.len());
        let Ok(name) = std::str::from_utf8(&inner[..end]) else {
            return self.malformed();
        };
        if self.facts.root_signals.len() < MAX_ROOT_SIGNALS {
            self.facts.root_signals.push(name.to_owned());
        } else {
            self.facts.root_signals_dropped += 1;
        }
    }

    fn resumed_line(&mut self, pid: u32, body: &[u8]) {
        if body == UNFINISHED {
            // The tail of a call split by an attach notice (stderr output).
            return;
        }
        let Some((name, rest)) = split_resumed(body) else {
            return self.malformed();
        };
        let mut joined = std::mem::take(&mut self.joined);
        if self.joiner.resume(pid, name, rest, &mut joined) {
            self.call(pid, &joined);
        } else {
            self.malformed();
        }
        self.joined = joined;
    }

    /// A line holding a call named by its first `name_len` bytes.
    fn call_line(&mut self, pid: u32, body: &[u8], name_len: usize) {
        let name = &body[..name_len];
        let wanted = Wanted::of(name);
        if wanted == Some(Wanted::Clone) {
            // The child inherits the binary: a relative exec still waiting
            // for its cwd is settled now, as it stands.
            self.settle_exec(pid, None);
        }
        if let Some(head) = strip_unfinished(body) {
            if wanted == Some(Wanted::Clone) {
                self.procs.clone_started(pid);
            }
            // Uninteresting calls park only their name, to keep joining exact.
            let keep = if wanted.is_some() {
                head
            } else {
                &body[..name.len() + 1]
            };
            if !self.joiner.park(pid, keep) {
                self.malformed();
            }
            return;
        }
        // stderr output: `vfork(strace: Process 12 attached` then ` <unfinished ...>`.
        let notice_at = if body.ends_with(b" attached") {
            memmem::rfind(body, b"strace: Process ")
        } else {
            None
        };
        if let Some(at) = notice_at {
            if let Some(n) = attached_pid(&body[at + 8..]) {
                if wanted == Some(Wanted::Clone) {
                    self.procs.clone_started(pid);
                }
                let keep = if wanted.is_some() {
                    &body[..at]
                } else {
                    &body[..name.len() + 1]
                };
                self.joiner.park(pid, keep);
                self.announced.insert(n, ());
                self.procs.touch(n);
                return;
            }
        }
        if let Some(wanted) = wanted {
            self.named_call(pid, body, name_len, wanted);
        }
    }

    /// A complete call.
    fn call(&mut self, pid: u32, body: &[u8]) {
        let Some(name) = super::call::call_name(body) else {
            return self.malformed();
        };
        if let Some(wanted) = Wanted::of(name) {
            self.named_call(pid, body, name.len(), wanted);
        }
    }

    /// A complete call of a wanted syscall, named by the first `name_len`
    /// bytes of `body`.
    fn named_call(&mut self, pid: u32, body: &[u8], name_len: usize, wanted: Wanted) {
        if wanted == Wanted::Probe && is_fd_probe(body, name_len) {
            return;
        }
        let Some(call) = parse_call_named(body, name_len) else {
            if wanted == Wanted::Clone {
                self.procs.clone_finished(pid, None, false);
            }
            return self.malformed();
        };
        if has_dirfd(call.name) {
            if let Some(d) = call.arg(0) {
                self.learn_cwd(pid, d);
            }
        }
        let understood = match wanted {
            Wanted::Open => self.open(pid, &call),
            Wanted::Exec => self.exec(pid, &call),
            Wanted::Clone => self.clone_call(pid, &call),
            Wanted::Mmap => self.mmap(pid, &call),
            Wanted::Probe => self.probe(pid, &call),
            Wanted::Connect | Wanted::Bind => self.socket(&call, wanted),
            Wanted::Chdir => self.chdir(pid, &call),
        };
        if !understood {
            self.malformed();
        }
    }

    /// `chdir(path)` or `fchdir(fd</dir>)`: the process's new cwd, when it
    /// can be told. A relative exec still waiting for the old cwd can no
    /// longer learn it and stays relative.
    fn chdir(&mut self, pid: u32, call: &Call<'_>) -> bool {
        let Some(a) = call.arg(0) else {
            return false;
        };
        if !call.ret.ok() {
            return true;
        }
        self.settle_exec(pid, None);
        let new = if call.name == b"fchdir" {
            parse_value(a).decoration.map(|dec| {
                let mut dir = String::new();
                decode_into(dec, &mut self.scratch, &mut dir);
                dir
            })
        } else {
            if self.literal_to_path(a).is_none() {
                return false;
            }
            if self.path.starts_with('/') {
                normalize_in_place(&mut self.path, &mut self.tmp);
                Some(self.path.clone())
            } else {
                self.procs.cwd(pid).map(|cwd| {
                    let mut dir = String::new();
                    join_into(&cwd, &self.path, &mut dir);
                    dir
                })
            }
        };
        let usable = new.filter(|d| d.starts_with('/') && !is_unnamed(d));
        self.procs.set_cwd(pid, usable.as_deref());
        true
    }

    /// An `AT_FDCWD</dir>` argument shows the process's cwd, whether the
    /// call succeeds or not.
    fn learn_cwd(&mut self, pid: u32, dirfd: &[u8]) {
        let Some(shown) = dirfd.strip_prefix(b"AT_FDCWD<") else {
            return;
        };
        // Most calls show the cwd already known, written plainly: then the
        // decoration is all of `shown` but its closing `>`.
        if let Some(plain) = shown.strip_suffix(b">") {
            if self.procs.cwd_is(pid, plain) && !plain.iter().any(|&b| is_decoration_special(b)) {
                return;
            }
        }
        let Some(dec) = parse_value(dirfd).decoration else {
            return;
        };
        // Most calls show the cwd already known (a pending exec has none).
        if memchr::memchr(b'\\', dec).is_none() && self.procs.cwd_is(pid, dec) {
            return;
        }
        let mut cwd = std::mem::take(&mut self.other);
        cwd.clear();
        decode_into(dec, &mut self.scratch, &mut cwd);
        // A deleted cwd is no path: what was known is stale all the same.
        let usable = cwd.starts_with('/') && !is_unnamed(&cwd);
        self.procs.set_cwd(pid, usable.then_some(cwd.as_str()));
        if usable {
            self.settle_exec(pid, Some(&cwd));
        }
        self.other = cwd;
    }

    /// Records the relative exec `pid` is waiting on, if any: joined to
    /// `cwd` when the cwd showed, else as it stands.
    fn settle_exec(&mut self, pid: u32, cwd: Option<&str>) {
        let Some(rel) = self.procs.take_pending_exec(pid) else {
            return;
        };
        let mut path = String::new();
        match cwd {
            Some(dir) => join_into(dir, &rel, &mut path),
            None => path.push_str(&rel),
        }
        self.exec_done(pid, &path);
    }

    /// `pid` now runs `path` (absolute, or relative when its cwd is unknown):
    /// the fact, the interpreter lookup and the process's new binary.
    fn exec_done(&mut self, pid: u32, path: &str) {
        self.seen.insert(PathSet::BinariesExecuted, path);
        self.learn_interpreters(path);
        let certain = self.knows_interpreters && path.starts_with('/') && !is_pseudo_fs(path);
        match script_interpreter(path, &self.interpreters) {
            Some(interp) => {
                if is_shell(basename(interp)) {
                    self.facts.script_shell_invocations += 1;
                }
                self.procs.exec(pid, interp, certain);
            }
            None => self.procs.exec(pid, path, certain),
        }
    }

    /// Decodes the literal at the start of `a` into `self.path`.
    fn literal_to_path(&mut self, a: &[u8]) -> Option<()> {
        self.literal_to_path_raw(a).map(|_| ())
    }

    /// [`Self::literal_to_path`], returning the literal's content as written.
    fn literal_to_path_raw<'a>(&mut self, a: &'a [u8]) -> Option<&'a [u8]> {
        literal_into(a, &mut self.scratch, &mut self.path)
    }

    /// Joins a relative `self.path` to a dirfd argument's decoration (a
    /// directory's path); true when it did.
    fn join_to_dirfd(&mut self, dirfd: &[u8]) -> bool {
        if self.path.starts_with('/') {
            return false;
        }
        super::paths::join_to_dirfd(
            dirfd,
            &mut self.path,
            &mut self.other,
            &mut self.tmp,
            &mut self.scratch,
        )
    }

    /// Makes `self.path` (a name as the app gave it) absolute against the
    /// dirfd's decoration, or against the process's cwd when the call has no
    /// dirfd or an undecorated `AT_FDCWD`, then normalises it. Without
    /// either it stays relative.
    fn absolutize(&mut self, pid: u32, dirfd: Option<&[u8]>) {
        if !self.path.starts_with('/') {
            let use_cwd = match dirfd {
                Some(d) => {
                    if self.join_to_dirfd(d) {
                        return;
                    }
                    d == b"AT_FDCWD"
                }
                None => true,
            };
            if use_cwd {
                if let Some(cwd) = self.procs.cwd(pid) {
                    join_into(&cwd, &self.path, &mut self.tmp);
                    std::mem::swap(&mut self.path, &mut self.tmp);
                    return;
                }
            }
        }
        normalize_in_place(&mut self.path, &mut self.tmp);
    }

    fn open(&mut self, pid: u32, call: &Call<'_>) -> bool {
        let (dirfd, path, flags) = open_args(call);
        let (Some(path), Some(flags)) = (path, flags) else {
            return false;
        };
        let Some(flags) = self.last_flags.parse(flags) else {
            return false;
        };
        if !call.ret.ok() {
            self.note_missing(pid, call, path, dirfd);
            return true;
        }
        let Some(lit) = self.literal_to_path_raw(path) else {
            return false;
        };
        // The returned fd's name, in its own buffer: making the path
        // absolute may use `other`.
        let mut resolved_buf = std::mem::take(&mut self.resolved_name);
        resolved_buf.clear();
        let has_resolved = match call.ret.decoration {
            // Mostly the file resolves to the name it was opened by,
            // written the same way: decoded once.
            Some(dec) if dec == lit => {
                resolved_buf.push_str(&self.path);
                true
            }
            Some(dec) => {
                decode_into(dec, &mut self.scratch, &mut resolved_buf);
                true
            }
            None => false,
        };
        self.absolutize(pid, dirfd);
        let understood = self.opened(pid, call, flags, has_resolved.then_some(&resolved_buf));
        self.resolved_name = resolved_buf;
        understood
    }

    /// The facts of a successful open of `self.path` (made absolute) whose
    /// fd has the `-y` name `resolved`.
    fn opened(
        &mut self,
        pid: u32,
        call: &Call<'_>,
        flags: OpenFlags,
        resolved: Option<&String>,
    ) -> bool {
        let resolved = resolved.map(String::as_str);
        if let Some(fd) = call.ret.value.and_then(|v| i32::try_from(v).ok()) {
            self.procs.opened(pid, fd, &self.path, resolved);
        }
        if is_self_exe(&self.path) {
            if let Some(target) = resolved {
                self.exe_resolved(pid, target);
            }
            return true;
        }
        let path = self.path.as_str();
        if is_excluded(path) || !record_open(&mut self.seen, path, resolved, flags) {
            return true;
        }
        let t = &mut self.facts.trace;
        if let Some(r) = resolved.filter(|r| *r != path && r.starts_with('/') && !is_unnamed(r)) {
            if !t.resolved.contains_key(path) {
                t.resolved.insert(path.to_owned(), r.to_owned());
            }
        }
        true
    }

    fn exec(&mut self, pid: u32, call: &Call<'_>) -> bool {
        let at = call.name == b"execveat";
        let base = usize::from(at);
        let (Some(path), Some(argv)) = (call.arg(base), call.arg(base + 1)) else {
            return false;
        };
        if call.ret.value != Some(0) {
            let dirfd = if at { call.arg(0) } else { None };
            self.note_missing(pid, call, path, dirfd);
            return true;
        }
        if self.literal_to_path(path).is_none() {
            return false;
        }
        // A new program replaces one still waiting for its cwd.
        self.settle_exec(pid, None);
        let dirfd = if at { call.arg(0) } else { None };
        // The cwd known so far may predate an untraced `chdir` (`cd dir &&
        // ./run` in a shell): the new program's own calls show it again,
        // unless this very call does.
        if !self.chdir_traced {
            self.procs.set_cwd(pid, None);
        }
        if let Some(d) = dirfd {
            self.learn_cwd(pid, d);
        }
        let joined = dirfd.is_some_and(|d| self.join_to_dirfd(d));
        if !joined {
            normalize_in_place(&mut self.path, &mut self.tmp);
        }
        // So a relative exec waits for the cwd the new program shows; with
        // a numeric dirfd the name is not cwd-relative.
        let cwd_relative = !self.path.starts_with('/') && dirfd.is_none_or(|d| d == b"AT_FDCWD");
        let via_self_exe = is_self_exe(&self.path);
        if via_self_exe {
            if let Some(exe) = self.procs.exe(pid) {
                self.path.clear();
                self.path.push_str(&exe.path);
            }
        }
        // argv[0], for busybox and `/proc/self/exe` re-execs.
        self.other.clear();
        if let Some((lit, _)) = argv.strip_prefix(b"[").and_then(leading_literal) {
            decode_into(lit, &mut self.scratch, &mut self.other);
        }
        let program = if via_self_exe || basename(&self.path) == "busybox" {
            basename(&self.other)
        } else {
            basename(&self.path)
        };
        if is_shell(program) {
            self.facts.trace.shell_invocations += 1;
        }
        self.record_exec(argv);
        let path = std::mem::take(&mut self.path);
        let known_cwd = self.chdir_traced.then(|| self.procs.cwd(pid)).flatten();
        match known_cwd {
            Some(cwd) if cwd_relative && !via_self_exe => {
                let mut abs = String::new();
                join_into(&cwd, &path, &mut abs);
                self.exec_done(pid, &abs);
            }
            _ if cwd_relative && !via_self_exe => self.procs.set_pending_exec(pid, &path),
            _ => self.exec_done(pid, &path),
        }
        self.path = path;
        true
    }

    fn clone_call(&mut self, pid: u32, call: &Call<'_>) -> bool {
        let flags = match call.name {
            b"clone3" => call.arg(0).and_then(|a| field(a, b"flags")),
            _ => super::call::split_args(call.args).find_map(|a| a.strip_prefix(b"flags=")),
        };
        let share = flags.is_some_and(|f| f.split(|&b| b == b'|').any(|t| t == b"CLONE_FILES"));
        let child = call
            .ret
            .value
            .filter(|&v| v > 0)
            .and_then(|v| u32::try_from(v).ok());
        self.procs.clone_finished(pid, child, share);
        true
    }

    fn mmap(&mut self, pid: u32, call: &Call<'_>) -> bool {
        let (Some(prot), Some(fd)) = (call.arg(2), call.arg(4)) else {
            return false;
        };
        if !prot_exec(prot) || !call.ret.ok() {
            return true;
        }
        let fd = parse_value(fd);
        let Some(n) = fd
            .value
            .filter(|&v| v >= 0)
            .and_then(|v| i32::try_from(v).ok())
        else {
            return true;
        };
        // The path is the open's; an fd no traced open produced is skipped.
        let Some(entry) = self.procs.fd_entry(pid, n) else {
            return true;
        };
        if let Some(dec) = fd.decoration {
            self.other.clear();
            decode_into(dec, &mut self.scratch, &mut self.other);
            if is_unnamed(&self.other) {
                return true;
            }
            // Another name than the open's: the fd was reused by a call the
            // trace does not show (`dup2`, `memfd_create`), so it is unknown.
            if entry.resolved.as_deref().is_some_and(|r| r != self.other) {
                return true;
            }
        }
        self.seen.insert(PathSet::SharedLibsLoaded, &entry.opened);
        true
    }

    /// `stat`, `access`, `readlink` and their kin: the path exists.
    fn probe(&mut self, pid: u32, call: &Call<'_>) -> bool {
        let base = usize::from(has_dirfd(call.name));
        let dirfd = if base == 1 { call.arg(0) } else { None };
        let Some(path) = call.arg(base) else {
            return false;
        };
        if !call.ret.ok() {
            self.note_missing(pid, call, path, dirfd);
            return true;
        }
        // A path strace could not read (an address) names nothing.
        if self.literal_to_path(path).is_none() {
            return true;
        }
        // `AT_EMPTY_PATH`: an fstat in disguise.
        if self.path.is_empty() {
            return true;
        }
        self.absolutize(pid, dirfd);
        if call.name.starts_with(b"readlink") && is_self_exe(&self.path) {
            if let (Some(buf), Some(len)) = (call.arg(base + 1), call.ret.value) {
                if let Some(target) = self.complete_literal(buf, len) {
                    self.exe_resolved(pid, &target);
                }
            }
        }
        if !is_pseudo_fs(&self.path) {
            self.seen.insert(PathSet::PathsProbed, &self.path);
        }
        true
    }

    /// A call that failed with `ENOENT`: its path, as named, is missing.
    fn note_missing(&mut self, pid: u32, call: &Call<'_>, path: &[u8], dirfd: Option<&[u8]>) {
        if call.ret.errno != Some(b"ENOENT") || self.literal_to_path(path).is_none() {
            return;
        }
        if self.path.is_empty() {
            return;
        }
        self.absolutize(pid, dirfd);
        if self.path.starts_with('/') && !is_pseudo_fs(&self.path) {
            self.seen.insert(PathSet::Missing, &self.path);
        }
    }

    /// Keep the exec of `self.path` with its argv, once per distinct pair.
    fn record_exec(&mut self, argv: &[u8]) {
        let mut args = Vec::new();
        let mut rest = argv.strip_prefix(b"[").unwrap_or(argv);
        while args.len() < 64 {
            let Some((lit, after)) = leading_literal(rest.trim_ascii_start()) else {
                break;
            };
            let mut s = String::new();
            decode_into(lit, &mut self.scratch, &mut s);
            args.push(s);
            rest = after.strip_prefix(b"...").unwrap_or(after);
            rest = rest.trim_ascii_start().strip_prefix(b",").unwrap_or(rest);
        }
        let record = ExecRecord {
            path: self.path.clone(),
            argv: args,
        };
        let execs = &mut self.facts.execs;
        if execs.contains(&record) {
            return;
        }
        if execs.len() >= MAX_EXEC_RECORDS {
            self.facts.execs_dropped += 1;
        } else {
            execs.push(record);
        }
    }

    /// The text of a result buffer literal holding exactly `len` bytes (not
    /// cut short by `-s`).
    fn complete_literal(&mut self, buf: &[u8], len: i64) -> Option<String> {
        let (lit, rest) = leading_literal(buf)?;
        if rest.starts_with(b"...") {
            return None;
        }
        self.scratch.clear();
        unescape_into(lit, &mut self.scratch);
        if i64::try_from(self.scratch.len()).ok()? != len {
            return None;
        }
        let mut out = String::new();
        render_into(&self.scratch, &mut out);
        Some(out)
    }

    /// `pid` showed that its binary resolves to `target` (`/proc/self/exe`).
    /// Recorded only when the process surely runs the path it executed: a
    /// script runs its interpreter, which the trace alone cannot tell.
    fn exe_resolved(&mut self, pid: u32, target: &str) {
        let Some(exe) = self.procs.exe(pid) else {
            return;
        };
        if !exe.certain
            || !exe.path.starts_with('/')
            || *exe.path == *target
            || !target.starts_with('/')
            || is_unnamed(target)
            || is_excluded(target)
        {
            return;
        }
        let resolved = &mut self.facts.trace.resolved;
        if !resolved.contains_key(&*exe.path) {
            resolved.insert(exe.path.to_string(), target.to_owned());
        }
    }

    fn socket(&mut self, call: &Call<'_>, kind: Wanted) -> bool {
        let Some(addr) = call.arg(1) else {
            return false;
        };
        let Some(sa) = parse_sockaddr(addr, &mut self.scratch, &mut self.path) else {
            return true;
        };
        let t = &mut self.facts.trace;
        match (sa, kind) {
            (SockAddr::Inet { .. }, Wanted::Connect) => {
                insert(&mut t.network_endpoints_touched.outbound, &self.path)
            }
            (SockAddr::Inet { port }, _) if port != 0 => {
                insert(&mut t.network_endpoints_touched.inbound, &self.path)
            }
            (SockAddr::Inet { .. }, _) => {}
            (SockAddr::Unix, _) => insert(&mut t.unix_sockets, &self.path),
        }
        true
    }
}

/// What a line is, once its prefix is stripped.
enum Kind {
    Exit,
    Signal,
    Resumed,
    /// A call, with the length of its name.
    Call(usize),
}

/// Bytes that give a decoration's text a meaning beyond plain path bytes
/// (see `call::decoration_len` and `unescape`).
fn is_decoration_special(b: u8) -> bool {
    matches!(b, b'\\' | b'>' | b'[' | b']')
}

/// `N` of `Process N attached`.
fn attached_pid(notice: &[u8]) -> Option<u32> {
    let rest = notice.strip_prefix(b"Process ")?;
    let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if !rest[n..].starts_with(b" attached") {
        return None;
    }
    parse_u32(&rest[..n])
}

/// Inserts without allocating when already present.
fn insert<S: FactSet>(set: &mut S, s: &str) {
    set.insert_str(s);
}

/// A set of distinct strings that [`insert`] fills.
trait FactSet {
    fn insert_str(&mut self, s: &str);
}

impl FactSet for BTreeSet<String> {
    fn insert_str(&mut self, s: &str) {
        if !self.contains(s) {
            self.insert(s.to_owned());
        }
    }
}

/// Moves the sorted path sets into their places in `facts`.
fn move_into(sets: SortedSets, facts: &mut TraceFacts) {
    let [mut binaries, mut libs, mut certs, mut read, mut written, mut probed, mut missing] = sets;
    let t = &mut facts.trace;
    t.binaries_executed.append(&mut binaries);
    t.shared_libs_loaded.append(&mut libs);
    t.cert_paths_read.append(&mut certs);
    t.files_read.append(&mut read);
    t.files_written.append(&mut written);
    t.paths_probed.append(&mut probed);
    facts.missing.append(&mut missing);
}
