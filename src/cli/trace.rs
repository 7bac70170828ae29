//! `codegenie trace <repo>`: run the runtime-trace probe through the
//! coordinator (so the cache applies) and write its slice and artifacts.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use codegenie_runtime::coordinator::{GatherOptions, ProbeStatus};
use codegenie_runtime::runtime_trace::engine::{Engine, EngineKind};
use codegenie_runtime::writer::Writer;

use super::{CliError, EXIT_PROBE_FAILED};

/// The probe this command runs.
const PROBE: &str = "runtime_trace";

/// Where the scenarios run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// Hardened containers on the Docker engine.
    Docker,
    /// This machine, in a private network namespace (no resource limits:
    /// only for repositories you trust).
    Host,
}

/// Arguments of `codegenie trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The repository to trace (a Dockerfile, or `app.command` in
    /// `.codegenie/scenarios.yaml` for the host backend).
    pub repo: PathBuf,
    /// Where the scenarios run [default: docker]. The repository's code is
    /// untrusted: it runs on this machine only with `--backend host`.
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
    /// Neither read nor write the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Print the coordinator's record as JSON.
    #[arg(long)]
    pub json: bool,
    /// Probe setting `KEY=VALUE` (e.g. `runtime_trace.scenario_timeout_ms=5000`).
    #[arg(long = "set", value_name = "KEY=VALUE", hide = true)]
    pub settings: Vec<String>,
}

pub(super) fn run(args: TraceArgs) -> Result<ExitCode, CliError> {
    let (repo, coordinator) = super::open_with_coordinator(&args.repo, args.no_cache)?;
    let mut ctx = super::probe_context();
    for kv in &args.settings {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--set {kv}: expected KEY=VALUE"))?;
        ctx.settings.insert(k.to_owned(), v.to_owned());
    }
    if let Some(b) = args.backend {
        let name = match b {
            BackendArg::Docker => "docker",
            BackendArg::Host => "host",
        };
        ctx.settings
            .insert("runtime_trace.backend".to_owned(), name.to_owned());
    }
    let engine_kind = ctx
        .settings
        .get("runtime_trace.engine")
        .and_then(|e| EngineKind::parse(e))
        .unwrap_or(EngineKind::Docker);
    // A run id chosen here lets an interrupted run remove its containers by label.
    let run_id = ctx
        .settings
        .entry("runtime_trace.run_id".to_owned())
        .or_insert_with(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            format!("cli-{}-{nanos:x}", std::process::id())
        })
        .clone();
    let opts = GatherOptions {
        only: vec![PROBE.to_owned()],
        no_cache: args.no_cache,
        ctx,
    };
    let rt = super::tokio_runtime()?;
    let gathered = rt.block_on(async {
        // SIGTERM (a supervisor, `docker stop`, `kill`) cleans up like Ctrl-C.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        Ok::<_, std::io::Error>(tokio::select! {
            r = coordinator.gather(&repo, &opts) => Ok(r),
            _ = tokio::signal::ctrl_c() => Err(130),
            _ = term.recv() => Err(143),
        })
    })?;
    let report = match gathered {
        Ok(r) => r,
        Err(code) => {
            // The probe's blocking thread is not waited for; the process exits.
            rt.shutdown_background();
            return Ok(interrupted(&run_id, engine_kind, code));
        }
    };
    let report = report?;
    let rec = report
        .records
        .iter()
        .find(|r| r.name == PROBE)
        .ok_or("the runtime_trace probe is not registered in this binary")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(rec)?);
    }
    match &rec.status {
        ProbeStatus::Skipped { .. } => {
            // A Dockerfile that is there but unusable is named as such.
            let why = codegenie_runtime::runtime_trace::dockerfile::problem(repo.root())
                .map(|p| format!(" ({p})"))
                .unwrap_or_default();
            return Err(format!(
                "nothing to trace: {} has no Dockerfile and no .codegenie/scenarios.yaml{why}",
                repo.root().display()
            )
            .into());
        }
        ProbeStatus::Failed { error } => {
            eprintln!("error: runtime trace failed: {error}");
            return Ok(ExitCode::from(EXIT_PROBE_FAILED));
        }
        ProbeStatus::TimedOut { after_ms } => {
            eprintln!("error: runtime trace timed out after {after_ms} ms");
            return Ok(ExitCode::from(EXIT_PROBE_FAILED));
        }
        ProbeStatus::Ran | ProbeStatus::CacheHit => {}
    }
    let written = Writer::new(repo.root()).write_record(rec)?;
    if let Err(e) = codegenie_runtime::runtime_trace::probe::clean_work_dir(&repo, &run_id) {
        eprintln!("warning: cannot remove the raw traces: {e}");
    }
    if !args.json {
        print_summary(rec, written.as_ref().map(|w| w.json.display().to_string()));
    }
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM: stop starting containers, remove the run's by label,
/// exit with `code` (130 for SIGINT, 143 for SIGTERM, as shells report them).
fn interrupted(run_id: &str, kind: EngineKind, code: u8) -> ExitCode {
    codegenie_runtime::runtime_trace::cancel();
    // Handles are not dropped on exit: end the engine clients and, on the
    // host backend, strace and the app.
    codegenie_runtime::exec::kill_all();
    eprintln!("interrupted: removing the containers of run {run_id}");
    let engine = Engine::new(kind);
    // A create already in flight may land after the first sweep.
    for _ in 0..2 {
        if let Err(e) = engine.remove_run(run_id) {
            eprintln!("warning: {e}");
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    ExitCode::from(code)
}

fn print_summary(rec: &codegenie_runtime::coordinator::ProbeRecord, path: Option<String>) {
    let Some(out) = &rec.output else { return };
    let s = &out.schema_slice;
    let status = match rec.status {
        ProbeStatus::CacheHit => "cache hit",
        _ => "ran",
    };
    println!(
        "runtime_trace: {status} in {} ms, confidence {}",
        rec.duration_ms,
        s["trace_coverage_confidence"].as_str().unwrap_or("?")
    );
    let mut rows = Vec::new();
    for sc in s["scenarios"].as_array().into_iter().flatten() {
        let kind = sc["outcome"]["kind"].as_str().unwrap_or("?").to_owned();
        let detail = match &sc["outcome"]["detail"] {
            serde_json::Value::Null => String::new(),
            d => d.to_string(),
        };
        rows.push([
            sc["name"].as_str().unwrap_or("?").to_owned(),
            kind,
            format!("{} ms", sc["wall_clock_ms"]),
            detail,
        ]);
    }
    super::probes::print_table(&["SCENARIO", "RESULT", "TIME", "DETAIL"], &rows);
    let count = |k: &str| s[k].as_array().map_or(0, |a| a.len());
    println!(
        "binaries {}, shared libs {}, certs {}, shell invocations {}, outbound {}, inbound {}",
        count("binaries_executed"),
        count("shared_libs_loaded"),
        count("cert_paths_read"),
        s["shell_invocations"],
        s["network_endpoints_touched"]["outbound"]
            .as_array()
            .map_or(0, |a| a.len()),
        s["network_endpoints_touched"]["inbound"]
            .as_array()
            .map_or(0, |a| a.len()),
    );
    for w in &out.warnings {
        println!("warning: {w}");
    }
    if let Some(p) = path {
        println!("written: {p}");
    }
}
