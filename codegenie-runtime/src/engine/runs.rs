//! Containers of many runs at once: a portfolio gives each repository its
//! own run id under one prefix, and an interrupted portfolio removes them
//! all from each engine in one listing.

use super::client::ids_of;
use super::{Engine, EngineError, RUN_LABEL};

impl Engine {
    /// Remove every container whose run label starts with `prefix`; returns
    /// how many.
    pub fn remove_runs_with_prefix(&self, prefix: &str) -> Result<usize, EngineError> {
        let out = self.ok(self.spec().args([
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &format!("label={RUN_LABEL}"),
            "--format",
            &format!("{{{{.ID}}}}\t{{{{.Label \"{RUN_LABEL}\"}}}}"),
        ]))?;
        let mut removed = 0;
        for line in out.stdout.text().lines() {
            let Some((id, run)) = line.split_once('\t') else {
                continue;
            };
            if run.trim().starts_with(prefix) {
                self.remove(id.trim())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl Engine {
    /// Ids of every container (running or not) labelled with `run_id`.
    pub fn containers_of_run(&self, run_id: &str) -> Result<Vec<String>, EngineError> {
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
