//! Compile-time checks of `#[register_probe]` and `declared_inputs!`: each
//! `tests/ui/*.rs` must fail with exactly the message in its `.stderr`; each
//! `tests/ui/pass/*.rs` must compile and run.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
