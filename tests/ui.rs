//! Compile-time checks of `#[register_probe]` and `declared_inputs!`: each
//! `tests/ui/*.rs` must fail with exactly the message in its `.stderr`. The
//! cases that compile are `tests/macros_pass.rs`, so trybuild only
//! type-checks.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
