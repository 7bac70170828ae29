//! The probe's output: the aggregated slice, the raw traces and the
//! files-read list as artifacts, and whether the output may be cached (not
//! when a passing fault of the environment explains a scenario's end).

use crate::probe::{Artifact, ArtifactSource, ProbeOutput};

use super::results::{ScenarioOutcome, ScenarioReason, ScenarioResult};
use super::sequence::ScenarioRun;
use super::slice::{self, AggregateInputs};

/// The slice's folder of raw artifacts, relative to the context folder.
pub const ARTIFACT_URI: &str = "raw";
/// The full files-read list artifact (`path` or `path<TAB>resolved` a line).
pub const FILES_READ_ARTIFACT: &str = "runtime-files-read.txt";
/// The full paths-probed list artifact.
pub const PATHS_PROBED_ARTIFACT: &str = "runtime-paths-probed.txt";

/// Collect the runs' traces as artifacts and build the output.
pub(crate) fn finish(
    runs: Vec<ScenarioRun>,
    digest: Option<String>,
    image_env: Vec<String>,
    mut warnings: Vec<String>,
) -> ProbeOutput {
    let mut results = Vec::new();
    let mut artifacts = Vec::new();
    for mut run in runs {
        warnings.append(&mut run.warnings);
        if let Some(file) = run.trace_file {
            let name = format!("runtime-trace-{}.strace", run.result.name);
            run.result.artifact = Some(format!("{ARTIFACT_URI}/{name}"));
            artifacts.push(Artifact {
                name,
                source: ArtifactSource::File(file),
            });
        }
        results.push(run.result);
    }
    let traced = results.iter().any(|r| r.trace.is_some());
    let inputs = AggregateInputs {
        built_image_digest: digest.clone(),
        last_traced_image_digest: digest.filter(|_| traced),
        artifact_uri: Some(ARTIFACT_URI.to_owned()),
        full_list_uri: Some(format!("{ARTIFACT_URI}/{FILES_READ_ARTIFACT}")),
        probed_list_uri: Some(format!("{ARTIFACT_URI}/{PATHS_PROBED_ARTIFACT}")),
        image_env,
    };
    output(&results, inputs, artifacts, warnings)
}

/// The probe output: the aggregated slice, the raw traces and the files-read list.
pub(crate) fn output(
    results: &[ScenarioResult],
    inputs: AggregateInputs,
    mut artifacts: Vec<Artifact>,
    warnings: Vec<String>,
) -> ProbeOutput {
    let has_list = inputs.full_list_uri.is_some();
    let slice = slice::aggregate(results, &inputs);
    if has_list {
        artifacts.push(Artifact {
            name: FILES_READ_ARTIFACT.to_owned(),
            source: ArtifactSource::Bytes(slice::files_read_full_list(results).into_bytes()),
        });
        artifacts.push(Artifact {
            name: PATHS_PROBED_ARTIFACT.to_owned(),
            source: ArtifactSource::Bytes(slice::paths_probed_full_list(results).into_bytes()),
        });
    }
    let confidence = slice.trace_coverage_confidence.envelope();
    let not_cacheable = environment_fault(results);
    match ProbeOutput::of(slice, confidence) {
        Ok(mut out) => {
            out.artifacts = artifacts;
            out.warnings = warnings;
            out.not_cacheable = not_cacheable;
            out
        }
        // The slice is plain data, so this does not happen; if it did, the
        // output says so and is never cached.
        Err(e) => {
            let why = format!("cannot serialise the runtime trace's slice: {e}");
            let mut out = ProbeOutput::new(serde_json::json!({ "error": why }), confidence);
            out.artifacts = artifacts;
            out.warnings = warnings;
            out.warnings.push(why.clone());
            out.not_cacheable = Some(why);
            out
        }
    }
}

/// The first outcome that a passing fault of the environment (not the
/// repository) explains: such an output is never reused from the cache.
fn environment_fault(results: &[ScenarioResult]) -> Option<String> {
    results.iter().find_map(|r| {
        let reason = match &r.outcome {
            ScenarioOutcome::Completed => return None,
            ScenarioOutcome::Failed(reason) | ScenarioOutcome::Skipped(reason) => reason,
        };
        match reason {
            // What the app itself did: worth reusing.
            ScenarioReason::ScenarioTimeout { .. }
            | ScenarioReason::UnexpectedExit { .. }
            | ScenarioReason::OutOfMemory { .. }
            | ScenarioReason::DiskLimit { .. }
            | ScenarioReason::TraceTruncated { .. } => None,
            // A build can fail for a passing reason (a `RUN` step's download);
            // rebuilding from the engine's layer cache is cheap.
            ScenarioReason::ImageBuildFailed { .. }
            | ScenarioReason::StraceUnavailable
            | ScenarioReason::AggregateTimeout
            | ScenarioReason::ImageBuildTimeout { .. }
            | ScenarioReason::ImageDigestUnresolved
            | ScenarioReason::EngineUnavailable { .. }
            | ScenarioReason::Cancelled
            | ScenarioReason::Other { .. } => Some(format!(
                "scenario `{}`: {}",
                r.name,
                serde_json::to_string(reason).unwrap_or_default()
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime_trace::sequence;

    #[test]
    fn only_what_the_app_did_is_cacheable() {
        use crate::runtime_trace::results::ScenarioReason as R;
        let with = |outcome| {
            let mut r = sequence::not_run("s", ScenarioOutcome::Completed);
            r.outcome = outcome;
            environment_fault(&[r])
        };
        assert_eq!(with(ScenarioOutcome::Completed), None);
        for app in [
            R::ScenarioTimeout { elapsed_ms: 1 },
            R::UnexpectedExit { code: 3 },
            R::OutOfMemory {
                limit: "512m".into(),
            },
        ] {
            assert_eq!(with(ScenarioOutcome::Failed(app.clone())), None, "{app:?}");
        }
        for env in [
            R::EngineUnavailable { detail: "x".into() },
            R::StraceUnavailable,
            R::AggregateTimeout,
            R::ImageDigestUnresolved,
            R::ImageBuildTimeout { after_ms: 1 },
            R::ImageBuildFailed {
                exit_code: Some(1),
                log_tail: String::new(),
            },
            R::Other {
                detail: "no space left on device".into(),
            },
        ] {
            let why = with(ScenarioOutcome::Skipped(env.clone()));
            assert!(
                why.is_some_and(|w| w.starts_with("scenario `s`")),
                "{env:?}"
            );
        }
    }
}
