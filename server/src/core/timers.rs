//! Deadline queue for every timer of a shard (expiries, Timer E/F).
//!
//! A binary heap of `(deadline, insertion seq, key)`. Cancellation is by generation: the
//! owner keeps the token of its live timer and ignores a popped key whose token is stale,
//! so cancel is O(1) and nothing is searched. Stale entries are bounded by `compact`,
//! which the core calls when they outnumber the live ones.

use super::Instant;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[derive(Debug)]
pub struct Timers<K: Ord + Copy> {
    heap: BinaryHeap<Reverse<(Instant, u64, K)>>,
    seq: u64,
}

impl<K: Ord + Copy> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<K: Ord + Copy> Timers<K> {
    pub fn push(&mut self, at: Instant, key: K) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, key)));
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Earliest timer due at `now`, in deadline order, ties in insertion order.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, K)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => {
                let Reverse((at, _, k)) = self.heap.pop()?;
                Some((at, k))
            }
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Instant, K)> + '_ {
        self.heap.iter().map(|Reverse((at, _, k))| (*at, *k))
    }

    /// Drops every entry for which `live` says false (stale generations).
    pub fn compact(&mut self, mut live: impl FnMut(&K) -> bool) {
        let v = std::mem::take(&mut self.heap).into_vec();
        self.heap = v.into_iter().filter(|Reverse((_, _, k))| live(k)).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn pops_in_deadline_then_insertion_order(ds in proptest::collection::vec(0u64..50, 0..200)) {
            let mut t = Timers::default();
            for (i, d) in ds.iter().enumerate() {
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
