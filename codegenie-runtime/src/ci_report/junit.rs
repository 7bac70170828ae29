//! Scenarios as JUnit XML, serialised with `quick-junit` (as nextest does):
//! one `<testsuite>` per repository (for `minimize`, one per image:
//! original and minimal), one `<testcase name="<scenario>">` per scenario
//! with its time, `<failure message=...>` with the reason of a failed one,
//! `<skipped/>` for a skipped one.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::minimal::minimize::MinimalImageReport;
use crate::minimal::verify::ScenarioComparison;
use crate::portfolio::report::{FleetReport, MinimizeOutcome, RepoStatus, ScenarioLine};
use crate::runtime_trace::results::{ScenarioOutcome, ScenarioReason};
use crate::runtime_trace::RuntimeTraceSlice;

use super::ReportError;

/// The name of the whole report (`<testsuites name=...>`).
pub const REPORT_NAME: &str = "codegenie";

/// How one scenario ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseStatus {
    /// It completed.
    Passed,
    /// It started and did not complete.
    Failed {
        /// Why, as a sentence (`message=`).
        message: String,
        /// The reason's kind (`type=`), when typed (`unexpected_exit`).
        kind: Option<String>,
    },
    /// It never started.
    Skipped {
        /// Why.
        message: String,
    },
}

/// One scenario: a `<testcase>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The scenario's name.
    pub name: String,
    /// Its wall-clock time, when known.
    pub time: Option<Duration>,
    /// How it ended.
    pub status: CaseStatus,
}

/// One repository (or one image of it): a `<testsuite>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suite {
    /// The repository as the user named it, with the image for `minimize`.
    pub name: String,
    /// Its scenarios, in run order.
    pub cases: Vec<Case>,
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// The JSON name of a reason (`scenario_timeout`), for `type=`.
fn reason_kind(r: &ScenarioReason) -> Option<String> {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.get("reason")?.as_str().map(str::to_owned))
}

/// The case of a scenario with a typed outcome.
fn case(name: &str, outcome: &ScenarioOutcome, wall_clock_ms: u64) -> Case {
    let status = match outcome {
        ScenarioOutcome::Completed => CaseStatus::Passed,
        ScenarioOutcome::Failed(r) => CaseStatus::Failed {
            message: r.to_string(),
            kind: reason_kind(r),
        },
        ScenarioOutcome::Skipped(r) => CaseStatus::Skipped {
            message: r.to_string(),
        },
    };
    Case {
        name: name.to_owned(),
        time: Some(ms(wall_clock_ms)),
        status,
    }
}

/// The case of a scenario known by its outcome's name (`completed`,
/// `failed`, `skipped`, `absent`) and a sentence.
fn case_of_words(
    name: &str,
    outcome: &str,
    detail: Option<&str>,
    time: Option<u64>,
    absent: &str,
) -> Case {
    let status = match outcome {
        "completed" => CaseStatus::Passed,
        "skipped" => CaseStatus::Skipped {
            message: detail.unwrap_or("skipped").to_owned(),
        },
        "absent" => CaseStatus::Skipped {
            message: absent.to_owned(),
        },
        // `failed`, and anything a newer writer adds: not a pass.
        other => CaseStatus::Failed {
            message: detail.unwrap_or(other).to_owned(),
            kind: None,
        },
    };
    Case {
        name: name.to_owned(),
        time: time.map(ms),
        status,
    }
}

/// The suite of a runtime trace of the repository named `name`.
pub fn trace_suite(name: &str, slice: &RuntimeTraceSlice) -> Suite {
    Suite {
        name: name.to_owned(),
        cases: slice
            .scenarios
            .iter()
            .map(|s| case(&s.name, &s.outcome, s.wall_clock_ms))
            .collect(),
    }
}

/// The suite of a probe that failed before any scenario had a result: one
/// case, named after the probe, failing with `message`.
pub fn probe_failure_suite(name: &str, probe: &str, message: &str) -> Suite {
    Suite {
        name: name.to_owned(),
        cases: vec![Case {
            name: probe.to_owned(),
            time: None,
            status: CaseStatus::Failed {
                message: message.to_owned(),
                kind: Some("probe_failed".to_owned()),
            },
        }],
    }
}

/// The two suites of `codegenie minimize` on the repository named `name`:
/// `<name> (original image)` and `<name> (minimal image)`, each with the
/// traced scenarios and then the extra verification scenarios.
pub fn minimize_suites(name: &str, r: &MinimalImageReport) -> [Suite; 2] {
    let all: Vec<&ScenarioComparison> = r
        .scenarios
        .iter()
        .chain(r.verify_with.iter().flat_map(|v| &v.scenarios))
        .collect();
    let original = all
        .iter()
        .map(|c| {
            case_of_words(
                &c.name,
                &c.original,
                c.original_detail.as_deref(),
                c.original_wall_clock_ms,
                "it did not run on the original image",
            )
        })
        .collect();
    let minimal = minimal_cases(all.iter().copied());
    [
        Suite {
            name: format!("{name} (original image)"),
            cases: original,
        },
        Suite {
            name: format!("{name} (minimal image)"),
            cases: minimal,
        },
    ]
}

/// The minimal image's cases: each scenario's outcome there, and a failure
/// where it completed yet lacked a path the original found.
fn minimal_cases<'a>(all: impl Iterator<Item = &'a ScenarioComparison>) -> Vec<Case> {
    all.map(|c| {
        let mut case = case_of_words(
            &c.name,
            &c.minimal,
            c.minimal_detail.as_deref(),
            c.minimal_wall_clock_ms,
            "it did not run on the minimal image",
        );
        // A path the original found and the minimal image lacked fails
        // the verification even when the scenario's steps passed.
        if case.status == CaseStatus::Passed && !c.missing.is_empty() {
            let names: Vec<&String> = c.missing.iter().collect();
            case.status = CaseStatus::Failed {
                message: format!(
                    "the minimal image lacks paths the original found: {}",
                    serde_json::to_string(&names).unwrap_or_default()
                ),
                kind: Some("missing_paths".to_owned()),
            };
        }
        case
    })
    .collect()
}

/// One suite per repository of a portfolio, in manifest order, named by
/// its path in the manifest; a repository minimized in the run also gets
/// its minimal image's suite, as `codegenie minimize` writes it
/// ([`minimize_suites`]). A repository that failed before any scenario had
/// a result has one failing case, `trace`, with its error.
pub fn fleet_suites(report: &FleetReport) -> Vec<Suite> {
    let mut suites = Vec::new();
    for r in &report.repositories {
        if r.scenarios.is_empty() && r.status == RepoStatus::Failed {
            suites.push(probe_failure_suite(
                &r.path,
                "trace",
                r.error.as_deref().unwrap_or("the repository failed"),
            ));
            continue;
        }
        suites.push(Suite {
            name: r.path.clone(),
            cases: r.scenarios.iter().map(line_case).collect(),
        });
        if let MinimizeOutcome::Done(m) = &r.minimize {
            if !m.scenarios.is_empty() {
                suites.push(Suite {
                    name: format!("{} (minimal image)", r.path),
                    cases: minimal_cases(m.scenarios.iter()),
                });
            }
        }
    }
    suites
}

fn line_case(l: &ScenarioLine) -> Case {
    case_of_words(
        &l.name,
        &l.outcome,
        l.reason.as_deref(),
        l.wall_clock_ms,
        "it did not run",
    )
}

/// The JUnit XML of `suites`.
pub fn to_xml(suites: &[Suite]) -> Result<String, ReportError> {
    let mut report = Report::new(REPORT_NAME);
    for s in suites {
        let mut suite = TestSuite::new(s.name.as_str());
        let mut total = Duration::ZERO;
        let mut timed = false;
        for c in &s.cases {
            let status = match &c.status {
                CaseStatus::Passed => TestCaseStatus::success(),
                CaseStatus::Failed { message, kind } => {
                    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    st.set_message(message.as_str());
                    if let Some(k) = kind {
                        st.set_type(k.as_str());
                    }
                    st
                }
                CaseStatus::Skipped { message } => {
                    let mut st = TestCaseStatus::skipped();
                    st.set_message(message.as_str());
                    st
                }
            };
            let mut case = TestCase::new(c.name.as_str(), status);
            case.set_classname(s.name.as_str());
            if let Some(t) = c.time {
                case.set_time(t);
                total += t;
                timed = true;
            }
            suite.add_test_case(case);
        }
        if timed {
            suite.set_time(total);
        }
        report.add_test_suite(suite);
    }
    let mut xml = report.to_string().map_err(ReportError::Junit)?;
    xml.push('\n');
    Ok(xml)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime_trace::results::ScenarioResult;
    use crate::runtime_trace::slice::{aggregate, AggregateInputs};

    fn slice(results: Vec<ScenarioResult>) -> RuntimeTraceSlice {
        aggregate(&results, &AggregateInputs::default())
    }

    fn timed(name: &str, outcome: ScenarioOutcome, ms: u64) -> ScenarioResult {
        let mut r = ScenarioResult::new(name, outcome);
        r.wall_clock_ms = ms;
        r
    }

    #[test]
    fn each_outcome_has_its_element() {
        let s = slice(vec![
            timed("startup", ScenarioOutcome::Completed, 1500),
            timed(
                "error_path",
                ScenarioOutcome::Failed(ScenarioReason::UnexpectedExit { code: 3 }),
                250,
            ),
            timed(
                "shutdown",
                ScenarioOutcome::Skipped(ScenarioReason::AggregateTimeout),
                0,
            ),
        ]);
        let xml = to_xml(&[trace_suite("svc & <co>", &s)]).unwrap();
        let back = Report::deserialize_from_str(&xml).unwrap();
        let suite = &back.test_suites[0];
        assert_eq!(suite.name.as_str(), "svc & <co>");
        assert_eq!((suite.tests, suite.failures, suite.skipped), (3, 1, 1));
        assert_eq!(suite.time, Some(Duration::from_millis(1750)));
        let cases = &suite.test_cases;
        assert_eq!(cases[0].name.as_str(), "startup");
        assert_eq!(cases[0].time, Some(Duration::from_millis(1500)));
        match &cases[1].status {
            TestCaseStatus::NonSuccess {
                kind, message, ty, ..
            } => {
                assert_eq!(*kind, NonSuccessKind::Failure);
                assert_eq!(
                    message.as_ref().unwrap().as_str(),
                    "the app exited unexpectedly with code 3"
                );
                assert_eq!(ty.as_ref().unwrap().as_str(), "unexpected_exit");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(cases[2].status, TestCaseStatus::Skipped { .. }));
        assert!(xml.contains("<failure message=\"the app exited unexpectedly with code 3\""));
    }

    #[test]
    fn a_missing_path_fails_the_minimal_case() {
        let r: MinimalImageReport = serde_json::from_value(serde_json::json!({
            "minimal_image": "m", "minimal_image_id": "i", "original_image": "o",
            "verified": false, "size_bytes": {"original": 2, "minimal": 1},
            "scenarios": [
                {"name": "startup", "original": "completed", "minimal": "completed",
                 "missing": ["/etc/tz"], "original_wall_clock_ms": 10, "minimal_wall_clock_ms": 9},
                {"name": "healthcheck", "original": "completed", "minimal": "absent"}
            ],
            "missing": ["/etc/tz"], "absent_from_original": [], "entries": 1, "blockers": [],
            "distroless_needs": {"libraries": [], "certs": [], "tzdata": false, "passwd": false},
            "proposed_dockerfile": ""
        }))
        .unwrap();
        let [o, m] = minimize_suites("svc", &r);
        assert_eq!(o.name, "svc (original image)");
        assert!(o.cases.iter().all(|c| c.status == CaseStatus::Passed));
        assert_eq!(o.cases[0].time, Some(Duration::from_millis(10)));
        assert!(
            matches!(&m.cases[0].status, CaseStatus::Failed { message, .. } if message.contains("/etc/tz"))
        );
        assert!(matches!(m.cases[1].status, CaseStatus::Skipped { .. }));
        // Control: without the missing path it passes.
        let mut ok = r.clone();
        ok.scenarios[0].missing.clear();
        assert_eq!(
            minimize_suites("svc", &ok)[1].cases[0].status,
            CaseStatus::Passed
        );
    }
}
