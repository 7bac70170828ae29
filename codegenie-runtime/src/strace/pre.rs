//! The part of a line's work that needs no process state: splitting the
//! call, decoding and normalising its path, and adding the path to its set.
//!
//! Most lines of a big trace are opens and probes whose path is absolute or
//! joined to its dirfd's `-y` decoration. Everything their facts need is on
//! the line itself, except three effects on process state, which must follow
//! line order: the pid (which may name the root), the cwd an `AT_FDCWD</dir>`
//! shows, and the fd table an open fills (and the first `resolved` pair of a
//! name). [`Pre::line`] does the rest and hands back those effects as a
//! [`Fast`] line, or says the line must be done whole, in order (anything
//! that reads state: clones, execs, exits, relative names without a
//! decoration, `/proc/self/exe`, joined calls, malformed lines).
//!
//! Path sets are the same whatever order paths are added in, so a [`Pre`]
//! may run on a block of lines ahead of the stateful collector, on another
//! thread, with sets of its own (see `blocks`). The collector itself runs
//! every line through here first, so the sequential and the parallel parse
//! share one code path.

use super::call::{parse_call_named, Call};
use super::join::strip_unfinished;
use super::paths::{join_to_dirfd, normalize_in_place};
use super::prefix::split_head;
use super::rules::{
    is_excluded, is_pseudo_fs, is_self_exe, is_unnamed, open_args, prot_exec, record_open,
    FlagsMemo,
};
use super::seen::{PathSet, Seen};
use super::unescape::{decode_into, literal_into};

/// What a line needs from the stateful collector, in line order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fast<'a> {
    /// The pid prefix, resolved by the collector (it may name the root).
    pub pid: Option<u32>,
    /// The call's dirfd argument, whose `AT_FDCWD</dir>` shows the cwd.
    pub dirfd: Option<&'a [u8]>,
    /// A successful open.
    pub opened: Option<Opened<'a>>,
}

/// A successful open's effects on state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Opened<'a> {
    /// The fd it returned, for the fd table (`None`: beyond `i32`).
    pub fd: Option<i32>,
    /// The path as opened, absolute and normalised.
    pub path: &'a str,
    /// The `-y` name of the returned fd.
    pub resolved: Option<&'a str>,
    /// Whether `path` → `resolved` is a `resolved` pair (the first one of
    /// a name is kept, so it is added in line order).
    pub pair: bool,
}

/// Scratch buffers of the stateless work, reused from line to line.
#[derive(Default)]
pub(crate) struct Pre {
    /// The path of the call at hand.
    path: String,
    /// A decoration being decoded.
    other: String,
    /// Scratch for normalising and joining.
    tmp: String,
    /// The `-y` name of the fd an open returned.
    resolved: String,
    scratch: Vec<u8>,
    /// The last open flags parsed, as written, and what they said.
    last_flags: FlagsMemo,
}

/// The lines [`Pre::line`] leaves whole to the collector.
type Whole = Option<()>;

impl Pre {
    /// The stateless work of `line`, its paths added to `seen`: `Some`
    /// with the effects left to do in order, or `None` when the collector
    /// must take the line whole (then nothing was added).
    pub(crate) fn line<'a>(&'a mut self, line: &'a [u8], seen: &mut Seen) -> Option<Fast<'a>> {
        let head = split_head(line)?;
        let body = head.body;
        // Notices, exits, signals and resumptions start with no name.
        let name_len = super::call::call_name(body)?.len();
        let wanted = Wanted::of(&body[..name_len]);
        // Parked calls and calls split by an attach notice touch the joiner.
        if strip_unfinished(body).is_some() || body.ends_with(b" attached") {
            return None;
        }
        let bare = Fast {
            pid: head.pid,
            dirfd: None,
            opened: None,
        };
        let wanted = match wanted {
            None => return Some(bare),
            Some(w @ (Wanted::Open | Wanted::Probe | Wanted::Mmap)) => w,
            Some(Wanted::Other) => return None,
        };
        if wanted == Wanted::Probe && super::call::is_fd_probe(body, name_len) {
            return Some(bare);
        }
        let call = parse_call_named(body, name_len)?;
        let dirfd = if super::call::has_dirfd(call.name) {
            call.arg(0)
        } else {
            None
        };
        let fast = Fast { dirfd, ..bare };
        match wanted {
            Wanted::Open => {
                let opened = self.open(&call, seen)?;
                Some(Fast {
                    opened: opened.map(|o| Opened {
                        path: &self.path,
                        resolved: match o.resolved {
                            Resolved::No => None,
                            // The same string, not a copy: a reader may
                            // tell so from its address.
                            Resolved::AsOpened => Some(&self.path),
                            Resolved::Own => Some(&self.resolved),
                        },
                        ..o.opened
                    }),
                    ..fast
                })
            }
            Wanted::Probe => self.probe(&call, seen).map(|()| fast),
            _ => {
                // Only a mapping that is not executable names no library.
                let (Some(prot), Some(_)) = (call.arg(2), call.arg(4)) else {
                    return None;
                };
                (!prot_exec(prot) || !call.ret.ok()).then_some(fast)
            }
        }
    }

    /// An open: `None` to take it whole, `Some(None)` when it changes no
    /// state, else what it opened (the path is in `self.path`).
    fn open(&mut self, call: &Call<'_>, seen: &mut Seen) -> Option<Option<OpenedAt>> {
        let (dirfd, path, flags) = open_args(call);
        let (path, flags) = (path?, flags?);
        let flags = self.last_flags.parse(flags)?;
        if !call.ret.ok() {
            return self.missing(call, path, dirfd, seen).map(|()| None);
        }
        let lit = self.literal_to_path(path)?;
        // Mostly the file resolves to the name it was opened by, written
        // the same way, and the name is absolute and normal already: then
        // the two are one string, decoded once and never compared.
        let same = call.ret.decoration.is_some_and(|dec| dec == lit);
        let unchanged = self.absolutize(dirfd)?;
        let kind = match call.ret.decoration {
            None => Resolved::No,
            Some(_) if same && unchanged => Resolved::AsOpened,
            Some(dec) => {
                self.resolved.clear();
                decode_into(dec, &mut self.scratch, &mut self.resolved);
                Resolved::Own
            }
        };
        let path = self.path.as_str();
        // `/proc/self/exe` names the process's binary: state.
        if is_self_exe(path) {
            return None;
        }
        // The fd's name when it is another string than the path.
        let other = (kind == Resolved::Own).then_some(self.resolved.as_str());
        let fd = call.ret.value.and_then(|v| i32::try_from(v).ok());
        let mut at = OpenedAt {
            opened: Opened {
                fd,
                path: "",
                resolved: None,
                pair: false,
            },
            resolved: kind,
        };
        if is_excluded(path) || !record_open(seen, path, other, flags) {
            return Some(Some(at));
        }
        at.opened.pair = other.is_some_and(|r| r != path && r.starts_with('/') && !is_unnamed(r));
        Some(Some(at))
    }

    /// `stat`, `access`, `readlink` and their kin: the path exists.
    fn probe(&mut self, call: &Call<'_>, seen: &mut Seen) -> Whole {
        let base = usize::from(super::call::has_dirfd(call.name));
        let dirfd = if base == 1 { call.arg(0) } else { None };
        let path = call.arg(base)?;
        if !call.ret.ok() {
            return self.missing(call, path, dirfd, seen);
        }
        // A path strace could not read (an address) names nothing; an
        // empty one (`AT_EMPTY_PATH`) is an `fstat` in disguise.
        if self.literal_to_path(path).is_none() || self.path.is_empty() {
            return Some(());
        }
        self.absolutize(dirfd)?;
        // `readlink("/proc/self/exe")` shows the process's binary: state.
        if call.name.starts_with(b"readlink") && is_self_exe(&self.path) {
            return None;
        }
        if !is_pseudo_fs(&self.path) {
            seen.insert(PathSet::PathsProbed, &self.path);
        }
        Some(())
    }

    /// A call that failed with `ENOENT`: its path, as named, is missing.
    fn missing(
        &mut self,
        call: &Call<'_>,
        path: &[u8],
        dirfd: Option<&[u8]>,
        seen: &mut Seen,
    ) -> Whole {
        if call.ret.errno != Some(b"ENOENT")
            || self.literal_to_path(path).is_none()
            || self.path.is_empty()
        {
            return Some(());
        }
        self.absolutize(dirfd)?;
        if self.path.starts_with('/') && !is_pseudo_fs(&self.path) {
            seen.insert(PathSet::Missing, &self.path);
        }
        Some(())
    }

    /// Decodes the literal at the start of `a` into `self.path`, returning
    /// its content as written.
    fn literal_to_path<'a>(&mut self, a: &'a [u8]) -> Option<&'a [u8]> {
        literal_into(a, &mut self.scratch, &mut self.path)
    }

    /// Makes `self.path` absolute against the dirfd's decoration, then
    /// normalises it; `None` when it would need the process's cwd (no
    /// dirfd, or an undecorated `AT_FDCWD`), which only the collector
    /// knows, else whether the path is unchanged.
    fn absolutize(&mut self, dirfd: Option<&[u8]>) -> Option<bool> {
        if !self.path.starts_with('/') {
            match dirfd {
                Some(d)
                    if join_to_dirfd(
                        d,
                        &mut self.path,
                        &mut self.other,
                        &mut self.tmp,
                        &mut self.scratch,
                    ) =>
                {
                    return Some(false)
                }
                Some(d) if d != b"AT_FDCWD" => {}
                _ => return None,
            }
        }
        Some(normalize_in_place(&mut self.path, &mut self.tmp))
    }
}

/// What [`Pre::open`] found, before its strings are lent out.
#[derive(Clone, Copy)]
struct OpenedAt {
    opened: Opened<'static>,
    resolved: Resolved,
}

/// Where the `-y` name of an opened fd is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resolved {
    /// The trace has none.
    No,
    /// It is the path as opened, byte for byte.
    AsOpened,
    /// In `Pre::resolved`.
    Own,
}

/// The calls [`Pre`] tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Open,
    Probe,
    Mmap,
    /// Another call the facts come from: taken whole.
    Other,
}

impl Wanted {
    fn of(name: &[u8]) -> Option<Wanted> {
        use super::call::Wanted as W;
        W::of(name).map(|w| match w {
            W::Open => Wanted::Open,
            W::Probe => Wanted::Probe,
            W::Mmap => Wanted::Mmap,
            _ => Wanted::Other,
        })
    }
}
