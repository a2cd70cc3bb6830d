//! The per-shard persistence task: group commit on glommio's blocking pool.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use store::{Store, StoreError, UnixMillis};

use super::convert::{dialog_id, publication_to_store, subscription_to_store};
use super::durability::Durability;
use crate::core::{Instant, PersistOp, ShardId};

/// Most ops committed in one transaction; the rest stay queued in the core for the next
/// one (bounds the batch's memory and the commit's latency).
pub const MAX_BATCH: usize = 8192;

/// Wait before retrying a failed commit (map full, I/O error).
const RETRY_BACKOFF: Duration = Duration::from_millis(500);

/// What the driver needs from the core (implemented by `core::Core`; tests use fakes).
pub trait PersistCore {
    fn poll_persist(&mut self) -> Option<PersistOp>;
    fn handle_persisted(&mut self, now: Instant, up_to_seq: u64);
}

impl PersistCore for crate::core::Core {
    fn poll_persist(&mut self) -> Option<PersistOp> {
        crate::core::Core::poll_persist(self)
    }
    fn handle_persisted(&mut self, now: Instant, up_to_seq: u64) {
        crate::core::Core::handle_persisted(self, now, up_to_seq)
    }
}

/// Wakes the driver: the edge calls [`Kick::notify`] after it fed the core anything
/// (message, timeout) that may have produced persist ops. Cheap, executor-local.
#[derive(Default)]
pub struct Kick {
    pending: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Kick {
    pub fn notify(&self) {
        self.pending.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    async fn wait(&self) {
        poll_fn(|cx| {
            if self.pending.replace(false) {
                Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

/// Counters of one driver (read them any time through [`Driver::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    pub commits: u64,
    pub ops_committed: u64,
    /// Ops dropped without writing (`none` mode, or a key the store cannot hold).
    pub ops_discarded: u64,
    pub failed_commits: u64,
    /// Highest sequence number reported to the core.
    pub persisted_seq: u64,
    pub last_commit_us: u64,
    pub max_commit_us: u64,
}

/// One shard's persistence task. Create with [`Driver::new`], then spawn
/// `driver.run(&shard.core, clock, on_committed)` on the shard's executor.
pub struct Driver {
    shard: ShardId,
    store: Option<Arc<Store>>,
    mode: Durability,
    kick: std::rc::Rc<Kick>,
    stats: Cell<DriverStats>,
}

impl Driver {
    /// `store` may be `None` only with `Durability::None`.
    pub fn new(shard: ShardId, store: Option<Arc<Store>>, mode: Durability) -> Driver {
        assert!(
            store.is_some() || !mode.writes(),
            "durability {mode} needs a store"
        );
        Driver {
            shard,
            store,
            mode,
            kick: Default::default(),
            stats: Cell::new(DriverStats::default()),
        }
    }

    /// The handle the edge notifies after feeding the core.
    pub fn kick(&self) -> std::rc::Rc<Kick> {
        self.kick.clone()
    }

    pub fn stats(&self) -> DriverStats {
        self.stats.get()
    }

    pub fn mode(&self) -> Durability {
        self.mode
    }

    fn bump(&self, f: impl FnOnce(&mut DriverStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    fn drain<C: PersistCore>(core: &RefCell<C>, into: &mut Vec<PersistOp>, max: usize) {
        let mut c = core.borrow_mut();
        while into.len() < max {
            match c.poll_persist() {
                Some(op) => into.push(op),
                None => break,
            }
        }
    }

    /// Runs forever (drop the task to stop). `clock` gives the core's `now` (Unix ms);
    /// `on_committed` is called after each `handle_persisted`, so the edge flushes the
    /// replies that were waiting for the commit.
    pub async fn run<C: PersistCore>(
        &self,
        core: &RefCell<C>,
        clock: impl Fn() -> Instant,
        on_committed: impl Fn(),
    ) {
        let mut batch: Vec<PersistOp> = Vec::new();
        loop {
            match self.mode {
                Durability::None => {
                    Self::drain(core, &mut batch, usize::MAX);
                    if let Some(last) = batch.last().map(PersistOp::seq) {
                        let n = batch.len() as u64;
                        batch.clear();
                        core.borrow_mut().handle_persisted(clock(), last);
                        self.bump(|s| {
                            s.ops_discarded += n;
                            s.persisted_seq = last;
                        });
                        on_committed();
                    }
                    self.kick.wait().await;
                    continue;
                }
                Durability::Sync => {
                    Self::drain(core, &mut batch, MAX_BATCH);
                    if batch.is_empty() {
                        self.kick.wait().await;
                        continue;
                    }
                }
                Durability::Periodic(period) => {
                    glommio::timer::sleep(period).await;
                    Self::drain(core, &mut batch, usize::MAX);
                    if batch.is_empty() {
                        continue;
                    }
                }
            }
            batch = self.commit(core, batch, &clock, &on_committed).await;
        }
    }

    /// Commits `batch` off the executor; on success reports it to the core and returns the
    /// emptied vector (for reuse). On failure logs, waits and returns the batch for retry:
    /// its replies stay held (sync mode), nothing is acknowledged that is not on disk.
    async fn commit<C: PersistCore>(
        &self,
        core: &RefCell<C>,
        batch: Vec<PersistOp>,
        clock: &impl Fn() -> Instant,
        on_committed: &impl Fn(),
    ) -> Vec<PersistOp> {
        let Some(store) = self.store.clone() else {
            return batch;
        };
        let last = batch.last().map(PersistOp::seq).unwrap_or(0);
        let received_at = UnixMillis(clock().as_millis());
        let started = std::time::Instant::now();
        let (mut batch, res) = glommio::executor()
            .spawn_blocking(move || {
                let res = commit_batch(&store, &batch, received_at);
                (batch, res)
            })
            .await;
        let us = started.elapsed().as_micros() as u64;
        match res {
            Ok(skipped) => {
                let n = batch.len() as u64;
                batch.clear();
                core.borrow_mut().handle_persisted(clock(), last);
                self.bump(|s| {
                    s.commits += 1;
                    s.ops_committed += n - skipped;
                    s.ops_discarded += skipped;
                    s.persisted_seq = last;
                    s.last_commit_us = us;
                    s.max_commit_us = s.max_commit_us.max(us);
                });
                on_committed();
            }
            Err(e) => {
                self.bump(|s| s.failed_commits += 1);
                tracing::error!(shard = self.shard.0, ops = batch.len(), error = %e, "persist commit failed; replies held, retrying");
                glommio::timer::sleep(RETRY_BACKOFF).await;
                // More ops may have queued meanwhile; they join the retry (deletes among
                // them may free the space that was missing).
                let max = MAX_BATCH.max(batch.len());
                Self::drain(core, &mut batch, max);
            }
        }
        batch
    }
}

/// Applies `ops` in order in one durable transaction. Blocking: the driver runs it on the
/// blocking pool; the edge may call it directly for a final flush at shutdown (then report
/// the last seq to the core). Returns how many ops were skipped because the store cannot
/// hold their key (logged; the core's limits should prevent it).
pub fn commit_batch(
    store: &Store,
    ops: &[PersistOp],
    received_at: UnixMillis,
) -> Result<u64, StoreError> {
    store.write(|s, w| {
        let mut skipped = 0;
        let mut id_buf = [0u8; 16];
        for op in ops {
            let r = match op {
                PersistOp::PutPublication { rec, .. } => {
                    let (k, v) = publication_to_store(rec, received_at);
                    s.put_presentity(w, k, &v)
                }
                PersistOp::DeletePublication {
                    presentity,
                    event,
                    etag,
                    ..
                } => s
                    .delete_presentity(
                        w,
                        store::PresentityKey {
                            presentity: presentity.as_bytes(),
                            event,
                            etag,
                        },
                    )
                    .map(drop),
                PersistOp::PutSubscription { rec, .. } => {
                    let (k, v) = subscription_to_store(rec, &mut id_buf);
                    s.put_subscription(w, k, &v)
                }
                PersistOp::DeleteSubscription { id, presentity, .. } => {
                    id_buf = dialog_id(*id);
                    s.delete_subscription(
                        w,
                        store::SubscriptionKey {
                            presentity: presentity.as_bytes(),
                            dialog_id: &id_buf,
                        },
                    )
                    .map(drop)
                }
            };
            match r {
                Ok(()) => {}
                Err(e @ StoreError::InvalidKey { .. }) => {
                    skipped += 1;
                    tracing::error!(seq = op.seq(), error = %e, "persist op skipped");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(skipped)
    })
}
