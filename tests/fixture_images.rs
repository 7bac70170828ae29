//! The fixture images on the real engine (tests/fixtures/README.md). The
//! runtime bases and the distroless stand-ins are built through
//! `tests/fixtures/build-images.sh`, cached per machine (a warm run costs a
//! few seconds); each real service under `tests/fixtures/services/` builds
//! with no network and answers `/`, `/healthz` and `/report` from inside its
//! container (`--network=none`) through the runtime's own client, then exits
//! on SIGTERM; each stand-in has the shape of a distroless image and the
//! config distroless sets.
// Tests drive the engine and the build script directly; the product itself
// starts processes only through its exec layer.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod trace_support;

use trace_support::services::{client_of, docker, docker_ok, Served};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs `build-images.sh` once per test binary (the script itself takes a
/// machine-wide lock) and returns what it printed: alias to recipe tag.
fn images() -> &'static BTreeMap<String, String> {
    static BUILT: OnceLock<Result<BTreeMap<String, String>, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let script = fixtures().join("build-images.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("{}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed ({}); its stderr names the step",
                script.display(),
                out.status
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(a, t)| (a.to_string(), t.to_string()))
            .collect())
    });
    match built {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    }
}

/// `build-images.sh --tags` of the fixtures copy at `dir`: alias to recipe tag.
fn recipe_tags(dir: &Path) -> BTreeMap<String, String> {
    let out = Command::new("bash")
        .arg(dir.join("build-images.sh"))
        .arg("--tags")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, t)| (a.to_string(), t.to_string()))
        .collect()
}

/// The aliases whose recipe tag differs between `a` and `b`.
fn changed(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    a.iter()
        .filter(|(k, v)| b[*k] != **v)
        .map(|(k, _)| k.clone())
        .collect()
}

/// A copy of the script and the recipes, to change without touching the repository's.
fn recipes_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(fixtures().join("build-images.sh"))
        .arg(fixtures().join("images"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// The recipe tag of an image follows exactly the files its recipe reads:
/// the shared library, its folder and its parent's; not where the checkout is.
#[test]
fn recipe_tags_follow_the_recipe_files() {
    let here = recipe_tags(&fixtures());
    assert_eq!(here.len(), 16, "{here:#?}");
    let copy = recipes_copy();
    assert_eq!(
        recipe_tags(copy.path()),
        here,
        "another checkout shares the cache"
    );

    append(&copy.path().join("images/jre/Dockerfile"), "# changed\n");
    let jre = recipe_tags(copy.path());
    assert_eq!(
        changed(&here, &jre),
        [
            "codegenie-fixture-jdk:bookworm",
            "codegenie-fixture-jre:bookworm"
        ],
        "jre and its child jdk"
    );

    std::fs::write(copy.path().join("images/distroless/extra"), "x").unwrap();
    let distroless = recipe_tags(copy.path());
    let moved = changed(&jre, &distroless);
    assert_eq!(moved.len(), 8, "{moved:?}");
    assert!(
        moved.iter().all(|a| a.starts_with("gcr.io/distroless/")),
        "{moved:?}"
    );

    append(&copy.path().join("images/lib.sh"), "# changed\n");
    assert_eq!(changed(&distroless, &recipe_tags(copy.path())).len(), 16);
}

/// Two runs never build at once: a run waits while another holds the lock,
/// and then finds everything built (a warm run rebuilds nothing).
#[test]
fn a_second_run_waits_for_the_lock_then_finds_the_images_built() {
    let minbase = images()["codegenie-fixture-minbase:bookworm"].clone();
    let before = docker_ok(&["image", "inspect", "-f", "{{.Id}}", &minbase]);
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("lock");
    let run = || {
        let t0 = Instant::now();
        let out = Command::new("bash")
            .arg(fixtures().join("build-images.sh"))
            .arg("minbase")
            .env("CODEGENIE_FIXTURE_IMAGES_LOCK", &lock)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            t0.elapsed(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // Control: with the lock free, the run neither waits nor builds.
    let (free, log) = run();
    assert!(!log.contains("waiting for another build"), "{log}");

    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["-c", "echo held; exec sleep 3"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "held\n");
    let (held, log) = run();
    holder.wait().unwrap();
    assert!(log.contains("waiting for another build"), "{log}");
    assert!(
        held >= Duration::from_secs(2),
        "waited {held:?} (free: {free:?})"
    );
    assert_eq!(
        docker_ok(&["image", "inspect", "-f", "{{.Id}}", &minbase]),
        before,
        "nothing was rebuilt"
    );
}

/// Build the service `name` with no network, start it with none, and check
/// every route from inside; `report` must appear in the body of `/report`.
fn check_service(name: &str, report: &str) {
    let _ = images();
    let dir = fixtures().join("services").join(name);
    let client = client_of(&dir);
    let tag = format!("codegenie-fixture-service-{name}:test");
    docker_ok(&[
        "build",
        "--network=none",
        "--force-rm",
        "-q",
        "-t",
        &tag,
        dir.to_str().unwrap(),
    ]);
    let c = Served(format!(
        "codegenie-fixture-test-{name}-{}",
        std::process::id()
    ));
    let _ = docker(&["rm", "-f", &c.0]);
    docker_ok(&["run", "-d", "--network=none", "--name", &c.0, &tag]);

    // Ready when `/` answers (the JVM takes a few seconds to start).
    let until = Instant::now() + Duration::from_secs(90);
    let first = loop {
        match c.get(&client, "/") {
            Ok(answer) => break answer,
            Err(e) => {
                assert!(
                    c.running(),
                    "{name} exited before answering: {e}\n{}",
                    c.logs()
                );
                assert!(
                    Instant::now() < until,
                    "{name} never answered: {e}\n{}",
                    c.logs()
                );
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    };
    assert_eq!(first.0, 200, "{name} GET /: {first:?}");
    for path in ["/healthz", "/report"] {
        let (status, body) = c
            .get(&client, path)
            .unwrap_or_else(|e| panic!("{name} GET {path}: {e}\n{}", c.logs()));
        assert_eq!(status, 200, "{name} GET {path}: {body}\n{}", c.logs());
        if path == "/report" {
            assert!(body.contains(report), "{name} GET /report: {body}");
        }
    }
    // Control: the client reports what the app answered, not always 200.
    let (status, _) = c.get(&client, "/no-such-route").unwrap();
    assert_eq!(status, 404, "{name} GET /no-such-route");

    docker_ok(&["kill", "-s", "TERM", &c.0]);
    let until = Instant::now() + Duration::from_secs(12);
    while c.running() {
        assert!(
            Instant::now() < until,
            "{name} did not exit on SIGTERM\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn node_sqlite3_answers_every_route() {
    check_service("node-sqlite3", r#"{"kind":"book","n":2}"#);
}

#[test]
fn python_gunicorn_answers_every_route() {
    check_service("python-gunicorn", "xn--bcher-kva.example");
}

#[test]
fn jvm_answers_every_route() {
    check_service(
        "jvm",
        r#""zone":"Europe/Berlin","offset_at_epoch":"+01:00""#,
    );
}

#[test]
fn go_cgo_answers_every_route() {
    check_service("go-cgo", r#""offset_at_epoch_s":3600"#);
    // The binary is linked against glibc, as the fixture promises.
    let ldd = docker_ok(&[
        "run",
        "--rm",
        "--network=none",
        "codegenie-fixture-service-go-cgo:test",
        "ldd",
        "/app/server",
    ]);
    assert!(ldd.contains("libc.so.6"), "{ldd}");
    runs_on_the_base_stand_in();
}

#[test]
fn ruby_sinatra_answers_every_route() {
    check_service("ruby-sinatra", r#"{"north":7,"south":5}"#);
}

/// The stand-in variants with their full package lists, read from the
/// recipe's `packages.txt` (`<variant> <parent or -> <packages>...`).
fn stand_in_packages() -> Vec<(String, Vec<String>)> {
    let path = fixtures().join("images/distroless/packages.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lists: Vec<(String, Vec<String>)> = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut words = line.split_whitespace();
        let (Some(variant), Some(parent)) = (words.next(), words.next()) else {
            panic!("{}: bad line {line:?}", path.display());
        };
        let mut packages = match parent {
            "-" => Vec::new(),
            p => lists
                .iter()
                .find(|(v, _)| v == p)
                .unwrap_or_else(|| panic!("{}: parent {p} not listed before", path.display()))
                .1
                .clone(),
        };
        packages.extend(words.map(str::to_string));
        lists.push((variant.to_string(), packages));
    }
    lists
}

/// One entry of `tar -tv --numeric-owner`: mode, owner, size.
struct Entry {
    mode: String,
    owner: String,
    size: u64,
}

/// The flattened filesystem of `image`: its entries, and a reader of files.
struct Filesystem {
    tar: tempfile::NamedTempFile,
    entries: BTreeMap<String, Entry>,
}

impl Filesystem {
    fn of(image: &str) -> Filesystem {
        let name = format!(
            "codegenie-fixture-test-fs-{}-{}",
            std::process::id(),
            image.replace(['/', ':', '.'], "-")
        );
        let _ = docker(&["rm", "-f", &name]);
        // No shell and maybe no command: create only, never start.
        docker_ok(&["create", "--network=none", "--name", &name, image, "/none"]);
        let c = Served(name);
        let tar = tempfile::NamedTempFile::new().unwrap();
        docker_ok(&["export", "-o", tar.path().to_str().unwrap(), &c.0]);
        let out = Command::new("tar")
            .args(["-tv", "--numeric-owner", "-f"])
            .arg(tar.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "tar -tv of {image}");
        let mut entries = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // mode owner/group size date time name [-> target]
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 6 {
                continue;
            }
            let name = fields[5..].join(" ");
            let name = name
                .split(" -> ")
                .next()
                .unwrap_or("")
                .trim_end_matches('/');
            entries.insert(
                name.to_string(),
                Entry {
                    mode: fields[0].to_string(),
                    owner: fields[1].to_string(),
                    size: fields[2].parse().unwrap_or(0),
                },
            );
        }
        Filesystem { tar, entries }
    }

    fn read(&self, path: &str) -> String {
        let out = Command::new("tar")
            .args(["-xO", "-f"])
            .arg(self.tar.path())
            .arg(path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

/// What keeps `image` from having the shape of a distroless image holding
/// `packages`: empty when it has it.
fn stand_in_problems(image: &str, packages: &[String]) -> Vec<String> {
    let fs = Filesystem::of(image);
    let mut problems = Vec::new();
    for sh in [
        "bin/sh",
        "usr/bin/sh",
        "bin/bash",
        "usr/bin/bash",
        "bin/dash",
        "usr/bin/dash",
    ] {
        if fs.entries.contains_key(sh) {
            problems.push(format!("a shell at /{sh}"));
        }
    }
    if fs.entries.contains_key("etc/ld.so.cache") {
        problems.push("an /etc/ld.so.cache".into());
    }
    for p in packages {
        let entry = format!("var/lib/dpkg/status.d/{p}");
        if !fs.entries.contains_key(&entry) {
            problems.push(format!("no /{entry}"));
        } else if !fs.read(&entry).starts_with(&format!("Package: {p}\n")) {
            problems.push(format!("/{entry} is not {p}'s control file"));
        }
        if !fs.entries.contains_key(&format!("{entry}.md5sums")) {
            problems.push(format!("no /{entry}.md5sums"));
        }
    }
    let passwd = fs.read("etc/passwd");
    for user in [
        "root:x:0:0:",
        "nobody:x:65534:65534:",
        "nonroot:x:65532:65532:",
    ] {
        if !passwd.lines().any(|l| l.starts_with(user)) {
            problems.push(format!("/etc/passwd has no {user}"));
        }
    }
    if !fs
        .read("etc/group")
        .lines()
        .any(|l| l.starts_with("nonroot:x:65532:"))
    {
        problems.push("/etc/group has no nonroot:x:65532".into());
    }
    let bundle = "etc/ssl/certs/ca-certificates.crt";
    let certs = fs
        .read(bundle)
        .matches("-----BEGIN CERTIFICATE-----")
        .count();
    if fs.entries.get(bundle).map_or(0, |e| e.size) == 0 || certs < 100 {
        problems.push(format!("/{bundle} holds {certs} certificates"));
    }
    match fs.entries.get("home/nonroot") {
        Some(e) if e.mode == "drwx------" && e.owner == "65532/65532" => {}
        Some(e) => problems.push(format!("/home/nonroot is {} {}", e.mode, e.owner)),
        None => problems.push("no /home/nonroot".into()),
    }
    match fs.entries.get("tmp") {
        Some(e) if e.mode == "drwxrwxrwt" => {}
        other => problems.push(format!("/tmp is {:?}", other.map(|e| &e.mode))),
    }
    if !fs.read("etc/nsswitch.conf").contains("hosts:") {
        problems.push("no Debian nsswitch.conf".into());
    }
    if !fs.read("usr/lib/os-release").contains("VERSION_ID=\"12\"") {
        problems.push("/usr/lib/os-release is not Debian 12's".into());
    }
    problems
}

fn config(image: &str) -> serde_json::Value {
    serde_json::from_str(&docker_ok(&["image", "inspect", image])).unwrap()
}

#[test]
fn distroless_stand_ins_have_the_shape_and_config_of_distroless() {
    let built = images();
    for (variant, packages) in stand_in_packages() {
        let latest = format!("gcr.io/distroless/{variant}-debian12:latest");
        let nonroot = format!("gcr.io/distroless/{variant}-debian12:nonroot");
        for alias in [&latest, &nonroot] {
            let tag = built
                .get(alias.as_str())
                .unwrap_or_else(|| panic!("build-images.sh printed no recipe tag for {alias}"));
            assert_eq!(
                config(alias)[0]["Id"],
                config(tag)[0]["Id"],
                "{alias} points at {tag}"
            );
        }
        let problems = stand_in_problems(&latest, &packages);
        assert!(problems.is_empty(), "{latest}: {problems:#?}");

        let (l, n) = (&config(&latest)[0], &config(&nonroot)[0]);
        assert_eq!(l["Config"]["User"], "", "{latest} has no User");
        assert_eq!(n["Config"]["User"], "65532", "{nonroot}");
        assert_eq!(
            l["RootFS"]["Layers"], n["RootFS"]["Layers"],
            "{nonroot} is {latest}'s filesystem"
        );
        let env = l["Config"]["Env"].as_array().unwrap();
        for want in [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        ] {
            assert!(
                env.iter().any(|e| e == want),
                "{latest} Env {env:?} lacks {want}"
            );
        }
        assert_eq!(l["Config"]["WorkingDir"], "/", "{latest}");
        assert_eq!(n["Config"]["WorkingDir"], "/home/nonroot", "{nonroot}");
        let entrypoint = &l["Config"]["Entrypoint"];
        if variant == "python3" {
            assert_eq!(
                entrypoint,
                &serde_json::json!(["/usr/bin/python3.11"]),
                "{latest}"
            );
        } else {
            assert!(entrypoint.is_null(), "{latest} Entrypoint {entrypoint}");
        }
    }
}

/// Control: the same checks find what a Debian root filesystem has and a
/// distroless image must not.
#[test]
fn control_a_debian_minbase_is_no_distroless_image() {
    let _ = images();
    let packages = vec!["base-files".to_string(), "libc6".to_string()];
    let problems = stand_in_problems("codegenie-fixture-minbase:bookworm", &packages).join("\n");
    for want in [
        "a shell at /usr/bin/sh",
        "an /etc/ld.so.cache",
        "no /var/lib/dpkg/status.d/libc6",
        "/etc/passwd has no nonroot",
        "/home/nonroot",
    ] {
        assert!(problems.contains(want), "{want:?} not in {problems}");
    }
}

/// The shared libraries listed for the python3 stand-in are enough for the
/// stdlib's extension modules, the CA bundle and the IDNA codec, as the
/// non-root user.
#[test]
fn python3_stand_in_runs_its_stdlib_as_nonroot() {
    let _ = images();
    let code = "import bz2, ctypes, curses, dbm.ndbm, decimal, hashlib, lzma, readline, \
                sqlite3, ssl, uuid, zlib, zoneinfo\n\
                ctx = ssl.create_default_context()\n\
                print(ctx.cert_store_stats()['x509_ca'] > 100, \
                sqlite3.connect(':memory:').execute('select 1').fetchone()[0], \
                'bücher.example'.encode('idna').decode(), \
                zoneinfo.ZoneInfo('Europe/Berlin').key)";
    let out = docker_ok(&[
        "run",
        "--rm",
        "--network=none",
        "gcr.io/distroless/python3-debian12:nonroot",
        "-c",
        code,
    ]);
    assert_eq!(out, "True 1 xn--bcher-kva.example Europe/Berlin");
}

/// A Dockerfile FROM the stand-in's real name builds unchanged, and the cgo
/// binary of the go-cgo service runs on `base` (glibc, no shell) with the
/// time zones `static` brings.
fn runs_on_the_base_stand_in() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM codegenie-fixture-service-go-cgo:test AS app\n\
         FROM gcr.io/distroless/base-debian12:nonroot\n\
         COPY --from=app /app/server /app/server\n\
         CMD [\"/app/server\"]\n",
    )
    .unwrap();
    let tag = "codegenie-fixture-service-go-cgo:on-base";
    docker_ok(&[
        "build",
        "--network=none",
        "-q",
        "-t",
        tag,
        dir.path().to_str().unwrap(),
    ]);
    let c = Served(format!(
        "codegenie-fixture-test-go-base-{}",
        std::process::id()
    ));
    let _ = docker(&["rm", "-f", &c.0]);
    docker_ok(&["run", "-d", "--network=none", "--name", &c.0, tag]);
    let client = client_of(&fixtures().join("services/go-cgo"));
    let until = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        match c.get(&client, "/report") {
            Ok(a) => break a,
            Err(e) => {
                assert!(c.running() && Instant::now() < until, "{e}\n{}", c.logs());
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    assert_eq!(answer.0, 200, "{answer:?}");
    assert!(
        answer.1.contains(r#""offset_at_epoch_s":3600"#),
        "{answer:?}"
    );
}
