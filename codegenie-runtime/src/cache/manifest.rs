//! The input manifest of a probe's last key: what went into it, kept per probe
//! in `.codegenie/cache/manifests/<probe>.json`, so a changed key can be
//! explained by the input that changed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::store::{check_probe_name, io, CacheStore, StoreError};
use crate::atomic_file::write_atomically;
use crate::inputs::ResolvedInputs;

/// Format tag of a manifest file.
pub const MANIFEST_FORMAT: &str = "codegenie.input-manifest.v1";

/// Everything that went into one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputManifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// Probe name.
    pub probe: String,
    /// Probe version.
    pub version: u32,
    /// The key.
    pub key: String,
    /// The inputs.
    pub inputs: ResolvedInputs,
}

impl InputManifest {
    /// A manifest for `key`.
    pub fn new(probe: &str, version: u32, key: &str, inputs: ResolvedInputs) -> Self {
        InputManifest {
            format: MANIFEST_FORMAT.to_owned(),
            probe: probe.to_owned(),
            version,
            key: key.to_owned(),
            inputs,
        }
    }
}

/// One difference between the inputs of two keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "change")]
pub enum InputChange {
    /// The probe's version changed.
    Version {
        /// Before.
        old: u32,
        /// Now.
        new: u32,
    },
    /// A glob is declared now that was not before.
    GlobDeclared {
        /// The glob.
        glob: String,
    },
    /// A glob is no longer declared.
    GlobDropped {
        /// The glob.
        glob: String,
    },
    /// A glob matches a file it did not match before (added or renamed to).
    FileAdded {
        /// The glob.
        glob: String,
        /// The file.
        path: String,
    },
    /// A glob no longer matches a file (deleted or renamed from).
    FileRemoved {
        /// The glob.
        glob: String,
        /// The file.
        path: String,
    },
    /// A matched file's content changed.
    FileModified {
        /// The glob.
        glob: String,
        /// The file.
        path: String,
        /// Hash before.
        old_blake3: String,
        /// Hash now.
        new_blake3: String,
    },
    /// A token's value changed (including to or from unresolved).
    Token {
        /// The token.
        token: String,
        /// Value before (`None`: unresolved or not declared).
        old: Option<String>,
        /// Value now (`None`: unresolved or not declared).
        new: Option<String>,
    },
}

impl std::fmt::Display for InputChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let val = |v: &Option<String>| v.clone().unwrap_or_else(|| "<unresolved>".to_owned());
        match self {
            InputChange::Version { old, new } => write!(f, "probe version {old} -> {new}"),
            InputChange::GlobDeclared { glob } => write!(f, "glob `{glob}` newly declared"),
            InputChange::GlobDropped { glob } => write!(f, "glob `{glob}` no longer declared"),
            InputChange::FileAdded { glob, path } => {
                write!(f, "added {path} (matched by `{glob}`)")
            }
            InputChange::FileRemoved { glob, path } => {
                write!(f, "removed {path} (matched by `{glob}`)")
            }
            InputChange::FileModified { glob, path, .. } => {
                write!(f, "modified {path} (matched by `{glob}`)")
            }
            InputChange::Token { token, old, new } => {
                write!(f, "token {token}: {} -> {}", val(old), val(new))
            }
        }
    }
}

/// What changed from `old` to `new`, in a stable order.
pub fn diff(old: &InputManifest, new: &InputManifest) -> Vec<InputChange> {
    let mut out = Vec::new();
    if old.version != new.version {
        out.push(InputChange::Version {
            old: old.version,
            new: new.version,
        });
    }
    let globs = |m: &InputManifest| -> BTreeMap<String, BTreeMap<String, String>> {
        m.inputs
            .globs
            .iter()
            .map(|g| {
                let files = g
                    .files
                    .iter()
                    .map(|f| (f.path.clone(), f.blake3.clone()))
                    .collect();
                (g.glob.clone(), files)
            })
            .collect()
    };
    let (old_g, new_g) = (globs(old), globs(new));
    for glob in old_g.keys().filter(|g| !new_g.contains_key(*g)) {
        out.push(InputChange::GlobDropped { glob: glob.clone() });
    }
    for (glob, new_files) in &new_g {
        let Some(old_files) = old_g.get(glob) else {
            out.push(InputChange::GlobDeclared { glob: glob.clone() });
            continue;
        };
        for path in old_files.keys().filter(|p| !new_files.contains_key(*p)) {
            out.push(InputChange::FileRemoved {
                glob: glob.clone(),
                path: path.clone(),
            });
        }
        for (path, new_hash) in new_files {
            match old_files.get(path) {
                None => out.push(InputChange::FileAdded {
                    glob: glob.clone(),
                    path: path.clone(),
                }),
                Some(old_hash) if old_hash != new_hash => out.push(InputChange::FileModified {
                    glob: glob.clone(),
                    path: path.clone(),
                    old_blake3: old_hash.clone(),
                    new_blake3: new_hash.clone(),
                }),
                Some(_) => {}
            }
        }
    }
    let tokens = |m: &InputManifest| -> BTreeMap<String, Option<String>> {
        m.inputs
            .tokens
            .iter()
            .map(|t| (t.token.clone(), t.value.key_value().map(str::to_owned)))
            .collect()
    };
    let (old_t, new_t) = (tokens(old), tokens(new));
    let names: std::collections::BTreeSet<&String> = old_t.keys().chain(new_t.keys()).collect();
    for name in names {
        let (o, n) = (
            old_t.get(name).cloned().flatten(),
            new_t.get(name).cloned().flatten(),
        );
        if o != n || old_t.contains_key(name) != new_t.contains_key(name) {
            out.push(InputChange::Token {
                token: name.clone(),
                old: o,
                new: n,
            });
        }
    }
    out
}

impl CacheStore {
    fn manifest_path(&self, probe: &str) -> Result<PathBuf, StoreError> {
        check_probe_name(probe)?;
        Ok(self.dir().join("manifests").join(format!("{probe}.json")))
    }

    /// The manifest of `probe`'s last key, if one was stored. A manifest that
    /// cannot be read is [`StoreError::Corrupt`].
    pub fn load_manifest(&self, probe: &str) -> Result<Option<InputManifest>, StoreError> {
        let path = self.manifest_path(probe)?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path, e)),
        };
        let m: InputManifest = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            reason: format!("not a readable manifest ({e})"),
        })?;
        if m.format != MANIFEST_FORMAT || m.probe != probe {
            return Err(StoreError::Corrupt {
                path,
                reason: format!("manifest of `{}` in format `{}`", m.probe, m.format),
            });
        }
        Ok(Some(m))
    }

    /// Record `manifest` as its probe's last key (atomically).
    pub fn save_manifest(&self, manifest: &InputManifest) -> Result<(), StoreError> {
        let path = self.manifest_path(&manifest.probe)?;
        let json = |source| StoreError::Json {
            probe: manifest.probe.clone(),
            source,
        };
        // Token values and resolver errors (a build log's tail) can hold
        // secrets; the manifest is redacted like every other write.
        let mut value = serde_json::to_value(manifest).map_err(json)?;
        crate::redact::Redactor::new().redact_json(&mut value);
        let bytes = serde_json::to_vec(&value).map_err(json)?;
        write_atomically(&path, |w| w.write_all(&bytes))?;
        Ok(())
    }
}
