//! The runtime's layers run one way (docs/architecture.md, "Layers"): every
//! `crate::<module>` path in a module of `codegenie-runtime` names a module of
//! a lower layer. A new module must be given a layer here.

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
    ("portfolio", 7),
    ("ci_report", 8),
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

fn violations(src: &Path) -> Vec<String> {
    let layers: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
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
            if used == module {
                continue;
            }
            match layers.get(used.as_str()) {
                Some(&l) if l < own => {}
                Some(&l) => bad.push(format!(
                    "{}:{line}: `{module}` (layer {own}) uses `{used}` (layer {l})",
                    file.display()
                )),
                // Re-exports at the crate root (`crate::DeclaredInput`) belong
                // to the lowest layers; a name with no layer is not a module.
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
