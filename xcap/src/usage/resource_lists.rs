//! `resource-lists` (RFC 4826 §3): buddy lists. Beyond the schema (§3.4.5): a list's `name`
//! is unique among its sibling lists, and within one list the `uri` of entries, the `ref` of
//! entry-refs and the `anchor` of externals are unique; entry-ref `ref` is a relative path.

use super::uniq::{children_named, first_duplicate, suggest};
use super::{ApplicationUsage, UsageCtx};
use crate::error::Conflict;
use crate::schema::SchemaId;
use crate::uri::UserId;
use crate::xml::XmlIndex;
use crate::Effect;

pub const RL_NS: &str = "urn:ietf:params:xml:ns:resource-lists";

pub struct ResourceLists;

impl ApplicationUsage for ResourceLists {
    fn auid(&self) -> &'static str {
        "resource-lists"
    }
    fn default_ns(&self) -> Option<&'static str> {
        Some(RL_NS)
    }
    fn mime(&self) -> &'static str {
        "application/resource-lists+xml"
    }
    fn schema(&self) -> Option<SchemaId> {
        Some(SchemaId::ResourceLists)
    }
    fn check(&self, ix: &XmlIndex<'_>, _ctx: &UsageCtx<'_>) -> Result<(), Conflict> {
        check_list_container(ix, 0, &format!("/{}", ix.qname(0)))
    }
    fn effect(&self, user: &UserId) -> Option<Effect> {
        Some(Effect::ResourceListsChanged { user: user.clone() })
    }
}

/// Selector step for element `e` that identifies it among its siblings.
fn step_for(ix: &XmlIndex<'_>, e: usize) -> String {
    let q = ix.qname(e);
    match ix.attr_value(e, "name", None) {
        Some(n) => format!("{q}[@name=\"{}\"]", n.replace('"', "&quot;")),
        None => {
            let pos = ix.elements[e]
                .parent
                .map(|p| {
                    ix.children(p)
                        .iter()
                        .filter(|c| ix.qname(**c) == q)
                        .position(|c| *c == e)
                        .unwrap_or(0)
                })
                .unwrap_or(0);
            format!("{q}[{}]", pos + 1)
        }
    }
}

/// Checks the uniqueness rules for the lists and entries below `parent` (recursively).
/// `path` is the selector of `parent`. Used by rls-services for `<service><list>` too.
pub(crate) fn check_list_container(
    ix: &XmlIndex<'_>,
    parent: usize,
    path: &str,
) -> Result<(), Conflict> {
    let lists = children_named(ix, parent, "list", RL_NS);
    if let Some(ex) = first_duplicate(
        ix,
        &lists,
        "name",
        |_| format!("{path}/{}/@name", ix.qname(lists[0])),
        suggest,
    ) {
        return Err(Conflict::Uniqueness(vec![ex]));
    }
    for (local, attr) in [
        ("entry", "uri"),
        ("entry-ref", "ref"),
        ("external", "anchor"),
    ] {
        let items = children_named(ix, parent, local, RL_NS);
        if items.is_empty() {
            continue;
        }
        if let Some(ex) = first_duplicate(
            ix,
            &items,
            attr,
            |_| format!("{path}/{}/@{attr}", ix.qname(items[0])),
            suggest,
        ) {
            return Err(Conflict::Uniqueness(vec![ex]));
        }
        if local == "entry-ref" {
            for e in &items {
                if let Some(r) = ix.attr_value(*e, "ref", None) {
                    if r.contains("://") || r.starts_with('/') {
                        return Err(Conflict::ConstraintFailure(format!(
                            "entry-ref must be a relative path below the XCAP root: {r}"
                        )));
                    }
                }
            }
        }
    }
    for l in lists {
        check_list_container(ix, l, &format!("{path}/{}", step_for(ix, l)))?;
    }
    Ok(())
}
