//! The exports a minimal image starts from, started early: by the trace,
//! once it has built the original, while its scenarios run
//! (docs/architecture.md, "The Dockerfile is the product"). With `--base`
//! they are the original's and the base's ([`exports`]); without, the
//! original's index, which the cut is chosen from. The engine tars the
//! image through its storage driver while the scenarios mostly wait on the
//! app, so the exports cost the run little of their own time (6.6 s for
//! node-sqlite3, against 0.3 s more for its trace here).

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::engine::Engine;

use super::base::Base;
use super::image_fs::{index_stream, index_stream_hashed, ImageIndex};
use super::MinimizeError;

/// What [`exports`] gives: the base, then the original's index.
pub type Exports = Result<(Base, ImageIndex), MinimizeError>;

/// The base `base_ref` (looked up first, so a missing one fails before any
/// export) and the index of `original` with file digests, both exports at
/// once: each is the engine reading a filesystem through its storage
/// driver while we hash what it sends. Once `stop` is set, the original's
/// export stops at its next read, with an error.
pub fn exports(engine: &Engine, original: &str, base_ref: &str, stop: Arc<AtomicBool>) -> Exports {
    let base_id = Base::resolve(engine, base_ref)?;
    let (base, index) = std::thread::scope(|s| {
        let base = s.spawn(|| Base::load_resolved(engine, base_ref, base_id));
        let index = original_index(engine, original, stop, true);
        let base = crate::runtime_trace::bundle::joined(base.join());
        (base, index)
    });
    Ok((base?, index?))
}

/// The index of `original`, as the cut without a base reads it; stopped as
/// [`exports`] is.
pub fn index(engine: &Engine, original: &str, stop: Arc<AtomicBool>) -> Index {
    original_index(engine, original, stop, false)
}

/// The original's export read into its index (with file digests when
/// `hashed`), failing at the next read once `stop` is set.
fn original_index(engine: &Engine, original: &str, stop: Arc<AtomicBool>, hashed: bool) -> Index {
    let index = engine.export_streamed(original, move |r| {
        let mut r = Stoppable { r, stop };
        let name = Path::new("docker export (original)");
        if hashed {
            index_stream_hashed(&mut r, name)
        } else {
            index_stream(&mut r, name)
        }
    });
    Ok(index??)
}

/// What [`index`] gives.
pub type Index = Result<ImageIndex, MinimizeError>;

/// A reader that fails once `stop` is set: the export behind it then
/// stops too (its reader is gone).
struct Stoppable<'a> {
    r: &'a mut dyn Read,
    stop: Arc<AtomicBool>,
}

impl Read for Stoppable<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("the export was stopped"));
        }
        self.r.read(buf)
    }
}

/// One run's early exports: started at most once, taken by the minimal
/// image's build when they are of the original (and base) it asks for,
/// else stopped at the end of the run ([`Prefetch::stop`]).
#[derive(Clone, Default)]
pub struct Prefetch(Arc<Mutex<Option<Started>>>);

struct Started {
    original: String,
    stop: Arc<AtomicBool>,
    job: Job,
}

/// The exports started: for a build on a base, or for the cut without one.
enum Job {
    OnBase {
        base: String,
        handle: JoinHandle<Exports>,
    },
    Index(JoinHandle<Index>),
}

impl Started {
    /// Stops the exports and waits for their container to go.
    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        match self.job {
            Job::OnBase { handle, .. } => drop(handle.join()),
            Job::Index(handle) => drop(handle.join()),
        }
    }
}

impl std::fmt::Debug for Prefetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match &*slot {
            Some(Started {
                original,
                job: Job::OnBase { base, .. },
                ..
            }) => write!(f, "Prefetch({original} on {base})"),
            Some(Started { original, .. }) => write!(f, "Prefetch({original})"),
            None => f.write_str("Prefetch(none)"),
        }
    }
}

impl Prefetch {
    /// Start the exports of `original` and `base` on `engine`, in a thread
    /// of their own; a second call while the first is held does nothing.
    pub fn start(&self, engine: Engine, original: &str, base: &str) {
        let started = self.start_job(original, |stop| {
            let (o, b) = (original.to_owned(), base.to_owned());
            Job::OnBase {
                base: base.to_owned(),
                handle: std::thread::spawn(move || exports(&engine, &o, &b, stop)),
            }
        });
        if started {
            tracing::debug!(original, base, "exports started early");
        }
    }

    /// Start the export of `original`'s index on `engine` ([`index`]), for
    /// the cut without a base; as [`Prefetch::start`] otherwise.
    pub fn start_index(&self, engine: Engine, original: &str) {
        let started = self.start_job(original, |stop| {
            let o = original.to_owned();
            Job::Index(std::thread::spawn(move || index(&engine, &o, stop)))
        });
        if started {
            tracing::debug!(original, "export started early");
        }
    }

    /// Starts `job` unless exports are held already; whether it did.
    fn start_job(&self, original: &str, job: impl FnOnce(Arc<AtomicBool>) -> Job) -> bool {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return false;
        }
        let stop = Arc::new(AtomicBool::new(false));
        *slot = Some(Started {
            original: original.to_owned(),
            stop: stop.clone(),
            job: job(stop),
        });
        true
    }

    /// The exports of `original` on `base`, if they were started: waited
    /// for. Exports of another image or base, or for the cut without one,
    /// are stopped and `None` returned.
    pub fn take(&self, original: &str, base: &str) -> Option<Exports> {
        let started = self.0.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        match started.job {
            Job::OnBase { base: b, handle } if started.original == original && b == base => {
                Some(crate::runtime_trace::bundle::joined(handle.join()))
            }
            _ => {
                started.stop();
                None
            }
        }
    }

    /// The index of `original`, if its export was started for the cut
    /// without a base: waited for. Any other exports are stopped and
    /// `None` returned.
    pub fn take_index(&self, original: &str) -> Option<Index> {
        let started = self.0.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        match started.job {
            Job::Index(handle) if started.original == original => {
                Some(crate::runtime_trace::bundle::joined(handle.join()))
            }
            _ => {
                started.stop();
                None
            }
        }
    }

    /// Stop exports nobody took (the trace failed after its build, the
    /// minimal image came from the cache, the run was cancelled) and wait
    /// for them: their container is removed before the run ends.
    pub fn stop(&self) {
        let started = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(s) = started {
            s.stop();
        }
    }
}
