//! The command-line interface. [`main`] is the whole `codegenie` binary; a
//! binary of your own that links extra probes and calls it gets them listed
//! and run.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod agent;
pub mod cache;
mod gather;
mod parse_strace;
mod probes;
mod trace;

/// Exit code when the command could not do its job (bad arguments, unreadable repo).
pub const EXIT_ERROR: u8 = 1;
/// Exit code when the job ran but at least one probe failed or timed out.
pub const EXIT_PROBE_FAILED: u8 = 2;

/// codegenie: gather hard evidence about a code repository.
#[derive(Debug, Parser)]
#[command(name = "codegenie", version, about, long_about = None)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// More logs (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per event.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the registered probes.
    Probes(probes::ProbesArgs),
    /// Run probes on a repository and write `.codegenie/context/`.
    Gather(gather::GatherArgs),
    /// Inspect and prune the probe cache.
    Cache(cache::CacheArgs),
    /// Print the facts of strace output (`strace -f` text) as ParsedTrace JSON.
    ParseStrace(parse_strace::ParseStraceArgs),
    /// Trace the repository's container at runtime (runtime_trace probe).
    Trace(trace::TraceArgs),
    /// In-container helpers used by the runtime trace (not for direct use).
    #[command(hide = true)]
    Agent(agent::AgentArgs),
}

/// An error the CLI reports before exiting with [`EXIT_ERROR`].
pub type CliError = Box<dyn std::error::Error + Send + Sync>;

/// Parse the process arguments and run; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "error: {}",
                codegenie_runtime::coordinator::error_chain(e.as_ref())
            );
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Probes(a) => probes::run(a),
        Command::Gather(a) => gather::run(a),
        Command::Cache(a) => cache::run(a),
        Command::ParseStrace(a) => parse_strace::run(a),
        Command::Trace(a) => trace::run(a),
        Command::Agent(a) => agent::run(a),
    }
}

fn init_logging(format: LogFormat, verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn,codegenie=info,codegenie_runtime=info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests calling `main` twice) is not an error worth failing on.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The context every command hands probes and key computations, so that
/// `gather` and `cache explain` resolve tokens the same way. Token resolvers
/// (e.g. the image digest) are bound here.
/// Open the repository at `path`, with an error that names it.
pub(crate) fn open_repo(
    path: &std::path::Path,
) -> Result<codegenie_runtime::RepoSnapshot, CliError> {
    Ok(codegenie_runtime::RepoSnapshot::open(path)
        .map_err(|e| format!("cannot open repository {}: {e}", path.display()))?)
}

/// The repository and a coordinator over every linked probe, with the
/// repository's content cache unless `no_cache`.
pub(crate) fn open_with_coordinator(
    path: &std::path::Path,
    no_cache: bool,
) -> Result<
    (
        codegenie_runtime::RepoSnapshot,
        codegenie_runtime::coordinator::Coordinator,
    ),
    CliError,
> {
    let repo = open_repo(path)?;
    let mut coordinator =
        codegenie_runtime::coordinator::Coordinator::new(codegenie_runtime::Registry::load()?);
    if !no_cache {
        coordinator = coordinator.with_cache(std::sync::Arc::new(
            codegenie_runtime::ContentCache::for_repo_root(repo.root()),
        ));
    }
    Ok((repo, coordinator))
}

pub(crate) fn probe_context() -> codegenie_runtime::ProbeContext {
    use codegenie_runtime::runtime_trace::engine::{BuildDigestResolver, Engine, EngineKind};
    // `image-digest:<resolved>` = the digest `docker build --iidfile` gives
    // (the build cache makes repeats cheap).
    codegenie_runtime::ProbeContext {
        image_digest_resolver: Some(std::sync::Arc::new(BuildDigestResolver::new(Engine::new(
            EngineKind::Docker,
        )))),
        ..Default::default()
    }
}

/// A current-thread-free multi-thread runtime for commands that run probes.
pub(crate) fn tokio_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
