//! CI reports (docs/architecture.md, "CI reports"): the scenarios as JUnit
//! XML ([`junit`]) and the distroless blockers as SARIF 2.1.0 located on
//! the Dockerfile lines that cause them ([`sarif`]), made from the typed
//! results of a trace, a minimize run or a portfolio.
//!
//! Every report goes to disk through [`write_report`]: serialised, redacted
//! on the serialised bytes, read back to prove the redaction left it well
//! formed, then written atomically. [`check_writable`] asks, before any
//! work, whether the file could be written there.

use std::path::{Path, PathBuf};

use crate::atomic_file::{check_writable as probe_dir, write_atomically, AtomicWriteError};
use crate::redact::Redactor;

pub mod junit;
pub mod sarif;

/// The two formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReportFormat {
    /// JUnit XML.
    Junit,
    /// SARIF 2.1.0 JSON.
    Sarif,
}

impl ReportFormat {
    /// `JUnit` or `SARIF`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportFormat::Junit => "JUnit",
            ReportFormat::Sarif => "SARIF",
        }
    }
}

/// A CI report could not be made or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The file cannot be written where it was asked for.
    #[error("the {} report cannot be written to {}", format.as_str(), path.display())]
    Unwritable {
        /// Which report.
        format: ReportFormat,
        /// The path given.
        path: PathBuf,
        /// What the filesystem said.
        #[source]
        source: AtomicWriteError,
    },
    /// The JUnit serializer refused the report.
    #[error("cannot serialise the JUnit report")]
    Junit(#[source] quick_junit::SerializeError),
    /// The SARIF log could not be serialised.
    #[error("cannot serialise the SARIF report")]
    Sarif(#[source] serde_json::Error),
    /// Redaction left the serialised report unreadable, so it was not written.
    #[error("the {} report for {} does not read back after redaction ({detail}); it was not written", format.as_str(), path.display())]
    Malformed {
        /// Which report.
        format: ReportFormat,
        /// Where it was going.
        path: PathBuf,
        /// What the reader said.
        detail: String,
    },
}

/// Whether a `format` report could be written to `path` now (its folder
/// exists, it is not a folder, a file can be created beside it), leaving
/// nothing behind.
pub fn check_writable(format: ReportFormat, path: &Path) -> Result<(), ReportError> {
    probe_dir(path).map_err(|source| ReportError::Unwritable {
        format,
        path: path.to_owned(),
        source,
    })
}

/// Redact `bytes` (a serialised `format` report), check that the result
/// still reads as that format, and write it to `path` atomically. Returns
/// the number of redactions.
pub fn write_report(format: ReportFormat, path: &Path, bytes: &[u8]) -> Result<u64, ReportError> {
    let mut redactor = Redactor::new();
    let clean = redactor.redact_bytes(bytes);
    let readable = match format {
        ReportFormat::Junit => std::str::from_utf8(&clean)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                quick_junit::Report::deserialize_from_str(s)
                    .map(drop)
                    .map_err(|e| e.to_string())
            }),
        ReportFormat::Sarif => serde_json::from_slice::<serde_json::Value>(&clean)
            .map(drop)
            .map_err(|e| e.to_string()),
    };
    if let Err(detail) = readable {
        return Err(ReportError::Malformed {
            format,
            path: path.to_owned(),
            detail,
        });
    }
    write_atomically(path, |w| w.write_all(&clean)).map_err(|source| ReportError::Unwritable {
        format,
        path: path.to_owned(),
        source,
    })?;
    Ok(redactor.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_before_the_bytes_reach_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sarif");
        let token = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB";
        let log = serde_json::json!({ "message": format!("argv: [\"curl\",\"-H\",\"Authorization: token {token}\"]") });
        let n = write_report(
            ReportFormat::Sarif,
            &path,
            serde_json::to_string(&log).unwrap().as_bytes(),
        )
        .unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(n >= 1, "{written}");
        assert!(!written.contains(token), "{written}");
        serde_json::from_str::<serde_json::Value>(&written).unwrap();
        // Control: the same bytes as they were held the token.
        assert!(serde_json::to_string(&log).unwrap().contains(token));
    }

    #[test]
    fn a_report_that_does_not_read_back_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.xml");
        let e = write_report(ReportFormat::Junit, &path, b"<testsuites><testsuite").unwrap_err();
        assert!(matches!(e, ReportError::Malformed { .. }), "{e}");
        assert!(!path.exists());
    }
}
