//! The evidence is enough to build a working minimal image, on real
//! services and the real engine: a Node.js/Express service and a Python
//! service on a Debian bookworm root filesystem are traced with the default
//! scenarios; an image holding only the paths the evidence names (as opened,
//! resolved, probed; each symlink on the way; folders for written files; the
//! original config) is built FROM scratch and runs the same scenarios, with
//! the same hardening, to completion.
//!
//! Units (DESIGN §8): the Node.js + sqlite3 service of `services/` minimized
//! with units answers its lazy route `GET /report` from inside the minimal
//! image (a module nothing required yet, the native addon and libsqlite3,
//! a database under `/tmp`); the same evidence cut at file granularity,
//! the control, does not.

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

/// `client.json` of a service: the runtime's own HTTP client (the URL is
/// appended; it prints the status, then the body) and the app's port.
struct Client {
    port: u16,
    argv: Vec<String>,
}

fn client_of(service: &std::path::Path) -> Client {
    let path = service.join("client.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    Client {
        port: v["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap(),
        argv: v["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect(),
    }
}

// The test drives the engine directly; the product starts processes only
// through its exec layer.
#[allow(clippy::disallowed_methods)]
fn docker(args: &[&str]) -> std::process::Output {
    std::process::Command::new("docker")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("docker runs")
}

/// A container of `image` with no network, removed on drop.
struct Served(String);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.0]);
    }
}

impl Served {
    fn start(image: &str, name: &str) -> Served {
        let name = format!("codegenie-test-units-{name}-{}", std::process::id());
        let _ = docker(&["rm", "-f", &name]);
        let out = docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network=none",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            image,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Served(name)
    }

    /// GET `path` from inside with the image's own client: (status, body).
    fn get(&self, client: &Client, path: &str) -> Result<(u16, String), String> {
        let url = format!("http://127.0.0.1:{}{path}", client.port);
        let mut args = vec!["exec", self.0.as_str()];
        args.extend(client.argv.iter().map(String::as_str));
        args.push(&url);
        let out = docker(&args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let (status, body) = stdout.split_once('\n').unwrap_or((&stdout, ""));
        match status.trim().parse() {
            Ok(status) if out.status.success() => Ok((status, body.to_owned())),
            _ => Err(format!(
                "{url}: {} {stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    }

    /// `GET /report` once `GET /healthz` answers (30 s at most).
    fn report(&self, client: &Client) -> Result<(u16, String), String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match self.get(client, "/healthz") {
                Ok((200, _)) => break,
                other if std::time::Instant::now() > deadline => {
                    return Err(format!("never ready: {other:?}"))
                }
                _ => std::thread::sleep(std::time::Duration::from_millis(300)),
            }
        }
        self.get(client, "/report")
    }
}

#[test]
fn node_sqlite3_minimized_with_units_answers_its_lazy_route_and_the_file_cut_does_not() {
    const SERVICE: &str = "tests/fixtures/services/node-sqlite3";
    let _engine = engine_lock();
    let repo = fixture_repo(SERVICE);
    let id = run_id("units-node");
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
        )
        .expect("the minimal image builds")
    };
    let units = cut(Granularity::Unit);
    let files = cut(Granularity::File);
    eprintln!(
        "ROW | node-sqlite3 | original {} B | units {} B ({:.0}%) | files {} B ({:.0}%) | coverage {:?}",
        units.original_size_bytes,
        units.size_bytes,
        100.0 * units.size_bytes as f64 / units.original_size_bytes as f64,
        files.size_bytes,
        100.0 * files.size_bytes as f64 / files.original_size_bytes as f64,
        units.coverage,
    );

    let client = client_of(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SERVICE));
    let on_original = Served::start(&original, "orig").report(&client);
    assert!(
        matches!(&on_original, Ok((200, body)) if body.contains("\"report\"")),
        "the original answers /report: {on_original:?}"
    );
    let on_units = Served::start(&units.image_id, "unit").report(&client);
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
    let on_files = Served::start(&files.image_id, "file").report(&client);
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
    assert!(labelled_containers(&id).is_empty());
}
