//! A complete `codegenie` binary with one extra probe: `file_census` counts the
//! files of a repository by extension.
//!
//! ```text
//! cargo run --example file_census -- probes
//! cargo run --example file_census -- gather path/to/repo --only file_census
//! ```

use std::collections::BTreeMap;

use codegenie::prelude::*;

/// Counts files by extension, skipping `.git/` and `.codegenie/`.
#[derive(Default)]
pub struct FileCensusProbe;

#[register_probe(heaviness = "light", runs_last = false)]
impl Probe for FileCensusProbe {
    fn declared_inputs(&self) -> &'static [DeclaredInput] {
        declared_inputs!["**/*", "image-digest:<resolved>"]
    }

    async fn run(
        &self,
        repo: &RepoSnapshot,
        _ctx: &ProbeContext,
    ) -> Result<ProbeOutput, ProbeError> {
        let mut by_ext: BTreeMap<String, u64> = BTreeMap::new();
        let mut stack = vec![repo.root().to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| ProbeError::io(&dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| ProbeError::io(&dir, e))?;
                let name = entry.file_name();
                if name == ".git" || name == ".codegenie" {
                    continue;
                }
                let ty = entry
                    .file_type()
                    .map_err(|e| ProbeError::io(entry.path(), e))?;
                if ty.is_dir() {
                    stack.push(entry.path());
                } else if ty.is_file() {
                    let ext = entry
                        .path()
                        .extension()
                        .map(|e| e.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "(none)".to_owned());
                    *by_ext.entry(ext).or_default() += 1;
                }
            }
        }
        let total: u64 = by_ext.values().sum();
        Ok(ProbeOutput::new(
            serde_json::json!({ "total_files": total, "by_extension": by_ext }),
            Confidence::High,
        ))
    }
}

fn main() -> std::process::ExitCode {
    codegenie::cli::main()
}
