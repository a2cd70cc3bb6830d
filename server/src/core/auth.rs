//! Authorization of a watcher (RFC 3856 §6.6) through one hook.
//!
//! Today every watcher is allowed, like presence_xml `force_active=1`; XCAP privacy rules
//! (RFC 4745/5025) will plug in here without touching the SUBSCRIBE path.

use sip_parser::NameAddr;

/// Decision for one watcher / presentity / event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthDecision {
    Active,
    /// Subscription accepted but no state sent until authorized.
    Pending,
    /// Refused: 403.
    Terminated,
}

/// Decides whether `watcher` (the SUBSCRIBE's From) may see `presentity`'s `event` state.
/// `presentity` is the normalised AoR (`Aor::as_bytes` form) borrowed from the request
/// path's scratch buffer; the watcher comes unparsed: a policy that needs its AoR
/// normalises it (`Aor::from_uri`), the allow-all policy pays nothing.
pub fn authorize(watcher: &NameAddr<'_>, presentity: &[u8], event: &str) -> AuthDecision {
    let _ = (watcher, presentity, event);
    AuthDecision::Active
}
