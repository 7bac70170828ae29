//! Lexical path arithmetic for fact paths: joining a relative name to the
//! directory it is relative to, and normalising `.`, `..` and `//` without
//! touching the filesystem.
//!
//! Invariants of [`normalize`]'s output: it is idempotent; an absolute input
//! gives an absolute output with no `.`/`..` component, no `//` and no
//! trailing `/` (except the root itself); a relative input stays relative,
//! keeps only a leading run of `..` and is `.` when nothing remains. Symlinks
//! are never resolved: the parser records names as the app used them.

/// Lexically normalises `path` (see the module invariants).
pub fn normalize(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    normalize_into(path, &mut out);
    out
}

/// `rel` made absolute against `dir` when relative (`dir` itself when `rel`
/// is empty, as with `AT_EMPTY_PATH`), then normalised.
pub fn join(dir: &str, rel: &str) -> String {
    let mut out = String::with_capacity(dir.len() + rel.len() + 1);
    join_into(dir, rel, &mut out);
    out
}

/// Joins the relative `path` to a dirfd argument's `-y` decoration (a
/// directory's path), in place; true when it did. `dir`, `tmp` and
/// `scratch` are the caller's working buffers.
pub(crate) fn join_to_dirfd(
    dirfd: &[u8],
    path: &mut String,
    dir: &mut String,
    tmp: &mut String,
    scratch: &mut Vec<u8>,
) -> bool {
    let Some(decoration) = super::call::parse_value(dirfd).decoration else {
        return false;
    };
    dir.clear();
    super::unescape::decode_into(decoration, scratch, dir);
    if !dir.starts_with('/') || super::rules::is_unnamed(dir) {
        return false;
    }
    join_into(dir, path, tmp);
    std::mem::swap(path, tmp);
    true
}

/// [`join`] into a reused buffer.
pub(crate) fn join_into(dir: &str, rel: &str, out: &mut String) {
    out.clear();
    if !rel.starts_with('/') {
        push_components(dir, out);
    }
    push_components(rel, out);
    finish(out);
}

/// [`normalize`] into a reused buffer (cleared first).
pub(crate) fn normalize_into(path: &str, out: &mut String) {
    out.clear();
    // Most names an app uses are already normal: copied as they are.
    if is_normal(path) {
        out.push_str(path);
        return;
    }
    push_components(path, out);
    finish(out);
}

/// Normalises `path` in place, using `tmp` as scratch. True when it was
/// normal already (and is unchanged).
pub(crate) fn normalize_in_place(path: &mut String, tmp: &mut String) -> bool {
    if is_normal(path) {
        return true;
    }
    normalize_into(path, tmp);
    std::mem::swap(path, tmp);
    false
}

/// Whether [`normalize`] would return `path` unchanged.
fn is_normal(path: &str) -> bool {
    plainly_normal(path) || normal_by_components(path)
}

/// The common case of [`is_normal`] in one pass over the bytes, without
/// splitting (it was a twentieth of a parse): an absolute path where no
/// `/` is followed by `/`, `.` or the end.
fn plainly_normal(path: &str) -> bool {
    let b = path.as_bytes();
    let (Some(b'/'), Some(&last)) = (b.first(), b.last()) else {
        return false;
    };
    // Every pair of neighbours, without an early exit, so that the loop
    // runs many bytes per step.
    // (A byte, not a bool, is what the compiler widens into vectors.)
    let bad = b.iter().zip(&b[1..]).fold(0u8, |bad, (&c, &next)| {
        bad | u8::from((c == b'/') & ((next == b'/') | (next == b'.')))
    });
    (last != b'/' || b.len() == 1) && bad == 0
}

/// [`is_normal`], component by component.
fn normal_by_components(path: &str) -> bool {
    if path == "/" || path == "." {
        return true;
    }
    let (absolute, rest) = match path.strip_prefix('/') {
        Some(rest) => (true, rest),
        None => (false, path),
    };
    let mut comps = rest.split('/').peekable();
    if !absolute {
        // A relative path may lead with `..`s.
        while comps.peek() == Some(&"..") {
            comps.next();
        }
    }
    comps.all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Appends `path`'s components to `out`, which holds a normalised prefix
/// (empty, `/`, or without trailing `/`). An absolute `path` on an empty
/// `out` makes it absolute; `..` pops a component, stays at the root, and
/// is kept on a relative `out` that has nothing left to pop.
fn push_components(path: &str, out: &mut String) {
    if out.is_empty() && path.starts_with('/') {
        out.push('/');
    }
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => pop(out),
            c => {
                if !out.is_empty() && !out.ends_with('/') {
                    out.push('/');
                }
                out.push_str(c);
            }
        }
    }
}

/// Removes the last component of a normalised `out` (see [`push_components`]).
fn pop(out: &mut String) {
    if out.is_empty() {
        // A relative path with nothing to pop: `..` stays.
        out.push_str("..");
        return;
    }
    let last = out.rfind('/').map_or(0, |i| i + 1);
    match &out[last..] {
        // The root: `/..` is `/`.
        "" => {}
        ".." => out.push_str("/.."),
        // Keep the root's `/` (`/a` → `/`), drop the separator otherwise.
        _ => out.truncate(match last {
            0 | 1 => last,
            n => n - 1,
        }),
    }
}

/// An empty relative result is `.`.
fn finish(out: &mut String) {
    if out.is_empty() {
        out.push('.');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_lexically() {
        let cases = [
            ("/", "/"),
            ("//", "/"),
            ("/a//b/", "/a/b"),
            ("/a/./b/.", "/a/b"),
            ("/a/b/../c", "/a/c"),
            ("/..", "/"),
            ("/../../a", "/a"),
            ("/a/..", "/"),
            ("./out.txt", "out.txt"),
            ("a/../..", ".."),
            ("../../a/./b/..", "../../a"),
            ("", "."),
            (".", "."),
            ("a/..", "."),
            ("a/../../b", "../b"),
            (
                "/usr/lib/x86_64-linux-gnu/../../lib/libc.so.6",
                "/usr/lib/libc.so.6",
            ),
            ("/caf\\xff/é//x", "/caf\\xff/é/x"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input), want, "{input}");
            assert_eq!(normalize(want), want, "idempotent on {want}");
            assert!(is_normal(want), "{want}");
            assert_eq!(is_normal(input), input == want, "{input}");
        }
    }

    #[test]
    fn the_one_pass_check_never_passes_what_components_refuse() {
        let paths = [
            "/",
            "//",
            "/a",
            "/a/",
            "/a//b",
            "/a/.",
            "/a/./b",
            "/a/..",
            "/a/../b",
            "/.",
            "/..",
            "/.hidden",
            "/a/.b",
            "/a.b/c.d",
            "/a/b.",
            "/a/b..",
            "/é/x",
            "a",
            "a/b",
            "./a",
            "",
            ".",
            "..",
            "/a/b/c.so.6",
        ];
        for p in paths {
            if plainly_normal(p) {
                assert!(normal_by_components(p), "{p}");
            }
        }
        // And it answers the common case itself.
        assert!(plainly_normal("/usr/lib/x86_64-linux-gnu/libc.so.6"));
        assert!(!plainly_normal("/a/.hidden"));
    }

    #[test]
    fn joins_relative_names_to_their_directory() {
        assert_eq!(join("/app", "bin/x"), "/app/bin/x");
        assert_eq!(join("/app/", "./bin/../x"), "/app/x");
        assert_eq!(join("/app", "/etc/hosts"), "/etc/hosts");
        assert_eq!(join("/opt/tool", ""), "/opt/tool");
        assert_eq!(join("/", "../x"), "/x");
        assert_eq!(join("/a/b", "../../.."), "/");
    }
}
