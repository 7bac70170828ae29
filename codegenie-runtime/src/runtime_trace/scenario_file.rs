//! Which scenarios a repository runs: `.codegenie/scenarios.yaml`, else the
//! embedded defaults; and the app they start, with the image's defaults
//! applied. A malformed file is an error, never a fallback to the defaults.

use std::path::Path;

use crate::engine::ImageConfig;
use crate::probe::RepoSnapshot;

use super::probe::TraceError;
use super::scenarios::{self, Ready, ScenarioError, ScenarioFile, DEFAULT_READY_TIMEOUT_S};
use super::steps::ResolvedApp;

pub use super::scenarios::DEFAULT_SCENARIOS;

/// Where a repository's own scenarios live.
pub const SCENARIO_FILE: &str = ".codegenie/scenarios.yaml";

/// The largest scenario file read; a bigger one is an error (a hostile
/// repository must not make the probe read or parse gigabytes).
pub const MAX_SCENARIO_FILE_BYTES: u64 = 1024 * 1024;

/// Load `.codegenie/scenarios.yaml`, else the embedded defaults. A malformed
/// file is an error, never a fallback.
pub fn load_scenarios(repo: &RepoSnapshot) -> Result<ScenarioFile, TraceError> {
    let path = repo.root().join(SCENARIO_FILE);
    match read_bounded(&path, MAX_SCENARIO_FILE_BYTES) {
        Ok(Ok(text)) => Ok(scenarios::parse_scenarios(&text, SCENARIO_FILE)?),
        Ok(Err(len)) => Err(TraceError::Scenarios(ScenarioError {
            source_name: SCENARIO_FILE.to_owned(),
            line: None,
            column: None,
            message: format!(
                "the file has {len} bytes or more; at most {MAX_SCENARIO_FILE_BYTES} are read"
            ),
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(scenarios::parse_scenarios(
            DEFAULT_SCENARIOS,
            "<embedded scenarios/default.yaml>",
        )?),
        Err(source) => Err(TraceError::Io { path, source }),
    }
}

/// Load the scenario file at `path` (outside the repository: a portfolio
/// manifest's `scenarios:`). Missing, too big or malformed is an error
/// naming the file; there are no defaults to fall back to.
pub fn load_scenarios_from(path: &Path) -> Result<ScenarioFile, TraceError> {
    let name = path.display().to_string();
    match read_bounded(path, MAX_SCENARIO_FILE_BYTES) {
        Ok(Ok(text)) => Ok(scenarios::parse_scenarios(&text, &name)?),
        Ok(Err(len)) => Err(TraceError::Scenarios(ScenarioError {
            source_name: name,
            line: None,
            column: None,
            message: format!(
                "the file has {len} bytes or more; at most {MAX_SCENARIO_FILE_BYTES} are read"
            ),
        })),
        Err(source) => Err(TraceError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Read `path` as text if it has at most `limit` bytes; `Ok(Err(n))` when it
/// has more (`n` bytes were seen before stopping).
fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Result<String, u64>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
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
