//! Deadline queue for every timer of a shard (expiries, Timer E/F).
//!
//! `(deadline, key)` entries of 24 bytes in a few FIFO lanes, one per monotone stream of
//! deadlines (Timer E of every NOTIFY, ...), with a binary heap for the rest (no insertion
//! counter; equal deadlines pop in key order in the heap and insertion order in a lane,
//! deterministic either way). Subscription expiries more than a second away wait in
//! `ExpiryWheel` buckets (8 bytes each) and enter the queue when their second begins.
//! Cancellation is by generation: the
//! owner keeps the token of its live timer and ignores a popped key whose token is stale,
//! so cancel is O(1) and nothing is searched. Stale entries are bounded by `compact`,
//! which the core calls when they outnumber the live ones.

use super::Instant;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

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
    /// The bucket being filled, outside the map: subscriptions granted the same Expires
    /// within a second all land in one second, so nearly every push is a `Vec::push`
    /// instead of a B-tree search. Merged into `buckets` when another second comes.
    hot: Vec<u64>,
    hot_sec: u64,
    /// Seconds before this one are open (their bucket was handed over).
    first_closed: u64,
    /// Entries filed (stale ones included), kept so `len` is O(1).
    filed: usize,
}

/// Capacity the hot bucket keeps after a merge (a burst's worth is given back).
const HOT_KEPT_CAPACITY: usize = 1024;

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
        if sec != self.hot_sec {
            self.merge_hot();
            self.hot_sec = sec;
        }
        self.hot.push(id);
        self.filed += 1;
        true
    }

    fn merge_hot(&mut self) {
        if self.hot.is_empty() {
            return;
        }
        self.buckets
            .entry(self.hot_sec)
            .or_default()
            .append(&mut self.hot);
        if self.hot.capacity() > HOT_KEPT_CAPACITY {
            self.hot = Vec::new();
        }
    }

    /// Start of the earliest bucket not yet opened.
    pub fn next_deadline(&self) -> Option<Instant> {
        let hot = (!self.hot.is_empty()).then_some(self.hot_sec);
        let first = self.buckets.first_key_value().map(|(sec, _)| *sec);
        match (first, hot) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(|sec| Instant(sec * 1000))
    }

    /// Opens every bucket whose second has begun at `now`, appending its ids (each id
    /// once per bucket, stale ones included, with the bucket's second) to `out`.
    pub fn open_due(&mut self, now: Instant, out: &mut Vec<(u64, u64)>) {
        let now_sec = Self::second(now);
        self.first_closed = self.first_closed.max(now_sec + 1);
        if !self.hot.is_empty() && self.hot_sec <= now_sec {
            self.merge_hot();
        }
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
        self.buckets.is_empty() && self.hot.is_empty()
    }

    /// Each bucket's second with its distinct ids.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Vec<u64>)> + '_ {
        let mut all = self.buckets.clone();
        if !self.hot.is_empty() {
            all.entry(self.hot_sec)
                .or_default()
                .extend_from_slice(&self.hot);
        }
        all.into_iter().map(|(sec, mut ids)| {
            ids.sort_unstable();
            ids.dedup();
            (sec, ids)
        })
    }

    /// Drops every entry for which `live(second, id)` says false.
    pub fn compact(&mut self, mut live: impl FnMut(u64, u64) -> bool) {
        self.merge_hot();
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
/// FIFO lanes beside the heap. Most timers come in a few monotone streams (Timer E at
/// now + T1 for every NOTIFY, Timer F at now + 64·T1 over TCP, publication expiries at
/// now + their Expires): each stream gets a lane, so its timers cost a push and a pop at
/// the ends of a ring instead of O(log n) sifts through a heap of all of them.
const LANES: usize = 4;

/// A lane takes a timer only if its deadline is this close after the lane's last one, so
/// a far deadline (an hour-long publication) does not claim a lane that a stream of near
/// ones (Timer E) then cannot use.
const LANE_GAP_MS: u64 = 1_000;

#[derive(Debug)]
pub struct Timers<K: Ord + Copy> {
    heap: BinaryHeap<Reverse<(Instant, K)>>,
    /// Each lane's deadlines never decrease front to back.
    lanes: [VecDeque<(Instant, K)>; LANES],
}

impl<K: Ord + Copy> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            lanes: Default::default(),
        }
    }
}

/// Where the earliest timer is.
#[derive(Clone, Copy)]
enum Source {
    Heap,
    Lane(usize),
}

impl<K: Ord + Copy> Timers<K> {
    pub fn push(&mut self, at: Instant, key: K) {
        // The lane whose last deadline is the latest one not after `at` (and close to it);
        // else an empty lane; else the heap.
        let mut best: Option<(usize, Instant)> = None;
        let mut empty = None;
        for (i, lane) in self.lanes.iter().enumerate() {
            match lane.back() {
                Some(&(last, _))
                    if last <= at
                        && at.0 - last.0 <= LANE_GAP_MS
                        && best.is_none_or(|(_, b)| last > b) =>
                {
                    best = Some((i, last));
                }
                None if empty.is_none() => empty = Some(i),
                _ => {}
            }
        }
        match best.map(|(i, _)| i).or(empty) {
            Some(i) => self.lanes[i].push_back((at, key)),
            None => self.heap.push(Reverse((at, key))),
        }
    }

    /// The earliest timer by `(deadline, key)` among the lane fronts and the heap top.
    fn earliest(&self) -> Option<(Instant, K, Source)> {
        let mut best = self
            .heap
            .peek()
            .map(|Reverse((at, k))| (*at, *k, Source::Heap));
        for (i, lane) in self.lanes.iter().enumerate() {
            if let Some(&(at, k)) = lane.front() {
                if best.is_none_or(|(bat, bk, _)| (at, k) < (bat, bk)) {
                    best = Some((at, k, Source::Lane(i)));
                }
            }
        }
        best
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.earliest().map(|(at, _, _)| at)
    }

    /// Earliest timer due at `now`, in deadline order. Ties come out in key order within
    /// the heap and in insertion order within a lane: deterministic either way.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, K)> {
        let (at, key, src) = self.earliest()?;
        if at > now {
            return None;
        }
        match src {
            Source::Heap => {
                self.heap.pop();
            }
            Source::Lane(i) => {
                self.lanes[i].pop_front();
            }
        }
        self.shrink_if_sparse();
        Some((at, key))
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
        for lane in &mut self.lanes {
            let (len, cap) = (lane.len(), lane.capacity());
            if cap > MIN_KEPT_CAPACITY && len < cap / 4 {
                lane.shrink_to((len * 2).max(MIN_KEPT_CAPACITY));
            }
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len() + self.lanes.iter().map(VecDeque::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = (Instant, K)> + '_ {
        self.heap
            .iter()
            .map(|Reverse((at, k))| (*at, *k))
            .chain(self.lanes.iter().flatten().copied())
    }

    /// Drops every entry for which `live` says false (stale generations).
    pub fn compact(&mut self, mut live: impl FnMut(&K) -> bool) {
        let v = std::mem::take(&mut self.heap).into_vec();
        self.heap = v.into_iter().filter(|Reverse((_, k))| live(k)).collect();
        for lane in &mut self.lanes {
            lane.retain(|(_, k)| live(k));
        }
        self.shrink_if_sparse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn capacity<K: Ord + Copy>(t: &Timers<K>) -> usize {
        t.heap.capacity() + t.lanes.iter().map(VecDeque::capacity).sum::<usize>()
    }

    #[test]
    fn capacity_follows_a_burst_back_down() {
        // Ascending deadlines (a lane) and descending ones (the heap).
        for descending in [false, true] {
            let mut t = Timers::default();
            for i in 0..100_000u64 {
                let d = if descending { 100_000 - i } else { i };
                t.push(Instant(d), d);
            }
            assert_eq!(t.heap.is_empty(), !descending);
            assert!(capacity(&t) >= 100_000);
            while t.pop_due(Instant(99_990)).is_some() {}
            assert_eq!(t.len(), 10 - usize::from(!descending));
            assert!(capacity(&t) <= 2 * MIN_KEPT_CAPACITY, "{}", capacity(&t));
            // What is left still pops in order.
            assert_eq!(
                t.pop_due(Instant(u64::MAX)),
                Some((Instant(99_991), 99_991))
            );
        }
    }

    /// Timer E of every NOTIFY (now + T1) and a far publication expiry interleaved: the
    /// far one does not keep the near stream out of the lanes.
    #[test]
    fn near_streams_keep_their_lanes() {
        let mut t = Timers::default();
        for now in 0..10_000u64 {
            t.push(Instant(now + 500), now);
            if now % 100 == 0 {
                t.push(Instant(now + 3_600_000), now + 1_000_000);
            }
        }
        assert!(t.heap.len() < 10, "{}", t.heap.len());
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
        /// The wheel (with its hot bucket) hands out what a plain map of seconds would.
        #[test]
        fn wheel_matches_a_map_of_seconds(ops in proptest::collection::vec((0u8..4, 0u64..5_000, 0u64..50), 0..300)) {
            let mut w = ExpiryWheel::default();
            let mut model: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
            let mut now = 0u64;
            let mut closed = 0u64;
            for (op, d, id) in ops {
                if op == 0 {
                    now += d;
                    let mut got = Vec::new();
                    w.open_due(Instant(now), &mut got);
                    let mut want = Vec::new();
                    closed = closed.max(now / 1000 + 1);
                    while let Some(e) = model.first_entry() {
                        if *e.key() >= closed {
                            break;
                        }
                        let (sec, mut ids) = e.remove_entry();
                        ids.sort_unstable();
                        ids.dedup();
                        want.extend(ids.into_iter().map(|i| (sec, i)));
                    }
                    prop_assert_eq!(got, want);
                } else {
                    let at = now + d * (op as u64);
                    let filed = w.push(Instant(at), id);
                    prop_assert_eq!(filed, at / 1000 >= closed);
                    if filed {
                        model.entry(at / 1000).or_default().push(id);
                    }
                }
                prop_assert_eq!(w.next_deadline(), model.keys().next().map(|s| Instant(s * 1000)));
                prop_assert_eq!(w.len(), model.values().map(Vec::len).sum::<usize>());
            }
        }

        #[test]
        fn pops_in_deadline_order(ds in proptest::collection::vec(0u64..5_000, 0..300), cut in 0u64..5_000) {
            let mut t = Timers::default();
            for (i, d) in ds.iter().enumerate() {
                t.push(Instant(*d), i as u32);
            }
            prop_assert_eq!(t.len(), ds.len());
            prop_assert_eq!(t.next_deadline(), ds.iter().min().map(|d| Instant(*d)));
            // Nothing after `cut` comes out early; all of it comes out, each key once,
            // deadlines never decreasing.
            let mut got = Vec::new();
            while let Some((at, k)) = t.pop_due(Instant(cut)) {
                prop_assert!(at.0 <= cut);
                got.push((at, k));
            }
            prop_assert_eq!(got.len(), ds.iter().filter(|d| **d <= cut).count());
            while let Some(e) = t.pop_due(Instant(u64::MAX)) {
                got.push(e);
            }
            prop_assert!(got.windows(2).all(|w| w[0].0 <= w[1].0));
            let mut keys: Vec<u32> = got.iter().map(|e| e.1).collect();
            keys.sort_unstable();
            prop_assert_eq!(keys, (0..ds.len() as u32).collect::<Vec<_>>());
            prop_assert!(got.iter().all(|(at, k)| ds[*k as usize] == at.0));
        }

        /// Interleaved monotone streams (Timer E, Timer F, expiries) and stray deadlines,
        /// popped as time advances, come out as a sort of them would.
        #[test]
        fn streams_and_strays_pop_like_a_sort(ops in proptest::collection::vec((0u8..5, 0u64..40), 0..400)) {
            let mut t = Timers::default();
            let mut now = 0u64;
            let mut all = Vec::new();
            let mut got = Vec::new();
            for (i, (kind, step)) in ops.iter().enumerate() {
                now += step;
                let at = match kind {
                    0 => now + 500,
                    1 => now + 32_000,
                    2 => now + 3_600_000,
                    3 => now + (step * 97) % 4_000,
                    _ => {
                        while let Some(e) = t.pop_due(Instant(now)) {
                            got.push(e);
                        }
                        continue;
                    }
                };
                t.push(Instant(at), i as u32);
                all.push((Instant(at), i as u32));
            }
            while let Some(e) = t.pop_due(Instant(u64::MAX)) {
                got.push(e);
            }
            prop_assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "{:?}", got);
            got.sort();
            all.sort();
            prop_assert_eq!(got, all);
        }
    }
}
