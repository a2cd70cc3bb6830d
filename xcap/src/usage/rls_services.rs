//! `rls-services` (RFC 4826 §4): resource list server services. A service `uri` must be
//! unique across the whole server (every user's documents), since the RLS routes SUBSCRIBEs
//! by it; `<resource-list>` must be an HTTP(S) URI; inline lists follow resource-lists rules.
//! The `global/index` document is generated: the union of all users' services (§4.4.9).

use super::resource_lists::check_list_container;
use super::uniq::{children_named, suggest};
use super::{Access, ApplicationUsage, UsageCtx};
use crate::error::{Conflict, Exists, XcapError};
use crate::schema::SchemaId;
use crate::uri::{Scope, UserId};
use crate::xml::{XmlIndex, XmlLimits};
use crate::Effect;

pub const RLS_NS: &str = "urn:ietf:params:xml:ns:rls-services";

pub struct RlsServices;

fn service_uris(ix: &XmlIndex<'_>) -> Vec<String> {
    children_named(ix, 0, "service", RLS_NS)
        .into_iter()
        .filter_map(|s| ix.attr_value(s, "uri", None))
        .collect()
}

impl ApplicationUsage for RlsServices {
    fn auid(&self) -> &'static str {
        "rls-services"
    }
    fn default_ns(&self) -> Option<&'static str> {
        Some(RLS_NS)
    }
    fn mime(&self) -> &'static str {
        "application/rls-services+xml"
    }
    fn schema(&self) -> Option<SchemaId> {
        Some(SchemaId::RlsServices)
    }
    fn access(&self) -> Access {
        Access {
            users: true,
            global: true,
            read_only: false,
        }
    }
    fn check(&self, ix: &XmlIndex<'_>, ctx: &UsageCtx<'_>) -> Result<(), Conflict> {
        let root_q = ix.qname(0);
        let services = children_named(ix, 0, "service", RLS_NS);
        let uris = service_uris(ix);
        // Every URI used elsewhere on the server, for uniqueness and alternatives.
        let mut elsewhere: Vec<String> = Vec::new();
        let limits = XmlLimits::default();
        ctx.store
            .for_each_in_auid(self.auid(), &mut |key, bytes| {
                if key != ctx.key && matches!(key.scope, Scope::User(_)) {
                    if let Ok(other) = XmlIndex::document(bytes, &limits) {
                        elsewhere.extend(service_uris(&other));
                    }
                }
                true
            })
            .map_err(|_| Conflict::ConstraintFailure("store unavailable".into()))?;
        for (i, uri) in uris.iter().enumerate() {
            if uris[..i].contains(uri) || elsewhere.contains(uri) {
                let taken =
                    |c: &str| uris.iter().any(|u| u == c) || elsewhere.iter().any(|u| u == c);
                return Err(Conflict::Uniqueness(vec![Exists {
                    field: format!("/{root_q}/{}/@uri", ix.qname(services[0])),
                    alt_values: suggest(uri, &taken),
                }]));
            }
        }
        for s in &services {
            for rl in children_named(ix, *s, "resource-list", RLS_NS) {
                let el = &ix.elements[rl];
                let text = std::str::from_utf8(&ix.text[el.head_end..el.content_end])
                    .unwrap_or("")
                    .trim();
                if !(text.starts_with("http://") || text.starts_with("https://")) {
                    return Err(Conflict::ConstraintFailure(
                        "resource-list must be an HTTP URI of a resource-lists list".into(),
                    ));
                }
            }
            for list in children_named(ix, *s, "list", RLS_NS) {
                let uri = ix.attr_value(*s, "uri", None).unwrap_or_default();
                check_list_container(
                    ix,
                    list,
                    &format!(
                        "/{root_q}/{}[@uri=\"{uri}\"]/{}",
                        ix.qname(*s),
                        ix.qname(list)
                    ),
                )?;
            }
        }
        Ok(())
    }
    fn generate(&self, ctx: &UsageCtx<'_>) -> Result<Vec<u8>, XcapError> {
        if ctx.key.scope != Scope::Global || ctx.key.path != "index" {
            return Err(XcapError::NotFound);
        }
        let limits = XmlLimits::default();
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rls-services xmlns=\"{RLS_NS}\" xmlns:rl=\"urn:ietf:params:xml:ns:resource-lists\">\n"
        );
        ctx.store
            .for_each_in_auid(self.auid(), &mut |key, bytes| {
                if matches!(key.scope, Scope::User(_)) {
                    if let Ok(ix) = XmlIndex::document(bytes, &limits) {
                        for s in children_named(&ix, 0, "service", RLS_NS) {
                            // Re-declare in-scope namespaces so the copy stands alone.
                            out.push_str(&copy_with_namespaces(&ix, s));
                            out.push('\n');
                        }
                    }
                }
                true
            })
            .map_err(|e| XcapError::Storage(format!("{e:?}")))?;
        out.push_str("</rls-services>\n");
        Ok(out.into_bytes())
    }
    fn effect(&self, user: &UserId) -> Option<Effect> {
        Some(Effect::RlsServicesChanged { user: user.clone() })
    }
}

/// The element's bytes with every in-scope namespace declaration added to its start tag.
fn copy_with_namespaces(ix: &XmlIndex<'_>, e: usize) -> String {
    let el = &ix.elements[e];
    let qlen = el.qname.end;
    let mut decls = String::new();
    for (p, uri) in ix.in_scope_namespaces(e) {
        if el.decls.iter().any(|(q, _)| *q == p) {
            continue;
        }
        match p {
            Some(p) => decls.push_str(&format!(" xmlns:{p}=\"{}\"", crate::error::escape(&uri))),
            None => decls.push_str(&format!(" xmlns=\"{}\"", crate::error::escape(&uri))),
        }
    }
    let text = ix.text;
    format!(
        "{}{}{}",
        String::from_utf8_lossy(&text[el.start..qlen]),
        decls,
        String::from_utf8_lossy(&text[qlen..el.end])
    )
}
