//! The XCAP hand-off mesh: a request for a user's documents travels to the shard that owns
//! the user and its response travels back, over bounded glommio channels of their own (the
//! SIP hand-off mesh is untouched, so XCAP traffic cannot delay SIP hand-offs).
//!
//! Channel i→j carries both the jobs shard i sends to j and the replies i sends for jobs it
//! received from j. A job that does not fit (queue full) is answered 503 + Retry-After by
//! the accepting shard; a reply always waits for room (its request is already done).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::task::{Poll, Waker};

use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};
use xcap::Response;

/// A request copied out of the connection's buffer, to run on another shard.
#[derive(Debug)]
pub struct OwnedRequest {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    pub trusted: bool,
    /// Unix seconds when the request was received.
    pub now: u64,
}

impl OwnedRequest {
    pub fn from_request(req: &xcap::Request<'_>, now: u64) -> Self {
        OwnedRequest {
            method: req.method.to_string(),
            target: req.target.to_string(),
            headers: req
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_vec()))
                .collect(),
            body: req.body.to_vec(),
            trusted: req.trusted,
            now,
        }
    }
}

/// One item on an XCAP hand-off channel.
#[derive(Debug)]
pub enum XcapMsg {
    Job { id: u64, req: Box<OwnedRequest> },
    Reply { id: u64, resp: Box<Response> },
}

/// One shard's ends: `senders[j]` to shard j (None for itself), receivers from the others.
pub struct XcapEnds {
    pub senders: Vec<Option<SharedSender<XcapMsg>>>,
    pub receivers: Vec<(usize, SharedReceiver<XcapMsg>)>,
}

/// Builds the full mesh for `n` shards, each queue holding `capacity` items.
pub fn mesh(n: usize, capacity: usize) -> Vec<XcapEnds> {
    let mut ends: Vec<XcapEnds> = (0..n)
        .map(|_| XcapEnds {
            senders: (0..n).map(|_| None).collect(),
            receivers: Vec::new(),
        })
        .collect();
    for from in 0..n {
        for to in 0..n {
            if from != to {
                let (tx, rx) = shared_channel::new_bounded(capacity.max(1));
                ends[from].senders[to] = Some(tx);
                ends[to].receivers.push((from, rx));
            }
        }
    }
    ends
}

#[derive(Default)]
struct Slot {
    resp: Option<Response>,
    waker: Option<Waker>,
}

/// Requests this shard handed to other shards, waiting for their replies.
#[derive(Default)]
pub struct PendingReplies {
    next_id: Cell<u64>,
    slots: RefCell<HashMap<u64, Slot>>,
}

/// Removes the slot if the waiting task goes away first (shutdown).
struct SlotGuard<'a> {
    pending: &'a PendingReplies,
    id: u64,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.pending.slots.borrow_mut().remove(&self.id);
    }
}

impl PendingReplies {
    /// A fresh id with a slot waiting for its reply.
    pub fn register(&self) -> u64 {
        let id = self.next_id.get().wrapping_add(1);
        self.next_id.set(id);
        self.slots.borrow_mut().insert(id, Slot::default());
        id
    }

    pub fn cancel(&self, id: u64) {
        self.slots.borrow_mut().remove(&id);
    }

    /// A reply arrived: store it and wake its waiter (unknown ids are dropped).
    pub fn complete(&self, id: u64, resp: Response) {
        if let Some(s) = self.slots.borrow_mut().get_mut(&id) {
            s.resp = Some(resp);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    }

    pub async fn wait(&self, id: u64) -> Response {
        let _guard = SlotGuard { pending: self, id };
        poll_fn(|cx| {
            let mut slots = self.slots.borrow_mut();
            let Some(slot) = slots.get_mut(&id) else {
                // Cannot happen while the guard lives; answer rather than hang.
                return Poll::Ready(Response {
                    status: 500,
                    headers: Vec::new(),
                    body: Vec::new(),
                });
            };
            match slot.resp.take() {
                Some(r) => Poll::Ready(r),
                None => {
                    slot.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}
