//! The per-shard persistence task: group commit on glommio's blocking pool.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use store::{Store, StoreError, UnixMillis};

use super::convert::write_ops;
use super::durability::Durability;
use super::wal_commit::{
    checkpoint_bytes, split_refused, Checkpointer, WalWriter, CHECKPOINT_IDLE, CHECKPOINT_MAX_AGE,
    PENDING_MAX,
};
use crate::core::{Instant, PersistOp, Refused, ShardId};

/// Most ops committed in one transaction; the rest stay queued in the core for the next
/// one (bounds the batch's memory and the commit's latency).
pub const MAX_BATCH: usize = 8192;

/// `--durability periodic`: a shard commits before its period is up once this many ops
/// wait. Without it, a long period at a high rate filled the core's queue
/// (`max_pending_persist`) and state changes were refused with 500 (measured: 37% of
/// PUBLISHes at 60k/s with `periodic=5000`). An earlier commit only loses less on a crash.
pub const PERIODIC_EARLY_OPS: usize = 2 * MAX_BATCH;

/// Upper bounds (µs) of the commit-duration buckets in `/stats`
/// (`persist_commits_le_<ms>ms`, then `persist_commits_over_<ms>ms`).
pub const COMMIT_BUCKETS_US: [u64; 5] = [1_000, 4_000, 16_000, 64_000, 256_000];

/// The bucket of a commit that took `us`.
pub fn commit_bucket(us: u64) -> usize {
    COMMIT_BUCKETS_US
        .iter()
        .position(|&b| us <= b)
        .unwrap_or(COMMIT_BUCKETS_US.len())
}

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
pub(super) fn deprioritise_commit_thread() {
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
    /// Ops queued and not yet taken by `poll_persist`.
    fn persist_queued(&self) -> usize;
    fn handle_persisted(&mut self, now: Instant, up_to_seq: u64);
    fn handle_persist_failed(&mut self, now: Instant, refused: &[Refused]);
}

impl PersistCore for crate::core::Core {
    fn poll_persist(&mut self) -> Option<PersistOp> {
        crate::core::Core::poll_persist(self)
    }
    fn persist_queued(&self) -> usize {
        crate::core::Core::persist_queued(self)
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

/// Where the driver's task waits (`persist_driver_phase` in `/stats`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// No op queued: waiting for the edge's kick (or the idle checkpoint moment).
    Idle = 0,
    /// Letting a batch gather before its commit.
    Gather = 1,
    /// Waiting for a checkpoint to bring the pending log under `PENDING_MAX`.
    Backpressure = 2,
    /// A commit (log append or LMDB transaction) runs on the blocking pool.
    Commit = 3,
    /// A failed commit waits before its retry.
    Retry = 4,
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
    /// Commits by duration (start to done, what a held 2xx waits beyond its gathering):
    /// up to each of [`COMMIT_BUCKETS_US`], then longer. Shows a disk's flush tail that a
    /// maximum alone cannot tell from one outlier.
    pub commit_us_hist: [u64; COMMIT_BUCKETS_US.len() + 1],
    /// Ops in the last committed batch.
    pub last_batch_ops: u64,
    /// Sync mode: checkpoints of the write-ahead log into LMDB, and failed ones.
    pub checkpoints: u64,
    pub checkpoint_failures: u64,
    /// Log ops checkpointed, and the distinct keys they came down to.
    pub checkpoint_ops: u64,
    pub checkpoint_keys: u64,
    pub last_checkpoint_us: u64,
    pub max_checkpoint_us: u64,
    /// Log bytes appended since the last checkpoint started.
    pub wal_pending_bytes: u64,
    /// The driver's [`Phase`] and how long it has been in it.
    pub phase: u64,
    pub phase_ms: u64,
}

/// One shard's persistence task. Create with [`Driver::new`], then spawn
/// `driver.run(&shard.core, clock, on_committed)` on the shard's executor.
pub struct Driver {
    shard: ShardId,
    store: Option<Arc<Store>>,
    mode: Durability,
    kick: std::rc::Rc<Kick>,
    /// What the driver is awaiting (a [`Phase`]) and since when: a driver that stops
    /// committing shows in `/stats` where it waits.
    phase: Cell<(Phase, std::time::Instant)>,
    stats: Cell<DriverStats>,
    /// Rate limit of the "store full" warning: last time logged, refusals since.
    full_log: Cell<(Option<std::time::Instant>, u64)>,
    /// Sync mode: the write-ahead log (`None` while an append has it on the blocking pool,
    /// or in other modes) and the thread that checkpoints it into LMDB.
    wal: RefCell<Option<WalWriter>>,
    checkpointer: RefCell<Option<Checkpointer>>,
    /// Pending log size that starts a checkpoint ([`checkpoint_bytes`]).
    checkpoint_bytes: usize,
    /// Tests: checkpoint only at `checkpoint_bytes` (and on stop), see
    /// [`Driver::holding_checkpoints`].
    hold_checkpoints: bool,
    /// [`Driver::finish`] asked `run` to return; `run` sets `exited` when it did, leaving
    /// the ops it had drained in `leftover`.
    stopping: Cell<bool>,
    exited: Cell<bool>,
    leftover: RefCell<Vec<PersistOp>>,
    /// Start of the window [`Driver::busy`] measures.
    busy_since: Cell<std::time::Instant>,
    /// Sync mode: least time between the starts of two commits ([`Driver::with_commit_interval`]).
    commit_interval: Duration,
    /// When the last sync commit started.
    last_commit_start: Cell<Option<std::time::Instant>>,
}

impl Driver {
    /// `store` may be `None` only with `Durability::None`. Sync mode opens the store's
    /// write-ahead log (failing if another process holds it) and starts its checkpoint
    /// thread.
    pub fn new(
        shard: ShardId,
        store: Option<Arc<Store>>,
        mode: Durability,
    ) -> Result<Driver, StoreError> {
        assert!(
            store.is_some() || !mode.writes(),
            "durability {mode} needs a store"
        );
        let (mut wal, mut checkpointer, mut ckpt_bytes) = (None, None, usize::MAX);
        if let (Durability::Sync, Some(st)) = (mode, &store) {
            let w = WalWriter::open(st)?;
            let dir = w.wal_dir();
            checkpointer = Some(
                Checkpointer::spawn(shard, st.clone(), dir.clone())
                    .map_err(|source| StoreError::Io { path: dir, source })?,
            );
            ckpt_bytes = checkpoint_bytes(st.max_map_size());
            wal = Some(w);
        }
        Ok(Driver {
            shard,
            store,
            mode,
            kick: Default::default(),
            phase: Cell::new((Phase::Idle, std::time::Instant::now())),
            stats: Cell::new(DriverStats::default()),
            full_log: Cell::new((None, 0)),
            wal: RefCell::new(wal),
            checkpointer: RefCell::new(checkpointer),
            checkpoint_bytes: ckpt_bytes,
            hold_checkpoints: false,
            stopping: Cell::new(false),
            exited: Cell::new(false),
            leftover: RefCell::new(Vec::new()),
            busy_since: Cell::new(std::time::Instant::now()),
            commit_interval: Duration::ZERO,
            last_commit_start: Cell::new(None),
        })
    }

    /// Tests (`--debug-hold-checkpoints`): with `hold`, a checkpoint starts only when the
    /// pending log reaches its size trigger (which bounds memory as usual) or the server
    /// stops; never because the shard is idle or the log old. What is acknowledged then
    /// stays in the log alone, where `herald store list` must find it.
    pub fn holding_checkpoints(mut self, hold: bool) -> Driver {
        self.hold_checkpoints = hold;
        self
    }

    /// Sync mode: a commit starts at least `interval` after the previous one started
    /// (`--commit-interval-us`). Each commit has a fixed CPU cost (~0.1 ms here: the flush
    /// syscall, the hand-off to the blocking thread and back, the wake-up that sends its
    /// replies); with the disk flushing in ~0.3 ms, back-to-back commits at 8,000
    /// SUBSCRIBE/s carried ~7 ops each and cost 85 ms of server CPU per 1,000 requests,
    /// against 78 ms with batches gathered for 2 ms. A first request after a quiet spell
    /// (the last commit started longer ago than `interval`) does not wait.
    pub fn with_commit_interval(mut self, interval: Duration) -> Driver {
        self.commit_interval = interval;
        self
    }

    /// The handle the edge notifies after feeding the core.
    pub fn kick(&self) -> std::rc::Rc<Kick> {
        self.kick.clone()
    }

    pub fn stats(&self) -> DriverStats {
        let mut s = self.stats.get();
        if let Some(c) = self.checkpointer.borrow().as_ref() {
            use std::sync::atomic::Ordering::Relaxed;
            let k = c.counters();
            s.checkpoints = k.checkpoints.load(Relaxed);
            s.checkpoint_failures = k.failures.load(Relaxed);
            s.checkpoint_ops = k.ops.load(Relaxed);
            s.checkpoint_keys = k.keys.load(Relaxed);
            s.last_checkpoint_us = k.last_us.load(Relaxed);
            s.max_checkpoint_us = k.max_us.load(Relaxed);
        }
        if let Some(w) = self.wal.borrow().as_ref() {
            s.wal_pending_bytes = w.pending.len() as u64;
        }
        let (phase, since) = self.phase.get();
        s.phase = phase as u64;
        s.phase_ms = since.elapsed().as_millis() as u64;
        s
    }

    fn enter(&self, phase: Phase) {
        if self.phase.get().0 != phase {
            self.phase.set((phase, std::time::Instant::now()));
        }
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
            if self.stopping.get() {
                self.leftover.borrow_mut().append(&mut batch);
                self.exited.set(true);
                return;
            }
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
                        self.enter(Phase::Idle);
                        // Idle: once no op came for a moment, LMDB catches up with the log.
                        if !self.log_unapplied() || self.hold_checkpoints {
                            self.kick.wait().await;
                        } else if !self.kicked_within(CHECKPOINT_IDLE).await {
                            self.maybe_checkpoint(true);
                        }
                        continue;
                    }
                    let gather = self.gather_delay(batch.len());
                    if !gather.is_zero() {
                        self.enter(Phase::Gather);
                        glommio::timer::sleep(gather).await;
                        Self::drain(core, &mut batch, MAX_BATCH);
                    }
                    self.enter(Phase::Backpressure);
                    self.backpressure().await;
                    self.last_commit_start.set(Some(std::time::Instant::now()));
                    self.enter(Phase::Commit);
                    batch = self.commit_wal(core, batch, &clock, &on_committed).await;
                    self.maybe_checkpoint(false);
                    continue;
                }
                Durability::Periodic(period) => {
                    self.enter(Phase::Idle);
                    // Commit at the period, or sooner once PERIODIC_EARLY_OPS wait (every
                    // flush kicks), so the core's queue never fills. The ops stay in the
                    // core until then: a clean stop's final commit takes them from there.
                    // One timer for the whole period, not one per kick.
                    let mut due = std::pin::pin!(glommio::timer::sleep(period));
                    while core.borrow().persist_queued() < PERIODIC_EARLY_OPS {
                        let kicked = futures_lite::future::or(
                            async {
                                self.kick.wait().await;
                                true
                            },
                            async {
                                (&mut due).await;
                                false
                            },
                        )
                        .await;
                        if !kicked {
                            break;
                        }
                    }
                    Self::drain(core, &mut batch, usize::MAX);
                    if batch.is_empty() {
                        continue;
                    }
                }
            }
            self.enter(Phase::Commit);
            batch = self.commit(core, batch, &clock, &on_committed).await;
        }
    }

    /// Whether log ops wait for a checkpoint (pending, or a failed checkpoint's).
    fn log_unapplied(&self) -> bool {
        let pending = self
            .wal
            .borrow()
            .as_ref()
            .is_some_and(|w| !w.pending.is_empty());
        pending
            || self
                .checkpointer
                .borrow()
                .as_ref()
                .is_some_and(|c| c.has_returned())
    }

    /// Starts a checkpoint if none runs and one is due: enough log pending, the oldest
    /// pending op old enough, or (`idle`) anything at all; only the first while
    /// [holding](Driver::holding_checkpoints).
    fn maybe_checkpoint(&self, idle: bool) {
        let ck = self.checkpointer.borrow();
        let Some(ck) = ck.as_ref() else { return };
        if ck.busy() {
            return;
        }
        let mut w = self.wal.borrow_mut();
        let Some(w) = w.as_mut() else { return };
        let anything = !w.pending.is_empty() || ck.has_returned();
        let timely = !self.hold_checkpoints
            && ((idle && anything)
                || w.pending_since
                    .is_some_and(|t| t.elapsed() >= CHECKPOINT_MAX_AGE));
        let due = timely || w.pending.len() >= self.checkpoint_bytes;
        if due {
            let (payloads, sealed) = w.take_for_checkpoint(ck.take_spare());
            ck.submit(payloads, sealed);
        }
    }

    /// While more than [`PENDING_MAX`] of log waits behind a running checkpoint, commits
    /// wait (their replies too) instead of the pending ops growing without bound.
    async fn backpressure(&self) {
        loop {
            let over = self
                .wal
                .borrow()
                .as_ref()
                .is_some_and(|w| w.pending.len() >= PENDING_MAX);
            if !over {
                return;
            }
            self.maybe_checkpoint(false);
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The map is full: counts and logs the refusals and tells the core (its 500s wait for
    /// the caller's `on_committed`).
    fn report_refused<C: PersistCore>(
        &self,
        core: &RefCell<C>,
        refused: &[Refused],
        max_map_size: usize,
        clock: &impl Fn() -> Instant,
    ) {
        let n = refused.len() as u64;
        self.bump(|s| {
            s.map_full_batches += 1;
            s.ops_refused += n;
        });
        self.warn_full(n, max_map_size);
        core.borrow_mut().handle_persist_failed(clock(), refused);
    }

    /// A write failed: counts and logs it, waits, and adds what queued meanwhile to
    /// `batch`, which is retried whole (its replies stay held).
    async fn retry_later<C: PersistCore>(
        &self,
        core: &RefCell<C>,
        batch: &mut Vec<PersistOp>,
        what: &str,
        e: &StoreError,
    ) {
        self.bump(|s| s.failed_commits += 1);
        self.enter(Phase::Retry);
        tracing::error!(shard = self.shard.0, ops = batch.len(), error = %e, "{what} failed; replies held, retrying");
        glommio::timer::sleep(RETRY_BACKOFF).await;
        let max = MAX_BATCH.max(batch.len());
        Self::drain(core, batch, max);
    }

    /// `batch` (ops up to seq `last`) is durable: tells the core (its replies go out),
    /// counts it and empties the batch for reuse.
    #[allow(clippy::too_many_arguments)]
    fn committed<C: PersistCore>(
        &self,
        core: &RefCell<C>,
        batch: &mut Vec<PersistOp>,
        skipped: u64,
        last: u64,
        us: u64,
        clock: &impl Fn() -> Instant,
        on_committed: &impl Fn(),
    ) {
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
            s.commit_us_hist[commit_bucket(us)] += 1;
            s.last_batch_ops = n;
        });
        on_committed();
    }

    /// Sync mode: appends `batch` to the log and flushes it off the executor, then reports
    /// it to the core (its replies go out). While the map is full, its puts are refused
    /// first (500). On failure logs, waits and returns the batch for retry: nothing is
    /// acknowledged that is not on disk.
    async fn commit_wal<C: PersistCore>(
        &self,
        core: &RefCell<C>,
        batch: Vec<PersistOp>,
        clock: &impl Fn() -> Instant,
        on_committed: &impl Fn(),
    ) -> Vec<PersistOp> {
        let (Some(store), Some(mut w)) = (self.store.clone(), self.wal.borrow_mut().take()) else {
            return batch;
        };
        let last = batch.last().map(PersistOp::seq).unwrap_or(0);
        let received_at = UnixMillis(clock().as_millis());
        let (full, unapplied) = match self.checkpointer.borrow().as_ref() {
            Some(c) if c.full() => (true, c.unapplied()),
            _ => (false, Vec::new()),
        };
        let max_map_size = store.max_map_size();
        let started = std::time::Instant::now();
        let (w, mut batch, refused, res) = glommio::executor()
            .spawn_blocking(move || {
                // Not niced (unlike LMDB commits and checkpoints): an append is a memcpy,
                // one write and a flush wait, and every reply of the batch waits for it; at
                // nice 10 on busy cores it queued for CPU for milliseconds.
                let mut batch = batch;
                let refused = if full {
                    let mut logs: Vec<&[u8]> = unapplied.iter().map(|a| a.as_slice()).collect();
                    logs.push(&w.pending);
                    split_refused(&store, &mut batch, &logs)
                } else {
                    Vec::new()
                };
                let res = w.append(&batch, received_at);
                (w, batch, refused, res)
            })
            .await;
        *self.wal.borrow_mut() = Some(w);
        let us = started.elapsed().as_micros() as u64;
        if !refused.is_empty() {
            self.report_refused(core, &refused, max_map_size, clock);
        }
        match res {
            Ok(skipped) => self.committed(core, &mut batch, skipped, last, us, clock, on_committed),
            Err(e) => {
                if !refused.is_empty() {
                    on_committed(); // the 500s go out now
                }
                self.retry_later(core, &mut batch, "write-ahead log append", &e)
                    .await;
            }
        }
        batch
    }

    /// Sync mode, clean stop: makes `run` return, appends what it and the core still hold
    /// to the log, waits for the running checkpoint and checkpoints the rest, so the next
    /// start has no log to replay. Whatever fails here stays in the log (replayed then).
    pub async fn finish<C: PersistCore>(&self, core: &RefCell<C>, clock: impl Fn() -> Instant) {
        if self.wal.borrow().is_none() && self.checkpointer.borrow().is_none() {
            return;
        }
        self.stopping.set(true);
        self.kick.notify();
        for _ in 0..5_000 {
            if self.exited.get() && self.wal.borrow().is_some() {
                break;
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        let Some(mut w) = self.wal.borrow_mut().take() else {
            tracing::error!(shard = self.shard.0, "final checkpoint skipped: the log is still in use; it is replayed on the next start");
            return;
        };
        let mut ops = std::mem::take(&mut *self.leftover.borrow_mut());
        Self::drain(core, &mut ops, usize::MAX);
        let ck = self.checkpointer.borrow_mut().take();
        let Some(store) = self.store.clone() else {
            return;
        };
        let received_at = UnixMillis(clock().as_millis());
        let shard = self.shard;
        glommio::executor()
            .spawn_blocking(move || {
                if let Err(e) = w.append(&ops, received_at) {
                    tracing::error!(shard = shard.0, error = %e, "final log append failed");
                }
                let returned = ck.and_then(|mut c| c.stop());
                let (pending, sealed) = w.take_for_checkpoint(Vec::new());
                let mut all = returned.map(|r| r.to_vec()).unwrap_or_default();
                all.extend_from_slice(&pending);
                let res = store
                    .checkpoint(&all, sealed)
                    .and_then(|_| store::wal::Wal::remove_through(&w.wal_dir(), sealed));
                match res {
                    Ok(()) => tracing::info!(shard = shard.0, ops = ops.len(), "final checkpoint done"),
                    Err(e) => tracing::error!(shard = shard.0, error = %e, "final checkpoint failed; the log is replayed on the next start"),
                }
            })
            .await;
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

    /// How long to let the next batch gather before committing it (see [`gather_wait`]).
    fn gather_delay(&self, queued: usize) -> Duration {
        let wait = gather_wait(&self.stats.get(), queued, self.busy());
        if queued >= MAX_BATCH {
            return wait;
        }
        let since_last = self.last_commit_start.get().map(|t| t.elapsed());
        wait.max(interval_wait(self.commit_interval, since_last))
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
        let (mut batch, res) = glommio::executor()
            .spawn_blocking(move || {
                deprioritise_commit_thread();
                let res = commit_batch(&store, &batch, received_at);
                (batch, res)
            })
            .await;
        let us = started.elapsed().as_micros() as u64;
        match res {
            Ok(skipped) => self.committed(core, &mut batch, skipped, last, us, clock, on_committed),
            Err(StoreError::MapFull { max_map_size, .. }) => {
                return self
                    .refuse_puts(core, batch, last, max_map_size, clock, on_committed)
                    .await;
            }
            Err(e) => {
                self.retry_later(core, &mut batch, "persist commit", &e)
                    .await
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
                let mut deletes = batch;
                let refused = split_refused(&store, &mut deletes, &[]);
                let res = if deletes.is_empty() {
                    Ok(0)
                } else {
                    store.write_freeing(|s, w| apply_ops(s, w, &deletes, received_at))
                };
                (deletes, refused, res)
            })
            .await;
        self.report_refused(core, &refused, max_map_size, clock);
        match res {
            Ok(skipped) => {
                let committed = deletes.len() as u64 - skipped;
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
                let mut batch = deletes;
                self.retry_later(core, &mut batch, "persist commit of deletes", &e)
                    .await;
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

/// What is left of the least commit interval `interval` when the last commit started
/// `since_last` ago (`None`: no commit yet).
fn interval_wait(interval: Duration, since_last: Option<Duration>) -> Duration {
    since_last.map_or(Duration::ZERO, |s| interval.saturating_sub(s))
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

fn apply_ops(
    s: &Store,
    w: &mut store::RwTxn<'_>,
    ops: &[PersistOp],
    received_at: UnixMillis,
) -> Result<u64, StoreError> {
    write_ops(&mut (s, w), ops, received_at)
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
    fn commits_keep_the_least_interval_but_a_first_request_goes_at_once() {
        let ms = Duration::from_millis;
        assert_eq!(interval_wait(ms(2), None), Duration::ZERO, "no commit yet");
        assert_eq!(
            interval_wait(ms(2), Some(ms(5))),
            Duration::ZERO,
            "quiet spell"
        );
        assert_eq!(interval_wait(ms(2), Some(ms(2))), Duration::ZERO);
        assert_eq!(
            interval_wait(ms(2), Some(Duration::from_micros(500))),
            Duration::from_micros(1_500)
        );
        assert_eq!(
            interval_wait(Duration::ZERO, Some(Duration::ZERO)),
            Duration::ZERO,
            "0 turns it off"
        );
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

    /// Each bound belongs to its own bucket; past the last, the overflow bucket.
    #[test]
    fn commit_durations_fall_in_their_buckets() {
        assert_eq!(commit_bucket(0), 0);
        assert_eq!(commit_bucket(1_000), 0);
        assert_eq!(commit_bucket(1_001), 1);
        assert_eq!(commit_bucket(64_000), 3);
        assert_eq!(commit_bucket(256_000), 4);
        assert_eq!(commit_bucket(445_380), COMMIT_BUCKETS_US.len());
        assert_eq!(commit_bucket(u64::MAX), COMMIT_BUCKETS_US.len());
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
