//! Property tests: build random requests and responses with the writers (random header
//! spellings, compact forms, folding, parameter order, extension headers), parse them back
//! and compare every field. Case count: `PROPTEST_CASES` (default 256).

use proptest::prelude::*;
use sip_parser::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.!%*_+`'~-]{0,15}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
        (0u8..=255, 0u8..=255, 0u8..=255, 1u8..=254)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        (1u16..=0xffff, 0u16..=0xffff).prop_map(|(a, b)| format!("[2001:db8::{a:x}:{b:x}]")),
    ]
}

#[derive(Clone, Debug)]
struct SipUri {
    scheme: &'static str,
    user: Option<String>,
    host: String,
    port: Option<u16>,
    params: Vec<(String, Option<String>)>,
}

impl SipUri {
    fn render(&self) -> String {
        let mut s = format!("{}:", self.scheme);
        if let Some(u) = &self.user {
            s += u;
            s.push('@');
        }
        s += &self.host;
        if let Some(p) = self.port {
            s += &format!(":{p}");
        }
        for (n, v) in &self.params {
            s.push(';');
            s += n;
            if let Some(v) = v {
                s.push('=');
                s += v;
            }
        }
        s
    }
}

fn sip_uri() -> impl Strategy<Value = SipUri> {
    (
        prop_oneof![Just("sip"), Just("sips"), Just("SIP")],
        proptest::option::of("[a-z0-9][a-z0-9._+-]{0,12}"),
        host(),
        proptest::option::of(1u16..),
        proptest::collection::vec(
            ("[a-z][a-z0-9-]{0,6}", proptest::option::of("[a-z0-9]{1,8}")),
            0..3,
        ),
    )
        .prop_map(|(scheme, user, host, port, params)| SipUri {
            scheme,
            user,
            host,
            port,
            params,
        })
}

#[derive(Clone, Debug)]
struct Addr {
    display: Option<String>,
    quoted: bool,
    uri: SipUri,
    tag: Option<String>,
    angle: bool,
}

impl Addr {
    fn render(&self) -> String {
        let mut s = String::new();
        let angle = self.angle || self.display.is_some() || !self.uri.params.is_empty();
        if let Some(d) = &self.display {
            if self.quoted {
                s.push('"');
                for c in d.chars() {
                    if c == '"' || c == '\\' {
                        s.push('\\');
                    }
                    s.push(c);
                }
                s.push_str("\" ");
            } else {
                s += d;
                s.push(' ');
            }
        }
        if angle {
            s.push('<');
        }
        s += &self.uri.render();
        if angle {
            s.push('>');
        }
        if let Some(t) = &self.tag {
            s += ";tag=";
            s += t;
        }
        s
    }

    /// Display name as the parser reports it: quoted content with escapes kept.
    fn expected_display(&self) -> Option<String> {
        let d = self.display.as_ref()?;
        if !self.quoted {
            return Some(d.clone());
        }
        Some(
            d.chars()
                .flat_map(|c| {
                    if c == '"' || c == '\\' {
                        vec!['\\', c]
                    } else {
                        vec![c]
                    }
                })
                .collect(),
        )
    }
}

fn addr() -> impl Strategy<Value = Addr> {
    (
        proptest::option::of(prop_oneof![
            "[A-Za-z][A-Za-z0-9]{0,8}( [A-Za-z0-9]{1,8}){0,2}",
            "[ -~]{0,20}"
        ]),
        sip_uri(),
        proptest::option::of(token()),
        any::<bool>(),
    )
        .prop_map(|(display, uri, tag, angle)| {
            // Only pure-token display names may go unquoted.
            let quoted = display.as_ref().is_none_or(|d| {
                d.is_empty()
                    || !d
                        .split(' ')
                        .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric()))
            });
            Addr {
                display,
                quoted,
                uri,
                tag,
                angle,
            }
        })
}

/// Spelling of a header name: canonical, lower, upper or compact.
fn spell(kind: HeaderKind, choice: u8) -> String {
    let compact = match kind {
        HeaderKind::Via => Some("v"),
        HeaderKind::From => Some("f"),
        HeaderKind::To => Some("t"),
        HeaderKind::CallId => Some("i"),
        HeaderKind::Contact => Some("m"),
        HeaderKind::Event => Some("o"),
        HeaderKind::Supported => Some("k"),
        HeaderKind::AllowEvents => Some("u"),
        HeaderKind::ContentType => Some("c"),
        _ => None,
    };
    match (choice % 4, compact) {
        (0, _) => kind.name().to_string(),
        (1, _) => kind.name().to_ascii_lowercase(),
        (2, _) => kind.name().to_ascii_uppercase(),
        (_, Some(c)) if choice % 8 == 3 => c.to_ascii_uppercase(),
        (_, Some(c)) => c.to_string(),
        (_, None) => kind.name().to_string(),
    }
}

/// Folds a value: every header-parameter `;` (after any `<uri>`, never inside a URI)
/// becomes `;` CRLF TAB (LWS is allowed around SEMI).
fn fold(v: &str, fold: bool) -> String {
    if !fold {
        return v.to_string();
    }
    let split = v.rfind('>').map_or(0, |i| i + 1);
    format!("{}{}", &v[..split], v[split..].replace(';', ";\r\n\t"))
}

#[derive(Clone, Debug)]
struct Req {
    method: &'static str,
    ruri: SipUri,
    vias: Vec<(String, Option<u16>, String, bool)>, // host, port, branch, rport
    from: Addr,
    to: Addr,
    call_id: String,
    cseq: u32,
    max_forwards: Option<u32>,
    contacts: Vec<(Addr, Option<u32>)>,
    expires: Option<u32>,
    event: Option<(String, Option<String>, Option<String>)>,
    accept: Vec<(String, String)>,
    supported: Vec<String>,
    etag: Option<String>,
    extension: Vec<(String, String)>,
    body: Vec<u8>,
    spellings: Vec<u8>,
    folds: Vec<bool>,
}

fn request() -> impl Strategy<Value = Req> {
    let part1 = (
        prop_oneof![
            Just("SUBSCRIBE"),
            Just("PUBLISH"),
            Just("NOTIFY"),
            Just("OPTIONS"),
            Just("INVITE"),
            Just("FOO")
        ],
        sip_uri(),
        proptest::collection::vec(
            (
                host(),
                proptest::option::of(1u16..),
                "[a-zA-Z0-9]{1,20}",
                any::<bool>(),
            ),
            1..4,
        ),
        addr(),
        addr(),
        "[a-zA-Z0-9.!%*_+`'~()<>:\\\\\"/\\[\\]?{}-]{1,30}(@[a-z0-9.]{1,12})?",
        any::<u32>(),
        proptest::option::of(0u32..=255),
    );
    let part2 = (
        proptest::collection::vec((addr(), proptest::option::of(any::<u32>())), 0..3),
        proptest::option::of(any::<u32>()),
        proptest::option::of((
            "[a-z][a-z0-9-]{0,10}",
            proptest::option::of("[a-z][a-z0-9-]{0,6}"),
            proptest::option::of("[a-z0-9]{1,8}"),
        )),
        proptest::collection::vec(("[a-z]{1,10}", "[a-z0-9+.-]{1,12}"), 0..4),
        proptest::collection::vec("[a-z0-9.-]{1,10}", 0..4),
        proptest::option::of("[a-zA-Z0-9]{1,16}"),
        proptest::collection::vec(("X-[A-Za-z0-9-]{1,10}", "[ -~]{0,30}"), 0..3),
        proptest::collection::vec(any::<u8>(), 0..200),
    );
    (
        part1,
        part2,
        proptest::collection::vec(any::<u8>(), 16),
        proptest::collection::vec(any::<bool>(), 16),
    )
        .prop_map(
            |(
                (method, ruri, vias, from, to, call_id, cseq, max_forwards),
                (contacts, expires, event, accept, supported, etag, extension, body),
                spellings,
                folds,
            )| Req {
                method,
                ruri,
                vias,
                from,
                to,
                call_id,
                cseq,
                max_forwards,
                contacts,
                expires,
                event,
                accept,
                supported,
                etag,
                extension,
                body,
                spellings,
                folds,
            },
        )
}

fn build(r: &Req, out: &mut Vec<u8>) {
    let method = Method::from_bytes(r.method.as_bytes());
    let mut w = RequestWriter::new(out, method, r.ruri.render().as_bytes());
    let sp = |i: usize, k: HeaderKind| spell(k, r.spellings[i]);
    for (i, (host, port, branch, rport)) in r.vias.iter().enumerate() {
        let mut v = format!("SIP/2.0/UDP {host}");
        if let Some(p) = port {
            v += &format!(":{p}");
        }
        if *rport {
            v += ";rport";
        }
        v += &format!(";branch=z9hG4bK{branch}");
        w.header(&sp(i, HeaderKind::Via), fold(&v, r.folds[i]).as_bytes());
    }
    w.header(
        &sp(3, HeaderKind::From),
        fold(&r.from.render(), r.folds[3]).as_bytes(),
    );
    w.header(
        &sp(4, HeaderKind::To),
        fold(&r.to.render(), r.folds[4]).as_bytes(),
    );
    w.header(&sp(5, HeaderKind::CallId), r.call_id.as_bytes());
    w.cseq(r.cseq, method);
    if let Some(mf) = r.max_forwards {
        w.header_u32("Max-Forwards", mf);
    }
    for (i, (a, exp)) in r.contacts.iter().enumerate() {
        let mut v = a.render();
        if let Some(e) = exp {
            v += &format!(";expires={e}");
        }
        w.header(
            &sp(6 + i, HeaderKind::Contact),
            fold(&v, r.folds[6 + i]).as_bytes(),
        );
    }
    if let Some(e) = r.expires {
        w.header_u32(&sp(9, HeaderKind::Expires), e);
    }
    if let Some((pkg, template, id)) = &r.event {
        let mut v = pkg.clone();
        if let Some(t) = template {
            v = format!("{v}.{t}");
        }
        if let Some(id) = id {
            v += &format!(";id={id}");
        }
        w.header(&sp(10, HeaderKind::Event), fold(&v, r.folds[10]).as_bytes());
    }
    if !r.accept.is_empty() {
        let v: Vec<String> = r.accept.iter().map(|(t, s)| format!("{t}/{s}")).collect();
        let sep = if r.folds[11] { ",\r\n " } else { ", " };
        w.header(&sp(11, HeaderKind::Accept), v.join(sep).as_bytes());
    }
    if !r.supported.is_empty() {
        w.header(
            &sp(12, HeaderKind::Supported),
            r.supported.join(",").as_bytes(),
        );
    }
    if let Some(e) = &r.etag {
        w.header("SIP-If-Match", e.as_bytes());
    }
    for (n, v) in &r.extension {
        w.header(n, v.trim().as_bytes());
    }
    if r.body.is_empty() {
        w.finish();
    } else {
        w.finish_with_body("application/pidf+xml", &r.body);
    }
}

fn check_addr(parsed: NameAddr<'_>, expected: &Addr) {
    assert_eq!(
        parsed.display_name.map(<[u8]>::to_vec),
        expected.expected_display().map(String::into_bytes)
    );
    assert_eq!(parsed.tag(), expected.tag.as_deref().map(str::as_bytes));
    let uri = parsed.parse_uri().unwrap();
    let want = expected.uri.render();
    assert!(uri.equivalent(&Uri::parse(want.as_bytes()).unwrap()));
    assert_eq!(uri.user, expected.uri.user.as_deref().map(str::as_bytes));
    assert_eq!(uri.host, expected.uri.host.as_bytes());
    assert_eq!(uri.port, expected.uri.port);
}

fn check_request(r: &Req, m: &Message<'_, '_>) {
    assert_eq!(m.method().unwrap().as_bytes(), r.method.as_bytes());
    assert_eq!(m.request_uri().unwrap(), r.ruri.render().as_bytes());
    let ruri = Uri::parse_request_uri(m.request_uri().unwrap()).unwrap();
    assert_eq!(ruri.host, r.ruri.host.as_bytes());
    let vias: Vec<Via> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), r.vias.len());
    for (v, (host, port, branch, rport)) in vias.iter().zip(&r.vias) {
        assert_eq!(v.host, host.as_bytes());
        assert_eq!(v.port, *port);
        assert_eq!(v.branch.unwrap(), format!("z9hG4bK{branch}").as_bytes());
        assert_eq!(v.rport, rport.then_some(None));
        assert_eq!(v.transport, b"UDP");
    }
    check_addr(m.from().unwrap(), &r.from);
    check_addr(m.to().unwrap(), &r.to);
    assert_eq!(m.call_id().unwrap(), r.call_id.as_bytes());
    let cseq = m.cseq().unwrap();
    assert_eq!(
        (cseq.seq, cseq.method.as_bytes()),
        (r.cseq, r.method.as_bytes())
    );
    assert_eq!(m.max_forwards().unwrap(), r.max_forwards);
    let contacts: Vec<Contact> = m.contacts().map(Result::unwrap).collect();
    assert_eq!(contacts.len(), r.contacts.len());
    for (c, (a, exp)) in contacts.iter().zip(&r.contacts) {
        check_addr(c.addr, a);
        assert_eq!(c.expires, *exp);
    }
    assert_eq!(m.expires().unwrap(), r.expires);
    match (&r.event, m.event().unwrap()) {
        (None, None) => {}
        (Some((pkg, template, id)), Some(e)) => {
            assert_eq!(e.package, pkg.as_bytes());
            assert_eq!(e.template, template.as_deref().map(str::as_bytes));
            assert_eq!(e.id, id.as_deref().map(str::as_bytes));
        }
        (want, got) => panic!("event {want:?} vs {got:?}"),
    }
    let accept: Vec<MediaType> = m.accept().map(Result::unwrap).collect();
    assert_eq!(accept.len(), r.accept.len());
    for (a, (t, s)) in accept.iter().zip(&r.accept) {
        assert!(a.matches(format!("{t}/{s}").as_bytes()));
    }
    let supported: Vec<&[u8]> = m.supported().collect();
    assert_eq!(
        supported,
        r.supported.iter().map(|s| s.as_bytes()).collect::<Vec<_>>()
    );
    assert_eq!(m.sip_if_match(), r.etag.as_deref().map(str::as_bytes));
    for (n, v) in &r.extension {
        assert!(m
            .values_named(n.as_bytes())
            .any(|x| x == v.trim().as_bytes()));
    }
    assert_eq!(m.body, &r.body[..]);
    assert_eq!(m.content_length().unwrap(), Some(r.body.len()));
    if !r.body.is_empty() {
        assert!(m
            .content_type()
            .unwrap()
            .unwrap()
            .matches(b"application/pidf+xml"));
    }
    m.validate().unwrap();
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn request_build_parse_compare(r in request(), stream in any::<bool>()) {
        let mut out = Vec::new();
        build(&r, &mut out);
        let mut slots = [Header::EMPTY; 64];
        let framing = if stream { Framing::Stream } else { Framing::Datagram };
        let m = parse(&out, &mut slots, framing, &Limits::default()).unwrap().complete().unwrap();
        prop_assert_eq!(m.len, out.len());
        check_request(&r, &m);
        // `parse_head` reads the same head and stops where the body starts; with the
        // datagram cut short of its body, `parse` fails and `parse_head` still reads it.
        let mut hslots = [Header::EMPTY; 64];
        let h = parse_head(&out, &mut hslots, &Limits::default()).unwrap();
        prop_assert_eq!(h.headers, m.headers);
        prop_assert_eq!(h.len + m.body.len(), m.len);
        prop_assert!(h.body.is_empty());
        let (head_len, nheaders, has_body) = (h.len, h.headers.len(), !m.body.is_empty());
        if has_body {
            let cut = &out[..out.len() - 1];
            prop_assert_eq!(parse(cut, &mut slots, Framing::Datagram, &Limits::default()).err(),
                            Some(ParseError::BodyTooShort));
            let h = parse_head(cut, &mut hslots, &Limits::default()).unwrap();
            prop_assert_eq!((h.len, h.headers.len()), (head_len, nheaders));
            prop_assert!(h.via().is_ok() && h.call_id().is_ok() && h.cseq().is_ok());
        }
    }

    #[test]
    fn response_build_parse_compare(
        r in request(),
        code in 100u16..700,
        to_tag in proptest::option::of("[a-zA-Z0-9]{1,12}"),
        expires in proptest::option::of(any::<u32>()),
        body in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let mut req_buf = Vec::new();
        build(&r, &mut req_buf);
        let mut slots = [Header::EMPTY; 64];
        let req = parse(&req_buf, &mut slots, Framing::Datagram, &Limits::default()).unwrap().complete().unwrap();
        let mut out = Vec::new();
        let mut w = ResponseWriter::new(&mut out, &req, code, reason_phrase(code), to_tag.as_deref().map(str::as_bytes));
        if let Some(e) = expires {
            w.header_u32("Expires", e);
        }
        if body.is_empty() { w.finish() } else { w.finish_with_body("text/plain", &body) }
        let mut rslots = [Header::EMPTY; 64];
        let resp = parse(&out, &mut rslots, Framing::Stream, &Limits::default()).unwrap().complete().unwrap();
        prop_assert_eq!(resp.len, out.len());
        prop_assert_eq!(resp.status(), Some(code));
        prop_assert_eq!(resp.reason().unwrap(), reason_phrase(code).as_bytes());
        prop_assert_eq!(resp.vias().map(|v| v.unwrap()).collect::<Vec<_>>(), req.vias().map(|v| v.unwrap()).collect::<Vec<_>>());
        prop_assert_eq!(resp.from().unwrap(), req.from().unwrap());
        prop_assert_eq!(resp.call_id().unwrap(), req.call_id().unwrap());
        prop_assert_eq!(resp.cseq().unwrap(), req.cseq().unwrap());
        let (rto, qto) = (resp.to().unwrap(), req.to().unwrap());
        prop_assert_eq!(rto.uri, qto.uri);
        let want_tag = r.to.tag.as_deref().or(to_tag.as_deref()).map(str::as_bytes);
        prop_assert_eq!(rto.tag(), want_tag);
        prop_assert_eq!(resp.expires().unwrap(), expires);
        prop_assert_eq!(resp.body, &body[..]);
        prop_assert_eq!(resp.contacts().count(), 0);
        resp.validate().unwrap();
    }
}
