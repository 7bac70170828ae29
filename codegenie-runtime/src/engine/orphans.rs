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

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::{tools, Engine, EngineError, RUN_LABEL};

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

/// What [`Engine::sweep_orphans`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Containers (scenario containers, and containers a tool image was
    /// being made from).
    pub containers: usize,
    /// Tool images.
    pub images: usize,
}

impl Engine {
    /// Remove containers and tool images left by runs whose process is
    /// gone (killed before it could clean up); see the `orphans` module.
    pub fn sweep_orphans(&self) -> Result<Swept, EngineError> {
        let Some(me) = current() else {
            return Ok(Swept::default());
        };
        let (owner, tools) = (OWNER_LABEL, tools::TOOLS_OWNER_LABEL);
        // Scenario containers carry the owner label; a container a tool
        // image is made from carries only the tools' (and scenario containers
        // inherit that one from their tool image).
        let out = self.ok(self.spec().args([
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &format!("label={RUN_LABEL}"),
            "--format",
            &format!("{{{{.ID}}}}\t{{{{.Label \"{owner}\"}}}}\t{{{{.Label \"{tools}\"}}}}"),
        ]))?;
        let mut swept = Swept::default();
        for line in out.stdout.text().lines() {
            let mut fields = line.split('\t').map(str::trim);
            let (Some(id), Some(own), Some(tool)) = (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let (key, value) = if own.is_empty() {
                (tools, tool)
            } else {
                (owner, own)
            };
            let gone = Owner::parse(value).is_some_and(|o| o.is_gone(me));
            if !gone {
                continue;
            }
            if !self.label_set_at_creation(id, key, value) {
                tracing::warn!(
                    container = id,
                    "a container's owner label comes from its image, not from codegenie; left alone"
                );
                continue;
            }
            tracing::info!(
                container = id,
                owner = value,
                "removing a leftover container"
            );
            self.remove(id)?;
            swept.containers += 1;
        }
        // After the containers, which keep their images in use.
        swept.images = self.sweep_tool_images(me)?;
        Ok(swept)
    }
}

impl Engine {
    /// Whether `container`'s `key=value` label was set when it was created
    /// rather than inherited from its image (an image may carry any label).
    /// When the image cannot be asked, the answer is no: leave it alone.
    fn label_set_at_creation(&self, container: &str, key: &str, value: &str) -> bool {
        let image = match self.ok(self.spec().args([
            "container",
            "inspect",
            "--format",
            "{{.Image}}",
            container,
        ])) {
            Ok(out) => out.stdout.text().trim().to_owned(),
            Err(e) => {
                tracing::debug!(container, error = %e, "cannot inspect a candidate orphan");
                return false;
            }
        };
        let labels = self.ok(self.spec().args([
            "image",
            "inspect",
            "--format",
            "{{json .Config.Labels}}",
            &image,
        ]));
        match labels
            .map(|o| serde_json::from_slice::<Option<BTreeMap<String, String>>>(&o.stdout.bytes))
        {
            Ok(Ok(labels)) => labels.and_then(|l| l.get(key).cloned()).as_deref() != Some(value),
            Ok(Err(e)) => {
                tracing::debug!(container, error = %e, "unreadable image labels");
                false
            }
            Err(e) => {
                tracing::debug!(container, error = %e, "cannot inspect a candidate orphan's image");
                false
            }
        }
    }
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
