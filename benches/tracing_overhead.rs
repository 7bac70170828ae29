//! What tracing costs a Node workload, on the real engine, in one run: the
//! same command in the same image under the same limits (`--cpus=1`,
//! `--memory=512m`, `--pids-limit=256`, `--network=none`, `--cap-drop=ALL`,
//! `no-new-privileges`, no log driver), run bare with `docker run --rm` and
//! traced as a one-shot scenario by `codegenie trace --refresh` (the image
//! is built and remembered before timing, so neither side builds). Goal:
//! traced at most 1.5x untraced. The traced run's `phases_ms` show where
//! the difference goes: the app's own time under strace is `ready` +
//! `steps` + `stop`; the rest is the scenario's machinery.
//!
//! A third run in the same rounds is the floor of any traced run: the same
//! `docker run --rm` with the runtime trace's own bundle bind-mounted
//! read-only and the app under its strace, with its options, writing the
//! trace to a tmpfs, and nothing else (no tools placed, no copy out, no
//! parse). What the trace costs beyond that floor is the machinery's;
//! what the floor costs beyond the bare run is strace's.
//!
//! Workloads, on the Express fixture service's image
//! (`tests/fixtures/node-express-service`, on the Debian base image that
//! `tests/fixtures/debian/build-base.sh` builds):
//! - `node_service_startup`: the service from its first line until it
//!   listens (its config, CA bundle, shell, database attempt, express);
//! - `node_service_request`: the same, then one HTTP request to its `/`
//!   route, made from the same process over the container's loopback
//!   (`--network=none` leaves only that), the exit code saying whether it
//!   answered 200 (checked on both sides). The request comes from inside
//!   the app so that both sides make it the same way: a helper process
//!   asking from outside would time the two clients, not tracing. Its
//!   client half runs under strace too, so the figure is if anything high;
//! - `open_heavy`: express required 20 times with the module cache cleared,
//!   then 18,000 opens of 600 files.
//!
//! With `CODEGENIE_BENCH_BASELINE_BIN` naming another `codegenie` binary
//! (an earlier build), that binary traces too, in the same rounds, as a
//! fourth side: before and after a change, measured together.
//!
//! `cargo bench --bench tracing_overhead`.
// The benchmark drives the built binary and the engine CLI directly.
#![allow(clippy::disallowed_methods)]

#[path = "support/fixture.rs"]
mod fixture;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use codegenie_runtime::runtime_trace::bundle::{self, Bundle};

const ROUNDS: usize = 5;

/// Exits as soon as the service listens.
const STARTUP: &str = "const http=require('http');const listen=http.Server.prototype.listen;\
http.Server.prototype.listen=function(...a){this.once('listening',()=>process.exit(0));return listen.apply(this,a)};\
require('/app/server.js')";

/// Starts the service as [`STARTUP`] does, then asks its `/` route once
/// over loopback and exits 0 if it answered 200.
const REQUEST: &str = "const http=require('http');const listen=http.Server.prototype.listen;\
http.Server.prototype.listen=function(...a){this.once('listening',()=>{\
http.get({host:'127.0.0.1',port:this.address().port,path:'/',agent:false},r=>{r.resume();\
r.on('end',()=>process.exit(r.statusCode===200?0:1))}).on('error',()=>process.exit(2))});\
return listen.apply(this,a)};require('/app/server.js')";

/// Re-requires express and opens many files.
const OPEN_HEAVY: &str = "const fs=require('fs');\
for(let i=0;i<20;i++){for(const k of Object.keys(require.cache))delete require.cache[k];require('express')}\
fs.mkdirSync('/tmp/w',{recursive:true});\
for(let i=0;i<600;i++)fs.writeFileSync('/tmp/w/f'+i,'x');\
for(let r=0;r<30;r++)for(let i=0;i<600;i++)fs.closeSync(fs.openSync('/tmp/w/f'+i,'r'))";

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The scenario's limits, as `docker run` flags.
const LIMITS: [&str; 8] = [
    "--network=none",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    "--pids-limit=256",
    "--memory=512m",
    "--cpus=1",
    "--log-driver=none",
    "--workdir=/app",
];

/// `docker run --rm` under the scenario's limits with `flags`, then
/// `image` and `argv`: its wall time.
fn docker_run(flags: &[String], image: &str, argv: &[String]) -> Duration {
    let start = Instant::now();
    let out = Command::new("docker")
        .args(["run", "--rm"])
        .args(LIMITS)
        .args(flags)
        .arg(image)
        .args(argv)
        .output()
        .expect("docker run");
    let took = start.elapsed();
    assert!(out.status.success(), "docker run failed: {out:?}");
    took
}

/// `docker run --rm` of `argv` in `image` under the scenario's limits.
fn bare(image: &str, argv: &[&str]) -> Duration {
    let argv: Vec<String> = argv.iter().map(|a| (*a).to_owned()).collect();
    docker_run(&[], image, &argv)
}

/// The same run with `argv` under the bundle's strace, the bundle
/// bind-mounted read-only where the trace mounts it, the trace written to
/// a tmpfs: the floor of a traced run.
fn strace_alone(b: &Bundle, image: &str, argv: &[&str]) -> Duration {
    let app: Vec<String> = argv.iter().map(|a| (*a).to_owned()).collect();
    let flags = [
        format!("--volume={}:{}:ro", b.dir().display(), bundle::ROOT),
        format!("--tmpfs={}:mode=1777", bundle::OUT_DIR),
        format!("--entrypoint={}", bundle::LOADER),
    ];
    docker_run(&flags, image, &bundle::strace_argv(&app, b.seccomp_bpf))
}

/// `codegenie trace <repo> --refresh --json`: wall time and the scenario's
/// result from the slice.
fn traced(repo: &Path) -> (Duration, serde_json::Value) {
    traced_by(Path::new(env!("CARGO_BIN_EXE_codegenie")), repo)
}

/// [`traced`] by the binary `bin`.
fn traced_by(bin: &Path, repo: &Path) -> (Duration, serde_json::Value) {
    let start = Instant::now();
    let out = Command::new(bin)
        .arg("trace")
        .arg(repo)
        .args(["--refresh", "--json"])
        .output()
        .expect("run codegenie");
    let took = start.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "trace failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let slice: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.join(".codegenie/context/runtime_trace.json")).unwrap(),
    )
    .unwrap();
    (took, slice["scenarios"][0].clone())
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: only
    // a real benchmark run drives the engine.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let base = Command::new("docker")
        .args(["image", "inspect", "codegenie-fixture-debian:bookworm"])
        .output()
        .expect("docker");
    assert!(
        base.status.success(),
        "run tests/fixtures/debian/build-base.sh first (no codegenie-fixture-debian:bookworm)"
    );
    let repo = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/node-express-service");
    fixture::copy_tree(&src, repo.path());
    std::fs::create_dir_all(repo.path().join(".codegenie")).unwrap();
    // The bundle a trace places, made as the trace makes it.
    let tools = Bundle::assemble(Path::new(env!("CARGO_BIN_EXE_codegenie"))).unwrap();
    let baseline = std::env::var_os("CODEGENIE_BENCH_BASELINE_BIN").map(std::path::PathBuf::from);

    for (name, script) in [
        ("node_service_startup", STARTUP),
        ("node_service_request", REQUEST),
        ("open_heavy", OPEN_HEAVY),
    ] {
        let argv = ["node", "-e", script];
        let yaml = format!(
            "version: 1\nscenarios:\n  - name: {name}\n    command: {}\n    expected_exit_code: 0\n",
            serde_json::to_string(&argv).unwrap()
        );
        std::fs::write(repo.path().join(".codegenie/scenarios.yaml"), yaml).unwrap();
        // Build (and remember) the image, and warm both paths.
        let (_, first) = traced(repo.path());
        assert_eq!(first["outcome"]["kind"], "completed", "{first:#}");
        let slice: serde_json::Value = serde_json::from_slice(
            &std::fs::read(repo.path().join(".codegenie/context/runtime_trace.json")).unwrap(),
        )
        .unwrap();
        let image = slice["built_image_digest"].as_str().unwrap().to_owned();
        bare(&image, &argv);
        strace_alone(&tools, &image, &argv);
        if let Some(bin) = &baseline {
            traced_by(bin, repo.path());
        }

        let (mut t, mut b, mut f, mut o) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut phases = serde_json::Value::Null;
        let mut old_phases = serde_json::Value::Null;
        for _ in 0..ROUNDS {
            let (took, sc) = traced(repo.path());
            t.push(took);
            phases = sc["phases_ms"].clone();
            b.push(bare(&image, &argv));
            f.push(strace_alone(&tools, &image, &argv));
            if let Some(bin) = &baseline {
                let (took, sc) = traced_by(bin, repo.path());
                o.push(took);
                old_phases = sc["phases_ms"].clone();
            }
        }
        let (t, b, f) = (median(&mut t), median(&mut b), median(&mut f));
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!(
            "tracing_overhead/{name}: traced {:.2} s, untraced {:.2} s, ratio {:.2}x (goal <= 1.5); \
             floor (strace alone in the same docker run) {:.2} s, {:.2}x untraced; \
             median of {ROUNDS}; last traced phases_ms {phases}; load {}",
            secs(t),
            secs(b),
            secs(t) / secs(b),
            secs(f),
            secs(f) / secs(b),
            load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
        );
        if let Some(bin) = &baseline {
            let o = median(&mut o);
            println!(
                "tracing_overhead/{name}: baseline {} traced {:.2} s, ratio {:.2}x untraced; \
                 its last phases_ms {old_phases}",
                bin.display(),
                secs(o),
                secs(o) / secs(b)
            );
        }
    }
    let _ = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .args(["cache", "prune"])
        .arg(repo.path())
        .args(["--keep-images", "0"])
        .output();
}
