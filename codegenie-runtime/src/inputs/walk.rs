//! Glob expansion and content hashing: literal globs are looked up directly,
//! the others matched by one parallel walk of their base folders; every
//! matched file is hashed with blake3.
//!
//! Rules (docs/architecture.md, "Cache key"): gitignore semantics are off (a declared file counts
//! even if ignored), `.git` is never entered, and `.codegenie/` is entered only
//! for globs that name it explicitly (`.codegenie/scenarios.yaml`), and even
//! then never its `cache/` and `context/` outputs. Symlinked folders are not
//! entered; a matched symlink is hashed by its target text and the content
//! of the file it points at.

use std::io::Read;
use std::path::Path;
use std::sync::Mutex;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ignore::{WalkBuilder, WalkState};
use serde::{Deserialize, Serialize};

use super::hash_index::{now_ns, FileStamp, HashIndex, IndexEntry};
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
    match_and_hash_with(root, globs, None).map(|(g, _)| g)
}

/// [`match_and_hash`] reusing the hashes `index` remembers for unchanged files;
/// also returns the hash index entries of every regular file matched this time.
///
/// A glob without wildcards (`Dockerfile`) is looked up directly; the others
/// are matched by one parallel walk over their literal base folders
/// (`src/**/*.rs` walks `src/` only), so a probe that declares a few files
/// never walks the whole repository.
pub fn match_and_hash_with(
    root: &Path,
    globs: &[String],
    hash_index: Option<&HashIndex>,
) -> Result<(Vec<GlobMatches>, HashIndex), CacheKeyError> {
    let mut globs: Vec<String> = globs.to_vec();
    globs.sort();
    globs.dedup();
    let mut fresh = HashIndex::new();
    let mut out: Vec<GlobMatches> = globs
        .iter()
        .map(|glob| GlobMatches {
            glob: glob.clone(),
            files: Vec::new(),
        })
        .collect();
    if globs.is_empty() {
        return Ok((out, fresh));
    }
    // Taken before any file is read: see `hash_index` for why.
    let walk_started = now_ns();
    let mut found: Vec<(usize, MatchedFile)> = Vec::new();
    let mut walked: Vec<(usize, &str)> = Vec::new();
    let mut buf = vec![0u8; READ_BUF];
    for (i, g) in globs.iter().enumerate() {
        if !is_literal(g) {
            walked.push((i, g));
            continue;
        }
        if let Some((file, stamp)) = hash_literal(root, g, hash_index, &mut buf)? {
            if let Some(stamp) = stamp {
                fresh.files.insert(
                    file.path.clone(),
                    IndexEntry {
                        stamp,
                        blake3: file.blake3.clone(),
                        hashed_at_ns: walk_started,
                    },
                );
            }
            found.push((i, file));
        }
    }
    if !walked.is_empty() {
        let roots = walk_roots(root, walked.iter().map(|(_, g)| *g))?;
        if !roots.is_empty() {
            let matchers = Matchers::new(&walked)?;
            walk(
                root,
                &roots,
                &matchers,
                hash_index,
                walk_started,
                &mut found,
                &mut fresh,
            )?;
        }
    }
    for (idx, file) in found {
        out[idx].files.push(file);
    }
    for g in &mut out {
        g.files.sort();
        g.files.dedup_by(|a, b| a.path == b.path);
    }
    Ok((out, fresh))
}

/// One parallel walk from `roots`, matching and hashing as it goes.
fn walk(
    root: &Path,
    roots: &[std::path::PathBuf],
    matchers: &Matchers,
    hash_index: Option<&HashIndex>,
    walk_started: i128,
    found_out: &mut Vec<(usize, MatchedFile)>,
    fresh_out: &mut HashIndex,
) -> Result<(), CacheKeyError> {
    let mut builder = WalkBuilder::new(&roots[0]);
    for r in &roots[1..] {
        builder.add(r);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cg_dir = root.join(CODEGENIE_DIR);
    builder
        .standard_filters(false)
        .follow_links(false)
        .threads(threads)
        .filter_entry(move |e| keep_entry(&cg_dir, e));

    let found: Mutex<Vec<(usize, MatchedFile)>> = Mutex::new(Vec::new());
    let fresh: Mutex<HashIndex> = Mutex::new(HashIndex::new());
    let failure: Mutex<Option<CacheKeyError>> = Mutex::new(None);
    builder.build_parallel().run(|| {
        let mut buf = vec![0u8; READ_BUF];
        let (found, failure, fresh) = (&found, &failure, &fresh);
        let mut hits = Vec::new();
        Box::new(move |entry| {
            let mut ctx = Visit {
                root,
                m: matchers,
                hash_index,
                buf: &mut buf,
                hits: &mut hits,
                stamp: None,
            };
            match visit(&mut ctx, entry) {
                Ok(()) => {
                    if let (Some((path, stamp)), Some((_, file))) = (ctx.stamp.take(), hits.first())
                    {
                        let entry = IndexEntry {
                            stamp,
                            blake3: file.blake3.clone(),
                            hashed_at_ns: walk_started,
                        };
                        lock(fresh).files.insert(path, entry);
                    }
                    if !hits.is_empty() {
                        lock(found).append(&mut hits);
                    }
                    WalkState::Continue
                }
                Err(e) => {
                    lock(failure).get_or_insert(e);
                    WalkState::Quit
                }
            }
        })
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    found_out.append(&mut found.into_inner().unwrap_or_else(|p| p.into_inner()));
    fresh_out
        .files
        .extend(fresh.into_inner().unwrap_or_else(|p| p.into_inner()).files);
    Ok(())
}

/// A glob with no wildcard, escape or odd component: it names one path.
fn is_literal(glob: &str) -> bool {
    !glob.contains(['*', '?', '[', ']', '{', '}', '\\'])
        && glob.split('/').all(|c| !c.is_empty() && c != ".")
}

/// Whether a repository-relative path may count as an input at all: never
/// through `.git`, never through a `.codegenie/` other than the top one, never
/// under `.codegenie/cache` or `.codegenie/context`.
fn path_allowed(rel: &str) -> bool {
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    if comps.contains(&".git") {
        return false;
    }
    if comps.iter().skip(1).any(|c| *c == CODEGENIE_DIR) {
        return false;
    }
    !(comps.first() == Some(&CODEGENIE_DIR)
        && comps.get(1).is_some_and(|c| CODEGENIE_OUTPUTS.contains(c)))
}

/// Whether every folder on the way from `root` to `rel` is a real folder (the
/// walker never follows a symlinked folder, so a direct lookup must not either).
/// `Ok(false)` when one is missing or is not a folder.
fn real_dirs_to(root: &Path, rel_dirs: &[&str]) -> Result<bool, CacheKeyError> {
    let mut cur = root.to_path_buf();
    for c in rel_dirs {
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(CacheKeyError::Io { path: cur, source }),
        }
    }
    Ok(true)
}

/// The folders to walk for `globs`: each glob's literal base (the folders
/// before its first wildcard), nested ones dropped, missing ones skipped.
fn walk_roots<'a>(
    root: &Path,
    globs: impl Iterator<Item = &'a str>,
) -> Result<Vec<std::path::PathBuf>, CacheKeyError> {
    let mut bases: Vec<String> = globs
        .map(|g| {
            let comps: Vec<&str> = g.split('/').collect();
            let n = comps
                .iter()
                .position(|c| {
                    c.contains(['*', '?', '[', ']', '{', '}', '\\']) || c.is_empty() || *c == "."
                })
                .unwrap_or(comps.len());
            // The last component is a file pattern even without wildcards.
            comps[..n.min(comps.len() - 1)].join("/")
        })
        .filter(|b| path_allowed(b))
        .collect();
    bases.sort();
    bases.dedup();
    let mut kept: Vec<String> = Vec::new();
    for b in bases {
        // The repository walk skips `.codegenie/`, so it never covers it.
        let covered = kept.iter().any(|a| {
            (a.is_empty() && !b.starts_with(CODEGENIE_DIR))
                || (!a.is_empty() && b.starts_with(&format!("{a}/")))
        });
        if !covered {
            kept.push(b);
        }
    }
    let mut roots = Vec::new();
    for b in kept {
        let dirs: Vec<&str> = b.split('/').filter(|c| !c.is_empty()).collect();
        if real_dirs_to(root, &dirs)? {
            roots.push(if b.is_empty() {
                root.to_path_buf()
            } else {
                root.join(&b)
            });
        }
    }
    Ok(roots)
}

/// Look a literal glob up directly. `None` when it names nothing that counts.
fn hash_literal(
    root: &Path,
    rel: &str,
    hash_index: Option<&HashIndex>,
    buf: &mut [u8],
) -> Result<Option<(MatchedFile, Option<FileStamp>)>, CacheKeyError> {
    if !path_allowed(rel) {
        return Ok(None);
    }
    let comps: Vec<&str> = rel.split('/').collect();
    if !real_dirs_to(root, &comps[..comps.len() - 1])? {
        return Ok(None);
    }
    let path = root.join(rel);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CacheKeyError::Io { path, source }),
    };
    let (blake3, stamp) = if meta.file_type().is_symlink() {
        (hash_symlink(&path)?, None)
    } else if meta.is_file() {
        let (h, s) = hash_regular(&path, rel, Some(&meta), hash_index, buf)?;
        (h, Some(s))
    } else {
        return Ok(None);
    };
    Ok(Some((
        MatchedFile {
            path: rel.to_owned(),
            blake3,
        },
        stamp,
    )))
}

/// The hash of a regular file, from the hash index when it may stand for the file,
/// else by reading it; with the metadata it is valid for. Only a remembered
/// file costs an lstat (unless `meta` is known); any other is stamped from its
/// open descriptor before it is read.
fn hash_regular(
    path: &Path,
    rel: &str,
    meta: Option<&std::fs::Metadata>,
    hash_index: Option<&HashIndex>,
    buf: &mut [u8],
) -> Result<(String, FileStamp), CacheKeyError> {
    if let Some(entry) = hash_index.and_then(|m| m.files.get(rel)) {
        let stamp = match meta {
            Some(m) => FileStamp::of(m),
            None => FileStamp::of(&std::fs::symlink_metadata(path).map_err(|source| {
                CacheKeyError::Io {
                    path: path.to_path_buf(),
                    source,
                }
            })?),
        };
        if let Some(h) = entry.reusable_for(&stamp) {
            return Ok((h.to_owned(), stamp));
        }
    }
    hash_file_stamped(path, buf)
}

/// A poisoned lock only means another walker thread panicked; its data is
/// still a plain list.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one walker thread needs to handle one entry.
struct Visit<'a> {
    root: &'a Path,
    m: &'a Matchers,
    hash_index: Option<&'a HashIndex>,
    buf: &'a mut [u8],
    hits: &'a mut Vec<(usize, MatchedFile)>,
    /// Set when a regular file was matched: its path and pre-hash metadata.
    stamp: Option<(String, FileStamp)>,
}

/// The compiled walked globs: every one for files outside `.codegenie/`, only
/// those that name `.codegenie/` for files inside it. Indices are the globs'
/// positions in the caller's list.
struct Matchers {
    all: GlobSet,
    all_idx: Vec<usize>,
    codegenie: GlobSet,
    codegenie_idx: Vec<usize>,
}

impl Matchers {
    fn new(globs: &[(usize, &str)]) -> Result<Self, CacheKeyError> {
        let mut all = GlobSetBuilder::new();
        let mut codegenie = GlobSetBuilder::new();
        let (mut all_idx, mut codegenie_idx) = (Vec::new(), Vec::new());
        for (i, g) in globs {
            // Same options as the shared spec rules use to validate globs.
            let glob = GlobBuilder::new(g)
                .literal_separator(true)
                .build()
                .map_err(|e| CacheKeyError::Glob {
                    glob: (*g).to_owned(),
                    message: e.kind().to_string(),
                })?;
            all.add(glob.clone());
            all_idx.push(*i);
            if g.starts_with(".codegenie/") {
                codegenie.add(glob);
                codegenie_idx.push(*i);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build().map_err(|e| CacheKeyError::Glob {
                glob: globs.iter().map(|(_, g)| *g).collect::<Vec<_>>().join(", "),
                message: e.to_string(),
            })
        };
        Ok(Matchers {
            all: build(all)?,
            all_idx,
            codegenie: build(codegenie)?,
            codegenie_idx,
        })
    }
}

/// Whether the walker descends into / reports `e`.
/// `codegenie_dir` is `<repo>/.codegenie`.
fn keep_entry(codegenie_dir: &Path, e: &ignore::DirEntry) -> bool {
    if e.depth() == 0 {
        // A walk root: already checked by `walk_roots`.
        return true;
    }
    let name = e.file_name();
    if name == ".git" {
        return false;
    }
    let is_dir = e.file_type().is_some_and(|t| t.is_dir());
    if is_dir && name == CODEGENIE_DIR {
        // Entered only as a walk root of a glob that names it.
        return false;
    }
    if is_dir && e.path().parent() == Some(codegenie_dir) {
        return !CODEGENIE_OUTPUTS.iter().any(|o| name == *o);
    }
    true
}

fn visit(
    v: &mut Visit<'_>,
    entry: Result<ignore::DirEntry, ignore::Error>,
) -> Result<(), CacheKeyError> {
    let root = v.root;
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
        (&v.m.codegenie, &v.m.codegenie_idx)
    } else {
        (&v.m.all, &v.m.all_idx)
    };
    let matched = set.matches(rel);
    if matched.is_empty() {
        return Ok(());
    }
    let hash = if ty.is_symlink() {
        hash_symlink(path)?
    } else if ty.is_file() {
        let (hash, stamp) = hash_regular(path, &rel_str, None, v.hash_index, v.buf)?;
        v.stamp = Some((rel_str.clone(), stamp));
        hash
    } else {
        // Sockets, fifos, devices: no content to hash.
        return Ok(());
    };
    for i in matched {
        v.hits.push((
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
    hash_file_stamped(path, buf).map(|(h, _)| h)
}

/// blake3 of a file's content and the file's metadata taken before reading.
pub fn hash_file_stamped(
    path: &Path,
    buf: &mut [u8],
) -> Result<(String, FileStamp), CacheKeyError> {
    let io_err = |source| CacheKeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io_err)?;
    let stamp = FileStamp::of(&f.metadata().map_err(io_err)?);
    let (hex, _) = blake3_of(&mut f, buf).map_err(io_err)?;
    Ok((hex, stamp))
}

/// The blake3 (hex) and length of everything `r` yields, read through `buf`:
/// the one hashing loop of the cache (declared files and stored blobs).
pub(crate) fn blake3_of(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<(String, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut len = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hasher.finalize().to_hex().to_string(), len))
}

/// A symlink's hash covers its target text *and* what it points at: a
/// regular file's content (so editing the target through another name
/// changes the key), or the kind of anything else (missing, a folder).
fn hash_symlink(path: &Path) -> Result<String, CacheKeyError> {
    let io_err = |source| CacheKeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let target = std::fs::read_link(path).map_err(io_err)?;
    let mut hasher = blake3::Hasher::new();
    // Domain-separated from file content, so a link never collides with a file
    // whose bytes are the target text.
    hasher.update(b"codegenie.symlink.v2\0");
    let text = target.as_os_str().as_encoded_bytes();
    hasher.update(&(text.len() as u64).to_le_bytes());
    hasher.update(text);
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {
            let mut f = std::fs::File::open(path).map_err(io_err)?;
            let mut buf = vec![0u8; 64 * 1024];
            let (content, _) = blake3_of(&mut f, &mut buf).map_err(io_err)?;
            hasher.update(b"file\0");
            hasher.update(content.as_bytes());
        }
        Ok(m) if m.is_dir() => {
            hasher.update(b"dir\0");
        }
        Ok(_) => {
            hasher.update(b"other\0");
        }
        // Dangling (or a loop): the link text alone stands for it.
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) =>
        {
            hasher.update(b"missing\0");
        }
        Err(e) => return Err(io_err(e)),
    }
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

fn push_escaped(out: &mut String, bytes: &[u8]) {
    // The parser's rendering: the same bytes give the same text everywhere.
    out.push_str(&crate::strace::literal::render(bytes));
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
