//! The static probe registry. `#[register_probe]` adds an entry to a linker
//! section (linkme); nothing runs before `main`.

use std::collections::BTreeMap;

use crate::probe::{DynProbe, Heaviness};

/// One registered probe, as emitted by `#[register_probe]`.
pub struct ProbeRegistration {
    /// Unique snake_case name; also the output file's name.
    pub name: &'static str,
    /// Light probes run before heavy ones.
    pub heaviness: Heaviness,
    /// Runs after every other probe.
    pub runs_last: bool,
    /// The Rust type, for messages.
    pub type_name: &'static str,
    /// Where the registration was written (`file:line`), for messages.
    pub location: &'static str,
    /// Builds the probe.
    pub construct: fn() -> Box<dyn DynProbe>,
}

impl std::fmt::Debug for ProbeRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeRegistration")
            .field("name", &self.name)
            .field("heaviness", &self.heaviness)
            .field("runs_last", &self.runs_last)
            .field("type_name", &self.type_name)
            .field("location", &self.location)
            .finish()
    }
}

#[doc(hidden)]
#[linkme::distributed_slice]
pub static PROBES: [ProbeRegistration];

/// Why the registry cannot be loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryError {
    /// Two probes share a name.
    #[error("two probes are named `{name}`: {first} ({first_at}) and {second} ({second_at})")]
    DuplicateName {
        /// The shared name.
        name: &'static str,
        /// The first type.
        first: &'static str,
        /// Where the first was registered.
        first_at: &'static str,
        /// The second type.
        second: &'static str,
        /// Where the second was registered.
        second_at: &'static str,
    },
}

/// The probes of this binary, checked and in run order.
#[derive(Debug)]
pub struct Registry {
    entries: Vec<&'static ProbeRegistration>,
}

impl Registry {
    /// Load every probe linked into this binary.
    pub fn load() -> Result<Self, RegistryError> {
        Self::from_entries(PROBES.iter())
    }

    /// Build a registry from explicit entries (used by tests and embedders).
    pub fn from_entries(
        entries: impl IntoIterator<Item = &'static ProbeRegistration>,
    ) -> Result<Self, RegistryError> {
        let mut by_name: BTreeMap<&'static str, &'static ProbeRegistration> = BTreeMap::new();
        let mut all: Vec<&'static ProbeRegistration> = Vec::new();
        for e in entries {
            if let Some(first) = by_name.get(e.name) {
                // Report in a stable order whatever the link order was.
                let (a, b) = if (first.type_name, first.location) <= (e.type_name, e.location) {
                    (*first, e)
                } else {
                    (e, *first)
                };
                return Err(RegistryError::DuplicateName {
                    name: e.name,
                    first: a.type_name,
                    first_at: a.location,
                    second: b.type_name,
                    second_at: b.location,
                });
            }
            by_name.insert(e.name, e);
            all.push(e);
        }
        all.sort_by_key(|e| run_order_key(e));
        Ok(Registry { entries: all })
    }

    /// Entries in run order: light, then heavy, then `runs_last`; by name within a group.
    pub fn entries(&self) -> &[&'static ProbeRegistration] {
        &self.entries
    }

    /// Look a probe up by name.
    pub fn get(&self, name: &str) -> Option<&'static ProbeRegistration> {
        self.entries.iter().copied().find(|e| e.name == name)
    }

    /// Every probe name, in run order.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.name).collect()
    }
}

/// Sort key of the run order: light → heavy → runs_last, stable by name.
pub(crate) fn run_order_key(e: &ProbeRegistration) -> (bool, Heaviness, &'static str) {
    (e.runs_last, e.heaviness, e.name)
}
