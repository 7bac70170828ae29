//! The build context sent to the engine: a tar of the repository that
//! honours its `.dockerignore` exactly as the Docker CLI does and never
//! contains codegenie's own state (`.codegenie/`, at any depth), whatever the
//! Dockerfile copies (docs/architecture.md, "Build context"). The repository
//! is only read: nothing is written into it, not even a temporary
//! `.dockerignore`.
//!
//! `.dockerignore` rules (the Docker CLI's, 20.10): one pattern per line;
//! `#` lines and blank lines skipped; `!` makes an exception; each pattern is
//! trimmed, cleaned like Go's `filepath.Clean` and loses a leading `/`;
//! `*` and `?` never cross `/`, `**` crosses any number of folders, `[...]`
//! is a class, `\` escapes. A pattern matches a path or one of its parent
//! folders; the last matching pattern wins. The Dockerfile and
//! `.dockerignore` themselves are always sent.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use regex::Regex;

/// The folder of codegenie's state, never part of a build context.
pub const CODEGENIE_DIR: &str = ".codegenie";

/// Why a build context could not be assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildContextError {
    /// A `.dockerignore` line is not a valid pattern (the Docker CLI refuses
    /// it too).
    #[error("{path}:{line}: invalid .dockerignore pattern `{pattern}`: {message}")]
    Pattern {
        /// The `.dockerignore` file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The pattern as written.
        pattern: String,
        /// Why it is invalid.
        message: String,
    },
    /// A file or folder could not be read, or the tar not written.
    #[error("cannot read or pack {path}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildContextError + '_ {
    move |source| BuildContextError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One compiled `.dockerignore` pattern.
#[derive(Debug)]
struct Pattern {
    /// The cleaned pattern (without `!`).
    text: String,
    /// Number of `/`-separated components of `text`.
    dirs: usize,
    exception: bool,
    re: Regex,
}

/// The `.dockerignore` of a repository, compiled.
#[derive(Debug, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

impl DockerIgnore {
    /// Read `<root>/.dockerignore` (none: nothing is excluded). The
    /// Dockerfile and `.dockerignore` are kept whatever the file says, as
    /// the Docker CLI does.
    pub fn load(root: &Path) -> Result<DockerIgnore, BuildContextError> {
        let path = root.join(".dockerignore");
        let text = match std::fs::read(&path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(&path)(e)),
        };
        let mut ig = DockerIgnore::parse(&text, &path)?;
        for keep in ["Dockerfile", ".dockerignore"] {
            if ig.excludes(keep) {
                ig.patterns.push(compile(&format!("!{keep}"), &path, 0)?);
            }
        }
        Ok(ig)
    }

    /// Compile the text of a `.dockerignore` (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<DockerIgnore, BuildContextError> {
        let mut patterns = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = if i == 0 {
                raw.trim_start_matches('\u{feff}')
            } else {
                raw
            };
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(p) = compile_line(line, path, i + 1)? {
                patterns.push(p);
            }
        }
        Ok(DockerIgnore { patterns })
    }

    /// Whether the repository-relative, `/`-separated `rel` is left out.
    pub fn excludes(&self, rel: &str) -> bool {
        let parent_dirs: Vec<&str> = match rel.rfind('/') {
            Some(i) => rel[..i].split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for p in &self.patterns {
            let mut m = p.re.is_match(rel);
            if !m && !parent_dirs.is_empty() && p.dirs <= parent_dirs.len() {
                m = p.re.is_match(&parent_dirs[..p.dirs].join("/"));
            }
            if m {
                matched = !p.exception;
            }
        }
        matched
    }

    /// Whether an excluded folder `rel` must still be entered because an
    /// exception may bring back something inside it (the CLI's rule).
    fn must_enter(&self, rel: &str) -> bool {
        let dir_slash = format!("{rel}/");
        self.patterns
            .iter()
            .filter(|p| p.exception)
            .any(|p| format!("{}/", p.text).starts_with(&dir_slash))
    }
}

fn compile_line(
    line: &str,
    path: &Path,
    lineno: usize,
) -> Result<Option<Pattern>, BuildContextError> {
    let (exception, body) = match line.strip_prefix('!') {
        Some(rest) => (true, rest.trim()),
        None => (false, line),
    };
    if body.is_empty() {
        return Ok(None);
    }
    let mut cleaned = clean(body);
    if cleaned.len() > 1 && cleaned.starts_with('/') {
        cleaned.remove(0);
    }
    let shown = if exception {
        format!("!{cleaned}")
    } else {
        cleaned
    };
    compile(&shown, path, lineno).map(Some)
}

/// Compile one cleaned pattern (`!` prefix for an exception) to a regex the
/// way the Docker CLI does.
fn compile(pattern: &str, path: &Path, line: usize) -> Result<Pattern, BuildContextError> {
    let (exception, text) = match pattern.strip_prefix('!') {
        Some(t) => (true, t),
        None => (false, pattern),
    };
    let mut re = String::from("^");
    let mut chars = text.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        if in_class {
            match c {
                ']' => {
                    in_class = false;
                    re.push(']');
                }
                '\\' => {
                    re.push('\\');
                    re.push(chars.next().unwrap_or('\\'));
                }
                '[' => re.push_str("\\["),
                _ => re.push(c),
            }
            continue;
        }
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                in_class = true;
                re.push('[');
                // Go's filepath.Match negates a class with `^`, as regex does.
                if chars.peek() == Some(&'^') {
                    chars.next();
                    re.push('^');
                }
            }
            '\\' => match chars.next() {
                Some(n) => re.push_str(&regex::escape(&n.to_string())),
                None => re.push_str("\\\\"),
            },
            // Everything else is literal, as in Go's filepath.Match.
            _ => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    if in_class {
        return Err(BuildContextError::Pattern {
            path: path.to_path_buf(),
            line,
            pattern: pattern.to_owned(),
            message: "unterminated character class `[`".to_owned(),
        });
    }
    re.push('$');
    let re = Regex::new(&re).map_err(|e| BuildContextError::Pattern {
        path: path.to_path_buf(),
        line,
        pattern: pattern.to_owned(),
        message: e.to_string(),
    })?;
    Ok(Pattern {
        text: text.to_owned(),
        dirs: text.split('/').count(),
        exception,
        re,
    })
}

/// Lexical cleaning as Go's `filepath.Clean`: repeated `/` collapsed, `.`
/// dropped, `..` folded into its parent.
fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_owned(),
        (false, false) => body,
    }
}

/// What went into a context tar.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextSummary {
    /// Entries (files, folders, links) packed.
    pub entries: u64,
    /// Bytes of file content packed.
    pub content_bytes: u64,
}

/// Write the build context of the repository at `root` as a tar to `dest`
/// (a path outside the repository). Symlinks are packed as links, never
/// followed; sockets, fifos and devices are left out; owners are 0:0 as the
/// Docker CLI sends them; modes and mtimes are kept.
pub fn write_context_tar(root: &Path, dest: &Path) -> Result<ContextSummary, BuildContextError> {
    write_context_tar_with(root, dest, &[])
}

/// [`write_context_tar`] with `extra` files (path in the context, bytes)
/// added after the repository's: a Dockerfile of ours, under `.codegenie/`,
/// which the repository's own files never use.
pub fn write_context_tar_with(
    root: &Path,
    dest: &Path,
    extra: &[(&str, &[u8])],
) -> Result<ContextSummary, BuildContextError> {
    let ignore = DockerIgnore::load(root)?;
    let file = File::create(dest).map_err(io(dest))?;
    let mut tar = tar::Builder::new(BufWriter::with_capacity(256 * 1024, file));
    tar.follow_symlinks(false);
    let mut summary = ContextSummary::default();
    pack_dir(&mut tar, root, "", &ignore, &mut summary)?;
    for (name, bytes) in extra {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(bytes.len() as u64);
        tar.append_data(&mut h, name, *bytes).map_err(io(dest))?;
        summary.entries += 1;
        summary.content_bytes += bytes.len() as u64;
    }
    let w = tar.into_inner().map_err(io(dest))?;
    w.into_inner()
        .map_err(|e| io(dest)(e.into_error()))?
        .sync_all()
        .map_err(io(dest))?;
    Ok(summary)
}

/// The blake3 hash of the build context of the repository at `root`: the
/// same tar [`write_context_tar`] writes, hashed as it is packed, so two
/// equal hashes are two equal contexts for the engine (mtimes included: a
/// touched file is a new context, which costs a build, never a stale image).
pub fn context_digest(root: &Path) -> Result<blake3::Hash, BuildContextError> {
    let ignore = DockerIgnore::load(root)?;
    let mut tar = tar::Builder::new(blake3::Hasher::new());
    tar.follow_symlinks(false);
    let mut summary = ContextSummary::default();
    pack_dir(&mut tar, root, "", &ignore, &mut summary)?;
    let hasher = tar.into_inner().map_err(io(root))?;
    Ok(hasher.finalize())
}

fn pack_dir<W: std::io::Write>(
    tar: &mut tar::Builder<W>,
    root: &Path,
    rel_dir: &str,
    ignore: &DockerIgnore,
    summary: &mut ContextSummary,
) -> Result<(), BuildContextError> {
    let dir = if rel_dir.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel_dir)
    };
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(io(&dir))?
        .collect::<Result<_, _>>()
        .map_err(io(&dir))?;
    // A stable order: the same tree gives the same stream.
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let Some(name) = name.to_str() else {
            // The engine's context paths are UTF-8 text; such a name could
            // not be named by a Dockerfile either.
            tracing::warn!(path = %e.path().display(), "build context: skipping a name that is not UTF-8");
            continue;
        };
        if name == CODEGENIE_DIR {
            continue;
        }
        let rel = if rel_dir.is_empty() {
            name.to_owned()
        } else {
            format!("{rel_dir}/{name}")
        };
        let path = e.path();
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        let ty = meta.file_type();
        let excluded = ignore.excludes(&rel);
        if ty.is_dir() {
            if excluded {
                if ignore.must_enter(&rel) {
                    pack_dir(tar, root, &rel, ignore, summary)?;
                }
                continue;
            }
            append(tar, &meta, &rel, None, &path)?;
            summary.entries += 1;
            pack_dir(tar, root, &rel, ignore, summary)?;
        } else if excluded {
            continue;
        } else if ty.is_symlink() {
            let target = std::fs::read_link(&path).map_err(io(&path))?;
            let mut h = header(&meta);
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            tar.append_link(&mut h, &rel, &target).map_err(io(&path))?;
            summary.entries += 1;
        } else if ty.is_file() {
            let f = File::open(&path).map_err(io(&path))?;
            append(tar, &meta, &rel, Some(f), &path)?;
            summary.entries += 1;
            summary.content_bytes += meta.len();
        }
        // Sockets, fifos and devices have no content a build can copy.
    }
    Ok(())
}

fn header(meta: &std::fs::Metadata) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    // The Docker CLI sends every file as root's.
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append<W: std::io::Write>(
    tar: &mut tar::Builder<W>,
    meta: &std::fs::Metadata,
    rel: &str,
    content: Option<File>,
    path: &Path,
) -> Result<(), BuildContextError> {
    let mut h = header(meta);
    match content {
        Some(f) => {
            // The size is the one read now; a file that grows while packed
            // is cut to it, one that shrinks fails the append.
            h.set_size(meta.len());
            tar.append_data(&mut h, rel, std::io::Read::take(f, meta.len()))
                .map_err(io(path))
        }
        None => {
            h.set_size(0);
            tar.append_data(&mut h, rel, std::io::empty())
                .map_err(io(path))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text, Path::new(".dockerignore")).unwrap()
    }

    #[test]
    fn patterns_follow_the_docker_cli() {
        let i = ig("# comment\n\nnode_modules\n*.log\n/build/\n!build/keep.txt\ndocs/**/*.md\n");
        assert!(i.excludes("node_modules"));
        assert!(i.excludes("node_modules/x/index.js"));
        assert!(i.excludes("a.log"));
        assert!(!i.excludes("sub/a.log"), "`*` does not cross folders");
        assert!(i.excludes("build/out.bin"));
        assert!(!i.excludes("build/keep.txt"), "the last match wins");
        assert!(i.excludes("docs/a.md") && i.excludes("docs/x/y/a.md"));
        assert!(!i.excludes("docs/a.txt"));
        assert!(!i.excludes("src/main.js"));
        assert!(!i.excludes("# comment"));
    }

    #[test]
    fn double_star_and_classes() {
        let i = ig("**/*.tmp\nsrc/[^a]*.js\nx?z\n");
        assert!(i.excludes("a.tmp") && i.excludes("d/e/a.tmp"));
        assert!(i.excludes("src/b.js"));
        assert!(!i.excludes("src/a.js"));
        assert!(i.excludes("xyz") && !i.excludes("x/z"));
    }

    #[test]
    fn regex_characters_are_literal() {
        let i = ig("a+b\n(c)\nv1.0\n");
        assert!(i.excludes("a+b") && !i.excludes("aab"));
        assert!(i.excludes("(c)"));
        assert!(i.excludes("v1.0") && !i.excludes("v1x0"));
    }

    #[test]
    fn a_bad_pattern_names_its_line() {
        let e = DockerIgnore::parse("ok\nsrc/[ab\n", Path::new("/r/.dockerignore")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/r/.dockerignore:2: invalid .dockerignore pattern `src/[ab`: unterminated character class `[`"
        );
    }

    #[test]
    fn cleaning_is_go_like() {
        assert_eq!(clean("./a//b/../c/"), "a/c");
        assert_eq!(clean("/x/./y"), "/x/y");
        assert_eq!(clean("./"), ".");
    }

    fn names(tar_path: &Path) -> Vec<String> {
        let mut a = tar::Archive::new(File::open(tar_path).unwrap());
        let mut v: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_context_never_holds_codegenie_state_and_honours_dockerignore() {
        let repo = tempfile::tempdir().unwrap();
        let r = repo.path();
        for (p, c) in [
            ("Dockerfile", "FROM scratch\nCOPY . /src\n"),
            (".dockerignore", "*.log\nDockerfile\n.dockerignore\n"),
            ("app/main.js", "x"),
            ("app/debug.log", "x"),
            ("debug.log", "x"),
            (".codegenie/cache/ab/k.json", "{}"),
            (".codegenie/context/runtime_trace.json", "{}"),
            ("sub/.codegenie/context/x.json", "{}"),
        ] {
            let path = r.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, c).unwrap();
        }
        std::os::unix::fs::symlink("main.js", r.join("app/link.js")).unwrap();
        let out = tempfile::tempdir().unwrap();
        let tar_path = out.path().join("ctx.tar");
        let before = names_on_disk(r);
        write_context_tar(r, &tar_path).unwrap();
        assert_eq!(
            names(&tar_path),
            [
                ".dockerignore",
                "Dockerfile",
                "app",
                "app/debug.log",
                "app/link.js",
                "app/main.js",
                "sub"
            ]
        );
        assert_eq!(names_on_disk(r), before, "the repository is not modified");
        // The control: without the state folder rule, `.codegenie` would be packed.
        assert!(before.iter().any(|n| n.starts_with(".codegenie/")));
    }

    fn names_on_disk(r: &Path) -> Vec<String> {
        let mut v: Vec<String> = ignore::WalkBuilder::new(r)
            .standard_filters(false)
            .build()
            .map(|e| {
                let e = e.unwrap();
                e.path()
                    .strip_prefix(r)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        v.sort();
        v
    }
}
