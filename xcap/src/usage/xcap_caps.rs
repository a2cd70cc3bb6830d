//! `xcap-caps` (RFC 4825 §12): the server's capabilities, generated from the registered
//! usages. Only `global/index` exists; it is read-only.

use super::{Access, ApplicationUsage, UsageCtx};
use crate::error::XcapError;
use crate::uri::Scope;

pub const XCAP_CAPS_NS: &str = "urn:ietf:params:xml:ns:xcap-caps";

pub struct XcapCaps;

impl ApplicationUsage for XcapCaps {
    fn auid(&self) -> &'static str {
        "xcap-caps"
    }
    fn default_ns(&self) -> Option<&'static str> {
        Some(XCAP_CAPS_NS)
    }
    fn mime(&self) -> &'static str {
        "application/xcap-caps+xml"
    }
    fn access(&self) -> Access {
        Access {
            users: false,
            global: true,
            read_only: true,
        }
    }
    fn generate(&self, ctx: &UsageCtx<'_>) -> Result<Vec<u8>, XcapError> {
        if ctx.key.scope != Scope::Global || ctx.key.path != "index" {
            return Err(XcapError::NotFound);
        }
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xcap-caps xmlns=\"{XCAP_CAPS_NS}\">\n  <auids>\n"
        );
        for (auid, _) in ctx.registered {
            out.push_str(&format!("    <auid>{auid}</auid>\n"));
        }
        out.push_str("  </auids>\n  <extensions/>\n  <namespaces>\n");
        let mut seen: Vec<&str> = Vec::new();
        for (_, ns) in ctx.registered {
            if let Some(ns) = ns {
                if !seen.contains(ns) {
                    seen.push(ns);
                    out.push_str(&format!("    <namespace>{ns}</namespace>\n"));
                }
            }
        }
        out.push_str("  </namespaces>\n</xcap-caps>\n");
        Ok(out.into_bytes())
    }
}
