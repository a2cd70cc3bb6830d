//! Element and attribute GET/PUT/DELETE on the stored bytes (RFC 4825 §7, §8.2.3–§8.2.5).
//!
//! Edits splice the request body into the stored text at positions found by the index, so
//! the XML declaration, comments, prefixes and whitespace of the rest of the document stay
//! exactly as the client wrote them. After every edit the new text is indexed again and the
//! same selector must select exactly what was PUT (the §8.2.5 idempotency rule) or nothing
//! after a DELETE; otherwise the edit is refused (cannot-insert / cannot-delete).

use crate::error::{Conflict, XcapError};
use crate::select::{attr_ns, name_matches, select, NsContext};
use crate::selector::{NameTest, NodeSelector, QName, Step};
use crate::xml::{XmlError, XmlIndex, XmlLimits};

/// Result of a successful edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub new_doc: Vec<u8>,
    /// PUT created the node (201) rather than replacing it (200).
    pub created: bool,
}

/// Maps an indexing failure of a stored or edited document to a conflict.
pub fn xml_conflict(e: XmlError) -> Conflict {
    match e {
        XmlError::NotUtf8 => Conflict::NotUtf8,
        other => Conflict::NotWellFormed(other.to_string()),
    }
}

fn index_doc<'a>(doc: &'a [u8], limits: &XmlLimits) -> Result<XmlIndex<'a>, XcapError> {
    XmlIndex::document(doc, limits).map_err(|e| XcapError::Conflict(xml_conflict(e)))
}

/// The stored document indexed for a read ([`XmlIndex::stored`]): what could be served
/// whole can be served by selector.
fn index_for_read<'a>(doc: &'a [u8], limits: &XmlLimits) -> Result<XmlIndex<'a>, XcapError> {
    XmlIndex::stored(doc, limits).map_err(|e| XcapError::Conflict(xml_conflict(e)))
}

fn one(found: Vec<usize>) -> Result<usize, XcapError> {
    match found.as_slice() {
        [e] => Ok(*e),
        _ => Err(XcapError::NotFound),
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let e = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(s, |i| i + 1);
    &b[s..e]
}

fn splice(doc: &[u8], range: std::ops::Range<usize>, with: &[&[u8]]) -> Vec<u8> {
    let extra: usize = with.iter().map(|w| w.len()).sum();
    let mut out = Vec::with_capacity(doc.len() - range.len() + extra);
    out.extend_from_slice(&doc[..range.start]);
    for w in with {
        out.extend_from_slice(w);
    }
    out.extend_from_slice(&doc[range.end..]);
    out
}

/// GET of an element: its bytes exactly as stored.
pub fn get_element<'a>(
    doc: &'a [u8],
    limits: &XmlLimits,
    steps: &[Step],
    ctx: &NsContext<'_>,
) -> Result<&'a [u8], XcapError> {
    let ix = index_for_read(doc, limits)?;
    let e = one(select(&ix, steps, ctx))?;
    Ok(ix.element_bytes(e))
}

/// The longest prefix of `steps` that selects exactly one element, rendered for
/// `<no-parent><ancestor>`; `None` when not even the root matches.
fn closest_ancestor(ix: &XmlIndex<'_>, steps: &[Step], ctx: &NsContext<'_>) -> Option<String> {
    (1..steps.len())
        .rev()
        .find(|n| select(ix, &steps[..*n], ctx).len() == 1)
        .map(|n| NodeSelector::render_steps(&steps[..n]))
}

/// PUT of an element: replace the selected element, or insert a new one following §8.2.3.
/// `doc_uri` is the document's absolute URI (for `<ancestor>`).
pub fn put_element(
    doc: &[u8],
    limits: &XmlLimits,
    steps: &[Step],
    ctx: &NsContext<'_>,
    body: &[u8],
    doc_uri: &str,
) -> Result<Edit, XcapError> {
    if std::str::from_utf8(body).is_err() {
        return Err(Conflict::NotUtf8.into());
    }
    let frag = XmlIndex::fragment(body, limits).map_err(|e| match e {
        XmlError::NotUtf8 => Conflict::NotUtf8,
        _ => Conflict::NotXmlFrag,
    })?;
    let body = trim(body);
    let ix = index_doc(doc, limits)?;
    let found = select(&ix, steps, ctx);
    let (new_doc, created) = match found.as_slice() {
        [e] => {
            let el = &ix.elements[*e];
            (splice(doc, el.start..el.end, &[body]), false)
        }
        [] => (insert_element(&ix, steps, ctx, &frag, body, doc_uri)?, true),
        _ => return Err(Conflict::CannotInsert.into()),
    };
    // §8.2.5: selecting again must give exactly what was PUT.
    let ix2 = XmlIndex::document(&new_doc, limits).map_err(|_| Conflict::NotXmlFrag)?;
    match select(&ix2, steps, ctx).as_slice() {
        [e] if ix2.element_bytes(*e) == body => {}
        _ => return Err(Conflict::CannotInsert.into()),
    }
    Ok(Edit { new_doc, created })
}

fn insert_element(
    ix: &XmlIndex<'_>,
    steps: &[Step],
    ctx: &NsContext<'_>,
    frag: &XmlIndex<'_>,
    body: &[u8],
    doc_uri: &str,
) -> Result<Vec<u8>, XcapError> {
    let (last, parent_steps) = steps.split_last().ok_or(Conflict::CannotInsert)?;
    if parent_steps.is_empty() {
        // A document has exactly one root; a different root is a document PUT.
        return Err(Conflict::CannotInsert.into());
    }
    let parents = select(ix, parent_steps, ctx);
    let parent = match parents.as_slice() {
        [p] => *p,
        [] => {
            let ancestor = match closest_ancestor(ix, parent_steps, ctx) {
                Some(sel) => format!("{doc_uri}/~~{sel}"),
                None => doc_uri.to_string(),
            };
            return Err(Conflict::NoParent { ancestor }.into());
        }
        _ => return Err(Conflict::CannotInsert.into()),
    };
    // Expanded name of the new element as it will be in the document.
    let body_local = frag.local_name(0);
    let body_qname = frag.qname(0);
    let body_prefix = body_qname.split_once(':').map(|(p, _)| p);
    let body_ns: Option<String> = match frag.elements[0]
        .decls
        .iter()
        .find(|(p, _)| p.as_deref() == body_prefix)
    {
        Some((_, u)) => Some(u.clone()).filter(|u| !u.is_empty()),
        None => ix
            .in_scope_namespaces(parent)
            .into_iter()
            .find(|(p, _)| p.as_deref() == body_prefix)
            .map(|(_, u)| u),
    };
    if let NameTest::Name(q) = &last.name {
        if !name_test_accepts(ix, q, ctx, body_local, body_ns.as_deref()) {
            return Err(Conflict::CannotInsert.into());
        }
    }
    let kids = ix.children(parent);
    let at = match last.position {
        Some(n) => {
            let siblings: Vec<usize> = kids
                .iter()
                .copied()
                .filter(|k| name_matches(ix, *k, &last.name, ctx))
                .collect();
            if n == 0 || n > siblings.len() + 1 {
                return Err(Conflict::CannotInsert.into());
            }
            // After the (n-1)th matching sibling; position 1 goes before the first one.
            if n > 1 {
                Some(ix.elements[siblings[n - 2]].end)
            } else {
                siblings.first().map(|s| ix.elements[*s].start)
            }
        }
        None => kids
            .iter()
            .copied()
            .rev()
            .find(|k| {
                ix.local_name(*k) == body_local
                    && ix.elements[*k].ns.as_deref() == body_ns.as_deref()
            })
            .map(|k| ix.elements[k].end),
    };
    let doc = ix.text;
    Ok(match at {
        Some(pos) => splice(doc, pos..pos, &[body]),
        None => append_child(ix, parent, body),
    })
}

fn name_test_accepts(
    ix: &XmlIndex<'_>,
    q: &QName,
    ctx: &NsContext<'_>,
    local: &str,
    ns: Option<&str>,
) -> bool {
    if q.local != local {
        return false;
    }
    match &q.prefix {
        Some(p) => ctx.resolve_prefix(ix, p).as_deref() == ns,
        None => ctx.default_ns.is_none_or(|d| Some(d) == ns),
    }
}

/// Inserts `body` as the last child of `parent`, opening an empty-element tag if needed.
fn append_child(ix: &XmlIndex<'_>, parent: usize, body: &[u8]) -> Vec<u8> {
    let el = &ix.elements[parent];
    let doc = ix.text;
    if el.self_closing {
        // `<p a="1"/>` → `<p a="1">body</p>`
        let slash = doc[..el.head_end - 1]
            .iter()
            .rposition(|b| *b == b'/')
            .unwrap_or(el.head_end - 2);
        let close = format!("</{}>", ix.qname(parent));
        splice(doc, slash..el.head_end, &[b">", body, close.as_bytes()])
    } else {
        splice(doc, el.content_end..el.content_end, &[body])
    }
}

/// DELETE of an element: removes exactly its bytes.
pub fn delete_element(
    doc: &[u8],
    limits: &XmlLimits,
    steps: &[Step],
    ctx: &NsContext<'_>,
) -> Result<Vec<u8>, XcapError> {
    let ix = index_doc(doc, limits)?;
    let e = one(select(&ix, steps, ctx))?;
    if e == 0 {
        return Err(Conflict::CannotDelete.into());
    }
    let el = &ix.elements[e];
    let new_doc = splice(doc, el.start..el.end, &[]);
    let ix2 = XmlIndex::document(&new_doc, limits).map_err(|_| Conflict::CannotDelete)?;
    if !select(&ix2, steps, ctx).is_empty() {
        return Err(Conflict::CannotDelete.into());
    }
    Ok(new_doc)
}

/// GET of an attribute: the value as stored, without quotes.
pub fn get_attribute<'a>(
    doc: &'a [u8],
    limits: &XmlLimits,
    steps: &[Step],
    attr: &QName,
    ctx: &NsContext<'_>,
) -> Result<&'a [u8], XcapError> {
    let ix = index_for_read(doc, limits)?;
    let e = one(select(&ix, steps, ctx))?;
    let ns = attr_ns(&ix, attr, ctx).map_err(|_| XcapError::NotFound)?;
    let a = ix
        .find_attr(e, &attr.local, ns.as_deref())
        .ok_or(XcapError::NotFound)?;
    Ok(ix.slice(&ix.elements[e].attrs[a].value))
}

/// Checks an attribute PUT body (RFC 4825 §8.2.2: it must be a valid AttValue without the
/// quotes) and picks the quote character to write it with.
fn att_value_quote(body: &[u8]) -> Result<u8, XcapError> {
    let s = std::str::from_utf8(body).map_err(|_| Conflict::NotUtf8)?;
    if s.contains('<') || crate::selector::unescape(s).is_none() {
        return Err(Conflict::NotXmlAttValue.into());
    }
    match (s.contains('"'), s.contains('\'')) {
        (false, _) => Ok(b'"'),
        (true, false) => Ok(b'\''),
        (true, true) => Err(Conflict::NotXmlAttValue.into()),
    }
}

/// PUT of an attribute: replace its value or add it to the selected element.
pub fn put_attribute(
    doc: &[u8],
    limits: &XmlLimits,
    steps: &[Step],
    attr: &QName,
    ctx: &NsContext<'_>,
    body: &[u8],
    doc_uri: &str,
) -> Result<Edit, XcapError> {
    let quote = att_value_quote(body)?;
    let ix = index_doc(doc, limits)?;
    let e = match select(&ix, steps, ctx).as_slice() {
        [e] => *e,
        [] => {
            let ancestor = match closest_ancestor(&ix, steps, ctx) {
                Some(sel) if select(&ix, steps, ctx).is_empty() => format!("{doc_uri}/~~{sel}"),
                _ => doc_uri.to_string(),
            };
            return Err(Conflict::NoParent { ancestor }.into());
        }
        _ => return Err(XcapError::NotFound),
    };
    let ns = attr_ns(&ix, attr, ctx).map_err(|_| Conflict::CannotInsert)?;
    let el = &ix.elements[e];
    let q = [quote];
    let (new_doc, created) = match ix.find_attr(e, &attr.local, ns.as_deref()) {
        Some(a) => {
            let at = &el.attrs[a];
            let old_quote = doc[at.value.end];
            if old_quote == quote || !body.contains(&old_quote) {
                (splice(doc, at.value.clone(), &[body]), false)
            } else {
                let name = ix.slice(&at.qname);
                (
                    splice(doc, at.span.clone(), &[b" ", name, b"=", &q, body, &q]),
                    false,
                )
            }
        }
        None => {
            let qname = match &ns {
                None => attr.local.clone(),
                Some(uri) => match ix.prefix_for(e, uri) {
                    Some(Some(p)) => format!("{p}:{}", attr.local),
                    // Unprefixed attributes are never in a namespace; no usable prefix.
                    _ => return Err(Conflict::CannotInsert.into()),
                },
            };
            let pos = if el.self_closing {
                doc[..el.head_end - 1]
                    .iter()
                    .rposition(|b| *b == b'/')
                    .unwrap_or(el.head_end - 2)
            } else {
                el.head_end - 1
            };
            (
                splice(doc, pos..pos, &[b" ", qname.as_bytes(), b"=", &q, body, &q]),
                true,
            )
        }
    };
    let ix2 = XmlIndex::document(&new_doc, limits).map_err(|_| Conflict::NotXmlAttValue)?;
    let again = one(select(&ix2, steps, ctx)).map_err(|_| Conflict::CannotInsert)?;
    match ix2.find_attr(again, &attr.local, ns.as_deref()) {
        Some(a) if ix2.slice(&ix2.elements[again].attrs[a].value) == body => {}
        _ => return Err(Conflict::CannotInsert.into()),
    }
    Ok(Edit { new_doc, created })
}

/// DELETE of an attribute, with the whitespace before it.
pub fn delete_attribute(
    doc: &[u8],
    limits: &XmlLimits,
    steps: &[Step],
    attr: &QName,
    ctx: &NsContext<'_>,
) -> Result<Vec<u8>, XcapError> {
    let ix = index_doc(doc, limits)?;
    let e = one(select(&ix, steps, ctx))?;
    let ns = attr_ns(&ix, attr, ctx).map_err(|_| XcapError::NotFound)?;
    let a = ix
        .find_attr(e, &attr.local, ns.as_deref())
        .ok_or(XcapError::NotFound)?;
    let new_doc = splice(doc, ix.elements[e].attrs[a].span.clone(), &[]);
    let ix2 = XmlIndex::document(&new_doc, limits).map_err(|_| Conflict::CannotDelete)?;
    if let [again] = select(&ix2, steps, ctx).as_slice() {
        if ix2.find_attr(*again, &attr.local, ns.as_deref()).is_some() {
            return Err(Conflict::CannotDelete.into());
        }
    }
    Ok(new_doc)
}

/// GET of `namespace::*`: an element with the selected element's name carrying one
/// declaration per in-scope binding (RFC 4825 §7.4, `application/xcap-ns+xml`).
pub fn get_namespaces(
    doc: &[u8],
    limits: &XmlLimits,
    steps: &[Step],
    ctx: &NsContext<'_>,
) -> Result<Vec<u8>, XcapError> {
    let ix = index_doc(doc, limits)?;
    let e = one(select(&ix, steps, ctx))?;
    let mut out = format!("<{}", ix.qname(e));
    for (p, uri) in ix.in_scope_namespaces(e) {
        match p {
            Some(p) => out.push_str(&format!(" xmlns:{p}=\"{}\"", crate::error::escape(&uri))),
            None => out.push_str(&format!(" xmlns=\"{}\"", crate::error::escape(&uri))),
        }
    }
    out.push_str("/>");
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = "<?xml version='1.0' encoding='UTF-8'?>\n<root xmlns=\"test-app\">\n<el1 att=\"first\"/>\n<el1 att=\"second\"/>\n<!-- comment -->\n<el2 att=\"first\"/>\n</root>";

    fn ctx() -> NsContext<'static> {
        NsContext {
            default_ns: Some("test-app"),
            bindings: &[],
        }
    }

    fn steps(s: &str) -> Vec<Step> {
        NodeSelector::parse(s).unwrap().steps
    }

    fn put(doc: &str, sel: &str, body: &str) -> Result<Edit, XcapError> {
        put_element(
            doc.as_bytes(),
            &XmlLimits::default(),
            &steps(sel),
            &ctx(),
            body.as_bytes(),
            "http://h/doc",
        )
    }

    fn del(doc: &[u8], sel: &str) -> Vec<u8> {
        delete_element(doc, &XmlLimits::default(), &steps(sel), &ctx()).unwrap()
    }

    /// The RFC 4825 §8.2.3 examples, as exercised by OpenXCAP's test suite.
    #[test]
    fn insertion_rules() {
        let third = START.replace(
            "<el1 att=\"second\"/>",
            "<el1 att=\"second\"/><el1 att=\"third\"/>",
        );
        for sel in [
            "/root/el1[@att=\"third\"]",
            "/root/el1[3][@att=\"third\"]",
            "/root/*[3][@att=\"third\"]",
        ] {
            let e = put(START, sel, "<el1 att=\"third\"/>").unwrap();
            assert!(e.created);
            assert_eq!(
                String::from_utf8(e.new_doc.clone()).unwrap(),
                third,
                "{sel}"
            );
            assert_eq!(del(&e.new_doc, sel), START.as_bytes());
        }
        for sel in ["root/el1[4][@att=\"third\"]", "root/*[0][@att=\"third\"]"] {
            assert_eq!(
                put(START, sel, "<el1 att=\"third\"/>"),
                Err(Conflict::CannotInsert.into())
            );
        }
        for sel in [
            "root/el1[@att=\"third\"]",
            "root/el1[3][@att=\"third\"]",
            "root/*[3][@att=\"third\"]",
        ] {
            assert_eq!(
                put(START, sel, "<el1 att=\"fourth\"/>"),
                Err(Conflict::CannotInsert.into())
            );
        }
        let e = put(START, "root/el3", "<el3 att=\"first\"/>").unwrap();
        assert_eq!(
            String::from_utf8(e.new_doc).unwrap(),
            START.replace("\n</root>", "\n<el3 att=\"first\"/></root>")
        );
        let e = put(START, "root/*[2][@att=\"2\"]", "<el2 att=\"2\"/>").unwrap();
        assert_eq!(
            String::from_utf8(e.new_doc).unwrap(),
            START.replace(
                "<el1 att=\"first\"/>",
                "<el1 att=\"first\"/><el2 att=\"2\"/>"
            )
        );
        let e = put(START, "root/el2[1][@att=\"2\"]", "<el2 att=\"2\"/>").unwrap();
        assert_eq!(
            String::from_utf8(e.new_doc).unwrap(),
            START.replace(
                "<el2 att=\"first\"/>",
                "<el2 att=\"2\"/><el2 att=\"first\"/>"
            )
        );
        // `*[@att]` takes the name from the body.
        let e = put(START, "root/*[@att=\"2\"]", "<el3 att=\"2\"/>").unwrap();
        assert!(String::from_utf8(e.new_doc)
            .unwrap()
            .ends_with("<el3 att=\"2\"/></root>"));
    }

    #[test]
    fn replacement_and_errors() {
        assert_eq!(
            put(START, "root/el1[@att=\"first\"]", "<el1 att=\"third\"/>"),
            Err(Conflict::CannotInsert.into())
        );
        let e = put(START, "root/el1[1]", "<el1 att=\"third\"/>").unwrap();
        assert!(!e.created);
        assert_eq!(
            String::from_utf8(e.new_doc).unwrap(),
            START.replace("att=\"first\"/>\n<el1", "att=\"third\"/>\n<el1")
        );
        assert_eq!(
            put(START, "root/el1[1]", "<el1>"),
            Err(Conflict::NotXmlFrag.into())
        );
        assert_eq!(
            put(START, "root/el1[1]", "<a/><b/>"),
            Err(Conflict::NotXmlFrag.into())
        );
        assert!(matches!(
            put(START, "root/nope/x", "<x/>"),
            Err(XcapError::Conflict(Conflict::NoParent { .. }))
        ));
        // Empty parent gets opened.
        let e = put(START, "root/el2/child", "<child/>").unwrap();
        assert!(String::from_utf8(e.new_doc)
            .unwrap()
            .contains("<el2 att=\"first\"><child/></el2>"));
    }

    /// A stored document holding a character XML forbids (stored before that rule) is read
    /// by selector as it is read whole; editing it is a conflict naming the character, and
    /// no edit adds one.
    #[test]
    fn stored_forbidden_characters_are_readable_not_editable() {
        let l = XmlLimits::default();
        let old = START.replace("att=\"first\"/>\n<el1", "att=\"fi\u{1}rst\"/>\n<el1");
        let st = steps("root/el1[1]");
        assert_eq!(
            get_element(old.as_bytes(), &l, &st, &ctx()).unwrap(),
            "<el1 att=\"fi\u{1}rst\"/>".as_bytes()
        );
        let att = QName {
            prefix: None,
            local: "att".into(),
        };
        assert_eq!(
            get_attribute(old.as_bytes(), &l, &st, &att, &ctx()).unwrap(),
            "fi\u{1}rst".as_bytes()
        );
        let edit = put(&old, "root/el2", "<el2/>");
        assert!(
            matches!(&edit, Err(XcapError::Conflict(Conflict::NotWellFormed(m))) if m.contains("character")),
            "{edit:?}"
        );
        assert!(put(START, "root/el2", "<el2 a=\"\u{1}\"/>").is_err());
        assert!(put_attribute(START.as_bytes(), &l, &st, &att, &ctx(), b"a\x01", "u").is_err());
    }

    #[test]
    fn delete_rules() {
        let l = XmlLimits::default();
        assert_eq!(
            delete_element(START.as_bytes(), &l, &steps("root/el1[1]"), &ctx()),
            Err(Conflict::CannotDelete.into())
        );
        assert_eq!(
            delete_element(START.as_bytes(), &l, &steps("root"), &ctx()),
            Err(Conflict::CannotDelete.into())
        );
        assert_eq!(
            delete_element(START.as_bytes(), &l, &steps("root/el9"), &ctx()),
            Err(XcapError::NotFound)
        );
        let d = del(START.as_bytes(), "root/el1[@att=\"second\"]");
        assert!(!String::from_utf8(d).unwrap().contains("second"));
    }

    #[test]
    fn attributes() {
        let l = XmlLimits::default();
        let name = |n: &str| QName {
            prefix: None,
            local: n.into(),
        };
        let st = steps("root/el2");
        assert_eq!(
            get_attribute(START.as_bytes(), &l, &st, &name("att"), &ctx()).unwrap(),
            b"first"
        );
        let e = put_attribute(
            START.as_bytes(),
            &l,
            &st,
            &name("att"),
            &ctx(),
            b"x&amp;y",
            "u",
        )
        .unwrap();
        assert!(!e.created);
        assert_eq!(
            get_attribute(&e.new_doc, &l, &st, &name("att"), &ctx()).unwrap(),
            b"x&amp;y"
        );
        let e = put_attribute(
            START.as_bytes(),
            &l,
            &st,
            &name("new"),
            &ctx(),
            b"say \"hi\"",
            "u",
        )
        .unwrap();
        assert!(e.created);
        assert!(String::from_utf8(e.new_doc.clone())
            .unwrap()
            .contains("<el2 att=\"first\" new='say \"hi\"'/>"));
        let back = delete_attribute(&e.new_doc, &l, &st, &name("new"), &ctx()).unwrap();
        assert_eq!(back, START.as_bytes());
        assert_eq!(
            put_attribute(START.as_bytes(), &l, &st, &name("a"), &ctx(), b"<", "u"),
            Err(Conflict::NotXmlAttValue.into())
        );
        assert_eq!(
            put_attribute(
                START.as_bytes(),
                &l,
                &st,
                &name("a"),
                &ctx(),
                b"&bogus;",
                "u"
            ),
            Err(Conflict::NotXmlAttValue.into())
        );
        let ns = get_namespaces(START.as_bytes(), &l, &steps("root/el1[1]"), &ctx()).unwrap();
        assert_eq!(ns, b"<el1 xmlns=\"test-app\"/>");
    }
}
