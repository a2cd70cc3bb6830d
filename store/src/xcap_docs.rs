//! XCAP documents and credentials as the XCAP front needs them: a batch of document writes
//! applied with compare-and-swap in one durable transaction, scans by AUID, and the
//! credentials lookup.
//!
//! Why compare-and-swap here although the front already checked the ETag: the front answers
//! from an in-memory overlay of writes not yet committed, so a commit that failed (disk full)
//! can leave later writes staged on a state that never reached the disk. Re-checking the
//! stored ETag inside the write transaction keeps LMDB the only authority: such a write
//! fails as [`XcapWriteOutcome::Changed`] (HTTP 412) instead of overwriting.

use crate::env::Store;
use crate::error::Result;
use crate::keys::{RecordKey, SubscriberKey, XcapKey};
use crate::records::{ArchivedXcapRecord, SubscriberRecord, UnixMillis, XcapRecord};
use heed::RoTxn;

/// What the stored document must be for a write to apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XcapExpect {
    /// No document (creation).
    Absent,
    /// The stored document carries this ETag.
    ETag(Vec<u8>),
}

/// One staged document change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XcapWrite {
    /// Owning AoR (`sip:user@domain`, normalised) or a global-tree marker.
    pub user: Vec<u8>,
    pub auid: Vec<u8>,
    pub document: Vec<u8>,
    pub expect: XcapExpect,
    /// New ETag and bytes; `None` deletes the document.
    pub new: Option<(Vec<u8>, Vec<u8>)>,
}

impl XcapWrite {
    pub fn key(&self) -> XcapKey<'_> {
        XcapKey {
            user: &self.user,
            auid: &self.auid,
            document: &self.document,
        }
    }
}

/// Visitor of [`Store::for_each_xcap_in_auid`]: `(user, document, record)`, false to stop.
pub type XcapVisitor<'f> = dyn FnMut(&[u8], &[u8], &ArchivedXcapRecord) -> bool + 'f;

/// Result of one write of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XcapWriteOutcome {
    Applied,
    /// The stored document is not what the write expected: nothing written.
    Changed,
}

impl Store {
    /// Applies `writes` in order in one durable transaction (each with its own
    /// compare-and-swap). An error of the transaction itself (I/O, map full) writes nothing.
    pub fn apply_xcap_writes(
        &self,
        writes: &[XcapWrite],
        now: UnixMillis,
    ) -> Result<Vec<XcapWriteOutcome>> {
        self.write(|s, w| {
            let mut out = Vec::with_capacity(writes.len());
            for wr in writes {
                let cur = s
                    .get_xcap_readable(w, wr.key())?
                    .map(|r| r.etag.as_slice().to_vec());
                let ok = match (&wr.expect, &cur) {
                    (XcapExpect::Absent, None) => true,
                    (XcapExpect::ETag(t), Some(c)) => t == c,
                    _ => false,
                };
                if !ok {
                    out.push(XcapWriteOutcome::Changed);
                    continue;
                }
                match &wr.new {
                    Some((etag, doc)) => s.put_xcap(
                        w,
                        wr.key(),
                        &XcapRecord {
                            etag: etag.clone(),
                            doc: doc.clone(),
                            updated_at: now,
                        },
                    )?,
                    None => {
                        s.delete_xcap(w, wr.key())?;
                    }
                }
                out.push(XcapWriteOutcome::Applied);
            }
            Ok(out)
        })
    }

    /// Visits every document of application usage `auid` in this environment:
    /// `f(user, document, record)`; `f` returns false to stop. Cost is a full scan of the
    /// `xcap` table (used for cross-user constraints such as rls-services URI uniqueness).
    pub fn for_each_xcap_in_auid(
        &self,
        txn: &RoTxn,
        auid: &[u8],
        f: &mut XcapVisitor<'_>,
    ) -> Result<bool> {
        for item in self.iter_xcap(txn)? {
            let (k, rec) = match item {
                Ok(kv) => kv,
                // A document that cannot be read holds no constraint (see
                // `get_xcap_readable`); `herald store check` names it.
                Err(e) if e.is_unreadable_record() => continue,
                Err(e) => return Err(e),
            };
            // Nor does one whose tag is not one (`get_xcap_readable`).
            if rec.etag_str().is_none() {
                continue;
            }
            if k.auid == auid && !f(k.user, k.document, rec) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// [`Store::get_xcap`], with a stored document that cannot be read (its value fails
    /// validation, or its tag is not one: `ArchivedXcapRecord::etag_str`; a disk fault)
    /// counted as absent: its user then gets 404 for it and can write it anew, as clients
    /// do when a list they expect is missing, instead of 500 for every request on it for
    /// good (and a failed batch for everyone who shares the write transaction).
    pub fn get_xcap_readable<'t>(
        &self,
        txn: &'t RoTxn,
        key: XcapKey<'_>,
    ) -> Result<Option<&'t ArchivedXcapRecord>> {
        match self.get_xcap(txn, key) {
            Err(e) if e.is_unreadable_record() => Ok(None),
            Ok(Some(r)) if r.etag_str().is_none() => Ok(None),
            other => other,
        }
    }

    /// Writes raw bytes as the stored value of an XCAP document (tests of the
    /// damaged-record paths only).
    #[doc(hidden)]
    pub fn debug_put_raw_xcap(
        &self,
        txn: &mut heed::RwTxn,
        key: XcapKey<'_>,
        value: &[u8],
    ) -> Result<()> {
        self.xcap
            .put(txn, &key.to_vec()?, value)
            .map_err(|e| self.lmdb(e))
    }

    /// Credentials of `user@domain`, copied out of the map.
    pub fn xcap_credentials(&self, user: &[u8], domain: &[u8]) -> Result<Option<SubscriberRecord>> {
        let txn = self.read_txn()?;
        Ok(self
            .get_subscriber(&txn, SubscriberKey { user, domain })?
            .map(|r| r.to_owned_record()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::StoreOptions;

    fn put(doc: &str, expect: XcapExpect, etag: &str) -> XcapWrite {
        XcapWrite {
            user: b"sip:alice@example.com".to_vec(),
            auid: b"test-app".to_vec(),
            document: doc.as_bytes().to_vec(),
            expect,
            new: Some((etag.as_bytes().to_vec(), b"<a/>".to_vec())),
        }
    }

    #[test]
    fn batch_with_compare_and_swap() {
        let dir = std::env::temp_dir().join(format!("herald-xcap-docs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let opts = StoreOptions {
            no_sync: true,
            initial_map_size: 1 << 20,
            ..StoreOptions::default()
        };
        let st = Store::open(&dir, &opts).unwrap();
        let now = UnixMillis(1);
        let r = st
            .apply_xcap_writes(
                &[
                    put("index", XcapExpect::Absent, "e1"),
                    put("index", XcapExpect::ETag(b"e1".to_vec()), "e2"),
                    put("index", XcapExpect::ETag(b"e1".to_vec()), "e3"),
                    put("other", XcapExpect::ETag(b"zz".to_vec()), "e4"),
                ],
                now,
            )
            .unwrap();
        use XcapWriteOutcome::*;
        assert_eq!(r, vec![Applied, Applied, Changed, Changed]);
        let txn = st.read_txn().unwrap();
        let mut seen = Vec::new();
        st.for_each_xcap_in_auid(&txn, b"test-app", &mut |u, d, rec| {
            seen.push((u.to_vec(), d.to_vec(), rec.etag.as_slice().to_vec()));
            true
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![(
                b"sip:alice@example.com".to_vec(),
                b"index".to_vec(),
                b"e2".to_vec()
            )]
        );
        drop(txn);
        let del = XcapWrite {
            new: None,
            ..put("index", XcapExpect::ETag(b"e2".to_vec()), "")
        };
        assert_eq!(st.apply_xcap_writes(&[del], now).unwrap(), vec![Applied]);
        assert_eq!(st.counts(&st.read_txn().unwrap()).unwrap().xcap, 0);
        assert!(st
            .xcap_credentials(b"alice", b"example.com")
            .unwrap()
            .is_none());
        drop(st);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A damaged document counts as absent: scans pass over it, a creation writes it anew,
    /// and the batch it is in goes through for everyone else.
    #[test]
    fn unreadable_document_counts_as_absent() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            no_sync: true,
            initial_map_size: 1 << 20,
            ..StoreOptions::default()
        };
        let st = Store::open(dir.path(), &opts).unwrap();
        let now = UnixMillis(1);
        let bad = put("index", XcapExpect::Absent, "e1");
        st.write(|s, w| s.debug_put_raw_xcap(w, bad.key(), b"damaged"))
            .unwrap();
        let mut visited = 0;
        let txn = st.read_txn().unwrap();
        assert!(st.get_xcap(&txn, bad.key()).is_err());
        assert!(st.get_xcap_readable(&txn, bad.key()).unwrap().is_none());
        st.for_each_xcap_in_auid(&txn, b"test-app", &mut |_, _, _| {
            visited += 1;
            true
        })
        .unwrap();
        assert_eq!(visited, 0);
        drop(txn);
        let r = st
            .apply_xcap_writes(&[put("other", XcapExpect::Absent, "o1"), bad], now)
            .unwrap();
        assert_eq!(
            r,
            vec![XcapWriteOutcome::Applied, XcapWriteOutcome::Applied]
        );
        let txn = st.read_txn().unwrap();
        let doc = st
            .get_xcap(&txn, put("index", XcapExpect::Absent, "").key())
            .unwrap()
            .unwrap();
        assert_eq!(doc.etag.as_slice(), b"e1");
    }
}
