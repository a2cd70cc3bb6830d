//! Upgrades of an environment written by an older schema, run by `Store::open` in one write
//! transaction before the version is bumped (a crash midway leaves the old version intact).

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

/// Schema 1 → 2: a publication keeps the key it has (its ETag becomes the publication id)
/// and the record gains the ETag as its current one; the `expiry` index table is emptied.
pub(crate) fn v1_to_v2(s: &Store, w: &mut RwTxn) -> Result<()> {
    let mut rewritten = Vec::new();
    for r in s.presentity.iter(w).map_err(|e| s.lmdb(e))? {
        let (k, v) = r.map_err(|e| s.lmdb(e))?;
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
        rewritten.push((k.to_vec(), encode(&new)));
    }
    for (k, v) in &rewritten {
        s.presentity.put(w, k, v).map_err(|e| s.lmdb(e))?;
    }
    if let Some(index) = s.v1_expiry {
        index.clear(w).map_err(|e| s.lmdb(e))?;
    }
    Ok(())
}

/// Schema 2 → 3: `active_watchers` keys go from `presentity \0 dialog id` to
/// `dialog id \0 presentity`, so new dialogs append (see `keys`).
pub(crate) fn v2_to_v3(s: &Store, w: &mut RwTxn) -> Result<()> {
    let mut moved = Vec::new();
    for r in s.active_watchers.iter(w).map_err(|e| s.lmdb(e))? {
        let (k, v) = r.map_err(|e| s.lmdb(e))?;
        moved.push((k.to_vec(), v.to_vec()));
    }
    s.active_watchers.clear(w).map_err(|e| s.lmdb(e))?;
    let mut key = Vec::new();
    for (old, v) in &moved {
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
        s.active_watchers.put(w, &key, v).map_err(|e| s.lmdb(e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{ArchivedPresentityRecord, PresentityRecord};
    use crate::StoreOptions;

    #[test]
    fn v1_publications_keep_their_key_and_etag() {
        let dir = tempfile::tempdir().unwrap();
        let key = PresentityKey {
            presentity: b"sip:a@x",
            event: b"presence",
            pub_id: b"etag-1",
        }
        .to_vec()
        .unwrap();
        {
            let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
            s.write(|s, w| {
                let v1 = PresentityRecordV1 {
                    expires_at: UnixMillis(5),
                    received_at: UnixMillis(4),
                    order: 3,
                    content_type: b"application/pidf+xml".to_vec(),
                    body: b"<presence/>".to_vec(),
                };
                s.presentity
                    .put(w, &key, &encode(&v1))
                    .map_err(|e| s.lmdb(e))?;
                s.debug_set_schema(w, 1)
            })
            .unwrap();
        }
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let r = s.read_txn().unwrap();
        let v = s.presentity.get(&r, &key).unwrap().unwrap();
        let got: PresentityRecord = rkyv::deserialize::<_, rkyv::rancor::Error>(
            decode::<ArchivedPresentityRecord>("presentity", &key, v).unwrap(),
        )
        .unwrap();
        assert_eq!(
            got,
            PresentityRecord {
                expires_at: UnixMillis(5),
                received_at: UnixMillis(4),
                order: 3,
                etag: b"etag-1".to_vec(),
                content_type: b"application/pidf+xml".to_vec(),
                body: b"<presence/>".to_vec(),
            }
        );
        assert_eq!(
            s.meta_u32(&r, crate::env::META_SCHEMA).unwrap(),
            Some(crate::SCHEMA_VERSION)
        );
    }

    #[test]
    fn v2_subscriptions_get_id_first_keys() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
            s.write(|s, w| {
                s.active_watchers
                    .put(w, b"sip:p@x\x000000000000000007", b"value")
                    .map_err(|e| s.lmdb(e))?;
                s.debug_set_schema(w, 2)
            })
            .unwrap();
        }
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let r = s.read_txn().unwrap();
        let keys: Vec<Vec<u8>> = s
            .active_watchers
            .iter(&r)
            .unwrap()
            .map(|e| e.unwrap().0.to_vec())
            .collect();
        assert_eq!(keys, vec![b"0000000000000007\x00sip:p@x".to_vec()]);
    }
}
