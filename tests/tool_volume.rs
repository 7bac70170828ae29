//! The run's tool volume on the real engine (through its API): filled once
//! from a host folder (copied into the volume's folder on this machine, or
//! uploaded through a container for an engine elsewhere), mounted read-only so that an app cannot change the
//! tools a later scenario runs (the control, mounted writable, shows the
//! write would land), removed by run, and swept when the process that made
//! it is gone, while a volume that only carries the label is left alone.
//! A scenario's trace volume: written by an app that is not root, read back
//! on this machine under the cap, never through a link or a FIFO the app
//! left in the trace's place (the controls show what reading it plainly
//! would do), and removed by run.
// Tests drive the engine CLI directly; the product itself starts processes
// only through its exec layer.
#![allow(clippy::disallowed_methods)]

mod trace_support;

use std::process::Command;
use std::time::{Duration, Instant};

use codegenie_runtime::engine::{
    CreateOptions, Engine, EngineKind, ToolFill, TraceVolumeError, VolumeMount, RUN_LABEL,
    TOOLS_VOLUME_PREFIX, TRACE_VOLUME_PREFIX,
};
use trace_support::*;

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text.trim().to_owned())
}

/// A FROM-scratch busybox image.
fn image() -> String {
    image_as("")
}

/// A FROM-scratch busybox image whose Dockerfile ends with `tail`.
fn image_as(tail: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    std::fs::copy(busybox(), dir.path().join("bin/busybox")).unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM scratch\nCOPY bin/ /bin/\n{tail}"),
    )
    .unwrap();
    let (ok, out) = docker(&["build", "-q", dir.path().to_str().unwrap()]);
    assert!(ok, "{out}");
    // The id is the one line of stdout; the engine may warn on stderr.
    out.lines()
        .find(|l| l.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no image id in {out}"))
        .to_owned()
}

/// Volumes labelled with the run `run`.
fn volumes_of(run: &str) -> String {
    docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label={RUN_LABEL}={run}"),
    ])
    .1
}

/// Containers labelled with the run `run`.
fn containers_of(run: &str) -> String {
    docker(&[
        "ps",
        "-a",
        "-q",
        "--filter",
        &format!("label={RUN_LABEL}={run}"),
    ])
    .1
}

/// Run `script` under busybox sh in a container of `image` with `volume`
/// at /.codegenie; its exit code and output.
fn run_with(
    engine: &Engine,
    image: &str,
    volume: &str,
    read_only: bool,
    script: &str,
) -> (i64, String) {
    run_at(engine, image, volume, "/.codegenie", read_only, script)
}

/// Run `script` under busybox sh in a container of `image` with `volume`
/// at `target`; its exit code and output.
fn run_at(
    engine: &Engine,
    image: &str,
    volume: &str,
    target: &str,
    read_only: bool,
    script: &str,
) -> (i64, String) {
    let id = engine
        .create(&CreateOptions {
            image: image.to_owned(),
            run_id: run_id("tool-volume-use"),
            entrypoint: "/bin/busybox".to_owned(),
            args: vec!["sh".into(), "-c".into(), script.into()],
            pids_limit: 64,
            memory: "64m".to_owned(),
            cpus: "1".to_owned(),
            tmpfs: Vec::new(),
            mounts: vec![VolumeMount {
                volume: volume.to_owned(),
                target: target.to_owned(),
                read_only,
            }],
        })
        .unwrap();
    let mut running = engine.start_attached(&id, None).unwrap();
    let ended = running
        .wait_until(Instant::now() + Duration::from_secs(30))
        .unwrap();
    assert!(ended.is_some(), "the script hangs");
    let finished = running.finish();
    engine.remove(&id).unwrap();
    let code = match finished.termination {
        codegenie_runtime::exec::Termination::Exited(c) => i64::from(c),
        other => panic!("{other:?}"),
    };
    (code, finished.stdout.text() + &finished.stderr.text())
}

/// The tool in `volume`, mounted read-only, reads back; a write to it fails.
fn tool_reads_back_and_cannot_be_written(engine: &Engine, image: &str, volume: &str) {
    let (code, out) = run_with(
        engine,
        image,
        volume,
        true,
        "/bin/busybox cat /.codegenie/bin/tool; echo changed > /.codegenie/bin/tool",
    );
    assert!(out.contains("the tool"), "{out}");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
}

#[test]
fn a_tool_volume_is_filled_once_and_read_only_for_the_app() {
    let _engine = engine_lock();
    let engine = Engine::new(EngineKind::Docker);
    assert!(engine.has_tool_volumes(), "the engine's API answers here");
    let img = image();
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("bin")).unwrap();
    std::fs::write(src.path().join("bin/tool"), "the tool\n").unwrap();
    let run = run_id("tool-volume");
    let name = engine
        .make_tool_volume(
            &img,
            &[],
            &run,
            src.path(),
            "/.codegenie",
            ToolFill::Nearest,
        )
        .unwrap();
    assert!(name.starts_with(TOOLS_VOLUME_PREFIX), "{name}");
    assert_eq!(volumes_of(&run), name);
    // The container it was filled through is gone.
    assert_eq!(containers_of(&run), "", "the filling container was removed");

    // Read-only: the tool reads back, a write fails and changes nothing.
    tool_reads_back_and_cannot_be_written(&engine, &img, &name);
    let (_, again) = run_with(
        &engine,
        &img,
        &name,
        true,
        "/bin/busybox cat /.codegenie/bin/tool",
    );
    assert_eq!(again.trim(), "the tool");
    // The control: mounted writable, the same write lands for every later
    // container, which is what read-only prevents.
    let (code, out) = run_with(
        &engine,
        &img,
        &name,
        false,
        "echo changed > /.codegenie/bin/tool",
    );
    assert_eq!(code, 0, "{out}");
    let (_, after) = run_with(
        &engine,
        &img,
        &name,
        true,
        "/bin/busybox cat /.codegenie/bin/tool",
    );
    assert_eq!(after.trim(), "changed");

    engine.remove_volume(&name).unwrap();
    assert_eq!(volumes_of(&run), "");

    // Filled through the engine alone, as for an engine on another machine
    // (a container mounts it and the folder is uploaded): the same tool,
    // read-only alike, and the filling container gone.
    let run = run_id("tool-volume-upload");
    let name = engine
        .make_tool_volume(&img, &[], &run, src.path(), "/.codegenie", ToolFill::Upload)
        .unwrap();
    tool_reads_back_and_cannot_be_written(&engine, &img, &name);
    assert_eq!(containers_of(&run), "", "the filling container was removed");
    engine.remove_volume(&name).unwrap();
    assert_eq!(volumes_of(&run), "");
    docker(&["rmi", &img]);
}

#[test]
fn the_sweep_and_the_run_removal_take_tool_volumes_of_their_runs_only() {
    let _engine = engine_lock();
    let engine = Engine::new(EngineKind::Docker);
    let dead = dead_owner();
    let make = |name: &str, run: &str| {
        let (ok, out) = docker(&[
            "volume",
            "create",
            "--label",
            &format!("{RUN_LABEL}={run}"),
            "--label",
            &format!("codegenie.tools-owner={dead}"),
            name,
        ]);
        assert!(ok, "{out}");
    };
    // A leftover of a killed run, and a volume that merely carries the
    // labels under another name.
    let run = run_id("swept-volume");
    let leftover = format!("{TOOLS_VOLUME_PREFIX}{run}");
    make(&leftover, &run);
    let spoof = format!("codegenie-spoof-{}", std::process::id());
    make(&spoof, &run);
    let swept = engine.sweep_orphans().unwrap();
    assert!(swept.volumes >= 1, "{swept:?}");
    assert!(
        !docker(&["volume", "inspect", &leftover]).0,
        "the dead run's volume survived"
    );
    assert!(
        docker(&["volume", "inspect", &spoof]).0,
        "a label alone is not trusted"
    );

    // The interrupt path: a run's volumes, and its parts', by run id.
    let live = run_id("removed-volume");
    let part = format!("{TOOLS_VOLUME_PREFIX}{live}.verify");
    make(&part, &format!("{live}.verify"));
    assert_eq!(engine.remove_run_volumes_under(&live).unwrap(), 1);
    assert!(!docker(&["volume", "inspect", &part]).0);
    docker(&["volume", "rm", &spoof]);
}

#[test]
fn a_trace_volume_is_written_by_the_app_and_read_back_capped_never_through_a_link() {
    let _engine = engine_lock();
    let engine = Engine::new(EngineKind::Docker);
    // An app that is not root: the volume's folder is open to every user.
    let img = image_as("USER 65534:65534\n");
    let run = run_id("trace-volume");
    let volume = engine
        .make_trace_volume(&run, 0)
        .unwrap()
        .expect("a local engine through its API, and this process can open the folder");
    assert!(
        volume.name.starts_with(TRACE_VOLUME_PREFIX),
        "{}",
        volume.name
    );
    assert_eq!(volumes_of(&run), volume.name);
    // The app, with the volume where the trace's folder is.
    let app = |script: &str| {
        run_at(
            &engine,
            &img,
            &volume.name,
            "/.codegenie-out",
            false,
            script,
        )
    };
    let (code, said) = app("/bin/busybox id -u; echo 0123456789 > /.codegenie-out/trace");
    assert_eq!((code, said.trim()), (0, "65534"), "{said}");
    // Read back on this machine, under the cap.
    let dest = tempfile::tempdir().unwrap();
    let copy = dest.path().join("trace");
    let read = volume.copy_capped("trace", &copy, 4).unwrap();
    assert_eq!((read.size, read.written), (11, 4));
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), "0123");

    // The app leaves a link to a file of this machine in the trace's place.
    let host_file = dest.path().join("host-secret");
    std::fs::write(&host_file, "this machine's file\n").unwrap();
    let (code, said) = app(&format!(
        "/bin/busybox rm /.codegenie-out/trace; /bin/busybox ln -s {} /.codegenie-out/trace",
        host_file.display()
    ));
    assert_eq!(code, 0, "{said}");
    let refused = volume.copy_capped("trace", &copy, 1 << 20).unwrap_err();
    assert!(
        matches!(refused, TraceVolumeError::NotAFile { .. }),
        "{refused:?}"
    );
    // The control: read plainly, the link leads to this machine's file.
    assert_eq!(
        std::fs::read_to_string(volume.host_dir.join("trace")).unwrap(),
        "this machine's file\n"
    );

    // A FIFO in its place: refused at once, not waited on.
    let (code, said) =
        app("/bin/busybox rm /.codegenie-out/trace; /bin/busybox mkfifo /.codegenie-out/trace");
    assert_eq!(code, 0, "{said}");
    let started = Instant::now();
    let refused = volume.copy_capped("trace", &copy, 1 << 20).unwrap_err();
    assert!(
        matches!(refused, TraceVolumeError::NotAFile { .. }),
        "{refused:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // Removed with the run's volumes.
    assert_eq!(engine.remove_run_volumes_under(&run).unwrap(), 1);
    assert_eq!(volumes_of(&run), "");
    docker(&["rmi", &img]);
}
