//! `codegenie cache`: explain a probe's cache key, prune the store.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use codegenie_runtime::cache::{explain, CacheStore, EntryState, Explanation, PruneReport};
use codegenie_runtime::engine::{
    BuildDigestResolver, BuildOptions, Engine, EngineKind, ImagePruneReport, TRACE_IMAGES,
};
use codegenie_runtime::inputs::{TokenValue, UnresolvedReason};
use codegenie_runtime::minimal::MINIMAL_REPOSITORY;
use codegenie_runtime::Registry;

use super::CliError;

/// Arguments of `codegenie cache`.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// What to do with the cache.
    #[command(subcommand)]
    pub command: CacheCommand,
}

/// Subcommands of `codegenie cache`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Print every input and token value that goes into a probe's key, the
    /// key, and what changed since the probe's last run.
    Explain(ExplainArgs),
    /// Remove least recently used entries until the store's entries and
    /// artifact blobs fit a size (the per-probe input manifests and the
    /// hash index are small and kept), and the repository's older trace and
    /// minimal images from the engine.
    Prune(PruneArgs),
}

/// Arguments of `codegenie cache explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The repository.
    pub repo: PathBuf,
    /// The probe whose key to explain.
    #[arg(long, value_name = "NAME")]
    pub probe: String,
    /// Resolve every token, building the image for `image-digest` (as a
    /// trace would). Without it nothing is built and the digest is shown
    /// unresolved, so the key shown is not the one a run would use.
    #[arg(long)]
    pub resolve: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `codegenie cache prune`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).multiple(true).args(["max_size", "keep_images", "orphaned"]))]
pub struct PruneArgs {
    /// The repository (not with `--orphaned`, which looks at every one).
    #[arg(required_unless_present = "orphaned", conflicts_with = "orphaned")]
    pub repo: Option<PathBuf>,
    /// Largest size the store may keep: bytes, or a number with a unit
    /// (`K`, `M`, `G`, `KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,
    /// Trace images and minimal images of the repository to keep on the
    /// engine, of each kind, newest first (0 removes them all). Only images
    /// codegenie tagged and labelled with this repository are touched; an
    /// image that also has another tag keeps it.
    #[arg(long, value_name = "N")]
    pub keep_images: Option<usize>,
    /// Remove the trace and minimal images of every repository whose folder
    /// no longer exists on this machine (deleted clones, temporary
    /// checkouts). Needs the engine on this machine.
    #[arg(long, conflicts_with_all = ["max_size", "keep_images"])]
    pub orphaned: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Why a size argument is not a size.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SizeError {
    /// No digits where a number was expected.
    #[error("`{0}` is not a size: expected a number with an optional unit such as 500M or 2GiB")]
    NotASize(String),
    /// A unit that is not known.
    #[error("unknown unit `{unit}` in `{input}`: use B, K, M, G, KiB, MiB, GiB, KB, MB or GB")]
    UnknownUnit {
        /// The argument.
        input: String,
        /// The unit.
        unit: String,
    },
    /// Larger than 2^64 bytes.
    #[error("`{0}` is too large")]
    TooLarge(String),
}

/// Parse a size: `1048576`, `500M`, `2GiB`, `10kb`. `K`/`M`/`G` and the
/// `iB` forms are powers of 1024; `KB`/`MB`/`GB` powers of 1000.
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(SizeError::NotASize(s.to_owned()));
    }
    let n: u64 = num.parse().map_err(|_| SizeError::TooLarge(s.to_owned()))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(SizeError::UnknownUnit {
                input: s.to_owned(),
                unit: other.to_owned(),
            })
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| SizeError::TooLarge(s.to_owned()))
}

pub(super) fn run(args: CacheArgs) -> Result<u8, CliError> {
    match args.command {
        CacheCommand::Explain(a) => run_explain(a),
        CacheCommand::Prune(a) => run_prune(a),
    }
}

fn run_explain(args: ExplainArgs) -> Result<u8, CliError> {
    let repo = super::open_repo(&args.repo)?;
    let registry = Registry::load()?;
    let reg = registry.get(&args.probe).ok_or_else(|| {
        format!(
            "no probe named `{}`; registered probes: {}",
            args.probe,
            registry.names().join(", ")
        )
    })?;
    let probe = (reg.construct)();
    let store = CacheStore::for_repo_root(repo.root());
    let mut ctx = super::probe_context(EngineKind::Docker, BuildOptions::default());
    if !args.resolve {
        // A remembered build of the repository as it is answers; nothing
        // is built.
        ctx.image_digest_resolver = Some(std::sync::Arc::new(
            BuildDigestResolver::new(Engine::new(EngineKind::Docker)).recall_only(
                "not built: the digest is known only after an image build (no remembered build matches the repository as it is); pass --resolve to build and show the key a run would use",
            ),
        ));
    }
    let ex = explain(&repo, &store, reg.name, probe.as_ref(), &ctx)?;
    if args.json {
        super::print_json(&ex)?;
    } else {
        print_explanation(&ex)?;
    }
    Ok(0)
}

fn print_explanation(ex: &Explanation) -> std::io::Result<()> {
    let m = &ex.manifest;
    outln!("probe:   {} (version {})", m.probe, m.version);
    outln!("cache:   {}", ex.cache_strategy);
    outln!("key:     {}", m.key);
    match &ex.entry {
        EntryState::Present => outln!("entry:   present (next gather is a hit)"),
        EntryState::Absent => outln!("entry:   absent (next gather runs the probe)"),
        EntryState::Corrupt(why) => outln!("entry:   corrupt, treated as a miss: {why}"),
    }
    for g in &m.inputs.globs {
        outln!("glob {} ({} files)", g.glob, g.files.len());
        for f in &g.files {
            outln!("  {}  {}", f.blake3, f.path);
        }
    }
    for t in &m.inputs.tokens {
        match &t.value {
            TokenValue::Resolved(v) => outln!("token {} = {v}", t.token),
            TokenValue::Unresolved(r @ UnresolvedReason::NotRequested(_)) => {
                outln!(
                    "token {} = <unresolved: {r}> (empty sentinel; this key is not the one a run uses)",
                    t.token
                )
            }
            TokenValue::Unresolved(r) => {
                outln!("token {} = <unresolved: {r}> (empty sentinel)", t.token)
            }
        }
    }
    match &ex.previous_key {
        None => outln!("last run: none recorded"),
        Some(k) if *k == m.key => outln!("last run: same key, no input changed"),
        Some(k) => {
            outln!("last run: key {k}; changed since:");
            for c in &ex.changes {
                outln!("  {c}");
            }
        }
    }
    Ok(())
}

/// What `cache prune` did.
#[derive(Debug, serde::Serialize)]
struct Pruned {
    /// The store, when `--max-size` was given (its fields at the top level,
    /// as before images were pruned too).
    #[serde(flatten)]
    store: Option<PruneReport>,
    /// The trace images, when `--keep-images` or `--orphaned` was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_images: Option<ImagePruneReport>,
    /// The minimal images, when `--keep-images` or `--orphaned` was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    minimal_images: Option<ImagePruneReport>,
}

fn run_prune(args: PruneArgs) -> Result<u8, CliError> {
    let mut pruned = Pruned {
        store: None,
        trace_images: None,
        minimal_images: None,
    };
    if args.orphaned || args.keep_images.is_some() {
        // Containers of killed runs first: they hold their images in use.
        codegenie_runtime::pipeline::sweep_orphans(&Engine::new(EngineKind::Docker));
    }
    if args.orphaned {
        let engine = Engine::new(EngineKind::Docker);
        let mut reports = engine
            .remove_orphaned_images(&[TRACE_IMAGES, MINIMAL_REPOSITORY])?
            .into_iter();
        pruned.trace_images = reports.next();
        pruned.minimal_images = reports.next();
    }
    // Without `--orphaned`, clap requires the repository.
    let repo = match &args.repo {
        Some(path) => Some(super::open_repo(path)?),
        None => None,
    };
    if let (Some(repo), Some(max)) = (&repo, args.max_size) {
        pruned.store = Some(CacheStore::for_repo_root(repo.root()).prune(max)?);
    }
    if let (Some(repo), Some(keep)) = (&repo, args.keep_images) {
        // The label holds the canonical path the build gave it.
        let root = std::fs::canonicalize(repo.root())?;
        let repository = root.to_string_lossy();
        let engine = Engine::new(EngineKind::Docker);
        pruned.trace_images =
            Some(engine.keep_newest_images(TRACE_IMAGES, &repository, keep, None)?);
        pruned.minimal_images =
            Some(engine.keep_newest_images(MINIMAL_REPOSITORY, &repository, keep, None)?);
    }
    if args.json {
        super::print_json(&pruned)?;
    } else {
        if let (Some(report), Some(max)) = (&pruned.store, args.max_size) {
            outln!(
                "removed {} of {} entries and {} blobs; {} -> {} bytes (limit {})",
                report.entries_removed,
                report.entries_before,
                report.blobs_removed,
                report.bytes_before,
                report.bytes_after,
                max
            );
        }
        for (kind, report) in [
            ("trace", &pruned.trace_images),
            ("minimal", &pruned.minimal_images),
        ] {
            let Some(r) = report else { continue };
            outln!(
                "{kind} images: removed {}, kept {}{}",
                r.removed.len(),
                r.kept.len(),
                match &r.refusal {
                    Some(why) => format!("; the engine kept {:?}: {why}", r.refused),
                    None => String::new(),
                }
            );
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("10kb"), Ok(10_000));
        assert_eq!(parse_size(" 7 b"), Ok(7));
    }

    #[test]
    fn bad_sizes_are_typed_errors() {
        assert!(matches!(parse_size("M"), Err(SizeError::NotASize(_))));
        assert!(matches!(
            parse_size("5 parsecs"),
            Err(SizeError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_size("99999999999G"),
            Err(SizeError::TooLarge(_))
        ));
        assert!(matches!(parse_size("-5"), Err(SizeError::NotASize(_))));
    }
}
