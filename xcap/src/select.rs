//! Evaluating a node selector against an `XmlIndex`.

use crate::selector::{NameTest, QName, Step};
use crate::xml::XmlIndex;

/// How selector prefixes and unprefixed names map to namespaces for one request.
#[derive(Debug, Clone, Copy)]
pub struct NsContext<'a> {
    /// Namespace of unprefixed selector names (the AUID's default document namespace);
    /// `None` matches on the local name alone.
    pub default_ns: Option<&'a str>,
    /// Bindings from the `xmlns()` query.
    pub bindings: &'a [(String, String)],
}

impl NsContext<'_> {
    /// Namespace for a selector prefix: the query bindings first, then (as clients often
    /// omit the query) the prefixes declared on the document's root element.
    pub fn resolve_prefix(&self, ix: &XmlIndex<'_>, prefix: &str) -> Option<String> {
        if let Some((_, uri)) = self.bindings.iter().find(|(p, _)| p == prefix) {
            return Some(uri.clone());
        }
        ix.in_scope_namespaces(0)
            .into_iter()
            .find(|(p, _)| p.as_deref() == Some(prefix))
            .map(|(_, u)| u)
    }
}

/// Whether element `e` passes a name test.
pub fn name_matches(ix: &XmlIndex<'_>, e: usize, test: &NameTest, ctx: &NsContext<'_>) -> bool {
    match test {
        NameTest::Any => true,
        NameTest::Name(q) => {
            if ix.local_name(e) != q.local {
                return false;
            }
            let el_ns = ix.elements[e].ns.as_deref();
            match &q.prefix {
                Some(p) => match ctx.resolve_prefix(ix, p) {
                    Some(ns) => el_ns == Some(ns.as_str()),
                    None => false,
                },
                None => match ctx.default_ns {
                    Some(d) => el_ns == Some(d),
                    None => true,
                },
            }
        }
    }
}

/// A selector prefix bound neither by the `xmlns()` query nor by the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnboundPrefix;

/// Namespace an attribute name in a selector refers to (`None` = no namespace).
pub fn attr_ns(
    ix: &XmlIndex<'_>,
    name: &QName,
    ctx: &NsContext<'_>,
) -> Result<Option<String>, UnboundPrefix> {
    match &name.prefix {
        None => Ok(None),
        Some(p) => ctx.resolve_prefix(ix, p).map(Some).ok_or(UnboundPrefix),
    }
}

/// All elements the steps select, in document order. `None` as a context node stands for
/// the document node, whose only child is the root element.
pub fn select(ix: &XmlIndex<'_>, steps: &[Step], ctx: &NsContext<'_>) -> Vec<usize> {
    let mut current: Vec<Option<usize>> = vec![None];
    for step in steps {
        let mut next = Vec::new();
        for node in &current {
            let kids: &[usize] = match node {
                None => &[0],
                Some(e) => ix.children(*e),
            };
            let mut matching: Vec<usize> = kids
                .iter()
                .copied()
                .filter(|k| name_matches(ix, *k, &step.name, ctx))
                .collect();
            if let Some(p) = step.position {
                matching = match p.checked_sub(1).and_then(|i| matching.get(i)) {
                    Some(k) => vec![*k],
                    None => Vec::new(),
                };
            }
            if let Some(test) = &step.attr {
                let ns = match attr_ns(ix, &test.name, ctx) {
                    Ok(ns) => ns,
                    Err(UnboundPrefix) => {
                        matching.clear();
                        None
                    }
                };
                matching.retain(|k| {
                    ix.attr_value(*k, &test.name.local, ns.as_deref())
                        .as_deref()
                        == Some(test.value.as_str())
                });
            }
            next.extend(matching.into_iter().map(Some));
        }
        current = next;
        if current.is_empty() {
            break;
        }
    }
    current.into_iter().flatten().collect()
}
