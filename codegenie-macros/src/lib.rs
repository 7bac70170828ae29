//! Proc-macros for codegenie; use them through the `codegenie` crate.
//!
//! - `#[register_probe(...)]` on an `impl Probe for T` block registers `T` in
//!   the static probe registry ([`register_probe`]).
//! - `declared_inputs![...]` checks every entry at compile time and expands to
//!   a `&'static [DeclaredInput]` ([`declared_inputs`]).
//!
//! Each macro runs one way: parse and check (`attr`, `inputs`), then expand
//! (`register`). Generated code names the runtime as `::codegenie::__private`;
//! the `codegenie` facade re-exports it, and `codegenie-runtime` names itself
//! `codegenie` for its own probes. The rules for declared inputs live in
//! `codegenie-spec`, shared with the runtime.

use proc_macro::TokenStream;

mod attr;
mod inputs;
mod register;

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
    let item = proc_macro2::TokenStream::from(item);
    match register::expand(attr.into(), item.clone()) {
        Ok(ts) => ts.into(),
        // Keep the user's item: one mistake gives one error, and the rest of
        // the crate (and an IDE) still sees the impl.
        Err(e) => {
            let err = e.to_compile_error();
            quote::quote!(#err #item).into()
        }
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
    match inputs::expand(input.into()) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}
