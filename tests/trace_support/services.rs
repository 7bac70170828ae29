//! The real services of `tests/fixtures/services/` from inside their
//! containers: `client.json`'s runtime client (tests/fixtures/README.md,
//! "Real services") and a container removed on drop.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `client.json` of a service: the argv of the runtime's own HTTP client, to
/// which the URL is appended; it prints the status, then the body.
pub struct Client {
    /// The app's port inside its container.
    pub port: u16,
    /// The client's argv, before the URL.
    pub argv: Vec<String>,
}

/// Read `<service>/client.json`.
pub fn client_of(service: &Path) -> Client {
    let path = service.join("client.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let port = v["port"].as_u64().and_then(|p| u16::try_from(p).ok());
    let argv: Option<Vec<String>> = v["argv"].as_array().and_then(|a| {
        a.iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
    });
    match (port, argv) {
        (Some(port), Some(argv)) if !argv.is_empty() => Client { port, argv },
        _ => panic!(
            "{}: expected {{\"port\": N, \"argv\": [..]}}",
            path.display()
        ),
    }
}

/// `docker ARGS`, whatever it exits with.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("docker {args:?}: {e}"))
}

/// `docker ARGS`, which must succeed; its stdout, trimmed.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A container this test started (by name), removed when dropped.
pub struct Served(pub String);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.0]);
    }
}

impl Served {
    /// Start `image` as `codegenie-test-units-<name>-<pid>` with no network,
    /// no capabilities and no new privileges.
    pub fn start(image: &str, name: &str) -> Served {
        let served = Served(format!(
            "codegenie-test-units-{name}-{}",
            std::process::id()
        ));
        let _ = docker(&["rm", "-f", &served.0]);
        docker_ok(&[
            "run",
            "-d",
            "--name",
            &served.0,
            "--network=none",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            image,
        ]);
        served
    }

    /// GET `path` from inside the container with the image's own client:
    /// the status and the body, or why no answer came.
    pub fn get(&self, client: &Client, path: &str) -> Result<(u16, String), String> {
        self.request(client, path, None)
    }

    /// POST the JSON `body` to `path` with the image's own client (the
    /// clients of `node-sqlite3` and `python-gunicorn` take it as their
    /// second argument).
    pub fn post(&self, client: &Client, path: &str, body: &str) -> Result<(u16, String), String> {
        self.request(client, path, Some(body))
    }

    fn request(
        &self,
        client: &Client,
        path: &str,
        body: Option<&str>,
    ) -> Result<(u16, String), String> {
        let url = format!("http://127.0.0.1:{}{path}", client.port);
        let mut args = vec!["exec", self.0.as_str()];
        args.extend(client.argv.iter().map(String::as_str));
        args.push(&url);
        args.extend(body);
        let out = docker(&args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() {
            return Err(format!(
                "{url}: {} {stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let (status, body) = stdout.split_once('\n').unwrap_or((stdout.as_str(), ""));
        let status = status
            .trim()
            .parse()
            .map_err(|_| format!("{url}: the client printed no status first: {stdout:?}"))?;
        Ok((status, body.to_string()))
    }

    /// GET `path` once `GET /healthz` answers 200 (the JVM takes seconds to
    /// start), within `ready`.
    pub fn get_when_ready(
        &self,
        client: &Client,
        path: &str,
        ready: Duration,
    ) -> Result<(u16, String), String> {
        let deadline = Instant::now() + ready;
        loop {
            match self.get(client, "/healthz") {
                Ok((200, _)) => break,
                other if Instant::now() > deadline || !self.running() => {
                    return Err(format!("never ready: {other:?}\n{}", self.logs()))
                }
                _ => std::thread::sleep(Duration::from_millis(300)),
            }
        }
        self.get(client, path)
    }

    /// Whether the container still runs.
    pub fn running(&self) -> bool {
        docker_ok(&["inspect", "-f", "{{.State.Running}}", &self.0]) == "true"
    }

    /// Its output so far, stdout then stderr.
    pub fn logs(&self) -> String {
        let out = docker(&["logs", &self.0]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// Whether `image` holds the file `path`, copied out of a container
/// created from it and never started.
pub fn image_holds(image: &str, path: &str) -> bool {
    let c = Served(format!("codegenie-test-units-holds-{}", std::process::id()));
    let _ = docker(&["rm", "-f", &c.0]);
    docker_ok(&["create", "--name", &c.0, "--network=none", image]);
    docker(&["cp", &format!("{}:{path}", c.0), "-"])
        .status
        .success()
}
