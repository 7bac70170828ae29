//! The minimal image: the original image's filesystem cut down to the
//! units the runtime-trace evidence reaches, kept whole (docs/architecture.md,
//! "Minimal image").
//!
//! - [`closure`]: named paths → entries to keep (links on the way included);
//! - [`packages`]: the image's dpkg and apk databases (who owns which path);
//! - [`lang`]: language packages (npm folders, Python distributions, gems);
//! - [`units`]: the closure at a [`units::Granularity`]: packages, app trees,
//!   lone files, each with its reason, and what fell back to files;
//! - [`image_fs`]: the image's tar stream indexed (with the database
//!   contents) and filtered;
//! - [`build_minimal_image`]: export, cut, import with the original config;
//! - [`base`] and [`recipe`]: [`build_on_base`], the units the base lacks,
//!   built by the Dockerfile handed over (`minimize --base`);
//! - [`verify`]: the same scenarios on both images, compared;
//! - [`distroless`]: blockers for a distroless base, what it would need;
//! - [`minimize`]: `MinimalImageProbe`, all of it as a `runs_last` probe.

pub mod app_tree;
pub mod base;
pub mod closure;
pub mod distroless;
pub mod image_fs;
pub mod lang;
pub mod minimize;
pub mod packages;
pub mod prefetch;
pub mod recipe;
pub mod units;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::engine::{Engine, EngineError, ImageConfig, REPOSITORY_LABEL};
use crate::runtime_trace::RuntimeTraceSlice;

use image_fs::ImageFsError;
use units::{unit_closure, Added, Coverage, Fallback, Granularity, UnitClosure, UnitLimits};

/// The repository of minimal image tags: `codegenie-min:<short digest>`.
pub const MINIMAL_REPOSITORY: &str = "codegenie-min";
/// The label naming the image a minimal image was cut from.
pub const MINIMAL_OF_LABEL: &str = "codegenie.minimal-of";

/// How the evidence used a path: the strongest use first (a unit's reason
/// names its best-ranked path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathUse {
    /// Executed (`execve`).
    Executed,
    /// The `#!` or `PT_INTERP` interpreter of an executed path.
    Interpreter,
    /// A shared library mapped executable.
    LibraryMapped,
    /// A certificate read.
    CertRead,
    /// A file opened for reading (or read and written).
    Read,
    /// An existence probe (`stat`, `access`, `readlink`).
    Probed,
    /// The resolved side of a path the app opened through a link.
    Resolved,
    /// A program a scenario's `exec` step runs beside the app.
    ExecStep,
    /// Not used by a scenario: declared as a dependency by a kept app's
    /// manifest (`/app/package.json`), the reason's path.
    Declared,
    /// Not used by a scenario: a dependency of a kept package, the
    /// reason's path (its name).
    DependedOn,
}

impl PathUse {
    /// The use as a verb for a reason line (`mapped`, `read`).
    pub fn verb(self) -> &'static str {
        match self {
            PathUse::Executed => "executed",
            PathUse::Interpreter => "run as interpreter",
            PathUse::LibraryMapped => "mapped",
            PathUse::CertRead => "read as a certificate",
            PathUse::Read => "read",
            PathUse::Probed => "probed",
            PathUse::Resolved => "resolved",
            PathUse::ExecStep => "run by an exec step",
            PathUse::Declared => "declares it",
            PathUse::DependedOn => "depends on it",
        }
    }
}

/// The first evidence of one named path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PathEvidence {
    /// The position of `scenario` in the slice (`usize::MAX`: none).
    pub scenario_index: usize,
    /// How it was used there.
    pub usage: PathUse,
    /// The first scenario that named it, when one did (a slice-wide
    /// interpreter or an exec step program may have none).
    pub scenario: Option<String>,
    /// The program behind the use, where the evidence has it (the executed
    /// path an interpreter runs for).
    pub program: Option<String>,
}

/// The paths a slice's evidence names, and the files the app wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvidencePaths {
    /// Every path the app used: executed, their interpreters, libraries,
    /// certificates, files read, paths probed, both sides of each resolved pair.
    pub named: BTreeSet<String>,
    /// Files the app wrote (their folders must exist).
    pub written: BTreeSet<String>,
    /// The first evidence of each named path: the first scenario (in the
    /// slice's order) that named it and its strongest use there.
    pub first_use: BTreeMap<String, PathEvidence>,
}

impl EvidencePaths {
    /// The union over every traced scenario of `slice`.
    pub fn of(slice: &RuntimeTraceSlice) -> EvidencePaths {
        let mut e = EvidencePaths::default();
        for (i, sc) in slice.scenarios.iter().enumerate() {
            let at = |usage| PathEvidence {
                scenario_index: i,
                usage,
                scenario: Some(sc.name.clone()),
                program: None,
            };
            if let Some(t) = &sc.trace {
                for (set, usage) in [
                    (&t.binaries_executed, PathUse::Executed),
                    (&t.shared_libs_loaded, PathUse::LibraryMapped),
                    (&t.cert_paths_read, PathUse::CertRead),
                    (&t.files_read, PathUse::Read),
                    (&t.paths_probed, PathUse::Probed),
                ] {
                    for p in set {
                        e.add(p, at(usage));
                    }
                }
                for (opened, resolved) in &t.resolved {
                    e.add(opened, at(PathUse::Read));
                    e.add(resolved, at(PathUse::Resolved));
                }
                e.written.extend(t.files_written.iter().cloned());
            }
            for (path, interpreter) in &sc.interpreters {
                e.add(path, at(PathUse::Executed));
                e.add(
                    interpreter,
                    PathEvidence {
                        program: Some(path.clone()),
                        ..at(PathUse::Interpreter)
                    },
                );
            }
        }
        for (path, interpreter) in &slice.interpreters {
            let none = |usage, program| PathEvidence {
                scenario_index: usize::MAX,
                usage,
                scenario: None,
                program,
            };
            e.add(path, none(PathUse::Executed, None));
            e.add(interpreter, none(PathUse::Interpreter, Some(path.clone())));
        }
        e
    }

    /// Name `path` with `evidence`, keeping the earlier (better-ranked)
    /// evidence when it was already named.
    pub fn add(&mut self, path: &str, evidence: PathEvidence) {
        self.named.insert(path.to_owned());
        match self.first_use.get_mut(path) {
            Some(old) if *old <= evidence => {}
            Some(old) => *old = evidence,
            None => {
                self.first_use.insert(path.to_owned(), evidence);
            }
        }
    }

    /// Add every path of `other` (the evidence of more scenarios, ranked
    /// after this evidence's own).
    pub fn extend(&mut self, other: EvidencePaths) {
        for (path, mut ev) in other.first_use {
            ev.scenario_index = ev.scenario_index.saturating_add(1 << 20);
            self.add(&path, ev);
        }
        self.named.extend(other.named);
        self.written.extend(other.written);
    }
}

/// Why the minimal image could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MinimizeError {
    /// An engine command failed (export, import, inspect).
    #[error("the engine could not build the minimal image")]
    Engine(#[from] EngineError),
    /// The exported filesystem could not be read or filtered.
    #[error("cannot cut the image's filesystem down")]
    Filesystem(#[from] ImageFsError),
    /// The cut filesystem would pass the host's copy cap, or the free space.
    #[error("the minimal image's filesystem is {bytes} bytes: over {what} ({limit} bytes) for its one copy on the host in {path}; cut less (--granularity file) or free space")]
    NoRoom {
        /// Bytes of file content to copy.
        bytes: u64,
        /// `the copy cap` or `the free space less a 256 MiB margin`.
        what: &'static str,
        /// The cap or the free bytes.
        limit: u64,
        /// Where the copy would go.
        path: PathBuf,
    },
    /// The scratch folder for the export could not be made.
    #[error("cannot make a scratch folder in {path}")]
    Scratch {
        /// Where.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The evidence does not name the entrypoint: there is nothing to run.
    #[error("the evidence names no executed binary (did the trace run?)")]
    NoEvidence,
    /// The base is not in the engine (nothing is pulled).
    #[error(
        "the base {base:?} is not in the engine: pull or build it first (codegenie pulls nothing)"
    )]
    NoBase {
        /// The reference given.
        base: String,
    },
    /// The user the base runs as is a name its `/etc/passwd` (or a group
    /// its `/etc/group`) does not list: which uid and gid would write is
    /// unknown, and the engine would refuse to start the container.
    #[error("the base {base:?} runs as {user:?}, which its /etc/passwd (or /etc/group, for the group) does not list: the minimal image's user cannot be resolved; use a base that lists it, or one that names its user as uid[:gid]")]
    UnknownUser {
        /// The base reference.
        base: String,
        /// The user as the base names it.
        user: String,
    },
    /// The original image has no `tar` for the pick stage.
    #[error("the original image has no tar (/usr/bin/tar, /bin/tar, or busybox in /bin, /usr/bin or /): the Dockerfile's pick stage needs one to take the units out of it")]
    NoTar,
    /// A kept entry cannot go onto the base.
    #[error(transparent)]
    LinkConflict(#[from] base::LinkConflict),
    /// The repository's Dockerfile cannot be read.
    #[error("cannot read {path}")]
    Dockerfile {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The Dockerfile cannot be written.
    #[error(transparent)]
    Recipe(#[from] recipe::RecipeError),
}

/// A minimal image built from an original one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinimalImage {
    /// The image id (`sha256:...`).
    pub image_id: String,
    /// Its tag, `codegenie-min:<short digest>`.
    pub tag: String,
    /// Its size in bytes, as the engine reports it.
    pub size_bytes: u64,
    /// The original image's size in bytes.
    pub original_size_bytes: u64,
    /// Filesystem entries kept.
    pub entries: usize,
    /// Named paths that the original image does not hold (created at run
    /// time, or virtual): nothing to copy for them.
    pub absent: BTreeSet<String>,
    /// Named paths whose symlinks go round in a loop in the original
    /// (kept as links; the name cannot be opened there either).
    pub link_loops: BTreeSet<String>,
    /// Kept entries with the setuid or setgid bit, with their mode.
    pub setid: BTreeMap<String, u32>,
    /// Whether an image of the same tag existed and was reused.
    pub reused: bool,
    /// The granularity it was cut at.
    pub granularity: Granularity,
    /// The units (packages, app trees) and lone files kept; on a base,
    /// those the Dockerfile adds (not what the base holds).
    pub added: Added,
    /// What fell back to files, and why (no package database, a corrupt
    /// one, a tree over the cap).
    pub fallbacks: Vec<Fallback>,
    /// How much of the app's own trees the evidence reached.
    pub coverage: Coverage,
    /// The Debian release of the original (`12`), from its `os-release`.
    pub debian_release: Option<String>,
}

/// A minimal image built on a base by the Dockerfile handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnBase {
    /// The image, as [`build_minimal_image`] describes one.
    pub image: MinimalImage,
    /// The base.
    pub base: base::BaseRef,
    /// The base's Debian release, when it says.
    pub base_release: Option<String>,
    /// The Dockerfile that built it, byte for byte.
    pub dockerfile: String,
    /// Lines the Dockerfile does not write (config, a path, a comment),
    /// and why.
    pub refused: Vec<recipe::Refusal>,
    /// Kept packages the base already holds (`name version`): not added.
    pub held_packages: Vec<String>,
    /// The user it runs as (`None`: the original's).
    pub user: Option<String>,
    /// The base's non-root user, used or not.
    pub nonroot: Option<String>,
    /// Files the app wrote where the base's non-root user may not: root is
    /// kept for them.
    pub root_writes: Vec<String>,
}

/// What the import path is asked to write as the Dockerfile handed over
/// without `--base` (docs/architecture.md, "The Dockerfile is the product").
#[derive(Debug)]
pub struct Handover {
    /// The repository's Dockerfile, or why it could not be read.
    pub repository_dockerfile: Result<String, MinimizeError>,
    /// Header lines: that the file was not built, which base fits.
    pub notes: Vec<String>,
}

/// The minimal image imported from the cut, and the same units written as
/// a Dockerfile on `scratch` (or why none could be written).
#[derive(Debug)]
pub struct ImportedCut {
    /// The image.
    pub image: MinimalImage,
    /// The Dockerfile, when a [`Handover`] asked for one: its recipe, or
    /// why it could not be written (the error chain).
    pub dockerfile: Option<Result<recipe::Recipe, String>>,
}

/// Most bytes of file content the import path copies on the host (the one
/// filtered copy of the kept entries; the export itself is streamed).
pub const MAX_HOST_COPY_BYTES: u64 = 4 << 30;
/// Free space kept beside that copy.
const FREE_MARGIN_BYTES: u64 = 256 << 20;

/// Refuse a copy of `bytes` into `dir` over [`MAX_HOST_COPY_BYTES`] or
/// over the free space there (less a margin). Sizes are as the tar headers
/// give them: a sparse file counts whole, as the copy would write it.
fn check_copy_room(dir: &Path, bytes: u64) -> Result<(), MinimizeError> {
    let no_room = |what, limit| MinimizeError::NoRoom {
        bytes,
        what,
        limit,
        path: dir.to_owned(),
    };
    if bytes > MAX_HOST_COPY_BYTES {
        return Err(no_room("the copy cap", MAX_HOST_COPY_BYTES));
    }
    if let Ok(st) = nix::sys::statvfs::statvfs(dir) {
        let free = st.blocks_available().saturating_mul(st.fragment_size());
        if bytes.saturating_add(FREE_MARGIN_BYTES) > free {
            return Err(no_room("the free space less a 256 MiB margin", free));
        }
    }
    Ok(())
}

/// Writes a non-root user may fail without harm: Python's bytecode cache
/// (the interpreter runs from source when it cannot write it).
fn optional_write(path: &str) -> bool {
    path.contains("/__pycache__/") || path.ends_with(".pyc")
}

/// The files of `written` (evidence of the original) that a process of
/// `uid` in group `gid` may not write in the image `index` describes: an
/// existing file is written in place (its own bits decide, through its
/// links); a new one is created in the nearest folder on its way that the
/// image holds (the app made any folder below it, as the original's user).
/// Optional writes (Python's `__pycache__` bytecode) do not count; an entry whose owner
/// the index lacks is not listed (nothing shows it denied).
pub fn writes_needing_root(
    index: &image_fs::ImageIndex,
    written: &BTreeSet<String>,
    uid: u64,
    gid: u64,
) -> Vec<String> {
    let tree = &index.tree;
    let denied = |p: &str| {
        index
            .owners
            .get(p)
            .is_some_and(|o| !o.writable_by(uid, gid))
    };
    let mut out = Vec::new();
    for w in written.iter().filter(|w| !optional_write(w)) {
        let norm = closure::normalize(w);
        let target = follow(tree, &norm, &mut 0);
        let is_denied = match tree.get(&target) {
            Some(closure::Node::File | closure::Node::Hardlink(_)) => denied(&target),
            _ => {
                let mut dir = parent_of(&target);
                while dir != "/" && tree.get(dir) != Some(&closure::Node::Dir) {
                    dir = parent_of(dir);
                }
                denied(dir)
            }
        };
        if is_denied {
            out.push(norm);
        }
    }
    out
}

/// The path `p` (absolute, normalized) names in `tree` with every link on
/// the way and at its end followed, whether or not it exists (a file not
/// yet made is named in its real folder); after 40 links, where it got.
fn follow(tree: &closure::Tree, p: &str, hops: &mut usize) -> String {
    if p == "/" {
        return "/".to_owned();
    }
    let parent = follow(tree, parent_of(p), hops);
    let name = p.rsplit('/').next().unwrap_or(p);
    let cur = closure::normalize(&format!("{parent}/{name}"));
    match tree.get(&cur) {
        Some(closure::Node::Symlink(t)) if *hops < 40 => {
            *hops += 1;
            let next = if t.starts_with('/') {
                closure::normalize(t)
            } else {
                closure::normalize(&format!("{parent}/{t}"))
            };
            follow(tree, &next, hops)
        }
        _ => cur,
    }
}

/// The folder holding `p` (`/` for a top-level entry and for `/`).
fn parent_of(p: &str) -> &str {
    match p.rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((d, _)) => d,
    }
}

/// The `tar` of an image, as the pick stage runs it.
fn tar_program(index: &image_fs::ImageIndex) -> Option<recipe::TarProgram> {
    let tree = &index.tree;
    let argv = |v: &[&str]| recipe::TarProgram {
        argv: v.iter().map(|s| s.to_string()).collect(),
        gnu: false,
    };
    // GNU tar is the package `tar` of Debian's, Ubuntu's and Alpine's
    // databases; any other tar (busybox's, bsdtar) is taken at its least.
    let gnu = || {
        packages::read_databases(&index.captured)
            .packages
            .iter()
            .any(|p| p.name == "tar" && p.files.iter().any(|f| f.ends_with("/bin/tar")))
    };
    for named in ["/usr/bin/tar", "/bin/tar"] {
        let mut path = named.to_owned();
        for _ in 0..40 {
            let Some(real) = closure::resolve_parents(tree, &path) else {
                break;
            };
            match tree.get(&real) {
                Some(closure::Node::Symlink(t)) => {
                    let dir = real.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                    path = if t.starts_with('/') {
                        closure::normalize(t)
                    } else {
                        closure::normalize(&format!("{dir}/{t}"))
                    };
                }
                Some(closure::Node::File | closure::Node::Hardlink(_)) => {
                    return Some(if real.ends_with("/busybox") {
                        argv(&[&real, "tar"])
                    } else {
                        recipe::TarProgram {
                            gnu: gnu(),
                            ..argv(&[named])
                        }
                    });
                }
                _ => break,
            }
        }
    }
    ["/bin/busybox", "/usr/bin/busybox", "/busybox"]
        .into_iter()
        .find(|p| matches!(tree.get(*p), Some(closure::Node::File)))
        .map(|p| argv(&[p, "tar"]))
}

/// The repository's Dockerfile, whose stages the handed-over file starts with.
pub fn repository_dockerfile(repo_root: &Path) -> Result<String, MinimizeError> {
    let path = repo_root.join("Dockerfile");
    std::fs::read_to_string(&path).map_err(|source| MinimizeError::Dockerfile { path, source })
}

/// The Dockerfile that adds `units` of the original (`index`, its
/// `config`) onto `base`, and what it decided on the way: the delta, the
/// units it adds, the user (the base's non-root user unless a write needs
/// root). `extra_notes` go into its header after the base's own.
struct Rendered {
    delta: base::Delta,
    added: Added,
    recipe: recipe::Recipe,
    user: Option<String>,
    nonroot: Option<String>,
    root_writes: Vec<String>,
    original_release: Option<String>,
    base_release: Option<String>,
}

fn render(
    index: &image_fs::ImageIndex,
    units: &UnitClosure,
    evidence: &EvidencePaths,
    base: &base::Base,
    config: &ImageConfig,
    repository_dockerfile: &str,
    extra_notes: Vec<String>,
) -> Result<Rendered, MinimizeError> {
    let delta = base::delta(
        index,
        &units.closure.keep,
        &units.added,
        &evidence.named,
        base,
    )?;
    let tar = tar_program(index).ok_or(MinimizeError::NoTar)?;
    // The base's non-root user, unless a write needs root.
    let nonroot = base.nonroot_user();
    let mut user = nonroot.clone();
    let mut root_writes = Vec::new();
    if let Some(u) = &user {
        let (uid, gid) = base.account(u)?;
        root_writes = writes_needing_root(index, &evidence.written, uid, gid);
        if !root_writes.is_empty() {
            user = None;
        }
    }

    // What the Dockerfile adds, unit by unit: the report lists these.
    let added = delta.added_units(&units.added);
    let mut reasons: Vec<String> = added.packages.iter().map(|p| p.comment()).collect();
    for t in &added.trees {
        reasons.push(format!(
            "{}: app tree, {} files: {}",
            t.path, t.files, t.reason
        ));
    }
    for f in &added.files {
        reasons.push(format!("{f}: no unit holds it"));
    }
    let mut notes = vec![format!("base: {}", base.reference)];
    if !delta.held_packages.is_empty() {
        notes.push(format!(
            "the base already holds {} kept package(s): {}",
            delta.held_packages.len(),
            delta.held_packages.join(", ")
        ));
    }
    let original_release = base::debian_release(index);
    let base_release = base.debian_release();
    if let (Some(o), Some(b)) = (&original_release, &base_release) {
        if o != b {
            notes.push(format!(
                "the original is Debian {o} and the base Debian {b}: the added packages are Debian {o}'s"
            ));
        }
    }
    notes.extend(extra_notes);
    let recipe = recipe::write(&recipe::RecipeInputs {
        repository_dockerfile,
        base: &base.reference,
        config,
        base_config: &base.config,
        user: user.clone(),
        tar,
        trees: delta.trees.clone(),
        entries: delta.entries.clone(),
        reasons,
        notes,
    })?;
    Ok(Rendered {
        delta,
        added,
        recipe,
        user,
        nonroot,
        root_writes,
        original_release,
        base_release,
    })
}

/// The base [`build_on_base`] is asked to build on.
#[derive(Debug, Clone, Copy)]
pub struct BaseAsked<'a> {
    /// As given (`--base`).
    pub reference: &'a str,
    /// Its exports and the original's, when the trace started them.
    pub early: Option<&'a prefetch::Prefetch>,
}

/// Build (or reuse) the minimal image of `original` (built from the
/// repository at `repo_root`) on the base `asked`: the units of `evidence` at
/// `granularity` that the base lacks, taken out of the repository's own
/// last stage by a pick stage and copied onto the base in one layer, by a
/// Dockerfile ([`recipe`]) built with the repository as its context and
/// `--network=none`. Nothing is copied on the host: both exports are
/// streamed into their indexes ([`prefetch::exports`]), taken from
/// `asked.early` when the trace started them. Of the repository's minimal
/// images, the newest `keep` stay.
pub fn build_on_base(
    engine: &Engine,
    repo_root: &Path,
    original: &str,
    evidence: &EvidencePaths,
    keep: usize,
    granularity: Granularity,
    asked: BaseAsked<'_>,
) -> Result<OnBase, MinimizeError> {
    let base_ref = asked.reference;
    if evidence.named.is_empty() {
        return Err(MinimizeError::NoEvidence);
    }
    if !recipe::base_ok(base_ref) {
        return Err(recipe::RecipeError::BadBase {
            base: base_ref.to_owned(),
        }
        .into());
    }
    let repository_dockerfile = repository_dockerfile(repo_root)?;
    // Started by the trace when it built the original, else now.
    let (base, index) = match asked.early.and_then(|p| p.take(original, base_ref)) {
        Some(early) => {
            tracing::info!(
                original,
                base = base_ref,
                "exports taken from the trace's run"
            );
            early?
        }
        None => prefetch::exports(engine, original, base_ref, Default::default())?,
    };
    let units = unit_closure(&index, evidence, granularity, &UnitLimits::default());
    let config = engine.image_config(original)?;
    let Rendered {
        delta,
        added,
        recipe: written,
        user,
        nonroot,
        root_writes,
        original_release,
        base_release,
    } = render(
        &index,
        &units,
        evidence,
        &base,
        &config,
        &repository_dockerfile,
        Vec::new(),
    )?;
    let mut tag_inputs: BTreeSet<String> = BTreeSet::new();
    tag_inputs.insert(written.text.clone());
    let base_id = base.id.clone().unwrap_or_default();
    let tag = minimal_tag(original, &tag_inputs, &[base_id]);
    let original_size_bytes = engine.image_size(original)?;
    let repository = config
        .labels
        .as_ref()
        .and_then(|l| l.get(REPOSITORY_LABEL))
        .cloned();
    let (image_id, reused) = match engine.image_id(&tag)? {
        Some(id) => (id, true),
        None => {
            let mut labels = vec![(MINIMAL_OF_LABEL.to_owned(), original.to_owned())];
            if let Some(r) = &repository {
                labels.push((REPOSITORY_LABEL.to_owned(), r.clone()));
            }
            let opts = crate::engine::BuildOptions {
                network: crate::engine::BuildNetwork::None,
                ..crate::engine::BuildOptions::default()
            };
            // The handed-over file, with our labels in one step.
            let (built, rest) = recipe::with_labels(&written.text, &labels);
            let id = engine.build_dockerfile(repo_root, built.as_bytes(), &opts, &rest)?;
            engine.tag(&id, &tag)?;
            (id, false)
        }
    };
    if let Some(repository) = &repository {
        engine.tidy_images(MINIMAL_REPOSITORY, repository, keep.max(1), &image_id);
    }
    let added_entries: BTreeSet<String> =
        delta.entries.iter().chain(&delta.trees).cloned().collect();
    let setid = index
        .setid
        .iter()
        .filter(|(p, _)| {
            added_entries.contains(*p)
                || delta.trees.iter().any(|t| p.starts_with(&format!("{t}/")))
        })
        .map(|(p, m)| (p.clone(), *m))
        .collect();
    tracing::info!(
        %tag,
        reused,
        base = base_ref,
        trees = delta.trees.len(),
        entries = delta.entries.len(),
        held_packages = delta.held_packages.len(),
        pick_runs = written.pick_runs,
        "minimal_image_on_base"
    );
    Ok(OnBase {
        image: MinimalImage {
            size_bytes: engine.image_size(&image_id)?,
            image_id,
            tag,
            original_size_bytes,
            entries: units.closure.keep.len(),
            absent: units.closure.absent,
            link_loops: units.closure.link_loops,
            setid,
            reused,
            granularity,
            added,
            fallbacks: units.fallbacks,
            coverage: units.coverage,
            debian_release: original_release,
        },
        base: base.reference(),
        base_release,
        dockerfile: written.text,
        refused: written.refused,
        held_packages: delta.held_packages,
        user,
        nonroot,
        root_writes,
    })
}

/// The entries of `keep` that `index` lists as setuid or setgid, with
/// their mode.
pub fn kept_setid(index: &image_fs::ImageIndex, keep: &BTreeSet<String>) -> BTreeMap<String, u32> {
    index
        .setid
        .iter()
        .filter(|(path, _)| keep.contains(*path))
        .map(|(path, mode)| (path.clone(), *mode))
        .collect()
}

/// The tag of the minimal image of `original` holding `keep` with `changes`:
/// the same inputs give the same tag, so an unchanged image is reused.
fn minimal_tag(original: &str, keep: &BTreeSet<String>, changes: &[String]) -> String {
    let mut h = blake3::Hasher::new();
    for part in std::iter::once(original)
        .chain(keep.iter().map(String::as_str))
        .chain(changes.iter().map(String::as_str))
    {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    format!("{MINIMAL_REPOSITORY}:{}", &h.finalize().to_hex()[..12])
}

/// What [`build_minimal_image`] is asked for beside the evidence.
#[derive(Debug, Clone, Copy, Default)]
pub struct CutAsked<'a> {
    /// The units to write as a Dockerfile too, when one is handed over.
    pub handover: Option<&'a Handover>,
    /// The original's index, when the trace started its export.
    pub early: Option<&'a prefetch::Prefetch>,
}

/// Build (or reuse) the minimal image of `original` for `evidence`: stream
/// its filesystem into the index (taken from `asked.early` when the trace
/// started its export), keep the evidence's units at
/// `granularity` ([`units::unit_closure`]), import it with
/// the original config (entrypoint, cmd, env, workdir, user, ports). The
/// one copy on the host, in `scratch`, is the kept entries, bounded by
/// [`MAX_HOST_COPY_BYTES`] and the free space there. Of
/// the repository's minimal images, the newest `keep` stay (this one always
/// among them; docs/architecture.md, "Image hygiene").
pub fn build_minimal_image(
    engine: &Engine,
    original: &str,
    evidence: &EvidencePaths,
    scratch: &Path,
    keep: usize,
    granularity: Granularity,
    asked: CutAsked<'_>,
) -> Result<ImportedCut, MinimizeError> {
    if evidence.named.is_empty() {
        return Err(MinimizeError::NoEvidence);
    }
    let work = tempfile::Builder::new()
        .prefix("minimal-")
        .tempdir_in(scratch)
        .map_err(|source| MinimizeError::Scratch {
            path: scratch.to_owned(),
            source,
        })?;
    // Streamed: the export is read as it comes, never written on the host.
    // Started by the trace when it built the original, else now.
    let index = match asked.early.and_then(|p| p.take_index(original)) {
        Some(early) => {
            tracing::info!(original, "export taken from the trace's run");
            early?
        }
        None => prefetch::index(engine, original, Default::default())?,
    };
    let units = unit_closure(&index, evidence, granularity, &UnitLimits::default());
    let copy_bytes: u64 = units
        .closure
        .keep
        .iter()
        .filter_map(|p| index.sizes.get(p))
        .sum();
    let setid = kept_setid(&index, &units.closure.keep);
    let debian_release = base::debian_release(&index);
    let config = engine.image_config(original)?;
    // The same units as a Dockerfile on `scratch`, written by the code
    // `--base` builds with; not built here (the cut is imported).
    let dockerfile = asked.handover.map(|h| {
        let text = h
            .repository_dockerfile
            .as_ref()
            .map_err(|e| e.to_string())?;
        render(
            &index,
            &units,
            evidence,
            &base::Base::scratch(),
            &config,
            text,
            h.notes.clone(),
        )
        .map(|r| r.recipe)
        .map_err(|e| crate::errors::error_chain(&e))
    });
    drop(index);
    let closure = &units.closure;
    let mut changes = config.import_changes();
    changes.push(format!("LABEL {MINIMAL_OF_LABEL}={original}"));
    let tag = minimal_tag(original, &closure.keep, &changes);
    let original_size_bytes = engine.image_size(original)?;
    let (image_id, reused) = match engine.image_id(&tag)? {
        Some(id) => (id, true),
        None => {
            // The one copy on the host: the kept entries, bounded.
            check_copy_room(work.path(), copy_bytes)?;
            let cut = work.path().join("minimal.tar");
            let (dest, kept) = (cut.clone(), closure.keep.clone());
            engine.export_streamed(original, move |r| {
                image_fs::filter_stream(r, Path::new("docker export (original)"), &dest, &kept)
            })??;
            (engine.import_filesystem(&cut, &changes, &tag)?, false)
        }
    };
    // The minimal image carries the original's labels, the repository's
    // among them (docs/architecture.md, "Image hygiene").
    if let Some(repository) = config.labels.as_ref().and_then(|l| l.get(REPOSITORY_LABEL)) {
        engine.tidy_images(MINIMAL_REPOSITORY, repository, keep.max(1), &image_id);
    }
    tracing::info!(
        %tag,
        reused,
        %granularity,
        entries = closure.keep.len(),
        packages = units.added.packages.len(),
        trees = units.added.trees.len(),
        fallbacks = units.fallbacks.len(),
        "minimal_image"
    );
    let image = MinimalImage {
        size_bytes: engine.image_size(&image_id)?,
        image_id,
        tag,
        original_size_bytes,
        entries: closure.keep.len(),
        absent: units.closure.absent,
        link_loops: units.closure.link_loops,
        setid,
        reused,
        granularity,
        added: units.added,
        fallbacks: units.fallbacks,
        coverage: units.coverage,
        debian_release,
    };
    Ok(ImportedCut { image, dockerfile })
}

#[cfg(test)]
mod tests {
    use super::closure::Node;
    use super::image_fs::{ImageIndex, Owner};
    use super::*;

    /// An index of `(path, node, uid, gid, mode)`.
    fn index(entries: &[(&str, Node, u64, u64, u32)]) -> ImageIndex {
        let mut ix = ImageIndex::default();
        for (p, n, uid, gid, mode) in entries {
            ix.tree.insert(p.to_string(), n.clone());
            ix.owners.insert(
                p.to_string(),
                Owner {
                    uid: *uid,
                    gid: *gid,
                    mode: *mode,
                },
            );
        }
        ix
    }

    #[test]
    fn writes_the_base_user_may_not_make_need_root() {
        use Node::*;
        let ix = index(&[
            ("/", Dir, 0, 0, 0o755),
            ("/app", Dir, 0, 0, 0o755),
            ("/app/server.js", File, 0, 0, 0o644),
            ("/app/data.db", File, 0, 0, 0o644),
            ("/app/logs", Symlink("/var/log/app".into()), 0, 0, 0o777),
            ("/app/shared", Dir, 0, 65532, 0o775),
            ("/app/__pycache__", Dir, 0, 0, 0o755),
            ("/var", Dir, 0, 0, 0o755),
            ("/var/log", Dir, 0, 0, 0o755),
            ("/var/log/app", Dir, 65532, 65532, 0o755),
            ("/tmp", Dir, 0, 0, 0o1777),
            ("/tmp/root.pid", File, 0, 0, 0o644),
            ("/home", Dir, 0, 0, 0o755),
            ("/home/nonroot", Dir, 65532, 65532, 0o700),
        ]);
        let written: BTreeSet<String> = [
            // Listed: a new file in a root-owned 0755 folder, one in a
            // folder the app made there, a root-owned 0644 file in place
            // (in a 1777 folder too: its own bits decide).
            "/app/new.log",
            "/app/cache/entries/x",
            "/app/data.db",
            "/tmp/root.pid",
            // Not listed: 1777, the user's own folder (and one it makes
            // there), group-writable, through a link into its folder, the
            // bytecode cache.
            "/tmp/out",
            "/home/nonroot/.cache/x",
            "/app/shared/x",
            "/app/logs/today.log",
            "/app/__pycache__/server.cpython-311.pyc",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(
            writes_needing_root(&ix, &written, 65532, 65532),
            [
                "/app/cache/entries/x",
                "/app/data.db",
                "/app/new.log",
                "/tmp/root.pid"
            ]
        );
        // The controls: root writes everything; a user not in the
        // folder's group may not write the group-writable one.
        assert!(writes_needing_root(&ix, &written, 0, 0).is_empty());
        let other = writes_needing_root(&ix, &written, 1000, 1000);
        assert!(other.contains(&"/app/shared/x".to_owned()), "{other:?}");
        assert!(
            other.contains(&"/app/logs/today.log".to_owned()),
            "{other:?}"
        );
        assert!(!other
            .iter()
            .any(|w| w.contains("__pycache__") || w == "/tmp/out"));
    }
}
