//! One LMDB environment (one shard's data): opening, schema check, typed table handles,
//! map growth and the transaction entry points.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};

use crate::error::{is_mdb_map_full, is_mdb_map_resized, Result, StoreError};
use crate::wal::WalKey;

/// Schema of the stored records and keys. Bump on any incompatible change of `records` or
/// `keys`, with an upgrade in `migrate` from the previous version; opening a data directory
/// of a version we cannot upgrade fails with `SchemaMismatch`.
pub const SCHEMA_VERSION: u32 = 3;

/// Smallest room beyond the maximum map size that deleting transactions may use
/// ([`Store::write_freeing`]).
pub const FREEING_RESERVE_MIN: usize = 256 << 10;

/// Least time between two scans of LMDB's reader table for slots of dead processes
/// ([`Store::clear_stale_readers`]), done by writes. A `herald store list` killed with
/// `kill -9` leaves its slot behind, holding the snapshot it read: every page freed since
/// could never be reused and the map would fill up. LMDB only clears such slots when asked.
pub const STALE_READER_CHECK: Duration = Duration::from_secs(10);

/// Map sizes are kept a multiple of this (a multiple of every common page size).
const MAP_GRANULE: usize = 64 << 10;

pub(crate) type Db = Database<'static, Bytes, Bytes>;

/// The tables of every environment, in the order of the `Store` fields (`open` creates
/// them all; schema 1 had these too, plus its expiry index).
const TABLES: [&str; 6] = [
    "presentity",
    "active_watchers",
    "watchers",
    "xcap",
    "subscriber",
    "meta",
];

/// Sizing of one environment.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Map size on first open; doubles on demand (MapFull ⇒ grow and retry).
    pub initial_map_size: usize,
    /// Upper limit of the map size; reaching it gives `StoreError::MapFull`.
    pub max_map_size: usize,
    /// LMDB reader slots (readers are short: one per load, admin command or XCAP GET).
    pub max_readers: u32,
    /// Tests and benches only: commits skip fsync (`MDB_NOSYNC`). A killed process still
    /// loses nothing (the data is in the page cache), an OS crash can. Never in production.
    pub no_sync: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            initial_map_size: 64 << 20,
            max_map_size: 16 << 30,
            max_readers: 126,
            no_sync: false,
        }
    }
}

/// One LMDB environment with its tables. `Send + Sync`: share it with `Arc` between the shard
/// executor and the blocking thread that commits.
pub struct Store {
    pub(crate) env: Env<WithoutTls>,
    pub(crate) path: PathBuf,
    max_map_size: usize,
    /// Commits flush only data pages (NO_META_SYNC): `write` adds the meta flush.
    meta_sync_deferred: bool,
    /// Opened with [`Store::open_read_only`].
    read_only: bool,
    /// Schema version this environment was upgraded from when it was opened.
    upgraded_from: Option<u32>,
    /// Write-ahead log ops replayed into LMDB when this environment was opened.
    replayed: crate::wal::Replayed,
    /// Held shared by every transaction, exclusively by a map resize: LMDB forbids resizing
    /// while any transaction of this process is open.
    gate: RwLock<()>,
    /// When this handle was opened: the origin of `reader_check_ms`.
    opened: Instant,
    /// Milliseconds after `opened` of the last stale-reader scan.
    reader_check_ms: AtomicU64,
    /// Reader slots of dead processes cleared so far.
    stale_readers_cleared: AtomicU64,
    /// The log's checksum key, once read or created (it never changes after).
    wal_key: std::sync::OnceLock<WalKey>,
    pub(crate) presentity: Db,
    /// Schema 1's expiry index, if this environment has one (emptied by the upgrade).
    pub(crate) v1_expiry: Option<Db>,
    pub(crate) active_watchers: Db,
    pub(crate) watchers: Db,
    pub(crate) xcap: Db,
    pub(crate) subscriber: Db,
    pub(crate) meta: Db,
}

/// A read transaction plus the resize gate. Derefs to heed's `RoTxn`; pass `&txn` to the
/// `Store` functions. Keep it short: it pins old pages and delays a map resize.
pub struct ReadTxn<'s> {
    // Field order matters: the transaction ends before the gate is released.
    txn: RoTxn<'s, WithoutTls>,
    _gate: RwLockReadGuard<'s, ()>,
}

impl<'s> std::ops::Deref for ReadTxn<'s> {
    type Target = RoTxn<'s, WithoutTls>;
    fn deref(&self) -> &Self::Target {
        &self.txn
    }
}

fn round_map(size: usize) -> usize {
    size.div_ceil(MAP_GRANULE).max(1) * MAP_GRANULE
}

impl Store {
    /// Opens (creating if needed) the environment in directory `path`.
    pub fn open(path: &Path, opts: &StoreOptions) -> Result<Store> {
        let io = |source| StoreError::Io {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(path).map_err(io)?;
        let max_map_size = round_map(opts.max_map_size);
        let initial = round_map(opts.initial_map_size).min(max_map_size);
        let mut eo = EnvOpenOptions::new().read_txn_without_tls();
        eo.map_size(initial)
            .max_dbs(8)
            .max_readers(opts.max_readers);
        if opts.no_sync {
            // SAFETY: NO_SYNC only weakens durability against OS crashes (documented above).
            unsafe { eo.flags(heed::EnvFlags::NO_SYNC) };
        } else {
            // SAFETY: NO_META_SYNC keeps LMDB's integrity (data pages are synced before the
            // meta page is written); only the meta page's flush is left to us: `write`
            // flushes it before returning, `write_deferred` leaves it to the next commit's
            // data sync or `sync` (see there).
            unsafe { eo.flags(heed::EnvFlags::NO_META_SYNC) };
        }
        let lmdb = |source| StoreError::Lmdb {
            path: path.to_owned(),
            source,
        };
        // SAFETY: heed requires that the memory map is not modified outside LMDB while open
        // (no truncation by another program); the data directory is herald's own.
        let env = unsafe { eo.open(path) }.map_err(lmdb)?;
        let wtxn = env.write_txn().map_err(lmdb)?;
        let (tables, v1_expiry) = env
            .create_databases_and_commit(wtxn, |o, w| -> heed::Result<_> {
                let legacy = o.open_database::<Bytes, Bytes>(w, Some(crate::migrate::V1_EXPIRY))?;
                let mut tables = Vec::with_capacity(TABLES.len());
                for name in TABLES {
                    tables.push(o.create_database::<Bytes, Bytes>(w, Some(name))?);
                }
                let tables: [Database<'_, Bytes, Bytes>; TABLES.len()] =
                    tables.try_into().expect("one per name");
                Ok(CommitOrAbort::<_, ()>::Commit((tables, legacy)))
            })
            .map_err(lmdb)?
            .unwrap_commit();
        let mut store = Store::assemble(env, path, opts, tables, v1_expiry, false);
        store.meta_sync_deferred = !opts.no_sync;
        store.upgraded_from = store.check_schema()?;
        store.clear_stale_readers()?;
        // Before any log is written or read: from here on the key is in LMDB, so a reader
        // of this environment always finds it.
        store.ensure_wal_key()?;
        store.replayed = store.replay_wal()?;
        Ok(store)
    }

    /// Frees LMDB reader slots whose process died without ending its read transaction
    /// (`mdb_reader_check`), so the pages they pinned can be reused. Returns how many.
    /// Writable opens call it, and writes at most every [`STALE_READER_CHECK`].
    pub fn clear_stale_readers(&self) -> Result<usize> {
        let n = self.env.clear_stale_readers().map_err(|e| self.lmdb(e))?;
        self.stale_readers_cleared
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// Reader slots of dead processes this handle has cleared (for a log line or a stat).
    pub fn stale_readers_cleared(&self) -> u64 {
        self.stale_readers_cleared.load(Ordering::Relaxed)
    }

    /// [`Store::clear_stale_readers`] if the last scan is [`STALE_READER_CHECK`] old. Best
    /// effort: a failed scan fails no write.
    fn clear_stale_readers_now_and_then(&self) {
        let now = self.opened.elapsed().as_millis() as u64;
        let last = self.reader_check_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < STALE_READER_CHECK.as_millis() as u64 {
            return;
        }
        if self
            .reader_check_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            let _ = self.clear_stale_readers();
        }
    }

    /// Opens the existing environment in `path` read-only (`MDB_RDONLY`), for the read-only
    /// `herald store` commands on a running or a stopped server: no write transaction (so
    /// it never waits for the server's writer, e.g. behind a long checkpoint, nor delays
    /// it), no write-ahead log replay and no lock file touched (neither the log's `LOCK` nor
    /// the data directory's), only a reader slot in LMDB's `lock.mdb`, which is how LMDB
    /// readers coexist with a writer in another process. Read through [`Store::live_view`]
    /// to see the log's frames no checkpoint applied yet (all of a crashed server's log).
    /// Writes on the returned store fail.
    ///
    /// `Ok(None)`: the environment has none of its tables yet (the first open that creates
    /// them never committed): it holds nothing. `SchemaMismatch` for a newer schema,
    /// `NeedsUpgrade` for an older one: the upgrade writes, so the server (or
    /// `herald store cleanup`) must open the directory first.
    pub fn open_read_only(path: &Path, opts: &StoreOptions) -> Result<Option<Store>> {
        let io = |source| StoreError::Io {
            path: path.to_owned(),
            source,
        };
        let lmdb = |source| StoreError::Lmdb {
            path: path.to_owned(),
            source,
        };
        // An empty data file: created, never initialised (LMDB would have to write it).
        if std::fs::metadata(path.join("data.mdb")).map_err(io)?.len() == 0 {
            return Ok(None);
        }
        let mut eo = EnvOpenOptions::new().read_txn_without_tls();
        // No map size: LMDB adopts the one the writer recorded; a later growth is adopted
        // on the next read (`read_txn`).
        eo.max_dbs(8).max_readers(opts.max_readers);
        // SAFETY: READ_ONLY only restricts what this handle may do; see `open` for the map.
        unsafe { eo.flags(heed::EnvFlags::READ_ONLY) };
        // SAFETY: as in `open`.
        let env = unsafe { eo.open(path) }.map_err(lmdb)?;
        let mut attempt = 0;
        let rtxn = loop {
            match env.read_txn() {
                Err(e) if is_mdb_map_resized(&e) && attempt < 2 => {
                    attempt += 1;
                    // SAFETY: no transaction of this environment is open.
                    unsafe { env.resize(0) }.map_err(lmdb)?;
                }
                other => break other.map_err(lmdb)?,
            }
        };
        let opened = env
            .open_databases_and_commit(rtxn, |o, r| -> heed::Result<_> {
                let legacy = o.open_database::<Bytes, Bytes>(r, Some(crate::migrate::V1_EXPIRY))?;
                let mut tables = Vec::with_capacity(TABLES.len());
                for name in TABLES {
                    tables.push(o.open_database::<Bytes, Bytes>(r, Some(name))?);
                }
                let tables: [Option<Database<'_, Bytes, Bytes>>; TABLES.len()] =
                    tables.try_into().expect("one per name");
                Ok(CommitOrAbort::<_, ()>::Commit((tables, legacy)))
            })
            .map_err(lmdb)?
            .unwrap_commit();
        let (tables, v1_expiry) = opened;
        let tables = match tables {
            t if t.iter().all(Option::is_none) => return Ok(None),
            t if t.iter().all(Option::is_some) => t.map(|d| d.expect("checked")),
            t => {
                let missing: Vec<&str> = TABLES
                    .iter()
                    .zip(&t)
                    .filter(|(_, d)| d.is_none())
                    .map(|(n, _)| *n)
                    .collect();
                return Err(StoreError::Corrupt {
                    table: "meta",
                    key: String::new(),
                    detail: format!(
                        "{} lacks table(s) {} (every herald environment has all of {TABLES:?})",
                        path.display(),
                        missing.join(", ")
                    ),
                });
            }
        };
        let store = Store::assemble(env, path, opts, tables, v1_expiry, true);
        let found = {
            let r = store.read_txn()?;
            store.meta_u32(&r, META_SCHEMA)?
        };
        match found {
            // None: the tables were created but the version not yet recorded (their first
            // open stopped in between): they are empty, so of this version.
            None => Ok(Some(store)),
            Some(v) if v == SCHEMA_VERSION => Ok(Some(store)),
            Some(found) if found < SCHEMA_VERSION => Err(StoreError::NeedsUpgrade {
                path: path.to_owned(),
                found,
                expected: SCHEMA_VERSION,
            }),
            Some(found) => Err(StoreError::SchemaMismatch {
                path: path.to_owned(),
                found,
                expected: SCHEMA_VERSION,
            }),
        }
    }

    fn assemble(
        env: Env<WithoutTls>,
        path: &Path,
        opts: &StoreOptions,
        tables: [Db; TABLES.len()],
        v1_expiry: Option<Db>,
        read_only: bool,
    ) -> Store {
        let [presentity, active_watchers, watchers, xcap, subscriber, meta] = tables;
        Store {
            env,
            path: path.to_owned(),
            max_map_size: round_map(opts.max_map_size),
            meta_sync_deferred: false,
            read_only,
            gate: RwLock::new(()),
            opened: Instant::now(),
            reader_check_ms: AtomicU64::new(0),
            stale_readers_cleared: AtomicU64::new(0),
            wal_key: std::sync::OnceLock::new(),
            presentity,
            active_watchers,
            watchers,
            xcap,
            subscriber,
            meta,
            v1_expiry,
            upgraded_from: None,
            replayed: crate::wal::Replayed::default(),
        }
    }

    /// Opened with [`Store::open_read_only`]: every write fails.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Checks (or records) the schema version, upgrading an older one in place; returns the
    /// version upgraded from, if any.
    fn check_schema(&self) -> Result<Option<u32>> {
        let found = {
            let r = self.read_txn()?;
            self.meta_u32(&r, META_SCHEMA)?
        };
        match found {
            Some(v) if v == SCHEMA_VERSION => Ok(None),
            Some(old @ (1 | 2)) => self
                .write(|s, w| {
                    if old == 1 {
                        crate::migrate::v1_to_v2(s, w)?;
                    }
                    crate::migrate::v2_to_v3(s, w)?;
                    s.put_meta(w, META_SCHEMA, &SCHEMA_VERSION.to_le_bytes())
                })
                .map(|()| Some(old)),
            Some(found) => Err(StoreError::SchemaMismatch {
                path: self.path.clone(),
                found,
                expected: SCHEMA_VERSION,
            }),
            None => self
                .write(|s, w| s.put_meta(w, META_SCHEMA, &SCHEMA_VERSION.to_le_bytes()))
                .map(|()| None),
        }
    }

    /// The schema version this environment had before `open` upgraded it (None: it was
    /// current or new).
    pub fn upgraded_from(&self) -> Option<u32> {
        self.upgraded_from
    }

    /// Write-ahead log ops (`wal`) a crash had left and `open` replayed into LMDB.
    pub fn replayed_wal_ops(&self) -> u64 {
        self.replayed.ops
    }

    /// Log segments in which that replay skipped damaged frames (disk damage in the middle
    /// of the log; the intact frames after it were replayed). Each is kept beside the log
    /// as `wal/damaged-<segment>.log`.
    pub fn damaged_wal_segments(&self) -> u64 {
        self.replayed.damaged_segments
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn lmdb(&self, source: heed::Error) -> StoreError {
        StoreError::Lmdb {
            path: self.path.clone(),
            source,
        }
    }

    fn gate_read(&self) -> RwLockReadGuard<'_, ()> {
        // A poisoned gate only means another thread panicked while holding it; the unit
        // value it guards cannot be inconsistent.
        self.gate.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a read transaction (never blocks on writers, also not on another process's).
    pub fn read_txn(&self) -> Result<ReadTxn<'_>> {
        for _ in 0..2 {
            let gate = self.gate_read();
            match self.env.read_txn() {
                Ok(txn) => return Ok(ReadTxn { txn, _gate: gate }),
                Err(e) if is_mdb_map_resized(&e) => {
                    drop(gate);
                    self.adopt_map_size()?;
                }
                Err(e) => return Err(self.lmdb(e)),
            }
        }
        Err(self.lmdb(heed::Error::Mdb(heed::MdbError::MapResized)))
    }

    /// Runs `f` in a write transaction and commits it durably (fsync). If the map is full it
    /// aborts, grows the map (up to the maximum) and runs `f` again, so `f` must only act
    /// through the transaction. At the maximum: `StoreError::MapFull`, nothing written.
    ///
    /// Do not call while holding a `ReadTxn` of this store on the same thread.
    pub fn write<R>(&self, f: impl FnMut(&Store, &mut RwTxn<'_>) -> Result<R>) -> Result<R> {
        let r = self.write_deferred(f)?;
        if self.meta_sync_deferred {
            self.sync()?;
        }
        Ok(r)
    }

    /// Like [`Store::write`], but on return the transaction is atomic and its data pages are
    /// on disk while its meta page (what makes it visible after an OS crash) is only
    /// written, not flushed: [`Store::write`] adds that flush ([`Store::sync`]). A crash of
    /// the process alone loses nothing; an OS crash may lose this last transaction, never
    /// corrupts.
    fn write_deferred<R>(
        &self,
        mut f: impl FnMut(&Store, &mut RwTxn<'_>) -> Result<R>,
    ) -> Result<R> {
        if self.read_only {
            return Err(StoreError::InvalidArgument(format!(
                "{} was opened read-only: no writes",
                self.path.display()
            )));
        }
        self.clear_stale_readers_now_and_then();
        loop {
            let gate = self.gate_read();
            let mut txn = match self.env.write_txn() {
                Ok(t) => t,
                Err(e) if is_mdb_map_resized(&e) => {
                    drop(gate);
                    self.adopt_map_size()?;
                    continue;
                }
                Err(e) => return Err(self.lmdb(e)),
            };
            let res = f(self, &mut txn);
            let res = match res {
                Ok(r) => txn.commit().map(|()| r).map_err(|e| self.lmdb(e)),
                Err(e) => {
                    drop(txn);
                    Err(e)
                }
            };
            drop(gate);
            match res {
                Err(StoreError::Lmdb { source, .. }) if is_mdb_map_full(&source) => self.grow()?,
                other => return other,
            }
        }
    }

    /// Flushes everything committed so far to disk (also with `no_sync`): makes the
    /// transactions of [`Store::write_deferred`] durable, or a bulk load written with
    /// `no_sync`.
    pub fn sync(&self) -> Result<()> {
        self.env.force_sync().map_err(|e| self.lmdb(e))
    }

    /// Like [`Store::write`] for a transaction that frees space (deletes): if the map is full
    /// at its maximum, it may use a reserve beyond it (a sixteenth of the maximum, at least
    /// [`FREEING_RESERVE_MIN`]), because in a completely full map even a delete cannot
    /// copy the pages it changes. The map is then set back to the maximum (LMDB keeps what
    /// is in use), so later puts reuse the freed pages and the limit holds within the reserve.
    pub fn write_freeing<R>(
        &self,
        mut f: impl FnMut(&Store, &mut RwTxn<'_>) -> Result<R>,
    ) -> Result<R> {
        match self.write(&mut f) {
            Err(StoreError::MapFull { .. }) => {
                let reserve = (self.max_map_size / 16).max(FREEING_RESERVE_MIN);
                self.resize_to(round_map(self.max_map_size + reserve))?;
                let r = self.write(&mut f);
                self.resize_to(self.max_map_size)?;
                r
            }
            other => other,
        }
    }

    fn resize_to(&self, size: usize) -> Result<()> {
        let _excl = self.gate.write().unwrap_or_else(|p| p.into_inner());
        // SAFETY: the exclusive gate guarantees no transaction of this process is open;
        // LMDB rounds a size below what is in use up to it.
        unsafe { self.env.resize(size) }.map_err(|e| self.lmdb(e))
    }

    /// Current map size in bytes.
    pub fn map_size(&self) -> usize {
        self.env.info().map_size
    }

    pub fn max_map_size(&self) -> usize {
        self.max_map_size
    }

    fn grow(&self) -> Result<()> {
        let _excl = self.gate.write().unwrap_or_else(|p| p.into_inner());
        let cur = self.env.info().map_size;
        if cur >= self.max_map_size {
            return Err(StoreError::MapFull {
                path: self.path.clone(),
                max_map_size: self.max_map_size,
            });
        }
        let new = round_map(cur.saturating_mul(2)).min(self.max_map_size);
        // SAFETY: the exclusive gate guarantees no transaction of this process is open.
        unsafe { self.env.resize(new) }.map_err(|e| self.lmdb(e))
    }

    /// Another process grew the map: adopt its size (LMDB: set_mapsize(0)).
    fn adopt_map_size(&self) -> Result<()> {
        let _excl = self.gate.write().unwrap_or_else(|p| p.into_inner());
        // SAFETY: as in `grow`.
        unsafe { self.env.resize(0) }.map_err(|e| self.lmdb(e))
    }

    // ---- meta ----

    /// A fixed-width meta value (`N` bytes), `None` if absent.
    fn meta_fixed<const N: usize>(&self, txn: &RoTxn, key: &str) -> Result<Option<[u8; N]>> {
        let v = self
            .meta
            .get(txn, key.as_bytes())
            .map_err(|e| self.lmdb(e))?;
        v.map(|b| {
            b.try_into().map_err(|_| StoreError::Corrupt {
                table: "meta",
                key: key.to_owned(),
                detail: format!("expected {N} bytes, found {}", b.len()),
            })
        })
        .transpose()
    }

    pub(crate) fn meta_u32(&self, txn: &RoTxn, key: &str) -> Result<Option<u32>> {
        Ok(self.meta_fixed(txn, key)?.map(u32::from_le_bytes))
    }

    /// The last write-ahead log segment whose every frame this transaction's LMDB state
    /// reflects (0: none recorded). A checkpoint records it in the transaction that applies
    /// the segments, so a reader knows which frames of the log are news to its snapshot
    /// (see `live`).
    pub fn wal_checkpointed_through(&self, txn: &RoTxn) -> Result<u64> {
        Ok(self
            .meta_fixed(txn, META_WAL_THROUGH)?
            .map_or(0, u64::from_le_bytes))
    }

    /// Records that LMDB now reflects the log up to segment `seg` (never moves back).
    pub(crate) fn set_wal_checkpointed_through(&self, txn: &mut RwTxn, seg: u64) -> Result<()> {
        if self.wal_checkpointed_through(txn)? < seg {
            self.put_meta(txn, META_WAL_THROUGH, &seg.to_le_bytes())?;
        }
        Ok(())
    }

    /// The write-ahead log's checksum key (`None`: no writable open created one yet, so
    /// there is no keyed log either).
    pub fn wal_key(&self) -> Result<Option<WalKey>> {
        if let Some(k) = self.wal_key.get() {
            return Ok(Some(*k));
        }
        self.wal_key_in(&*self.read_txn()?)
    }

    /// [`Store::wal_key`] as `txn` sees it (for a caller already holding a transaction).
    pub(crate) fn wal_key_in(&self, txn: &RoTxn) -> Result<Option<WalKey>> {
        if let Some(k) = self.wal_key.get() {
            return Ok(Some(*k));
        }
        let found = self
            .meta_fixed::<16>(txn, META_WAL_KEY)?
            .map(WalKey::from_bytes);
        if let Some(k) = found {
            let _ = self.wal_key.set(k);
        }
        Ok(found)
    }

    /// The log's key, created (random, committed durably) if this environment has none.
    pub(crate) fn ensure_wal_key(&self) -> Result<WalKey> {
        if let Some(k) = self.wal_key()? {
            return Ok(k);
        }
        let fresh = WalKey::random().map_err(|source| StoreError::Io {
            path: self.path.clone(),
            source,
        })?;
        // Through the freeing reserve: a store upgraded while its map is full at the maximum
        // must still get its 16 bytes, or no server could start on it.
        let key = self.write_freeing(|s, w| match s.meta_fixed::<16>(w, META_WAL_KEY)? {
            Some(k) => Ok(WalKey::from_bytes(k)),
            None => {
                s.put_meta(w, META_WAL_KEY, fresh.as_bytes())?;
                Ok(fresh)
            }
        })?;
        let _ = self.wal_key.set(key);
        Ok(key)
    }

    pub(crate) fn put_meta(&self, txn: &mut RwTxn, key: &str, value: &[u8]) -> Result<()> {
        self.meta
            .put(txn, key.as_bytes(), value)
            .map_err(|e| self.lmdb(e))
    }

    /// Overwrites the recorded schema version (tests of the mismatch path only).
    #[doc(hidden)]
    pub fn debug_set_schema(&self, txn: &mut RwTxn, version: u32) -> Result<()> {
        self.put_meta(txn, META_SCHEMA, &version.to_le_bytes())
    }

    /// The shard layout recorded in this environment: `(shard index, shard count)`.
    pub fn shard_layout(&self, txn: &RoTxn) -> Result<Option<(u16, u16)>> {
        let shard = self.meta_u32(txn, META_SHARD)?;
        let shards = self.meta_u32(txn, META_SHARDS)?;
        Ok(match (shard, shards) {
            (Some(a), Some(b)) => Some((a as u16, b as u16)),
            _ => None,
        })
    }

    pub(crate) fn set_shard_layout(&self, txn: &mut RwTxn, shard: u16, shards: u16) -> Result<()> {
        self.put_meta(txn, META_SHARD, &u32::from(shard).to_le_bytes())?;
        self.put_meta(txn, META_SHARDS, &u32::from(shards).to_le_bytes())
    }
}

pub(crate) const META_SCHEMA: &str = "schema_version";
const META_SHARD: &str = "shard";
const META_SHARDS: &str = "shards";
/// 16 bytes: see [`Store::wal_key`].
const META_WAL_KEY: &str = "wal_key";
/// `u64` LE: see [`Store::wal_checkpointed_through`].
const META_WAL_THROUGH: &str = "wal_checkpointed_through";
