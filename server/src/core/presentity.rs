//! Presentities (OpenSIPS `presentity` table in memory): per AoR and event package, the
//! live publications (SIP-ETag → body, expiry), the watchers, and the aggregated NOTIFY
//! body, computed once per change and shared by every watcher's NOTIFY.

use super::package::{BodyIndex, EventPackage, PkgId};
use super::tags::Token;
use super::Instant;
use sip_parser::Aor;
use std::collections::HashMap;

#[derive(Debug)]
pub struct Publication {
    pub etag: Token,
    /// Publication order (newest = largest); aggregation goes newest first.
    pub order: u64,
    pub expires_at: Instant,
    /// Token of the live expiry timer.
    pub timer: u64,
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
#[derive(Debug, Default)]
pub struct Presentities {
    slots: Vec<Option<Presentity>>,
    free: Vec<u32>,
    index: HashMap<(Aor, PkgId), u32>,
    pub publications: usize,
}

impl Presentities {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn lookup(&self, key: &(Aor, PkgId)) -> Option<u32> {
        self.index.get(key).copied()
    }

    pub fn get(&self, slot: u32) -> Option<&Presentity> {
        self.slots.get(slot as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, slot: u32) -> Option<&mut Presentity> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    pub fn insert(&mut self, aor: Aor, hash: u32, pkg: PkgId) -> u32 {
        let p = Presentity {
            aor: aor.clone(),
            hash,
            pkg,
            pubs: Vec::new(),
            watchers: Vec::new(),
            body: Vec::new(),
            version: 0,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(p);
                s
            }
            None => {
                self.slots.push(Some(p));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert((aor, pkg), slot);
        slot
    }

    /// Drops the presentity if nothing refers to it any more.
    pub fn gc(&mut self, slot: u32) {
        let empty = matches!(self.get(slot), Some(p) if p.pubs.is_empty() && p.watchers.is_empty());
        if empty {
            if let Some(p) = self.slots[slot as usize].take() {
                self.index.remove(&(p.aor, p.pkg));
                self.free.push(slot);
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &Presentity)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((i as u32, p.as_ref()?)))
    }
}
