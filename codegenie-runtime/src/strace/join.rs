//! Joining `syscall(... <unfinished ...>` with the same pid's later
//! `<... syscall resumed>...`.

use super::pidhash::PidMap;

/// The marker ending an interrupted call.
pub(crate) const UNFINISHED: &[u8] = b"<unfinished ...>";

/// Interrupted calls waiting for their resumption, one per pid at most.
#[derive(Default)]
pub(crate) struct Joiner {
    pending: PidMap<u32, Vec<u8>>,
    /// Emptied buffers kept for reuse, so joining does not allocate per line.
    free: Vec<Vec<u8>>,
}

/// The text of an interrupted call without its marker, when `body` is one.
pub(crate) fn strip_unfinished(body: &[u8]) -> Option<&[u8]> {
    let head = body.strip_suffix(UNFINISHED)?;
    Some(head.strip_suffix(b" ").unwrap_or(head))
}

/// `(name, rest)` of a `<... name resumed>rest` line.
pub(crate) fn split_resumed(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let inner = body.strip_prefix(b"<... ")?;
    let end = memchr::memmem::find(inner, b" resumed>")?;
    Some((&inner[..end], &inner[end + b" resumed>".len()..]))
}

impl Joiner {
    /// Keeps `text` (`name(args...`) until `pid` resumes. Returns false when
    /// a call of `pid` was already pending (it is replaced).
    pub(crate) fn park(&mut self, pid: u32, text: &[u8]) -> bool {
        let mut buf = self.free.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(text);
        match self.pending.insert(pid, buf) {
            Some(old) => {
                self.recycle(old);
                false
            }
            None => true,
        }
    }

    /// Writes the pending text of `pid` followed by `rest` into `out`.
    /// False (and nothing written) when no call of that name is pending.
    pub(crate) fn resume(&mut self, pid: u32, name: &[u8], rest: &[u8], out: &mut Vec<u8>) -> bool {
        let matches = self.pending.get(&pid).is_some_and(|p| {
            p.strip_prefix(name)
                .is_some_and(|r| r.first() == Some(&b'('))
        });
        if !matches {
            return false;
        }
        let Some(head) = self.pending.remove(&pid) else {
            return false;
        };
        out.clear();
        out.extend_from_slice(&head);
        out.extend_from_slice(rest);
        self.recycle(head);
        true
    }

    /// Forgets what `pid` had pending (it exited).
    pub(crate) fn forget(&mut self, pid: u32) {
        if let Some(b) = self.pending.remove(&pid) {
            self.recycle(b);
        }
    }

    /// Renames a pid (an unprefixed root learning its pid).
    pub(crate) fn rename(&mut self, from: u32, to: u32) {
        if let Some(b) = self.pending.remove(&from) {
            self.pending.insert(to, b);
        }
    }

    fn recycle(&mut self, mut b: Vec<u8>) {
        // Keep a few modest buffers; a huge one would pin memory.
        if self.free.len() < 64 && b.capacity() <= 64 << 10 {
            b.clear();
            self.free.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_pids_join_with_their_own_halves() {
        let mut j = Joiner::default();
        let mut out = Vec::new();
        assert!(j.park(1, b"openat(AT_FDCWD, \"/a\", O_RDONLY"));
        assert!(j.park(2, b"wait4(-1, "));
        assert!(j.resume(2, b"wait4", b"NULL, 0, NULL) = 7", &mut out));
        assert_eq!(out, b"wait4(-1, NULL, 0, NULL) = 7");
        assert!(!j.resume(1, b"read", b") = 3", &mut out), "name must match");
        assert!(j.resume(1, b"openat", b") = 3", &mut out));
        assert_eq!(out, b"openat(AT_FDCWD, \"/a\", O_RDONLY) = 3");
        assert!(
            !j.resume(1, b"openat", b") = 3", &mut out),
            "already consumed"
        );
    }

    #[test]
    fn markers_are_recognised() {
        assert_eq!(
            strip_unfinished(b"brk(NULL <unfinished ...>"),
            Some(&b"brk(NULL"[..])
        );
        assert_eq!(strip_unfinished(b"brk(NULL) = 0"), None);
        assert_eq!(
            split_resumed(b"<... brk resumed>) = 0x55"),
            Some((&b"brk"[..], &b") = 0x55"[..]))
        );
        assert_eq!(split_resumed(b"<... brk>) = 0"), None);
    }
}
