//! PIDF (RFC 3863) well-formedness check and aggregation of a presentity's publications.
//!
//! Validation runs once per accepted PUBLISH and records where the root's namespace
//! declarations and top-level children sit in the body, so aggregation (once per change,
//! shared by every watcher's NOTIFY) is plain byte copying, like OpenSIPS `agg_nbody`:
//! one `<presence>` root carrying every namespace declaration, then all `<tuple>`s, all
//! `<note>`s, then every other element (`<person>`, `<device>`, extensions), each group
//! newest publication first.
//!
//! Hostile XML: DOCTYPE is refused (no entity expansion at all), only the five predefined
//! entities and character references are accepted, depth and element count are bounded.

use quick_xml::events::Event;
use quick_xml::Reader;
use std::fmt;
use std::ops::Range;

pub const PIDF_NS: &[u8] = b"urn:ietf:params:xml:ns:pidf";
pub const PIDF_CONTENT_TYPE: &str = "application/pidf+xml";
/// Deepest element nesting accepted in a published document.
pub const MAX_XML_DEPTH: usize = 32;
/// Most elements accepted in one published document.
pub const MAX_XML_ELEMENTS: usize = 4096;

/// Why a body is not acceptable PIDF (sent as the 400 reason's detail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PidfError {
    NotWellFormed,
    DocTypeForbidden,
    UnknownEntity,
    NoRoot,
    NotPresence,
    NoEntity,
    TooDeep,
    TooManyElements,
    TrailingContent,
}

impl fmt::Display for PidfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PidfError::NotWellFormed => "body is not well-formed XML",
            PidfError::DocTypeForbidden => "DOCTYPE not allowed",
            PidfError::UnknownEntity => "unknown XML entity",
            PidfError::NoRoot => "no root element",
            PidfError::NotPresence => "root is not a PIDF presence element",
            PidfError::NoEntity => "presence element has no entity attribute",
            PidfError::TooDeep => "XML nested too deeply",
            PidfError::TooManyElements => "too many XML elements",
            PidfError::TrailingContent => "content after the root element",
        })
    }
}

/// Kind of a top-level child, which fixes its place in the aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChildKind {
    Tuple = 0,
    Note = 1,
    Other = 2,
}

/// Where the interesting parts of a validated PIDF body are (byte ranges into it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PidfIndex {
    /// `(attribute name, attribute value)` of the root's `xmlns` / `xmlns:*` attributes.
    pub ns_decls: Vec<(Range<u32>, Range<u32>)>,
    /// The root's `entity` attribute value (raw, still escaped).
    pub entity: Range<u32>,
    pub children: Vec<(ChildKind, Range<u32>)>,
}

fn offset_in(body: &[u8], part: &[u8]) -> Range<u32> {
    let start = part.as_ptr() as usize - body.as_ptr() as usize;
    start as u32..(start + part.len()) as u32
}

fn local_name(name: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b':', name) {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => (&[][..], name),
    }
}

/// Only predefined entities and character references, no `<` in attribute values.
fn check_refs(v: &[u8]) -> Result<(), PidfError> {
    if v.contains(&b'<') {
        return Err(PidfError::NotWellFormed);
    }
    let mut rest = v;
    while let Some(i) = memchr::memchr(b'&', rest) {
        let after = &rest[i + 1..];
        let end = memchr::memchr(b';', after).ok_or(PidfError::NotWellFormed)?;
        check_ref_name(&after[..end])?;
        rest = &after[end + 1..];
    }
    Ok(())
}

fn check_ref_name(name: &[u8]) -> Result<(), PidfError> {
    match name {
        b"amp" | b"lt" | b"gt" | b"apos" | b"quot" => Ok(()),
        [b'#', b'x', hex @ ..] if !hex.is_empty() && hex.iter().all(u8::is_ascii_hexdigit) => {
            Ok(())
        }
        [b'#', dec @ ..] if !dec.is_empty() && dec.iter().all(u8::is_ascii_digit) => Ok(()),
        _ => Err(PidfError::UnknownEntity),
    }
}

/// Checks `body` is a well-formed PIDF document and indexes it for aggregation.
pub fn validate(body: &[u8]) -> Result<PidfIndex, PidfError> {
    let mut reader = Reader::from_reader(body);
    reader.config_mut().check_end_names = true;
    reader.config_mut().check_comments = true;
    let mut idx = PidfIndex::default();
    let mut depth = 0usize;
    let mut elements = 0usize;
    let mut root_done = false;
    let mut root_seen = false;
    let mut child_start = 0u32;
    let mut child_kind = ChildKind::Other;
    loop {
        let before = reader.buffer_position() as u32;
        let ev = reader.read_event().map_err(|_| PidfError::NotWellFormed)?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                if root_done {
                    return Err(PidfError::TrailingContent);
                }
                elements += 1;
                if elements > MAX_XML_ELEMENTS {
                    return Err(PidfError::TooManyElements);
                }
                let name = e.name().into_inner();
                check_attributes(e)?;
                if depth == 0 {
                    root_seen = true;
                    let (prefix, local) = local_name(name);
                    if local != b"presence" {
                        return Err(PidfError::NotPresence);
                    }
                    let mut ns_ok = false;
                    let mut entity = None;
                    // Checked above (`check_attributes`): no uniqueness check again.
                    for a in e.attributes().with_checks(false) {
                        let a = a.map_err(|_| PidfError::NotWellFormed)?;
                        let key = a.key.into_inner();
                        let value: &[u8] = &a.value;
                        if key == b"entity" {
                            entity = Some(offset_in(body, value));
                        } else if key == b"xmlns" || key.starts_with(b"xmlns:") {
                            let declared = if key == b"xmlns" { &b""[..] } else { &key[6..] };
                            if declared == prefix && value == PIDF_NS {
                                ns_ok = true;
                            }
                            idx.ns_decls
                                .push((offset_in(body, key), offset_in(body, value)));
                        }
                    }
                    if !ns_ok {
                        return Err(PidfError::NotPresence);
                    }
                    idx.entity = entity.ok_or(PidfError::NoEntity)?;
                    if empty {
                        root_done = true;
                    } else {
                        depth = 1;
                    }
                    continue;
                }
                if depth == 1 {
                    child_start = before;
                    child_kind = match local_name(name).1 {
                        b"tuple" => ChildKind::Tuple,
                        b"note" => ChildKind::Note,
                        _ => ChildKind::Other,
                    };
                    if empty {
                        let end = reader.buffer_position() as u32;
                        idx.children.push((child_kind, child_start..end));
                        continue;
                    }
                }
                if !empty {
                    depth += 1;
                    if depth > MAX_XML_DEPTH {
                        return Err(PidfError::TooDeep);
                    }
                }
            }
            Event::End(_) => {
                depth = depth.checked_sub(1).ok_or(PidfError::NotWellFormed)?;
                if depth == 1 {
                    let end = reader.buffer_position() as u32;
                    idx.children.push((child_kind, child_start..end));
                } else if depth == 0 {
                    root_done = true;
                }
            }
            Event::Text(ref t) => {
                if depth == 0 && t.iter().any(|c| !c.is_ascii_whitespace()) {
                    return Err(PidfError::TrailingContent);
                }
            }
            Event::GeneralRef(ref r) => {
                if depth == 0 {
                    return Err(PidfError::TrailingContent);
                }
                check_ref_name(r)?;
            }
            Event::DocType(_) => return Err(PidfError::DocTypeForbidden),
            Event::CData(_) | Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !root_seen {
        return Err(PidfError::NoRoot);
    }
    if !root_done {
        return Err(PidfError::NotWellFormed);
    }
    Ok(idx)
}

/// Attribute names an element may carry before [`check_attributes`] keeps them in a `Vec`.
const ATTRS_ON_STACK: usize = 16;

/// An element's attributes are well-formed, their names unique (XML 1.0 §3.1, "Unique Att
/// Spec") and their references known. Why not quick-xml's own uniqueness check: it keeps
/// the names in a `Vec` allocated for every element with an attribute, ~0.5 µs per PUBLISH
/// in the profile; PIDF elements carry a few attributes, compared here on the stack (the
/// same linear search per name as quick-xml's, so no worse on hostile input).
fn check_attributes(e: &quick_xml::events::BytesStart<'_>) -> Result<(), PidfError> {
    let mut on_stack: [&[u8]; ATTRS_ON_STACK] = [&[]; ATTRS_ON_STACK];
    let mut spilled: Vec<&[u8]> = Vec::new();
    for (n, a) in e.attributes().with_checks(false).enumerate() {
        let a = a.map_err(|_| PidfError::NotWellFormed)?;
        let key = a.key.into_inner();
        if on_stack[..n.min(ATTRS_ON_STACK)].contains(&key) || spilled.contains(&key) {
            return Err(PidfError::NotWellFormed);
        }
        match on_stack.get_mut(n) {
            Some(slot) => *slot = key,
            None => spilled.push(key),
        }
        check_refs(&a.value)?;
    }
    Ok(())
}

fn slice<'a>(body: &'a [u8], r: &Range<u32>) -> &'a [u8] {
    &body[r.start as usize..r.end as usize]
}

/// Merges documents (newest first) into `out` (cleared first). One document is copied
/// as published; several get one root with the union of namespace declarations (first
/// declaration of a prefix wins) and the newest entity.
pub fn aggregate(docs: &[(&[u8], &PidfIndex)], out: &mut Vec<u8>) {
    out.clear();
    match docs {
        [] => {}
        [(body, _)] => out.extend_from_slice(body),
        _ => {
            out.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence");
            let mut seen: Vec<&[u8]> = Vec::new();
            for (body, idx) in docs {
                for (k, v) in &idx.ns_decls {
                    let key = slice(body, k);
                    if seen.contains(&key) {
                        continue;
                    }
                    seen.push(key);
                    let value = slice(body, v);
                    let q = if value.contains(&b'"') { b'\'' } else { b'"' };
                    out.push(b' ');
                    out.extend_from_slice(key);
                    out.push(b'=');
                    out.push(q);
                    out.extend_from_slice(value);
                    out.push(q);
                }
            }
            let (body0, idx0) = docs[0];
            let entity = slice(body0, &idx0.entity);
            let q = if entity.contains(&b'"') { b'\'' } else { b'"' };
            out.extend_from_slice(b" entity=");
            out.push(q);
            out.extend_from_slice(entity);
            out.push(q);
            out.extend_from_slice(b">\n");
            for kind in [ChildKind::Tuple, ChildKind::Note, ChildKind::Other] {
                for (body, idx) in docs {
                    for (k, r) in &idx.children {
                        if *k == kind {
                            out.extend_from_slice(slice(body, r));
                            out.push(b'\n');
                        }
                    }
                }
            }
            out.extend_from_slice(b"</presence>\n");
        }
    }
}

/// XML-escapes `s` into `out` (for attribute values and text).
pub fn escape_into(s: &[u8], out: &mut Vec<u8>) {
    for &c in s {
        match c {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\'' => out.extend_from_slice(b"&apos;"),
            _ => out.push(c),
        }
    }
}

/// The `closed` document sent for a presentity without publication when
/// `--notify-offline-body` is on.
pub fn offline_body(entity: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"");
    escape_into(entity, out);
    out.extend_from_slice(
        b"\">\n<tuple id=\"offline\"><status><basic>closed</basic></status></tuple>\n</presence>\n",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="sip:alice@example.com">
  <tuple id="t1"><status><basic>open</basic></status><note>a &amp; b</note></tuple>
  <dm:person id="p1"><dm:note>busy</dm:note></dm:person>
  <note>hello</note>
</presence>"#;
    const B: &[u8] = br#"<presence xmlns='urn:ietf:params:xml:ns:pidf' xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity='sip:alice@example.com'><tuple id="t2"><status><basic>closed</basic></status></tuple><device id="d"/></presence>"#;

    #[test]
    fn accepts_and_indexes() {
        let i = validate(A).unwrap();
        assert_eq!(i.ns_decls.len(), 2);
        assert_eq!(slice(A, &i.entity), b"sip:alice@example.com");
        let kinds: Vec<_> = i.children.iter().map(|c| c.0).collect();
        assert_eq!(kinds, [ChildKind::Tuple, ChildKind::Other, ChildKind::Note]);
        assert!(slice(A, &i.children[0].1).starts_with(b"<tuple id=\"t1\">"));
        assert!(slice(A, &i.children[0].1).ends_with(b"</tuple>"));
        let j = validate(B).unwrap();
        assert_eq!(slice(B, &j.children[1].1), b"<device id=\"d\"/>");
    }

    #[test]
    fn rejects_bad_documents() {
        let bad: &[(&[u8], PidfError)] = &[
            (b"", PidfError::NoRoot),
            (b"<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='x'><tuple></presence>", PidfError::NotWellFormed),
            (b"<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='x'>", PidfError::NotWellFormed),
            (b"<foo xmlns='urn:ietf:params:xml:ns:pidf' entity='x'/>", PidfError::NotPresence),
            (b"<presence entity='x'/>", PidfError::NotPresence),
            (b"<presence xmlns='urn:ietf:params:xml:ns:pidf'/>", PidfError::NoEntity),
            (b"<!DOCTYPE x [<!ENTITY a 'b'>]><presence xmlns='urn:ietf:params:xml:ns:pidf' entity='x'/>", PidfError::DocTypeForbidden),
            (b"<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='x'>&a;</presence>", PidfError::UnknownEntity),
            (b"<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='x'/><x/>", PidfError::TrailingContent),
            (b"<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='x'/>junk", PidfError::TrailingContent),
        ];
        for (doc, want) in bad {
            assert_eq!(
                validate(doc),
                Err(*want),
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
        let mut deep = b"<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='x'>".to_vec();
        for _ in 0..100 {
            deep.extend_from_slice(b"<a>");
        }
        assert_eq!(validate(&deep), Err(PidfError::TooDeep));
    }

    #[test]
    fn attribute_names_must_be_unique() {
        let doc = |tuple_attrs: &str| {
            format!(
                "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='x'>\
                 <tuple {tuple_attrs}><status><basic>open</basic></status></tuple></presence>"
            )
        };
        let many = |n: usize| (0..n).map(|i| format!("a{i}='v' ")).collect::<String>();
        assert!(validate(doc("id='t'").as_bytes()).is_ok());
        assert!(
            validate(doc(&many(40)).as_bytes()).is_ok(),
            "past the stack array"
        );
        for attrs in [
            "id='t' id='u'".to_string(),
            format!("{}a3='again'", many(10)),
            format!("{}a3='again'", many(30)),
            format!("{}a20='again'", many(30)),
        ] {
            assert_eq!(
                validate(doc(&attrs).as_bytes()).unwrap_err(),
                PidfError::NotWellFormed,
                "{attrs}"
            );
        }
        let root = b"<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='x' entity='y'/>";
        assert_eq!(validate(root).unwrap_err(), PidfError::NotWellFormed);
    }

    #[test]
    fn aggregates_newest_first_with_all_namespaces() {
        let ia = validate(A).unwrap();
        let ib = validate(B).unwrap();
        let mut out = Vec::new();
        aggregate(&[(B, &ib), (A, &ia)], &mut out);
        let s = String::from_utf8(out.clone()).unwrap();
        let agg = validate(&out).expect("aggregate is valid PIDF");
        assert_eq!(agg.children.len(), 5, "{s}");
        let t2 = s.find("id=\"t2\"").unwrap();
        let t1 = s.find("id=\"t1\"").unwrap();
        let person = s.find("dm:person").unwrap();
        assert!(t2 < t1 && t1 < person, "{s}");
        assert!(s.contains("xmlns:dm=") && s.contains("xmlns:rpid="), "{s}");
        assert_eq!(s.matches("xmlns=").count(), 1, "{s}");
        aggregate(&[(A, &ia)], &mut out);
        assert_eq!(out, A);
    }

    #[test]
    fn offline_body_is_valid() {
        let mut out = Vec::new();
        offline_body(b"sip:a&b@x", &mut out);
        let i = validate(&out).unwrap();
        assert_eq!(slice(&out, &i.entity), b"sip:a&amp;b@x");
        assert!(String::from_utf8_lossy(&out).contains("closed"));
    }
}
