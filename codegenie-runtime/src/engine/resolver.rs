//! The default `image-digest:<resolved>` resolver: the run's one build of
//! the repository, remembered across runs when its inputs are unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::probe::{ImageDigestResolver, RepoSnapshot, ResolverError};

use super::{build_memo, BuildContextError, BuildOptions, Engine, EngineError, REPOSITORY_LABEL};

/// The default `image-digest:<resolved>` resolver: builds the repository's
/// Dockerfile (`build --iidfile`). No Dockerfile resolves to `None`; a
/// failed build is an [`EngineError`].
///
/// One build per run: the resolver remembers what it resolved for each
/// repository (digest or error), so the cache key and the traced image are
/// the same build (docs/architecture.md, "One build per run"). Make one
/// resolver per run; a resolver kept across edits would keep its first digest.
#[derive(Debug, Clone)]
pub struct BuildDigestResolver {
    engine: Engine,
    options: BuildOptions,
    resolved: Arc<Mutex<BTreeMap<PathBuf, Result<String, EngineError>>>>,
    /// Set by [`BuildDigestResolver::recall_only`]: never build, and say
    /// this when no remembered build answers.
    recall_only: Option<String>,
}

impl BuildDigestResolver {
    /// A resolver building with `engine` within [`BUILD_TIMEOUT`](super::BUILD_TIMEOUT).
    pub fn new(engine: Engine) -> Self {
        BuildDigestResolver {
            engine,
            options: BuildOptions::default(),
            resolved: Arc::default(),
            recall_only: None,
        }
    }

    /// The same resolver, answering only from remembered builds (see
    /// [`BuildDigestResolver::recall`]): it never builds, and when no
    /// remembered build matches, the digest is unresolved
    /// ([`TokenNotRequested`](crate::probe::TokenNotRequested)) with `why`
    /// as the reason. For explaining a key without running anything.
    pub fn recall_only(mut self, why: impl Into<String>) -> Self {
        self.recall_only = Some(why.into());
        self
    }

    /// The same resolver with another build time limit.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = timeout;
        self
    }

    /// The same resolver with other build options.
    pub fn with_options(mut self, options: BuildOptions) -> Self {
        self.options = options;
        self
    }

    /// The digest building the repository at `root` would give, when the
    /// build is remembered and its inputs unchanged (docs/architecture.md,
    /// "Remembered builds"); nothing is built.
    pub fn recall(&self, root: &Path) -> Option<String> {
        let labels = build_labels(root).ok()?;
        let plan = build_memo::BuildPlan::of(&self.engine, root, &self.options, &labels).ok()?;
        plan.recall(&self.engine)
    }

    /// How many builds this resolver (and its clones) started.
    pub fn builds(&self) -> usize {
        self.resolved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

impl BuildDigestResolver {
    /// The digest of building `root`: remembered when every input of the
    /// build is known and unchanged, built otherwise.
    fn build_or_recall(&self, root: &Path) -> Result<String, EngineError> {
        let labels = build_labels(root)?;
        if !self.options.remember {
            return self.engine.build_labelled(root, &self.options, &labels);
        }
        let plan = match build_memo::BuildPlan::of(&self.engine, root, &self.options, &labels) {
            Ok(plan) => plan,
            Err(why) => {
                tracing::debug!(reason = %why, "build not remembered");
                return self.engine.build_labelled(root, &self.options, &labels);
            }
        };
        if let Some(digest) = plan.recall(&self.engine) {
            tracing::debug!(%digest, "build_recalled");
            return Ok(digest);
        }
        let digest = self.engine.build_labelled(root, &self.options, &labels)?;
        plan.remember(&self.engine, &digest);
        Ok(digest)
    }
}

/// The labels of a repository's trace image: [`REPOSITORY_LABEL`] with the
/// repository's canonical path (a moved repository is a new image, and
/// re-traced once).
pub(super) fn build_labels(root: &Path) -> Result<Vec<(String, String)>, EngineError> {
    let canonical = std::fs::canonicalize(root).map_err(|e| {
        EngineError::Context(Arc::new(BuildContextError::Io {
            path: root.to_owned(),
            source: e,
        }))
    })?;
    Ok(vec![(
        REPOSITORY_LABEL.to_owned(),
        canonical.to_string_lossy().into_owned(),
    )])
}

impl ImageDigestResolver for BuildDigestResolver {
    fn resolve(&self, repo: &RepoSnapshot) -> Result<Option<String>, ResolverError> {
        if !repo.has_file("Dockerfile") {
            return Ok(None);
        }
        if let Some(why) = &self.recall_only {
            return match self.recall(repo.root()) {
                Some(digest) => Ok(Some(digest)),
                None => Err(Box::new(crate::probe::TokenNotRequested(why.clone()))),
            };
        }
        // Held across the build: a second caller waits for the first build
        // instead of starting its own.
        let mut resolved = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        let result = resolved
            .entry(repo.root().to_path_buf())
            .or_insert_with(|| self.build_or_recall(repo.root()));
        match result {
            Ok(d) => Ok(Some(d.clone())),
            Err(e) => Err(Box::new(e.clone())),
        }
    }
}
