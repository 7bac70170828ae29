//! Containers of a run and of its parts: a portfolio gives each repository
//! a part of its run id, a minimal image's verification runs are parts of
//! the run that built it, and an interrupted run removes them all from each
//! engine in one listing.

use std::collections::BTreeMap;

use super::client::ids_of;
use super::{orphans, tools, Engine, EngineError, RUN_LABEL};

impl Engine {
    /// Remove every container of `run` and of its parts
    /// ([`run_covers`](super::run_covers)), going on past a container that
    /// cannot be removed; an error only if they cannot be listed.
    pub fn remove_runs_under(&self, run: &str) -> Result<RunRemoval, EngineError> {
        let mut done = RunRemoval::default();
        for (id, labels) in self.run_containers(&[RUN_LABEL])? {
            if super::run_covers(run, &labels[0]) {
                match self.remove(&id) {
                    Ok(()) => done.removed += 1,
                    Err(e) => done.failed.push(e),
                }
            }
        }
        Ok(done)
    }
}

impl Engine {
    /// Every container (running or not) carrying the run label, with the
    /// values of the labels `keys` (empty where unset), in order: one
    /// listing, through the API where it answers, else `docker ps`.
    fn run_containers(&self, keys: &[&str]) -> Result<Vec<(String, Vec<String>)>, EngineError> {
        if let Some(api) = self.api() {
            return Ok(api
                .containers_labelled(RUN_LABEL)?
                .into_iter()
                .map(|(id, labels)| {
                    let values = keys
                        .iter()
                        .map(|k| labels.get(*k).cloned().unwrap_or_default())
                        .collect();
                    (id, values)
                })
                .collect());
        }
        let mut format = "{{.ID}}".to_owned();
        for k in keys {
            format.push_str(&format!("\t{{{{.Label \"{k}\"}}}}"));
        }
        let out = self.ok(self.spec().args([
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &format!("label={RUN_LABEL}"),
            "--format",
            &format,
        ]))?;
        Ok(out
            .stdout
            .text()
            .lines()
            .filter_map(|line| {
                let mut f = line.split('\t').map(|x| x.trim().to_owned());
                let id = f.next().filter(|id| !id.is_empty())?;
                let values: Vec<String> = f.collect();
                (values.len() == keys.len()).then_some((id, values))
            })
            .collect())
    }

    /// Ids of every container (running or not) labelled with `run_id`.
    pub fn containers_of_run(&self, run_id: &str) -> Result<Vec<String>, EngineError> {
        if let Some(api) = self.api() {
            let listed = api.containers_labelled(&format!("{RUN_LABEL}={run_id}"))?;
            return Ok(listed.into_iter().map(|(id, _)| id).collect());
        }
        let out = self.ok(self.spec().args([
            "ps",
            "-a",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label={RUN_LABEL}={run_id}"),
        ]))?;
        Ok(ids_of(&out.stdout.text()))
    }

    /// Remove every container labelled with `run_id`; returns how many.
    pub fn remove_run(&self, run_id: &str) -> Result<usize, EngineError> {
        let ids = self.containers_of_run(run_id)?;
        for id in &ids {
            self.remove(id)?;
        }
        Ok(ids.len())
    }
}

/// What [`Engine::remove_runs_under`] did.
#[derive(Debug, Clone, Default)]
pub struct RunRemoval {
    /// Containers removed (or found gone).
    pub removed: usize,
    /// Why the others could not be removed, one error each.
    pub failed: Vec<EngineError>,
}

/// What [`Engine::sweep_orphans`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Containers (scenario containers, and containers a tool image was
    /// being made from).
    pub containers: usize,
    /// Tool images.
    pub images: usize,
    /// Tool volumes.
    pub volumes: usize,
}

impl Engine {
    /// Remove containers, tool images and tool volumes left by runs whose
    /// process is gone (killed before it could clean up); see the `orphans` module.
    pub fn sweep_orphans(&self) -> Result<Swept, EngineError> {
        let Some(me) = orphans::current() else {
            return Ok(Swept::default());
        };
        let (owner, tools) = (orphans::OWNER_LABEL, tools::TOOLS_OWNER_LABEL);
        // Scenario containers carry the owner label; a container a tool
        // image is made from carries only the tools' (and scenario containers
        // inherit that one from their tool image).
        let mut swept = Swept::default();
        for (id, labels) in self.run_containers(&[owner, tools])? {
            let (id, own, tool) = (id.as_str(), labels[0].as_str(), labels[1].as_str());
            let (key, value) = if own.is_empty() {
                (tools, tool)
            } else {
                (owner, own)
            };
            let gone = orphans::Owner::parse(value).is_some_and(|o| o.is_gone(me));
            if !gone {
                continue;
            }
            if !self.label_set_at_creation(id, key, value) {
                tracing::warn!(
                    container = id,
                    "a container's owner label comes from its image, not from codegenie; left alone"
                );
                continue;
            }
            tracing::info!(
                container = id,
                owner = value,
                "removing a leftover container"
            );
            self.remove(id)?;
            swept.containers += 1;
        }
        // After the containers, which keep their images in use.
        swept.images = self.sweep_tool_images(me)?;
        swept.volumes = self.sweep_tool_volumes(me)?;
        Ok(swept)
    }
}

impl Engine {
    /// Whether `container`'s `key=value` label was set when it was created
    /// rather than inherited from its image (an image may carry any label).
    /// When the image cannot be asked, the answer is no: leave it alone.
    fn label_set_at_creation(&self, container: &str, key: &str, value: &str) -> bool {
        let image = match self.ok(self.spec().args([
            "container",
            "inspect",
            "--format",
            "{{.Image}}",
            container,
        ])) {
            Ok(out) => out.stdout.text().trim().to_owned(),
            Err(e) => {
                tracing::debug!(container, error = %crate::errors::error_chain(&e), "cannot inspect a candidate orphan");
                return false;
            }
        };
        let labels = self.ok(self.spec().args([
            "image",
            "inspect",
            "--format",
            "{{json .Config.Labels}}",
            &image,
        ]));
        match labels
            .map(|o| serde_json::from_slice::<Option<BTreeMap<String, String>>>(&o.stdout.bytes))
        {
            Ok(Ok(labels)) => labels.and_then(|l| l.get(key).cloned()).as_deref() != Some(value),
            Ok(Err(e)) => {
                tracing::debug!(container, error = %crate::errors::error_chain(&e), "unreadable image labels");
                false
            }
            Err(e) => {
                tracing::debug!(container, error = %crate::errors::error_chain(&e), "cannot inspect a candidate orphan's image");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::run_covers;

    #[test]
    fn a_run_covers_its_parts_and_nothing_else() {
        assert!(run_covers("cli-1", "cli-1"));
        assert!(run_covers("cli-1", "cli-1.verify-minimal"));
        assert!(run_covers("portfolio-7", "portfolio-7.3.verify-minimal"));
        assert!(!run_covers("cli-1", "cli-12"));
        assert!(!run_covers("cli-1", "cli-"));
        assert!(!run_covers("cli-1", "x.cli-1"));
    }
}
