//! The run's tool image on the real engine: the traced image plus the tool
//! bundle, with the traced image's config (only the labels differ), for
//! images with and without a command; removed by run, and swept when the
//! process that made it is gone.
// Tests drive the engine CLI directly; the product itself starts processes
// only through its exec layer.
#![allow(clippy::disallowed_methods)]

mod trace_support;

use std::path::Path;
use std::process::Command;

use codegenie_runtime::engine::{Engine, EngineKind, RUN_LABEL, TOOLS_REPOSITORY};
use trace_support::*;

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A FROM-scratch busybox image with `extra` Dockerfile lines.
fn image(extra: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    std::fs::copy(busybox(), dir.path().join("bin/busybox")).unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM scratch\nCOPY bin/ /bin/\n{extra}"),
    )
    .unwrap();
    let path = dir.path().to_str().unwrap().to_owned();
    docker(&["build", "-q", &path])
}

/// Images labelled with the run `run`.
fn images_of(run: &str) -> String {
    docker(&[
        "image",
        "ls",
        "-a",
        "-q",
        "--filter",
        &format!("label={RUN_LABEL}={run}"),
    ])
}

/// A folder standing in for the tool bundle.
fn bundle() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("bin")).unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    std::fs::write(dir.path().join("bin/tool"), "the tool\n").unwrap();
    dir
}

/// `.Config` of `image`, and its labels taken out.
fn config(image: &str) -> (serde_json::Value, serde_json::Value) {
    let mut c: serde_json::Value = serde_json::from_str(&docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config}}",
        image,
    ]))
    .unwrap();
    let labels = c
        .as_object_mut()
        .unwrap()
        .remove("Labels")
        .unwrap_or_default();
    (c, labels)
}

fn derive(engine: &Engine, original: &str, has_command: bool, run: &str, b: &Path) -> String {
    let volumes = vec!["/data".to_owned()];
    engine
        .derive_tool_image(original, has_command, &volumes, run, b, "/.codegenie")
        .expect("the tool image is made")
}

fn assert_same_config_but_labels(original: &str, derived: &str, run: &str) {
    let (want, want_labels) = config(original);
    let (got, got_labels) = config(derived);
    assert_eq!(
        got, want,
        "the tool image's config differs from the image's"
    );
    // The image's own labels are kept; the run's are added.
    assert_eq!(
        got_labels["origin"], want_labels["origin"],
        "{got_labels:#}"
    );
    assert_eq!(got_labels[RUN_LABEL], run, "{got_labels:#}");
    assert!(
        got_labels["codegenie.tools-owner"]
            .as_str()
            .is_some_and(|o| o.contains('/')),
        "{got_labels:#}"
    );
}

#[test]
fn a_tool_image_keeps_the_image_s_config_and_adds_the_bundle() {
    let _engine = engine_lock();
    let engine = Engine::new(EngineKind::Docker);
    let original = image(
        "ENV GREETING=hello\nUSER 1000:1000\nWORKDIR /app\nVOLUME /data\nEXPOSE 8080\n\
         LABEL origin=fixture\nENTRYPOINT [\"/bin/busybox\", \"sh\", \"-c\"]\nCMD [\"echo hi\"]\n",
    );
    let b = bundle();
    let run = run_id("tool-image");
    let before = docker(&["volume", "ls", "-q"]);
    let derived = derive(&engine, &original, true, &run, b.path());
    assert_same_config_but_labels(&original, &derived, &run);
    // No volume was made on the way, and no container is left.
    assert_eq!(docker(&["volume", "ls", "-q"]), before);
    let left = docker(&[
        "ps",
        "-a",
        "-q",
        "--filter",
        &format!("label={RUN_LABEL}={run}"),
    ]);
    assert!(left.is_empty(), "{left}");
    // The bundle is in it, with the image's own files.
    assert_eq!(bundled_tool(&derived, &["--user", "0"]), "the tool");
    let tags = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoTags}}",
        &derived,
    ]);
    assert!(
        tags.contains(&format!("{TOOLS_REPOSITORY}:{run}")),
        "{tags}"
    );
    assert_eq!(engine.remove_run_images(&run).unwrap(), 1);
    assert_eq!(engine.remove_run_images(&run).unwrap(), 0);
    assert_eq!(images_of(&run), "");
    docker(&["rmi", &original]);
}

/// The bundle's `bin/tool` as read in a container of `image` (`run_args`
/// before the image).
fn bundled_tool(image: &str, run_args: &[&str]) -> String {
    let mut args = vec!["run", "--rm", "--network=none"];
    args.extend_from_slice(run_args);
    args.extend([
        "--entrypoint",
        "/bin/busybox",
        image,
        "cat",
        "/.codegenie/bin/tool",
    ]);
    docker(&args)
}

#[test]
fn an_image_without_a_command_is_built_on_with_the_same_config() {
    let _engine = engine_lock();
    let engine = Engine::new(EngineKind::Docker);
    let original = image("ENV GREETING=hello\nWORKDIR /app\nLABEL origin=fixture\n");
    let b = bundle();
    let run = run_id("tool-image-nocmd");
    let derived = derive(&engine, &original, false, &run, b.path());
    assert_same_config_but_labels(&original, &derived, &run);
    assert_eq!(bundled_tool(&derived, &[]), "the tool");
    engine.remove_tool_image(&derived, Some(&original)).unwrap();
    // The classic builder's step images went with it; the image stays.
    assert_eq!(images_of(&run), "");
    docker(&["rmi", &original]);
}

#[test]
fn the_sweep_removes_tool_images_of_dead_runs_only() {
    let _engine = engine_lock();
    let engine = Engine::new(EngineKind::Docker);
    let dead = dead_owner();
    let label =
        format!("LABEL codegenie.tools-owner=\"{dead}\"\nCMD [\"/bin/busybox\", \"true\"]\n");
    // A leftover of a killed run, and an image that merely carries the label.
    let leftover = image(&label);
    let tag = format!("{TOOLS_REPOSITORY}:{}", run_id("swept"));
    docker(&["tag", &leftover, &tag]);
    // (Built in another order, so that it is not a child of the leftover.)
    let spoof = image(&format!("LABEL spoof=1\n{label}"));
    let spoof_tag = format!("codegenie-spoof:{}", std::process::id());
    docker(&["tag", &spoof, &spoof_tag]);
    let swept = engine.sweep_orphans().unwrap();
    assert!(swept.images >= 1, "{swept:?}");
    let gone = Command::new("docker")
        .args(["image", "inspect", &tag])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "the dead run's tool image survived");
    // Only codegenie tags tool images: a label alone is not trusted.
    docker(&["image", "inspect", &spoof_tag]);
    docker(&["rmi", &spoof_tag]);
}
