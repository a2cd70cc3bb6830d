//! Upgrades of an environment written by an older schema, run by `Store::open` in one write
//! transaction before the version is bumped (a crash midway leaves the old version intact).

use std::ops::Bound;

use heed::RwTxn;
use rkyv::{Archive, Deserialize, Serialize};

use crate::env::Store;
use crate::error::Result;
use crate::keys::{PresentityKey, RecordKey, SubscriptionKey};
use crate::records::{ByteStr, PresentityRecordRef, UnixMillis};
use crate::tables::{decode, encode};

/// Schema 1's index of records by expiry time.
pub(crate) const V1_EXPIRY: &str = "expiry";

/// Schema 1 `presentity` value: the ETag was the key's last part, so every refresh moved the
/// record to a new key.
#[derive(Archive, Serialize, Deserialize)]
struct PresentityRecordV1 {
    expires_at: UnixMillis,
    received_at: UnixMillis,
    order: u64,
    content_type: Vec<u8>,
    body: Vec<u8>,
}

/// Records rewritten per chunk of an upgrade (bounds the copies held at once; the whole
/// upgrade is still one transaction). Tiny under test, so tests cross chunk boundaries.
const CHUNK: usize = if cfg!(test) { 2 } else { 10_000 };

/// Up to [`CHUNK`] records of `db` from `lower` on, copied out.
fn chunk_from(
    s: &Store,
    w: &RwTxn,
    db: crate::env::Db,
    lower: Bound<&[u8]>,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let range = (lower, Bound::<&[u8]>::Unbounded);
    let mut out = Vec::new();
    for r in db.range(w, &range).map_err(|e| s.lmdb(e))?.take(CHUNK) {
        let (k, v) = r.map_err(|e| s.lmdb(e))?;
        out.push((k.to_vec(), v.to_vec()));
    }
    Ok(out)
}

/// Schema 1 → 2: a publication keeps the key it has (its ETag becomes the publication id)
/// and the record gains the ETag as its current one; the `expiry` index table is emptied.
pub(crate) fn v1_to_v2(s: &Store, w: &mut RwTxn) -> Result<()> {
    let mut after: Option<Vec<u8>> = None;
    loop {
        let lower = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let chunk = chunk_from(s, w, s.presentity, lower)?;
        let Some((last, _)) = chunk.last() else {
            break;
        };
        let last = last.clone();
        for (k, v) in &chunk {
            let old = decode::<ArchivedPresentityRecordV1>(PresentityKey::TABLE, k, v)?;
            let etag = PresentityKey::decode(k).map_or(&[][..], |key| key.pub_id);
            let new = PresentityRecordRef {
                expires_at: UnixMillis(old.expires_at.0.to_native()),
                received_at: UnixMillis(old.received_at.0.to_native()),
                order: old.order.to_native(),
                etag: ByteStr(etag),
                content_type: ByteStr(&old.content_type),
                body: ByteStr(&old.body),
            };
            s.presentity
                .put(w, k, &encode(&new))
                .map_err(|e| s.lmdb(e))?;
        }
        after = Some(last);
    }
    if let Some(index) = s.v1_expiry {
        index.clear(w).map_err(|e| s.lmdb(e))?;
    }
    Ok(())
}

/// Schema 2 → 3: `active_watchers` keys go from `presentity \0 dialog id` to
/// `dialog id \0 presentity`, so new dialogs append (see `keys`). Old keys start with the
/// AoR's scheme (a letter above `f`), new ones with hex digits, so the old ones are exactly
/// those from `g` on, and moving a chunk never meets a moved record again.
pub(crate) fn v2_to_v3(s: &Store, w: &mut RwTxn) -> Result<()> {
    const FIRST_OLD: &[u8] = b"g";
    let mut key = Vec::new();
    loop {
        let chunk = chunk_from(s, w, s.active_watchers, Bound::Included(FIRST_OLD))?;
        if chunk.is_empty() {
            return Ok(());
        }
        for (old, v) in &chunk {
            let Some(i) = old.iter().position(|&b| b == crate::keys::SEP) else {
                return Err(crate::StoreError::Corrupt {
                    table: SubscriptionKey::TABLE,
                    key: String::from_utf8_lossy(old).into_owned(),
                    detail: "schema 2 key without a separator".into(),
                });
            };
            SubscriptionKey {
                presentity: &old[..i],
                dialog_id: &old[i + 1..],
            }
            .encode(&mut key)?;
            if key.as_slice() >= FIRST_OLD {
                // Not a dialog id of ours: moving it would meet it again.
                return Err(crate::StoreError::Corrupt {
                    table: SubscriptionKey::TABLE,
                    key: String::from_utf8_lossy(old).into_owned(),
                    detail: "schema 2 key whose dialog id is not hexadecimal".into(),
                });
            }
            s.active_watchers.delete(w, old).map_err(|e| s.lmdb(e))?;
            s.active_watchers.put(w, &key, v).map_err(|e| s.lmdb(e))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{ArchivedPresentityRecord, PresentityRecord};
    use crate::StoreOptions;

    /// Writes with `fill` into a fresh environment marked `schema`, then reopens it (which
    /// runs the upgrades).
    fn upgraded(
        schema: u32,
        fill: impl Fn(&Store, &mut RwTxn) -> Result<()>,
    ) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
            s.write(|s, w| {
                fill(s, w)?;
                s.debug_set_schema(w, schema)
            })
            .unwrap();
        }
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        assert_eq!(s.upgraded_from(), Some(schema));
        {
            let r = s.read_txn().unwrap();
            assert_eq!(
                s.meta_u32(&r, crate::env::META_SCHEMA).unwrap(),
                Some(crate::SCHEMA_VERSION)
            );
        }
        (dir, s)
    }

    #[test]
    fn v1_publications_keep_their_key_and_etag() {
        let key = |i: u64| {
            PresentityKey {
                presentity: format!("sip:a{i}@x").as_bytes(),
                event: b"presence",
                pub_id: format!("etag-{i}").as_bytes(),
            }
            .to_vec()
            .unwrap()
        };
        let (_dir, s) = upgraded(1, |s, w| {
            for i in 0..5 {
                let v1 = PresentityRecordV1 {
                    expires_at: UnixMillis(5 + i),
                    received_at: UnixMillis(4),
                    order: i,
                    content_type: b"application/pidf+xml".to_vec(),
                    body: b"<presence/>".to_vec(),
                };
                s.presentity
                    .put(w, &key(i), &encode(&v1))
                    .map_err(|e| s.lmdb(e))?;
            }
            Ok(())
        });
        let r = s.read_txn().unwrap();
        for i in 0..5 {
            let v = s.presentity.get(&r, &key(i)).unwrap().unwrap();
            let got: PresentityRecord = rkyv::deserialize::<_, rkyv::rancor::Error>(
                decode::<ArchivedPresentityRecord>("presentity", &key(i), v).unwrap(),
            )
            .unwrap();
            assert_eq!(
                got,
                PresentityRecord {
                    expires_at: UnixMillis(5 + i),
                    received_at: UnixMillis(4),
                    order: i,
                    etag: format!("etag-{i}").into_bytes(),
                    content_type: b"application/pidf+xml".to_vec(),
                    body: b"<presence/>".to_vec(),
                }
            );
        }
    }

    #[test]
    fn v2_subscriptions_get_id_first_keys() {
        let (_dir, s) = upgraded(2, |s, w| {
            for (aor, id) in [
                ("sip:p@x", 7),
                ("sip:q@x", 3),
                ("sips:r@x", 9),
                ("tel:+1", 1),
                ("sip:z@x", 5),
            ] {
                let old = format!("{aor}\0{id:016x}");
                s.active_watchers
                    .put(w, old.as_bytes(), format!("v{id}").as_bytes())
                    .map_err(|e| s.lmdb(e))?;
            }
            Ok(())
        });
        let r = s.read_txn().unwrap();
        let got: Vec<(Vec<u8>, Vec<u8>)> = s
            .active_watchers
            .iter(&r)
            .unwrap()
            .map(|e| e.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
            .collect();
        let want: Vec<(Vec<u8>, Vec<u8>)> = [
            (1, "tel:+1"),
            (3, "sip:q@x"),
            (5, "sip:z@x"),
            (7, "sip:p@x"),
            (9, "sips:r@x"),
        ]
        .iter()
        .map(|(id, aor)| {
            (
                format!("{id:016x}\0{aor}").into_bytes(),
                format!("v{id}").into_bytes(),
            )
        })
        .collect();
        assert_eq!(got, want, "id-first keys, in id order, values kept");
    }
}
