//! Interpreter lookups asked while the app runs (docs/architecture.md,
//! "Container flow"). Where a scenario's trace is written to a folder on
//! this machine (its trace volume), a thread reads it as strace writes it,
//! and for each program a successful `execve` ran by an absolute path asks
//! its interpreter of the running container at once: read in its root on
//! this machine where it can be (`engine::rootfs`), else an archive request
//! (about 50 ms: the engine starts a process of its own for it, and tars
//! the file through the storage driver while the app runs). Asked after
//! the stop, the Node service's three cost 170 ms on the scenario's path.
//! The parse proper still reads every line afterwards and asks whatever is
//! not answered here; an answer here is the file as it was just after it
//! was executed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::TraceVolume;
use crate::interp::Interpreter;
use crate::strace::absolute_exec;
use crate::strace::rules::is_elf_loader;

/// How often the trace is read for new lines.
const POLL: Duration = Duration::from_millis(25);
/// Longest line kept while waiting for its end; a longer one is dropped.
const MAX_LINE: usize = 1 << 20;
/// How much of a trace is read for programs: past it (a flood), the parse
/// asks for the rest after the stop.
const MAX_READ: u64 = 64 << 20;

/// The lookups asked so far, by executed path.
pub(crate) type Answers = BTreeMap<String, Option<Interpreter>>;

/// A thread asking interpreters of a running container from its trace.
pub(crate) struct Prefetch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Answers>>,
}

impl Prefetch {
    /// Start reading the trace `name` in `volume` (on this machine) for
    /// programs, asking `lookup` for at most `limit` of them and none of
    /// `known`.
    pub(crate) fn start(
        volume: TraceVolume,
        name: &'static str,
        known: BTreeSet<String>,
        limit: usize,
        lookup: impl Fn(&str) -> Option<Interpreter> + Send + 'static,
    ) -> Prefetch {
        Prefetch::polling(volume, name, known, limit, POLL, lookup)
    }

    fn polling(
        volume: TraceVolume,
        name: &'static str,
        known: BTreeSet<String>,
        limit: usize,
        poll: Duration,
        lookup: impl Fn(&str) -> Option<Interpreter> + Send + 'static,
    ) -> Prefetch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("codegenie-prefetch".into())
            .spawn(move || run(&volume, name, known, limit, poll, &flag, lookup))
            .map_err(
                |e| tracing::debug!(error = %e, "no interpreter prefetch: cannot start its thread"),
            )
            .ok();
        Prefetch { stop, thread }
    }

    /// Stop asking (a lookup in flight finishes) and give what was answered.
    pub(crate) fn finish(mut self) -> Answers {
        self.stop.store(true, Ordering::Release);
        // Woken from its pause between reads: the scenario's end does not
        // wait out a poll.
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(answers)) => answers,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Answers::new(),
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        // Dropped unfinished (an error path): the thread stops on its own.
        self.stop.store(true, Ordering::Release);
    }
}

fn run(
    volume: &TraceVolume,
    name: &str,
    mut known: BTreeSet<String>,
    limit: usize,
    poll: Duration,
    stop: &AtomicBool,
    lookup: impl Fn(&str) -> Option<Interpreter>,
) -> Answers {
    let mut answers = Answers::new();
    let mut file: Option<File> = None;
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let mut read = 0u64;
    let stopped = || stop.load(Ordering::Acquire);
    while !stopped() && answers.len() < limit && read < MAX_READ {
        if file.is_none() {
            // Opened as the copy out opens it: no link, no FIFO.
            file = volume.open(name).ok().map(|(f, _)| f);
        }
        let mut grew = false;
        if let Some(f) = file.as_mut() {
            match f.read(&mut chunk) {
                Ok(n) if n > 0 => {
                    pending.extend_from_slice(&chunk[..n]);
                    read += n as u64;
                    grew = true;
                }
                Ok(_) => {}
                Err(_) => return answers,
            }
        }
        if let Some(end) = memchr::memrchr(b'\n', &pending) {
            for line in pending[..end].split(|b| *b == b'\n') {
                if stopped() || answers.len() >= limit {
                    break;
                }
                if memchr::memmem::find(line, b"execve(").is_none() {
                    continue;
                }
                let Some(path) = absolute_exec(line) else {
                    continue;
                };
                // The kernel never reads a loader's interpreter.
                if is_elf_loader(&path) || !known.insert(path.clone()) {
                    continue;
                }
                let found = lookup(&path);
                answers.insert(path, found);
            }
            pending.drain(..=end);
        } else if pending.len() > MAX_LINE {
            pending.clear();
        }
        if !grew {
            // `finish` unparks: a pause ends early at the stop.
            std::thread::park_timeout(poll);
        }
    }
    answers
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex;

    use super::*;

    fn interp(path: &str) -> Option<Interpreter> {
        Some(Interpreter {
            path: path.to_owned(),
            loader: path.starts_with("/lib"),
        })
    }

    #[test]
    fn programs_are_asked_once_each_as_their_lines_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let trace = dir.path().join("trace");
        let volume = volume_at(dir.path());
        let asked = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&asked);
        let known = BTreeSet::from(["/bin/known".to_owned()]);
        let p = Prefetch::start(volume, "trace", known, 8, move |path| {
            seen.lock().unwrap().push(path.to_owned());
            interp(if path == "/app/run.sh" {
                "/bin/sh"
            } else {
                "/lib64/ld-linux-x86-64.so.2"
            })
        });
        // The trace appears after the thread started, and grows in pieces,
        // one line cut in two.
        std::thread::sleep(Duration::from_millis(60));
        let mut f = File::create(&trace).unwrap();
        f.write_all(b"0 execve(\"/bin/known\", [\"k\"], 0x1 /* 0 vars */) = 0\n1 execve(\"/app/run.sh\", [\"/app/run.sh\"], 0x1 /* 0 vars */) = 0\n2 execve(\"/bin/s").unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(80));
        f.write_all(b"h\", [\"sh\"], 0x1 /* 0 vars */) = 0\n3 execve(\"/bin/sh\", [\"sh\"], 0x1 /* 0 vars */) = 0\n\
              4 execve(\"/lib64/ld-linux-x86-64.so.2\", [\"ld\"], 0x1 /* 0 vars */) = 0\n").unwrap();
        f.flush().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while asked.lock().unwrap().len() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let answers = p.finish();
        // Each program once; the loader and a program asked before never.
        assert_eq!(*asked.lock().unwrap(), ["/app/run.sh", "/bin/sh"]);
        assert_eq!(answers["/app/run.sh"], interp("/bin/sh"));
        assert_eq!(answers.len(), 2);
    }

    #[test]
    fn at_most_the_limit_is_asked_and_a_link_in_the_trace_s_place_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut lines = String::new();
        for i in 0..50 {
            lines.push_str(&format!(
                "{i} execve(\"/bin/p{i}\", [\"p\"], 0x1 /* 0 vars */) = 0\n"
            ));
        }
        let real = dir.path().join("real");
        std::fs::write(&real, &lines).unwrap();
        // The control: the real file gives programs up to the limit.
        let answers = finish_when_idle(Prefetch::start(
            volume_at(dir.path()),
            "real",
            BTreeSet::new(),
            3,
            |_| interp("/bin/sh"),
        ));
        assert_eq!(answers.len(), 3);
        // A link to it in the trace's place gives none.
        let link = dir.path().join("trace");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let answers = finish_when_idle(Prefetch::start(
            volume_at(dir.path()),
            "trace",
            BTreeSet::new(),
            3,
            |_| interp("/bin/sh"),
        ));
        assert!(answers.is_empty(), "{answers:?}");
    }

    #[test]
    fn the_stop_ends_a_pause_between_reads() {
        let dir = tempfile::tempdir().unwrap();
        // A pause far longer than the test: only the stop's wake-up ends it.
        let p = Prefetch::polling(
            volume_at(dir.path()),
            "trace",
            BTreeSet::new(),
            8,
            Duration::from_secs(600),
            |_| None,
        );
        std::thread::sleep(Duration::from_millis(50));
        let asked = std::time::Instant::now();
        assert!(p.finish().is_empty());
        assert!(
            asked.elapsed() < Duration::from_secs(60),
            "finish waited out the pause: {:?}",
            asked.elapsed()
        );
    }

    fn volume_at(dir: &std::path::Path) -> TraceVolume {
        TraceVolume {
            name: "test".to_owned(),
            host_dir: dir.to_owned(),
        }
    }

    fn finish_when_idle(p: Prefetch) -> Answers {
        std::thread::sleep(Duration::from_millis(200));
        p.finish()
    }
}
