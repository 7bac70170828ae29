//! The runtime's layers run one way (docs/architecture.md, "Layers"): every
//! `crate::<module>` path in a module of `codegenie-runtime` names a module of
//! a lower layer, a name the crate root re-exports counts as the module it
//! comes from, and inside a module's folder the files use one another
//! without a circle. A new module must be given a layer here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each top-level module of the runtime and its layer.
const LAYERS: &[(&str, u8)] = &[
    ("atomic_file", 0),
    ("state_dir", 0),
    ("cancel", 0),
    ("dockerfile", 0),
    ("errors", 0),
    ("interp", 0),
    ("procfs", 0),
    ("redact", 0),
    ("strace", 0),
    ("tar_head", 0),
    ("exec", 1),
    ("probe", 2),
    ("engine", 3),
    ("inputs", 3),
    ("record", 3),
    ("registry", 3),
    ("cache", 4),
    ("writer", 4),
    ("coordinator", 5),
    ("runtime_trace", 5),
    ("minimal", 6),
    ("pipeline", 7),
    ("portfolio", 8),
    ("ci_report", 9),
];

fn runtime_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("codegenie-runtime/src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a source file belongs to (`lib` for lib.rs).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// Every `crate::name` in `text`, with its line.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `codegenie_spec::x` and `$crate::` are other crates' paths.
            let before = &rest[..i];
            if !before.ends_with('_') && !before.ends_with('$') {
                if let Some(group) = after.strip_prefix('{') {
                    // `crate::{a::X, b}`: the first segment of each path.
                    let group = group.split('}').next().unwrap_or("");
                    for item in group.split(',') {
                        let seg = item.trim().split("::").next().unwrap_or("").trim();
                        if !seg.is_empty() {
                            out.push((n + 1, seg.to_owned()));
                        }
                    }
                } else if !name.is_empty() {
                    out.push((n + 1, name));
                }
            }
            rest = after;
        }
    }
    out
}

/// The names `lib.rs` (or a folder's `mod.rs`) re-exports, each with the
/// module it comes from: `pub use cache::{ContentCache, ProbeCache};`.
fn reexports(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text;
    while let Some(i) = rest
        .find("pub use ")
        .or_else(|| rest.find("pub(crate) use "))
    {
        let after = &rest[i..];
        let after = &after[after.find("use ").unwrap() + 4..];
        let end = after.find(';').unwrap_or(after.len());
        let item = &after[..end];
        rest = &after[end..];
        let Some((module, names)) = item.split_once("::") else {
            continue;
        };
        let names = names.trim();
        let listed: Vec<&str> = match names.strip_prefix('{') {
            Some(group) => group.trim_end_matches('}').split(',').collect(),
            None => vec![names],
        };
        for name in listed {
            let name = name.trim().rsplit("::").next().unwrap_or("").trim();
            if !name.is_empty() {
                out.insert(name.to_owned(), module.trim().to_owned());
            }
        }
    }
    out
}

fn violations(src: &Path) -> Vec<String> {
    let layers: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let root = reexports(&std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default());
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for file in files {
        let module = module_of(src, &file);
        if module == "lib" {
            continue;
        }
        let Some(&own) = layers.get(module.as_str()) else {
            bad.push(format!(
                "{}: module `{module}` has no layer",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, used) in crate_paths(&text) {
            // A name the root re-exports belongs to the module it comes from.
            let used = match root.get(&used) {
                Some(from) if layers.contains_key(from.as_str()) => from.clone(),
                _ => used,
            };
            if used == module {
                continue;
            }
            match layers.get(used.as_str()) {
                Some(&l) if l < own => {}
                Some(&l) => bad.push(format!(
                    "{}:{line}: `{module}` (layer {own}) uses `{used}` (layer {l})",
                    file.display()
                )),
                // A name with no layer is another crate's re-export
                // (`crate::register_probe`) or not a module.
                None => {}
            }
        }
    }
    bad
}

#[test]
fn no_module_uses_a_module_of_its_own_or_a_higher_layer() {
    let bad = violations(&runtime_src());
    assert!(bad.is_empty(), "layer violations:\n{}", bad.join("\n"));
}

#[test]
fn the_check_catches_an_upward_use() {
    // Control: the same check on a copy where the probe contract reaches up
    // into the coordinator, as it once did for its default timeout.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lib.rs"), "mod probe;\nmod coordinator;\n").unwrap();
    std::fs::write(
        dir.path().join("probe.rs"),
        "fn t() -> u64 { crate::coordinator::DEFAULT_TIMEOUT }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("coordinator.rs"),
        "use crate::probe::X;\nuse crate::{errors::e, writer};\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("writer.rs"), "use crate::{cache::Y};\n").unwrap();
    let bad = violations(dir.path());
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(
        bad[0].contains("`probe` (layer 2) uses `coordinator` (layer 5)"),
        "{bad:?}"
    );
    assert!(
        bad[1].contains("`writer` (layer 4) uses `cache` (layer 4)"),
        "{bad:?}"
    );
}

/// The files of one module's folder that use one another in a circle: for
/// each file, the sibling files its `super::` and `crate::<module>::` paths
/// name (a name the folder's `mod.rs` re-exports counts as the file it comes
/// from), then every strongly connected group of more than one file.
fn folder_circles(src: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut folders: Vec<PathBuf> = std::fs::read_dir(src)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("mod.rs").is_file())
        .collect();
    folders.sort();
    for folder in folders {
        let top = folder.file_name().unwrap().to_string_lossy().into_owned();
        let mut files = Vec::new();
        for e in std::fs::read_dir(&folder).unwrap().flatten() {
            let p = e.path();
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            if name == "mod" {
                continue;
            }
            let file = if p.is_dir() { p.join("mod.rs") } else { p };
            if file.extension().is_some_and(|x| x == "rs") && file.is_file() {
                files.push((name, file));
            }
        }
        files.sort();
        let names: std::collections::BTreeSet<String> =
            files.iter().map(|(n, _)| n.clone()).collect();
        let rx = reexports(&std::fs::read_to_string(folder.join("mod.rs")).unwrap());
        let mut edges: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for (name, file) in &files {
            let text = std::fs::read_to_string(file).unwrap();
            // Unit tests may use anything of their folder.
            let text = text.split("#[cfg(test)]").next().unwrap_or("");
            let own = format!("crate::{top}::");
            for prefix in ["super::", own.as_str()] {
                for seg in path_segments(text, prefix) {
                    let target = if names.contains(&seg) {
                        Some(seg)
                    } else {
                        rx.get(&seg).filter(|m| names.contains(*m)).cloned()
                    };
                    if let Some(t) = target.filter(|t| t != name) {
                        edges.entry(name.clone()).or_default().insert(t);
                    }
                }
            }
        }
        for group in strongly_connected(&names, &edges) {
            out.push(format!(
                "{top}/{{{}}} use one another in a circle",
                group.join(",")
            ));
        }
    }
    out
}

/// The first segment after `prefix` of every path in `text` (groups `{a, b::X}` give each).
fn path_segments(text: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find(prefix) {
            let before = &rest[..i];
            let after = &rest[i + prefix.len()..];
            rest = after;
            if prefix == "super::" && before.ends_with("super::") {
                continue;
            }
            if let Some(group) = after.strip_prefix('{') {
                let group = group.split('}').next().unwrap_or("");
                for item in group.split(',') {
                    let seg = item.trim().split("::").next().unwrap_or("").trim();
                    if !seg.is_empty() {
                        out.push(seg.to_owned());
                    }
                }
            } else {
                let seg: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !seg.is_empty() {
                    out.push(seg);
                }
            }
        }
    }
    out
}

/// Tarjan's strongly connected components of more than one node, each sorted.
fn strongly_connected(
    nodes: &std::collections::BTreeSet<String>,
    edges: &BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, std::collections::BTreeSet<String>>,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        on: std::collections::BTreeSet<String>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit(s: &mut State<'_>, v: &str) {
        s.index.insert(v.to_owned(), s.next);
        s.low.insert(v.to_owned(), s.next);
        s.next += 1;
        s.stack.push(v.to_owned());
        s.on.insert(v.to_owned());
        let targets: Vec<String> = s.edges.get(v).into_iter().flatten().cloned().collect();
        for w in targets {
            if !s.index.contains_key(&w) {
                visit(s, &w);
                let l = s.low[&w].min(s.low[v]);
                s.low.insert(v.to_owned(), l);
            } else if s.on.contains(&w) {
                let l = s.index[&w].min(s.low[v]);
                s.low.insert(v.to_owned(), l);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(&w);
                let done = w == v;
                group.push(w);
                if done {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.out.push(group);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: std::collections::BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for n in nodes {
        if !s.index.contains_key(n) {
            visit(&mut s, n);
        }
    }
    s.out
}

#[test]
fn no_folder_has_files_that_use_one_another_in_a_circle() {
    let bad = folder_circles(&runtime_src());
    assert!(bad.is_empty(), "circles:\n{}", bad.join("\n"));
}

#[test]
fn the_check_catches_a_circle_and_an_upward_use_through_a_root_reexport() {
    // Control: a folder whose files use each other (one through the
    // folder's re-export), and the probe contract reaching up to the
    // coordinator through a name the crate root re-exports.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(
        src.join("lib.rs"),
        "mod probe;\nmod coordinator;\nmod runtime_trace;\npub use coordinator::{Coordinator, GatherOptions};\n",
    )
    .unwrap();
    std::fs::write(src.join("probe.rs"), "fn t(c: &crate::Coordinator) {}\n").unwrap();
    std::fs::write(src.join("coordinator.rs"), "pub struct Coordinator;\n").unwrap();
    let rt = src.join("runtime_trace");
    std::fs::create_dir(&rt).unwrap();
    std::fs::write(rt.join("mod.rs"), "mod a;\nmod b;\nmod c;\npub use b::B;\n").unwrap();
    std::fs::write(rt.join("a.rs"), "use super::B;\n").unwrap();
    std::fs::write(rt.join("b.rs"), "pub struct B;\nuse super::{c::C};\n").unwrap();
    std::fs::write(
        rt.join("c.rs"),
        "pub struct C;\nfn f() -> crate::runtime_trace::a::A { todo!() }\n",
    )
    .unwrap();
    let up = violations(src);
    assert_eq!(up.len(), 1, "{up:?}");
    assert!(
        up[0].contains("`probe` (layer 2) uses `coordinator` (layer 5)"),
        "{up:?}"
    );
    let circles = folder_circles(src);
    assert_eq!(
        circles,
        ["runtime_trace/{a,b,c} use one another in a circle"]
    );
    // Without the edge back, no circle.
    std::fs::write(rt.join("c.rs"), "pub struct C;\n").unwrap();
    assert!(folder_circles(src).is_empty());
}
