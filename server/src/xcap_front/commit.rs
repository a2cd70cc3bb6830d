//! Group commit of staged XCAP writes, off the executor.
//!
//! Requests append their staged writes to one queue; whichever request finds no commit
//! running becomes the leader: it takes the whole queue, commits it in one LMDB write
//! transaction on glommio's blocking pool (`spawn_blocking`: the fsync never blocks the
//! executor), hands every request its own outcome and wakes the followers. Writes queued
//! meanwhile form the next batch, so a burst of PUTs costs one fsync, and commits of one
//! shard run strictly in staging order (a later write of a document never lands first).
//!
//! LMDB serialises writers of an environment itself, so these commits interleave safely with
//! the SIP persistence driver's on the same environment.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Poll, Waker};

use store::{Store, UnixMillis, XcapWrite, XcapWriteOutcome};
use xcap::store::DocKey;

use super::docs::ShardDocs;

/// Most writes committed in one transaction (bounds a commit's latency and memory).
pub const MAX_COMMIT_BATCH: usize = 1024;

/// What a request's writes came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitResult {
    /// Every write is durable.
    Committed,
    /// A document changed under a write (only after an earlier failed commit): 412.
    Changed,
    /// The transaction failed (I/O, map full): nothing of this request was written.
    Failed(String),
}

pub struct Committer {
    store: Arc<Store>,
    /// (ticket, key, write) in staging order.
    queue: RefCell<Vec<(u64, DocKey, XcapWrite)>>,
    next_ticket: Cell<u64>,
    leader: Cell<bool>,
    /// Outcome per ticket, until its request collects it.
    done: RefCell<HashMap<u64, Result<XcapWriteOutcome, String>>>,
    waiters: RefCell<Vec<Waker>>,
}

impl Committer {
    pub fn new(store: Arc<Store>) -> Self {
        Committer {
            store,
            queue: RefCell::new(Vec::new()),
            next_ticket: Cell::new(1),
            leader: Cell::new(false),
            done: RefCell::new(HashMap::new()),
            waiters: RefCell::new(Vec::new()),
        }
    }

    /// Commits `writes` (staged by one request, in order) and returns when they are durable
    /// or failed. The overlay entries of `docs` are settled as the commit completes.
    pub async fn commit(&self, docs: &ShardDocs, writes: Vec<(DocKey, XcapWrite)>) -> CommitResult {
        let mut tickets = Vec::with_capacity(writes.len());
        {
            let mut q = self.queue.borrow_mut();
            for (k, w) in writes {
                let t = self.next_ticket.get();
                self.next_ticket.set(t + 1);
                tickets.push(t);
                q.push((t, k, w));
            }
        }
        loop {
            if tickets.iter().all(|t| self.done.borrow().contains_key(t)) {
                break;
            }
            if !self.leader.get() {
                self.leader.set(true);
                self.lead(docs).await;
                self.leader.set(false);
                for w in self.waiters.borrow_mut().drain(..) {
                    w.wake();
                }
                continue;
            }
            // Follower: wait for the leader's wake-up, then look again.
            let mut registered = false;
            poll_fn(|cx| {
                if registered {
                    Poll::Ready(())
                } else {
                    registered = true;
                    self.waiters.borrow_mut().push(cx.waker().clone());
                    Poll::Pending
                }
            })
            .await;
        }
        let mut done = self.done.borrow_mut();
        let mut result = CommitResult::Committed;
        for t in tickets {
            match done.remove(&t) {
                Some(Ok(XcapWriteOutcome::Applied)) => {}
                Some(Ok(XcapWriteOutcome::Changed)) => {
                    if result == CommitResult::Committed {
                        result = CommitResult::Changed;
                    }
                }
                Some(Err(e)) => result = CommitResult::Failed(e),
                None => result = CommitResult::Failed("commit outcome lost".into()),
            }
        }
        result
    }

    /// Commits everything queued (up to the batch bound) once.
    async fn lead(&self, docs: &ShardDocs) {
        let batch: Vec<(u64, DocKey, XcapWrite)> = {
            let mut q = self.queue.borrow_mut();
            let n = q.len().min(MAX_COMMIT_BATCH);
            q.drain(..n).collect()
        };
        if batch.is_empty() {
            return;
        }
        let (tickets, rest): (Vec<u64>, Vec<(DocKey, XcapWrite)>) =
            batch.into_iter().map(|(t, k, w)| (t, (k, w))).unzip();
        let (keys, writes): (Vec<DocKey>, Vec<XcapWrite>) = rest.into_iter().unzip();
        let store = self.store.clone();
        let res = glommio::executor()
            .spawn_blocking(move || store.apply_xcap_writes(&writes, UnixMillis::now()))
            .await;
        let mut done = self.done.borrow_mut();
        match res {
            Ok(outcomes) => {
                for (t, o) in tickets.iter().zip(outcomes) {
                    done.insert(*t, Ok(o));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, writes = tickets.len(), "XCAP commit failed");
                for t in &tickets {
                    done.insert(*t, Err(e.to_string()));
                }
            }
        }
        for k in &keys {
            docs.settle(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xcap_front::docs::{Backend, ShardDocs};
    use xcap::etag::ETag;
    use xcap::store::{DocumentStore, Expect, StoredDoc};
    use xcap::uri::{Scope, UserId};

    fn key(path: &str) -> DocKey {
        DocKey {
            auid: "test-app".into(),
            scope: Scope::User(UserId {
                user: "alice".into(),
                domain: "example.com".into(),
            }),
            path: path.into(),
        }
    }

    fn doc(tag: &str) -> StoredDoc {
        StoredDoc {
            etag: ETag(tag.into()),
            bytes: format!("<d t=\"{tag}\"/>").into_bytes(),
        }
    }

    /// Staged writes are visible at once (overlay), committed in order in one batch, and
    /// afterwards read back from LMDB; a write staged on a state that never reached the
    /// disk is refused at commit.
    #[test]
    fn overlay_then_group_commit() {
        let dir = tempfile::tempdir().unwrap();
        let opts = store::StoreOptions {
            no_sync: true,
            initial_map_size: 1 << 20,
            ..Default::default()
        };
        let st = Arc::new(Store::open(dir.path(), &opts).unwrap());
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(1 << 20)
            .make()
            .unwrap();
        ex.run(async move {
            let docs = ShardDocs::new(Backend::Lmdb(st.clone()), vec![st.clone()]);
            let c = Committer::new(st.clone());
            let k = key("index");
            let mut v = docs.view();
            v.put(&k, &Expect::Absent, doc("e1")).unwrap();
            v.put(&k, &Expect::Tag(ETag("e1".into())), doc("e2"))
                .unwrap();
            assert_eq!(
                v.put(&k, &Expect::Tag(ETag("e1".into())), doc("e3")),
                Err(xcap::store::StoreError::Changed)
            );
            assert_eq!(
                v.get(&k).unwrap(),
                Some(doc("e2")),
                "overlay visible at once"
            );
            let staged = std::mem::take(&mut v.staged);
            assert_eq!(staged.len(), 2);
            assert_eq!(c.commit(&docs, staged).await, CommitResult::Committed);
            let v = docs.view();
            assert_eq!(v.get(&k).unwrap(), Some(doc("e2")), "read back from LMDB");
            assert_eq!(
                v.list_user(&UserId {
                    user: "alice".into(),
                    domain: "example.com".into()
                })
                .unwrap()
                .len(),
                1
            );
            // A write whose expectation no longer holds on disk fails as Changed.
            let stale = store::XcapWrite {
                user: b"sip:alice@example.com".to_vec(),
                auid: b"test-app".to_vec(),
                document: b"index".to_vec(),
                expect: store::XcapExpect::Absent,
                new: Some((b"e9".to_vec(), b"<x/>".to_vec())),
            };
            assert_eq!(
                c.commit(&docs, vec![(k.clone(), stale)]).await,
                CommitResult::Changed
            );
            let mut seen = 0;
            docs.view()
                .for_each_in_auid("test-app", &mut |_, _| {
                    seen += 1;
                    true
                })
                .unwrap();
            assert_eq!(seen, 1);
        });
    }
}
