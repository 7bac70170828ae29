//! Remembered builds (docs/architecture.md, "Remembered builds"): a build
//! whose inputs are all known is not started again to learn a digest the
//! engine already gave. The inputs are the build context (the tar
//! [`super::context`] sends, hashed), the build options, the labels, the
//! engine, and the id of every image the Dockerfile builds on. A hit costs a
//! walk of the context and one `image inspect` (the base images, and the
//! remembered image, which must still exist); anything unknowable (an
//! `ARG` in a `FROM`, a remote `ADD`) is never remembered, so such a
//! repository is built every run, as before.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{context, BuildNetwork, BuildOptions, Engine};

/// The memo, under the repository's cache folder.
pub(crate) const MEMO_FILE: &str = ".codegenie/cache/image-builds.json";
/// Entries kept: the newest, by when they were stored.
const MAX_ENTRIES: usize = 64;
/// Bumped when what a fingerprint covers changes.
const FORMAT: u32 = 1;

/// Why a build is not remembered (logged; the build then simply runs).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum NotRemembered {
    /// An image reference the Dockerfile names through a variable.
    #[error("line {line}: `{reference}` names an image through a build argument")]
    VariableReference {
        /// 1-based line of the instruction.
        line: usize,
        /// The reference as written.
        reference: String,
    },
    /// A source outside the context (a URL, a git repository).
    #[error("line {line}: `ADD {url}` fetches from outside the build context")]
    RemoteSource {
        /// 1-based line.
        line: usize,
        /// The source.
        url: String,
    },
    /// A Dockerfile feature whose inputs are not read here.
    #[error("line {line}: {what} is not followed by remembered builds")]
    Unsupported {
        /// 1-based line.
        line: usize,
        /// What it is.
        what: String,
    },
    /// The Dockerfile or the context could not be read.
    #[error("cannot read the build context")]
    Context(#[source] context::BuildContextError),
}

/// The images a Dockerfile builds on: `FROM` images and `--from=` images
/// that are not earlier stages (`scratch` is none).
pub(crate) fn base_images(dockerfile: &str) -> Result<Vec<String>, NotRemembered> {
    let mut stages: Vec<String> = Vec::new();
    let mut bases: Vec<String> = Vec::new();
    for (line, instruction) in instructions(dockerfile)? {
        let mut words = instruction.split_whitespace();
        let Some(keyword) = words.next() else {
            continue;
        };
        let words: Vec<&str> = words.collect();
        // A stage is named by its `AS` name or by its index.
        let is_stage = |r: &str, stages: &[String]| {
            stages.iter().any(|s| s.eq_ignore_ascii_case(r)) || r.parse::<usize>().is_ok()
        };
        let mut add = |reference: &str, stages: &[String]| -> Result<(), NotRemembered> {
            if reference.contains('$') {
                return Err(NotRemembered::VariableReference {
                    line,
                    reference: reference.to_owned(),
                });
            }
            if !reference.eq_ignore_ascii_case("scratch")
                && !is_stage(reference, stages)
                && !bases.iter().any(|b| b == reference)
            {
                bases.push(reference.to_owned());
            }
            Ok(())
        };
        match keyword.to_ascii_uppercase().as_str() {
            "FROM" => {
                let mut rest = words.iter().filter(|w| !w.starts_with("--"));
                let Some(image) = rest.next() else { continue };
                add(image, &stages)?;
                if rest.next().is_some_and(|w| w.eq_ignore_ascii_case("as")) {
                    if let Some(name) = rest.next() {
                        stages.push((*name).to_owned());
                    }
                }
            }
            k @ ("COPY" | "ADD") => {
                for w in words.iter().take_while(|w| w.starts_with("--")) {
                    if let Some(from) = w.strip_prefix("--from=") {
                        add(from, &stages)?;
                    }
                }
                if k == "ADD" {
                    for source in words.iter().filter(|w| !w.starts_with("--")) {
                        if source.contains("://") || source.starts_with("git@") {
                            return Err(NotRemembered::RemoteSource {
                                line,
                                url: (*source).to_owned(),
                            });
                        }
                    }
                }
            }
            "RUN" => {
                for w in words.iter().take_while(|w| w.starts_with("--")) {
                    if let Some(mount) = w.strip_prefix("--mount=") {
                        for opt in mount.split(',') {
                            if let Some(from) = opt.strip_prefix("from=") {
                                add(from, &stages)?;
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(bases)
}

/// The Dockerfile's instructions with their first line
/// ([`crate::dockerfile`]). A heredoc is not followed by remembered builds,
/// which stay with what they always read.
fn instructions(text: &str) -> Result<Vec<(usize, String)>, NotRemembered> {
    let parsed = crate::dockerfile::Dockerfile::parse(text);
    parsed
        .instructions
        .into_iter()
        .map(|x| {
            if x.heredoc {
                return Err(NotRemembered::Unsupported {
                    line: x.line,
                    what: "a heredoc".into(),
                });
            }
            Ok((x.line, format!("{} {}", x.keyword, x.args)))
        })
        .collect()
}

/// What a build of a repository is made of, known before building.
#[derive(Debug)]
pub(crate) struct BuildPlan {
    memo_path: PathBuf,
    fingerprint: String,
    bases: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct MemoFile {
    format: u32,
    entries: BTreeMap<String, MemoEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MemoEntry {
    image: String,
    bases: Vec<String>,
    stored_at_ms: u64,
}

impl BuildPlan {
    /// The plan of building `root` with `options` and `labels` on `engine`.
    pub(crate) fn of(
        engine: &Engine,
        root: &Path,
        options: &BuildOptions,
        labels: &[(String, String)],
    ) -> Result<BuildPlan, NotRemembered> {
        let dockerfile_path = root.join("Dockerfile");
        let dockerfile = std::fs::read_to_string(&dockerfile_path).map_err(|source| {
            NotRemembered::Context(context::BuildContextError::Io {
                path: dockerfile_path,
                source,
            })
        })?;
        let bases = base_images(&dockerfile)?;
        let mut h = blake3::Hasher::new();
        let mut part = |b: &[u8]| {
            h.update(&(b.len() as u64).to_le_bytes());
            h.update(b);
        };
        part(format!("codegenie image build {FORMAT}").as_bytes());
        let context = context::context_digest(root).map_err(NotRemembered::Context)?;
        part(context.as_bytes());
        part(match options.network {
            BuildNetwork::Default => b"network=default",
            BuildNetwork::None => b"network=none",
        });
        for (k, v) in labels {
            part(k.as_bytes());
            part(v.as_bytes());
        }
        part(format!("{:?}", engine.program).as_bytes());
        part(format!("{:?}", engine.endpoint).as_bytes());
        // An ambient endpoint is what the environment names.
        for var in ["DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG"] {
            part(std::env::var(var).unwrap_or_default().as_bytes());
        }
        Ok(BuildPlan {
            memo_path: root.join(MEMO_FILE),
            fingerprint: h.finalize().to_hex().to_string(),
            bases,
        })
    }

    /// The image remembered for this plan, if its base images are the same
    /// ones and it still exists.
    pub(crate) fn recall(&self, engine: &Engine) -> Option<String> {
        let entry = read_memo(&self.memo_path)
            .entries
            .remove(&self.fingerprint)?;
        let mut wanted = self.bases.clone();
        wanted.push(entry.image.clone());
        match engine.image_ids(&wanted) {
            Ok(Some(ids))
                if ids[..self.bases.len()] == entry.bases[..]
                    && ids.last() == Some(&entry.image) =>
            {
                Some(entry.image)
            }
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(error = %crate::errors::error_chain(&e), "cannot check a remembered build");
                None
            }
        }
    }

    /// Remember that this plan built `image` (a failure only costs the next
    /// run a build).
    pub(crate) fn remember(&self, engine: &Engine, image: &str) {
        let bases = match engine.image_ids(&self.bases) {
            Ok(Some(ids)) => ids,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %crate::errors::error_chain(&e), "cannot read the base images of a build");
                return;
            }
        };
        let mut memo = read_memo(&self.memo_path);
        memo.format = FORMAT;
        memo.entries.insert(
            self.fingerprint.clone(),
            MemoEntry {
                image: image.to_owned(),
                bases,
                stored_at_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
            },
        );
        if memo.entries.len() > MAX_ENTRIES {
            let mut by_age: Vec<(u64, String)> = memo
                .entries
                .iter()
                .map(|(k, e)| (e.stored_at_ms, k.clone()))
                .collect();
            by_age.sort();
            let excess = memo.entries.len() - MAX_ENTRIES;
            for (_, k) in by_age.into_iter().take(excess) {
                memo.entries.remove(&k);
            }
        }
        let written = crate::atomic_file::write_atomically(&self.memo_path, |w| {
            serde_json::to_writer(w, &memo).map_err(std::io::Error::other)
        });
        if let Err(e) = written {
            tracing::warn!(error = %crate::errors::error_chain(&e), "cannot remember the build");
        }
    }
}

/// The memo; unreadable or of another format, it is empty (it is only a
/// shortcut: an empty memo means a build).
fn read_memo(path: &Path) -> MemoFile {
    let memo: MemoFile = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if memo.format == FORMAT {
        memo
    } else {
        MemoFile::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_are_from_images_that_are_not_stages() {
        let df = "# syntax=docker/dockerfile:1\nFROM node:20 AS build\nRUN --mount=type=cache,target=/r \\\n    npm ci\nFROM build AS test\nFROM --platform=linux/amd64 distroless/nodejs20\nCOPY --from=build /app /app\nCOPY --from=0 /x /x\nCOPY --from=tools:1 /bin/t /bin/t\nFROM scratch\n";
        assert_eq!(
            base_images(df).unwrap(),
            ["node:20", "distroless/nodejs20", "tools:1"]
        );
    }

    #[test]
    fn unknowable_inputs_are_not_remembered() {
        assert!(matches!(
            base_images("ARG BASE=node\nFROM ${BASE}\n"),
            Err(NotRemembered::VariableReference { line: 2, .. })
        ));
        assert!(matches!(
            base_images("FROM scratch\nADD https://127.0.0.1/x /x\n"),
            Err(NotRemembered::RemoteSource { line: 2, .. })
        ));
        // The escape directive is followed: a backtick continues the line.
        assert_eq!(
            base_images("# escape=`\nFROM `\n  node:20 AS b\nFROM b\n").unwrap(),
            ["node:20"]
        );
        assert!(matches!(
            base_images("FROM scratch\nCOPY <<EOF /x\nhi\nEOF\n"),
            Err(NotRemembered::Unsupported { line: 2, .. })
        ));
    }
}
