//! What a distroless base asks of the app: what stands between the app and a distroless base
//! (blockers, each with its evidence), what such a base would need added,
//! and a proposed exec-form Dockerfile. Pure: everything comes from the
//! trace's slice and the image's config.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::engine::ImageConfig;
use crate::runtime_trace::slice::TlsVerdict;
use crate::runtime_trace::RuntimeTraceSlice;
use crate::strace::rules::{basename, is_shell};

/// Something a distroless base does not offer that the app used.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Blocker {
    /// A shell ran (distroless images have none).
    Shell {
        /// The shell executed.
        path: String,
        /// What it was asked to run.
        argv: Vec<String>,
        /// The first scenario it ran in.
        scenario: String,
    },
    /// A program ran besides the app's own runtime.
    ExtraBinary {
        /// The program.
        path: String,
        /// Its arguments.
        argv: Vec<String>,
        /// The first scenario it ran in.
        scenario: String,
    },
    /// The image runs as root (distroless images offer `nonroot`).
    RootUser {
        /// The image's `USER` (empty: root).
        user: String,
    },
    /// The app binds a port below 1024 (needs root or a capability).
    PrivilegedPort {
        /// The address bound.
        address: String,
    },
    /// The app writes outside `/tmp` (a read-only or nonroot filesystem
    /// may refuse it): one blocker per folder written into.
    WriteOutsideTmp {
        /// The folder written into (`/app/__pycache__`).
        path: String,
        /// How many files the app wrote there.
        files: usize,
    },
    /// No certificate was read, yet TLS may simply not have run.
    TlsTrustUnobserved {
        /// Why it is unknown.
        detail: String,
    },
    /// The minimal image keeps a file with the setuid or setgid bit: it runs
    /// with its owner's (group's) rights, which a distroless `nonroot` image
    /// does not hand out.
    Setuid {
        /// The kept file.
        path: String,
        /// Its mode, in octal (`4755`).
        mode: String,
    },
    /// The app wrote where the base's non-root user may not (a root-owned
    /// folder): the minimal image keeps the original's user.
    WriteNeedsRoot {
        /// The file written.
        path: String,
        /// The user that could not write it.
        user: String,
    },
}

/// One [`Blocker::Setuid`] per kept file of `kept` (path → mode) whose mode
/// has the setuid or setgid bit.
pub fn setuid_blockers(kept: &BTreeMap<String, u32>) -> Vec<Blocker> {
    kept.iter()
        .filter(|(_, mode)| **mode & super::image_fs::SETID_BITS != 0)
        .map(|(path, mode)| Blocker::Setuid {
            path: path.clone(),
            mode: format!("{mode:o}"),
        })
        .collect()
}

impl Blocker {
    /// The blocker's kind, as its JSON `kind` says it (`shell`, `root_user`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Blocker::Shell { .. } => "shell",
            Blocker::ExtraBinary { .. } => "extra_binary",
            Blocker::RootUser { .. } => "root_user",
            Blocker::PrivilegedPort { .. } => "privileged_port",
            Blocker::WriteOutsideTmp { .. } => "write_outside_tmp",
            Blocker::TlsTrustUnobserved { .. } => "tls_trust_unobserved",
            Blocker::Setuid { .. } => "setuid",
            Blocker::WriteNeedsRoot { .. } => "write_needs_root",
        }
    }

    /// What shows it, one `field: value` line per field (the fleet report's form).
    pub fn evidence(&self) -> Vec<String> {
        match self {
            Blocker::Shell {
                path,
                argv,
                scenario,
            }
            | Blocker::ExtraBinary {
                path,
                argv,
                scenario,
            } => vec![
                format!("path: {path}"),
                format!("argv: {}", serde_json::Value::from(argv.clone())),
                format!("scenario: {scenario}"),
            ],
            Blocker::RootUser { user } => vec![format!("user: {user}")],
            Blocker::PrivilegedPort { address } => vec![format!("address: {address}")],
            Blocker::WriteOutsideTmp { path, files } => {
                vec![format!("path: {path}"), format!("files: {files}")]
            }
            Blocker::TlsTrustUnobserved { detail } => vec![format!("detail: {detail}")],
            Blocker::Setuid { path, mode } => {
                vec![format!("path: {path}"), format!("mode: {mode}")]
            }
            Blocker::WriteNeedsRoot { path, user } => {
                vec![format!("path: {path}"), format!("user: {user}")]
            }
        }
    }
}

/// What a distroless base would need added for this app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistrolessNeeds {
    /// Libraries loaded beyond those a distroless base ships (glibc, libgcc,
    /// libstdc++, OpenSSL, zlib).
    pub libraries: BTreeSet<String>,
    /// Certificate files read.
    pub certs: BTreeSet<String>,
    /// Whether time zone data was read (`/usr/share/zoneinfo`).
    pub tzdata: bool,
    /// Whether user or group entries were read (`/etc/passwd`, `/etc/group`).
    pub passwd: bool,
}

/// What a distroless base asks of one app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistrolessFit {
    /// Blockers, each with its evidence.
    pub blockers: Vec<Blocker>,
    /// What a distroless base would need added.
    pub distroless_needs: DistrolessNeeds,
}

/// Libraries a distroless base image ships (by soname prefix).
const BASE_LIBRARIES: &[&str] = &[
    "ld-linux",
    "libc.so",
    "libm.so",
    "libdl.so",
    "libpthread.so",
    "librt.so",
    "libresolv.so",
    "libnss_",
    "libgcc_s.so",
    "libstdc++.so",
    "libssl.so",
    "libcrypto.so",
    "libz.so",
];

/// Paths an app may write without a blocker.
const SCRATCH_DIRS: &[&str] = &["/tmp/", "/var/tmp/", "/dev/shm/"];

impl DistrolessFit {
    /// What a distroless base asks of the app traced in `slice`, whose image has `config`.
    pub fn of(slice: &RuntimeTraceSlice, config: &ImageConfig) -> DistrolessFit {
        let mut blockers = BTreeSet::new();
        let runtime = runtime_programs(slice);
        for sc in &slice.scenarios {
            for e in &sc.execs {
                let program = if basename(&e.path) == "busybox" {
                    e.argv.first().map(|a| basename(a)).unwrap_or("busybox")
                } else {
                    basename(&e.path)
                };
                let interpreter = slice.interpreters.get(&e.path);
                if is_shell(program) {
                    blockers.insert(Blocker::Shell {
                        path: e.path.clone(),
                        argv: e.argv.clone(),
                        scenario: sc.name.clone(),
                    });
                } else if let Some(sh) = interpreter.filter(|i| is_shell(basename(i))) {
                    // A script run by a shell needs that shell.
                    blockers.insert(Blocker::Shell {
                        path: sh.clone(),
                        argv: e.argv.clone(),
                        scenario: sc.name.clone(),
                    });
                } else if !runtime.contains(&e.path) {
                    blockers.insert(Blocker::ExtraBinary {
                        path: e.path.clone(),
                        argv: e.argv.clone(),
                        scenario: sc.name.clone(),
                    });
                }
            }
        }
        // One blocker per program: the first evidence of each is enough.
        let mut seen = BTreeSet::new();
        let mut blockers: Vec<Blocker> = blockers
            .into_iter()
            .filter(|b| match b {
                Blocker::Shell { path, .. } | Blocker::ExtraBinary { path, .. } => {
                    seen.insert(path.clone())
                }
                _ => true,
            })
            .collect();
        if matches!(config.user.as_str(), "" | "root" | "0" | "0:0") {
            blockers.push(Blocker::RootUser {
                user: config.user.clone(),
            });
        }
        for address in &slice.network_endpoints_touched.inbound {
            let port = address
                .rsplit(':')
                .next()
                .and_then(|p| p.parse::<u16>().ok());
            if port.is_some_and(|p| p < 1024) {
                blockers.push(Blocker::PrivilegedPort {
                    address: address.clone(),
                });
            }
        }
        // By folder: one temporary name per `.pyc` or per run is noise.
        let mut folders: BTreeMap<&str, usize> = BTreeMap::new();
        for path in &slice.files_written {
            if !SCRATCH_DIRS.iter().any(|d| path.starts_with(d)) {
                let folder = match path.rsplit_once('/') {
                    Some(("", _)) | None => "/",
                    Some((parent, _)) => parent,
                };
                *folders.entry(folder).or_default() += 1;
            }
        }
        for (folder, files) in folders {
            blockers.push(Blocker::WriteOutsideTmp {
                path: folder.to_owned(),
                files,
            });
        }
        if slice.tls_trust.verdict == TlsVerdict::NotObserved {
            blockers.push(Blocker::TlsTrustUnobserved {
                detail: if slice.tls_trust.outbound_attempted {
                    "no certificate was read; outbound connections cannot succeed under --network=none, so TLS never ran".into()
                } else {
                    "no certificate was read and no outbound connection was tried: whether TLS needs certificates was not observed".into()
                },
            });
        }
        let needs = DistrolessNeeds {
            libraries: slice
                .shared_libs_loaded
                .iter()
                .filter(|l| !BASE_LIBRARIES.iter().any(|b| basename(l).starts_with(b)))
                .cloned()
                .collect(),
            certs: slice.cert_paths_read.clone(),
            tzdata: all_read(slice).any(|p| p.starts_with("/usr/share/zoneinfo/"))
                || localtime_is_zoneinfo(slice),
            passwd: all_read(slice).any(|p| p == "/etc/passwd" || p == "/etc/group"),
        };
        DistrolessFit {
            blockers,
            distroless_needs: needs,
        }
    }
}

/// Whether `/etc/localtime` resolved into the zone data (a link to
/// `/usr/share/zoneinfo/...`): opened by that name, the zone file is used.
fn localtime_is_zoneinfo(slice: &RuntimeTraceSlice) -> bool {
    let scenario_maps = slice
        .scenarios
        .iter()
        .filter_map(|s| s.trace.as_ref())
        .map(|t| &t.resolved);
    std::iter::once(&slice.resolved)
        .chain(scenario_maps)
        .filter_map(|m| m.get("/etc/localtime"))
        .any(|target| target.starts_with("/usr/share/zoneinfo/"))
}

fn all_read(slice: &RuntimeTraceSlice) -> impl Iterator<Item = &String> {
    slice
        .scenarios
        .iter()
        .filter_map(|s| s.trace.as_ref())
        .flat_map(|t| &t.files_read)
}

/// The app's own runtime: the first program each scenario ran (its
/// entrypoint) and the interpreters and loaders behind it.
fn runtime_programs(slice: &RuntimeTraceSlice) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for sc in &slice.scenarios {
        if let Some(first) = sc.execs.first() {
            let mut p = first.path.clone();
            for _ in 0..4 {
                out.insert(p.clone());
                match slice.interpreters.get(&p) {
                    Some(next) => p = next.clone(),
                    None => break,
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime_trace::results::ScenarioOutcome;
    use crate::runtime_trace::slice::{aggregate, AggregateInputs};
    use crate::strace::{ExecRecord, ParsedTrace};

    fn exec(path: &str, argv: &[&str]) -> ExecRecord {
        ExecRecord {
            path: path.into(),
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn a_kept_setuid_or_setgid_file_is_a_blocker_naming_it() {
        let kept = BTreeMap::from([
            ("/opt/suid/su".to_owned(), 0o4755),
            ("/usr/bin/wall".to_owned(), 0o2755),
            // Control: a plain file is not one.
            ("/usr/bin/plain".to_owned(), 0o755),
        ]);
        let b = setuid_blockers(&kept);
        assert_eq!(
            b,
            [
                Blocker::Setuid {
                    path: "/opt/suid/su".into(),
                    mode: "4755".into()
                },
                Blocker::Setuid {
                    path: "/usr/bin/wall".into(),
                    mode: "2755".into()
                },
            ]
        );
        assert_eq!(b[0].kind(), "setuid");
        assert_eq!(b[0].evidence(), ["path: /opt/suid/su", "mode: 4755"]);
        let json = serde_json::to_value(&b[0]).unwrap();
        assert_eq!(json["kind"], "setuid");
        assert_eq!(json["path"], "/opt/suid/su");
    }

    #[test]
    fn a_node_app_that_spawns_a_shell() {
        let mut r = crate::runtime_trace::results::ScenarioResult::new(
            "startup",
            ScenarioOutcome::Completed,
        );
        r.execs = vec![
            exec("/usr/bin/node", &["node", "/app/server.js"]),
            exec("/bin/sh", &["/bin/sh", "-c", "echo started"]),
            exec("/usr/bin/git", &["git", "rev-parse", "HEAD"]),
        ];
        let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        let mut t = ParsedTrace {
            files_read: set(&["/app/server.js", "/etc/passwd", "/usr/share/zoneinfo/UTC"]),
            shared_libs_loaded: set(&[
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib/x86_64-linux-gnu/libuv.so.1",
            ]),
            files_written: set(&["/tmp/pid", "/app/cache.json"]),
            ..Default::default()
        };
        t.network_endpoints_touched.inbound = ["0.0.0.0:80".to_owned()].into();
        r.trace = Some(t);
        let slice = aggregate(&[r], &AggregateInputs::default());
        let config: ImageConfig = serde_json::from_str(
            r#"{"Cmd":["node","/app/server.js"],"WorkingDir":"/app","ExposedPorts":{"80/tcp":{}}}"#,
        )
        .unwrap();
        let ready = DistrolessFit::of(&slice, &config);
        let kinds: Vec<&Blocker> = ready.blockers.iter().collect();
        assert!(
            matches!(kinds[0], Blocker::Shell { path, argv, .. } if path == "/bin/sh" && argv[2] == "echo started"),
            "{kinds:#?}"
        );
        assert!(kinds
            .iter()
            .any(|b| matches!(b, Blocker::ExtraBinary { path, .. } if path == "/usr/bin/git")));
        assert!(!kinds
            .iter()
            .any(|b| matches!(b, Blocker::ExtraBinary { path, .. } if path == "/usr/bin/node")));
        assert!(kinds.iter().any(|b| matches!(b, Blocker::RootUser { .. })));
        assert!(kinds
            .iter()
            .any(|b| matches!(b, Blocker::PrivilegedPort { address } if address == "0.0.0.0:80")));
        assert!(kinds
            .iter()
            .any(|b| matches!(b, Blocker::WriteOutsideTmp { path, files: 1 } if path == "/app")));
        assert_eq!(
            ready.distroless_needs.libraries.iter().collect::<Vec<_>>(),
            ["/lib/x86_64-linux-gnu/libuv.so.1"]
        );
        assert!(ready.distroless_needs.tzdata && ready.distroless_needs.passwd);
    }

    #[test]
    fn a_blockers_kind_is_its_json_kind() {
        let all = [
            Blocker::Shell {
                path: "/bin/sh".into(),
                argv: vec!["sh".into()],
                scenario: "startup".into(),
            },
            Blocker::ExtraBinary {
                path: "/bin/x".into(),
                argv: vec![],
                scenario: "startup".into(),
            },
            Blocker::RootUser {
                user: String::new(),
            },
            Blocker::PrivilegedPort {
                address: "0.0.0.0:80".into(),
            },
            Blocker::WriteOutsideTmp {
                path: "/app".into(),
                files: 1,
            },
            Blocker::TlsTrustUnobserved {
                detail: "no TLS".into(),
            },
        ];
        for b in all {
            assert_eq!(serde_json::to_value(&b).unwrap()["kind"], b.kind());
        }
    }

    fn slice_of(t: ParsedTrace) -> RuntimeTraceSlice {
        let mut r = crate::runtime_trace::results::ScenarioResult::new(
            "startup",
            ScenarioOutcome::Completed,
        );
        r.trace = Some(t);
        aggregate(&[r], &AggregateInputs::default())
    }

    #[test]
    fn localtime_linked_into_the_zone_data_needs_tzdata() {
        let config = ImageConfig::default();
        // glibc opens `/etc/localtime`; `-y` shows the zone file it is.
        let mut t = ParsedTrace {
            files_read: ["/etc/localtime".to_owned()].into(),
            ..Default::default()
        };
        t.resolved.insert(
            "/etc/localtime".into(),
            "/usr/share/zoneinfo/Etc/UTC".into(),
        );
        assert!(
            DistrolessFit::of(&slice_of(t.clone()), &config)
                .distroless_needs
                .tzdata
        );
        // Control: a plain file at /etc/localtime is not the zone data.
        t.resolved.clear();
        assert!(
            !DistrolessFit::of(&slice_of(t), &config)
                .distroless_needs
                .tzdata
        );
    }

    #[test]
    fn writes_outside_tmp_are_named_once_per_folder() {
        let t = ParsedTrace {
            files_written: [
                "/app/__pycache__/app.cpython-311.pyc",
                "/app/__pycache__/app.cpython-311.pyc.140213",
                "/app/__pycache__/reports.cpython-311.pyc.99812",
                "/var/lib/app/state",
                "/tmp/ok",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
            ..Default::default()
        };
        let ready = DistrolessFit::of(&slice_of(t), &ImageConfig::default());
        let writes: Vec<(&str, usize)> = ready
            .blockers
            .iter()
            .filter_map(|b| match b {
                Blocker::WriteOutsideTmp { path, files } => Some((path.as_str(), *files)),
                _ => None,
            })
            .collect();
        assert_eq!(writes, [("/app/__pycache__", 3), ("/var/lib/app", 1)]);
    }
}
