//! `pidf-manipulation` (RFC 4827): a user's persistent presence document; a change updates
//! the presentity and notifies its watchers.

use super::ApplicationUsage;
use crate::schema::SchemaId;
use crate::uri::UserId;
use crate::Effect;

pub struct PidfManipulation;

impl ApplicationUsage for PidfManipulation {
    fn auid(&self) -> &'static str {
        "pidf-manipulation"
    }
    fn default_ns(&self) -> Option<&'static str> {
        Some("urn:ietf:params:xml:ns:pidf")
    }
    fn mime(&self) -> &'static str {
        "application/pidf+xml"
    }
    fn schema(&self) -> Option<SchemaId> {
        Some(SchemaId::Pidf)
    }
    fn effect(&self, user: &UserId) -> Option<Effect> {
        Some(Effect::PidfManipulationChanged { user: user.clone() })
    }
}
