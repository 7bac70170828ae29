//! The command-line interface. [`main`] is the whole `codegenie` binary; a
//! binary of your own that links extra probes and calls it gets them listed
//! and run.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use codegenie_runtime::engine::{BuildDigestResolver, BuildOptions, Engine, EngineKind};
use codegenie_runtime::pipeline::{Pipeline, RunPlan};
use codegenie_runtime::runtime_trace::{RunId, TraceConfig};
use codegenie_runtime::{error_chain, CancelToken, GatherReport, ProbeContext, RepoSnapshot};

/// `outln!(...)`: a line on stdout that fails (instead of panicking) when
/// stdout is closed, so that `codegenie ... | head` ends quietly.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::outln(format_args!($($arg)*))?
    };
}

mod agent;
pub mod cache;
mod gather;
mod minimize;
mod parse_strace;
mod portfolio;
mod probes;
mod progress;
mod reports;
mod trace;

/// Exit code when the command could not do its job (bad arguments, unreadable repo).
pub const EXIT_ERROR: u8 = 1;
/// Exit code when the job ran but at least one probe failed or timed out.
pub const EXIT_PROBE_FAILED: u8 = 2;
/// Exit code of `codegenie trace` when the evidence was written but at least
/// one scenario failed (CI can gate on it).
pub const EXIT_SCENARIO_FAILED: u8 = 3;
/// Exit code of `codegenie minimize` when the minimal image was built but
/// did not pass every scenario the original passed.
pub const EXIT_NOT_VERIFIED: u8 = 4;
/// Exit code when stdout was closed early (`codegenie ... | head`), as
/// shells report a process ended by SIGPIPE (128 + 13).
pub const EXIT_BROKEN_PIPE: u8 = 141;

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
    /// Build the minimal image the trace's evidence names and prove it by
    /// re-running every scenario on it; report what a distroless base would need.
    Minimize(minimize::MinimizeArgs),
    /// Trace many repositories over several engines, resumably, and report on the fleet.
    Portfolio(portfolio::PortfolioArgs),
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
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(e.as_ref()) => ExitCode::from(EXIT_BROKEN_PIPE),
        Err(e) => {
            eprintln!("error: {}", redacted(&error_chain(e.as_ref())));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Run a parsed command line; returns the process exit status (the
/// `EXIT_*` constants, 0 on success).
pub fn run(cli: Cli) -> Result<u8, CliError> {
    match cli.command {
        Command::Probes(a) => probes::run(a),
        Command::Gather(a) => gather::run(a),
        Command::Cache(a) => cache::run(a),
        Command::ParseStrace(a) => parse_strace::run(a),
        Command::Trace(a) => trace::run(a),
        Command::Minimize(a) => minimize::run(a),
        Command::Portfolio(a) => portfolio::run(a),
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
        .with_writer(|| RedactedStderr)
        // Colour codes only for a person at a terminal, never in logs and CI.
        .with_ansi(std::io::stderr().is_terminal());
    // A second init (tests calling `main` twice) is not an error worth failing on.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Text for stderr with secrets replaced (docs/architecture.md, "Errors and
/// output"): errors quote commands, build logs and paths a repository chose.
pub(crate) fn redacted(text: &str) -> String {
    codegenie_runtime::redact::Redactor::new().redact_str(text)
}

/// stderr for log lines: the formatter writes each event in one call, and
/// each call is redacted before it reaches the terminal or a CI log.
struct RedactedStderr;

impl std::io::Write for RedactedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let clean = codegenie_runtime::redact::Redactor::new()
            .redact_bytes(buf)
            .into_owned();
        std::io::stderr().lock().write_all(&clean)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Whether an error is stdout closed under us (EPIPE), anywhere in its chain.
fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        let kind = err
            .downcast_ref::<std::io::Error>()
            .map(|io| io.kind())
            .or_else(|| {
                err.downcast_ref::<serde_json::Error>()
                    .and_then(|j| j.io_error_kind())
            });
        if kind == Some(std::io::ErrorKind::BrokenPipe) {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Write one line on stdout (see `outln!`).
pub(crate) fn outln(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    // stdout reaches terminals and CI logs as stderr does: values from an
    // image or a trace (argv, paths, errors) are redacted here too.
    let text = redacted(&args.to_string());
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")
}

/// Pretty JSON and a newline on stdout, redacted as every file we write is
/// (a trace's argv, an error's text), string by string so that it stays
/// JSON.
pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let mut tree = serde_json::to_value(value)?;
    codegenie_runtime::redact::redact_json(&mut tree);
    let clean = serde_json::to_vec_pretty(&tree)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&clean)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Open the repository at `path`, with an error that names it.
pub(crate) fn open_repo(path: &Path) -> Result<RepoSnapshot, CliError> {
    Ok(RepoSnapshot::open(path)
        .map_err(|e| format!("cannot open repository {}: {e}", path.display()))?)
}

/// The run's pipeline on the repository at `path` (docs/architecture.md,
/// "Pipeline"), with progress drawn on the terminal.
pub(crate) fn open_pipeline(path: &Path, mut plan: RunPlan) -> Result<Pipeline, CliError> {
    plan.progress = progress::TerminalProgress::for_stderr();
    Ok(Pipeline::open(path, plan)?)
}

/// The context `cache explain --resolve` hands key computations, so that it
/// resolves tokens as a run does: `image-digest:<resolved>` is the digest of
/// one build (built with `build`), `trace-config:<resolved>` the runtime
/// trace's backend, tracer, scenarios and limits.
pub(crate) fn probe_context(engine: EngineKind, build: BuildOptions) -> ProbeContext {
    ProbeContext {
        image_digest_resolver: Some(Arc::new(
            BuildDigestResolver::new(Engine::new(engine)).with_options(build),
        )),
        trace_config_resolver: Some(Arc::new(TraceConfig)),
        progress: progress::TerminalProgress::for_stderr(),
        ..Default::default()
    }
}

/// A multi-thread runtime for commands that run probes.
pub(crate) fn tokio_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// How long an interrupted run waits for the container and volume creations
/// in flight to be answered before it removes the run's containers.
const CREATIONS_ANSWERED: std::time::Duration = std::time::Duration::from_secs(30);

/// The run was interrupted; the process should exit with this code.
pub(crate) struct Interrupted(pub(crate) u8);

/// Run `work` to its end; on Ctrl-C or SIGTERM instead trip `cancel`, end
/// every process the exec layer started, call `cleanup` (which removes what
/// the run made on the engines) and return `Err(Interrupted(130 or 143))`,
/// as shells report them. The one interrupt path of every command.
pub(crate) fn interruptibly<T>(
    work: impl std::future::Future<Output = T>,
    cancel: &CancelToken,
    cleanup: impl FnOnce(),
) -> Result<Result<T, Interrupted>, CliError> {
    let rt = tokio_runtime()?;
    let finished = rt.block_on(async {
        // SIGTERM (a supervisor, `docker stop`, `kill`) cleans up like Ctrl-C.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        Ok::<_, std::io::Error>(tokio::select! {
            r = work => Ok(r),
            _ = tokio::signal::ctrl_c() => Err(130),
            _ = term.recv() => Err(143),
        })
    })?;
    match finished {
        Ok(r) => Ok(Ok(r)),
        Err(code) => {
            cancel.cancel();
            // Handles are not dropped on exit: end the engine clients and, on
            // the host backend, strace and the app.
            codegenie_runtime::exec::kill_all();
            // No thread makes a container behind the removal, and every
            // create the engines are answering lands before it lists.
            let unanswered = codegenie_runtime::engine::close_creations(CREATIONS_ANSWERED);
            if unanswered > 0 {
                eprintln!(
                    "warning: {unanswered} container or volume creation(s) not answered within {} s; a later run on this host removes what they make",
                    CREATIONS_ANSWERED.as_secs()
                );
            }
            // The probes' blocking threads are not waited for; the process exits.
            rt.shutdown_background();
            cleanup();
            Ok(Err(Interrupted(code)))
        }
    }
}

/// Remove every container and tool image of `run` and its parts on
/// `engine`, saying so on stderr.
pub(crate) fn remove_run_leftovers(engine: &Engine, run: &RunId) {
    eprintln!(
        "interrupted: removing the containers and tool images of run {run} on {}",
        engine.endpoint()
    );
    for e in codegenie_runtime::pipeline::remove_run(engine, run).errors {
        eprintln!("warning: {}", redacted(&error_chain(&e)));
    }
}

/// Gather the pipeline's probes, interruptibly ([`interruptibly`]).
pub(crate) fn gather_interruptibly(
    pipeline: &Pipeline,
) -> Result<Result<GatherReport, Interrupted>, CliError> {
    match interruptibly(pipeline.gather(), pipeline.cancel_token(), || {
        remove_run_leftovers(&pipeline.engine(), pipeline.run_id())
    })? {
        Ok(report) => Ok(Ok(report?)),
        Err(i) => Ok(Err(i)),
    }
}
