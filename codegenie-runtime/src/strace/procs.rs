//! Per-process state: fd tables (fd → path of the last successful open) and
//! the current binary, inherited on `clone`/`fork`/`vfork`.

use std::cell::RefCell;
use std::collections::HashSet;

use super::pidhash::PidMap;
use std::rc::Rc;

/// An fd table; threads created with `CLONE_FILES` share one.
type FdTable = Rc<RefCell<PidMap<i32, Rc<str>>>>;

#[derive(Default)]
struct Proc {
    fds: FdTable,
    exe: Option<Rc<str>>,
}

/// Every live traced process.
#[derive(Default)]
pub(crate) struct Procs {
    map: PidMap<u32, Proc>,
    /// Paths are stored once, however many fds or processes refer to them.
    interned: HashSet<Rc<str>>,
    /// Pids with a clone-family call in flight, most recent last: a child
    /// whose lines precede its parent's `<... clone resumed>` inherits from them.
    cloning: Vec<u32>,
}

impl Procs {
    fn intern(&mut self, s: &str) -> Rc<str> {
        if let Some(r) = self.interned.get(s) {
            return r.clone();
        }
        let r: Rc<str> = Rc::from(s);
        self.interned.insert(r.clone());
        r
    }

    /// Makes sure `pid` is known; a new pid inherits from a parent whose
    /// clone is still in flight, if any. Returns true when it was new.
    pub(crate) fn touch(&mut self, pid: u32) -> bool {
        if self.map.contains_key(&pid) {
            return false;
        }
        let parent = self.cloning.iter().rev().find(|&&p| p != pid).copied();
        let proc_ = match parent.and_then(|p| self.map.get(&p)) {
            Some(p) => Proc {
                fds: Rc::new(RefCell::new(p.fds.borrow().clone())),
                exe: p.exe.clone(),
            },
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
        let fds = if share_fds {
            p.fds.clone()
        } else {
            Rc::new(RefCell::new(p.fds.borrow().clone()))
        };
        let exe = p.exe.clone();
        match self.map.get_mut(&child) {
            // The child already spoke and inherited; CLONE_FILES still shares.
            Some(c) => {
                if share_fds {
                    c.fds = fds;
                }
                if c.exe.is_none() {
                    c.exe = exe;
                }
            }
            None => {
                self.map.insert(child, Proc { fds, exe });
            }
        }
    }

    /// The process ended.
    pub(crate) fn exited(&mut self, pid: u32) {
        self.map.remove(&pid);
        self.cloning.retain(|&p| p != pid);
    }

    /// Records a successful open.
    pub(crate) fn opened(&mut self, pid: u32, fd: i32, path: &str) {
        let path = self.intern(path);
        self.touch(pid);
        if let Some(p) = self.map.get(&pid) {
            p.fds.borrow_mut().insert(fd, path);
        }
    }

    /// The path `pid`'s fd got from its last successful open.
    pub(crate) fn fd_path(&self, pid: u32, fd: i32) -> Option<Rc<str>> {
        self.map.get(&pid)?.fds.borrow().get(&fd).cloned()
    }

    /// The binary `pid` currently runs, if known.
    pub(crate) fn exe(&self, pid: u32) -> Option<Rc<str>> {
        self.map.get(&pid)?.exe.clone()
    }

    /// A successful exec: `pid` now runs `exe`.
    pub(crate) fn exec(&mut self, pid: u32, exe: &str) {
        let exe = self.intern(exe);
        self.touch(pid);
        if let Some(p) = self.map.get_mut(&pid) {
            p.exe = Some(exe);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_copies_and_clone_files_shares() {
        let mut p = Procs::default();
        p.exec(1, "/bin/app");
        p.opened(1, 3, "/lib/a.so");
        p.clone_started(1);
        p.clone_finished(1, Some(2), false);
        p.clone_started(1);
        p.clone_finished(1, Some(3), true);
        p.opened(1, 4, "/lib/b.so");
        assert_eq!(p.fd_path(2, 3).as_deref(), Some("/lib/a.so"));
        assert_eq!(p.fd_path(2, 4), None, "forked table is a copy");
        assert_eq!(
            p.fd_path(3, 4).as_deref(),
            Some("/lib/b.so"),
            "CLONE_FILES shares"
        );
        assert_eq!(p.exe(2).as_deref(), Some("/bin/app"));
        p.exited(2);
        assert!(!p.is_live(2));
    }

    #[test]
    fn child_seen_before_clone_returns_inherits_from_the_cloner() {
        let mut p = Procs::default();
        p.exec(10, "/bin/sh");
        p.clone_started(10);
        assert!(p.touch(11));
        assert_eq!(p.exe(11).as_deref(), Some("/bin/sh"));
        p.clone_finished(10, Some(11), false);
        assert_eq!(p.exe(11).as_deref(), Some("/bin/sh"));
    }
}
