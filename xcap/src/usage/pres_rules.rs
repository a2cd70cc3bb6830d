//! `pres-rules` (RFC 5025): presence authorization rules, a common-policy ruleset, and
//! `org.openmobilealliance.pres-rules`, the OMA flavour that Blink and most softphones use.
//! Both are the same document type; OMA's extra conditions (`ocp:external-list`,
//! `ocp:anonymous-request`, `ocp:other-identity`) sit in common-policy's lax extension
//! points, so one usage type serves both AUIDs.

use super::ApplicationUsage;
use crate::schema::SchemaId;
use crate::uri::UserId;
use crate::Effect;

pub const COMMON_POLICY_NS: &str = "urn:ietf:params:xml:ns:common-policy";
pub const AUTH_POLICY_MIME: &str = "application/auth-policy+xml";

pub struct PresRules {
    auid: &'static str,
}

impl PresRules {
    /// RFC 5025 `pres-rules`.
    pub const IETF: PresRules = PresRules { auid: "pres-rules" };
    /// `org.openmobilealliance.pres-rules`.
    pub const OMA: PresRules = PresRules {
        auid: "org.openmobilealliance.pres-rules",
    };
}

impl ApplicationUsage for PresRules {
    fn auid(&self) -> &'static str {
        self.auid
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
