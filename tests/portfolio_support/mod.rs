//! A second Docker engine for the portfolio tests and benchmark, started in
//! a network namespace of its own so it can never touch the host's
//! networking (no bridge, no iptables), with its own config file (the
//! machine's `/etc/docker/daemon.json` sets `data-root`), data and exec
//! roots and socket in a temp folder. Stopped by the pid in its pidfile.
// Tests start dockerd and the engine CLI directly; the product itself
// starts processes only through its exec layer.
#![allow(clippy::disallowed_methods)]
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A dockerd of the test's own.
pub struct SecondEngine {
    dir: tempfile::TempDir,
    child: Child,
    stopped: bool,
}

impl SecondEngine {
    /// Start it and wait until it answers.
    pub fn start() -> SecondEngine {
        let dockerd = Path::new("/usr/sbin/dockerd");
        assert!(
            dockerd.is_file(),
            "the second engine needs /usr/sbin/dockerd"
        );
        // Short path: a unix socket path has at most 107 bytes.
        let dir = tempfile::Builder::new()
            .prefix("cg-engine-")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        // vfs: overlay storage on this machine's fuse-overlayfs root does not nest.
        std::fs::write(d.join("daemon.json"), r#"{"storage-driver": "vfs"}"#).unwrap();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let child = Command::new("unshare")
            .args(["--net", "--fork"])
            .arg(dockerd)
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("pid"))
            .arg("--host")
            .arg(format!("unix://{}", d.join("sock").display()))
            .args(["--iptables=false", "--ip6tables=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group, so a failed start can be ended whole.
            .process_group(0)
            .spawn()
            .expect("start unshare dockerd");
        let engine = SecondEngine {
            dir,
            child,
            stopped: false,
        };
        let started = Instant::now();
        while !engine.answers() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the second engine did not answer within 60 s: {}",
                engine.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        engine
    }

    /// Its `DOCKER_HOST` value.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("sock").display())
    }

    /// Whether it answers `docker version`.
    pub fn answers(&self) -> bool {
        Command::new("docker")
            .args([
                "-H",
                &self.host(),
                "version",
                "--format",
                "{{.Server.Version}}",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `docker <args>` on this engine.
    pub fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .arg("-H")
            .arg(self.host())
            .args(args)
            .output()
            .unwrap()
    }

    /// Copy `image` from the machine's engine (`docker save | docker load`).
    pub fn load_image(&self, image: &str) {
        let mut save = Command::new("docker")
            .args(["save", image])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let load = Command::new("docker")
            .arg("-H")
            .arg(self.host())
            .arg("load")
            .stdin(save.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(save.wait().unwrap().success(), "docker save {image}");
        assert!(
            load.status.success(),
            "docker load {image}: {}",
            String::from_utf8_lossy(&load.stderr)
        );
    }

    /// The end of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        log.lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stop it as an operator would (SIGTERM to dockerd by its pidfile) and
    /// wait until it is gone; SIGKILL to the whole group after 60 s.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pid = std::fs::read_to_string(self.dir.path().join("pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        if let Some(pid) = pid {
            let _ = nix_kill(pid, "TERM");
        }
        let started = Instant::now();
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = nix_kill(-(self.child.id() as i32), "KILL");
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its folder.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for SecondEngine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `kill -<sig> <pid>` (a negative pid is a process group).
fn nix_kill(pid: i32, sig: &str) -> std::io::Result<std::process::ExitStatus> {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg("--")
        .arg(pid.to_string())
        .status()
}
