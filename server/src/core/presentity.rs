//! Presentities (OpenSIPS `presentity` table in memory): per AoR and event package, the
//! live publications (SIP-ETag → body, expiry), the watchers, and the aggregated NOTIFY
//! body, computed once per change and shared by every watcher's NOTIFY.

use super::package::{BodyIndex, EventPackage, PkgId};
use super::tags::Token;
use super::transaction::IdMap;
use super::Instant;
use sip_parser::Aor;

#[derive(Debug)]
pub struct Publication {
    pub etag: Token,
    /// Publication order (newest = largest); aggregation goes newest first.
    pub order: u64,
    pub expires_at: Instant,
    /// Token of the live expiry timer.
    pub timer: u32,
    pub expiry_armed: Instant,
    pub content_type: Box<[u8]>,
    pub body: Vec<u8>,
    pub index: BodyIndex,
}

#[derive(Debug)]
pub struct Presentity {
    pub aor: Aor,
    /// AoR hash (decides the owning shard; encoded in our tags and ETags).
    pub hash: u32,
    pub pkg: PkgId,
    /// Newest first.
    pub pubs: Vec<Publication>,
    /// Subscription ids watching this presentity.
    pub watchers: Vec<u64>,
    /// Aggregated body of `pubs` (empty when there is none).
    pub body: Vec<u8>,
    /// Bumped on every change of `pubs`.
    pub version: u64,
    /// Next presentity whose key hashes alike (collision chain of the index), or `NONE`.
    next: u32,
}

/// End of a collision chain.
const NONE: u32 = u32::MAX;

/// Seeded 64-bit hash of byte strings (folded multiply over 8-byte words, as foldhash /
/// wyhash do): fast on short keys, and with a per-start secret seed a peer cannot aim
/// collisions at the tables it keys.
pub fn seeded_hash(seed: u64, parts: &[&[u8]]) -> u64 {
    #[inline(always)]
    fn mix(a: u64, b: u64) -> u64 {
        let r = (a as u128).wrapping_mul(b as u128);
        (r as u64) ^ ((r >> 64) as u64)
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
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = mix(h ^ u64::from_le_bytes(w) ^ ((p.len() as u64) << 56), K0 ^ k);
    }
    mix(h, K1 ^ k)
}

impl Presentity {
    /// Recomputes the aggregated body after `pubs` changed.
    pub fn reaggregate(&mut self, pkg: &dyn EventPackage) {
        self.version += 1;
        let docs: Vec<(&[u8], &BodyIndex)> =
            self.pubs.iter().map(|p| (&p.body[..], &p.index)).collect();
        pkg.aggregate(&docs, &mut self.body);
    }

    /// Inserts keeping newest-first order.
    pub fn insert_pub(&mut self, p: Publication) {
        let at = self
            .pubs
            .iter()
            .position(|q| q.order < p.order)
            .unwrap_or(self.pubs.len());
        self.pubs.insert(at, p);
    }

    pub fn find_pub(&self, etag: &[u8]) -> Option<usize> {
        self.pubs.iter().position(|p| p.etag.as_bytes() == etag)
    }
}

/// Slab of presentities plus the AoR index. Slots are reused only once a presentity has
/// neither publications nor watchers, so no subscription can point at a reused slot.
///
/// The index maps a seeded hash of (AoR, package) to the head of a collision chain, so
/// the AoR is stored once (in the presentity), not again as a key.
#[derive(Debug, Default)]
pub struct Presentities {
    slots: Vec<Option<Presentity>>,
    free: Vec<u32>,
    index: IdMap<u32>,
    len: usize,
    seed: u64,
    pub publications: usize,
}

impl Presentities {
    pub fn with_seed(seed: u64) -> Presentities {
        Presentities {
            seed,
            ..Presentities::default()
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn key_hash(&self, aor: &[u8], pkg: PkgId) -> u64 {
        seeded_hash(self.seed, &[aor, &[pkg]])
    }

    pub fn lookup(&self, key: &(Aor, PkgId)) -> Option<u32> {
        self.lookup_bytes(key.0.as_bytes(), key.1)
    }

    /// [`Presentities::lookup`] by the AoR's bytes.
    pub fn lookup_bytes(&self, aor: &[u8], pkg: PkgId) -> Option<u32> {
        let mut slot = *self.index.get(&self.key_hash(aor, pkg))?;
        while slot != NONE {
            let p = self.get(slot)?;
            if p.pkg == pkg && p.aor.as_bytes() == aor {
                return Some(slot);
            }
            slot = p.next;
        }
        None
    }

    pub fn get(&self, slot: u32) -> Option<&Presentity> {
        self.slots.get(slot as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, slot: u32) -> Option<&mut Presentity> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    /// Adds a presentity (the caller checked it is absent).
    pub fn insert(&mut self, aor: Aor, hash: u32, pkg: PkgId) -> u32 {
        let h = self.key_hash(aor.as_bytes(), pkg);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        let next = self.index.insert(h, slot).unwrap_or(NONE);
        self.slots[slot as usize] = Some(Presentity {
            aor,
            hash,
            pkg,
            pubs: Vec::new(),
            watchers: Vec::new(),
            body: Vec::new(),
            version: 0,
            next,
        });
        self.len += 1;
        slot
    }

    /// Drops the presentity if nothing refers to it any more.
    pub fn gc(&mut self, slot: u32) {
        let empty = matches!(self.get(slot), Some(p) if p.pubs.is_empty() && p.watchers.is_empty());
        if !empty {
            return;
        }
        let Some(p) = self.slots[slot as usize].take() else {
            return;
        };
        let h = self.key_hash(p.aor.as_bytes(), p.pkg);
        // Unlink from the collision chain.
        match self.index.get(&h).copied() {
            Some(head) if head == slot => {
                if p.next == NONE {
                    self.index.remove(&h);
                } else {
                    self.index.insert(h, p.next);
                }
            }
            Some(mut at) => {
                while let Some(q) = self.slots.get_mut(at as usize).and_then(Option::as_mut) {
                    if q.next == slot {
                        q.next = p.next;
                        break;
                    }
                    at = q.next;
                }
            }
            None => {}
        }
        self.free.push(slot);
        self.len -= 1;
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &Presentity)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((i as u32, p.as_ref()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_keys_chain_and_unlink() {
        // Seed 0 is fine here: collisions are forced by hand below.
        let mut t = Presentities::with_seed(0);
        let a = t.insert(Aor::parse(b"sip:a@x").unwrap(), 1, 0);
        let b = t.insert(Aor::parse(b"sip:b@x").unwrap(), 2, 0);
        // Force b into a's chain (as a real collision would put it).
        let ha = t.key_hash(b"sip:a@x", 0);
        let hb = t.key_hash(b"sip:b@x", 0);
        t.index.remove(&hb);
        t.get_mut(b).unwrap().next = a;
        t.index.insert(ha, b);
        t.index.insert(hb, b);
        assert_eq!(t.lookup_bytes(b"sip:a@x", 0), Some(a));
        assert_eq!(t.lookup_bytes(b"sip:b@x", 0), Some(b));
        t.index.remove(&hb);
        t.gc(a);
        assert_eq!(t.lookup_bytes(b"sip:a@x", 0), None);
        assert_eq!(t.lookup_bytes(b"sip:b@x", 0), None, "b hashes elsewhere");
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup_bytes(b"sip:a@x", 1), None);
    }

    #[test]
    fn hash_depends_on_seed_and_parts() {
        assert_ne!(seeded_hash(1, &[b"abc"]), seeded_hash(2, &[b"abc"]));
        assert_ne!(
            seeded_hash(1, &[b"ab", b"c"]),
            seeded_hash(1, &[b"a", b"bc"])
        );
        assert_ne!(seeded_hash(1, &[b""]), seeded_hash(1, &[b"\0"]));
    }
}
