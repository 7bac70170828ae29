//! Containers of a run and of its parts: a portfolio gives each repository
//! a part of its run id, a minimal image's verification runs are parts of
//! the run that built it, and an interrupted run removes them all from each
//! engine in one listing.

use super::client::ids_of;
use super::{Engine, EngineError, RUN_LABEL};

/// Whether the run label `label` is `run`'s or one of its parts'
/// (`<run>.<part>`, at any depth): `cli-1` covers `cli-1` and
/// `cli-1.verify-minimal`, never `cli-12`.
pub fn run_covers(run: &str, label: &str) -> bool {
    label
        .strip_prefix(run)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

impl Engine {
    /// Remove every container of `run` and of its parts ([`run_covers`]);
    /// returns how many.
    pub fn remove_runs_under(&self, run: &str) -> Result<usize, EngineError> {
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
            let Some((id, label)) = line.split_once('\t') else {
                continue;
            };
            if run_covers(run, label.trim()) {
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

#[cfg(test)]
mod tests {
    use super::run_covers;

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
