//! herald's durable state: LMDB (heed) environments holding rkyv records, zero-copy on read.
//!
//! Tables (named after OpenSIPS presence / OpenXCAP): `presentity`, `active_watchers`,
//! `watchers`, `xcap`, `subscriber`, plus `meta` (schema version, shard layout, last log
//! segment checkpointed). See `keys` for the key layout and `records` for values.
//!
//! # Layout: one LMDB environment per shard
//!
//! Data lives in `<data-dir>/shard-NNN/`, one environment per shard, each holding only the
//! records whose owning AoR hashes to that shard (`shard_for`, passed in as a closure so
//! this crate does not depend on the server).
//!
//! Why: LMDB allows one writer per environment, and a durable commit costs an fsync
//! (~0.3–3 ms here). With one shared environment the shards' commits queue behind each other;
//! with one per shard they run and fsync in parallel, and each shard's commits never wait for
//! another shard. Measured with two writer threads doing durable commits on this machine
//! (`cargo run --release -p store --example layout -- <batch> 300`; a shared 2-core machine
//! at load average ~15, so absolute figures are low, the ratio is the point):
//!
//! | puts/commit | one shared env | one env per shard |
//! |-------------|----------------|-------------------|
//! | 1           | ~85 commits/s  | 600–970 commits/s |
//! | 100         | ~7.2k puts/s   | ~29k puts/s       |
//! | 1000        | ~56k puts/s    | ~108k puts/s      |
//!
//! Per-shard environments also keep a shard's restart load local (each executor reads only
//! its own file) and make the map-size limit per shard. The cost: changing `--shards`
//! between runs must move records to their new owner; [`layout::open_shards`] does that on
//! start (copy to the owner, commit, then delete from the source, commit: a crash in the
//! middle leaves duplicates that the next start resolves, never a loss).
//!
//! # Concurrency
//!
//! A [`Store`] is `Send + Sync`. Reads ([`Store::read_txn`]) never block and may run beside
//! the writer, also from another process: the read-only `herald store` commands on a
//! running server open each environment with [`Store::open_read_only`] (no write
//! transaction, no lock but LMDB's reader slot) and read through a [`LiveView`] to see the
//! log's unapplied frames too. [`Store::write`] commits durably and retries after growing
//! the map when LMDB reports MapFull, up to [`StoreOptions::max_map_size`]; beyond it
//! returns [`StoreError::MapFull`]. An admin `cleanup` (a stopped server only) takes the
//! environment's write lock for one short transaction at a time (bounded batch).

pub mod admin;
mod env;
mod error;
#[doc(hidden)]
pub mod fuzz_checks;
pub mod hash;
pub mod keys;
pub mod layout;
pub mod live;
mod migrate;
pub mod records;
mod tables;
pub mod wal;
mod xcap_docs;

pub use env::{ReadTxn, Store, StoreOptions, FREEING_RESERVE_MIN, SCHEMA_VERSION};
pub use error::{Result, StoreError};
pub use heed::{RoTxn, RwTxn};
pub use keys::{
    ExpiringTable, PresentityKey, RecordKey, SubscriberKey, SubscriptionKey, WatcherKey, XcapKey,
};
pub use live::LiveView;
pub use records::*;
pub use tables::{
    decode_record, encode_record, CleanupCounts, Decode, Encode, Entry, Expired, ExpiredScan,
    ExpiringValue, TableCounts, Unreadable,
};
pub use xcap_docs::{XcapExpect, XcapVisitor, XcapWrite, XcapWriteOutcome};
