//! Upgrades of an environment written by an older schema, run by `Store::open` in one write
//! transaction before the version is bumped (a crash midway leaves the old version intact).

use heed::RwTxn;
use rkyv::{Archive, Deserialize, Serialize};

use crate::env::Store;
use crate::error::Result;
use crate::keys::{PresentityKey, RecordKey};
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
}
