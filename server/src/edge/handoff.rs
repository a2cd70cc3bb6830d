//! The bounded cross-shard mesh: the one place shards talk to each other.
//!
//! A message that lands on a shard that does not own it crosses here exactly once. Every
//! queue is bounded (`--handoff-queue`): when the owner is behind, the receiving shard answers
//! 503 + Retry-After itself instead of queueing without limit.
//!
//! TCP replies: a message that arrived on a TCP connection keeps its `Peer.conn`, and a
//! [`ConnId`] encodes the shard that holds the connection (see `tcp::conn_shard`). So the
//! owner's response or NOTIFY for that connection comes back as [`Handoff::Outbound`] to the
//! connection's shard, which writes it: "reply via shard X conn Y" needs no extra field.
//!
//! Batching: the receiving task drains everything already queued after each wake-up before
//! flushing the core's output once, so a burst costs one wake-up (~100 µs when parked).
//! Responses (the 200s to another shard's NOTIFYs) are handed over at once like requests:
//! holding them back would hold back the dialog's next NOTIFY (one in flight per dialog).

use std::future::Future;
use std::net::SocketAddr;

use glommio::channels::shared_channel::{self, ConnectedReceiver, SharedReceiver, SharedSender};

use crate::core::{ConnId, Peer};

/// One item on a hand-off queue.
#[derive(Debug)]
pub enum Handoff {
    /// A received message the target shard owns (`route()` said so on the sender).
    Inbound { from: Peer, bytes: Box<[u8]> },
    /// Bytes to write on a TCP connection the target shard holds.
    Outbound { dst: Peer, bytes: Box<[u8]> },
    /// A TCP connection held by the sending shard closed.
    ConnClosed(ConnId),
    /// An ICMP error, read on the sending shard's socket, for a NOTIFY the target shard
    /// sent to `dst`; `sent` is the start of that NOTIFY (`core::unreachable`).
    Refused { dst: SocketAddr, sent: Box<[u8]> },
}

/// One shard's ends of the mesh: `senders[j]` goes to shard j (None for itself),
/// `receivers` come from every other shard.
pub struct Ends {
    pub senders: Vec<Option<SharedSender<Handoff>>>,
    pub receivers: Vec<(usize, SharedReceiver<Handoff>)>,
}

/// Full mesh of bounded single-producer/single-consumer channels, built before the executors
/// start so that index j really is shard j (glommio's `MeshBuilder` numbers peers by
/// executor id instead).
pub struct Mesh {
    ends: Vec<Ends>,
}

impl Mesh {
    pub fn new(n: usize, capacity: usize) -> Self {
        let mut ends: Vec<Ends> = (0..n)
            .map(|_| Ends {
                senders: (0..n).map(|_| None).collect(),
                receivers: Vec::new(),
            })
            .collect();
        for from in 0..n {
            for to in 0..n {
                if from != to {
                    let (tx, rx) = shared_channel::new_bounded(capacity);
                    ends[from].senders[to] = Some(tx);
                    ends[to].receivers.push((from, rx));
                }
            }
        }
        Mesh { ends }
    }

    pub fn into_ends(self) -> Vec<Ends> {
        self.ends
    }
}

/// Takes every item already queued without waiting (after a `recv().await` returned one).
pub fn drain_ready(rx: &ConnectedReceiver<Handoff>, out: &mut Vec<Handoff>, max: usize) {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    while out.len() < max {
        let fut = std::pin::pin!(rx.recv());
        match fut.poll(&mut cx) {
            std::task::Poll::Ready(Some(m)) => out.push(m),
            _ => break,
        }
    }
}
