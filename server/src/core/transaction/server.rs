//! Non-INVITE server transactions (RFC 3261 §17.2.2).
//!
//! Every request we answer gets its final response at once, so each transaction is born
//! "Completed" and only lives to replay that response to retransmissions until Timer J
//! (64·T1 over UDP, 0 over TCP). Completed transactions therefore expire in creation
//! order: a FIFO ring is the whole timer machinery, and its capacity bounds memory. When
//! full, the oldest transaction is evicted early (counted) rather than growing.
//!
//! The same order lets all responses share one byte arena: each is appended where the
//! previous one ended and dies with its transaction, so the arena's dead bytes are always
//! a prefix. A response costs no allocation of its own and sits next to its neighbours.
//! Once half the arena is dead it is set aside whole as the old generation, freed when its
//! last transaction retires, and a fresh arena takes new responses: dropping the dead
//! prefix never moves the live part (a 46 MB move at the default cap stalled the shard).

use super::IdMap;
use crate::core::{Instant, Peer};
use std::collections::VecDeque;

/// One answered request.
#[derive(Debug)]
pub struct ServerTx {
    /// Keyed hash of branch + sent-by + method (RFC 3261 §17.2.3).
    pub key: u64,
    pub peer: Peer,
    /// Where the final response (replayed verbatim) starts in the arena's byte stream.
    start: u64,
    len: u32,
    pub expires: Instant,
    /// The response left through `poll_transmit` at least once (before that a
    /// retransmitted request is absorbed silently).
    pub sent: bool,
}

/// Sequence number of a transaction in the ring (stable while it lives).
pub type TxSeq = u64;

#[derive(Debug, PartialEq, Eq)]
pub enum InsertError {
    /// The oldest transaction's response has not even been sent yet: overloaded.
    Full,
}

#[derive(Debug)]
pub struct ServerTxs {
    ring: VecDeque<ServerTx>,
    first: TxSeq,
    index: IdMap<TxSeq>,
    cap: usize,
    /// The responses of the transactions in `ring`, in ring order, after `head` dead bytes.
    bytes: Vec<u8>,
    head: usize,
    /// Stream offset of `bytes[0]` (`ServerTx::start` is a stream offset).
    base: u64,
    /// The previous arena while some of its responses live: stream offsets
    /// `old_base..base`. Empty otherwise.
    old: Vec<u8>,
    old_base: u64,
    /// Responses rewritten after the fact into something longer than the original (a
    /// held 2xx that became a 500, `replace_response`): rare, so kept aside.
    replaced: IdMap<Vec<u8>>,
    pub evicted: u64,
}

/// Transactions the ring keeps room for however idle the shard is.
const MIN_KEPT_CAPACITY: usize = 1024;
/// Arena bytes kept however idle the shard is (about a hundred responses).
const MIN_KEPT_BYTES: usize = 64 * 1024;
/// The arena is set aside as the old generation once this many of its bytes, and at least
/// half of them, are dead (and no older generation still lives).
const ROTATE_AT: usize = 64 * 1024;

impl ServerTxs {
    pub fn new(cap: usize) -> ServerTxs {
        ServerTxs {
            ring: VecDeque::new(),
            first: 0,
            index: IdMap::default(),
            cap: cap.max(1),
            bytes: Vec::new(),
            head: 0,
            base: 0,
            old: Vec::new(),
            old_base: 0,
            replaced: IdMap::default(),
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    pub fn lookup(&self, key: u64) -> Option<TxSeq> {
        self.index.get(&key).copied()
    }

    pub fn get(&self, seq: TxSeq) -> Option<&ServerTx> {
        let i = seq.checked_sub(self.first)?;
        self.ring.get(i as usize)
    }

    pub fn get_mut(&mut self, seq: TxSeq) -> Option<&mut ServerTx> {
        let i = seq.checked_sub(self.first)?;
        self.ring.get_mut(i as usize)
    }

    /// The response of transaction `seq`.
    pub fn response(&self, seq: TxSeq) -> Option<&[u8]> {
        let tx = self.get(seq)?;
        // The map is empty unless the store filled up: skip its hashing on every send.
        if !self.replaced.is_empty() {
            if let Some(r) = self.replaced.get(&seq) {
                return Some(r);
            }
        }
        let (in_old, at) = self.locate(tx.start);
        let arena = if in_old { &self.old } else { &self.bytes };
        arena.get(at..at + tx.len as usize)
    }

    /// Whether stream offset `start` lies in the old generation, and its index there (or
    /// in the current arena).
    fn locate(&self, start: u64) -> (bool, usize) {
        if start >= self.base {
            (false, (start - self.base) as usize)
        } else {
            (true, (start - self.old_base) as usize)
        }
    }

    /// Sets the current arena aside as the old generation (dropped at once if nothing in
    /// it lives) and starts a fresh one of `capacity`: how dead bytes are let go without
    /// moving live ones. Only while no older generation lives.
    fn rotate(&mut self, capacity: usize) {
        debug_assert!(self.old.is_empty(), "one old generation at a time");
        let arena = std::mem::replace(&mut self.bytes, Vec::with_capacity(capacity));
        let (start, len) = (self.base, arena.len());
        if len > self.head {
            self.old = arena;
            self.old_base = start;
        }
        self.base = start + len as u64;
        self.head = 0;
    }

    /// Replaces the response of `seq` by what `rewrite` makes of it.
    pub fn replace_response(&mut self, seq: TxSeq, rewrite: impl FnOnce(&[u8]) -> Vec<u8>) {
        let Some(old) = self.response(seq) else {
            return;
        };
        let new = rewrite(old);
        let Some(tx) = self.get(seq) else { return };
        if new.len() <= tx.len as usize {
            // In place: the arena order is unchanged, only the tail of the slot goes unused.
            let (in_old, at) = self.locate(tx.start);
            if let Some(tx) = self.get_mut(seq) {
                tx.len = new.len() as u32;
            }
            let arena = if in_old {
                &mut self.old
            } else {
                &mut self.bytes
            };
            arena[at..at + new.len()].copy_from_slice(&new);
            self.replaced.remove(&seq);
        } else {
            self.replaced.insert(seq, new);
        }
    }

    fn pop_front(&mut self) {
        if let Some(tx) = self.ring.pop_front() {
            if self.index.get(&tx.key) == Some(&self.first) {
                self.index.remove(&tx.key);
            }
            if !self.replaced.is_empty() {
                self.replaced.remove(&self.first);
            }
            self.first += 1;
            if self.ring.is_empty() {
                self.old = Vec::new();
                self.base += self.bytes.len() as u64;
                self.bytes.clear();
                self.head = 0;
                return;
            }
            if tx.start < self.base {
                // From the old generation: free it once the next live response is newer.
                if self.ring.front().is_some_and(|f| f.start >= self.base) {
                    self.old = Vec::new();
                }
                return;
            }
            // Arena order is ring order: everything up to this response's end is dead.
            self.head = (tx.start + u64::from(tx.len) - self.base) as usize;
            if self.old.is_empty() && self.head >= ROTATE_AT && self.head * 2 >= self.bytes.len() {
                self.rotate(self.bytes.len() - self.head);
            }
        }
    }

    /// When the oldest transaction's Timer J fires, so the core's `poll_timeout` retires
    /// transactions (and frees their memory) on time even on an otherwise idle shard. None
    /// while the oldest still waits for its response to be sent (held for a commit): it
    /// cannot retire before that, and sending it is an event of its own.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.ring.front().filter(|f| f.sent).map(|f| f.expires)
    }

    /// Forgets transactions whose Timer J fired and whose response has been sent.
    pub fn expire(&mut self, now: Instant) {
        let before = self.ring.len();
        while let Some(f) = self.ring.front() {
            if f.expires > now || !f.sent {
                break;
            }
            self.pop_front();
        }
        if self.ring.len() < before {
            self.shrink_if_idle();
        }
    }

    /// A burst leaves the ring, its index and the arena at peak capacity (64·T1 of
    /// requests), held for as long as the shard runs: give most of it back once under a
    /// quarter is used. Shrinking to twice the live count keeps it amortised O(1).
    fn shrink_if_idle(&mut self) {
        let cap = self.ring.capacity();
        if cap > MIN_KEPT_CAPACITY && self.ring.len() < cap / 4 {
            let keep = (self.ring.len() * 2).max(MIN_KEPT_CAPACITY);
            self.ring.shrink_to(keep);
            self.index.shrink_to(keep);
        }
        let live = self.bytes.len() - self.head;
        if self.old.is_empty()
            && self.bytes.capacity() > MIN_KEPT_BYTES
            && live < self.bytes.capacity() / 4
        {
            self.rotate((live * 2).max(MIN_KEPT_BYTES));
        }
    }

    /// Creates a transaction whose response `write` appends to the buffer it is given
    /// (which may already hold other bytes: append only).
    pub fn insert(
        &mut self,
        now: Instant,
        key: u64,
        peer: Peer,
        timer_j_ms: u64,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<TxSeq, InsertError> {
        self.expire(now);
        if self.ring.len() >= self.cap {
            match self.ring.front() {
                Some(f) if f.sent => {
                    self.evicted += 1;
                    self.pop_front();
                }
                _ => return Err(InsertError::Full),
            }
        }
        let seq = self.first + self.ring.len() as u64;
        let at = self.bytes.len();
        write(&mut self.bytes);
        let len = self.bytes.len() - at;
        debug_assert!(
            len <= u32::MAX as usize,
            "a response is bounded by the message limit"
        );
        self.ring.push_back(ServerTx {
            key,
            peer,
            start: self.base + at as u64,
            len: len as u32,
            expires: now.add_millis(timer_j_ms),
            sent: false,
        });
        self.index.insert(key, seq);
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Transport;

    fn peer() -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: "127.0.0.1:5060".parse().unwrap(),
            conn: None,
        }
    }

    #[test]
    fn absorbs_then_expires() {
        let mut t = ServerTxs::new(8);
        let s = t
            .insert(Instant(0), 42, peer(), 32_000, |w| {
                w.extend_from_slice(b"r")
            })
            .unwrap();
        assert_eq!(t.lookup(42), Some(s));
        t.expire(Instant(40_000));
        assert_eq!(t.lookup(42), Some(s), "unsent responses are kept");
        t.get_mut(s).unwrap().sent = true;
        t.expire(Instant(31_999));
        assert_eq!(t.lookup(42), Some(s));
        t.expire(Instant(32_000));
        assert_eq!(t.lookup(42), None);
        assert!(t.get(s).is_none());
    }

    /// The oldest sent transaction's Timer J is a deadline of its own (the core's
    /// `poll_timeout` includes it), so an idle shard retires it without other traffic.
    #[test]
    fn next_expiry_is_the_oldest_sent_timer_j() {
        let mut t = ServerTxs::new(8);
        assert_eq!(t.next_expiry(), None);
        let s = t
            .insert(Instant(0), 42, peer(), 32_000, |w| {
                w.extend_from_slice(b"r")
            })
            .unwrap();
        t.insert(Instant(5_000), 43, peer(), 32_000, |w| {
            w.extend_from_slice(b"r")
        })
        .unwrap();
        assert_eq!(
            t.next_expiry(),
            None,
            "an unsent response cannot retire yet"
        );
        t.get_mut(s).unwrap().sent = true;
        assert_eq!(t.next_expiry(), Some(Instant(32_000)));
        t.expire(Instant(32_000));
        assert_eq!(t.next_expiry(), None, "the next one is still unsent");
    }

    #[test]
    fn bounded_evicts_oldest_sent_or_refuses() {
        let mut t = ServerTxs::new(2);
        let a = t
            .insert(Instant(0), 1, peer(), 32_000, |w| w.extend_from_slice(b"r"))
            .unwrap();
        let b = t
            .insert(Instant(0), 2, peer(), 32_000, |w| w.extend_from_slice(b"r"))
            .unwrap();
        assert_eq!(
            t.insert(Instant(0), 3, peer(), 32_000, |w| w.extend_from_slice(b"r")),
            Err(InsertError::Full)
        );
        t.get_mut(a).unwrap().sent = true;
        let c = t
            .insert(Instant(0), 3, peer(), 32_000, |w| w.extend_from_slice(b"r"))
            .unwrap();
        assert_eq!(t.evicted, 1);
        assert_eq!(t.lookup(1), None);
        assert_eq!(t.lookup(2), Some(b));
        assert_eq!(t.lookup(3), Some(c));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn gives_back_burst_capacity_once_idle() {
        let n = 16 * MIN_KEPT_CAPACITY as u64;
        let mut t = ServerTxs::new(n as usize);
        for key in 0..n {
            let s = t
                .insert(Instant(key), key, peer(), n, |w| {
                    w.extend_from_slice(b"resp")
                })
                .unwrap();
            t.get_mut(s).unwrap().sent = true;
        }
        assert!(t.ring.capacity() >= n as usize);
        t.expire(Instant(2 * n - 11));
        assert_eq!(t.len(), 10);
        assert!(
            t.ring.capacity() < 2 * MIN_KEPT_CAPACITY,
            "{}",
            t.ring.capacity()
        );
        assert_eq!(t.lookup(n - 1), Some(n - 1));
    }

    /// Responses read back intact across retirement, compaction and rewrites: the arena's
    /// offsets never point at another transaction's bytes.
    #[test]
    fn arena_keeps_every_live_response_intact() {
        let body = |k: u64| format!("response {k} {}", "x".repeat((k % 700) as usize)).into_bytes();
        let mut t = ServerTxs::new(5_000);
        let mut live = std::collections::VecDeque::new();
        let mut rotations = 0;
        for k in 0..60_000u64 {
            let had_old = !t.old.is_empty();
            let now = Instant(k);
            let s = t
                .insert(now, k, peer(), 2_000, |w| w.extend_from_slice(&body(k)))
                .unwrap();
            t.get_mut(s).unwrap().sent = true;
            rotations += usize::from(!had_old && !t.old.is_empty());
            live.push_back((s, k));
            if k % 97 == 0 {
                // A rewrite that fits in place, and one that does not.
                let grow = k % 2 == 0;
                t.replace_response(s, |old| {
                    let mut v = old.to_vec();
                    if grow {
                        v.extend_from_slice(b" and more");
                    } else {
                        v.truncate(3);
                    }
                    v
                });
                let mut want = body(k);
                if grow {
                    want.extend_from_slice(b" and more");
                } else {
                    want.truncate(3);
                }
                assert_eq!(t.response(s).unwrap(), &want[..]);
                live.pop_back();
            }
            while live.front().is_some_and(|&(_, k0)| k0 + 2_000 <= k) {
                live.pop_front();
            }
            if k % 1_000 == 0 {
                for &(s, k0) in &live {
                    assert_eq!(t.response(s).unwrap(), &body(k0)[..], "tx {k0} at {k}");
                }
            }
        }
        assert!(
            t.bytes.len() - t.head < 2_100 * 720,
            "dead bytes are dropped"
        );
        assert!(rotations > 10, "generations were set aside: {rotations}");
        t.expire(Instant(1 << 40));
        assert!(t.is_empty() && t.bytes.is_empty() && t.old.is_empty() && t.replaced.is_empty());
    }
}
