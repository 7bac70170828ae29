//! Tool images: the traced image plus a folder of tools (the runtime
//! trace's bundle), made once per run so that every scenario container is
//! created from it instead of receiving its own copy (docs/architecture.md,
//! "Container flow"). Only the engine's own operations are used (create, cp,
//! commit; or a build from a tar on stdin), so remote engines work too.
//!
//! A tool image carries the run label and [`TOOLS_OWNER_LABEL`] (the owner
//! value of the process that made it), set on the container it is committed
//! from; its config is otherwise the traced image's. It is tagged
//! `codegenie-tools:<run>`, which only codegenie does, so a label an image
//! brought itself is never mistaken for one of these.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{orphans, Engine, EngineError, RUN_LABEL};

/// The repository name of tool images.
pub const TOOLS_REPOSITORY: &str = "codegenie-tools";

/// The label naming the process that made a tool image (and the container
/// it was committed from). A different key from the scenario containers'
/// owner label: scenario containers inherit their image's labels, and the
/// sweep trusts an owner label only when it differs from the image's own.
pub(crate) const TOOLS_OWNER_LABEL: &str = "codegenie.tools-owner";

/// The tag of `run_id`'s tool image: the run id when it is a valid tag
/// (every id codegenie makes is), else a hash of it.
fn tag_of(run_id: &str) -> String {
    let valid = !run_id.is_empty()
        && run_id.len() <= 128
        && run_id
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        run_id.to_owned()
    } else {
        blake3::hash(run_id.as_bytes()).to_hex()[..32].to_owned()
    }
}

/// The labels a tool image carries.
fn labels(run_id: &str) -> Vec<String> {
    let mut v = vec![format!("{RUN_LABEL}={run_id}")];
    if let Some(me) = orphans::current() {
        v.push(format!("{TOOLS_OWNER_LABEL}={}", me.label_value()));
    }
    v
}

impl Engine {
    /// Make `image` plus the contents of the host folder `src` under `dest`
    /// into a new image for run `run_id`, and return its id. The new image's
    /// config is `image`'s but for the labels.
    ///
    /// An image with an ENTRYPOINT or CMD: a container is created from it
    /// (never started, no overrides, hardened, each of `volumes` a tmpfs so
    /// that no volume is made), `src` copied in, and the container committed
    /// and removed. An image with neither cannot give a container, so it is
    /// built on instead: `FROM image` + `COPY`, the context a tar on stdin
    /// (the commit path is about twice as fast where both work).
    pub fn derive_tool_image(
        &self,
        image: &str,
        has_command: bool,
        volumes: &[String],
        run_id: &str,
        src: &Path,
        dest: &str,
    ) -> Result<String, EngineError> {
        let tag = format!("{TOOLS_REPOSITORY}:{}", tag_of(run_id));
        if has_command {
            self.commit_with(image, volumes, run_id, src, dest, &tag)
        } else {
            self.build_on(image, run_id, src, dest, &tag)
        }
    }

    fn commit_with(
        &self,
        image: &str,
        volumes: &[String],
        run_id: &str,
        src: &Path,
        dest: &str,
        tag: &str,
    ) -> Result<String, EngineError> {
        let creating = super::creations::enter("container")?;
        let out = self.ok(self
            .spec()
            .args(["create", "--network=none", "--cap-drop=ALL"])
            .arg("--security-opt=no-new-privileges")
            .arg("--log-driver=none")
            .args(volumes.iter().flat_map(|v| ["--tmpfs", v.as_str()]))
            .args(labels(run_id).iter().flat_map(|l| ["--label", l.as_str()]))
            .arg(image))?;
        let container = out.stdout.text().trim().to_owned();
        drop(creating);
        let committed = self
            .copy_in(src, &container, dest)
            .and_then(|()| self.ok(self.spec().args(["commit", &container, tag])));
        let removed = self.remove(&container);
        let id = committed?.stdout.text().trim().to_owned();
        removed?;
        Ok(id)
    }

    fn build_on(
        &self,
        image: &str,
        run_id: &str,
        src: &Path,
        dest: &str,
        tag: &str,
    ) -> Result<String, EngineError> {
        let tmp = tempfile::tempdir().map_err(|e| context_error(Path::new("/tmp"), e))?;
        let tar_path = tmp.path().join("tools.tar");
        write_context(&tar_path, image, &labels(run_id), src, dest)?;
        let out = self.ok(self
            .spec()
            .args(["build", "-q", "--network", "none", "-t", tag])
            .arg("-")
            .stdin_file(&tar_path))?;
        Ok(out.stdout.text().trim().to_owned())
    }

    /// Remove the tool image `image` (no container may use it) and the
    /// images a classic builder made on the way to it, which carry the same
    /// labels; never the traced image below them, even when nothing else
    /// names it. `base`, when known, is that traced image.
    pub fn remove_tool_image(&self, image: &str, base: Option<&str>) -> Result<(), EngineError> {
        let mut next = Some(image.to_owned());
        let mut own: Option<(String, String)> = None;
        while let Some(id) = next.take() {
            let format = format!(
                "{{{{.Parent}}}}\t{{{{index .Config.Labels \"{RUN_LABEL}\"}}}}\t{{{{index .Config.Labels \"{TOOLS_OWNER_LABEL}\"}}}}"
            );
            let out = self.ok(self
                .spec()
                .args(["image", "inspect", "--format", &format, &id]))?;
            let text = out.stdout.text();
            let mut f = text.trim().split('\t').map(str::to_owned);
            let (parent, run, owner) = (
                f.next().unwrap_or_default(),
                f.next().unwrap_or_default(),
                f.next().unwrap_or_default(),
            );
            let labels = (run, owner);
            match &own {
                // An image below the tool image: the builder's step, or not ours.
                Some(first) if *first != labels => break,
                Some(_) => {}
                None => own = Some(labels),
            }
            self.ok(self.spec().args(["image", "rm", "--no-prune", &id]))?;
            if !parent.is_empty() && Some(parent.as_str()) != base {
                next = Some(parent);
            }
        }
        Ok(())
    }

    /// Remove the tool images of every run whose id `keep` accepts, after
    /// their containers are gone; returns how many.
    fn remove_tool_images(&self, keep: impl Fn(&str) -> bool) -> Result<usize, EngineError> {
        let mut removed = 0;
        for (id, labels) in self.tool_images()? {
            if labels.run.as_deref().is_some_and(&keep) {
                self.remove_tool_image(&id, None)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Remove the tool image of `run_id`; returns how many (0 or 1).
    pub fn remove_run_images(&self, run_id: &str) -> Result<usize, EngineError> {
        self.remove_tool_images(|run| run == run_id)
    }

    /// Remove the tool images of every run whose id starts with `prefix`.
    pub fn remove_run_images_under(&self, run: &str) -> Result<usize, EngineError> {
        self.remove_tool_images(|label| super::run_covers(run, label))
    }

    /// Tool images on the engine (`codegenie-tools:*` with the owner
    /// label), with their labels.
    fn tool_images(&self) -> Result<Vec<(String, ToolLabels)>, EngineError> {
        let reference = TOOLS_REPOSITORY.to_owned();
        let mut ids = match self.api() {
            Some(api) => {
                api.image_ids(&[("reference", &reference), ("label", TOOLS_OWNER_LABEL)])?
            }
            None => {
                let out = self.ok(self.spec().args([
                    "image",
                    "ls",
                    "-q",
                    "--no-trunc",
                    "--filter",
                    &format!("reference={reference}"),
                    "--filter",
                    &format!("label={TOOLS_OWNER_LABEL}"),
                ]))?;
                super::client::ids_of(&out.stdout.text())
            }
        };
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let format = format!(
            "{{{{.Id}}}}\t{{{{index .Config.Labels \"{RUN_LABEL}\"}}}}\t{{{{index .Config.Labels \"{TOOLS_OWNER_LABEL}\"}}}}"
        );
        let out = self.ok(self
            .spec()
            .args(["image", "inspect", "--format", &format])
            .args(&ids))?;
        Ok(out
            .stdout
            .text()
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                let id = f.next()?.trim().to_owned();
                let run = f.next().map(str::trim).filter(|s| !s.is_empty());
                let owner = f.next().map(str::trim).filter(|s| !s.is_empty());
                Some((
                    id,
                    ToolLabels {
                        run: run.map(str::to_owned),
                        owner: owner.map(str::to_owned),
                    },
                ))
            })
            .collect())
    }

    /// Remove the tool images made by processes of this host that are gone
    /// (after their containers: see [`Engine::sweep_orphans`]); returns how
    /// many. An image still in use is left for a later sweep.
    pub(super) fn sweep_tool_images(&self, me: &orphans::Owner) -> Result<usize, EngineError> {
        let mut removed = 0;
        for (id, labels) in self.tool_images()? {
            let gone = labels
                .owner
                .as_deref()
                .and_then(orphans::Owner::parse)
                .is_some_and(|o| o.is_gone(me));
            if !gone {
                continue;
            }
            match self.remove_tool_image(&id, None) {
                Ok(()) => {
                    tracing::info!(image = %id, "removed a leftover tool image");
                    removed += 1;
                }
                Err(e) => {
                    tracing::warn!(image = %id, error = %crate::errors::error_chain(&e), "cannot remove a leftover tool image")
                }
            }
        }
        Ok(removed)
    }
}

/// A tool image's labels.
struct ToolLabels {
    run: Option<String>,
    owner: Option<String>,
}

fn context_error(path: &Path, e: std::io::Error) -> EngineError {
    EngineError::ToolContext {
        path: path.to_owned(),
        source: Arc::new(e),
    }
}

/// The build context of a tool image: a Dockerfile `FROM image` that sets
/// `labels` (`key=value`) and copies `tools/` (the contents of `src`, modes
/// kept) to `dest`. The labels come first, so that every image a classic
/// builder makes on the way carries them (and is removed with the tool image).
fn write_context(
    tar_path: &Path,
    image: &str,
    labels: &[String],
    src: &Path,
    dest: &str,
) -> Result<(), EngineError> {
    let err = |e| context_error(tar_path, e);
    let file = std::fs::File::create(tar_path).map_err(err)?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    tar.follow_symlinks(false);
    // JSON strings are valid Dockerfile quoted strings.
    let quoted: Vec<String> = labels
        .iter()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| format!("{}={}", serde_json::json!(k), serde_json::json!(v)))
        .collect();
    let dockerfile = format!(
        "FROM {image}\nLABEL {}\nCOPY tools/ {dest}/\n",
        quoted.join(" ")
    );
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
        .map_err(err)?;
    tar.append_dir_all(PathBuf::from("tools"), src)
        .map_err(err)?;
    tar.into_inner()
        .and_then(|mut w| std::io::Write::flush(&mut w))
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_become_tags() {
        assert_eq!(tag_of("1234-18f3a"), "1234-18f3a");
        assert_eq!(tag_of("prefix.3"), "prefix.3");
        // A tag may not start with `.` or `-`: those ids are hashed.
        let t = tag_of(".hidden");
        assert_eq!(t.len(), 32);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(t, tag_of("-hidden"));
    }

    #[test]
    fn the_build_context_copies_the_tools_under_dest() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("bin")).unwrap();
        std::fs::write(src.path().join("bin/tool"), "x").unwrap();
        let out = tempfile::tempdir().unwrap();
        let tar_path = out.path().join("c.tar");
        let labels = [
            "codegenie.run=r1".to_owned(),
            "codegenie.tools-owner=h/ns:[1]/2/3".to_owned(),
        ];
        write_context(&tar_path, "sha256:abc", &labels, src.path(), "/.codegenie").unwrap();
        let mut a = tar::Archive::new(std::fs::File::open(&tar_path).unwrap());
        let mut names = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            if name == "Dockerfile" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut e, &mut text).unwrap();
                assert_eq!(
                    text,
                    "FROM sha256:abc\nLABEL \"codegenie.run\"=\"r1\" \"codegenie.tools-owner\"=\"h/ns:[1]/2/3\"\nCOPY tools/ /.codegenie/\n"
                );
            }
            names.push(name);
        }
        assert!(names.iter().any(|n| n == "tools/bin/tool"), "{names:?}");
    }
}
