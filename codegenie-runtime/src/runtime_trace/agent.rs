//! The in-container helpers behind `codegenie agent ...`. They run inside a
//! scenario container through `docker exec` (same network namespace and
//! PID namespace as the app, but not descendants of the traced process, so
//! they never pollute the trace).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use super::scenarios::HttpStep;
use crate::procfs::ProcStat;

/// A helper, as the runtime asks for it and as `codegenie agent` parses it:
/// one definition for both sides ([`AgentCommand::to_args`] renders what
/// clap parses back).
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum AgentCommand {
    /// Wait until a TCP socket listens on a port (reads /proc/net/tcp*).
    WaitListen {
        /// The port.
        #[arg(long)]
        port: u16,
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 30_000)]
        timeout_ms: u64,
    },
    /// Send HTTP requests to 127.0.0.1:PORT and print each status code.
    Http {
        /// The port.
        #[arg(long)]
        port: u16,
        /// Request method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// Request path.
        #[arg(long, default_value = "/")]
        path: String,
        /// Request body.
        #[arg(long)]
        body: Option<String>,
        /// A request header `NAME:VALUE` (repeatable).
        #[arg(long = "header", value_name = "NAME:VALUE")]
        headers: Vec<String>,
        /// Number of requests.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// Pause between requests.
        #[arg(long, default_value_t = 0)]
        interval_ms: u64,
        /// Per-request timeout.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
    },
    /// Send a signal to the traced app's root process (the child of PID 1).
    Signal {
        /// The signal name, e.g. SIGTERM.
        #[arg(long)]
        signal: String,
    },
    /// Print the pid of the traced app's root process.
    RootPid,
    /// Wait until a process has exited; print `exited` or `running`.
    WaitGone {
        /// The process.
        #[arg(long)]
        pid: i32,
        /// Give up after this many milliseconds.
        #[arg(long)]
        timeout_ms: u64,
    },
    /// SIGKILL every process traced by PID 1 (strace), printing `pid name`
    /// of each: what survives the app's root process when it exits.
    KillTraced,
    /// Wait until the trace file has not grown for `quiet_ms` (the app
    /// makes no traced call), at most `max_ms`; print `settled MS` or
    /// `unsettled MS`, the time waited.
    Settle {
        /// The trace file.
        #[arg(long)]
        path: std::path::PathBuf,
        /// How long the file must stay the same size.
        #[arg(long)]
        quiet_ms: u64,
        /// Give up after this many milliseconds.
        #[arg(long)]
        max_ms: u64,
    },
}

/// The per-request timeout of HTTP steps.
pub const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl AgentCommand {
    /// The requests of an HTTP step.
    pub fn http(port: u16, h: &HttpStep) -> AgentCommand {
        AgentCommand::Http {
            port,
            method: h.method.clone(),
            path: h.path.clone(),
            body: h.body.clone(),
            headers: h.headers.iter().map(|(k, v)| format!("{k}:{v}")).collect(),
            repeat: h.repeat,
            interval_ms: h.interval_ms,
            timeout_ms: HTTP_REQUEST_TIMEOUT.as_millis() as u64,
        }
    }

    /// The subcommand's name.
    pub fn name(&self) -> &'static str {
        match self {
            AgentCommand::WaitListen { .. } => "wait-listen",
            AgentCommand::Http { .. } => "http",
            AgentCommand::Signal { .. } => "signal",
            AgentCommand::RootPid => "root-pid",
            AgentCommand::WaitGone { .. } => "wait-gone",
            AgentCommand::KillTraced => "kill-traced",
            AgentCommand::Settle { .. } => "settle",
        }
    }

    /// The arguments after `codegenie agent` that parse back to `self`.
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![self.name().to_owned()];
        let mut opt = |k: &str, val: String| {
            // `--k=v` keeps a value starting with `-` from reading as an option.
            v.push(format!("--{k}={val}"));
        };
        match self {
            AgentCommand::WaitListen { port, timeout_ms } => {
                opt("port", port.to_string());
                opt("timeout-ms", timeout_ms.to_string());
            }
            AgentCommand::Http {
                port,
                method,
                path,
                body,
                headers,
                repeat,
                interval_ms,
                timeout_ms,
            } => {
                opt("port", port.to_string());
                opt("method", method.clone());
                opt("path", path.clone());
                if let Some(b) = body {
                    opt("body", b.clone());
                }
                for h in headers {
                    opt("header", h.clone());
                }
                opt("repeat", repeat.to_string());
                opt("interval-ms", interval_ms.to_string());
                opt("timeout-ms", timeout_ms.to_string());
            }
            AgentCommand::Signal { signal } => opt("signal", signal.clone()),
            AgentCommand::RootPid | AgentCommand::KillTraced => {}
            AgentCommand::WaitGone { pid, timeout_ms } => {
                opt("pid", pid.to_string());
                opt("timeout-ms", timeout_ms.to_string());
            }
            AgentCommand::Settle {
                path,
                quiet_ms,
                max_ms,
            } => {
                opt("path", path.display().to_string());
                opt("quiet-ms", quiet_ms.to_string());
                opt("max-ms", max_ms.to_string());
            }
        }
        v
    }

    /// Run the helper here, printing what the runtime reads back (one status
    /// code per line for `http`, the signalled pid for `signal`).
    pub fn run(&self, out: &mut dyn Write) -> Result<(), AgentError> {
        let print = |out: &mut dyn Write, v: &dyn std::fmt::Display| {
            writeln!(out, "{v}").map_err(|source| AgentError::Output { source })
        };
        match self {
            AgentCommand::WaitListen { port, timeout_ms } => {
                wait_listen(*port, Duration::from_millis(*timeout_ms))
            }
            AgentCommand::Http {
                port,
                method,
                path,
                body,
                headers,
                repeat,
                interval_ms,
                timeout_ms,
            } => http_repeat(
                *port,
                &Request {
                    method,
                    path,
                    headers: &parse_headers(headers)?,
                    body: body.as_deref(),
                },
                (*repeat, Duration::from_millis(*interval_ms)),
                Duration::from_millis(*timeout_ms),
                |code| print(out, &code),
            ),
            AgentCommand::Signal { signal } => print(out, &signal_app(signal)?),
            AgentCommand::RootPid => print(out, &find_app_root()?),
            AgentCommand::WaitGone { pid, timeout_ms } => {
                let gone = wait_gone(Path::new("/proc"), *pid, Duration::from_millis(*timeout_ms));
                print(out, &if gone { "exited" } else { "running" })
            }
            AgentCommand::KillTraced => {
                for killed in kill_traced(Path::new("/proc"), 1) {
                    print(out, &killed)?;
                }
                Ok(())
            }
            AgentCommand::Settle {
                path,
                quiet_ms,
                max_ms,
            } => {
                let s = settle(
                    path,
                    Duration::from_millis(*quiet_ms),
                    Duration::from_millis(*max_ms),
                );
                print(out, &s)
            }
        }
    }
}

/// How a wait for the app to settle ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// The trace stayed the same size for the whole quiet time.
    pub quiet: bool,
    /// How long the wait took.
    pub waited: Duration,
}

impl std::fmt::Display for Settled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let word = if self.quiet { "settled" } else { "unsettled" };
        write!(f, "{word} {}", self.waited.as_millis())
    }
}

impl std::str::FromStr for Settled {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (word, ms) = s.trim().split_once(' ').ok_or_else(|| format!("`{s}`"))?;
        let waited = Duration::from_millis(ms.parse().map_err(|_| format!("`{s}`"))?);
        match word {
            "settled" => Ok(Settled {
                quiet: true,
                waited,
            }),
            "unsettled" => Ok(Settled {
                quiet: false,
                waited,
            }),
            _ => Err(format!("`{s}`")),
        }
    }
}

/// Wait until the file at `path` has kept its size for `quiet`, at most
/// `max` (docs/architecture.md, "Scenarios": ready, then settled). strace
/// writes each traced call as it returns, so an unchanged size means the
/// app made no open, exec, map or probe in that time: a worker thread that
/// reads its files after the port answers is waited for. A file that cannot
/// be read counts as unchanged (nothing to wait for).
pub fn settle(path: &Path, quiet: Duration, max: Duration) -> Settled {
    let started = std::time::Instant::now();
    let size = || std::fs::metadata(path).map(|m| m.len()).ok();
    let mut last = size();
    let mut since = started;
    loop {
        let now = std::time::Instant::now();
        if now.duration_since(since) >= quiet {
            return Settled {
                quiet: true,
                waited: now - started,
            };
        }
        if now.duration_since(started) >= max {
            return Settled {
                quiet: false,
                waited: now - started,
            };
        }
        std::thread::sleep(Duration::from_millis(25).min(quiet));
        let current = size();
        if current != last {
            last = current;
            since = std::time::Instant::now();
        }
    }
}

/// `repeat` requests to `127.0.0.1:port`, `interval` apart, each status
/// handed to `each` as it arrives; the first error ends the loop.
pub fn http_repeat(
    port: u16,
    req: &Request<'_>,
    (repeat, interval): (u32, Duration),
    per_request: Duration,
    mut each: impl FnMut(u16) -> Result<(), AgentError>,
) -> Result<(), AgentError> {
    for i in 0..repeat {
        if i > 0 {
            std::thread::sleep(interval);
        }
        each(http_request(port, req, per_request)?)?;
    }
    Ok(())
}

/// One HTTP request as a scenario describes it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Method.
    pub method: &'a str,
    /// Path, from `/`.
    pub path: &'a str,
    /// Extra headers, in order.
    pub headers: &'a [(String, String)],
    /// Body.
    pub body: Option<&'a str>,
}

/// `NAME:VALUE` arguments as header pairs; a value may itself contain `:`.
pub fn parse_headers(args: &[String]) -> Result<Vec<(String, String)>, AgentError> {
    args.iter()
        .map(|a| match a.split_once(':') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.trim_start().to_owned())),
            _ => Err(AgentError::BadHeader(a.clone())),
        })
        .collect()
}

/// Why a helper failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The deadline passed.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// A network error.
    #[error("127.0.0.1:{port}")]
    Net {
        /// The port.
        port: u16,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The response was not HTTP.
    #[error("127.0.0.1:{port}: not an HTTP response: {first_line:?}")]
    NotHttp {
        /// The port.
        port: u16,
        /// What came back.
        first_line: String,
    },
    /// No process to signal.
    #[error("no app process found (no child of PID 1)")]
    NoAppProcess,
    /// An unknown signal name.
    #[error("unknown signal `{0}`")]
    UnknownSignal(String),
    /// Reading /proc failed.
    #[error("{path}")]
    Proc {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A `--header` argument that is not `NAME:VALUE`.
    #[error("header `{0}` is not NAME:VALUE")]
    BadHeader(String),
    /// The helper's own output could not be written.
    #[error("cannot write the helper's output")]
    Output {
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// `kill` failed.
    #[error("kill {pid}")]
    Kill {
        /// The target.
        pid: i32,
        /// The error.
        #[source]
        errno: nix::errno::Errno,
    },
}

/// Whether `/proc/net/tcp{,6}` text lists a LISTEN socket on `port`.
pub fn proc_net_listens(text: &str, port: u16) -> bool {
    text.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 || f[3] != "0A" {
            return false;
        }
        f[1].rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            == Some(port)
    })
}

/// Wait until a TCP socket listens on `port` in this network namespace,
/// reading `/proc/net/tcp*` (no connection is made, so the app sees nothing).
pub fn wait_listen(port: u16, timeout: Duration) -> Result<(), AgentError> {
    let deadline = Instant::now() + timeout;
    loop {
        for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
            // tcp6 is absent when IPv6 is disabled.
            if let Ok(text) = std::fs::read_to_string(file) {
                if proc_net_listens(&text, port) {
                    return Ok(());
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(AgentError::Timeout(timeout.as_millis() as u64));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP request to `127.0.0.1:port`; returns the status code.
pub fn http_request(port: u16, req: &Request<'_>, timeout: Duration) -> Result<u16, AgentError> {
    let Request {
        method,
        path,
        headers,
        body,
    } = *req;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let net = |source| AgentError::Net { port, source };
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(net)?;
    s.set_read_timeout(Some(timeout)).map_err(net)?;
    s.set_write_timeout(Some(timeout)).map_err(net)?;
    let body = body.unwrap_or("");
    let mut extra = String::new();
    for (k, v) in headers {
        extra.push_str(&format!("{k}: {v}\r\n"));
    }
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: codegenie-agent\r\n{extra}Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(net)?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.contains(&b'\n') && head.len() < 8192 {
        let n = s.read(&mut buf).map_err(net)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    parse_status_line(&head).ok_or_else(|| AgentError::NotHttp {
        port,
        first_line: String::from_utf8_lossy(head.split(|&b| b == b'\n').next().unwrap_or(&[]))
            .into_owned(),
    })
}

/// The status code of an HTTP/1.x status line.
pub fn parse_status_line(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let code: u16 = parts.next()?.parse().ok()?;
    (100..=599).contains(&code).then_some(code)
}

/// The app's root process: the lowest-numbered child of PID 1 (strace),
/// excluding this helper. `docker exec` processes have parent 0, so they never match.
pub fn find_app_root() -> Result<i32, AgentError> {
    let me = std::process::id() as i32;
    traced_child_of(Path::new("/proc"), 1, Some(me)).ok_or(AgentError::NoAppProcess)
}

/// The lowest-numbered live child of `parent` (other than `skip`) whose
/// executable differs from the parent's: strace forks short-lived test
/// children at startup that still run strace; the traced app has exec'd.
pub fn traced_child_of(proc_root: &Path, parent: i32, skip: Option<i32>) -> Option<i32> {
    let parent_exe = std::fs::read_link(proc_root.join(parent.to_string()).join("exe")).ok();
    let mut best: Option<i32> = None;
    for e in std::fs::read_dir(proc_root).ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if Some(pid) == skip || pid == parent {
            continue;
        }
        let live_parent = ProcStat::read(proc_root, pid).and_then(|s| s.live_parent());
        if live_parent != Some(parent) || best.is_some_and(|b| b < pid) {
            continue;
        }
        // An unreadable exe (a process mid-fork or mid-exit) is not a root yet.
        let Ok(exe) = std::fs::read_link(e.path().join("exe")) else {
            continue;
        };
        if Some(&exe) == parent_exe.as_ref() {
            continue;
        }
        best = Some(pid);
    }
    best
}

/// Wait up to `timeout` for `pid` to exit (gone or a zombie); whether it did.
pub fn wait_gone(proc_root: &Path, pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if crate::procfs::has_exited(proc_root, pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILL every process whose tracer is `tracer`; `pid name` of each.
/// Once the app's root process has exited, these are its survivors: under
/// Docker the container (and so they) would end with the root.
pub fn kill_traced(proc_root: &Path, tracer: i32) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut killed = Vec::new();
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        match crate::procfs::tracer_and_comm(proc_root, pid) {
            Some((t, name)) if t == tracer && pid != tracer => {
                let sent = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                if sent.is_ok() {
                    killed.push(format!("{pid} {name}"));
                }
            }
            _ => {}
        }
    }
    killed.sort();
    killed
}

/// Send `signal` (e.g. `SIGTERM`) to the app's root process; returns its pid.
pub fn signal_app(signal: &str) -> Result<i32, AgentError> {
    let sig: nix::sys::signal::Signal = signal
        .parse()
        .map_err(|_| AgentError::UnknownSignal(signal.to_owned()))?;
    let pid = find_app_root()?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
        .map_err(|errno| AgentError::Kill { pid, errno })?;
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_arguments_parse_back_to_the_same_command() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(subcommand)]
            command: AgentCommand,
        }
        for cmd in [
            AgentCommand::WaitListen {
                port: 8080,
                timeout_ms: 1500,
            },
            AgentCommand::Http {
                port: 3000,
                method: "POST".into(),
                path: "/a b?x=-1".into(),
                body: Some("--{malformed".into()),
                headers: vec!["Content-Type:application/json".into(), "X-A:b:c".into()],
                repeat: 3,
                interval_ms: 20,
                timeout_ms: 10_000,
            },
            AgentCommand::Signal {
                signal: "SIGTERM".into(),
            },
            AgentCommand::RootPid,
            AgentCommand::WaitGone {
                pid: 7,
                timeout_ms: 250,
            },
            AgentCommand::KillTraced,
            AgentCommand::Settle {
                path: "/.codegenie-out/trace".into(),
                quiet_ms: 300,
                max_ms: 3000,
            },
        ] {
            let mut argv = vec!["agent".to_owned()];
            argv.extend(cmd.to_args());
            let parsed = Cli::try_parse_from(&argv).unwrap().command;
            assert_eq!(parsed, cmd, "{argv:?}");
        }
    }

    #[test]
    fn settling_waits_for_a_file_to_stop_growing_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace");
        std::fs::write(&path, "a\n").unwrap();
        // Grows for 300 ms, then stays: settled once 150 ms pass unchanged.
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                for _ in 0..6 {
                    std::thread::sleep(Duration::from_millis(50));
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .open(&path)
                        .unwrap();
                    std::io::Write::write_all(&mut f, b"call\n").unwrap();
                }
            })
        };
        let s = settle(&path, Duration::from_millis(150), Duration::from_secs(5));
        writer.join().unwrap();
        assert!(s.quiet, "{s}");
        assert!(
            s.waited >= Duration::from_millis(400),
            "it waited for the growth: {s}"
        );
        // Control: a file that keeps growing is not settled, and the wait
        // ends at its bound.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .open(&path)
                        .unwrap();
                    std::io::Write::write_all(&mut f, b"call\n").unwrap();
                }
            })
        };
        let s = settle(
            &path,
            Duration::from_millis(150),
            Duration::from_millis(400),
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
        assert!(!s.quiet, "{s}");
        assert!(s.waited < Duration::from_secs(2), "{s}");
        // What the helper prints is what the runtime reads back.
        assert_eq!(s.to_string().parse::<Settled>().unwrap().quiet, s.quiet);
    }

    #[test]
    fn listen_sockets_are_found_by_port() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n   1: 0100007F:1538 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n";
        assert!(proc_net_listens(text, 8080));
        // Established (01), not listening.
        assert!(!proc_net_listens(text, 5432));
        assert!(!proc_net_listens(text, 9090));
    }

    #[test]
    fn waits_for_a_real_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        wait_listen(port, Duration::from_secs(2)).unwrap();
        drop(l);
        assert!(matches!(
            wait_listen(port, Duration::from_millis(100)),
            Err(AgentError::Timeout(_))
        ));
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 404 Not Found\r\n"), Some(404));
        assert_eq!(parse_status_line(b"HTTP/1.0 200\r\n"), Some(200));
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status_line(b""), None);
    }

    #[test]
    fn http_against_a_local_server() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            c.write_all(b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            req
        });
        let headers = parse_headers(&["Content-Type:application/json".to_owned()]).unwrap();
        let request = Request {
            method: "POST",
            path: "/x",
            headers: &headers,
            body: Some("{bad"),
        };
        let code = http_request(port, &request, Duration::from_secs(5)).unwrap();
        assert_eq!(code, 418);
        let req = server.join().unwrap();
        assert!(req.starts_with("POST /x HTTP/1.1\r\n"), "{req}");
        assert!(
            req.contains("\r\nContent-Type: application/json\r\n"),
            "{req}"
        );
        assert!(req.ends_with("\r\n\r\n{bad"), "{req}");
    }

    #[test]
    fn refused_connections_are_errors() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        assert!(matches!(
            http_request(
                port,
                &Request {
                    method: "GET",
                    path: "/",
                    headers: &[],
                    body: None
                },
                Duration::from_secs(2)
            ),
            Err(AgentError::Net { .. })
        ));
    }

    #[test]
    fn finds_the_exec_d_child_not_the_fork() {
        // A synthetic /proc: PID 1 is strace; 5 is its fork (still strace),
        // 7 the exec'd app, 9 the app's fork, 3 a process elsewhere.
        let proc_root = tempfile::tempdir().unwrap();
        let add = |pid: i32, ppid: i32, exe: &str| {
            let d = proc_root.path().join(pid.to_string());
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("stat"), format!("{pid} (x) S {ppid} {pid} {pid} 0")).unwrap();
            std::os::unix::fs::symlink(exe, d.join("exe")).unwrap();
        };
        add(1, 0, "/.codegenie/ld.so");
        add(3, 2, "/bin/other");
        add(5, 1, "/.codegenie/ld.so");
        add(7, 1, "/bin/busybox");
        add(9, 7, "/bin/busybox");
        assert_eq!(traced_child_of(proc_root.path(), 1, None), Some(7));
        assert_eq!(traced_child_of(proc_root.path(), 1, Some(7)), None);
        // 9 is a fork of 7 that has not exec'd: not a traced root.
        assert_eq!(traced_child_of(proc_root.path(), 7, None), None);
    }
}
