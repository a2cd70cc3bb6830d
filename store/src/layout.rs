//! The data directory: one environment per shard (`<dir>/shard-NNN`), and redistribution of
//! records when the shard count changes between runs. See the crate docs for why.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::env::{Db, Store, StoreOptions};
use crate::error::{Result, StoreError};
use crate::keys::{PresentityKey, RecordKey, SubscriberKey, SubscriptionKey, WatcherKey, XcapKey};

/// Largest shard count (directory names have three digits).
pub const MAX_SHARDS: u16 = 1000;

/// Records moved per transaction pair while redistributing.
const MOVE_CHUNK: usize = 20_000;

/// Maps an owner AoR (see `RecordKey::owner_aor`) to its shard index in `0..shards`.
/// The server passes `|aor| shard_for(&Aor::parse(aor)?, shards).0`.
pub type ShardFn<'a> = &'a (dyn Fn(&[u8]) -> u16 + Sync);

/// A running server's hold on its data directory (released when dropped or at exit).
pub struct DataDirLock {
    _file: std::fs::File,
}

/// Locks `data_dir` (creating it) for one server: a second server on the same directory
/// fails here (after [`crate::wal::LOCK_GRACE`]), before it opens, upgrades or
/// redistributes anything, with `StoreError::InvalidArgument` saying the directory is in
/// use. The read-only `herald store` commands never take it
/// (`admin::open_data_dir_read_only`); `herald store cleanup` takes it for its run
/// (`admin::open_data_dir_exclusive`).
pub fn lock_data_dir(data_dir: &Path) -> Result<DataDirLock> {
    std::fs::create_dir_all(data_dir).map_err(crate::wal::io_err(data_dir))?;
    let lock = crate::wal::lock_within_grace(data_dir)?.map(|file| DataDirLock { _file: file });
    lock.ok_or_else(|| {
        StoreError::InvalidArgument(format!(
            "data directory {} is in use by another herald (its LOCK is held)",
            data_dir.display()
        ))
    })
}

/// Takes the existing `data_dir`'s lock without waiting: `None` if a server (or another
/// command holding it) has it.
pub(crate) fn try_lock_data_dir(data_dir: &Path) -> Result<Option<DataDirLock>> {
    Ok(crate::wal::try_lock(data_dir)?.map(|file| DataDirLock { _file: file }))
}

/// Directory of shard `shard`'s environment.
pub fn shard_dir(data_dir: &Path, shard: u16) -> PathBuf {
    data_dir.join(format!("shard-{shard:03}"))
}

/// Shard indexes that have an environment directory under `data_dir`, sorted.
pub fn existing_shards(data_dir: &Path) -> Result<Vec<u16>> {
    let rd = match std::fs::read_dir(data_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StoreError::Io {
                path: data_dir.to_owned(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|source| StoreError::Io {
            path: data_dir.to_owned(),
            source,
        })?;
        let name = entry.file_name();
        let Some(n) = name.to_str().and_then(|s| s.strip_prefix("shard-")) else {
            continue;
        };
        if let Ok(i) = n.parse::<u16>() {
            if entry.path().join("data.mdb").exists() {
                out.push(i);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// What `open_shards` did to the data directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Redistribution {
    /// Shard count recorded before (None: new data directory or mixed after a crash).
    pub previous_shards: Option<u16>,
    /// Records moved to another environment.
    pub moved: u64,
    /// Environment directories removed because their shard no longer exists.
    pub removed: Vec<PathBuf>,
}

/// Opens `shards` environments under `data_dir` (creating them), moving records to their
/// owner first if the directory was written with a different shard count (or a previous
/// move was interrupted). Index `i` of the result is shard `i`'s store.
pub fn open_shards(
    data_dir: &Path,
    shards: u16,
    opts: &StoreOptions,
    owner: ShardFn<'_>,
) -> Result<(Vec<Arc<Store>>, Redistribution)> {
    if shards == 0 || shards > MAX_SHARDS {
        return Err(StoreError::InvalidArgument(format!(
            "shard count {shards} not in 1..={MAX_SHARDS}"
        )));
    }
    let existing = existing_shards(data_dir)?;
    let mut stores: Vec<Arc<Store>> = Vec::with_capacity(shards as usize);
    for i in 0..shards {
        stores.push(Arc::new(Store::open(&shard_dir(data_dir, i), opts)?));
    }
    let mut extras: Vec<(u16, Store)> = Vec::new();
    for &i in existing.iter().filter(|&&i| i >= shards) {
        extras.push((i, Store::open(&shard_dir(data_dir, i), opts)?));
    }

    let mut layouts = Vec::new();
    for s in stores
        .iter()
        .map(|s| &**s)
        .chain(extras.iter().map(|(_, s)| s))
    {
        let r = s.read_txn()?;
        layouts.push(s.shard_layout(&r)?);
    }
    let counts: Vec<u16> = layouts.iter().flatten().map(|&(_, n)| n).collect();
    let previous_shards = match counts.first() {
        Some(&n) if counts.iter().all(|&c| c == n) && n != 0 => Some(n),
        _ => None,
    };
    let needs_move = !extras.is_empty() || counts.iter().any(|&n| n != shards);
    let mut report = Redistribution {
        previous_shards,
        ..Default::default()
    };

    if needs_move {
        // Mark every environment "moving" first, so an interrupted move is redone on the next
        // start whatever shard count that start uses.
        for (i, s) in stores.iter().map(|s| &**s).enumerate() {
            s.write(|s, w| s.set_shard_layout(w, i as u16, 0))?;
        }
        for (i, s) in &extras {
            s.write(|s, w| s.set_shard_layout(w, *i, 0))?;
        }
        let all: Vec<(u16, &Store)> = stores
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u16, &**s))
            .chain(extras.iter().map(|(i, s)| (*i, s)))
            .collect();
        for &(idx, src) in &all {
            for table in Table::ALL {
                report.moved += move_misplaced(src, idx, table, &stores, shards, owner)?;
            }
        }
        for (i, (_, s)) in extras.iter().enumerate() {
            let r = s.read_txn()?;
            let c = s.counts(&r)?;
            let left = c.presentity + c.active_watchers + c.watchers + c.xcap + c.subscriber;
            if left != 0 {
                return Err(StoreError::InvalidArgument(format!(
                    "redistribution left {left} records in {} (extra #{i})",
                    s.path().display()
                )));
            }
        }
        for (_, s) in extras.drain(..) {
            let path = s.path().to_owned();
            drop(s);
            std::fs::remove_dir_all(&path).map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
            report.removed.push(path);
        }
    }
    for (i, s) in stores.iter().enumerate() {
        if layouts[i] != Some((i as u16, shards)) || needs_move {
            s.write(|s, w| s.set_shard_layout(w, i as u16, shards))?;
        }
    }
    Ok((stores, report))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Table {
    Presentity,
    ActiveWatchers,
    Watchers,
    Xcap,
    Subscriber,
}

impl Table {
    const ALL: [Table; 5] = [
        Table::Presentity,
        Table::ActiveWatchers,
        Table::Watchers,
        Table::Xcap,
        Table::Subscriber,
    ];

    fn db(self, s: &Store) -> Db {
        match self {
            Table::Presentity => s.presentity,
            Table::ActiveWatchers => s.active_watchers,
            Table::Watchers => s.watchers,
            Table::Xcap => s.xcap,
            Table::Subscriber => s.subscriber,
        }
    }

    fn owner_aor(self, key: &[u8]) -> Option<Vec<u8>> {
        Some(match self {
            Table::Presentity => PresentityKey::decode(key)?.owner_aor().into_owned(),
            Table::ActiveWatchers => SubscriptionKey::decode(key)?.owner_aor().into_owned(),
            Table::Watchers => WatcherKey::decode(key)?.owner_aor().into_owned(),
            Table::Xcap => XcapKey::decode(key)?.owner_aor().into_owned(),
            Table::Subscriber => SubscriberKey::decode(key)?.owner_aor().into_owned(),
        })
    }
}

/// One record to move: (destination shard, key, raw value).
type Move = (u16, Vec<u8>, Vec<u8>);

/// Moves every record of `table` in `src` (shard `idx`) whose owner is another shard.
/// Copies to the owners and commits before deleting from the source.
fn move_misplaced(
    src: &Store,
    idx: u16,
    table: Table,
    dests: &[Arc<Store>],
    shards: u16,
    owner: ShardFn<'_>,
) -> Result<u64> {
    let db = table.db(src);
    let mut moved = 0u64;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let mut batch: Vec<Move> = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        {
            let r = src.read_txn()?;
            let lower = match &after {
                Some(k) => Bound::Excluded(k.as_slice()),
                None => Bound::Unbounded,
            };
            let range = (lower, Bound::<&[u8]>::Unbounded);
            for item in db.range(&r, &range).map_err(|e| src.lmdb(e))? {
                let (k, v) = item.map_err(|e| src.lmdb(e))?;
                last = Some(k.to_vec());
                // A malformed key names no owner: the record stays where it is (the server
                // skips it when it loads, `herald store check` names it), rather than one
                // damaged key keeping every shard from starting.
                let Some(aor) = table.owner_aor(k) else {
                    continue;
                };
                let to = owner(&aor);
                if to >= shards {
                    return Err(StoreError::InvalidArgument(format!(
                        "shard function returned {to} for {shards} shards"
                    )));
                }
                if to != idx {
                    batch.push((to, k.to_vec(), v.to_vec()));
                }
                if batch.len() >= MOVE_CHUNK {
                    break;
                }
            }
        }
        if !batch.is_empty() {
            for (d, dest) in dests.iter().enumerate() {
                if !batch.iter().any(|m| m.0 as usize == d) {
                    continue;
                }
                dest.write(|s, w| {
                    // A copy left by an interrupted earlier move is overwritten.
                    for (_, k, v) in batch.iter().filter(|m| m.0 as usize == d) {
                        table.db(s).put(w, k, v).map_err(|e| s.lmdb(e))?;
                    }
                    Ok(())
                })?;
            }
            src.write(|s, w| {
                for (_, k, _) in &batch {
                    table.db(s).delete(w, k).map_err(|e| s.lmdb(e))?;
                }
                Ok(())
            })?;
            moved += batch.len() as u64;
        }
        match last {
            None => return Ok(moved),
            Some(k) => after = Some(k),
        }
    }
}
