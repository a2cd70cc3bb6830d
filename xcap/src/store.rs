//! What the XCAP logic needs from storage, as a trait, plus an in-memory implementation for
//! tests. The server implements it on the LMDB store; every call is made on the shard that
//! owns the user, so the trait is synchronous and not `Send`-bound.

use std::collections::BTreeMap;

use crate::etag::ETag;
use crate::uri::{Scope, UserId};

/// Identifies one document: application usage, scope and path inside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocKey {
    pub auid: String,
    pub scope: Scope,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDoc {
    pub etag: ETag,
    pub bytes: Vec<u8>,
}

/// Compare-and-swap expectation for a write: what the caller last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The document must not exist (creation).
    Absent,
    /// The document must still carry this tag.
    Tag(ETag),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The document changed since it was read (maps to 412).
    Changed,
    /// Underlying storage failed (maps to 503).
    Io(String),
}

/// Credentials of a subscriber, as the `subscriber` table keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// hex MD5(user:realm:password).
    pub ha1_md5: Option<String>,
    /// hex SHA-256(user:realm:password) (RFC 7616).
    pub ha1_sha256: Option<String>,
}

pub trait DocumentStore {
    fn get(&self, key: &DocKey) -> Result<Option<StoredDoc>, StoreError>;
    fn put(&mut self, key: &DocKey, expect: &Expect, doc: StoredDoc) -> Result<(), StoreError>;
    fn delete(&mut self, key: &DocKey, expect: &ETag) -> Result<(), StoreError>;
    /// Documents of one user (for xcap-directory): (auid, path, etag).
    fn list_user(&self, user: &UserId) -> Result<Vec<(String, String, ETag)>, StoreError>;
    /// Visits every document of an application usage across all users (for constraints
    /// such as rls-services URI uniqueness). `f` returns false to stop early.
    fn for_each_in_auid(
        &self,
        auid: &str,
        f: &mut dyn FnMut(&DocKey, &[u8]) -> bool,
    ) -> Result<(), StoreError>;
    /// Subscriber credentials for `user@domain` (the realm is the domain).
    fn credentials(&self, user: &str, domain: &str) -> Result<Option<Credentials>, StoreError>;
}

/// In-memory store for tests and tools.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    docs: BTreeMap<DocKey, StoredDoc>,
    users: BTreeMap<(String, String), Credentials>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a subscriber with both HA1 forms computed from the password.
    pub fn add_user(&mut self, user: &str, domain: &str, password: &str) {
        let creds = Credentials {
            ha1_md5: Some(crate::auth::ha1_md5(user, domain, password)),
            ha1_sha256: Some(crate::auth::ha1_sha256(user, domain, password)),
        };
        self.users
            .insert((user.to_string(), domain.to_ascii_lowercase()), creds);
    }

    /// Adds a subscriber with the given credentials (e.g. only an imported MD5 HA1).
    pub fn add_credentials(&mut self, user: &str, domain: &str, creds: Credentials) {
        self.users
            .insert((user.to_string(), domain.to_ascii_lowercase()), creds);
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }
}

impl DocumentStore for MemStore {
    fn get(&self, key: &DocKey) -> Result<Option<StoredDoc>, StoreError> {
        Ok(self.docs.get(key).cloned())
    }

    fn put(&mut self, key: &DocKey, expect: &Expect, doc: StoredDoc) -> Result<(), StoreError> {
        let ok = match (expect, self.docs.get(key)) {
            (Expect::Absent, None) => true,
            (Expect::Tag(t), Some(cur)) => &cur.etag == t,
            _ => false,
        };
        if !ok {
            return Err(StoreError::Changed);
        }
        self.docs.insert(key.clone(), doc);
        Ok(())
    }

    fn delete(&mut self, key: &DocKey, expect: &ETag) -> Result<(), StoreError> {
        match self.docs.get(key) {
            Some(cur) if &cur.etag == expect => {
                self.docs.remove(key);
                Ok(())
            }
            _ => Err(StoreError::Changed),
        }
    }

    fn list_user(&self, user: &UserId) -> Result<Vec<(String, String, ETag)>, StoreError> {
        Ok(self
            .docs
            .iter()
            .filter(|(k, _)| matches!(&k.scope, Scope::User(u) if u == user))
            .map(|(k, d)| (k.auid.clone(), k.path.clone(), d.etag.clone()))
            .collect())
    }

    fn for_each_in_auid(
        &self,
        auid: &str,
        f: &mut dyn FnMut(&DocKey, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        for (k, d) in &self.docs {
            if k.auid == auid && !f(k, &d.bytes) {
                break;
            }
        }
        Ok(())
    }

    fn credentials(&self, user: &str, domain: &str) -> Result<Option<Credentials>, StoreError> {
        Ok(self
            .users
            .get(&(user.to_string(), domain.to_ascii_lowercase()))
            .cloned())
    }
}
