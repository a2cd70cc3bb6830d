//! Deadline queue for every timer of a shard (expiries, Timer E/F).
//!
//! A binary heap of `(deadline, key)`, 24 bytes an entry (no insertion counter; equal
//! deadlines pop in key order, which is as deterministic). Subscription expiries more
//! than a second away wait in `ExpiryWheel` buckets (8 bytes each) and enter the heap when
//! their second begins. Cancellation is by generation: the
//! owner keeps the token of its live timer and ignores a popped key whose token is stale,
//! so cancel is O(1) and nothing is searched. Stale entries are bounded by `compact`,
//! which the core calls when they outnumber the live ones.

use super::Instant;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// Subscription expiry deadlines, bucketed by second: a held subscription's expiry timer
/// costs its 8-byte id in one bucket instead of a 24-byte heap entry (issue 5). The
/// bucket entry carries no deadline nor token: the subscription's own `expiry_armed` and
/// `expiry_token` say whether it is live (it is iff the subscription is live and armed
/// within that second). When a bucket's second begins, `open_due` hands its live ids to
/// the caller, which moves them to the exact heap, so expiries still fire at their
/// millisecond and in the same order; deadlines in an opened second go to the heap
/// directly.
#[derive(Debug, Default)]
pub struct ExpiryWheel {
    buckets: BTreeMap<u64, Vec<u64>>,
    /// Seconds before this one are open (their bucket was handed over).
    first_closed: u64,
    /// Entries filed (stale ones included), kept so `len` is O(1).
    filed: usize,
}

impl ExpiryWheel {
    /// The second whose bucket holds a deadline.
    pub fn second(at: Instant) -> u64 {
        at.0 / 1000
    }

    /// Files `id` under `at`'s second; false if that second is open (the caller then
    /// uses the heap).
    pub fn push(&mut self, at: Instant, id: u64) -> bool {
        let sec = Self::second(at);
        if sec < self.first_closed {
            return false;
        }
        self.buckets.entry(sec).or_default().push(id);
        self.filed += 1;
        true
    }

    /// Start of the earliest bucket not yet opened.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.buckets
            .first_key_value()
            .map(|(sec, _)| Instant(sec * 1000))
    }

    /// Opens every bucket whose second has begun at `now`, appending its ids (each id
    /// once per bucket, stale ones included, with the bucket's second) to `out`.
    pub fn open_due(&mut self, now: Instant, out: &mut Vec<(u64, u64)>) {
        let now_sec = Self::second(now);
        self.first_closed = self.first_closed.max(now_sec + 1);
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() > now_sec {
                break;
            }
            let (sec, mut ids) = entry.remove_entry();
            self.filed -= ids.len();
            ids.sort_unstable();
            ids.dedup();
            out.extend(ids.into_iter().map(|id| (sec, id)));
        }
    }

    /// Entries filed (stale ones included).
    pub fn len(&self) -> usize {
        self.filed
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Each bucket's second with its distinct ids.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Vec<u64>)> + '_ {
        self.buckets.iter().map(|(sec, ids)| {
            let mut ids = ids.clone();
            ids.sort_unstable();
            ids.dedup();
            (*sec, ids)
        })
    }

    /// Drops every entry for which `live(second, id)` says false.
    pub fn compact(&mut self, mut live: impl FnMut(u64, u64) -> bool) {
        self.buckets.retain(|sec, ids| {
            ids.retain(|id| live(*sec, *id));
            ids.shrink_to_fit();
            !ids.is_empty()
        });
        self.filed = self.buckets.values().map(Vec::len).sum();
    }
}

/// Heap capacity kept however few timers are pending: below it a shrink is not worth its copy.
const MIN_KEPT_CAPACITY: usize = 4096;

#[derive(Debug)]
pub struct Timers<K: Ord + Copy> {
    heap: BinaryHeap<Reverse<(Instant, K)>>,
}

impl<K: Ord + Copy> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
        }
    }
}

impl<K: Ord + Copy> Timers<K> {
    pub fn push(&mut self, at: Instant, key: K) {
        self.heap.push(Reverse((at, key)));
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Earliest timer due at `now`, in deadline order, ties in key order.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, K)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => {
                let e = self.heap.pop().map(|Reverse(e)| e);
                self.shrink_if_sparse();
                e
            }
            _ => None,
        }
    }

    /// Gives back the room a burst left: after 100k SUBSCRIBEs the heap held their Timer J
    /// and NOTIFY timers (~3 MB a shard) and kept that capacity while the subscriptions were
    /// merely held (issue 5, bytes per held subscription). Halving below a quarter full is
    /// amortised O(1) per pop.
    fn shrink_if_sparse(&mut self) {
        let (len, cap) = (self.heap.len(), self.heap.capacity());
        if cap > MIN_KEPT_CAPACITY && len < cap / 4 {
            self.heap.shrink_to((len * 2).max(MIN_KEPT_CAPACITY));
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Instant, K)> + '_ {
        self.heap.iter().map(|Reverse((at, k))| (*at, *k))
    }

    /// Drops every entry for which `live` says false (stale generations).
    pub fn compact(&mut self, mut live: impl FnMut(&K) -> bool) {
        let v = std::mem::take(&mut self.heap).into_vec();
        self.heap = v.into_iter().filter(|Reverse((_, k))| live(k)).collect();
        self.shrink_if_sparse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn capacity_follows_a_burst_back_down() {
        let mut t = Timers::default();
        for i in 0..100_000u64 {
            t.push(Instant(i), i);
        }
        assert!(t.heap.capacity() >= 100_000);
        while t.pop_due(Instant(99_990)).is_some() {}
        assert_eq!(t.len(), 9);
        assert!(
            t.heap.capacity() <= MIN_KEPT_CAPACITY,
            "{}",
            t.heap.capacity()
        );
        // What is left still pops in order.
        assert_eq!(
            t.pop_due(Instant(u64::MAX)),
            Some((Instant(99_991), 99_991))
        );
    }

    #[test]
    fn pops_only_due() {
        let mut t = Timers::default();
        t.push(Instant(10), 1u32);
        t.push(Instant(5), 2u32);
        assert_eq!(t.next_deadline(), Some(Instant(5)));
        assert_eq!(t.pop_due(Instant(4)), None);
        assert_eq!(t.pop_due(Instant(5)), Some((Instant(5), 2)));
        assert_eq!(t.pop_due(Instant(9)), None);
        assert_eq!(t.pop_due(Instant(100)), Some((Instant(10), 1)));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn compact_drops_stale() {
        let mut t = Timers::default();
        for i in 0..10u32 {
            t.push(Instant(i as u64), i);
        }
        t.compact(|k| k % 2 == 0);
        assert_eq!(t.len(), 5);
        assert!(t.iter().all(|(_, k)| k % 2 == 0));
    }

    #[test]
    fn wheel_opens_due_seconds_once() {
        let mut w = ExpiryWheel::default();
        assert!(w.push(Instant(2_500), 7));
        assert!(w.push(Instant(2_900), 7));
        assert!(w.push(Instant(1_000), 3));
        assert!(w.push(Instant(5_000), 9));
        assert_eq!(w.next_deadline(), Some(Instant(1_000)));
        let mut out = Vec::new();
        w.open_due(Instant(999), &mut out);
        assert!(out.is_empty());
        w.open_due(Instant(2_000), &mut out);
        assert_eq!(out, vec![(1, 3), (2, 7)]);
        assert!(
            !w.push(Instant(2_999), 4),
            "an open second goes to the heap"
        );
        assert!(w.push(Instant(3_000), 4));
        assert_eq!(w.len(), 2);
        w.compact(|_, id| id != 9);
        assert_eq!(w.next_deadline(), Some(Instant(3_000)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn pops_in_deadline_then_key_order(ds in proptest::collection::vec(0u64..50, 0..200)) {
            let mut t = Timers::default();
            // Keys pushed in descending order: ties must still come out by key.
            for (i, d) in ds.iter().enumerate().rev() {
                t.push(Instant(*d), i as u32);
            }
            let mut got = Vec::new();
            while let Some((at, k)) = t.pop_due(Instant(u64::MAX)) {
                got.push((at, k));
            }
            let mut want: Vec<(Instant, u32)> = ds.iter().enumerate().map(|(i, d)| (Instant(*d), i as u32)).collect();
            want.sort();
            prop_assert_eq!(got, want);
        }
    }
}
