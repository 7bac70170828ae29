//! Cache key composition (docs/architecture.md, "Cache key", a contract): blake3 over a canonical,
//! length-prefixed encoding of the probe name, its version, each declared glob
//! with the sorted (path, content hash) pairs it matched, and each token with
//! its value or the unresolved sentinel.
//!
//! Everything is sorted here, so the order a walk visited files in, the order
//! inputs were declared in and the machine path of the repository never change
//! a key; a renamed file does (its path is part of the pair).

use crate::inputs::ResolvedInputs;

/// Domain tag of the encoding; change it when the encoding changes.
pub const KEY_FORMAT: &[u8] = b"codegenie.cache-key.v1";

/// Tag of a token with no value (the sentinel every unresolved path folds to).
const TOKEN_UNRESOLVED: u8 = 0;
/// Tag of a token with a resolved value (so `Some("")` differs from the sentinel).
const TOKEN_RESOLVED: u8 = 1;

/// The key of `probe` at `version` over `inputs`, as 64 lowercase hex digits.
pub fn compose_key(probe: &str, version: u32, inputs: &ResolvedInputs) -> String {
    let mut enc = Encoder(blake3::Hasher::new());
    enc.bytes(KEY_FORMAT);
    enc.bytes(probe.as_bytes());
    enc.u64(u64::from(version));

    let mut globs: Vec<_> = inputs.globs.iter().collect();
    globs.sort_by(|a, b| a.glob.cmp(&b.glob));
    globs.dedup_by(|a, b| a.glob == b.glob);
    enc.u64(globs.len() as u64);
    for g in globs {
        enc.bytes(g.glob.as_bytes());
        let mut files: Vec<_> = g.files.iter().collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files.dedup_by(|a, b| a.path == b.path);
        enc.u64(files.len() as u64);
        for f in files {
            enc.bytes(f.path.as_bytes());
            enc.bytes(f.blake3.as_bytes());
        }
    }

    let mut tokens: Vec<_> = inputs.tokens.iter().collect();
    tokens.sort_by(|a, b| a.token.cmp(&b.token));
    tokens.dedup_by(|a, b| a.token == b.token);
    enc.u64(tokens.len() as u64);
    for t in tokens {
        enc.bytes(t.token.as_bytes());
        match t.value.key_value() {
            Some(v) => {
                enc.tag(TOKEN_RESOLVED);
                enc.bytes(v.as_bytes());
            }
            None => enc.tag(TOKEN_UNRESOLVED),
        }
    }
    enc.0.finalize().to_hex().to_string()
}

/// Whether `s` has the shape of a key (64 lowercase hex digits); anything else
/// must never become part of a path.
pub fn is_key(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Length-prefixed fields: no field can run into the next.
struct Encoder(blake3::Hasher);

impl Encoder {
    fn u64(&mut self, v: u64) {
        self.0.update(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.update(b);
    }
    fn tag(&mut self, t: u8) {
        self.0.update(&[t]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::{GlobMatches, MatchedFile, ResolvedToken, TokenValue, UnresolvedReason};

    fn file(p: &str, h: &str) -> MatchedFile {
        MatchedFile {
            path: p.into(),
            blake3: h.into(),
        }
    }

    fn inputs(files: Vec<MatchedFile>, token: TokenValue) -> ResolvedInputs {
        ResolvedInputs {
            globs: vec![GlobMatches {
                glob: "**/*".into(),
                files,
            }],
            tokens: vec![ResolvedToken {
                token: "image-digest:<resolved>".into(),
                value: token,
            }],
        }
    }

    #[test]
    fn length_prefixes_keep_fields_apart() {
        let none = TokenValue::Unresolved(UnresolvedReason::NoContext);
        let a = compose_key("p", 1, &inputs(vec![file("ab", "c")], none.clone()));
        let b = compose_key("p", 1, &inputs(vec![file("a", "bc")], none));
        assert_ne!(a, b);
    }

    #[test]
    fn empty_resolved_value_differs_from_the_sentinel() {
        let a = compose_key("p", 1, &inputs(vec![], TokenValue::Resolved(String::new())));
        let b = compose_key(
            "p",
            1,
            &inputs(
                vec![],
                TokenValue::Unresolved(UnresolvedReason::ResolverUnbound),
            ),
        );
        assert_ne!(a, b);
    }

    #[test]
    fn name_and_version_are_part_of_the_key() {
        let none = TokenValue::Unresolved(UnresolvedReason::NoContext);
        let i = inputs(vec![file("a", "h")], none);
        assert_ne!(compose_key("p", 1, &i), compose_key("p", 2, &i));
        assert_ne!(compose_key("p", 1, &i), compose_key("q", 1, &i));
        assert!(is_key(&compose_key("p", 1, &i)));
    }

    #[test]
    fn key_shape_check_rejects_paths() {
        assert!(!is_key("../../etc/passwd"));
        assert!(!is_key(&"A".repeat(64)));
    }
}
