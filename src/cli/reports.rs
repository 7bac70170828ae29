//! `--junit FILE` and `--sarif FILE` (docs/architecture.md, "CI reports"):
//! [`ReportArgs::check`] runs first, so an unwritable path fails before any
//! container starts; the `write_*` functions run at the end, from the
//! command's typed results. Exit codes are the command's own.

use std::path::{Path, PathBuf};

use clap::Args;
use codegenie_runtime::ci_report::junit::{
    fleet_suites, minimize_suites, probe_failure_suite, to_xml, trace_suite, Suite,
};
use codegenie_runtime::ci_report::sarif::{
    fleet_findings, readiness_findings, to_json, to_sarif, RepoFindings,
};
use codegenie_runtime::ci_report::{check_writable, write_report, ReportFormat};
use codegenie_runtime::minimal::minimize::{MinimalImageReport, MINIMAL_IMAGE_PROBE};
use codegenie_runtime::portfolio::{FleetReport, Manifest};
use codegenie_runtime::runtime_trace::{RuntimeTraceSlice, PROBE_NAME};
use codegenie_runtime::{ProbeRecord, ProbeStatus};

use super::CliError;

/// The CI reports a command writes.
#[derive(Debug, Args, Default)]
pub struct ReportArgs {
    /// Also write the scenarios as JUnit XML to FILE (one suite per
    /// repository, per image for `minimize`).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also write the distroless blockers as SARIF 2.1.0 to FILE, each on
    /// the Dockerfile line that causes it.
    #[arg(long, value_name = "FILE")]
    pub sarif: Option<PathBuf>,
}

/// The CI report of `trace`: JUnit only.
#[derive(Debug, Args, Default)]
pub struct JunitArgs {
    /// Also write the scenarios as JUnit XML to FILE (one suite for the repository).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

fn check(junit: Option<&Path>, sarif: Option<&Path>) -> Result<(), CliError> {
    if let Some(p) = junit {
        check_writable(ReportFormat::Junit, p)?;
    }
    if let Some(p) = sarif {
        check_writable(ReportFormat::Sarif, p)?;
    }
    Ok(())
}

fn write_junit(path: &Path, suites: &[Suite]) -> Result<(), CliError> {
    let xml = to_xml(suites)?;
    write_report(ReportFormat::Junit, path, xml.as_bytes())?;
    tracing::info!("JUnit report written to {}", path.display());
    Ok(())
}

fn write_sarif(path: &Path, repos: &[RepoFindings]) -> Result<(), CliError> {
    let cwd = std::env::current_dir().ok();
    let log = to_json(&to_sarif(repos, cwd.as_deref()))?;
    write_report(ReportFormat::Sarif, path, log.as_bytes())?;
    tracing::info!("SARIF report written to {}", path.display());
    Ok(())
}

/// A record's typed slice, or why there is none.
fn slice_of(rec: &ProbeRecord) -> Result<RuntimeTraceSlice, String> {
    match (&rec.status, &rec.output) {
        (ProbeStatus::Ran | ProbeStatus::CacheHit, Some(out)) => {
            serde_json::from_value(out.schema_slice.clone())
                .map_err(|e| format!("the {} output does not have its schema: {e}", rec.name))
        }
        (status, _) => Err(status_text(status)),
    }
}

fn status_text(status: &ProbeStatus) -> String {
    match status {
        ProbeStatus::Failed { error } => format!("failed: {error}"),
        ProbeStatus::TimedOut { after_ms } => format!("timed out after {after_ms} ms"),
        ProbeStatus::Skipped { reason } => format!("skipped: {reason}"),
        _ => "gave no output".to_owned(),
    }
}

impl JunitArgs {
    /// Fails when the report could not be written (run it first).
    pub(crate) fn check(&self) -> Result<(), CliError> {
        check(self.junit.as_deref(), None)
    }

    /// The JUnit report of a trace of `repo` from its record: its
    /// scenarios, or one failing case when the probe failed. A skipped
    /// probe (nothing to trace) writes nothing: the command fails.
    pub(crate) fn write_trace(&self, repo: &Path, rec: &ProbeRecord) -> Result<(), CliError> {
        let Some(path) = &self.junit else {
            return Ok(());
        };
        if matches!(rec.status, ProbeStatus::Skipped { .. }) {
            return Ok(());
        }
        let name = repo.display().to_string();
        let suite = match slice_of(rec) {
            Ok(slice) => trace_suite(&name, &slice),
            Err(why) => probe_failure_suite(&name, PROBE_NAME, &super::redacted(&why)),
        };
        write_junit(path, &[suite])
    }
}

impl ReportArgs {
    /// Fails when a report could not be written (run it first).
    pub(crate) fn check(&self) -> Result<(), CliError> {
        check(self.junit.as_deref(), self.sarif.as_deref())
    }

    /// The reports of `minimize` on `repo` from its records: both images'
    /// suites and the blockers; when the minimal-image probe gave no report,
    /// the original image's suite and a failing readiness case, and no
    /// SARIF file (there are no blockers to tell).
    pub(crate) fn write_minimize(
        &self,
        repo: &Path,
        records: &[ProbeRecord],
    ) -> Result<(), CliError> {
        if self.junit.is_none() && self.sarif.is_none() {
            return Ok(());
        }
        let name = repo.display().to_string();
        let find = |n: &str| records.iter().find(|r| r.name == n);
        let readiness: Result<MinimalImageReport, String> = match find(MINIMAL_IMAGE_PROBE) {
            Some(rec) => match (&rec.status, &rec.output) {
                (ProbeStatus::Ran | ProbeStatus::CacheHit, Some(out)) => {
                    serde_json::from_value(out.schema_slice.clone()).map_err(|e| {
                        format!("the minimal-image report does not have its schema: {e}")
                    })
                }
                (status, _) => Err(status_text(status)),
            },
            None => Err("did not run".to_owned()),
        };
        if let Some(path) = &self.junit {
            let suites: Vec<Suite> = match &readiness {
                Ok(r) => minimize_suites(&name, r).into(),
                Err(why) => {
                    let why = super::redacted(why);
                    let mut out = Vec::new();
                    match find(PROBE_NAME).map(slice_of) {
                        Some(Ok(slice)) => {
                            out.push(trace_suite(&format!("{name} (original image)"), &slice))
                        }
                        Some(Err(trace_why)) => out.push(probe_failure_suite(
                            &format!("{name} (original image)"),
                            PROBE_NAME,
                            &super::redacted(&trace_why),
                        )),
                        None => {}
                    }
                    out.push(probe_failure_suite(
                        &format!("{name} (minimal image)"),
                        MINIMAL_IMAGE_PROBE,
                        &why,
                    ));
                    out
                }
            };
            write_junit(path, &suites)?;
        }
        if let Some(path) = &self.sarif {
            match &readiness {
                Ok(r) => write_sarif(
                    path,
                    &[RepoFindings::read(repo, readiness_findings(&r.blockers))],
                )?,
                Err(why) => eprintln!(
                    "warning: no SARIF report written: {MINIMAL_IMAGE_PROBE} {}",
                    super::redacted(why)
                ),
            }
        }
        Ok(())
    }

    /// The reports of a portfolio: one suite per repository, and every
    /// repository's blockers on its own Dockerfile.
    pub(crate) fn write_portfolio(
        &self,
        manifest: &Manifest,
        report: &FleetReport,
    ) -> Result<(), CliError> {
        if let Some(path) = &self.junit {
            write_junit(path, &fleet_suites(report))?;
        }
        if let Some(path) = &self.sarif {
            let dir = manifest.path.parent().unwrap_or(Path::new("."));
            let repos: Vec<RepoFindings> = report
                .repositories
                .iter()
                .filter(|r| !r.blockers.is_empty())
                .map(|r| RepoFindings::read(&dir.join(&r.path), fleet_findings(&r.blockers)))
                .collect();
            write_sarif(path, &repos)?;
        }
        Ok(())
    }
}
