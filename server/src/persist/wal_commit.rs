//! `--durability sync`'s commit path: a batch is appended to the shard's write-ahead log
//! (`store::wal`) and flushed with one `fdatasync`, then its replies go out; LMDB catches
//! up in checkpoints on a thread of its own.
//!
//! Why: committing each batch to LMDB durably flushed one random B-tree leaf per
//! publication (a PUBLISH modification rewrites its record in place), ~9 ms for 256 of
//! them on this machine's disk; the log's sequential append costs ~0.4–1.7 ms for the same
//! batch. A checkpoint writes many batches' keys once each (a presentity modified ten
//! times in a second is one write), off the reply path.
//!
//! Consequences an operator sees: LMDB lags the log by up to a checkpoint (at most
//! [`CHECKPOINT_MAX_AGE`]; at once when the shard is idle), which `herald store list` on a
//! running server hides by overlaying the log's unapplied frames on its LMDB snapshot
//! (`store::live`; each checkpoint records the last segment it covered for that), and a
//! crashed server's log is replayed into LMDB by whoever opens the data directory next
//! (`Store::open`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use store::wal::{self, SealedThrough, Wal, WalBatch, WalTable};
use store::{Store, StoreError, UnixMillis};

use super::convert::{dialog_id, write_ops};
use crate::core::{Instant, PersistOp, Refused, ShardId};

/// A checkpoint starts when this much log is pending (or a fraction of the map, see
/// [`checkpoint_bytes`]): bounds the memory the pending ops take and how far a full map
/// can be overshot before the checkpoint notices.
pub const CHECKPOINT_BYTES_MAX: usize = 16 << 20;
/// ... or when the oldest pending op is this old: bounds how stale LMDB gets (and so how
/// much log `herald store list` overlays on a running server), and how much log a restart
/// replays.
pub const CHECKPOINT_MAX_AGE: Duration = Duration::from_secs(1);
/// ... or when no new op came for this long (an idle shard brings LMDB up to date).
pub const CHECKPOINT_IDLE: Duration = Duration::from_millis(10);
/// Pending log beyond this makes commits wait for the running checkpoint (backpressure
/// instead of unbounded memory when LMDB cannot keep up).
pub const PENDING_MAX: usize = 256 << 20;
/// A map-full state ends when a checkpoint fits without the reserve and the tables use at
/// most this fraction of `--map-size-max` (hysteresis: refusing stops once space is back,
/// not at the first freed page).
const FULL_CLEAR_NUM: u64 = 7;
const FULL_CLEAR_DEN: u64 = 8;
/// Wait before the checkpointer retries after a failure.
const RETRY_BACKOFF: Duration = Duration::from_millis(500);

/// Pending log size that starts a checkpoint for a map of at most `max_map_size` bytes.
pub fn checkpoint_bytes(max_map_size: usize) -> usize {
    (max_map_size / 32).clamp(16 << 10, CHECKPOINT_BYTES_MAX)
}

/// The log writer and the ops appended since the last checkpoint job. Owned by the
/// driver; moved into the blocking closure that appends, and back.
pub(super) struct WalWriter {
    wal: Wal,
    batch: WalBatch,
    /// Payloads appended since the last checkpoint job, oldest first.
    pub(super) pending: Vec<u8>,
    pub(super) pending_since: Option<std::time::Instant>,
}

impl WalWriter {
    pub(super) fn open(store: &Store) -> Result<WalWriter, StoreError> {
        Ok(WalWriter {
            wal: Wal::open(store)?,
            batch: WalBatch::new(),
            pending: Vec::new(),
            pending_since: None,
        })
    }

    /// Blocking: encodes `ops`, appends them as one frame and flushes it. On success the
    /// ops are durable and join `pending`; returns how many were skipped (a key the store
    /// cannot hold: logged; the core's limits should prevent it).
    pub(super) fn append(
        &mut self,
        ops: &[PersistOp],
        received_at: UnixMillis,
    ) -> Result<u64, StoreError> {
        self.batch.clear();
        let skipped = write_ops(&mut self.batch, ops, received_at)?;
        if self.batch.is_empty() {
            return Ok(skipped);
        }
        self.wal.append(&mut self.batch)?;
        if self.pending.is_empty() {
            self.pending_since = Some(std::time::Instant::now());
        }
        self.pending.extend_from_slice(self.batch.payload());
        Ok(skipped)
    }

    /// Hands the pending ops to a checkpoint: they and the segments holding them. `spare`
    /// (an emptied buffer of an earlier checkpoint) becomes the new pending buffer, so
    /// steady state allocates nothing: a fresh multi-MiB buffer per checkpoint cost page
    /// faults to fill and TLB-shootdown IPIs to free.
    pub(super) fn take_for_checkpoint(&mut self, spare: Vec<u8>) -> (Vec<u8>, SealedThrough) {
        debug_assert!(spare.is_empty());
        self.pending_since = None;
        (std::mem::replace(&mut self.pending, spare), self.wal.seal())
    }

    pub(super) fn wal_dir(&self) -> PathBuf {
        self.wal.dir().to_owned()
    }
}

/// While the map is full: takes the puts out of `ops` as refusals (the core answers 500
/// and rolls back to what the disk holds), adding for each refused publication a delete of
/// its older version under the same key (the core forgets it; a restart must not bring it
/// back). `logs` are the log payloads not yet in LMDB, newest last: a dialog's stored
/// expiry is its last version there, else LMDB's.
pub(super) fn split_refused(
    store: &Store,
    ops: &mut Vec<PersistOp>,
    logs: &[&[u8]],
) -> Vec<Refused> {
    let mut refused = Vec::new();
    let mut kept = Vec::with_capacity(ops.len());
    for op in ops.drain(..) {
        match op {
            PersistOp::PutPublication { seq, ref rec } => {
                kept.push(PersistOp::DeletePublication {
                    seq,
                    presentity: rec.presentity.clone(),
                    event: rec.event.clone(),
                    id: rec.id,
                });
                refused.push(Refused {
                    op,
                    stored_expiry: None,
                });
            }
            PersistOp::PutSubscription { ref rec, .. } => {
                let stored_expiry = stored_sub_expiry(store, rec, logs);
                refused.push(Refused { op, stored_expiry });
            }
            other => kept.push(other),
        }
    }
    *ops = kept;
    refused
}

/// Expiry of the dialog version on disk: the newest in the log, else LMDB's (`None`: not
/// stored, deleted, or unreadable).
pub(super) fn stored_sub_expiry(
    store: &Store,
    rec: &crate::core::SubscriptionRecord,
    logs: &[&[u8]],
) -> Option<Instant> {
    let id = dialog_id(rec.id);
    let key = store::SubscriptionKey {
        presentity: rec.presentity.as_bytes(),
        dialog_id: &id,
    };
    let key_bytes = store::RecordKey::to_vec(&key).ok()?;
    for log in logs.iter().rev() {
        if let Some(v) = wal::find_last(log, WalTable::ActiveWatchers, &key_bytes) {
            return v
                .and_then(wal::subscription_expiry)
                .map(|t| Instant::from_millis(t.0));
        }
    }
    let txn = store.read_txn().ok()?;
    let v = store.get_subscription(&txn, key).ok()??;
    Some(Instant::from_millis(v.expires_at.get().0))
}

/// Counters of the checkpointer (read any time).
#[derive(Default)]
pub(super) struct CheckpointCounters {
    pub checkpoints: AtomicU64,
    pub failures: AtomicU64,
    pub ops: AtomicU64,
    pub keys: AtomicU64,
    pub last_us: AtomicU64,
    pub max_us: AtomicU64,
}

struct Shared {
    busy: AtomicBool,
    full: AtomicBool,
    /// A failed job's payloads: the next job starts with them.
    returned: Mutex<Option<Arc<Vec<u8>>>>,
    counters: CheckpointCounters,
}

struct Job {
    payloads: Arc<Vec<u8>>,
    sealed: SealedThrough,
}

/// One shard's checkpoint thread: applies log payloads to LMDB in one durable transaction
/// each, then deletes the log segments they came from. One job at a time.
pub(super) struct Checkpointer {
    tx: Option<mpsc::Sender<Job>>,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The running job's payloads (what [`stored_sub_expiry`] must still look at).
    in_flight: std::cell::RefCell<Option<Arc<Vec<u8>>>>,
    /// The last finished job's buffer, emptied, for the next pending log.
    spare: std::cell::RefCell<Vec<u8>>,
}

impl Checkpointer {
    pub(super) fn spawn(
        shard: ShardId,
        store: Arc<Store>,
        wal_dir: PathBuf,
    ) -> std::io::Result<Checkpointer> {
        let shared = Arc::new(Shared {
            busy: AtomicBool::new(false),
            full: AtomicBool::new(false),
            returned: Mutex::new(None),
            counters: CheckpointCounters::default(),
        });
        let (tx, rx) = mpsc::channel::<Job>();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("herald-ckpt-{}", shard.0))
            .spawn(move || {
                super::driver::deprioritise_commit_thread();
                idle_io_priority();
                while let Ok(job) = rx.recv() {
                    // Consumes the job: its buffer is dropped (or kept in `returned`)
                    // before `busy` clears, so the driver can take it back.
                    run_job(shard, &store, &wal_dir, &sh, job);
                    sh.busy.store(false, Ordering::Release);
                }
            })?;
        Ok(Checkpointer {
            tx: Some(tx),
            shared,
            thread: Some(thread),
            in_flight: Default::default(),
            spare: Default::default(),
        })
    }

    pub(super) fn busy(&self) -> bool {
        let busy = self.shared.busy.load(Ordering::Acquire);
        if !busy {
            // The thread dropped its reference before clearing `busy` (unless the job
            // failed and waits in `returned`): the buffer is ours again.
            if let Some(Ok(mut buf)) = self.in_flight.borrow_mut().take().map(Arc::try_unwrap) {
                buf.clear();
                *self.spare.borrow_mut() = buf;
            }
        }
        busy
    }

    /// An empty buffer for the next pending log (a finished job's, when there is one).
    pub(super) fn take_spare(&self) -> Vec<u8> {
        std::mem::take(&mut *self.spare.borrow_mut())
    }

    /// The map reached `--map-size-max`: puts are refused until space comes back.
    pub(super) fn full(&self) -> bool {
        self.shared.full.load(Ordering::Acquire)
    }

    pub(super) fn counters(&self) -> &CheckpointCounters {
        &self.shared.counters
    }

    /// Starts a checkpoint of `payloads` (oldest first), preceded by a failed job's. Call
    /// only when not [`busy`](Self::busy).
    pub(super) fn submit(&self, payloads: Vec<u8>, sealed: SealedThrough) {
        assert!(!self.busy(), "one checkpoint at a time");
        let payloads = match self.take_returned() {
            Some(older) => {
                let mut all = Vec::with_capacity(older.len() + payloads.len());
                all.extend_from_slice(&older);
                all.extend_from_slice(&payloads);
                all
            }
            None => payloads,
        };
        let payloads = Arc::new(payloads);
        *self.in_flight.borrow_mut() = Some(payloads.clone());
        self.shared.busy.store(true, Ordering::Release);
        let sent = self.tx.as_ref().map(|tx| tx.send(Job { payloads, sealed }));
        assert!(
            matches!(sent, Some(Ok(()))),
            "checkpoint thread gone while its driver runs"
        );
    }

    /// Whether a failed job waits to be retried.
    pub(super) fn has_returned(&self) -> bool {
        self.shared
            .returned
            .lock()
            .map(|r| r.is_some())
            .unwrap_or(false)
    }

    fn take_returned(&self) -> Option<Arc<Vec<u8>>> {
        self.shared.returned.lock().ok()?.take()
    }

    /// Log payloads not yet in LMDB that this checkpointer holds (failed or running job).
    pub(super) fn unapplied(&self) -> Vec<Arc<Vec<u8>>> {
        let mut out = Vec::new();
        if let Some(r) = self.shared.returned.lock().ok().and_then(|r| r.clone()) {
            out.push(r);
        }
        if let Some(f) = self.in_flight.borrow().clone() {
            out.push(f);
        }
        out
    }

    /// Stops the thread after its running job (if any); returns a failed job's payloads
    /// for the final checkpoint.
    pub(super) fn stop(&mut self) -> Option<Arc<Vec<u8>>> {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.in_flight.borrow_mut().take();
        self.take_returned()
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.tx.take();
        // Not joined: a running checkpoint finishes on its own (its log stays until then).
    }
}

/// Puts the calling thread's disk I/O in the idle class: a checkpoint's flush of many
/// random LMDB pages then waits for the log appends that replies wait for, instead of the
/// other way round (mq-deadline and bfq honour I/O classes; with `none` this is a no-op).
/// Starvation is bounded by the scheduler's aging (mq-deadline: 10 s) and by the driver's
/// backpressure ([`PENDING_MAX`]).
fn idle_io_priority() {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_CLASS_IDLE: libc::c_long = 3;
    const IOPRIO_CLASS_SHIFT: libc::c_long = 13;
    // SAFETY: plain syscall on the calling thread (who = 0); failure keeps the default.
    unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0 as libc::c_long,
            IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
        );
    }
}

fn run_job(shard: ShardId, store: &Store, wal_dir: &std::path::Path, sh: &Shared, job: Job) {
    let started = std::time::Instant::now();
    let stale_before = store.stale_readers_cleared();
    match store.checkpoint(&job.payloads, job.sealed) {
        Ok(rep) => {
            let stale = store.stale_readers_cleared() - stale_before;
            if stale > 0 {
                tracing::warn!(shard = shard.0, slots = stale, "cleared LMDB reader slots of dead processes (a `herald store` command killed mid-read); the pages they pinned are reusable again");
            }
            if let Err(e) = Wal::remove_through(wal_dir, job.sealed) {
                tracing::warn!(shard = shard.0, error = %e, "cannot delete checkpointed log segments (replayed harmlessly on the next start)");
            }
            // Refusing starts when a checkpoint needed the reserve and ends at the first
            // checkpoint after which the tables have room. Both on one checkpoint's word:
            // on a full map even a checkpoint of deletes only needs the reserve (deleting
            // copies the B-tree path on write, and LMDB reuses the pages a transaction frees
            // only after it commits) although it leaves room, and only a checkpoint can clear
            // the flag, which no refused request brings about.
            let was_full = sh.full.load(Ordering::Acquire);
            let full = (rep.used_reserve || was_full) && !has_room(store);
            if full && !sh.full.load(Ordering::Acquire) {
                tracing::warn!(shard = shard.0, max_map_size = store.max_map_size(), "store full: a checkpoint needed the reserve beyond --map-size-max; new PUBLISH/SUBSCRIBE state is refused with 500 until records expire or are removed (raise --map-size-max)");
            }
            sh.full.store(full, Ordering::Release);
            let us = started.elapsed().as_micros() as u64;
            let c = &sh.counters;
            c.checkpoints.fetch_add(1, Ordering::Relaxed);
            c.ops.fetch_add(rep.ops, Ordering::Relaxed);
            c.keys.fetch_add(rep.keys, Ordering::Relaxed);
            c.last_us.store(us, Ordering::Relaxed);
            c.max_us.fetch_max(us, Ordering::Relaxed);
        }
        Err(e) => {
            if e.is_map_full() {
                sh.full.store(true, Ordering::Release);
            }
            sh.counters.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(shard = shard.0, error = %e, "checkpoint failed; the log keeps every acknowledged op, retrying");
            if let Ok(mut r) = sh.returned.lock() {
                *r = Some(job.payloads);
            }
            std::thread::sleep(RETRY_BACKOFF);
        }
    }
}

/// Whether the tables use at most 7/8 of the maximum map size again.
fn has_room(store: &Store) -> bool {
    store.used_bytes().is_ok_and(|used| {
        used.saturating_mul(FULL_CLEAR_DEN)
            <= (store.max_map_size() as u64).saturating_mul(FULL_CLEAR_NUM)
    })
}
