//! The scheduler (docs/architecture.md, "Portfolio"): each engine runs as
//! many workers as it has slots (an engine that did not answer at the start
//! is down before they start, so they return at once); workers take
//! repositories from one queue, so different repositories run in parallel
//! while a repository's own scenarios stay one at a time (one trace per
//! repository). A repository whose trace ends in a fault is checked against
//! its engine: an engine that no longer answers is marked down, its workers
//! stop, and the repository goes back to the queue for the other engines.
//! Anything else is the repository's own outcome, recorded; it never stops
//! the rest.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::cancel::CancelToken;
use crate::engine::{Engine, EngineKind};
use crate::errors::error_chain;
use crate::minimal::minimize::{MinimalImageReport, MinimizeSettings, MINIMAL_IMAGE_PROBE};
use crate::pipeline::{Pipeline, RunPlan};
use crate::record::{ProbeRecord, ProbeStatus};
use crate::runtime_trace::slice::TraceCoverageConfidence;
use crate::runtime_trace::{
    Backend, RunId, RunLimits, RuntimeTraceSlice, TraceSettings, PROBE_NAME,
};

use super::journal::{fingerprint, EntryState, Journal, JournalEntry, JournalError};
use super::manifest::{EngineCheck, EngineEntry, Manifest, RepoEntry};
use super::report::{
    engine_detail, scenario_lines, summarize, trace_blockers, EngineReport, EngineState,
    EvidenceSource, FleetReport, MinimizeOutcome, RepoReport, RepoStatus, Requeue,
};

/// How a portfolio runs.
#[derive(Clone)]
pub struct PortfolioOptions {
    /// The engine CLI every engine is driven with.
    pub kind: EngineKind,
    /// The portfolio's state folder (journal, reports).
    pub state_dir: PathBuf,
    /// The helper binary bundled into containers; `None`: the running executable.
    pub helper: Option<PathBuf>,
    /// Limits of each repository's trace.
    pub limits: RunLimits,
    /// The prefix of every run label: repository `i` runs as `<prefix>.<i>`,
    /// so one listing per engine finds every container of the portfolio.
    pub run_id: RunId,
    /// Where progress goes.
    pub progress: Arc<dyn PortfolioProgress>,
    /// Tripped on Ctrl-C: workers take no more repositories and traces stop.
    pub cancel: CancelToken,
    /// Run every repository, whatever the journal says.
    pub fresh: bool,
}

/// A change the progress display shows.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum PortfolioEvent<'a> {
    /// Done in an earlier run and unchanged: not run again.
    Skipped {
        /// The repository.
        repo: &'a str,
    },
    /// A worker took the repository.
    Started {
        /// The repository.
        repo: &'a str,
        /// The engine.
        engine: &'a str,
    },
    /// The repository finished (done or failed).
    Finished {
        /// The repository.
        repo: &'a str,
        /// The engine.
        engine: &'a str,
        /// How.
        status: RepoStatus,
    },
    /// The engine did not answer when the run started: the run goes on
    /// without it.
    EngineUnreachable {
        /// The engine.
        engine: &'a str,
        /// What its client said.
        detail: &'a str,
    },
    /// The engine stopped answering.
    EngineDown {
        /// The engine.
        engine: &'a str,
        /// What its client said.
        detail: &'a str,
    },
    /// The repository left a down engine and waits for another.
    Requeued {
        /// The repository.
        repo: &'a str,
        /// The engine it left.
        engine: &'a str,
    },
}

/// Where the portfolio stands after an event.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Repositories in the manifest.
    pub total: usize,
    /// Finished (done, failed or skipped).
    pub finished: usize,
    /// Running now.
    pub running: usize,
    /// Waiting for a slot.
    pub queued: usize,
    /// Per engine: its name, repositories running on it, finished by it, down.
    pub engines: Vec<(String, usize, usize, bool)>,
}

/// Receives the portfolio's progress (the CLI draws it).
pub trait PortfolioProgress: Send + Sync {
    /// One event and the counts after it.
    fn update(&self, event: PortfolioEvent<'_>, counts: &Counts);
}

/// A progress sink that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl PortfolioProgress for NoProgress {
    fn update(&self, _event: PortfolioEvent<'_>, _counts: &Counts) {}
}

/// Why a portfolio could not run (a repository's failure is not one: it is
/// in the report).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortfolioError {
    /// The journal cannot be used.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The state folder cannot be created.
    #[error("cannot create the portfolio state folder {path}")]
    StateDir {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The report cannot be written.
    #[error("cannot write the fleet report")]
    Report(#[source] crate::atomic_file::AtomicWriteError),
    /// A worker task ended abnormally (a panic).
    #[error("a portfolio worker failed: {detail}")]
    Worker {
        /// What the task runtime said.
        detail: String,
    },
    /// The run was interrupted; the journal keeps what finished.
    #[error("the portfolio run was interrupted")]
    Interrupted,
    /// The engine check given is not of this manifest.
    #[error("the engine check covers {checked} engines; the manifest has {engines}")]
    EngineCheckMismatch {
        /// Engines in the check.
        checked: usize,
        /// Engines in the manifest.
        engines: usize,
    },
}

struct Sched {
    queue: VecDeque<usize>,
    in_flight: usize,
    results: Vec<Option<RepoReport>>,
    requeues: Vec<Vec<Requeue>>,
    /// Per engine: `None` while it answers, else `Down` or `Unreachable`.
    down: Vec<Option<EngineState>>,
    running: Vec<usize>,
    finished: Vec<usize>,
}

struct Shared {
    manifest: Manifest,
    opts: PortfolioOptions,
    fingerprints: Vec<Option<String>>,
    sched: Mutex<Sched>,
    journal: Mutex<Journal>,
    wake: tokio::sync::Notify,
}

impl Shared {
    fn sched(&self) -> MutexGuard<'_, Sched> {
        self.sched.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn counts(&self, s: &Sched) -> Counts {
        Counts {
            total: self.manifest.repositories.len(),
            finished: s.results.iter().filter(|r| r.is_some()).count(),
            running: s.in_flight,
            queued: s.queue.len(),
            engines: self
                .manifest
                .engines
                .iter()
                .enumerate()
                .map(|(e, entry)| {
                    (
                        entry.endpoint.to_string(),
                        s.running[e],
                        s.finished[e],
                        s.down[e].is_some(),
                    )
                })
                .collect(),
        }
    }

    fn journal(&self, repo: usize, entry: JournalEntry) -> Result<(), JournalError> {
        let name = &self.manifest.repositories[repo].name;
        self.journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(name, entry)
    }
}

/// Run the portfolio: skip what the journal says is done and unchanged,
/// trace the rest over the slots of the engines that answered `checked`
/// ([`Manifest::check_engines`]), write the journal as it goes and the
/// fleet report (`report.json`, `report.md`) in the state folder at the end.
pub async fn run_portfolio(
    manifest: &Manifest,
    checked: &EngineCheck,
    opts: PortfolioOptions,
) -> Result<FleetReport, PortfolioError> {
    let started = Instant::now();
    if checked.answers().len() != manifest.engines.len() {
        return Err(PortfolioError::EngineCheckMismatch {
            checked: checked.answers().len(),
            engines: manifest.engines.len(),
        });
    }
    std::fs::create_dir_all(&opts.state_dir).map_err(|source| PortfolioError::StateDir {
        path: opts.state_dir.clone(),
        source,
    })?;
    let journal = Journal::open(&opts.state_dir)?;
    let n = manifest.repositories.len();
    let e = manifest.engines.len();
    // Fingerprints walk and hash every repository: off the async workers.
    let (repos, minimize) = (manifest.repositories.clone(), manifest.minimize);
    let fingerprints: Vec<Option<String>> = tokio::task::spawn_blocking(move || {
        repos
            .iter()
            .map(|r| match fingerprint(r, minimize) {
                Ok(f) => Some(f),
                Err(err) => {
                    tracing::warn!(repo = %r.name, error = %error_chain(&err), "no fingerprint; the repository runs again");
                    None
                }
            })
            .collect()
    })
    .await
    .map_err(|e| PortfolioError::Worker {
        detail: e.to_string(),
    })?;
    let mut sched = Sched {
        queue: VecDeque::new(),
        in_flight: 0,
        results: vec![None; n],
        requeues: vec![Vec::new(); n],
        // Down before any worker starts: theirs return at once.
        down: (0..e)
            .map(|i| {
                checked
                    .unreachable(i)
                    .map(|detail| EngineState::Unreachable {
                        detail: detail.to_owned(),
                    })
            })
            .collect(),
        running: vec![0; e],
        finished: vec![0; e],
    };
    let mut skipped = Vec::new();
    for (i, repo) in manifest.repositories.iter().enumerate() {
        let earlier = journal.entry(&repo.name).filter(|entry| {
            !opts.fresh
                && entry.state == EntryState::Done
                && entry.fingerprint.is_some()
                && entry.fingerprint == fingerprints[i]
        });
        match earlier.and_then(|entry| entry.report.clone()) {
            Some(mut report) => {
                report.status = RepoStatus::Skipped;
                report.evidence = Some(EvidenceSource::Journal);
                report.duration_ms = 0;
                report.requeued_from.clear();
                sched.results[i] = Some(report);
                skipped.push(i);
            }
            None => sched.queue.push_back(i),
        }
    }
    let shared = Arc::new(Shared {
        manifest: manifest.clone(),
        opts: opts.clone(),
        fingerprints,
        sched: Mutex::new(sched),
        journal: Mutex::new(journal),
        wake: tokio::sync::Notify::new(),
    });
    for (i, entry) in manifest.engines.iter().enumerate() {
        if let Some(detail) = checked.unreachable(i) {
            let engine = entry.endpoint.to_string();
            tracing::warn!(engine = %engine, detail = %detail, "engine does not answer; the portfolio runs on the others");
            let s = shared.sched();
            opts.progress.update(
                PortfolioEvent::EngineUnreachable {
                    engine: &engine,
                    detail,
                },
                &shared.counts(&s),
            );
        }
    }
    for i in skipped {
        let s = shared.sched();
        opts.progress.update(
            PortfolioEvent::Skipped {
                repo: &manifest.repositories[i].name,
            },
            &shared.counts(&s),
        );
    }
    let mut workers = tokio::task::JoinSet::new();
    for (engine, entry) in manifest.engines.iter().enumerate() {
        for _ in 0..entry.slots.get() {
            workers.spawn(worker(shared.clone(), engine));
        }
    }
    let mut first_error = None;
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // The journal could not be written: stop taking work, keep
                // what the others finish.
                opts.cancel.cancel();
                first_error.get_or_insert(PortfolioError::Journal(e));
            }
            Err(join) => {
                opts.cancel.cancel();
                first_error.get_or_insert(PortfolioError::Worker {
                    detail: join.to_string(),
                });
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if opts.cancel.is_cancelled() {
        return Err(PortfolioError::Interrupted);
    }
    let s = shared.sched();
    let repositories: Vec<RepoReport> = s
        .results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.clone().unwrap_or_else(|| {
                // Unreachable by construction (every queued repository ends
                // in a result); reported rather than assumed.
                failed_report(
                    &manifest.repositories[i],
                    None,
                    "the repository was never scheduled".to_owned(),
                )
            })
        })
        .collect();
    let engines = manifest
        .engines
        .iter()
        .enumerate()
        .map(|(e, entry)| EngineReport {
            engine: entry.endpoint.to_string(),
            slots: entry.slots.get(),
            repositories_finished: s.finished[e] as u32,
            state: s.down[e].clone().unwrap_or(EngineState::Up),
        })
        .collect();
    drop(s);
    let (mut totals, common_blockers) = summarize(&repositories);
    totals.engines_unreachable =
        (0..e).filter(|i| checked.unreachable(*i).is_some()).count() as u32;
    let report = FleetReport {
        manifest: manifest.path.clone(),
        run_id: opts.run_id.to_string(),
        wall_clock_ms: started.elapsed().as_millis() as u64,
        engines,
        repositories,
        totals,
        common_blockers,
    };
    report
        .save(&opts.state_dir)
        .map_err(PortfolioError::Report)?;
    Ok(report)
}

/// What became of one attempt at a repository.
enum Attempt {
    /// It finished (done or failed) on this engine.
    Finished(Box<RepoReport>),
    /// The engine stopped answering: run it elsewhere.
    EngineDown(String),
}

async fn worker(shared: Arc<Shared>, engine: usize) -> Result<(), JournalError> {
    let entry = shared.manifest.engines[engine].clone();
    let engine_name = entry.endpoint.to_string();
    loop {
        let notified = shared.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let taken = {
            let mut s = shared.sched();
            if s.down[engine].is_some() || shared.opts.cancel.is_cancelled() {
                return Ok(());
            }
            match s.queue.pop_front() {
                Some(i) => {
                    s.in_flight += 1;
                    s.running[engine] += 1;
                    let repo = &shared.manifest.repositories[i];
                    shared.opts.progress.update(
                        PortfolioEvent::Started {
                            repo: &repo.name,
                            engine: &engine_name,
                        },
                        &shared.counts(&s),
                    );
                    Some(i)
                }
                // Nothing queued and nothing running that could come back.
                None if s.in_flight == 0 => return Ok(()),
                None => None,
            }
        };
        let Some(i) = taken else {
            notified.await;
            continue;
        };
        let repo = &shared.manifest.repositories[i];
        shared.journal(
            i,
            JournalEntry {
                state: EntryState::Running,
                engine: engine_name.clone(),
                fingerprint: shared.fingerprints[i].clone(),
                report: None,
            },
        )?;
        let attempt = trace_repo(&shared, i, &entry).await;
        if shared.opts.cancel.is_cancelled() {
            // Interrupted: the journal keeps `running`, so a later run
            // traces it again.
            let mut s = shared.sched();
            s.in_flight -= 1;
            s.running[engine] -= 1;
            shared.wake.notify_waiters();
            return Ok(());
        }
        match attempt {
            Attempt::Finished(mut report) => {
                let mut s = shared.sched();
                report.requeued_from = s.requeues[i].clone();
                shared.journal(
                    i,
                    JournalEntry {
                        state: match report.status {
                            RepoStatus::Failed => EntryState::Failed,
                            _ => EntryState::Done,
                        },
                        engine: engine_name.clone(),
                        fingerprint: shared.fingerprints[i].clone(),
                        report: Some((*report).clone()),
                    },
                )?;
                let status = report.status;
                s.results[i] = Some(*report);
                s.in_flight -= 1;
                s.running[engine] -= 1;
                s.finished[engine] += 1;
                shared.opts.progress.update(
                    PortfolioEvent::Finished {
                        repo: &repo.name,
                        engine: &engine_name,
                        status,
                    },
                    &shared.counts(&s),
                );
                shared.wake.notify_waiters();
            }
            Attempt::EngineDown(detail) => {
                let mut s = shared.sched();
                s.in_flight -= 1;
                s.running[engine] -= 1;
                let newly_down = s.down[engine].is_none();
                let down = s.down[engine].get_or_insert_with(|| EngineState::Down {
                    detail: detail.clone(),
                    requeued: Vec::new(),
                });
                // Only a `Down` engine ever had a worker running here.
                if let EngineState::Down { requeued, .. } = down {
                    requeued.push(repo.name.clone());
                }
                if newly_down {
                    tracing::warn!(engine = %engine_name, detail = %detail, "engine stopped answering; its repositories move to the others");
                    shared.opts.progress.update(
                        PortfolioEvent::EngineDown {
                            engine: &engine_name,
                            detail: &detail,
                        },
                        &shared.counts(&s),
                    );
                }
                s.requeues[i].push(Requeue {
                    engine: engine_name.clone(),
                    detail: detail.clone(),
                });
                s.queue.push_front(i);
                shared.opts.progress.update(
                    PortfolioEvent::Requeued {
                        repo: &repo.name,
                        engine: &engine_name,
                    },
                    &shared.counts(&s),
                );
                if s.down.iter().all(Option::is_some) {
                    // No engine left: what waits can only fail, and says why.
                    while let Some(j) = s.queue.pop_front() {
                        let r = &shared.manifest.repositories[j];
                        let mut report = failed_report(
                            r,
                            None,
                            "every engine of the portfolio stopped answering".to_owned(),
                        );
                        report.requeued_from = s.requeues[j].clone();
                        shared.journal(
                            j,
                            JournalEntry {
                                state: EntryState::Failed,
                                engine: engine_name.clone(),
                                fingerprint: shared.fingerprints[j].clone(),
                                report: Some(report.clone()),
                            },
                        )?;
                        s.results[j] = Some(report);
                    }
                }
                shared.wake.notify_waiters();
                return Ok(());
            }
        }
    }
}

fn failed_report(repo: &RepoEntry, engine: Option<String>, error: String) -> RepoReport {
    RepoReport {
        path: repo.name.clone(),
        engine,
        status: RepoStatus::Failed,
        evidence: None,
        confidence: None,
        scenarios: Vec::new(),
        verified: None,
        size_bytes: None,
        minimize: MinimizeOutcome::NotRequested,
        blockers: Vec::new(),
        error: Some(error),
        requeued_from: Vec::new(),
        duration_ms: 0,
        slice_path: None,
    }
}

/// The engine's answer to a ping, off the async workers: `Some(detail)` when
/// it no longer answers.
async fn engine_down(engine: &Engine) -> Option<String> {
    let engine = engine.clone();
    match tokio::task::spawn_blocking(move || engine.ping()).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(engine_detail(&e)),
        Err(e) => Some(format!("the engine check failed: {e}")),
    }
}

/// One repository on one engine: the pipeline of `codegenie trace` (or of
/// `codegenie minimize`, when the manifest asks), with the engine chosen
/// here and the repository's run id a part of the portfolio's.
async fn trace_repo(shared: &Shared, i: usize, entry: &EngineEntry) -> Attempt {
    let started = Instant::now();
    let repo = &shared.manifest.repositories[i];
    let opts = &shared.opts;
    let engine_name = entry.endpoint.to_string();
    let engine = Engine::at(opts.kind, entry.endpoint.clone());
    let fail = |error: String| {
        let mut r = failed_report(repo, Some(engine_name.clone()), error);
        r.duration_ms = started.elapsed().as_millis() as u64;
        Attempt::Finished(Box::new(r))
    };
    let run_id: RunId = match opts.run_id.child(&i.to_string()) {
        Ok(id) => id,
        Err(e) => return fail(error_chain(&e)),
    };
    let trace = TraceSettings {
        backend: Some(Backend::Container),
        engine: opts.kind,
        endpoint: entry.endpoint.clone(),
        limits: opts.limits.clone(),
        helper: opts.helper.clone(),
        run_id: Some(run_id),
        ..TraceSettings::default()
    };
    let mut plan = if shared.manifest.minimize {
        RunPlan::minimize(trace, MinimizeSettings::default())
    } else {
        RunPlan::trace(trace)
    };
    // A scenario file from the manifest is outside the repository, so the
    // cache key cannot cover it: such a repository runs uncached (the
    // journal still skips it once done).
    plan.no_cache = repo.scenarios.is_some();
    plan.scenarios_file = repo.scenarios.clone();
    plan.cancel = opts.cancel.child();
    let (root, blocking_plan) = (repo.root.clone(), plan);
    let pipeline =
        match tokio::task::spawn_blocking(move || Pipeline::open(&root, blocking_plan)).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return fail(error_chain(&e)),
            Err(e) => return fail(format!("the repository could not be opened: {e}")),
        };
    let report = match pipeline.gather().await {
        Ok(r) => r,
        Err(e) => return fail(error_chain(&e)),
    };
    let Some(rec) = report.records.iter().find(|r| r.name == PROBE_NAME) else {
        return fail("the runtime_trace probe is not registered in this binary".to_owned());
    };
    let evidence = match &rec.status {
        ProbeStatus::Ran => EvidenceSource::Ran,
        ProbeStatus::CacheHit => EvidenceSource::CacheHit,
        ProbeStatus::Skipped { .. } => {
            return fail(format!(
                "nothing to trace: {} has no Dockerfile",
                repo.root.display()
            ))
        }
        ProbeStatus::Failed { error } => {
            return match engine_down(&engine).await {
                Some(detail) => Attempt::EngineDown(detail),
                None => fail(format!("runtime trace failed: {error}")),
            };
        }
        ProbeStatus::TimedOut { after_ms } => {
            return match engine_down(&engine).await {
                Some(detail) => Attempt::EngineDown(detail),
                None => fail(format!("runtime trace timed out after {after_ms} ms")),
            };
        }
    };
    let Some(output) = &rec.output else {
        return fail("the runtime trace gave no output".to_owned());
    };
    if output.not_cacheable.is_some() {
        // An environment fault shaped this trace: if the engine is gone,
        // the evidence is the engine's death, not the repository's.
        if let Some(detail) = engine_down(&engine).await {
            return Attempt::EngineDown(detail);
        }
    }
    let slice: Arc<RuntimeTraceSlice> = match output.value() {
        Ok(s) => s,
        Err(e) => {
            return fail(format!(
                "the runtime_trace slice does not have its schema: {e}"
            ))
        }
    };
    let minimize = if shared.manifest.minimize {
        minimize_outcome(
            report
                .records
                .iter()
                .find(|r| r.name == MINIMAL_IMAGE_PROBE),
        )
    } else {
        MinimizeOutcome::NotRequested
    };
    let (pipeline, report) = (Arc::new(pipeline), Arc::new(report));
    let written = {
        let (p, r) = (pipeline.clone(), report.clone());
        match tokio::task::spawn_blocking(move || p.write(&r)).await {
            Ok(Ok(written)) => written
                .into_iter()
                .zip(&report.records)
                .find(|(_, rec)| rec.name == PROBE_NAME)
                .and_then(|(w, _)| w.map(|w| w.json)),
            Ok(Err(e)) => return fail(error_chain(&e)),
            Err(e) => return fail(format!("the writer task failed: {e}")),
        }
    };
    let (verified, size_bytes, mut blockers) = match &minimize {
        MinimizeOutcome::Done(m) => (Some(m.verified), Some(m.size_bytes), m.blockers.clone()),
        _ => (None, None, Vec::new()),
    };
    for b in trace_blockers(&slice) {
        if !blockers.iter().any(|x| x.kind == b.kind) {
            blockers.push(b);
        }
    }
    let no_evidence = slice.trace_coverage_confidence == TraceCoverageConfidence::Unavailable;
    let error = no_evidence.then(|| {
        let why = scenario_lines(&slice)
            .into_iter()
            .find_map(|l| l.reason)
            .unwrap_or_else(|| "no reason given".to_owned());
        format!("no scenario completed: {why}")
    });
    Attempt::Finished(Box::new(RepoReport {
        path: repo.name.clone(),
        engine: Some(engine_name),
        status: if no_evidence {
            RepoStatus::Failed
        } else {
            RepoStatus::Done
        },
        evidence: Some(evidence),
        confidence: Some(slice.trace_coverage_confidence),
        scenarios: scenario_lines(&slice),
        verified,
        size_bytes,
        minimize,
        blockers,
        error,
        requeued_from: Vec::new(),
        duration_ms: started.elapsed().as_millis() as u64,
        slice_path: written,
    }))
}

/// The minimal-image record's outcome, typed.
fn minimize_outcome(rec: Option<&ProbeRecord>) -> MinimizeOutcome {
    let Some(rec) = rec else {
        return MinimizeOutcome::Unavailable {
            reason: format!("the {MINIMAL_IMAGE_PROBE} probe is not registered in this binary"),
        };
    };
    match (&rec.status, &rec.output) {
        (ProbeStatus::Ran | ProbeStatus::CacheHit, Some(out)) => {
            match out.value::<MinimalImageReport>() {
                Ok(r) => MinimizeOutcome::of(&r),
                Err(e) => MinimizeOutcome::Failed {
                    error: format!("the minimal image's report does not have its schema: {e}"),
                },
            }
        }
        (ProbeStatus::Skipped { reason }, _) => MinimizeOutcome::Unavailable {
            reason: reason.clone(),
        },
        (ProbeStatus::Failed { error }, _) => MinimizeOutcome::Failed {
            error: error.clone(),
        },
        (ProbeStatus::TimedOut { after_ms }, _) => MinimizeOutcome::Failed {
            error: format!("timed out after {after_ms} ms"),
        },
        (_, None) => MinimizeOutcome::Failed {
            error: "the minimal image gave no output".to_owned(),
        },
    }
}
