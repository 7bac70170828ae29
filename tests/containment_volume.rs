//! A Dockerfile `VOLUME` does not get around the disk bound, on the real
//! engine: an anonymous volume's writes are outside the writable layer the
//! disk watch measures, so every declared volume is a tmpfs of the bound's
//! size instead, and no volume is ever created on the host.
// Tests drive the engine directly for the control.
#![allow(clippy::disallowed_methods)]

mod trace_support;

use std::process::Command;

use trace_support::*;

const MIB: u64 = 1 << 20;

fn volumes() -> Vec<String> {
    let out = Command::new("docker")
        .args(["volume", "ls", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn fixture() -> tempfile::TempDir {
    let repo = fixture_repo("tests/fixtures/hostile/disk-fill");
    let dockerfile = repo.path().join("Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    std::fs::write(&dockerfile, format!("{text}VOLUME /data\n")).unwrap();
    std::fs::create_dir_all(repo.path().join(".codegenie")).unwrap();
    std::fs::write(
        repo.path().join(".codegenie/scenarios.yaml"),
        "version: 1\nscenarios:\n  - name: fill_volume\n    command: [\"/bin/busybox\", \"dd\", \"if=/dev/zero\", \"of=/data/fill\", \"bs=1048576\", \"count=400\"]\n    expected_exit_code: 0\n",
    )
    .unwrap();
    repo
}

#[test]
fn a_volume_is_a_bounded_tmpfs_not_a_host_volume() {
    let _engine = engine_lock();
    let repo = fixture();
    let before = volumes();

    // Control: the same image run plainly gets an anonymous volume on the
    // host, outside any writable-layer measure.
    let image = {
        let out = Command::new("docker")
            .args(["build", "-q"])
            .arg(repo.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let created = Command::new("docker")
        .args(["create", "--network=none", &image])
        .output()
        .unwrap();
    assert!(created.status.success());
    let cid = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    let with_volume = volumes();
    let _ = Command::new("docker").args(["rm", "-v", &cid]).output();
    assert!(
        with_volume.len() > before.len(),
        "control: a plain container of this image gets a host volume"
    );

    // The trace: 400 MiB into /data against a 64 MiB bound.
    let id = run_id("volume");
    let rec = run_probe(
        repo.path(),
        context(&id, &[Setting::DiskLimitBytes(64 * MIB)]),
        false,
    );
    let s = &rec.output.as_ref().expect("an output").schema_slice;
    let sc = &s["scenarios"][0];
    // dd stops at the tmpfs's size: the app fails, the host keeps nothing.
    assert_eq!(sc["outcome"]["kind"], "failed", "{sc:#}");
    assert_eq!(volumes(), before, "no volume was created on the host");
    assert!(labelled_containers(&id).is_empty());
}
