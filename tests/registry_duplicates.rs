//! Two probes with the same name, in one binary: the registry refuses to load
//! and names both types and where they were registered.

use codegenie::prelude::*;
use codegenie::{Registry, RegistryError};

#[derive(Default)]
pub struct FirstLicenseProbe;

#[register_probe(name = "license", heaviness = "light")]
impl Probe for FirstLicenseProbe {
    async fn run(&self, _r: &RepoSnapshot, _c: &ProbeContext) -> Result<ProbeOutput, ProbeError> {
        Ok(ProbeOutput::new(serde_json::json!({}), Confidence::High))
    }
}

mod other {
    use codegenie::prelude::*;

    #[derive(Default)]
    pub struct LicenseProbe;

    // Named from the type: `License` → `license`.
    #[register_probe(heaviness = "heavy")]
    impl Probe for LicenseProbe {
        async fn run(
            &self,
            _r: &RepoSnapshot,
            _c: &ProbeContext,
        ) -> Result<ProbeOutput, ProbeError> {
            Ok(ProbeOutput::new(serde_json::json!({}), Confidence::High))
        }
    }
}

#[test]
fn duplicate_names_fail_registry_load() {
    let err = Registry::load().unwrap_err();
    match &err {
        RegistryError::DuplicateName {
            name,
            first,
            second,
            first_at,
            second_at,
        } => {
            assert_eq!(*name, "license");
            assert_eq!((*first, *second), ("FirstLicenseProbe", "LicenseProbe"));
            assert!(
                first_at.starts_with("tests/registry_duplicates.rs:"),
                "{first_at}"
            );
            assert!(
                second_at.starts_with("tests/registry_duplicates.rs:"),
                "{second_at}"
            );
        }
        other => panic!("expected a duplicate name, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "two probes are named `license`: FirstLicenseProbe (tests/registry_duplicates.rs:"
        ),
        "{msg}"
    );
}
