//! Shared helpers of the containment tests: a private temp folder per test
//! binary (so leftover temp dirs can be counted), leftover checks on the real
//! engine, and one table row per case on stderr (`--nocapture` shows them).
// Tests drive the built binary, the engine and mounts directly; the
// product itself starts processes only through its exec layer.
#![allow(clippy::disallowed_methods)]
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

/// The temp folder the probe uses in these tests (TMPDIR points at it), so
/// that what it leaves there can be listed. Created once per test binary.
pub fn private_tmp() -> PathBuf {
    static INIT: Once = Once::new();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "containment-{}-{}",
        std::env::args()
            .next()
            .and_then(|a| Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default(),
        std::process::id()
    ));
    INIT.call_once(|| {
        std::fs::create_dir_all(&dir).unwrap();
        std::env::set_var("TMPDIR", &dir);
    });
    dir
}

/// Entries of the private temp folder.
pub fn tmp_entries() -> BTreeSet<String> {
    std::fs::read_dir(private_tmp())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// What a run left behind: containers with its label, temp dirs the probe
/// created, and tags on its image other than the one the probe documents.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Containers labelled with the run id.
    pub containers: Vec<String>,
    /// New entries in the private temp folder.
    pub temp_entries: Vec<String>,
    /// Tags on the built image besides `codegenie-trace:<short digest>`.
    pub extra_tags: Vec<String>,
    /// Images labelled with the run id (the run's tool image).
    pub images: Vec<String>,
    /// Volumes labelled with the run id (the run's tool volume and its scenarios' trace volumes).
    pub volumes: Vec<String>,
}

impl Leftovers {
    /// `none`, or what was found, for the table.
    pub fn describe(&self) -> String {
        if *self == Leftovers::default() {
            "none".to_owned()
        } else {
            format!("{self:?}")
        }
    }
}

/// Collect leftovers of `run_id` (temp entries compared with `tmp_before`),
/// then remove the documented `codegenie-trace:` tag and the image so the
/// engine is left as it was found.
pub fn leftovers_and_cleanup(
    run_id: &str,
    tmp_before: &BTreeSet<String>,
    digest: Option<&str>,
) -> Leftovers {
    let containers = crate::trace_support::labelled_containers(run_id);
    let images = labelled("image", run_id);
    let volumes = labelled("volume", run_id);
    let temp_entries = tmp_entries().difference(tmp_before).cloned().collect();
    let mut extra_tags = Vec::new();
    if let Some(d) = digest {
        let out = Command::new("docker")
            .args(["image", "inspect", "--format", "{{json .RepoTags}}", d])
            .output()
            .unwrap();
        let tags: Vec<String> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let documented = format!("codegenie-trace:{}", &d[7..19]);
        extra_tags = tags.iter().filter(|t| **t != documented).cloned().collect();
        remove_image(d);
    }
    Leftovers {
        containers,
        temp_entries,
        extra_tags,
        images,
        volumes,
    }
}

/// Image ids (`kind` image) or volume names (`kind` volume) carrying
/// `codegenie.run=<run_id>`.
fn labelled(kind: &str, run_id: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([kind, "ls", "-q", "--filter"])
        .arg(format!("label=codegenie.run={run_id}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Untag and remove an image (best effort: another run may share its layers).
pub fn remove_image(digest: &str) {
    let tag = format!("codegenie-trace:{}", &digest[7..19]);
    let _ = Command::new("docker")
        .args(["rmi", "--no-prune", &tag])
        .output();
    let _ = Command::new("docker")
        .args(["rmi", "--no-prune", digest])
        .output();
}

/// Print one row of the containment table.
pub fn row(case: &str, expected: &str, observed: &str, took: Duration, leftovers: &str) {
    eprintln!(
        "ROW | {case} | {expected} | {observed} | {:.1} s | {leftovers}",
        took.as_secs_f64()
    );
}

/// Peak resident memory of this process (`VmHWM`), in KiB.
pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// The largest writable layer of any container of a run, measured by the
/// test itself (independently of the product's own watch) every 200 ms.
pub struct WritablePeak {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<u64>,
}

impl WritablePeak {
    /// Start measuring the containers labelled `codegenie.run=<run_id>`.
    pub fn start(run_id: &str) -> WritablePeak {
        let (stop, rx) = std::sync::mpsc::channel::<()>();
        let run_id = run_id.to_owned();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(Duration::from_millis(200))
            {
                for id in crate::trace_support::labelled_containers(&run_id) {
                    let out = Command::new("docker")
                        .args(["container", "inspect", "--size", "--format", "{{.SizeRw}}"])
                        .arg(&id)
                        .output()
                        .unwrap();
                    let size: u64 = String::from_utf8_lossy(&out.stdout)
                        .trim()
                        .parse()
                        .unwrap_or(0);
                    peak = peak.max(size);
                }
            }
            peak
        });
        WritablePeak { stop, thread }
    }

    /// Stop and return the peak in bytes.
    pub fn finish(self) -> u64 {
        drop(self.stop);
        self.thread.join().unwrap()
    }
}
