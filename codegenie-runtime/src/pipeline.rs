//! One run of probes on one repository, the same for every caller
//! (docs/architecture.md, "Pipeline"): `codegenie trace`, `gather`,
//! `minimize` and each repository of a portfolio open the repository and
//! check its state folders, build the coordinator with the repository's
//! cache, the context with the run's one image build and its settings,
//! read the scenarios once, gather, write, and remove what the run left in
//! the repository. [`remove_run`] is the one cleanup of an interrupted run:
//! every container and tool image labelled with the run or one of its parts
//! (a minimal image's verification runs are parts).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::ContentCache;
use crate::cancel::CancelToken;
use crate::coordinator::{Coordinator, CoordinatorError, GatherOptions};
use crate::engine::{BuildDigestResolver, BuildOptions, Engine, EngineError, Swept};
use crate::errors::error_chain;
use crate::minimal::minimize::{MinimalImageReport, MinimizeSettings, MINIMAL_IMAGE_PROBE};
use crate::minimal::prefetch::Prefetch;
use crate::probe::{ProbeContext, ProgressSink, RepoSnapshot};
use crate::record::{GatherReport, ProbeStatus};
use crate::registry::{Registry, RegistryError};
use crate::runtime_trace::scenario_file::RunScenarios;
use crate::runtime_trace::{
    work_dir, Backend, OnBuilt, RunId, TraceConfig, TraceError, TraceSettings, PROBE_NAME,
};
use crate::state_dir::StateDirError;
use crate::writer::{WriteError, Writer, Written};

/// What a run does; [`Pipeline::open`] turns it into a run.
#[derive(Clone)]
pub struct RunPlan {
    /// The probes to run (empty: every registered probe).
    pub probes: Vec<String>,
    /// Neither read nor write the cache (nor remembered builds).
    pub no_cache: bool,
    /// Run on a cache hit too, and store the new output.
    pub refresh: bool,
    /// How the repository's image is built.
    pub build: BuildOptions,
    /// The runtime trace's settings. A run without a run id gets one, so
    /// that an interrupted run can remove what it made.
    pub trace: TraceSettings,
    /// A scenario file outside the repository, run instead of its own (a
    /// portfolio manifest's `scenarios:`).
    pub scenarios_file: Option<PathBuf>,
    /// The minimal image's settings, when the run builds one.
    pub minimize: Option<MinimizeSettings>,
    /// Where progress goes.
    pub progress: Option<Arc<dyn ProgressSink>>,
    /// Tripped to stop the run (Ctrl-C, a portfolio that stops).
    pub cancel: CancelToken,
}

impl Default for RunPlan {
    fn default() -> Self {
        RunPlan {
            probes: Vec::new(),
            no_cache: false,
            refresh: false,
            build: BuildOptions::default(),
            trace: TraceSettings::default(),
            scenarios_file: None,
            minimize: None,
            progress: None,
            cancel: CancelToken::new(),
        }
    }
}

impl RunPlan {
    /// The plan of `codegenie trace`: the runtime trace alone.
    pub fn trace(trace: TraceSettings) -> RunPlan {
        RunPlan {
            probes: vec![PROBE_NAME.to_owned()],
            trace,
            ..RunPlan::default()
        }
    }

    /// The plan of `codegenie minimize`: the runtime trace, then the
    /// minimal image built from its evidence and verified.
    pub fn minimize(trace: TraceSettings, minimize: MinimizeSettings) -> RunPlan {
        RunPlan {
            probes: vec![PROBE_NAME.to_owned(), MINIMAL_IMAGE_PROBE.to_owned()],
            trace,
            minimize: Some(minimize),
            ..RunPlan::default()
        }
    }
}

/// Why a run could not start or finish (a probe's own failure is not one:
/// it is in the [`GatherReport`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The repository cannot be opened.
    #[error("cannot open repository {path}")]
    Open {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A state folder leads out of the repository.
    #[error(transparent)]
    StateDir(#[from] StateDirError),
    /// The probe registry is inconsistent.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The scenarios cannot be read.
    #[error("cannot read the scenarios of {repo}")]
    Scenarios {
        /// The repository.
        repo: PathBuf,
        /// What was wrong.
        #[source]
        source: TraceError,
    },
    /// The coordinator could not run.
    #[error(transparent)]
    Gather(#[from] CoordinatorError),
    /// A record could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// A run of probes on one repository, ready to gather.
pub struct Pipeline {
    repo: RepoSnapshot,
    coordinator: Coordinator,
    cache: Option<Arc<ContentCache>>,
    opts: GatherOptions,
    run_id: RunId,
    prefetch: Option<Prefetch>,
}

impl Pipeline {
    /// Open the repository at `root` for `plan`: its state folders must stay
    /// inside it (checked before anything is written), the registry must
    /// load, and, when the runtime trace runs, its scenarios are read once
    /// here (a malformed file stops the run before any build).
    pub fn open(root: &Path, plan: RunPlan) -> Result<Pipeline, PipelineError> {
        let repo = RepoSnapshot::open(root).map_err(|source| PipelineError::Open {
            path: root.to_owned(),
            source,
        })?;
        crate::state_dir::check_state_dirs(repo.root())?;
        let mut plan = plan;
        // A cache the repository brought with it is not codegenie's own
        // evidence (docs/architecture.md, "Repository state").
        if !plan.no_cache && crate::state_dir::git_tracks_cache(repo.root())? {
            tracing::warn!(
                repo = %repo.root().display(),
                "git tracks files under .codegenie/cache: a committed cache is not trusted; running uncached (remove it with `git rm -r --cached .codegenie/cache`)"
            );
            plan.no_cache = true;
        }
        let mut coordinator = Coordinator::new(Registry::load()?);
        let cache = (!plan.no_cache).then(|| Arc::new(ContentCache::for_repo_root(repo.root())));
        if let Some(cache) = &cache {
            coordinator = coordinator.with_cache(cache.clone());
        }
        let mut trace = plan.trace;
        let run_id = trace
            .run_id
            .get_or_insert_with(|| RunId::unique("run-"))
            .clone();
        let traces = plan.probes.is_empty() || plan.probes.iter().any(|p| p == PROBE_NAME);
        // The host backend may run without a Dockerfile; without one and
        // without a scenario file the trace does not apply, so there is
        // nothing to read.
        if traces && trace.scenarios.is_none() {
            let scenarios =
                RunScenarios::load(&repo, plan.scenarios_file.as_deref()).map_err(|source| {
                    PipelineError::Scenarios {
                        repo: repo.root().to_owned(),
                        source,
                    }
                })?;
            trace.scenarios = Some(scenarios);
        }
        let engine = Engine::at(trace.engine, trace.endpoint.clone());
        // `minimize` starts from exports of the original (and the base):
        // the trace starts them once it has built the original, and they
        // run beside its scenarios (docs/architecture.md, "The Dockerfile
        // is the product").
        let mut minimize = plan.minimize;
        let prefetch = match minimize.as_mut() {
            Some(m) if traces && trace.image.is_none() => {
                let early = Prefetch::default();
                let (p, e, base) = (early.clone(), engine.clone(), m.base.clone());
                trace.on_built = Some(OnBuilt(Arc::new(move |id: &str| match &base {
                    Some(base) => p.start(e.clone(), id, base),
                    None => p.start_index(e.clone(), id),
                })));
                m.prefetch = Some(early.clone());
                Some(early)
            }
            _ => None,
        };
        let mut ctx = ProbeContext {
            image_digest_resolver: Some(Arc::new(BuildDigestResolver::new(engine).with_options(
                BuildOptions {
                    // Uncached runs do not remember builds either.
                    remember: plan.build.remember && !plan.no_cache,
                    ..plan.build
                },
            ))),
            trace_config_resolver: Some(Arc::new(TraceConfig)),
            progress: plan.progress,
            cancel: plan.cancel,
            ..ProbeContext::default()
        };
        ctx.settings.insert(trace);
        if let Some(m) = minimize {
            ctx.settings.insert(m);
        }
        // Last, so that a run refused above writes nothing.
        crate::state_dir::ensure_state_dir(repo.root())?;
        Ok(Pipeline {
            repo,
            coordinator,
            cache,
            opts: GatherOptions {
                only: plan.probes,
                no_cache: plan.no_cache,
                refresh: plan.refresh,
                ctx,
            },
            run_id,
            prefetch,
        })
    }

    /// The repository.
    pub fn repo(&self) -> &RepoSnapshot {
        &self.repo
    }

    /// The run's id: the label of everything it makes on the engine.
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// The runtime trace's settings of this run.
    pub fn trace_settings(&self) -> Option<&TraceSettings> {
        self.opts.ctx.settings.get::<TraceSettings>()
    }

    /// The engine this run uses.
    pub fn engine(&self) -> Engine {
        let t = self.trace_settings().cloned().unwrap_or_default();
        Engine::at(t.engine, t.endpoint)
    }

    /// The run's cancel token.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.opts.ctx.cancel
    }

    /// Run the probes. A run in which no probe traced (every output came
    /// from the cache) still sweeps the engine once for what killed runs
    /// left ([`sweep_orphans`]); a probe that traces sweeps itself.
    ///
    /// A cached minimal-image report names an image on the engine, which
    /// may have been removed since (`docker rmi`, `cache prune
    /// --keep-images`): the hit is checked against the engine, and when the
    /// image is gone the entry is dropped and the run gathers again, so the
    /// image is built again (docs/architecture.md, "Minimal image").
    pub async fn gather(&self) -> Result<GatherReport, PipelineError> {
        let gathered = self.coordinator.gather(&self.repo, &self.opts).await;
        self.stop_prefetch().await;
        let mut report = gathered?;
        if let Some(gone) = self.stale_minimal_image(&report).await {
            tracing::warn!(image = %gone, "the cached minimal image is gone from the engine; building it again");
            let gathered = self.coordinator.gather(&self.repo, &self.opts).await;
            self.stop_prefetch().await;
            report = gathered?;
            if let Some(rec) = report
                .records
                .iter_mut()
                .find(|r| r.name == MINIMAL_IMAGE_PROBE)
            {
                rec.warnings.push(format!(
                    "the cached minimal image {gone} is gone from the engine; built again"
                ));
            }
        }
        let containers = self
            .trace_settings()
            .is_none_or(|t| t.backend != Some(Backend::Host));
        let traced = report.records.iter().any(|r| {
            [PROBE_NAME, MINIMAL_IMAGE_PROBE].contains(&r.name) && r.status == ProbeStatus::Ran
        });
        if containers && !traced && report.records.iter().any(|r| r.name == PROBE_NAME) {
            let engine = self.engine();
            if let Err(e) = tokio::task::spawn_blocking(move || sweep_orphans(&engine)).await {
                tracing::warn!(error = %e, "the leftover sweep did not finish");
            }
        }
        Ok(report)
    }

    /// Stop exports the trace started that no minimal image took (its
    /// output came from the cache, the trace failed, the run stopped), so
    /// that their containers are gone when the run ends.
    async fn stop_prefetch(&self) {
        if let Some(p) = self.prefetch.clone() {
            if let Err(e) = tokio::task::spawn_blocking(move || p.stop()).await {
                tracing::warn!(error = %e, "the early exports did not stop");
            }
        }
    }

    /// When `report`'s minimal-image output is a cache hit whose image the
    /// engine no longer holds under its tag, drop that cache entry and
    /// return the tag. An engine that cannot be asked counts as gone: the
    /// gather that follows then reports the engine's own error.
    async fn stale_minimal_image(&self, report: &GatherReport) -> Option<String> {
        let cache = self.cache.as_ref()?;
        let rec = report
            .records
            .iter()
            .find(|r| r.name == MINIMAL_IMAGE_PROBE && r.status == ProbeStatus::CacheHit)?;
        let key = rec.cache_key.clone()?;
        let cached = match rec.output.as_ref()?.value::<MinimalImageReport>() {
            Ok(r) => r,
            // Not this version's report: the gather that follows rebuilds.
            Err(_) => return None,
        };
        let engine = self.engine();
        let tag = cached.minimal_image.clone();
        let held = tokio::task::spawn_blocking(move || engine.image_id(&tag))
            .await
            .ok()
            .and_then(|r| {
                r.map_err(|e| tracing::warn!(error = %error_chain(&e), "cannot ask the engine for the cached minimal image"))
                    .ok()
            })
            .flatten();
        if held.as_deref() == Some(cached.minimal_image_id.as_str()) {
            return None;
        }
        if let Err(e) = cache.store().remove(&key) {
            // Kept, it would be served again: the next gather would loop.
            tracing::warn!(error = %error_chain(&e), "cannot drop the stale minimal-image entry");
            return None;
        }
        Some(cached.minimal_image.clone())
    }

    /// Write every record of `report` (the writer redacts; a skipped probe
    /// writes nothing), then remove the raw traces the run left in the
    /// repository's work folder. Returns what was written, per record.
    pub fn write(&self, report: &GatherReport) -> Result<Vec<Option<Written>>, PipelineError> {
        let writer = Writer::new(self.repo.root());
        let written = report
            .records
            .iter()
            .map(|rec| writer.write_record(rec))
            .collect::<Result<Vec<_>, _>>()?;
        if let Err(e) = work_dir::clean_work_dir(&self.repo, &self.run_id) {
            tracing::warn!(error = %error_chain(&e), "cannot remove the raw traces");
        }
        Ok(written)
    }
}

/// Remove what killed runs left on `engine` (`Engine::sweep_orphans`:
/// containers and tool images whose owner process is gone), saying so in the
/// log; an engine that cannot be asked is a warning, never an error: the
/// sweep is housekeeping for every command that talks to the engine.
pub fn sweep_orphans(engine: &Engine) -> Option<Swept> {
    match engine.sweep_orphans() {
        Ok(swept) => {
            if swept.containers > 0 || swept.images > 0 || swept.volumes > 0 {
                tracing::warn!(
                    containers = swept.containers,
                    images = swept.images,
                    volumes = swept.volumes,
                    "removed leftover containers, tool images and tool volumes of earlier interrupted runs"
                );
            }
            Some(swept)
        }
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "cannot check for leftovers of earlier runs");
            None
        }
    }
}

/// What [`remove_run`] removed, and what the engine refused.
#[derive(Debug, Default)]
pub struct Removed {
    /// Containers removed.
    pub containers: usize,
    /// Tool images removed.
    pub images: usize,
    /// Tool volumes removed.
    pub volumes: usize,
    /// What failed, in order.
    pub errors: Vec<EngineError>,
}

/// Remove every container, tool image and tool volume of `run` and of its parts
/// ([`RunId::child`]: a portfolio's repositories, a minimal image's
/// verification runs) on `engine`: the cleanup of an interrupted run, after
/// [`close_creations`](crate::engine::close_creations). A `docker create`
/// the interrupt killed may still be answered by the engine after the first
/// listing, so the containers are listed twice; the tool images and volumes
/// go once no container uses them.
pub fn remove_run(engine: &Engine, run: &RunId) -> Removed {
    let mut removed = Removed::default();
    for pass in 0..2 {
        match engine.remove_runs_under(run.as_str()) {
            Ok(done) => {
                removed.containers += done.removed;
                removed.errors.extend(done.failed);
            }
            Err(e) => {
                removed.errors.push(e);
                break;
            }
        }
        if pass == 0 {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
    match engine.remove_run_images_under(run.as_str()) {
        Ok(n) => removed.images += n,
        Err(e) => removed.errors.push(e),
    }
    match engine.remove_run_volumes_under(run.as_str()) {
        Ok(n) => removed.volumes += n,
        Err(e) => removed.errors.push(e),
    }
    removed
}
