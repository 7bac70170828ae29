//! `#[register_probe(...)]` keys: parsing and checking, each error on the
//! offending token with a "did you mean" where one is close.

use proc_macro2::{Span, TokenStream as TokenStream2};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, LitStr, MetaNameValue, Token};

const KEYS: &[&str] = &["name", "heaviness", "runs_last"];
const HEAVINESS: &[&str] = &["light", "heavy"];

/// The keys of `#[register_probe(...)]`, validated.
pub(crate) struct ProbeArgs {
    /// `name = "..."`, with the literal's span.
    pub(crate) name: Option<(String, Span)>,
    /// `"light"` or `"heavy"`.
    pub(crate) heaviness: String,
    /// `runs_last = true | false`.
    pub(crate) runs_last: bool,
}

fn suggestion_suffix(word: &str, options: &[&str]) -> String {
    match codegenie_spec::suggest::closest(word, options.iter().copied()) {
        Some(s) => format!("; did you mean `{s}`?"),
        None => format!(
            "; expected one of {}",
            options
                .iter()
                .map(|o| format!("`{o}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Parse and check the attribute's keys; every error points at the offending token.
pub(crate) fn parse_args(attr: TokenStream2) -> syn::Result<ProbeArgs> {
    let metas = syn::parse::Parser::parse2(
        Punctuated::<MetaNameValue, Token![,]>::parse_terminated,
        attr,
    )?;
    let mut seen: Vec<String> = Vec::new();
    let mut args = ProbeArgs {
        name: None,
        heaviness: "light".to_owned(),
        runs_last: false,
    };
    for meta in metas {
        let key = meta
            .path
            .get_ident()
            .map(|i| i.to_string())
            .ok_or_else(|| {
                syn::Error::new(meta.path.span(), "expected a key such as `heaviness`")
            })?;
        if !KEYS.contains(&key.as_str()) {
            return Err(syn::Error::new(
                meta.path.span(),
                format!("unknown key `{key}`{}", suggestion_suffix(&key, KEYS)),
            ));
        }
        if seen.contains(&key) {
            return Err(syn::Error::new(
                meta.path.span(),
                format!("duplicate key `{key}`"),
            ));
        }
        seen.push(key.clone());
        // `macro_rules!` wraps `$x:literal` in an invisible group.
        let mut value = &meta.value;
        while let Expr::Group(g) = value {
            value = &g.expr;
        }
        match key.as_str() {
            "heaviness" => {
                if let Expr::Path(p) = value {
                    if let Some(id) = p
                        .path
                        .get_ident()
                        .filter(|i| HEAVINESS.contains(&i.to_string().as_str()))
                    {
                        return Err(syn::Error::new(
                            id.span(),
                            format!("`heaviness` takes a string; write `heaviness = \"{id}\"`"),
                        ));
                    }
                }
                let lit = expect_str(value, "heaviness", "\"light\" or \"heavy\"")?;
                let v = lit.value();
                if !HEAVINESS.contains(&v.as_str()) {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!(
                            "invalid heaviness `{v}`{}",
                            suggestion_suffix(&v, HEAVINESS)
                        ),
                    ));
                }
                args.heaviness = v;
            }
            "runs_last" => match value {
                Expr::Lit(ExprLit {
                    lit: Lit::Bool(b), ..
                }) => args.runs_last = b.value,
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "`runs_last` takes `true` or `false`",
                    ))
                }
            },
            "name" => {
                let lit = expect_str(value, "name", "a snake_case string")?;
                let v = lit.value();
                if !is_snake_case(&v) {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!("probe name `{v}` must be snake_case ([a-z][a-z0-9_]*)"),
                    ));
                }
                args.name = Some((v, lit.span()));
            }
            _ => unreachable!("key checked against KEYS above"),
        }
    }
    Ok(args)
}

fn expect_str<'a>(value: &'a Expr, key: &str, what: &str) -> syn::Result<&'a LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s),
        other => Err(syn::Error::new(
            other.span(),
            format!("`{key}` takes {what}"),
        )),
    }
}

pub(crate) fn is_snake_case(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}
