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
//! a prefix. The arena is a queue of fixed-capacity chunks: a chunk becomes the spare once
//! no live response is in it and is taken again for new ones. A response costs no
//! allocation of its own, and neither does a growing arena: a single `Vec` arena had to
//! double (copying every live response, then faulting in fresh zeroed pages) and be
//! rotated to let its dead prefix go, which cost 8% of a SUBSCRIBE in the core bench
//! (`perf record`), and a 46 MB move at the default cap once stalled a shard.

use super::IdMap;
use crate::core::{Instant, Peer};
use std::collections::VecDeque;

/// One answered request.
#[derive(Debug)]
pub struct ServerTx {
    /// Keyed hash of branch + sent-by + method (RFC 3261 §17.2.3).
    pub key: u64,
    pub peer: Peer,
    /// The arena chunk holding the final response (replayed verbatim), and where in it.
    chunk: u64,
    at: u32,
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
    /// The responses of the transactions in `ring`, in ring order: chunk `first_chunk`
    /// onwards. Only the front chunk holds dead bytes (before the oldest live response).
    chunks: VecDeque<Vec<u8>>,
    first_chunk: u64,
    /// Emptied chunks kept for reuse (at most [`SPARE_CHUNKS`]; none once the ring is empty).
    spare: Vec<Vec<u8>>,
    /// Responses rewritten after the fact into something longer than the original (a
    /// held 2xx that became a 500, `replace_response`): rare, so kept aside.
    replaced: IdMap<Vec<u8>>,
    pub evicted: u64,
}

/// Transactions the ring keeps room for however idle the shard is.
const MIN_KEPT_CAPACITY: usize = 1024;
/// Capacity of one arena chunk (about 2,000 typical responses). Above mimalloc's largest
/// size class (512 KiB), so a chunk let go is its own mapping and goes back to the kernel:
/// 64 KiB chunks shared mimalloc's medium pages, which stayed resident after the
/// transactions ended (`CORE_MEM=50000` in the core bench: 516 B of RSS per held
/// subscription against 336 B of live heap; 341 B with these).
const CHUNK_BYTES: usize = 1024 * 1024;
/// A new chunk is started when the current one has less room than this, so that a response
/// (a few hundred bytes; the largest echo the request's headers) rarely outgrows its
/// chunk. One that does is still written whole: its chunk grows, once.
const CHUNK_HEADROOM: usize = 4 * 1024;
/// Emptied chunks kept for reuse while transactions live: at a steady rate one chunk is
/// let go for each one taken, so that churn never reaches the allocator (or the page
/// faults of fresh memory). An idle shard (empty ring) keeps none.
const SPARE_CHUNKS: usize = 1;

impl ServerTxs {
    pub fn new(cap: usize) -> ServerTxs {
        ServerTxs {
            ring: VecDeque::new(),
            first: 0,
            index: IdMap::default(),
            cap: cap.max(1),
            chunks: VecDeque::new(),
            first_chunk: 0,
            spare: Vec::new(),
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
        self.bytes_of(tx).get(..tx.len as usize)
    }

    /// Where chunk number `chunk` sits in `chunks` (`None` once it has been let go).
    fn chunk_index(&self, chunk: u64) -> Option<usize> {
        chunk.checked_sub(self.first_chunk).map(|i| i as usize)
    }

    /// The arena bytes from `tx`'s response onwards, to the end of its chunk.
    fn bytes_of(&self, tx: &ServerTx) -> &[u8] {
        let chunk = self.chunk_index(tx.chunk).and_then(|i| self.chunks.get(i));
        debug_assert!(chunk.is_some(), "a live response's chunk is live");
        chunk
            .and_then(|c| c.get(tx.at as usize..))
            .unwrap_or_default()
    }

    /// Lets go of the front chunk: into the spare pool, or back to the allocator.
    fn release_front_chunk(&mut self) {
        if let Some(mut c) = self.chunks.pop_front() {
            self.first_chunk += 1;
            if self.spare.len() < SPARE_CHUNKS && c.capacity() <= 2 * CHUNK_BYTES {
                c.clear();
                self.spare.push(c);
            }
        }
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
            let (chunk, at) = (tx.chunk, tx.at as usize);
            if let Some(tx) = self.get_mut(seq) {
                tx.len = new.len() as u32;
            }
            let c = self.chunk_index(chunk).and_then(|i| self.chunks.get_mut(i));
            if let Some(slot) = c.and_then(|c| c.get_mut(at..at + new.len())) {
                slot.copy_from_slice(&new);
            }
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
            // Arena order is ring order: the chunks before the next live response's are dead.
            let keep_from = self.ring.front().map_or(u64::MAX, |f| f.chunk);
            while self.first_chunk < keep_from && !self.chunks.is_empty() {
                self.release_front_chunk();
            }
            if self.ring.is_empty() {
                self.spare.clear();
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

    /// A burst leaves the ring and its index at peak capacity (64·T1 of requests), held for
    /// as long as the shard runs: give most of it back once under a quarter is used (the
    /// arena's chunks go as their responses die). Shrinking to twice the live count keeps
    /// it amortised O(1).
    fn shrink_if_idle(&mut self) {
        let cap = self.ring.capacity();
        if cap > MIN_KEPT_CAPACITY && self.ring.len() < cap / 4 {
            let keep = (self.ring.len() * 2).max(MIN_KEPT_CAPACITY);
            self.ring.shrink_to(keep);
            self.index.shrink_to(keep);
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
        if self
            .chunks
            .back()
            .is_none_or(|c| c.capacity() - c.len() < CHUNK_HEADROOM)
        {
            let fresh = self
                .spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(CHUNK_BYTES));
            self.chunks.push_back(fresh);
        }
        let chunk = self.first_chunk + self.chunks.len() as u64 - 1;
        let Some(bytes) = self.chunks.back_mut() else {
            unreachable!("a chunk was just made current");
        };
        let at = bytes.len();
        write(bytes);
        let len = bytes.len() - at;
        debug_assert!(
            len <= u32::MAX as usize,
            "a response is bounded by the message limit"
        );
        self.ring.push_back(ServerTx {
            key,
            peer,
            chunk,
            at: at as u32,
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
        let mut chunks_used = 0;
        for k in 0..60_000u64 {
            let now = Instant(k);
            let s = t
                .insert(now, k, peer(), 2_000, |w| w.extend_from_slice(&body(k)))
                .unwrap();
            t.get_mut(s).unwrap().sent = true;
            chunks_used = chunks_used.max(t.first_chunk + t.chunks.len() as u64);
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
        // 2,000 live responses of ~370 bytes on average: 12 chunks, and one partly dead.
        assert!(
            t.chunks.len() * CHUNK_BYTES < 2_100 * 720 + 2 * CHUNK_BYTES,
            "dead chunks are let go: {} live",
            t.chunks.len()
        );
        assert!(
            chunks_used > 10,
            "chunks were taken and let go: {chunks_used}"
        );
        assert!(t.spare.len() <= SPARE_CHUNKS);
        assert!(
            t.chunks.iter().all(|c| c.capacity() == CHUNK_BYTES),
            "no chunk grew"
        );
        t.expire(Instant(1 << 40));
        assert!(t.is_empty() && t.chunks.is_empty() && t.replaced.is_empty());
        assert!(t.spare.is_empty(), "an idle shard keeps no chunk");
    }

    /// A response larger than a chunk's headroom is written whole (its chunk grows), and
    /// a grown chunk is not kept as a spare.
    #[test]
    fn a_response_larger_than_a_chunk_is_whole() {
        let mut t = ServerTxs::new(100);
        let big = vec![b'b'; 3 * CHUNK_BYTES];
        let small = t
            .insert(Instant(0), 1, peer(), 10, |w| w.extend_from_slice(b"small"))
            .unwrap();
        let large = t
            .insert(Instant(0), 2, peer(), 10, |w| w.extend_from_slice(&big))
            .unwrap();
        let after = t
            .insert(Instant(0), 3, peer(), 10, |w| w.extend_from_slice(b"after"))
            .unwrap();
        assert_eq!(t.response(small).unwrap(), b"small");
        assert_eq!(t.response(large).unwrap(), &big[..]);
        assert_eq!(t.response(after).unwrap(), b"after");
        for s in [small, large, after] {
            t.get_mut(s).unwrap().sent = true;
        }
        t.expire(Instant(10));
        assert!(t.is_empty());
        assert!(t.spare.iter().all(|c| c.capacity() <= 2 * CHUNK_BYTES));
    }
}
