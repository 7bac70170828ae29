//! Per-process state: fd tables (fd → the names of its last successful
//! open), the current binary and the latest known cwd, inherited on
//! `clone`/`fork`/`vfork`, plus a relative exec waiting for its cwd.
//!
//! State lives only while a process does: it is dropped at the process's
//! exit, so memory follows live processes and their fds, not trace size.

use std::cell::RefCell;
use std::rc::Rc;

use super::pidhash::PidMap;

/// The names of an open fd. Owned strings, so that the next open of the
/// same fd (a walk opens every file as fd 3) overwrites them in place
/// instead of allocating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FdEntry {
    /// The path as opened (absolute when it could be made so, normalised).
    pub opened: String,
    /// The `-y` name of the returned fd, when the trace has one.
    pub resolved: Option<String>,
}

/// An fd table; threads created with `CLONE_FILES` share one.
type FdTable = Rc<RefCell<PidMap<i32, FdEntry>>>;

/// The binary a process runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exe {
    /// Its path as executed (a script's interpreter when the script is known).
    pub path: Rc<str>,
    /// Whether the process is known to run exactly `path`: false when the
    /// path might be a script whose interpreter is unknown.
    pub certain: bool,
}

#[derive(Default)]
struct Proc {
    fds: FdTable,
    exe: Option<Exe>,
    /// The latest cwd the trace showed (or inherited); it may be stale when
    /// the process changed directory without a traced call since.
    cwd: Option<Rc<str>>,
    /// A successful exec of a relative path, until the cwd shows.
    pending_exec: Option<Box<str>>,
}

impl Proc {
    /// A child's state: the fd table copied (or shared with `CLONE_FILES`),
    /// binary and cwd inherited.
    fn child(&self, share_fds: bool) -> Proc {
        Proc {
            fds: if share_fds {
                self.fds.clone()
            } else {
                Rc::new(RefCell::new(self.fds.borrow().clone()))
            },
            exe: self.exe.clone(),
            cwd: self.cwd.clone(),
            pending_exec: None,
        }
    }
}

/// Every live traced process.
#[derive(Default)]
pub(crate) struct Procs {
    map: PidMap<u32, Proc>,
    /// Pids with a clone-family call in flight, most recent last: a child
    /// whose lines precede its parent's `<... clone resumed>` inherits from them.
    cloning: Vec<u32>,
}

impl Procs {
    /// Makes sure `pid` is known; a new pid inherits from a parent whose
    /// clone is still in flight, if any. Returns true when it was new.
    pub(crate) fn touch(&mut self, pid: u32) -> bool {
        if self.map.contains_key(&pid) {
            return false;
        }
        let parent = self.cloning.iter().rev().find(|&&p| p != pid).copied();
        let proc_ = match parent.and_then(|p| self.map.get(&p)) {
            Some(p) => p.child(false),
            None => Proc::default(),
        };
        self.map.insert(pid, proc_);
        true
    }

    /// Whether `pid` is known and live.
    pub(crate) fn is_live(&self, pid: u32) -> bool {
        self.map.contains_key(&pid)
    }

    /// The only live pid, if exactly one process is live.
    pub(crate) fn single_live(&self) -> Option<u32> {
        (self.map.len() == 1)
            .then(|| self.map.keys().next().copied())
            .flatten()
    }

    /// Moves the state of `from` to `to` (an unprefixed root learning its pid).
    pub(crate) fn rename(&mut self, from: u32, to: u32) {
        if let Some(p) = self.map.remove(&from) {
            self.map.insert(to, p);
        }
        for c in &mut self.cloning {
            if *c == from {
                *c = to;
            }
        }
    }

    /// A clone-family call of `pid` is in flight.
    pub(crate) fn clone_started(&mut self, pid: u32) {
        self.cloning.push(pid);
    }

    /// A clone-family call of `parent` returned `child` (when it succeeded).
    /// `share_fds` for `CLONE_FILES`.
    pub(crate) fn clone_finished(&mut self, parent: u32, child: Option<u32>, share_fds: bool) {
        if let Some(i) = self.cloning.iter().rposition(|&p| p == parent) {
            self.cloning.remove(i);
        }
        let Some(child) = child else { return };
        self.touch(parent);
        let Some(p) = self.map.get(&parent) else {
            return;
        };
        let inherited = p.child(share_fds);
        match self.map.get_mut(&child) {
            // The child already spoke and inherited; CLONE_FILES still shares.
            Some(c) => {
                if share_fds {
                    c.fds = inherited.fds;
                }
                if c.exe.is_none() {
                    c.exe = inherited.exe;
                }
                if c.cwd.is_none() {
                    c.cwd = inherited.cwd;
                }
            }
            None => {
                self.map.insert(child, inherited);
            }
        }
    }

    /// The process ended.
    pub(crate) fn exited(&mut self, pid: u32) {
        self.map.remove(&pid);
        self.cloning.retain(|&p| p != pid);
    }

    /// Records a successful open of `fd`.
    pub(crate) fn opened(&mut self, pid: u32, fd: i32, opened: &str, resolved: Option<&str>) {
        self.touch(pid);
        if let Some(p) = self.map.get(&pid) {
            match p.fds.borrow_mut().entry(fd) {
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    let e = e.get_mut();
                    e.opened.clear();
                    e.opened.push_str(opened);
                    match (&mut e.resolved, resolved) {
                        (Some(held), Some(r)) => {
                            held.clear();
                            held.push_str(r);
                        }
                        (held, r) => *held = r.map(str::to_owned),
                    }
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(FdEntry {
                        opened: opened.to_owned(),
                        resolved: resolved.map(str::to_owned),
                    });
                }
            }
        }
    }

    /// The names `pid`'s fd got from its last successful open.
    pub(crate) fn fd_entry(&self, pid: u32, fd: i32) -> Option<FdEntry> {
        self.map.get(&pid)?.fds.borrow().get(&fd).cloned()
    }

    /// The binary `pid` currently runs, if known.
    pub(crate) fn exe(&self, pid: u32) -> Option<Exe> {
        self.map.get(&pid)?.exe.clone()
    }

    /// A successful exec: `pid` now runs `exe`.
    pub(crate) fn exec(&mut self, pid: u32, exe: &str, certain: bool) {
        self.touch(pid);
        if let Some(p) = self.map.get_mut(&pid) {
            p.exe = Some(Exe {
                path: Rc::from(exe),
                certain,
            });
        }
    }

    /// Whether the latest known cwd of `pid` is `dir` (as bytes).
    pub(crate) fn cwd_is(&self, pid: u32, dir: &[u8]) -> bool {
        self.map
            .get(&pid)
            .and_then(|p| p.cwd.as_deref())
            .is_some_and(|c| c.as_bytes() == dir)
    }

    /// The latest known cwd of `pid`.
    pub(crate) fn cwd(&self, pid: u32) -> Option<Rc<str>> {
        self.map.get(&pid)?.cwd.clone()
    }

    /// The trace showed `pid`'s cwd; `None` forgets what was known (the
    /// cwd shown is not a path, or an exec may follow an untraced `chdir`).
    pub(crate) fn set_cwd(&mut self, pid: u32, cwd: Option<&str>) {
        self.touch(pid);
        if let Some(p) = self.map.get_mut(&pid) {
            if p.cwd.as_deref() != cwd {
                p.cwd = cwd.map(Rc::from);
            }
        }
    }

    /// `pid` exec'd the relative `path`: its binary is unknown until the
    /// cwd shows (see [`Procs::take_pending_exec`]).
    pub(crate) fn set_pending_exec(&mut self, pid: u32, path: &str) {
        self.touch(pid);
        if let Some(p) = self.map.get_mut(&pid) {
            p.exe = None;
            p.pending_exec = Some(Box::from(path));
        }
    }

    /// The relative exec of `pid` still waiting for its cwd, taken.
    pub(crate) fn take_pending_exec(&mut self, pid: u32) -> Option<Box<str>> {
        self.map.get_mut(&pid)?.pending_exec.take()
    }

    /// Pids with a relative exec still waiting for its cwd.
    pub(crate) fn pending_exec_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .map
            .iter()
            .filter(|(_, p)| p.pending_exec.is_some())
            .map(|(&pid, _)| pid)
            .collect();
        // Hash order is not stable across runs; facts must be.
        pids.sort_unstable();
        pids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_copies_and_clone_files_shares() {
        let mut p = Procs::default();
        let opened = |p: &Procs, pid, fd| p.fd_entry(pid, fd).map(|e| e.opened.to_string());
        p.exec(1, "/bin/app", true);
        p.set_cwd(1, Some("/srv"));
        p.opened(1, 3, "/lib/a.so", Some("/usr/lib/a.so"));
        p.clone_started(1);
        p.clone_finished(1, Some(2), false);
        p.clone_started(1);
        p.clone_finished(1, Some(3), true);
        p.opened(1, 4, "/lib/b.so", None);
        assert_eq!(opened(&p, 2, 3).as_deref(), Some("/lib/a.so"));
        assert_eq!(
            p.fd_entry(2, 3).and_then(|e| e.resolved).as_deref(),
            Some("/usr/lib/a.so")
        );
        assert_eq!(opened(&p, 2, 4), None, "forked table is a copy");
        assert_eq!(
            opened(&p, 3, 4).as_deref(),
            Some("/lib/b.so"),
            "CLONE_FILES shares"
        );
        assert_eq!(
            p.exe(2).map(|e| e.path.to_string()).as_deref(),
            Some("/bin/app")
        );
        assert_eq!(p.cwd(2).as_deref(), Some("/srv"));
        p.exited(2);
        assert!(!p.is_live(2));
    }

    #[test]
    fn child_seen_before_clone_returns_inherits_from_the_cloner() {
        let mut p = Procs::default();
        let exe = |p: &Procs, pid| p.exe(pid).map(|e| e.path.to_string());
        p.exec(10, "/bin/sh", false);
        p.clone_started(10);
        assert!(p.touch(11));
        assert_eq!(exe(&p, 11).as_deref(), Some("/bin/sh"));
        p.clone_finished(10, Some(11), false);
        assert_eq!(exe(&p, 11).as_deref(), Some("/bin/sh"));
    }

    #[test]
    fn a_relative_exec_waits_for_its_cwd() {
        let mut p = Procs::default();
        p.exec(5, "/bin/sh", true);
        p.set_pending_exec(5, "run.sh");
        assert_eq!(p.exe(5), None, "the old binary no longer runs");
        assert_eq!(p.pending_exec_pids(), [5]);
        assert_eq!(p.take_pending_exec(5).as_deref(), Some("run.sh"));
        assert_eq!(p.take_pending_exec(5), None);
        assert!(p.pending_exec_pids().is_empty());
    }
}
