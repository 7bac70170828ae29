//! `#[register_probe]`: checks that it sits on an `impl Probe for T` block and
//! emits that block plus a linkme registration naming `::codegenie::__private`.

use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::ItemImpl;

use crate::attr::{is_snake_case, parse_args};

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

/// Expand `#[register_probe]`: check the item, then emit it unchanged plus its
/// registration. The caller emits the item itself when this fails.
pub(crate) fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
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
