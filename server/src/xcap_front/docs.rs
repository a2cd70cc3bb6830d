//! The XCAP `DocumentStore` of one shard, on LMDB (or in memory with `--durability none`).
//!
//! `Xcap::handle` is synchronous and must not wait for an fsync on the executor. So writes
//! go to an in-memory *overlay* (the newest not-yet-committed state of each document) and are
//! *staged*; reads look at the overlay first, then at LMDB through a read transaction. After
//! `handle` returns, the node commits the staged writes off the executor ([`super::commit`])
//! and only then answers (durability `sync` semantics for XCAP, whatever `--durability` says
//! for SIP, as long as a data directory is in use).
//!
//! Keys: a user's documents are stored under the normalised AoR (`sip:user@domain`), so
//! they sit in the environment of the shard that owns that user, next to the user's SIP
//! state, and `--shards` changes move them with it. Global documents (none are stored today:
//! every global document is generated) use [`GLOBAL_USER`], which owner-hashes to shard 0.
//!
//! Cross-user reads (credentials, rls-services uniqueness) read the other shards'
//! environments directly: LMDB read transactions are fine from any thread. Writes staged
//! but not yet committed on *other* shards are not visible to those scans (a window of one
//! commit, ~1 ms).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use store::{
    ArchivedXcapRecord, RecordKey, Store, SubscriberRecord, XcapExpect, XcapKey, XcapWrite,
};
use xcap::etag::ETag;
use xcap::store::{Credentials, DocKey, DocumentStore, Expect, StoreError, StoredDoc};
use xcap::uri::{Scope, UserId};

use crate::persist::owner_fn;

/// `user` part of the key of global-tree documents (not an AoR: owner-hashes to shard 0).
pub const GLOBAL_USER: &[u8] = b"xcap-global";

/// Where one shard's documents live.
pub enum Backend {
    /// This shard's LMDB environment.
    Lmdb(Arc<Store>),
    /// `--durability none`: documents in memory only, lost on restart.
    Memory(RefCell<BTreeMap<DocKey, StoredDoc>>),
}

/// Newest staged state of a document whose write is not committed yet.
struct Pending {
    doc: Option<StoredDoc>,
    /// Staged writes of this key not yet committed (the entry goes when it reaches 0).
    inflight: u32,
}

/// One shard's documents plus read access to every shard's credentials.
pub struct ShardDocs {
    backend: Backend,
    /// Every shard's environment, index = shard (credentials, cross-user scans); empty when
    /// there is no data directory at all.
    all: Vec<Arc<Store>>,
    overlay: RefCell<HashMap<DocKey, Pending>>,
}

/// The normalised AoR of a user (the key every table uses).
pub fn user_key(user: &UserId) -> Vec<u8> {
    let aor = user.aor();
    match sip_parser::Aor::parse(aor.as_bytes()) {
        Ok(a) => a.as_bytes().to_vec(),
        Err(_) => aor.into_bytes(),
    }
}

fn scope_key(scope: &Scope) -> Vec<u8> {
    match scope {
        Scope::Global => GLOBAL_USER.to_vec(),
        Scope::User(u) => user_key(u),
    }
}

/// Inverse of `scope_key` for scans.
fn scope_of(user: &[u8]) -> Option<Scope> {
    if user == GLOBAL_USER {
        return Some(Scope::Global);
    }
    let s = std::str::from_utf8(user).ok()?;
    let s = s.strip_prefix("sip:").unwrap_or(s);
    let (u, d) = s.rsplit_once('@')?;
    Some(Scope::User(UserId {
        user: u.to_string(),
        domain: d.to_string(),
    }))
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

/// A stored document as the XCAP logic sees it; `None` when the record is valid for rkyv
/// but its tag is not one (`ArchivedXcapRecord::etag_str`): such a document is served as
/// absent, as one that fails validation is, so its user can write it anew.
pub fn stored_doc(rec: &ArchivedXcapRecord) -> Option<StoredDoc> {
    Some(StoredDoc {
        etag: ETag(rec.etag_str()?.to_owned()),
        bytes: rec.doc.as_slice().to_vec(),
    })
}

/// Digest credentials from a `subscriber` record: an empty HA1 is not provisioned.
pub fn credentials_of(rec: SubscriberRecord) -> Credentials {
    let nonempty = |s: String| (!s.is_empty()).then_some(s);
    Credentials {
        ha1_md5: nonempty(rec.ha1_md5),
        ha1_sha256: nonempty(rec.ha1_sha256),
    }
}

impl ShardDocs {
    pub fn new(backend: Backend, all: Vec<Arc<Store>>) -> Self {
        ShardDocs {
            backend,
            all,
            overlay: RefCell::new(HashMap::new()),
        }
    }

    pub fn is_durable(&self) -> bool {
        matches!(self.backend, Backend::Lmdb(_))
    }

    /// A view for one `Xcap::handle` call; its `staged` writes must then be committed.
    pub fn view(&self) -> View<'_> {
        View {
            docs: self,
            staged: Vec::new(),
        }
    }

    fn read_committed(&self, key: &DocKey) -> Result<Option<StoredDoc>, StoreError> {
        match &self.backend {
            Backend::Memory(m) => Ok(m.borrow().get(key).cloned()),
            Backend::Lmdb(st) => {
                let user = scope_key(&key.scope);
                let k = XcapKey {
                    user: &user,
                    auid: key.auid.as_bytes(),
                    document: key.path.as_bytes(),
                };
                let txn = st.read_txn().map_err(io)?;
                match st.get_xcap(&txn, k) {
                    Ok(None) => Ok(None),
                    Ok(Some(r)) => {
                        let doc = stored_doc(r);
                        if doc.is_none() {
                            tracing::warn!(
                                user = %String::from_utf8_lossy(&user),
                                auid = %key.auid,
                                document = %key.path,
                                "XCAP document has a malformed ETag: served as absent"
                            );
                        }
                        Ok(doc)
                    }
                    // A key LMDB cannot hold (too long) simply does not exist.
                    Err(store::StoreError::InvalidKey { .. }) => Ok(None),
                    // Nor does a document that cannot be read (`Store::get_xcap_readable`):
                    // its user can write it anew.
                    Err(e) if e.is_unreadable_record() => {
                        tracing::warn!(error = %e, "XCAP document cannot be read: served as absent");
                        Ok(None)
                    }
                    Err(e) => Err(io(e)),
                }
            }
        }
    }

    fn current(&self, key: &DocKey) -> Result<Option<StoredDoc>, StoreError> {
        if let Some(p) = self.overlay.borrow().get(key) {
            return Ok(p.doc.clone());
        }
        self.read_committed(key)
    }

    /// A staged write of `key` was committed (or failed): forget it from the overlay once
    /// no later write of the same key is still in flight.
    pub fn settle(&self, key: &DocKey) {
        let mut ov = self.overlay.borrow_mut();
        if let Some(p) = ov.get_mut(key) {
            p.inflight = p.inflight.saturating_sub(1);
            if p.inflight == 0 {
                ov.remove(key);
            }
        }
    }

    fn stage(
        &self,
        staged: &mut Vec<(DocKey, XcapWrite)>,
        key: &DocKey,
        expect: &Expect,
        new: Option<StoredDoc>,
    ) -> Result<(), StoreError> {
        let cur = self.current(key)?;
        let ok = match (expect, &cur) {
            (Expect::Absent, None) => true,
            (Expect::Tag(t), Some(c)) => &c.etag == t,
            _ => false,
        };
        if !ok {
            return Err(StoreError::Changed);
        }
        match &self.backend {
            Backend::Memory(m) => {
                let mut m = m.borrow_mut();
                match new {
                    Some(d) => m.insert(key.clone(), d),
                    None => m.remove(key),
                };
            }
            Backend::Lmdb(_) => {
                let write = XcapWrite {
                    user: scope_key(&key.scope),
                    auid: key.auid.as_bytes().to_vec(),
                    document: key.path.as_bytes().to_vec(),
                    expect: match cur {
                        None => XcapExpect::Absent,
                        Some(c) => XcapExpect::ETag(c.etag.0.into_bytes()),
                    },
                    new: new
                        .as_ref()
                        .map(|d| (d.etag.0.as_bytes().to_vec(), d.bytes.clone())),
                };
                // Refuse at once what LMDB would refuse at commit.
                write.key().to_vec().map_err(io)?;
                let mut ov = self.overlay.borrow_mut();
                let p = ov.entry(key.clone()).or_insert(Pending {
                    doc: None,
                    inflight: 0,
                });
                p.doc = new;
                p.inflight += 1;
                staged.push((key.clone(), write));
            }
        }
        Ok(())
    }

    fn credentials(&self, user: &str, domain: &str) -> Result<Option<Credentials>, StoreError> {
        if self.all.is_empty() {
            return Ok(None);
        }
        let domain = domain.to_ascii_lowercase();
        let owner = owner_fn(self.all.len() as u16)(format!("sip:{user}@{domain}").as_bytes());
        let st = &self.all[(owner as usize).min(self.all.len() - 1)];
        let rec = st
            .xcap_credentials(user.as_bytes(), domain.as_bytes())
            .map_err(io)?;
        Ok(rec.map(credentials_of))
    }
}

/// The `DocumentStore` one request sees.
pub struct View<'a> {
    docs: &'a ShardDocs,
    /// Writes to commit before answering, in order.
    pub staged: Vec<(DocKey, XcapWrite)>,
}

impl DocumentStore for View<'_> {
    fn get(&self, key: &DocKey) -> Result<Option<StoredDoc>, StoreError> {
        self.docs.current(key)
    }

    fn put(&mut self, key: &DocKey, expect: &Expect, doc: StoredDoc) -> Result<(), StoreError> {
        self.docs.stage(&mut self.staged, key, expect, Some(doc))
    }

    fn delete(&mut self, key: &DocKey, expect: &ETag) -> Result<(), StoreError> {
        self.docs
            .stage(&mut self.staged, key, &Expect::Tag(expect.clone()), None)
    }

    fn list_user(&self, user: &UserId) -> Result<Vec<(String, String, ETag)>, StoreError> {
        let mut out: BTreeMap<(String, String), ETag> = BTreeMap::new();
        match &self.docs.backend {
            Backend::Memory(m) => {
                for (k, d) in m.borrow().iter() {
                    if matches!(&k.scope, Scope::User(u) if u == user) {
                        out.insert((k.auid.clone(), k.path.clone()), d.etag.clone());
                    }
                }
            }
            Backend::Lmdb(st) => {
                let txn = st.read_txn().map_err(io)?;
                for item in st.xcap_documents_of(&txn, &user_key(user)).map_err(io)? {
                    let (k, rec) = match item {
                        Ok(kv) => kv,
                        Err(e) if e.is_unreadable_record() => continue,
                        Err(e) => return Err(io(e)),
                    };
                    // A malformed tag: served as absent, so not listed either.
                    let Some(etag) = rec.etag_str() else { continue };
                    out.insert(
                        (
                            String::from_utf8_lossy(k.auid).into_owned(),
                            String::from_utf8_lossy(k.document).into_owned(),
                        ),
                        ETag(etag.to_owned()),
                    );
                }
                for (k, p) in self.docs.overlay.borrow().iter() {
                    if !matches!(&k.scope, Scope::User(u) if u == user) {
                        continue;
                    }
                    let id = (k.auid.clone(), k.path.clone());
                    match &p.doc {
                        Some(d) => out.insert(id, d.etag.clone()),
                        None => out.remove(&id),
                    };
                }
            }
        }
        Ok(out.into_iter().map(|((a, p), e)| (a, p, e)).collect())
    }

    fn for_each_in_auid(
        &self,
        auid: &str,
        f: &mut dyn FnMut(&DocKey, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        if let Backend::Memory(m) = &self.docs.backend {
            for (k, d) in m.borrow().iter() {
                if k.auid == auid && !f(k, &d.bytes) {
                    return Ok(());
                }
            }
            return Ok(());
        }
        let overlay = self.docs.overlay.borrow();
        for st in &self.docs.all {
            let txn = st.read_txn().map_err(io)?;
            let mut go = true;
            st.for_each_xcap_in_auid(&txn, auid.as_bytes(), &mut |user, doc, rec| {
                let Some(scope) = scope_of(user) else {
                    return true;
                };
                let key = DocKey {
                    auid: auid.to_string(),
                    scope,
                    path: String::from_utf8_lossy(doc).into_owned(),
                };
                // Staged newer state is visited below.
                if overlay.contains_key(&key) {
                    return true;
                }
                go = f(&key, rec.doc.as_slice());
                go
            })
            .map_err(io)?;
            if !go {
                return Ok(());
            }
        }
        for (k, p) in overlay.iter() {
            if let (true, Some(d)) = (k.auid == auid, &p.doc) {
                if !f(k, &d.bytes) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn credentials(&self, user: &str, domain: &str) -> Result<Option<Credentials>, StoreError> {
        self.docs.credentials(user, domain)
    }
}
