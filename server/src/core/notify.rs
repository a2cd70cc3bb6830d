//! NOTIFY generation (RFC 6665 §4.2.2, RFC 3856) and the fate of our NOTIFY transactions.
//!
//! A change only marks the dialog `pending` and queues a descriptor; the NOTIFY itself is
//! written in `poll_transmit`, straight into the caller's buffer, from the state at that
//! moment. With at most one NOTIFY in flight per dialog, every change made meanwhile
//! coalesces into the next one (newest state wins, never out of order).

use super::auth::AuthDecision;
use super::persist::SubStatus;
use super::subscription::TermReason;
use super::tags::{Branch, Token};
use super::transaction::client::{NotifyTx, TxFire};
use super::{Core, Instant, Out, Peer, TimerKey, Transmit, Transport, CSEQ_PERSIST_EVERY};
use sip_parser::{push_u32, Message, Method};

fn header(out: &mut Vec<u8>, name: &[u8], parts: &[&[u8]]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    for p in parts {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(b"\r\n");
}

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
        if sub.gate > persisted {
            self.gated.push_back((sub.gate, Out::Notify(id)));
        } else {
            self.ready.push_back(Out::Notify(id));
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
            self.give_buffer(tx.request);
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
        self.timers.push(at, TimerKey::SubExpiry { id, token });
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
            self.timers
                .push(deadline, TimerKey::SubExpiry { id, token });
            return;
        }
        self.stats.subscriptions_expired += 1;
        self.terminate(id, TermReason::Timeout);
        self.mark_changed(id);
    }

    /// Writes the dialog's next NOTIFY into `out` (if it still owes one) and opens its
    /// client transaction.
    pub(super) fn build_notify(
        &mut self,
        now: Instant,
        id: u64,
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
            self.gated.push_back((sub.gate, Out::Notify(id)));
            return None;
        }
        sub.pending = false;
        sub.local_cseq = sub.local_cseq.wrapping_add(1).max(1);
        let cseq = sub.local_cseq;
        let is_final = !sub.is_live();
        let pres = self.pres.get(sub.pres)?;
        let pkg = &self.packages[sub.pkg as usize];
        let s = sub.strings();
        let offset = out.len();
        out.reserve(512 + s.len() + pres.body.len());
        out.extend_from_slice(b"NOTIFY ");
        out.extend_from_slice(s.contact);
        out.extend_from_slice(b" SIP/2.0\r\n");
        let transport: &[u8] = match sub.peer.transport {
            Transport::Udp => b"UDP",
            Transport::Tcp => b"TCP",
        };
        let branch = Branch::new(sub.hash, id, cseq);
        header(
            out,
            b"Via",
            &[
                b"SIP/2.0/",
                transport,
                b" ",
                &self.via_sent_by,
                b";branch=",
                branch.as_bytes(),
                b";rport",
            ],
        );
        out.extend_from_slice(b"Max-Forwards: 70\r\n");
        if !s.routes.is_empty() {
            header(out, b"Route", &[s.routes]);
        }
        let tag = Token::new(sub.hash, id);
        header(out, b"From", &[s.to_hdr, b";tag=", tag.as_bytes()]);
        header(out, b"To", &[s.from_hdr]);
        header(out, b"Call-ID", &[s.call_id]);
        out.extend_from_slice(b"CSeq: ");
        push_u32(out, cseq);
        out.extend_from_slice(b" NOTIFY\r\n");
        header(out, b"Contact", &[&self.contact_hdr]);
        match s.event_id {
            Some(eid) => header(out, b"Event", &[pkg.name().as_bytes(), b";id=", eid]),
            None => header(out, b"Event", &[pkg.name().as_bytes()]),
        }
        out.extend_from_slice(b"Subscription-State: ");
        match (sub.status, sub.auth) {
            (SubStatus::Terminated, _) => {
                out.extend_from_slice(b"terminated;reason=");
                out.extend_from_slice(
                    sub.reason
                        .unwrap_or(TermReason::Timeout)
                        .as_str()
                        .as_bytes(),
                );
            }
            (_, AuthDecision::Pending) | (SubStatus::Pending, _) => {
                out.extend_from_slice(b"pending;expires=");
                push_u32(out, sub.remaining_secs(now));
            }
            _ => {
                out.extend_from_slice(b"active;expires=");
                push_u32(out, sub.remaining_secs(now));
            }
        }
        out.extend_from_slice(b"\r\n");
        let body: &[u8] = if sub.auth == AuthDecision::Pending {
            b""
        } else if !pres.body.is_empty() {
            &pres.body
        } else if self.cfg.notify_offline_body && pkg.offline_body(&pres.aor, &mut self.scratch) {
            &self.scratch
        } else {
            b""
        };
        if !body.is_empty() {
            header(out, b"Content-Type", &[pkg.content_types()[0].as_bytes()]);
        }
        out.extend_from_slice(b"Content-Length: ");
        push_u32(out, body.len() as u32);
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(body);
        let len = out.len() - offset;
        let reliable = sub.peer.transport == Transport::Tcp;
        let peer = sub.peer;
        let request = if reliable {
            Vec::new()
        } else {
            let mut b = self
                .pool
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(len.next_power_of_two()));
            b.extend_from_slice(&out[offset..]);
            b
        };
        let sub = self.subs.get_mut(&id)?;
        let tx = NotifyTx::new(now, cseq, reliable, self.cfg.t1_ms, request, is_final);
        self.timers
            .push(tx.deadline(), TimerKey::Notify { id, cseq });
        sub.tx = Some(Box::new(tx));
        self.stats.notify_sent += 1;
        if cseq % CSEQ_PERSIST_EVERY == 0 && !is_final {
            self.persist_put_sub(id);
        }
        Some(Transmit {
            dst: self.notify_dst(peer),
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
                self.ready.push_back(Out::Retransmit(id, cseq));
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
            // Late retransmission of a response to a finished transaction (Timer K).
            self.stats.rx_stray_responses += 1;
            return;
        };
        if code < 200 {
            tx.on_provisional(now, t2);
            return;
        }
        self.notify_done(id, code);
    }

    /// The NOTIFY transaction of `id` ended with `code` (408 for Timer F).
    fn notify_done(&mut self, id: u64, code: u16) {
        let Some(sub) = self.subs.get_mut(&id) else {
            return;
        };
        let Some(tx) = sub.tx.take() else { return };
        let is_final = tx.is_final;
        let pending = sub.pending;
        let live = sub.is_live();
        self.give_buffer(tx.request);
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
        self.subs.get(&id).map(|s| s.peer)
    }
}
