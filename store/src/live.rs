//! A data directory's state as its server acknowledged it, readable while the server runs:
//! an LMDB snapshot plus the write-ahead log frames no checkpoint had applied to it.
//!
//! Why: with `--durability sync` a batch is acknowledged once its log frame is flushed, and
//! LMDB gets it at the next checkpoint (up to a second later under load: the server's
//! `CHECKPOINT_MAX_AGE`). The `herald store list` and `check` commands (environments opened
//! with [`Store::open_read_only`]: also a stopped server's log is read, not replayed) read
//! through a
//! [`LiveView`], so they show every acknowledged change on a running server too. The view
//! writes nothing and takes no lock the server holds (not the log's `LOCK`, not LMDB's
//! writer lock): segments are only appended to, and retired only after a checkpoint made
//! them redundant.
//!
//! Consistency: each checkpoint records, in the transaction that applies them, the last
//! segment it covered ([`Store::wal_checkpointed_through`]). A view takes its read
//! transaction first, reads that number `t` from it, then reads the complete frames of the
//! segments after `t` (a torn last frame is a batch never acknowledged: ignored, as replay
//! ignores it). A checkpoint committing meanwhile may retire those segments under the
//! reader (a file vanishes, or is recycled and overwritten), so once the log is read the
//! view looks at the recorded number again: if it moved, it starts over with a new
//! transaction. If it did not, no segment after `t` was retired before the read ended, and
//! the view is exactly LMDB as of `t` plus every frame flushed after it. Ops are absolute
//! ("this key now holds this value / nothing"), so a frame LMDB also reflects (a failed
//! checkpoint applies its deletes alone) overlays harmlessly.
//!
//! Expiry is left to the caller, as with LMDB's own scans: an expired record the log or
//! LMDB still holds is listed (`admin` renders it as expired).

use std::collections::btree_map;
use std::collections::BTreeMap;
use std::iter::Peekable;

use heed::RoTxn;

use crate::env::{Db, ReadTxn, Store};
use crate::error::{is_mdb_map_resized, Result, StoreError};
use crate::keys::{PresentityKey, SubscriptionKey};
use crate::records::{ArchivedPresentityRecord, ArchivedSubscriptionRecord};
use crate::tables::{decode_entry, Entry};
use crate::wal::{self, LogRead, WalTable};

/// Attempts before [`Store::live_view`] gives up with [`StoreError::LogBusy`]: one fails
/// only if a checkpoint committed while the log was read (or the server grew the map), at
/// most once per checkpoint, and a checkpoint takes far longer than reading the log; so
/// running out means something checkpoints in a tight loop.
pub const MAX_ATTEMPTS: u32 = 100;

/// The last log op per key of one table: `Some(value)` put, `None` deleted.
type Overlay = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// LMDB as of one read transaction, with the log frames it does not reflect laid over it.
/// Keep it short-lived, like any read transaction (it pins old pages).
pub struct LiveView<'s> {
    store: &'s Store,
    txn: ReadTxn<'s>,
    presentity: Overlay,
    active_watchers: Overlay,
    log_ops: u64,
}

impl Store {
    /// A [`LiveView`] of this environment: what a running server acknowledged, or on a
    /// stopped one what its data directory holds. See the module doc for why it is exact.
    pub fn live_view(&self) -> Result<LiveView<'_>> {
        self.debug_live_view(|| {})
    }

    /// Tests: [`Store::live_view`] calling `after_txn` in each attempt between taking the
    /// read transaction and reading the log, where a checkpoint may strike.
    #[doc(hidden)]
    pub fn debug_live_view(&self, mut after_txn: impl FnMut()) -> Result<LiveView<'_>> {
        let mut log = Vec::new();
        for _ in 0..MAX_ATTEMPTS {
            let txn = self.read_txn()?;
            let through = self.wal_checkpointed_through(&txn)?;
            after_txn();
            log.clear();
            let Some(key) = self.wal_key_now(&txn)? else {
                continue;
            };
            if let LogRead::Vanished(_) =
                wal::read_log_after(&self.path, through, key.as_ref(), &mut log)?
            {
                continue;
            }
            if self.wal_checkpointed_through_now(&txn)? != Some(through) {
                continue;
            }
            return LiveView::new(self, txn, &log);
        }
        Err(StoreError::LogBusy {
            path: wal::wal_dir(&self.path),
            attempts: MAX_ATTEMPTS,
        })
    }

    /// [`Store::wal_key`] as last committed, while `_held` is open (as
    /// [`Store::wal_checkpointed_through_now`], and for the same reasons): the log files are
    /// read after `_held` was taken, and a keyed frame in them was written after its key was
    /// committed, which `_held` may predate (a server's very first start). `None`: start over.
    fn wal_key_now(&self, _held: &ReadTxn<'_>) -> Result<Option<Option<crate::wal::WalKey>>> {
        match self.env.read_txn() {
            Ok(now) => self.wal_key_in(&now).map(Some),
            Err(e) if is_mdb_map_resized(&e) => Ok(None),
            Err(e) => Err(self.lmdb(e)),
        }
    }

    /// [`Store::wal_checkpointed_through`] as last committed, while `_held` is open. Not
    /// through [`Store::read_txn`]: its map-resize handling waits for the resize gate that
    /// `_held` keeps shared, on this same thread. `_held` also makes a raw transaction safe
    /// (no resize of this process can run meanwhile). `None`: another process grew the map;
    /// the caller starts over (its next `read_txn` adopts the new size).
    fn wal_checkpointed_through_now(&self, _held: &ReadTxn<'_>) -> Result<Option<u64>> {
        match self.env.read_txn() {
            Ok(now) => self.wal_checkpointed_through(&now).map(Some),
            Err(e) if is_mdb_map_resized(&e) => Ok(None),
            Err(e) => Err(self.lmdb(e)),
        }
    }
}

impl<'s> LiveView<'s> {
    fn new(store: &'s Store, txn: ReadTxn<'s>, log: &[u8]) -> Result<LiveView<'s>> {
        let mut view = LiveView {
            store,
            txn,
            presentity: Overlay::new(),
            active_watchers: Overlay::new(),
            log_ops: 0,
        };
        for op in wal::ops(log) {
            let op = op?;
            let overlay = match op.table {
                WalTable::Presentity => &mut view.presentity,
                WalTable::ActiveWatchers => &mut view.active_watchers,
            };
            overlay.insert(op.key.to_vec(), op.value.map(<[u8]>::to_vec));
            view.log_ops += 1;
        }
        Ok(view)
    }

    /// The LMDB read transaction (for the tables the log never touches).
    pub fn txn(&self) -> &RoTxn<'s> {
        &self.txn
    }

    /// Log ops laid over LMDB (0: LMDB was up to date with the log).
    pub fn log_ops(&self) -> u64 {
        self.log_ops
    }

    /// Every publication, in key order, as [`Store::iter_presentities`] but with the log.
    pub fn iter_presentities(
        &self,
    ) -> Result<impl Iterator<Item = Entry<'_, PresentityKey<'_>, ArchivedPresentityRecord>> + '_>
    {
        self.merged(self.store.presentity, &self.presentity)
    }

    /// Every subscription dialog, in key order, as [`Store::iter_subscriptions`] but with
    /// the log.
    pub fn iter_subscriptions(
        &self,
    ) -> Result<impl Iterator<Item = Entry<'_, SubscriptionKey<'_>, ArchivedSubscriptionRecord>> + '_>
    {
        self.merged(self.store.active_watchers, &self.active_watchers)
    }

    fn merged<'v, K, A>(
        &'v self,
        db: Db,
        overlay: &'v Overlay,
    ) -> Result<impl Iterator<Item = Entry<'v, K, A>> + 'v>
    where
        K: crate::keys::RecordKey<'v> + 'v,
        A: crate::tables::Decode + 'v,
    {
        let lmdb = db.iter(&self.txn).map_err(|e| self.store.lmdb(e))?;
        let path = &self.store.path;
        Ok(Merge {
            lmdb: lmdb.peekable(),
            log: overlay.iter().peekable(),
        }
        .map(move |raw| decode_entry::<K, A>(path, raw)))
    }
}

/// Merges an LMDB scan with an overlay, both in key order (LMDB's default comparison is
/// the bytes' lexicographic order, as `[u8]`'s `Ord`): an overlay entry replaces LMDB's
/// record under the same key, or hides it if it is a delete.
struct Merge<'v, L: Iterator> {
    lmdb: Peekable<L>,
    log: Peekable<btree_map::Iter<'v, Vec<u8>, Option<Vec<u8>>>>,
}

type Raw<'v> = heed::Result<(&'v [u8], &'v [u8])>;

impl<'v, L: Iterator<Item = Raw<'v>>> Iterator for Merge<'v, L> {
    type Item = Raw<'v>;

    fn next(&mut self) -> Option<Raw<'v>> {
        loop {
            let from_log = match (self.lmdb.peek(), self.log.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) | (Some(Ok(_)), None) => false,
                (None, Some(_)) => true,
                (Some(Ok((k, _))), Some((lk, _))) => match (*k).cmp(lk.as_slice()) {
                    std::cmp::Ordering::Less => false,
                    std::cmp::Ordering::Greater => true,
                    std::cmp::Ordering::Equal => {
                        self.lmdb.next(); // superseded by the log
                        true
                    }
                },
            };
            if !from_log {
                return self.lmdb.next();
            }
            if let Some((k, Some(v))) = self.log.next() {
                return Some(Ok((k.as_slice(), v.as_slice())));
            } // a delete: nothing to yield, look further
        }
    }
}
