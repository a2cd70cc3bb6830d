//! `org.openxcap.watchers`: a read-only list of who watches the user's presence and with
//! what subscription status, generated from the presence core's state (OpenXCAP extension,
//! used by Blink to show pending authorization requests).

use super::{Access, ApplicationUsage, UsageCtx};
use crate::error::{escape, XcapError};
use crate::uri::Scope;

pub const WATCHERS_NS: &str = "http://openxcap.org/ns/watchers";

/// One watcher of a presentity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watcher {
    /// Watcher URI, e.g. `sip:bob@example.com`.
    pub uri: String,
    /// `active`, `pending`, `terminated`, … as in the watcherinfo state.
    pub status: String,
}

/// Supplies the watcher list; the server implements it on the presence core.
pub trait WatchersSource {
    fn watchers(&self, user: &crate::uri::UserId) -> Vec<Watcher>;
}

/// No watchers known (tests, or before the presence core is wired).
impl WatchersSource for () {
    fn watchers(&self, _user: &crate::uri::UserId) -> Vec<Watcher> {
        Vec::new()
    }
}

pub struct Watchers;

impl ApplicationUsage for Watchers {
    fn auid(&self) -> &'static str {
        "org.openxcap.watchers"
    }
    fn default_ns(&self) -> Option<&'static str> {
        Some(WATCHERS_NS)
    }
    fn mime(&self) -> &'static str {
        "application/xml"
    }
    fn access(&self) -> Access {
        Access::USER_GENERATED
    }
    fn generate(&self, ctx: &UsageCtx<'_>) -> Result<Vec<u8>, XcapError> {
        let Scope::User(user) = &ctx.key.scope else {
            return Err(XcapError::NotFound);
        };
        if ctx.key.path != "index" && ctx.key.path != "watchers" {
            return Err(XcapError::NotFound);
        }
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<watchers xmlns=\"{WATCHERS_NS}\">\n"
        );
        for w in ctx.watchers.watchers(user) {
            out.push_str(&format!(
                "  <watcher status=\"{}\">{}</watcher>\n",
                escape(&w.status),
                escape(&w.uri)
            ));
        }
        out.push_str("</watchers>\n");
        Ok(out.into_bytes())
    }
}
