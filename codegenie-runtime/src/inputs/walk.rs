//! Glob expansion and content hashing: one parallel walk of the repository
//! matches every declared glob and hashes each matched file with blake3.
//!
//! Rules (DESIGN.md §3): gitignore semantics are off (a declared file counts
//! even if ignored), `.git` is never entered, and `.codegenie/` is entered only
//! for globs that name it explicitly (`.codegenie/scenarios.yaml`), and even
//! then never its `cache/` and `context/` outputs. Symlinks are not followed;
//! a matched symlink is hashed by its target text.

use std::io::Read;
use std::path::Path;
use std::sync::Mutex;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ignore::{WalkBuilder, WalkState};
use serde::{Deserialize, Serialize};

use super::CacheKeyError;

/// The folder codegenie keeps its state in; skipped unless a glob names it.
pub const CODEGENIE_DIR: &str = ".codegenie";
/// Output folders under `.codegenie/` that never count as inputs.
const CODEGENIE_OUTPUTS: &[&str] = &["cache", "context"];
/// Read buffer per walker thread; large reads let blake3 use its SIMD paths.
const READ_BUF: usize = 256 * 1024;

/// One file a glob matched.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MatchedFile {
    /// Path relative to the repository root, `/`-separated; bytes that are not
    /// UTF-8 are written `\xHH`.
    pub path: String,
    /// blake3 of the content, lowercase hex.
    pub blake3: String,
}

/// The files one declared glob matched, sorted by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobMatches {
    /// The glob as declared.
    pub glob: String,
    /// Matched files, sorted by path, without duplicates.
    pub files: Vec<MatchedFile>,
}

/// Expand `globs` against `root` and hash every matched file. The result has
/// one entry per distinct glob, sorted by glob, each with its files sorted by
/// path, whatever order the walk visited them in.
pub fn match_and_hash(root: &Path, globs: &[String]) -> Result<Vec<GlobMatches>, CacheKeyError> {
    let mut globs: Vec<String> = globs.to_vec();
    globs.sort();
    globs.dedup();
    if globs.is_empty() {
        return Ok(Vec::new());
    }
    let matchers = Matchers::new(&globs)?;
    let mut builder = WalkBuilder::new(root);
    let codegenie_dir = root.join(CODEGENIE_DIR);
    // A glob naming `.codegenie/` matches nothing when the folder is absent.
    if matchers.wants_codegenie_dir && codegenie_dir.is_dir() {
        builder.add(codegenie_dir);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cg_dir = root.join(CODEGENIE_DIR);
    builder
        .standard_filters(false)
        .follow_links(false)
        .threads(threads)
        .filter_entry(move |e| keep_entry(&cg_dir, e));

    let found: Mutex<Vec<(usize, MatchedFile)>> = Mutex::new(Vec::new());
    let failure: Mutex<Option<CacheKeyError>> = Mutex::new(None);
    builder.build_parallel().run(|| {
        let mut buf = vec![0u8; READ_BUF];
        let (matchers, found, failure) = (&matchers, &found, &failure);
        let mut hits = Vec::new();
        Box::new(move |entry| {
            let outcome = visit(root, matchers, entry, &mut buf, &mut hits);
            match outcome {
                Ok(()) => {
                    if !hits.is_empty() {
                        found
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .append(&mut hits);
                    }
                    WalkState::Continue
                }
                Err(e) => {
                    let mut slot = failure.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(e);
                    WalkState::Quit
                }
            }
        })
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let mut out: Vec<GlobMatches> = globs
        .into_iter()
        .map(|glob| GlobMatches {
            glob,
            files: Vec::new(),
        })
        .collect();
    for (idx, file) in found.into_inner().unwrap_or_else(|p| p.into_inner()) {
        out[idx].files.push(file);
    }
    for g in &mut out {
        g.files.sort();
        g.files.dedup_by(|a, b| a.path == b.path);
    }
    Ok(out)
}

/// The compiled globs: every glob for files outside `.codegenie/`, only the
/// globs that name `.codegenie/` for files inside it.
struct Matchers {
    all: GlobSet,
    all_idx: Vec<usize>,
    codegenie: GlobSet,
    codegenie_idx: Vec<usize>,
    wants_codegenie_dir: bool,
}

impl Matchers {
    fn new(globs: &[String]) -> Result<Self, CacheKeyError> {
        let mut all = GlobSetBuilder::new();
        let mut codegenie = GlobSetBuilder::new();
        let mut codegenie_idx = Vec::new();
        for (i, g) in globs.iter().enumerate() {
            // Same options as the shared spec rules use to validate globs.
            let glob = GlobBuilder::new(g)
                .literal_separator(true)
                .build()
                .map_err(|e| CacheKeyError::Glob {
                    glob: g.clone(),
                    message: e.kind().to_string(),
                })?;
            all.add(glob.clone());
            if g.starts_with(".codegenie/") {
                codegenie.add(glob);
                codegenie_idx.push(i);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build().map_err(|e| CacheKeyError::Glob {
                glob: globs.join(", "),
                message: e.to_string(),
            })
        };
        Ok(Matchers {
            all: build(all)?,
            all_idx: (0..globs.len()).collect(),
            wants_codegenie_dir: !codegenie_idx.is_empty(),
            codegenie: build(codegenie)?,
            codegenie_idx,
        })
    }
}

/// Whether the walker descends into / reports `e`.
/// `codegenie_dir` is `<repo>/.codegenie`.
fn keep_entry(codegenie_dir: &Path, e: &ignore::DirEntry) -> bool {
    if e.depth() == 0 {
        // A walk root: the repository, or its `.codegenie/` when a glob names it.
        return true;
    }
    let name = e.file_name();
    if name == ".git" {
        return false;
    }
    let is_dir = e.file_type().is_some_and(|t| t.is_dir());
    if is_dir && name == CODEGENIE_DIR {
        // Entered only as its own walk root (above), which exists only when a
        // glob names it; nested or reached from the repository root: skipped.
        return false;
    }
    if is_dir && e.depth() == 1 && e.path().parent() == Some(codegenie_dir) {
        return !CODEGENIE_OUTPUTS.iter().any(|o| name == *o);
    }
    true
}

fn visit(
    root: &Path,
    m: &Matchers,
    entry: Result<ignore::DirEntry, ignore::Error>,
    buf: &mut [u8],
    hits: &mut Vec<(usize, MatchedFile)>,
) -> Result<(), CacheKeyError> {
    let entry = entry.map_err(|source| CacheKeyError::Walk {
        root: root.to_path_buf(),
        source,
    })?;
    let Some(ty) = entry.file_type() else {
        return Ok(());
    };
    if ty.is_dir() {
        return Ok(());
    }
    let path = entry.path();
    let rel = match path.strip_prefix(root) {
        Ok(r) => r,
        Err(_) => return Ok(()),
    };
    let rel_str = rel_path_string(rel);
    let (set, idx) = if rel_str.starts_with(".codegenie/") {
        (&m.codegenie, &m.codegenie_idx)
    } else {
        (&m.all, &m.all_idx)
    };
    let matched = set.matches(rel);
    if matched.is_empty() {
        return Ok(());
    }
    let hash = if ty.is_symlink() {
        hash_symlink(path)?
    } else if ty.is_file() {
        hash_file(path, buf)?
    } else {
        // Sockets, fifos, devices: no content to hash.
        return Ok(());
    };
    for i in matched {
        hits.push((
            idx[i],
            MatchedFile {
                path: rel_str.clone(),
                blake3: hash.clone(),
            },
        ));
    }
    Ok(())
}

/// blake3 of a file's content, as lowercase hex.
pub fn hash_file(path: &Path, buf: &mut [u8]) -> Result<String, CacheKeyError> {
    let io_err = |source| CacheKeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io_err)?;
    let mut hasher = blake3::Hasher::new();
    loop {
        let n = match f.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().to_hex().to_string())
}

fn hash_symlink(path: &Path) -> Result<String, CacheKeyError> {
    let target = std::fs::read_link(path).map_err(|source| CacheKeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut hasher = blake3::Hasher::new();
    // Domain-separated from file content, so a link never collides with a file
    // whose bytes are the target text.
    hasher.update(b"codegenie.symlink\0");
    hasher.update(target.as_os_str().as_encoded_bytes());
    Ok(hasher.finalize().to_hex().to_string())
}

/// A repository-relative path as `/`-separated text; bytes that are not UTF-8
/// are written `\xHH`, so distinct names stay distinct.
pub fn rel_path_string(rel: &Path) -> String {
    let mut out = String::new();
    for (i, comp) in rel.components().enumerate() {
        if i > 0 {
            out.push('/');
        }
        push_escaped(&mut out, comp.as_os_str().as_encoded_bytes());
    }
    out
}

fn push_escaped(out: &mut String, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                return;
            }
            Err(e) => {
                let (good, rest) = bytes.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                let bad = e.error_len().unwrap_or(rest.len());
                for b in &rest[..bad] {
                    out.push_str(&format!("\\x{b:02x}"));
                }
                bytes = &rest[bad..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_bytes_are_escaped() {
        use std::os::unix::ffi::OsStrExt;
        let p = Path::new(std::ffi::OsStr::from_bytes(b"a/b\xffc"));
        assert_eq!(rel_path_string(p), "a/b\\xffc");
    }
}
