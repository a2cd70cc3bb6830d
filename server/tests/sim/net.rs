//! Simulated datagram network: seeded loss, duplication and random delay (hence
//! reordering). Time is in milliseconds of the simulated clock.

use server::core::rng::Rng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;

pub struct Packet {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub bytes: Vec<u8>,
}

pub struct Net {
    rng: Rng,
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    packets: HashMap<u64, Packet>,
    seq: u64,
    /// Per mille.
    pub loss: u64,
    pub dup: u64,
    pub min_delay: u64,
    pub max_delay: u64,
    pub sent: u64,
    pub lost: u64,
}

impl Net {
    pub fn new(seed: u64, loss: u64, dup: u64, min_delay: u64, max_delay: u64) -> Net {
        Net {
            rng: Rng::new(seed),
            heap: BinaryHeap::new(),
            packets: HashMap::new(),
            seq: 0,
            loss,
            dup,
            min_delay,
            max_delay,
            sent: 0,
            lost: 0,
        }
    }

    fn enqueue(&mut self, now: u64, p: Packet) {
        let delay = self.min_delay + self.rng.below(self.max_delay - self.min_delay + 1);
        self.seq += 1;
        self.heap.push(Reverse((now + delay, self.seq)));
        self.packets.insert(self.seq, p);
    }

    pub fn send(&mut self, now: u64, p: Packet) {
        self.sent += 1;
        if self.rng.below(1000) < self.loss {
            self.lost += 1;
            return;
        }
        if self.rng.below(1000) < self.dup {
            let copy = Packet {
                src: p.src,
                dst: p.dst,
                bytes: p.bytes.clone(),
            };
            self.enqueue(now, copy);
        }
        self.enqueue(now, p);
    }

    pub fn next_time(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    pub fn pop_due(&mut self, now: u64) -> Option<Packet> {
        match self.heap.peek() {
            Some(Reverse((t, _))) if *t <= now => {
                let Reverse((_, s)) = self.heap.pop()?;
                self.packets.remove(&s)
            }
            _ => None,
        }
    }
}
