//! Proof by re-running: the same scenarios, with the same hardening and
//! tracing, on the original image and on the minimal one, compared scenario
//! by scenario (docs/architecture.md, "Minimal image").

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::runtime_trace::results::{ScenarioOutcome, ScenarioResult};
use crate::runtime_trace::RuntimeTraceSlice;

use super::EvidencePaths;

/// One scenario on both images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioComparison {
    /// The scenario.
    pub name: String,
    /// `completed`, `failed` or `skipped` on the original image.
    pub original: String,
    /// The same on the minimal image (`absent` when it did not run there).
    pub minimal: String,
    /// Why it did not complete on the minimal image, as a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimal_detail: Option<String>,
    /// Paths the original found that the minimal image lacked (ENOENT).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub missing: BTreeSet<String>,
    /// Paths the minimal image lacked that are not misses: the original
    /// also failed to find them in this scenario, or the app wrote them
    /// there itself (sqlite's `-journal`, `__pycache__/*.pyc`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub excused: BTreeSet<String>,
    /// Why it did not complete on the original image, as a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_detail: Option<String>,
    /// Its wall-clock time on the original image (absent in reports
    /// written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_wall_clock_ms: Option<u64>,
    /// Its wall-clock time on the minimal image, when it ran there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimal_wall_clock_ms: Option<u64>,
}

/// The comparison of every scenario.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Every scenario that completed on the original completed on the
    /// minimal image, with no path missing there that the original found.
    pub verified: bool,
    /// Scenario by scenario.
    pub scenarios: Vec<ScenarioComparison>,
    /// Every missing path, over all scenarios.
    pub missing: BTreeSet<String>,
}

fn kind(o: &ScenarioOutcome) -> &'static str {
    match o {
        ScenarioOutcome::Completed => "completed",
        ScenarioOutcome::Failed(_) => "failed",
        ScenarioOutcome::Skipped(_) => "skipped",
    }
}

fn detail(r: &ScenarioResult) -> Option<String> {
    match &r.outcome {
        ScenarioOutcome::Completed => None,
        ScenarioOutcome::Failed(why) | ScenarioOutcome::Skipped(why) => Some(why.to_string()),
    }
}

fn file_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Whether `path` is a shared library in one of the dynamic loader's
/// default search folders (`/lib`, `/usr/lib`, their `lib64` and
/// multiarch `<triplet>` folders): a name the loader may find in another
/// of them. A library an app opens by its own path (a plugin folder) has
/// no such second place.
fn in_loader_path(path: &str) -> bool {
    if !file_name(path).contains(".so") {
        return false;
    }
    let folder = path.rsplit_once('/').map_or("", |(d, _)| d);
    let folder = folder.strip_prefix("/usr").unwrap_or(folder);
    match folder {
        "/lib" | "/lib64" => true,
        _ => folder
            .strip_prefix("/lib/")
            .is_some_and(|t| !t.contains('/') && t.contains("-linux-")),
    }
}

/// Compare the scenarios of `original` with the same-named ones of
/// `minimal`. A path the minimal image lacked is missing when the original
/// found it, unless the original also failed to find it in the same
/// scenario (a lookup before a create, a search path), wrote it there (the
/// app creates it itself), or it is a shared library the minimal image's
/// loader mapped from another folder of its search path.
pub fn compare(original: &RuntimeTraceSlice, minimal: &RuntimeTraceSlice) -> Verification {
    let found = EvidencePaths::of(original).named;
    let mut v = Verification {
        verified: true,
        ..Verification::default()
    };
    for o in &original.scenarios {
        let m = minimal.scenarios.iter().find(|m| m.name == o.name);
        let written = o.trace.as_ref().map(|t| &t.files_written);
        // A library the loader found in another folder of its search path
        // (`/usr/lib/...` on a base whose `/lib` is a folder, not a link).
        let mapped: BTreeSet<&str> = m
            .and_then(|m| m.trace.as_ref())
            .map(|t| {
                t.shared_libs_loaded
                    .iter()
                    .filter(|l| in_loader_path(l))
                    .map(|l| file_name(l))
                    .collect()
            })
            .unwrap_or_default();
        let (excused, missing): (BTreeSet<String>, BTreeSet<String>) = m
            .map(|m| {
                m.missing
                    .intersection(&found)
                    .cloned()
                    .collect::<BTreeSet<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .partition(|p| {
                o.missing.contains(p)
                    || written.is_some_and(|w| w.contains(p))
                    || (in_loader_path(p) && mapped.contains(file_name(p)))
            });
        let completed_before = o.outcome == ScenarioOutcome::Completed;
        let completed_after = m.is_some_and(|m| m.outcome == ScenarioOutcome::Completed);
        if completed_before && (!completed_after || !missing.is_empty()) {
            v.verified = false;
        }
        v.missing.extend(missing.iter().cloned());
        v.scenarios.push(ScenarioComparison {
            name: o.name.clone(),
            original: kind(&o.outcome).to_owned(),
            minimal: m.map_or("absent", |m| kind(&m.outcome)).to_owned(),
            minimal_detail: m.and_then(detail),
            missing,
            excused,
            original_detail: detail(o),
            original_wall_clock_ms: Some(o.wall_clock_ms),
            minimal_wall_clock_ms: m.map(|m| m.wall_clock_ms),
        });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime_trace::results::ScenarioReason;
    use crate::runtime_trace::slice::{aggregate, AggregateInputs};
    use crate::strace::ParsedTrace;

    fn result(
        name: &str,
        outcome: ScenarioOutcome,
        read: &[&str],
        missing: &[&str],
    ) -> ScenarioResult {
        written(name, outcome, read, missing, &[])
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn written(
        name: &str,
        outcome: ScenarioOutcome,
        read: &[&str],
        missing: &[&str],
        written: &[&str],
    ) -> ScenarioResult {
        let mut r = crate::runtime_trace::results::ScenarioResult::new(name, outcome);
        r.trace = Some(ParsedTrace {
            files_read: set(read),
            files_written: set(written),
            ..Default::default()
        });
        r.missing = set(missing);
        r
    }

    #[test]
    fn a_library_the_loader_found_in_another_search_folder_is_not_a_miss() {
        let done = || ScenarioOutcome::Completed;
        let lib = "/lib/x86_64-linux-gnu/libz.so.1";
        let original = slice(vec![result("startup", done(), &[lib], &[])]);
        let on_base = |mapped: &[&str]| {
            let mut r = result("startup", done(), &[], &[lib]);
            r.trace.as_mut().unwrap().shared_libs_loaded = set(mapped);
            slice(vec![r])
        };
        let v = compare(
            &original,
            &on_base(&["/usr/lib/x86_64-linux-gnu/libz.so.1"]),
        );
        assert!(v.verified, "{v:#?}");
        assert_eq!(v.scenarios[0].excused, set(&[lib]));
        // The control: nothing of that name was mapped: a miss.
        let v = compare(
            &original,
            &on_base(&["/usr/lib/x86_64-linux-gnu/libc.so.6"]),
        );
        assert!(!v.verified);
        assert_eq!(v.missing, set(&[lib]));
        // A library opened by its own path has no other place to be found:
        // the same name mapped from the loader's folders does not excuse it.
        let plugin = "/app/plugins/libz.so.1";
        let original = slice(vec![result("startup", done(), &[plugin], &[])]);
        let mut r = result("startup", done(), &[], &[plugin]);
        r.trace.as_mut().unwrap().shared_libs_loaded =
            set(&["/usr/lib/x86_64-linux-gnu/libz.so.1"]);
        let v = compare(&original, &slice(vec![r]));
        assert!(!v.verified, "{v:#?}");
        assert_eq!(v.missing, set(&[plugin]));
        assert!(in_loader_path("/usr/lib64/libz.so"));
        assert!(in_loader_path("/lib/aarch64-linux-gnu/libc.so.6"));
        assert!(!in_loader_path("/usr/lib/x86_64-linux-gnu/gconv/UTF-16.so"));
        assert!(!in_loader_path("/lib/x86_64-linux-gnu/README"));
    }

    #[test]
    fn lookups_before_a_create_and_files_the_app_writes_are_not_misses() {
        let done = || ScenarioOutcome::Completed;
        // sqlite looks for its database and journal, then creates them;
        // Python finds no `.pyc` beside `app.py` and writes one.
        let sqlite = |missing: &[&str]| {
            written(
                "healthcheck",
                done(),
                &["/tmp/notes.db", "/tmp/notes.db-journal", "/app/app.py"],
                missing,
                &[
                    "/tmp/notes.db",
                    "/tmp/notes.db-journal",
                    "/app/__pycache__/app.cpython-311.pyc",
                ],
            )
        };
        let original = slice(vec![
            sqlite(&["/tmp/notes.db", "/tmp/notes.db-journal"]),
            // The pyc was written here but never looked for first.
            written(
                "startup",
                done(),
                &["/app/__pycache__/app.cpython-311.pyc"],
                &[],
                &["/app/__pycache__/app.cpython-311.pyc"],
            ),
        ]);
        let minimal = slice(vec![
            sqlite(&["/tmp/notes.db", "/tmp/notes.db-journal"]),
            result(
                "startup",
                done(),
                &[],
                &["/app/__pycache__/app.cpython-311.pyc"],
            ),
        ]);
        let v = compare(&original, &minimal);
        assert!(v.verified, "{v:#?}");
        assert!(v.missing.is_empty());
        assert_eq!(
            v.scenarios[0].excused,
            set(&["/tmp/notes.db", "/tmp/notes.db-journal"])
        );
        assert_eq!(
            v.scenarios[1].excused,
            set(&["/app/__pycache__/app.cpython-311.pyc"])
        );

        // Control: the same misses where the original found the files and
        // neither missed nor wrote them are misses.
        let original = slice(vec![
            result(
                "healthcheck",
                done(),
                &["/tmp/notes.db", "/tmp/notes.db-journal"],
                &[],
            ),
            result(
                "startup",
                done(),
                &["/app/__pycache__/app.cpython-311.pyc"],
                &[],
            ),
        ]);
        let v = compare(&original, &minimal);
        assert!(!v.verified);
        assert_eq!(
            v.missing,
            set(&[
                "/app/__pycache__/app.cpython-311.pyc",
                "/tmp/notes.db",
                "/tmp/notes.db-journal"
            ])
        );
        // Another scenario's misses excuse nothing here.
        let mut other = result("smoke_test", done(), &[], &["/app/lib/report.js"]);
        other.missing = set(&["/app/lib/report.js"]);
        let original = slice(vec![
            result("startup", done(), &["/app/lib/report.js"], &[]),
            other,
        ]);
        let minimal = slice(vec![
            result("startup", done(), &[], &["/app/lib/report.js"]),
            result("smoke_test", done(), &[], &["/app/lib/report.js"]),
        ]);
        let v = compare(&original, &minimal);
        assert!(!v.verified);
        assert_eq!(v.scenarios[0].missing, set(&["/app/lib/report.js"]));
        assert_eq!(v.scenarios[1].excused, set(&["/app/lib/report.js"]));
    }

    fn slice(results: Vec<ScenarioResult>) -> RuntimeTraceSlice {
        aggregate(&results, &AggregateInputs::default())
    }

    #[test]
    fn verified_only_when_every_completed_scenario_completes_without_new_gaps() {
        let done = || ScenarioOutcome::Completed;
        let original = slice(vec![
            result("startup", done(), &["/app/a.js"], &["/app/node_modules/x"]),
            result("healthcheck", done(), &["/app/b.js"], &[]),
        ]);
        // Same misses as before (module resolution): still verified.
        let same = slice(vec![
            result("startup", done(), &["/app/a.js"], &["/app/node_modules/x"]),
            result("healthcheck", done(), &["/app/b.js"], &[]),
        ]);
        assert!(compare(&original, &same).verified);

        // A path the original read is missing: not verified, and named.
        let gap = slice(vec![
            result("startup", done(), &["/app/a.js"], &[]),
            result("healthcheck", done(), &[], &["/app/b.js"]),
        ]);
        let v = compare(&original, &gap);
        assert!(!v.verified);
        assert_eq!(v.missing.iter().collect::<Vec<_>>(), ["/app/b.js"]);
        assert_eq!(v.scenarios[1].missing.len(), 1);

        // A scenario that fails on the minimal image.
        let failed = slice(vec![
            result("startup", done(), &[], &[]),
            result(
                "healthcheck",
                ScenarioOutcome::Failed(ScenarioReason::UnexpectedExit { code: 127 }),
                &[],
                &[],
            ),
        ]);
        let v = compare(&original, &failed);
        assert!(!v.verified);
        assert_eq!(v.scenarios[1].minimal, "failed");
        assert!(v.scenarios[1]
            .minimal_detail
            .as_deref()
            .unwrap()
            .contains("127"));
    }
}
