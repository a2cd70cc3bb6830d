//! RFC 3261 §17 non-INVITE transactions: the server side absorbs request retransmissions
//! (`server`), the client side retransmits our NOTIFYs over UDP (`client`).

pub mod client;
pub mod server;

use std::hash::{BuildHasherDefault, Hasher};

/// Hasher for keys that are already uniformly distributed 64-bit values (random ids,
/// keyed hashes): hashing them again would only cost time.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
    /// A uniformly distributed 32-bit key, spread over 64 bits (the map takes its control
    /// bits from the top of the hash).
    fn write_u32(&mut self, v: u32) {
        self.0 = u64::from(v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

pub type IdBuild = BuildHasherDefault<IdHasher>;
pub type IdMap<V> = std::collections::HashMap<u64, V, IdBuild>;
