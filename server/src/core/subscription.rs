//! Subscription dialogs (RFC 6665 §4.1, §4.2): one per SUBSCRIBE dialog, keyed by the id
//! encoded in our To-tag, which names the dialog's slot, so an in-dialog request or a
//! NOTIFY response finds its dialog with one array index.
//!
//! All of a dialog's strings live in one boxed slice addressed by `u16` ends: one
//! allocation per subscription instead of one per field.

use super::auth::AuthDecision;
use super::package::PkgId;
use super::persist::SubStatus;
use super::slab::Slab;
use super::transaction::client::NotifyTx;
use super::transaction::IdMap;
use super::{ConnId, Instant, Peer, Transport};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Why a subscription ended (Subscription-State `reason`, RFC 6665 §4.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TermReason {
    Timeout,
    Noresource,
    Deactivated,
    Rejected,
}

impl TermReason {
    pub fn as_str(self) -> &'static str {
        match self {
            TermReason::Timeout => "timeout",
            TermReason::Noresource => "noresource",
            TermReason::Deactivated => "deactivated",
            TermReason::Rejected => "rejected",
        }
    }
    pub fn parse(b: &[u8]) -> Option<TermReason> {
        Some(match b {
            b"timeout" => TermReason::Timeout,
            b"noresource" => TermReason::Noresource,
            b"deactivated" => TermReason::Deactivated,
            b"rejected" => TermReason::Rejected,
            _ => return None,
        })
    }
}

/// Dialog strings, in `Subscription::strs` order.
#[derive(Clone, Copy, Debug)]
pub struct DialogStrings<'a> {
    pub call_id: &'a [u8],
    /// Watcher's tag (From tag of the SUBSCRIBE).
    pub from_tag: &'a [u8],
    /// SUBSCRIBE From value as received (with its tag): NOTIFY To.
    pub from_hdr: &'a [u8],
    /// SUBSCRIBE To value as received (without tag): NOTIFY From, plus our tag.
    pub to_hdr: &'a [u8],
    /// Remote target: NOTIFY Request-URI.
    pub contact: &'a [u8],
    /// Record-Route values joined by ", ": NOTIFY Route.
    pub routes: &'a [u8],
    pub event_id: Option<&'a [u8]>,
}

/// Most bytes of dialog strings one subscription keeps (ends are stored as `u16`); the
/// SUBSCRIBE path refuses larger dialogs with 400 before creating one.
pub const MAX_DIALOG_STRINGS: usize = u16::MAX as usize;

/// One subscription dialog. Kept small (it is what a held subscription costs): every
/// string in one boxed slice addressed by `u16` ends, the NOTIFY transaction boxed (it
/// exists only while a NOTIFY is in flight), flags as bytes.
#[derive(Debug)]
pub struct Subscription {
    pub id: u64,
    /// When the subscription expires as granted (the expiry timer adds `expires_offset`).
    pub expires_at: Instant,
    /// Token of the one live expiry timer (stale heap entries carry older tokens).
    pub expiry_token: u32,
    /// Deadline that timer was armed for.
    pub expiry_armed: Instant,
    /// Times the dialog was stored (the `version` column of `active_watchers`).
    pub version: u32,
    /// Persist sequence of the op that must be durable before NOTIFYs may leave.
    pub gate: u64,
    /// call-id, from-tag, from, to, contact, routes, event-id, back to back.
    strs: Box<[u8]>,
    pub tx: Option<Box<NotifyTx>>,
    /// Presentity AoR hash (in our To-tag; decides the shard).
    pub hash: u32,
    /// Presentity slot.
    pub pres: u32,
    pub remote_cseq: u32,
    pub local_cseq: u32,
    /// Where NOTIFYs go (`Subscription::peer`).
    peer: StoredPeer,
    /// End offset in `strs` of each string but the last (which ends with `strs`), in
    /// `DialogStrings` order.
    ends: [u16; 6],
    pub pkg: PkgId,
    /// `HAS_EVENT_ID` | `TAG_IN_FROM`.
    flags: u8,
    pub status: SubStatus,
    pub reason: Option<TermReason>,
    pub auth: AuthDecision,
    /// State changed since the last NOTIFY was built: one more NOTIFY is owed.
    pub pending: bool,
    /// An `Out::Notify` or `Out::TimerNotify` for this dialog sits in a transmit queue.
    pub queued: bool,
    /// A PutSubscription was emitted (so removal must emit a DeleteSubscription).
    pub stored: bool,
}

impl DialogStrings<'_> {
    /// Bytes the strings take in a subscription.
    pub fn len(&self) -> usize {
        self.call_id.len()
            + self.from_tag.len()
            + self.from_hdr.len()
            + self.to_hdr.len()
            + self.contact.len()
            + self.routes.len()
            + self.event_id.map_or(0, <[u8]>::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A [`Peer`] as a subscription keeps it: 36 bytes instead of 56 (`SocketAddr` is an enum
/// sized for IPv6, `Option<ConnId>` doubles a `u64`), every field kept.
#[derive(Clone, Copy, Debug)]
struct StoredPeer {
    ip: [u8; 16],
    scope_id: u32,
    flowinfo: u32,
    /// `ConnId` as two halves, so the struct needs only 4-byte alignment.
    conn: [u32; 2],
    port: u16,
    transport: Transport,
    /// `PEER_V6` | `PEER_CONN`.
    kind: u8,
}

const PEER_V6: u8 = 1;
const PEER_CONN: u8 = 2;

impl From<Peer> for StoredPeer {
    fn from(p: Peer) -> StoredPeer {
        let (ip, scope_id, flowinfo, v6) = match p.addr {
            SocketAddr::V4(a) => (a.ip().to_ipv6_mapped().octets(), 0, 0, 0),
            SocketAddr::V6(a) => (a.ip().octets(), a.scope_id(), a.flowinfo(), PEER_V6),
        };
        let (conn, has_conn) = match p.conn {
            Some(ConnId(c)) => ([c as u32, (c >> 32) as u32], PEER_CONN),
            None => ([0; 2], 0),
        };
        StoredPeer {
            ip,
            scope_id,
            flowinfo,
            conn,
            port: p.addr.port(),
            transport: p.transport,
            kind: v6 | has_conn,
        }
    }
}

impl StoredPeer {
    fn peer(&self) -> Peer {
        let addr = if self.kind & PEER_V6 != 0 {
            SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(self.ip),
                self.port,
                self.flowinfo,
                self.scope_id,
            ))
        } else {
            let [.., a, b, c, d] = self.ip;
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), self.port))
        };
        Peer {
            transport: self.transport,
            addr,
            conn: (self.kind & PEER_CONN != 0)
                .then(|| ConnId(u64::from(self.conn[0]) | u64::from(self.conn[1]) << 32)),
        }
    }
}

// What a held subscription costs in the slab (issue 5's memory goal); grows only on purpose.
const _: () = assert!(std::mem::size_of::<Option<Subscription>>() <= 136);

/// `Subscription::flags`: the dialog has an Event `id` (the last string).
const HAS_EVENT_ID: u8 = 1;
/// `Subscription::flags`: the From tag is the tail of the From value (as it almost always
/// is) and is stored once, there: the seven strings are six, and `ends[1]` is where the
/// tag starts inside the From value rather than where a separate tag ends.
const TAG_IN_FROM: u8 = 2;

/// The dialog strings `strs`, `ends` and `flags` describe.
fn strings_of<'a>(strs: &'a [u8], ends: &[u16; 6], flags: u8) -> DialogStrings<'a> {
    let p = |i| part(strs, ends, i);
    let (from_tag, from_hdr) = if flags & TAG_IN_FROM != 0 {
        (p(2), &strs[ends[0] as usize..ends[2] as usize])
    } else {
        (p(1), p(2))
    };
    DialogStrings {
        call_id: p(0),
        from_tag,
        from_hdr,
        to_hdr: p(3),
        contact: p(4),
        routes: p(5),
        event_id: (flags & HAS_EVENT_ID != 0).then(|| p(6)),
    }
}

/// The `i`-th dialog string of `strs` as `Subscription::ends` delimits them.
fn part<'a>(strs: &'a [u8], ends: &[u16; 6], i: usize) -> &'a [u8] {
    let start = match i.checked_sub(1) {
        Some(prev) => ends[prev] as usize,
        None => 0,
    };
    let end = ends.get(i).map_or(strs.len(), |&e| e as usize);
    &strs[start..end]
}

impl Subscription {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        hash: u32,
        pres: u32,
        pkg: PkgId,
        s: DialogStrings<'_>,
        remote_cseq: u32,
        peer: Peer,
        expires_at: Instant,
    ) -> Subscription {
        let mut sub = Subscription {
            id,
            expires_at,
            expiry_token: 0,
            expiry_armed: Instant(0),
            version: 0,
            gate: 0,
            peer: peer.into(),
            strs: Box::default(),
            tx: None,
            hash,
            pres,
            remote_cseq,
            local_cseq: 0,
            ends: [0; 6],
            pkg,
            flags: 0,
            status: SubStatus::Active,
            reason: None,
            auth: AuthDecision::Active,
            pending: false,
            queued: false,
            stored: false,
        };
        sub.set_strings(s);
        sub
    }

    fn set_strings(&mut self, s: DialogStrings<'_>) {
        // The SUBSCRIBE path refuses larger dialogs; a restored record that is larger
        // (only possible if the limit changed) loses its route set rather than wrapping.
        let routes = if s.len() > MAX_DIALOG_STRINGS {
            &[][..]
        } else {
            s.routes
        };
        let tag_in_from = !s.from_tag.is_empty() && s.from_hdr.ends_with(s.from_tag);
        let (second, third) = if tag_in_from {
            s.from_hdr.split_at(s.from_hdr.len() - s.from_tag.len())
        } else {
            (s.from_tag, s.from_hdr)
        };
        let parts = [
            s.call_id,
            second,
            third,
            s.to_hdr,
            s.contact,
            routes,
            s.event_id.unwrap_or_default(),
        ];
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut strs = Vec::with_capacity(total.min(MAX_DIALOG_STRINGS));
        for (i, p) in parts.iter().enumerate() {
            let room = MAX_DIALOG_STRINGS - strs.len();
            strs.extend_from_slice(&p[..p.len().min(room)]);
            if let Some(end) = self.ends.get_mut(i) {
                *end = strs.len() as u16;
            }
        }
        self.flags = if s.event_id.is_some() {
            HAS_EVENT_ID
        } else {
            0
        } | if tag_in_from { TAG_IN_FROM } else { 0 };
        self.strs = strs.into_boxed_slice();
    }

    /// Where this dialog's NOTIFYs go: the SUBSCRIBE's source, or the connection it came on.
    pub fn peer(&self) -> Peer {
        self.peer.peer()
    }

    pub fn set_peer(&mut self, peer: Peer) {
        self.peer = peer.into();
    }

    pub fn transport(&self) -> Transport {
        self.peer.transport
    }

    pub fn strings(&self) -> DialogStrings<'_> {
        strings_of(&self.strs, &self.ends, self.flags)
    }

    /// Target refresh (RFC 6665 §4.1.2.1): a refreshing SUBSCRIBE may move the Contact.
    /// A NOTIFY in flight keeps the Request-URI it was sent to, for its retransmissions.
    pub fn set_contact(&mut self, contact: &[u8]) {
        // `strings_of` on the fields, not `strings()`: `self.tx` is borrowed alongside.
        let sent_to = strings_of(&self.strs, &self.ends, self.flags).contact;
        if contact != sent_to {
            if let Some(tx) = self.tx.as_mut() {
                if tx.content.old_contact.is_none() {
                    tx.content.old_contact = Some(sent_to.into());
                }
            }
            let old = std::mem::take(&mut self.strs);
            let ends = self.ends;
            self.set_strings(DialogStrings {
                contact,
                ..strings_of(&old, &ends, self.flags)
            });
        }
    }

    /// Live = not terminated: it owes NOTIFYs on state change and has an expiry timer.
    pub fn is_live(&self) -> bool {
        self.status != SubStatus::Terminated
    }

    /// Seconds left, rounded up, for `Subscription-State: ...;expires=`.
    pub fn remaining_secs(&self, now: Instant) -> u32 {
        let ms = self.expires_at.0.saturating_sub(now.0);
        ms.div_ceil(1000).min(u32::MAX as u64) as u32
    }
}

/// Every dialog of the shard, in a dense [`Slab`] (a held subscription touches only its
/// own bytes).
///
/// A dialog id minted here names its slot: `slot << 32 | salt`, the salt random (so ids
/// never repeat across restarts and a stale tag does not match a reused slot). Finding a
/// dialog is then an array index plus an id compare, with no hash index to keep per
/// subscription. Ids minted elsewhere (dialogs restored from the store, minted by an
/// earlier run maybe with another shard count) sit in whatever slot is free and are found
/// through the small `moved` map. The API mirrors the `HashMap<u64, Subscription>` it
/// replaced.
#[derive(Debug, Default)]
pub struct Subscriptions {
    slab: Slab<Subscription>,
    /// Dialogs whose id does not name their slot: id → slot.
    moved: IdMap<u32>,
}

/// The slot a minted dialog id names.
fn named_slot(id: u64) -> u32 {
    (id >> 32) as u32
}

impl Subscriptions {
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    pub fn contains_key(&self, id: &u64) -> bool {
        self.locate(*id).is_some()
    }

    /// The slot holding dialog `id`.
    fn locate(&self, id: u64) -> Option<u32> {
        let named = named_slot(id);
        if self.slab.get(named).is_some_and(|s| s.id == id) {
            return Some(named);
        }
        if self.moved.is_empty() {
            return None;
        }
        self.moved.get(&id).copied()
    }

    /// A dialog id naming the slot the next `insert` fills, with `salt` as its low half.
    /// The caller must check it is non-zero and not in use (`contains_key`): a restored
    /// dialog may hold it already.
    pub fn vacant_id(&self, salt: u32) -> u64 {
        (u64::from(self.slab.next_slot()) << 32) | u64::from(salt)
    }

    pub fn get(&self, id: &u64) -> Option<&Subscription> {
        self.slab.get(self.locate(*id)?)
    }

    pub fn get_mut(&mut self, id: &u64) -> Option<&mut Subscription> {
        let slot = self.locate(*id)?;
        self.slab.get_mut(slot)
    }

    /// Inserts `sub` under `id`, returning the subscription it replaces.
    pub fn insert(&mut self, id: u64, sub: Subscription) -> Option<Subscription> {
        debug_assert_eq!(id, sub.id);
        if let Some(slot) = self.locate(id) {
            return self.slab.get_mut(slot).map(|s| std::mem::replace(s, sub));
        }
        let slot = self.slab.insert(sub);
        if slot != named_slot(id) {
            self.moved.insert(id, slot);
        }
        None
    }

    pub fn remove(&mut self, id: &u64) -> Option<Subscription> {
        let slot = self.locate(*id)?;
        if slot != named_slot(*id) {
            self.moved.remove(id);
        }
        self.slab.remove(slot)
    }

    /// Every dialog, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &Subscription)> {
        self.slab.iter().map(|(_, s)| (&s.id, s))
    }
}

impl<'a> IntoIterator for &'a Subscriptions {
    type Item = (&'a u64, &'a Subscription);
    type IntoIter = Box<dyn Iterator<Item = (&'a u64, &'a Subscription)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Transport;

    fn strings<'a>(contact: &'a [u8], event_id: Option<&'a [u8]>) -> DialogStrings<'a> {
        DialogStrings {
            call_id: b"cid@h",
            from_tag: b"ft",
            from_hdr: b"<sip:w@x>;tag=ft",
            to_hdr: b"<sip:p@x>",
            contact,
            routes: b"<sip:proxy;lr>",
            event_id,
        }
    }

    fn sub(s: DialogStrings<'_>) -> Subscription {
        let peer = Peer {
            transport: Transport::Udp,
            addr: "127.0.0.1:5060".parse().unwrap(),
            conn: None,
        };
        Subscription::new(7, 1, 2, 0, s, 1, peer, Instant(0))
    }

    #[test]
    fn strings_round_trip_and_contact_moves() {
        let mut s = sub(strings(b"sip:w@1.2.3.4", Some(b"e1")));
        let got = s.strings();
        assert_eq!(got.call_id, b"cid@h");
        assert_eq!(got.from_tag, b"ft");
        assert_eq!(got.routes, b"<sip:proxy;lr>");
        assert_eq!(got.event_id, Some(&b"e1"[..]));
        s.set_contact(b"sip:w@5.6.7.8:5070");
        let got = s.strings();
        assert_eq!(got.contact, b"sip:w@5.6.7.8:5070");
        assert_eq!(got.to_hdr, b"<sip:p@x>");
        assert_eq!(got.event_id, Some(&b"e1"[..]));
        let s = sub(strings(b"sip:w@h", None));
        assert_eq!(s.strings().event_id, None);
    }

    #[test]
    fn stored_peer_keeps_every_field() {
        let v6 = SocketAddrV6::new("fe80::1".parse().unwrap(), 5061, 7, 3);
        for addr in [
            "127.0.0.1:5060".parse().unwrap(),
            "0.0.0.0:0".parse().unwrap(),
            "[::ffff:10.0.0.1]:5060".parse().unwrap(),
            "[2001:db8::5]:65535".parse().unwrap(),
            SocketAddr::V6(v6),
        ] {
            for conn in [
                None,
                Some(ConnId(0)),
                Some(ConnId(u64::MAX)),
                Some(ConnId(3 << 48 | 9)),
            ] {
                for transport in [Transport::Udp, Transport::Tcp] {
                    let p = Peer {
                        transport,
                        addr,
                        conn,
                    };
                    let mut s = sub(strings(b"sip:w@h", None));
                    s.set_peer(p);
                    assert_eq!(s.peer(), p);
                    assert_eq!(s.transport(), transport);
                }
            }
        }
    }

    #[test]
    fn from_tag_is_stored_once_when_it_ends_the_from_value() {
        let s = sub(strings(b"sip:w@h", None));
        assert_eq!(s.flags & TAG_IN_FROM, TAG_IN_FROM);
        assert_eq!(
            s.strs.len(),
            s.strings().len() - 2,
            "the tag is not repeated"
        );
        assert_eq!(s.strings().from_hdr, b"<sip:w@x>;tag=ft");
        // Tag elsewhere in the From value, or no tag: stored apart, read back as given.
        for (tag, from) in [
            (&b"ft"[..], &b"<sip:w@x>;tag=ft;x=1"[..]),
            (b"", b"<sip:w@x>"),
            (b"zz", b"<sip:w@x>;tag=ft"),
        ] {
            let mut d = strings(b"sip:w@h", Some(b"e"));
            d.from_tag = tag;
            d.from_hdr = from;
            let mut s = sub(d);
            s.set_contact(b"sip:w@9.9.9.9");
            let got = s.strings();
            assert_eq!((got.from_tag, got.from_hdr), (tag, from));
            assert_eq!(
                (got.call_id, got.to_hdr),
                (&b"cid@h"[..], &b"<sip:p@x>"[..])
            );
            assert_eq!(got.contact, b"sip:w@9.9.9.9");
            assert_eq!(got.event_id, Some(&b"e"[..]));
        }
    }

    #[test]
    fn held_subscription_stays_small() {
        // What a held subscription costs besides its strings: keep it in check.
        assert!(
            std::mem::size_of::<Subscription>() <= 160,
            "{}",
            std::mem::size_of::<Subscription>()
        );
    }

    #[test]
    fn slab_reuses_slots_and_iterates() {
        let mut t = Subscriptions::default();
        for id in 1..=3u64 {
            let mut s = sub(strings(b"sip:w@h", None));
            s.id = id;
            assert!(t.insert(id, s).is_none());
        }
        assert_eq!(t.len(), 3);
        assert!(t.remove(&2).is_some());
        assert!(t.get(&2).is_none());
        let mut s = sub(strings(b"sip:w@h", None));
        s.id = 9;
        t.insert(9, s);
        let mut ids: Vec<u64> = t.iter().map(|(id, _)| *id).collect();
        ids.sort();
        assert_eq!(ids, vec![1, 3, 9]);
        assert_eq!(t.get_mut(&9).map(|s| s.id), Some(9));
    }

    #[test]
    fn minted_ids_name_their_slot_and_foreign_ids_still_resolve() {
        let mut t = Subscriptions::default();
        let add = |t: &mut Subscriptions, id: u64| {
            let mut s = sub(strings(b"sip:w@h", None));
            s.id = id;
            assert!(t.insert(id, s).is_none());
        };
        let a = t.vacant_id(0xabc);
        add(&mut t, a);
        assert!(t.moved.is_empty(), "a minted id needs no index entry");
        let b = t.vacant_id(0xabc);
        assert_ne!(a, b);
        add(&mut t, b);
        // A restored id that names a slot someone else holds, and one naming no slot.
        let foreign = ((named_slot(a) as u64) << 32) | 0xdef;
        add(&mut t, foreign);
        add(&mut t, u64::MAX);
        assert_eq!(t.moved.len(), 2);
        for id in [a, b, foreign, u64::MAX] {
            assert_eq!(t.get(&id).map(|s| s.id), Some(id));
        }
        assert!(!t.contains_key(&((named_slot(b) as u64) << 32 | 0xdef)));
        assert!(t.remove(&a).is_some());
        assert!(t.get(&a).is_none());
        assert_eq!(t.get(&foreign).map(|s| s.id), Some(foreign));
        // The freed slot is minted again, with a new salt: the old id stays dead.
        let c = t.vacant_id(0x123);
        assert_eq!(named_slot(c), named_slot(a));
        add(&mut t, c);
        assert!(t.get(&a).is_none());
        assert!(t.remove(&foreign).is_some());
        assert!(t.remove(&u64::MAX).is_some());
        assert!(t.moved.is_empty());
        assert_eq!(t.len(), 2);
    }
}
