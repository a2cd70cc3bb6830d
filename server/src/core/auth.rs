//! Authorization of a watcher (RFC 3856 §6.6) through one hook.
//!
//! Today every watcher is allowed, like presence_xml `force_active=1`; XCAP privacy rules
//! (RFC 4745/5025) will plug in here without touching the SUBSCRIBE path.

use sip_parser::Aor;

/// Decision for one watcher / presentity / event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthDecision {
    Active,
    /// Subscription accepted but no state sent until authorized.
    Pending,
    /// Refused: 403.
    Terminated,
}

/// Decides whether `watcher` may see `presentity`'s `event` state.
pub fn authorize(watcher: Option<&Aor>, presentity: &Aor, event: &str) -> AuthDecision {
    let _ = (watcher, presentity, event);
    AuthDecision::Active
}
