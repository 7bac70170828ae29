//! Declared inputs: the globs and special tokens whose content decides a
//! probe's output, and therefore its cache key.

use std::path::PathBuf;

pub mod hash_index;
pub mod resolve;
pub mod tokens;
pub mod walk;

pub use codegenie_spec::inputs::{
    parse_input_spec, DeclaredInput, InputSpec, InputSpecError, TokenKind, TOKEN_SUFFIX,
};
pub use hash_index::HashIndex;
pub use resolve::{resolve_inputs, resolve_inputs_with, ResolvedInputs};
pub use tokens::{ResolvedToken, TokenValue, UnresolvedReason};
pub use walk::{GlobMatches, MatchedFile};

/// Why a cache key could not be computed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheKeyError {
    /// A declared input breaks the rules of `declared_inputs!`.
    #[error("invalid declared input")]
    InvalidInput(#[from] InputSpecError),
    /// A glob the glob engine rejected while building the matcher.
    #[error("invalid glob `{glob}`: {message}")]
    Glob {
        /// The glob (or globs) concerned.
        glob: String,
        /// The glob engine's message.
        message: String,
    },
    /// The repository walk failed (unreadable folder, ...).
    #[error("cannot walk {root}")]
    Walk {
        /// The repository root.
        root: PathBuf,
        /// The walker's error, which names the path when it knows it.
        #[source]
        source: ignore::Error,
    },
    /// A matched file could not be read (removed during the walk, no permission, ...).
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Parse a declared input built at run time, with exactly the rules the
/// `declared_inputs!` macro applies at compile time.
pub fn parse_declared_input(entry: &str) -> Result<DeclaredInput, CacheKeyError> {
    Ok(DeclaredInput::parse(entry)?)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    #[test]
    fn tokens_and_globs_are_classified() {
        assert_eq!(
            parse_declared_input("image-digest:<resolved>").unwrap(),
            DeclaredInput::Token(TokenKind::ImageDigest)
        );
        assert_eq!(
            parse_declared_input("src/**/*.rs").unwrap(),
            DeclaredInput::Glob(Cow::Borrowed("src/**/*.rs"))
        );
    }

    #[test]
    fn near_miss_tokens_are_errors_not_globs() {
        for bad in [
            "image-digest:<resolve>",
            "Image-Digest:<resolved>",
            "image-digest:resolved",
            ":<resolved>",
        ] {
            let err = crate::errors::error_chain(&parse_declared_input(bad).unwrap_err());
            assert!(err.contains("malformed token"), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_token_suggests_the_closest_kind() {
        let err = parse_declared_input("image-digst:<resolved>").unwrap_err();
        assert_eq!(
            crate::errors::error_chain(&err),
            "invalid declared input: unknown token kind `image-digst` in `image-digst:<resolved>`; did you mean `image-digest:<resolved>`?"
        );
    }

    #[test]
    fn bad_globs_are_rejected() {
        assert!(parse_declared_input("src/[a-").is_err());
        assert!(parse_declared_input("/etc/passwd").is_err());
        assert!(parse_declared_input("../x").is_err());
        assert!(parse_declared_input("").is_err());
    }

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for k in TokenKind::ALL {
            assert_eq!(TokenKind::from_name(k.name()), Some(*k));
        }
    }
}
