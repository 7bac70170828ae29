//! The images codegenie leaves on an engine (docs/architecture.md, "Image
//! hygiene"): every trace image (`codegenie-trace:*`) and minimal image
//! (`codegenie-min:*`) carries the label [`REPOSITORY_LABEL`] naming the
//! repository it was made from, and only the newest few of each kind are
//! kept per repository. Removal is by codegenie's own tag, never by id and
//! never forced: an image that also carries somebody else's tag, or that a
//! container still uses, stays. Images whose repository folder is gone
//! from this machine are orphans, removed on request.

use std::path::Path;

use super::{Engine, EngineEndpoint, EngineError};
use crate::exec::Program;

/// The label naming the repository an image was made from: its absolute,
/// canonical path.
pub const REPOSITORY_LABEL: &str = "codegenie.repository";
/// The tag repository of trace images.
pub const TRACE_IMAGES: &str = "codegenie-trace";

/// An image of a repository, by one of codegenie's tags.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RepositoryImage {
    /// The image id (`sha256:...`).
    pub id: String,
    /// codegenie's tag of it (`codegenie-trace:<short digest>`).
    pub tag: String,
    /// When the engine created it, as the engine prints it
    /// (`2026-12-02 02:30:00 +0000 UTC`).
    pub created: String,
}

/// What pruning a repository's images did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImagePruneReport {
    /// Tags kept.
    pub kept: Vec<String>,
    /// Tags removed (the image went with its last tag).
    pub removed: Vec<String>,
    /// Tags the engine refused to remove (a container still uses the
    /// image), with its reason.
    pub refused: Vec<String>,
    /// Why the engine refused, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

impl Engine {
    /// The ids of `references`, in order (through the API a request each,
    /// else one CLI call); `None` when one of them is not on the engine.
    pub fn image_ids(&self, references: &[String]) -> Result<Option<Vec<String>>, EngineError> {
        if references.is_empty() {
            return Ok(Some(Vec::new()));
        }
        if let Some(api) = self.api() {
            let mut ids = Vec::with_capacity(references.len());
            for r in references {
                match api.image_id(r)? {
                    Some(id) => ids.push(id),
                    None => return Ok(None),
                }
            }
            return Ok(Some(ids));
        }
        let out = self.run(
            self.spec()
                .args(["image", "inspect", "--format", "{{.Id}}"])
                .args(references),
        )?;
        let why = out.stderr.text();
        if !out.success() {
            return if why.contains("No such image") || why.contains("image not known") {
                Ok(None)
            } else {
                Err(EngineError::Command {
                    command: "image inspect".into(),
                    detail: why.trim().to_owned(),
                })
            };
        }
        let ids: Vec<String> = out
            .stdout
            .text()
            .lines()
            .map(|l| l.trim().to_owned())
            .collect();
        if ids.len() != references.len() {
            return Err(EngineError::Output {
                command: "image inspect".into(),
                detail: format!("{} ids for {} images", ids.len(), references.len()),
            });
        }
        Ok(Some(ids))
    }

    /// The images tagged in `tag_repository` (`codegenie-trace`,
    /// `codegenie-min`) whose [`REPOSITORY_LABEL`] is `repository`, newest
    /// first.
    pub fn repository_images(
        &self,
        tag_repository: &str,
        repository: &str,
    ) -> Result<Vec<RepositoryImage>, EngineError> {
        self.labelled_images(
            tag_repository,
            &format!("label={REPOSITORY_LABEL}={repository}"),
        )
    }

    /// The images tagged in `tag_repository` that match the label filter
    /// `label`, newest first.
    fn labelled_images(
        &self,
        tag_repository: &str,
        label: &str,
    ) -> Result<Vec<RepositoryImage>, EngineError> {
        let mut images = match self.api() {
            Some(api) => {
                let label = label.strip_prefix("label=").unwrap_or(label);
                let reference = format!("{tag_repository}:*");
                let listed = api.images_matching(&[("label", label), ("reference", &reference)])?;
                let mut rows = Vec::new();
                for image in listed {
                    // The CLI's layout, in UTC.
                    let created = chrono::DateTime::from_timestamp(image.created, 0)
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
                        .unwrap_or_default();
                    // One row a tag, as `docker image ls`.
                    rows.extend(image.repo_tags.into_iter().map(|tag| RepositoryImage {
                        id: image.id.clone(),
                        tag,
                        created: created.clone(),
                    }));
                }
                rows
            }
            None => self.listed_images(tag_repository, label)?,
        };
        // The filter matches by pattern; keep exactly our repository.
        let prefix = format!("{tag_repository}:");
        images.retain(|i| i.tag.starts_with(&prefix));
        // The engine prints one time zone for all, so the text sorts by time.
        images.sort_by(|a, b| b.created.cmp(&a.created).then(b.tag.cmp(&a.tag)));
        Ok(images)
    }

    /// `docker image ls` of `tag_repository`'s images matching `label`.
    fn listed_images(
        &self,
        tag_repository: &str,
        label: &str,
    ) -> Result<Vec<RepositoryImage>, EngineError> {
        let out = self.ok(self.spec().args([
            "image",
            "ls",
            "--no-trunc",
            "--filter",
            label,
            "--filter",
            &format!("reference={tag_repository}:*"),
            "--format",
            "{{.ID}}\t{{.Repository}}:{{.Tag}}\t{{.CreatedAt}}",
        ]))?;
        Ok(out
            .stdout
            .text()
            .lines()
            .filter_map(|line| {
                let mut f = line.split('\t');
                let (id, tag, created) = (f.next()?, f.next()?, f.next()?);
                Some(RepositoryImage {
                    id: id.trim().to_owned(),
                    tag: tag.trim().to_owned(),
                    created: created.trim().to_owned(),
                })
            })
            .collect())
    }

    /// Keep the newest `keep` images of `repository` in `tag_repository`
    /// (the image `current`, when given, always among them) and remove the
    /// tags of the others.
    pub fn keep_newest_images(
        &self,
        tag_repository: &str,
        repository: &str,
        keep: usize,
        current: Option<&str>,
    ) -> Result<ImagePruneReport, EngineError> {
        let images = self.repository_images(tag_repository, repository)?;
        let mut report = ImagePruneReport::default();
        let mut left = keep;
        if let Some(cur) = current {
            if images.iter().any(|i| i.id == cur) {
                left = left.saturating_sub(1);
            }
        }
        for image in images {
            if current == Some(image.id.as_str()) {
                report.kept.push(image.tag);
            } else if left > 0 {
                left -= 1;
                report.kept.push(image.tag);
            } else {
                report.removed.push(image.tag);
            }
        }
        self.remove_tags(&mut report, || {
            self.repository_images(tag_repository, repository)
        })?;
        Ok(report)
    }

    /// Removes the tags of images in each of `tag_repositories` whose
    /// repository label names a folder that no longer exists on this
    /// machine (a temporary checkout, a deleted clone); one report per tag
    /// repository, in order. An image whose folder is there, or cannot be
    /// told (permission denied, a label that is not an absolute path), is
    /// kept. Refused unless the engine runs on this machine: the labels name
    /// folders of the machine that built the images, and an engine elsewhere
    /// may serve other machines too.
    pub fn remove_orphaned_images(
        &self,
        tag_repositories: &[&str],
    ) -> Result<Vec<ImagePruneReport>, EngineError> {
        self.ensure_local("removing orphaned images")?;
        tag_repositories
            .iter()
            .map(|r| self.remove_orphans_in(r))
            .collect()
    }

    /// [`Engine::remove_orphaned_images`] in one tag repository.
    fn remove_orphans_in(&self, tag_repository: &str) -> Result<ImagePruneReport, EngineError> {
        let any = format!("label={REPOSITORY_LABEL}");
        let images = self.labelled_images(tag_repository, &any)?;
        let mut ids: Vec<&str> = images.iter().map(|i| i.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut repositories = std::collections::HashMap::new();
        if !ids.is_empty() {
            let format =
                format!("{{{{.Id}}}}\t{{{{index .Config.Labels \"{REPOSITORY_LABEL}\"}}}}");
            let out = self.ok(self
                .spec()
                .args(["image", "inspect", "--format", &format])
                .args(ids.iter().copied()))?;
            for line in out.stdout.text().lines() {
                if let Some((id, repo)) = line.split_once('\t') {
                    repositories.insert(id.trim().to_owned(), repo.trim().to_owned());
                }
            }
        }
        let mut report = ImagePruneReport::default();
        for image in images {
            let gone = repositories
                .get(&image.id)
                .is_some_and(|repo| folder_is_gone(Path::new(repo)));
            if gone {
                report.removed.push(image.tag);
            } else {
                report.kept.push(image.tag);
            }
        }
        self.remove_tags(&mut report, || self.labelled_images(tag_repository, &any))?;
        Ok(report)
    }

    /// Removes `report.removed` by tag in one call. If the engine refuses
    /// some (a container uses the image), `still_there` lists what is left,
    /// and the report says which were refused and why.
    fn remove_tags(
        &self,
        report: &mut ImagePruneReport,
        still_there: impl FnOnce() -> Result<Vec<RepositoryImage>, EngineError>,
    ) -> Result<(), EngineError> {
        if report.removed.is_empty() {
            return Ok(());
        }
        // By tag: an image with another tag of somebody else's keeps it
        // and stays; one a container uses is refused by the engine.
        let spec = self.spec().arg("rmi").args(report.removed.iter());
        if let Err(e) = self.ok(spec) {
            // Some went, some did not: what is still there was refused.
            let left: Vec<String> = still_there()?.into_iter().map(|i| i.tag).collect();
            let (refused, removed) = std::mem::take(&mut report.removed)
                .into_iter()
                .partition(|t| left.contains(t));
            report.removed = removed;
            report.refused = refused;
            report.refusal = Some(e.to_string());
        }
        Ok(())
    }

    /// Refuses `action` unless the engine runs on this machine.
    fn ensure_local(&self, action: &'static str) -> Result<(), EngineError> {
        let not_local = |detail: String| Err(EngineError::NotLocal { action, detail });
        if !self.is_local() {
            let detail = match &self.endpoint {
                EngineEndpoint::Host(h) => format!("it is reached at {}", h.url()),
                EngineEndpoint::Context(c) => {
                    format!("it is reached through the context {:?}", c.as_str())
                }
                EngineEndpoint::Ambient => match std::env::var("DOCKER_CONTEXT") {
                    Ok(c) => format!("DOCKER_CONTEXT is {c:?}"),
                    Err(_) => format!(
                        "DOCKER_HOST is {:?}",
                        std::env::var("DOCKER_HOST").unwrap_or_default()
                    ),
                },
            };
            return not_local(detail);
        }
        // A context chosen in the CLI's config file (`docker context use`)
        // is not in the environment; ask the CLI which one it uses.
        if self.endpoint == EngineEndpoint::Ambient && self.program == Program::Docker {
            let out = self.ok(self.spec().args(["context", "show"]))?;
            let context = out.stdout.text();
            let context = context.trim();
            if context != "default" {
                return not_local(format!("the Docker CLI uses the context {context:?}"));
            }
        }
        Ok(())
    }

    /// [`Engine::keep_newest_images`] after a build: a failure is a warning
    /// (the run's evidence does not depend on it), never an error.
    pub(crate) fn tidy_images(
        &self,
        tag_repository: &str,
        repository: &str,
        keep: usize,
        current: &str,
    ) {
        match self.keep_newest_images(tag_repository, repository, keep, Some(current)) {
            Ok(r) => {
                if !r.removed.is_empty() {
                    tracing::info!(removed = ?r.removed, kept = r.kept.len(), "older images removed");
                }
                if let Some(why) = &r.refusal {
                    tracing::warn!(refused = ?r.refused, why, "older images kept");
                }
            }
            Err(e) => {
                tracing::warn!(error = %crate::errors::error_chain(&e), repository, "cannot remove older images of the repository");
            }
        }
    }
}

/// Whether `folder` is known to be gone: only "not found" says so.
fn folder_is_gone(folder: &Path) -> bool {
    folder.is_absolute()
        && matches!(
            std::fs::symlink_metadata(folder),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound
        )
}
