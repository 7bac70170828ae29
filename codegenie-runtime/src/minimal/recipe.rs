//! The Dockerfile handed over (DESIGN §8; docs/architecture.md, "The
//! Dockerfile is the product"): the repository's own stages, its last one
//! named, then a pick stage that archives the added entries out of it with
//! the image's own `tar` and unpacks them into one folder, then
//! `ARG BASE` / `FROM ${BASE}`, one `COPY --from` of that folder, and the
//! original config in exec form.
//!
//! Pure text: every value that comes from the image or the evidence goes
//! through JSON (`RUN [...]`, `COPY [...]`, `CMD [...]`, reason comments as
//! JSON strings) or a charset check (`ENV`, `LABEL`, `WORKDIR`, `EXPOSE`,
//! `USER`); a value that passes neither refuses its line, with a
//! `# refused:` comment saying why, and the refusal is reported.
//!
//! Byte for byte: every artifact is redacted on its way to disk
//! (`writer`, [`crate::redact::redact_stream`]), so a line the redaction
//! rules would change would be written otherwise than it was built. Such a
//! line made from an image or evidence value is refused (the value never
//! reaches the comment); such a line of the repository's own Dockerfile is
//! [`RecipeError::SecretInDockerfile`]; and the whole file is checked last.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::dockerfile::Dockerfile;
use crate::engine::ImageConfig;

/// The stage name given to the repository's last stage when it has none.
pub const ORIGINAL_STAGE: &str = "original";
/// The stage that assembles the added entries.
pub const PICK_STAGE: &str = "codegenie-pick";
/// The folder of the pick stage the added entries are unpacked into.
pub const PICK_DIR: &str = "/.codegenie-pick";
/// The build argument naming the base.
pub const BASE_ARG: &str = "BASE";
/// The longest line the engine's Dockerfile parser reads (it refuses the
/// file otherwise: "dockerfile line greater than max allowed size").
pub const MAX_LINE: usize = 65_535;
/// Bytes of names one `RUN` of the pick stage archives, as JSON: a quarter
/// of the kernel's argument limit under the engine's default 8 MiB stack
/// (2 MiB). Each step commits by walking the original's whole filesystem
/// on a storage driver without native diffs, so fewer steps build faster.
pub const PATHS_PER_RUN: usize = 512 * 1024;
/// Bytes of a `RUN` array one line holds before it continues on the next
/// (the escape character, then a line break): a line stays under
/// [`MAX_LINE`], an instruction continued over lines may be longer.
pub const ARRAY_PER_LINE: usize = 60 * 1024;
/// Most `RUN` steps the pick stage may take (each is a layer of the pick
/// stage, which sits on the original's layers: the engine allows 127).
pub const MAX_PICK_RUNS: usize = 48;

/// Why no Dockerfile can be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecipeError {
    /// The repository's Dockerfile has no `FROM`.
    #[error("Dockerfile: no FROM instruction: there is no stage to take the units from")]
    NoStage,
    /// The last stage's `FROM` is continued over lines: it cannot be named
    /// without rewriting the user's text.
    #[error("Dockerfile:{line}: the last stage's FROM is continued over several lines; give it a name (`AS original`) and re-run")]
    ContinuedFrom {
        /// Its line.
        line: usize,
    },
    /// The repository's Dockerfile declares the build argument the base
    /// goes into.
    #[error("Dockerfile:{line}: declares `ARG {BASE_ARG}`, the argument the minimal image's base goes into; rename it and re-run")]
    BaseArgTaken {
        /// Its line.
        line: usize,
    },
    /// The base reference holds characters no image reference has.
    #[error("the base {base:?} is not an image reference (letters, digits and `._-/:@` only)")]
    BadBase {
        /// The reference as given.
        base: String,
    },
    /// An added path cannot be written into the file (a name that is not
    /// UTF-8 reaches the index as `\xHH`: `tar` would look for those bytes).
    #[error("{count} added path(s) are not valid UTF-8 or hold a backslash, first {first:?}: tar in the pick stage cannot name them")]
    Unnameable {
        /// How many.
        count: usize,
        /// The first, as the index spells it.
        first: String,
    },
    /// More paths than the pick stage's steps can archive.
    #[error("{paths} added paths need more than {MAX_PICK_RUNS} pick steps")]
    TooManyPaths {
        /// How many paths.
        paths: usize,
    },
    /// A line of the repository's Dockerfile looks like it holds a secret:
    /// the written file is redacted, so it could not carry that line as
    /// the build used it.
    #[error("Dockerfile:{line}: the line looks like it holds a secret (the redaction rules every written file goes through would change it), so the handed-over Dockerfile could not be the file that built the image; take the secret out of the Dockerfile (a build secret, a run-time variable) and re-run")]
    SecretInDockerfile {
        /// Its line in the repository's Dockerfile.
        line: usize,
    },
    /// The base reference looks like it holds a secret (credentials in it).
    #[error("the base reference looks like it holds a secret (the redaction rules would change it in the written Dockerfile); name the base without credentials")]
    SecretInBase,
    /// A line longer than the engine's parser reads ([`MAX_LINE`]): a
    /// single value (an `ENTRYPOINT`, `CMD` or `WORKDIR`) that long.
    #[error("line {line} of the Dockerfile to hand over has {bytes} bytes; the engine reads at most {MAX_LINE} per line")]
    LineTooLong {
        /// Its line in the written Dockerfile.
        line: usize,
        /// Its length.
        bytes: usize,
    },
    /// A line of the written file would still be changed by the redaction:
    /// values that each passed alone combine into a secret-looking line.
    #[error("line {line} of the Dockerfile to hand over would be changed by the redaction every written file goes through (values that passed one by one combine into a secret-looking line): it could not be the file that built the image")]
    WouldRedact {
        /// Its line in the written Dockerfile.
        line: usize,
    },
}

/// The program that archives in the pick stage: GNU tar, or busybox's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TarProgram {
    /// The argv prefix: `["/usr/bin/tar"]` or `["/bin/busybox", "tar"]`.
    pub argv: Vec<String>,
    /// GNU tar (the image's package database has a `tar` package): it
    /// takes `--recursion`/`--no-recursion` between names and
    /// `--transform`, so one archive holds trees and entries and unpacks
    /// without a `WORKDIR` step (each step is a commit of the whole image
    /// on some storage drivers).
    #[serde(default)]
    pub gnu: bool,
}

/// A line that was not written, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The instruction (`ENV`, `LABEL`, `WORKDIR`, `EXPOSE`, `USER`,
    /// `ENTRYPOINT`, `CMD`; `RUN` for an added path, `#` for a comment).
    pub instruction: String,
    /// What it would have set: a key, a port, a folder, the unit a comment
    /// is for, or a description (`the user`); never a secret value.
    pub what: String,
    /// Why, as a sentence.
    pub reason: String,
}

/// What the Dockerfile is written from.
#[derive(Debug, Clone)]
pub struct RecipeInputs<'a> {
    /// The repository's Dockerfile, as read.
    pub repository_dockerfile: &'a str,
    /// The base reference (`gcr.io/distroless/cc-debian12:nonroot`, `scratch`).
    pub base: &'a str,
    /// The original image's config (entrypoint, cmd, env, workdir, ports, labels).
    pub config: &'a ImageConfig,
    /// The base's config (its own entrypoint and env).
    pub base_config: &'a ImageConfig,
    /// The user to run as (`None`: the original's).
    pub user: Option<String>,
    /// The tar of the original image.
    pub tar: TarProgram,
    /// Folders whose whole subtree is added, archived recursively.
    pub trees: BTreeSet<String>,
    /// Every other added entry, archived alone.
    pub entries: BTreeSet<String>,
    /// One reason line per added unit (`libsqlite3-0 3.40.1-2: ... mapped ...`).
    pub reasons: Vec<String>,
    /// Header lines (what the base already holds, the base's release).
    pub notes: Vec<String>,
}

/// The Dockerfile written, and what it refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The file's bytes.
    pub text: String,
    /// The repository's last stage's name (given or ours).
    pub original_stage: String,
    /// Config lines not written, and why.
    pub refused: Vec<Refusal>,
    /// `RUN` steps of the pick stage.
    pub pick_runs: usize,
}

/// A JSON string: quotes, escapes, no raw control character, nothing that
/// changes how the line reads ([`shown`]).
fn json(s: &str) -> String {
    shown(serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned()))
}

fn json_array(v: &[String]) -> String {
    shown(serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned()))
}

/// [`json_array`] continued over lines of at most [`ARRAY_PER_LINE`]
/// bytes: after a comma, `escape` and a line break, which the engine's
/// parser joins away before it reads the JSON. An array that fits stays
/// on one line, byte for byte [`json_array`]'s.
fn json_array_lines(v: &[String], escape: char) -> String {
    let mut out = String::from("[");
    let mut line = out.len();
    for (i, s) in v.iter().enumerate() {
        let item = json(s);
        if i > 0 {
            out.push(',');
            line += 1;
            if line + item.len() > ARRAY_PER_LINE {
                out.push(escape);
                out.push_str("\n  ");
                line = 2;
            }
        }
        line += item.len();
        out.push_str(&item);
    }
    out.push(']');
    out
}

/// Whether `c` changes how text around it reads: a control character (a
/// line break, a terminal escape, DEL, the C1 controls), a line or paragraph
/// separator, or a bidirectional override or mark.
pub(crate) fn unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// JSON text with every [`unprintable`] character escaped (`\u202e`):
/// serde_json escapes only those below U+0020, and a bidirectional override
/// left raw shows a reviewer a line other than the one Docker reads. Outside
/// strings JSON is ASCII, so every such character is inside one.
pub(crate) fn shown(json: String) -> String {
    if !json.contains(unprintable) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 12);
    for c in json.chars() {
        if unprintable(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `s` may stand inside `"..."` in `ENV` or `LABEL`: Docker
/// processes `\` escapes and `$` substitutions there, so neither may occur,
/// nor a quote, a backtick (the other escape character) or a character
/// that changes how the line reads ([`unprintable`]: a control character,
/// or a bidirectional override that shows a reviewer another line than
/// the one Docker reads).
fn quotable(s: &str) -> bool {
    !s.chars()
        .any(|c| matches!(c, '"' | '\\' | '$' | '`') || unprintable(c))
}

fn env_key_ok(k: &str) -> bool {
    let mut cs = k.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn label_key_ok(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
}

pub(crate) fn workdir_ok(w: &str) -> bool {
    w.starts_with('/')
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | '@'))
}

pub(crate) fn port_ok(p: &str) -> bool {
    let (num, proto) = match p.split_once('/') {
        Some((n, pr)) => (n, Some(pr)),
        None => (p, None),
    };
    !num.is_empty()
        && num.len() <= 5
        && num.chars().all(|c| c.is_ascii_digit())
        && proto.is_none_or(|pr| matches!(pr, "tcp" | "udp" | "sctp"))
}

/// Whether `u` is a user (and group) spelled as `USER` takes it.
pub fn user_ok(u: &str) -> bool {
    let part = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    match u.split_once(':') {
        Some((a, b)) => part(a) && part(b),
        None => part(u),
    }
}

/// Whether `r` is spelled like an image reference (or `scratch`).
pub fn base_ok(r: &str) -> bool {
    !r.is_empty()
        && !r.starts_with('-')
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@'))
}

/// Whether `KEY=value` looks like it holds a secret (the redaction rules
/// change it): such a value is not written into a file people commit.
pub fn secret_looking(key: &str, value: &str) -> bool {
    redacted(&format!("{key}={value}"))
}

/// Whether the redaction every written artifact goes through
/// ([`crate::redact::redact_stream`], line by line) would change `line`.
fn redacted(line: &str) -> bool {
    let mut out = Vec::with_capacity(line.len());
    match crate::redact::redact_stream(&mut line.as_bytes(), &mut out) {
        Ok(_) => out != line.as_bytes(),
        // Reading a slice into a Vec does not fail; if it did, the line
        // could not be shown to survive.
        Err(_) => true,
    }
}

/// The first line (1-based) of `text` that the redaction would change.
/// Line by line is the whole: a line the rules leave alone never opens a
/// private-key block, the one state `redact_stream` carries between lines.
pub fn first_redacted_line(text: &str) -> Option<usize> {
    text.split_inclusive('\n').position(redacted).map(|i| i + 1)
}

/// Why a value's line is refused when the redaction would change it.
const SECRET_VALUE: &str = "the value looks like a secret (the redaction rules would change it, and the written file is redacted): pass it at run time, not in a committed file";
/// Why a comment is refused when the redaction would change it.
const SECRET_COMMENT: &str = "the comment looks like it holds a secret (the redaction rules would change it, and the written file is redacted)";
/// Why an added path is refused when the redaction would change its line.
const SECRET_PATH: &str = "an added path in this folder looks like a secret (the redaction rules would change it, and the written file is redacted): not archived";
/// The `what` of a refusal whose own comment the redaction would change.
const WITHHELD: &str = "(withheld: it looks like a secret)";

/// The refusals of one file, each written as a `# refused:` line.
#[derive(Default)]
struct Refusals(Vec<Refusal>);

impl Refusals {
    /// Refuse `instruction` for `what`, its comment appended to `out`. A
    /// `what` the redaction would change there is withheld: the comment
    /// must survive the redaction like every other line.
    fn refuse(&mut self, out: &mut String, instruction: &str, what: &str, reason: &str) {
        // No `"KEY": "..."`: that shape is a `password:`-style pair to the
        // redaction rules when the key ends in `PASSWORD` or `TOKEN`.
        let line = |what: &str| {
            format!(
                "# refused: {instruction} {}, {}\n",
                json(what),
                json(reason)
            )
        };
        let (what, l) = match line(what) {
            l if redacted(&l) => (WITHHELD, line(WITHHELD)),
            l => (what, l),
        };
        out.push_str(&l);
        self.0.push(Refusal {
            instruction: instruction.to_owned(),
            what: what.to_owned(),
            reason: reason.to_owned(),
        });
    }

    /// `# "text"`, or its refusal as `what` when the redaction would change it.
    fn comment(&mut self, out: &mut String, text: &str, what: &str) {
        let line = format!("# {}\n", json(text));
        if redacted(&line) {
            self.refuse(out, "#", what, SECRET_COMMENT);
        } else {
            out.push_str(&line);
        }
    }
}

/// `KEYWORD v1 v2 ... extra` as one line.
fn joined_line(keyword: &str, values: &[String], extra: &str) -> String {
    let mut l = keyword.to_owned();
    for v in values.iter().map(String::as_str).chain([extra]) {
        l.push(' ');
        l.push_str(v);
    }
    l.push('\n');
    l
}

/// `text` (a file [`write()`] wrote) with `labels` set as `docker build
/// --label` sets them, on the last stage, but by one `LABEL` line
/// appended: the classic builder adds a step per `--label`, and on a
/// storage driver without native diffs each step walks the whole image
/// (about 4 s each on the Node service's minimal image here;
/// docs/architecture.md, "The Dockerfile is the product"). The file ends
/// on a whole line, so the appended line stands alone. A label the line
/// cannot hold as it is comes back, for `--label`, and is set all the
/// same in a step of its own: a key outside `[A-Za-z0-9._/-]`; a value
/// with a quote, `\`, `$`, a backtick, or a control or bidirectional
/// character; a line the redaction would change or the engine would not
/// read.
pub fn with_labels(text: &str, labels: &[(String, String)]) -> (String, Vec<(String, String)>) {
    let mut out = text.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    let (mut line, mut rest) = (Vec::new(), Vec::new());
    for (k, v) in labels {
        let pair = format!("{k}=\"{v}\"");
        let fits = label_key_ok(k)
            && quotable(v)
            && !redacted(&joined_line("LABEL", &line, &pair))
            && joined_line("LABEL", &line, &pair).len() <= MAX_LINE;
        if fits {
            line.push(pair);
        } else {
            rest.push((k.clone(), v.clone()));
        }
    }
    if let Some((last, others)) = line.split_last() {
        out.push_str(&joined_line("LABEL", others, last));
    }
    (out, rest)
}

/// The folder of an absolute path (`/` for a top-level entry).
fn folder_of(p: &str) -> &str {
    match p.rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((d, _)) => d,
    }
}

/// Write the Dockerfile.
pub fn write(inputs: &RecipeInputs<'_>) -> Result<Recipe, RecipeError> {
    if !base_ok(inputs.base) {
        return Err(RecipeError::BadBase {
            base: inputs.base.to_owned(),
        });
    }
    let arg_line = format!("ARG {BASE_ARG}={}\n", inputs.base);
    if redacted(&arg_line) {
        return Err(RecipeError::SecretInBase);
    }
    let parsed = Dockerfile::parse(inputs.repository_dockerfile);
    let stage = parsed.final_stage().ok_or(RecipeError::NoStage)?;
    if let Some(arg) = parsed.instructions.iter().find(|i| {
        i.keyword == "ARG"
            && i.args
                .split_whitespace()
                .any(|w| w.split('=').next() == Some(BASE_ARG))
    }) {
        return Err(RecipeError::BaseArgTaken { line: arg.line });
    }
    let unnameable: Vec<&String> = inputs
        .trees
        .iter()
        .chain(&inputs.entries)
        .filter(|p| p.contains('\\'))
        .collect();
    if let Some(first) = unnameable.first() {
        return Err(RecipeError::Unnameable {
            count: unnameable.len(),
            first: (*first).clone(),
        });
    }

    let text = inputs
        .repository_dockerfile
        .strip_prefix('\u{feff}')
        .unwrap_or(inputs.repository_dockerfile);
    let lines: Vec<&str> = text.split('\n').collect();
    let from_line = parsed.instructions[stage.from].line;
    let original_stage = match &stage.name {
        Some(n) => n.clone(),
        None => {
            let l = lines[from_line - 1].trim_end_matches('\r').trim_end();
            if l.ends_with(parsed.escape) {
                return Err(RecipeError::ContinuedFrom { line: from_line });
            }
            ORIGINAL_STAGE.to_owned()
        }
    };
    // The repository's own lines, as written: one the redaction would
    // change cannot be handed over (line: 1-based in the repository's file).
    let own_line = |out: &mut String, line: usize, l: String| {
        if redacted(&l) {
            return Err(RecipeError::SecretInDockerfile { line });
        }
        out.push_str(&l);
        Ok(())
    };
    // Parser directives stay first; `ARG BASE` goes before the first FROM.
    let directives = lines
        .iter()
        .take_while(|l| is_directive(l.trim_end_matches('\r')))
        .count();
    let mut out = String::new();
    let mut refused = Refusals::default();
    for (i, l) in lines[..directives].iter().enumerate() {
        own_line(&mut out, i + 1, format!("{}\n", l.trim_end_matches('\r')))?;
    }
    out.push_str(
        "# The minimal image of this repository's image, written by codegenie from its runtime\n\
         # evidence: the repository's own stages, a pick stage that takes the added units out of the\n\
         # last one, then the base with that one folder added and the original config.\n\
         # Build: docker build --network=none -f THIS_FILE REPOSITORY\n",
    );
    for n in &inputs.notes {
        refused.comment(&mut out, n, "a note");
    }
    out.push_str(&arg_line);
    out.push('\n');
    let body = &lines[directives..];
    for (i, l) in body.iter().enumerate() {
        let line = directives + i + 1;
        let l = l.trim_end_matches('\r');
        let l = if line == from_line && stage.name.is_none() {
            format!("{} AS {ORIGINAL_STAGE}\n", l.trim_end())
        } else {
            format!("{l}\n")
        };
        own_line(&mut out, line, l)?;
    }
    while out.ends_with("\n\n") {
        out.pop();
    }

    // The pick stage.
    // Root reads everything; an original that runs as root needs no USER.
    let root = crate::minimal::base::is_root(&inputs.config.user);
    out.push_str(&format!(
        "\nFROM {original_stage} AS {PICK_STAGE}\n{}",
        if root { "" } else { "USER 0\n" }
    ));
    for r in &inputs.reasons {
        // The unit it is for (`libsqlite3-0 3.40.1-2`), else a neutral word.
        let unit = r.split_once(": ").map_or("a reason", |(u, _)| u);
        refused.comment(&mut out, r, unit);
    }
    let rel = |p: &String| p.trim_start_matches('/').to_owned();
    // What one archive holds: names and whether each is taken with its
    // contents (a tree) or alone (an entry: a file, a link, a folder).
    type Item = (String, bool);
    let chunks = |items: Vec<Item>| {
        let mut chunks: Vec<Vec<Item>> = Vec::new();
        let mut size = 0;
        for item in items {
            // As the line spells it: quotes, `./` and a comma around each
            // (the one `--no-recursion` fits in what PATHS_PER_RUN leaves).
            let cost = serde_json::to_string(&item.0).map_or(item.0.len(), |j| j.len()) + 3;
            if chunks.is_empty() || size + cost > PATHS_PER_RUN {
                chunks.push(Vec::new());
                size = 0;
            }
            size += cost;
            chunks.last_mut().expect("pushed").push(item);
        }
        chunks
    };
    let trees: Vec<Item> = inputs.trees.iter().map(|p| (rel(p), true)).collect();
    let entries: Vec<Item> = inputs.entries.iter().map(|p| (rel(p), false)).collect();
    let gnu = inputs.tar.gnu;
    // GNU tar archives into a second tar that unpacks as it reads (its
    // "compression program", which tar splits into words itself: no
    // shell), so each archive is one step and never lands in a layer of
    // its own; a tar path that word splitting could change keeps the
    // archive file and a second step.
    let piped = gnu
        .then(|| inputs.tar.argv.join(" "))
        .filter(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
        })
        .map(|p| format!("--use-compress-program={p} -x -C / -f -"));
    let create = |archive: &str, items: &[Item]| {
        let mut argv = inputs.tar.argv.clone();
        match &piped {
            Some(unpack) => argv.extend(["-c", "-f", "-", unpack, "-C", "/"].map(String::from)),
            None => argv.extend(["-c", "-f", archive, "-C", "/"].map(String::from)),
        }
        // busybox: one kind of name per archive.
        if !gnu && items.first().is_some_and(|(_, r)| !r) {
            argv.push("--no-recursion".to_owned());
        }
        argv.push("--numeric-owner".to_owned());
        if gnu {
            // Names go in as `./name` (never read as an option), each
            // after the switch that applies to it, and are stored under
            // the pick folder (hard link targets too, not symlink
            // targets), so the archive unpacks at `/` with no WORKDIR.
            argv.push(format!("--transform=s,^[.]/,{}/,S", &PICK_DIR[1..]));
            let mut recursive = true;
            for (p, r) in items {
                if *r != recursive {
                    recursive = *r;
                    argv.push(if *r { "--recursion" } else { "--no-recursion" }.to_owned());
                }
                argv.push(format!("./{p}"));
            }
        } else {
            argv.push("--".to_owned());
            argv.extend(items.iter().map(|(p, _)| p.clone()));
        }
        argv
    };
    let batches: Vec<Vec<Item>> = if gnu {
        chunks(trees.into_iter().chain(entries).collect())
    } else {
        chunks(trees).into_iter().chain(chunks(entries)).collect()
    };
    // Counted before any line is written or scanned (names past the limit
    // are tens of MB): a chunk whose names the redaction would all refuse
    // still counts, the limit being on the names asked for.
    let per_chunk = if piped.is_some() { 1 } else { 2 };
    if batches.len() * per_chunk > MAX_PICK_RUNS {
        return Err(RecipeError::TooManyPaths {
            paths: inputs.trees.len() + inputs.entries.len(),
        });
    }
    let mut archives = Vec::new();
    let mut runs = Vec::new();
    for mut chunk in batches {
        let archive = format!("/.codegenie-pick-{}.tar", archives.len());
        let line = |items: &[Item]| {
            format!(
                "RUN {}\n",
                json_array_lines(&create(&archive, items), parsed.escape)
            )
        };
        // One scan of the whole line; path by path only when it fails.
        if redacted(&line(&chunk)) {
            chunk.retain(|item| {
                let alone = !redacted(&line(std::slice::from_ref(item)));
                if !alone {
                    refused.refuse(
                        &mut out,
                        "RUN",
                        folder_of(&format!("/{}", item.0)),
                        SECRET_PATH,
                    );
                }
                alone
            });
            if chunk.is_empty() {
                continue;
            }
        }
        runs.push(create(&archive, &chunk));
        archives.push(archive);
    }
    for archive in archives.iter().filter(|_| piped.is_none()) {
        let mut argv = inputs.tar.argv.clone();
        argv.extend(["-x", "-f", archive].map(String::from));
        if gnu {
            argv.extend(["-C", "/"].map(String::from));
        }
        runs.push(argv);
    }
    // busybox's archives unpack in the pick folder, made by WORKDIR; they
    // are made in the original's own working folder before it: the engine
    // makes an image's WORKDIR in each container of it when its layers
    // lack the folder (a build step after FROM commits it, as the trace
    // image's labels do), so a name the original's index holds is there
    // when `tar -c` runs.
    for (i, argv) in runs.iter().enumerate() {
        if i == archives.len() && !gnu {
            out.push_str(&format!("WORKDIR {PICK_DIR}\n"));
        }
        out.push_str(&format!("RUN {}\n", json_array_lines(argv, parsed.escape)));
    }

    // The minimal image.
    // The config but WORKDIR comes before the one COPY: the classic
    // builder commits each of its instructions as a step, and on a storage
    // driver without native diffs a commit walks the whole image, which is
    // the base's alone before the COPY (docs/architecture.md, "The
    // Dockerfile is the product"). The COPY ignores USER, so the image is
    // the same.
    out.push_str(&format!("\nFROM ${{{BASE_ARG}}}\n"));
    // One instruction each for ENV, LABEL and EXPOSE, however many values:
    // the classic builder commits a layer per instruction, which costs
    // seconds each on a storage driver without native diffs. A value is
    // added when the line with it survives the redaction (so two values
    // that look like a secret together are caught too).
    let (mut env, mut labels, mut ports) = (Vec::new(), Vec::new(), Vec::new());
    let base_env: BTreeSet<&String> = inputs.base_config.env.iter().flatten().collect();
    for kv in inputs.config.env.iter().flatten() {
        if base_env.contains(kv) {
            continue;
        }
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        if !env_key_ok(k) {
            refused.refuse(&mut out, "ENV", k, "the name is not [A-Za-z_][A-Za-z0-9_]*");
        } else if !quotable(v) {
            refused.refuse(
                &mut out,
                "ENV",
                k,
                "the value holds a quote, backslash, `$`, backtick, or a control or bidirectional character",
            );
        } else {
            let pair = format!("{k}=\"{v}\"");
            if secret_looking(k, v) || redacted(&joined_line("ENV", &env, &pair)) {
                refused.refuse(&mut out, "ENV", k, SECRET_VALUE);
            } else {
                env.push(pair);
            }
        }
    }
    for (k, v) in inputs.config.labels.iter().flatten() {
        // Ours are set at build time ([`with_labels`]), not carried over.
        if k.starts_with("codegenie.") {
            continue;
        }
        if !label_key_ok(k) {
            refused.refuse(&mut out, "LABEL", k, "the key is not [A-Za-z0-9._/-]+");
        } else if !quotable(v) {
            refused.refuse(
                &mut out,
                "LABEL",
                k,
                "the value holds a quote, backslash, `$`, backtick, or a control or bidirectional character",
            );
        } else {
            let pair = format!("{k}=\"{v}\"");
            if redacted(&joined_line("LABEL", &labels, &pair)) {
                refused.refuse(&mut out, "LABEL", k, SECRET_VALUE);
            } else {
                labels.push(pair);
            }
        }
    }
    for port in inputs.config.exposed_ports.iter().flat_map(|p| p.keys()) {
        // A port is digits and a protocol: nothing the redaction changes.
        if port_ok(port) {
            ports.push(port.clone());
        } else {
            refused.refuse(
                &mut out,
                "EXPOSE",
                port,
                "not a port (NUMBER[/tcp|udp|sctp])",
            );
        }
    }
    for (keyword, values) in [("ENV", &env), ("LABEL", &labels), ("EXPOSE", &ports)] {
        // Another instruction only where one line would be too long.
        let mut line: Vec<String> = Vec::new();
        for v in values {
            if !line.is_empty() && joined_line(keyword, &line, v).len() > MAX_LINE {
                let (last, rest) = line.split_last().expect("not empty");
                out.push_str(&joined_line(keyword, rest, last));
                line.clear();
            }
            line.push(v.clone());
        }
        if let Some((last, rest)) = line.split_last() {
            out.push_str(&joined_line(keyword, rest, last));
        }
    }
    // A single value's line: written, or refused without the value.
    let single =
        |out: &mut String, refused: &mut Refusals, keyword: &str, what: &str, line: String| {
            if redacted(&line) {
                refused.refuse(out, keyword, what, SECRET_VALUE);
            } else {
                out.push_str(&line);
            }
        };
    let user = inputs
        .user
        .clone()
        .unwrap_or_else(|| inputs.config.user.clone());
    if !user.is_empty() {
        if user_ok(&user) {
            single(
                &mut out,
                &mut refused,
                "USER",
                "the user",
                format!("USER {user}\n"),
            );
        } else {
            refused.refuse(&mut out, "USER", &user, "not a user name or id");
        }
    }
    // Exec form, set explicitly: the base's own entrypoint (distroless
    // `python3`, `nodejs`) would otherwise run the original's cmd.
    match &inputs.config.entrypoint {
        Some(e) if !e.is_empty() => single(
            &mut out,
            &mut refused,
            "ENTRYPOINT",
            "its arguments",
            format!("ENTRYPOINT {}\n", json_array(e)),
        ),
        _ if inputs
            .base_config
            .entrypoint
            .as_ref()
            .is_some_and(|e| !e.is_empty()) =>
        {
            out.push_str("ENTRYPOINT []\n")
        }
        _ => {}
    }
    if let Some(c) = &inputs.config.cmd {
        single(
            &mut out,
            &mut refused,
            "CMD",
            "its arguments",
            format!("CMD {}\n", json_array(c)),
        );
    }
    if !archives.is_empty() {
        out.push_str(&format!(
            "COPY --from={PICK_STAGE} {}\n",
            json_array(&[format!("{PICK_DIR}/"), "/".to_owned()])
        ));
    }
    // WORKDIR after the COPY: before it, the folder would be made on the
    // base as a layer of its own; after it, the folder is the COPY's and
    // the step adds no layer.
    let wd = &inputs.config.working_dir;
    if !wd.is_empty() {
        if workdir_ok(wd) {
            single(
                &mut out,
                &mut refused,
                "WORKDIR",
                "the working folder",
                format!("WORKDIR {wd}\n"),
            );
        } else {
            refused.refuse(
                &mut out,
                "WORKDIR",
                wd,
                "the folder holds characters other than letters, digits and `/._-+@`",
            );
        }
    }
    if let Some((i, l)) = out.lines().enumerate().find(|(_, l)| l.len() > MAX_LINE) {
        return Err(RecipeError::LineTooLong {
            line: i + 1,
            bytes: l.len(),
        });
    }
    // The whole file, last: what passed value by value may still combine
    // across values of one line (a `--token` path before another).
    if let Some(line) = first_redacted_line(&out) {
        return Err(RecipeError::WouldRedact { line });
    }
    Ok(Recipe {
        text: out,
        original_stage,
        refused: refused.0,
        pick_runs: runs.len(),
    })
}

/// A parser directive line (`# syntax=...`, `# escape=...`).
fn is_directive(l: &str) -> bool {
    let Some(rest) = l.trim_start().strip_prefix('#') else {
        return false;
    };
    match rest.split_once('=') {
        Some((name, _)) => {
            let name = name.trim();
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a recipe refused, as (instruction, what) pairs.
    fn refused_pairs(r: &Recipe) -> Vec<(&str, &str)> {
        r.refused
            .iter()
            .map(|f| (f.instruction.as_str(), f.what.as_str()))
            .collect()
    }

    fn config() -> ImageConfig {
        ImageConfig {
            cmd: Some(vec!["node".into(), "/app/server.js".into()]),
            env: Some(vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                "NODE_ENV=production".into(),
            ]),
            working_dir: "/app".into(),
            exposed_ports: Some([("3000/tcp".to_owned(), serde_json::json!({}))].into()),
            ..ImageConfig::default()
        }
    }

    fn inputs<'a>(
        dockerfile: &'a str,
        config: &'a ImageConfig,
        base: &'a ImageConfig,
    ) -> RecipeInputs<'a> {
        RecipeInputs {
            repository_dockerfile: dockerfile,
            base: "gcr.io/distroless/cc-debian12:nonroot",
            config,
            base_config: base,
            user: Some("65532".into()),
            tar: TarProgram {
                argv: vec!["/usr/bin/tar".into()],
                gnu: true,
            },
            trees: ["/app".to_owned()].into(),
            entries: [
                "/usr/bin/node".to_owned(),
                "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0".to_owned(),
            ]
            .into(),
            reasons: vec!["libsqlite3-0 3.40.1-2: /usr/lib/x86_64-linux-gnu/libsqlite3.so.0 mapped by /usr/bin/node in startup".into()],
            notes: vec![],
        }
    }

    const DOCKERFILE: &str = "# syntax=docker/dockerfile:1\nFROM node:18 AS build\nRUN true\n\nFROM codegenie-fixture-node:bookworm\nWORKDIR /app\nCMD [\"node\", \"/app/server.js\"]\n";

    #[test]
    fn the_repository_stages_come_first_then_the_pick_and_the_base() {
        let (c, b) = (config(), ImageConfig::default());
        let r = write(&inputs(DOCKERFILE, &c, &b)).unwrap();
        let t = &r.text;
        assert!(
            t.starts_with("# syntax=docker/dockerfile:1\n# The minimal image"),
            "{t}"
        );
        let arg = t
            .find("ARG BASE=gcr.io/distroless/cc-debian12:nonroot\n")
            .unwrap();
        assert!(arg < t.find("FROM node:18 AS build").unwrap());
        assert!(
            t.contains("FROM codegenie-fixture-node:bookworm AS original\n"),
            "{t}"
        );
        // The original runs as root: no USER step in the pick stage.
        assert!(t.contains("FROM original AS codegenie-pick\n# "), "{t}");
        // GNU tar: one archive of trees then entries, stored under the
        // pick folder, unpacked at `/` by a second tar as it is written:
        // one step, no archive file, no WORKDIR.
        assert!(t.contains(
            r#"RUN ["/usr/bin/tar","-c","-f","-","--use-compress-program=/usr/bin/tar -x -C / -f -","-C","/","--numeric-owner","--transform=s,^[.]/,.codegenie-pick/,S","./app","--no-recursion","./usr/bin/node","./usr/lib/x86_64-linux-gnu/libsqlite3.so.0"]
"#
        ), "{t}");
        assert!(
            !t.contains(".tar\"") && !t.contains("WORKDIR /.codegenie-pick"),
            "{t}"
        );
        assert_eq!(r.pick_runs, 1);
        // A tar path that word splitting could change keeps the archive
        // file and a step to unpack it.
        let r2 = write(&RecipeInputs {
            tar: TarProgram {
                argv: vec!["/opt/my tar/bin/tar".into()],
                gnu: true,
            },
            ..inputs(DOCKERFILE, &c, &b)
        })
        .unwrap();
        assert!(
            r2.text.contains(
                r#"RUN ["/opt/my tar/bin/tar","-x","-f","/.codegenie-pick-0.tar","-C","/"]"#
            ),
            "{}",
            r2.text
        );
        assert_eq!(r2.pick_runs, 2);
        // The config on the base, then the one COPY, last.
        assert!(t.contains("\nFROM ${BASE}\nENV "), "{t}");
        assert!(t.ends_with(
            "CMD [\"node\",\"/app/server.js\"]\nCOPY --from=codegenie-pick [\"/.codegenie-pick/\",\"/\"]\nWORKDIR /app\n"
        ), "{t}");
        assert!(t.contains("NODE_ENV=\"production\"\n"), "{t}");
        // The base sets no PATH here: the original's is written.
        assert!(t.contains("ENV PATH=\"/usr/local/sbin:"), "{t}");
        assert!(
            t.contains("EXPOSE 3000/tcp\nUSER 65532\nCMD [\"node\",\"/app/server.js\"]\n"),
            "{t}"
        );
        assert!(t.contains("# \"libsqlite3-0 3.40.1-2: /usr/lib/x86_64-linux-gnu/libsqlite3.so.0 mapped by /usr/bin/node in startup\"\n"));
        assert_eq!(r.original_stage, "original");
        assert!(r.refused.is_empty());
        // A named last stage keeps its name.
        let named = DOCKERFILE.replace("bookworm\n", "bookworm AS runtime\n");
        let r = write(&inputs(&named, &c, &b)).unwrap();
        assert_eq!(r.original_stage, "runtime");
        assert!(r.text.contains("FROM runtime AS codegenie-pick"));
        assert!(!r.text.contains("AS original"));
    }

    #[test]
    fn busybox_tar_takes_one_kind_of_name_per_archive_and_unpacks_in_the_pick_folder() {
        let (c, b) = (config(), ImageConfig::default());
        let mut i = inputs(DOCKERFILE, &c, &b);
        i.tar = TarProgram {
            argv: vec!["/bin/busybox".into(), "tar".into()],
            gnu: false,
        };
        let t = write(&i).unwrap().text;
        assert!(t.contains(
            r#"RUN ["/bin/busybox","tar","-c","-f","/.codegenie-pick-0.tar","-C","/","--numeric-owner","--","app"]"#
        ), "{t}");
        // Archives made in the original's working folder, extracted in ours.
        assert!(t.contains(
            r#"RUN ["/bin/busybox","tar","-c","-f","/.codegenie-pick-1.tar","-C","/","--no-recursion","--numeric-owner","--","usr/bin/node","usr/lib/x86_64-linux-gnu/libsqlite3.so.0"]
WORKDIR /.codegenie-pick
RUN ["/bin/busybox","tar","-x","-f","/.codegenie-pick-0.tar"]
RUN ["/bin/busybox","tar","-x","-f","/.codegenie-pick-1.tar"]
"#
        ), "{t}");
        assert!(!t.contains("--transform"), "{t}");
    }

    #[test]
    fn labels_join_the_file_as_one_last_step_or_go_to_the_options() {
        let (c, b) = (config(), ImageConfig::default());
        let r = write(&inputs(DOCKERFILE, &c, &b)).unwrap();
        let ours = |repo: &str| {
            vec![
                ("codegenie.minimal-of".to_owned(), "sha256:abc".to_owned()),
                ("codegenie.repository".to_owned(), repo.to_owned()),
            ]
        };
        // Both in one instruction, the last of the last stage.
        let (built, rest) = with_labels(&r.text, &ours("/srv/my app"));
        assert!(rest.is_empty(), "{rest:?}");
        assert_eq!(
            built.strip_suffix(
                "LABEL codegenie.minimal-of=\"sha256:abc\" codegenie.repository=\"/srv/my app\"\n"
            ),
            Some(r.text.as_str())
        );
        let parsed = crate::dockerfile::Dockerfile::parse(&built);
        let last = parsed.instructions.last().unwrap();
        assert_eq!(last.keyword, "LABEL");
        assert_eq!(
            parsed.final_stage().unwrap().body.end,
            parsed.instructions.len()
        );
        assert_eq!(
            parsed
                .instructions
                .iter()
                .filter(|i| i.keyword == "LABEL")
                .count(),
            1,
            "{built}"
        );
        // A value the line would read otherwise goes to `--label`, whole:
        // nothing of it reaches the file.
        for hostile in [
            "/srv/a\"b",
            "/srv/$HOME",
            "/srv/a\\b",
            "/srv/a`b",
            "/srv/a\nRUN echo INJECTED",
            "/srv/\u{202e}evil",
            "/srv/ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        ] {
            let (built, rest) = with_labels(&r.text, &ours(hostile));
            assert_eq!(rest, ours(hostile)[1..].to_vec(), "{hostile:?}");
            assert!(
                built.ends_with("\nLABEL codegenie.minimal-of=\"sha256:abc\"\n"),
                "{built}"
            );
            assert!(!built.contains(hostile), "{hostile:?}");
        }
        // A file that does not end on a whole line gets one first; no
        // labels, no line.
        let (built, _) = with_labels("FROM x\nCMD [\"a\"]", &ours("/r"));
        assert!(built.starts_with("FROM x\nCMD [\"a\"]\nLABEL "), "{built}");
        assert_eq!(with_labels(&r.text, &[]), (r.text.clone(), Vec::new()));
    }

    #[test]
    fn values_from_the_image_reach_the_file_as_json_or_are_refused() {
        let hostile = "x\nRUN echo INJECTED > /pwned #";
        let mut c = config();
        c.env.as_mut().unwrap().extend([
            format!("EVIL={hostile}"),
            "DOLLAR=$HOME".to_owned(),
            "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_owned(),
            "DB_PASSWORD=hunter2hunter2".to_owned(),
            "BIDI=/srv/\u{202e}txt.exe".to_owned(),
        ]);
        c.working_dir = format!("/app{hostile}");
        c.user = format!("root{hostile}");
        c.exposed_ports
            .as_mut()
            .unwrap()
            .insert(format!("80{hostile}"), serde_json::json!({}));
        c.labels = Some([("owner".to_owned(), hostile.to_owned())].into());
        c.cmd = Some(vec!["node".into(), hostile.into()]);
        let b = ImageConfig::default();
        let mut i = inputs(DOCKERFILE, &c, &b);
        i.user = None;
        i.entries.insert(format!("/app/{hostile}"));
        i.reasons.push(format!("app: /app/{hostile} read"));
        let r = write(&i).unwrap();
        for line in r.text.lines() {
            assert!(
                !line.starts_with("RUN echo"),
                "an injected line: {}",
                r.text
            );
        }
        // The original does not run as root: the pick stage reads as root.
        assert!(r.text.contains("FROM original AS codegenie-pick\nUSER 0\n"));
        assert!(
            !r.text.contains("hunter2") && !r.text.contains("wJalrXUtnFEMI"),
            "{}",
            r.text
        );
        assert!(
            r.text.contains(
                "# refused: ENV \"AWS_SECRET_ACCESS_KEY\", \"the value looks like a secret"
            ),
            "{}",
            r.text
        );
        // The refusal comments themselves survive the redaction (a
        // `"AWS_SECRET_ACCESS_KEY": "..."` comment would not).
        assert_eq!(first_redacted_line(&r.text), None, "{}", r.text);
        let refused = refused_pairs(&r);
        for want in [
            ("ENV", "EVIL"),
            ("ENV", "DOLLAR"),
            ("ENV", "AWS_SECRET_ACCESS_KEY"),
            ("ENV", "DB_PASSWORD"),
            ("ENV", "BIDI"),
            ("LABEL", "owner"),
        ] {
            assert!(refused.contains(&want), "{want:?} refused: {refused:?}");
        }
        for inst in ["WORKDIR", "USER", "EXPOSE"] {
            assert!(
                refused.iter().any(|(i, _)| *i == inst),
                "{inst}: {refused:?}"
            );
        }
        // The cmd and the path went through JSON: one line each, escaped.
        assert!(
            r.text
                .contains(r#"CMD ["node","x\nRUN echo INJECTED > /pwned #"]"#),
            "{}",
            r.text
        );
        assert!(r
            .text
            .contains(r#""./app/x\nRUN echo INJECTED > /pwned #""#));
        // The control: the same value written raw is an instruction line.
        let raw = format!("ENV EVIL={hostile}\n");
        assert!(raw.lines().any(|l| l.starts_with("RUN echo")));
    }

    /// The text as the writer would put it on disk.
    fn as_written(text: &str) -> String {
        let mut out = Vec::new();
        crate::redact::redact_stream(&mut text.as_bytes(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_file_is_written_as_the_redaction_leaves_it() {
        let (c, b) = (config(), ImageConfig::default());
        let mut i = inputs(DOCKERFILE, &c, &b);
        i.notes = vec!["base: gcr.io/distroless/cc-debian12:nonroot".into()];
        let r = write(&i).unwrap();
        assert_eq!(as_written(&r.text), r.text);
        assert_eq!(first_redacted_line(&r.text), None);
        // The check sees a line the redaction changes, and which.
        let dirty = format!("{}ENV A=\"token=abc123\"\n", r.text);
        assert_eq!(
            first_redacted_line(&dirty),
            Some(r.text.lines().count() + 1)
        );
        assert_ne!(as_written(&dirty), dirty);
    }

    #[test]
    fn values_the_redaction_would_change_are_refused_without_the_value() {
        const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        const AWS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
        let mut c = config();
        c.labels = Some(
            [
                ("aws_secret_access_key".to_owned(), AWS_SECRET.to_owned()),
                ("build.key-id".to_owned(), AWS_KEY_ID.to_owned()),
                ("maintainer".to_owned(), "team@example.com".to_owned()),
            ]
            .into(),
        );
        c.entrypoint = Some(vec!["/usr/bin/node".into()]);
        c.cmd = Some(vec!["server.js".into(), "--password=hunter2hunter2".into()]);
        c.working_dir = format!("/srv/{AWS_KEY_ID}");
        let b = ImageConfig::default();
        let mut i = inputs(DOCKERFILE, &c, &b);
        i.entries.insert(format!("/etc/app/{AWS_KEY_ID}.json"));
        i.reasons
            .push("app: /app/run.sh read with token=abc123def".to_owned());
        let r = write(&i).unwrap();
        let t = &r.text;
        assert_eq!(as_written(t), *t, "the file built is the file written");
        for secret in [AWS_SECRET, AWS_KEY_ID, "hunter2", "abc123def"] {
            assert!(!t.contains(secret), "{secret}: {t}");
            for f in &r.refused {
                assert!(!f.what.contains(secret) && !f.reason.contains(secret));
            }
        }
        let refused = refused_pairs(&r);
        for want in [
            ("LABEL", "aws_secret_access_key"),
            ("LABEL", "build.key-id"),
            ("CMD", "its arguments"),
            ("WORKDIR", "the working folder"),
            ("RUN", "/etc/app"),
            ("#", "app"),
        ] {
            assert!(refused.contains(&want), "{want:?} refused: {refused:?}");
        }
        assert_eq!(r.refused.len(), 6, "{refused:?}");
        // The controls: a plain label, the entrypoint, the other paths and
        // reasons stay.
        assert!(t.contains("LABEL maintainer=\"team@example.com\"\n"), "{t}");
        assert!(t.contains("ENTRYPOINT [\"/usr/bin/node\"]\n"), "{t}");
        assert!(
            !t.contains("\nCMD [\"server.js\"") && !t.contains("\nWORKDIR /srv"),
            "{t}"
        );
        assert!(
            t.contains(
                r#""--no-recursion","./usr/bin/node","./usr/lib/x86_64-linux-gnu/libsqlite3.so.0"]"#
            ),
            "{t}"
        );
        assert!(t.contains("# \"libsqlite3-0 3.40.1-2: "), "{t}");
        // Without the secrets, the same values are written.
        c.labels = Some([("build.key-id".to_owned(), "v1".to_owned())].into());
        c.cmd = Some(vec!["server.js".into(), "--port=3000".into()]);
        c.working_dir = "/srv/app".into();
        let r = write(&inputs(DOCKERFILE, &c, &b)).unwrap();
        assert!(r.refused.is_empty(), "{:?}", r.refused);
        assert!(r.text.contains("LABEL build.key-id=\"v1\"\n"));
        assert!(r.text.contains("CMD [\"server.js\",\"--port=3000\"]\n"));
    }

    #[test]
    fn a_secret_in_the_repository_dockerfile_is_a_typed_error_with_its_line() {
        let (c, b) = (config(), ImageConfig::default());
        let secret =
            "FROM node:18\nWORKDIR /app\nENV TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789\nCMD [\"node\"]\n";
        let err = write(&inputs(secret, &c, &b)).unwrap_err();
        assert_eq!(err, RecipeError::SecretInDockerfile { line: 3 });
        assert!(!err.to_string().contains("ghp_"), "{err}");
        // A directive line counts too, and so does a private key's first line.
        let directive = "# syntax=docker/dockerfile:1 password=hunter2\nFROM node:18\n";
        assert_eq!(
            write(&inputs(directive, &c, &b)),
            Err(RecipeError::SecretInDockerfile { line: 1 })
        );
        let pem = "FROM node:18\nRUN <<EOF\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\nEOF\n";
        assert_eq!(
            write(&inputs(pem, &c, &b)),
            Err(RecipeError::SecretInDockerfile { line: 3 })
        );
        // The control: the same file with the value at run time is written.
        let clean = secret.replace(
            "ENV TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "ENV TOKEN_FILE=/run/secrets/token",
        );
        let r = write(&inputs(&clean, &c, &b)).unwrap();
        assert!(r.text.contains("ENV TOKEN_FILE=/run/secrets/token\n"));
        // A base with credentials in it is refused too, without its value.
        let mut i = inputs(DOCKERFILE, &c, &b);
        i.base = "registry.example:5000/x@sha256:AKIAIOSFODNN7EXAMPLE";
        assert_eq!(write(&i), Err(RecipeError::SecretInBase));
    }

    #[test]
    fn paths_that_combine_into_a_secret_are_a_typed_error() {
        let (c, b) = (config(), ImageConfig::default());
        let mut i = inputs(DOCKERFILE, &c, &b);
        // Each passes alone; `"--token","usr/bin/node"` is a secret flag
        // (busybox's names are written bare after `--`; GNU's as `./NAME`).
        i.tar = TarProgram {
            argv: vec!["/usr/bin/tar".into()],
            gnu: false,
        };
        i.entries.insert("/--token".into());
        let Err(RecipeError::WouldRedact { line }) = write(&i) else {
            panic!("{:?}", write(&i));
        };
        i.entries.remove("/--token");
        let text = write(&i).unwrap().text;
        assert!(
            text.lines()
                .nth(line - 1)
                .unwrap()
                .starts_with("RUN [\"/usr/bin/tar\",\"-c\""),
            "{line}: {text}"
        );
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let (c, b) = (config(), ImageConfig::default());
        let mut i = inputs("# nothing here\n", &c, &b);
        assert_eq!(write(&i), Err(RecipeError::NoStage));
        i.repository_dockerfile = "ARG BASE=x\nFROM $BASE\n";
        assert_eq!(write(&i), Err(RecipeError::BaseArgTaken { line: 1 }));
        i.repository_dockerfile = "FROM \\\n  busybox\n";
        assert_eq!(write(&i), Err(RecipeError::ContinuedFrom { line: 1 }));
        i.repository_dockerfile = DOCKERFILE;
        i.base = "x\nRUN y";
        assert!(matches!(write(&i), Err(RecipeError::BadBase { .. })));
        i.base = "scratch";
        i.entries.insert("/etc/caf\\xe9".into());
        assert!(matches!(
            write(&i),
            Err(RecipeError::Unnameable { count: 1, .. })
        ));
    }

    #[test]
    fn many_paths_are_one_run_over_lines_and_a_base_entrypoint_is_reset() {
        let c = config();
        let b = ImageConfig {
            entrypoint: Some(vec!["/usr/bin/python3.11".into()]),
            ..ImageConfig::default()
        };
        // 5,000 names, 370 KB of them: one step, continued over lines.
        let mut i = inputs(DOCKERFILE, &c, &b);
        i.entries = (0..5000)
            .map(|n| {
                format!("/usr/lib/python3/dist-packages/pkg/module_{n:05}_with_a_long_name.py")
            })
            .collect();
        let r = write(&i).unwrap();
        assert_eq!(r.pick_runs, 1);
        assert_pick_reads(&r.text, &i, 1);
        assert!(r
            .text
            .contains("ENTRYPOINT []\nCMD [\"node\",\"/app/server.js\"]\n"));
        // Under a backtick escape, the lines continue with a backtick.
        let backtick = format!("# escape=`\n{DOCKERFILE}");
        let mut j = inputs(&backtick, &c, &b);
        j.entries = i.entries.clone();
        let t = write(&j).unwrap().text;
        assert!(t.contains(",`\n  \"./usr/lib/python3"), "{t}");
        assert!(!t.contains(",\\\n"));
        assert_pick_reads(&t, &j, 1);
        // Past what one step's arguments may hold: more steps.
        i.entries = (0..20_000)
            .map(|n| {
                format!(
                    "/usr/lib/python3/dist-packages/pkg/module_{n:05}_{:x<40}.py",
                    ""
                )
            })
            .collect();
        let r = write(&i).unwrap();
        assert!(r.pick_runs >= 3, "{}", r.pick_runs);
        assert_pick_reads(&r.text, &i, r.pick_runs);
        // A base with the same PATH: not repeated.
        let b = ImageConfig {
            env: Some(vec![c.env.as_ref().unwrap()[0].clone()]),
            ..ImageConfig::default()
        };
        let r = write(&inputs(DOCKERFILE, &c, &b)).unwrap();
        assert!(!r.text.contains("ENV PATH"), "{}", r.text);
        i.entries = (0..8_000)
            .map(|n| format!("/f/{n:0>8}/{}", "d/".repeat(1800)))
            .collect();
        assert!(matches!(write(&i), Err(RecipeError::TooManyPaths { .. })));
    }

    /// Every line of `text` is one the engine's parser reads, and the pick
    /// stage's `runs` steps, read as the engine joins continued lines,
    /// archive each added name of `i` once.
    fn assert_pick_reads(text: &str, i: &RecipeInputs<'_>, runs: usize) {
        for l in text.lines() {
            assert!(l.len() <= MAX_LINE, "{}", l.len());
        }
        let parsed = Dockerfile::parse(text);
        let pick = parsed
            .stages
            .iter()
            .find(|s| s.name.as_deref() == Some(PICK_STAGE))
            .expect("a pick stage");
        let steps: Vec<Vec<String>> = parsed.instructions[pick.from + 1..]
            .iter()
            .take_while(|i| i.keyword != "FROM")
            .filter(|i| i.keyword == "RUN")
            .map(|i| serde_json::from_str(&i.args).expect("a JSON array"))
            .collect();
        assert_eq!(steps.len(), runs);
        let mut named: Vec<&str> = steps
            .iter()
            .flatten()
            .filter_map(|a| a.strip_prefix("./"))
            .collect();
        named.sort_unstable();
        let mut want: Vec<&str> = i.trees.iter().chain(&i.entries).map(|e| &e[1..]).collect();
        want.sort_unstable();
        assert_eq!(named, want);
    }

    #[test]
    fn no_line_is_longer_than_the_engine_reads() {
        // 2,000 ENV values of 40 bytes: more than one line holds.
        let mut c = config();
        let values: Vec<String> = (0..2000).map(|n| format!("V{n:05}={n:0>32}")).collect();
        c.env = Some(values.clone());
        let b = ImageConfig::default();
        let t = write(&inputs(DOCKERFILE, &c, &b)).unwrap().text;
        let env: Vec<&str> = t.lines().filter(|l| l.starts_with("ENV ")).collect();
        assert!(env.len() > 1, "{}", env.len());
        assert!(env.iter().all(|l| l.len() <= MAX_LINE));
        // Every value once, in the image's order.
        let written: Vec<String> = env
            .iter()
            .flat_map(|l| l[4..].split(' '))
            .map(|p| p.replace('"', ""))
            .collect();
        assert_eq!(written, values);
        // A single value over the limit is a typed error naming its line;
        // the control, just under it, is written.
        let mut c = config();
        c.cmd = Some(vec!["x".repeat(MAX_LINE)]);
        let Err(RecipeError::LineTooLong { line, bytes }) = write(&inputs(DOCKERFILE, &c, &b))
        else {
            panic!("a {}-byte CMD was written", MAX_LINE);
        };
        assert!(bytes > MAX_LINE && line > 1, "{line} {bytes}");
        c.cmd = Some(vec!["x".repeat(MAX_LINE - 16)]);
        assert!(write(&inputs(DOCKERFILE, &c, &b)).is_ok());
    }

    /// `K="v" K2="v2"`: every pair's key passes `key`, every value is quotable.
    fn pairs_ok(rest: &str, key: fn(&str) -> bool) -> bool {
        let mut r = rest;
        while !r.is_empty() {
            let Some((k, after)) = r.split_once("=\"") else {
                return false;
            };
            let Some((v, next)) = after.split_once('"') else {
                return false;
            };
            if !key(k) || !quotable(v) {
                return false;
            }
            r = match next.strip_prefix(' ') {
                Some(n) if !n.is_empty() => n,
                None if next.is_empty() => "",
                _ => return false,
            };
        }
        !rest.is_empty()
    }

    /// Every line written after the repository's stages: a comment as a
    /// JSON string or a refusal, JSON arrays, or a value that passed its
    /// charset. Nothing else.
    fn only_safe_lines(text: &str) -> Result<(), String> {
        let ours = text
            .split("\nFROM original AS codegenie-pick\n")
            .nth(1)
            .ok_or("no pick stage")?;
        for line in ours.lines().filter(|l| !l.is_empty()) {
            let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
            let array = || serde_json::from_str::<Vec<String>>(rest).is_ok();
            let ok = match keyword {
                "#" => {
                    serde_json::from_str::<String>(rest).is_ok()
                        || rest
                            .strip_prefix("refused: ")
                            .and_then(|r| r.split_once(' '))
                            .is_some_and(|(_, r)| !r.is_empty())
                }
                "RUN" | "CMD" | "ENTRYPOINT" => array(),
                "COPY" => line == "COPY --from=codegenie-pick [\"/.codegenie-pick/\",\"/\"]",
                "FROM" => rest == "${BASE}",
                "USER" => user_ok(rest) || rest == "0",
                "WORKDIR" => workdir_ok(rest) || rest == PICK_DIR,
                "ENV" => pairs_ok(rest, env_key_ok),
                "LABEL" => pairs_ok(rest, label_key_ok),
                "EXPOSE" if rest.split(' ').all(port_ok) => true,
                _ => false,
            };
            if !ok {
                return Err(format!("unsafe line {line:?}"));
            }
        }
        Ok(())
    }

    #[test]
    fn the_line_check_refuses_a_raw_instruction() {
        let pick = "FROM x\nFROM original AS codegenie-pick\n";
        assert!(only_safe_lines(&format!("{pick}RUN echo INJECTED > /pwned\n")).is_err());
        assert!(only_safe_lines(&format!("{pick}ENV A=\"$(id)\"\n")).is_err());
        assert!(only_safe_lines(&format!("{pick}# a raw comment\n")).is_err());
        assert!(only_safe_lines(&format!("{pick}RUN [\"tar\"]\nENV A=\"b\"\n")).is_ok());
    }

    /// Characters a hostile image can put in a value: line breaks and other
    /// controls, quotes, escapes, substitutions, non-ASCII (a bidi override,
    /// a line separator), and the ones the shapes check for.
    const HOSTILE: &[char] = &[
        '\n', '\r', '\t', '\0', '\x1b', '\x7f', '\u{85}', '\u{2028}', '\u{202e}', '"', '\'', '\\',
        '$', '`', '{', '}', '=', '#', ' ', '/', ':', '@', 'é', '字', '🦀',
    ];

    /// Up to `max` characters: plain ones, [`HOSTILE`] ones and any at all.
    fn hostile(max: usize) -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let c = prop_oneof![
            3 => proptest::char::range('a', 'z'),
            1 => proptest::char::range('0', '9'),
            2 => proptest::sample::select(HOSTILE),
            1 => any::<char>(),
        ];
        proptest::collection::vec(c, 0..=max).prop_map(String::from_iter)
    }

    /// A value of `shape` (one that passes its check, so the written line
    /// is reached) or a hostile one.
    fn shaped_or_hostile(
        shape: &'static str,
        max: usize,
    ) -> impl proptest::strategy::Strategy<Value = String> {
        proptest::prop_oneof![shape, hostile(max)]
    }

    /// Every character of `text` after the repository's stages that Docker's
    /// parser or a terminal reads as more than text: C0 controls but the
    /// line feed (JSON escapes them; a charset check refuses them).
    fn raw_controls(text: &str) -> Vec<char> {
        let ours = text
            .split("\nFROM original AS codegenie-pick\n")
            .nth(1)
            .unwrap_or(text);
        ours.chars().filter(|c| *c != '\n' && *c < ' ').collect()
    }

    #[test]
    fn the_hostile_strategy_makes_what_it_says() {
        use proptest::strategy::{Strategy, ValueTree};
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let all: String = (0..500)
            .map(|_| hostile(24).new_tree(&mut runner).unwrap().current())
            .collect();
        for c in ['\n', '\r', '\0', '"', '\\', '$', '`', 'é'] {
            assert!(all.contains(c), "{c:?} never generated");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_value_from_the_image_gives_only_safe_lines(
            env in proptest::collection::vec(
                (shaped_or_hostile("[A-Z_][A-Z0-9_]{0,8}", 12), hostile(24)),
                0..6,
            ),
            labels in proptest::collection::btree_map(
                shaped_or_hostile("[a-z][a-z0-9./_-]{0,10}", 12),
                hostile(24),
                0..4,
            ),
            ports in proptest::collection::btree_set(
                shaped_or_hostile("[0-9]{1,5}(/(tcp|udp|sctp))?", 10),
                0..3,
            ),
            workdir in shaped_or_hostile("/[a-z0-9/._+@-]{0,16}", 20),
            user in proptest::option::of(shaped_or_hostile("[a-z0-9_.-]{1,8}(:[0-9]{1,5})?", 12)),
            cmd in proptest::collection::vec(hostile(16), 0..4),
            paths in proptest::collection::btree_set("/[^\\\\]{1,30}", 0..8),
            reasons in proptest::collection::vec(hostile(40), 0..4),
        ) {
            let config = ImageConfig {
                cmd: Some(cmd),
                env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
                working_dir: workdir,
                exposed_ports: Some(ports.into_iter().map(|p| (p, serde_json::json!({}))).collect()),
                labels: Some(labels),
                user: user.clone().unwrap_or_default(),
                ..ImageConfig::default()
            };
            let base = ImageConfig::default();
            let mut i = inputs(DOCKERFILE, &config, &base);
            i.user = user;
            i.entries = paths;
            i.reasons = reasons;
            let r = write(&i).unwrap();
            proptest::prop_assert!(only_safe_lines(&r.text).is_ok(), "{:?}\n{}", only_safe_lines(&r.text), r.text);
            proptest::prop_assert_eq!(first_redacted_line(&r.text), None);
            proptest::prop_assert!(raw_controls(&r.text).is_empty(), "{:?}\n{}", raw_controls(&r.text), r.text);
        }
    }
}
