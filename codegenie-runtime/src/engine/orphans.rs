//! Leftovers of interrupted runs. Every container also carries an owner
//! label naming the process that created it (host, pid namespace, pid and
//! the process's start time, so a reused pid is not mistaken for it). A later
//! run removes containers whose owner is a process of this host and pid
//! namespace that no longer exists; anything else (other hosts, other pid
//! namespaces, containers without the label) is never touched.
//!
//! A container inherits its image's labels, so an image can carry an owner
//! label too: only a label that codegenie set at creation counts, i.e. one
//! whose value differs from the image's own (docs/architecture.md,
//! "Container flow"). The coordinator marks its scratch folders with the
//! same owner value, so the folders of killed runs are swept alike.

use std::sync::OnceLock;

/// The owner label's key.
pub(crate) const OWNER_LABEL: &str = "codegenie.owner";

/// Who a container belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    /// The kernel host name.
    pub host: String,
    /// The pid namespace (`/proc/self/ns/pid` link text).
    pub pid_ns: String,
    /// The process id.
    pub pid: u32,
    /// The process's start time (clock ticks since boot, `/proc/<pid>/stat` field 22).
    pub start: u64,
}

impl Owner {
    /// The label value: `host/pid_ns/pid/start`.
    pub(crate) fn label_value(&self) -> String {
        format!("{}/{}/{}/{}", self.host, self.pid_ns, self.pid, self.start)
    }

    /// Parse a label value; `None` when it is not one (never an orphan then).
    pub(crate) fn parse(value: &str) -> Option<Owner> {
        // The host name may contain `/` in principle: split from the right.
        let mut parts = value.rsplitn(4, '/');
        let start = parts.next()?.parse().ok()?;
        let pid = parts.next()?.parse().ok()?;
        let pid_ns = parts.next()?.to_owned();
        let host = parts.next()?.to_owned();
        Some(Owner {
            host,
            pid_ns,
            pid,
            start,
        })
    }

    /// Whether `self` is a process of `me`'s host and pid namespace that no
    /// longer runs (its pid is gone or belongs to a later process).
    pub(crate) fn is_gone(&self, me: &Owner) -> bool {
        if self.host != me.host || self.pid_ns != me.pid_ns {
            return false;
        }
        match start_time(self.pid) {
            Some(start) => start != self.start,
            None => !std::path::Path::new(&format!("/proc/{}", self.pid)).exists(),
        }
    }
}

/// `codegenie.owner=<this process>` for a container's `--label`.
pub(crate) fn owner_label() -> Option<String> {
    current().map(|o| format!("{OWNER_LABEL}={}", o.label_value()))
}

/// This process as an owner (`None` where `/proc` cannot tell).
pub(crate) fn current() -> Option<&'static Owner> {
    static ME: OnceLock<Option<Owner>> = OnceLock::new();
    ME.get_or_init(|| {
        let pid = std::process::id();
        Some(Owner {
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()?
                .trim()
                .to_owned(),
            pid_ns: std::fs::read_link("/proc/self/ns/pid")
                .ok()?
                .to_string_lossy()
                .into_owned(),
            pid,
            start: start_time(pid)?,
        })
    })
    .as_ref()
}

/// The start time of `pid` (`/proc/<pid>/stat` field 22).
fn start_time(pid: u32) -> Option<u64> {
    crate::procfs::ProcStat::read(std::path::Path::new("/proc"), pid as i32)
        .map(|s| s.start_time)
        .filter(|t| *t > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_round_trip() {
        let o = Owner {
            host: "build/7".to_owned(),
            pid_ns: "pid:[4026531836]".to_owned(),
            pid: 42,
            start: 123456,
        };
        assert_eq!(Owner::parse(&o.label_value()), Some(o));
        assert_eq!(Owner::parse("garbage"), None);
        assert_eq!(Owner::parse("h/ns/notapid/1"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_dead_one_is_gone() {
        let me = current().expect("/proc is readable on Linux");
        assert!(!me.is_gone(me));
        #[allow(clippy::disallowed_methods)] // a test process to outlive
        let mut child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg("exit 0")
            .spawn()
            .unwrap();
        let pid = child.id();
        let start = start_time(pid);
        child.wait().unwrap();
        let dead = Owner {
            pid,
            start: start.unwrap_or(1),
            ..me.clone()
        };
        assert!(dead.is_gone(me));
        // Same pid, another start time: a reused pid is not the owner.
        let reused = Owner {
            start: me.start + 1,
            ..me.clone()
        };
        assert!(reused.is_gone(me));
        // Another host or pid namespace is never judged.
        let elsewhere = Owner {
            host: format!("{}-other", me.host),
            ..dead.clone()
        };
        assert!(!elsewhere.is_gone(me));
    }
}
