//! Typed table operations. Every function takes the transaction it works in.
//!
//! There is no expiry index: the server holds every live record in memory and deletes each
//! one when its own timer fires, so an index by expiry time would only be read by `cleanup`
//! and at start-up, which scan the tables anyway, while every write paid for keeping it in
//! step (two more B-tree updates and pages per refresh).

use heed::{RoTxn, RwTxn};
use rkyv::api::high::{HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use rkyv::Portable;

use crate::env::{Db, Store};
use crate::error::{Result, StoreError};
use crate::keys::{
    aor_prefix, ExpiringTable, PresentityKey, RecordKey, SubscriberKey, SubscriptionKey,
    WatcherKey, XcapKey,
};
use crate::records::{
    ArchivedPresentityRecord, ArchivedSubscriberRecord, ArchivedSubscriptionRecord,
    ArchivedWatcherRecord, ArchivedXcapRecord, PresentityRecord, PresentityRecordRef,
    SubscriberRecord, SubscriptionRecord, SubscriptionRecordRef, UnixMillis, WatcherRecord,
    XcapRecord,
};

thread_local! {
    /// Key and value buffers of [`Store::put_reusing`] / [`Store::delete_reusing`].
    static SCRATCH: std::cell::RefCell<(Vec<u8>, AlignedVec)> =
        std::cell::RefCell::new((Vec::new(), AlignedVec::with_capacity(ENCODE_CAPACITY)));
}

/// Values we can write.
pub trait Encode:
    for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>
{
}
impl<T> Encode for T where
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>
{
}

/// A value of an expiring table whose archived form is `A`: the owned record or its
/// borrowed twin (`PresentityRecordRef`, `SubscriptionRecordRef`), which writes the same
/// bytes without copying its fields first.
pub trait ExpiringValue<A>: Encode {}

macro_rules! expiring_value {
    ($archived:ty: $($t:ty),*) => {$(
        impl ExpiringValue<$archived> for $t {}
    )*};
}

expiring_value!(ArchivedPresentityRecord: PresentityRecord, PresentityRecordRef<'_>);
expiring_value!(ArchivedSubscriptionRecord: SubscriptionRecord, SubscriptionRecordRef<'_>);

/// Archived values we can validate in place.
pub trait Decode: Portable + for<'a> CheckBytes<HighValidator<'a, rancor::Error>> {}
impl<T> Decode for T where T: Portable + for<'a> CheckBytes<HighValidator<'a, rancor::Error>> {}

/// Room reserved for one encoded record: a subscription dialog or a small PIDF
/// publication fits without the buffer growing.
const ENCODE_CAPACITY: usize = 1024;

pub(crate) fn encode<V: Encode>(v: &V) -> AlignedVec {
    encode_into(v, AlignedVec::with_capacity(ENCODE_CAPACITY))
}

/// [`encode`] into `buf` (cleared first), which comes back holding the bytes.
pub(crate) fn encode_into<V: Encode>(v: &V, mut buf: AlignedVec) -> AlignedVec {
    buf.clear();
    // Serialising owned plain data into a growable buffer cannot fail. The aligned buffer is
    // written as is (no copy into a `Vec<u8>`).
    rkyv::api::high::to_bytes_in::<_, rancor::Error>(v, buf)
        .expect("rkyv serialisation into memory")
}

/// The bytes `v` is stored as (what a put writes), for tools and for fuzzing the load path.
pub fn encode_record<V: Encode>(v: &V) -> Vec<u8> {
    encode(v).to_vec()
}

/// Validates stored `bytes` as a record of `table` (what every read does): the archived
/// view, or [`StoreError::Corrupt`] naming `key`. For tools and for fuzzing the load path.
pub fn decode_record<'t, A: Decode>(
    table: &'static str,
    key: &[u8],
    bytes: &'t [u8],
) -> Result<&'t A> {
    decode(table, key, bytes)
}

/// Validates `bytes` (bytecheck) and returns the archived view, borrowed from the map.
pub(crate) fn decode<'t, A: Decode>(
    table: &'static str,
    key: &[u8],
    bytes: &'t [u8],
) -> Result<&'t A> {
    rkyv::access::<A, rancor::Error>(bytes).map_err(|e| StoreError::Corrupt {
        table,
        key: String::from_utf8_lossy(key).into_owned(),
        detail: e.to_string(),
    })
}

fn bad_key(table: &'static str, key: &[u8]) -> StoreError {
    StoreError::Corrupt {
        table,
        key: String::from_utf8_lossy(key).into_owned(),
        detail: "malformed key".into(),
    }
}

/// Iterator item of the scans: decoded key and archived value.
pub type Entry<'t, K, A> = Result<(K, &'t A)>;

/// Decodes one raw item of a scan of the environment at `path` (an LMDB cursor's, or a
/// `live` view's merge of one with the log).
pub(crate) fn decode_entry<'t, K: RecordKey<'t>, A: Decode>(
    path: &std::path::Path,
    raw: heed::Result<(&'t [u8], &'t [u8])>,
) -> Entry<'t, K, A> {
    let (k, v) = raw.map_err(|source| StoreError::Lmdb {
        path: path.to_owned(),
        source,
    })?;
    let key = K::decode(k).ok_or_else(|| bad_key(K::TABLE, k))?;
    Ok((key, decode::<A>(K::TABLE, k, v)?))
}

/// Counts per table (O(1), from LMDB statistics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableCounts {
    pub presentity: u64,
    pub active_watchers: u64,
    pub watchers: u64,
    pub xcap: u64,
    pub subscriber: u64,
}

/// What one `cleanup` pass deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanupCounts {
    pub presentities: u64,
    pub subscriptions: u64,
}

/// What [`Store::find_expired`] found: the expired records, and how many records it could
/// not read (those it leaves alone: see [`Store::find_unreadable`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExpiredScan {
    pub expired: Vec<Expired>,
    pub unreadable: u64,
}

/// A record that cannot be read back: its key is malformed or its value fails validation.
/// Found by [`Store::find_unreadable`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// The table's name (`presentity`, `active_watchers`, `watchers`, `xcap`, `subscriber`).
    pub table: &'static str,
    pub key: Vec<u8>,
    /// Why it cannot be read.
    pub detail: String,
}

/// Why the record `k`, `v` of the table named `table` cannot be read, or `None`.
fn why_unreadable(table: &str, k: &[u8], v: &[u8]) -> Option<String> {
    match table {
        PresentityKey::TABLE => why_unreadable_as::<PresentityKey, ArchivedPresentityRecord>(k, v),
        SubscriptionKey::TABLE => {
            why_unreadable_as::<SubscriptionKey, ArchivedSubscriptionRecord>(k, v)
        }
        WatcherKey::TABLE => why_unreadable_as::<WatcherKey, ArchivedWatcherRecord>(k, v),
        XcapKey::TABLE => why_unreadable_as::<XcapKey, ArchivedXcapRecord>(k, v).or_else(|| {
            // Valid for rkyv, but the tag is not one: readers serve it as absent.
            let rec = decode::<ArchivedXcapRecord>(XcapKey::TABLE, k, v).ok()?;
            rec.etag_str()
                .is_none()
                .then(|| "malformed ETag".to_string())
        }),
        _ => why_unreadable_as::<SubscriberKey, ArchivedSubscriberRecord>(k, v),
    }
}

/// Every record table, by name.
const RECORD_TABLES: [&str; 5] = [
    PresentityKey::TABLE,
    SubscriptionKey::TABLE,
    WatcherKey::TABLE,
    XcapKey::TABLE,
    SubscriberKey::TABLE,
];

/// Why the record `k`, `v` cannot be read as a `K` key and an `A` value, or `None`.
fn why_unreadable_as<'k, K: RecordKey<'k>, A: Decode>(k: &'k [u8], v: &[u8]) -> Option<String> {
    if K::decode(k).is_none() {
        return Some("malformed key".to_string());
    }
    decode::<A>(K::TABLE, k, v).err().map(|e| match e {
        StoreError::Corrupt { detail, .. } => detail,
        other => other.to_string(),
    })
}

/// A record [`Store::find_expired`] found expired: delete it with
/// [`Store::delete_if_expired`], which checks again in the write transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expired {
    pub table: ExpiringTable,
    pub key: Vec<u8>,
    pub expires_at: UnixMillis,
}

impl Store {
    fn scan<'t, K: RecordKey<'t> + 't, A: Decode + 't>(
        &self,
        db: Db,
        txn: &'t RoTxn,
        prefix: Option<&[u8]>,
    ) -> Result<Box<dyn Iterator<Item = Entry<'t, K, A>> + 't>> {
        let path = self.path.clone();
        let map = move |r| decode_entry::<K, A>(&path, r);
        Ok(match prefix {
            Some(p) => Box::new(db.prefix_iter(txn, p).map_err(|e| self.lmdb(e))?.map(map)),
            None => Box::new(db.iter(txn).map_err(|e| self.lmdb(e))?.map(map)),
        })
    }

    fn get_in<'t, A: Decode>(
        &self,
        db: Db,
        table: &'static str,
        txn: &'t RoTxn,
        key: &[u8],
    ) -> Result<Option<&'t A>> {
        match db.get(txn, key).map_err(|e| self.lmdb(e))? {
            None => Ok(None),
            Some(v) => decode::<A>(table, key, v).map(Some),
        }
    }

    fn expiring_db(&self, table: ExpiringTable) -> Db {
        match table {
            ExpiringTable::Presentity => self.presentity,
            ExpiringTable::ActiveWatchers => self.active_watchers,
        }
    }

    /// The expiry of a stored record of an expiring table (validated archive).
    fn expiry_of(&self, table: ExpiringTable, key: &[u8], value: &[u8]) -> Result<UnixMillis> {
        Ok(match table {
            ExpiringTable::Presentity => {
                decode::<ArchivedPresentityRecord>(table.name(), key, value)?
                    .expires_at
                    .get()
            }
            ExpiringTable::ActiveWatchers => {
                decode::<ArchivedSubscriptionRecord>(table.name(), key, value)?
                    .expires_at
                    .get()
            }
        })
    }

    /// Puts `value` under `key` through this thread's scratch buffers: the commit threads
    /// write thousands of publications and dialogs per transaction, and a fresh key and
    /// value buffer for each was two allocations per record.
    fn put_reusing<'k, K: RecordKey<'k>, V: Encode>(
        &self,
        db: Db,
        txn: &mut RwTxn,
        key: &K,
        value: &V,
    ) -> Result<()> {
        SCRATCH.with(|scratch| {
            let (k, v) = &mut *scratch.borrow_mut();
            key.encode(k)?;
            let buf = encode_into(value, std::mem::take(v));
            let r = db.put(txn, k, &buf).map_err(|e| self.lmdb(e));
            *v = buf;
            r
        })
    }

    /// Deletes `key` (encoded into this thread's scratch key buffer); false if absent.
    fn delete_reusing<'k, K: RecordKey<'k>>(
        &self,
        db: Db,
        txn: &mut RwTxn,
        key: &K,
    ) -> Result<bool> {
        SCRATCH.with(|scratch| {
            let (k, _) = &mut *scratch.borrow_mut();
            key.encode(k)?;
            db.delete(txn, k).map_err(|e| self.lmdb(e))
        })
    }

    // ---- presentity ----

    /// Inserts or replaces a publication.
    pub fn put_presentity(
        &self,
        txn: &mut RwTxn,
        key: PresentityKey<'_>,
        rec: &impl ExpiringValue<ArchivedPresentityRecord>,
    ) -> Result<()> {
        self.put_reusing(self.presentity, txn, &key, rec)
    }

    pub fn get_presentity<'t>(
        &self,
        txn: &'t RoTxn,
        key: PresentityKey<'_>,
    ) -> Result<Option<&'t ArchivedPresentityRecord>> {
        self.get_in(self.presentity, PresentityKey::TABLE, txn, &key.to_vec()?)
    }

    /// Deletes a publication; false if it did not exist.
    pub fn delete_presentity(&self, txn: &mut RwTxn, key: PresentityKey<'_>) -> Result<bool> {
        self.delete_reusing(self.presentity, txn, &key)
    }

    /// All publications of one presentity (every event and ETag), in key order.
    pub fn presentities_of<'t>(
        &self,
        txn: &'t RoTxn,
        aor: &[u8],
    ) -> Result<impl Iterator<Item = Entry<'t, PresentityKey<'t>, ArchivedPresentityRecord>> + 't>
    {
        self.scan(self.presentity, txn, Some(&aor_prefix(aor)))
    }

    /// Every publication in this environment.
    pub fn iter_presentities<'t>(
        &self,
        txn: &'t RoTxn,
    ) -> Result<impl Iterator<Item = Entry<'t, PresentityKey<'t>, ArchivedPresentityRecord>> + 't>
    {
        self.scan(self.presentity, txn, None)
    }

    // ---- active_watchers ----

    /// Inserts or replaces a subscription dialog.
    pub fn put_subscription(
        &self,
        txn: &mut RwTxn,
        key: SubscriptionKey<'_>,
        rec: &impl ExpiringValue<ArchivedSubscriptionRecord>,
    ) -> Result<()> {
        self.put_reusing(self.active_watchers, txn, &key, rec)
    }

    pub fn get_subscription<'t>(
        &self,
        txn: &'t RoTxn,
        key: SubscriptionKey<'_>,
    ) -> Result<Option<&'t ArchivedSubscriptionRecord>> {
        self.get_in(
            self.active_watchers,
            SubscriptionKey::TABLE,
            txn,
            &key.to_vec()?,
        )
    }

    pub fn delete_subscription(&self, txn: &mut RwTxn, key: SubscriptionKey<'_>) -> Result<bool> {
        self.delete_reusing(self.active_watchers, txn, &key)
    }

    /// All subscription dialogs to one presentity: a scan of the whole table, which is
    /// ordered by dialog id (see `keys`); the server never needs it, tools and tests do.
    pub fn subscriptions_of<'t>(
        &self,
        txn: &'t RoTxn,
        aor: &[u8],
    ) -> Result<impl Iterator<Item = Entry<'t, SubscriptionKey<'t>, ArchivedSubscriptionRecord>> + 't>
    {
        let aor = aor.to_vec();
        Ok(self.scan(self.active_watchers, txn, None)?.filter(
            move |e: &Entry<'t, SubscriptionKey<'t>, ArchivedSubscriptionRecord>| {
                e.as_ref().map_or(true, |(k, _)| k.presentity == aor)
            },
        ))
    }

    pub fn iter_subscriptions<'t>(
        &self,
        txn: &'t RoTxn,
    ) -> Result<impl Iterator<Item = Entry<'t, SubscriptionKey<'t>, ArchivedSubscriptionRecord>> + 't>
    {
        self.scan(self.active_watchers, txn, None)
    }

    // ---- watchers ----

    pub fn put_watcher(
        &self,
        txn: &mut RwTxn,
        key: WatcherKey<'_>,
        rec: &WatcherRecord,
    ) -> Result<()> {
        self.watchers
            .put(txn, &key.to_vec()?, &encode(rec))
            .map_err(|e| self.lmdb(e))
    }

    pub fn get_watcher<'t>(
        &self,
        txn: &'t RoTxn,
        key: WatcherKey<'_>,
    ) -> Result<Option<&'t ArchivedWatcherRecord>> {
        self.get_in(self.watchers, WatcherKey::TABLE, txn, &key.to_vec()?)
    }

    pub fn delete_watcher(&self, txn: &mut RwTxn, key: WatcherKey<'_>) -> Result<bool> {
        self.watchers
            .delete(txn, &key.to_vec()?)
            .map_err(|e| self.lmdb(e))
    }

    /// All watcher authorisations of one presentity.
    pub fn watchers_of<'t>(
        &self,
        txn: &'t RoTxn,
        aor: &[u8],
    ) -> Result<impl Iterator<Item = Entry<'t, WatcherKey<'t>, ArchivedWatcherRecord>> + 't> {
        self.scan(self.watchers, txn, Some(&aor_prefix(aor)))
    }

    pub fn iter_watchers<'t>(
        &self,
        txn: &'t RoTxn,
    ) -> Result<impl Iterator<Item = Entry<'t, WatcherKey<'t>, ArchivedWatcherRecord>> + 't> {
        self.scan(self.watchers, txn, None)
    }

    // ---- xcap ----

    pub fn put_xcap(&self, txn: &mut RwTxn, key: XcapKey<'_>, rec: &XcapRecord) -> Result<()> {
        self.xcap
            .put(txn, &key.to_vec()?, &encode(rec))
            .map_err(|e| self.lmdb(e))
    }

    pub fn get_xcap<'t>(
        &self,
        txn: &'t RoTxn,
        key: XcapKey<'_>,
    ) -> Result<Option<&'t ArchivedXcapRecord>> {
        self.get_in(self.xcap, XcapKey::TABLE, txn, &key.to_vec()?)
    }

    pub fn delete_xcap(&self, txn: &mut RwTxn, key: XcapKey<'_>) -> Result<bool> {
        self.xcap
            .delete(txn, &key.to_vec()?)
            .map_err(|e| self.lmdb(e))
    }

    /// All XCAP documents of one user (every AUID).
    pub fn xcap_documents_of<'t>(
        &self,
        txn: &'t RoTxn,
        user: &[u8],
    ) -> Result<impl Iterator<Item = Entry<'t, XcapKey<'t>, ArchivedXcapRecord>> + 't> {
        self.scan(self.xcap, txn, Some(&aor_prefix(user)))
    }

    pub fn iter_xcap<'t>(
        &self,
        txn: &'t RoTxn,
    ) -> Result<impl Iterator<Item = Entry<'t, XcapKey<'t>, ArchivedXcapRecord>> + 't> {
        self.scan(self.xcap, txn, None)
    }

    // ---- subscriber ----

    pub fn put_subscriber(
        &self,
        txn: &mut RwTxn,
        key: SubscriberKey<'_>,
        rec: &SubscriberRecord,
    ) -> Result<()> {
        self.subscriber
            .put(txn, &key.to_vec()?, &encode(rec))
            .map_err(|e| self.lmdb(e))
    }

    pub fn get_subscriber<'t>(
        &self,
        txn: &'t RoTxn,
        key: SubscriberKey<'_>,
    ) -> Result<Option<&'t ArchivedSubscriberRecord>> {
        self.get_in(self.subscriber, SubscriberKey::TABLE, txn, &key.to_vec()?)
    }

    pub fn delete_subscriber(&self, txn: &mut RwTxn, key: SubscriberKey<'_>) -> Result<bool> {
        self.subscriber
            .delete(txn, &key.to_vec()?)
            .map_err(|e| self.lmdb(e))
    }

    pub fn iter_subscribers<'t>(
        &self,
        txn: &'t RoTxn,
    ) -> Result<impl Iterator<Item = Entry<'t, SubscriberKey<'t>, ArchivedSubscriberRecord>> + 't>
    {
        self.scan(self.subscriber, txn, None)
    }

    // ---- expiry ----

    /// Calls `f` with every raw record of the two expiring tables, in one read transaction.
    fn each_expiring(
        &self,
        txn: &RoTxn,
        mut f: impl FnMut(ExpiringTable, &[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        for table in [ExpiringTable::Presentity, ExpiringTable::ActiveWatchers] {
            for r in self
                .expiring_db(table)
                .iter(txn)
                .map_err(|e| self.lmdb(e))?
            {
                let (k, v) = r.map_err(|e| self.lmdb(e))?;
                f(table, k, v)?;
            }
        }
        Ok(())
    }

    /// Every publication and subscription dialog that expired at or before `now`, found by
    /// a scan of both tables in a read transaction (it never holds up the writer). A record
    /// whose value cannot be read is counted, not returned: its expiry is unknown.
    pub fn find_expired(&self, txn: &RoTxn, now: UnixMillis) -> Result<ExpiredScan> {
        let mut out = ExpiredScan::default();
        self.each_expiring(txn, |table, k, v| {
            match self.expiry_of(table, k, v) {
                Ok(at) if at <= now => out.expired.push(Expired {
                    table,
                    key: k.to_vec(),
                    expires_at: at,
                }),
                Ok(_) => {}
                Err(e) if e.is_unreadable_record() => out.unreadable += 1,
                Err(e) => return Err(e),
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Every record, of any table, whose key or value cannot be read: what `herald store
    /// cleanup --unreadable` deletes (a scan in a read transaction).
    pub fn find_unreadable(&self, txn: &RoTxn) -> Result<Vec<Unreadable>> {
        let mut out = Vec::new();
        for table in RECORD_TABLES {
            for r in self.record_db(table).iter(txn).map_err(|e| self.lmdb(e))? {
                let (k, v) = r.map_err(|e| self.lmdb(e))?;
                if let Some(detail) = why_unreadable(table, k, v) {
                    out.push(Unreadable {
                        table,
                        key: k.to_vec(),
                        detail,
                    });
                }
            }
        }
        Ok(out)
    }

    /// The database of the record table named `table` (one of [`RECORD_TABLES`]).
    fn record_db(&self, table: &str) -> Db {
        match table {
            PresentityKey::TABLE => self.presentity,
            SubscriptionKey::TABLE => self.active_watchers,
            WatcherKey::TABLE => self.watchers,
            XcapKey::TABLE => self.xcap,
            _ => self.subscriber,
        }
    }

    /// Deletes the record `u` names if it still cannot be read (the server may have
    /// written a good record under the key since the scan). True if deleted.
    pub fn delete_if_unreadable(&self, txn: &mut RwTxn, u: &Unreadable) -> Result<bool> {
        let db = self.record_db(u.table);
        let Some(v) = db.get(txn, &u.key).map_err(|e| self.lmdb(e))? else {
            return Ok(false);
        };
        if why_unreadable(u.table, &u.key, v).is_none() {
            return Ok(false);
        }
        db.delete(txn, &u.key).map_err(|e| self.lmdb(e))
    }

    /// Writes raw bytes under a raw key of a record table, bypassing encoding (tests of the
    /// damaged-record paths only).
    #[doc(hidden)]
    pub fn debug_put_raw(
        &self,
        txn: &mut RwTxn,
        table: ExpiringTable,
        key: &[u8],
        value: &[u8],
    ) -> Result<()> {
        self.expiring_db(table)
            .put(txn, key, value)
            .map_err(|e| self.lmdb(e))
    }

    /// Deletes the record `e` names if it still carries the expiry it was found with (the
    /// server may have refreshed it since the scan). True if deleted.
    pub fn delete_if_expired(&self, txn: &mut RwTxn, e: &Expired) -> Result<bool> {
        let db = self.expiring_db(e.table);
        let current = match db.get(txn, &e.key).map_err(|err| self.lmdb(err))? {
            None => return Ok(false),
            Some(v) => match self.expiry_of(e.table, &e.key, v) {
                Ok(at) => at,
                // Not the record that was found expired.
                Err(err) if err.is_unreadable_record() => return Ok(false),
                Err(err) => return Err(err),
            },
        };
        if current != e.expires_at {
            return Ok(false);
        }
        db.delete(txn, &e.key).map_err(|err| self.lmdb(err))
    }

    /// Number of records in each table.
    pub fn counts(&self, txn: &RoTxn) -> Result<TableCounts> {
        let n = |db: Db| db.len(txn).map_err(|e| self.lmdb(e));
        Ok(TableCounts {
            presentity: n(self.presentity)?,
            active_watchers: n(self.active_watchers)?,
            watchers: n(self.watchers)?,
            xcap: n(self.xcap)?,
            subscriber: n(self.subscriber)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::encode;
    use crate::records::*;

    /// The borrowed twins must write exactly the owned records' bytes: the server writes
    /// with the twins, every reader decodes the owned records' archives.
    #[test]
    fn borrowed_twins_encode_like_the_owned_records() {
        let p = PresentityRecord {
            expires_at: UnixMillis(1_700_000_000_123),
            received_at: UnixMillis(1_700_000_000_000),
            order: 42,
            etag: b"a1b2".to_vec(),
            content_type: b"application/pidf+xml".to_vec(),
            body: b"<presence/>".to_vec(),
        };
        assert_eq!(&encode(&p)[..], &encode(&p.as_ref())[..]);
        let mut s = SubscriptionRecord {
            event: b"presence".to_vec(),
            event_id: Some(b"7".to_vec()),
            call_id: b"c1@h".to_vec(),
            from_tag: b"ft".to_vec(),
            to_tag: b"tt".to_vec(),
            from_uri: b"<sip:a@x>".to_vec(),
            to_uri: b"<sip:b@x>".to_vec(),
            local_cseq: 3,
            remote_cseq: 9,
            route_set: b"<sip:p1;lr>, <sip:p2;lr>".to_vec(),
            contact: b"<sip:a@10.0.0.1>".to_vec(),
            transport: TransportKind::Tcp,
            peer: "[2001:db8::1]:5061".parse().unwrap(),
            status: SubStatus::Pending,
            reason: Some(b"timeout".to_vec()),
            expires_at: UnixMillis(5),
            version: 77,
        };
        assert_eq!(&encode(&s)[..], &encode(&s.as_ref())[..]);
        s.event_id = None;
        s.reason = None;
        s.peer = "10.0.0.2:5060".parse().unwrap();
        assert_eq!(&encode(&s)[..], &encode(&s.as_ref())[..]);
    }
}
