//! The coordinator: runs registered probes in order (light → heavy →
//! runs_last), gates them on `applies`, consults the cache, enforces timeouts,
//! and records what happened to each. One probe's failure never stops the others.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::cache::ProbeCache;
use crate::engine::orphans;
use crate::errors::error_chain;
use crate::probe::{CacheStrategy, DynProbe, ProbeContext, ProbeOutput, RepoSnapshot};
use crate::record::{GatherReport, ProbeRecord, ProbeStatus};
use crate::registry::{ProbeRegistration, Registry};

/// How long a timed-out probe gets, once cancelled, to clean up.
const CANCEL_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// What to run and how.
#[derive(Default, Clone)]
pub struct GatherOptions {
    /// Run only these probes (by name); every probe when empty.
    pub only: Vec<String>,
    /// Bypass the cache (neither read nor written).
    pub no_cache: bool,
    /// Run even when the cache has an entry, and store the new output
    /// (ignored with `no_cache`).
    pub refresh: bool,
    /// Context handed to every probe.
    pub ctx: ProbeContext,
}

/// Why a gather could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinatorError {
    /// `--only` named a probe that is not registered.
    #[error("no probe named `{name}`{}; registered probes: {known}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownProbe {
        /// The requested name.
        name: String,
        /// The closest registered name, if one is close.
        suggestion: Option<String>,
        /// The registered names.
        known: String,
    },
}

/// Runs probes.
pub struct Coordinator {
    registry: Registry,
    cache: Option<Arc<dyn ProbeCache>>,
}

impl Coordinator {
    /// A coordinator over `registry`, without a cache.
    pub fn new(registry: Registry) -> Self {
        Coordinator {
            registry,
            cache: None,
        }
    }

    /// Use `cache` for probes whose strategy is `content`.
    pub fn with_cache(mut self, cache: Arc<dyn ProbeCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Run the selected probes on `repo`, one after another in run order.
    pub async fn gather(
        &self,
        repo: &RepoSnapshot,
        opts: &GatherOptions,
    ) -> Result<GatherReport, CoordinatorError> {
        for name in &opts.only {
            if self.registry.get(name).is_none() {
                let suggestion = codegenie_spec::suggest::closest(name, self.registry.names())
                    .map(str::to_owned);
                return Err(CoordinatorError::UnknownProbe {
                    name: name.clone(),
                    suggestion,
                    known: self.registry.names().join(", "),
                });
            }
        }
        sweep_scratch(repo);
        let mut records = Vec::new();
        // What each probe produced, for the probes after it (`runs_last`
        // probes read the evidence of the others).
        let mut earlier: BTreeMap<String, ProbeOutput> = BTreeMap::new();
        for reg in self.registry.entries() {
            if !opts.only.is_empty() && !opts.only.iter().any(|n| n == reg.name) {
                continue;
            }
            let record = self.run_one(reg, repo, opts, &earlier).await;
            if let Some(out) = &record.output {
                earlier.insert(reg.name.to_owned(), out.clone());
            }
            records.push(record);
        }
        Ok(GatherReport { records })
    }

    async fn run_one(
        &self,
        reg: &'static ProbeRegistration,
        repo: &RepoSnapshot,
        opts: &GatherOptions,
        earlier: &BTreeMap<String, ProbeOutput>,
    ) -> ProbeRecord {
        let started = Instant::now();
        let probe: Arc<dyn DynProbe> = Arc::from((reg.construct)());
        let mut record = ProbeRecord {
            name: reg.name,
            status: ProbeStatus::Ran,
            duration_ms: 0,
            cache_key: None,
            output: None,
            warnings: Vec::new(),
            scratch: None,
        };
        tracing::info!(
            probe = reg.name,
            heaviness = reg.heaviness.as_str(),
            "dispatch"
        );
        if !probe.applies(repo) {
            record.status = ProbeStatus::Skipped {
                reason: "does not apply to this repository".to_owned(),
            };
            record.duration_ms = elapsed_ms(started);
            tracing::info!(probe = reg.name, "skipped: does not apply");
            return record;
        }
        let cache = match (&self.cache, probe.cache_strategy(), opts.no_cache) {
            (Some(c), CacheStrategy::Content, false) => Some(c.clone()),
            _ => None,
        };
        if let Some(cache) = &cache {
            match self
                .compute_key(cache, reg.name, &probe, repo, &opts.ctx)
                .await
            {
                Ok(key) if opts.refresh => {
                    tracing::info!(probe = reg.name, key = %key, "cache_refresh");
                    record.cache_key = Some(key);
                }
                Ok(key) => {
                    match cache.get(reg.name, &key) {
                        Ok(Some(out)) => {
                            tracing::info!(probe = reg.name, key = %key, "cache_hit");
                            record.status = ProbeStatus::CacheHit;
                            record.output = Some(out);
                            record.cache_key = Some(key);
                            record.duration_ms = elapsed_ms(started);
                            return record;
                        }
                        Ok(None) => {}
                        Err(e) => record
                            .warnings
                            .push(format!("cache lookup: {}", error_chain(e.as_ref()))),
                    }
                    record.cache_key = Some(key);
                }
                Err(e) => record
                    .warnings
                    .push(format!("cache key: {e}; running uncached")),
            }
        }
        let timeout = probe.timeout();
        let mut ctx = opts.ctx.clone();
        ctx.earlier = Arc::new(earlier.clone());
        match scratch_dir(repo, reg.name) {
            Ok(dir) => {
                ctx.scratch_dir = Some(dir.path().to_owned());
                record.scratch = Some(Arc::new(dir));
            }
            Err(e) => record.warnings.push(format!("no scratch folder: {e}")),
        }
        // The probe's own token: a timeout cancels this probe, not the run.
        ctx.cancel = ctx.cancel.child();
        let cancel = ctx.cancel.clone();
        let (repo_c, ctx_c, probe_c) = (repo.clone(), ctx, probe.clone());
        let mut task = tokio::spawn(async move { probe_c.run_boxed(&repo_c, &ctx_c).await });
        let abort = task.abort_handle();
        record.status = match tokio::time::timeout(timeout, &mut task).await {
            Ok(Ok(Ok(out))) => {
                match (&cache, &record.cache_key, &out.not_cacheable) {
                    (Some(_), Some(_), Some(why)) => {
                        tracing::info!(probe = reg.name, reason = %why, "not_cached");
                        record.warnings.push(format!("not cached: {why}"));
                    }
                    (Some(cache), Some(key), None) => {
                        if let Err(e) = cache.put(reg.name, key, &out) {
                            record
                                .warnings
                                .push(format!("cache store: {}", error_chain(e.as_ref())));
                        }
                    }
                    _ => {}
                }
                record.output = Some(out);
                ProbeStatus::Ran
            }
            Ok(Ok(Err(e))) => ProbeStatus::Failed {
                error: error_chain(&e),
            },
            Ok(Err(join)) => ProbeStatus::Failed {
                error: if join.is_panic() {
                    format!("probe panicked: {}", panic_message(join.into_panic()))
                } else {
                    "probe task was cancelled".to_owned()
                },
            },
            Err(_) => {
                // A probe blocked in a thread cannot be aborted: tell it to stop
                // and give it a bounded time to clean up (the runtime trace
                // kills and removes its containers), so that a caller that
                // exits right after the gather leaves nothing running.
                cancel.cancel();
                if tokio::time::timeout(CANCEL_GRACE, &mut task).await.is_err() {
                    record.warnings.push(format!(
                        "the probe did not stop within {} s of its timeout",
                        CANCEL_GRACE.as_secs()
                    ));
                }
                abort.abort();
                ProbeStatus::TimedOut {
                    after_ms: timeout.as_millis() as u64,
                }
            }
        };
        record.duration_ms = elapsed_ms(started);
        tracing::info!(probe = reg.name, status = ?record.status, duration_ms = record.duration_ms, "finish");
        record
    }

    async fn compute_key(
        &self,
        cache: &Arc<dyn ProbeCache>,
        name: &'static str,
        probe: &Arc<dyn DynProbe>,
        repo: &RepoSnapshot,
        ctx: &ProbeContext,
    ) -> Result<String, String> {
        // Walking and hashing block; keep them off the async workers.
        let (cache, probe, repo, ctx) = (cache.clone(), probe.clone(), repo.clone(), ctx.clone());
        tokio::task::spawn_blocking(move || cache.key(&repo, name, probe.as_ref(), &ctx))
            .await
            .map_err(|e| format!("key task failed: {e}"))?
            // The whole chain: the key's error says which input, its
            // source why (an unreadable file, a resolver that failed).
            .map_err(|e| error_chain(&e))
    }
}

/// The file in a scratch folder naming the process that made it.
const SCRATCH_OWNER: &str = ".owner";

/// A fresh `.codegenie/work/<probe>-XXXX/` folder, removed on drop, marked
/// with its owner so that a later run removes it if this one is killed.
fn scratch_dir(repo: &RepoSnapshot, probe: &str) -> std::io::Result<tempfile::TempDir> {
    let work = repo.codegenie_dir().join("work");
    std::fs::create_dir_all(&work)?;
    let dir = tempfile::Builder::new()
        .prefix(&format!("{probe}-"))
        .tempdir_in(work)?;
    if let Some(me) = orphans::current() {
        std::fs::write(dir.path().join(SCRATCH_OWNER), me.label_value())?;
    }
    Ok(dir)
}

/// Remove the scratch folders of runs that were killed before they could
/// (their raw, unredacted traces included); folders of live runs, of other
/// hosts or pid namespaces, and unmarked ones are left. Returns how many.
fn sweep_scratch(repo: &RepoSnapshot) -> usize {
    let Some(me) = orphans::current() else {
        return 0;
    };
    let Ok(entries) = std::fs::read_dir(repo.codegenie_dir().join("work")) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let path = e.path();
        let Ok(owner) = std::fs::read_to_string(path.join(SCRATCH_OWNER)) else {
            continue;
        };
        if !orphans::Owner::parse(owner.trim()).is_some_and(|o| o.is_gone(me)) {
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => removed += 1,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %crate::errors::error_chain(&e), "cannot remove a killed run's scratch folder")
            }
        }
    }
    if removed > 0 {
        tracing::warn!(
            removed,
            "removed scratch folders of earlier interrupted runs"
        );
    }
    removed
}

fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
