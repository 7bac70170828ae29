//! The engine API client (docs/architecture.md, "Engine API") on the real
//! engine, with no engine CLI on `PATH`: every call a scenario makes many
//! of (create, start and follow, inspect, exec, capped copy, kill, remove)
//! still works, so it went through the API, and the hardening the CLI used
//! to pass as flags is in the container, field for field; the ping and the
//! run's listings too.
//! The config, the tagging and the listing give what the CLI gives. The
//! control: a call left on the CLI (an image's id) fails without the
//! program, and an endpoint only the CLI reaches (a Docker context) fails
//! the same calls.
// Tests drive the engine CLI directly, by its absolute path.
#![allow(clippy::disallowed_methods)]

mod trace_support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use codegenie_runtime::engine::{
    ContextName, CreateOptions, Engine, EngineEndpoint, EngineError, EngineKind, StartedApp,
};
use codegenie_runtime::exec::Termination;
use trace_support::*;

fn docker_path() -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("docker"))
        .find(|p| p.is_file())
        .expect("docker on PATH")
}

fn docker(bin: &PathBuf, args: &[&str]) -> String {
    let out = Command::new(bin).args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_scenario_s_engine_calls_go_through_the_api() {
    let _engine = engine_lock();
    let tag = format!("codegenie-test-api:{}", std::process::id());
    let repository = format!("/api-test/{}", std::process::id());
    busybox_image(
        &tag,
        "api",
        &[&format!("codegenie.repository={repository}")],
    );
    let bin = docker_path();
    // An image's config through the API is the one the CLI reads, ports
    // and volumes included (the API types them otherwise).
    let rich = format!("codegenie-test-api-config:{}", std::process::id());
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {tag}\nEXPOSE 8080 53/udp\nVOLUME /data /cache\nENV A=1 B=\"two words\"\n\
             WORKDIR /w\nUSER 1000:1000\nLABEL x=y\nENTRYPOINT [\"/bin/busybox\"]\nCMD [\"true\"]\n"
        ),
    )
    .unwrap();
    docker(
        &bin,
        &["build", "-q", "-t", &rich, &ctx.path().to_string_lossy()],
    );
    let cli_only = Engine::at(
        EngineKind::Docker,
        EngineEndpoint::Context(ContextName::new("default").unwrap()),
    );
    let by_cli = cli_only.image_config(&rich).unwrap();
    assert_eq!(by_cli.first_tcp_port(), Some(8080));
    assert_eq!(by_cli.volumes.as_ref().map(|v| v.len()), Some(2));
    // The listing of a repository's tagged images: the CLI's rows.
    let first = format!("codegenie-trace:apitest{}a", std::process::id());
    let second = format!("codegenie-trace:apitest{}b", std::process::id());
    cli_only.tag(&tag, &first).unwrap();
    let listed_by_cli = cli_only
        .repository_images("codegenie-trace", &repository)
        .unwrap();
    assert_eq!(listed_by_cli.len(), 1, "{listed_by_cli:?}");
    let missing = format!("codegenie-test-api-missing:{}", std::process::id());
    let ids_by_cli = cli_only.image_ids(&[tag.clone(), rich.clone()]).unwrap();
    assert_eq!(
        cli_only.image_ids(&[tag.clone(), missing.clone()]).unwrap(),
        None
    );
    // Two removals of one container at once (a scenario's cleanup beside an
    // interrupted run's sweep) both succeed, through the CLI too, and the
    // container is gone when each returns.
    removals_at_once_both_leave_it_gone(&cli_only, &bin, &tag);
    // From here on no program called `docker` can be found.
    let empty = tempfile::tempdir().unwrap();
    std::env::set_var("PATH", empty.path());

    let engine = Engine::new(EngineKind::Docker);
    // The ping goes through the API; a call on the CLI fails without the
    // program: the control.
    assert!(!engine.ping().unwrap().is_empty());
    assert!(
        matches!(
            cli_only.image_config(&rich),
            Err(EngineError::Unavailable { .. })
        ),
        "the CLI is gone"
    );
    // Images' ids through the API: the CLI's, and a missing image is none.
    assert_eq!(
        engine.image_ids(&[tag.clone(), rich.clone()]).unwrap(),
        ids_by_cli
    );
    assert_eq!(engine.image_ids(&[tag.clone(), missing]).unwrap(), None);
    assert_eq!(engine.image_config(&rich).unwrap(), by_cli);
    // Tagging and listing through the API: the same rows (the time in the
    // CLI's layout, UTC), one a tag.
    let listed = engine
        .repository_images("codegenie-trace", &repository)
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (&listed[0].id, &listed[0].tag),
        (&listed_by_cli[0].id, &listed_by_cli[0].tag)
    );
    assert!(listed[0].created.ends_with(" +0000 UTC"), "{listed:?}");
    if listed_by_cli[0].created.ends_with(" +0000 UTC") {
        assert_eq!(listed[0].created, listed_by_cli[0].created);
    }
    engine.tag(&tag, &second).unwrap();
    let tags: Vec<String> = engine
        .repository_images("codegenie-trace", &repository)
        .unwrap()
        .into_iter()
        .map(|i| i.tag)
        .collect();
    assert_eq!(tags, [second.clone(), first.clone()]);
    let run_id = format!("api-test-{}", std::process::id());
    let create = CreateOptions {
        image: tag.clone(),
        run_id: run_id.clone(),
        entrypoint: "/bin/busybox".into(),
        args: vec!["sleep".into(), "60".into()],
        pids_limit: 77,
        memory: "96m".into(),
        cpus: "0.5".into(),
        tmpfs: vec![("/scratch".into(), 1 << 20)],
        mounts: Vec::new(),
    };
    let id = engine.create(&create).expect("created through the API");
    assert!(!engine.is_running(&id).unwrap());
    // Copies out work on a created container: the image's marker file.
    assert_eq!(
        engine
            .read_head(&id, "/marker", 64, Duration::from_secs(10))
            .unwrap(),
        b"api"
    );

    // The hardening, as the engine holds it.
    let host = docker(
        &bin,
        &[
            "container",
            "inspect",
            "--format",
            "{{json .HostConfig}}",
            &id,
        ],
    );
    let host: serde_json::Value = serde_json::from_str(&host).unwrap();
    assert_eq!(host["NetworkMode"], "none");
    assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]));
    assert_eq!(
        host["SecurityOpt"],
        serde_json::json!(["no-new-privileges"])
    );
    assert_eq!(host["PidsLimit"], 77);
    assert_eq!(host["Memory"], 96 << 20);
    assert_eq!(host["NanoCpus"], 500_000_000);
    assert_eq!(host["LogConfig"]["Type"], "none");
    assert_eq!(host["Tmpfs"]["/scratch"], "size=1048576");
    let labels = docker(
        &bin,
        &[
            "container",
            "inspect",
            "--format",
            "{{index .Config.Labels \"codegenie.run\"}}",
            &id,
        ],
    );
    assert_eq!(labels, run_id);

    docker(&bin, &["start", &id]);
    let mut running = false;
    for _ in 0..100 {
        if engine.is_running(&id).unwrap() {
            running = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(running);
    // A running container's files, read on this machine in its root (the
    // interpreter lookups while the app runs): the engine's bytes; a name
    // the image lacks is an error.
    let root = engine
        .container_root(&id)
        .expect("a local engine with an overlay driver: the root is here");
    assert_eq!(root.read_head("/marker", 64).unwrap(), b"api");
    assert!(root.read_head("/no-such-file", 64).is_err());

    // exec: both streams apart, the exit code, a timeout.
    let argv = |s: &str| -> Vec<String> {
        ["/bin/busybox", "sh", "-c", s]
            .iter()
            .map(|a| a.to_string())
            .collect()
    };
    let out = engine
        .exec_in(
            &id,
            &argv(
                "echo out; echo err >&2; /bin/busybox ln -s /marker /link; \
                 /bin/busybox ln -s link /rel; /bin/busybox mkdir /d; \
                 /bin/busybox ln -s ../rel /d/up; exit 3",
            ),
            Duration::from_secs(20),
        )
        .unwrap();
    assert_eq!(out.termination, Termination::Exited(3));
    assert_eq!(out.stdout.text(), "out\n");
    assert_eq!(out.stderr.text(), "err\n");
    let slow = engine
        .exec_in(
            &id,
            &argv("/bin/busybox sleep 30"),
            Duration::from_millis(300),
        )
        .unwrap();
    assert_eq!(slow.termination, Termination::TimedOut);
    // A link is followed, as `docker cp -L` does, and the copy is capped;
    // so are chains of relative links, through `..`.
    for link in ["/link", "/rel", "/d/up"] {
        assert_eq!(
            engine
                .read_head(&id, link, 2, Duration::from_secs(10))
                .unwrap(),
            b"ap",
            "{link}"
        );
    }
    assert!(!engine.oom_killed(&id).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let copy = engine
        .copy_out_capped(
            &id,
            "/marker",
            &dir.path().join("m"),
            1,
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!((copy.size, copy.written), (3, 1));
    assert!(copy.truncated());

    // The control: an endpoint only the CLI reaches fails without it.
    let context = Engine::at(
        EngineKind::Docker,
        EngineEndpoint::Context(ContextName::new("default").unwrap()),
    );
    assert!(matches!(
        context.is_running(&id),
        Err(EngineError::Unavailable { .. })
    ));

    engine.kill(&id).unwrap();
    for _ in 0..100 {
        if !engine.is_running(&id).unwrap() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!engine.is_running(&id).unwrap());
    // Stopped, its root is no longer here: a read fails (and the caller
    // asks the engine) rather than answering from an empty folder.
    assert!(root.read_head("/marker", 64).is_err());
    engine.remove(&id).unwrap();
    let gone = engine.is_running(&id).unwrap_err();
    assert!(
        matches!(gone, EngineError::Api { .. }),
        "a removed container is the engine's typed answer: {gone:?}"
    );
    let shown = codegenie_runtime::error_chain(&gone);
    assert!(shown.contains("inspect container"), "{shown}");
    assert!(shown.contains("No such container"), "{shown}");

    // start: the output comes from an attach stream opened before the
    // start (the first line is there), both streams apart, the exit code
    // from the engine's wait; all with no CLI.
    let short = CreateOptions {
        args: vec![
            "sh".into(),
            "-c".into(),
            "echo ready; echo err >&2; exit 3".into(),
        ],
        ..create.clone()
    };
    let id = engine.create(&short).unwrap();
    let mut app = engine.start_attached(&id, Some("ready")).unwrap();
    assert!(matches!(app, StartedApp::Stream(_)), "{app:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    assert_eq!(
        app.wait_until(deadline).unwrap(),
        Some(Termination::Exited(3))
    );
    let done = app.finish();
    assert_eq!(done.stdout.text(), "ready\n");
    assert_eq!(done.stderr.text(), "err\n");
    engine.remove(&id).unwrap();
    // The ready line is seen while the app runs; to stop following leaves
    // the container to its owner, who kills it.
    let long = CreateOptions {
        args: vec!["sh".into(), "-c".into(), "echo ready; sleep 60".into()],
        ..create.clone()
    };
    let id = engine.create(&long).unwrap();
    let mut app = engine.start_attached(&id, Some("ready")).unwrap();
    while !app.line_seen() {
        assert!(std::time::Instant::now() < deadline, "no ready line");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(app.try_wait().unwrap(), None, "it still runs");
    app.kill();
    assert!(matches!(app.try_wait(), Ok(Some(Termination::Signaled(9)))));
    assert!(engine.is_running(&id).unwrap());
    engine.kill(&id).unwrap();
    engine.remove(&id).unwrap();
    removals_at_once_both_leave_it_gone(&engine, &bin, &tag);

    docker(&bin, &["rmi", &rich, &first, &second, &tag]);
}

/// Start containers of `image` and remove each from two threads at once:
/// both calls succeed and neither returns while the container exists. The
/// control: the engine itself answers the second of two such removals with
/// an error, which `remove` absorbs (a removed container's `rm` fails).
fn removals_at_once_both_leave_it_gone(engine: &Engine, bin: &PathBuf, image: &str) {
    for round in 0..4 {
        let id = engine
            .create(&CreateOptions {
                image: image.to_owned(),
                run_id: format!("api-test-rm-{}", std::process::id()),
                entrypoint: "/bin/busybox".into(),
                args: vec!["sleep".into(), "60".into()],
                pids_limit: 8,
                memory: "32m".into(),
                cpus: "0.5".into(),
                tmpfs: Vec::new(),
                mounts: Vec::new(),
            })
            .unwrap();
        docker(bin, &["start", &id]);
        std::thread::scope(|s| {
            let removals: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let done = engine.remove(&id);
                        let left = Command::new(bin)
                            .args(["ps", "-aq", "--no-trunc", "--filter"])
                            .arg(format!("id={id}"))
                            .output()
                            .unwrap();
                        (
                            done,
                            String::from_utf8_lossy(&left.stdout).trim().to_owned(),
                        )
                    })
                })
                .collect();
            for r in removals {
                let (done, left) = r.join().unwrap();
                assert!(done.is_ok(), "round {round}: {done:?}");
                assert_eq!(
                    left, "",
                    "round {round}: a removal returned before it was gone"
                );
            }
        });
        let again = Command::new(bin).args(["rm", &id]).output().unwrap();
        assert!(
            !again.status.success(),
            "the engine's own answer: no such container"
        );
        engine
            .remove(&id)
            .expect("a container already gone counts as removed");
    }
}

#[test]
fn an_engine_whose_client_was_used_can_be_dropped_inside_an_async_task() {
    let _engine = engine_lock();
    let engine = Engine::new(EngineKind::Docker);
    // The client is made on first use, on a blocking thread as a probe
    // would; the last clone then goes with an async task (a portfolio's
    // worker), where dropping a runtime blocks. Without the client's own
    // drop this panics: "Cannot drop a runtime in a context where blocking
    // is not allowed".
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let engine = tokio::task::spawn_blocking(move || {
            assert!(!engine.ping().unwrap().is_empty());
            engine
        })
        .await
        .unwrap();
        tokio::spawn(async move { drop(engine) }).await.unwrap();
    });
}
