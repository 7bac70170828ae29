//! `codegenie minimize` on a hostile image, real engine: a 2 GiB sparse file
//! of which the app reads one byte, and names outside the app's tree that
//! are links into `/dev` (a log to `/dev/stdout`, a config to `/dev/null`).
//! What minimize writes on the host stays small (the exports are streamed,
//! the one copy is sparse), the links are kept, and the verification checks
//! them: without the config link (the control) the image is not verified.
// Tests drive the built binary and the engine's CLI directly.
#![allow(clippy::disallowed_methods)]

mod fs_support;
mod trace_support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use codegenie::runtime_trace::{RuntimeTraceSlice, TraceSettings};
use codegenie::ProbeContext;
use codegenie_runtime::engine::{Engine, EngineKind, KEEP_IMAGES};
use codegenie_runtime::minimal::units::Granularity;
use codegenie_runtime::minimal::verify::compare;
use codegenie_runtime::minimal::{build_minimal_image, EvidencePaths, MinimizeError};
use trace_support::services::docker_ok;
use trace_support::*;

/// Bytes allocated on disk under `dir` (sparse files count their data).
fn allocated(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in entries.flatten() {
        let Ok(m) = e.path().symlink_metadata() else {
            continue;
        };
        total += m.blocks() * 512;
        if m.is_dir() {
            total += allocated(&e.path());
        }
    }
    total
}

/// `busybox ARGS` in a container of `image` with no network.
fn busybox_in(image: &str, args: &[&str]) -> String {
    let mut argv = vec![
        "run",
        "--rm",
        "--network=none",
        "--entrypoint",
        "/bin/busybox",
        image,
    ];
    argv.extend(args);
    docker_ok(&argv)
}

fn trace_on(repo: &Path, image: &str, name: &str) -> RuntimeTraceSlice {
    let id = run_id(name);
    let mut ctx: ProbeContext = context(&id, &[]);
    let mut settings = ctx.settings.get::<TraceSettings>().cloned().unwrap();
    settings.image = Some(image.to_owned());
    ctx.settings.insert(settings);
    let snapshot = codegenie::RepoSnapshot::open(repo).unwrap();
    let out = codegenie_runtime::runtime_trace::probe::run_blocking(&snapshot, &ctx)
        .expect("the image is traced");
    assert!(labelled_containers(&id).is_empty());
    serde_json::from_value(out.schema_slice.clone()).unwrap()
}

#[test]
fn a_sparse_file_and_links_into_dev_are_bounded_kept_and_checked() {
    let _engine = engine_share();
    let repo = fixture_repo("tests/fixtures/hostile/sparse-devlink");
    let id = run_id("min-sparse");
    let (stop, peak) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let watcher = {
        let (stop, peak, dir) = (stop.clone(), peak.clone(), repo.path().to_owned());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                peak.fetch_max(allocated(&dir), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .arg("minimize")
        .arg(repo.path())
        .args(["--json", "--no-cache", "--run-id", &id])
        .output()
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    let peak = peak.load(Ordering::SeqCst);
    let image = v["minimal_image"].as_str().unwrap().to_owned();
    eprintln!(
        "ROW | sparse 2 GiB file, links into /dev | verified {} | peak on the host {} B | {:.0} s | leftovers {:?}",
        v["verified"],
        peak,
        started.elapsed().as_secs_f64(),
        labelled_containers(&id)
    );
    assert_eq!(v["verified"], true, "{v:#}");
    // The file is in the minimal image, whole (the app tree), and what
    // minimize wrote on the host stayed far below it: streamed exports,
    // a sparse copy. Before, the export and the cut were 4.1 GB.
    assert_eq!(
        busybox_in(&image, &["stat", "-c", "%s", "/app/big.bin"]),
        "2147483648"
    );
    assert!(peak < 200 << 20, "peak {peak} bytes under the repository");
    // The links outside the app's tree are kept, as links.
    assert_eq!(
        busybox_in(&image, &["readlink", "/var/log/app/access.log"]),
        "/dev/stdout"
    );
    assert_eq!(
        busybox_in(&image, &["readlink", "/etc/app/extra.conf"]),
        "/dev/null"
    );
    assert!(labelled_containers(&id).is_empty());

    // The control: the same evidence without the config link builds an
    // image that lacks it, and the verification says so (before, the
    // evidence never named such a link, and the image was "verified").
    let slice: RuntimeTraceSlice = serde_json::from_slice(
        &std::fs::read(repo.path().join(".codegenie/context/runtime_trace.json")).unwrap(),
    )
    .unwrap();
    let mut evidence = EvidencePaths::of(&slice);
    assert!(
        evidence.named.contains("/etc/app/extra.conf"),
        "the link is named: {:?}",
        slice
            .scenarios
            .iter()
            .filter_map(|s| s.trace.as_ref())
            .map(|t| &t.paths_probed)
            .collect::<Vec<_>>()
    );
    evidence.named.remove("/etc/app/extra.conf");
    let scratch = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineKind::Docker);
    let original = slice.built_image_digest.clone().unwrap();
    let without = build_minimal_image(
        &engine,
        &original,
        &evidence,
        scratch.path(),
        KEEP_IMAGES,
        Granularity::Unit,
        Default::default(),
    )
    .unwrap()
    .image;
    let on_without = trace_on(repo.path(), &without.image_id, "min-sparse-control");
    let verification = compare(&slice, &on_without);
    assert!(!verification.verified, "{verification:#?}");
    assert!(
        verification.missing.contains("/etc/app/extra.conf"),
        "{:?}",
        verification.missing
    );
    // No room for the one copy: a typed error naming the free space, and
    // nothing half-written. (The image is removed first: a minimal image of
    // the same cut would be reused, with nothing to copy.)
    let _ = Command::new("docker").args(["rmi", "-f", &image]).output();
    let small = fs_support::Tmpfs::mount("64m");
    let err = build_minimal_image(
        &engine,
        &original,
        &EvidencePaths::of(&slice),
        small.path(),
        KEEP_IMAGES,
        Granularity::Unit,
        Default::default(),
    )
    .unwrap_err();
    eprintln!("ROW | sparse 2 GiB file, 64 MiB of scratch | {err}");
    assert!(
        matches!(err, MinimizeError::NoRoom { what, bytes, limit, .. } if what.starts_with("the free space") && bytes > 2 << 30 && limit <= 64 << 20),
        "{err}"
    );
    assert!(err.to_string().contains("free space"), "{err}");
    assert_eq!(
        fs_support::files_under(small.path()),
        Vec::<std::path::PathBuf>::new()
    );
    let _ = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .args(["cache", "prune"])
        .arg(repo.path())
        .args(["--keep-images", "0"])
        .output();
}

#[test]
fn file_names_that_are_not_utf8_are_kept_apart_at_every_granularity_and_on_a_base() {
    let _engine = engine_share();
    let repo = fixture_repo("tests/fixtures/hostile/non-utf8-names");
    for extra in [
        &["--granularity", "file"][..],
        &["--granularity", "unit"][..],
        &["--base", "scratch"][..],
    ] {
        let id = run_id("min-non-utf8");
        let out = Command::new(env!("CARGO_BIN_EXE_codegenie"))
            .arg("minimize")
            .arg(repo.path())
            .args(["--json", "--no-cache", "--run-id", &id])
            .args(extra)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{extra:?}: {e}: {}", String::from_utf8_lossy(&out.stderr));
        });
        eprintln!(
            "ROW | names caf\\xe8, caf\\xe9 | {extra:?} | verified {} | missing {}",
            v["verified"], v["missing"]
        );
        assert_eq!(v["verified"], true, "{extra:?}: {v:#}");
        let image = v["minimal_image"].as_str().unwrap();
        // Both files, apart: their contents in name order (\xe8 < \xe9).
        assert_eq!(
            busybox_in(image, &["sh", "-c", "/bin/busybox cat /app/caf*"]),
            "yx",
            "{extra:?}"
        );
        if extra[0] == "--granularity" && extra[1] == "file" {
            let files: Vec<&str> = v["added"]["files"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|f| f.as_str())
                .collect();
            assert!(
                files.contains(&"/app/caf\\xe8") && files.contains(&"/app/caf\\xe9"),
                "{files:?}"
            );
        }
        assert!(labelled_containers(&id).is_empty());
    }
    let _ = Command::new(env!("CARGO_BIN_EXE_codegenie"))
        .args(["cache", "prune"])
        .arg(repo.path())
        .args(["--keep-images", "0"])
        .output();
}

/// A `docker save` archive written by hand, as a user's hostile image
/// would be: one layer of `tree` (a folder, taken as the image's root) and
/// `config` as the image's config; loaded as `tag`.
fn load_hand_made(tag: &str, tree: &Path, config: serde_json::Value) {
    let mut layer = tar::Builder::new(Vec::new());
    layer.follow_symlinks(false);
    layer.append_dir_all(".", tree).unwrap();
    let layer = layer.into_inner().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("layer.tar"), &layer).unwrap();
    let sum = Command::new("sha256sum")
        .arg(dir.path().join("layer.tar"))
        .output()
        .unwrap();
    let digest = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let image = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{digest}")] },
    });
    let manifest = serde_json::json!([{
        "Config": "config.json",
        "RepoTags": [tag],
        "Layers": ["layer.tar"],
    }]);
    let mut archive = tar::Builder::new(Vec::new());
    for (name, bytes) in [
        ("config.json", serde_json::to_vec(&image).unwrap()),
        ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
        ("layer.tar", layer),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        archive.append_data(&mut h, name, bytes.as_slice()).unwrap();
    }
    let path = dir.path().join("image.tar");
    std::fs::write(&path, archive.into_inner().unwrap()).unwrap();
    docker_ok(&["load", "-q", "-i", path.to_str().unwrap()]);
}

/// Every file under `dir`, as text where it is text.
fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.push_str(&all_text(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    out
}

#[test]
fn a_hand_made_image_s_hostile_config_is_refused_or_quoted_and_its_secrets_never_shown() {
    let _engine = engine_share();
    // The busybox service's files, as the one layer of an image written by
    // hand; its config holds values no Dockerfile would: a newline and an
    // instruction in WORKDIR, an ENV value and a label, and secrets in
    // another ENV value and label.
    let files = fixture_repo("tests/fixtures/service");
    let root = tempfile::tempdir().unwrap();
    copy_dir(&files.path().join("rootfs"), root.path());
    copy_dir(&files.path().join("bin"), &root.path().join("bin"));
    let injected = "\nRUN echo INJECTED > /pwned #";
    let aws = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let token = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB";
    let tag = format!("codegenie-test-hand-made:{}", std::process::id());
    load_hand_made(
        &tag,
        root.path(),
        serde_json::json!({
            "Entrypoint": ["/app/start.sh"],
            "Cmd": ["--port", "8080"],
            "ExposedPorts": { "8080/tcp": {} },
            "WorkingDir": format!("/srv{injected}"),
            "Env": [
                "PATH=/bin",
                format!("AWS_SECRET_ACCESS_KEY={aws}"),
                format!("NOTE=line{injected}"),
            ],
            "Labels": {
                "org.example.deploy-token": token,
                "org.example.note": format!("x{injected}"),
            },
        }),
    );
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(repo.path().join("Dockerfile"), format!("FROM {tag}\n")).unwrap();
    let minimize = |id: &str, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_codegenie"))
            .arg("minimize")
            .arg(repo.path())
            .args(["--json", "--no-cache", "--run-id", id])
            .args(extra)
            .output()
            .unwrap()
    };
    let shown = |out: &std::process::Output| {
        let text = format!(
            "{}{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            all_text(&repo.path().join(".codegenie"))
        );
        for secret in [aws, token] {
            assert!(!text.contains(secret), "{secret} shown:\n{text}");
        }
    };

    // Imported (no `--base`): the engine reads `docker import`'s changes as
    // one Dockerfile, one per line, so a WORKDIR holding a newline would add
    // an instruction; the import is refused with a typed error naming the
    // instruction, and the run fails cleanly.
    let id = run_id("min-hand-import");
    let out = minimize(&id, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "ROW | hand-made image, WORKDIR/ENV/LABEL with a newline and an instruction, secrets in ENV and a label; minimize | failed (exit 2): import refused | exit {:?}: {} | leftovers {:?}",
        out.status.code(),
        stderr.lines().last().unwrap_or_default(),
        labelled_containers(&id)
    );
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("WORKDIR") || stderr.contains("ENV"),
        "{stderr}"
    );
    shown(&out);
    assert!(labelled_containers(&id).is_empty());

    // Built on scratch by the Dockerfile handed over: each such value's line
    // is refused, and no instruction of the image's reaches the file.
    let id = run_id("min-hand-base");
    let out = minimize(&id, &["--base", "scratch"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    shown(&out);
    let file = std::fs::read_to_string(
        repo.path()
            .join(".codegenie/context/raw/Dockerfile.distroless"),
    )
    .unwrap();
    // A value reaches the file only inside a comment or a JSON string (the
    // folder the engine made for that WORKDIR is a name the pick archives).
    for line in file.lines().filter(|l| l.contains("INJECTED")) {
        let quoted = line
            .strip_prefix("RUN ")
            .is_some_and(|a| serde_json::from_str::<Vec<String>>(a).is_ok());
        assert!(
            line.starts_with('#') || quoted,
            "a value outside a comment or a JSON string: {line}\n{file}"
        );
    }
    assert!(
        !file
            .lines()
            .any(|l| l.starts_with("RUN ") && !l.starts_with("RUN [")),
        "{file}"
    );
    let refused: Vec<String> = v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["instruction"].as_str().unwrap_or_default().to_owned())
        .collect();
    for instruction in ["WORKDIR", "ENV", "LABEL"] {
        assert!(refused.iter().any(|r| r == instruction), "{v:#}");
    }
    let image = v["minimal_image"].as_str().unwrap();
    assert!(!busybox_in(image, &["ls", "/"]).contains("pwned"));
    eprintln!(
        "ROW | hand-made image; minimize --base scratch | built, values refused ({}), no secret shown | exit {:?}, verified {}, refused {refused:?} | leftovers {:?}",
        refused.len(),
        out.status.code(),
        v["verified"],
        labelled_containers(&id)
    );
    assert!(labelled_containers(&id).is_empty());
    let _ = Command::new("docker")
        .args(["rmi", "-f", image, &tag])
        .output();
}

fn copy_dir(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        let (from, to) = (e.path(), dest.join(e.file_name()));
        let kind = e.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from).unwrap(), &to).unwrap();
        } else if kind.is_dir() {
            copy_dir(&from, &to);
        } else {
            std::fs::copy(&from, &to).unwrap();
        }
    }
}
