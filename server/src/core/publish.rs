//! The PUBLISH path (RFC 3903): an event state compositor per presentity.
//!
//! Initial PUBLISH (no SIP-If-Match) needs a body of an accepted type that validates;
//! with SIP-If-Match, no body refreshes, a body modifies, `Expires: 0` removes; each
//! success hands out a new SIP-ETag. Every change of the aggregated state NOTIFYs the
//! presentity's watchers; a refresh changes nothing they can see, so it NOTIFYs nobody.

use super::presentity::Publication;
use super::routing::{Extra, Reason, Reject};
use super::subscribe::request_aor;
use super::tags::{aor_hash, Token};
use super::{Add, Core, Instant, Peer, PkgId, TimerKey};
use sip_parser::{FieldError, HeaderKind, Message};

impl Core {
    /// Adds a new publication to a presentity (PUBLISH, XCAP pidf-manipulation and restore
    /// all go through here, so aggregation, the publication count and the expiry timer can
    /// never disagree).
    pub(super) fn add_publication(&mut self, slot: u32, pkg: PkgId, publication: Publication) {
        let (at, token) = (publication.expiry_armed, publication.timer);
        let package = &*self.packages[pkg as usize];
        if let Some(p) = self.pres.get_mut(slot) {
            p.insert_pub(publication);
            p.reaggregate(package);
        }
        self.pres.publications += 1;
        self.timers
            .push(at, TimerKey::PubExpiry { pres: slot, token });
    }

    /// Removes the presentity's `i`-th publication (its expiry timer, if any, finds it gone).
    pub(super) fn remove_publication(&mut self, slot: u32, pkg: PkgId, i: usize) {
        let package = &*self.packages[pkg as usize];
        if let Some(p) = self.pres.get_mut(slot) {
            p.pubs.remove(i);
            p.reaggregate(package);
        }
        self.pres.publications -= 1;
    }

    pub(super) fn on_publish(
        &mut self,
        now: Instant,
        peer: Peer,
        key: u64,
        msg: &Message<'_, '_>,
    ) -> Result<(), Reject> {
        self.refuse_if_store_backlogged()?;
        let event = msg.event()?.ok_or(FieldError::Missing(HeaderKind::Event))?;
        let pkg = self
            .package_index(event.full_name())
            .filter(|p| self.packages[*p as usize].accepts_publish())
            .ok_or(Reject::new(489, Reason::Std, Extra::AllowEvents))?;
        let aor = request_aor(msg)?;
        if !self.domain_served(aor.host()) {
            return Err(Reject::text(403, "Domain not served here"));
        }
        let hash = aor_hash(aor.as_bytes());
        self.owns(hash);
        let max = self.cfg.max_expires_publish;
        let expires =
            self.granted_expires(msg, self.packages[pkg as usize].default_expires(), max)?;
        let body = msg.body;
        let index = if body.is_empty() {
            None
        } else {
            let ct = msg
                .content_type()?
                .ok_or(FieldError::Missing(HeaderKind::ContentType))?;
            let package = &self.packages[pkg as usize];
            if !package
                .content_types()
                .iter()
                .any(|t| ct.matches(t.as_bytes()))
            {
                return Err(Reject::new(415, Reason::Std, Extra::Accept(pkg)));
            }
            // RFC 3261 §8.2.3: a body in an encoding we do not decode (gzip, say) gets 415
            // naming the ones we do, rather than 400 from reading compressed bytes as XML.
            if msg
                .values(HeaderKind::ContentEncoding)
                .any(|c| !c.eq_ignore_ascii_case(b"identity"))
            {
                return Err(Reject::new(415, Reason::Std, Extra::AcceptEncoding));
            }
            Some(
                package
                    .validate(body)
                    .map_err(|e| Reject::new(400, Reason::Body(e), Extra::None))?,
            )
        };
        let content_type = msg.header(HeaderKind::ContentType).unwrap_or(b"");
        let expires_at = now.add_millis(expires as u64 * 1000);
        let offset_ms = self.cfg.expires_offset as u64 * 1000;
        let pkey = (aor, pkg);

        let Some(if_match) = msg.sip_if_match() else {
            // Initial publication.
            let Some(index) = index else {
                return Err(Reject::text(400, "Missing body in initial PUBLISH"));
            };
            if expires == 0 {
                return Err(Reject::text(400, "Expires 0 without SIP-If-Match"));
            }
            if self.pres.publications >= self.cfg.max_publications {
                return Err(Reject::new(
                    503,
                    Reason::Text("Publication table full"),
                    Extra::RetryAfter(60),
                ));
            }
            let slot = match self.pres.lookup(&pkey) {
                Some(s) => s,
                None => {
                    if self.pres.len() >= self.cfg.max_presentities {
                        return Err(Reject::new(
                            503,
                            Reason::Text("Presentity table full"),
                            Extra::RetryAfter(60),
                        ));
                    }
                    self.pres.insert(pkey.0, hash, pkg)
                }
            };
            let etag = self.fresh_etag(slot, hash);
            let token = self.fresh_token();
            let order = self.next_order;
            self.next_order += 1;
            let at = expires_at.add_millis(offset_ms);
            let publication = Publication {
                id: etag,
                etag,
                order,
                expires_at,
                timer: token,
                expiry_armed: at,
                content_type: content_type.into(),
                body: body.into(),
                index,
            };
            self.add_publication(slot, pkg, publication);
            let gate = {
                let s = self.persist_put_pub(slot, &etag);
                self.gate_of(s)
            };
            let adds = [Add::ETag(etag.as_bytes()), Add::Expires(expires)];
            self.respond(now, peer, key, msg, 200, Reason::Std, None, &adds, gate);
            self.presentity_changed(slot);
            return Ok(());
        };

        const NO_MATCH: Reject = Reject::std(412);
        let slot = self.pres.lookup(&pkey).ok_or(NO_MATCH)?;
        let i = self
            .pres
            .get(slot)
            .and_then(|p| p.find_pub(if_match))
            .ok_or(NO_MATCH)?;
        let id = self.pres.get(slot).map(|p| p.pubs[i].id).ok_or(NO_MATCH)?;
        if expires == 0 {
            // Removal.
            self.remove_publication(slot, pkg, i);
            let gate = {
                let s = self.persist_delete_pub(slot, &id);
                self.gate_of(s)
            };
            self.respond(
                now,
                peer,
                key,
                msg,
                200,
                Reason::Std,
                None,
                &[Add::Expires(0)],
                gate,
            );
            self.presentity_changed(slot);
            self.pres.gc(slot);
            return Ok(());
        }
        let etag = self.fresh_etag(slot, hash);
        let token = self.fresh_token();
        let order = self.next_order;
        self.next_order += 1;
        let package = &*self.packages[pkg as usize];
        let mut rearm = None;
        let changed = index.is_some();
        if let Some(p) = self.pres.get_mut(slot) {
            let q = &mut p.pubs[i];
            q.etag = etag;
            q.expires_at = expires_at;
            let at = expires_at.add_millis(offset_ms);
            if at < q.expiry_armed {
                q.timer = token;
                q.expiry_armed = at;
                rearm = Some(at);
            }
            if let Some(index) = index {
                // Modification: new body, and it becomes the newest publication.
                q.body = body.into();
                if *q.content_type != *content_type {
                    q.content_type = content_type.into();
                }
                q.index = index;
                q.order = order;
                let moved = p.pubs.remove(i);
                p.insert_pub(moved);
                p.reaggregate(package);
            }
        }
        if let Some(at) = rearm {
            self.timers
                .push(at, TimerKey::PubExpiry { pres: slot, token });
        }
        // The record keeps its key (the publication id): one overwrite.
        let gate = {
            let s = self.persist_put_pub(slot, &etag);
            self.gate_of(s)
        };
        let adds = [Add::ETag(etag.as_bytes()), Add::Expires(expires)];
        self.respond(now, peer, key, msg, 200, Reason::Std, None, &adds, gate);
        if changed {
            self.presentity_changed(slot);
        }
        Ok(())
    }

    /// An ETag not used by another publication of this presentity.
    fn fresh_etag(&mut self, slot: u32, hash: u32) -> Token {
        loop {
            let t = Token::new(hash, self.rng.next_u64());
            if self
                .pres
                .get(slot)
                .is_none_or(|p| p.find_pub(t.as_bytes()).is_none())
            {
                return t;
            }
        }
    }

    pub(super) fn on_pub_expiry_timer(&mut self, now: Instant, slot: u32, token: u32) {
        let offset_ms = self.cfg.expires_offset as u64 * 1000;
        let Some(p) = self.pres.get_mut(slot) else {
            return;
        };
        let Some(i) = p.pubs.iter().position(|q| q.timer == token) else {
            return;
        };
        let deadline = p.pubs[i].expires_at.add_millis(offset_ms);
        if deadline > now {
            p.pubs[i].expiry_armed = deadline;
            self.timers
                .push(deadline, TimerKey::PubExpiry { pres: slot, token });
            return;
        }
        let id = p.pubs[i].id;
        p.pubs.remove(i);
        let package = &*self.packages[p.pkg as usize];
        p.reaggregate(package);
        self.pres.publications -= 1;
        self.stats.publications_expired += 1;
        self.persist_delete_pub(slot, &id);
        self.presentity_changed(slot);
        self.pres.gc(slot);
    }
}
