//! Proc-macros for codegenie.
//!
//! - `#[register_probe(...)]` on an `impl Probe for T` block registers `T` in
//!   the static probe registry.
//! - `declared_inputs![...]` checks every entry at compile time and expands to
//!   a `&'static [DeclaredInput]`.
//!
//! Generated code names the runtime as `::codegenie::__private`; the
//! `codegenie` facade re-exports it, and `codegenie-runtime` names itself
//! `codegenie` for its own probes.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ItemImpl, Lit, LitStr, MetaNameValue, Token};

// The one rule set for declared inputs, shared with the runtime.
#[allow(dead_code)]
mod spec {
    include!("../../codegenie-runtime/src/inputs/spec.rs");
}

const KEYS: &[&str] = &["name", "heaviness", "runs_last"];
const HEAVINESS: &[&str] = &["light", "heavy"];

/// Register a probe. Put it on the `impl Probe for YourType` block:
///
/// ```ignore
/// #[register_probe(heaviness = "light", runs_last = false)]
/// impl Probe for LicenseProbe { /* ... */ }
/// ```
///
/// Keys (all optional): `name = "snake_case"` (default: the type's name in
/// snake_case without a `Probe` suffix), `heaviness = "light" | "heavy"`
/// (default `light`), `runs_last = true | false` (default `false`). The type
/// must implement `Default`, which the registry uses to build it.
#[proc_macro_attribute]
pub fn register_probe(attr: TokenStream, item: TokenStream) -> TokenStream {
    match register_probe_impl(attr.into(), item.into()) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

struct ProbeArgs {
    name: Option<(String, Span)>,
    heaviness: String,
    runs_last: bool,
}

fn did_you_mean(word: &str, options: &[&str]) -> Option<String> {
    options
        .iter()
        .map(|o| {
            (
                *o,
                strsim::damerau_levenshtein(&word.to_ascii_lowercase(), o),
            )
        })
        .filter(|(o, d)| *d <= 2.max(o.len() / 3))
        .min_by_key(|(_, d)| *d)
        .map(|(o, _)| o.to_owned())
}

fn suggestion_suffix(word: &str, options: &[&str]) -> String {
    match did_you_mean(word, options) {
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

fn parse_args(attr: TokenStream2) -> syn::Result<ProbeArgs> {
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

fn is_snake_case(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn snake_case(ident: &str) -> String {
    let mut out = String::new();
    for (i, c) in ident.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn default_name(ty: &syn::Type) -> syn::Result<String> {
    let ident = match ty {
        syn::Type::Path(p) if p.qself.is_none() => {
            p.path.segments.last().map(|s| s.ident.to_string())
        }
        _ => None,
    }
    .ok_or_else(|| {
        syn::Error::new(
            ty.span(),
            "cannot derive a probe name from this type; add `name = \"...\"`",
        )
    })?;
    let snake = snake_case(&ident);
    let trimmed = snake.strip_suffix("_probe").unwrap_or(&snake);
    let name = if trimmed.is_empty() {
        snake.clone()
    } else {
        trimmed.to_owned()
    };
    if !is_snake_case(&name) {
        return Err(syn::Error::new(
            ty.span(),
            format!("derived probe name `{name}` is not snake_case; add `name = \"...\"`"),
        ));
    }
    Ok(name)
}

fn register_probe_impl(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let args = parse_args(attr)?;
    let imp: ItemImpl = match syn::parse2::<syn::Item>(item) {
        Ok(syn::Item::Impl(imp)) => imp,
        Ok(other) => {
            let what = item_kind(&other);
            return Err(syn::Error::new(
                item_head_span(&other),
                format!(
                    "`#[register_probe]` goes on an `impl Probe for YourType` block, not on {what}"
                ),
            ));
        }
        Err(_) => {
            return Err(syn::Error::new(
                Span::call_site(),
                "`#[register_probe]` goes on an `impl Probe for YourType` block",
            ))
        }
    };
    let trait_path = match &imp.trait_ {
        Some((None, path, _)) => path,
        Some((Some(bang), _, _)) => {
            return Err(syn::Error::new(
                bang.span(),
                "a negative impl cannot be a probe",
            ))
        }
        None => return Err(syn::Error::new(
            imp.self_ty.span(),
            "`#[register_probe]` goes on an `impl Probe for YourType` block, not an inherent impl",
        )),
    };
    if trait_path
        .segments
        .last()
        .map(|s| s.ident != "Probe")
        .unwrap_or(true)
    {
        return Err(syn::Error::new(
            trait_path.span(),
            "`#[register_probe]` goes on an `impl Probe for YourType` block; this implements another trait",
        ));
    }
    if !imp.generics.params.is_empty() {
        return Err(syn::Error::new(
            imp.generics.span(),
            "a registered probe cannot be generic: register a concrete type",
        ));
    }
    let self_ty = &imp.self_ty;
    let name = match &args.name {
        Some((n, _)) => n.clone(),
        None => default_name(self_ty)?,
    };
    let heaviness = format_ident!(
        "{}",
        if args.heaviness == "heavy" {
            "Heavy"
        } else {
            "Light"
        }
    );
    let runs_last = args.runs_last;
    let type_name = quote!(#self_ty).to_string().replace(' ', "");
    let span = self_ty.span();
    let construct = quote_spanned! {span=>
        <#self_ty as ::codegenie::__private::RegisteredProbe>::construct
    };
    Ok(quote! {
        #imp

        const _: () = {
            #[::codegenie::__private::linkme::distributed_slice(::codegenie::__private::PROBES)]
            #[linkme(crate = ::codegenie::__private::linkme)]
            static REGISTRATION: ::codegenie::__private::ProbeRegistration =
                ::codegenie::__private::ProbeRegistration {
                    name: #name,
                    heaviness: ::codegenie::__private::Heaviness::#heaviness,
                    runs_last: #runs_last,
                    type_name: #type_name,
                    location: ::core::concat!(::core::file!(), ":", ::core::line!()),
                    construct: #construct,
                };
        };
    })
}

fn item_kind(item: &syn::Item) -> &'static str {
    match item {
        syn::Item::Struct(_) => "a struct (put it on the struct's `impl Probe for ...` block)",
        syn::Item::Enum(_) => "an enum (put it on the enum's `impl Probe for ...` block)",
        syn::Item::Fn(_) => "a function",
        syn::Item::Trait(_) => "a trait",
        syn::Item::Mod(_) => "a module",
        _ => "this item",
    }
}

fn item_head_span(item: &syn::Item) -> Span {
    match item {
        syn::Item::Struct(s) => s.ident.span(),
        syn::Item::Enum(e) => e.ident.span(),
        syn::Item::Fn(f) => f.sig.ident.span(),
        syn::Item::Trait(t) => t.ident.span(),
        syn::Item::Mod(m) => m.ident.span(),
        other => other.span(),
    }
}

struct InputList(Punctuated<LitStr, Token![,]>);

impl Parse for InputList {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let list = Punctuated::<Expr, Token![,]>::parse_terminated(input)?;
        let mut out = Punctuated::new();
        for e in list {
            match e {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => out.push(s),
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "declared inputs must be string literals (build dynamic inputs with `parse_declared_input`)",
                    ))
                }
            }
        }
        Ok(InputList(out))
    }
}

/// Declare a probe's inputs, checked at compile time:
///
/// ```ignore
/// fn declared_inputs(&self) -> &'static [DeclaredInput] {
///     declared_inputs!["Dockerfile", "src/**/*.rs", "image-digest:<resolved>"]
/// }
/// ```
///
/// An entry `name:<resolved>` is a special token and its name must be a known
/// token kind; anything that looks like a token but is not exact is an error;
/// every other entry must be a valid repository-relative glob.
#[proc_macro]
pub fn declared_inputs(input: TokenStream) -> TokenStream {
    match declared_inputs_impl(input.into()) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn declared_inputs_impl(input: TokenStream2) -> syn::Result<TokenStream2> {
    let InputList(list) = syn::parse2(input)?;
    let mut seen: Vec<String> = Vec::new();
    let mut items = Vec::new();
    let mut errors: Option<syn::Error> = None;
    let mut push_err = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    for lit in &list {
        let v = lit.value();
        if seen.contains(&v) {
            push_err(syn::Error::new(
                lit.span(),
                format!("declared input `{v}` is listed twice"),
            ));
            continue;
        }
        seen.push(v.clone());
        match spec::parse_input_spec(&v) {
            Ok(spec::InputSpec::Glob(g)) => items.push(quote! {
                ::codegenie::__private::DeclaredInput::Glob(::std::borrow::Cow::Borrowed(#g))
            }),
            Ok(spec::InputSpec::Token(k)) => {
                let variant = format_ident!("{}", k.variant_ident());
                items.push(quote! {
                    ::codegenie::__private::DeclaredInput::Token(::codegenie::__private::TokenKind::#variant)
                })
            }
            Err(e) => push_err(syn::Error::new(lit.span(), e.to_string())),
        }
    }
    if let Some(e) = errors {
        // Keep the expression well-typed so the user sees only our messages.
        let errs = e.to_compile_error();
        return Ok(quote! {{
            #errs
            const INPUTS: &[::codegenie::__private::DeclaredInput] = &[];
            INPUTS
        }});
    }
    Ok(quote! {{
        const INPUTS: &[::codegenie::__private::DeclaredInput] = &[#(#items),*];
        INPUTS
    }})
}
