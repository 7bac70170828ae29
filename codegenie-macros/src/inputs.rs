//! `declared_inputs![...]`: string literals only, each a known token or a
//! repository-relative glob, checked by the same rules the runtime applies.

use codegenie_spec::inputs::{parse_input_spec, InputSpec};
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, LitStr, Token};

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

/// Expand `declared_inputs![...]`: every entry checked with the runtime's own
/// rules (`codegenie_spec::inputs`); all errors at once, each on its literal.
pub(crate) fn expand(input: TokenStream2) -> syn::Result<TokenStream2> {
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
        match parse_input_spec(&v) {
            Ok(InputSpec::Glob(g)) => items.push(quote! {
                ::codegenie::__private::DeclaredInput::Glob(::std::borrow::Cow::Borrowed(#g))
            }),
            Ok(InputSpec::Token(k)) => {
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
