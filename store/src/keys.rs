//! Key layout. Keys start with the AoR that decides the owning shard, followed by the other
//! parts, separated by a NUL byte (which never appears in SIP/XCAP text; we reject it
//! everywhere but in the last part). So a prefix scan on `aor\0` yields everything of one
//! presentity, `aor\0event\0` one event, and byte order groups a presentity's records together.
//!
//! The exception is `active_watchers`, the table that grows with every new SUBSCRIBE: its key
//! starts with the dialog id and ends with the AoR. Ids grow with the core's slab slots, so a
//! burst of new dialogs appends to the last pages of the B-tree instead of dirtying one random
//! page each (what a durable commit writes and flushes).

use std::borrow::Cow;

use crate::error::{Result, StoreError};

pub(crate) const SEP: u8 = 0;

/// Longest record key we accept (LMDB's limit is 511 bytes).
pub const MAX_KEY_LEN: usize = 500;

/// Whether `p` holds a NUL byte ([`SEP`]). `memchr` rather than `<[u8]>::contains`, which
/// went through libcore's generic `memchr` per key part, a visible share of a log append.
fn has_nul(p: &[u8]) -> bool {
    const _: () = assert!(SEP == 0);
    memchr::memchr(SEP, p).is_some()
}

fn encode_parts(table: &'static str, parts: &[&[u8]], out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    // One allocation per key (keys are built for every write of the server's commits).
    out.reserve(parts.iter().map(|p| p.len() + 1).sum());
    let last = parts.len() - 1;
    for (i, p) in parts.iter().enumerate() {
        if i < last && has_nul(p) {
            return Err(StoreError::InvalidKey {
                table,
                detail: "key part contains a NUL byte",
            });
        }
        if i < last && p.is_empty() {
            return Err(StoreError::InvalidKey {
                table,
                detail: "empty key part",
            });
        }
        out.extend_from_slice(p);
        if i < last {
            out.push(SEP);
        }
    }
    if out.len() > MAX_KEY_LEN {
        return Err(StoreError::InvalidKey {
            table,
            detail: "key longer than 500 bytes",
        });
    }
    Ok(())
}

/// Splits into exactly `N` parts at the first `N-1` separators.
fn decode_parts<const N: usize>(bytes: &[u8]) -> Option<[&[u8]; N]> {
    let mut out: [&[u8]; N] = [&[]; N];
    let mut rest = bytes;
    for slot in out.iter_mut().take(N - 1) {
        let i = memchr_sep(rest)?;
        *slot = &rest[..i];
        rest = &rest[i + 1..];
    }
    out[N - 1] = rest;
    Some(out)
}

fn memchr_sep(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == SEP)
}

/// `presentity` key: one publication. `pub_id` names the publication for its whole life
/// (herald uses the first ETag it was given); the current ETag is in the record, so a
/// refresh or modification overwrites one value instead of moving it to a new key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PresentityKey<'a> {
    pub presentity: &'a [u8],
    pub event: &'a [u8],
    pub pub_id: &'a [u8],
}

/// `active_watchers` key: one subscription dialog, encoded `dialog_id \0 presentity` (see the
/// module docs). `dialog_id` is chosen by the core and must be unique per presentity; herald
/// uses its dialog id as 16 hex digits, so keys sort by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionKey<'a> {
    pub presentity: &'a [u8],
    pub dialog_id: &'a [u8],
}

/// `watchers` key: authorisation of `watcher` for `presentity`/`event`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WatcherKey<'a> {
    pub presentity: &'a [u8],
    pub event: &'a [u8],
    pub watcher: &'a [u8],
}

/// `xcap` key: document `document` of application `auid` of user `user` (an AoR,
/// `sip:user@domain`, so it lands on the same shard as that user's presence).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct XcapKey<'a> {
    pub user: &'a [u8],
    pub auid: &'a [u8],
    pub document: &'a [u8],
}

/// `subscriber` key: credentials of `user@domain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriberKey<'a> {
    pub user: &'a [u8],
    pub domain: &'a [u8],
}

/// Shared behaviour of record keys.
pub trait RecordKey<'a>: Sized {
    const TABLE: &'static str;
    fn encode(&self, out: &mut Vec<u8>) -> Result<()>;
    fn decode(bytes: &'a [u8]) -> Option<Self>;
    /// The AoR whose shard owns this record (input of the shard function).
    fn owner_aor(&self) -> Cow<'a, [u8]>;

    fn to_vec(&self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.encode(&mut v)?;
        Ok(v)
    }
}

impl<'a> RecordKey<'a> for PresentityKey<'a> {
    const TABLE: &'static str = "presentity";
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        encode_parts(
            Self::TABLE,
            &[self.presentity, self.event, self.pub_id],
            out,
        )
    }
    fn decode(bytes: &'a [u8]) -> Option<Self> {
        let [presentity, event, pub_id] = decode_parts::<3>(bytes)?;
        Some(PresentityKey {
            presentity,
            event,
            pub_id,
        })
    }
    fn owner_aor(&self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self.presentity)
    }
}

impl<'a> RecordKey<'a> for SubscriptionKey<'a> {
    const TABLE: &'static str = "active_watchers";
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        encode_parts(Self::TABLE, &[self.dialog_id, self.presentity], out)
    }
    fn decode(bytes: &'a [u8]) -> Option<Self> {
        let [dialog_id, presentity] = decode_parts::<2>(bytes)?;
        Some(SubscriptionKey {
            presentity,
            dialog_id,
        })
    }
    fn owner_aor(&self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self.presentity)
    }
}

impl<'a> RecordKey<'a> for WatcherKey<'a> {
    const TABLE: &'static str = "watchers";
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        encode_parts(
            Self::TABLE,
            &[self.presentity, self.event, self.watcher],
            out,
        )
    }
    fn decode(bytes: &'a [u8]) -> Option<Self> {
        let [presentity, event, watcher] = decode_parts::<3>(bytes)?;
        Some(WatcherKey {
            presentity,
            event,
            watcher,
        })
    }
    fn owner_aor(&self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self.presentity)
    }
}

impl<'a> RecordKey<'a> for XcapKey<'a> {
    const TABLE: &'static str = "xcap";
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        encode_parts(Self::TABLE, &[self.user, self.auid, self.document], out)
    }
    fn decode(bytes: &'a [u8]) -> Option<Self> {
        let [user, auid, document] = decode_parts::<3>(bytes)?;
        Some(XcapKey {
            user,
            auid,
            document,
        })
    }
    fn owner_aor(&self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self.user)
    }
}

impl<'a> RecordKey<'a> for SubscriberKey<'a> {
    const TABLE: &'static str = "subscriber";
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        encode_parts(Self::TABLE, &[self.user, self.domain], out)
    }
    fn decode(bytes: &'a [u8]) -> Option<Self> {
        let [user, domain] = decode_parts::<2>(bytes)?;
        Some(SubscriberKey { user, domain })
    }
    /// `sip:user@domain`, the AoR XCAP and SIP requests of this user hash to.
    fn owner_aor(&self) -> Cow<'a, [u8]> {
        let mut v = Vec::with_capacity(5 + self.user.len() + self.domain.len());
        v.extend_from_slice(b"sip:");
        v.extend_from_slice(self.user);
        v.push(b'@');
        v.extend_from_slice(self.domain);
        Cow::Owned(v)
    }
}

/// Prefix selecting every record of `aor` in the presentity-keyed tables.
pub fn aor_prefix(aor: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(aor.len() + 1);
    v.extend_from_slice(aor);
    v.push(SEP);
    v
}

/// Tables whose records expire (publications and subscription dialogs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExpiringTable {
    Presentity,
    ActiveWatchers,
}

impl ExpiringTable {
    pub fn name(self) -> &'static str {
        match self {
            ExpiringTable::Presentity => "presentity",
            ExpiringTable::ActiveWatchers => "active_watchers",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_nul_finds_a_nul_anywhere() {
        for len in 0..40 {
            let mut p = vec![b'a'; len];
            assert!(!has_nul(&p));
            for at in 0..len {
                p[at] = 0;
                assert!(has_nul(&p), "len {len} at {at}");
                p[at] = 0x80;
                assert!(!has_nul(&p), "0x80, len {len} at {at}");
                p[at] = b'a';
            }
        }
    }

    #[test]
    fn presentity_key_round_trip_and_prefix() {
        let k = PresentityKey {
            presentity: b"sip:a@x",
            event: b"presence",
            pub_id: b"e1",
        };
        let v = k.to_vec().unwrap();
        assert!(v.starts_with(&aor_prefix(b"sip:a@x")));
        assert!(!v.starts_with(&aor_prefix(b"sip:a@")));
        assert_eq!(PresentityKey::decode(&v), Some(k));
    }

    #[test]
    fn nul_rejected_except_last() {
        let k = PresentityKey {
            presentity: b"sip:a\0@x",
            event: b"presence",
            pub_id: b"e1",
        };
        assert!(k.to_vec().is_err());
        let k = SubscriptionKey {
            presentity: b"sip:a@x",
            dialog_id: b"x\0y",
        };
        assert!(k.to_vec().is_err(), "the dialog id comes first");
    }

    #[test]
    fn subscription_keys_sort_by_dialog_id() {
        let key = |presentity: &'static [u8], dialog_id: &'static [u8]| {
            SubscriptionKey {
                presentity,
                dialog_id,
            }
            .to_vec()
            .unwrap()
        };
        let (a, b) = (key(b"sip:z@x", b"0001"), key(b"sip:a@x", b"0002"));
        assert!(a < b);
        let k = SubscriptionKey {
            presentity: b"sip:a@x",
            dialog_id: b"00000000000000ab",
        };
        assert_eq!(SubscriptionKey::decode(&k.to_vec().unwrap()), Some(k));
    }
}
