//! The per-shard persistence task: group commit on glommio's blocking pool.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use store::{Store, StoreError, UnixMillis};

use super::convert::{dialog_id, publication_to_store, subscription_to_store};
use super::durability::Durability;
use crate::core::{Instant, PersistOp, Refused, ShardId};

/// Most ops committed in one transaction; the rest stay queued in the core for the next
/// one (bounds the batch's memory and the commit's latency).
pub const MAX_BATCH: usize = 8192;

/// Wait before retrying a failed commit (map full, I/O error).
const RETRY_BACKOFF: Duration = Duration::from_millis(500);

/// The gather wait before a commit is the last commit's duration divided by this,
/// bounded by `GATHER_MIN_US..=GATHER_MAX_US` (see [`gather_wait`]).
const GATHER_FRACTION: u64 = 4;
const GATHER_MIN_US: u64 = 100;
const GATHER_MAX_US: u64 = 2_000;

/// A shard whose executor ran tasks at least this fraction of the wall time since the last
/// commit is busy: its next batch gathers for about one commit duration, bounded by
/// `BUSY_GATHER_MIN_US..=BUSY_GATHER_MAX_US` (see [`gather_wait`]).
const BUSY_FRACTION: f64 = 0.6;
const BUSY_GATHER_MIN_US: u64 = 1_000;
const BUSY_GATHER_MAX_US: u64 = 8_000;

/// Nice value of the threads that run commits (glommio's blocking pool). A commit thread
/// shares the cores with the shards; at their priority it can hold a shard's core for a
/// whole commit (milliseconds), which is what PUBLISH→NOTIFY latency saw under
/// `--durability sync`. Niced, it yields to a waking shard and still runs whenever a core
/// is idle or the shards wait for it.
const COMMIT_THREAD_NICE: i32 = 10;

/// Lowers the calling blocking-pool thread's priority, once per thread.
fn deprioritise_commit_thread() {
    thread_local!(static DONE: Cell<bool> = const { Cell::new(false) });
    DONE.with(|done| {
        if !done.replace(true) {
            // SAFETY: plain syscalls on the calling thread (Linux keeps a nice value per
            // thread; `who` = its tid). Failure only leaves the default priority.
            unsafe {
                let tid = libc::gettid() as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, COMMIT_THREAD_NICE);
            }
        }
    });
}

/// At most one "store full" warning per this period (the count of refusals is in it).
const FULL_LOG_EVERY: Duration = Duration::from_secs(10);

/// What the driver needs from the core (implemented by `core::Core`; tests use fakes).
pub trait PersistCore {
    fn poll_persist(&mut self) -> Option<PersistOp>;
    fn handle_persisted(&mut self, now: Instant, up_to_seq: u64);
    fn handle_persist_failed(&mut self, now: Instant, refused: &[Refused]);
}

impl PersistCore for crate::core::Core {
    fn poll_persist(&mut self) -> Option<PersistOp> {
        crate::core::Core::poll_persist(self)
    }
    fn handle_persisted(&mut self, now: Instant, up_to_seq: u64) {
        crate::core::Core::handle_persisted(self, now, up_to_seq)
    }
    fn handle_persist_failed(&mut self, now: Instant, refused: &[Refused]) {
        crate::core::Core::handle_persist_failed(self, now, refused)
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
    /// Batches that hit the map size limit (`--map-size-max`).
    pub map_full_batches: u64,
    /// Puts refused because the map was full: each answered 500, rolled back in memory.
    pub ops_refused: u64,
    /// Highest sequence number reported to the core.
    pub persisted_seq: u64,
    pub last_commit_us: u64,
    pub max_commit_us: u64,
    /// Ops in the last committed batch.
    pub last_batch_ops: u64,
}

/// One shard's persistence task. Create with [`Driver::new`], then spawn
/// `driver.run(&shard.core, clock, on_committed)` on the shard's executor.
pub struct Driver {
    shard: ShardId,
    store: Option<Arc<Store>>,
    mode: Durability,
    kick: std::rc::Rc<Kick>,
    stats: Cell<DriverStats>,
    /// Rate limit of the "store full" warning: last time logged, refusals since.
    full_log: Cell<(Option<std::time::Instant>, u64)>,
    /// Sync mode pipeline: last op of the batch committed with `commit_batch_deferred`
    /// whose meta page is not flushed yet. It is acknowledged when the next commit (or an
    /// explicit sync when idle) has flushed.
    unsynced: Cell<Option<u64>>,
    /// Start of the window [`Driver::busy`] measures.
    busy_since: Cell<std::time::Instant>,
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
            full_log: Cell::new((None, 0)),
            unsynced: Cell::new(None),
            busy_since: Cell::new(std::time::Instant::now()),
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
        // Sync mode, queue empty, last batch not flushed: until when to wait for new ops
        // before flushing it alone.
        let mut flush_alone_at: Option<std::time::Instant> = None;
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
                        if self.unsynced.get().is_none() {
                            self.kick.wait().await;
                            continue;
                        }
                        // The replies the last commit released bring new ops within a
                        // round trip; their commit's flush makes the pending batch durable
                        // too (one fsync instead of two). Flush it alone only when none
                        // came within a gather wait (bounded: kicks without ops do not
                        // extend it).
                        let now = std::time::Instant::now();
                        let at = *flush_alone_at
                            .get_or_insert_with(|| now + gather_wait(&self.stats.get(), 0, false));
                        if at <= now || !self.kicked_within(at - now).await {
                            flush_alone_at = None;
                            self.sync_idle(core, &clock, &on_committed).await;
                        }
                        continue;
                    }
                    flush_alone_at = None;
                    let gather = self.gather_delay(batch.len());
                    if !gather.is_zero() {
                        glommio::timer::sleep(gather).await;
                        Self::drain(core, &mut batch, MAX_BATCH);
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

    /// Whether the edge kicked (may have queued ops) within `wait`.
    async fn kicked_within(&self, wait: Duration) -> bool {
        futures_lite::future::or(
            async {
                self.kick.wait().await;
                true
            },
            async {
                glommio::timer::sleep(wait).await;
                false
            },
        )
        .await
    }

    /// Nothing more to commit: flush the last pipelined batch and acknowledge it.
    async fn sync_idle<C: PersistCore>(
        &self,
        core: &RefCell<C>,
        clock: &impl Fn() -> Instant,
        on_committed: &impl Fn(),
    ) {
        let (Some(store), Some(upto)) = (self.store.clone(), self.unsynced.get()) else {
            return;
        };
        let res = glommio::executor()
            .spawn_blocking(move || {
                deprioritise_commit_thread();
                store.sync()
            })
            .await;
        match res {
            Ok(()) => {
                self.unsynced.set(None);
                core.borrow_mut().handle_persisted(clock(), upto);
                self.bump(|s| s.persisted_seq = upto);
                on_committed();
            }
            Err(e) => {
                self.bump(|s| s.failed_commits += 1);
                tracing::error!(shard = self.shard.0, error = %e, "persist sync failed; replies held, retrying");
                glommio::timer::sleep(RETRY_BACKOFF).await;
            }
        }
    }

    /// How long to let the next batch gather before committing it (see [`gather_wait`]).
    fn gather_delay(&self, queued: usize) -> Duration {
        gather_wait(&self.stats.get(), queued, self.busy())
    }

    /// Whether the shard's executor ran tasks for at least [`BUSY_FRACTION`] of the wall
    /// time since the last call (glommio's run time, which leaves out parked time).
    fn busy(&self) -> bool {
        let now = std::time::Instant::now();
        let wall = now.duration_since(self.busy_since.replace(now));
        // Takes (resets) the executor's counters: nothing else in herald reads them.
        let ran = glommio::executor().executor_stats().total_runtime();
        !wall.is_zero() && ran.as_secs_f64() >= BUSY_FRACTION * wall.as_secs_f64()
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
        let pipelined = self.mode == Durability::Sync;
        let (mut batch, res) = glommio::executor()
            .spawn_blocking(move || {
                deprioritise_commit_thread();
                let res = if pipelined {
                    commit_batch_deferred(&store, &batch, received_at)
                } else {
                    commit_batch(&store, &batch, received_at)
                };
                (batch, res)
            })
            .await;
        let us = started.elapsed().as_micros() as u64;
        match res {
            Ok(skipped) => {
                let n = batch.len() as u64;
                batch.clear();
                // Pipelined: this commit's flush made the previous batch durable; this one
                // waits for the next flush.
                let durable = if pipelined {
                    self.unsynced.replace(Some(last))
                } else {
                    Some(last)
                };
                if let Some(upto) = durable {
                    core.borrow_mut().handle_persisted(clock(), upto);
                }
                self.bump(|s| {
                    s.commits += 1;
                    s.ops_committed += n - skipped;
                    s.ops_discarded += skipped;
                    s.persisted_seq = durable.unwrap_or(s.persisted_seq);
                    s.last_commit_us = us;
                    s.max_commit_us = s.max_commit_us.max(us);
                    s.last_batch_ops = n;
                });
                if durable.is_some() {
                    on_committed();
                }
            }
            Err(StoreError::MapFull { max_map_size, .. }) => {
                return self
                    .refuse_puts(core, batch, last, max_map_size, clock, on_committed)
                    .await;
            }
            Err(e) => {
                self.bump(|s| s.failed_commits += 1);
                tracing::error!(shard = self.shard.0, ops = batch.len(), error = %e, "persist commit failed; replies held, retrying");
                glommio::timer::sleep(RETRY_BACKOFF).await;
                // More ops may have queued meanwhile; they join the retry.
                let max = MAX_BATCH.max(batch.len());
                Self::drain(core, &mut batch, max);
            }
        }
        batch
    }

    /// The map is full at `--map-size-max`: commit the batch's deletes alone (they free
    /// space), refuse its puts (the core answers 500 and rolls memory back to the disk),
    /// warn (rate-limited). Returns what must be retried: nothing, or the deletes if even
    /// they do not fit.
    async fn refuse_puts<C: PersistCore>(
        &self,
        core: &RefCell<C>,
        batch: Vec<PersistOp>,
        last: u64,
        max_map_size: usize,
        clock: &impl Fn() -> Instant,
        on_committed: &impl Fn(),
    ) -> Vec<PersistOp> {
        let Some(store) = self.store.clone() else {
            return batch;
        };
        let received_at = UnixMillis(clock().as_millis());
        let (deletes, refused, res) = glommio::executor()
            .spawn_blocking(move || {
                let (mut deletes, puts): (Vec<_>, Vec<_>) = batch.into_iter().partition(|op| {
                    matches!(
                        op,
                        PersistOp::DeletePublication { .. } | PersistOp::DeleteSubscription { .. }
                    )
                });
                // The core forgets a refused publication; its older version, stored under
                // the same key, must go too, or a restart would bring it back.
                deletes.extend(puts.iter().filter_map(|op| match op {
                    PersistOp::PutPublication { seq, rec } => Some(PersistOp::DeletePublication {
                        seq: *seq,
                        presentity: rec.presentity.clone(),
                        event: rec.event.clone(),
                        id: rec.id.clone(),
                    }),
                    _ => None,
                }));
                // Sequence order, as every batch (its last op is what a commit reports).
                deletes.sort_by_key(PersistOp::seq);
                // A full (flushed) commit, or at least a flush: after it, every earlier
                // pipelined batch is durable too.
                let res = if deletes.is_empty() {
                    store.sync().map(|()| 0)
                } else {
                    store.write_freeing(|s, w| apply_ops(s, w, &deletes, received_at))
                };
                let refused: Vec<Refused> = puts
                    .into_iter()
                    .map(|op| {
                        let stored_expiry = match &op {
                            PersistOp::PutSubscription { rec, .. } => {
                                stored_sub_expiry(&store, rec)
                            }
                            _ => None,
                        };
                        Refused { op, stored_expiry }
                    })
                    .collect();
                (deletes, refused, res)
            })
            .await;
        let n = refused.len() as u64;
        self.bump(|s| {
            s.map_full_batches += 1;
            s.ops_refused += n;
        });
        self.warn_full(n, max_map_size);
        core.borrow_mut().handle_persist_failed(clock(), &refused);
        match res {
            Ok(skipped) => {
                let committed = deletes.len() as u64 - skipped;
                let last = last.max(self.unsynced.take().unwrap_or(0));
                core.borrow_mut().handle_persisted(clock(), last);
                self.bump(|s| {
                    s.ops_committed += committed;
                    s.ops_discarded += skipped;
                    s.persisted_seq = last;
                });
                on_committed();
                Vec::new()
            }
            Err(e) => {
                // Send the 500s now; the deletes wait for space like any failed commit.
                on_committed();
                self.bump(|s| s.failed_commits += 1);
                tracing::error!(shard = self.shard.0, ops = deletes.len(), error = %e, "persist commit of deletes failed; retrying");
                glommio::timer::sleep(RETRY_BACKOFF).await;
                let mut batch = deletes;
                let max = MAX_BATCH.max(batch.len());
                Self::drain(core, &mut batch, max);
                batch
            }
        }
    }

    /// One warning per [`FULL_LOG_EVERY`] while the store is full, with the refusals since.
    fn warn_full(&self, refused: u64, max_map_size: usize) {
        let (last, count) = self.full_log.get();
        let count = count + refused;
        let now = std::time::Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < FULL_LOG_EVERY) {
            self.full_log.set((last, count));
            return;
        }
        self.full_log.set((Some(now), 0));
        tracing::warn!(
            shard = self.shard.0,
            refused = count,
            max_map_size,
            "store full: the LMDB map reached --map-size-max; new PUBLISH/SUBSCRIBE state is refused with 500 until records expire or are removed (raise --map-size-max)"
        );
    }
}

/// How long the next batch gathers before it is committed, given the driver's counters
/// after the last commit, the ops queued now and whether the shard is busy.
///
/// Idle or lightly loaded: the clients whose replies the previous commit just released
/// answer within a round trip; committing at once would leave them for the commit after
/// (two commit latencies per request in a closed loop). A short wait, a fraction of the
/// last commit's duration, lets them join this one; none when the batch is already as big
/// as the last one.
///
/// Busy (the executor's CPU is the limit): every commit costs a fixed ~0.2 ms of CPU
/// (page flush, fsync, thread hand-offs, wake-ups) on top of its ops, so the batch gathers
/// for about one commit duration: fewer, bigger commits, measured 10% less server CPU per
/// request; the wait adds at most that much latency to requests that queue anyway.
fn gather_wait(last: &DriverStats, queued: usize, busy: bool) -> Duration {
    if last.commits == 0 || queued >= MAX_BATCH {
        return Duration::ZERO;
    }
    let us = if busy {
        last.last_commit_us
            .clamp(BUSY_GATHER_MIN_US, BUSY_GATHER_MAX_US)
    } else if queued as u64 >= last.last_batch_ops {
        return Duration::ZERO;
    } else {
        (last.last_commit_us / GATHER_FRACTION).clamp(GATHER_MIN_US, GATHER_MAX_US)
    };
    Duration::from_micros(us)
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
    store.write(|s, w| apply_ops(s, w, ops, received_at))
}

/// [`commit_batch`] for the pipeline: the transaction is atomic and its data on disk when
/// this returns, durable once the next `commit_batch_deferred` (or any write) commits or
/// `Store::sync` runs (`Store::write_deferred`). Writes the commit marker so that the
/// transaction always flushes, which is what makes the previous one durable.
pub fn commit_batch_deferred(
    store: &Store,
    ops: &[PersistOp],
    received_at: UnixMillis,
) -> Result<u64, StoreError> {
    let marker = ops.last().map(PersistOp::seq).unwrap_or(0);
    store.write_deferred(|s, w| {
        s.put_commit_marker(w, marker)?;
        apply_ops(s, w, ops, received_at)
    })
}

fn apply_ops(
    s: &Store,
    w: &mut store::RwTxn<'_>,
    ops: &[PersistOp],
    received_at: UnixMillis,
) -> Result<u64, StoreError> {
    {
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
                    id,
                    ..
                } => s
                    .delete_presentity(
                        w,
                        store::PresentityKey {
                            presentity: presentity.as_bytes(),
                            event,
                            pub_id: id,
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
    }
}

/// Expiry of the dialog version on disk (`None`: not stored, or unreadable).
fn stored_sub_expiry(store: &Store, rec: &crate::core::SubscriptionRecord) -> Option<Instant> {
    let id = dialog_id(rec.id);
    let txn = store.read_txn().ok()?;
    let key = store::SubscriptionKey {
        presentity: rec.presentity.as_bytes(),
        dialog_id: &id,
    };
    let v = store.get_subscription(&txn, key).ok()??;
    Some(Instant::from_millis(v.expires_at.get().0))
}

#[cfg(test)]
mod gather_tests {
    use super::*;

    fn after(commits: u64, last_batch_ops: u64, last_commit_us: u64) -> DriverStats {
        DriverStats {
            commits,
            last_batch_ops,
            last_commit_us,
            ..DriverStats::default()
        }
    }

    #[test]
    fn idle_waits_a_fraction_of_a_commit_only_for_a_smaller_batch() {
        let us = |d: Duration| d.as_micros() as u64;
        assert_eq!(
            us(gather_wait(&after(0, 0, 0), 1, false)),
            0,
            "first commit"
        );
        assert_eq!(us(gather_wait(&after(5, 10, 4_000), 3, false)), 1_000);
        assert_eq!(us(gather_wait(&after(5, 10, 4_000), 10, false)), 0);
        assert_eq!(us(gather_wait(&after(5, 10, 100), 3, false)), GATHER_MIN_US);
        assert_eq!(
            us(gather_wait(&after(5, 10, 60_000), 3, false)),
            GATHER_MAX_US
        );
    }

    #[test]
    fn busy_waits_about_one_commit_even_for_a_big_batch() {
        let us = |d: Duration| d.as_micros() as u64;
        assert_eq!(us(gather_wait(&after(5, 10, 4_000), 500, true)), 4_000);
        assert_eq!(
            us(gather_wait(&after(5, 10, 200), 500, true)),
            BUSY_GATHER_MIN_US
        );
        assert_eq!(
            us(gather_wait(&after(5, 10, 90_000), 5, true)),
            BUSY_GATHER_MAX_US
        );
        assert_eq!(
            us(gather_wait(&after(5, 10, 4_000), MAX_BATCH, true)),
            0,
            "full batch"
        );
    }
}
