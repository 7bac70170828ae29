//! Cache key of a generated 20k-file / ~500 MB tree with `**/*`, against
//! reading every byte of the same files (what `cat` to /dev/null does), in the
//! same run. Goal: key <= 1.5x the read.
//!
//! The tree is generated once under `target/bench-data/` (never committed);
//! both measurements run with it in the page cache.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use codegenie::cache::manifest_for;
use codegenie::prelude::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const FILES: usize = 20_000;
const BIG_FILES: usize = 100;
const BIG_SIZE: usize = 3_400_000;
const SMALL_MAX: usize = 16 * 1024;

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
    let marker = root.join(".complete");
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

fn read_all(paths: &[PathBuf], buf: &mut [u8]) -> u64 {
    let mut total = 0u64;
    for p in paths {
        let mut f = std::fs::File::open(p).unwrap();
        loop {
            let n = f.read(buf).unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    total
}

fn bench(c: &mut Criterion) {
    let root = tree_root();
    let paths = ensure_tree(&root);
    let mut buf = vec![0u8; 128 * 1024];
    let bytes = read_all(&paths, &mut buf); // also warms the page cache
    eprintln!(
        "tree: {} files, {} bytes at {}",
        paths.len(),
        bytes,
        root.display()
    );
    let repo = RepoSnapshot::open(&root).unwrap();

    let mut g = c.benchmark_group("cache_key_20k_files");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(15))
        .throughput(Throughput::Bytes(bytes));
    g.bench_function("read_every_byte", |b| b.iter(|| read_all(&paths, &mut buf)));
    g.bench_function("key_glob_all", |b| {
        b.iter(|| {
            let m = manifest_for(&repo, "everything", &Everything, None).unwrap();
            assert_eq!(m.inputs.globs[0].files.len(), FILES);
            m.key
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
