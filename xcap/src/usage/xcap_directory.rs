//! `org.openmobilealliance.xcap-directory`: lists a user's documents (one folder per AUID,
//! each entry with its URI and ETag), generated from the store; read-only.

use super::{Access, ApplicationUsage, UsageCtx};
use crate::error::{escape, XcapError};
use crate::uri::Scope;

pub const XCAP_DIRECTORY_NS: &str = "urn:oma:xml:xdm:xcap-directory";

pub struct XcapDirectory;

impl ApplicationUsage for XcapDirectory {
    fn auid(&self) -> &'static str {
        "org.openmobilealliance.xcap-directory"
    }
    fn default_ns(&self) -> Option<&'static str> {
        Some(XCAP_DIRECTORY_NS)
    }
    fn mime(&self) -> &'static str {
        "application/vnd.oma.xcap-directory+xml"
    }
    fn access(&self) -> Access {
        Access::USER_GENERATED
    }
    fn generate(&self, ctx: &UsageCtx<'_>) -> Result<Vec<u8>, XcapError> {
        let Scope::User(user) = &ctx.key.scope else {
            return Err(XcapError::NotFound);
        };
        if ctx.key.path != "directory.xml" {
            return Err(XcapError::NotFound);
        }
        let mut docs = ctx
            .store
            .list_user(user)
            .map_err(|e| XcapError::Storage(format!("{e:?}")))?;
        docs.sort();
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xcap-directory xmlns=\"{XCAP_DIRECTORY_NS}\">\n"
        );
        let root = ctx.root.to_uri();
        for (auid, _) in ctx.registered {
            let mine: Vec<_> = docs.iter().filter(|(a, _, _)| a == auid).collect();
            if mine.is_empty() {
                continue;
            }
            out.push_str(&format!("  <folder auid=\"{}\">\n", escape(auid)));
            for (a, path, etag) in mine {
                let uri = format!("{root}/{a}/users/{}/{path}", user.aor());
                out.push_str(&format!(
                    "    <entry uri=\"{}\" etag=\"{}\"/>\n",
                    escape(&uri),
                    escape(&etag.0)
                ));
            }
            out.push_str("  </folder>\n");
        }
        out.push_str("</xcap-directory>\n");
        Ok(out.into_bytes())
    }
}
