//! Cheap hashers for the parser's maps and sets, looked up on every trace
//! line: pid- and fd-keyed maps, and the sets of distinct paths. Keys are
//! not attacker-chosen in a way that matters here (a trace is local
//! evidence, and a collision costs time, never a wrong fact).

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

/// Word-at-a-time multiplicative hashing of byte strings (the FxHash
/// scheme): paths are hashed 8 bytes per step instead of one.
#[derive(Default, Clone, Copy)]
pub(crate) struct StrHasher(u64);

impl StrHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for StrHasher {
    fn finish(&self) -> u64 {
        // Multiplying carries low bits up, never down, and the table picks
        // buckets by the low bits: without this avalanche (murmur3's
        // finaliser) paths that differ only in later bytes of a word, like
        // `file0001.txt` and `file0002.txt`, crowd into the same buckets.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }
}
