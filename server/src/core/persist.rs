//! What the store must write so that nothing acknowledged is lost (issue 4).
//!
//! The core emits one [`PersistOp`] per state change, numbered by a per-shard sequence.
//! With `Config::durability_gate`, a 2xx is released only once the edge reports, through
//! `Core::handle_persisted(seq)`, that every op up to its own has been committed. Instants
//! in records are the core's clock: the edge should feed Unix-epoch milliseconds as
//! [`Instant`] so persisted expiries stay meaningful across restarts.

use super::tags::Token;
use super::{Instant, Transport};
use sip_parser::Aor;
use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// A publication as the `presentity` table stores it.
///
/// Built for every PUBLISH under `--durability sync`, so it shares what it can with the
/// core's `Publication` instead of copying: the body and content type are the same
/// `Arc`, the event name is the package's static name, the tokens are inline. (Six
/// allocations per PUBLISH, freed on the log's thread, were a measured part of sync's
/// extra cost.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicationRecord {
    pub presentity: Aor,
    /// Event package name, e.g. `presence` (borrowed from the package when the core
    /// writes it, owned when loaded from the store).
    pub event: Cow<'static, [u8]>,
    /// The publication's id (its first ETag; the store key).
    pub id: Token,
    /// Its current ETag.
    pub etag: Token,
    pub expires_at: Instant,
    pub content_type: Arc<[u8]>,
    pub body: Arc<[u8]>,
    /// Publication order within the presentity (newest = largest); keeps aggregation
    /// order stable across restarts.
    pub order: u64,
}

/// Authorization / lifecycle state of a subscription dialog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubStatus {
    Active,
    Pending,
    Terminated,
}

/// A subscription dialog as the `active_watchers` table stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionRecord {
    /// Stable dialog id (also encoded in our To-tag): primary key.
    pub id: u64,
    pub presentity: Aor,
    pub event: Vec<u8>,
    /// Event header `id` parameter, kept in every NOTIFY.
    pub event_id: Option<Vec<u8>>,
    pub call_id: Vec<u8>,
    /// The watcher's tag (From tag of the SUBSCRIBE, To tag of our NOTIFYs).
    pub from_tag: Vec<u8>,
    /// Our tag (To tag of our 2xx, From tag of our NOTIFYs).
    pub to_tag: Vec<u8>,
    /// Watcher's From header value without tag (name-addr), becomes NOTIFY To.
    pub from_uri: Vec<u8>,
    /// SUBSCRIBE To header value without tag (name-addr), becomes NOTIFY From.
    pub to_uri: Vec<u8>,
    pub remote_cseq: u32,
    pub local_cseq: u32,
    /// Record-Route values joined by ", " in received order: NOTIFY Route header.
    pub route_set: Vec<u8>,
    /// Watcher's Contact URI: NOTIFY Request-URI.
    pub contact: Vec<u8>,
    pub transport: Transport,
    pub peer: SocketAddr,
    pub status: SubStatus,
    pub reason: Option<Vec<u8>>,
    pub expires_at: Instant,
    /// Bumped on every change; the store keeps the highest.
    pub version: u64,
}

/// One state change to persist, in sequence order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PersistOp {
    PutPublication {
        seq: u64,
        rec: PublicationRecord,
    },
    DeletePublication {
        seq: u64,
        presentity: Aor,
        event: Cow<'static, [u8]>,
        /// The publication's id (see `PublicationRecord::id`).
        id: Token,
    },
    PutSubscription {
        seq: u64,
        rec: SubscriptionRecord,
    },
    DeleteSubscription {
        seq: u64,
        id: u64,
        presentity: Aor,
        event: Vec<u8>,
    },
}

impl PersistOp {
    pub fn seq(&self) -> u64 {
        match self {
            PersistOp::PutPublication { seq, .. }
            | PersistOp::DeletePublication { seq, .. }
            | PersistOp::PutSubscription { seq, .. }
            | PersistOp::DeleteSubscription { seq, .. } => *seq,
        }
    }
}

/// A write the store refused (its map reached `--map-size-max`), as the driver reports it
/// to [`Core::handle_persist_failed`]: the core answers the request waiting for it with 500
/// and rolls its memory back to what the disk holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The refused `PutPublication` / `PutSubscription` (deletes are never refused: the
    /// driver commits them on their own, they free space).
    pub op: PersistOp,
    /// For a subscription: the expiry of the version still on disk (a refused refresh
    /// keeps the dialog at its old expiry, RFC 6665 §4.1.2.2); `None`: nothing on disk, the
    /// refused dialog is forgotten.
    pub stored_expiry: Option<Instant>,
}

/// Why a record from the store was not loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreError {
    /// It expired while the server was down: the store may delete it.
    Expired,
    /// Its presentity belongs to another shard (shard count changed): hand it over.
    WrongShard,
    /// Unknown event package.
    UnknownEvent,
    /// A table limit was reached.
    Full,
    /// The record is inconsistent (bad body, bad tag, ...).
    Invalid,
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RestoreError::Expired => "record expired while the server was down",
            RestoreError::WrongShard => "record belongs to another shard",
            RestoreError::UnknownEvent => "unknown event package",
            RestoreError::Full => "table limit reached",
            RestoreError::Invalid => "inconsistent record",
        })
    }
}

impl std::error::Error for RestoreError {}

use super::package::BodyError;
use super::presentity::Publication;
use super::subscription::{DialogStrings, Subscription, TermReason};
use super::tags::aor_hash;
use super::{Core, Peer, CSEQ_PERSIST_EVERY};

impl Core {
    fn persist_on(&self) -> bool {
        self.cfg.persist || self.cfg.durability_gate
    }

    fn push_op(&mut self, make: impl FnOnce(u64) -> PersistOp) -> u64 {
        let seq = self.next_persist_seq;
        self.next_persist_seq += 1;
        self.persist_q.push_back(make(seq));
        seq
    }

    /// The gate a 2xx must wait for, given the op it acknowledges.
    pub(super) fn gate_of(&self, seq: u64) -> u64 {
        if self.cfg.durability_gate {
            seq
        } else {
            0
        }
    }

    /// Too many ops not yet drained by the edge: refuse state changes.
    pub(super) fn persist_backlog(&self) -> bool {
        self.persist_on() && self.persist_q.len() >= self.cfg.max_pending_persist
    }

    /// Refuses new state (500 + Retry-After) while the store is `max_pending_persist` ops
    /// behind, so a stalled disk bounds memory instead of queueing without limit.
    pub(super) fn refuse_if_store_backlogged(&self) -> Result<(), super::routing::Reject> {
        use super::routing::{Extra, Reason, Reject};
        if self.persist_backlog() {
            return Err(Reject::new(
                500,
                Reason::Text("Store backlog"),
                Extra::RetryAfter(1),
            ));
        }
        Ok(())
    }

    pub(super) fn sub_record(&self, sub: &Subscription) -> Option<SubscriptionRecord> {
        let pres = self.pres.get(sub.pres)?;
        let s = sub.strings();
        Some(SubscriptionRecord {
            id: sub.id,
            presentity: pres.aor.clone(),
            event: self.packages[sub.pkg as usize].name().as_bytes().to_vec(),
            event_id: s.event_id.map(<[u8]>::to_vec),
            call_id: s.call_id.to_vec(),
            from_tag: s.from_tag.to_vec(),
            to_tag: Token::new(sub.hash, sub.id).as_bytes().to_vec(),
            from_uri: s.from_hdr.to_vec(),
            to_uri: s.to_hdr.to_vec(),
            remote_cseq: sub.remote_cseq,
            local_cseq: sub.local_cseq,
            route_set: s.routes.to_vec(),
            contact: s.contact.to_vec(),
            transport: sub.transport(),
            peer: sub.peer().addr,
            status: sub.status,
            reason: sub.reason.map(|r| r.as_str().as_bytes().to_vec()),
            expires_at: sub.expires_at,
            version: u64::from(sub.version),
        })
    }

    /// Emits PutSubscription for a dialog; returns its sequence (0 when not persisting).
    pub(super) fn persist_put_sub(&mut self, id: u64) -> u64 {
        if !self.persist_on() {
            return 0;
        }
        let Some(sub) = self.subs.get_mut(&id) else {
            return 0;
        };
        sub.version = sub.version.saturating_add(1);
        sub.stored = true;
        let Some(rec) = self.subs.get(&id).and_then(|s| self.sub_record(s)) else {
            return 0;
        };
        self.push_op(|seq| PersistOp::PutSubscription { seq, rec })
    }

    pub(super) fn persist_delete_sub(&mut self, id: u64) -> u64 {
        let Some(sub) = self.subs.get_mut(&id) else {
            return 0;
        };
        if !sub.stored {
            return 0;
        }
        sub.stored = false;
        let (pres, pkg) = (sub.pres, sub.pkg);
        let Some(p) = self.pres.get(pres) else {
            return 0;
        };
        let presentity = p.aor.clone();
        let event = self.packages[pkg as usize].name().as_bytes().to_vec();
        self.push_op(|seq| PersistOp::DeleteSubscription {
            seq,
            id,
            presentity,
            event,
        })
    }

    pub(super) fn persist_put_pub(&mut self, slot: u32, etag: &Token) -> u64 {
        if !self.persist_on() {
            return 0;
        }
        let Some(p) = self.pres.get(slot) else {
            return 0;
        };
        let Some(i) = p.find_pub(etag.as_bytes()) else {
            return 0;
        };
        let q = &p.pubs[i];
        let rec = PublicationRecord {
            presentity: p.aor.clone(),
            event: Cow::Borrowed(self.packages[p.pkg as usize].name().as_bytes()),
            id: q.id,
            etag: q.etag,
            expires_at: q.expires_at,
            content_type: Arc::clone(&q.content_type),
            body: Arc::clone(&q.body),
            order: q.order,
        };
        self.push_op(|seq| PersistOp::PutPublication { seq, rec })
    }

    /// Deletes publication `id` (its `Publication::id`, not its current ETag).
    pub(super) fn persist_delete_pub(&mut self, slot: u32, id: &Token) -> u64 {
        if !self.persist_on() {
            return 0;
        }
        let Some(p) = self.pres.get(slot) else {
            return 0;
        };
        let presentity = p.aor.clone();
        let event = Cow::Borrowed(self.packages[p.pkg as usize].name().as_bytes());
        let id = *id;
        self.push_op(|seq| PersistOp::DeletePublication {
            seq,
            presentity,
            event,
            id,
        })
    }

    /// State changes queued for `poll_persist`.
    pub fn persist_queued(&self) -> usize {
        self.persist_q.len()
    }

    /// Next state change to write, in sequence order.
    pub fn poll_persist(&mut self) -> Option<PersistOp> {
        let op = self.persist_q.pop_front();
        self.stats.pending_persist = self.persist_q.len() as u64;
        op
    }

    /// Every op with `seq <= up_to_seq` is durable: release the 2xx (and NOTIFYs) that
    /// waited for them.
    pub fn handle_persisted(&mut self, now: Instant, up_to_seq: u64) {
        if now > self.now {
            self.now = now;
        }
        if up_to_seq <= self.persisted_seq {
            return;
        }
        self.persisted_seq = up_to_seq;
        // Gates are queued in sequence order nearly always: release the front run, and
        // sift the rest only if an earlier gate sits behind a later one.
        while self
            .gated
            .front()
            .is_some_and(|(gate, _)| *gate <= up_to_seq)
        {
            if let Some((_, out)) = self.gated.pop_front() {
                self.queue_out(out);
            }
        }
        if self.gated.iter().any(|(gate, _)| *gate <= up_to_seq) {
            self.release_gated(|_, gate, _| gate <= up_to_seq);
        }
    }

    /// Moves every gated output that `release` picks to `ready` (timer output to
    /// `background`), keeping the order of the queues. In place: the deque is rotated through its own buffer (a new deque per
    /// commit took fresh, kernel-zeroed pages from the allocator each time).
    fn release_gated(&mut self, mut release: impl FnMut(&mut Core, u64, &super::Out) -> bool) {
        let mut gated = std::mem::take(&mut self.gated);
        for _ in 0..gated.len() {
            let Some((gate, out)) = gated.pop_front() else {
                break;
            };
            if release(self, gate, &out) {
                self.queue_out(out);
            } else {
                gated.push_back((gate, out));
            }
        }
        self.gated = gated;
    }

    /// The store refused `refused` (map full at its maximum): answer each request that
    /// waited for one of them with `500 Store full` (Retry-After), and make memory agree
    /// with the disk again: a refused new publication or dialog is forgotten (the client
    /// was told it failed), a refused dialog refresh keeps the expiry stored on disk. Call
    /// it before `handle_persisted` for the batch, whose other ops did commit.
    pub fn handle_persist_failed(&mut self, now: Instant, refused: &[Refused]) {
        self.advance(now);
        let now = self.now;
        if refused.is_empty() {
            return;
        }
        let mut seqs: Vec<u64> = refused.iter().map(|r| r.op.seq()).collect();
        seqs.sort_unstable();
        for r in refused {
            match &r.op {
                PersistOp::PutPublication { rec, .. } => self.forget_refused_pub(rec),
                PersistOp::PutSubscription { rec, .. } => {
                    self.rollback_refused_sub(now, rec.id, r.stored_expiry)
                }
                // Deletes are committed on their own by the driver, never refused.
                PersistOp::DeletePublication { .. } | PersistOp::DeleteSubscription { .. } => {}
            }
        }
        self.release_gated(|core, gate, out| match out {
            super::Out::Response(tx) if seqs.binary_search(&gate).is_ok() => {
                if core.stx.get(*tx).is_some() {
                    core.stx.replace_response(*tx, rewrite_as_store_full);
                    core.stats.tx_2xx = core.stats.tx_2xx.saturating_sub(1);
                    core.stats.count_code(500);
                }
                true
            }
            _ => false,
        });
        self.refresh_gauges();
    }

    fn forget_refused_pub(&mut self, rec: &PublicationRecord) {
        let Some(pkg) = self.package_index(&rec.event) else {
            return;
        };
        let Some(slot) = self.pres.lookup(&(rec.presentity.clone(), pkg)) else {
            return;
        };
        let package = &*self.packages[pkg as usize];
        let Some(p) = self.pres.get_mut(slot) else {
            return;
        };
        let Some(i) = p.find_pub(rec.etag.as_bytes()) else {
            // Already removed or replaced again (its delete follows in the queue).
            return;
        };
        p.pubs.remove(i);
        p.reaggregate(package);
        self.pres.publications -= 1;
        self.presentity_changed(slot);
        self.pres.gc(slot);
    }

    fn rollback_refused_sub(&mut self, now: Instant, id: u64, stored: Option<Instant>) {
        let Some(sub) = self.subs.get_mut(&id) else {
            return;
        };
        if !sub.is_live() {
            // Terminated meanwhile: its delete is queued, the final NOTIFY follows.
            return;
        }
        match stored {
            None => {
                // A new dialog the client was refused: forget it, no NOTIFY.
                sub.stored = false;
                self.remove_sub(id);
            }
            Some(at) => {
                sub.stored = true;
                sub.expires_at = at;
                if at <= now {
                    self.terminate(id, TermReason::Timeout);
                    self.mark_changed(id);
                } else {
                    self.arm_sub_expiry(id);
                }
            }
        }
    }

    fn restore_presentity(
        &mut self,
        aor: &sip_parser::Aor,
        event: &[u8],
    ) -> Result<(u32, u32, u8), RestoreError> {
        let pkg = self
            .package_index(event)
            .ok_or(RestoreError::UnknownEvent)?;
        let hash = aor_hash(aor.as_bytes());
        if hash % self.shards as u32 != self.shard.0 as u32 {
            return Err(RestoreError::WrongShard);
        }
        let key = (aor.clone(), pkg);
        let slot = match self.pres.lookup(&key) {
            Some(s) => s,
            None => {
                if self.pres.len() >= self.cfg.max_presentities {
                    return Err(RestoreError::Full);
                }
                self.pres.insert(key.0, hash, pkg)
            }
        };
        Ok((slot, hash, pkg))
    }

    /// Loads a publication from the store at start-up: it keeps its ETag (a refresh with
    /// it works) and its expiry timer is re-armed. No NOTIFY is sent.
    pub fn restore_publication(
        &mut self,
        now: Instant,
        rec: PublicationRecord,
    ) -> Result<(), RestoreError> {
        self.advance(now);
        if rec.expires_at <= now {
            return Err(RestoreError::Expired);
        }
        let (id, etag) = (rec.id, rec.etag);
        // Orders count this shard's publications up from 1: one this high is damage, and
        // resuming from it would soon wrap the counter (newest would sort oldest).
        if rec.order >= MAX_RESTORED_ORDER {
            return Err(RestoreError::Invalid);
        }
        if self.pres.publications >= self.cfg.max_publications {
            return Err(RestoreError::Full);
        }
        let (slot, _, pkg) = self.restore_presentity(&rec.presentity, &rec.event)?;
        let index = match self.packages[pkg as usize].index_stored(&rec.body) {
            Ok(i) => i,
            Err(BodyError::Pidf(_)) => {
                self.pres.gc(slot);
                return Err(RestoreError::Invalid);
            }
        };
        if self
            .pres
            .get(slot)
            .is_some_and(|p| p.find_pub(etag.as_bytes()).is_some())
        {
            return Err(RestoreError::Invalid);
        }
        // Orders are unique within a presentity (aggregation is newest first). Two stored
        // publications sharing one is damage: the later one keeps its state with a fresh
        // order (so it sorts newest) rather than being dropped.
        let order = if self
            .pres
            .get(slot)
            .is_some_and(|p| p.pubs.iter().any(|q| q.order == rec.order))
        {
            self.next_order
        } else {
            rec.order
        };
        let token = self.fresh_token();
        self.next_order = self.next_order.max(order + 1);
        let at = rec
            .expires_at
            .add_millis(self.cfg.expires_offset as u64 * 1000);
        let publication = Publication {
            id,
            etag,
            order,
            expires_at: rec.expires_at,
            timer: token,
            expiry_armed: at,
            content_type: rec.content_type,
            body: rec.body,
            index,
        };
        self.add_publication(slot, pkg, publication);
        self.refresh_gauges();
        Ok(())
    }

    /// Loads a subscription dialog at start-up: same dialog id and tags, CSeq resumes
    /// `CSEQ_PERSIST_EVERY` higher, expiry timer re-armed. No NOTIFY is sent.
    pub fn restore_subscription(
        &mut self,
        now: Instant,
        rec: SubscriptionRecord,
    ) -> Result<(), RestoreError> {
        self.advance(now);
        if rec.expires_at <= now || rec.status == SubStatus::Terminated {
            return Err(RestoreError::Expired);
        }
        if rec.id == 0 || self.subs.contains_key(&rec.id) || !sendable_dialog(&rec) {
            return Err(RestoreError::Invalid);
        }
        if self.subs.len() >= self.cfg.max_subscriptions {
            return Err(RestoreError::Full);
        }
        let (slot, hash, pkg) = self.restore_presentity(&rec.presentity, &rec.event)?;
        if Token::decode(&rec.to_tag) != Some((hash, rec.id)) {
            self.pres.gc(slot);
            return Err(RestoreError::Invalid);
        }
        let strings = DialogStrings {
            call_id: &rec.call_id,
            from_tag: &rec.from_tag,
            from_hdr: &rec.from_uri,
            to_hdr: &rec.to_uri,
            contact: &rec.contact,
            routes: &rec.route_set,
            event_id: rec.event_id.as_deref(),
        };
        let peer = Peer {
            transport: rec.transport,
            addr: rec.peer,
            conn: None,
        };
        let mut sub = Subscription::new(
            rec.id,
            hash,
            slot,
            pkg,
            strings,
            rec.remote_cseq,
            peer,
            rec.expires_at,
        );
        sub.local_cseq = rec.local_cseq.saturating_add(CSEQ_PERSIST_EVERY);
        sub.status = rec.status;
        sub.reason = rec.reason.as_deref().and_then(TermReason::parse);
        sub.version = u32::try_from(rec.version).unwrap_or(u32::MAX);
        sub.stored = true;
        self.subs.insert(rec.id, sub);
        if let Some(p) = self.pres.get_mut(slot) {
            p.watchers.push(rec.id);
        }
        self.arm_sub_expiry(rec.id);
        if self.cfg.notify_on_restore {
            if self.restore_backlog.is_empty() {
                self.timers.push(now, super::TimerKey::RestoreNotify);
            }
            self.restore_backlog.push_back(rec.id);
        }
        self.refresh_gauges();
        Ok(())
    }
}

/// Publication orders at or above this are refused on restore (2^62: at a million
/// publications a second, 146,000 years of them).
const MAX_RESTORED_ORDER: u64 = 1 << 62;

/// Whether every NOTIFY of a stored dialog would be a well-formed request. The SUBSCRIBE
/// path only ever stores such dialogs, but a record may come from an older version (which
/// kept any Contact: `Uri::is_sendable` came later) or be damaged: its contact must be a
/// URI a start line can carry, and no string may hold a line break or NUL (it would end its
/// header line and inject the rest), nor the Call-ID and tags whitespace.
fn sendable_dialog(rec: &SubscriptionRecord) -> bool {
    let in_line = |s: &[u8]| !s.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0));
    let word = |s: &[u8]| !s.is_empty() && s.iter().all(|&b| b > b' ' && b != 0x7f);
    sip_parser::Uri::is_sendable(&rec.contact)
        && word(&rec.call_id)
        && word(&rec.from_tag)
        && rec.event_id.as_deref().is_none_or(word)
        && in_line(&rec.from_uri)
        && in_line(&rec.to_uri)
        && in_line(&rec.route_set)
}

impl Core {
    /// Releases the next `RESTORE_NOTIFY_BATCH` restored dialogs' NOTIFYs and re-arms the
    /// pacing timer while some are left. A dialog refreshed or ended meanwhile simply gets
    /// its NOTIFY from that path (`mark_changed` coalesces; a gone dialog is skipped).
    pub(super) fn release_restore_notifies(&mut self, now: Instant) {
        for _ in 0..super::RESTORE_NOTIFY_BATCH {
            let Some(id) = self.restore_backlog.pop_front() else {
                break;
            };
            self.mark_changed(id);
        }
        if !self.restore_backlog.is_empty() {
            self.timers.push(
                now.add_millis(super::RESTORE_NOTIFY_INTERVAL_MS),
                super::TimerKey::RestoreNotify,
            );
        }
    }
}

/// Turns a held 2xx into `500 Store full` with `Retry-After`, in place: same Via, From, To,
/// Call-ID and CSeq, without the headers that only a success carries.
fn rewrite_as_store_full(resp: &[u8]) -> Vec<u8> {
    const STATUS: &[u8] = b"SIP/2.0 500 Store full\r\n";
    const DROP: [&[u8]; 4] = [b"sip-etag:", b"expires:", b"contact:", b"content-length:"];
    let Some(head_end) = memchr::memmem::find(resp, b"\r\n\r\n") else {
        return resp.to_vec();
    };
    let mut out = Vec::with_capacity(resp.len() + 32);
    out.extend_from_slice(STATUS);
    let mut lines = resp[..head_end + 2].split_inclusive(|&b| b == b'\n');
    lines.next(); // the old status line
    for line in lines {
        let dropped = DROP
            .iter()
            .any(|h| line.len() >= h.len() && line[..h.len()].eq_ignore_ascii_case(h));
        if !dropped {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"Retry-After: 5\r\nContent-Length: 0\r\n\r\n");
    out
}

#[cfg(test)]
mod store_full_tests {
    use super::rewrite_as_store_full;

    #[test]
    fn rewrites_a_2xx_into_500() {
        let r = rewrite_as_store_full(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>;tag=x\r\nSIP-ETag: e1\r\nExpires: 60\r\nContact: <sip:h>\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            r,
            b"SIP/2.0 500 Store full\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>;tag=x\r\nRetry-After: 5\r\nContent-Length: 0\r\n\r\n"
        );
    }
}

#[cfg(test)]
mod refused_tests {
    use super::super::{Config, Core, Instant, Peer, ShardId, Transport};
    use super::{PersistOp, Refused};

    const PIDF: &str = "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:bob@example.com\"><tuple id=\"a\"><status><basic>open</basic></status></tuple></presence>";

    fn peer() -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: "10.0.0.2:5070".parse().unwrap(),
            conn: None,
        }
    }

    fn subscribe(branch: &str, to_tag: &str, cseq: u32, expires: u32) -> String {
        format!(
            "SUBSCRIBE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bK{branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=al1\r\nTo: <sip:bob@example.com>{to_tag}\r\n\
             Call-ID: call-1\r\nCSeq: {cseq} SUBSCRIBE\r\nContact: <sip:alice@10.0.0.2:5070>\r\n\
             Event: presence\r\nExpires: {expires}\r\nContent-Length: 0\r\n\r\n"
        )
    }

    fn publish(branch: &str) -> String {
        format!(
            "PUBLISH sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.3:5080;branch=z9hG4bK{branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=b1\r\nTo: <sip:bob@example.com>\r\n\
             Call-ID: pub-{branch}\r\nCSeq: 1 PUBLISH\r\nEvent: presence\r\nExpires: 600\r\n\
             Content-Type: application/pidf+xml\r\nContent-Length: {}\r\n\r\n{PIDF}",
            PIDF.len()
        )
    }

    fn drain(core: &mut Core) -> Vec<String> {
        let mut out = Vec::new();
        let mut v = Vec::new();
        while let Some(t) = core.poll_transmit(&mut out) {
            v.push(String::from_utf8_lossy(&out[t.offset..t.offset + t.len]).into_owned());
        }
        core.check_invariants().unwrap();
        v
    }

    /// Answers every NOTIFY in `out` with 200 (so no NOTIFY transaction times out).
    fn answer_notifies(core: &mut Core, now: Instant, out: &[String]) {
        for m in out.iter().filter(|m| m.starts_with("NOTIFY")) {
            let mut r = String::from("SIP/2.0 200 OK\r\n");
            for l in m.split("\r\n") {
                let name = l.split(':').next().unwrap_or("");
                if ["Via", "From", "To", "Call-ID", "CSeq"].contains(&name) {
                    r.push_str(l);
                    r.push_str("\r\n");
                }
            }
            r.push_str("Content-Length: 0\r\n\r\n");
            core.handle_message(now, peer(), r.as_bytes());
        }
    }

    fn refuse_all(core: &mut Core, now: Instant, stored: Option<Instant>) {
        let mut refused = Vec::new();
        while let Some(op) = core.poll_persist() {
            refused.push(Refused {
                op,
                stored_expiry: stored,
            });
        }
        let last = refused.last().map(|r| r.op.seq()).unwrap();
        core.handle_persist_failed(now, &refused);
        core.handle_persisted(now, last);
    }

    /// Outputs whose gate is durable leave in queue order, wherever they sit in the gated
    /// queue; the others stay, in order.
    #[test]
    fn persisted_releases_every_durable_gate_in_order() {
        use super::super::Out;
        let cfg = Config {
            durability_gate: true,
            ..Config::default()
        };
        let now = Instant(1_000_000);
        let mut core = Core::new(cfg, ShardId(0), 1, 7, now);
        core.gated.extend(
            [(1, 10), (3, 11), (2, 12), (5, 13), (2, 14), (4, 15)]
                .map(|(g, id)| (g, Out::Notify(id))),
        );
        core.handle_persisted(now, 2);
        let ready: Vec<Out> = core.ready.drain(..).collect();
        assert_eq!(ready, [10, 12, 14].map(Out::Notify));
        let gated: Vec<(u64, Out)> = core.gated.iter().copied().collect();
        assert_eq!(
            gated,
            [(3, 11), (5, 13), (4, 15)].map(|(g, id)| (g, Out::Notify(id)))
        );
        core.handle_persisted(now, 4);
        let ready: Vec<Out> = core.ready.drain(..).collect();
        assert_eq!(ready, [11, 15].map(Out::Notify));
        assert_eq!(core.gated.len(), 1);
    }

    #[test]
    fn refused_new_state_is_answered_500_and_forgotten() {
        let cfg = Config {
            durability_gate: true,
            ..Config::default()
        };
        let now = Instant(1_000_000);
        let mut core = Core::new(cfg, ShardId(0), 1, 7, now);
        core.handle_message(now, peer(), subscribe("s1", "", 1, 600).as_bytes());
        core.handle_message(now, peer(), publish("p1").as_bytes());
        assert!(drain(&mut core).is_empty(), "held for the commit");
        refuse_all(&mut core, now, None);
        let out = drain(&mut core);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out.iter().all(|m| m.starts_with("SIP/2.0 500 Store full")));
        assert_eq!(core.stats().subscriptions, 0);
        assert_eq!(core.stats().publications, 0);
        assert_eq!(core.stats().presentities, 0);
        assert_eq!(core.stats().tx_2xx, 0);
    }

    #[test]
    fn refused_refresh_keeps_the_dialog_at_its_stored_expiry() {
        let cfg = Config {
            durability_gate: true,
            ..Config::default()
        };
        let now = Instant(1_000_000);
        let mut core = Core::new(cfg, ShardId(0), 1, 7, now);
        core.handle_message(now, peer(), subscribe("s1", "", 1, 600).as_bytes());
        while let Some(op) = core.poll_persist() {
            core.handle_persisted(now, op.seq());
        }
        let out = drain(&mut core);
        answer_notifies(&mut core, now, &out);
        let ok = out.iter().find(|m| m.starts_with("SIP/2.0 200")).unwrap();
        let tag = ok
            .split("\r\n")
            .find(|l| l.starts_with("To:"))
            .and_then(|l| l.split(";tag=").nth(1))
            .unwrap()
            .to_string();
        let later = now.add_millis(10_000);
        let refresh = subscribe("s2", &format!(";tag={tag}"), 2, 3600);
        core.handle_message(later, peer(), refresh.as_bytes());
        let stored = now.add_millis(600_000);
        let mut refused = Vec::new();
        while let Some(op) = core.poll_persist() {
            assert!(matches!(op, PersistOp::PutSubscription { .. }));
            refused.push(Refused {
                op,
                stored_expiry: Some(stored),
            });
        }
        let last = refused.last().unwrap().op.seq();
        core.handle_persist_failed(later, &refused);
        core.handle_persisted(later, last);
        let out = drain(&mut core);
        assert!(
            out.iter().any(|m| m.starts_with("SIP/2.0 500 Store full")),
            "{out:?}"
        );
        answer_notifies(&mut core, later, &out);
        assert_eq!(core.stats().subscriptions, 1, "the dialog lives on");
        // It ends at the stored expiry, not the refused one.
        let end = stored.add_millis(1);
        core.handle_timeout(end);
        // The final NOTIFY waits for the dialog's deletion to be durable.
        while let Some(op) = core.poll_persist() {
            assert!(matches!(op, PersistOp::DeleteSubscription { .. }));
            core.handle_persisted(end, op.seq());
        }
        let out = drain(&mut core);
        assert!(
            out.iter()
                .any(|m| m.starts_with("NOTIFY") && m.contains("terminated")),
            "{out:?}"
        );
    }
}
