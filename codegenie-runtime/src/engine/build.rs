//! Image builds: the repository's Dockerfile, its context as a tar on
//! stdin, the digest from `--iidfile`, the trace image's tag and labels.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::exec;

use super::client::is_digest;
use super::error::daemon_down_line;
use super::resolver::build_labels;
use super::{
    context, BuildNetwork, BuildOptions, Engine, EngineError, LOG_TAIL_BYTES, REPOSITORY_LABEL,
    TRACE_IMAGES,
};

impl Engine {
    /// Build the image of the repository at `repo_root` (its `Dockerfile`)
    /// and return its digest (`sha256:...`); the image is labelled with the
    /// repository ([`REPOSITORY_LABEL`]) and tagged
    /// `codegenie-trace:<short digest>`, and older trace images of the
    /// repository beyond [`BuildOptions::keep_images`] are removed.
    pub fn build(&self, repo_root: &Path) -> Result<String, EngineError> {
        self.build_with(repo_root, &BuildOptions::default())
    }

    /// [`Engine::build`] with a time limit: past it the build client is
    /// killed (the engine then cancels the build) and
    /// [`EngineError::BuildTimedOut`] returned.
    pub fn build_within(&self, repo_root: &Path, timeout: Duration) -> Result<String, EngineError> {
        self.build_with(
            repo_root,
            &BuildOptions {
                timeout,
                ..BuildOptions::default()
            },
        )
    }

    /// [`Engine::build`] with explicit options. The context is a tar of the
    /// repository (see [`context`]: `.dockerignore` honoured, `.codegenie/`
    /// never sent) written outside the repository and fed to `build -`.
    pub fn build_with(&self, repo_root: &Path, opts: &BuildOptions) -> Result<String, EngineError> {
        let labels = build_labels(repo_root)?;
        self.build_labelled(repo_root, opts, &labels)
    }

    pub(super) fn build_labelled(
        &self,
        repo_root: &Path,
        opts: &BuildOptions,
        labels: &[(String, String)],
    ) -> Result<String, EngineError> {
        let digest = self.build_context(repo_root, None, opts, labels)?;
        let tag = format!("{TRACE_IMAGES}:{}", &digest[7..19]);
        self.tag(&digest, &tag)?;
        if let Some((_, repository)) = labels.iter().find(|(k, _)| k == REPOSITORY_LABEL) {
            self.tidy_images(TRACE_IMAGES, repository, opts.keep_images.max(1), &digest);
        }
        Ok(digest)
    }

    /// Build `dockerfile` (bytes of ours, not the repository's) with the
    /// repository at `repo_root` as its context, as `docker build -f FILE
    /// REPO` would, with `labels`; returns the image id. Untagged: the
    /// caller names it.
    pub fn build_dockerfile(
        &self,
        repo_root: &Path,
        dockerfile: &[u8],
        opts: &BuildOptions,
        labels: &[(String, String)],
    ) -> Result<String, EngineError> {
        self.build_context(repo_root, Some(dockerfile), opts, labels)
    }

    fn build_context(
        &self,
        repo_root: &Path,
        dockerfile: Option<&[u8]>,
        opts: &BuildOptions,
        labels: &[(String, String)],
    ) -> Result<String, EngineError> {
        // Never a name the repository's files take: `.codegenie/` is not sent.
        const OURS: &str = ".codegenie/Dockerfile.minimal";
        let tmp = tempfile::tempdir().map_err(|e| EngineError::Command {
            command: "build".into(),
            detail: format!("temp dir: {e}"),
        })?;
        let iid = tmp.path().join("iid");
        let tar_path = tmp.path().join("context.tar");
        let extra: Vec<(&str, &[u8])> = dockerfile.iter().map(|d| (OURS, *d)).collect();
        let packed = context::write_context_tar_with(repo_root, &tar_path, &extra)
            .map_err(|e| EngineError::Context(Arc::new(e)))?;
        tracing::debug!(
            entries = packed.entries,
            bytes = packed.content_bytes,
            "build context packed"
        );
        let mut spec = self
            .spec()
            .arg("build")
            .arg("-q")
            .arg("--iidfile")
            .arg(&iid);
        if dockerfile.is_some() {
            spec = spec.args(["-f", OURS]);
        }
        if opts.network == BuildNetwork::None {
            spec = spec.args(["--network", "none"]);
        }
        for (k, v) in labels {
            spec = spec.arg("--label").arg(format!("{k}={v}"));
        }
        let out = self.run(spec.arg("-").stdin_file(&tar_path).timeout(opts.timeout))?;
        let timeout = opts.timeout;
        if out.termination == exec::Termination::TimedOut {
            return Err(EngineError::BuildTimedOut {
                after_ms: timeout.as_millis().min(u64::MAX as u128) as u64,
            });
        }
        if !out.success() {
            let mut log = out.stdout.tail_text(LOG_TAIL_BYTES);
            log.push_str(&out.stderr.tail_text(LOG_TAIL_BYTES));
            if let Some(line) = daemon_down_line(&log) {
                return Err(EngineError::Unavailable { detail: line });
            }
            let start = log.len().saturating_sub(LOG_TAIL_BYTES);
            let start = (start..log.len())
                .find(|i| log.is_char_boundary(*i))
                .unwrap_or(log.len());
            return Err(EngineError::BuildFailed {
                exit_code: out.code(),
                log_tail: log[start..].trim().to_owned(),
            });
        }
        let digest = std::fs::read_to_string(&iid)
            .map_err(|e| EngineError::Output {
                command: "build --iidfile".into(),
                detail: format!("{}: {e}", iid.display()),
            })?
            .trim()
            .to_owned();
        if !is_digest(&digest) {
            return Err(EngineError::Output {
                command: "build --iidfile".into(),
                detail: format!("`{digest}` is not an image digest"),
            });
        }
        Ok(digest)
    }
}
