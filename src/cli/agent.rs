//! `codegenie agent ...`: helpers run inside a scenario container through
//! `docker exec` (hidden; see `runtime_trace::agent`).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use codegenie_runtime::runtime_trace::agent;

use super::CliError;

/// Arguments of `codegenie agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The helper to run.
    #[command(subcommand)]
    pub command: AgentCommand,
}

/// In-container helpers.
#[derive(Debug, Subcommand)]
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
}

pub(super) fn run(args: AgentArgs) -> Result<ExitCode, CliError> {
    match args.command {
        AgentCommand::WaitListen { port, timeout_ms } => {
            agent::wait_listen(port, Duration::from_millis(timeout_ms))?;
        }
        AgentCommand::Http {
            port,
            method,
            path,
            body,
            repeat,
            interval_ms,
            timeout_ms,
        } => {
            for i in 0..repeat {
                if i > 0 {
                    std::thread::sleep(Duration::from_millis(interval_ms));
                }
                let code = agent::http_request(
                    port,
                    &method,
                    &path,
                    body.as_deref(),
                    Duration::from_millis(timeout_ms),
                )?;
                println!("{code}");
            }
        }
        AgentCommand::Signal { signal } => {
            let pid = agent::signal_app(&signal)?;
            println!("{pid}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
