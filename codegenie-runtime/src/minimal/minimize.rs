//! `MinimalImageProbe`: builds the minimal image from the runtime
//! trace's evidence, proves it by re-running the same scenarios on it, and
//! reports what a distroless base would need. A `runs_last` probe that reads
//! the runtime trace's output through [`ProbeContext::output_of`].

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EngineError, KEEP_IMAGES};
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
            base,
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
                Some(&handover),
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
            (None, None) => ready.proposed_dockerfile,
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
        secret_env_keys: config
            .env
            .iter()
            .flatten()
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, v)| super::recipe::secret_looking(k, v))
            .map(|(k, _)| k.to_owned())
            .collect(),
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

/// The report for people, as markdown.
pub fn summary_markdown(r: &MinimalImageReport) -> String {
    let mb = |b: u64| b as f64 / 1_000_000.0;
    let mut s = format!(
        "# Minimal image\n\n\
         - minimal image: `{}` ({:.1} MB of {:.1} MB, {:.0}%), {} entries\n\
         - verified: **{}**\n\n\
         ## Scenarios\n\n| scenario | original | minimal | missing |\n|---|---|---|---|\n",
        r.minimal_image,
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
        let missing: Vec<&str> = c.missing.iter().map(String::as_str).collect();
        s.push_str(&one_line(&format!(
            "| {} | {} | {} | {} |",
            c.name,
            c.original,
            minimal,
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
            } => {
                format!("shell: `{path}` ran `{}` ({scenario})", argv.join(" "))
            }
            Blocker::ExtraBinary {
                path,
                argv,
                scenario,
            } => {
                format!(
                    "extra binary: `{path}` ran `{}` ({scenario})",
                    argv.join(" ")
                )
            }
            Blocker::RootUser { user } => format!(
                "root user: the image runs as `{}`",
                if user.is_empty() { "root" } else { user }
            ),
            Blocker::PrivilegedPort { address } => format!("privileged port: binds `{address}`"),
            Blocker::WriteOutsideTmp { path, files } => {
                format!("writes outside /tmp: {files} file(s) in `{path}`")
            }
            Blocker::TlsTrustUnobserved { detail } => format!("TLS trust unobserved: {detail}"),
            Blocker::Setuid { path, mode } => {
                format!("setuid/setgid file kept: `{path}` (mode {mode})")
            }
            Blocker::WriteNeedsRoot { path, user } => {
                format!("write needs root: `{path}` (the base's user `{user}` may not write it)")
            }
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
                "\n## Dockerfile\n\n- built and verified: `{path}` ({} lines): `docker build --network=none -f {path} .`\n- base: {} ({})\n- user: {}\n",
                r.proposed_dockerfile.lines().count(),
                code(&base.reference),
                if base.id.is_empty() { "empty" } else { &base.id },
                r.user.as_deref().map(code).unwrap_or_else(|| "the original's".to_owned()),
            ));
            if !r.held_by_base.is_empty() {
                s.push_str(&format!(
                    "- packages the base already holds (not added): {}\n",
                    r.held_by_base.join(", ")
                ));
            }
            for f in &r.refused {
                s.push_str(&format!(
                    "- not written: {} {}: {}\n",
                    f.instruction,
                    code(&f.what),
                    f.reason
                ));
            }
        }
        _ => {
            if let Some(b) = &r.suggested_base {
                s.push_str(&format!(
                    "\n## Base\n\n- fits: {} ({}): {}\n",
                    b.family,
                    b.images
                        .iter()
                        .map(|i| code(i))
                        .collect::<Vec<_>>()
                        .join(", "),
                    b.why
                ));
                if let Some(n) = &b.release_note {
                    s.push_str(&format!("- {n}\n"));
                }
            }
            s.push_str(&format!(
                "\n## Proposed Dockerfile (not built: run with `--base` for a verified one)\n\n```dockerfile\n{}```\n",
                r.proposed_dockerfile
            ));
        }
    }
    s
}

/// `line` with every control character escaped (`\n`, `\u{1b}`): one
/// markdown line, whatever a path or an argv held.
fn one_line(line: &str) -> String {
    line.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A value from the image or the evidence as a code span, or as a JSON
/// string when it holds a backtick or a control character (a newline
/// would start a line of its own).
fn code(v: &str) -> String {
    if v.chars().any(|c| c == '`' || c.is_control()) {
        serde_json::to_string(v).unwrap_or_default()
    } else {
        format!("`{v}`")
    }
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
            f.reason
        )));
        s.push('\n');
    }
    if !r.added.packages.is_empty() {
        s.push_str("\n| package | kind | files | bytes | why |\n|---|---|---|---|---|\n");
        for p in &r.added.packages {
            s.push_str(&one_line(&format!(
                "| {} {} | {:?} | {} | {} | {} |",
                p.name, p.version, p.kind, p.files, p.bytes, p.reason
            )));
            s.push('\n');
        }
    }
    if !r.added.trees.is_empty() {
        s.push_str("\n| app tree | files | bytes | why |\n|---|---|---|---|\n");
        for t in &r.added.trees {
            s.push_str(&one_line(&format!(
                "| {} | {} | {} | {} |",
                code(&t.path),
                t.files,
                t.bytes,
                t.reason
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
}
