//! Which scenarios a repository runs: `.codegenie/scenarios.yaml`, else the
//! embedded defaults; and the app they start, with the image's defaults
//! applied. A malformed file is an error, never a fallback to the defaults.

use std::path::{Path, PathBuf};

use crate::engine::ImageConfig;
use crate::probe::RepoSnapshot;

use super::error::TraceError;
use super::scenarios::{self, Ready, ScenarioError, ScenarioFile, DEFAULT_READY_TIMEOUT_S};
use super::steps::ResolvedApp;

pub use super::scenarios::DEFAULT_SCENARIOS;

/// Where a repository's own scenarios live.
pub const SCENARIO_FILE: &str = ".codegenie/scenarios.yaml";

/// The largest scenario file read; a bigger one is an error (a hostile
/// repository must not make the probe read or parse gigabytes).
pub const MAX_SCENARIO_FILE_BYTES: u64 = 1024 * 1024;

/// Where a run's scenarios came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScenarioOrigin {
    /// The embedded defaults (`scenarios/default.yaml`).
    Defaults,
    /// The repository's own [`SCENARIO_FILE`].
    Repository,
    /// A file outside the repository: a portfolio manifest's `scenarios:`,
    /// or `codegenie minimize --verify-with`.
    File(PathBuf),
}

impl std::fmt::Display for ScenarioOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScenarioOrigin::Defaults => f.write_str("defaults"),
            ScenarioOrigin::Repository => f.write_str(SCENARIO_FILE),
            ScenarioOrigin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The scenarios of one run, read and parsed once (docs/architecture.md,
/// "Scenarios"): the trace runs them, the `trace-config` token hashes their
/// text, and the minimal image keeps the programs their `exec` steps name,
/// all from this one value.
#[derive(Debug, Clone, PartialEq)]
pub struct RunScenarios {
    /// Where they came from.
    pub origin: ScenarioOrigin,
    /// blake3 of the file's text (of the embedded text for the defaults), hex.
    pub text_hash: String,
    /// The parsed file.
    pub file: ScenarioFile,
}

impl RunScenarios {
    /// The scenarios of `repo`: the file at `outside` when given, else
    /// `.codegenie/scenarios.yaml`, else the embedded defaults. A malformed
    /// file is an error, never a fallback. The repository's file must be a
    /// regular file inside the repository (a link that leaves it is
    /// refused), and an error never quotes the file's values: a hostile link
    /// to a secret must not print it.
    pub fn load(repo: &RepoSnapshot, outside: Option<&Path>) -> Result<RunScenarios, TraceError> {
        if let Some(path) = outside {
            return RunScenarios::from_file(path);
        }
        let path = repo.root().join(SCENARIO_FILE);
        let refused = |message: &str| {
            TraceError::Scenarios(ScenarioError {
                source_name: SCENARIO_FILE.to_owned(),
                line: None,
                column: None,
                message: message.to_owned(),
            })
        };
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(TraceError::Io { path, source }),
            Ok(_) => {
                let real = std::fs::canonicalize(&path).map_err(|source| TraceError::Io {
                    path: path.clone(),
                    source,
                })?;
                let root = std::fs::canonicalize(repo.root()).map_err(|source| TraceError::Io {
                    path: repo.root().to_owned(),
                    source,
                })?;
                if !real.starts_with(&root) {
                    return Err(refused(
                        "the file is a link to a path outside the repository; it is not read",
                    ));
                }
            }
        }
        match read_text(&path, SCENARIO_FILE)? {
            Some(text) => Ok(RunScenarios {
                origin: ScenarioOrigin::Repository,
                text_hash: text_hash(&text),
                file: parse_quietly(&text, SCENARIO_FILE)?,
            }),
            None => RunScenarios::defaults(),
        }
    }

    /// The embedded defaults.
    pub fn defaults() -> Result<RunScenarios, TraceError> {
        Ok(RunScenarios {
            origin: ScenarioOrigin::Defaults,
            text_hash: text_hash(DEFAULT_SCENARIOS),
            file: scenarios::parse_scenarios(
                DEFAULT_SCENARIOS,
                "<embedded scenarios/default.yaml>",
            )?,
        })
    }

    /// The scenario file at `path`, outside any repository. Missing, not a
    /// regular file, too big or malformed is an error naming the file;
    /// there are no defaults to fall back to.
    pub fn from_file(path: &Path) -> Result<RunScenarios, TraceError> {
        let name = path.display().to_string();
        match read_text(path, &name)? {
            Some(text) => Ok(RunScenarios {
                origin: ScenarioOrigin::File(path.to_owned()),
                text_hash: text_hash(&text),
                file: parse_quietly(&text, &name)?,
            }),
            None => Err(TraceError::Io {
                path: path.to_owned(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            }),
        }
    }
}

/// The parsed scenarios of `repo` ([`RunScenarios::load`] without a file
/// outside the repository).
pub fn load_scenarios(repo: &RepoSnapshot) -> Result<ScenarioFile, TraceError> {
    RunScenarios::load(repo, None).map(|s| s.file)
}

fn text_hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// Parse scenario text; errors keep their position and key but not the
/// file's values.
fn parse_quietly(text: &str, name: &str) -> Result<ScenarioFile, TraceError> {
    Ok(scenarios::parse_scenarios(text, name).map_err(|mut e| {
        e.message = without_values(&e.message);
        e
    })?)
}

/// The text at `path` (named `name` in errors), `None` when there is no
/// file; at most [`MAX_SCENARIO_FILE_BYTES`] are read.
fn read_text(path: &Path, name: &str) -> Result<Option<String>, TraceError> {
    match read_bounded(path, MAX_SCENARIO_FILE_BYTES) {
        Ok(Ok(text)) => Ok(Some(text)),
        Ok(Err(len)) => Err(TraceError::Scenarios(ScenarioError {
            source_name: name.to_owned(),
            line: None,
            column: None,
            message: format!(
                "the file has {len} bytes or more; at most {MAX_SCENARIO_FILE_BYTES} are read"
            ),
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            Err(TraceError::Scenarios(ScenarioError {
                source_name: name.to_owned(),
                line: None,
                column: None,
                message: e.to_string(),
            }))
        }
        Err(source) => Err(TraceError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// A parser message with every quoted value of the file replaced by
/// `<value>`: `"..."` strings always, `` `...` `` unless it is shaped like
/// a schema word (1-32 of `[a-z0-9_]`: a key, a variant, a snake_case
/// scenario name); an unknown key shaped like a token is dropped too.
/// The position and the key are what a user needs; the values are what a
/// link to a secret would leak.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                // A Debug-quoted string: skip to the unescaped closing quote.
                let mut escaped = false;
                for d in chars.by_ref() {
                    match (escaped, d) {
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => escaped = false,
                    }
                }
                out.push_str("<value>");
            }
            '`' => {
                let mut inner = String::new();
                for d in chars.by_ref() {
                    if d == '`' {
                        break;
                    }
                    inner.push(d);
                }
                let identifier = !inner.is_empty()
                    && inner.len() <= 32
                    && inner
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if identifier {
                    out.push('`');
                    out.push_str(&inner);
                    out.push('`');
                } else {
                    out.push_str("<value>");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Read `path` as text if it has at most `limit` bytes; `Ok(Err(n))` when it
/// has more (`n` bytes were seen before stopping).
/// Only a regular file is read: it is opened without blocking (a FIFO
/// would wait forever for a writer) and checked on the open handle, so a
/// file swapped between a check and the read cannot get past it.
fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Result<String, u64>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file; it is not read",
        ));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Ok(Err(bytes.len() as u64));
    }
    String::from_utf8(bytes)
        .map(Ok)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Apply the image's defaults to the scenario file's `app` section.
pub fn resolve_app(file: &ScenarioFile, image: &ImageConfig) -> ResolvedApp {
    let argv = file.app.command.clone().unwrap_or_else(|| image.argv());
    let port = file.app.port.or_else(|| image.first_tcp_port());
    let ready = match (&file.app.ready, port) {
        (Some(r), _) => r.clone(),
        (None, Some(port)) => Ready::TcpPort {
            port,
            timeout_s: DEFAULT_READY_TIMEOUT_S,
        },
        (None, None) => Ready::After { seconds: 2.0 },
    };
    ResolvedApp { argv, port, ready }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_keys_and_drop_values() {
        assert_eq!(
            without_values(
                r#"invalid type: string "root:$6$abc\"x:0", expected struct ScenarioFile"#
            ),
            "invalid type: string <value>, expected struct ScenarioFile"
        );
        assert_eq!(
            without_values("unknown field `stepz`, expected one of `name`, `steps`"),
            "unknown field `stepz`, expected one of `name`, `steps`"
        );
        assert_eq!(
            without_values("unknown variant `AKIA1234 secret:value`, expected `tcp_port`"),
            "unknown variant <value>, expected `tcp_port`"
        );
    }

    #[test]
    fn defaults_embed_and_parse() {
        let f = scenarios::parse_scenarios(DEFAULT_SCENARIOS, "default").unwrap();
        assert_eq!(f.scenarios.len(), 5);
    }

    #[test]
    fn app_defaults_come_from_the_image() {
        let f = scenarios::parse_scenarios(DEFAULT_SCENARIOS, "default").unwrap();
        let img: ImageConfig = serde_json::from_str(
            r#"{"Entrypoint":["/app/start.sh"],"Cmd":["--port","8080"],"ExposedPorts":{"8080/tcp":{}}}"#,
        )
        .unwrap();
        let app = resolve_app(&f, &img);
        assert_eq!(app.argv, ["/app/start.sh", "--port", "8080"]);
        assert_eq!(app.port, Some(8080));
        assert_eq!(
            app.ready,
            Ready::TcpPort {
                port: 8080,
                timeout_s: 30
            }
        );
        let bare = resolve_app(&f, &ImageConfig::default());
        assert_eq!(bare.ready, Ready::After { seconds: 2.0 });
    }
}
