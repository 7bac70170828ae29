//! Traced vs untraced startup of the fixture service on the real engine, in
//! one run, each a whole container life as a scenario has it: create (the
//! runtime trace's hardening and limits; the traced side from the run's tool
//! image), start, wait for the app's "listening" line, remove.
//!
//! Baseline, `bare_docker_run_true`: `docker run --rm` of the same image with
//! the same hardening and limits running `/bin/true`, the engine's floor for
//! one container's life. The bundle is assembled and the tool image made
//! once, outside the timed part, as a run does them once.
//!
//! Needs Docker and `tests/fixtures/bin/busybox` (tests/fixtures/fetch-busybox.sh).
// The baseline drives the engine CLI directly, beside the exec layer.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::time::{Duration, Instant};

use codegenie_runtime::engine::{CreateOptions, Engine, EngineKind};
use codegenie_runtime::runtime_trace::bundle::{self, Bundle};
use criterion::{criterion_group, Criterion};

fn fixture_image(engine: &Engine) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let busybox = root.join("tests/fixtures/bin/busybox");
    assert!(
        busybox.is_file(),
        "run tests/fixtures/fetch-busybox.sh first ({} is missing)",
        busybox.display()
    );
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&root.join("tests/fixtures/service"), dir.path());
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(&busybox, bin.join("busybox")).unwrap();
    for a in ["sh", "cat", "nc", "httpd", "sleep", "true"] {
        std::os::unix::fs::symlink("busybox", bin.join(a)).unwrap();
    }
    engine.build(dir.path()).expect("fixture image builds")
}

#[path = "support/fixture.rs"]
mod fixture;
use fixture::copy_tree;

/// One container life: create → start → "listening" line → removed; the
/// traced side from `traced`'s tool image.
fn startup(engine: &Engine, image: &str, traced: Option<(&Bundle, &str)>) -> Duration {
    let app = vec![
        "/app/start.sh".to_owned(),
        "--port".to_owned(),
        "8080".to_owned(),
    ];
    let (image, entrypoint, args) = match traced {
        Some((b, tools)) => (
            tools,
            bundle::LOADER.to_owned(),
            bundle::strace_argv(&app, b.seccomp_bpf),
        ),
        None => (image, app[0].clone(), app[1..].to_vec()),
    };
    let started = Instant::now();
    let id = engine
        .create(&CreateOptions {
            tmpfs: Vec::new(),
            image: image.to_owned(),
            run_id: "bench-trace-startup".to_owned(),
            entrypoint,
            args,
            pids_limit: 256,
            memory: "512m".to_owned(),
            cpus: "1".to_owned(),
            mounts: Vec::new(),
        })
        .unwrap();
    if traced.is_some() {
        engine.make_folder_in(&id, bundle::OUT_DIR, 0o777).unwrap();
    }
    let mut running = engine.start_attached(&id, Some("listening on")).unwrap();
    while !running.line_seen() {
        assert!(started.elapsed() < Duration::from_secs(30), "no ready line");
        std::thread::sleep(Duration::from_millis(2));
    }
    engine.remove(&id).unwrap();
    let took = started.elapsed();
    running.kill();
    took
}

/// `docker run --rm` of `image` running `/bin/true`, with the hardening and
/// limits of [`startup`]'s containers.
fn bare_run(image: &str) -> Duration {
    let started = Instant::now();
    let out = std::process::Command::new("docker")
        .args(["run", "--rm", "--network=none", "--cap-drop=ALL"])
        .args(["--security-opt=no-new-privileges", "--pids-limit=256"])
        .args(["--memory=512m", "--cpus=1", "--log-driver=none"])
        .args(["--entrypoint", "/bin/true", image])
        .output()
        .expect("run docker");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "docker run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn bench(c: &mut Criterion) {
    let engine = Engine::new(EngineKind::Docker);
    let image = fixture_image(&engine);
    let b = Bundle::assemble(&std::env::current_exe().unwrap()).unwrap();
    let tools = engine
        .derive_tool_image(
            &image,
            true,
            &[],
            "bench-trace-startup",
            b.dir(),
            bundle::ROOT,
        )
        .unwrap();
    let mut g = c.benchmark_group("fixture_startup");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("bare_docker_run_true", |bn| {
        bn.iter_custom(|n| (0..n).map(|_| bare_run(&image)).sum())
    });
    g.bench_function("untraced", |bn| {
        bn.iter_custom(|n| (0..n).map(|_| startup(&engine, &image, None)).sum())
    });
    g.bench_function("traced", |bn| {
        bn.iter_custom(|n| {
            (0..n)
                .map(|_| startup(&engine, &image, Some((&b, &tools))))
                .sum()
        })
    });
    g.finish();
    engine.remove_tool_image(&tools, Some(&image)).unwrap();
}

criterion_group!(benches, bench);

// What `criterion_main!` expands to, behind the same gate as the other
// benchmarks: `cargo bench` passes `--bench`, `cargo test --benches` does
// not, and the setup alone (files, images, traces) is too heavy for a test run.
fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
