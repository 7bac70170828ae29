//! The fast measure of a container's writes (walking the overlay's upper
//! folder on this machine) agrees with the engine's own `inspect --size`,
//! on a real container that wrote 5 MiB; and an engine this machine cannot
//! see into is measured by the engine.
// Tests drive the engine CLI directly.
#![allow(clippy::disallowed_methods)]

mod trace_support;

use std::process::Command;

use codegenie_runtime::engine::{ContextName, Engine, EngineEndpoint, EngineKind, WritableLayer};
use trace_support::*;

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn the_upper_folder_measure_agrees_with_the_engine() {
    let _engine = engine_lock();
    let tag = format!("codegenie-test-writable:{}", std::process::id());
    busybox_image(&tag, "writable", &[]);
    let id = docker(&[
        "run",
        "-d",
        "--network=none",
        &tag,
        "/bin/busybox",
        "sh",
        "-c",
        "/bin/busybox dd if=/dev/zero of=/written bs=1024 count=5120 && /bin/busybox sleep 60",
    ]);
    // Wait for the file to be complete. Until `dd` has created it, `stat`
    // fails: that is a reason to wait, not an error.
    let mut ok = false;
    for _ in 0..100 {
        let out = Command::new("docker")
            .args(["exec", &id, "/bin/busybox", "stat", "-c", "%s", "/written"])
            .output()
            .unwrap();
        if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "5242880" {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ok, "the container did not write its file");

    let engine = Engine::new(EngineKind::Docker);
    let layer = engine.writable_layer(&id);
    assert!(
        matches!(layer, WritableLayer::HostDir(_)),
        "a local overlay engine's layer is read here: {layer:?}"
    );
    let fast = engine.written_bytes(&layer, &id).unwrap();
    let by_engine = engine.written_bytes(&WritableLayer::Engine, &id).unwrap();
    assert!(fast >= 5 << 20, "{fast}");
    assert_eq!(fast, by_engine, "the two measures differ");

    // The control: through a Docker context the engine may be anywhere, so
    // the engine measures.
    let remote = Engine::at(
        EngineKind::Docker,
        EngineEndpoint::Context(ContextName::new("default").unwrap()),
    );
    assert_eq!(remote.writable_layer(&id), WritableLayer::Engine);

    docker(&["rm", "-f", &id]);
    docker(&["rmi", &tag]);
}
