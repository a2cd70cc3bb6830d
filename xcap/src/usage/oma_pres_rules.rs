//! `org.openmobilealliance.pres-rules`: the OMA flavour of pres-rules that Blink and most
//! softphones use. Same document type; OMA's extra conditions (`ocp:external-list`,
//! `ocp:anonymous-request`, `ocp:other-identity`) sit in common-policy's lax extension points.

use super::pres_rules::{AUTH_POLICY_MIME, COMMON_POLICY_NS};
use super::ApplicationUsage;
use crate::schema::SchemaId;
use crate::uri::UserId;
use crate::Effect;

pub struct OmaPresRules;

impl ApplicationUsage for OmaPresRules {
    fn auid(&self) -> &'static str {
        "org.openmobilealliance.pres-rules"
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
