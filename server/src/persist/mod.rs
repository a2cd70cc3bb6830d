//! Persistence driver: the glommio side of issue 4 ("nothing acknowledged is ever lost").
//!
//! The sans-IO core emits numbered [`PersistOp`](crate::core::PersistOp)s; the [`Driver`]
//! (one per shard, a task on the shard's executor) drains them and makes them durable on
//! glommio's blocking thread pool, so the executor keeps serving while the flush runs
//! (group commit: ops produced meanwhile form the next batch), then tells the core
//! `handle_persisted(now, last_seq)`, which releases the held 2xx responses. In sync mode a
//! batch is one append to the shard's write-ahead log (`wal_commit`), which a checkpoint
//! thread later applies to LMDB; periodic mode commits batches to LMDB directly.
//!
//! On start, [`open_data_dir`] opens one environment per shard (redistributing records if
//! `--shards` changed) and [`load_shard`] reads a shard's partition back (dropping what
//! expired while the server was down) as core records for the core's restore functions.

pub(crate) mod convert;
mod driver;
mod durability;
mod load;
mod wal_commit;

pub use convert::{dialog_id, publication_to_store, subscription_to_store};
pub use driver::{
    commit_batch, Driver, DriverStats, Kick, PersistCore, COMMIT_BUCKETS_US, MAX_BATCH,
};
pub use durability::{Durability, ParseDurabilityError};
pub use load::{load_shard, open_data_dir, owner_fn, restore_into, Loaded, RestoreReport};
pub use store::{Store, StoreError, StoreOptions};

#[cfg(test)]
mod tests;
