//! Cache key of a generated 20k-file / ~500 MB tree with `**/*`, against
//! reading every byte of the same files, in the same run. Goal: key <= 1.5x
//! the read.
//!
//! Like is compared with like. The key walks the tree in parallel (the
//! `ignore` crate's walker, one thread per core), so its baseline,
//! `read_every_byte_parallel_walk`, is the same walker with the same
//! settings and threads reading every file without hashing or matching: what
//! hashing and bookkeeping add. The one-thread pair (`read_every_byte_one_thread`
//! against `read_and_hash_one_thread`) isolates blake3's cost per core. The
//! warm-index key reads nothing and is reported beside them for scale.
//!
//! The tree is generated once under `target/bench-data/` (never committed);
//! every measurement runs with it in the page cache.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use codegenie::prelude::*;
use codegenie::ContentCache;
use codegenie::ProbeCache;
use codegenie_runtime::cache::manifest_for;
use criterion::{criterion_group, Criterion, Throughput};
use ignore::{WalkBuilder, WalkState};

const FILES: usize = 20_000;
const BIG_FILES: usize = 100;
const BIG_SIZE: usize = 3_400_000;
const SMALL_MAX: usize = 16 * 1024;
/// The key's read buffer per walker thread (`inputs::walk::READ_BUF`).
const READ_BUF: usize = 256 * 1024;

/// Declares every file of the repository.
#[derive(Default)]
struct Everything;

impl Probe for Everything {
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        declared_inputs!["**/*"]
    }
    async fn run(&self, _: &RepoSnapshot, _: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
        Err(ProbeError::failed("benchmark probe is never run"))
    }
}

fn tree_root() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("bench-data").join("cache-tree-20k")
}

/// xorshift: cheap, deterministic, incompressible-looking content.
fn fill(buf: &mut [u8], mut seed: u64) {
    for chunk in buf.chunks_mut(8) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let b = seed.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

/// Generate the tree unless a complete one is there; returns its files.
fn ensure_tree(root: &Path) -> Vec<PathBuf> {
    let marker = root.with_extension("complete");
    let mut paths = Vec::with_capacity(FILES);
    for i in 0..FILES {
        paths.push(root.join(format!("d{:02}/s{:02}/f{i:05}.bin", i % 50, (i / 50) % 20)));
    }
    if marker.exists() {
        return paths;
    }
    let _ = std::fs::remove_dir_all(root);
    let mut buf = vec![0u8; BIG_SIZE];
    for (i, p) in paths.iter().enumerate() {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let size = if i % (FILES / BIG_FILES) == 0 {
            BIG_SIZE
        } else {
            1 + (i * 7919) % SMALL_MAX
        };
        fill(&mut buf[..size], i as u64 + 1);
        std::fs::write(p, &buf[..size]).unwrap();
    }
    std::fs::write(&marker, "ok").unwrap();
    paths
}

fn read_file(path: &Path, buf: &mut [u8]) -> u64 {
    let mut f = std::fs::File::open(path).unwrap();
    let mut total = 0u64;
    loop {
        let n = f.read(buf).unwrap();
        if n == 0 {
            return total;
        }
        total += n as u64;
    }
}

/// Every byte of `paths`, one file after another, on this thread.
fn read_all(paths: &[PathBuf], buf: &mut [u8]) -> u64 {
    paths.iter().map(|p| read_file(p, buf)).sum()
}

/// Every byte under `root`, through the walk the key uses (the same
/// builder settings and one thread per core, as in
/// `codegenie_runtime::inputs::walk`), reading with the key's buffer size
/// instead of hashing. Returns the bytes and files read.
fn read_all_parallel_walk(root: &Path) -> (u64, usize) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let bytes = AtomicU64::new(0);
    let files = AtomicUsize::new(0);
    WalkBuilder::new(root)
        .standard_filters(false)
        .follow_links(false)
        .threads(threads)
        .build_parallel()
        .run(|| {
            let mut buf = vec![0u8; READ_BUF];
            let (bytes, files) = (&bytes, &files);
            Box::new(move |entry| {
                let entry = entry.unwrap();
                if entry.file_type().is_some_and(|t| t.is_file())
                    && entry.path().extension().is_some_and(|e| e == "bin")
                {
                    bytes.fetch_add(read_file(entry.path(), &mut buf), Ordering::Relaxed);
                    files.fetch_add(1, Ordering::Relaxed);
                }
                WalkState::Continue
            })
        });
    (bytes.into_inner(), files.into_inner())
}

fn bench(c: &mut Criterion) {
    let root = tree_root();
    let paths = ensure_tree(&root);
    let mut buf = vec![0u8; READ_BUF];
    let bytes = read_all(&paths, &mut buf); // also warms the page cache
    assert_eq!(
        read_all_parallel_walk(&root),
        (bytes, FILES),
        "the parallel read must read the same files as the key"
    );
    eprintln!(
        "tree: {} files, {} bytes at {}; walker threads: {}",
        paths.len(),
        bytes,
        root.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let repo = RepoSnapshot::open(&root).unwrap();

    report_cpu_time(&repo, &root);

    let mut g = c.benchmark_group("cache_key_20k_files");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(15))
        .throughput(Throughput::Bytes(bytes));
    // The key's baseline: the same parallel walk, reading without hashing.
    g.bench_function("read_every_byte_parallel_walk", |b| {
        b.iter(|| read_all_parallel_walk(&root))
    });
    g.bench_function("key_glob_all", |b| {
        b.iter(|| {
            let m = manifest_for(&repo, "everything", &Everything, None).unwrap();
            assert_eq!(m.inputs.globs[0].files.len(), FILES);
            m.key
        })
    });
    // One core: reading, then reading and hashing, without walking or matching.
    g.bench_function("read_every_byte_one_thread", |b| {
        b.iter(|| read_all(&paths, &mut buf))
    });
    g.bench_function("read_and_hash_one_thread", |b| {
        b.iter(|| {
            let mut hashes = Vec::with_capacity(paths.len());
            for p in &paths {
                hashes.push(codegenie_runtime::inputs::walk::hash_file(p, &mut buf).unwrap());
            }
            hashes
        })
    });
    // A later run: unchanged files come from the hash index (loaded from disk
    // each round, as a new process would) instead of being read again.
    let prime = ContentCache::for_repo_root(repo.root());
    prime
        .key(&repo, "everything", &Everything, &ProbeContext::default())
        .unwrap();
    g.bench_function("key_glob_all_warm_index", |b| {
        b.iter(|| {
            let cache = ContentCache::for_repo_root(repo.root());
            cache
                .key(&repo, "everything", &Everything, &ProbeContext::default())
                .unwrap()
        })
    });
    g.finish();
}

/// This process's CPU time (user + system), from `/proc/self/stat`, in
/// seconds; `None` where it cannot be read.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); the slice starts at field 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Wall and CPU time of the key and its parallel-read baseline over a few
/// rounds: the CPU figures do not depend on what else the machine is
/// running, the wall figures do.
fn report_cpu_time(repo: &RepoSnapshot, root: &Path) {
    const ROUNDS: u32 = 5;
    let measure = |f: &mut dyn FnMut()| {
        let (wall, cpu) = (std::time::Instant::now(), cpu_seconds());
        for _ in 0..ROUNDS {
            f();
        }
        let cpu = cpu
            .zip(cpu_seconds())
            .map(|(a, b)| (b - a) / f64::from(ROUNDS));
        (wall.elapsed().as_secs_f64() / f64::from(ROUNDS), cpu)
    };
    let (read_wall, read_cpu) = measure(&mut || {
        read_all_parallel_walk(root);
    });
    let (key_wall, key_cpu) = measure(&mut || {
        manifest_for(repo, "everything", &Everything, None).unwrap();
    });
    eprintln!(
        "per round: read every byte (parallel walk) {:.0} ms wall / {:.0} ms cpu; key {:.0} ms wall / {:.0} ms cpu; wall ratio {:.2}x",
        read_wall * 1e3,
        read_cpu.unwrap_or(f64::NAN) * 1e3,
        key_wall * 1e3,
        key_cpu.unwrap_or(f64::NAN) * 1e3,
        key_wall / read_wall
    );
}

criterion_group!(benches, bench);

// What `criterion_main!` expands to, behind the same gate as the other
// benchmarks: `cargo bench` passes `--bench`, `cargo test --benches` does
// not, and the setup alone (files, images, traces) is too heavy for a test run.
fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
