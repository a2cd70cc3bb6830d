//! XCAP → presence: what a document change means for the presence engine.
//!
//! A `pidf-manipulation` document (RFC 4827) is the user's "hard state": presence that holds
//! without any client publishing it. It enters the compositor exactly like a PUBLISH, as one
//! publication per user with a fixed SIP-ETag, so it is aggregated with the clients'
//! publications, persisted and restored by the same code, and NOTIFYs the watchers the same
//! way. It does not expire on its own (the document has no lifetime): its expiry is set
//! [`XCAP_PUBLICATION_LIFETIME_MS`] ahead and moved again on every change.
//!
//! The XCAP front calls these on the shard that owns the user (the same shard as the user's
//! presentity), after the document change is durable.

use super::package::BodyError;
use super::persist::SubStatus;
use super::presentity::Publication;
use super::tags::{aor_hash, Token};
use super::{Core, Instant};
use sip_parser::Aor;

/// Id half of the XCAP publication's SIP-ETag (`"xcap"` in hex): fixed, so each document
/// change replaces the same publication, also after a restart.
pub const XCAP_PUBLICATION_ID: u64 = 0x7863_6170;
/// How far ahead the XCAP publication's expiry is set: ten years stands for "until the
/// document changes or is deleted" while staying a plain expiry for the store's index.
pub const XCAP_PUBLICATION_LIFETIME_MS: u64 = 10 * 365 * 24 * 3600 * 1000;
const PIDF_CONTENT_TYPE: &[u8] = b"application/pidf+xml";

/// Why a pidf-manipulation document did not reach the presentity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XcapPidfError {
    /// The presence package is not registered (a build without it).
    NoPresencePackage,
    /// The document passed the XCAP schema but not the presence package's PIDF checks.
    Body(BodyError),
    /// `--max-presentities` / `--max-publications` reached.
    TableFull,
}

impl std::fmt::Display for XcapPidfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XcapPidfError::NoPresencePackage => f.write_str("no presence event package"),
            XcapPidfError::Body(e) => write!(f, "PIDF refused by the presence package: {e}"),
            XcapPidfError::TableFull => f.write_str("presentity or publication table full"),
        }
    }
}

impl Core {
    /// The pidf-manipulation document of `aor` is now `doc` (`None`: deleted). Updates the
    /// user's XCAP publication, persists it and queues NOTIFYs to the watchers; the edge
    /// then drains them with `poll_transmit` as after any message.
    pub fn handle_xcap_pidf(
        &mut self,
        now: Instant,
        aor: &Aor,
        doc: Option<&[u8]>,
    ) -> Result<(), XcapPidfError> {
        if now > self.now {
            self.now = now;
        }
        let pkg = self
            .package_index(b"presence")
            .ok_or(XcapPidfError::NoPresencePackage)?;
        let hash = aor_hash(aor.as_bytes());
        self.owns(hash);
        let etag = Token::new(hash, XCAP_PUBLICATION_ID);
        let key = (aor.clone(), pkg);
        let Some(body) = doc else {
            // Deleted: remove the publication, if any.
            let Some(slot) = self.pres.lookup(&key) else {
                return Ok(());
            };
            let Some(i) = self
                .pres
                .get(slot)
                .and_then(|p| p.find_pub(etag.as_bytes()))
            else {
                return Ok(());
            };
            self.remove_publication(slot, pkg, i);
            self.persist_delete_pub(slot, &etag);
            self.presentity_changed(slot);
            self.pres.gc(slot);
            return Ok(());
        };
        let index = self.packages[pkg as usize]
            .validate(body)
            .map_err(XcapPidfError::Body)?;
        let expires_at = now.add_millis(XCAP_PUBLICATION_LIFETIME_MS);
        let slot = match self.pres.lookup(&key) {
            Some(s) => s,
            None => {
                if self.pres.len() >= self.cfg.max_presentities {
                    return Err(XcapPidfError::TableFull);
                }
                self.pres.insert(aor.clone(), hash, pkg)
            }
        };
        let order = self.next_order;
        self.next_order += 1;
        let existing = self
            .pres
            .get(slot)
            .and_then(|p| p.find_pub(etag.as_bytes()));
        match existing {
            Some(i) => {
                let package = &*self.packages[pkg as usize];
                if let Some(p) = self.pres.get_mut(slot) {
                    // The expiry timer stays armed where it is; when it fires it sees the
                    // later `expires_at` and re-arms (as for a PUBLISH refresh).
                    let mut q = p.pubs.remove(i);
                    q.body = body.into();
                    if *q.content_type != *PIDF_CONTENT_TYPE {
                        q.content_type = PIDF_CONTENT_TYPE.into();
                    }
                    q.index = index;
                    q.order = order;
                    q.expires_at = expires_at;
                    p.insert_pub(q);
                    p.reaggregate(package);
                }
            }
            None => {
                if self.pres.publications >= self.cfg.max_publications {
                    self.pres.gc(slot);
                    return Err(XcapPidfError::TableFull);
                }
                let token = self.fresh_token();
                let publication = Publication {
                    // One fixed token for the XCAP-backed publication: id and ETag alike.
                    id: etag,
                    etag,
                    order,
                    expires_at,
                    timer: token,
                    expiry_armed: expires_at,
                    content_type: PIDF_CONTENT_TYPE.into(),
                    body: body.into(),
                    index,
                };
                self.add_publication(slot, pkg, publication);
            }
        }
        self.persist_put_pub(slot, &etag);
        self.presentity_changed(slot);
        Ok(())
    }

    /// The user's pres-rules changed: refresh the authorization of their watchers.
    pub fn handle_xcap_pres_rules(&mut self, now: Instant, aor: &Aor) {
        self.refresh_authorization(now, aor);
    }

    /// Authorization refresh hook. Today every watcher is authorised by policy
    /// (`core::auth::authorize`), so a rules change cannot change any decision and this does
    /// nothing; once privacy rules are enforced, re-run `authorize` for each watcher of `aor`
    /// here and NOTIFY those whose subscription state changed.
    pub fn refresh_authorization(&mut self, _now: Instant, _aor: &Aor) {}

    /// Watchers of `aor`'s presence as (watcher URI, status) for the XCAP
    /// `org.openxcap.watchers` document.
    pub fn xcap_watchers(&self, aor: &Aor) -> Vec<(Vec<u8>, &'static str)> {
        let Some(pkg) = self.package_index(b"presence") else {
            return Vec::new();
        };
        let Some(p) = self
            .pres
            .lookup(&(aor.clone(), pkg))
            .and_then(|s| self.pres.get(s))
        else {
            return Vec::new();
        };
        p.watchers
            .iter()
            .filter_map(|id| self.subs.get(id))
            .map(|s| {
                let status = match s.status {
                    SubStatus::Active => "active",
                    SubStatus::Pending => "pending",
                    SubStatus::Terminated => "terminated",
                };
                (uri_of(s.strings().from_hdr).to_vec(), status)
            })
            .collect()
    }
}

/// The URI of a From header value: inside `<…>`, else up to the first `;`.
fn uri_of(hdr: &[u8]) -> &[u8] {
    if let Some(lt) = memchr::memchr(b'<', hdr) {
        let rest = &hdr[lt + 1..];
        let gt = memchr::memchr(b'>', rest).unwrap_or(rest.len());
        return &rest[..gt];
    }
    let end = memchr::memchr(b';', hdr).unwrap_or(hdr.len());
    hdr[..end].trim_ascii()
}
