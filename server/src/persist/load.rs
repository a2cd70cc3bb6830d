//! Start-up: open the data directory, load a shard's partition.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sip_parser::Aor;
use store::admin::{delete_expired, CleanupReport};
use store::{Expired, ExpiringTable, RecordKey, Store, StoreError, StoreOptions, UnixMillis};

use super::convert::{publication_from_store, subscription_from_store};
use crate::core::{
    shard_for, Core, Instant, PublicationRecord, RestoreError, ShardId, SubscriptionRecord,
};

/// Opens `<data_dir>/shard-NNN` for `shards` shards, first moving records to their owner
/// (by `core::shard_for`) if the directory was written with another shard count. Index `i`
/// is shard `i`'s store; hand each to its executor.
pub fn open_data_dir(
    data_dir: &Path,
    shards: u16,
    opts: &StoreOptions,
) -> Result<Vec<Arc<Store>>, StoreError> {
    let owner = owner_fn(shards);
    let (stores, rep) = store::layout::open_shards(data_dir, shards, opts, &owner)?;
    for s in &stores {
        if s.replayed_wal_ops() > 0 {
            tracing::info!(path = %s.path().display(), ops = s.replayed_wal_ops(), "write-ahead log replayed into the store (the last run did not stop cleanly)");
        }
        if s.damaged_wal_segments() > 0 {
            tracing::error!(
                path = %s.path().display(),
                segments = s.damaged_wal_segments(),
                "the write-ahead log held damaged frames (a disk fault: appends are flushed in \
                 order): they were skipped and the intact batches after them replayed; the \
                 segments are kept as wal/damaged-*.log"
            );
        }
        if s.stale_readers_cleared() > 0 {
            tracing::info!(path = %s.path().display(), slots = s.stale_readers_cleared(), "cleared LMDB reader slots of dead processes");
        }
        if let Some(from) = s.upgraded_from() {
            tracing::info!(path = %s.path().display(), from, to = store::SCHEMA_VERSION, "store upgraded to the current schema");
        }
    }
    if rep.moved > 0 || !rep.removed.is_empty() {
        tracing::info!(
            previous = ?rep.previous_shards, shards, moved = rep.moved, removed = rep.removed.len(),
            "store redistributed for the new shard count"
        );
    }
    Ok(stores)
}

/// The store's shard function for `shards` shards: `core::shard_for` on the owner AoR
/// (pass it to `store::admin::check` for `herald store check`).
pub fn owner_fn(shards: u16) -> impl Fn(&[u8]) -> u16 + Sync + Copy {
    move |aor: &[u8]| match Aor::parse(aor) {
        Ok(a) => shard_for(&a, shards).0,
        // Unparseable owner (cannot happen for records we wrote): keep it on shard 0 so
        // `herald store check` can still show it.
        Err(_) => 0,
    }
}

/// Unreadable records logged one by one at load (the count is always logged).
const MAX_LOGGED_UNREADABLE: u64 = 8;

/// A shard's partition, ready for the core's restore functions.
#[derive(Debug, Default)]
pub struct Loaded {
    pub publications: Vec<PublicationRecord>,
    pub subscriptions: Vec<SubscriptionRecord>,
    /// Records that expired while the server was down (deleted from the store).
    pub expired: CleanupReport,
    /// Records that could not be turned into core records (bad AoR / dialog id): left in
    /// the store, reported by `herald store check`.
    pub invalid: u64,
    /// Records that could not be read at all (malformed key, value failing validation):
    /// skipped and left in the store, so that one damaged record costs that record, not the
    /// shard (`herald store check` names them, `herald store cleanup --unreadable` deletes
    /// them).
    pub unreadable: u64,
    pub elapsed: Duration,
}

/// Reads the shard's store in one scan, then deletes what had expired by `now` (Unix ms).
/// Blocking (run it before serving, or on the blocking pool).
pub fn load_shard(store: &Store, shard: ShardId, now: Instant) -> Result<Loaded, StoreError> {
    let started = std::time::Instant::now();
    let now_ms = UnixMillis(now.as_millis());
    let mut out = Loaded::default();
    let mut out_unreadable = 0u64;
    let mut expired = Vec::new();
    let r = store.read_txn()?;
    let counts = store.counts(&r)?;
    out.publications.reserve(counts.presentity as usize);
    out.subscriptions.reserve(counts.active_watchers as usize);
    let mut found = |table, key: Vec<u8>, expires_at| {
        expired.push(Expired {
            table,
            key,
            expires_at,
        })
    };
    let mut skip = |e: StoreError| -> Result<(), StoreError> {
        if !e.is_unreadable_record() {
            return Err(e);
        }
        out_unreadable += 1;
        if out_unreadable <= MAX_LOGGED_UNREADABLE {
            tracing::warn!(shard = shard.0, error = %e, "skipped a stored record that cannot be read");
        }
        Ok(())
    };
    for item in store.iter_presentities(&r)? {
        let (k, v) = match item {
            Ok(kv) => kv,
            Err(e) => {
                skip(e)?;
                continue;
            }
        };
        if v.expires_at.get() <= now_ms {
            found(ExpiringTable::Presentity, k.to_vec()?, v.expires_at.get());
            continue;
        }
        match publication_from_store(k, v) {
            Some(p) => out.publications.push(p),
            None => out.invalid += 1,
        }
    }
    for item in store.iter_subscriptions(&r)? {
        let (k, v) = match item {
            Ok(kv) => kv,
            Err(e) => {
                skip(e)?;
                continue;
            }
        };
        if v.expires_at.get() <= now_ms {
            found(
                ExpiringTable::ActiveWatchers,
                k.to_vec()?,
                v.expires_at.get(),
            );
            continue;
        }
        match subscription_from_store(k, v) {
            Some(s) => out.subscriptions.push(s),
            None => out.invalid += 1,
        }
    }
    drop(r);
    out.unreadable = out_unreadable;
    if out.unreadable > 0 {
        tracing::warn!(
            shard = shard.0,
            records = out.unreadable,
            "{}",
            store::admin::unreadable_note(out.unreadable)
        );
    }
    delete_expired(store, &expired, &mut out.expired)?;
    out.elapsed = started.elapsed();
    tracing::info!(
        shard = shard.0,
        publications = out.publications.len(),
        subscriptions = out.subscriptions.len(),
        expired = out.expired.presentities + out.expired.subscriptions,
        invalid = out.invalid,
        unreadable = out.unreadable,
        ms = out.elapsed.as_millis() as u64,
        "shard state loaded"
    );
    Ok(out)
}

/// Outcome of [`restore_into`]: what the core took and why it refused the rest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    pub publications: u64,
    pub subscriptions: u64,
    pub expired: u64,
    pub wrong_shard: u64,
    pub unknown_event: u64,
    pub full: u64,
    pub invalid: u64,
}

impl RestoreReport {
    fn refused(&mut self, e: RestoreError) {
        match e {
            RestoreError::Expired => self.expired += 1,
            RestoreError::WrongShard => self.wrong_shard += 1,
            RestoreError::UnknownEvent => self.unknown_event += 1,
            RestoreError::Full => self.full += 1,
            RestoreError::Invalid => self.invalid += 1,
        }
    }
}

/// Hands a loaded partition to the core (`restore_publication` / `restore_subscription`),
/// publications first so subscriptions find their presentity's state. Refused records stay
/// in the store (expired ones go with the next cleanup); the counts are logged.
pub fn restore_into(core: &mut Core, loaded: Loaded, now: Instant) -> RestoreReport {
    let mut rep = RestoreReport::default();
    for p in loaded.publications {
        match core.restore_publication(now, p) {
            Ok(()) => rep.publications += 1,
            Err(e) => rep.refused(e),
        }
    }
    for s in loaded.subscriptions {
        match core.restore_subscription(now, s) {
            Ok(()) => rep.subscriptions += 1,
            Err(e) => rep.refused(e),
        }
    }
    if rep.wrong_shard + rep.unknown_event + rep.full + rep.invalid > 0 {
        tracing::warn!(
            shard = core.shard().0,
            ?rep,
            "some stored records were not restored"
        );
    }
    rep
}
