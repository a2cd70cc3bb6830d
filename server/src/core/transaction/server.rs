//! Non-INVITE server transactions (RFC 3261 §17.2.2).
//!
//! Every request we answer gets its final response at once, so each transaction is born
//! "Completed" and only lives to replay that response to retransmissions until Timer J
//! (64·T1 over UDP, 0 over TCP). Completed transactions therefore expire in creation
//! order: a FIFO ring is the whole timer machinery, and its capacity bounds memory. When
//! full, the oldest transaction is evicted early (counted) rather than growing.

use super::IdMap;
use crate::core::{Instant, Peer};
use std::collections::VecDeque;

/// One answered request.
#[derive(Debug)]
pub struct ServerTx {
    /// Keyed hash of branch + sent-by + method (RFC 3261 §17.2.3).
    pub key: u64,
    pub peer: Peer,
    /// The final response, replayed verbatim.
    pub response: Vec<u8>,
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
    spare: Vec<Vec<u8>>,
    pub evicted: u64,
}

/// First capacity of a response buffer: a typical response fits without regrowing.
const RESPONSE_CAPACITY: usize = 512;
/// Transactions the ring keeps room for however idle the shard is.
const MIN_KEPT_CAPACITY: usize = 1024;
/// Spare response buffers kept for reuse.
const MAX_SPARE_BUFFERS: usize = 1024;

impl ServerTxs {
    pub fn new(cap: usize) -> ServerTxs {
        ServerTxs {
            ring: VecDeque::new(),
            first: 0,
            index: IdMap::default(),
            cap: cap.max(1),
            spare: Vec::new(),
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

    fn pop_front(&mut self) {
        if let Some(tx) = self.ring.pop_front() {
            if self.index.get(&tx.key) == Some(&self.first) {
                self.index.remove(&tx.key);
            }
            self.first += 1;
            if self.spare.len() < MAX_SPARE_BUFFERS {
                let mut b = tx.response;
                b.clear();
                self.spare.push(b);
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

    /// A burst leaves the ring and its index at peak capacity (64·T1 of requests), held
    /// for as long as the shard runs: give most of it back once under a quarter is used.
    /// Shrinking to twice the live count keeps it amortised O(1) per transaction.
    fn shrink_if_idle(&mut self) {
        let cap = self.ring.capacity();
        if cap > MIN_KEPT_CAPACITY && self.ring.len() < cap / 4 {
            let keep = (self.ring.len() * 2).max(MIN_KEPT_CAPACITY);
            self.ring.shrink_to(keep);
            self.index.shrink_to(keep);
        }
    }

    /// Creates a transaction; its (cleared) response buffer is to be filled by the caller.
    pub fn insert(
        &mut self,
        now: Instant,
        key: u64,
        peer: Peer,
        timer_j_ms: u64,
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
        let response = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(RESPONSE_CAPACITY));
        self.ring.push_back(ServerTx {
            key,
            peer,
            response,
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
        let s = t.insert(Instant(0), 42, peer(), 32_000).unwrap();
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
        let s = t.insert(Instant(0), 42, peer(), 32_000).unwrap();
        t.insert(Instant(5_000), 43, peer(), 32_000).unwrap();
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
        let a = t.insert(Instant(0), 1, peer(), 32_000).unwrap();
        let b = t.insert(Instant(0), 2, peer(), 32_000).unwrap();
        assert_eq!(
            t.insert(Instant(0), 3, peer(), 32_000),
            Err(InsertError::Full)
        );
        t.get_mut(a).unwrap().sent = true;
        let c = t.insert(Instant(0), 3, peer(), 32_000).unwrap();
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
            let s = t.insert(Instant(key), key, peer(), n).unwrap();
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
}
