//! The scenario file schema (docs/architecture.md, "Scenarios"):
//! `.codegenie/scenarios.yaml`, and the default scenarios of the repository's
//! `scenarios/` folder, embedded here as [`DEFAULT_SCENARIOS`].
//!
//! Unknown fields are errors, every error carries the line and column it
//! comes from, and a malformed file is an error, never a fallback to the
//! defaults. The `codegenie` crate's `build.rs` validates the defaults with
//! this module at build time.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The default scenarios (startup, smoke_test, healthcheck, shutdown,
/// error_path), used when a repository has no scenario file of its own.
/// `default-scenarios/default.yaml` links to the workspace's
/// `scenarios/default.yaml`; packaging stores its content.
pub const DEFAULT_SCENARIOS: &str = include_str!("../default-scenarios/default.yaml");

/// The only schema version.
pub const SCHEMA_VERSION: u32 = 1;

/// A scenario file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawScenarioFile")]
pub struct ScenarioFile {
    /// Schema version (1).
    pub version: u32,
    /// How to start the app and tell it is ready.
    pub app: AppConfig,
    /// The scenarios, run one at a time in this order.
    pub scenarios: Vec<Scenario>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenarioFile {
    #[serde(deserialize_with = "version_field")]
    version: u32,
    #[serde(default)]
    app: AppConfig,
    #[serde(deserialize_with = "scenarios_field")]
    scenarios: Vec<Scenario>,
}

// Checked while the field is read, so errors carry the field's line.
fn version_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if v != SCHEMA_VERSION {
        return Err(serde::de::Error::custom(format!(
            "unsupported version {v}; expected {SCHEMA_VERSION}"
        )));
    }
    Ok(v)
}

fn scenarios_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Scenario>, D::Error> {
    let list = Vec::<Scenario>::deserialize(d)?;
    if list.is_empty() {
        return Err(serde::de::Error::custom(
            "`scenarios` is empty; list at least one",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in &list {
        if !seen.insert(s.name.as_str()) {
            return Err(serde::de::Error::custom(format!(
                "scenario `{}` is defined twice",
                s.name
            )));
        }
    }
    Ok(list)
}

impl TryFrom<RawScenarioFile> for ScenarioFile {
    type Error = String;
    fn try_from(raw: RawScenarioFile) -> Result<Self, String> {
        Ok(ScenarioFile {
            version: raw.version,
            app: raw.app,
            scenarios: raw.scenarios,
        })
    }
}

/// `app:`: how the app starts and when it is ready.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The app's argv; default: the image's ENTRYPOINT + CMD.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// The app's port; default: the image's first EXPOSEd TCP port.
    #[serde(default)]
    pub port: Option<u16>,
    /// Readiness; default: the port listening (30 s), else a 2 s delay.
    #[serde(default)]
    pub ready: Option<Ready>,
}

/// When the app counts as ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawReady", into = "RawReady")]
pub enum Ready {
    /// A TCP socket listens on this port.
    TcpPort {
        /// The port.
        port: u16,
        /// How long to wait.
        timeout_s: u64,
    },
    /// The app printed a line containing this text.
    LogLine {
        /// The text.
        line: String,
        /// How long to wait.
        timeout_s: u64,
    },
    /// A fixed delay after start.
    After {
        /// Seconds.
        seconds: f64,
    },
}

/// Default readiness timeout.
pub const DEFAULT_READY_TIMEOUT_S: u64 = 30;

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReady {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tcp_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_line: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_s: Option<u64>,
}

impl TryFrom<RawReady> for Ready {
    type Error = String;
    fn try_from(r: RawReady) -> Result<Self, String> {
        let timeout_s = r.timeout_s.unwrap_or(DEFAULT_READY_TIMEOUT_S);
        match (r.tcp_port, r.log_line, r.after_s) {
            (Some(port), None, None) => Ok(Ready::TcpPort { port, timeout_s }),
            (None, Some(line), None) if !line.is_empty() => Ok(Ready::LogLine { line, timeout_s }),
            (None, Some(_), None) => Err("`log_line` must not be empty".to_owned()),
            (None, None, Some(_)) if r.timeout_s.is_some() => {
                Err("`after_s` takes no `timeout_s`".to_owned())
            }
            (None, None, Some(s)) if s.is_finite() && s >= 0.0 => Ok(Ready::After { seconds: s }),
            (None, None, Some(_)) => Err("`after_s` must be a non-negative number".to_owned()),
            _ => Err("`ready` needs exactly one of `tcp_port`, `log_line`, `after_s`".to_owned()),
        }
    }
}

impl From<Ready> for RawReady {
    fn from(r: Ready) -> Self {
        let mut raw = RawReady {
            tcp_port: None,
            log_line: None,
            after_s: None,
            timeout_s: None,
        };
        match r {
            Ready::TcpPort { port, timeout_s } => {
                raw.tcp_port = Some(port);
                raw.timeout_s = Some(timeout_s);
            }
            Ready::LogLine { line, timeout_s } => {
                raw.log_line = Some(line);
                raw.timeout_s = Some(timeout_s);
            }
            Ready::After { seconds } => raw.after_s = Some(seconds),
        }
        raw
    }
}

/// One scenario: a fresh container, then steps (or a one-shot command).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawScenario")]
pub struct Scenario {
    /// Name: lowercase letters, digits, `_` and `-` (it names artifact files).
    pub name: String,
    /// Steps, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// One-shot form: run this argv instead of the app and wait for it to exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// One-shot form: the exit code that counts as success (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_exit_code: Option<i32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    #[serde(default)]
    steps: Vec<Step>,
    #[serde(default)]
    command: Option<Vec<String>>,
    #[serde(default)]
    expected_exit_code: Option<i32>,
}

impl TryFrom<RawScenario> for Scenario {
    type Error = String;
    fn try_from(r: RawScenario) -> Result<Self, String> {
        let name_ok = !r.name.is_empty()
            && r.name.len() <= 64
            && r.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(format!(
                "scenario name `{}` must be 1-64 of [a-z0-9_-]",
                r.name
            ));
        }
        match &r.command {
            Some(c) if c.is_empty() || c[0].is_empty() => {
                return Err(format!("scenario `{}`: `command` is empty", r.name))
            }
            None if r.steps.is_empty() => {
                return Err(format!(
                    "scenario `{}` needs `steps` or a one-shot `command`",
                    r.name
                ))
            }
            None if r.expected_exit_code.is_some() => {
                return Err(format!(
                    "scenario `{}`: `expected_exit_code` applies to the one-shot `command` form",
                    r.name
                ))
            }
            _ => {}
        }
        Ok(Scenario {
            name: r.name,
            steps: r.steps,
            command: r.command,
            expected_exit_code: r.expected_exit_code,
        })
    }
}

/// One step of a scenario: a map with exactly one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawStep", into = "RawStep")]
pub enum Step {
    /// Wait until the app is ready (see [`Ready`]).
    WaitReady(WaitReady),
    /// Run an argv inside the container (not traced).
    Exec(Vec<String>),
    /// Send HTTP requests to the app from inside its network namespace.
    Http(HttpStep),
    /// Send a signal to the app's root process.
    Signal(SignalName),
    /// Wait for the app to exit.
    WaitExit(WaitExit),
}

// serde_yaml 0.9 reads externally tagged enums only from `!tags`; the
// documented `{ wait_ready: {} }` form is a struct of optional keys.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wait_ready: Option<WaitReady>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exec: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http: Option<HttpStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signal: Option<SignalName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wait_exit: Option<WaitExit>,
}

impl TryFrom<RawStep> for Step {
    type Error = String;
    fn try_from(r: RawStep) -> Result<Self, String> {
        let mut found = Vec::new();
        if let Some(w) = r.wait_ready {
            found.push(Step::WaitReady(w));
        }
        if let Some(argv) = r.exec {
            if argv.is_empty() || argv[0].is_empty() {
                return Err("`exec` argv is empty".to_owned());
            }
            found.push(Step::Exec(argv));
        }
        if let Some(h) = r.http {
            found.push(Step::Http(h));
        }
        if let Some(s) = r.signal {
            found.push(Step::Signal(s));
        }
        if let Some(w) = r.wait_exit {
            found.push(Step::WaitExit(w));
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err("a step needs one of `wait_ready`, `exec`, `http`, `signal`, `wait_exit`".to_owned()),
            _ => Err("a step has exactly one of `wait_ready`, `exec`, `http`, `signal`, `wait_exit`; write several steps".to_owned()),
        }
    }
}

impl From<Step> for RawStep {
    fn from(s: Step) -> Self {
        let mut r = RawStep::default();
        match s {
            Step::WaitReady(w) => r.wait_ready = Some(w),
            Step::Exec(a) => r.exec = Some(a),
            Step::Http(h) => r.http = Some(h),
            Step::Signal(sig) => r.signal = Some(sig),
            Step::WaitExit(w) => r.wait_exit = Some(w),
        }
        r
    }
}

/// `wait_ready: {}`; the readiness rule comes from `app.ready`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitReady {}

/// `wait_exit: { timeout_s: 10 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitExit {
    /// How long to wait for the app to exit.
    #[serde(default = "default_wait_exit")]
    pub timeout_s: u64,
}

fn default_wait_exit() -> u64 {
    10
}

/// `http: { method, path, body, repeat, interval_ms, expect_status }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawHttpStep")]
pub struct HttpStep {
    /// Request method (`GET`, `POST`, ...).
    pub method: String,
    /// Request path, starting with `/`.
    pub path: String,
    /// Request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Request headers (`Content-Type: application/json`, ...), sent in name
    /// order after the ones every request has (`Host`, `Connection`,
    /// `Content-Length`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// How many requests.
    pub repeat: u32,
    /// Pause between requests.
    pub interval_ms: u64,
    /// The status every response must have; any response counts when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<StatusExpectation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpStep {
    #[serde(default)]
    method: Option<String>,
    path: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    repeat: Option<u32>,
    #[serde(default)]
    interval_ms: Option<u64>,
    #[serde(default)]
    expect_status: Option<StatusExpectation>,
}

impl TryFrom<RawHttpStep> for HttpStep {
    type Error = String;
    fn try_from(r: RawHttpStep) -> Result<Self, String> {
        let method = r.method.unwrap_or_else(|| "GET".to_owned());
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!("http method `{method}` must be uppercase letters"));
        }
        if !r.path.starts_with('/') || r.path.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(format!(
                "http path `{}` must start with `/` and contain no spaces",
                r.path
            ));
        }
        let repeat = r.repeat.unwrap_or(1);
        if repeat == 0 {
            return Err("http `repeat` must be at least 1".to_owned());
        }
        for (name, value) in &r.headers {
            check_header(name, value)?;
        }
        Ok(HttpStep {
            method,
            path: r.path,
            body: r.body,
            headers: r.headers,
            repeat,
            interval_ms: r.interval_ms.unwrap_or(0),
            expect_status: r.expect_status,
        })
    }
}

/// Headers the helper sets itself; a scenario may not send them twice.
const RESERVED_HEADERS: &[&str] = &["host", "connection", "content-length"];

/// A header name is an RFC 9110 token; a value has no line breaks (which
/// would let a scenario smuggle a second request).
fn check_header(name: &str, value: &str) -> Result<(), String> {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(format!("http header name `{name}` is not a valid token"));
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "http header `{name}` is set by codegenie; remove it"
        ));
    }
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!(
            "http header `{name}` has a line break in its value"
        ));
    }
    Ok(())
}

/// An expected HTTP status: `200`, `">=400"`, `"<500"`, `"==404"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawStatus", into = "String")]
pub struct StatusExpectation {
    /// The comparison.
    pub op: StatusOp,
    /// The status it compares with.
    pub status: u16,
}

/// A comparison of [`StatusExpectation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatusOp {
    /// `==`
    Eq,
    /// `>=`
    Ge,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `<`
    Lt,
}

impl StatusExpectation {
    /// Whether `status` satisfies the expectation.
    pub fn accepts(&self, status: u16) -> bool {
        match self.op {
            StatusOp::Eq => status == self.status,
            StatusOp::Ge => status >= self.status,
            StatusOp::Le => status <= self.status,
            StatusOp::Gt => status > self.status,
            StatusOp::Lt => status < self.status,
        }
    }
}

impl fmt::Display for StatusExpectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            StatusOp::Eq => "==",
            StatusOp::Ge => ">=",
            StatusOp::Le => "<=",
            StatusOp::Gt => ">",
            StatusOp::Lt => "<",
        };
        write!(f, "{op}{}", self.status)
    }
}

impl From<StatusExpectation> for String {
    fn from(s: StatusExpectation) -> String {
        s.to_string()
    }
}

impl std::str::FromStr for StatusExpectation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (op, rest) = [
            (">=", StatusOp::Ge),
            ("<=", StatusOp::Le),
            ("==", StatusOp::Eq),
            (">", StatusOp::Gt),
            ("<", StatusOp::Lt),
        ]
        .iter()
        .find_map(|(p, op)| s.strip_prefix(p).map(|r| (*op, r)))
        .unwrap_or((StatusOp::Eq, s));
        let status: u16 = rest
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a status expectation like 200 or \">=400\""))?;
        if !(100..=599).contains(&status) {
            return Err(format!("HTTP status {status} is outside 100-599"));
        }
        Ok(StatusExpectation { op, status })
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawStatus {
    Number(u16),
    Text(String),
}

impl TryFrom<RawStatus> for StatusExpectation {
    type Error = String;
    fn try_from(r: RawStatus) -> Result<Self, String> {
        match r {
            RawStatus::Number(n) => n.to_string().parse(),
            RawStatus::Text(t) => t.parse(),
        }
    }
}

/// A signal a step may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum SignalName {
    /// Terminate.
    SIGTERM,
    /// Interrupt.
    SIGINT,
    /// Hang up.
    SIGHUP,
    /// Quit.
    SIGQUIT,
    /// Kill.
    SIGKILL,
    /// User signal 1.
    SIGUSR1,
    /// User signal 2.
    SIGUSR2,
}

impl SignalName {
    /// The name, e.g. `SIGTERM`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalName::SIGTERM => "SIGTERM",
            SignalName::SIGINT => "SIGINT",
            SignalName::SIGHUP => "SIGHUP",
            SignalName::SIGQUIT => "SIGQUIT",
            SignalName::SIGKILL => "SIGKILL",
            SignalName::SIGUSR1 => "SIGUSR1",
            SignalName::SIGUSR2 => "SIGUSR2",
        }
    }

    /// Parse a name as written in a scenario (`SIGTERM`).
    pub fn parse(s: &str) -> Option<SignalName> {
        [
            SignalName::SIGTERM,
            SignalName::SIGINT,
            SignalName::SIGHUP,
            SignalName::SIGQUIT,
            SignalName::SIGKILL,
            SignalName::SIGUSR1,
            SignalName::SIGUSR2,
        ]
        .into_iter()
        .find(|n| n.as_str() == s)
    }
}

/// A scenario file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// The file (or `<embedded default>`).
    pub source_name: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.source_name, self.message),
            (Some(l), None) => write!(f, "{}:{l}: {}", self.source_name, self.message),
            _ => write!(f, "{}: {}", self.source_name, self.message),
        }
    }
}

impl std::error::Error for ScenarioError {}

/// Parse a scenario file; `source_name` names it in errors.
pub fn parse_scenarios(text: &str, source_name: &str) -> Result<ScenarioFile, ScenarioError> {
    use crate::yaml_guard::{key_line, second_name_line, too_deep, MAX_DEPTH};
    if let Some(line) = too_deep(text, MAX_DEPTH) {
        return Err(ScenarioError {
            source_name: source_name.to_owned(),
            line: Some(line),
            column: None,
            message: format!("nested deeper than {MAX_DEPTH} levels"),
        });
    }
    serde_yaml::from_str::<ScenarioFile>(text).map_err(|e| {
        let loc = e.location();
        let mut message = e.to_string();
        // serde_yaml appends " at line L column C"; the location is reported separately.
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        let mut line = loc.as_ref().map(|l| l.line());
        let mut column = loc.as_ref().map(|l| l.column());
        // A duplicate is found after the list is read, at no useful location.
        if let Some(dup) = message
            .split_once("scenario `")
            .and_then(|(_, rest)| rest.strip_suffix("` is defined twice"))
        {
            if let Some(l) = second_name_line(text, dup) {
                (line, column) = (Some(l), None);
            }
        }
        if message.contains("`scenarios` is empty") {
            if let Some(l) = key_line(text, "scenarios") {
                (line, column) = (Some(l), None);
            }
        }
        ScenarioError {
            source_name: source_name.to_owned(),
            line,
            column,
            message,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: &str = DEFAULT_SCENARIOS;

    #[test]
    fn the_defaults_are_the_five_scenarios() {
        let f = parse_scenarios(DEFAULTS, "default.yaml").unwrap();
        let names: Vec<&str> = f.scenarios.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "startup",
                "smoke_test",
                "healthcheck",
                "shutdown",
                "error_path"
            ]
        );
        let shutdown = &f.scenarios[3];
        assert_eq!(shutdown.steps[1], Step::Signal(SignalName::SIGTERM));
        assert_eq!(
            shutdown.steps[2],
            Step::WaitExit(WaitExit { timeout_s: 10 })
        );
        let Step::Http(h) = &f.scenarios[4].steps[1] else {
            panic!("error_path sends a request")
        };
        assert_eq!(h.method, "POST");
        assert_eq!(h.headers["Content-Type"], "application/json");
        assert!(h.expect_status.unwrap().accepts(404));
        assert!(!h.expect_status.unwrap().accepts(200));
    }

    #[test]
    fn headers_are_checked() {
        let with = |h: &str| {
            parse_scenarios(
                &format!("version: 1\nscenarios:\n  - name: a\n    steps:\n      - http: {{ path: /, headers: {h} }}\n"),
                "s.yaml",
            )
        };
        assert!(with("{ X-Trace: \"1\" }").is_ok());
        for (bad, why) in [
            ("{ \"Bad Name\": x }", "not a valid token"),
            ("{ Host: evil }", "set by codegenie"),
            ("{ X-A: \"a\\r\\nX-B: b\" }", "line break"),
        ] {
            let e = with(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
            assert_eq!(e.line, Some(5), "{bad}: {e}");
        }
    }

    #[test]
    fn the_design_example_parses() {
        let text = r#"
version: 1
app:
  command: ["node", "dist/index.js"]
  port: 3000
  ready: { tcp_port: 3000, timeout_s: 30 }
scenarios:
  - name: startup
    steps: [ { wait_ready: {} } ]
  - name: smoke_test
    steps: [ { wait_ready: {} }, { exec: ["node", "scripts/smoke.js"] } ]
  - name: healthcheck
    steps: [ { wait_ready: {} }, { http: { path: /healthz, repeat: 10, interval_ms: 500 } } ]
  - name: shutdown
    steps: [ { wait_ready: {} }, { signal: SIGTERM }, { wait_exit: { timeout_s: 10 } } ]
  - name: error_path
    steps: [ { wait_ready: {} }, { http: { method: POST, path: /, body: "{malformed", expect_status: ">=400" } } ]
  - name: batch_job
    command: ["sh", "-c", "exit 0"]
    expected_exit_code: 0
"#;
        let f = parse_scenarios(text, "s.yaml").unwrap();
        assert_eq!(
            f.app.ready,
            Some(Ready::TcpPort {
                port: 3000,
                timeout_s: 30
            })
        );
        assert_eq!(f.app.command.as_deref().unwrap()[0], "node");
        let batch = &f.scenarios[5];
        assert_eq!(batch.command.as_deref().unwrap(), ["sh", "-c", "exit 0"]);
        assert_eq!(batch.expected_exit_code, Some(0));
        let Step::Http(h) = &f.scenarios[2].steps[1] else {
            panic!()
        };
        assert_eq!(
            (h.method.as_str(), h.repeat, h.interval_ms),
            ("GET", 10, 500)
        );
        assert_eq!(
            f.scenarios[1].steps[1],
            Step::Exec(vec!["node".into(), "scripts/smoke.js".into()])
        );
    }

    #[test]
    fn ready_forms() {
        let parse = |r: &str| {
            parse_scenarios(
                &format!("version: 1\napp:\n  ready: {r}\nscenarios: [{{name: a, steps: [{{wait_ready: {{}}}}]}}]\n"),
                "s.yaml",
            )
            .map(|f| f.app.ready.unwrap())
        };
        assert_eq!(
            parse("{ log_line: listening }").unwrap(),
            Ready::LogLine {
                line: "listening".into(),
                timeout_s: 30
            }
        );
        assert_eq!(
            parse("{ after_s: 2 }").unwrap(),
            Ready::After { seconds: 2.0 }
        );
        assert!(parse("{ tcp_port: 1, log_line: x }").is_err());
        assert!(parse("{ after_s: 2, timeout_s: 3 }").is_err());
        assert!(parse("{}").is_err());
    }

    #[test]
    fn unknown_fields_are_errors_with_their_line() {
        let text = "version: 1\nscenarios:\n  - name: startup\n    stepz: []\n";
        let e = parse_scenarios(text, "s.yaml").unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains("stepz"), "{e}");
        assert!(e.to_string().starts_with("s.yaml:4:"), "{e}");
    }

    #[test]
    fn unknown_step_is_an_error_with_its_line() {
        let text = "version: 1\nscenarios:\n  - name: startup\n    steps:\n      - wait_ready: {}\n      - sleep: 3\n";
        let e = parse_scenarios(text, "s.yaml").unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
        assert!(e.message.contains("sleep"), "{e}");
    }

    #[test]
    fn semantic_errors_carry_a_line() {
        let cases = [
            ("version: 2\nscenarios: [{name: a, command: [x]}]\n", "version"),
            ("version: 1\nscenarios:\n  - name: Bad Name\n    command: [x]\n", "Bad Name"),
            ("version: 1\nscenarios:\n  - name: a\n", "needs `steps`"),
            ("version: 1\nscenarios:\n  - name: a\n    steps: [{signal: SIGFOO}]\n", "SIGFOO"),
            ("version: 1\nscenarios:\n  - name: a\n    steps: [{http: {path: x}}]\n", "must start"),
            ("version: 1\nscenarios:\n  - name: a\n    steps: [{http: {path: /, expect_status: \">=9000\"}}]\n", "outside"),
            ("version: 1\nscenarios:\n  - {name: a, command: [x]}\n  - {name: a, command: [y]}\n", "twice"),
            ("version: 1\nscenarios: []\n", "empty"),
        ];
        for (text, needle) in cases {
            let e = parse_scenarios(text, "s.yaml").unwrap_err();
            assert!(e.line.is_some(), "no line for {text:?}: {e}");
            assert!(e.to_string().contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn not_yaml_is_an_error() {
        let e = parse_scenarios("version: [1\n", "s.yaml").unwrap_err();
        assert!(e.line.is_some(), "{e}");
    }

    #[test]
    fn status_expectations() {
        let s: StatusExpectation = ">=400".parse().unwrap();
        assert!(s.accepts(400) && s.accepts(500) && !s.accepts(399));
        let s: StatusExpectation = "204".parse().unwrap();
        assert!(s.accepts(204) && !s.accepts(200));
        assert!("abc".parse::<StatusExpectation>().is_err());
        assert_eq!(s.to_string(), "==204");
    }
}
