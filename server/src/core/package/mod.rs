//! Event packages (RFC 6665 §7): what differs between `presence`, `presence.winfo`,
//! `message-summary`, `dialog`... lives behind one trait, so adding a package is one file
//! here plus one line in [`registry`].

mod presence;

pub use presence::Presence;

use super::pidf::{PidfError, PidfIndex};
use sip_parser::Aor;
use std::fmt;
use std::sync::Arc;

/// Index of a package in the core's registry (stored per subscription / presentity).
pub type PkgId = u8;

/// Summary of a validated body that the package's `aggregate` uses (for XML packages:
/// where the root's namespace declarations and top-level children sit).
pub type BodyIndex = PidfIndex;

/// Why a published body was refused (400 reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    Pidf(PidfError),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Pidf(e) => e.fmt(f),
        }
    }
}

/// One SIP event package as an event state compositor / notifier sees it.
pub trait EventPackage {
    /// Event header token, e.g. `presence` (template packages: `presence.winfo`).
    fn name(&self) -> &'static str;
    /// Content types accepted in PUBLISH; the first is the one NOTIFY bodies carry.
    fn content_types(&self) -> &'static [&'static str];
    /// Expires used when a SUBSCRIBE or PUBLISH has none.
    fn default_expires(&self) -> u32;
    /// Whether PUBLISH is meaningful (winfo state is generated, never published).
    fn accepts_publish(&self) -> bool {
        true
    }
    /// Checks a published body and indexes it for [`EventPackage::aggregate`].
    fn validate(&self, body: &[u8]) -> Result<BodyIndex, BodyError>;
    /// Indexes a stored body at restore: what [`EventPackage::validate`] checks of the
    /// structure, but not rules added after a body may have been acknowledged.
    fn index_stored(&self, body: &[u8]) -> Result<BodyIndex, BodyError> {
        self.validate(body)
    }
    /// Merges live publications, newest first, into one NOTIFY body (`out` cleared first).
    fn aggregate(&self, docs: &[(&[u8], &BodyIndex)], out: &mut Vec<u8>);
    /// [`EventPackage::aggregate`] as a shared buffer (`None` when empty), which NOTIFYs in
    /// flight hold instead of a copy each. A package whose aggregate of one document is that
    /// document returns the publication's own buffer.
    fn aggregate_shared(&self, docs: &[(&Arc<[u8]>, &BodyIndex)]) -> Option<Arc<[u8]>> {
        aggregate_new(self, docs)
    }
    /// Body for a presentity with no publication (`--notify-offline-body`); false = none.
    fn offline_body(&self, presentity: &Aor, out: &mut Vec<u8>) -> bool;
}

/// [`EventPackage::aggregate`] into a new shared buffer (`None` when empty): what
/// [`EventPackage::aggregate_shared`] does when it cannot share a publication's own body.
pub fn aggregate_new<P: EventPackage + ?Sized>(
    pkg: &P,
    docs: &[(&Arc<[u8]>, &BodyIndex)],
) -> Option<Arc<[u8]>> {
    let plain: Vec<(&[u8], &BodyIndex)> = docs.iter().map(|(b, i)| (&b[..], *i)).collect();
    let mut out = Vec::new();
    pkg.aggregate(&plain, &mut out);
    (!out.is_empty()).then(|| Arc::from(out))
}

/// The packages this build serves, in [`PkgId`] order.
pub fn registry() -> Vec<Box<dyn EventPackage>> {
    vec![Box::new(Presence)]
}
