//! The evidence is enough to build a working minimal image, on real
//! services and the real engine: a Node.js/Express service and a Python
//! service on a Debian bookworm root filesystem are traced with the default
//! scenarios; an image holding only the paths the evidence names (as opened,
//! resolved, probed; each symlink on the way; folders for written files; the
//! original config) is built FROM scratch and runs the same scenarios, with
//! the same hardening, to completion.
//!
//! Units (DESIGN §8): each real service of `services/` (Node.js + sqlite3,
//! gunicorn + Flask, the JVM, Ruby + Sinatra, cgo-linked Go) minimized with
//! units answers its lazy route `GET /report` from inside the minimal image
//! with the runtime's own client (app files nothing opened yet, the
//! runtime's standard library and configuration, zone data); the same
//! evidence cut at file granularity, the control, does not.

mod trace_support;

use codegenie::runtime_trace::{RuntimeTraceSlice, TraceSettings};
use codegenie::ProbeContext;
use codegenie_runtime::engine::{Engine, EngineKind, KEEP_IMAGES};
use codegenie_runtime::minimal::units::Granularity;
use codegenie_runtime::minimal::verify::compare;
use codegenie_runtime::minimal::{build_minimal_image, EvidencePaths, MinimalImage};
use trace_support::services::{client_of, image_holds, Client, Served};
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
        Default::default(),
    )
    .expect("the minimal image builds")
    .image;

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
    let _engine = engine_share();
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
    let _engine = engine_share();
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
    let _engine = engine_share();
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

/// The original image of a service, traced with the default scenarios, and
/// the same evidence cut with units and with files.
struct Cuts {
    repo: tempfile::TempDir,
    slice: RuntimeTraceSlice,
    original: String,
    units: MinimalImage,
    files: MinimalImage,
    client: Client,
}

/// Trace `service` (a folder of `tests/fixtures/services/`) and cut its
/// image at both granularities; the original must pass its scenarios.
fn trace_and_cut(service: &str, name: &str) -> Cuts {
    let dir = format!("tests/fixtures/services/{service}");
    let repo = fixture_repo(&dir);
    let id = run_id(name);
    let rec = run_probe(repo.path(), context(&id, &[]), false);
    let slice = slice_of(
        &rec.output
            .as_ref()
            .expect("the original trace ran")
            .schema_slice,
    );
    assert_eq!(
        slice.scenarios_failed,
        Vec::<String>::new(),
        "{:#?}",
        slice.scenarios
    );
    assert!(labelled_containers(&id).is_empty());
    let original = slice
        .built_image_digest
        .clone()
        .expect("the image was built");
    let evidence = EvidencePaths::of(&slice);
    let engine = Engine::new(EngineKind::Docker);
    let scratch = tempfile::tempdir().unwrap();
    let cut = |g| {
        build_minimal_image(
            &engine,
            &original,
            &evidence,
            scratch.path(),
            KEEP_IMAGES,
            g,
            Default::default(),
        )
        .expect("the minimal image builds")
        .image
    };
    let units = cut(Granularity::Unit);
    let files = cut(Granularity::File);
    let client = client_of(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(&dir));
    Cuts {
        repo,
        slice,
        original,
        units,
        files,
        client,
    }
}

/// The same scenarios, traced on `image` (as `minimize` verifies).
fn trace_on(repo: &std::path::Path, image: &str, name: &str) -> RuntimeTraceSlice {
    let id = run_id(name);
    let mut ctx: ProbeContext = context(&id, &[]);
    let mut settings = ctx.settings.get::<TraceSettings>().cloned().unwrap();
    settings.image = Some(image.to_owned());
    ctx.settings.insert(settings);
    let snapshot = codegenie::RepoSnapshot::open(repo).unwrap();
    let out = codegenie_runtime::runtime_trace::probe::run_blocking(&snapshot, &ctx)
        .expect("the image is traced");
    assert!(labelled_containers(&id).is_empty());
    slice_of(&out.schema_slice)
}

fn percent(part: u64, whole: u64) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

/// How long a service may take to answer `/healthz` after its start.
const READY: std::time::Duration = std::time::Duration::from_secs(90);

/// The units case of one real service: the original answers `/`,
/// `/healthz` and `/report` (whose body holds `report_body`) from inside;
/// the unit cut verifies (the default scenarios complete on it, nothing
/// missing) and answers `/report` with the runtime's own client; the file
/// cut of the same evidence, the control, does not; the unit image is at
/// most 80% of the original; the coverage names `never_read`, the app file
/// only `/report` reads; `lazy`, files `/report` needs that no scenario
/// reached, are in the unit image and not in the file image.
fn units_answer_the_lazy_route(
    service: &str,
    report_body: &str,
    never_read: Option<&str>,
    lazy: &[&str],
) {
    let started = std::time::Instant::now();
    let _engine = engine_share();
    let c = trace_and_cut(service, &format!("units-{service}"));
    let on_units = trace_on(
        c.repo.path(),
        &c.units.image_id,
        &format!("units-{service}-min"),
    );
    let verification = compare(&c.slice, &on_units);

    let original = Served::start(&c.original, &format!("{service}-orig"));
    for path in ["/", "/healthz", "/report"] {
        let answer = original.get_when_ready(&c.client, path, READY);
        assert!(
            matches!(&answer, Ok((200, _))),
            "the original answers {path}: {answer:?}"
        );
        if path == "/report" {
            assert!(
                matches!(&answer, Ok((_, body)) if body.contains(report_body)),
                "{answer:?}"
            );
        }
    }
    drop(original);
    let units = Served::start(&c.units.image_id, &format!("{service}-unit"));
    let unit_start = std::time::Instant::now();
    let on_unit_image = units.get_when_ready(&c.client, "/report", READY);
    let unit_ready = unit_start.elapsed();
    drop(units);
    // The control: the paths the scenarios reached are not enough. It gets
    // three times what the unit image took (15 s at least), not the full
    // wait a cut that never answers would spend.
    let files = Served::start(&c.files.image_id, &format!("{service}-file"));
    let wait = (unit_ready * 3).clamp(std::time::Duration::from_secs(15), READY);
    let on_file_image = files.get_when_ready(&c.client, "/report", wait);
    drop(files);
    let row = format!(
        "ROW | {service} | original {} B | units {} B ({:.0}%) | files {} B ({:.0}%) | verified {} | coverage {} of {} app files read, never read {:?} | /report: units {}, files {} | {:.0} s",
        c.units.original_size_bytes,
        c.units.size_bytes,
        percent(c.units.size_bytes, c.units.original_size_bytes),
        c.files.size_bytes,
        percent(c.files.size_bytes, c.files.original_size_bytes),
        verification.verified,
        c.units.coverage.app_files_read,
        c.units.coverage.app_files,
        c.units.coverage.never_read,
        status_of(&on_unit_image),
        status_of(&on_file_image),
        started.elapsed().as_secs_f64(),
    );
    eprintln!("{row}");

    assert!(
        verification.verified && verification.missing.is_empty(),
        "the unit image is verified: {verification:#?}"
    );
    assert_eq!(on_units.scenarios_run, c.slice.scenarios_run);
    assert!(
        matches!(&on_unit_image, Ok((200, body)) if body.contains(report_body)),
        "the units cut answers /report: {on_unit_image:?}\n{:#?}",
        c.units
            .added
            .packages
            .iter()
            .map(|p| p.comment())
            .collect::<Vec<_>>()
    );
    assert!(
        !matches!(&on_file_image, Ok((200, _))),
        "the file cut should fail /report: {on_file_image:?}"
    );
    assert!(
        c.units.size_bytes * 10 <= c.units.original_size_bytes * 8,
        "at most 80%: {row}"
    );
    assert!(c.files.size_bytes < c.units.size_bytes, "{row}");
    assert_eq!(c.units.fallbacks, Vec::new());
    assert!(!c.units.added.packages.is_empty() && !c.units.added.trees.is_empty());
    if let Some(file) = never_read {
        assert!(
            c.units.coverage.never_read.iter().any(|p| p == file),
            "{file} is never read by the scenarios: {:?}",
            c.units.coverage
        );
    }
    for path in lazy {
        assert!(image_holds(&c.units.image_id, path), "units keep {path}");
        assert!(
            !image_holds(&c.files.image_id, path),
            "no scenario reached {path}: the file cut lacks it"
        );
    }
    assert!(c.files.added.packages.is_empty() && c.files.added.trees.is_empty());
}

fn status_of(answer: &Result<(u16, String), String>) -> String {
    match answer {
        Ok((status, _)) => status.to_string(),
        Err(e) => format!("no answer ({})", e.lines().next().unwrap_or_default()),
    }
}

#[test]
fn python_gunicorn_minimized_with_units_answers_its_lazy_route_and_the_file_cut_does_not() {
    units_answer_the_lazy_route(
        "python-gunicorn",
        "xn--bcher-kva.example",
        Some("/app/reports.py"),
        &["/app/reports.py", "/usr/lib/python3.11/encodings/idna.py"],
    );
}

#[test]
fn jvm_minimized_with_units_answers_its_lazy_route_and_the_file_cut_does_not() {
    units_answer_the_lazy_route(
        "jvm",
        r#""zone":"Europe/Berlin","offset_at_epoch":"+01:00""#,
        Some("/app/classes/Report.class"),
        &[
            "/app/classes/Report.class",
            "/etc/java-17-openjdk/security/java.security",
        ],
    );
}

#[test]
fn ruby_sinatra_minimized_with_units_answers_its_lazy_route_and_the_file_cut_does_not() {
    units_answer_the_lazy_route(
        "ruby-sinatra",
        r#"{"north":7,"south":5}"#,
        Some("/app/lib/report.rb"),
        &["/app/lib/report.rb", "/usr/lib/ruby/3.1.0/csv.rb"],
    );
}

#[test]
fn go_cgo_minimized_with_units_answers_its_lazy_route_and_the_file_cut_does_not() {
    // The binary is the app's only file, and startup runs it: nothing of
    // the app is left unread.
    units_answer_the_lazy_route(
        "go-cgo",
        r#""offset_at_epoch_s":3600"#,
        None,
        &["/usr/share/zoneinfo/Europe/Berlin"],
    );
}

#[test]
fn node_sqlite3_minimized_with_units_answers_its_lazy_route_and_the_file_cut_does_not() {
    const SERVICE: &str = "node-sqlite3";
    let _engine = engine_share();
    let Cuts {
        original,
        units,
        files,
        client,
        ..
    } = trace_and_cut(SERVICE, "units-node");
    eprintln!(
        "ROW | node-sqlite3 | original {} B | units {} B ({:.0}%) | files {} B ({:.0}%) | coverage {:?}",
        units.original_size_bytes,
        units.size_bytes,
        percent(units.size_bytes, units.original_size_bytes),
        files.size_bytes,
        percent(files.size_bytes, files.original_size_bytes),
        units.coverage,
    );

    let report = |image: &str, name: &str| {
        Served::start(image, &format!("node-{name}")).get_when_ready(&client, "/report", READY)
    };
    let on_original = report(&original, "orig");
    assert!(
        matches!(&on_original, Ok((200, body)) if body.contains("\"report\"")),
        "the original answers /report: {on_original:?}"
    );
    let on_units = report(&units.image_id, "unit");
    assert!(
        matches!(&on_units, Ok((200, body)) if body.contains("\"report\"")),
        "the units cut answers /report: {on_units:?}\n{:#?}",
        units
            .added
            .packages
            .iter()
            .map(|p| p.comment())
            .collect::<Vec<_>>()
    );
    // The control: the paths the scenarios reached are not enough.
    let on_files = report(&files.image_id, "file");
    assert!(
        !matches!(&on_files, Ok((200, _))),
        "the file cut should fail /report: {on_files:?}"
    );

    // What the units say for themselves.
    assert!(
        units.size_bytes * 10 <= units.original_size_bytes * 8,
        "at most 80%"
    );
    assert!(files.size_bytes < units.size_bytes);
    assert_eq!(units.fallbacks, Vec::new());
    let package = |name: &str| units.added.packages.iter().find(|p| p.name == name);
    let sqlite = package("node-sqlite3").expect("declared by /app/package.json");
    assert_eq!(sqlite.reason.path, "/app/package.json");
    assert!(
        package("libsqlite3-0").is_some(),
        "node-sqlite3 depends on it"
    );
    let node = package("nodejs").expect("the runtime's package");
    assert!(
        node.comment().contains("/usr/bin/node executed in startup"),
        "{}",
        node.comment()
    );
    assert!(units.added.trees.iter().any(|t| t.path == "/app"));
    assert!(units
        .coverage
        .never_read
        .contains(&"/app/lib/report.js".to_owned()));
    assert!(files.added.packages.is_empty() && files.added.trees.is_empty());
}
