//! Distroless blockers as SARIF 2.1.0 (the `serde-sarif` types, generated
//! from the OASIS schema): tool `codegenie`, one rule per blocker kind, one
//! result per blocker, located at the repository's Dockerfile line that
//! causes it ([`locate`]): the final image's `ENTRYPOINT`/`CMD` for a shell,
//! its `USER` (or, without one, the final stage's `FROM`) for root, the
//! `EXPOSE` of the port for a privileged port, else the Dockerfile's first
//! line.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_sarif::sarif::{
    ArtifactLocation, Location, Message, MultiformatMessageString, PhysicalLocation, Region,
    ReportingConfiguration, ReportingDescriptor, Result as SarifResult, ResultLevel, Run, Sarif,
    Tool, ToolComponent,
};

use crate::dockerfile::{CommandForm, Dockerfile};
use crate::minimal::distroless::Blocker;
use crate::portfolio::report::Blocker as FleetBlocker;
use crate::strace::rules::{basename, is_shell};

use super::ReportError;

/// The driver's name.
pub const TOOL_NAME: &str = "codegenie";
/// The base id relative artifact paths are given against (the folder
/// codegenie ran in), as GitHub code scanning expects.
pub const SRCROOT: &str = "%SRCROOT%";

/// What in the Dockerfile a blocker comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// A shell ran: the program and arguments it ran with (matched against
    /// the words of `ENTRYPOINT` and `CMD`).
    Shell {
        /// The shell's path and its argv.
        words: Vec<String>,
    },
    /// The image runs as root.
    Root,
    /// The app bound a port below 1024.
    PrivilegedPort {
        /// The port.
        port: Option<u16>,
    },
    /// Nothing in the Dockerfile says where: its first line.
    Elsewhere,
}

/// One blocker, ready to be a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Its kind (`shell`): the rule.
    pub kind: String,
    /// What shows it, as a sentence (values from the evidence in JSON form).
    pub message: String,
    /// Where it comes from.
    pub cause: Cause,
}

/// One repository's blockers and its Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFindings {
    /// The Dockerfile as it is reached from the folder codegenie ran in
    /// (relative, or absolute).
    pub dockerfile: PathBuf,
    /// Its text; `None` when it could not be read (every result is then on
    /// its first line).
    pub text: Option<String>,
    /// Its blockers.
    pub findings: Vec<Finding>,
}

impl RepoFindings {
    /// The findings of `blockers` for the repository at `root` (as the
    /// user named it), reading `<root>/Dockerfile`.
    pub fn read(root: &Path, findings: Vec<Finding>) -> RepoFindings {
        let dockerfile = root.join("Dockerfile");
        let text = match std::fs::read(&dockerfile) {
            Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            Err(e) => {
                tracing::warn!(
                    "{}: {e}; its SARIF results are placed on line 1",
                    dockerfile.display()
                );
                None
            }
        };
        RepoFindings {
            dockerfile,
            text,
            findings,
        }
    }
}

/// A rule's default level (the generated `ResultLevel` is not `Copy`).
#[derive(Debug, Clone, Copy)]
enum Level {
    Error,
    Warning,
    Note,
}

impl Level {
    fn sarif(self) -> ResultLevel {
        match self {
            Level::Error => ResultLevel::Error,
            Level::Warning => ResultLevel::Warning,
            Level::Note => ResultLevel::Note,
        }
    }
}

/// A rule: one blocker kind.
struct RuleDef {
    id: &'static str,
    name: &'static str,
    short: &'static str,
    help: &'static str,
    level: Level,
}

/// Every blocker kind `minimize` reports, in the driver's order.
const RULES: &[RuleDef] = &[
    RuleDef {
        id: "shell",
        name: "ShellAtRuntime",
        short: "A shell ran; distroless images have none.",
        help: "Use the exec form of ENTRYPOINT/CMD with the app's own binary, and replace shell scripts with the app's runtime.",
        level: Level::Error,
    },
    RuleDef {
        id: "extra_binary",
        name: "ExtraBinary",
        short: "A program ran besides the app's own runtime.",
        help: "A distroless base holds only the runtime: ship the program in the image, or do without it.",
        level: Level::Warning,
    },
    RuleDef {
        id: "root_user",
        name: "RootUser",
        short: "The image runs as root; distroless images offer nonroot.",
        help: "Set USER to an unprivileged user (distroless: 65532, nonroot).",
        level: Level::Error,
    },
    RuleDef {
        id: "privileged_port",
        name: "PrivilegedPort",
        short: "The app binds a port below 1024, which needs root or a capability.",
        help: "Listen on a port of 1024 or above and map it in the deployment.",
        level: Level::Error,
    },
    RuleDef {
        id: "write_outside_tmp",
        name: "WriteOutsideTmp",
        short: "The app writes outside /tmp; a read-only or nonroot filesystem may refuse it.",
        help: "Write to /tmp or a volume.",
        level: Level::Warning,
    },
    RuleDef {
        id: "tls_trust_unobserved",
        name: "TlsTrustUnobserved",
        short: "No certificate was read: whether TLS needs a trust store was not observed.",
        help: "Add a scenario that makes an outbound TLS request, or ship the certificates.",
        level: Level::Note,
    },
    RuleDef {
        id: "setuid",
        name: "SetuidFile",
        short: "The minimal image keeps a file with the setuid or setgid bit.",
        help: "Drop the bit (chmod u-s,g-s) or the file; a distroless nonroot image needs neither.",
        level: Level::Warning,
    },
];

fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The findings of `minimize`'s blockers.
pub fn readiness_findings(blockers: &[Blocker]) -> Vec<Finding> {
    blockers
        .iter()
        .map(|b| {
            let (kind, message, cause) = match b {
                Blocker::Shell {
                    path,
                    argv,
                    scenario,
                } => (
                    "shell",
                    format!(
                        "a shell ran: {} with argv {} (first in scenario {})",
                        json(path),
                        json(argv),
                        json(scenario)
                    ),
                    Cause::Shell {
                        words: std::iter::once(path.clone())
                            .chain(argv.iter().cloned())
                            .collect(),
                    },
                ),
                Blocker::ExtraBinary {
                    path,
                    argv,
                    scenario,
                } => (
                    "extra_binary",
                    format!(
                        "a program besides the app's runtime ran: {} with argv {} (first in scenario {})",
                        json(path),
                        json(argv),
                        json(scenario)
                    ),
                    Cause::Elsewhere,
                ),
                Blocker::RootUser { user } => (
                    "root_user",
                    format!("the image runs as root (USER {})", json(user)),
                    Cause::Root,
                ),
                Blocker::PrivilegedPort { address } => (
                    "privileged_port",
                    format!("the app binds {}, a port below 1024", json(address)),
                    Cause::PrivilegedPort {
                        port: port_of(address),
                    },
                ),
                Blocker::WriteOutsideTmp { path, files } => (
                    "write_outside_tmp",
                    format!("the app writes {files} file(s) in {} outside /tmp", json(path)),
                    Cause::Elsewhere,
                ),
                Blocker::TlsTrustUnobserved { detail } => {
                    ("tls_trust_unobserved", detail.clone(), Cause::Elsewhere)
                }
                Blocker::Setuid { path, mode } => (
                    "setuid",
                    format!("the image keeps {} with mode {mode}", json(path)),
                    Cause::Elsewhere,
                ),
                Blocker::WriteNeedsRoot { path, user } => (
                    "write_needs_root",
                    format!(
                        "the app writes {} where the base's user {} may not",
                        json(path),
                        json(user)
                    ),
                    Cause::Elsewhere,
                ),
            };
            Finding {
                kind: kind.to_owned(),
                message,
                cause,
            }
        })
        .collect()
}

/// The findings of a portfolio repository's blockers (kind and evidence
/// lines, from `minimize` or from the trace alone).
pub fn fleet_findings(blockers: &[FleetBlocker]) -> Vec<Finding> {
    blockers
        .iter()
        .map(|b| {
            // Evidence lines are `key: value` (from minimize) or bare values.
            let values: Vec<String> = b
                .evidence
                .iter()
                .map(|e| match e.split_once(": ") {
                    Some((k, v)) if !k.contains(' ') => v.to_owned(),
                    _ => e.clone(),
                })
                .collect();
            let cause = match b.kind.as_str() {
                "shell" => Cause::Shell {
                    words: values
                        .iter()
                        .flat_map(|v| match serde_json::from_str::<Vec<String>>(v) {
                            Ok(argv) => argv,
                            Err(_) => vec![v.clone()],
                        })
                        .collect(),
                },
                "root_user" => Cause::Root,
                "privileged_port" => Cause::PrivilegedPort {
                    port: values.iter().find_map(|v| port_of(v)),
                },
                _ => Cause::Elsewhere,
            };
            let message = if b.evidence.is_empty() {
                format!("blocker {}", json(&b.kind))
            } else {
                format!("blocker {}: {}", json(&b.kind), json(&b.evidence))
            };
            Finding {
                kind: b.kind.clone(),
                message,
                cause,
            }
        })
        .collect()
}

/// The port of `0.0.0.0:80` or `[::]:80`, when below 1024.
fn port_of(address: &str) -> Option<u16> {
    address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p < 1024)
}

/// The 1-based line of `d` that causes a blocker (see the module docs).
/// Total: any Dockerfile, even an empty one, gives a line.
pub fn locate(d: &Dockerfile, cause: &Cause) -> usize {
    let first = 1;
    match cause {
        Cause::Shell { words } => {
            let names: Vec<&str> = words.iter().map(|w| basename(w)).collect();
            let ep = d.effective("ENTRYPOINT");
            let cmd = d.effective("CMD");
            let form =
                |x: Option<&crate::dockerfile::Instruction>| x.map(|x| CommandForm::of(&x.args));
            let (ep_form, cmd_form) = (form(ep), form(cmd));
            // Docker runs a shell form through /bin/sh -c.
            if let (Some(x), Some(CommandForm::Shell(_))) = (ep, &ep_form) {
                return x.line;
            }
            if let (None, Some(x), Some(CommandForm::Shell(_))) = (ep, cmd, &cmd_form) {
                return x.line;
            }
            // An exec form whose program is a shell, or what the shell ran.
            let names_it = |f: &Option<CommandForm>| match f {
                Some(CommandForm::Exec(w)) => w.first().is_some_and(|p| {
                    let p = basename(p);
                    is_shell(p) || names.contains(&p)
                }),
                _ => false,
            };
            if let Some(x) = ep.filter(|_| names_it(&ep_form)) {
                return x.line;
            }
            if let Some(x) = cmd.filter(|_| names_it(&cmd_form)) {
                return x.line;
            }
            ep.or(cmd).map_or(first, |x| x.line)
        }
        Cause::Root => d
            .effective("USER")
            .map(|x| x.line)
            .or_else(|| d.final_from_line())
            .unwrap_or(first),
        Cause::PrivilegedPort { port } => port
            .and_then(|p| {
                d.in_final_chain("EXPOSE")
                    .into_iter()
                    .find(|x| x.args.split_whitespace().any(|w| exposes(w, p)))
            })
            .map_or(first, |x| x.line),
        Cause::Elsewhere => first,
    }
}

/// Whether an `EXPOSE` word (`80`, `80/tcp`, `80-90/udp`) covers `port`.
fn exposes(word: &str, port: u16) -> bool {
    let spec = word.split('/').next().unwrap_or(word);
    match spec.split_once('-') {
        Some((a, b)) => match (a.parse::<u16>(), b.parse::<u16>()) {
            (Ok(a), Ok(b)) => (a..=b).contains(&port),
            _ => false,
        },
        None => spec.parse::<u16>() == Ok(port),
    }
}

/// `path` as a URI: relative paths lexically normalised and given against
/// [`SRCROOT`], absolute ones as `file://` URIs; every byte outside the
/// unreserved set and `/` is percent-encoded.
fn artifact_location(path: &Path) -> ArtifactLocation {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if parts.last().is_some_and(|p| p != "..") {
                    parts.pop();
                } else if !path.is_absolute() {
                    parts.push("..".to_owned());
                }
            }
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
        }
    }
    let encoded: Vec<String> = parts.iter().map(|p| percent_encode(p)).collect();
    if path.is_absolute() {
        ArtifactLocation::builder()
            .uri(format!("file:///{}", encoded.join("/")))
            .build()
    } else {
        ArtifactLocation::builder()
            .uri(encoded.join("/"))
            .uri_base_id(SRCROOT)
            .build()
    }
}

fn percent_encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn text(s: &str) -> MultiformatMessageString {
    MultiformatMessageString::builder().text(s).build()
}

/// The SARIF log of `repos`: one run, tool `codegenie`, every known rule
/// (and one for any other kind met), one result per finding. `srcroot` is
/// the folder relative Dockerfile paths start from (the working folder),
/// named in `originalUriBaseIds` when given.
pub fn to_sarif(repos: &[RepoFindings], srcroot: Option<&Path>) -> Sarif {
    let mut rules: Vec<ReportingDescriptor> = RULES
        .iter()
        .map(|r| {
            ReportingDescriptor::builder()
                .id(r.id)
                .name(r.name)
                .short_description(text(r.short))
                .help(text(r.help))
                .default_configuration(
                    ReportingConfiguration::builder()
                        .level(serde_json::to_value(r.level.sarif()).unwrap_or_default())
                        .build(),
                )
                .build()
        })
        .collect();
    let mut index: BTreeMap<String, (usize, Level)> = RULES
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.to_owned(), (i, r.level)))
        .collect();
    let mut results = Vec::new();
    for repo in repos {
        let parsed = repo.text.as_deref().map(Dockerfile::parse);
        for f in &repo.findings {
            let (i, level) = match index.get(&f.kind) {
                Some(x) => *x,
                None => {
                    // A kind this build has no rule text for still gets a rule.
                    rules.push(
                        ReportingDescriptor::builder()
                            .id(f.kind.as_str())
                            .short_description(text("A blocker for a distroless base."))
                            .build(),
                    );
                    let x = (rules.len() - 1, Level::Warning);
                    index.insert(f.kind.clone(), x);
                    x
                }
            };
            let line = parsed.as_ref().map_or(1, |d| locate(d, &f.cause));
            let location = Location::builder()
                .physical_location(
                    PhysicalLocation::builder()
                        .artifact_location(artifact_location(&repo.dockerfile))
                        .region(Region::builder().start_line(line as i64).build())
                        .build(),
                )
                .build();
            results.push(
                SarifResult::builder()
                    .rule_id(f.kind.as_str())
                    .rule_index(i as i64)
                    .level(level.sarif())
                    .message(Message::builder().text(f.message.as_str()).build())
                    .locations(vec![location])
                    .build(),
            );
        }
    }
    let driver = ToolComponent::builder()
        .name(TOOL_NAME)
        .version(env!("CARGO_PKG_VERSION"))
        .information_uri("https://docs.rs/codegenie")
        .rules(rules)
        .build();
    let run = Run::builder()
        .tool(Tool::builder().driver(driver).build())
        .results(results);
    let run = match srcroot {
        Some(root) => {
            let mut uri = artifact_location(root).uri.unwrap_or_default();
            if !uri.ends_with('/') {
                uri.push('/');
            }
            let mut ids = BTreeMap::new();
            ids.insert(
                SRCROOT.to_owned(),
                ArtifactLocation::builder().uri(uri).build(),
            );
            run.original_uri_base_ids(ids).build()
        }
        None => run.build(),
    };
    Sarif::builder()
        .schema("https://json.schemastore.org/sarif-2.1.0.json")
        .version(serde_json::json!("2.1.0"))
        .runs(vec![run])
        .build()
}

/// The SARIF log as pretty JSON.
pub fn to_json(log: &Sarif) -> Result<String, ReportError> {
    serde_json::to_string_pretty(log).map_err(ReportError::Sarif)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, cause: Cause) -> usize {
        locate(&Dockerfile::parse(text), &cause)
    }

    fn shell(words: &[&str]) -> Cause {
        Cause::Shell {
            words: words.iter().map(|w| (*w).to_owned()).collect(),
        }
    }

    #[test]
    fn a_shell_in_a_continued_entrypoint_is_on_its_first_line() {
        let df = "# app\nFROM scratch\nCOPY . /\nENTRYPOINT [\"/bin/sh\", \\\n    \"-c\", \\\n    \"exec /app/server\"]\nCMD [\"--port\", \"8080\"]\n";
        assert_eq!(
            line(df, shell(&["/bin/sh", "sh", "-c", "exec /app/server"])),
            4
        );
        // Shell form, continued, under a backtick escape.
        let df = "# escape=`\nFROM scratch\nCMD [\"x\"]\nENTRYPOINT /app/start.sh `\n  --port 80\n";
        assert_eq!(line(df, shell(&["/bin/sh"])), 4);
    }

    #[test]
    fn the_shell_of_an_earlier_stage_is_not_reported() {
        let df = "FROM debian AS build\nENTRYPOINT [\"/bin/sh\"]\nFROM scratch\nCOPY --from=build /app /app\nCMD [\"/app/start.sh\"]\n";
        assert_eq!(line(df, shell(&["/bin/sh", "/app/start.sh"])), 5);
        // Control: built on that stage, the final image inherits it.
        let df = "FROM debian AS build\nENTRYPOINT [\"/bin/sh\"]\nFROM build\nCOPY x /x\n";
        assert_eq!(line(df, shell(&["/bin/sh"])), 2);
        // No ENTRYPOINT or CMD at all: the Dockerfile's first line.
        assert_eq!(
            line(
                "# c\nFROM a AS x\nENTRYPOINT sh\nFROM scratch\n",
                shell(&["sh"])
            ),
            1
        );
    }

    #[test]
    fn the_shell_is_blamed_on_the_instruction_that_runs_it() {
        // tini runs CMD, and CMD is the shell.
        let df = "FROM a\nENTRYPOINT [\"tini\", \"--\"]\nCMD [\"sh\", \"-c\", \"x\"]\n";
        assert_eq!(line(df, shell(&["/bin/sh", "sh", "-c", "x"])), 3);
        // A shell-form CMD without ENTRYPOINT.
        assert_eq!(line("FROM a\nCMD node server.js\n", shell(&["/bin/sh"])), 2);
        // A script the shell interprets.
        let df = "FROM a\nCMD [\"--port\", \"1\"]\nENTRYPOINT [\"/app/start.sh\"]\n";
        assert_eq!(line(df, shell(&["/bin/sh", "/app/start.sh"])), 3);
    }

    #[test]
    fn root_is_the_user_line_or_the_final_from() {
        assert_eq!(
            line("FROM a\nUSER 1000\nFROM b\nUSER root\nCMD x\n", Cause::Root),
            4
        );
        assert_eq!(line("FROM a\nUSER 1000\nFROM b\nCMD x\n", Cause::Root), 3);
        assert_eq!(line("# no FROM\nCMD x\n", Cause::Root), 1);
    }

    #[test]
    fn a_privileged_port_is_its_expose() {
        let df = "FROM a\nEXPOSE 8080\nEXPOSE 443/tcp \\\n  80-90/udp\n";
        let port = |p| Cause::PrivilegedPort { port: Some(p) };
        assert_eq!(line(df, port(80)), 3);
        assert_eq!(line(df, port(443)), 3);
        assert_eq!(line(df, port(22)), 1);
        assert_eq!(line(df, Cause::PrivilegedPort { port: None }), 1);
        assert_eq!(line(df, Cause::Elsewhere), 1);
    }

    #[test]
    fn results_name_their_rule_and_a_relative_uri() {
        let repo = RepoFindings {
            dockerfile: PathBuf::from("./svc/../my svc/Dockerfile"),
            text: Some("FROM a\nUSER root\n".into()),
            findings: readiness_findings(&[
                Blocker::RootUser {
                    user: "root".into(),
                },
                Blocker::PrivilegedPort {
                    address: "0.0.0.0:80".into(),
                },
            ]),
        };
        let v = serde_json::to_value(to_sarif(&[repo], Some(Path::new("/w")))).unwrap();
        let run = &v["runs"][0];
        assert_eq!(run["tool"]["driver"]["name"], "codegenie");
        let r = &run["results"][0];
        assert_eq!(r["ruleId"], "root_user");
        assert_eq!(
            run["tool"]["driver"]["rules"][r["ruleIndex"].as_u64().unwrap() as usize]["id"],
            "root_user"
        );
        let loc = &r["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "my%20svc/Dockerfile");
        assert_eq!(loc["artifactLocation"]["uriBaseId"], SRCROOT);
        assert_eq!(loc["region"]["startLine"], 2);
        assert_eq!(run["originalUriBaseIds"][SRCROOT]["uri"], "file:///w/");
        assert_eq!(run["results"][1]["ruleId"], "privileged_port");
        assert_eq!(
            run["results"][1]["locations"][0]["physicalLocation"]["region"]["startLine"],
            1
        );
    }

    #[test]
    fn fleet_blockers_are_located_from_their_evidence() {
        let f = fleet_findings(&[
            FleetBlocker {
                kind: "privileged_port".into(),
                evidence: vec!["0.0.0.0:80".into()],
            },
            FleetBlocker {
                kind: "shell".into(),
                evidence: vec!["path: /bin/sh".into(), "argv: [\"/app/run.sh\"]".into()],
            },
            FleetBlocker {
                kind: "setuid".into(),
                evidence: vec![],
            },
        ]);
        assert_eq!(f[0].cause, Cause::PrivilegedPort { port: Some(80) });
        assert_eq!(f[1].cause, shell(&["/bin/sh", "/app/run.sh"]));
        assert_eq!(f[2].cause, Cause::Elsewhere);
        let repo = RepoFindings {
            dockerfile: "Dockerfile".into(),
            text: None,
            findings: f,
        };
        let v = serde_json::to_value(to_sarif(&[repo], None)).unwrap();
        // A kind without rule text still has its rule.
        let rules = v["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.last().unwrap()["id"], "setuid");
        assert_eq!(v["runs"][0]["results"][2]["ruleIndex"], rules.len() - 1);
    }

    proptest::proptest! {
        #[test]
        fn locating_is_total(text in "(?s)(FROM|ENTRYPOINT|CMD|USER|EXPOSE|RUN <<E|E|# escape=`|#|\\\\|`|\\[|\"|\n| |[a-z0-9/]){0,80}") {
            let d = Dockerfile::parse(&text);
            let n = text.split('\n').count();
            for cause in [shell(&["sh"]), Cause::Root, Cause::PrivilegedPort { port: Some(80) }, Cause::Elsewhere] {
                let l = locate(&d, &cause);
                proptest::prop_assert!(l >= 1 && l <= n.max(1), "{l} of {n}");
            }
        }

        #[test]
        fn parsing_any_text_is_total(text in "(?s).{0,400}") {
            let d = Dockerfile::parse(&text);
            let n = text.split('\n').count();
            for x in &d.instructions {
                proptest::prop_assert!(x.line >= 1 && x.line <= n);
            }
            let _ = locate(&d, &Cause::Root);
        }
    }
}
