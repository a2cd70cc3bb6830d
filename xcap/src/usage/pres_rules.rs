//! `pres-rules` (RFC 5025): presence authorization rules, a common-policy ruleset.

use super::ApplicationUsage;
use crate::schema::SchemaId;
use crate::uri::UserId;
use crate::Effect;

pub const COMMON_POLICY_NS: &str = "urn:ietf:params:xml:ns:common-policy";
pub const AUTH_POLICY_MIME: &str = "application/auth-policy+xml";

pub struct PresRules;

impl ApplicationUsage for PresRules {
    fn auid(&self) -> &'static str {
        "pres-rules"
    }
    fn default_ns(&self) -> Option<&'static str> {
        Some(COMMON_POLICY_NS)
    }
    fn mime(&self) -> &'static str {
        AUTH_POLICY_MIME
    }
    fn schema(&self) -> Option<SchemaId> {
        Some(SchemaId::PresRules)
    }
    fn effect(&self, user: &UserId) -> Option<Effect> {
        Some(Effect::PresRulesChanged { user: user.clone() })
    }
}
