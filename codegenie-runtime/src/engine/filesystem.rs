//! An image's filesystem in and out of the engine: export a stopped
//! container's filesystem to a tar file, import a tar file as a new image with
//! a given config, and read an image's size. Both directions
//! go through the engine CLI, so they work with a remote engine too.

use std::path::Path;
use std::time::Duration;

use super::{Engine, EngineError, ImageConfig};
use crate::exec::ExecSpec;

/// The run label of the containers exports use: the parentheses keep any
/// run id (`[A-Za-z0-9_.-]`) from covering it.
pub(crate) const EXPORT_RUN: &str = "(export)";

/// How long an export or import of a whole image filesystem may take.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);

impl ImageConfig {
    /// The config as `docker import --change` instructions, in exec form.
    pub fn import_changes(&self) -> Vec<String> {
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        let mut out = Vec::new();
        if let Some(e) = &self.entrypoint {
            out.push(format!("ENTRYPOINT {}", json(e)));
        }
        if let Some(c) = &self.cmd {
            out.push(format!("CMD {}", json(c)));
        }
        for kv in self.env.iter().flatten() {
            // `ENV key=value` keeps the value verbatim only when quoted.
            if let Some((k, v)) = kv.split_once('=') {
                out.push(format!("ENV {k}={}", json_string(v)));
            }
        }
        if !self.working_dir.is_empty() {
            out.push(format!("WORKDIR {}", self.working_dir));
        }
        if !self.user.is_empty() {
            out.push(format!("USER {}", self.user));
        }
        for port in self.exposed_ports.iter().flat_map(|p| p.keys()) {
            out.push(format!("EXPOSE {port}"));
        }
        for (k, v) in self.labels.iter().flatten() {
            out.push(format!("LABEL {}={}", json_string(k), json_string(v)));
        }
        out
    }
}

fn json_string(v: &str) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| format!("{v:?}"))
}

impl Engine {
    /// The id of the image `reference`, or `None` when the engine has no
    /// such image.
    pub fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError> {
        let ids = self.image_ids(&[reference.to_owned()])?;
        Ok(ids.and_then(|mut v| v.pop()))
    }

    /// Tag `image` as `tag`.
    pub fn tag(&self, image: &str, tag: &str) -> Result<(), EngineError> {
        if let Some(api) = self.api() {
            return api.tag(image, tag);
        }
        self.ok(self.spec().args(["tag", image, tag]))?;
        Ok(())
    }

    /// The size of `image` in bytes, as the engine reports it.
    pub fn image_size(&self, image: &str) -> Result<u64, EngineError> {
        let out =
            self.ok(self
                .spec()
                .args(["image", "inspect", "--format", "{{.Size}}", image]))?;
        let text = out.stdout.text();
        text.trim().parse().map_err(|_| EngineError::Output {
            command: "image inspect".into(),
            detail: format!("`{}` is not a size", text.trim()),
        })
    }

    /// A container of `image` to export (created, never started); its id.
    fn create_for_export(&self, image: &str) -> Result<String, EngineError> {
        // `create` needs a command even though nothing runs; none is executed.
        // The engine makes the image's WORKDIR in a new container when the
        // image lacks it: `/` keeps the export to the image's own files (a
        // folder only the engine made is not the image's, and a pick stage
        // that names it fails).
        // The owner and a run label no run id can cover: a process killed
        // during an export leaves the container to the next run's sweep of
        // leftovers, and no other run's cleanup removes it while it is read.
        let owner = super::orphans::owner_label();
        let _creating = super::creations::enter("container")?;
        let out = self.ok(self
            .spec()
            .args([
                "create",
                "--network=none",
                "--workdir",
                "/",
                "--label",
                "codegenie.export=1",
                "--label",
                &format!("{}={EXPORT_RUN}", super::RUN_LABEL),
            ])
            .args(owner.iter().flat_map(|l| ["--label", l.as_str()]))
            .args(["--entrypoint", "/codegenie-export-never-runs", image]))?;
        let id = out.stdout.text().trim().to_owned();
        Ok(id)
    }

    /// Write the filesystem of `image` to the tar file `dest`: a container is
    /// created (never started) and removed again.
    pub fn export_filesystem(&self, image: &str, dest: &Path) -> Result<(), EngineError> {
        let id = self.create_for_export(image)?;
        let exported = self.ok(self
            .spec()
            .timeout(TRANSFER_TIMEOUT)
            .args(["export", "-o"])
            .arg(dest)
            .arg(&id));
        let removed = self.remove(&id);
        exported?;
        removed
    }

    /// Stream the filesystem of `image` (a tar, as `docker export` writes
    /// it) into `consume`, which runs on a thread of its own while the
    /// export runs: nothing is written on the host. A container is created
    /// (never started) and removed again. `consume` returning early (an
    /// error of its own) stops the export; its result is returned when the
    /// export succeeded, and also when it stopped the export itself.
    pub fn export_streamed<T: Send + 'static>(
        &self,
        image: &str,
        consume: impl FnOnce(&mut dyn std::io::Read) -> T + Send + 'static,
    ) -> Result<T, EngineError> {
        let id = self.create_for_export(image)?;
        // A few chunks in flight: the export waits for the reader.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(16);
        let reader = std::thread::spawn(move || {
            let mut r = ChannelReader {
                rx,
                chunk: Vec::new(),
                at: 0,
            };
            // Whatever is left is not read: dropping the receiver stops the export.
            consume(&mut r)
        });
        let tx = std::sync::Arc::new(std::sync::Mutex::new(Some(tx)));
        let sink_tx = tx.clone();
        let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sink_stopped = stopped.clone();
        let spec = self.spec().timeout(TRANSFER_TIMEOUT).args(["export", &id]);
        let shown = spec.display();
        let exported = crate::exec::run_into(&spec, move |chunk| {
            let sender = sink_tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let sent = sender.is_some_and(|s| s.send(chunk.to_vec()).is_ok());
            if !sent {
                sink_stopped.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            sent
        });
        // The end of the stream for the reader, whoever holds the sink.
        tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let joined = reader.join();
        let removed = self.remove(&id);
        let value = joined.map_err(|_| EngineError::Command {
            command: shown.clone(),
            detail: "the reader of the export panicked".into(),
        })?;
        let finished = exported.map_err(|e| EngineError::Command {
            command: shown.clone(),
            detail: e.to_string(),
        })?;
        removed?;
        match finished.termination {
            crate::exec::Termination::TimedOut => Err(EngineError::Command {
                command: shown,
                detail: format!("timed out after {} s", TRANSFER_TIMEOUT.as_secs()),
            }),
            // Stopped by the reader (it had enough, or failed): its answer.
            _ if !finished.success() && stopped.load(std::sync::atomic::Ordering::SeqCst) => {
                Ok(value)
            }
            _ if !finished.success() => Err(EngineError::Command {
                command: shown,
                detail: finished
                    .stderr
                    .tail_text(super::LOG_TAIL_BYTES)
                    .trim()
                    .to_owned(),
            }),
            _ => Ok(value),
        }
    }

    /// Import the tar file `src` as a new image with `changes` (Dockerfile
    /// instructions) and tag it `tag`; returns the image id.
    pub fn import_filesystem(
        &self,
        src: &Path,
        changes: &[String],
        tag: &str,
    ) -> Result<String, EngineError> {
        let out = self.ok(self.import_spec(src, changes, tag)?)?;
        let id = out.stdout.text().trim().to_owned();
        if !id.starts_with("sha256:") {
            return Err(EngineError::Output {
                command: "import".into(),
                detail: format!("`{id}` is not an image id"),
            });
        }
        Ok(id)
    }
}

impl Engine {
    /// The `import` command: each change a `--change`, an ENV or LABEL one
    /// shown by its key alone (see [`change_shown`]). A change with a line
    /// break or a trailing backslash is [`EngineError::UnsafeChange`]: the
    /// engine joins the changes with newlines and parses them as one
    /// Dockerfile, so a `WORKDIR`, `USER`, port or ENV key of the image's
    /// making would add an instruction (`ONBUILD RUN ...`) or swallow ours.
    fn import_spec(
        &self,
        src: &Path,
        changes: &[String],
        tag: &str,
    ) -> Result<ExecSpec, EngineError> {
        if let Some(c) = changes
            .iter()
            .find(|c| c.contains(['\n', '\r']) || c.ends_with('\\'))
        {
            let shown = change_shown(c).unwrap_or_else(|| c.clone());
            return Err(EngineError::UnsafeChange {
                shown: format!("{shown:?}"),
            });
        }
        let mut spec = self.spec().timeout(TRANSFER_TIMEOUT).arg("import");
        for c in changes {
            spec = match change_shown(c) {
                Some(shown) => spec.arg("--change").arg_shown_as(c, shown),
                None => spec.arg("--change").arg(c),
            };
        }
        Ok(spec.arg(src).arg(tag))
    }
}

/// How an `ENV` or `LABEL` change is shown in the command line errors
/// name: `ENV KEY=<value not shown>`, as either value may be a secret
/// (a token in a label as much as in the environment); `None` for others.
fn change_shown(change: &str) -> Option<String> {
    let (keyword, kv) = change.split_once(' ')?;
    if !matches!(keyword, "ENV" | "LABEL") {
        return None;
    }
    // A key in JSON quotes (how labels are written) ends where its string
    // does: it may hold a `=`.
    let key = if kv.starts_with('"') {
        let mut keys = serde_json::Deserializer::from_str(kv).into_iter::<String>();
        match keys.next() {
            Some(Ok(_)) => &kv[..keys.byte_offset()],
            _ => "<key not shown>",
        }
    } else {
        kv.split_once('=').map_or(kv, |(k, _)| k)
    };
    Some(format!("{keyword} {key}=<value not shown>"))
}

/// The chunks of a channel as one byte stream (EOF when the sender is gone).
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.chunk = c;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_becomes_exec_form_changes() {
        let c: ImageConfig = serde_json::from_str(
            r#"{"Entrypoint":null,"Cmd":["node","/app/server.js"],"Env":["PATH=/usr/bin:/bin","GREETING=a \"b\" c"],"WorkingDir":"/app","User":"node","ExposedPorts":{"3000/tcp":{}}}"#,
        )
        .unwrap();
        assert_eq!(
            c.import_changes(),
            [
                r#"CMD ["node","/app/server.js"]"#,
                r#"ENV PATH="/usr/bin:/bin""#,
                r#"ENV GREETING="a \"b\" c""#,
                "WORKDIR /app",
                "USER node",
                "EXPOSE 3000/tcp",
            ]
        );
    }

    #[test]
    fn the_import_command_shows_env_and_label_keys_never_their_values() {
        let engine = Engine::at(
            crate::engine::EngineKind::Docker,
            crate::engine::EngineEndpoint::Ambient,
        );
        let config = ImageConfig {
            env: Some(vec![
                "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
                "NODE_ENV=production".into(),
            ]),
            working_dir: "/app".into(),
            labels: Some(
                [
                    (
                        "com.example.token".to_owned(),
                        "ghp_labelsecret0123456789".to_owned(),
                    ),
                    ("a=b".to_owned(), "labelvalue2".to_owned()),
                ]
                .into(),
            ),
            ..ImageConfig::default()
        };
        let changes = config.import_changes();
        let spec = engine
            .import_spec(Path::new("/tmp/cut.tar"), &changes, "codegenie-min:x")
            .unwrap();
        let shown = spec.display();
        for key in [
            "ENV AWS_SECRET_ACCESS_KEY=<value not shown>",
            "ENV NODE_ENV=<value not shown>",
            r#"LABEL "com.example.token"=<value not shown>"#,
            r#"LABEL "a=b"=<value not shown>"#,
        ] {
            assert!(shown.contains(key), "{key}: {shown}");
        }
        for value in [
            "wJalrXUtnFEMI",
            "production",
            "ghp_labelsecret",
            "labelvalue2",
        ] {
            assert!(!shown.contains(value), "{value}: {shown}");
        }
        // The control: other changes, the tar and the tag are shown.
        assert!(shown.contains("--change WORKDIR /app --change"), "{shown}");
        assert!(shown.ends_with(" /tmp/cut.tar codegenie-min:x"), "{shown}");
        // Other instructions as they are; an unquoted key (ours) ends at `=`.
        assert_eq!(change_shown("WORKDIR /app"), None);
        assert_eq!(
            change_shown("LABEL codegenie.minimal-of=sha256:1"),
            Some("LABEL codegenie.minimal-of=<value not shown>".to_owned())
        );
    }

    #[test]
    fn a_change_that_would_not_stay_one_instruction_is_refused() {
        let engine = Engine::at(
            crate::engine::EngineKind::Docker,
            crate::engine::EngineEndpoint::Ambient,
        );
        let hostile = "\nONBUILD RUN echo INJECTED > /pwned";
        let tar = Path::new("/tmp/cut.tar");
        for config in [
            ImageConfig {
                working_dir: format!("/app{hostile}"),
                ..ImageConfig::default()
            },
            ImageConfig {
                user: format!("node{hostile}"),
                ..ImageConfig::default()
            },
            ImageConfig {
                exposed_ports: Some([(format!("80{hostile}"), serde_json::json!({}))].into()),
                ..ImageConfig::default()
            },
            ImageConfig {
                env: Some(vec![format!("K{hostile}=secretvalue")]),
                ..ImageConfig::default()
            },
            // A trailing backslash continues the line into the next change.
            ImageConfig {
                working_dir: "/app\\".into(),
                user: "node".into(),
                ..ImageConfig::default()
            },
        ] {
            let changes = config.import_changes();
            let e = engine.import_spec(tar, &changes, "t").unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, EngineError::UnsafeChange { .. }), "{text}");
            assert!(
                !text.contains('\n') && !text.contains("secretvalue"),
                "{text}"
            );
        }
        // The control: the same values without the break are passed on;
        // ENV and LABEL values are JSON strings, a newline in them escaped.
        let config = ImageConfig {
            working_dir: "/app".into(),
            user: "node".into(),
            env: Some(vec![format!("K=v{hostile}")]),
            labels: Some([("k".to_owned(), format!("v{hostile}"))].into()),
            ..ImageConfig::default()
        };
        let changes = config.import_changes();
        assert!(changes.iter().all(|c| !c.contains('\n')), "{changes:?}");
        assert!(engine.import_spec(tar, &changes, "t").is_ok());
    }

    #[test]
    fn an_import_that_fails_names_env_keys_but_never_their_values() {
        // A CLI that is not there fails at once and names the command: the
        // error a user sees on stderr.
        let engine = Engine::at(
            crate::engine::EngineKind::Docker,
            crate::engine::EngineEndpoint::Ambient,
        );
        let spec = engine
            .spec()
            .arg("import")
            .arg("--change")
            .arg_shown_as(
                "ENV AWS_SECRET_ACCESS_KEY=\"wJalrXUtnFEMI/K7MDENG\"",
                "ENV AWS_SECRET_ACCESS_KEY=<value not shown>",
            )
            .arg("--change")
            .arg("WORKDIR /app");
        let shown = spec.display();
        assert!(
            shown.contains("AWS_SECRET_ACCESS_KEY=<value not shown>"),
            "{shown}"
        );
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(shown.contains("WORKDIR /app"), "{shown}");
    }
}
