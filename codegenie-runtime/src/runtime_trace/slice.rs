//! The runtime_trace slice (docs/architecture.md, "Runtime trace") and the pure aggregator that builds it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::results::{ScenarioOutcome, ScenarioResult};
use crate::probe::Confidence;
use crate::strace::{rules, NetworkEndpoints, ParsedTrace};

/// How much of the scenario set completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceCoverageConfidence {
    /// Every scenario (at least two) completed.
    High,
    /// Some completed.
    Medium,
    /// Only `startup` completed.
    Low,
    /// None completed.
    Unavailable,
}

impl TraceCoverageConfidence {
    /// The probe envelope's confidence (`unavailable` maps to `low`).
    pub fn envelope(self) -> Confidence {
        match self {
            TraceCoverageConfidence::High => Confidence::High,
            TraceCoverageConfidence::Medium => Confidence::Medium,
            TraceCoverageConfidence::Low | TraceCoverageConfidence::Unavailable => Confidence::Low,
        }
    }
}

/// `files_read_at_runtime.summary`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCategorySummary {
    /// Certificates.
    pub cert: u64,
    /// Shared libraries.
    pub shared_lib: u64,
    /// `/etc/...`.
    pub config: u64,
    /// Under `/node_modules/`.
    pub node_modules: u64,
    /// `/usr/`, `/lib*/`, `/bin/`, `/sbin/`, `/opt/`.
    pub system: u64,
    /// Everything else.
    pub app: u64,
    /// All files read.
    pub total: u64,
}

/// `files_read_at_runtime`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesReadAtRuntime {
    /// Counts by category.
    pub summary: FileCategorySummary,
    /// Where the full list is stored (relative to the context folder).
    pub full_list_uri: Option<String>,
}

/// `paths_probed_at_runtime`: successful existence probes (`stat`,
/// `access`, `readlink` families) over every scenario.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathsProbedAtRuntime {
    /// How many distinct paths.
    pub total: u64,
    /// Where the full list is stored (relative to the context folder).
    pub full_list_uri: Option<String>,
}

/// How Node.js chooses its CA roots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeCaMode {
    /// `--use-openssl-ca` (argv or `NODE_OPTIONS`): the system store is read.
    OpensslCa,
    /// Node's own bundled roots (its default, or `--use-bundled-ca`): no
    /// certificate file is needed for public CAs.
    BundledCa,
}

/// `tls_trust`: what tells "certificates not needed" from "certificates not
/// observed".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsTrust {
    /// Node's CA mode, when Node ran.
    pub node_ca_mode: Option<NodeCaMode>,
    /// TLS-related environment of the image (`NODE_EXTRA_CA_CERTS`,
    /// `SSL_CERT_FILE`, `SSL_CERT_DIR`, `NODE_OPTIONS`,
    /// `NODE_TLS_REJECT_UNAUTHORIZED`, `REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE`).
    pub env: BTreeMap<String, String>,
    /// Whether any certificate file was read.
    pub certs_read: bool,
    /// Whether the app tried any outbound connection (under `--network=none`
    /// none succeeds, so a TLS handshake never runs).
    pub outbound_attempted: bool,
    /// `read`, `not_needed` or `not_observed`.
    pub verdict: TlsVerdict,
}

/// What the evidence says about certificates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsVerdict {
    /// Certificates were read: the image must hold them.
    Read,
    /// None read, and none would be: Node uses its bundled roots and nothing
    /// in the environment points at a certificate file.
    NotNeeded,
    /// None read, but TLS may simply not have run: not observed.
    #[default]
    NotObserved,
}

/// Environment variables that decide where TLS roots come from.
const TLS_ENV: &[&str] = &[
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_OPTIONS",
    "NODE_TLS_REJECT_UNAUTHORIZED",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
];

impl TlsTrust {
    /// The facts from the image's environment (`KEY=value`) and the traces.
    pub fn of(image_env: &[String], results: &[ScenarioResult], union: &ParsedTrace) -> TlsTrust {
        let env: BTreeMap<String, String> = image_env
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| TLS_ENV.contains(k))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let node_execs: Vec<&Vec<String>> = results
            .iter()
            .flat_map(|r| &r.execs)
            .filter(|e| rules::basename(&e.path).starts_with("node"))
            .map(|e| &e.argv)
            .collect();
        let openssl_flag = |s: &str| s.contains("--use-openssl-ca");
        let node_ca_mode = (!node_execs.is_empty()).then(|| {
            let by_argv = node_execs.iter().any(|a| a.iter().any(|x| openssl_flag(x)));
            let by_env = env.get("NODE_OPTIONS").is_some_and(|v| openssl_flag(v));
            if by_argv || by_env {
                NodeCaMode::OpensslCa
            } else {
                NodeCaMode::BundledCa
            }
        });
        let certs_read = !union.cert_paths_read.is_empty();
        let points_at_files = ["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "SSL_CERT_DIR"]
            .iter()
            .any(|k| env.contains_key(*k));
        let verdict = if certs_read {
            TlsVerdict::Read
        } else if node_ca_mode == Some(NodeCaMode::BundledCa) && !points_at_files {
            TlsVerdict::NotNeeded
        } else {
            TlsVerdict::NotObserved
        };
        TlsTrust {
            node_ca_mode,
            env,
            certs_read,
            outbound_attempted: !union.network_endpoints_touched.outbound.is_empty(),
            verdict,
        }
    }
}

/// The runtime_trace slice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeTraceSlice {
    /// The folder of raw artifacts (relative to the context folder).
    pub artifact_uri: Option<String>,
    /// Raw trace per scenario (null when none was kept).
    pub per_scenario_artifacts: BTreeMap<String, Option<String>>,
    /// Names of completed scenarios.
    pub scenarios_run: Vec<String>,
    /// Names of failed scenarios.
    pub scenarios_failed: Vec<String>,
    /// Names of skipped scenarios.
    pub scenarios_skipped: Vec<String>,
    /// Union over scenarios, plus interpreters of executed scripts/ELFs.
    pub binaries_executed: BTreeSet<String>,
    /// Union over scenarios.
    pub shared_libs_loaded: BTreeSet<String>,
    /// Union over scenarios.
    pub cert_paths_read: BTreeSet<String>,
    /// Summary of files read, by category.
    pub files_read_at_runtime: FilesReadAtRuntime,
    /// Successful existence probes, counted; the full list is an artifact.
    pub paths_probed_at_runtime: PathsProbedAtRuntime,
    /// `{path as opened or executed: resolved path}` wherever they differ,
    /// over every scenario: a minimal image needs the link and its target.
    pub resolved: BTreeMap<String, String>,
    /// Union over scenarios.
    pub files_written: BTreeSet<String>,
    /// Sum over scenarios, plus execs of scripts whose interpreter is a shell.
    pub shell_invocations: u64,
    /// Union over scenarios.
    pub network_endpoints_touched: NetworkEndpoints,
    /// Union over scenarios.
    pub unix_sockets: BTreeSet<String>,
    /// `{path: interpreter}` for executed paths.
    pub interpreters: BTreeMap<String, String>,
    /// Digest of the image built now.
    pub built_image_digest: Option<String>,
    /// Digest of the image the traces come from.
    pub last_traced_image_digest: Option<String>,
    /// Coverage confidence.
    pub trace_coverage_confidence: TraceCoverageConfidence,
    /// Where TLS roots come from, and whether certificate use was observed.
    pub tls_trust: TlsTrust,
    /// Every scenario's result.
    pub scenarios: Vec<ScenarioResult>,
}

/// What the aggregator needs besides the results.
#[derive(Debug, Clone, Default)]
pub struct AggregateInputs {
    /// Digest of the image built now.
    pub built_image_digest: Option<String>,
    /// Digest of the image traced.
    pub last_traced_image_digest: Option<String>,
    /// Folder of raw artifacts, relative to the context folder (e.g. `raw`).
    pub artifact_uri: Option<String>,
    /// Where the full files-read list is stored, relative to the context folder.
    pub full_list_uri: Option<String>,
    /// Where the full paths-probed list is stored, relative to the context folder.
    pub probed_list_uri: Option<String>,
    /// The traced image's environment (`KEY=value`), for `tls_trust`.
    pub image_env: Vec<String>,
}

/// Build the slice from scenario results (pure).
///
/// - Sets are unioned over every scenario that has a trace (failed ones too:
///   what they touched is still evidence); `interpreters` are merged.
/// - `binaries_executed` also lists the interpreters (`#!` and `PT_INTERP`,
///   followed a few levels) of executed paths.
/// - `shell_invocations` is the parsers' count plus every successful exec of
///   a script whose interpreter is a shell
///   ([`ScenarioResult::script_shell_invocations`], counted per exec).
/// - `files_read_at_runtime.summary` counts the union of files read by category.
pub fn aggregate(results: &[ScenarioResult], inputs: &AggregateInputs) -> RuntimeTraceSlice {
    let mut union = ParsedTrace::default();
    let mut interpreters: BTreeMap<String, String> = BTreeMap::new();
    let mut script_shells = 0u64;
    let mut slice_names = (Vec::new(), Vec::new(), Vec::new());
    let mut per_scenario_artifacts = BTreeMap::new();
    for r in results {
        per_scenario_artifacts.insert(r.name.clone(), r.artifact.clone());
        match r.outcome {
            ScenarioOutcome::Completed => slice_names.0.push(r.name.clone()),
            ScenarioOutcome::Failed(_) => slice_names.1.push(r.name.clone()),
            ScenarioOutcome::Skipped(_) => slice_names.2.push(r.name.clone()),
        }
        for (k, v) in &r.interpreters {
            interpreters.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if let Some(t) = &r.trace {
            union.union(t);
            script_shells += r.script_shell_invocations;
        }
    }
    let mut binaries = union.binaries_executed.clone();
    let mut frontier: Vec<String> = binaries.iter().cloned().collect();
    // Interpreters of interpreters (a script's shell, that shell's loader),
    // bounded like the kernel's own `#!` recursion.
    for _ in 0..4 {
        let next: Vec<String> = frontier
            .iter()
            .filter_map(|b| interpreters.get(b))
            .filter(|i| !binaries.contains(*i))
            .cloned()
            .collect();
        if next.is_empty() {
            break;
        }
        binaries.extend(next.iter().cloned());
        frontier = next;
    }
    let summary = categorize(&union);
    let tls_trust = TlsTrust::of(&inputs.image_env, results, &union);
    let (scenarios_run, scenarios_failed, scenarios_skipped) = slice_names;
    RuntimeTraceSlice {
        artifact_uri: inputs.artifact_uri.clone(),
        per_scenario_artifacts,
        trace_coverage_confidence: coverage_confidence(results),
        scenarios_run,
        scenarios_failed,
        scenarios_skipped,
        binaries_executed: binaries,
        shared_libs_loaded: union.shared_libs_loaded,
        cert_paths_read: union.cert_paths_read,
        files_read_at_runtime: FilesReadAtRuntime {
            summary,
            full_list_uri: inputs.full_list_uri.clone(),
        },
        paths_probed_at_runtime: PathsProbedAtRuntime {
            total: union.paths_probed.len() as u64,
            full_list_uri: inputs.probed_list_uri.clone(),
        },
        resolved: union.resolved,
        files_written: union.files_written,
        shell_invocations: union.shell_invocations + script_shells,
        network_endpoints_touched: union.network_endpoints_touched,
        unix_sockets: union.unix_sockets,
        interpreters,
        built_image_digest: inputs.built_image_digest.clone(),
        last_traced_image_digest: inputs.last_traced_image_digest.clone(),
        tls_trust,
        scenarios: results.to_vec(),
    }
}

/// The union of files read over every scenario, as the list the probe
/// stores at `files_read_at_runtime.full_list_uri`: one path as opened a
/// line, followed by a tab and its resolved path where the two differ.
pub fn files_read_full_list(results: &[ScenarioResult]) -> String {
    let mut union = ParsedTrace::default();
    for t in results.iter().filter_map(|r| r.trace.as_ref()) {
        union.files_read.extend(t.files_read.iter().cloned());
        for (k, v) in &t.resolved {
            union.resolved.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let mut out = String::new();
    for f in &union.files_read {
        out.push_str(f);
        if let Some(r) = union.resolved.get(f) {
            out.push('\t');
            out.push_str(r);
        }
        out.push('\n');
    }
    out
}

/// The union of paths probed over every scenario, one a line: the list
/// stored at `paths_probed_at_runtime.full_list_uri`.
pub fn paths_probed_full_list(results: &[ScenarioResult]) -> String {
    let all: BTreeSet<&String> = results
        .iter()
        .filter_map(|r| r.trace.as_ref())
        .flat_map(|t| &t.paths_probed)
        .collect();
    let mut out = String::new();
    for p in all {
        out.push_str(p);
        out.push('\n');
    }
    out
}

/// Coverage confidence from k of n scenarios completed: none completed,
/// `unavailable`; all of at least two, `high`; only `startup`, `low`; else `medium`.
pub fn coverage_confidence(results: &[ScenarioResult]) -> TraceCoverageConfidence {
    let n = results.len();
    let completed: Vec<&str> = results
        .iter()
        .filter(|r| r.outcome == ScenarioOutcome::Completed)
        .map(|r| r.name.as_str())
        .collect();
    match completed.as_slice() {
        [] => TraceCoverageConfidence::Unavailable,
        c if c.len() == n && n >= 2 => TraceCoverageConfidence::High,
        ["startup"] => TraceCoverageConfidence::Low,
        _ => TraceCoverageConfidence::Medium,
    }
}

/// A file's category (first match wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileCategory {
    /// In `cert_paths_read`.
    Cert,
    /// In `shared_libs_loaded` (mapped executable); a `.so` name alone is
    /// not a library (`/etc/ld.so.cache` is configuration).
    SharedLib,
    /// Under `/etc/`.
    Config,
    /// Contains `/node_modules/`.
    NodeModules,
    /// Under `/usr/`, `/lib*/`, `/bin/`, `/sbin/`, `/opt/`.
    System,
    /// Anything else.
    App,
}

/// Categorizes a file read, given the trace's certificate and library sets.
pub fn category(path: &str, certs: &BTreeSet<String>, libs: &BTreeSet<String>) -> FileCategory {
    if certs.contains(path) {
        FileCategory::Cert
    } else if libs.contains(path) {
        FileCategory::SharedLib
    } else if path.starts_with("/etc/") {
        FileCategory::Config
    } else if path.contains("/node_modules/") {
        FileCategory::NodeModules
    } else if is_system(path) {
        FileCategory::System
    } else {
        FileCategory::App
    }
}

fn is_system(path: &str) -> bool {
    if ["/usr/", "/bin/", "/sbin/", "/opt/"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        return true;
    }
    // `/lib/`, `/lib64/`, `/lib32/`, `/libx32/`.
    path.strip_prefix("/lib").is_some_and(|r| r.contains('/'))
}

fn categorize(t: &ParsedTrace) -> FileCategorySummary {
    let mut s = FileCategorySummary::default();
    for f in &t.files_read {
        match category(f, &t.cert_paths_read, &t.shared_libs_loaded) {
            FileCategory::Cert => s.cert += 1,
            FileCategory::SharedLib => s.shared_lib += 1,
            FileCategory::Config => s.config += 1,
            FileCategory::NodeModules => s.node_modules += 1,
            FileCategory::System => s.system += 1,
            FileCategory::App => s.app += 1,
        }
        s.total += 1;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime_trace::results::ScenarioReason;

    fn result(name: &str, outcome: ScenarioOutcome) -> ScenarioResult {
        crate::runtime_trace::sequence::not_run(name, outcome)
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn confidence_table() {
        use ScenarioOutcome::*;
        use TraceCoverageConfidence as C;
        let failed = || Failed(ScenarioReason::ScenarioTimeout { elapsed_ms: 5 });
        let skipped = || Skipped(ScenarioReason::AggregateTimeout);
        type Case<'a> = (&'a str, Vec<(&'a str, ScenarioOutcome)>, C, Confidence);
        let cases: Vec<Case> = vec![
            ("no scenarios", vec![], C::Unavailable, Confidence::Low),
            (
                "none completed",
                vec![("startup", failed()), ("smoke_test", skipped())],
                C::Unavailable,
                Confidence::Low,
            ),
            (
                "all skipped",
                vec![("startup", Skipped(ScenarioReason::ImageDigestUnresolved))],
                C::Unavailable,
                Confidence::Low,
            ),
            (
                "all of two",
                vec![("startup", Completed), ("smoke_test", Completed)],
                C::High,
                Confidence::High,
            ),
            (
                "all of five",
                [
                    "startup",
                    "smoke_test",
                    "healthcheck",
                    "shutdown",
                    "error_path",
                ]
                .iter()
                .map(|n| (*n, Completed))
                .collect(),
                C::High,
                Confidence::High,
            ),
            (
                "only startup of several",
                vec![
                    ("startup", Completed),
                    ("smoke_test", failed()),
                    ("shutdown", skipped()),
                ],
                C::Low,
                Confidence::Low,
            ),
            (
                "startup alone, n = 1",
                vec![("startup", Completed)],
                C::Low,
                Confidence::Low,
            ),
            (
                "smoke only",
                vec![("startup", failed()), ("smoke_test", Completed)],
                C::Medium,
                Confidence::Medium,
            ),
            (
                "one non-startup, n = 1",
                vec![("batch_job", Completed)],
                C::Medium,
                Confidence::Medium,
            ),
            (
                "some completed",
                vec![
                    ("startup", Completed),
                    ("smoke_test", Completed),
                    ("shutdown", failed()),
                ],
                C::Medium,
                Confidence::Medium,
            ),
        ];
        for (label, scenarios, want, envelope) in cases {
            let results: Vec<_> = scenarios.into_iter().map(|(n, o)| result(n, o)).collect();
            let got = coverage_confidence(&results);
            assert_eq!(got, want, "{label}");
            assert_eq!(got.envelope(), envelope, "{label}");
            assert_eq!(
                aggregate(&results, &AggregateInputs::default()).trace_coverage_confidence,
                want,
                "{label}"
            );
        }
    }

    #[test]
    fn tls_trust_tells_not_needed_from_not_observed() {
        let node = |argv: &[&str]| {
            let mut r = result("startup", ScenarioOutcome::Completed);
            r.execs = vec![crate::strace::ExecRecord {
                path: "/usr/bin/node".into(),
                argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            }];
            r
        };
        let none = ParsedTrace::default();
        let t = TlsTrust::of(&[], &[node(&["node", "/app/server.js"])], &none);
        assert_eq!(t.node_ca_mode, Some(NodeCaMode::BundledCa));
        assert_eq!(t.verdict, TlsVerdict::NotNeeded);

        let t = TlsTrust::of(&[], &[node(&["node", "--use-openssl-ca", "x.js"])], &none);
        assert_eq!(t.node_ca_mode, Some(NodeCaMode::OpensslCa));
        assert_eq!(t.verdict, TlsVerdict::NotObserved);

        let env = [
            "NODE_EXTRA_CA_CERTS=/etc/corp.pem".to_owned(),
            "PATH=/bin".to_owned(),
        ];
        let t = TlsTrust::of(&env, &[node(&["node", "x.js"])], &none);
        assert_eq!(t.env.keys().collect::<Vec<_>>(), ["NODE_EXTRA_CA_CERTS"]);
        assert_eq!(t.verdict, TlsVerdict::NotObserved);

        let read = ParsedTrace {
            cert_paths_read: set(&["/etc/ssl/certs/ca-certificates.crt"]),
            ..Default::default()
        };
        let t = TlsTrust::of(&[], &[result("startup", ScenarioOutcome::Completed)], &read);
        assert_eq!((t.node_ca_mode, t.verdict), (None, TlsVerdict::Read));
    }

    #[test]
    fn categories_first_match_wins() {
        let certs = set(&["/etc/ssl/certs/ca.pem", "/app/tls/server.crt"]);
        let libs = set(&["/usr/lib/libc.so.6"]);
        let cases = [
            ("/etc/ssl/certs/ca.pem", FileCategory::Cert),
            ("/app/tls/server.crt", FileCategory::Cert),
            ("/usr/lib/libc.so.6", FileCategory::SharedLib),
            // Read, not mapped executable: a data file, whatever its name.
            ("/app/node_modules/x/binding.so", FileCategory::NodeModules),
            ("/etc/ld.so.cache", FileCategory::Config),
            ("/etc/hosts", FileCategory::Config),
            (
                "/app/node_modules/express/index.js",
                FileCategory::NodeModules,
            ),
            ("/usr/share/zoneinfo/UTC", FileCategory::System),
            ("/lib64/x", FileCategory::System),
            ("/lib/x", FileCategory::System),
            ("/bin/x", FileCategory::System),
            ("/sbin/x", FileCategory::System),
            ("/opt/x/y", FileCategory::System),
            ("/app/index.js", FileCategory::App),
            ("relative.txt", FileCategory::App),
            ("/libfile", FileCategory::App),
        ];
        for (p, want) in cases {
            assert_eq!(category(p, &certs, &libs), want, "{p}");
        }
    }

    #[test]
    fn unions_interpreters_and_shell_counts() {
        let mut a = result("startup", ScenarioOutcome::Completed);
        let mut t = ParsedTrace {
            binaries_executed: set(&["/app/entry.sh", "/usr/bin/node"]),
            ..Default::default()
        };
        t.files_read = set(&[
            "/etc/ssl/certs/ca.pem",
            "/usr/lib/libc.so.6",
            "/app/index.js",
            "/etc/hosts",
        ]);
        t.cert_paths_read = set(&["/etc/ssl/certs/ca.pem"]);
        t.shared_libs_loaded = set(&["/usr/lib/libc.so.6"]);
        t.shell_invocations = 2;
        t.network_endpoints_touched.outbound = set(&["127.0.0.1:5432"]);
        a.trace = Some(t);
        // `/app/entry.sh` (run by /bin/sh) exec'd three times.
        a.script_shell_invocations = 3;
        a.artifact = Some("raw/startup.trace".into());
        a.interpreters = [
            ("/app/entry.sh", "/bin/sh"),
            ("/bin/sh", "/lib/ld-musl-x86_64.so.1"),
            ("/usr/bin/node", "/lib/ld-musl-x86_64.so.1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let mut b = result(
            "smoke_test",
            ScenarioOutcome::Failed(ScenarioReason::UnexpectedExit { code: 3 }),
        );
        let mut t = ParsedTrace {
            files_read: set(&["/app/index.js", "/app/node_modules/a/b.js"]),
            ..Default::default()
        };
        t.files_written = set(&["/tmp/out"]);
        t.shell_invocations = 1;
        t.network_endpoints_touched.inbound = set(&["[::1]:3000"]);
        t.unix_sockets = set(&["@x"]);
        b.trace = Some(t);
        let c = result(
            "shutdown",
            ScenarioOutcome::Skipped(ScenarioReason::AggregateTimeout),
        );
        let inputs = AggregateInputs {
            built_image_digest: Some("sha256:aa".into()),
            last_traced_image_digest: Some("sha256:aa".into()),
            artifact_uri: Some("raw".into()),
            full_list_uri: Some("raw/files_read.json".into()),
            ..Default::default()
        };
        let results = vec![a, b, c];
        let s = aggregate(&results, &inputs);
        assert_eq!(s.scenarios_run, ["startup"]);
        assert_eq!(s.scenarios_failed, ["smoke_test"]);
        assert_eq!(s.scenarios_skipped, ["shutdown"]);
        assert_eq!(
            s.per_scenario_artifacts.get("startup"),
            Some(&Some("raw/startup.trace".into()))
        );
        assert_eq!(s.per_scenario_artifacts.get("shutdown"), Some(&None));
        assert_eq!(
            s.binaries_executed,
            set(&[
                "/app/entry.sh",
                "/bin/sh",
                "/lib/ld-musl-x86_64.so.1",
                "/usr/bin/node"
            ])
        );
        // 2 + 1 from the parsers, + 3 execs of the script run by a shell.
        assert_eq!(s.shell_invocations, 6);
        assert_eq!(
            s.files_read_at_runtime.summary,
            FileCategorySummary {
                cert: 1,
                shared_lib: 1,
                config: 1,
                node_modules: 1,
                system: 0,
                app: 1,
                total: 5
            }
        );
        assert_eq!(
            s.files_read_at_runtime.full_list_uri.as_deref(),
            Some("raw/files_read.json")
        );
        assert_eq!(files_read_full_list(&results).lines().count(), 5);
        assert_eq!(s.files_written, set(&["/tmp/out"]));
        assert_eq!(
            s.network_endpoints_touched.outbound,
            set(&["127.0.0.1:5432"])
        );
        assert_eq!(s.network_endpoints_touched.inbound, set(&["[::1]:3000"]));
        assert_eq!(s.unix_sockets, set(&["@x"]));
        assert_eq!(s.trace_coverage_confidence, TraceCoverageConfidence::Low);
        assert_eq!(s.built_image_digest.as_deref(), Some("sha256:aa"));
        assert_eq!(s.artifact_uri.as_deref(), Some("raw"));
        assert_eq!(s.scenarios.len(), 3);
        assert_eq!(s.interpreters.len(), 3);
    }
}
