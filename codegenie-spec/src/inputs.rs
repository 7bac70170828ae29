//! The rules for one declared-input entry, applied by the `declared_inputs!`
//! macro at compile time and by the runtime to inputs built at run time, and
//! the table of token kinds both know.

use std::borrow::Cow;

/// A kind of special token (`<name>:<resolved>`) a probe may declare.
///
/// Adding a kind is one variant here plus its entry in [`TokenKind::ALL`] and
/// [`TokenKind::name`]; the runtime's resolver dispatch is an exhaustive
/// `match`, so the compiler then asks for its resolver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenKind {
    /// The digest of the repository's container image (`image-digest:<resolved>`).
    ImageDigest,
    /// What changes a runtime trace's evidence beyond the repository
    /// (`trace-config:<resolved>`): the backend, the tracer's version and
    /// argv, the scenarios actually used, the limits.
    TraceConfig,
}

impl TokenKind {
    /// Every token kind, in declaration order.
    pub const ALL: &'static [TokenKind] = &[TokenKind::ImageDigest, TokenKind::TraceConfig];

    /// The name users write before `:<resolved>`.
    pub const fn name(self) -> &'static str {
        match self {
            TokenKind::ImageDigest => "image-digest",
            TokenKind::TraceConfig => "trace-config",
        }
    }

    /// The Rust identifier of the variant (used by the macro's generated code).
    pub const fn variant_ident(self) -> &'static str {
        match self {
            TokenKind::ImageDigest => "ImageDigest",
            TokenKind::TraceConfig => "TraceConfig",
        }
    }

    /// Look a kind up by the name users write.
    pub fn from_name(name: &str) -> Option<TokenKind> {
        TokenKind::ALL.iter().copied().find(|k| k.name() == name)
    }
}

/// One entry of a probe's declared inputs. `declared_inputs![...]` builds these
/// at compile time; [`DeclaredInput::parse`] builds them at run time with the
/// same rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeclaredInput {
    /// A glob relative to the repository root.
    Glob(Cow<'static, str>),
    /// A special token, resolved through the probe context.
    Token(TokenKind),
}

impl DeclaredInput {
    /// Parse an entry built at run time, with exactly the rules the
    /// `declared_inputs!` macro applies at compile time.
    pub fn parse(entry: &str) -> Result<DeclaredInput, InputSpecError> {
        Ok(match parse_input_spec(entry)? {
            InputSpec::Glob(g) => DeclaredInput::Glob(Cow::Owned(g)),
            InputSpec::Token(k) => DeclaredInput::Token(k),
        })
    }

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

/// The suffix that makes an entry a special token.
pub const TOKEN_SUFFIX: &str = ":<resolved>";

/// What a valid declared-input entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSpec {
    /// A glob relative to the repository root (`**` allowed).
    Glob(String),
    /// A special token resolved at run time.
    Token(TokenKind),
}

/// Why a declared-input entry is rejected. The `Display` text is exactly what a
/// user sees, at compile time (on the literal) or at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSpecError {
    /// The entry is empty.
    Empty,
    /// A well-formed token whose name is not a known token kind.
    UnknownToken {
        /// The name before `:<resolved>`.
        name: String,
        /// The closest known kind, if one is close.
        suggestion: Option<&'static str>,
    },
    /// The entry looks like a token but does not follow `^[a-z0-9_-]+:<resolved>$`.
    MalformedToken {
        /// The entry as written.
        entry: String,
        /// What the entry most likely meant, if a known kind is close.
        suggestion: Option<String>,
    },
    /// The entry is meant as a glob but is not a valid one.
    InvalidGlob {
        /// The entry as written.
        entry: String,
        /// The glob engine's message.
        message: String,
    },
    /// The glob is absolute or escapes the repository root.
    NotRepoRelative {
        /// The entry as written.
        entry: String,
    },
}

impl std::fmt::Display for InputSpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputSpecError::Empty => write!(f, "declared input is empty"),
            InputSpecError::UnknownToken { name, suggestion } => {
                write!(f, "unknown token kind `{name}` in `{name}{TOKEN_SUFFIX}`")?;
                match suggestion {
                    Some(s) => write!(f, "; did you mean `{s}{TOKEN_SUFFIX}`?"),
                    None => write!(f, "; known token kinds: {}", known_kinds_list()),
                }
            }
            InputSpecError::MalformedToken { entry, suggestion } => {
                write!(
                    f,
                    "malformed token `{entry}`: a token is `<name>{TOKEN_SUFFIX}` with a lowercase name of [a-z0-9_-]"
                )?;
                match suggestion {
                    Some(s) => write!(f, "; did you mean `{s}`?"),
                    None => Ok(()),
                }
            }
            InputSpecError::InvalidGlob { entry, message } => {
                write!(f, "invalid glob `{entry}`: {message}")
            }
            InputSpecError::NotRepoRelative { entry } => write!(
                f,
                "declared input `{entry}` must be relative to the repository root (no leading `/`, no `..`)"
            ),
        }
    }
}

impl std::error::Error for InputSpecError {}

fn known_kinds_list() -> String {
    TokenKind::ALL
        .iter()
        .map(|k| format!("`{}{TOKEN_SUFFIX}`", k.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_token_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn closest_kind(name: &str) -> Option<&'static str> {
    // `image_digest` is the same mistake as `image-digst`: compare with dashes.
    crate::suggest::closest(
        &name.replace('_', "-"),
        TokenKind::ALL.iter().map(|k| k.name()),
    )
}

/// Does an entry look like an attempt at a token? Globs may contain `:` and
/// `<`/`>` are not glob syntax, so a `:` followed by something `resolved`-like,
/// or any `<`/`>`, is taken as a token attempt and must then be exact.
fn looks_like_token(entry: &str) -> bool {
    if entry.contains('<') || entry.contains('>') {
        return true;
    }
    match entry.rsplit_once(':') {
        Some((_, after)) => {
            let after = after.trim().to_ascii_lowercase();
            after.contains("resolv") || strsim::levenshtein(&after, "resolved") <= 3
        }
        None => false,
    }
}

/// Classify and validate one declared-input entry.
///
/// A token is exactly `^[a-z0-9_-]+:<resolved>$` with a known name. Anything
/// that looks like a token but is not exact is an error, never a glob. Any
/// other entry must be a valid, repository-relative glob.
pub fn parse_input_spec(entry: &str) -> Result<InputSpec, InputSpecError> {
    if entry.trim().is_empty() {
        return Err(InputSpecError::Empty);
    }
    if let Some(name) = entry.strip_suffix(TOKEN_SUFFIX) {
        if is_token_name(name) {
            return match TokenKind::from_name(name) {
                Some(kind) => Ok(InputSpec::Token(kind)),
                None => Err(InputSpecError::UnknownToken {
                    name: name.to_owned(),
                    suggestion: closest_kind(name),
                }),
            };
        }
    }
    if looks_like_token(entry) {
        let name = entry.split(':').next().unwrap_or("");
        let suggestion = closest_kind(name.trim()).map(|k| format!("{k}{TOKEN_SUFFIX}"));
        return Err(InputSpecError::MalformedToken {
            entry: entry.to_owned(),
            suggestion,
        });
    }
    if entry.starts_with('/') || entry.split('/').any(|seg| seg == "..") {
        return Err(InputSpecError::NotRepoRelative {
            entry: entry.to_owned(),
        });
    }
    match globset::GlobBuilder::new(entry)
        .literal_separator(true)
        .build()
    {
        Ok(_) => Ok(InputSpec::Glob(entry.to_owned())),
        Err(e) => Err(InputSpecError::InvalidGlob {
            entry: entry.to_owned(),
            message: e.kind().to_string(),
        }),
    }
}
