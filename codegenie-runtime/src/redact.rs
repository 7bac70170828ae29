//! Secret redaction for everything codegenie writes (outputs, cache entries,
//! manifests, logs, CLI errors): AWS keys, GitHub, GitLab, Slack, Stripe,
//! Google, npm and SendGrid tokens, PEM private keys, JWTs, bearer and basic
//! authorization, cookies, credentials in URLs (`scheme://user:pass@host`),
//! secret flags (`--password x`, `--token=x`, `mysql -pX`) and
//! `password=`-style pairs (env assignments, connection strings, JSON).
//! A secret is replaced by `[REDACTED:<kind>]`; keys of `key=value` pairs are
//! kept so the evidence still says *that* a secret was there.

use std::borrow::Cow;
use std::io::{BufRead, Write};
use std::sync::OnceLock;

use regex::bytes::{Captures, Regex};

struct Rule {
    kind: &'static str,
    re: Regex,
    /// Capture group holding the secret; the rest of the match is kept.
    group: usize,
}

fn rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        let r = |kind, pat: &str, group| Rule {
            kind,
            re: Regex::new(pat).expect("redaction patterns are valid"),
            group,
        };
        // No `\b` around key-shaped secrets: `_` is a word character, and a
        // missed secret costs more than an over-eager redaction.
        vec![
            r(
                "private-key",
                r"(?s)(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?-----END [A-Z0-9 ]*PRIVATE KEY-----)",
                1,
            ),
            r("aws-access-key-id", r"((?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16})", 1),
            r(
                "aws-secret-access-key",
                r"(?i)aws_?secret_?access_?key\W{0,4}?[=:]\s*['\x22]?([A-Za-z0-9/+=]{40})\b",
                1,
            ),
            r("github-token", r"((?:gh[pousr]_[A-Za-z0-9]{36,255})|(?:github_pat_[A-Za-z0-9_]{22,255}))", 1),
            r("jwt", r"(eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,})", 1),
            r("bearer-token", r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{8,}=*)", 1),
            r(
                "password",
                // Any key ending in a secret-ish word (`DB_PASSWORD`, `api_token`);
                // not `PWD`, which is the working directory. Quotes may come
                // escaped (`{\"api_key\": \"v\"}` in a traced argv).
                r#"(?i)(?:password|passwd|passphrase|secret|token|api[_-]?key|access[_-]?key|account[_-]?key|client[_-]?secret)\\?[\x22']?\s*[=:]\s*(\\?\x22[^\x22\\]+\\?\x22|'[^'\\]+'|[^\s&,;\x22'\\\]\)\}]+)"#,
                1,
            ),
            // Vendor tokens by their published prefixes.
            r("slack-token", r"(xox[abposre]-[A-Za-z0-9-]{10,})", 1),
            r("stripe-key", r"((?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,})", 1),
            r("google-api-key", r"(AIza[0-9A-Za-z_-]{35})", 1),
            r("gitlab-token", r"(gl(?:pat|dt|rt|ptt)-[A-Za-z0-9_-]{20,})", 1),
            r("npm-token", r"(npm_[A-Za-z0-9]{36})", 1),
            r("sendgrid-key", r"(SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,})", 1),
            // `scheme://user:password@host`: the password, whatever the scheme.
            r(
                "url-credentials",
                r"(?i)\b[a-z][a-z0-9+.-]{1,20}://[^\s/:@\x22'\[\]]*:([^\s/@\x22'\[\]]+)@",
                1,
            ),
            // `--password x`, `--token=x`, `--api-key x` (not `--password-file`).
            r(
                "flag",
                r"(?i)(?:^|[\s\x22'\[,])--?(?:password|passwd|pass|token|secret|api-?key|access-?key|auth-?token|client-?secret)(?:=|\s+|\x22,\s*\x22)([^\s\x22'\],-][^\s\x22'\],]*)",
                1,
            ),
            // MySQL-family clients take the password glued to `-p`.
            r(
                "flag",
                r"(?i)\b(?:mysql|mysqldump|mysqladmin|mariadb|mariadb-dump)\b[^\n]*?[\s\x22']-p([^\s\x22',\]]+)",
                1,
            ),
            // `Authorization: Basic ...` and other schemes than bearer; cookies.
            r(
                "authorization",
                r"(?i)\b(?:proxy-)?authorization\s*:\s*(?:basic|digest|token|apikey)\s+([A-Za-z0-9._~+/=-]{6,})",
                1,
            ),
            r("cookie", r"(?i)\b(?:set-)?cookie\s*:\s*([^\r\n\x22]+)", 1),
        ]
    })
}

/// Counts and applies redactions.
#[derive(Debug, Default)]
pub struct Redactor {
    count: u64,
}

impl Redactor {
    /// A redactor with a zero count.
    pub fn new() -> Self {
        Redactor::default()
    }

    /// How many secrets were replaced so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Redact a byte string.
    pub fn redact_bytes<'a>(&mut self, input: &'a [u8]) -> Cow<'a, [u8]> {
        let mut cur: Cow<'a, [u8]> = Cow::Borrowed(input);
        for rule in rules() {
            if !rule.re.is_match(&cur) {
                continue;
            }
            let mut n = 0u64;
            let replaced = rule
                .re
                .replace_all(&cur, |c: &Captures<'_>| {
                    let whole = c.get(0).expect("group 0 always matches");
                    let secret = c.get(rule.group).expect("secret group matches");
                    if secret.as_bytes().starts_with(b"[REDACTED:") {
                        return whole.as_bytes().to_vec();
                    }
                    n += 1;
                    let mut out = Vec::with_capacity(whole.len());
                    out.extend_from_slice(&input_slice(c, whole.start(), secret.start()));
                    out.extend_from_slice(format!("[REDACTED:{}]", rule.kind).as_bytes());
                    out.extend_from_slice(&input_slice(c, secret.end(), whole.end()));
                    out
                })
                .into_owned();
            self.count += n;
            cur = Cow::Owned(replaced);
        }
        cur
    }

    /// Redact a string.
    pub fn redact_str(&mut self, input: &str) -> String {
        String::from_utf8_lossy(&self.redact_bytes(input.as_bytes())).into_owned()
    }

    /// Redact every string inside a JSON value, object keys included, in
    /// place (a map keyed by argv or environment lines holds secrets in its
    /// keys).
    pub fn redact_json(&mut self, v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => {
                let r = self.redact_str(s);
                if r != *s {
                    *s = r;
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| self.redact_json(x)),
            serde_json::Value::Object(m) => {
                let needs = m.keys().any(|k| self.would_redact(k));
                if needs {
                    let old = std::mem::take(m);
                    for (k, val) in old {
                        m.insert(self.redact_str(&k), val);
                    }
                }
                m.values_mut().for_each(|x| self.redact_json(x));
            }
            _ => {}
        }
    }

    /// Whether `s` holds anything a rule would replace (nothing is counted).
    fn would_redact(&self, s: &str) -> bool {
        rules().iter().any(|r| r.re.is_match(s.as_bytes()))
    }
}

// The text of the haystack between two absolute offsets of a match.
fn input_slice<'h>(c: &Captures<'h>, start: usize, end: usize) -> Vec<u8> {
    let whole = c.get(0).expect("group 0 always matches");
    let base = whole.start();
    whole.as_bytes()[start - base..end - base].to_vec()
}

/// Longest line redacted as one unit; longer lines are cut into pieces of this
/// size (a secret straddling a cut could be missed, so the cap is generous).
pub const MAX_LINE: usize = 1 << 20;

/// Copy `r` to `w` line by line, redacting secrets; PEM private-key blocks
/// spread over several lines are replaced whole. Returns the redaction count.
pub fn redact_stream(r: &mut dyn BufRead, w: &mut dyn Write) -> std::io::Result<u64> {
    let mut red = Redactor::new();
    let mut line = Vec::new();
    let mut in_pem = false;
    loop {
        line.clear();
        let n = std::io::Read::take(&mut *r, MAX_LINE as u64).read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if in_pem {
            if contains(&line, b"-----END ") && contains(&line, b"PRIVATE KEY-----") {
                in_pem = false;
                if line.ends_with(b"\n") {
                    w.write_all(b"\n")?;
                }
            }
            continue;
        }
        let out = red.redact_bytes(&line);
        if contains(&out, b"-----BEGIN ") && contains(&out, b"PRIVATE KEY-----") {
            // A block that does not end on this line: drop it until its END line.
            let begin = memchr::memmem::find(&out, b"-----BEGIN ").unwrap_or(0);
            w.write_all(&out[..begin])?;
            w.write_all(b"[REDACTED:private-key]")?;
            red.count += 1;
            in_pem = true;
            continue;
        }
        w.write_all(&out)?;
    }
    Ok(red.count())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// Redact every string of a JSON value in place, keys and values, each on
/// its own: a rule never reaches across JSON's own syntax (a rule that eats
/// a value up to a delimiter would eat the `{` after `"token": `), so the
/// value stays JSON. A member is not read as `key=value`: our own schema's
/// words (`token`, `key`) would read as secrets' names.
pub fn redact_json(value: &mut serde_json::Value) {
    let mut red = Redactor::new();
    redact_value(&mut red, value);
}

fn redact_value(red: &mut Redactor, value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => *s = red.redact_str(s),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_value(red, v)),
        Value::Object(members) => {
            let old = std::mem::take(members);
            for (key, mut v) in old {
                redact_value(red, &mut v);
                members.insert(red.redact_str(&key), v);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red(s: &str) -> (String, u64) {
        let mut r = Redactor::new();
        let out = r.redact_str(s);
        (out, r.count())
    }

    #[test]
    fn each_kind_is_redacted() {
        let cases = [
            ("key AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE"),
            (
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
            (
                "GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            ),
            (
                "auth eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlX2hlcmU",
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlX2hlcmU",
            ),
            ("Authorization: Bearer abcdef123456789", "abcdef123456789"),
            ("\"DB_PASSWORD=hunter2\"", "hunter2"),
            // JSON in a traced argv: strace escapes its quotes.
            (
                r#"execve("/bin/sh", ["sh", "{\"api_key\": \"s3cr3t-value\"}"], 0x1) = 0"#,
                "s3cr3t-value",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\\nMIIEabc\\n-----END RSA PRIVATE KEY-----",
                "MIIEabc",
            ),
        ];
        for (input, secret) in cases {
            let (out, n) = red(input);
            assert!(!out.contains(secret), "{input} -> {out}");
            assert!(out.contains("[REDACTED:"), "{out}");
            assert!(n >= 1, "{input}");
        }
    }

    #[test]
    fn keys_of_pairs_are_kept_and_clean_text_untouched() {
        assert_eq!(
            red("password=hunter2 ok").0,
            "password=[REDACTED:password] ok"
        );
        let clean = "openat(AT_FDCWD, \"/etc/ssl/certs/ca.pem\", O_RDONLY) = 3";
        assert_eq!(red(clean), (clean.to_owned(), 0));
    }

    #[test]
    fn redaction_is_idempotent() {
        let (once, _) = red("token=abc123 AKIAIOSFODNN7EXAMPLE");
        let (twice, n) = red(&once);
        assert_eq!(once, twice);
        assert_eq!(n, 0);
    }

    #[test]
    fn multi_line_pem_blocks_are_dropped_whole() {
        let input = b"before\n-----BEGIN PRIVATE KEY-----\nMIIEsecretline\nmore\n-----END PRIVATE KEY-----\nafter\n";
        let mut out = Vec::new();
        let n = redact_stream(&mut &input[..], &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(n, 1);
        assert!(!out.contains("MIIEsecretline"), "{out}");
        assert!(out.starts_with("before\n[REDACTED:private-key]"), "{out}");
        assert!(out.ends_with("after\n"), "{out}");
    }

    #[test]
    fn json_strings_are_redacted_in_place() {
        let mut v = serde_json::json!({"argv": ["app", "--password=hunter2"], "n": 1});
        let mut r = Redactor::new();
        r.redact_json(&mut v);
        assert_eq!(r.count(), 1);
        assert_eq!(v["argv"][1], "--password=[REDACTED:password]");
    }

    proptest::proptest! {
        #[test]
        fn total_and_idempotent_on_any_bytes(input in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut r = Redactor::new();
            let once = r.redact_bytes(&input).into_owned();
            let mut r2 = Redactor::new();
            let twice = r2.redact_bytes(&once).into_owned();
            proptest::prop_assert_eq!(&once, &twice);
            proptest::prop_assert_eq!(r2.count(), 0);
        }

        #[test]
        fn secrets_embedded_in_noise_never_survive(
            pre in "[ -~]{0,40}",
            post in "[ -~&&[^A-Za-z0-9]][ -~]{0,40}",
        ) {
            let secret = "AKIAIOSFODNN7EXAMPLE";
            let line = format!("{pre} {secret}{post}\n");
            let mut out = Vec::new();
            let n = redact_stream(&mut line.as_bytes(), &mut out).unwrap();
            let out = String::from_utf8_lossy(&out);
            proptest::prop_assert!(!out.contains(secret), "{}", out);
            proptest::prop_assert!(n >= 1);
        }
    }

    #[test]
    fn json_is_redacted_string_by_string_and_stays_json() {
        let mut v = serde_json::json!({
            "token": { "name": "image-digest", "value": 1 },
            "tokens": [{ "token": "image-digest:<resolved>" }],
            "env": ["DB_PASSWORD=hunter2hunter2"],
            "argv": ["/app/prepare.sh", "password=hunter2fixture"],
            "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB": true,
            "plain": "nothing to see",
        });
        super::redact_json(&mut v);
        let text = v.to_string();
        // Still JSON, object values intact: the byte rules would have
        // eaten `{` after `"token": ` (the control below).
        assert_eq!(v["token"]["name"], "image-digest", "{text}");
        assert_eq!(v["plain"], "nothing to see");
        assert_eq!(v["tokens"][0]["token"], "image-digest:<resolved>");
        for secret in ["hunter2hunter2", "hunter2fixture", "ghp_0123456789"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("[REDACTED:"), "{text}");
        let pretty = serde_json::to_string_pretty(&serde_json::json!({"token": {"a": 1}})).unwrap();
        let mut bytes = Vec::new();
        super::redact_stream(&mut pretty.as_bytes(), &mut bytes).unwrap();
        assert!(
            serde_json::from_slice::<serde_json::Value>(&bytes).is_err(),
            "the byte rules break this JSON: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
}
