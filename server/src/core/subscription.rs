//! Subscription dialogs (RFC 6665 §4.1, §4.2): one per SUBSCRIBE dialog, keyed by the id
//! encoded in our To-tag, so an in-dialog request or a NOTIFY response finds its dialog
//! with one integer probe.
//!
//! All of a dialog's strings live in one buffer (`strs`) addressed by ranges: one
//! allocation per subscription instead of one per field.

use super::auth::AuthDecision;
use super::package::PkgId;
use super::persist::SubStatus;
use super::transaction::client::NotifyTx;
use super::transaction::IdMap;
use super::{Instant, Peer};
use std::ops::Range;

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

#[derive(Debug)]
pub struct Subscription {
    pub id: u64,
    /// Presentity AoR hash (in our To-tag; decides the shard).
    pub hash: u32,
    /// Presentity slot.
    pub pres: u32,
    pub pkg: PkgId,
    strs: Vec<u8>,
    ranges: [Range<u32>; 6],
    event_id: Option<Range<u32>>,
    pub remote_cseq: u32,
    pub local_cseq: u32,
    pub peer: Peer,
    /// When the subscription expires as granted (the expiry timer adds `expires_offset`).
    pub expires_at: Instant,
    /// Token of the one live expiry timer (stale heap entries carry older tokens).
    pub expiry_token: u64,
    /// Deadline that timer was armed for.
    pub expiry_armed: Instant,
    pub status: SubStatus,
    pub reason: Option<TermReason>,
    pub auth: AuthDecision,
    /// State changed since the last NOTIFY was built: one more NOTIFY is owed.
    pub pending: bool,
    /// An `Out::Notify` for this dialog sits in a transmit queue.
    pub queued: bool,
    pub tx: Option<NotifyTx>,
    pub version: u64,
    /// Persist sequence of the op that must be durable before NOTIFYs may leave.
    pub gate: u64,
    /// A PutSubscription was emitted (so removal must emit a DeleteSubscription).
    pub stored: bool,
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
            hash,
            pres,
            pkg,
            strs: Vec::new(),
            ranges: Default::default(),
            event_id: None,
            remote_cseq,
            local_cseq: 0,
            peer,
            expires_at,
            expiry_token: 0,
            expiry_armed: Instant(0),
            status: SubStatus::Active,
            reason: None,
            auth: AuthDecision::Active,
            pending: false,
            queued: false,
            tx: None,
            version: 0,
            gate: 0,
            stored: false,
        };
        sub.set_strings(s);
        sub
    }

    fn set_strings(&mut self, s: DialogStrings<'_>) {
        let mut strs = Vec::with_capacity(
            s.call_id.len()
                + s.from_tag.len()
                + s.from_hdr.len()
                + s.to_hdr.len()
                + s.contact.len()
                + s.routes.len()
                + s.event_id.map_or(0, <[u8]>::len),
        );
        let mut push = |b: &[u8]| {
            let start = strs.len() as u32;
            strs.extend_from_slice(b);
            start..strs.len() as u32
        };
        self.ranges = [
            push(s.call_id),
            push(s.from_tag),
            push(s.from_hdr),
            push(s.to_hdr),
            push(s.contact),
            push(s.routes),
        ];
        self.event_id = s.event_id.map(push);
        self.strs = strs;
    }

    fn get(&self, r: &Range<u32>) -> &[u8] {
        &self.strs[r.start as usize..r.end as usize]
    }

    pub fn strings(&self) -> DialogStrings<'_> {
        DialogStrings {
            call_id: self.get(&self.ranges[0]),
            from_tag: self.get(&self.ranges[1]),
            from_hdr: self.get(&self.ranges[2]),
            to_hdr: self.get(&self.ranges[3]),
            contact: self.get(&self.ranges[4]),
            routes: self.get(&self.ranges[5]),
            event_id: self.event_id.as_ref().map(|r| self.get(r)),
        }
    }

    /// Target refresh (RFC 6665 §4.1.2.1): a refreshing SUBSCRIBE may move the Contact.
    pub fn set_contact(&mut self, contact: &[u8]) {
        if contact != self.strings().contact {
            let s = self.strings();
            let (call_id, from_tag, from_hdr, to_hdr, routes) = (
                s.call_id.to_vec(),
                s.from_tag.to_vec(),
                s.from_hdr.to_vec(),
                s.to_hdr.to_vec(),
                s.routes.to_vec(),
            );
            let event_id = s.event_id.map(<[u8]>::to_vec);
            self.set_strings(DialogStrings {
                call_id: &call_id,
                from_tag: &from_tag,
                from_hdr: &from_hdr,
                to_hdr: &to_hdr,
                contact,
                routes: &routes,
                event_id: event_id.as_deref(),
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

/// Every dialog of the shard.
pub type Subscriptions = IdMap<Subscription>;
