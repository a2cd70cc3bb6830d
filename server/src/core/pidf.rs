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
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
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
    NotUtf8,
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
            PidfError::NotUtf8 => "body is not UTF-8",
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

/// Whether `body` holds a C0 control other than TAB, LF and CR. Eight bytes at a time:
/// `(x - 0x20…) & !x & 0x80…` is non-zero iff some byte of `x` is below 0x20 (the
/// bit-twiddling `hasless`), and only such words (lines end in one) are looked at bytewise.
/// A plain byte loop cost ~6 instructions per byte, 18% of validating a 1 KB body.
fn has_forbidden_control(body: &[u8]) -> bool {
    const BELOW: u64 = 0x2020_2020_2020_2020;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let forbidden = |b: &u8| *b < 0x20 && !matches!(*b, b'\t' | b'\n' | b'\r');
    let mut words = body.chunks_exact(8);
    for w in words.by_ref() {
        let x = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        if x.wrapping_sub(BELOW) & !x & HIGH != 0 && w.iter().any(forbidden) {
            return true;
        }
    }
    words.remainder().iter().any(forbidden)
}

/// Checks `body` is a well-formed PIDF document and indexes it for aggregation.
pub fn validate(body: &[u8]) -> Result<PidfIndex, PidfError> {
    // XML 1.0 forbids C0 controls other than TAB, LF and CR anywhere, even as text, in any
    // ASCII-based encoding; quick-xml does not check characters. Such a body would reach
    // every watcher in its NOTIFY, and strict parsers (libxml2) refuse the whole document.
    if has_forbidden_control(body) {
        return Err(PidfError::NotWellFormed);
    }
    // Every NOTIFY body herald builds declares `encoding="UTF-8"` (RFC 3863 documents are
    // UTF-8), and aggregation copies the publisher's bytes into it: a Latin-1 or broken
    // sequence would make every watcher's document unreadable, so it is refused here.
    if std::str::from_utf8(body).is_err() {
        return Err(PidfError::NotUtf8);
    }
    index_with::<true>(body)
}

/// Whether `name` is a qualified name (Namespaces in XML 1.0 §4): XML 1.0 Name characters,
/// at most one `:`, neither first nor last. Bytes from 0x80 up (the body is UTF-8) are
/// let through as the Unicode name characters they almost always are; every ASCII byte
/// is held to the grammar. quick-xml splits a tag at whitespace and `=` but takes any
/// other byte into a name, so without this `xmlns:dm<ct="…"` was accepted and copied
/// into every watcher's aggregated root.
fn is_qname(name: &[u8]) -> bool {
    // One table lookup a byte: an iterator split at `:` with closures cost ~150
    // instructions a name, 12% of validating a 1 KB body.
    let mut need_start = true;
    let mut colon_seen = false;
    for &b in name {
        match NAME_CLASS[usize::from(b)] {
            NAME_START => need_start = false,
            NAME_INNER if !need_start => {}
            NAME_COLON if !need_start && !colon_seen => {
                colon_seen = true;
                need_start = true;
            }
            _ => return false,
        }
    }
    !need_start
}

const NAME_NONE: u8 = 0;
const NAME_START: u8 = 1;
const NAME_INNER: u8 = 2;
const NAME_COLON: u8 = 3;

/// [`is_qname`]'s byte classes.
const NAME_CLASS: [u8; 256] = {
    let mut t = [NAME_NONE; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            NAME_START
        } else if c.is_ascii_digit() || c == b'-' || c == b'.' {
            NAME_INNER
        } else if c == b':' {
            NAME_COLON
        } else {
            NAME_NONE
        };
        b += 1;
    }
    t
};

/// [`validate`] without the character rule, for stored bodies: a publication that a
/// version before the rule acknowledged is restored as it was acknowledged, not dropped
/// at the first start of this one. New bodies always go through [`validate`].
pub fn index(body: &[u8]) -> Result<PidfIndex, PidfError> {
    index_with::<false>(body)
}

/// [`index`]; `STRICT` (new bodies, [`validate`]) also holds element and attribute names
/// to the QName grammar and the XML declaration to its own. A const parameter, so each
/// caller gets a copy of the loop without the other's tests in it.
fn index_with<const STRICT: bool>(body: &[u8]) -> Result<PidfIndex, PidfError> {
    // quick-xml skips a UTF-8 byte order mark without counting it in `buffer_position`,
    // which would put every child's range 3 bytes early: skip it here and count it.
    let base = if body.starts_with(UTF8_BOM) {
        UTF8_BOM.len() as u32
    } else {
        0
    };
    // A second one would be skipped too; as text before the root it is not well-formed.
    if body[base as usize..].starts_with(UTF8_BOM) {
        return Err(PidfError::NotWellFormed);
    }
    let mut reader = Reader::from_reader(&body[base as usize..]);
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
        let before = base + reader.buffer_position() as u32;
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
                if STRICT && !is_qname(name) {
                    return Err(PidfError::NotWellFormed);
                }
                check_attributes::<STRICT>(e)?;
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
                        let end = base + reader.buffer_position() as u32;
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
                // The end name equals the start name (`check_end_names`): checked there.
                depth = depth.checked_sub(1).ok_or(PidfError::NotWellFormed)?;
                if depth == 1 {
                    let end = base + reader.buffer_position() as u32;
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
            // `<?xml version="1.0" … ?>` is copied to watchers as published (a lone
            // publication's body is sent whole): its pseudo-attributes must parse.
            // It is also only allowed first (XML 1.0 §2.8: `document ::= prolog …`, `prolog ::=
            // XMLDecl? …`); libxml2 refuses one anywhere else.
            Event::Decl(ref d) if STRICT => {
                let ok = before == base
                    && d.version().is_ok()
                    && d.encoding().is_none_or(|e| e.is_ok())
                    && d.standalone().is_none_or(|s| s.is_ok());
                if !ok {
                    return Err(PidfError::NotWellFormed);
                }
            }
            // A PI target is a Name without colon (Namespaces in XML §7) and not `xml` in any
            // case (XML 1.0 §2.6); quick-xml takes everything up to whitespace as the target.
            Event::PI(ref pi) if STRICT => {
                let target = pi.target();
                if !is_qname(target)
                    || memchr::memchr(b':', target).is_some()
                    || target.eq_ignore_ascii_case(b"xml")
                {
                    return Err(PidfError::NotWellFormed);
                }
            }
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
fn check_attributes<const STRICT: bool>(
    e: &quick_xml::events::BytesStart<'_>,
) -> Result<(), PidfError> {
    let mut on_stack: [&[u8]; ATTRS_ON_STACK] = [&[]; ATTRS_ON_STACK];
    let mut spilled: Vec<&[u8]> = Vec::new();
    for (n, a) in e.attributes().with_checks(false).enumerate() {
        let a = a.map_err(|_| PidfError::NotWellFormed)?;
        let key = a.key.into_inner();
        if STRICT && !is_qname(key) {
            return Err(PidfError::NotWellFormed);
        }
        if on_stack[..n.min(ATTRS_ON_STACK)].contains(&key) || spilled.contains(&key) {
            return Err(PidfError::NotWellFormed);
        }
        match on_stack.get_mut(n) {
            Some(slot) => *slot = key,
            None => spilled.push(key),
        }
        check_refs(&a.value)?;
        if let Some(prefix) = key.strip_prefix(b"xmlns:") {
            check_prefix_binding(prefix, &a.value)?;
        }
    }
    Ok(())
}

const XML_NS: &[u8] = b"http://www.w3.org/XML/1998/namespace";

/// Namespaces in XML 1.0 §3: `xmlns` is never declared, `xml` only to its own namespace,
/// and a prefix is never bound to the empty name. A document breaking these has no
/// meaning to give its watchers, and aggregating it would carry the breakage over.
fn check_prefix_binding(prefix: &[u8], value: &[u8]) -> Result<(), PidfError> {
    let ok = match prefix {
        b"xmlns" | b"" => false,
        b"xml" => value == XML_NS,
        _ => !value.is_empty() && value != XML_NS,
    };
    if ok {
        Ok(())
    } else {
        Err(PidfError::NotWellFormed)
    }
}

fn slice<'a>(body: &'a [u8], r: &Range<u32>) -> &'a [u8] {
    &body[r.start as usize..r.end as usize]
}

/// Merges documents (newest first) into `out` (cleared first). One document is copied
/// as published. Several get one `<presence>` root in the PIDF namespace, carrying the
/// newest entity and every prefix any document declares (the first declaration of a prefix
/// wins), then all their top-level children.
///
/// Why children may get declarations of their own: each device's client picks its own
/// prefixes, and two of them can bind one prefix to different namespaces (`c` for CIPID in
/// one, for caps in another), or a document may put PIDF under a prefix and something else
/// in the default namespace. Copied under a root that binds those names differently, the
/// children would change meaning. So a document whose bindings differ from the root's gets
/// its own bindings declared again on each of its top-level children, which XML namespace
/// scoping lets override the root's, and the children mean what they meant.
pub fn aggregate(docs: &[(&[u8], &PidfIndex)], out: &mut Vec<u8>) {
    out.clear();
    match docs {
        [] => {}
        [(body, _)] => out.extend_from_slice(body),
        _ => {
            out.extend_from_slice(
                b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\"",
            );
            // (prefix, raw value) bound on the root; "" is the default namespace.
            let mut root: Vec<(&[u8], &[u8])> = Vec::with_capacity(8);
            root.push((b"", PIDF_NS));
            for (body, idx) in docs {
                for (k, v) in &idx.ns_decls {
                    let prefix = ns_prefix(slice(body, k));
                    if root.iter().any(|(p, _)| eq_bytes(p, prefix)) {
                        continue;
                    }
                    let value = slice(body, v);
                    root.push((prefix, value));
                    push_ns_attr(out, prefix, value);
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
            // Nearly always every document agrees with the root: one bit per document says
            // which do not (documents past the 64th are checked again where copied).
            let mut differs = 0u64;
            for (i, (body, idx)) in docs.iter().enumerate().take(64) {
                if binds_differently(body, idx, &root) {
                    differs |= 1 << i;
                }
            }
            for kind in [ChildKind::Tuple, ChildKind::Note, ChildKind::Other] {
                for (i, (body, idx)) in docs.iter().enumerate() {
                    let restate = match i {
                        0..64 => differs & (1 << i) != 0,
                        _ => binds_differently(body, idx, &root),
                    };
                    // Computed once per document and kind, and only for one that differs.
                    let rebind = if restate {
                        bindings_to_restate(body, idx, &root)
                    } else {
                        Vec::new()
                    };
                    for (k, r) in &idx.children {
                        if *k == kind {
                            copy_child(slice(body, r), &rebind, out);
                            out.push(b'\n');
                        }
                    }
                }
            }
            out.extend_from_slice(b"</presence>\n");
        }
    }
}

/// Byte equality compiled inline, eight bytes at a time. Why not `==`: it calls libc
/// `memcmp`, which for these few-byte prefixes and URIs cost more than the compare (the
/// memcmp calls were two thirds of a three-document aggregation in `perf`).
#[inline]
fn eq_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    for (p, q) in (&mut x).zip(&mut y) {
        if u64::from_ne_bytes(p.try_into().expect("8 bytes"))
            != u64::from_ne_bytes(q.try_into().expect("8 bytes"))
        {
            return false;
        }
    }
    x.remainder().iter().zip(y.remainder()).all(|(p, q)| p == q)
}

/// `xmlns` → `""`, `xmlns:p` → `p`.
fn ns_prefix(key: &[u8]) -> &[u8] {
    key.strip_prefix(b"xmlns:").unwrap_or(b"")
}

fn push_ns_attr(out: &mut Vec<u8>, prefix: &[u8], value: &[u8]) {
    out.extend_from_slice(b" xmlns");
    if !prefix.is_empty() {
        out.push(b':');
        out.extend_from_slice(prefix);
    }
    let q = if value.contains(&b'"') { b'\'' } else { b'"' };
    out.push(b'=');
    out.push(q);
    out.extend_from_slice(value);
    out.push(q);
}

/// Whether one document binds a prefix (or the default namespace) otherwise than the
/// aggregate's root, whose bindings its children would then get wrong.
fn binds_differently(body: &[u8], idx: &PidfIndex, root: &[(&[u8], &[u8])]) -> bool {
    let mut has_default = false;
    for (k, v) in &idx.ns_decls {
        let prefix = ns_prefix(slice(body, k));
        has_default |= prefix.is_empty();
        let value = slice(body, v);
        if !root
            .iter()
            .any(|(p, rv)| eq_bytes(p, prefix) && eq_bytes(rv, value))
        {
            return true;
        }
    }
    !has_default
}

/// The bindings of one document that the aggregate's root does not give its children:
/// a prefix bound elsewhere first, or a default namespace other than PIDF (a document
/// without one has its unprefixed names in no namespace: `xmlns=""`).
fn bindings_to_restate<'a>(
    body: &'a [u8],
    idx: &PidfIndex,
    root: &[(&[u8], &[u8])],
) -> Vec<(&'a [u8], &'a [u8])> {
    let mut own: Vec<(&[u8], &[u8])> = idx
        .ns_decls
        .iter()
        .map(|(k, v)| (ns_prefix(slice(body, k)), slice(body, v)))
        .collect();
    if !own.iter().any(|(p, _)| p.is_empty()) {
        own.push((b"", b""));
    }
    own.retain(|(p, v)| {
        !root
            .iter()
            .any(|(rp, rv)| eq_bytes(rp, p) && eq_bytes(rv, v))
    });
    own
}

/// Copies one top-level child, declaring `rebind` on its start tag (except prefixes the
/// child declares itself, whose own declaration already wins).
fn copy_child(child: &[u8], rebind: &[(&[u8], &[u8])], out: &mut Vec<u8>) {
    if rebind.is_empty() {
        out.extend_from_slice(child);
        return;
    }
    let (name_end, declared) = child_start_tag(child);
    out.extend_from_slice(&child[..name_end]);
    for (prefix, value) in rebind {
        if !declared.contains(prefix) {
            push_ns_attr(out, prefix, value);
        }
    }
    out.extend_from_slice(&child[name_end..]);
}

/// Where the child's element name ends (after `<name`, where attributes may go) and the
/// prefixes its start tag declares itself (`""` for `xmlns`). The name is the one quick-xml
/// read in validation, which may hold any byte but whitespace, `/` included.
fn child_start_tag(child: &[u8]) -> (usize, Vec<&[u8]>) {
    let mut reader = Reader::from_reader(child);
    let mut found = Vec::new();
    let mut name_end = child.len();
    if let Ok(Event::Start(e) | Event::Empty(e)) = reader.read_event() {
        name_end = offset_in(child, e.name().into_inner()).end as usize;
        for a in e.attributes().with_checks(false).flatten() {
            let key = a.key.into_inner();
            if key == b"xmlns" || key.starts_with(b"xmlns:") {
                let at = offset_in(child, key).start as usize;
                found.push(ns_prefix(&child[at..at + key.len()]));
            }
        }
    }
    (name_end, found)
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
    use crate::fuzz_checks::{element_names, expected_element_names};
    use proptest::prelude::*;

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
            (b"<presence xmlns='urn:ietf:params:xml:ns:pidf' xmlns:xmlns='u' entity='x'/>", PidfError::NotWellFormed),
            (b"<presence xmlns='urn:ietf:params:xml:ns:pidf' xmlns:p='' entity='x'/>", PidfError::NotWellFormed),
            (b"<presence xmlns='urn:ietf:params:xml:ns:pidf' xmlns:xml='u' entity='x'/>", PidfError::NotWellFormed),
            (b"<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='x'><t xmlns:xmlns='u'/></presence>", PidfError::NotWellFormed),
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

    /// The QName grammar (Namespaces in XML §4) written out plainly, to check the table
    /// version against.
    fn qname_by_the_grammar(name: &[u8]) -> bool {
        let start = |c: u8| c.is_ascii_alphabetic() || c == b'_' || c >= 0x80;
        let ncname = |p: &[u8]| {
            p.first().is_some_and(|&c| start(c))
                && p.iter()
                    .all(|&c| start(c) || c.is_ascii_digit() || matches!(c, b'-' | b'.'))
        };
        match name.iter().position(|&c| c == b':') {
            None => ncname(name),
            Some(i) => ncname(&name[..i]) && ncname(&name[i + 1..]),
        }
    }

    proptest! {
        #[test]
        fn qname_check_follows_the_grammar(name in proptest::collection::vec(
            prop_oneof![Just(b':'), Just(b'a'), Just(b'Z'), Just(b'_'), Just(b'1'), Just(b'-'),
                        Just(b'.'), Just(0xc3u8), Just(b'<'), Just(b' '), any::<u8>()],
            0..12,
        )) {
            prop_assert_eq!(is_qname(&name), qname_by_the_grammar(&name), "{:?}", name);
        }
    }

    /// Found by the `pidf` fuzz target: quick-xml takes any byte but whitespace and `=`
    /// into a name, so a root carrying `xmlns:dm<ct="…"` was accepted and its declaration
    /// copied into the aggregated root, which no XML parser reads.
    #[test]
    fn names_and_the_declaration_must_follow_the_grammar() {
        let doc = |decl: &str, root_attr: &str, tuple: &str| {
            format!(
                "{decl}<presence xmlns='urn:ietf:params:xml:ns:pidf' {root_attr} entity='x'>\
                 <{tuple}><status><basic>open</basic></status></{tuple}></presence>"
            )
        };
        for ok in [
            doc("", "", "tuple"),
            doc(
                "<?xml version='1.0' encoding='UTF-8'?>",
                "xmlns:dm='urn:d'",
                "tuple",
            ),
            doc(
                "<?xml version=\"1.0\"?>",
                "xmlns:r-p.1='urn:r' a_b='1'",
                "r-p.1:person",
            ),
            doc("", "xmlns:é='urn:e'", "é:tüple"),
            doc(
                "<?xml version='1.0'?><?xml-stylesheet href='s'?>",
                "",
                "tuple",
            ),
            doc("<?app?>", "", "tuple"),
            format!("\u{feff}{}", doc("<?xml version='1.0'?>", "", "tuple")),
        ] {
            assert!(validate(ok.as_bytes()).is_ok(), "{ok}");
        }
        for bad in [
            doc("", "xmlns:dm<ct='urn:d'", "tuple"),
            doc("", "xmlns:ru\"d-='urn:d'", "tuple"),
            doc("", "a:b:c='1'", "tuple"),
            doc("", ":a='1'", "tuple"),
            doc("", "1a='1'", "tuple"),
            doc("", "", "tu?ple"),
            doc("", "", "dm:"),
            doc("<?xml versionxample.com'>?>", "", "tuple"),
            doc("<?xml encoding='UTF-8'?>", "", "tuple"),
            doc(" <?xml version='1.0'?>", "", "tuple"),
            doc("<?xml version='1.0'?><?xml version='1.0'?>", "", "tuple"),
            doc("<?a:b x?>", "", "tuple"),
            doc("<?XmL x?>", "", "tuple"),
            doc("<?t<x?>", "", "tuple"),
            doc("<?1t?>", "", "tuple"),
        ] {
            assert_eq!(
                validate(bad.as_bytes()).unwrap_err(),
                PidfError::NotWellFormed,
                "{bad}"
            );
        }
        // Stored bodies are restored as acknowledged: the lenient index takes them.
        assert!(index(doc("", "xmlns:dm<ct='urn:d'", "tuple").as_bytes()).is_ok());
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
    fn children_keep_their_namespaces_when_documents_bind_prefixes_differently() {
        // Two devices, `c` bound to CIPID in one and to caps in the other; the second puts
        // PIDF under a prefix and RPID in the default namespace.
        let a: &[u8] = br#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:c="urn:ietf:params:xml:ns:pidf:cipid" entity="sip:a@x"><tuple id="a"><status><basic>open</basic></status><c:card>http://a</c:card></tuple></presence>"#;
        let b: &[u8] = br#"<p:presence xmlns:p="urn:ietf:params:xml:ns:pidf" xmlns:c="urn:ietf:params:xml:ns:pidf:caps" xmlns="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:a@x"><p:tuple id="b"><p:status><p:basic>closed</p:basic></p:status><c:servcaps/></p:tuple><person id="p"><activities><busy/></activities></person><p:note>b</p:note></p:presence>"#;
        let c: &[u8] = br#"<p:presence xmlns:p="urn:ietf:params:xml:ns:pidf" entity="sip:a@x"><p:tuple id="c" xmlns:c="urn:own"><p:status><p:basic>open</p:basic></p:status><c:x/></p:tuple><plain/></p:presence>"#;
        let (ia, ib, ic) = (
            validate(a).unwrap(),
            validate(b).unwrap(),
            validate(c).unwrap(),
        );
        let mut out = Vec::new();
        aggregate(&[(a, &ia), (b, &ib), (c, &ic)], &mut out);
        let s = String::from_utf8(out.clone()).unwrap();
        validate(&out).unwrap_or_else(|e| panic!("{e}: {s}"));
        let want = expected_element_names(&[(a, &ia), (b, &ib), (c, &ic)]).unwrap();
        assert_eq!(element_names(&out), Some(want), "{s}");
        assert!(s.contains(r#"<p:tuple xmlns:c="urn:ietf:params:xml:ns:pidf:caps" xmlns="urn:ietf:params:xml:ns:pidf:rpid" id="b">"#), "{s}");
        assert!(
            s.contains(r#"<p:tuple xmlns="" id="c" xmlns:c="urn:own">"#),
            "{s}"
        );
        assert!(
            s.contains(r#"<tuple id="a">"#),
            "the first document is bound as the root: {s}"
        );
    }

    /// One generated PIDF document: how it binds PIDF (default or a prefix), which other
    /// prefixes it binds to which namespaces (drawn from a small pool, so documents clash),
    /// and its top-level children, each named with one of those prefixes.
    fn generated_doc() -> impl Strategy<Value = String> {
        const PREFIXES: [&str; 4] = ["c", "r", "dm", "p"];
        const URIS: [&str; 4] = [
            "urn:ietf:params:xml:ns:pidf:rpid",
            "urn:ietf:params:xml:ns:pidf:cipid",
            "urn:ietf:params:xml:ns:pidf:caps",
            "urn:ietf:params:xml:ns:pidf:data-model",
        ];
        let pidf_prefix = prop::sample::select(vec!["", "p", "c"]);
        let default_ns = prop::option::of(0..URIS.len());
        let others = prop::collection::vec((0..PREFIXES.len(), 0..URIS.len()), 0..4);
        let children = prop::collection::vec((0..6usize, 0..3usize, any::<bool>()), 0..5);
        (pidf_prefix, default_ns, others, children).prop_map(
            move |(pp, default_ns, others, children)| {
                let q = |p: &str, n: &str| {
                    if p.is_empty() {
                        n.to_string()
                    } else {
                        format!("{p}:{n}")
                    }
                };
                let mut bound: Vec<&str> = vec![pp];
                let mut root = format!(
                    "<{} xmlns{}{}=\"{PIDF_NS_STR}\"",
                    q(pp, "presence"),
                    if pp.is_empty() { "" } else { ":" },
                    pp
                );
                if let (false, Some(u)) = (pp.is_empty(), default_ns) {
                    root.push_str(&format!(" xmlns=\"{}\"", URIS[u]));
                    bound.push("");
                }
                for (p, u) in others {
                    if !bound.contains(&PREFIXES[p]) {
                        bound.push(PREFIXES[p]);
                        root.push_str(&format!(" xmlns:{}=\"{}\"", PREFIXES[p], URIS[u]));
                    }
                }
                root.push_str(" entity=\"sip:a@x\">");
                for (i, (name, prefix, nested)) in children.into_iter().enumerate() {
                    let p = bound[prefix % bound.len()];
                    let n = q(p, ["tuple", "note", "person", "device", "card", "x"][name]);
                    let inner = if nested {
                        format!("<{}/>", q(bound[0], "status"))
                    } else {
                        String::new()
                    };
                    root.push_str(&format!("<{n} id=\"i{i}\">{inner}</{n}>"));
                }
                root.push_str(&format!("</{}>", q(pp, "presence")));
                root
            },
        )
    }

    const PIDF_NS_STR: &str = "urn:ietf:params:xml:ns:pidf";

    proptest! {
        /// Whatever prefixes the publications use, their aggregate is valid PIDF and every
        /// element in it means what it meant in its own publication.
        #[test]
        fn aggregate_keeps_every_element_meaning(docs in prop::collection::vec(generated_doc(), 1..4)) {
            let idx: Vec<PidfIndex> = docs.iter().map(|d| validate(d.as_bytes()).unwrap()).collect();
            let pairs: Vec<(&[u8], &PidfIndex)> = docs.iter().map(|d| d.as_bytes()).zip(&idx).collect();
            let mut out = Vec::new();
            aggregate(&pairs, &mut out);
            let text = String::from_utf8_lossy(&out).into_owned();
            let agg = validate(&out);
            prop_assert!(agg.is_ok(), "{:?}: {}", agg, text);
            prop_assert_eq!(agg.unwrap().children.len(), idx.iter().map(|i| i.children.len()).sum::<usize>());
            prop_assert_eq!(element_names(&out), expected_element_names(&pairs), "{}", text);
        }
    }

    #[test]
    fn a_byte_order_mark_does_not_shift_the_index() {
        let mut with_bom = UTF8_BOM.to_vec();
        with_bom.extend_from_slice(A);
        let i = validate(&with_bom).unwrap();
        assert_eq!(slice(&with_bom, &i.entity), b"sip:alice@example.com");
        assert!(slice(&with_bom, &i.children[0].1).starts_with(b"<tuple id=\"t1\">"));
        assert!(slice(&with_bom, &i.children[0].1).ends_with(b"</tuple>"));
        let ib = validate(B).unwrap();
        let mut out = Vec::new();
        aggregate(&[(B, &ib), (&with_bom, &i)], &mut out);
        assert_eq!(validate(&out).unwrap().children.len(), 5);
        let mut two = UTF8_BOM.to_vec();
        two.extend_from_slice(&with_bom);
        assert_eq!(validate(&two), Err(PidfError::NotWellFormed));
    }

    proptest! {
        /// The word-at-a-time scan answers as a byte loop does, on bytes dense in controls.
        #[test]
        fn control_scan_matches_the_byte_loop(b in proptest::collection::vec(prop_oneof![0u8..0x22, any::<u8>()], 0..80)) {
            let naive = b.iter().any(|&c| c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r'));
            prop_assert_eq!(has_forbidden_control(&b), naive);
        }
    }

    /// A control character XML forbids, anywhere in the body, is not well-formed; TAB, LF
    /// and CR are fine.
    #[test]
    fn forbidden_control_characters_are_refused() {
        let text = std::str::from_utf8(A).unwrap();
        assert!(validate(text.replace("open", "op\ten\r\n").as_bytes()).is_ok());
        for c in ['\u{0}', '\u{1}', '\u{b}', '\u{1f}'] {
            let bad = text.replacen("open", &format!("op{c}en"), 1);
            // Every position in a word, and the tail after the last whole word.
            for at in 0..17 {
                let mut short = vec![b' '; at];
                short.push(c as u8);
                assert!(has_forbidden_control(&short), "{c:?} at {at}");
                short[at] = b'\n';
                assert!(!has_forbidden_control(&short), "LF at {at}");
            }
            assert_eq!(
                validate(bad.as_bytes()),
                Err(PidfError::NotWellFormed),
                "{c:?}"
            );
        }
    }

    /// Bytes that are not UTF-8 (a Latin-1 `é`, a cut sequence, an encoded surrogate) are
    /// refused with their own reason; multi-byte UTF-8 text is fine.
    #[test]
    fn bodies_that_are_not_utf8_are_refused() {
        let text = std::str::from_utf8(A).unwrap();
        assert!(validate(text.replace("open", "opén 日本").as_bytes()).is_ok());
        for bad in [&b"op\xe9n"[..], b"op\xe6\x97n", b"\xed\xa0\x80", b"\xff"] {
            let mut body = Vec::new();
            let at = text.find("open").unwrap();
            body.extend_from_slice(&A[..at]);
            body.extend_from_slice(bad);
            body.extend_from_slice(&A[at + 4..]);
            assert_eq!(validate(&body), Err(PidfError::NotUtf8), "{bad:?}");
            // Stored bodies are indexed as they were acknowledged.
            assert!(index(&body).is_ok(), "{bad:?}");
        }
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
