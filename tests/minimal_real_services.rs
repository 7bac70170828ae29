//! The evidence is enough to build a working minimal image, on real
//! services and the real engine: a Node.js/Express service and a Python
//! service on a Debian bookworm root filesystem are traced with the default
//! scenarios; an image holding only the paths the evidence names (as opened,
//! resolved, probed; each symlink on the way; folders for written files; the
//! original config) is built FROM scratch and runs the same scenarios, with
//! the same hardening, to completion.

mod trace_support;

use codegenie::runtime_trace::{RuntimeTraceSlice, TraceSettings};
use codegenie::ProbeContext;
use codegenie_runtime::engine::{Engine, EngineKind, KEEP_IMAGES};
use codegenie_runtime::minimal::units::Granularity;
use codegenie_runtime::minimal::{build_minimal_image, EvidencePaths, MinimalImage};
use trace_support::*;

/// The Debian base these fixtures build on, made by `tests/fixtures/debian/build-base.sh`.
const BASE: &str = "codegenie-fixture-debian:bookworm";

fn base_image_present() -> bool {
    prepared();
    Engine::new(EngineKind::Docker)
        .image_id(BASE)
        .ok()
        .flatten()
        .is_some()
}

struct Traced {
    slice: RuntimeTraceSlice,
    minimal: MinimalImage,
    on_minimal: RuntimeTraceSlice,
}

fn slice_of(v: &serde_json::Value) -> RuntimeTraceSlice {
    serde_json::from_value(v.clone()).expect("a runtime_trace slice")
}

/// Trace `fixture`, build its minimal image from the evidence as `cut`
/// leaves it, trace that with the same scenarios.
fn trace_minimize_retrace(
    fixture: &str,
    name: &str,
    cut: impl Fn(&RuntimeTraceSlice, EvidencePaths) -> EvidencePaths,
) -> Traced {
    let repo = fixture_repo(fixture);
    let id = run_id(name);
    let rec = run_probe(repo.path(), context(&id, &[]), false);
    let out = rec.output.as_ref().expect("the original trace ran");
    let slice = slice_of(&out.schema_slice);
    let original = slice
        .built_image_digest
        .clone()
        .expect("the original image was built");

    let evidence = cut(&slice, EvidencePaths::of(&slice));
    let scratch = tempfile::tempdir().unwrap();
    let minimal = build_minimal_image(
        &Engine::new(EngineKind::Docker),
        &original,
        &evidence,
        scratch.path(),
        KEEP_IMAGES,
        Granularity::File,
    )
    .expect("the minimal image builds");

    let min_id = run_id(&format!("{name}-min"));
    let mut ctx: ProbeContext = context(&min_id, &[]);
    let mut settings = ctx.settings.get::<TraceSettings>().cloned().unwrap();
    settings.image = Some(minimal.image_id.clone());
    ctx.settings.insert(settings);
    let snapshot = codegenie::RepoSnapshot::open(repo.path()).unwrap();
    let again = codegenie_runtime::runtime_trace::probe::run_blocking(&snapshot, &ctx)
        .expect("the minimal image is traced");
    assert!(labelled_containers(&id).is_empty() && labelled_containers(&min_id).is_empty());
    Traced {
        slice,
        minimal,
        on_minimal: slice_of(&again.schema_slice),
    }
}

/// The evidence as it was before paths were reported as opened: only the
/// resolved target of every pair.
fn resolved_targets_only(slice: &RuntimeTraceSlice, mut e: EvidencePaths) -> EvidencePaths {
    for (opened, resolved) in &slice.resolved {
        e.named.remove(opened);
        e.named.insert(resolved.clone());
    }
    e
}

fn report(name: &str, t: &Traced) {
    let opened: std::collections::BTreeSet<&String> = t
        .slice
        .scenarios
        .iter()
        .filter_map(|s| s.trace.as_ref())
        .flat_map(|tr| {
            tr.files_read
                .iter()
                .chain(&tr.binaries_executed)
                .chain(&tr.shared_libs_loaded)
        })
        .collect();
    let resolved: usize = t
        .slice
        .scenarios
        .iter()
        .filter_map(|s| s.trace.as_ref())
        .flat_map(|tr| tr.resolved.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    eprintln!(
        "ROW | {name} | paths as opened {} | resolved pairs {resolved} | minimal {} B of {} B ({:.0}%) | entries {} | {}",
        opened.len(),
        t.minimal.size_bytes,
        t.minimal.original_size_bytes,
        100.0 * t.minimal.size_bytes as f64 / t.minimal.original_size_bytes.max(1) as f64,
        t.minimal.entries,
        t.minimal.tag,
    );
}

/// Every scenario that completed on the original completes on the minimal image.
fn assert_same_outcomes(t: &Traced) {
    assert_eq!(
        t.slice.scenarios_failed,
        Vec::<String>::new(),
        "the original must pass first: {:#?}",
        t.slice.scenarios
    );
    assert_eq!(
        t.on_minimal.scenarios_run, t.slice.scenarios_run,
        "on the minimal image: {:#?}",
        t.on_minimal.scenarios
    );
    assert!(
        t.minimal.size_bytes * 2 < t.minimal.original_size_bytes,
        "{} of {}",
        t.minimal.size_bytes,
        t.minimal.original_size_bytes
    );
}

#[test]
fn node_express_service_runs_from_only_what_the_evidence_names() {
    if !base_image_present() {
        panic!("{BASE} is missing after tests/fixtures/prepare.sh built the fixtures");
    }
    let _engine = engine_lock();
    let t = trace_minimize_retrace("tests/fixtures/node-express-service", "node", |_, e| e);
    report("node-express", &t);
    assert_same_outcomes(&t);
    // The names the loader and the app used, not only their targets.
    let named = EvidencePaths::of(&t.slice).named;
    assert!(
        named.iter().any(|p| p.ends_with("/libz.so.1")),
        "the soname link is evidence: {named:#?}"
    );
    assert!(
        t.slice.shell_invocations >= 1,
        "the app spawns /bin/sh -c once"
    );
}

#[test]
fn python_service_runs_from_only_what_the_evidence_names() {
    if !base_image_present() {
        panic!("{BASE} is missing after tests/fixtures/prepare.sh built the fixtures");
    }
    let _engine = engine_lock();
    let t = trace_minimize_retrace("tests/fixtures/python-service", "python", |_, e| e);
    report("python", &t);
    assert_same_outcomes(&t);
    // Python decides by existence: its landmark is probed, not opened.
    let probed: Vec<&String> = t
        .slice
        .scenarios
        .iter()
        .filter_map(|s| s.trace.as_ref())
        .flat_map(|tr| tr.paths_probed.iter())
        .collect();
    assert!(
        probed.iter().any(|p| p.ends_with("/os.py")),
        "os.py is probed: {probed:#?}"
    );
}

#[test]
fn control_resolved_targets_alone_do_not_start_the_node_service() {
    if !base_image_present() {
        panic!("{BASE} is missing after tests/fixtures/prepare.sh built the fixtures");
    }
    let _engine = engine_lock();
    let t = trace_minimize_retrace(
        "tests/fixtures/node-express-service",
        "node-ctl",
        resolved_targets_only,
    );
    report("node-express, resolved targets only", &t);
    // The loader asks for `libz.so.1` by its soname link: without it node
    // cannot start, and no scenario completes.
    assert!(
        t.slice.scenarios_failed.is_empty(),
        "{:#?}",
        t.slice.scenarios
    );
    assert!(
        t.on_minimal.scenarios_run.is_empty(),
        "without the names as opened nothing should run: {:#?}",
        t.on_minimal.scenarios
    );
}
