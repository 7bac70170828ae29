//! `MinimalImageProbe`: builds the minimal image from the runtime
//! trace's evidence, proves it by re-running the same scenarios on it, and
//! reports what a distroless base would need. A `runs_last` probe that reads
//! the runtime trace's output through [`ProbeContext::output_of`].

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EngineError, ImageConfig, KEEP_IMAGES};
use crate::probe::{
    run_blocking_work, Artifact, ArtifactSource, CacheStrategy, Confidence, Probe, ProbeContext,
    ProbeError, ProbeOutput, RepoSnapshot,
};
use crate::runtime_trace::results::ScenarioOutcome;
use crate::runtime_trace::scenario_file::RunScenarios;
use crate::runtime_trace::scenarios::ScenarioFile;
use crate::runtime_trace::{RunId, RuntimeTraceSlice, TraceError, TraceSettings, PROBE_NAME};
use crate::{register_probe, DeclaredInput};

use super::base::BaseRef;
use super::distroless::{Blocker, DistrolessFit, DistrolessNeeds};
use super::prefetch::Prefetch;
use super::recipe::unprintable;
use super::recipe::Refusal;
use super::units::{Added, Coverage, Fallback, Granularity};
use super::verify::{compare, ScenarioComparison, Verification};
use super::{
    build_minimal_image, build_on_base, repository_dockerfile, EvidencePaths, Handover,
    MinimizeError,
};
use crate::runtime_trace::slice::TraceCoverageConfidence;

/// The probe's name, and its output's file name.
pub const MINIMAL_IMAGE_PROBE: &str = "minimal_image";
/// The human summary artifact.
pub const SUMMARY_ARTIFACT: &str = "minimal-image.md";
/// The proposed Dockerfile artifact.
pub const DOCKERFILE_ARTIFACT: &str = "Dockerfile.distroless";

/// Settings of the minimal-image probe, in `ProbeContext::settings` (absent:
/// no extra scenarios, no extra tag).
#[derive(Debug, Clone, Default)]
pub struct MinimizeSettings {
    /// Extra verification scenarios, run on both the original and the
    /// minimal image (code paths the traced scenarios may not reach).
    pub verify_with: Option<RunScenarios>,
    /// An extra tag for the minimal image.
    pub tag: Option<String>,
    /// Minimal images of the repository to keep, newest first, the one just
    /// built always among them (`None`: [`KEEP_IMAGES`]).
    pub keep_images: Option<usize>,
    /// How finely the image is cut (default: units).
    pub granularity: Granularity,
    /// The base to build on with the Dockerfile handed over
    /// (`minimize --base`); `None`: the import of the cut filesystem.
    pub base: Option<String>,
    /// The exports of the original and `base`, when the trace of the same
    /// run started them ([`Prefetch`]).
    pub prefetch: Option<Prefetch>,
}

/// Original and minimal image sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sizes {
    /// The traced image, in bytes.
    pub original: u64,
    /// The minimal image, in bytes.
    pub minimal: u64,
}

/// `.codegenie/context/minimal_image.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinimalImageReport {
    /// The minimal image's tag in the engine (`codegenie-min:<short digest>`).
    pub minimal_image: String,
    /// The minimal image's id.
    pub minimal_image_id: String,
    /// The image it was cut from.
    pub original_image: String,
    /// Every scenario that completed on the original completed on the
    /// minimal image with no path missing that the original found (the
    /// extra verification scenarios included).
    pub verified: bool,
    /// Image sizes.
    pub size_bytes: Sizes,
    /// The traced scenarios on both images.
    pub scenarios: Vec<ScenarioComparison>,
    /// The extra verification scenarios on both images, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_with: Option<Verification>,
    /// What the minimal image lacks: paths the original found that it did not.
    pub missing: BTreeSet<String>,
    /// Named paths the original image does not hold either (made at run time).
    pub absent_from_original: BTreeSet<String>,
    /// Named paths whose symlinks go round in a loop in the original: held
    /// there (as links), but never openable.
    #[serde(default)]
    pub link_loops: BTreeSet<String>,
    /// Filesystem entries in the minimal image.
    pub entries: usize,
    /// Blockers for a distroless base, each with its evidence.
    pub blockers: Vec<Blocker>,
    /// What a distroless base would need added.
    pub distroless_needs: DistrolessNeeds,
    /// The Dockerfile handed over (`raw/Dockerfile.distroless`): with
    /// `--base`, the file that built the verified image; without, the same
    /// units written on `scratch` by the same code, not built (the image
    /// verified was imported from the same files and config); or why no
    /// file could be written.
    pub proposed_dockerfile: String,
    /// Whether [`proposed_dockerfile`](Self::proposed_dockerfile) built the
    /// verified image (`--base`).
    #[serde(default)]
    pub dockerfile_built: bool,
    /// The granularity the image was cut at.
    #[serde(default)]
    pub granularity: Granularity,
    /// What `verified` covers at that granularity, as a sentence.
    #[serde(default)]
    pub verified_scope: String,
    /// What fell back to files, and why (no package database, a corrupt
    /// one, a tree over the cap).
    #[serde(default)]
    pub granularity_fallback: Vec<Fallback>,
    /// The units and lone files kept; with `--base`, those the Dockerfile
    /// adds (what the base holds is in `held_by_base`, or is not listed).
    #[serde(default)]
    pub added: Added,
    /// How much of the app's own trees the scenarios reached.
    #[serde(default)]
    pub coverage: Coverage,
    /// The trace's coverage confidence, copied from its slice.
    #[serde(default)]
    pub trace_coverage_confidence: Option<TraceCoverageConfidence>,
    /// The base the image was built on (`--base`), with its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseRef>,
    /// Where the Dockerfile that built it is, relative to the repository
    /// (`--base`: byte for byte the file that built the verified image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// Lines the Dockerfile does not write (config, a path, a comment),
    /// and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Refusal>,
    /// Kept packages the base already holds (`name version`), not added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_by_base: Vec<String>,
    /// The user the image runs as (`--base`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Which maintained base fits, from the evidence (when `--base` is not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_base: Option<BaseSuggestion>,
    /// ENV keys of the original whose values look like secrets (the values
    /// are never reported): an imported cut carries them as they are; the
    /// Dockerfile of `--base` refuses them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_env_keys: Vec<String>,
}

/// Where the handed-over Dockerfile is written, relative to the repository.
pub const DOCKERFILE_PATH: &str = ".codegenie/context/raw/Dockerfile.distroless";

/// A base family that fits the evidence, with current names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseSuggestion {
    /// `static`, `base`, `cc`, or a language image (`nodejs`, `python3`, `java`).
    pub family: String,
    /// Current image names of that family.
    pub images: Vec<String>,
    /// Why, from the evidence.
    pub why: String,
    /// A release difference to know about (`the original is Debian 12`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_note: Option<String>,
}

/// The base family the evidence of `slice` fits: a language runtime that
/// ran, else the C++ runtime or any shared library mapped, else static.
pub fn suggest_base(slice: &RuntimeTraceSlice, debian_release: Option<&str>) -> BaseSuggestion {
    let ran = |names: &[&str]| {
        slice.binaries_executed.iter().find(|b| {
            let base = b.rsplit('/').next().unwrap_or(b);
            names
                .iter()
                .any(|n| base == *n || base.starts_with(&format!("{n}.")))
        })
    };
    let mapped = |prefix: &str| {
        slice
            .shared_libs_loaded
            .iter()
            .find(|l| l.rsplit('/').next().unwrap_or(l).starts_with(prefix))
    };
    let (family, images, why): (&str, Vec<&str>, String) = if let Some(b) = ran(&["node", "nodejs"])
    {
        (
            "nodejs",
            vec![
                "gcr.io/distroless/nodejs22-debian13",
                "gcr.io/distroless/nodejs24-debian13",
            ],
            format!("{b} ran; pick the major version the app runs on"),
        )
    } else if let Some(b) = ran(&["python3", "python"]) {
        (
            "python3",
            vec!["gcr.io/distroless/python3-debian13"],
            format!("{b} ran"),
        )
    } else if let Some(b) = ran(&["java"]) {
        (
            "java",
            vec!["gcr.io/distroless/java21-debian13"],
            format!("{b} ran"),
        )
    } else if let Some(l) = mapped("libstdc++") {
        (
            "cc",
            vec!["gcr.io/distroless/cc-debian13"],
            format!("{l} was mapped"),
        )
    } else if let Some(l) = slice.shared_libs_loaded.iter().next() {
        (
            "base",
            vec!["gcr.io/distroless/base-debian13"],
            format!("{l} was mapped"),
        )
    } else {
        (
            "static",
            vec!["gcr.io/distroless/static-debian13"],
            "no shared library was mapped".to_owned(),
        )
    };
    let release_note = debian_release.filter(|r| *r != "13").map(|r| {
        format!(
            "the original is Debian {r}; these bases are Debian 13, whose libraries differ: run `minimize --base` on the one you pick to verify it (Google builds no Debian 12 language images, and its Debian 12 static/base/cc images are past their end of life)"
        )
    });
    BaseSuggestion {
        family: family.to_owned(),
        images: images.into_iter().map(str::to_owned).collect(),
        why,
        release_note,
    }
}

/// Why the minimal-image probe could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MinimalImageError {
    /// The runtime trace did not run in this gather.
    #[error(
        "the {PROBE_NAME} probe produced no output in this run; run both (`codegenie minimize`)"
    )]
    NoTrace,
    /// The trace's output does not have this version's schema.
    #[error(
        "the {PROBE_NAME} output does not have this version's schema; re-run it (`--no-cache`)"
    )]
    OldSlice(#[source] serde_json::Error),
    /// No image was traced (the build failed, or no scenario ran).
    #[error("no image was traced: {0}")]
    NotTraced(String),
    /// Building the minimal image failed.
    #[error(transparent)]
    Minimize(#[from] MinimizeError),
    /// Tracing the minimal image failed.
    #[error("cannot trace the minimal image")]
    Verify(#[source] TraceError),
    /// The run's scenarios cannot be read.
    #[error("cannot read the scenarios")]
    Scenarios(#[source] TraceError),
    /// The run id leaves no room for a verification run's part.
    #[error("no run id for the verification run")]
    RunId(#[source] crate::runtime_trace::settings::RunIdError),
    /// An engine command failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The report cannot be serialised.
    #[error("cannot serialise the minimal-image report")]
    Report(#[source] serde_json::Error),
    /// No scratch folder for the image export.
    #[error("no scratch folder: {0}")]
    Scratch(PathBuf),
}

/// Builds the minimal image of the traced one, verifies it by re-running the
/// scenarios, and reports what a distroless base would need.
#[derive(Debug, Default)]
pub struct MinimalImageProbe;

#[register_probe(heaviness = "heavy", runs_last = true)]
impl Probe for MinimalImageProbe {
    // 2: units (`granularity`, `added`, `coverage`, fallbacks), the trace's
    // confidence; an older cached report is not reused.
    // 3: `link_loops`, `setuid` blockers.
    fn version(&self) -> u32 {
        3
    }

    // Its output follows from the runtime trace's, which follows from these.
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        Probe::declared_inputs(&crate::runtime_trace::RuntimeTraceProbe)
    }

    fn cache_strategy(&self) -> CacheStrategy {
        CacheStrategy::Content
    }

    fn timeout(&self) -> Duration {
        // Export and import, then the scenarios twice at most.
        crate::engine::TRANSFER_TIMEOUT * 2 + crate::runtime_trace::settings::AGGREGATE_TIMEOUT * 2
    }

    fn applies(&self, repo: &RepoSnapshot) -> bool {
        repo.has_file("Dockerfile")
    }

    async fn run(
        &self,
        repo: &RepoSnapshot,
        ctx: &ProbeContext,
    ) -> Result<ProbeOutput, ProbeError> {
        let (repo, ctx) = (repo.clone(), ctx.clone());
        run_blocking_work("minimal_image", move || minimal_image(&repo, &ctx)).await
    }
}

/// The absolute programs the `exec` steps of `files` run.
fn exec_step_programs<'a>(files: impl Iterator<Item = &'a ScenarioFile>) -> Vec<String> {
    use crate::runtime_trace::scenarios::Step;
    files
        .flat_map(|f| &f.scenarios)
        .flat_map(|sc| &sc.steps)
        .filter_map(|step| match step {
            Step::Exec(argv) => argv.first().filter(|p| p.starts_with('/')).cloned(),
            _ => None,
        })
        .collect()
}

/// A trace of `repo` on `image`, with `scenarios` when given, uncached.
fn trace_on(
    repo: &RepoSnapshot,
    ctx: &ProbeContext,
    image: &str,
    scenarios: Option<&RunScenarios>,
    part: &str,
) -> Result<Arc<RuntimeTraceSlice>, MinimalImageError> {
    let mut settings = ctx
        .settings
        .get::<TraceSettings>()
        .cloned()
        .unwrap_or_default();
    settings.image = Some(image.to_owned());
    settings.on_built = None;
    if let Some(s) = scenarios {
        settings.scenarios = Some(s.clone());
    }
    // A part of the caller's run (`<run>.<part>`): the run's own sweep may
    // still be going, and an interrupted run removes its parts too.
    settings.run_id = Some(match &settings.run_id {
        Some(run) => run.child(part).map_err(MinimalImageError::RunId)?,
        None => RunId::unique(&format!("{part}-")),
    });
    let mut ctx = ctx.clone();
    ctx.settings.insert(settings);
    let out =
        crate::runtime_trace::probe::run_blocking(repo, &ctx).map_err(MinimalImageError::Verify)?;
    out.value().map_err(MinimalImageError::OldSlice)
}

/// What [`MinimalImageProbe`] runs, on this thread: `ctx` must hold
/// the runtime trace's output (`ProbeContext::earlier`) and may hold
/// [`TraceSettings`] (the engine endpoint) and [`MinimizeSettings`].
pub fn minimal_image(
    repo: &RepoSnapshot,
    ctx: &ProbeContext,
) -> Result<ProbeOutput, MinimalImageError> {
    let slice: Arc<RuntimeTraceSlice> = ctx
        .output_as(PROBE_NAME)
        .ok_or(MinimalImageError::NoTrace)?
        .map_err(MinimalImageError::OldSlice)?;
    let original = slice.last_traced_image_digest.clone().ok_or_else(|| {
        MinimalImageError::NotTraced(match slice.scenarios.first().map(|s| &s.outcome) {
            Some(ScenarioOutcome::Failed(why) | ScenarioOutcome::Skipped(why)) => why.to_string(),
            _ => "the trace has no scenario".to_owned(),
        })
    })?;
    if slice.binaries_executed.is_empty() {
        return Err(MinimizeError::NoEvidence.into());
    }
    let settings = ctx
        .settings
        .get::<MinimizeSettings>()
        .cloned()
        .unwrap_or_default();
    let trace = ctx
        .settings
        .get::<TraceSettings>()
        .cloned()
        .unwrap_or_default();
    let engine = Engine::at(trace.engine, trace.endpoint.clone());
    let mut evidence = EvidencePaths::of(&slice);
    // The same scenarios must run on the minimal image: the programs their
    // `exec` steps name run beside the app, untraced, so keep them too.
    let scenarios = match &trace.scenarios {
        Some(s) => s.clone(),
        None => RunScenarios::load(repo, None).map_err(MinimalImageError::Scenarios)?,
    };
    let files =
        std::iter::once(&scenarios.file).chain(settings.verify_with.iter().map(|v| &v.file));
    evidence.named.extend(exec_step_programs(files));
    let scratch = match &ctx.scratch_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir(),
    };
    if !scratch.is_dir() {
        return Err(MinimalImageError::Scratch(scratch));
    }
    // `--verify-with` evidence joins the units before the build: its
    // scenarios then judge an image cut for them too.
    let before = match &settings.verify_with {
        Some(file) => {
            let before = trace_on(repo, ctx, &original, Some(file), "verify-with-original")?;
            evidence.extend(EvidencePaths::of(&before));
            Some(before)
        }
        None => None,
    };
    let keep = settings.keep_images.unwrap_or(KEEP_IMAGES);
    let on_base = match &settings.base {
        Some(base) => Some(build_on_base(
            &engine,
            repo.root(),
            &original,
            &evidence,
            keep,
            settings.granularity,
            super::BaseAsked {
                reference: base,
                early: settings.prefetch.as_ref(),
            },
        )?),
        None => None,
    };
    // Without `--base`, the same units as a Dockerfile on `scratch`,
    // written by the code `--base` builds with, saying it was not built.
    let suggestion = on_base.is_none().then(|| suggest_base(&slice, None));
    let (minimal, handed_over) = match &on_base {
        Some(b) => (b.image.clone(), None),
        None => {
            let mut notes = vec![
                "not built by codegenie: the image it verified was imported from the same files and config; `codegenie minimize --base IMAGE` builds this file on IMAGE and verifies it".to_owned(),
            ];
            if let Some(s) = &suggestion {
                notes.push(format!(
                    "a maintained base that fits ({}): {}",
                    s.why,
                    s.images.join(", ")
                ));
            }
            let handover = Handover {
                repository_dockerfile: repository_dockerfile(repo.root()),
                notes,
            };
            let cut = build_minimal_image(
                &engine,
                &original,
                &evidence,
                &scratch,
                keep,
                settings.granularity,
                super::CutAsked {
                    handover: Some(&handover),
                    early: settings.prefetch.as_ref(),
                },
            )?;
            (cut.image, cut.dockerfile)
        }
    };
    if let Some(tag) = &settings.tag {
        engine.tag(&minimal.image_id, tag)?;
    }
    let on_minimal = trace_on(repo, ctx, &minimal.image_id, None, "verify-minimal")?;
    let main = compare(&slice, &on_minimal);
    let verify_with = match (&settings.verify_with, &before) {
        (Some(file), Some(before)) => {
            let after = trace_on(
                repo,
                ctx,
                &minimal.image_id,
                Some(file),
                "verify-with-minimal",
            )?;
            Some(compare(before, &after))
        }
        _ => None,
    };
    let config = engine.image_config(&original)?;
    let mut ready = DistrolessFit::of(&slice, &config);
    ready
        .blockers
        .extend(super::distroless::setuid_blockers(&minimal.setid));
    if let Some(b) = &on_base {
        let user = b.nonroot.clone().unwrap_or_default();
        for path in &b.root_writes {
            ready.blockers.push(Blocker::WriteNeedsRoot {
                path: path.clone(),
                user: user.clone(),
            });
        }
        // The image runs as the base's user: the original's root is no blocker.
        if b.user.as_deref().is_some_and(|u| !super::base::is_root(u)) {
            ready
                .blockers
                .retain(|x| !matches!(x, Blocker::RootUser { .. }));
        }
    }
    let mut missing = main.missing.clone();
    missing.extend(verify_with.iter().flat_map(|v| v.missing.iter().cloned()));
    let report = MinimalImageReport {
        minimal_image: minimal.tag.clone(),
        minimal_image_id: minimal.image_id.clone(),
        original_image: original,
        verified: main.verified && verify_with.as_ref().is_none_or(|v| v.verified),
        size_bytes: Sizes {
            original: minimal.original_size_bytes,
            minimal: minimal.size_bytes,
        },
        scenarios: main.scenarios,
        verify_with,
        missing,
        absent_from_original: minimal.absent,
        link_loops: minimal.link_loops,
        entries: minimal.entries,
        blockers: ready.blockers,
        distroless_needs: ready.distroless_needs,
        proposed_dockerfile: match (&on_base, &handed_over) {
            (Some(b), _) => b.dockerfile.clone(),
            (None, Some(Ok(r))) => r.text.clone(),
            (None, Some(Err(why))) => format!(
                "# codegenie could not write a Dockerfile for this image: {}\n",
                serde_json::to_string(why).unwrap_or_default()
            ),
            (None, None) => String::new(),
        },
        dockerfile_built: on_base.is_some(),
        granularity: minimal.granularity,
        verified_scope: minimal.granularity.verified_scope().to_owned(),
        granularity_fallback: minimal.fallbacks,
        added: minimal.added,
        coverage: minimal.coverage,
        trace_coverage_confidence: Some(slice.trace_coverage_confidence),
        base: on_base.as_ref().map(|b| b.base.clone()),
        dockerfile: (on_base.is_some() || matches!(handed_over, Some(Ok(_))))
            .then(|| DOCKERFILE_PATH.to_owned()),
        refused: match (&on_base, &handed_over) {
            (Some(b), _) => b.refused.clone(),
            (None, Some(Ok(r))) => r.refused.clone(),
            _ => Vec::new(),
        },
        held_by_base: on_base
            .as_ref()
            .map(|b| b.held_packages.clone())
            .unwrap_or_default(),
        user: on_base.as_ref().and_then(|b| b.user.clone()),
        suggested_base: on_base
            .is_none()
            .then(|| suggest_base(&slice, minimal.debian_release.as_deref())),
        secret_env_keys: secret_env_keys(&config),
    };
    // A verification run cut short by the environment proves nothing either way.
    let not_cacheable = on_minimal
        .scenarios
        .iter()
        .any(|s| matches!(s.outcome, ScenarioOutcome::Skipped(_)))
        .then(|| "a verification scenario was skipped".to_owned());
    let summary = summary_markdown(&report);
    // With a base, the file that built the verified image; without, the
    // same units on scratch, not built.
    let dockerfile = report.proposed_dockerfile.clone().into_bytes();
    let confidence = if report.verified {
        Confidence::High
    } else {
        Confidence::Low
    };
    let mut out = ProbeOutput::of(report, confidence).map_err(MinimalImageError::Report)?;
    out.artifacts = vec![
        Artifact {
            name: SUMMARY_ARTIFACT.to_owned(),
            source: ArtifactSource::Bytes(summary.into_bytes()),
        },
        Artifact {
            name: DOCKERFILE_ARTIFACT.to_owned(),
            source: ArtifactSource::Bytes(dockerfile),
        },
    ];
    out.not_cacheable = not_cacheable;
    Ok(out)
}

/// The keys of `config`'s ENV whose values look like secrets, in order;
/// never a value.
fn secret_env_keys(config: &ImageConfig) -> Vec<String> {
    config
        .env
        .iter()
        .flatten()
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, v)| super::recipe::secret_looking(k, v))
        .map(|(k, _)| k.to_owned())
        .collect()
}

/// The report for people, as markdown.
pub fn summary_markdown(r: &MinimalImageReport) -> String {
    let mb = |b: u64| b as f64 / 1_000_000.0;
    let mut s = format!(
        "# Minimal image\n\n\
         - minimal image: {} ({:.1} MB of {:.1} MB, {:.0}%), {} entries\n\
         - verified: **{}**\n\n\
         ## Scenarios\n\n| scenario | original | minimal | missing |\n|---|---|---|---|\n",
        code(&r.minimal_image),
        mb(r.size_bytes.minimal),
        mb(r.size_bytes.original),
        100.0 * r.size_bytes.minimal as f64 / r.size_bytes.original.max(1) as f64,
        r.entries,
        if r.verified { "yes" } else { "no" },
    );
    let rows = r
        .scenarios
        .iter()
        .chain(r.verify_with.iter().flat_map(|v| &v.scenarios));
    for c in rows {
        let minimal = match &c.minimal_detail {
            Some(d) => format!("{} ({d})", c.minimal),
            None => c.minimal.clone(),
        };
        let missing: Vec<String> = c.missing.iter().map(|p| cell(p)).collect();
        s.push_str(&one_line(&format!(
            "| {} | {} | {} | {} |",
            cell(&c.name),
            text(&c.original),
            text(&minimal),
            missing.join(", ")
        )));
        s.push('\n');
    }
    if !r.link_loops.is_empty() {
        s.push_str(&format!(
            "\nSymlink loops in the original (kept as links, never openable): {}\n",
            list(&r.link_loops)
        ));
    }
    if !r.secret_env_keys.is_empty() {
        s.push_str(&format!(
            "\nSecret-looking ENV keys of the original: {} ({}). Pass them at run time instead.\n",
            r.secret_env_keys
                .iter()
                .map(|k| code(k))
                .collect::<Vec<_>>()
                .join(", "),
            if r.base.is_some() {
                "not written into the Dockerfile"
            } else {
                "the minimal image carries them, as the original does"
            }
        ));
    }
    s.push_str(&units_markdown(r));
    s.push_str("\n## Blockers for a distroless base\n\n");
    if r.blockers.is_empty() {
        s.push_str("None.\n");
    }
    for b in &r.blockers {
        let line = match b {
            Blocker::Shell {
                path,
                argv,
                scenario,
            } => format!(
                "shell: {} ran {} ({})",
                code(path),
                code(&argv.join(" ")),
                text(scenario)
            ),
            Blocker::ExtraBinary {
                path,
                argv,
                scenario,
            } => format!(
                "extra binary: {} ran {} ({})",
                code(path),
                code(&argv.join(" ")),
                text(scenario)
            ),
            Blocker::RootUser { user } => format!(
                "root user: the image runs as {}",
                code(if user.is_empty() { "root" } else { user })
            ),
            Blocker::PrivilegedPort { address } => {
                format!("privileged port: binds {}", code(address))
            }
            Blocker::WriteOutsideTmp { path, files } => {
                format!("writes outside /tmp: {files} file(s) in {}", code(path))
            }
            Blocker::TlsTrustUnobserved { detail } => {
                format!("TLS trust unobserved: {detail}")
            }
            Blocker::Setuid { path, mode } => {
                format!("setuid/setgid file kept: {} (mode {mode})", code(path))
            }
            Blocker::WriteNeedsRoot { path, user } => format!(
                "write needs root: {} (the base's user {} may not write it)",
                code(path),
                code(user)
            ),
        };
        s.push_str(&format!("- {}\n", one_line(&line)));
    }
    let n = &r.distroless_needs;
    s.push_str("\n## What a distroless base would need added\n\n");
    s.push_str(&format!(
        "- libraries beyond the base: {}\n- certificates: {}\n- tzdata: {}\n- passwd/group entries: {}\n",
        list(&n.libraries),
        list(&n.certs),
        if n.tzdata { "yes" } else { "no" },
        if n.passwd { "yes" } else { "no" },
    ));
    match (&r.base, &r.dockerfile) {
        (Some(base), Some(path)) => {
            s.push_str(&format!(
                "\n## Dockerfile\n\n- built and verified: {} ({} lines): {}\n- base: {} ({})\n- user: {}\n",
                code(path),
                r.proposed_dockerfile.lines().count(),
                code(&format!("docker build --network=none -f {path} .")),
                code(&base.reference),
                if base.id.is_empty() { "empty".to_owned() } else { code(&base.id) },
                r.user.as_deref().map(code).unwrap_or_else(|| "the original's".to_owned()),
            ));
            if !r.held_by_base.is_empty() {
                s.push_str(&format!(
                    "- packages the base already holds (not added): {}\n",
                    r.held_by_base
                        .iter()
                        .map(|p| code(p))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            for f in &r.refused {
                s.push_str(&format!(
                    "- not written: {} {}: {}\n",
                    f.instruction,
                    code(&f.what),
                    text(&f.reason)
                ));
            }
        }
        _ => {
            if let Some(b) = &r.suggested_base {
                s.push_str(&format!(
                    "\n## Base\n\n- fits: {} ({}): {}\n",
                    text(&b.family),
                    b.images
                        .iter()
                        .map(|i| code(i))
                        .collect::<Vec<_>>()
                        .join(", "),
                    text(&b.why)
                ));
                if let Some(n) = &b.release_note {
                    s.push_str(&format!("- {}\n", text(n)));
                }
            }
            // A fence longer than any backtick run inside: no line of the
            // file can close it.
            let fence = "`".repeat(longest_backtick_run(&r.proposed_dockerfile).max(2) + 1);
            let body = &r.proposed_dockerfile;
            s.push_str(&format!(
                "\n## Dockerfile (on scratch, not built: the image verified was imported from the same files; `--base IMAGE` builds it on a base and verifies it)\n\n{fence}dockerfile\n{body}{}{fence}\n",
                if body.is_empty() || body.ends_with('\n') { "" } else { "\n" }
            ));
        }
    }
    s
}

/// `line` with every [`unprintable`] character escaped (`\n`, `\u{1b}`):
/// one markdown line, whatever a path or an argv held.
fn one_line(line: &str) -> String {
    line.chars()
        .map(|c| {
            if unprintable(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The longest run of backticks in `v`.
fn longest_backtick_run(v: &str) -> usize {
    v.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// A value from the image or the evidence as one code span: quoted with
/// escapes when it holds an [`unprintable`] character (a newline would
/// start a line of its own) or is blank (two backticks are no span),
/// between backtick runs longer than any inside it (so a backtick cannot
/// end the span early), padded with a space when it starts or ends with a
/// backtick or a space (CommonMark strips one from each end).
fn code(v: &str) -> String {
    let v = if v.trim().is_empty() || v.chars().any(unprintable) {
        format!("{v:?}")
    } else {
        v.to_owned()
    };
    let fence = "`".repeat(longest_backtick_run(&v) + 1);
    let edge = |c: char| c == '`' || c == ' ';
    let pad = if v.starts_with(edge) || v.ends_with(edge) {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{v}{pad}{fence}")
}

/// [`code`] for a table cell: a `|` ends a cell even inside a code span
/// unless escaped (GitHub's tables).
fn cell(v: &str) -> String {
    code(v).replace('|', "\\|")
}

/// Prose that may carry a value from the image or the evidence (a reason
/// naming a path, a scenario's name): on one line, with the characters
/// that start markup (a code span, an HTML tag, a link, a table cell)
/// escaped.
fn text(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in one_line(v).chars() {
        if matches!(c, '\\' | '`' | '<' | '>' | '[' | ']' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The units section: granularity, what was kept whole and why, what fell
/// back, and the app trees' coverage.
fn units_markdown(r: &MinimalImageReport) -> String {
    let mut s = format!(
        "\n## Units\n\n- granularity: {} ({})\n",
        r.granularity, r.verified_scope
    );
    if let Some(c) = r.trace_coverage_confidence {
        s.push_str(&format!(
            "- trace coverage confidence: {}\n",
            serde_json::to_value(c)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ));
    }
    let c = &r.coverage;
    s.push_str(&format!(
        "- app files read by the scenarios: {} of {}\n",
        c.app_files_read, c.app_files
    ));
    if !c.never_read.is_empty() {
        s.push_str(&format!(
            "- never read (add a scenario that reaches them): {}\n",
            c.never_read
                .iter()
                .map(|p| code(p))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for f in &r.granularity_fallback {
        s.push_str(&one_line(&format!(
            "- kept as files: {}: {}",
            code(&f.scope),
            text(&f.reason)
        )));
        s.push('\n');
    }
    if !r.added.packages.is_empty() {
        s.push_str("\n| package | kind | files | bytes | why |\n|---|---|---|---|---|\n");
        for p in &r.added.packages {
            s.push_str(&one_line(&format!(
                "| {} | {:?} | {} | {} | {} |",
                cell(format!("{} {}", p.name, p.version).trim_end()),
                p.kind,
                p.files,
                p.bytes,
                text(&p.reason.to_string())
            )));
            s.push('\n');
        }
    }
    if !r.added.trees.is_empty() {
        s.push_str("\n| app tree | files | bytes | why |\n|---|---|---|---|\n");
        for t in &r.added.trees {
            s.push_str(&one_line(&format!(
                "| {} | {} | {} | {} |",
                cell(&t.path),
                t.files,
                t.bytes,
                text(&t.reason.to_string())
            )));
            s.push('\n');
        }
    }
    s.push_str(&format!(
        "\n{} files kept alone (no unit holds them).\n",
        r.added.files.len()
    ));
    s
}

fn list(items: &BTreeSet<String>) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.iter().map(|i| code(i)).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::runtime_trace::results::{ScenarioReason, ScenarioResult};
    use crate::runtime_trace::slice::TraceCoverageConfidence;
    use crate::runtime_trace::slice::{aggregate, AggregateInputs};

    fn ctx_with(trace: Option<serde_json::Value>) -> ProbeContext {
        let mut earlier = BTreeMap::new();
        if let Some(slice) = trace {
            earlier.insert(
                PROBE_NAME.to_owned(),
                ProbeOutput::new(slice, Confidence::Low),
            );
        }
        ProbeContext {
            earlier: Arc::new(earlier),
            ..Default::default()
        }
    }

    fn repo() -> (tempfile::TempDir, RepoSnapshot) {
        let dir = tempfile::tempdir().unwrap();
        let snap = RepoSnapshot::open(dir.path()).unwrap();
        (dir, snap)
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let (_d, repo) = repo();
        assert!(matches!(
            minimal_image(&repo, &ctx_with(None)),
            Err(MinimalImageError::NoTrace)
        ));
        // An output of another schema (an older version's).
        let old = serde_json::json!({ "binaries": ["/bin/sh"] });
        assert!(matches!(
            minimal_image(&repo, &ctx_with(Some(old))),
            Err(MinimalImageError::OldSlice(_))
        ));
        // A trace whose build failed: no image, and the reason is given.
        let failed = aggregate(
            &[ScenarioResult::new(
                "startup",
                ScenarioOutcome::Skipped(ScenarioReason::ImageBuildFailed {
                    exit_code: Some(1),
                    log_tail: String::new(),
                }),
            )],
            &AggregateInputs::default(),
        );
        let e = minimal_image(
            &repo,
            &ctx_with(Some(serde_json::to_value(failed).unwrap())),
        )
        .unwrap_err();
        assert!(matches!(e, MinimalImageError::NotTraced(_)), "{e}");
        assert!(e.to_string().contains("image build failed"), "{e}");
    }

    #[test]
    fn secret_looking_env_keys_are_named_never_their_values() {
        let config = ImageConfig {
            env: Some(vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
                "NODE_ENV=production".into(),
                "DB_PASSWORD=hunter2hunter2".into(),
                "NO_VALUE".into(),
            ]),
            ..ImageConfig::default()
        };
        let keys = secret_env_keys(&config);
        assert_eq!(keys, ["AWS_SECRET_ACCESS_KEY", "DB_PASSWORD"]);
        let all = keys.join(" ");
        assert!(
            !all.contains("wJalrXUtnFEMI") && !all.contains("hunter2"),
            "{all}"
        );
        // The summary names them, and says what became of them.
        let mut r = MinimalImageReport {
            secret_env_keys: keys,
            ..MinimalImageReport::default()
        };
        let md = summary_markdown(&r);
        assert!(
            md.contains("\nSecret-looking ENV keys of the original: `AWS_SECRET_ACCESS_KEY`, `DB_PASSWORD` (the minimal image carries them, as the original does)."),
            "{md}"
        );
        r.base = Some(BaseRef::default());
        assert!(
            summary_markdown(&r).contains("`DB_PASSWORD` (not written into the Dockerfile)"),
            "{md}"
        );
        // The control: no secret-looking key, no such line.
        assert!(secret_env_keys(&ImageConfig::default()).is_empty());
        assert!(!summary_markdown(&MinimalImageReport::default()).contains("Secret-looking"));
    }

    /// A report with `v` in every value that comes from the image, the
    /// trace or the scenario file; `base`: as `--base` writes it.
    fn report_with(v: &str, base: bool) -> MinimalImageReport {
        use super::super::units::{KeptPackage, KeptTree, PackageKind, UnitReason};
        use super::super::PathUse;
        let set = |items: &[String]| items.iter().cloned().collect::<BTreeSet<_>>();
        let reason = UnitReason {
            path: format!("/usr/lib/{v}"),
            usage: PathUse::Read,
            scenario: Some(format!("startup{v}")),
            program: Some(format!("/usr/bin/{v}")),
        };
        let argv = vec!["sh".to_owned(), "-c".to_owned(), v.to_owned()];
        MinimalImageReport {
            minimal_image: format!("codegenie-min:{v}"),
            original_image: format!("sha256:{v}"),
            size_bytes: Sizes {
                original: 2_000_000,
                minimal: 1_000_000,
            },
            scenarios: vec![ScenarioComparison {
                name: format!("startup{v}"),
                original: "completed".into(),
                minimal: "failed".into(),
                minimal_detail: Some(format!("exited 1: {v}")),
                missing: set(&[format!("/app/{v}"), format!("/etc/{v}")]),
                excused: BTreeSet::new(),
                original_detail: None,
                original_wall_clock_ms: None,
                minimal_wall_clock_ms: None,
            }],
            link_loops: set(&[format!("/loop/{v}")]),
            entries: 3,
            blockers: vec![
                Blocker::Shell {
                    path: format!("/bin/{v}"),
                    argv: argv.clone(),
                    scenario: format!("startup{v}"),
                },
                Blocker::ExtraBinary {
                    path: format!("/usr/bin/{v}"),
                    argv,
                    scenario: format!("startup{v}"),
                },
                Blocker::RootUser {
                    user: format!("root{v}"),
                },
                Blocker::PrivilegedPort {
                    address: format!("0.0.0.0:{v}"),
                },
                Blocker::WriteOutsideTmp {
                    path: format!("/app/{v}"),
                    files: 1,
                },
                Blocker::Setuid {
                    path: format!("/opt/{v}"),
                    mode: "4755".into(),
                },
                Blocker::WriteNeedsRoot {
                    path: format!("/var/{v}"),
                    user: format!("nonroot{v}"),
                },
            ],
            distroless_needs: DistrolessNeeds {
                libraries: set(&[format!("/lib/{v}.so")]),
                certs: set(&[format!("/etc/ssl/{v}")]),
                tzdata: true,
                passwd: false,
            },
            // A heredoc may hold a line of backticks: it must not close the fence.
            proposed_dockerfile: format!(
                "FROM x\nCOPY <<EOF /f\n```\nEOF\nCMD {}\n",
                super::super::recipe::shown(serde_json::to_string(&[v]).unwrap())
            ),
            verified_scope: "every scenario".into(),
            granularity_fallback: vec![Fallback {
                scope: format!("/opt/{v}"),
                reason: format!("the tree {v} is over the cap"),
            }],
            added: Added {
                packages: vec![KeptPackage {
                    kind: PackageKind::Dpkg,
                    name: format!("lib{v}"),
                    version: v.to_owned(),
                    arch: None,
                    reason: reason.clone(),
                    files: 1,
                    bytes: 1,
                    paths: BTreeSet::new(),
                }],
                trees: vec![KeptTree {
                    path: format!("/app/{v}"),
                    files: 1,
                    bytes: 1,
                    reason,
                    paths: BTreeSet::new(),
                }],
                files: vec![format!("/etc/{v}")],
            },
            coverage: Coverage {
                app_files: 2,
                app_files_read: 1,
                never_read: vec![format!("/app/{v}.js")],
            },
            trace_coverage_confidence: Some(TraceCoverageConfidence::Low),
            base: base.then(|| BaseRef {
                reference: "scratch".into(),
                id: format!("sha256:{v}"),
            }),
            dockerfile: base.then(|| DOCKERFILE_PATH.to_owned()),
            refused: vec![Refusal {
                instruction: "ENV".into(),
                what: format!("KEY{v}"),
                reason: "the name is not [A-Za-z_][A-Za-z0-9_]*".into(),
            }],
            held_by_base: vec![format!("libc6 {v}")],
            user: base.then(|| format!("nonroot{v}")),
            suggested_base: (!base).then(|| BaseSuggestion {
                family: "cc".into(),
                images: vec![format!("gcr.io/distroless/{v}")],
                why: format!("/usr/lib/{v}/libstdc++.so.6 was mapped"),
                release_note: Some(format!("the original is Debian {v}")),
            }),
            secret_env_keys: vec![format!("KEY{v}")],
            ..MinimalImageReport::default()
        }
    }

    /// What renders as markup in one line of markdown outside a fenced
    /// block: each code span and each backslash escape becomes `_`
    /// (CommonMark: a run of n backticks opens a span the next run of
    /// exactly n closes; backslashes do nothing inside a span).
    fn markup(line: &str) -> String {
        let cs: Vec<char> = line.chars().collect();
        let run = |at: usize| cs[at..].iter().take_while(|c| **c == '`').count();
        let (mut out, mut i) = (String::new(), 0);
        while i < cs.len() {
            if cs[i] == '\\' && cs.get(i + 1).is_some_and(|c| c.is_ascii_punctuation()) {
                out.push('_');
                i += 2;
            } else if cs[i] == '`' {
                let n = run(i);
                let close =
                    (i + n..cs.len()).find(|&j| run(j) == n && (j == 0 || cs[j - 1] != '`'));
                match close {
                    Some(j) => {
                        out.push('_');
                        i = j + n;
                    }
                    None => {
                        out.extend(&cs[i..i + n]);
                        i += n;
                    }
                }
            } else {
                out.push(cs[i]);
                i += 1;
            }
        }
        out
    }

    /// The fenced blocks' bodies, and the lines outside them.
    fn fenced(md: &str) -> (Vec<String>, Vec<&str>) {
        let (mut bodies, mut outside) = (Vec::new(), Vec::new());
        let mut open: Option<(usize, String)> = None;
        for line in md.lines() {
            let ticks = line.chars().take_while(|c| *c == '`').count();
            open = match open {
                None if ticks >= 3 => Some((ticks, String::new())),
                None => {
                    outside.push(line);
                    None
                }
                Some((n, body)) if ticks >= n && line.trim_end().len() == ticks => {
                    bodies.push(body);
                    None
                }
                Some((n, mut body)) => {
                    body.push_str(line);
                    body.push('\n');
                    Some((n, body))
                }
            };
        }
        (bodies, outside)
    }

    /// `hostile` renders as `benign` does, line for line: the same lines,
    /// each starting as its twin does, with the same table cells, no markup
    /// of a value's making (a raw backtick, a tag, a link) and no control
    /// character; the proposed Dockerfile is the fenced block, whole.
    fn same_shape(hostile: &str, benign: &str, dockerfile: &str) -> Result<(), String> {
        let (h, b) = (
            hostile.lines().collect::<Vec<_>>(),
            benign.lines().collect::<Vec<_>>(),
        );
        if h.len() != b.len() {
            return Err(format!("{} lines, not {}", h.len(), b.len()));
        }
        // Table rows: GitHub splits cells at every `|` not escaped, code
        // spans included.
        let pipes = |l: &str| match l.starts_with('|') {
            true => l.replace("\\|", "").matches('|').count(),
            false => 0,
        };
        for (x, y) in h.iter().zip(&b) {
            let start = |l: &str| l.chars().take(2).collect::<String>();
            if start(x) != start(y) || pipes(x) != pipes(y) {
                return Err(format!("{x:?} is not shaped as {y:?}"));
            }
        }
        if let Some(c) = hostile.chars().find(|c| *c != '\n' && unprintable(*c)) {
            return Err(format!("a raw {c:?}"));
        }
        let (bodies, outside) = fenced(hostile);
        if !dockerfile.is_empty() && bodies != [dockerfile] {
            return Err(format!("fenced {bodies:?}"));
        }
        for line in outside {
            let m = markup(line);
            if m.contains(['`', '<', '>', '[', ']']) {
                return Err(format!("markup {m:?} in {line:?}"));
            }
        }
        Ok(())
    }

    #[test]
    fn values_from_the_image_stay_on_their_line_inside_code_spans() {
        let hostile =
            "x\nRUN echo INJECTED > /pwned #`` ` |  <script>alert(1)</script> [l](x) \r\x1b[31m\u{202e}";
        for base in [false, true] {
            let r = report_with(hostile, base);
            let md = summary_markdown(&r);
            let benign = summary_markdown(&report_with("x", base));
            let dockerfile = if base { "" } else { &r.proposed_dockerfile };
            same_shape(&md, &benign, dockerfile).unwrap_or_else(|e| panic!("{e}:\n{md}"));
            assert!(!md.lines().any(|l| l.starts_with("RUN")), "{md}");
            // The values are shown (escaped), not dropped.
            let shown = md.lines().filter(|l| l.contains("INJECTED")).count();
            assert!(shown >= 20, "{shown}:\n{md}");
            assert!(md.contains(r#"`"/app/x\nRUN echo INJECTED"#), "{md}");
        }
        // The control: values written raw into code spans break the shape.
        let raw = |v: &str| format!("- shell: `/bin/{v}` ran\n| `/app/{v}` |\n");
        assert!(same_shape(&raw(hostile), &raw("x"), "").is_err());
        let one_line_raw = |v: &str| format!("- shell: `/bin/{v}` ran\n");
        let no_break = hostile.replace(['\n', '\r', '\x1b', '\u{202e}'], "");
        assert!(same_shape(&one_line_raw(&no_break), &one_line_raw("x"), "").is_err());
    }
}
