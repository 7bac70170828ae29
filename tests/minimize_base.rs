//! `codegenie minimize --base` on real services and the real engine (DESIGN
//! §8): the Node.js + sqlite3 service on the distroless `cc` stand-in and
//! the gunicorn + Flask service on the `python3` stand-in. Independently of
//! codegenie's own verification, the handed-over Dockerfile is built with
//! `docker build --network=none -f FILE REPO`, the image run with
//! `--network=none`, and every route (the lazy `/report` too) requested from
//! inside it with the runtime's own client. The image sits on the base's
//! layers, runs as the base's non-root user, holds no shell, and every
//! value in the file went through JSON. The control: the same file with the
//! added packages' files taken out of its pick steps builds an image that
//! does not answer.
// Tests drive the built binary and the engine's CLI directly.
#![allow(clippy::disallowed_methods)]

mod trace_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use trace_support::services::{client_of, docker, docker_ok, image_holds, Client, Served};
use trace_support::*;

const READY: Duration = Duration::from_secs(90);

/// `docker build --network=none -q -f FILE REPO`: the image id, or the
/// build's output when it fails.
fn build(repo: &Path, file: &Path) -> Result<String, String> {
    let out = Command::new("docker")
        .args(["build", "--network=none", "-q", "-f"])
        .arg(file)
        .arg(repo)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn layers(image: &str) -> Vec<String> {
    serde_json::from_str(&docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .RootFS.Layers}}",
        image,
    ]))
    .unwrap()
}

/// `text` as the engine's parser reads it: a line ending in the escape
/// character (`\`) continues on the next (a long pick step).
fn engine_lines(text: &str) -> String {
    text.replace("\\\n", "")
}

/// The instructions codegenie writes after the repository's stages, each
/// checked: JSON where a value from the image goes, a comment as a JSON
/// string, nothing else.
fn assert_every_value_went_through_json(text: &str) {
    let ours = text
        .split("\nFROM original AS codegenie-pick\n")
        .nth(1)
        .expect("a pick stage after the repository's stages");
    for line in engine_lines(ours).lines().filter(|l| !l.is_empty()) {
        let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
        let json_array = || serde_json::from_str::<Vec<String>>(rest).is_ok();
        let ok = match keyword {
            "#" => serde_json::from_str::<String>(rest).is_ok() || rest.starts_with("refused: "),
            "RUN" | "CMD" | "ENTRYPOINT" => json_array(),
            "COPY" => line.starts_with("COPY --from=codegenie-pick [\"/.codegenie-pick/\",\"/\"]"),
            "FROM" => rest == "${BASE}",
            "USER" | "WORKDIR" => rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-:+@".contains(c)),
            "EXPOSE" => rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/ ".contains(c)),
            // `K="v" K2="v2"`: no quote, backslash, `$` or backtick inside.
            "ENV" | "LABEL" => {
                let mut r = rest;
                let mut ok = !r.is_empty();
                while ok && !r.is_empty() {
                    match r
                        .split_once("=\"")
                        .and_then(|(k, a)| a.split_once('"').map(|(v, n)| (k, v, n)))
                    {
                        Some((k, v, n))
                            if !k.contains([' ', '"']) && !v.contains(['\\', '$', '`']) =>
                        {
                            r = n.strip_prefix(' ').unwrap_or(n);
                            ok = n.is_empty() || n.starts_with(' ');
                        }
                        _ => ok = false,
                    }
                }
                ok
            }
            _ => false,
        };
        assert!(ok, "a line whose value did not go through JSON: {line:?}");
    }
}

struct Case {
    service: &'static str,
    base: &'static str,
    report_body: &'static str,
    /// Where the added packages' files live: the control takes them out.
    package_files: &'static str,
}

fn minimized_on_a_base_answers_every_route(case: Case) {
    let _engine = engine_share();
    let dir = format!("tests/fixtures/services/{}", case.service);
    let repo = fixture_repo(&dir);
    let client: Client = client_of(&Path::new(env!("CARGO_MANIFEST_DIR")).join(&dir));
    let id = run_id(&format!("base-{}", case.service));
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("minimize")
        .arg(repo.path())
        .args(["--json", "--run-id", &id, "--base", case.base])
        .output()
        .unwrap();
    let minimize_s = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(out.status.code(), Some(0), "verified: {v:#}\n{stderr}");
    assert_eq!(v["verified"], true);
    assert_eq!(v["base"]["ref"], case.base);
    let base_id = docker_ok(&["image", "inspect", "-f", "{{.Id}}", case.base]);
    assert_eq!(v["base"]["id"], base_id.as_str());
    assert_eq!(
        v["dockerfile"],
        ".codegenie/context/raw/Dockerfile.distroless"
    );
    assert!(labelled_containers(&id).is_empty());
    // Both exports ran beside the trace's scenarios, and were taken.
    assert!(
        stderr.contains("exports taken from the trace's run"),
        "{stderr}"
    );
    // Our labels on the image, set by one step: the classic builder makes
    // a step of each `--label`, seconds each on a driver without native
    // diffs (`--label` gave two entries here, one per label).
    let minimal = v["minimal_image"]
        .as_str()
        .expect("the minimal image's tag");
    let labels: serde_json::Value = serde_json::from_str(&docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Labels}}",
        minimal,
    ]))
    .unwrap();
    let canonical = std::fs::canonicalize(repo.path()).unwrap();
    assert_eq!(
        labels["codegenie.repository"],
        canonical.to_str().unwrap(),
        "{labels:#}"
    );
    assert!(
        labels["codegenie.minimal-of"]
            .as_str()
            .is_some_and(|o| o.starts_with("sha256:")),
        "{labels:#}"
    );
    let history = docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        minimal,
    ]);
    let steps: Vec<&str> = history
        .lines()
        .filter(|l| l.contains("codegenie.repository=") || l.contains("codegenie.minimal-of="))
        .collect();
    assert_eq!(steps.len(), 1, "{history}");
    assert!(
        steps[0].contains("codegenie.repository=") && steps[0].contains("codegenie.minimal-of="),
        "{history}"
    );
    // The trace alone, as the same run logged it.
    let trace_ms: f64 = stderr
        .lines()
        .find_map(|l| l.split("trace_finished wall_clock_ms=").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the trace's wall clock in the log");

    let file = repo
        .path()
        .join(".codegenie/context/raw/Dockerfile.distroless");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(&format!("ARG BASE={}\n", case.base)));
    assert_every_value_went_through_json(&text);
    let held: Vec<&str> = v["held_by_base"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    assert!(
        held.iter().any(|p| p.starts_with("libc6 ")),
        "the base's libc6 is not added again: {held:?}"
    );
    let added: Vec<String> = v["added"]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| matches!(p["kind"].as_str(), Some("dpkg")))
        .map(|p| {
            format!(
                "{} {}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        added.iter().all(|p| !held.contains(&p.as_str())),
        "added lists only what the Dockerfile adds: {added:?} held {held:?}"
    );
    for p in &added {
        let name = p.split(' ').next().unwrap();
        assert!(
            text.contains(&format!("# \"{p}:")),
            "{name} is added with its version and reason"
        );
    }

    // Built again, by the user's command, from the repository alone.
    let image = build(repo.path(), &file).expect("the handed-over Dockerfile builds");
    let (ours, base) = (layers(&image), layers(case.base));
    assert_eq!(
        &ours[..base.len()],
        &base[..],
        "the image starts with the base's layers"
    );
    assert_eq!(ours.len(), base.len() + 1, "one layer added: {ours:?}");
    let user = docker_ok(&["image", "inspect", "-f", "{{.Config.User}}", &image]);
    let base_user = docker_ok(&["image", "inspect", "-f", "{{.Config.User}}", case.base]);
    assert!(!user.is_empty() && user != "0" && user != "root", "{user}");
    assert_eq!(user, base_user, "the base's non-root user");
    for sh in ["/bin/sh", "/bin/bash", "/bin/dash", "/usr/bin/sh"] {
        assert!(!image_holds(&image, sh), "{sh} is not in the image");
    }
    let size: u64 = docker_ok(&["image", "inspect", "-f", "{{.Size}}", &image])
        .parse()
        .unwrap();
    let served = Served::start(&image, &format!("base-{}", case.service));
    let mut routes = Vec::new();
    for path in ["/", "/healthz", "/report"] {
        let answer = served.get_when_ready(&client, path, READY);
        assert!(
            matches!(&answer, Ok((200, _))),
            "the rebuilt image answers {path}: {answer:?}"
        );
        if path == "/report" {
            assert!(
                matches!(&answer, Ok((_, body)) if body.contains(case.report_body)),
                "{answer:?}"
            );
        }
        routes.push(format!("{path} 200"));
    }
    // The one route that is not a GET: a JSON body parsed and echoed.
    let answer = served.post(&client, "/", r#"{"n":1}"#);
    assert!(
        matches!(&answer, Ok((200, body)) if body.contains("received") && body.contains("\"n\"")),
        "the rebuilt image answers POST /: {answer:?}"
    );
    routes.push("POST / 200".to_owned());
    drop(served);

    // The control: the added packages' files taken out of the pick (its
    // steps read as the engine reads them, continued lines joined).
    let stripped: String = engine_lines(&text)
        .lines()
        .map(|l| match l.strip_prefix("RUN ") {
            Some(args) => {
                let argv: Vec<String> = serde_json::from_str(args).unwrap();
                let kept: Vec<String> = argv
                    .into_iter()
                    // Names are `./usr/...` for GNU tar, `usr/...` for busybox's.
                    .filter(|a| !a.trim_start_matches("./").starts_with(case.package_files))
                    .collect();
                format!("RUN {}\n", serde_json::to_string(&kept).unwrap())
            }
            None => format!("{l}\n"),
        })
        .collect();
    assert_ne!(stripped, text, "the control takes something out");
    let control_file = repo.path().join(".codegenie/Dockerfile.control");
    std::fs::write(&control_file, stripped).unwrap();
    let control = build(repo.path(), &control_file).expect("the control builds");
    let served = Served::start(&control, &format!("base-{}-control", case.service));
    let answer = served.get_when_ready(&client, "/healthz", Duration::from_secs(20));
    drop(served);
    assert!(
        !matches!(answer, Ok((200, _))),
        "without the added packages the service does not answer: {answer:?}"
    );
    eprintln!(
        "ROW | {} | base {} | original {} B | on base {} B ({:.0}%) | packages added {} (held by the base {}) | minimize --base {:.0} s, its trace {:.0} s ({:.2}x) | {} | control: {}",
        case.service,
        case.base,
        v["size_bytes"]["original"],
        size,
        100.0 * size as f64 / v["size_bytes"]["original"].as_f64().unwrap(),
        added.len(),
        held.len(),
        minimize_s,
        trace_ms / 1000.0,
        minimize_s * 1000.0 / trace_ms,
        routes.join(", "),
        match &answer {
            Ok((s, _)) => format!("status {s}"),
            Err(e) => format!("no answer ({})", e.lines().next().unwrap_or_default()),
        }
    );
    let _ = docker(&["rmi", "-f", &image, &control]);
}

#[test]
fn node_sqlite3_on_the_distroless_cc_base_answers_every_route_from_its_own_dockerfile() {
    minimized_on_a_base_answers_every_route(Case {
        service: "node-sqlite3",
        base: "gcr.io/distroless/cc-debian12:nonroot",
        report_body: "\"report\"",
        package_files: "usr/lib/x86_64-linux-gnu",
    });
}

#[test]
fn python_gunicorn_on_the_distroless_python3_base_answers_every_route_from_its_own_dockerfile() {
    minimized_on_a_base_answers_every_route(Case {
        service: "python-gunicorn",
        base: "gcr.io/distroless/python3-debian12:nonroot",
        report_body: "xn--bcher-kva.example",
        package_files: "usr/lib/python3",
    });
}
