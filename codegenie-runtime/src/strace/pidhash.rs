//! A cheap hasher for pid-keyed maps, looked up on every trace line; pids are
//! not attacker-chosen in a way that matters here (a trace is local evidence).

use std::hash::{BuildHasherDefault, Hasher};

/// Multiplicative hashing of integer keys (Fibonacci hashing).
#[derive(Default, Clone, Copy)]
pub(crate) struct PidHasher(u64);

impl Hasher for PidHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_i32(&mut self, n: i32) {
        self.write_u32(n as u32);
    }
}

/// Builds [`PidHasher`]s.
pub(crate) type PidBuild = BuildHasherDefault<PidHasher>;

/// A map keyed by pid or fd.
pub(crate) type PidMap<K, V> = std::collections::HashMap<K, V, PidBuild>;
