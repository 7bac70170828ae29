//! Declared inputs: the globs and special tokens whose content decides a
//! probe's output, and therefore its cache key.

use std::borrow::Cow;

mod spec;

pub use spec::{parse_input_spec, InputSpec, InputSpecError, TokenKind, TOKEN_SUFFIX};

/// One entry of a probe's declared inputs. `declared_inputs![...]` builds these
/// at compile time; [`parse_declared_input`] builds them at run time with the
/// same rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeclaredInput {
    /// A glob relative to the repository root.
    Glob(Cow<'static, str>),
    /// A special token, resolved through the probe context.
    Token(TokenKind),
}

impl DeclaredInput {
    /// The entry as a user writes it.
    pub fn as_written(&self) -> Cow<'_, str> {
        match self {
            DeclaredInput::Glob(g) => Cow::Borrowed(g.as_ref()),
            DeclaredInput::Token(k) => Cow::Owned(format!("{}{TOKEN_SUFFIX}", k.name())),
        }
    }
}

impl std::fmt::Display for DeclaredInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_written())
    }
}

/// Why a cache key could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum CacheKeyError {
    /// A declared input breaks the rules of `declared_inputs!`.
    #[error("invalid declared input: {0}")]
    InvalidInput(#[from] InputSpecError),
}

/// Parse a declared input built at run time, with exactly the rules the
/// `declared_inputs!` macro applies at compile time.
pub fn parse_declared_input(entry: &str) -> Result<DeclaredInput, CacheKeyError> {
    Ok(match parse_input_spec(entry)? {
        InputSpec::Glob(g) => DeclaredInput::Glob(Cow::Owned(g)),
        InputSpec::Token(k) => DeclaredInput::Token(k),
    })
}

#[cfg(test)]
mod tests {
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
            let err = parse_declared_input(bad).unwrap_err();
            assert!(err.to_string().contains("malformed token"), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_token_suggests_the_closest_kind() {
        let err = parse_declared_input("image-digst:<resolved>").unwrap_err();
        assert_eq!(
            err.to_string(),
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
