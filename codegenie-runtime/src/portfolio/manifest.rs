//! The portfolio manifest (docs/architecture.md, "Portfolio"): engines with
//! their slots, repositories with an optional scenario file, and whether to
//! minimize. Every problem is a [`ManifestError`] naming the manifest and,
//! where there is one, the line: unknown fields, a missing repository or
//! scenario file, a malformed engine, no engine that answers.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::report::engine_detail;
use crate::engine::{
    ContextName, DockerHost, EndpointError, Engine, EngineEndpoint, EngineError, EngineKind,
};

/// The manifest schema version this build reads.
pub const MANIFEST_VERSION: u32 = 1;

/// The largest manifest read (a fleet of thousands fits in far less).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// A checked manifest: paths are absolute, every repository and scenario
/// file exists, every engine is well formed.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file.
    pub path: PathBuf,
    /// The engines, in manifest order.
    pub engines: Vec<EngineEntry>,
    /// The repositories, in manifest order.
    pub repositories: Vec<RepoEntry>,
    /// Whether each repository is also minimized after its trace.
    pub minimize: bool,
}

/// One engine of the manifest.
#[derive(Debug, Clone)]
pub struct EngineEntry {
    /// Where it is.
    pub endpoint: EngineEndpoint,
    /// How many repositories it runs at once.
    pub slots: NonZeroU32,
    /// The manifest line of the entry.
    pub line: Option<usize>,
}

/// One engine's answer to the ping when the portfolio starts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineAnswer {
    /// It answered.
    Up {
        /// Its server version.
        version: String,
    },
    /// It did not: it gets no repository in this run.
    Unreachable {
        /// What its client said, redacted as every engine error of the
        /// fleet report is.
        detail: String,
    },
}

/// The engines' answers when the portfolio starts, per engine in manifest
/// order; at least one answered (made only by [`Manifest::check_engines`]).
#[derive(Debug, Clone)]
pub struct EngineCheck {
    answers: Vec<EngineAnswer>,
}

impl EngineCheck {
    /// Each engine's answer, in manifest order.
    pub fn answers(&self) -> &[EngineAnswer] {
        &self.answers
    }

    /// What engine `i` (in manifest order) said when it did not answer;
    /// `None` when it answered.
    pub fn unreachable(&self, i: usize) -> Option<&str> {
        match self.answers.get(i) {
            Some(EngineAnswer::Unreachable { detail }) => Some(detail),
            _ => None,
        }
    }
}

/// One repository of the manifest.
#[derive(Debug, Clone)]
pub struct RepoEntry {
    /// The path as written (relative to the manifest's folder): the
    /// repository's name in reports and the journal.
    pub name: String,
    /// The absolute path.
    pub root: PathBuf,
    /// A scenario file used instead of the repository's own, absolute.
    pub scenarios: Option<PathBuf>,
    /// The manifest line of the entry.
    pub line: Option<usize>,
}

/// A manifest that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file cannot be read.
    #[error("cannot read the portfolio manifest {path}")]
    Read {
        /// The manifest.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not YAML, an unknown field, a wrong type or value, an empty list.
    #[error("{}: {message}", at(path, *line, *column))]
    Invalid {
        /// The manifest.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A repository path that is not a folder.
    #[error("{}: repository `{repo}` is not a folder at {}", at(path, *line, None), resolved.display())]
    MissingRepository {
        /// The manifest.
        path: PathBuf,
        /// The entry's line.
        line: Option<usize>,
        /// The path as written.
        repo: String,
        /// Where it was looked for.
        resolved: PathBuf,
        /// Why it is not usable.
        #[source]
        source: std::io::Error,
    },
    /// A repository folder without a Dockerfile (the filesystem root among
    /// them): refused before its files are ever walked or hashed.
    #[error("{}: repository `{repo}` at {} has no Dockerfile; a repository is a folder with a Dockerfile", at(path, *line, None), resolved.display())]
    NoDockerfile {
        /// The manifest.
        path: PathBuf,
        /// The entry's line.
        line: Option<usize>,
        /// The path as written.
        repo: String,
        /// The folder it names.
        resolved: PathBuf,
    },
    /// A repository that is the filesystem root: its fingerprint would hash
    /// the whole machine.
    #[error("{}: repository `{repo}` is the filesystem root; name the folder that holds the Dockerfile", at(path, *line, None))]
    FilesystemRoot {
        /// The manifest.
        path: PathBuf,
        /// The entry's line.
        line: Option<usize>,
        /// The path as written.
        repo: String,
    },
    /// A repository's scenario file that is not a file.
    #[error("{}: the scenario file `{file}` of repository `{repo}` is not a file at {}", at(path, *line, None), resolved.display())]
    MissingScenarios {
        /// The manifest.
        path: PathBuf,
        /// The entry's line.
        line: Option<usize>,
        /// The repository as written.
        repo: String,
        /// The scenario file as written.
        file: String,
        /// Where it was looked for.
        resolved: PathBuf,
        /// Why it is not usable.
        #[source]
        source: std::io::Error,
    },
    /// The same repository twice.
    #[error("{}: repository `{repo}` is listed twice (first at line {})", at(path, *line, None), first_line.map_or("?".to_owned(), |l| l.to_string()))]
    DuplicateRepository {
        /// The manifest.
        path: PathBuf,
        /// The second entry's line.
        line: Option<usize>,
        /// The path as written.
        repo: String,
        /// The first entry's line.
        first_line: Option<usize>,
    },
    /// An engine entry that names no usable endpoint.
    #[error("{}: bad engine", at(path, *line, None))]
    BadEngine {
        /// The manifest.
        path: PathBuf,
        /// The entry's line.
        line: Option<usize>,
        /// What is wrong with it.
        #[source]
        source: EndpointError,
    },
    /// The same engine twice (give it more slots instead).
    #[error("{}: engine {endpoint} is listed twice (first at line {}); give one entry more slots instead", at(path, *line, None), first_line.map_or("?".to_owned(), |l| l.to_string()))]
    DuplicateEngine {
        /// The manifest.
        path: PathBuf,
        /// The second entry's line.
        line: Option<usize>,
        /// The engine.
        endpoint: String,
        /// The first entry's line.
        first_line: Option<usize>,
    },
    /// No engine answers when the portfolio starts: the first one is named.
    #[error(
        "{}: engine {endpoint} does not answer{}",
        at(path, *line, None),
        if *others > 0 { " (nor does any other engine of the manifest)" } else { "" }
    )]
    UnreachableEngine {
        /// The manifest.
        path: PathBuf,
        /// The entry's line.
        line: Option<usize>,
        /// The engine.
        endpoint: String,
        /// The other engines of the manifest (none of which answers either).
        others: u32,
        /// What the engine client said.
        #[source]
        source: EngineError,
    },
}

fn at(path: &Path, line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", path.display()),
        (Some(l), None) => format!("{}:{l}", path.display()),
        _ => path.display().to_string(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    // Read only to be checked.
    #[serde(rename = "version", deserialize_with = "version_field")]
    _version: u32,
    #[serde(deserialize_with = "engines_field")]
    engines: Vec<RawEngine>,
    #[serde(deserialize_with = "repositories_field")]
    repositories: Vec<RawRepo>,
    #[serde(default)]
    minimize: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    host: Option<String>,
    context: Option<String>,
    tls_cert_path: Option<String>,
    slots: Option<NonZeroU32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepo {
    path: String,
    scenarios: Option<String>,
}

// Checked while the field is read, so errors carry the field's line.
fn version_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if v != MANIFEST_VERSION {
        return Err(serde::de::Error::custom(format!(
            "unsupported version {v}; expected {MANIFEST_VERSION}"
        )));
    }
    Ok(v)
}

fn engines_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<RawEngine>, D::Error> {
    non_empty(d, "engines")
}

fn repositories_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<RawRepo>, D::Error> {
    non_empty(d, "repositories")
}

fn non_empty<'de, D, T>(d: D, key: &str) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    let v = Vec::<T>::deserialize(d)?;
    if v.is_empty() {
        return Err(serde::de::Error::custom(format!(
            "`{key}` is empty; give at least one entry"
        )));
    }
    Ok(v)
}

impl Manifest {
    /// Read and check the manifest at `path` (repositories and scenario
    /// files must exist; engines are not contacted: see
    /// [`Manifest::check_engines`]).
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        use std::io::Read;
        let read = |source| ManifestError::Read {
            path: path.to_owned(),
            source,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .map_err(read)?
            .take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read)?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(ManifestError::Invalid {
                path: path.to_owned(),
                line: None,
                column: None,
                message: format!("the file is larger than {MAX_MANIFEST_BYTES} bytes"),
            });
        }
        let text = String::from_utf8(bytes)
            .map_err(|e| read(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = std::path::absolute(dir).map_err(read)?;
        Manifest::parse(&text, path, &dir)
    }

    /// Check manifest `text` (from `path`), resolving relative paths against `dir`.
    pub fn parse(text: &str, path: &Path, dir: &Path) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = serde_yaml::from_str(text).map_err(|e| {
            let loc = e.location();
            let mut message = e.to_string();
            // serde_yaml appends " at line L column C"; the location is reported separately.
            if let Some(i) = message.find(" at line ") {
                message.truncate(i);
            }
            let mut line = loc.as_ref().map(|l| l.line());
            let mut column = loc.as_ref().map(|l| l.column());
            // An empty list is found after it is read, at no useful location.
            for key in ["engines", "repositories"] {
                if message.contains(&format!("`{key}` is empty")) {
                    (line, column) = (key_line(text, key), None);
                }
            }
            ManifestError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        })?;
        let engine_lines = item_lines(text, "engines");
        let repo_lines = item_lines(text, "repositories");
        let mut engines = Vec::new();
        let mut seen_engines: HashMap<EngineEndpoint, Option<usize>> = HashMap::new();
        for (i, e) in raw.engines.into_iter().enumerate() {
            let line = engine_lines.get(i).copied().or(key_line(text, "engines"));
            let bad = |source| ManifestError::BadEngine {
                path: path.to_owned(),
                line,
                source,
            };
            let endpoint = match (e.host, e.context) {
                (Some(h), None) => {
                    let tls = e.tls_cert_path.map(|p| dir.join(p));
                    EngineEndpoint::Host(DockerHost::new(&h, tls).map_err(bad)?)
                }
                (None, Some(c)) => {
                    if e.tls_cert_path.is_some() {
                        return Err(ManifestError::Invalid {
                            path: path.to_owned(),
                            line,
                            column: None,
                            message: "`tls_cert_path` goes with `host: tcp://...`; a context keeps its own TLS material".to_owned(),
                        });
                    }
                    EngineEndpoint::Context(ContextName::new(&c).map_err(bad)?)
                }
                _ => {
                    return Err(ManifestError::Invalid {
                        path: path.to_owned(),
                        line,
                        column: None,
                        message: "an engine needs exactly one of `host` (a DOCKER_HOST value) or `context` (a Docker context name)".to_owned(),
                    })
                }
            };
            if let Some(first) = seen_engines.get(&endpoint) {
                return Err(ManifestError::DuplicateEngine {
                    path: path.to_owned(),
                    line,
                    endpoint: endpoint.to_string(),
                    first_line: *first,
                });
            }
            seen_engines.insert(endpoint.clone(), line);
            engines.push(EngineEntry {
                endpoint,
                slots: e.slots.unwrap_or(NonZeroU32::MIN),
                line,
            });
        }
        let mut repositories = Vec::new();
        let mut seen_repos: BTreeMap<PathBuf, Option<usize>> = BTreeMap::new();
        for (i, r) in raw.repositories.into_iter().enumerate() {
            let line = repo_lines
                .get(i)
                .copied()
                .or(key_line(text, "repositories"));
            let resolved = dir.join(&r.path);
            let root = match std::fs::metadata(&resolved) {
                Ok(m) if m.is_dir() => std::fs::canonicalize(&resolved),
                Ok(_) => Err(std::io::Error::other("not a directory")),
                Err(e) => Err(e),
            }
            .map_err(|source| ManifestError::MissingRepository {
                path: path.to_owned(),
                line,
                repo: r.path.clone(),
                resolved: resolved.clone(),
                source,
            })?;
            // Before anything walks the folder (the journal's fingerprint
            // hashes every file of it).
            if root.parent().is_none() {
                return Err(ManifestError::FilesystemRoot {
                    path: path.to_owned(),
                    line,
                    repo: r.path,
                });
            }
            if !root.join("Dockerfile").is_file() {
                return Err(ManifestError::NoDockerfile {
                    path: path.to_owned(),
                    line,
                    repo: r.path,
                    resolved: root,
                });
            }
            if let Some(first) = seen_repos.get(&root) {
                return Err(ManifestError::DuplicateRepository {
                    path: path.to_owned(),
                    line,
                    repo: r.path,
                    first_line: *first,
                });
            }
            seen_repos.insert(root.clone(), line);
            let scenarios = match r.scenarios {
                None => None,
                Some(file) => {
                    let at = dir.join(&file);
                    let ok = match std::fs::metadata(&at) {
                        Ok(m) if m.is_file() => Ok(at.clone()),
                        Ok(_) => Err(std::io::Error::other("not a regular file")),
                        Err(e) => Err(e),
                    };
                    Some(ok.map_err(|source| ManifestError::MissingScenarios {
                        path: path.to_owned(),
                        line,
                        repo: r.path.clone(),
                        file,
                        resolved: at,
                        source,
                    })?)
                }
            };
            repositories.push(RepoEntry {
                name: r.path,
                root,
                scenarios,
                line,
            });
        }
        Ok(Manifest {
            path: path.to_owned(),
            engines,
            repositories,
            minimize: raw.minimize,
        })
    }

    /// Ping every engine, all at once. The portfolio runs on those that
    /// answer; only when none does is it an error, naming the first engine's
    /// line.
    /// Engines are `DOCKER_HOST` values and Docker contexts, which only the
    /// Docker CLI reads: with podman the manifest is refused rather than
    /// every repository silently sent to podman's default engine.
    pub fn check_engines(&self, kind: EngineKind) -> Result<EngineCheck, ManifestError> {
        if kind != EngineKind::Docker {
            return Err(ManifestError::Invalid {
                path: self.path.clone(),
                line: self.engines.first().and_then(|e| e.line),
                column: None,
                message: "portfolio engines are DOCKER_HOST values or Docker contexts, which only the docker CLI reads; run the portfolio with the docker CLI".to_owned(),
            });
        }
        // In parallel: each ping may wait out its timeout, and one silent
        // engine must not hold up the answer of the others.
        let pings = std::thread::scope(|scope| {
            let pending: Vec<_> = self
                .engines
                .iter()
                .map(|e| {
                    let engine = Engine::at(kind, e.endpoint.clone());
                    scope.spawn(move || engine.ping())
                })
                .collect();
            pending
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(EngineError::Unavailable {
                            detail: "the engine check panicked".to_owned(),
                        })
                    })
                })
                .collect()
        });
        self.settle_engines(pings)
    }

    /// The engines' answers from their pings (in manifest order): an error
    /// naming the first engine when none answered.
    fn settle_engines(
        &self,
        pings: Vec<Result<String, EngineError>>,
    ) -> Result<EngineCheck, ManifestError> {
        if !pings.iter().any(Result::is_ok) {
            let others = u32::try_from(self.engines.len().saturating_sub(1)).unwrap_or(u32::MAX);
            let first = self.engines.iter().zip(pings).next();
            return Err(match first {
                Some((e, Err(source))) => ManifestError::UnreachableEngine {
                    path: self.path.clone(),
                    line: e.line,
                    endpoint: e.endpoint.to_string(),
                    others,
                    source,
                },
                // No engine at all (a manifest built by hand; `parse`
                // refuses an empty list).
                _ => ManifestError::Invalid {
                    path: self.path.clone(),
                    line: None,
                    column: None,
                    message: "`engines` is empty; give at least one entry".to_owned(),
                },
            });
        }
        let answers = pings
            .into_iter()
            .map(|p| match p {
                Ok(version) => EngineAnswer::Up { version },
                Err(e) => EngineAnswer::Unreachable {
                    detail: engine_detail(&e),
                },
            })
            .collect();
        Ok(EngineCheck { answers })
    }
}

/// The 1-based line of the top-level `key:`.
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|i| i + 1)
}

/// The 1-based line of each item of the top-level block sequence `key:`
/// (serde reports semantic problems of an item at no useful location, so
/// its line is found here). A flow sequence (`[...]`) has none: callers fall
/// back to the key's line.
fn item_lines(text: &str, key: &str) -> Vec<usize> {
    let Some(start) = key_line(text, key) else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    let mut item_indent = None;
    for (i, l) in text.lines().enumerate().skip(start) {
        let trimmed = l.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = l.len() - trimmed.len();
        let is_item = trimmed == "-" || trimmed.starts_with("- ");
        if indent == 0 && !is_item {
            break; // the next top-level key
        }
        if is_item && *item_indent.get_or_insert(indent) == indent {
            lines.push(i + 1);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repos(dir: &Path, names: &[&str]) {
        for n in names {
            std::fs::create_dir_all(dir.join(n)).unwrap();
            std::fs::write(dir.join(n).join("Dockerfile"), "FROM scratch\n").unwrap();
        }
    }

    fn parse(text: &str, dir: &Path) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, &dir.join("fleet.yaml"), dir)
    }

    #[test]
    fn a_full_manifest_reads() {
        let d = tempfile::tempdir().unwrap();
        repos(d.path(), &["svc/a", "svc/b"]);
        std::fs::write(d.path().join("b.yaml"), "version: 1\n").unwrap();
        let m = parse(
            "version: 1\nengines:\n  - host: unix:///run/a.sock\n    slots: 2\n  - context: farm-b\nrepositories:\n  - path: svc/a\n  - path: svc/b\n    scenarios: b.yaml\nminimize: true\n",
            d.path(),
        )
        .unwrap();
        assert_eq!(m.engines.len(), 2);
        assert_eq!(m.engines[0].slots.get(), 2);
        assert_eq!(m.engines[1].slots.get(), 1, "slots default to 1");
        assert_eq!(m.engines[1].line, Some(5));
        assert_eq!(m.repositories[1].name, "svc/b");
        assert_eq!(m.repositories[1].line, Some(8));
        assert_eq!(m.repositories[1].scenarios, Some(d.path().join("b.yaml")));
        assert!(m.minimize);
    }

    #[test]
    fn unknown_fields_are_errors_with_their_line() {
        let d = tempfile::tempdir().unwrap();
        repos(d.path(), &["a"]);
        let e = parse(
            "version: 1\nengines:\n  - host: unix:///a.sock\n    slot: 2\nrepositories:\n  - path: a\n",
            d.path(),
        )
        .unwrap_err();
        let ManifestError::Invalid { line, message, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*line, Some(4), "{e}");
        assert!(message.contains("unknown field `slot`"), "{message}");
        // Control: the same manifest with the right field reads.
        parse(
            "version: 1\nengines:\n  - host: unix:///a.sock\n    slots: 2\nrepositories:\n  - path: a\n",
            d.path(),
        )
        .unwrap();
    }

    #[test]
    fn a_missing_repository_is_an_error_with_its_line() {
        let d = tempfile::tempdir().unwrap();
        repos(d.path(), &["a"]);
        let e = parse(
            "version: 1\nengines:\n  - host: unix:///a.sock\nrepositories:\n  - path: a\n  # gone\n  - path: gone\n",
            d.path(),
        )
        .unwrap_err();
        assert!(
            matches!(&e, ManifestError::MissingRepository { line: Some(7), repo, .. } if repo == "gone"),
            "{e:?}"
        );
        assert!(e.to_string().contains("fleet.yaml:7:"), "{e}");
    }

    #[test]
    fn the_root_and_a_folder_without_a_dockerfile_are_refused_with_their_line() {
        let d = tempfile::tempdir().unwrap();
        repos(d.path(), &["a"]);
        std::fs::create_dir(d.path().join("bare")).unwrap();
        let e = parse(
            "version: 1\nengines:\n  - context: x\nrepositories:\n  - path: a\n  - path: /\n",
            d.path(),
        )
        .unwrap_err();
        assert!(
            matches!(&e, ManifestError::FilesystemRoot { line: Some(6), repo, .. } if repo == "/"),
            "{e:?}"
        );
        assert!(e.to_string().contains("fleet.yaml:6:"), "{e}");
        let e = parse(
            "version: 1\nengines:\n  - context: x\nrepositories:\n  - path: bare\n",
            d.path(),
        )
        .unwrap_err();
        assert!(
            matches!(&e, ManifestError::NoDockerfile { line: Some(5), repo, .. } if repo == "bare"),
            "{e:?}"
        );
        assert!(e.to_string().contains("has no Dockerfile"), "{e}");
        // Control: once it holds a Dockerfile the same entry reads.
        std::fs::write(d.path().join("bare/Dockerfile"), "FROM scratch\n").unwrap();
        parse(
            "version: 1\nengines:\n  - context: x\nrepositories:\n  - path: bare\n",
            d.path(),
        )
        .unwrap();
    }

    #[test]
    fn semantic_errors_carry_a_line() {
        let d = tempfile::tempdir().unwrap();
        repos(d.path(), &["a"]);
        let cases = [
            ("version: 2\nengines: []\n", 1),
            ("version: 1\nengines: []\nrepositories:\n  - path: a\n", 2),
            ("version: 1\nengines:\n  - slots: 1\nrepositories:\n  - path: a\n", 3),
            ("version: 1\nengines:\n  - host: http://x\nrepositories:\n  - path: a\n", 3),
            ("version: 1\nengines:\n  - host: unix:///a\n    slots: 0\nrepositories:\n  - path: a\n", 4),
            ("version: 1\nengines:\n  - context: x\n  - context: x\nrepositories:\n  - path: a\n", 4),
            ("version: 1\nengines:\n  - context: x\nrepositories:\n  - path: a\n  - path: ./a\n", 6),
            ("version: 1\nengines:\n  - context: x\nrepositories:\n  - path: a\n    scenarios: none.yaml\n", 5),
        ];
        for (text, want) in cases {
            let e = parse(text, d.path()).unwrap_err();
            let line = match &e {
                ManifestError::Invalid { line, .. }
                | ManifestError::BadEngine { line, .. }
                | ManifestError::DuplicateEngine { line, .. }
                | ManifestError::DuplicateRepository { line, .. }
                | ManifestError::MissingScenarios { line, .. } => *line,
                other => panic!("{text:?}: {other:?}"),
            };
            assert_eq!(line, Some(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn podman_cannot_be_pointed_at_docker_endpoints() {
        let d = tempfile::tempdir().unwrap();
        repos(d.path(), &["a"]);
        let m = parse(
            "version: 1\nengines:\n  - host: unix:///nonexistent.sock\nrepositories:\n  - path: a\n",
            d.path(),
        )
        .unwrap();
        let e = m.check_engines(EngineKind::Podman).unwrap_err();
        assert!(
            matches!(&e, ManifestError::Invalid { line: Some(3), .. }),
            "{e:?}"
        );
        // Control: with docker the same manifest gets as far as the ping.
        assert!(matches!(
            m.check_engines(EngineKind::Docker),
            Err(ManifestError::UnreachableEngine { line: Some(3), .. })
        ));
    }

    #[test]
    fn engines_that_answer_are_kept_and_only_none_answering_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        repos(d.path(), &["a"]);
        let m = parse(
            "version: 1\nengines:\n  - host: unix:///a.sock\n  - host: unix:///b.sock\nrepositories:\n  - path: a\n",
            d.path(),
        )
        .unwrap();
        let silent = || {
            Err(EngineError::Unavailable {
                detail: "proxy http://ops:hunter2@proxy.internal refused".to_owned(),
            })
        };
        // The first does not answer, the second does: the run goes on with
        // the second, the first's error kept redacted.
        let check = m
            .settle_engines(vec![silent(), Ok("27.5.1".to_owned())])
            .unwrap();
        let detail = check.unreachable(0).unwrap();
        assert!(detail.contains("container engine unavailable"), "{detail}");
        assert!(detail.contains("[REDACTED:"), "{detail}");
        assert!(!detail.contains("hunter2"), "{detail}");
        assert_eq!(check.unreachable(1), None);
        assert_eq!(
            check.answers()[1],
            EngineAnswer::Up {
                version: "27.5.1".to_owned()
            }
        );
        // Control: when none answers it is the manifest's error, at the
        // first engine's line.
        let e = m.settle_engines(vec![silent(), silent()]).unwrap_err();
        assert!(
            matches!(
                &e,
                ManifestError::UnreachableEngine {
                    line: Some(3),
                    others: 1,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string().starts_with(&format!(
                "{}:3: engine unix:///a.sock does not answer",
                d.path().join("fleet.yaml").display()
            )),
            "{e}"
        );
    }

    #[test]
    fn item_lines_follow_block_sequences() {
        let text = "version: 1\nrepositories:\n- path: a\n  scenarios: x\n# c\n- path: b\nminimize: true\n";
        assert_eq!(item_lines(text, "repositories"), [3, 6]);
        assert_eq!(
            item_lines("repositories: [{path: a}]\n", "repositories"),
            Vec::<usize>::new()
        );
    }
}
