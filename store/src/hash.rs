//! The seeded byte-string hash shared by the shards' tables (presentity index) and the
//! checkpoint's key map: one function, so both get the same speed and the same
//! resistance to keys chosen by peers.

/// Seeded 64-bit hash of byte strings (folded multiply over 8-byte words, as foldhash /
/// wyhash do): fast on short keys, and with a per-start secret seed a peer cannot aim
/// collisions at the tables it keys.
#[inline]
pub fn seeded_hash(seed: u64, parts: &[&[u8]]) -> u64 {
    #[inline(always)]
    fn mix(a: u64, b: u64) -> u64 {
        let r = (a as u128).wrapping_mul(b as u128);
        (r as u64) ^ ((r >> 64) as u64)
    }
    /// The last 0..=7 bytes as a little-endian word, zero-padded, by shifts: copying them
    /// into a zeroed word was a libc `memcpy` call per part.
    #[inline(always)]
    fn tail(r: &[u8]) -> u64 {
        r.iter()
            .enumerate()
            .fold(0, |w, (i, &b)| w | (u64::from(b) << (8 * i)))
    }
    const K0: u64 = 0x243f_6a88_85a3_08d3;
    const K1: u64 = 0x1319_8a2e_0370_7344;
    let k = seed | 1;
    let mut h = seed ^ K0;
    for p in parts {
        let mut chunks = p.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = mix(h ^ u64::from_le_bytes(w), K1 ^ k);
        }
        h = mix(
            h ^ tail(chunks.remainder()) ^ ((p.len() as u64) << 56),
            K0 ^ k,
        );
    }
    mix(h, K1 ^ k)
}
