//! Resolving a probe's declared inputs: every glob expanded and hashed, every
//! token resolved. The result is what the cache key is composed from and what
//! `codegenie cache explain` prints.

use serde::{Deserialize, Serialize};

use super::hash_index::HashIndex;
use super::tokens::{resolve_token, ResolvedToken};
use super::walk::{match_and_hash_with, GlobMatches};
use super::{parse_input_spec, CacheKeyError, DeclaredInput, InputSpec, TokenKind};
use crate::probe::{ProbeContext, RepoSnapshot};

/// Every declared input with its content: the material of a cache key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedInputs {
    /// One entry per distinct declared glob, sorted by glob.
    pub globs: Vec<GlobMatches>,
    /// One entry per distinct declared token, sorted by token.
    pub tokens: Vec<ResolvedToken>,
}

/// Resolve `inputs` against `repo`. Each entry is checked again with the
/// `declared_inputs!` rules (inputs may be built at run time), so a malformed
/// or unknown token is a [`CacheKeyError`], never a glob.
pub fn resolve_inputs(
    repo: &RepoSnapshot,
    inputs: &[DeclaredInput],
    ctx: Option<&ProbeContext>,
) -> Result<ResolvedInputs, CacheKeyError> {
    resolve_inputs_with(repo, inputs, ctx, None).map(|(r, _)| r)
}

/// [`resolve_inputs`] reusing the hashes `index` remembers for unchanged files;
/// also returns the hash index entries of the files hashed or checked this time.
pub fn resolve_inputs_with(
    repo: &RepoSnapshot,
    inputs: &[DeclaredInput],
    ctx: Option<&ProbeContext>,
    hash_index: Option<&HashIndex>,
) -> Result<(ResolvedInputs, HashIndex), CacheKeyError> {
    let mut globs = Vec::new();
    let mut kinds: Vec<TokenKind> = Vec::new();
    for input in inputs {
        match input {
            DeclaredInput::Glob(g) => match parse_input_spec(g)? {
                InputSpec::Glob(g) => globs.push(g),
                // A token written into a `Glob` variant by hand is still a token.
                InputSpec::Token(k) => kinds.push(k),
            },
            DeclaredInput::Token(k) => kinds.push(*k),
        }
    }
    kinds.sort_by_key(|k| k.name());
    kinds.dedup();
    let (globs, fresh) = match_and_hash_with(repo.root(), &globs, hash_index)?;
    let tokens = kinds
        .into_iter()
        .map(|k| resolve_token(k, repo, ctx))
        .collect();
    Ok((ResolvedInputs { globs, tokens }, fresh))
}
