//! Write-ahead log of one environment: what makes `--durability sync` cheap.
//!
//! Why: a durable LMDB commit flushes every B-tree page the transaction dirtied, and a
//! batch of PUBLISH modifications dirties one random leaf per publication. On this
//! machine's disk a flush of 256 random 4 KiB pages takes ~9 ms, of the same amount written
//! sequentially ~0.4–1.7 ms. So a sync-mode batch is appended to a log file and flushed
//! (`fdatasync`): sequential, one flush, then its replies go out. The B-tree catches up in
//! checkpoints ([`Store::checkpoint`]): many batches, deduplicated by key (a presentity
//! modified ten times in a second is written once), in one durable transaction, after
//! which the log segments it covered are deleted.
//!
//! Layout: `<env>/wal/LOCK` (held with an exclusive `flock` by the one writer for its
//! lifetime) and segments `<env>/wal/<16 hex digits>.log`, each a sequence of frames
//! `magic u32 | payload length u32 | checksum u32 | payload`. One frame is one
//! batch, so a batch is replayed whole or not at all (a torn last frame is a batch that was
//! never acknowledged). A payload is a sequence of ops: `tag u8 | key length u32 | key`,
//! then for puts `value length u32 | value` (the rkyv bytes LMDB will hold).
//!
//! Retired segments are kept (up to two) and reused for later ones: overwriting blocks a
//! file already has does not change its size or extents, so a flush is a data write without
//! an ext4 journal commit. Each frame's checksum covers its segment number, so frames a
//! reused file still holds from its previous use end the readable log instead of being
//! replayed.
//!
//! The checksum is a CRC-32 keyed with the environment's [`WalKey`], a secret kept in
//! LMDB: a payload holds client bytes (PUBLISH bodies), and a client could spell a whole
//! frame in them, checksum included, if the checksum were computable from public bytes
//! alone. Logs an older herald wrote (unkeyed, [`MAGIC_V1`]) are still read.
//!
//! Every op is an absolute "this key now holds this value / nothing", so replaying ops that
//! a checkpoint had already applied is harmless: [`Store::open`] replays whatever segments
//! exist (when no writer holds the lock), checkpoints them and deletes them.
//! [`Store::open_read_only`] neither replays nor touches the lock: its readers lay the
//! segments over LMDB in memory (`live`).

use std::collections::HashMap;

use crate::hash::seeded_hash;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::env::{Db, Store};
use crate::error::{Result, StoreError};
use crate::keys::{PresentityKey, RecordKey, SubscriptionKey};
use crate::records::{ArchivedPresentityRecord, ArchivedSubscriptionRecord};
use crate::tables::{encode_into, ExpiringValue};

/// Frame marker of keyed frames ("HWK2"): a frame that does not start with its segment's
/// marker ends the readable log.
const MAGIC: u32 = 0x4857_4b32;
/// Frame marker ("HWAL") of logs written before checksums were keyed: their checksum is a
/// CRC-32 of the segment number and payload. Read (a log an older herald left at a crash),
/// never written.
const MAGIC_V1: u32 = 0x4857_414c;
const FRAME_HEADER: usize = 12;
/// Largest frame accepted on replay (a batch is at most a few MiB; anything bigger is a
/// damaged length field).
pub const MAX_FRAME: usize = 256 << 20;

const TAG_PUT_PRESENTITY: u8 = 1;
const TAG_DEL_PRESENTITY: u8 = 2;
const TAG_PUT_SUBSCRIPTION: u8 = 3;
const TAG_DEL_SUBSCRIPTION: u8 = 4;

/// The secret one environment's log frames are checksummed with: 16 random bytes, created
/// with the environment's first writable open and kept in its LMDB meta table (see
/// [`Store::wal_key`]). Never leaves the data directory, so no client can compute the
/// checksum of bytes it sends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct WalKey([u8; 16]);

impl WalKey {
    /// Tests and fuzz checks: a key from fixed bytes.
    #[doc(hidden)]
    pub const fn from_bytes(bytes: [u8; 16]) -> WalKey {
        WalKey(bytes)
    }

    /// 16 bytes from the kernel's generator (`getrandom`).
    pub(crate) fn random() -> std::io::Result<WalKey> {
        let mut b = [0u8; 16];
        let mut filled = 0;
        while filled < b.len() {
            // SAFETY: writes at most `b.len() - filled` bytes into `b` from `filled`.
            let n =
                unsafe { libc::getrandom(b[filled..].as_mut_ptr().cast(), b.len() - filled, 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
                continue;
            }
            filled += n as usize;
        }
        Ok(WalKey(b))
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl std::fmt::Debug for WalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WalKey(..)")
    }
}

/// How the frames of one segment are checked, from its first frame's marker.
#[derive(Clone, Copy)]
enum Check {
    Keyed(WalKey),
    /// [`MAGIC_V1`] frames.
    Legacy,
}

impl Check {
    fn magic(&self) -> u32 {
        match self {
            Check::Keyed(_) => MAGIC,
            Check::Legacy => MAGIC_V1,
        }
    }

    /// A frame's checksum: over the segment number and the payload, so that frames left
    /// in a recycled file by its previous use (another segment number) never pass as
    /// current; keyed frames also over the key first.
    fn crc(&self, seg_no: u64, payload: &[u8]) -> u32 {
        let mut h = crc32fast::Hasher::new();
        if let Check::Keyed(k) = self {
            h.update(k.as_bytes());
        }
        h.update(&seg_no.to_le_bytes());
        h.update(payload);
        h.finalize()
    }
}

/// The tables a log op can touch (the ones the server's hot path writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WalTable {
    Presentity,
    ActiveWatchers,
}

/// One decoded op, borrowing from a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOp<'a> {
    pub table: WalTable,
    pub key: &'a [u8],
    /// `None`: delete.
    pub value: Option<&'a [u8]>,
}

/// The ops of one batch, encoded (the payload of one frame). Reuse it: `clear` keeps the
/// buffers.
pub struct WalBatch {
    /// The whole frame: room for its header ([`Wal::append`] fills it in), then the ops,
    /// so the frame is written from here without another copy.
    buf: Vec<u8>,
    ops: u32,
    key: Vec<u8>,
    value: rkyv::util::AlignedVec,
}

impl Default for WalBatch {
    fn default() -> WalBatch {
        WalBatch {
            buf: vec![0; FRAME_HEADER],
            ops: 0,
            key: Vec::new(),
            value: Default::default(),
        }
    }
}

impl WalBatch {
    pub fn new() -> WalBatch {
        WalBatch::default()
    }

    pub fn clear(&mut self) {
        self.buf.truncate(FRAME_HEADER);
        self.ops = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.ops == 0
    }

    /// Ops in the batch.
    pub fn len(&self) -> usize {
        self.ops as usize
    }

    /// The encoded ops.
    pub fn payload(&self) -> &[u8] {
        &self.buf[FRAME_HEADER..]
    }

    /// Fills in the frame header for segment `seg_no` of the log keyed with `key`; returns
    /// the whole frame (what [`Wal::append`] writes).
    pub fn frame(&mut self, seg_no: u64, key: &WalKey) -> &[u8] {
        self.frame_as(seg_no, Check::Keyed(*key))
    }

    /// Tests: the frame as a herald before keyed checksums wrote it.
    #[doc(hidden)]
    pub fn legacy_frame(&mut self, seg_no: u64) -> &[u8] {
        self.frame_as(seg_no, Check::Legacy)
    }

    fn frame_as(&mut self, seg_no: u64, check: Check) -> &[u8] {
        let payload = &self.buf[FRAME_HEADER..];
        assert!(payload.len() <= MAX_FRAME, "log frame over MAX_FRAME");
        let (len, crc) = (payload.len() as u32, check.crc(seg_no, payload));
        self.buf[0..4].copy_from_slice(&check.magic().to_le_bytes());
        self.buf[4..8].copy_from_slice(&len.to_le_bytes());
        self.buf[8..12].copy_from_slice(&crc.to_le_bytes());
        &self.buf
    }

    fn op(&mut self, tag: u8, with_value: bool) {
        self.buf.push(tag);
        self.buf
            .extend_from_slice(&(self.key.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&self.key);
        if with_value {
            self.buf
                .extend_from_slice(&(self.value.len() as u32).to_le_bytes());
            self.buf.extend_from_slice(&self.value);
        }
        self.ops += 1;
    }

    fn put<'k, K: RecordKey<'k>, V: crate::tables::Encode>(
        &mut self,
        tag: u8,
        key: &K,
        rec: &V,
    ) -> Result<()> {
        key.encode(&mut self.key)?;
        self.value = encode_into(rec, std::mem::take(&mut self.value));
        self.op(tag, true);
        Ok(())
    }

    fn delete<'k, K: RecordKey<'k>>(&mut self, tag: u8, key: &K) -> Result<()> {
        key.encode(&mut self.key)?;
        self.op(tag, false);
        Ok(())
    }

    pub fn put_presentity(
        &mut self,
        key: PresentityKey<'_>,
        rec: &impl ExpiringValue<ArchivedPresentityRecord>,
    ) -> Result<()> {
        self.put(TAG_PUT_PRESENTITY, &key, rec)
    }

    pub fn delete_presentity(&mut self, key: PresentityKey<'_>) -> Result<()> {
        self.delete(TAG_DEL_PRESENTITY, &key)
    }

    pub fn put_subscription(
        &mut self,
        key: SubscriptionKey<'_>,
        rec: &impl ExpiringValue<ArchivedSubscriptionRecord>,
    ) -> Result<()> {
        self.put(TAG_PUT_SUBSCRIPTION, &key, rec)
    }

    pub fn delete_subscription(&mut self, key: SubscriptionKey<'_>) -> Result<()> {
        self.delete(TAG_DEL_SUBSCRIPTION, &key)
    }
}

/// Iterates the ops of one or more concatenated payloads. Stops (returning an error) at
/// the first malformed op: payloads come from frames whose checksum matched, so that is a
/// bug or a foreign file, never a torn write.
pub struct WalOps<'a> {
    rest: &'a [u8],
}

/// The ops of `payloads` (any concatenation of [`WalBatch::payload`]s).
pub fn ops(payloads: &[u8]) -> WalOps<'_> {
    WalOps { rest: payloads }
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (a, b) = rest.split_at(n);
    *rest = b;
    Some(a)
}

fn take_len(rest: &mut &[u8]) -> Option<usize> {
    let b = take(rest, 4)?;
    Some(u32::from_le_bytes(b.try_into().ok()?) as usize)
}

impl<'a> Iterator for WalOps<'a> {
    type Item = Result<WalOp<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let mut r = self.rest;
        let parsed = (|| {
            let tag = take(&mut r, 1)?[0];
            let (table, put) = match tag {
                TAG_PUT_PRESENTITY => (WalTable::Presentity, true),
                TAG_DEL_PRESENTITY => (WalTable::Presentity, false),
                TAG_PUT_SUBSCRIPTION => (WalTable::ActiveWatchers, true),
                TAG_DEL_SUBSCRIPTION => (WalTable::ActiveWatchers, false),
                _ => return None,
            };
            let kl = take_len(&mut r)?;
            let key = take(&mut r, kl)?;
            let value = if put {
                let vl = take_len(&mut r)?;
                Some(take(&mut r, vl)?)
            } else {
                None
            };
            Some(WalOp { table, key, value })
        })();
        match parsed {
            Some(op) => {
                self.rest = r;
                Some(Ok(op))
            }
            None => {
                self.rest = &[];
                Some(Err(StoreError::Corrupt {
                    table: "wal",
                    key: String::new(),
                    detail: "malformed op in a checksummed log frame".into(),
                }))
            }
        }
    }
}

/// The last op on `key` of `table` in `payloads`: `Some(Some(value))` put, `Some(None)`
/// deleted, `None` not in the log (look in LMDB).
pub fn find_last<'a>(payloads: &'a [u8], table: WalTable, key: &[u8]) -> Option<Option<&'a [u8]>> {
    let mut found = None;
    for op in ops(payloads).map_while(|r| r.ok()) {
        if op.table == table && op.key == key {
            found = Some(op.value);
        }
    }
    found
}

/// The expiry of a subscription dialog value as the log holds it (`None`: not a valid
/// record).
pub fn subscription_expiry(value: &[u8]) -> Option<crate::records::UnixMillis> {
    crate::tables::decode::<ArchivedSubscriptionRecord>("active_watchers", b"", value)
        .ok()
        .map(|r| r.expires_at.get())
}

/// What one checkpoint did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckpointReport {
    /// Ops read from the log.
    pub ops: u64,
    /// Distinct keys written or deleted (after deduplication).
    pub keys: u64,
    /// The map was full at its maximum: the checkpoint used the reserve beyond it
    /// (`Store::write_freeing`). New puts should be refused until space returns.
    pub used_reserve: bool,
}

/// Hashes the checkpoint's keys (one hash per logged op) with [`seeded_hash`]. Why not
/// std's SipHash: it was about a sixth of a checkpoint's CPU on PUBLISH load, keys being
/// tens of bytes. Seeded per checkpoint from the OS's randomness: keys carry AoRs chosen by
/// peers, who must not be able to aim collisions.
#[derive(Clone, Copy)]
struct KeyHashBuild(u64);

impl KeyHashBuild {
    fn new() -> KeyHashBuild {
        use std::hash::BuildHasher;
        KeyHashBuild(std::collections::hash_map::RandomState::new().hash_one(0u8))
    }
}

impl std::hash::BuildHasher for KeyHashBuild {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(self.0)
    }
}

/// Chains [`seeded_hash`] over the parts a key's `Hash` writes (table, length, bytes).
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = seeded_hash(self.0, &[bytes]);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl Store {
    fn wal_db(&self, t: WalTable) -> Db {
        match t {
            WalTable::Presentity => self.presentity,
            WalTable::ActiveWatchers => self.active_watchers,
        }
    }

    /// Applies `payloads` (log ops, oldest first) in one durable transaction: each key gets
    /// its last op only, deletes first (they free pages the puts then reuse). At the
    /// maximum map size it retries with the reserve beyond it (the ops were acknowledged
    /// already: refusing them is not an option) and says so in the report.
    /// `StoreError::MapFull` if even that does not fit; nothing is applied then, and the
    /// caller keeps the log.
    ///
    /// `through`: `payloads` are every frame of the segments up to it that an earlier
    /// checkpoint had not applied. The transaction that applies them records it
    /// ([`Store::wal_checkpointed_through`]), so a reader of a running server's log can
    /// tell which frames its LMDB snapshot already reflects (`live`).
    pub fn checkpoint(&self, payloads: &[u8], through: SealedThrough) -> Result<CheckpointReport> {
        let mut last: HashMap<(WalTable, &[u8]), Option<&[u8]>, KeyHashBuild> =
            HashMap::with_hasher(KeyHashBuild::new());
        let mut n = 0u64;
        for op in ops(payloads) {
            let op = op?;
            n += 1;
            last.insert((op.table, op.key), op.value);
        }
        let mut report = CheckpointReport {
            ops: n,
            keys: last.len() as u64,
            used_reserve: false,
        };
        if last.is_empty() {
            // Nothing to record either: the segments up to `through` hold no frame that
            // LMDB lacks.
            return Ok(report);
        }
        // Key order within each kind: LMDB appends and splits pages best in order.
        let mut deletes: Vec<(WalTable, &[u8])> = Vec::new();
        let mut puts: Vec<(WalTable, &[u8], &[u8])> = Vec::new();
        for ((t, k), v) in last {
            match v {
                None => deletes.push((t, k)),
                Some(v) => puts.push((t, k, v)),
            }
        }
        deletes.sort_unstable_by(|a, b| (a.0 as u8, a.1).cmp(&(b.0 as u8, b.1)));
        puts.sort_unstable_by(|a, b| (a.0 as u8, a.1).cmp(&(b.0 as u8, b.1)));
        let mut apply = |s: &Store, w: &mut heed::RwTxn<'_>| -> Result<()> {
            for &(t, k) in &deletes {
                s.wal_db(t).delete(w, k).map_err(|e| s.lmdb(e))?;
            }
            for table in puts.chunk_by(|a, b| a.0 == b.0) {
                let db = s.wal_db(table[0].0);
                // Keys past the table's last one (new dialogs: their ids grow) go in with
                // MDB_APPEND: no B-tree search, and full pages are left full. Measured: a
                // checkpoint of 20,000 new dialogs in 31% fewer instructions (callgrind on
                // the `store_checkpoint` bench), 100,000 new dialogs in 8% fewer pages.
                let tail = match db.last(w).map_err(|e| s.lmdb(e))? {
                    Some((last, _)) => table.partition_point(|p| p.1 <= last),
                    None => 0,
                };
                let (inner, appended) = table.split_at(tail);
                for &(_, k, v) in inner {
                    db.put(w, k, v).map_err(|e| s.lmdb(e))?;
                }
                for &(_, k, v) in appended {
                    db.put_with_flags(w, heed::PutFlags::APPEND, k, v)
                        .map_err(|e| s.lmdb(e))?;
                }
            }
            s.set_wal_checkpointed_through(w, through.0)
        };
        match self.write(&mut apply) {
            Err(StoreError::MapFull { .. }) => match self.write_freeing(&mut apply) {
                Ok(()) => report.used_reserve = true,
                Err(e @ StoreError::MapFull { .. }) => {
                    // Free what can be freed now; everything is applied again next time
                    // (re-applying these deletes is harmless).
                    self.write_freeing(|s, w| {
                        for &(t, k) in &deletes {
                            s.wal_db(t).delete(w, k).map_err(|e| s.lmdb(e))?;
                        }
                        Ok(())
                    })?;
                    return Err(e);
                }
                Err(e) => return Err(e),
            },
            other => other?,
        }
        Ok(report)
    }

    /// Bytes of the map in use by records and the B-trees (leaf, branch and overflow pages
    /// of every table; free pages excluded): what the map-full logic compares with the
    /// maximum to decide that space came back.
    pub fn used_bytes(&self) -> Result<u64> {
        let r = self.read_txn()?;
        let mut pages = 0u64;
        let mut page_size = 4096u64;
        for db in [
            self.presentity,
            self.active_watchers,
            self.watchers,
            self.xcap,
            self.subscriber,
            self.meta,
        ] {
            let st = db.stat(&r).map_err(|e| self.lmdb(e))?;
            pages += (st.branch_pages + st.leaf_pages + st.overflow_pages) as u64;
            page_size = u64::from(st.page_size);
        }
        Ok(pages * page_size)
    }

    /// Replays the log segments of this environment, if no writer holds the log (a running
    /// server), into LMDB, then deletes them (keeping those with damaged frames). Called by
    /// [`Store::open`].
    pub(crate) fn replay_wal(&self) -> Result<Replayed> {
        let dir = wal_dir(&self.path);
        if !dir.exists() {
            return Ok(Replayed::default());
        }
        let Some(_lock) = try_lock(&dir)? else {
            // A live writer: its checkpoints keep LMDB current.
            return Ok(Replayed::default());
        };
        let segs = segments(&dir)?;
        if segs.is_empty() {
            return Ok(Replayed::default());
        }
        let key = self.wal_key()?;
        let mut payloads = Vec::new();
        let mut damaged = Vec::new();
        for (n, path) in &segs {
            if read_segment(path, *n, key.as_ref(), &mut payloads)? > 0 {
                damaged.push(*n);
            }
        }
        let last = segs.last().map_or(0, |(n, _)| *n);
        let report = self.checkpoint(&payloads, SealedThrough(last))?;
        for (n, path) in &segs {
            if damaged.contains(n) {
                // Kept for whoever investigates the disk (nothing reads `damaged-*`).
                let keep = dir.join(format!("{DAMAGED_PREFIX}{n:016x}.log"));
                std::fs::rename(path, &keep).map_err(io_err(path))?;
            } else {
                remove(path)?;
            }
        }
        sync_dir(&dir)?;
        Ok(Replayed {
            ops: report.ops,
            damaged_segments: damaged.len() as u64,
        })
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `<env>/wal`.
pub fn wal_dir(env_path: &Path) -> PathBuf {
    env_path.join("wal")
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016x}.log"))
}

/// The files of a log directory, each list oldest (lowest number) first.
#[derive(Default)]
struct Listing {
    /// Segments: `<16 hex>.log`.
    segments: Vec<(u64, PathBuf)>,
    /// Retired segment files kept for reuse: `free-<16 hex>`, named after the segment
    /// they last were.
    free: Vec<(u64, PathBuf)>,
}

/// Lists `dir` once (segments and free files).
fn list(dir: &Path) -> Result<Listing> {
    let mut out = Listing::default();
    for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let hex = |s: &str| u64::from_str_radix(s, 16).ok();
        if let Some(n) = name.strip_suffix(".log").and_then(hex) {
            out.segments.push((n, e.path()));
        } else if let Some(n) = name.strip_prefix(FREE_PREFIX).and_then(hex) {
            out.free.push((n, e.path()));
        }
    }
    out.segments.sort_unstable();
    out.free.sort_unstable();
    Ok(out)
}

/// Log segments in `dir`, oldest first.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    Ok(list(dir)?.segments)
}

/// The payloads of every complete frame in the log of `store`, oldest first, without
/// replaying or locking anything (what a crash would leave for replay; for tools and
/// tests).
pub fn read_log(store: &Store) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let key = store.wal_key()?;
    match read_log_after(&store.path, 0, key.as_ref(), &mut out)? {
        LogRead::Complete => Ok(out),
        LogRead::Vanished(e) => Err(e),
    }
}

/// How [`read_log_after`] ended.
#[derive(Debug)]
pub(crate) enum LogRead {
    Complete,
    /// A listed segment was gone when opened (the error says which): a checkpoint retired
    /// it meanwhile.
    Vanished(StoreError),
}

/// Appends to `out` the payloads of the complete frames of the segments numbered above
/// `after`, oldest first, without locking or writing anything: safe beside a live writer
/// (a frame being written fails its length or checksum test, like a torn one). `key`: the
/// environment's [`WalKey`], if it has one.
pub(crate) fn read_log_after(
    env_path: &Path,
    after: u64,
    key: Option<&WalKey>,
    out: &mut Vec<u8>,
) -> Result<LogRead> {
    let dir = wal_dir(env_path);
    if !dir.exists() {
        return Ok(LogRead::Complete);
    }
    for (n, path) in segments(&dir)? {
        if n <= after {
            continue;
        }
        match read_segment(&path, n, key, out) {
            Err(e) if is_not_found(&e) => return Ok(LogRead::Vanished(e)),
            other => {
                other?;
            }
        }
    }
    Ok(LogRead::Complete)
}

fn is_not_found(e: &StoreError) -> bool {
    matches!(e, StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// Appends the payloads of the intact frames of segment `seg_no` at `path` to `out`, and
/// returns how many damaged frames it skipped. `key`: the environment's [`WalKey`] (`None`
/// if it has none yet).
///
/// The readable log ends at the first frame that fails its test (magic, length, checksum):
/// a torn last frame (a batch whose flush never completed, so never acknowledged), a frame
/// being written beside a live reader, or what a recycled file held before (its frames
/// carry another segment number, so they never pass). One exception: a frame whose header
/// holds (magic, and a length inside the file) but whose checksum fails, *followed right
/// after that length by an intact frame*, is damage in the middle of the log (a disk
/// fault: appends are flushed in order, so a crash tears only the last one), and the
/// acknowledged batches after it are read on.
///
/// A payload holds client bytes (a PUBLISH body), which could spell a frame of their own.
/// The reader never searches inside a frame for the next one, and where damage to a
/// length field makes it point exactly at such bytes, their checksum fails: it is keyed
/// with a secret the client never saw. Only segments an older herald wrote ([`MAGIC_V1`],
/// unkeyed) keep that residual case; they exist only until the first start after an
/// upgrade replays them.
fn read_segment(path: &Path, seg_no: u64, key: Option<&WalKey>, out: &mut Vec<u8>) -> Result<u64> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_err(path))?;
    Ok(read_frames(&bytes, seg_no, key, out))
}

/// [`read_segment`] on the segment's bytes.
pub(crate) fn read_frames(
    bytes: &[u8],
    seg_no: u64,
    key: Option<&WalKey>,
    out: &mut Vec<u8>,
) -> u64 {
    each_frame(bytes, seg_no, key, |payload| out.extend_from_slice(payload))
}

/// Calls `f` with the payload of every intact frame of segment `seg_no` in `bytes`, in
/// order (see [`read_segment`]); returns how many damaged frames it skipped. A segment of
/// keyed frames read without a key counts as one damaged frame: nothing in it can be
/// trusted, and it must not be deleted as if empty.
pub fn each_frame(
    bytes: &[u8],
    seg_no: u64,
    key: Option<&WalKey>,
    mut f: impl FnMut(&[u8]),
) -> u64 {
    // The first frame's marker says how the whole segment was written (one writer, one
    // version, from offset 0; a recycled file's older frames behind it never pass).
    let check = match (frame_header(bytes, 0, MAGIC), key) {
        (Some(_), Some(k)) => Check::Keyed(*k),
        (Some(_), None) => return 1,
        (None, _) => Check::Legacy,
    };
    let mut pos = 0;
    let mut skipped = 0;
    loop {
        // A missing magic, an impossible length or a frame past the end: the log ends.
        let Some((len, crc)) = frame_header(bytes, pos, check.magic()) else {
            return skipped;
        };
        let end = pos + FRAME_HEADER + len;
        let Some(payload) = bytes.get(pos + FRAME_HEADER..end) else {
            return skipped;
        };
        if check.crc(seg_no, payload) == crc {
            f(payload);
        } else if frame_at(bytes, end, seg_no, check).is_some() {
            skipped += 1;
        } else {
            return skipped;
        }
        pos = end;
    }
}

/// The payload of the intact frame of segment `seg_no` starting at `pos`, if there is one.
fn frame_at(bytes: &[u8], pos: usize, seg_no: u64, check: Check) -> Option<&[u8]> {
    let (len, crc) = frame_header(bytes, pos, check.magic())?;
    let payload = bytes.get(pos + FRAME_HEADER..pos + FRAME_HEADER + len)?;
    (check.crc(seg_no, payload) == crc).then_some(payload)
}

/// Length and checksum of the frame header at `pos`, if it starts with `magic` and its
/// length is one a frame can have.
fn frame_header(bytes: &[u8], pos: usize, magic: u32) -> Option<(usize, u32)> {
    let head = bytes.get(pos..pos.checked_add(FRAME_HEADER)?)?;
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let (found, len, crc) = (word(0), word(4) as usize, word(8));
    (found == magic && len <= MAX_FRAME).then_some((len, crc))
}

/// What [`Store::open`] replayed from a log a crash left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Ops applied to LMDB.
    pub ops: u64,
    /// Segments in which damaged frames were skipped (each kept as `damaged-<n>.log`).
    pub damaged_segments: u64,
}

/// Name prefix of a replayed segment kept because it held damaged frames.
const DAMAGED_PREFIX: &str = "damaged-";

/// Retired segment files kept for reuse (more are deleted).
const MAX_FREE: usize = 2;
const FREE_PREFIX: &str = "free-";

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Takes `<dir>/LOCK` exclusively without waiting: `None` if another process (or another
/// open of it) holds it. The lock lives as long as the returned file.
pub(crate) fn try_lock(dir: &Path) -> Result<Option<File>> {
    let path = dir.join("LOCK");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; the lock lives as long as the returned file.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Some(f));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(None)
    } else {
        Err(io_err(&path)(e))
    }
}

/// How long a lock that is held may take to come free before [`lock_within_grace`] says
/// another process holds it. A `flock` belongs to the open file, and a process forked
/// while we held one (a child spawned by another thread of ours) keeps a copy of the
/// descriptor until its `exec` closes it: for those microseconds (milliseconds on a busy
/// machine) a lock we released still looks taken. A real second server holds it for good.
pub const LOCK_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

/// [`try_lock`], retried for up to [`LOCK_GRACE`]: for the opens that refuse to run beside
/// another writer, so a lock briefly kept by a forked child does not refuse them.
pub(crate) fn lock_within_grace(dir: &Path) -> Result<Option<File>> {
    let start = std::time::Instant::now();
    loop {
        if let Some(f) = try_lock(dir)? {
            return Ok(Some(f));
        }
        if start.elapsed() >= LOCK_GRACE {
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The log writer of one environment. Holds the log's lock while it lives (a second
/// server on the same data directory fails to start instead of corrupting it).
pub struct Wal {
    dir: PathBuf,
    _lock: File,
    key: WalKey,
    seg: File,
    seg_no: u64,
    /// Where the next frame goes in `seg` (segments may be recycled files, longer than
    /// what this segment wrote).
    offset: u64,
    /// The next append starts a new segment (after [`Wal::seal`], or a failed append whose
    /// partial frame must stay the last thing in its segment).
    rotate_first: bool,
}

/// Which segments a checkpoint may delete once it is durable: all up to this one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealedThrough(pub u64);

impl Wal {
    /// Opens the log of `store` for appending (a fresh segment after any existing ones).
    /// Fails with `StoreError::InvalidArgument` if another process holds it (for longer
    /// than [`LOCK_GRACE`]).
    pub fn open(store: &Store) -> Result<Wal> {
        if store.is_read_only() {
            return Err(StoreError::InvalidArgument(format!(
                "{} was opened read-only: no write-ahead log",
                store.path().display()
            )));
        }
        let dir = wal_dir(store.path());
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let lock = lock_within_grace(&dir)?.ok_or_else(|| {
            StoreError::InvalidArgument(format!(
                "{} is in use by another herald (its write-ahead log is locked)",
                store.path().display()
            ))
        })?;
        // Numbers never repeat, also not across runs: a free file still holds frames of the
        // segment it was (its name says which), and reused under that same number those
        // frames would pass their checksums behind the new ones. And they stay above what
        // LMDB records as checkpointed, or a live reader would skip the new segments
        // (`live`).
        let files = list(&dir)?;
        let last = |l: &[(u64, PathBuf)]| l.last().map_or(0, |(n, _)| *n);
        let through = store.wal_checkpointed_through(&*store.read_txn()?)?;
        let next = last(&files.segments).max(last(&files.free)).max(through) + 1;
        let key = store.ensure_wal_key()?;
        let seg = Self::create(&dir, next)?;
        Ok(Wal {
            dir,
            _lock: lock,
            key,
            seg,
            seg_no: next,
            offset: 0,
            rotate_first: false,
        })
    }

    /// Segment `n`: a recycled file if one is free (overwriting blocks a file already has
    /// keeps its size and extents, so `fdatasync` flushes data without a journal commit),
    /// else a new one.
    fn create(dir: &Path, n: u64) -> Result<File> {
        let path = segment_path(dir, n);
        if let Some((_, free)) = list(dir)?.free.pop() {
            std::fs::rename(&free, &path).map_err(io_err(&free))?;
        }
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        sync_dir(dir)?;
        Ok(f)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `batch` as one frame and flushes it (`fdatasync`): when this returns `Ok`
    /// the batch survives a crash of the process or the OS.
    pub fn append(&mut self, batch: &mut WalBatch) -> Result<()> {
        self.rotate_if_sealed()?;
        let frame = batch.frame(self.seg_no, &self.key);
        use std::os::unix::fs::FileExt;
        let res = self
            .seg
            .write_all_at(frame, self.offset)
            .and_then(|()| self.seg.sync_data());
        if let Err(e) = res {
            self.rotate_first = true;
            return Err(io_err(&segment_path(&self.dir, self.seg_no))(e));
        }
        self.offset += frame.len() as u64;
        Ok(())
    }

    fn rotate_if_sealed(&mut self) -> Result<()> {
        if self.rotate_first {
            self.rotate()?;
            self.rotate_first = false;
        }
        Ok(())
    }

    /// Tests: writes the first half of `batch`'s frame where the next append would go, as
    /// a crash in the middle of its write leaves it (never acknowledged).
    #[doc(hidden)]
    pub fn debug_append_torn(&mut self, batch: &mut WalBatch) -> Result<()> {
        self.rotate_if_sealed()?;
        let frame = batch.frame(self.seg_no, &self.key);
        use std::os::unix::fs::FileExt;
        self.seg
            .write_all_at(&frame[..frame.len() / 2], self.offset)
            .map_err(io_err(&segment_path(&self.dir, self.seg_no)))
    }

    /// Ends the current segment: later appends go to a new one, so a checkpoint of every
    /// op appended so far may delete the segments up to the returned one
    /// ([`Wal::remove_through`]).
    pub fn seal(&mut self) -> SealedThrough {
        self.rotate_first = true;
        SealedThrough(self.seg_no)
    }

    fn rotate(&mut self) -> Result<()> {
        self.seg = Self::create(&self.dir, self.seg_no + 1)?;
        self.seg_no += 1;
        self.offset = 0;
        Ok(())
    }

    /// Retires the segments up to `through` (their ops are checkpointed): up to
    /// [`MAX_FREE`] become free files for later segments, the rest are deleted. Needs only
    /// the directory, so the checkpointing thread calls it while the writer appends.
    pub fn remove_through(dir: &Path, through: SealedThrough) -> Result<()> {
        let files = list(dir)?;
        let mut free = files.free.len();
        for (n, path) in files.segments {
            if n > through.0 {
                continue;
            }
            if free < MAX_FREE {
                let to = dir.join(format!("{FREE_PREFIX}{n:016x}"));
                std::fs::rename(&path, &to).map_err(io_err(&path))?;
                free += 1;
            } else {
                remove(&path)?;
            }
        }
        sync_dir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::StoreOptions;
    use crate::records::{PresentityRecord, UnixMillis};

    fn opts() -> StoreOptions {
        StoreOptions {
            initial_map_size: 1 << 20,
            max_map_size: 64 << 20,
            max_readers: 16,
            no_sync: true,
        }
    }

    fn rec(note: &str, exp: u64) -> PresentityRecord {
        PresentityRecord {
            expires_at: UnixMillis(exp),
            received_at: UnixMillis(1),
            order: 1,
            etag: b"e".to_vec(),
            content_type: b"application/pidf+xml".to_vec(),
            body: note.as_bytes().to_vec(),
        }
    }

    fn key<'a>(p: &'a [u8], id: &'a [u8]) -> PresentityKey<'a> {
        PresentityKey {
            presentity: p,
            event: b"presence",
            pub_id: id,
        }
    }

    /// A checkpoint appends the keys past a table's last one (MDB_APPEND) and puts the
    /// others: updates, inserts in the middle, and keys past a last key just deleted.
    #[test]
    fn checkpoint_appends_past_the_last_key_and_puts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let st = Store::open(dir.path(), &opts()).unwrap();
        let pid = |n: u32| format!("p{n:03}");
        let put_all = |ops: &[(u32, Option<&str>)], seg: u64| {
            let mut b = WalBatch::new();
            for &(n, body) in ops {
                let id = pid(n);
                match body {
                    Some(body) => b.put_presentity(key(b"sip:a@x", id.as_bytes()), &rec(body, 10)),
                    None => b.delete_presentity(key(b"sip:a@x", id.as_bytes())),
                }
                .unwrap();
            }
            st.checkpoint(b.payload(), SealedThrough(seg)).unwrap();
        };
        put_all(&[(10, Some("a")), (20, Some("b")), (30, Some("c"))], 1);
        put_all(
            &[
                (5, Some("d")),
                (20, Some("e")),
                (25, Some("f")),
                (30, Some("g")),
                (40, Some("h")),
                (50, Some("i")),
            ],
            2,
        );
        // Delete the last two; 45 then lies past the new last key (30).
        put_all(
            &[(40, None), (50, None), (45, Some("j")), (27, Some("k"))],
            3,
        );
        let r = st.read_txn().unwrap();
        let got: Vec<(String, String)> = st
            .iter_presentities(&r)
            .unwrap()
            .map(|e| {
                let (k, v) = e.unwrap();
                (
                    String::from_utf8(k.pub_id.to_vec()).unwrap(),
                    String::from_utf8(v.body.to_vec()).unwrap(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = [
            (5, "d"),
            (10, "a"),
            (20, "e"),
            (25, "f"),
            (27, "k"),
            (30, "g"),
            (45, "j"),
        ]
        .iter()
        .map(|&(n, b)| (pid(n), b.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn replay_on_open_applies_whole_frames_last_op_wins() {
        let dir = tempfile::tempdir().unwrap();
        {
            let st = Store::open(dir.path(), &opts()).unwrap();
            let mut wal = Wal::open(&st).unwrap();
            let mut b = WalBatch::new();
            b.put_presentity(key(b"sip:a@x", b"e1"), &rec("one", 10))
                .unwrap();
            b.put_presentity(key(b"sip:b@x", b"e2"), &rec("gone", 10))
                .unwrap();
            wal.append(&mut b).unwrap();
            b.clear();
            b.put_presentity(key(b"sip:a@x", b"e1"), &rec("two", 20))
                .unwrap();
            b.delete_presentity(key(b"sip:b@x", b"e2")).unwrap();
            wal.append(&mut b).unwrap();
            wal.seal();
            b.clear();
            b.put_presentity(key(b"sip:c@x", b"e3"), &rec("three", 30))
                .unwrap();
            wal.append(&mut b).unwrap();
            // A torn frame: a batch whose flush never returned.
            b.clear();
            b.put_presentity(key(b"sip:d@x", b"e4"), &rec("torn", 40))
                .unwrap();
            wal.debug_append_torn(&mut b).unwrap();
            assert_eq!(segments(wal.dir()).unwrap().len(), 2);
            // Not replayed while the writer holds the lock.
            drop(st);
            let st2 = Store::open(dir.path(), &opts()).unwrap();
            let r = st2.read_txn().unwrap();
            assert!(st2
                .get_presentity(&r, key(b"sip:a@x", b"e1"))
                .unwrap()
                .is_none());
        }
        let st = Store::open(dir.path(), &opts()).unwrap();
        let r = st.read_txn().unwrap();
        let a = st
            .get_presentity(&r, key(b"sip:a@x", b"e1"))
            .unwrap()
            .unwrap();
        assert_eq!(&a.body[..], b"two");
        assert!(st
            .get_presentity(&r, key(b"sip:b@x", b"e2"))
            .unwrap()
            .is_none());
        assert!(st
            .get_presentity(&r, key(b"sip:c@x", b"e3"))
            .unwrap()
            .is_some());
        assert!(st
            .get_presentity(&r, key(b"sip:d@x", b"e4"))
            .unwrap()
            .is_none());
        assert!(segments(&wal_dir(dir.path())).unwrap().is_empty());
    }

    #[test]
    fn second_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let st = Store::open(dir.path(), &opts()).unwrap();
        let _w = Wal::open(&st).unwrap();
        let e = Wal::open(&st).err().expect("locked");
        assert!(e.to_string().contains("in use by another herald"), "{e}");
    }

    /// A clean restart must not hand a free file its old segment number: its frames would
    /// then be valid behind the new ones and a replay would resurrect them.
    #[test]
    fn segment_numbers_never_repeat_across_runs() {
        let dir = tempfile::tempdir().unwrap();
        let st = Store::open(dir.path(), &opts()).unwrap();
        let mut b = WalBatch::new();
        {
            let mut wal = Wal::open(&st).unwrap();
            for i in 0..5u64 {
                b.clear();
                b.put_presentity(key(b"sip:old@x", b"e1"), &rec("old", i))
                    .unwrap();
                wal.append(&mut b).unwrap();
            }
            let sealed = wal.seal();
            let log = read_log(&st).unwrap();
            st.checkpoint(&log, sealed).unwrap();
            Wal::remove_through(wal.dir(), sealed).unwrap();
        } // clean stop: no segment left, one free file
        {
            let mut wal = Wal::open(&st).unwrap();
            b.clear();
            b.put_presentity(key(b"sip:new@x", b"e2"), &rec("new", 1))
                .unwrap();
            wal.append(&mut b).unwrap();
        } // crash
        let log = read_log(&st).unwrap();
        assert_eq!(ops(&log).count(), 1, "only the new segment's frame");
    }

    #[test]
    fn checkpoint_then_recycle_sealed_segments() {
        let dir = tempfile::tempdir().unwrap();
        let st = Store::open(dir.path(), &opts()).unwrap();
        let mut wal = Wal::open(&st).unwrap();
        let mut b = WalBatch::new();
        b.put_presentity(key(b"sip:a@x", b"e1"), &rec("one", 10))
            .unwrap();
        wal.append(&mut b).unwrap();
        wal.append(&mut b).unwrap();
        let mut pending = b.payload().to_vec();
        pending.extend_from_slice(b.payload());
        let sealed = wal.seal();
        let rep = st.checkpoint(&pending, sealed).unwrap();
        assert_eq!((rep.ops, rep.keys, rep.used_reserve), (2, 1, false));
        Wal::remove_through(wal.dir(), sealed).unwrap();
        assert!(segments(wal.dir()).unwrap().is_empty());
        assert_eq!(list(wal.dir()).unwrap().free.len(), 1);
        // The next segment reuses the retired file: its two old frames stay behind the new
        // one and must not be read as part of the new segment.
        b.clear();
        b.put_presentity(key(b"sip:b@x", b"e2"), &rec("two", 10))
            .unwrap();
        wal.append(&mut b).unwrap();
        assert!(list(wal.dir()).unwrap().free.is_empty());
        let left: Vec<u64> = segments(wal.dir())
            .unwrap()
            .into_iter()
            .map(|s| s.0)
            .collect();
        assert_eq!(left, vec![sealed.0 + 1]);
        let log = read_log(&st).unwrap();
        let keys: Vec<&[u8]> = ops(&log).map(|o| o.unwrap().key).collect();
        assert_eq!(keys, vec![&key(b"sip:b@x", b"e2").to_vec().unwrap()[..]]);
        assert_eq!(
            find_last(
                &log,
                WalTable::Presentity,
                &key(b"sip:b@x", b"e2").to_vec().unwrap()
            )
            .map(|v| v.is_some()),
            Some(true)
        );
    }

    const KEY: WalKey = WalKey::from_bytes(*b"0123456789abcdef");

    /// Frames of `bodies` (one put each) for segment `seg`, concatenated.
    fn frames(seg: u64, bodies: &[&str]) -> Vec<u8> {
        frames_with(bodies, |b| b.frame(seg, &KEY).to_vec())
    }

    /// Frames of `bodies` (one put each) as `frame` writes them, concatenated.
    fn frames_with(bodies: &[&str], frame: impl Fn(&mut WalBatch) -> Vec<u8>) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            let mut b = WalBatch::new();
            let id = format!("e{i}");
            b.put_presentity(key(b"sip:a@x", id.as_bytes()), &rec(body, 10))
                .unwrap();
            out.extend_from_slice(&frame(&mut b));
        }
        out
    }

    fn bodies(payloads: &[u8]) -> Vec<String> {
        ops(payloads)
            .map(|op| {
                let v = op.unwrap().value.unwrap();
                let r = crate::tables::decode::<ArchivedPresentityRecord>("p", b"", v).unwrap();
                String::from_utf8(r.body.to_vec()).unwrap()
            })
            .collect()
    }

    #[test]
    fn damage_in_the_middle_is_skipped_the_frames_after_it_are_read() {
        let whole = frames(7, &["one", "two", "three"]);
        let second = frames(7, &["one"]).len();
        // In a checksum or a payload: that frame is skipped, the ones after it read. In a
        // magic or a length: where the frame ends is unknown, the log ends there (it is
        // never searched for a later frame: client bytes could spell one).
        let cases: [(usize, u64, &[&str]); 4] = [
            (second + 9, 1, &["one", "three"]),
            (second + FRAME_HEADER + 3, 1, &["one", "three"]),
            (second, 0, &["one"]),
            (second + 5, 0, &["one"]),
        ];
        for (at, skipped, read) in cases {
            let mut log = whole.clone();
            log[at] ^= 0x40;
            let mut out = Vec::new();
            let n = read_frames(&log, 7, Some(&KEY), &mut out);
            assert_eq!(n, skipped, "damage at {at}");
            assert_eq!(bodies(&out), read, "damage at {at}");
        }
        // A torn last frame, a recycled file's frames of another segment, zeros: the end.
        let mut log = frames(7, &["one", "two"]);
        log.truncate(log.len() - 3);
        log.extend_from_slice(&frames(3, &["stale", "stale"]));
        log.extend_from_slice(&[0; 64]);
        let mut out = Vec::new();
        assert_eq!(read_frames(&log, 7, Some(&KEY), &mut out), 0);
        assert_eq!(bodies(&out), ["one"]);
    }

    #[test]
    fn replay_skips_a_damaged_frame_and_keeps_its_segment() {
        let dir = tempfile::tempdir().unwrap();
        {
            let st = Store::open(dir.path(), &opts()).unwrap();
            let mut wal = Wal::open(&st).unwrap();
            let mut b = WalBatch::new();
            for (aor, body) in [
                (b"sip:a@x", "one"),
                (b"sip:b@x", "two"),
                (b"sip:c@x", "three"),
            ] {
                b.clear();
                b.put_presentity(key(aor, b"e"), &rec(body, 10)).unwrap();
                wal.append(&mut b).unwrap();
            }
            drop(wal);
        }
        let seg = segments(&wal_dir(dir.path())).unwrap();
        assert_eq!(seg.len(), 1);
        let mut bytes = std::fs::read(&seg[0].1).unwrap();
        // Damage the second frame's payload (its first op's tag).
        let second = bytes
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == MAGIC.to_le_bytes())
            .nth(1)
            .unwrap()
            .0;
        bytes[second + FRAME_HEADER] ^= 0xff;
        std::fs::write(&seg[0].1, &bytes).unwrap();

        let st = Store::open(dir.path(), &opts()).unwrap();
        assert_eq!(st.damaged_wal_segments(), 1);
        let r = st.read_txn().unwrap();
        let got = |aor: &[u8]| st.get_presentity(&r, key(aor, b"e")).unwrap().is_some();
        assert!(got(b"sip:a@x") && !got(b"sip:b@x") && got(b"sip:c@x"));
        assert!(segments(&wal_dir(dir.path())).unwrap().is_empty());
        let kept = std::fs::read_dir(wal_dir(dir.path()))
            .unwrap()
            .filter(|e| {
                let n = e.as_ref().unwrap().file_name();
                n.to_string_lossy().starts_with(DAMAGED_PREFIX)
            })
            .count();
        assert_eq!(kept, 1);
    }

    /// The log `first`, then a batch whose PUBLISH body is `spelt`, with that batch's length
    /// changed (a disk fault) so that it ends exactly where `spelt` starts.
    fn log_with_spelt_frame(seg: u64, spelt: &[u8]) -> Vec<u8> {
        let mut log = frames(seg, &["first"]);
        let first = log.len();
        let mut carrier = rec("", 10);
        carrier.body = spelt.to_vec();
        let mut b = WalBatch::new();
        b.put_presentity(key(b"sip:a@x", b"e1"), &carrier).unwrap();
        log.extend_from_slice(b.frame(seg, &KEY));
        log.extend_from_slice(&frames(seg, &["last"]));
        let inside = log[first..]
            .windows(spelt.len())
            .position(|w| w == spelt)
            .unwrap();
        let len = (inside - FRAME_HEADER) as u32;
        log[first + 4..first + 8].copy_from_slice(&len.to_le_bytes());
        log
    }

    /// A client's PUBLISH body that spells a whole frame (what it must guess: the
    /// checksum) sits inside a batch's payload. A disk fault in that batch's length that
    /// lands exactly on it must not have it read as a frame.
    #[test]
    fn a_frame_spelt_in_a_payload_is_not_read_after_a_length_fault() {
        let seg = 7;
        let mut spelt = WalBatch::new();
        spelt.delete_presentity(key(b"sip:victim@x", b"e")).unwrap();
        let legacy_magic = {
            let mut f = spelt.frame(seg, &KEY).to_vec();
            f[0..4].copy_from_slice(&MAGIC_V1.to_le_bytes());
            f
        };
        // The client's best guesses: the unkeyed checksum, one under another key, the old
        // marker on a keyed frame.
        for guess in [
            spelt.legacy_frame(seg).to_vec(),
            spelt.frame(seg, &WalKey::from_bytes([7; 16])).to_vec(),
            legacy_magic,
        ] {
            let log = log_with_spelt_frame(seg, &guess);
            let mut out = Vec::new();
            assert_eq!(read_frames(&log, seg, Some(&KEY), &mut out), 0);
            assert_eq!(bodies(&out), ["first"], "the log ends at the damaged frame");
        }
        // The control: whoever knows the key could spell a frame that is read.
        let log = log_with_spelt_frame(seg, spelt.frame(seg, &KEY));
        let mut out = Vec::new();
        assert_eq!(read_frames(&log, seg, Some(&KEY), &mut out), 1);
        let deletes: Vec<bool> = ops(&out).map(|o| o.unwrap().value.is_none()).collect();
        assert_eq!(deletes, [false, true], "\"first\", then the spelt delete");
    }

    #[test]
    fn a_legacy_segment_is_read_a_keyed_one_needs_its_key() {
        let legacy = frames_with(&["one", "two"], |b| b.legacy_frame(7).to_vec());
        let mut out = Vec::new();
        assert_eq!(read_frames(&legacy, 7, None, &mut out), 0);
        assert_eq!(bodies(&out), ["one", "two"]);
        out.clear();
        assert_eq!(read_frames(&legacy, 7, Some(&KEY), &mut out), 0);
        assert_eq!(bodies(&out), ["one", "two"]);
        // Keyed frames: the right key reads them; a wrong one ends the log at once; none
        // at all leaves the segment unread and counted, so replay keeps it.
        let keyed = frames(7, &["one", "two"]);
        out.clear();
        assert_eq!(read_frames(&keyed, 7, Some(&KEY), &mut out), 0);
        assert_eq!(bodies(&out), ["one", "two"]);
        out.clear();
        let other = WalKey::from_bytes([1; 16]);
        assert_eq!(read_frames(&keyed, 7, Some(&other), &mut out), 0);
        assert!(out.is_empty());
        assert_eq!(read_frames(&keyed, 7, None, &mut out), 1);
        assert!(out.is_empty());
        // A segment does not mix: a legacy frame behind keyed ones ends it.
        let mut mixed = frames(7, &["one"]);
        mixed.extend_from_slice(&legacy);
        out.clear();
        assert_eq!(read_frames(&mixed, 7, Some(&KEY), &mut out), 0);
        assert_eq!(bodies(&out), ["one"]);
    }

    /// A log an older herald left at a crash (unkeyed frames) is replayed by this one, and
    /// the key is created with the first writable open and kept.
    #[test]
    fn an_older_log_replays_and_the_key_persists() {
        let dir = tempfile::tempdir().unwrap();
        let key_then = {
            let st = Store::open(dir.path(), &opts()).unwrap();
            st.wal_key().unwrap().expect("created at open")
        };
        let wal = wal_dir(dir.path());
        std::fs::create_dir_all(&wal).unwrap();
        let legacy = frames_with(&["old"], |b| b.legacy_frame(9).to_vec());
        std::fs::write(segment_path(&wal, 9), legacy).unwrap();
        let st = Store::open(dir.path(), &opts()).unwrap();
        assert_eq!(st.replayed_wal_ops(), 1);
        assert_eq!(st.damaged_wal_segments(), 0);
        let r = st.read_txn().unwrap();
        let got = st.get_presentity(&r, key(b"sip:a@x", b"e0")).unwrap();
        assert_eq!(got.map(|v| v.body.to_vec()), Some(b"old".to_vec()));
        drop(r);
        assert_eq!(st.wal_key().unwrap(), Some(key_then));
        drop(st);
        let ro = Store::open_read_only(dir.path(), &opts())
            .unwrap()
            .expect("exists");
        assert_eq!(ro.wal_key().unwrap(), Some(key_then));
    }
}
