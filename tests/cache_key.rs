//! Cache keys over real files: what changes a key and what never does.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use codegenie::prelude::*;
use codegenie::{CacheKeyError, ImageDigestResolver, ResolverError};
use codegenie_runtime::cache::{compose_key, manifest_for};
use codegenie_runtime::inputs::{
    resolve_inputs, GlobMatches, MatchedFile, ResolvedInputs, ResolvedToken, TokenValue,
    UnresolvedReason,
};
use proptest::prelude::*;

/// A probe declaring two globs and the image-digest token; never registered.
#[derive(Default)]
struct Demo;

impl Probe for Demo {
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        declared_inputs!["src/**/*.rs", "Dockerfile", "image-digest:<resolved>"]
    }
    async fn run(&self, _: &RepoSnapshot, _: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
        Err(ProbeError::failed("never run"))
    }
}

/// Same inputs, another schema version.
#[derive(Default)]
struct DemoV2;

impl Probe for DemoV2 {
    fn version(&self) -> u32 {
        2
    }
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        Demo.declared_inputs()
    }
    async fn run(&self, _: &RepoSnapshot, _: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
        Err(ProbeError::failed("never run"))
    }
}

/// Declares a file under `.codegenie/` and everything under it.
#[derive(Default)]
struct Scenarios;

impl Probe for Scenarios {
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        declared_inputs![".codegenie/scenarios.yaml", ".codegenie/**"]
    }
    async fn run(&self, _: &RepoSnapshot, _: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
        Err(ProbeError::failed("never run"))
    }
}

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn demo_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(r, "src/main.rs", "fn main() {}\n");
    write(r, "src/lib/util.rs", "pub fn util() {}\n");
    write(r, "Dockerfile", "FROM scratch\n");
    write(r, "README.md", "hello\n");
    dir
}

fn key_with(root: &Path, probe: &dyn codegenie::DynProbe, ctx: Option<&ProbeContext>) -> String {
    let repo = RepoSnapshot::open(root).unwrap();
    manifest_for(&repo, "demo", probe, ctx).unwrap().key
}

fn key(root: &Path) -> String {
    key_with(root, &Demo, Some(&ProbeContext::default()))
}

fn ctx_with(resolver: impl ImageDigestResolver + 'static) -> ProbeContext {
    ProbeContext {
        image_digest_resolver: Some(Arc::new(resolver)),
        ..Default::default()
    }
}

#[test]
fn same_tree_twice_and_at_another_path_gives_the_same_key() {
    let a = demo_tree();
    let b = demo_tree();
    let k = key(a.path());
    assert_eq!(k, key(a.path()));
    assert_eq!(k, key(b.path()), "the machine path must not change the key");
    assert_eq!(k.len(), 64);
}

#[test]
fn undeclared_and_skipped_files_never_change_the_key() {
    let t = demo_tree();
    let base = key(t.path());
    write(t.path(), "README.md", "changed\n");
    write(t.path(), "notes/new.txt", "x");
    write(t.path(), "src/data.json", "{}"); // not *.rs
    write(t.path(), ".git/HEAD", "ref: refs/heads/main\n");
    write(t.path(), "src/.git/config", "x"); // nested .git
    write(t.path(), ".codegenie/context/demo.json", "{}");
    write(t.path(), ".codegenie/cache/ab/x.json", "{}");
    write(t.path(), "sub/.codegenie/stuff.rs", "x");
    assert_eq!(base, key(t.path()));
}

#[test]
fn editing_adding_renaming_or_deleting_a_declared_file_changes_the_key() {
    let t = demo_tree();
    let r = t.path();
    let mut keys = vec![key(r)];
    write(r, "src/main.rs", "fn main() { println!(); }\n");
    keys.push(key(r));
    write(r, "src/extra.rs", "// new\n");
    keys.push(key(r));
    std::fs::rename(r.join("src/extra.rs"), r.join("src/renamed.rs")).unwrap();
    keys.push(key(r));
    std::fs::remove_file(r.join("Dockerfile")).unwrap();
    keys.push(key(r));
    let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "{keys:#?}");
}

#[test]
fn a_gitignored_declared_file_still_counts() {
    let t = demo_tree();
    write(t.path(), ".gitignore", "*.rs\nDockerfile\n");
    let base = key(t.path());
    write(t.path(), "src/main.rs", "fn main() { loop {} }\n");
    assert_ne!(base, key(t.path()));
}

#[test]
fn the_version_is_part_of_the_key() {
    let t = demo_tree();
    let ctx = ProbeContext::default();
    assert_ne!(
        key_with(t.path(), &Demo, Some(&ctx)),
        key_with(t.path(), &DemoV2, Some(&ctx))
    );
}

#[test]
fn different_digests_give_different_keys_and_the_same_digest_the_same_key() {
    let t = demo_tree();
    let resolver = |d: &'static str| {
        ctx_with(
            move |_: &RepoSnapshot| -> Result<Option<String>, ResolverError> {
                Ok(Some(d.to_owned()))
            },
        )
    };
    let a = key_with(t.path(), &Demo, Some(&resolver("sha256:aaaa")));
    let b = key_with(t.path(), &Demo, Some(&resolver("sha256:bbbb")));
    let a2 = key_with(t.path(), &Demo, Some(&resolver("sha256:aaaa")));
    assert_ne!(a, b);
    assert_eq!(a, a2);
}

#[test]
fn all_four_unresolved_paths_give_one_key() {
    let t = demo_tree();
    let no_context = key_with(t.path(), &Demo, None);
    let unbound = key_with(t.path(), &Demo, Some(&ProbeContext::default()));
    let none = key_with(
        t.path(),
        &Demo,
        Some(&ctx_with(
            |_: &RepoSnapshot| -> Result<Option<String>, ResolverError> { Ok(None) },
        )),
    );
    let failing = key_with(
        t.path(),
        &Demo,
        Some(&ctx_with(
            |_: &RepoSnapshot| -> Result<Option<String>, ResolverError> {
                Err("docker: engine unavailable".into())
            },
        )),
    );
    assert_eq!(no_context, unbound);
    assert_eq!(no_context, none);
    assert_eq!(no_context, failing);
    let resolved = key_with(
        t.path(),
        &Demo,
        Some(&ctx_with(
            |_: &RepoSnapshot| -> Result<Option<String>, ResolverError> { Ok(Some(String::new())) },
        )),
    );
    assert_ne!(
        no_context, resolved,
        "an empty digest is a value, not the sentinel"
    );
}

#[test]
fn each_unresolved_path_keeps_its_reason() {
    let t = demo_tree();
    let repo = RepoSnapshot::open(t.path()).unwrap();
    let failing = ctx_with(
        |_: &RepoSnapshot| -> Result<Option<String>, ResolverError> {
            Err("engine unavailable".into())
        },
    );
    let reason = |ctx: Option<&ProbeContext>| {
        let r = resolve_inputs(&repo, Demo.declared_inputs(), ctx).unwrap();
        r.tokens[0].value.clone()
    };
    assert_eq!(
        reason(None),
        TokenValue::Unresolved(UnresolvedReason::NoContext)
    );
    assert_eq!(
        reason(Some(&ProbeContext::default())),
        TokenValue::Unresolved(UnresolvedReason::ResolverUnbound)
    );
    assert_eq!(
        reason(Some(&failing)),
        TokenValue::Unresolved(UnresolvedReason::ResolverFailed(
            "engine unavailable".to_owned()
        ))
    );
}

#[test]
fn declared_codegenie_files_count_but_cache_and_context_never_do() {
    let t = demo_tree();
    let r = t.path();
    write(r, ".codegenie/scenarios.yaml", "version: 1\n");
    let base = key_with(r, &Scenarios, None);
    write(r, ".codegenie/cache/00/entry.json", "{}");
    write(r, ".codegenie/context/demo.json", "{}");
    write(r, "src/main.rs", "// undeclared for this probe\n");
    assert_eq!(base, key_with(r, &Scenarios, None));
    write(
        r,
        ".codegenie/scenarios.yaml",
        "version: 1\nscenarios: []\n",
    );
    assert_ne!(base, key_with(r, &Scenarios, None));
    let repo = RepoSnapshot::open(r).unwrap();
    let m = manifest_for(&repo, "scenarios", &Scenarios, None).unwrap();
    let all: Vec<&str> = m.inputs.globs[0]
        .files
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(all, vec![".codegenie/scenarios.yaml"]);
}

#[test]
fn a_glob_naming_an_absent_codegenie_folder_matches_nothing() {
    let t = demo_tree();
    let repo = RepoSnapshot::open(t.path()).unwrap();
    let m = manifest_for(&repo, "scenarios", &Scenarios, None).unwrap();
    assert!(m.inputs.globs.iter().all(|g| g.files.is_empty()));
}

#[test]
fn literal_globs_match_exactly_what_the_walk_would() {
    let t = demo_tree();
    let r = t.path();
    write(r, ".git/config", "x");
    write(r, "sub/.codegenie/x.txt", "x");
    write(r, ".codegenie/cache/00/e.json", "x");
    write(r, ".codegenie/scenarios.yaml", "x");
    write(r, "real/file.txt", "x");
    std::os::unix::fs::symlink(r.join("real"), r.join("linked")).unwrap();
    let files = |globs: &[&str]| -> Vec<Vec<(String, String)>> {
        let globs: Vec<String> = globs.iter().map(|g| g.to_string()).collect();
        codegenie_runtime::inputs::walk::match_and_hash(r, &globs)
            .unwrap()
            .into_iter()
            .map(|g| g.files.into_iter().map(|f| (f.path, f.blake3)).collect())
            .collect()
    };
    // Each pair: a literal (looked up directly) and a one-wildcard twin (walked).
    for (literal, walked) in [
        ("src/main.rs", "src/main.r[s]"),
        ("src/lib/util.rs", "src/*/util.rs"),
        (".git/config", ".gi[t]/config"),
        ("sub/.codegenie/x.txt", "sub/*/x.txt"),
        (".codegenie/cache/00/e.json", ".codegenie/*/00/e.json"),
        (".codegenie/scenarios.yaml", ".codegenie/scenarios.yam[l]"),
        ("linked/file.txt", "linke[d]/file.txt"),
        ("real/file.txt", "rea[l]/file.txt"),
        ("missing/file.txt", "missin[g]/file.txt"),
    ] {
        let (a, b) = (files(&[literal]), files(&[walked]));
        assert_eq!(a, b, "{literal} vs {walked}");
        let expect_match = matches!(
            literal,
            "src/main.rs" | "src/lib/util.rs" | ".codegenie/scenarios.yaml" | "real/file.txt"
        );
        assert_eq!(!a[0].is_empty(), expect_match, "{literal}: {a:?}");
    }
}

#[test]
fn symlinks_are_hashed_by_target_not_followed() {
    let t = demo_tree();
    let r = t.path();
    std::os::unix::fs::symlink("/etc/hostname", r.join("src/link.rs")).unwrap();
    let base = key(r);
    std::fs::remove_file(r.join("src/link.rs")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", r.join("src/link.rs")).unwrap();
    assert_ne!(base, key(r));
}

#[test]
fn a_symlinked_input_edited_through_its_target_changes_the_key() {
    let t = demo_tree();
    let r = t.path();
    std::fs::write(r.join("target.txt"), "one").unwrap();
    std::os::unix::fs::symlink("../target.txt", r.join("src/link.rs")).unwrap();
    let base = key(r);
    // The control: nothing changed, same key.
    assert_eq!(base, key(r));
    std::fs::write(r.join("target.txt"), "two").unwrap();
    assert_ne!(
        base,
        key(r),
        "the link text is the same; its target's content is not"
    );
    // A dangling link still has a key, different from a live one.
    std::fs::remove_file(r.join("target.txt")).unwrap();
    let dangling = key(r);
    assert_ne!(dangling, base);
}

#[test]
fn malformed_or_unknown_tokens_built_at_run_time_are_errors() {
    let t = demo_tree();
    let repo = RepoSnapshot::open(t.path()).unwrap();
    for bad in [
        "image-digst:<resolved>",
        "image-digest:<resolve>",
        "/etc/passwd",
        "src/[a-",
    ] {
        let inputs = [DeclaredInput::Glob(Cow::Owned(bad.to_owned()))];
        let err = resolve_inputs(&repo, &inputs, None).unwrap_err();
        assert!(
            matches!(err, CacheKeyError::InvalidInput(_)),
            "{bad}: {err}"
        );
    }
    // A well-formed token in the glob variant is still the token.
    let inputs = [DeclaredInput::Glob(Cow::Borrowed(
        "image-digest:<resolved>",
    ))];
    let r = resolve_inputs(&repo, &inputs, None).unwrap();
    assert!(r.globs.is_empty());
    assert_eq!(r.tokens[0].token, "image-digest:<resolved>");
}

fn material(files: Vec<(String, String)>, globs: Vec<&str>) -> ResolvedInputs {
    ResolvedInputs {
        globs: globs
            .into_iter()
            .map(|g| GlobMatches {
                glob: g.to_owned(),
                files: files
                    .iter()
                    .map(|(p, h)| MatchedFile {
                        path: p.clone(),
                        blake3: h.clone(),
                    })
                    .collect(),
            })
            .collect(),
        tokens: vec![ResolvedToken {
            token: "image-digest:<resolved>".into(),
            value: TokenValue::Resolved("sha256:1".into()),
        }],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever order a walk yields files (and globs) in, the key is the same.
    #[test]
    fn walk_order_never_changes_the_key(
        (files, shuffled) in proptest::collection::btree_map("[a-z/]{1,12}", "[0-9a-f]{64}", 0..40)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>())
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        globs in Just(vec!["**/*", "src/*.rs", "Dockerfile"]).prop_shuffle(),
    ) {
        let sorted = material(files, vec!["**/*", "src/*.rs", "Dockerfile"]);
        let walked = material(shuffled, globs);
        prop_assert_eq!(compose_key("p", 1, &sorted), compose_key("p", 1, &walked));
    }
}

#[test]
fn walk_on_disk_is_deterministic_across_many_files() {
    // Many files over several folders: the parallel walker visits them in a
    // varying order; the key must not vary.
    let t = tempfile::tempdir().unwrap();
    for i in 0..400 {
        write(
            t.path(),
            &format!("src/d{}/f{i}.rs", i % 13),
            &format!("// {i}\n"),
        );
    }
    let first = key(t.path());
    for _ in 0..5 {
        assert_eq!(first, key(t.path()));
    }
}
