//! The SUBSCRIBE path (RFC 6665 §4.2.1, RFC 3856 §6): create, refresh, fetch and end
//! subscription dialogs. Every accepted SUBSCRIBE gets a 200 (RFC 6665 deprecates 202)
//! with our To-tag, Expires and Contact, and is followed at once by a NOTIFY.

use super::auth::{authorize, AuthDecision};
use super::routing::{Dialog, Extra, Reason, Reject};
use super::subscription::{DialogStrings, Subscription, TermReason, MAX_DIALOG_STRINGS};
use super::tags::{aor_hash, Token};
use super::{Add, Core, Instant, Peer};
use sip_parser::{Aor, FieldError, HeaderKind, Message, Scheme, Uri, UriError};

/// Request-URI → presentity AoR, or the right refusal.
pub(super) fn request_aor(msg: &Message<'_, '_>) -> Result<Aor, Reject> {
    let mut normalised = Vec::new();
    request_aor_into(msg, &mut normalised)?;
    Ok(Aor::from_normalised(&normalised))
}

/// [`request_aor`] appended to `out` (a reused buffer: no allocation per request); returns
/// the AoR's host (empty for tel), for the domain check.
pub(super) fn request_aor_into<'b>(
    msg: &Message<'_, 'b>,
    out: &mut Vec<u8>,
) -> Result<&'b [u8], Reject> {
    let raw = msg.request_uri().unwrap_or(b"");
    match Uri::parse_request_uri(raw) {
        Ok(uri) if uri.scheme != Scheme::Tel && uri.host.is_empty() => {
            Err(Reject::text(400, "Bad Request-URI"))
        }
        Ok(uri) => {
            Aor::normalise_into(&uri, out);
            Ok(if uri.scheme == Scheme::Tel {
                b""
            } else {
                uri.host
            })
        }
        Err(UriError::UnsupportedScheme) => Err(Reject::std(416)),
        Err(_) => Err(Reject::text(400, "Bad Request-URI")),
    }
}

/// Whether an Accept `q` parameter is zero ("0", "0.", "0.0"... RFC 3261 §25.1 qvalue),
/// which marks a range as not acceptable. A malformed q is not zero.
fn zero_q(q: Option<Option<&[u8]>>) -> bool {
    let Some(Some(v)) = q else { return false };
    match v.split_first() {
        Some((b'0', rest)) => match rest.split_first() {
            None => true,
            Some((b'.', frac)) => frac.len() <= 3 && frac.iter().all(|&b| b == b'0'),
            Some(_) => false,
        },
        _ => false,
    }
}

impl Core {
    /// Expires of a request: default when absent, 423 below the minimum, clamped to `max`.
    pub(super) fn granted_expires(
        &self,
        msg: &Message<'_, '_>,
        default: u32,
        max: u32,
    ) -> Result<u32, Reject> {
        let e = msg.expires()?.unwrap_or(default);
        if e != 0 && e < self.cfg.min_expires {
            return Err(Reject::new(
                423,
                Reason::Std,
                Extra::MinExpires(self.cfg.min_expires),
            ));
        }
        Ok(e.min(max))
    }

    /// RFC 3856 §6.2, RFC 3261 §21.4.7: a SUBSCRIBE whose Accept names no type the
    /// package's NOTIFYs carry gets 406 naming the one they do, instead of a dialog whose
    /// bodies the watcher cannot read. No Accept means the package's default (PIDF); an
    /// empty one accepts nothing (RFC 3261 §20.1); `q=0` excludes a range.
    fn check_accept(
        &self,
        msg: &Message<'_, '_>,
        pkg: super::package::PkgId,
    ) -> Result<(), Reject> {
        let notify_type = self.packages[pkg as usize].content_types()[0].as_bytes();
        // What nearly every client sends, compared before parsing any media range (the
        // general path below costs ~500 instructions per SUBSCRIBE).
        if msg.sole_value(HeaderKind::Accept) == Some(notify_type) || !msg.has(HeaderKind::Accept) {
            return Ok(());
        }
        for range in msg.accept() {
            let range = range?;
            if range.accepts(notify_type) && !zero_q(range.param(b"q")) {
                return Ok(());
            }
        }
        Err(Reject::new(406, Reason::Std, Extra::Accept(pkg)))
    }

    pub(super) fn on_subscribe(
        &mut self,
        now: Instant,
        peer: Peer,
        key: u64,
        msg: &Message<'_, '_>,
        dlg: &Dialog<'_>,
    ) -> Result<(), Reject> {
        self.refuse_if_store_backlogged()?;
        let to = dlg.to;
        let event = msg.event()?.ok_or(FieldError::Missing(HeaderKind::Event))?;
        let pkg = self.package_index(event.full_name()).ok_or(Reject::new(
            489,
            Reason::Std,
            Extra::AllowEvents,
        ))?;
        if self.cfg.check_accept {
            self.check_accept(msg, pkg)?;
        }
        if let Some(tag) = to.tag() {
            return self.on_refresh(now, peer, key, msg, dlg, tag, pkg, event.id);
        }
        let mut aor = std::mem::take(&mut self.aor_buf);
        aor.clear();
        let created = self.on_initial(now, peer, key, msg, dlg, pkg, event.id, &mut aor);
        self.aor_buf = aor;
        created
    }

    /// A SUBSCRIBE creating a dialog; `aor` is a scratch buffer for the presentity key.
    #[allow(clippy::too_many_arguments)]
    fn on_initial(
        &mut self,
        now: Instant,
        peer: Peer,
        key: u64,
        msg: &Message<'_, '_>,
        dlg: &Dialog<'_>,
        pkg: super::package::PkgId,
        event_id: Option<&[u8]>,
        aor: &mut Vec<u8>,
    ) -> Result<(), Reject> {
        let host = request_aor_into(msg, aor)?;
        let aor = &aor[..];
        if !self.domain_served(host) {
            return Err(Reject::text(403, "Domain not served here"));
        }
        let max = self.cfg.max_expires_subscribe;
        let expires =
            self.granted_expires(msg, self.packages[pkg as usize].default_expires(), max)?;
        let contact = msg
            .contact()?
            .ok_or(FieldError::Missing(HeaderKind::Contact))?;
        let contact_uri = routable_contact(&contact)?;
        let from = dlg.from;
        let from_tag = from.tag().ok_or(Reject::text(400, "Missing From tag"))?;
        let hash = aor_hash(aor);
        self.owns(hash);
        let auth = authorize(&from, aor, self.packages[pkg as usize].name());
        if auth == AuthDecision::Terminated {
            return Err(Reject::text(403, "Subscription refused by policy"));
        }
        if expires != 0 && self.subs.len() >= self.cfg.max_subscriptions {
            return Err(Reject::new(
                503,
                Reason::Text("Subscription table full"),
                Extra::RetryAfter(60),
            ));
        }
        let slot = match self.pres.lookup_bytes(aor, pkg) {
            Some(s) => s,
            None => {
                if self.pres.len() >= self.cfg.max_presentities {
                    return Err(Reject::new(
                        503,
                        Reason::Text("Presentity table full"),
                        Extra::RetryAfter(60),
                    ));
                }
                self.pres.insert(Aor::from_normalised(aor), hash, pkg)
            }
        };
        if self
            .pres
            .get(slot)
            .is_some_and(|p| p.watchers.len() >= self.cfg.max_subscriptions_per_presentity)
        {
            self.pres.gc(slot);
            return Err(Reject::new(
                503,
                Reason::Text("Too many watchers for this presentity"),
                Extra::RetryAfter(60),
            ));
        }
        let mut routes = Vec::new();
        for rr in msg.values(HeaderKind::RecordRoute) {
            if !routes.is_empty() {
                routes.extend_from_slice(b", ");
            }
            routes.extend_from_slice(rr);
        }
        let strings = DialogStrings {
            call_id: dlg.call_id,
            from_tag,
            from_hdr: msg.header(HeaderKind::From).unwrap_or(b""),
            to_hdr: msg.header(HeaderKind::To).unwrap_or(b""),
            contact: contact_uri,
            routes: &routes,
            event_id,
        };
        if strings.len() > MAX_DIALOG_STRINGS {
            self.pres.gc(slot);
            return Err(Reject::text(400, "Dialog too large"));
        }
        let id = self.fresh_sub_id();
        let cseq = dlg.cseq.seq;
        let expires_at = now.add_millis(expires as u64 * 1000);
        let mut sub = Subscription::new(id, hash, slot, pkg, strings, cseq, peer, expires_at);
        sub.auth = auth;
        if auth == AuthDecision::Pending {
            sub.status = super::SubStatus::Pending;
        }
        self.subs.insert(id, sub);
        if let Some(p) = self.pres.get_mut(slot) {
            p.watchers.push(id);
        }
        let tag = Token::new(hash, id);
        let mut gate = 0;
        if expires == 0 {
            // Fetch (RFC 6665 §4.4.3): one NOTIFY with the state, then the dialog ends.
            if let Some(s) = self.subs.get_mut(&id) {
                s.status = super::SubStatus::Terminated;
                s.reason = Some(TermReason::Timeout);
            }
        } else {
            self.arm_sub_expiry(id);
            gate = {
                let s = self.persist_put_sub(id);
                self.gate_of(s)
            };
            if let Some(s) = self.subs.get_mut(&id) {
                s.gate = gate;
            }
        }
        let adds = [Add::Expires(expires), Add::Contact];
        self.respond_tagged(
            now,
            peer,
            key,
            msg,
            200,
            Reason::Std,
            Some(tag.as_bytes()),
            Some(false),
            &adds,
            gate,
        );
        self.mark_changed(id);
        Ok(())
    }

    /// SUBSCRIBE inside an existing dialog: refresh, or unsubscribe with `Expires: 0`.
    #[allow(clippy::too_many_arguments)]
    fn on_refresh(
        &mut self,
        now: Instant,
        peer: Peer,
        key: u64,
        msg: &Message<'_, '_>,
        dlg: &Dialog<'_>,
        tag: &[u8],
        pkg: super::package::PkgId,
        event_id: Option<&[u8]>,
    ) -> Result<(), Reject> {
        const GONE: Reject = Reject::text(481, "Subscription does not exist");
        let (_, id) = Token::decode(tag).ok_or(GONE)?;
        let call_id = dlg.call_id;
        let from_tag = dlg.from.tag();
        let cseq = dlg.cseq.seq;
        let sub = self.subs.get(&id).ok_or(GONE)?;
        let s = sub.strings();
        if s.call_id != call_id
            || Some(s.from_tag) != from_tag
            || sub.pkg != pkg
            || s.event_id != event_id
            || !sub.is_live()
        {
            return Err(GONE);
        }
        if cseq <= sub.remote_cseq {
            return Err(Reject::text(500, "CSeq out of order"));
        }
        let max = self.cfg.max_expires_subscribe;
        let expires =
            self.granted_expires(msg, self.packages[pkg as usize].default_expires(), max)?;
        let contact = match msg.contact()? {
            Some(c) => Some(routable_contact(&c)?),
            None => None,
        };
        let sub = self.subs.get_mut(&id).ok_or(GONE)?;
        sub.remote_cseq = cseq;
        sub.set_peer(peer);
        if let Some(c) = contact {
            sub.set_contact(c);
        }
        let gate;
        if expires == 0 {
            gate = {
                let s = self.terminate(id, TermReason::Timeout);
                self.gate_of(s)
            };
        } else {
            sub.expires_at = now.add_millis(expires as u64 * 1000);
            self.arm_sub_expiry(id);
            gate = {
                let s = self.persist_put_sub(id);
                self.gate_of(s)
            };
            if let Some(s) = self.subs.get_mut(&id) {
                s.gate = s.gate.max(gate);
            }
        }
        let adds = [Add::Expires(expires), Add::Contact];
        self.respond_tagged(
            now,
            peer,
            key,
            msg,
            200,
            Reason::Std,
            None,
            Some(true),
            &adds,
            gate,
        );
        self.mark_changed(id);
        Ok(())
    }
}

/// The SUBSCRIBE's Contact URI, which every NOTIFY of the dialog will carry as its
/// Request-URI: it must be a SIP or SIPS URI a start line can carry (RFC 6665 §4.1.2.1 via
/// RFC 3261 §8.1.1.8), or the dialog would send NOTIFYs no one can parse. 400 otherwise.
fn routable_contact<'b>(contact: &sip_parser::Contact<'b>) -> Result<&'b [u8], Reject> {
    if contact.is_star() || !Uri::is_sendable(contact.addr.uri) {
        return Err(Reject::field(FieldError::Malformed(HeaderKind::Contact)));
    }
    Ok(contact.addr.uri)
}
