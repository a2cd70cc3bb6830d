//! NOTIFY generation (RFC 6665 §4.2.2, RFC 3856) and the fate of our NOTIFY transactions.
//!
//! A change only marks the dialog `pending` and queues a descriptor; the NOTIFY itself is
//! written in `poll_transmit`, straight into the caller's buffer, from the state at that
//! moment. With at most one NOTIFY in flight per dialog, every change made meanwhile
//! coalesces into the next one (newest state wins, never out of order).

use super::auth::AuthDecision;
use super::package::EventPackage;
use super::persist::SubStatus;
use super::subscription::Subscription;
use super::subscription::TermReason;
use super::tags::{Branch, Token};
use super::timers::ExpiryWheel;
use super::transaction::client::{NotifyContent, NotifyTx, StateLine, TxFire};
use super::{Core, Instant, Out, Peer, TimerKey, Transmit, Transport, CSEQ_PERSIST_EVERY};
use sip_parser::{push_u32, Message, Method};
use std::sync::Arc;

impl Core {
    /// Marks that a dialog owes a NOTIFY and queues it unless one is queued or in flight
    /// (then the change rides on the next NOTIFY).
    pub(super) fn mark_changed(&mut self, id: u64) {
        let Some(sub) = self.subs.get_mut(&id) else {
            return;
        };
        if sub.tx.as_ref().is_some_and(|t| t.is_final) {
            return;
        }
        if sub.pending {
            self.stats.notify_coalesced += 1;
        }
        sub.pending = true;
        self.queue_notify(id);
    }

    /// Queues the dialog's owed NOTIFY unless it is already queued or one is in flight.
    pub(super) fn queue_notify(&mut self, id: u64) {
        let persisted = self.persisted_seq;
        let Some(sub) = self.subs.get_mut(&id) else {
            return;
        };
        if !sub.pending || sub.queued || sub.tx.is_some() {
            return;
        }
        sub.queued = true;
        let item = Out::notify(id, self.in_timer);
        if sub.gate > persisted {
            self.gated.push_back((sub.gate, item));
        } else {
            self.queue_out(item);
        }
    }

    /// Every watcher of a presentity owes a NOTIFY.
    pub(super) fn presentity_changed(&mut self, slot: u32) {
        let Some(p) = self.pres.get(slot) else { return };
        let mut watchers = std::mem::take(&mut self.scratch_ids);
        watchers.clear();
        watchers.extend_from_slice(&p.watchers);
        for &id in &watchers {
            self.mark_changed(id);
        }
        self.scratch_ids = watchers;
    }

    /// Ends a live subscription: one final NOTIFY `terminated;reason=...` follows.
    pub(super) fn terminate(&mut self, id: u64, reason: TermReason) -> u64 {
        let Some(sub) = self.subs.get_mut(&id) else {
            return 0;
        };
        if !sub.is_live() {
            return 0;
        }
        sub.status = SubStatus::Terminated;
        sub.reason = Some(reason);
        sub.expiry_token = 0;
        // The final NOTIFY waits until the deletion is durable: otherwise a crash could
        // restore the dialog and NOTIFY `active` after `terminated`. The caller queues it
        // (after its own response, if any).
        let seq = self.persist_delete_sub(id);
        let gate = self.gate_of(seq);
        if let Some(sub) = self.subs.get_mut(&id) {
            sub.gate = sub.gate.max(gate);
        }
        seq
    }

    /// Forgets a dialog at once (no further NOTIFY).
    pub(super) fn remove_sub(&mut self, id: u64) {
        if self.subs.get(&id).is_some_and(|s| s.is_live()) {
            self.persist_delete_sub(id);
        }
        let Some(mut sub) = self.subs.remove(&id) else {
            return;
        };
        if let Some(tx) = sub.tx.take() {
            self.recycle_tx(tx);
        }
        if let Some(p) = self.pres.get_mut(sub.pres) {
            if let Some(i) = p.watchers.iter().position(|w| *w == id) {
                p.watchers.swap_remove(i);
            }
        }
        self.pres.gc(sub.pres);
    }

    pub(super) fn arm_sub_expiry(&mut self, id: u64) {
        let offset = self.cfg.expires_offset as u64 * 1000;
        let token = self.fresh_token();
        let Some(sub) = self.subs.get_mut(&id) else {
            return;
        };
        let at = sub.expires_at.add_millis(offset);
        // Lazy re-arm: a later deadline is handled when the armed timer fires.
        if sub.expiry_token != 0 && sub.expiry_armed <= at {
            return;
        }
        sub.expiry_token = token;
        sub.expiry_armed = at;
        self.push_sub_expiry(at, id, token);
    }

    /// Files an armed expiry: in its second's bucket, or on the heap if that second has
    /// begun (the bucket entry takes the token from the subscription when opened).
    fn push_sub_expiry(&mut self, at: Instant, id: u64, token: u32) {
        if !self.expiries.push(at, id) {
            self.timers.push(at, TimerKey::SubExpiry { id, token });
        }
    }

    /// Moves the live ids of every expiry bucket whose second has begun to the heap, at
    /// their exact deadline with their current token.
    pub(super) fn open_expiry_buckets(&mut self, now: Instant) {
        let mut opened = std::mem::take(&mut self.opened);
        opened.clear();
        self.expiries.open_due(now, &mut opened);
        for &(sec, id) in &opened {
            let Some(s) = self.subs.get(&id) else {
                continue;
            };
            if s.expiry_token != 0 && s.is_live() && ExpiryWheel::second(s.expiry_armed) == sec {
                let (at, token) = (s.expiry_armed, s.expiry_token);
                self.timers.push(at, TimerKey::SubExpiry { id, token });
            }
        }
        self.opened = opened;
    }

    pub(super) fn on_sub_expiry_timer(&mut self, now: Instant, id: u64, token: u32) {
        let offset = self.cfg.expires_offset as u64 * 1000;
        let Some(sub) = self.subs.get_mut(&id) else {
            return;
        };
        if sub.expiry_token != token || !sub.is_live() {
            return;
        }
        let deadline = sub.expires_at.add_millis(offset);
        if deadline > now {
            sub.expiry_armed = deadline;
            self.push_sub_expiry(deadline, id, token);
            return;
        }
        self.stats.subscriptions_expired += 1;
        self.terminate(id, TermReason::Timeout);
        self.mark_changed(id);
    }

    /// Writes the dialog's next NOTIFY into `out` (if it still owes one) and opens its
    /// client transaction.
    /// `from_timer`: it was queued as [`Out::TimerNotify`] (kept so if it waits for its gate
    /// again).
    pub(super) fn build_notify(
        &mut self,
        now: Instant,
        id: u64,
        from_timer: bool,
        out: &mut Vec<u8>,
    ) -> Option<Transmit> {
        let persisted = self.persisted_seq;
        let sub = self.subs.get_mut(&id)?;
        sub.queued = false;
        if sub.tx.is_some() || !sub.pending {
            return None;
        }
        if sub.gate > persisted {
            sub.queued = true;
            self.gated
                .push_back((sub.gate, Out::notify(id, from_timer)));
            return None;
        }
        sub.pending = false;
        sub.local_cseq = sub.local_cseq.wrapping_add(1).max(1);
        let cseq = sub.local_cseq;
        let is_final = !sub.is_live();
        let pres = self.pres.get(sub.pres)?;
        let pkg = &*self.packages[sub.pkg as usize];
        let state = match (sub.status, sub.auth) {
            (SubStatus::Terminated, _) => {
                StateLine::Terminated(sub.reason.unwrap_or(TermReason::Timeout))
            }
            (_, AuthDecision::Pending) | (SubStatus::Pending, _) => StateLine::Pending {
                expires: sub.remaining_secs(now),
            },
            _ => StateLine::Active {
                expires: sub.remaining_secs(now),
            },
        };
        let body = if sub.auth == AuthDecision::Pending {
            None
        } else if let Some(b) = pres.shared_body() {
            Some(Arc::clone(b))
        } else if self.cfg.notify_offline_body && pkg.offline_body(&pres.aor, &mut self.scratch) {
            Some(Arc::from(&self.scratch[..]))
        } else {
            None
        };
        let reliable = sub.transport() == Transport::Tcp;
        let content = NotifyContent {
            state,
            body,
            old_contact: None,
        };
        // Kept on TCP too: a dropped connection gets it resent (conn_lost.rs).
        let fresh = NotifyTx::new(now, cseq, reliable, self.cfg.t1_ms, content, is_final);
        let tx = match self.pool.pop() {
            Some(mut pooled) => {
                *pooled = fresh;
                pooled
            }
            None => Box::new(fresh),
        };
        let offset = out.len();
        let parts = NotifyParts {
            via: &self.notify_via,
            contact_line: &self.contact_line,
            pkg,
        };
        write_notify(out, &parts, sub, id, &tx);
        let len = out.len() - offset;
        let peer = sub.peer();
        let sub = self.subs.get_mut(&id)?;
        self.timers
            .push(tx.deadline(), TimerKey::Notify { id, cseq });
        sub.tx = Some(tx);
        self.stats.notify_sent += 1;
        if cseq % CSEQ_PERSIST_EVERY == 0 && !is_final {
            self.persist_put_sub(id);
        }
        Some(Transmit {
            dst: self.notify_carrier(id, cseq, peer),
            offset,
            len,
        })
    }

    pub(super) fn on_notify_timer(&mut self, now: Instant, id: u64, cseq: u32) {
        let t2 = self.cfg.t2_ms;
        let Some(tx) = self.subs.get_mut(&id).and_then(|s| s.tx.as_mut()) else {
            return;
        };
        if tx.cseq != cseq {
            return;
        }
        match tx.on_timer(now, t2) {
            TxFire::Retransmit(next) => {
                self.timers.push(next, TimerKey::Notify { id, cseq });
                if tx.resend_queued {
                    // The last one has not left yet (the shard is behind on its
                    // background output): one copy in the queue is enough.
                    self.stats.notify_retransmits_merged += 1;
                } else {
                    tx.resend_queued = true;
                    self.resends.push_back(Out::Retransmit(id, cseq));
                }
            }
            TxFire::Rearm(next) => self.timers.push(next, TimerKey::Notify { id, cseq }),
            TxFire::Timeout => self.notify_done(id, 408),
        }
    }

    /// A response to one of our NOTIFYs.
    pub(super) fn on_response(&mut self, now: Instant, msg: &Message<'_, '_>) {
        let decoded = msg
            .via()
            .ok()
            .and_then(|v| v.branch)
            .and_then(Branch::decode);
        let is_notify = msg.cseq().is_ok_and(|c| c.method == Method::Notify);
        let (Some((_, id, cseq)), true, Some(code)) = (decoded, is_notify, msg.status()) else {
            self.stats.rx_stray_responses += 1;
            return;
        };
        let t2 = self.cfg.t2_ms;
        let Some(tx) = self
            .subs
            .get_mut(&id)
            .and_then(|s| s.tx.as_mut())
            .filter(|t| t.cseq == cseq)
        else {
            // Late retransmission of a response to a finished transaction (Timer K), or
            // an answer to a NOTIFY this core never sent: one from before a restart.
            self.stats.rx_stray_responses += 1;
            if code == 481 {
                self.on_stray_481(id, cseq, msg);
            }
            return;
        };
        if code < 200 {
            tx.on_provisional(now, t2);
            return;
        }
        self.notify_done(id, code);
    }

    /// A 481 that matches no NOTIFY transaction (RFC 3261 §18.1.2 passes it to the core)
    /// but does match dialog `id`: its Call-ID, the watcher's tag, and a CSeq the dialog
    /// has used. The watcher no longer has the dialog (typically: it answered a NOTIFY
    /// sent before this server restarted). Ending it now saves the NOTIFYs it would get
    /// until one of them is answered 481 in turn. The branch alone is not enough: a slab
    /// id is reused by later dialogs, whose Call-ID and tag differ.
    fn on_stray_481(&mut self, id: u64, cseq: u32, msg: &Message<'_, '_>) {
        let Some(sub) = self.subs.get(&id) else {
            return;
        };
        let s = sub.strings();
        let to_tag = msg.to().ok().and_then(|t| t.tag());
        if cseq > sub.local_cseq
            || msg.call_id().ok() != Some(s.call_id)
            || to_tag != Some(s.from_tag)
        {
            return;
        }
        self.stats.notify_failed += 1;
        self.remove_sub(id);
    }

    /// The NOTIFY transaction of `id` ended with `code` (408 for Timer F).
    pub(super) fn notify_done(&mut self, id: u64, code: u16) {
        let Some(sub) = self.subs.get_mut(&id) else {
            return;
        };
        let Some(tx) = sub.tx.take() else { return };
        let is_final = tx.is_final;
        let pending = sub.pending;
        let live = sub.is_live();
        self.recycle_tx(tx);
        let failed = !(200..300).contains(&code);
        if failed {
            self.stats.notify_failed += 1;
        }
        let drop_it = is_final
            || code == 481
            || (matches!(code, 408) && self.cfg.end_sub_on_timeout)
            // Only 2xx keeps a dialog alive after a final NOTIFY; a dead dialog never gets one.
            || (!live && failed);
        if drop_it {
            self.remove_sub(id);
        } else if pending {
            self.queue_notify(id);
        }
    }

    /// Peer of a dialog (for tests and the edge's diagnostics).
    pub fn subscription_peer(&self, id: u64) -> Option<Peer> {
        self.subs.get(&id).map(|s| s.peer())
    }
}

/// The shard's fixed parts of every NOTIFY.
pub(super) struct NotifyParts<'a> {
    /// The Via line up to the branch value, for UDP and for TCP (see `Core::notify_via`).
    pub via: &'a [Vec<u8>; 2],
    pub contact_line: &'a [u8],
    pub pkg: &'a dyn EventPackage,
}

/// Writes the NOTIFY of dialog `id` (`sub`) that transaction `tx` sends into `out`. The
/// same inputs give the same bytes, so a retransmission is written again rather than kept.
/// Constant text is fused into few literal copies (compiled to plain stores).
pub(super) fn write_notify(
    out: &mut Vec<u8>,
    parts: &NotifyParts<'_>,
    sub: &Subscription,
    id: u64,
    tx: &NotifyTx,
) {
    let (cseq, content) = (tx.cseq, &tx.content);
    let s = sub.strings();
    let body: &[u8] = content.body.as_deref().unwrap_or_default();
    out.reserve(512 + s.len() + body.len());
    out.extend_from_slice(b"NOTIFY ");
    out.extend_from_slice(content.old_contact.as_deref().unwrap_or(s.contact));
    out.extend_from_slice(b" SIP/2.0\r\n");
    out.extend_from_slice(&parts.via[usize::from(tx.reliable())]);
    out.extend_from_slice(&Branch::new(sub.hash, id, cseq).0);
    out.extend_from_slice(b";rport\r\nMax-Forwards: 70\r\n");
    if !s.routes.is_empty() {
        out.extend_from_slice(b"Route: ");
        out.extend_from_slice(s.routes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"From: ");
    out.extend_from_slice(s.to_hdr);
    out.extend_from_slice(b";tag=");
    out.extend_from_slice(&Token::new(sub.hash, id).0);
    out.extend_from_slice(b"\r\nTo: ");
    out.extend_from_slice(s.from_hdr);
    out.extend_from_slice(b"\r\nCall-ID: ");
    out.extend_from_slice(s.call_id);
    out.extend_from_slice(b"\r\nCSeq: ");
    push_u32(out, cseq);
    out.extend_from_slice(b" NOTIFY\r\n");
    out.extend_from_slice(parts.contact_line);
    out.extend_from_slice(b"Event: ");
    out.extend_from_slice(parts.pkg.name().as_bytes());
    if let Some(eid) = s.event_id {
        out.extend_from_slice(b";id=");
        out.extend_from_slice(eid);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(b"Subscription-State: ");
    match content.state {
        StateLine::Terminated(reason) => {
            out.extend_from_slice(b"terminated;reason=");
            out.extend_from_slice(reason.as_str().as_bytes());
        }
        StateLine::Pending { expires } => {
            out.extend_from_slice(b"pending;expires=");
            push_u32(out, expires);
        }
        StateLine::Active { expires } => {
            out.extend_from_slice(b"active;expires=");
            push_u32(out, expires);
        }
    }
    out.extend_from_slice(b"\r\n");
    if !body.is_empty() {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(parts.pkg.content_types()[0].as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Length: ");
    push_u32(out, body.len() as u32);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}
