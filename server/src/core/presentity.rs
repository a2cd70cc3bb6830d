//! Presentities (OpenSIPS `presentity` table in memory): per AoR and event package, the
//! live publications (SIP-ETag → body, expiry), the watchers, and the aggregated NOTIFY
//! body, computed once per change and shared by every watcher's NOTIFY.

use super::package::{BodyIndex, EventPackage, PkgId};
use super::slab::Slab;
use super::tags::Token;
use super::transaction::IdBuild;
use super::Instant;
use sip_parser::Aor;
use std::sync::Arc;
pub use store::hash::seeded_hash;

#[derive(Debug)]
pub struct Publication {
    /// Names the publication for its life (its first ETag): the store key, so a refresh
    /// or modification overwrites one record instead of deleting one and writing another.
    pub id: Token,
    pub etag: Token,
    /// Publication order (newest = largest); aggregation goes newest first.
    pub order: u64,
    pub expires_at: Instant,
    /// Token of the live expiry timer.
    pub timer: u32,
    pub expiry_armed: Instant,
    /// Shared with the persist records written for it (`PublicationRecord`).
    pub content_type: Arc<[u8]>,
    /// Replaced whole by a modification (never edited in place: a record of the old
    /// version may still be on its way to the log).
    pub body: Arc<[u8]>,
    pub index: BodyIndex,
}

#[derive(Debug)]
pub struct Presentity {
    pub aor: Aor,
    /// AoR hash (decides the owning shard; encoded in our tags and ETags).
    pub hash: u32,
    pub pkg: PkgId,
    /// Newest first (derefs to the list; the aggregated body is `Presentity::body`).
    pub pubs: Pubs,
    /// Subscription ids watching this presentity.
    pub watchers: Watchers,
    /// Next presentity whose key hashes alike (collision chain of the index), or `NONE`.
    next: u32,
}

/// The publications of a presentity and their aggregated body, behind one box: most
/// presentities exist only because someone watches them and publish nothing, so the two
/// `Vec`s (48 bytes) cost them 8. Derefs to the list, newest first; mutable access
/// creates the box, `Presentity::reaggregate` frees it once list and body are empty.
#[derive(Debug, Default)]
pub struct Pubs(Option<Box<PubState>>);

#[derive(Debug, Default)]
struct PubState {
    list: Vec<Publication>,
    /// Aggregated body of `list` (`None` when empty). Shared: each NOTIFY in flight holds
    /// the version it carried (for Timer E) instead of a copy, and a lone publication's
    /// body is the aggregate itself.
    body: Option<Arc<[u8]>>,
}

/// What an absent box derefs to.
static NO_PUBS: Vec<Publication> = Vec::new();

impl std::ops::Deref for Pubs {
    type Target = Vec<Publication>;
    fn deref(&self) -> &Vec<Publication> {
        self.0.as_ref().map_or(&NO_PUBS, |s| &s.list)
    }
}

impl std::ops::DerefMut for Pubs {
    fn deref_mut(&mut self) -> &mut Vec<Publication> {
        &mut self.0.get_or_insert_with(Box::default).list
    }
}

/// Subscription ids watching a presentity, the first one inline: most presentities have
/// one watcher, and a one-element `Vec` is a heap block of its own. A longer list is
/// boxed so the type stays 16 bytes (the presentity 56). Derefs to the ids.
#[derive(Debug, Default)]
#[allow(clippy::box_collection)] // the box keeps the enum at 16 bytes
pub enum Watchers {
    #[default]
    None,
    One(u64),
    Many(Box<Vec<u64>>),
}

impl std::ops::Deref for Watchers {
    type Target = [u64];
    fn deref(&self) -> &[u64] {
        match self {
            Watchers::None => &[],
            Watchers::One(id) => std::slice::from_ref(id),
            Watchers::Many(v) => v,
        }
    }
}

impl<'a> IntoIterator for &'a Watchers {
    type Item = &'a u64;
    type IntoIter = std::slice::Iter<'a, u64>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Watchers {
    pub fn push(&mut self, id: u64) {
        *self = match std::mem::take(self) {
            Watchers::None => Watchers::One(id),
            Watchers::One(a) => Watchers::Many(Box::new(vec![a, id])),
            Watchers::Many(mut v) => {
                v.push(id);
                Watchers::Many(v)
            }
        };
    }

    /// Removes the `i`-th id, moving the last one into its place (as `Vec::swap_remove`).
    pub fn swap_remove(&mut self, i: usize) -> u64 {
        match std::mem::take(self) {
            Watchers::None => panic!("swap_remove({i}) on no watchers"),
            Watchers::One(a) => {
                assert_eq!(i, 0, "swap_remove({i}) on one watcher");
                a
            }
            Watchers::Many(mut v) => {
                let id = v.swap_remove(i);
                *self = match v.len() {
                    0 => Watchers::None,
                    1 => Watchers::One(v[0]),
                    _ => Watchers::Many(v),
                };
                id
            }
        }
    }
}

/// End of a collision chain.
const NONE: u32 = u32::MAX;

impl Presentity {
    /// Recomputes the aggregated body after `pubs` changed.
    pub fn reaggregate(&mut self, pkg: &dyn EventPackage) {
        let st = self.pubs.0.get_or_insert_with(Box::default);
        let docs: Vec<(&Arc<[u8]>, &BodyIndex)> =
            st.list.iter().map(|p| (&p.body, &p.index)).collect();
        st.body = pkg.aggregate_shared(&docs);
        if st.list.is_empty() && st.body.is_none() {
            self.pubs.0 = None;
        }
    }

    /// Aggregated body of `pubs`, shared for the NOTIFYs that carry it (`None` when there is
    /// none).
    pub fn shared_body(&self) -> Option<&Arc<[u8]>> {
        self.pubs.0.as_ref().and_then(|s| s.body.as_ref())
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
    slots: Slab<Presentity>,
    /// Keyed by 32 bits of the hash: 8-byte entries instead of 16 (a 32-bit collision only
    /// lengthens a chain, which compares the AoR anyway).
    index: std::collections::HashMap<u32, u32, IdBuild>,
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
        self.slots.len()
    }

    fn key_hash(&self, aor: &[u8], pkg: PkgId) -> u32 {
        let h = seeded_hash(self.seed, &[aor, &[pkg]]);
        (h ^ (h >> 32)) as u32
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
        self.slots.get(slot)
    }

    pub fn get_mut(&mut self, slot: u32) -> Option<&mut Presentity> {
        self.slots.get_mut(slot)
    }

    /// Adds a presentity (the caller checked it is absent).
    pub fn insert(&mut self, aor: Aor, hash: u32, pkg: PkgId) -> u32 {
        let h = self.key_hash(aor.as_bytes(), pkg);
        let next = self.index.insert(h, self.slots.next_slot()).unwrap_or(NONE);
        self.slots.insert(Presentity {
            aor,
            hash,
            pkg,
            pubs: Pubs::default(),
            watchers: Watchers::default(),
            next,
        })
    }

    /// Drops the presentity if nothing refers to it any more.
    pub fn gc(&mut self, slot: u32) {
        let empty = matches!(self.get(slot), Some(p) if p.pubs.is_empty() && p.watchers.is_empty());
        if !empty {
            return;
        }
        let Some(p) = self.slots.remove(slot) else {
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
                while let Some(q) = self.slots.get_mut(at) {
                    if q.next == slot {
                        q.next = p.next;
                        break;
                    }
                    at = q.next;
                }
            }
            None => {}
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &Presentity)> {
        self.slots.iter()
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

    #[test]
    fn held_presentity_stays_small() {
        // Issue 5: a presentity per held subscription; the box and the inline watcher
        // are what keep it here.
        assert!(std::mem::size_of::<Option<Presentity>>() <= 56);
        assert_eq!(std::mem::size_of::<Watchers>(), 16);
    }

    #[test]
    fn watchers_inline_one_then_spill() {
        let mut w = Watchers::default();
        w.push(1);
        assert!(matches!(w, Watchers::One(1)));
        w.push(2);
        w.push(3);
        assert_eq!(&w[..], &[1, 2, 3]);
        assert_eq!(w.swap_remove(0), 1);
        assert_eq!(&w[..], &[3, 2]);
        assert_eq!(w.swap_remove(1), 2);
        assert!(matches!(w, Watchers::One(3)));
        assert_eq!(w.swap_remove(0), 3);
        assert!(w.is_empty());
    }
}
