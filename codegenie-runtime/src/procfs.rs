//! `/proc/<pid>/stat`, read once for the whole crate: the parent pid (to find
//! the traced app's root process), the state (a zombie is not a live root),
//! and the start time (to tell a process from a later one with its pid).

/// The fields of one `/proc/<pid>/stat` line that codegenie uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// Field 3: `R`, `S`, `Z`, ...
    pub(crate) state: char,
    /// Field 4: the parent pid.
    pub(crate) ppid: i32,
    /// Field 22: clock ticks after boot when the process started.
    pub(crate) start_time: u64,
}

impl ProcStat {
    /// Parse a stat line; the command (field 2) may hold spaces and parentheses.
    pub(crate) fn parse(line: &str) -> Option<ProcStat> {
        let (_, after) = line.rsplit_once(") ")?;
        let mut f = after.split_whitespace();
        let state = f.next()?.chars().next()?;
        let ppid = f.next()?.parse().ok()?;
        // Fields 5..21 come between the parent pid and the start time.
        let start_time = f.nth(17).and_then(|s| s.parse().ok()).unwrap_or(0);
        Some(ProcStat {
            state,
            ppid,
            start_time,
        })
    }

    /// The stat of `pid` under `proc_root` (normally `/proc`).
    pub(crate) fn read(proc_root: &std::path::Path, pid: i32) -> Option<ProcStat> {
        let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
        ProcStat::parse(&text)
    }

    /// The parent of a live (not zombie) process.
    pub(crate) fn live_parent(&self) -> Option<i32> {
        (self.state != 'Z').then_some(self.ppid)
    }
}

/// The pid of the process tracing `pid` (`TracerPid` in `/proc/<pid>/status`;
/// 0 when none), and its command name.
pub(crate) fn tracer_and_comm(proc_root: &std::path::Path, pid: i32) -> Option<(i32, String)> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    let tracer = field("TracerPid:")?.parse().ok()?;
    Some((tracer, field("Name:").unwrap_or_default()))
}

/// Whether `pid` is gone or a zombie (exited, not yet reaped).
pub(crate) fn has_exited(proc_root: &std::path::Path, pid: i32) -> bool {
    ProcStat::read(proc_root, pid).is_none_or(|s| s.state == 'Z' || s.state == 'X')
}

#[cfg(test)]
mod tests {
    use super::ProcStat;

    #[test]
    fn odd_command_names_and_zombies() {
        let line =
            "42 (my (odd) app) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let s = ProcStat::parse(line).unwrap();
        assert_eq!((s.state, s.ppid, s.start_time), ('S', 1, 987654));
        assert_eq!(s.live_parent(), Some(1));
        let z = ProcStat::parse("43 (sh) Z 1 43 43 0").unwrap();
        assert_eq!(z.live_parent(), None);
        assert_eq!(ProcStat::parse("garbage"), None);
    }

    #[test]
    fn status_of_a_real_process() {
        let proc_root = std::path::Path::new("/proc");
        let me = std::process::id() as i32;
        let (tracer, name) = super::tracer_and_comm(proc_root, me).unwrap();
        assert_eq!(tracer, 0, "not traced");
        assert!(!name.is_empty());
        assert!(!super::has_exited(proc_root, me));
        assert!(super::has_exited(proc_root, i32::MAX));
    }

    #[test]
    fn this_process() {
        let me = ProcStat::read(std::path::Path::new("/proc"), std::process::id() as i32).unwrap();
        assert!(me.start_time > 0);
        assert_eq!(me.ppid, nix::unistd::getppid().as_raw());
    }
}
