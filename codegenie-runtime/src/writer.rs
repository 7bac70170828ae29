//! The writer: the only path from probe outputs to disk. Every file is
//! redacted, then written atomically (temp file + rename), so a partial file
//! never looks complete.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::atomic_file::{write_atomically, AtomicWriteError};
use crate::probe::{ArtifactSource, Confidence};
use crate::record::{ProbeRecord, ProbeStatus};
use crate::redact::{self, Redactor};

/// Why something could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// An I/O error on a path.
    #[error("cannot write {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A state folder leads out of the repository.
    #[error(transparent)]
    StateDir(#[from] crate::state_dir::StateDirError),
    /// An artifact name that would escape the `raw/` folder.
    #[error("artifact name `{0}` is not a plain file name")]
    BadArtifactName(String),
    /// The slice could not be serialised.
    #[error("cannot serialise the output of `{probe}`")]
    Json {
        /// The probe.
        probe: String,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
}

impl From<AtomicWriteError> for WriteError {
    fn from(e: AtomicWriteError) -> Self {
        WriteError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

/// Envelope metadata written beside a probe's slice, under `_meta`.
#[derive(Debug, Clone, Serialize)]
pub struct OutputMeta<'a> {
    /// Probe name.
    pub probe: &'a str,
    /// `ran` or `cache_hit`.
    pub status: &'static str,
    /// Envelope confidence.
    pub confidence: Confidence,
    /// The cache key, if one was computed.
    pub cache_key: Option<&'a str>,
    /// Warnings from the probe and coordinator.
    pub warnings: Vec<String>,
    /// Artifact paths relative to the context folder.
    pub artifacts: Vec<String>,
    /// How many secrets were redacted in this output and its artifacts.
    pub redactions: u64,
    /// Unix time (seconds) of the write.
    pub written_at: u64,
}

/// What was written for one probe.
#[derive(Debug, Clone)]
pub struct Written {
    /// The JSON file.
    pub json: PathBuf,
    /// The artifacts.
    pub artifacts: Vec<PathBuf>,
    /// Secrets redacted.
    pub redactions: u64,
}

/// Writes into `<repo>/.codegenie/context/`.
#[derive(Debug, Clone)]
pub struct Writer {
    context_dir: PathBuf,
}

impl Writer {
    /// A writer for the context folder of the repository at `repo_root`.
    pub fn new(repo_root: &Path) -> Self {
        Writer {
            context_dir: repo_root.join(".codegenie").join("context"),
        }
    }

    /// The context folder.
    pub fn context_dir(&self) -> &Path {
        &self.context_dir
    }

    /// Write a probe record that has an output; records without one write nothing.
    pub fn write_record(&self, record: &ProbeRecord) -> Result<Option<Written>, WriteError> {
        let Some(out) = &record.output else {
            return Ok(None);
        };
        if let Some(root) = self.context_dir.parent().and_then(Path::parent) {
            crate::state_dir::check_state_dirs(root)?;
        }
        let status = match record.status {
            ProbeStatus::CacheHit => "cache_hit",
            _ => "ran",
        };
        let raw_dir = self.context_dir.join("raw");
        let json_path = self.context_dir.join(format!("{}.json", record.name));
        // The artifacts of the previous write, read before it is replaced:
        // those this output does not have again are removed after it, so
        // `raw/` reflects the last run only.
        let previous = previous_artifacts(&json_path);
        let mut redactions = 0u64;
        let mut artifact_paths = Vec::new();
        let mut artifact_names = Vec::new();
        for a in &out.artifacts {
            if a.name.is_empty() || a.name.contains('/') || a.name == "." || a.name == ".." {
                return Err(WriteError::BadArtifactName(a.name.clone()));
            }
        }
        for a in &out.artifacts {
            let dest = raw_dir.join(&a.name);
            let written = match &a.source {
                ArtifactSource::Bytes(b) => {
                    write_atomically(&dest, |w| redact::redact_stream(&mut &b[..], w))
                        .map_err(WriteError::from)
                }
                ArtifactSource::File(src) => std::fs::File::open(src)
                    .map_err(|e| io(src, e))
                    .and_then(|f| {
                        let mut r = std::io::BufReader::new(f);
                        write_atomically(&dest, |w| redact::redact_stream(&mut r, w))
                            .map_err(WriteError::from)
                    }),
            };
            match written {
                Ok(n) => redactions += n,
                Err(e) => {
                    // The output is now a mix of old and new files: remove the
                    // old JSON and this attempt's artifacts so nothing stale
                    // looks complete.
                    let _ = std::fs::remove_file(&json_path);
                    for p in &artifact_paths {
                        let _ = std::fs::remove_file(p);
                    }
                    return Err(e);
                }
            }
            artifact_names.push(format!("raw/{}", a.name));
            artifact_paths.push(dest);
        }
        let mut slice = out.schema_slice.clone();
        let mut red = Redactor::new();
        red.redact_json(&mut slice);
        let mut warnings = out.warnings.clone();
        warnings.extend(record.warnings.iter().cloned());
        for w in &mut warnings {
            *w = red.redact_str(w);
        }
        // Slice and warnings are counted by `red`; artifacts by their streams.
        redactions += red.count();
        let meta = OutputMeta {
            probe: record.name,
            status,
            confidence: out.confidence,
            cache_key: record.cache_key.as_deref(),
            warnings,
            artifacts: artifact_names,
            redactions,
            written_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        let doc = match slice {
            serde_json::Value::Object(mut map) => {
                map.insert(
                    "_meta".to_owned(),
                    serde_json::to_value(&meta).map_err(|e| json_err(record.name, e))?,
                );
                serde_json::Value::Object(map)
            }
            other => serde_json::json!({ "value": other, "_meta": meta }),
        };
        let bytes = serde_json::to_vec_pretty(&doc).map_err(|e| json_err(record.name, e))?;
        write_atomically(&json_path, |w| w.write_all(&bytes).map(|_| 0))?;
        for old in previous {
            if !meta.artifacts.contains(&old) {
                let path = self.context_dir.join(&old);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&path, e)),
                }
            }
        }
        Ok(Some(Written {
            json: json_path,
            artifacts: artifact_paths,
            redactions: meta.redactions,
        }))
    }
}

/// The `raw/<name>` artifacts listed in the `_meta` of the JSON at `path`;
/// none when there is no readable JSON. Only plain names under `raw/` count,
/// so an edited file can never make the writer remove anything else.
fn previous_artifacts(path: &Path) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Vec::new();
    };
    doc["_meta"]["artifacts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .filter(|s| {
                    s.strip_prefix("raw/")
                        .is_some_and(|n| !n.is_empty() && !n.contains('/') && n != "." && n != "..")
                })
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn json_err(probe: &str, source: serde_json::Error) -> WriteError {
    WriteError::Json {
        probe: probe.to_owned(),
        source,
    }
}

fn io(path: &Path, source: std::io::Error) -> WriteError {
    WriteError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Artifact, ProbeOutput};

    fn record(out: ProbeOutput) -> ProbeRecord {
        ProbeRecord {
            scratch: None,
            name: "demo",
            status: ProbeStatus::Ran,
            duration_ms: 1,
            cache_key: Some("abc".into()),
            output: Some(out),
            warnings: vec![],
        }
    }

    #[test]
    fn artifacts_of_the_previous_write_that_are_gone_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let w = Writer::new(dir.path());
        let with = |names: &[&str]| {
            let mut out = ProbeOutput::new(serde_json::json!({}), Confidence::High);
            out.artifacts = names
                .iter()
                .map(|n| Artifact {
                    name: (*n).into(),
                    source: ArtifactSource::Bytes(b"x".to_vec()),
                })
                .collect();
            record(out)
        };
        let raw = dir.path().join(".codegenie/context/raw");
        std::fs::create_dir_all(&raw).unwrap();
        std::fs::write(raw.join("not-ours.txt"), "kept").unwrap();
        w.write_record(&with(&["old.strace", "both.txt"])).unwrap();
        assert!(raw.join("old.strace").is_file());
        w.write_record(&with(&["new.strace", "both.txt"])).unwrap();
        assert!(!raw.join("old.strace").exists(), "a stale artifact stays");
        assert!(raw.join("new.strace").is_file() && raw.join("both.txt").is_file());
        // Files the writer did not list are never touched.
        assert!(raw.join("not-ours.txt").is_file());
    }

    #[test]
    fn writes_slice_meta_and_redacted_artifacts() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("trace.txt");
        std::fs::write(
            &big,
            "execve(\"/app\", [\"app\", \"--password=hunter2\"]) = 0\n",
        )
        .unwrap();
        let mut out = ProbeOutput::new(
            serde_json::json!({"env": ["AWS=AKIAIOSFODNN7EXAMPLE"], "n": 2}),
            Confidence::Medium,
        );
        out.artifacts = vec![
            Artifact {
                name: "a.txt".into(),
                source: ArtifactSource::Bytes(b"token=abc123\n".to_vec()),
            },
            Artifact {
                name: "trace.strace".into(),
                source: ArtifactSource::File(big),
            },
        ];
        let w = Writer::new(dir.path());
        let written = w.write_record(&record(out)).unwrap().unwrap();
        assert_eq!(written.redactions, 3);
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&written.json).unwrap()).unwrap();
        assert_eq!(doc["n"], 2);
        assert_eq!(doc["env"][0], "AWS=[REDACTED:aws-access-key-id]");
        assert_eq!(doc["_meta"]["redactions"], 3);
        assert_eq!(
            doc["_meta"]["artifacts"],
            serde_json::json!(["raw/a.txt", "raw/trace.strace"])
        );
        let raw = std::fs::read_to_string(dir.path().join(".codegenie/context/raw/trace.strace"))
            .unwrap();
        assert!(
            !raw.contains("hunter2") && raw.contains("[REDACTED:password]"),
            "{raw}"
        );
        // No temp files left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join(".codegenie/context"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn artifact_names_cannot_escape_raw() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = ProbeOutput::new(serde_json::json!({}), Confidence::High);
        out.artifacts = vec![Artifact {
            name: "../evil".into(),
            source: ArtifactSource::Bytes(vec![]),
        }];
        let err = Writer::new(dir.path())
            .write_record(&record(out))
            .unwrap_err();
        assert!(matches!(err, WriteError::BadArtifactName(n) if n == "../evil"));
    }

    #[test]
    fn failed_fill_leaves_the_old_file_intact() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.json");
        std::fs::write(&dest, "old").unwrap();
        let err = write_atomically(&dest, |w| {
            w.write_all(b"partial")?;
            Err::<(), _>(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(crate::errors::error_chain(&err).contains("disk full"));
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
