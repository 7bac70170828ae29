//! Special tokens (`image-digest:<resolved>`) resolved through the
//! [`ProbeContext`]. Every way a token can fail to resolve folds to one empty
//! sentinel, so the key is the same whichever it was; the reason is logged.

use serde::{Deserialize, Serialize};

use super::TokenKind;
use crate::probe::{ProbeContext, RepoSnapshot};

/// Why a token has no value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum UnresolvedReason {
    /// The key was computed without a probe context.
    NoContext,
    /// The context has no resolver for this token kind.
    ResolverUnbound,
    /// The resolver ran and found no value.
    ResolverReturnedNone,
    /// The resolver failed; its message.
    ResolverFailed(String),
    /// The caller chose not to resolve it (resolving is expensive, e.g. an
    /// image build); why, and how to ask for it.
    NotRequested(String),
}

impl std::fmt::Display for UnresolvedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnresolvedReason::NoContext => f.write_str("no probe context"),
            UnresolvedReason::ResolverUnbound => f.write_str("no resolver bound in the context"),
            UnresolvedReason::ResolverReturnedNone => f.write_str("the resolver found no value"),
            UnresolvedReason::ResolverFailed(m) => write!(f, "the resolver failed: {m}"),
            UnresolvedReason::NotRequested(why) => f.write_str(why),
        }
    }
}

/// A token's value, or why it has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenValue {
    /// The resolved value.
    Resolved(String),
    /// No value: the key uses the empty sentinel.
    Unresolved(UnresolvedReason),
}

impl TokenValue {
    /// The value that goes into the key: `None` is the sentinel, the same for
    /// every [`UnresolvedReason`].
    pub fn key_value(&self) -> Option<&str> {
        match self {
            TokenValue::Resolved(v) => Some(v),
            TokenValue::Unresolved(_) => None,
        }
    }
}

/// A token and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedToken {
    /// The token as declared (`image-digest:<resolved>`).
    pub token: String,
    /// Its value or why it has none.
    pub value: TokenValue,
}

/// Resolve one token. Never fails: an unresolved token is a value too.
pub fn resolve_token(
    kind: TokenKind,
    repo: &RepoSnapshot,
    ctx: Option<&ProbeContext>,
) -> ResolvedToken {
    // Exhaustive on purpose: a new token kind does not compile until it has a resolver.
    let value = match kind {
        TokenKind::ImageDigest => resolve_image_digest(repo, ctx),
        TokenKind::TraceConfig => resolve_trace_config(repo, ctx),
    };
    if let TokenValue::Unresolved(reason) = &value {
        match kind {
            TokenKind::ImageDigest => tracing::info!(
                token = kind.name(),
                image_digest_unresolved_reason = %reason,
                "token unresolved; the cache key uses the empty sentinel"
            ),
            TokenKind::TraceConfig => tracing::info!(
                token = kind.name(),
                trace_config_unresolved_reason = %reason,
                "token unresolved; the cache key uses the empty sentinel"
            ),
        }
    }
    ResolvedToken {
        token: format!("{}{}", kind.name(), super::TOKEN_SUFFIX),
        value,
    }
}

fn resolve_trace_config(repo: &RepoSnapshot, ctx: Option<&ProbeContext>) -> TokenValue {
    let Some(ctx) = ctx else {
        return TokenValue::Unresolved(UnresolvedReason::NoContext);
    };
    let Some(resolver) = &ctx.trace_config_resolver else {
        return TokenValue::Unresolved(UnresolvedReason::ResolverUnbound);
    };
    from_resolver(resolver.resolve(repo, &ctx.settings))
}

fn from_resolver(r: Result<Option<String>, crate::probe::ResolverError>) -> TokenValue {
    match r {
        Ok(Some(v)) => TokenValue::Resolved(v),
        Ok(None) => TokenValue::Unresolved(UnresolvedReason::ResolverReturnedNone),
        Err(e) => match e.downcast_ref::<crate::probe::TokenNotRequested>() {
            Some(n) => TokenValue::Unresolved(UnresolvedReason::NotRequested(n.0.clone())),
            None => TokenValue::Unresolved(UnresolvedReason::ResolverFailed(
                crate::errors::error_chain(e.as_ref()),
            )),
        },
    }
}

fn resolve_image_digest(repo: &RepoSnapshot, ctx: Option<&ProbeContext>) -> TokenValue {
    let Some(ctx) = ctx else {
        return TokenValue::Unresolved(UnresolvedReason::NoContext);
    };
    let Some(resolver) = &ctx.image_digest_resolver else {
        return TokenValue::Unresolved(UnresolvedReason::ResolverUnbound);
    };
    from_resolver(resolver.resolve(repo))
}
