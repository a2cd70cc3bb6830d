//! Subscription dialogs (RFC 6665 §4.1, §4.2): one per SUBSCRIBE dialog, keyed by the id
//! encoded in our To-tag, so an in-dialog request or a NOTIFY response finds its dialog
//! with one integer probe.
//!
//! All of a dialog's strings live in one boxed slice addressed by `u16` ends: one
//! allocation per subscription instead of one per field.

use super::auth::AuthDecision;
use super::package::PkgId;
use super::persist::SubStatus;
use super::transaction::client::NotifyTx;
use super::transaction::IdMap;
use super::{Instant, Peer};

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
    pub version: u64,
    /// Persist sequence of the op that must be durable before NOTIFYs may leave.
    pub gate: u64,
    pub peer: Peer,
    /// call-id, from-tag, from, to, contact, routes, event-id, back to back.
    strs: Box<[u8]>,
    pub tx: Option<Box<NotifyTx>>,
    /// Presentity AoR hash (in our To-tag; decides the shard).
    pub hash: u32,
    /// Presentity slot.
    pub pres: u32,
    pub remote_cseq: u32,
    pub local_cseq: u32,
    /// End offset in `strs` of each string, in `DialogStrings` order.
    ends: [u16; 7],
    pub pkg: PkgId,
    has_event_id: bool,
    pub status: SubStatus,
    pub reason: Option<TermReason>,
    pub auth: AuthDecision,
    /// State changed since the last NOTIFY was built: one more NOTIFY is owed.
    pub pending: bool,
    /// An `Out::Notify` for this dialog sits in a transmit queue.
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
            peer,
            strs: Box::default(),
            tx: None,
            hash,
            pres,
            remote_cseq,
            local_cseq: 0,
            ends: [0; 7],
            pkg,
            has_event_id: false,
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
        let parts = [
            s.call_id,
            s.from_tag,
            s.from_hdr,
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
            self.ends[i] = strs.len() as u16;
        }
        self.has_event_id = s.event_id.is_some();
        self.strs = strs.into_boxed_slice();
    }

    fn part(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.strs[start..self.ends[i] as usize]
    }

    pub fn strings(&self) -> DialogStrings<'_> {
        DialogStrings {
            call_id: self.part(0),
            from_tag: self.part(1),
            from_hdr: self.part(2),
            to_hdr: self.part(3),
            contact: self.part(4),
            routes: self.part(5),
            event_id: self.has_event_id.then(|| self.part(6)),
        }
    }

    /// Target refresh (RFC 6665 §4.1.2.1): a refreshing SUBSCRIBE may move the Contact.
    pub fn set_contact(&mut self, contact: &[u8]) {
        if contact != self.strings().contact {
            let old = std::mem::take(&mut self.strs);
            let ends = self.ends;
            let part = |i: usize| {
                let start = if i == 0 { 0 } else { ends[i - 1] as usize };
                &old[start..ends[i] as usize]
            };
            let event_id = self.has_event_id.then(|| part(6));
            self.set_strings(DialogStrings {
                call_id: part(0),
                from_tag: part(1),
                from_hdr: part(2),
                to_hdr: part(3),
                contact,
                routes: part(5),
                event_id,
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

/// Subscriptions per slab chunk: chunks never move, so growing the table copies no
/// subscription and leaves no doubling slack.
const CHUNK: usize = 1024;

/// Every dialog of the shard: a chunked slab of subscriptions plus an id → slot index.
/// The API mirrors the `HashMap<u64, Subscription>` it replaced.
#[derive(Debug, Default)]
pub struct Subscriptions {
    chunks: Vec<Box<[Option<Subscription>]>>,
    free: Vec<u32>,
    index: IdMap<u32>,
}

impl Subscriptions {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn contains_key(&self, id: &u64) -> bool {
        self.index.contains_key(id)
    }

    fn slot(&self, slot: u32) -> Option<&Subscription> {
        let s = slot as usize;
        self.chunks.get(s / CHUNK)?.get(s % CHUNK)?.as_ref()
    }

    fn slot_mut(&mut self, slot: u32) -> Option<&mut Option<Subscription>> {
        let s = slot as usize;
        self.chunks.get_mut(s / CHUNK)?.get_mut(s % CHUNK)
    }

    pub fn get(&self, id: &u64) -> Option<&Subscription> {
        self.slot(*self.index.get(id)?)
    }

    pub fn get_mut(&mut self, id: &u64) -> Option<&mut Subscription> {
        let slot = *self.index.get(id)?;
        self.slot_mut(slot)?.as_mut()
    }

    /// Inserts `sub` under `id`, returning the subscription it replaces.
    pub fn insert(&mut self, id: u64, sub: Subscription) -> Option<Subscription> {
        if let Some(&slot) = self.index.get(&id) {
            return self.slot_mut(slot).and_then(|s| s.replace(sub));
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = (self.chunks.len() * CHUNK) as u32;
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.resize_with(CHUNK, || None);
                self.chunks.push(chunk.into_boxed_slice());
                self.free.extend((s + 1..s + CHUNK as u32).rev());
                s
            }
        };
        if let Some(s) = self.slot_mut(slot) {
            *s = Some(sub);
        }
        self.index.insert(id, slot);
        None
    }

    pub fn remove(&mut self, id: &u64) -> Option<Subscription> {
        let slot = self.index.remove(id)?;
        let sub = self.slot_mut(slot)?.take();
        self.free.push(slot);
        sub
    }

    /// Every dialog, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &Subscription)> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .filter_map(|s| s.as_ref().map(|s| (&s.id, s)))
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
    fn held_subscription_stays_small() {
        // What a held subscription costs besides its strings: keep it in check.
        assert!(
            std::mem::size_of::<Subscription>() <= 176,
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
}
