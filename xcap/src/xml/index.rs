use std::ops::Range;

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::selector::unescape;

/// Namespace of the `xml:` prefix, bound in every document.
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Bounds on what a document may contain; enforced while indexing, before validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlLimits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_name_len: usize,
    pub max_elements: usize,
    pub max_attrs: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        XmlLimits {
            max_bytes: 1024 * 1024,
            max_depth: 64,
            max_name_len: 256,
            max_elements: 50_000,
            max_attrs: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmlError {
    /// Not well-formed (including namespace well-formedness); the text says where/why.
    NotWellFormed(String),
    /// DOCTYPE / entity declarations are refused outright (no entity expansion ever).
    Dtd,
    NotUtf8,
    /// One of the `XmlLimits` was exceeded.
    TooComplex(&'static str),
}

impl std::fmt::Display for XmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XmlError::NotWellFormed(s) => write!(f, "not well-formed: {s}"),
            XmlError::Dtd => f.write_str("DTDs and entity declarations are not allowed"),
            XmlError::NotUtf8 => f.write_str("not UTF-8"),
            XmlError::TooComplex(what) => write!(f, "document too complex: {what}"),
        }
    }
}

impl std::error::Error for XmlError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Qualified name as written.
    pub qname: Range<usize>,
    /// Local part of the name.
    pub local: Range<usize>,
    /// Raw (still escaped) value between the quotes.
    pub value: Range<usize>,
    /// From the whitespace before the name to the closing quote: what DELETE removes.
    pub span: Range<usize>,
    /// Namespace of a prefixed attribute; unprefixed attributes have none.
    pub ns: Option<String>,
    /// `xmlns` or `xmlns:p` declaration.
    pub is_decl: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Offset of `<` of the start tag.
    pub start: usize,
    /// Offset just after the `>` of the start tag.
    pub head_end: usize,
    /// Offset of `</` of the end tag (equals `head_end` for an empty-element tag).
    pub content_end: usize,
    /// Offset just after the element.
    pub end: usize,
    pub self_closing: bool,
    pub qname: Range<usize>,
    pub local: Range<usize>,
    pub ns: Option<String>,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    pub attrs: Vec<Attr>,
    /// Namespace declarations made on this element: (prefix, uri); `None` = default.
    pub decls: Vec<(Option<String>, String)>,
}

/// Index over `text`; element 0 is the root (documents) or the fragment's element.
#[derive(Debug, Clone)]
pub struct XmlIndex<'a> {
    pub text: &'a [u8],
    pub elements: Vec<Element>,
}

impl<'a> XmlIndex<'a> {
    /// Indexes a complete document.
    pub fn document(text: &'a [u8], limits: &XmlLimits) -> Result<Self, XmlError> {
        build(text, limits, Shape::Document)
    }

    /// [`document`](Self::document) without the character rule, for reading a stored
    /// document: one that a version before the rule stored (a C0 control in a display
    /// name) can still be read by selector, as it is whole. Every write goes through
    /// `document`, so a document can only be edited once it is rewritten whole.
    pub fn stored(text: &'a [u8], limits: &XmlLimits) -> Result<Self, XmlError> {
        build(text, limits, Shape::Stored)
    }

    /// Indexes a fragment: exactly one element, optionally surrounded by whitespace, no
    /// declaration. Prefixes declared only in the target document are tolerated here.
    pub fn fragment(text: &'a [u8], limits: &XmlLimits) -> Result<Self, XmlError> {
        build(text, limits, Shape::Fragment)
    }

    pub fn root(&self) -> &Element {
        &self.elements[0]
    }

    pub fn slice(&self, r: &Range<usize>) -> &'a [u8] {
        &self.text[r.clone()]
    }

    pub fn str(&self, r: &Range<usize>) -> &'a str {
        // Safe to unwrap: the whole text was checked to be UTF-8 and ranges fall on ASCII
        // delimiters.
        std::str::from_utf8(&self.text[r.clone()]).unwrap_or("")
    }

    pub fn local_name(&self, e: usize) -> &'a str {
        self.str(&self.elements[e].local)
    }

    pub fn qname(&self, e: usize) -> &'a str {
        self.str(&self.elements[e].qname)
    }

    /// Bytes of the whole element.
    pub fn element_bytes(&self, e: usize) -> &'a [u8] {
        let el = &self.elements[e];
        &self.text[el.start..el.end]
    }

    /// Element children of `e`, in document order.
    pub fn children(&self, e: usize) -> &[usize] {
        &self.elements[e].children
    }

    /// Unescaped value of the attribute with that local name and namespace.
    pub fn attr_value(&self, e: usize, local: &str, ns: Option<&str>) -> Option<String> {
        self.find_attr(e, local, ns)
            .and_then(|a| unescape(self.str(&self.elements[e].attrs[a].value)))
    }

    /// Index in `attrs` of a (non-declaration) attribute.
    pub fn find_attr(&self, e: usize, local: &str, ns: Option<&str>) -> Option<usize> {
        self.elements[e]
            .attrs
            .iter()
            .position(|a| !a.is_decl && self.str(&a.local) == local && a.ns.as_deref() == ns)
    }

    /// Namespace bindings in scope on `e` (nearest declaration of each prefix wins),
    /// excluding undeclarations (`xmlns=""`).
    pub fn in_scope_namespaces(&self, e: usize) -> Vec<(Option<String>, String)> {
        let mut out: Vec<(Option<String>, String)> = Vec::new();
        let mut cur = Some(e);
        while let Some(i) = cur {
            for (p, uri) in &self.elements[i].decls {
                if !out.iter().any(|(q, _)| q == p) {
                    out.push((p.clone(), uri.clone()));
                }
            }
            cur = self.elements[i].parent;
        }
        out.retain(|(_, uri)| !uri.is_empty());
        out
    }

    /// A prefix bound to `ns` on `e` (`Some(None)` = default namespace).
    pub fn prefix_for(&self, e: usize, ns: &str) -> Option<Option<String>> {
        self.in_scope_namespaces(e)
            .into_iter()
            .find(|(_, u)| u == ns)
            .map(|(p, _)| p)
    }
}

struct Open {
    idx: usize,
}

/// Where `text` (UTF-8) holds a character XML 1.0 does not allow: a C0 control other than
/// TAB, LF and CR, U+FFFE or U+FFFF (surrogates cannot occur in valid UTF-8).
fn forbidden_char_at(text: &[u8]) -> Option<usize> {
    text.iter()
        .position(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
        .or_else(|| memchr::memmem::find(text, "\u{fffe}".as_bytes()))
        .or_else(|| memchr::memmem::find(text, "\u{ffff}".as_bytes()))
}

/// What [`build`] indexes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Document,
    /// A document already stored: the character rule is not applied again.
    Stored,
    Fragment,
}

fn build<'a>(text: &'a [u8], limits: &XmlLimits, shape: Shape) -> Result<XmlIndex<'a>, XmlError> {
    let fragment = shape == Shape::Fragment;
    if text.len() > limits.max_bytes {
        return Err(XmlError::TooComplex("size"));
    }
    if std::str::from_utf8(text).is_err() {
        return Err(XmlError::NotUtf8);
    }
    // XML 1.0 `Char`: the tokenizer does not check characters, and a stored document
    // holding a forbidden one would be served to clients whose parsers refuse it whole.
    if shape != Shape::Stored {
        if let Some(at) = forbidden_char_at(text) {
            return Err(XmlError::NotWellFormed(format!(
                "a character XML does not allow at byte {at}"
            )));
        }
    }
    // Refuse DTDs before the tokenizer: no internal subset, no entity definitions at all.
    if memchr::memmem::find(text, b"<!DOCTYPE").is_some()
        || memchr::memmem::find(text, b"<!ENTITY").is_some()
    {
        return Err(XmlError::Dtd);
    }
    let mut reader = Reader::from_reader(text);
    {
        let cfg = reader.config_mut();
        cfg.trim_text(false);
        cfg.check_end_names = true;
        cfg.check_comments = true;
        cfg.expand_empty_elements = false;
    }
    let mut elements: Vec<Element> = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut root_done = false;
    let mut seen_anything = false;
    loop {
        let before = reader.buffer_position() as usize;
        let ev = reader.read_event().map_err(|e| {
            XmlError::NotWellFormed(format!("{e} at byte {}", reader.error_position()))
        })?;
        let after = reader.buffer_position() as usize;
        match ev {
            Event::Eof => break,
            Event::Decl(_) => {
                if fragment || seen_anything || before != 0 {
                    return Err(XmlError::NotWellFormed(
                        "XML declaration not at the start".into(),
                    ));
                }
                check_decl_encoding(&text[before..after])?;
            }
            Event::DocType(_) => return Err(XmlError::Dtd),
            Event::Start(_) | Event::Empty(_) => {
                let self_closing = matches!(ev, Event::Empty(_));
                if stack.is_empty() && root_done {
                    return Err(XmlError::NotWellFormed("more than one root element".into()));
                }
                if stack.len() >= limits.max_depth {
                    return Err(XmlError::TooComplex("depth"));
                }
                if elements.len() >= limits.max_elements {
                    return Err(XmlError::TooComplex("element count"));
                }
                let idx = elements.len();
                let parent = stack.last().map(|o| o.idx);
                let mut el = scan_start_tag(text, before, after, limits)?;
                el.parent = parent;
                el.self_closing = self_closing;
                resolve_namespaces(&mut el, &elements, text, fragment)?;
                if let Some(p) = parent {
                    elements[p].children.push(idx);
                }
                if self_closing {
                    el.content_end = after;
                    el.end = after;
                    elements.push(el);
                    if stack.is_empty() {
                        root_done = true;
                    }
                } else {
                    elements.push(el);
                    stack.push(Open { idx });
                }
            }
            Event::End(_) => {
                let open = stack
                    .pop()
                    .ok_or_else(|| XmlError::NotWellFormed("unexpected end tag".into()))?;
                elements[open.idx].content_end = before;
                elements[open.idx].end = after;
                if stack.is_empty() {
                    root_done = true;
                }
            }
            Event::Text(t) => {
                if stack.is_empty() {
                    if !t.iter().all(|b| b.is_ascii_whitespace()) {
                        return Err(XmlError::NotWellFormed(
                            "text outside the root element".into(),
                        ));
                    }
                } else if t.contains(&b'<') {
                    return Err(XmlError::NotWellFormed("stray <".into()));
                }
            }
            Event::GeneralRef(r) => {
                if stack.is_empty() {
                    return Err(XmlError::NotWellFormed(
                        "reference outside the root element".into(),
                    ));
                }
                let name = std::str::from_utf8(&r).unwrap_or("");
                if unescape(&format!("&{name};")).is_none() {
                    return Err(XmlError::NotWellFormed(format!(
                        "undefined entity &{name};"
                    )));
                }
            }
            Event::CData(_) => {
                if stack.is_empty() {
                    return Err(XmlError::NotWellFormed(
                        "CDATA outside the root element".into(),
                    ));
                }
            }
            Event::Comment(_) | Event::PI(_) => {
                if fragment && stack.is_empty() {
                    return Err(XmlError::NotWellFormed(
                        "fragment must be one element".into(),
                    ));
                }
            }
        }
        seen_anything = true;
    }
    if !stack.is_empty() {
        return Err(XmlError::NotWellFormed("unclosed element".into()));
    }
    if elements.is_empty() {
        return Err(XmlError::NotWellFormed("no root element".into()));
    }
    Ok(XmlIndex { text, elements })
}

fn check_decl_encoding(decl: &[u8]) -> Result<(), XmlError> {
    let s = std::str::from_utf8(decl).map_err(|_| XmlError::NotUtf8)?;
    if let Some(i) = s.find("encoding") {
        let rest = s[i + 8..].trim_start().trim_start_matches('=').trim_start();
        // The value is quoted with `"` or `'`; anything else (another character, nothing)
        // names no encoding we read.
        let enc = match rest.as_bytes().first() {
            Some(&q @ (b'"' | b'\'')) => rest[1..].split(char::from(q)).next().unwrap_or(""),
            _ => "",
        };
        if !enc.eq_ignore_ascii_case("utf-8") && !enc.eq_ignore_ascii_case("utf8") {
            return Err(XmlError::NotUtf8);
        }
    }
    Ok(())
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':') || b >= 0x80
}

/// Scans `<qname attr="v" ...>` or `.../>` at text[start..end] for positions.
fn scan_start_tag(
    text: &[u8],
    start: usize,
    end: usize,
    limits: &XmlLimits,
) -> Result<Element, XmlError> {
    let bad = |why: &str| XmlError::NotWellFormed(format!("{why} at byte {start}"));
    let mut i = start + 1;
    let name_start = i;
    while i < end && is_name_byte(text[i]) {
        i += 1;
    }
    let qname = name_start..i;
    check_name(text, &qname, limits).map_err(|_| bad("bad element name"))?;
    let mut attrs = Vec::new();
    loop {
        let ws_start = i;
        while i < end && text[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= end {
            return Err(bad("unterminated start tag"));
        }
        if text[i] == b'>' || text[i] == b'/' {
            break;
        }
        if i == ws_start {
            return Err(bad("attributes must be separated by whitespace"));
        }
        let an_start = i;
        while i < end && is_name_byte(text[i]) {
            i += 1;
        }
        let aname = an_start..i;
        check_name(text, &aname, limits).map_err(|_| bad("bad attribute name"))?;
        while i < end && text[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= end || text[i] != b'=' {
            return Err(bad("attribute without value"));
        }
        i += 1;
        while i < end && text[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= end || !(text[i] == b'"' || text[i] == b'\'') {
            return Err(bad("unquoted attribute value"));
        }
        let q = text[i];
        i += 1;
        let v_start = i;
        while i < end && text[i] != q {
            if text[i] == b'<' {
                return Err(bad("< in attribute value"));
            }
            i += 1;
        }
        if i >= end {
            return Err(bad("unterminated attribute value"));
        }
        let value = v_start..i;
        let raw = std::str::from_utf8(&text[value.clone()]).map_err(|_| XmlError::NotUtf8)?;
        if unescape(raw).is_none() {
            return Err(bad("bad reference in attribute value"));
        }
        i += 1;
        let name_bytes = &text[aname.clone()];
        let is_decl = name_bytes == b"xmlns" || name_bytes.starts_with(b"xmlns:");
        let local = match memchr::memchr(b':', name_bytes) {
            Some(c) => aname.start + c + 1..aname.end,
            None => aname.clone(),
        };
        if attrs
            .iter()
            .any(|a: &Attr| text[a.qname.clone()] == text[aname.clone()])
        {
            return Err(bad("duplicate attribute"));
        }
        attrs.push(Attr {
            qname: aname,
            local,
            value,
            span: ws_start..i,
            ns: None,
            is_decl,
        });
        if attrs.len() > limits.max_attrs {
            return Err(XmlError::TooComplex("attribute count"));
        }
    }
    let local = match memchr::memchr(b':', &text[qname.clone()]) {
        Some(c) => qname.start + c + 1..qname.end,
        None => qname.clone(),
    };
    Ok(Element {
        start,
        head_end: end,
        content_end: end,
        end,
        self_closing: false,
        qname,
        local,
        ns: None,
        parent: None,
        children: Vec::new(),
        attrs,
        decls: Vec::new(),
    })
}

fn check_name(text: &[u8], r: &Range<usize>, limits: &XmlLimits) -> Result<(), ()> {
    if r.is_empty() {
        return Err(());
    }
    if r.len() > limits.max_name_len {
        return Err(());
    }
    let n = &text[r.clone()];
    if n[0].is_ascii_digit() || n[0] == b'-' || n[0] == b'.' || n[0] == b':' {
        return Err(());
    }
    if n.iter().filter(|b| **b == b':').count() > 1 || n.ends_with(b":") {
        return Err(());
    }
    Ok(())
}

fn lookup(elements: &[Element], el: &Element, prefix: Option<&str>) -> Option<String> {
    if prefix == Some("xml") {
        return Some(XML_NS.to_string());
    }
    if let Some((_, uri)) = el.decls.iter().find(|(p, _)| p.as_deref() == prefix) {
        return Some(uri.clone());
    }
    let mut cur = el.parent;
    while let Some(i) = cur {
        if let Some((_, uri)) = elements[i]
            .decls
            .iter()
            .find(|(p, _)| p.as_deref() == prefix)
        {
            return Some(uri.clone());
        }
        cur = elements[i].parent;
    }
    None
}

fn resolve_namespaces(
    el: &mut Element,
    elements: &[Element],
    text: &[u8],
    fragment: bool,
) -> Result<(), XmlError> {
    let s = |r: &Range<usize>| {
        std::str::from_utf8(&text[r.clone()])
            .unwrap_or("")
            .to_string()
    };
    for a in &el.attrs {
        if a.is_decl {
            let name = s(&a.qname);
            let value = unescape(&s(&a.value)).unwrap_or_default();
            let prefix = name.strip_prefix("xmlns:").map(str::to_string);
            if prefix.is_some() && value.is_empty() {
                return Err(XmlError::NotWellFormed(format!(
                    "{name}=\"\" is not allowed"
                )));
            }
            el.decls.push((prefix, value));
        }
    }
    let qn = s(&el.qname);
    let prefix = qn.split_once(':').map(|(p, _)| p.to_string());
    el.ns = lookup(elements, el, prefix.as_deref()).filter(|u| !u.is_empty());
    if prefix.is_some() && el.ns.is_none() && !fragment {
        return Err(XmlError::NotWellFormed(format!(
            "undeclared prefix in <{qn}>"
        )));
    }
    let mut resolved = Vec::with_capacity(el.attrs.len());
    for a in &el.attrs {
        if a.is_decl {
            resolved.push(None);
            continue;
        }
        let an = s(&a.qname);
        match an.split_once(':') {
            Some((p, _)) => {
                let ns = lookup(elements, el, Some(p));
                if ns.is_none() && !fragment {
                    return Err(XmlError::NotWellFormed(format!(
                        "undeclared prefix in {an}"
                    )));
                }
                resolved.push(ns);
            }
            None => resolved.push(None),
        }
    }
    for (a, ns) in el.attrs.iter_mut().zip(resolved) {
        a.ns = ns;
    }
    // Expanded-name uniqueness of attributes (namespace well-formedness).
    for (i, a) in el.attrs.iter().enumerate() {
        if a.is_decl || a.ns.is_none() {
            continue;
        }
        for b in &el.attrs[i + 1..] {
            if !b.is_decl && b.ns == a.ns && text[b.local.clone()] == text[a.local.clone()] {
                return Err(XmlError::NotWellFormed(
                    "duplicate expanded attribute name".into(),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `service` fuzz target: an encoding value not quoted with `"` or `'`
    /// (a multi-byte character, or nothing at all) panicked the shard serving the PUT.
    #[test]
    fn declarations_naming_no_encoding_are_refused_not_panicked_on() {
        let l = XmlLimits::default();
        for decl in [
            "<?xml version=\"1.0\" encoding=\u{66a}TF-8\"?><a/>",
            "<?xml version=\"1.0\" encoding?><a/>",
            "<?xml version=\"1.0\" encoding=?><a/>",
            "<?xml version=\"1.0\" encoding=UTF-8?><a/>",
            "<?xml version=\"1.0\" encoding='latin1'?><a/>",
        ] {
            assert_eq!(
                XmlIndex::document(decl.as_bytes(), &l).err(),
                Some(XmlError::NotUtf8),
                "{decl}"
            );
        }
        assert!(XmlIndex::document(b"<?xml version='1.0' encoding='utf-8'?><a/>", &l).is_ok());
    }

    const DOC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- hello -->
<rl:resource-lists xmlns:rl="urn:ietf:params:xml:ns:resource-lists" xmlns="urn:x">
  <rl:list name="friends">
    <rl:entry uri="sip:bob@example.com"><rl:display-name>Bob &amp; co</rl:display-name></rl:entry>
    <rl:entry uri='sip:carol@example.com'/>
  </rl:list>
  <other a:b="1" xmlns:a="urn:a"/>
</rl:resource-lists>
"#;

    #[test]
    fn positions_and_namespaces() {
        let ix = XmlIndex::document(DOC.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(ix.local_name(0), "resource-lists");
        assert_eq!(
            ix.elements[0].ns.as_deref(),
            Some("urn:ietf:params:xml:ns:resource-lists")
        );
        let list = ix.children(0)[0];
        assert_eq!(
            ix.attr_value(list, "name", None).as_deref(),
            Some("friends")
        );
        let e2 = ix.children(list)[1];
        assert_eq!(
            std::str::from_utf8(ix.element_bytes(e2)).unwrap(),
            "<rl:entry uri='sip:carol@example.com'/>"
        );
        let other = ix.children(0)[1];
        assert_eq!(ix.elements[other].ns.as_deref(), Some("urn:x"));
        assert_eq!(
            ix.attr_value(other, "b", Some("urn:a")).as_deref(),
            Some("1")
        );
        assert_eq!(ix.in_scope_namespaces(other).len(), 3);
    }

    #[test]
    fn hostile_and_broken() {
        let l = XmlLimits::default();
        let bad = |s: &str| XmlIndex::document(s.as_bytes(), &l).unwrap_err();
        assert_eq!(
            bad("<!DOCTYPE x [<!ENTITY a \"aaaa\">]><x>&a;</x>"),
            XmlError::Dtd
        );
        assert!(matches!(bad("<x>&a;</x>"), XmlError::NotWellFormed(_)));
        assert!(matches!(bad("<x><y></x>"), XmlError::NotWellFormed(_)));
        assert!(matches!(bad("<x/><y/>"), XmlError::NotWellFormed(_)));
        assert!(matches!(bad("<p:x/>"), XmlError::NotWellFormed(_)));
        assert!(matches!(
            bad("<x a='1' a='2'/>"),
            XmlError::NotWellFormed(_)
        ));
        assert!(matches!(bad("text<x/>"), XmlError::NotWellFormed(_)));
        // Characters XML 1.0 forbids, in text or in an attribute value.
        assert!(matches!(bad("<x>a\u{1}b</x>"), XmlError::NotWellFormed(_)));
        assert!(matches!(bad("<x a='\u{1f}'/>"), XmlError::NotWellFormed(_)));
        assert!(matches!(bad("<x>\u{fffe}</x>"), XmlError::NotWellFormed(_)));
        assert!(XmlIndex::document("<x a='\t'>\r\n\t\u{10000}</x>".as_bytes(), &l).is_ok());
        assert_eq!(
            bad("<?xml version='1.0' encoding='ISO-8859-1'?><x/>"),
            XmlError::NotUtf8
        );
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert_eq!(bad(&deep), XmlError::TooComplex("depth"));
        let long = format!("<{}/>", "a".repeat(300));
        assert!(matches!(bad(&long), XmlError::NotWellFormed(_)));
        assert_eq!(
            XmlIndex::document(&[b'<', b'a', b'>', 0xff, b'<', b'/', b'a', b'>'], &l).unwrap_err(),
            XmlError::NotUtf8
        );
    }

    #[test]
    fn fragments() {
        let l = XmlLimits::default();
        assert!(XmlIndex::fragment(b"  <rl:entry uri=\"x\"/>\n", &l).is_ok());
        assert!(XmlIndex::fragment(b"<a/><b/>", &l).is_err());
        assert!(XmlIndex::fragment(b"<?xml version='1.0'?><a/>", &l).is_err());
        assert!(XmlIndex::fragment(b"text", &l).is_err());
    }
}
