//! RFC 4475 torture tests. Each valid message (§3.1.1) must parse and yield the fields the RFC
//! describes; each invalid one (§3.1.2, plus `insuf`, `mcl01`, `multi01` of §3.3) must be
//! rejected by `parse` or flagged by the accessor the RFC points at. The comment on each test
//! says what the RFC wants a server to do and how herald gets there.
//! The bytes live in `testdata/rfc4475/*.dat`, written by `testdata/rfc4475/gen.py`.

use sip_parser::*;

macro_rules! dat {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/rfc4475/",
            $name,
            ".dat"
        ))
    };
}

fn parse_ok<'h, 'b>(buf: &'b [u8], slots: &'h mut [Header<'b>]) -> Message<'h, 'b> {
    match parse(buf, slots, Framing::Datagram, &Limits::default()) {
        Ok(Status::Complete(m)) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn parse_err(buf: &[u8]) -> ParseError {
    let mut slots = [Header::EMPTY; 64];
    match parse(buf, &mut slots, Framing::Datagram, &Limits::default()) {
        Err(e) => e,
        Ok(s) => panic!("expected an error, got {:?}", s.complete().map(|m| m.start)),
    }
}

fn uri<'b>(n: &NameAddr<'b>) -> Uri<'b> {
    n.parse_uri().unwrap()
}

// ------------------------------------------------------------------ §3.1.1 valid messages

/// §3.1.1.1 wsinv: folding everywhere, LWS around separators, mixed compact/long names,
/// escaped quotes. Must be accepted as well formed.
#[test]
fn wsinv() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("wsinv"), &mut slots);
    m.validate().unwrap();
    assert_eq!(m.method(), Some(Method::Invite));
    assert_eq!(
        m.request_uri(),
        Some(&b"sip:vivekg@chair-dnrc.example.com;unknownparam"[..])
    );
    let ruri = Uri::parse_request_uri(m.request_uri().unwrap()).unwrap();
    assert_eq!(ruri.param(b"unknownparam"), Some(None));
    let to = m.to().unwrap();
    assert_eq!(to.uri, b"sip:vivekg@chair-dnrc.example.com");
    assert_eq!(to.tag(), Some(&b"1918181833n"[..]));
    let from = m.from().unwrap();
    assert_eq!(from.display_name, Some(&br#"J Rosenberg \\\""#[..]));
    assert_eq!(from.tag(), Some(&b"98asjd8"[..]));
    assert_eq!(uri(&from).user, Some(&b"jdrosen"[..]));
    assert_eq!(m.max_forwards().unwrap(), Some(68));
    assert_eq!(m.call_id().unwrap(), b"wsinv.ndaksdj@192.0.2.1");
    assert_eq!(m.content_length().unwrap(), Some(150));
    assert_eq!(m.body.len(), 150);
    assert_eq!(
        m.cseq().unwrap(),
        CSeq {
            seq: 9,
            method: Method::Invite
        }
    );
    let vias: Vec<Via> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(
        (vias[0].transport, vias[0].host),
        (&b"UDP"[..], &b"192.0.2.2"[..])
    );
    assert_eq!(vias[0].branch, Some(&b"390skdjuw"[..]));
    assert!(!vias[0].has_rfc3261_branch());
    assert_eq!(
        (vias[1].transport, vias[1].host),
        (&b"TCP"[..], &b"spindle.example.com"[..])
    );
    assert_eq!(vias[1].branch, Some(&b"z9hG4bK9ikj8"[..]));
    assert_eq!(
        (vias[2].transport, vias[2].host),
        (&b"UDP"[..], &b"192.168.255.111"[..])
    );
    assert_eq!(vias[2].branch, Some(&b"z9hG4bK30239"[..]));
    assert_eq!(m.header(HeaderKind::Subject), Some(&b""[..]));
    assert_eq!(
        m.header_named(b"NewFangledHeader"),
        Some(&b"newfangled value\r\n continued newfangled value"[..])
    );
    assert_eq!(
        m.header_named(b"UnknownHeaderWithUnusualValue"),
        Some(&b";;,,;;,;"[..])
    );
    assert!(m
        .content_type()
        .unwrap()
        .unwrap()
        .matches(b"application/sdp"));
    let route = m.routes().next().unwrap().unwrap();
    assert_eq!(
        route.uri,
        b"sip:services.example.com;lr;unknownwith=value;unknown-no-value"
    );
    let contacts: Vec<Contact> = m.contacts().map(Result::unwrap).collect();
    assert_eq!(contacts.len(), 1);
    let c = contacts[0].addr;
    assert_eq!(c.display_name, Some(&br#"Quoted string \"\""#[..]));
    assert_eq!(c.param(b"newparam"), Some(Some(&b"newvalue"[..])));
    assert_eq!(c.param(b"secondparam"), Some(None));
    assert_eq!(c.param(b"q"), Some(Some(&b"0.33"[..])));
}

/// §3.1.1.2 intmeth: unusual but legal characters in method, URI, branch, display names,
/// Call-ID, extension header (with quoted NUL/BEL/DEL and UTF-8). Accept; an endpoint
/// answers 501 to the unknown method.
#[test]
fn intmeth() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("intmeth"), &mut slots);
    m.validate().unwrap();
    let method = b"!interesting-Method0123456789_*+`.%indeed'~";
    assert_eq!(m.method(), Some(Method::Other(method)));
    let ruri = Uri::parse_request_uri(m.request_uri().unwrap()).unwrap();
    assert_eq!(
        ruri.user,
        Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..])
    );
    assert_eq!(
        ruri.password,
        Some(&b"&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"[..])
    );
    assert_eq!(ruri.host, b"example.com");
    assert_eq!(m.via().unwrap().branch, Some(&b"z9hG4bK-.!%66*_+`'~"[..]));
    let to = m.to().unwrap();
    assert_eq!(
        to.display_name,
        Some(&b"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f"[..])
    );
    assert_eq!(
        uri(&to).user,
        Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..])
    );
    let from = m.from().unwrap();
    assert_eq!(
        from.display_name,
        Some(&b"token1~` token2'+_ token3*%!.-"[..])
    );
    assert_eq!(from.tag(), Some(&b"_token~1'+`*%!-."[..]));
    assert_eq!(
        from.param(b"fromParam''~+*_!.-%"),
        Some(Some("работающий".as_bytes()))
    );
    assert_eq!(
        m.call_id().unwrap(),
        b"intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    );
    assert_eq!(
        m.cseq().unwrap(),
        CSeq {
            seq: 139122385,
            method: Method::Other(method)
        }
    );
    assert_eq!(m.max_forwards().unwrap(), Some(255));
    assert_eq!(
        m.header_named(b"extensionHeader-!.%*+_`'~"),
        Some("\u{feff}大停電".as_bytes())
    );
}

/// §3.1.1.3 esc01: %HH escapes in URIs; accept, and treat escapes as the encoded character
/// when comparing (but `value%41` stays distinct from `valueA`: no recursive unescaping).
#[test]
fn esc01() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("esc01"), &mut slots);
    m.validate().unwrap();
    let ruri = Uri::parse(m.request_uri().unwrap()).unwrap();
    assert_eq!(ruri.user, Some(&b"sips%3Auser%40example.com"[..]));
    assert_eq!(ruri.host, b"example.net");
    let to = uri(&m.to().unwrap());
    assert!(to.equivalent(&Uri::parse(b"sip:user@example.com").unwrap()));
    assert_eq!(Aor::from_uri(&to).as_bytes(), b"sip:user@example.com");
    let from = uri(&m.from().unwrap());
    assert_eq!(from.user, Some(&b"I%20have%20spaces"[..]));
    assert_eq!(
        Aor::from_uri(&from).as_bytes(),
        b"sip:I%20have%20spaces@example.net"
    );
    let c = uri(&m.contact().unwrap().unwrap().addr);
    assert!(
        c.equivalent(&Uri::parse(b"sip:caller@host5.example.net;lr;name=value%25%34%31").unwrap())
    );
    assert!(!c.equivalent(&Uri::parse(b"sip:caller@host5.example.net;lr;name=valueA").unwrap()));
    assert!(m
        .content_type()
        .unwrap()
        .unwrap()
        .matches(b"application/sdp"));
    assert_eq!(m.body.len(), 150);
}

/// §3.1.1.4 escnull: %00 in user parts; accept and keep the full user (two distinct contacts).
#[test]
fn escnull() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("escnull"), &mut slots);
    m.validate().unwrap();
    let to = uri(&m.to().unwrap());
    assert_eq!(to.user, Some(&b"null-%00-null"[..]));
    assert_eq!(
        Aor::from_uri(&to).as_bytes(),
        b"sip:null-%00-null@example.com"
    );
    let contacts: Vec<Uri> = m.contacts().map(|c| uri(&c.unwrap().addr)).collect();
    assert_eq!(contacts.len(), 2);
    assert_eq!(contacts[0].user, Some(&b"%00"[..]));
    assert_eq!(contacts[1].user, Some(&b"%00%00"[..]));
    assert!(!contacts[0].equivalent(&contacts[1]));
    assert_eq!(
        Aor::from_uri(&contacts[0]).as_bytes(),
        b"sip:%00@host5.example.com"
    );
    assert_eq!(m.content_length().unwrap(), Some(0));
}

/// §3.1.1.5 esc02: % is not an escape in method, display name, branch or header name.
/// Unknown method (not REGISTER, endpoint answers 501); two Contact values, not three.
#[test]
fn esc02() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("esc02"), &mut slots);
    m.validate().unwrap();
    assert_eq!(m.method(), Some(Method::Other(b"RE%47IST%45R")));
    assert_ne!(m.method(), Some(Method::Register));
    assert_eq!(m.to().unwrap().display_name, Some(&b"%Z%45"[..]));
    assert_eq!(m.from().unwrap().display_name, Some(&b"%Z%45"[..]));
    assert_eq!(m.via().unwrap().branch, Some(&b"z9hG4bK209%fzsnel234"[..]));
    assert_eq!(m.contacts().count(), 2);
    assert_eq!(
        m.header_named(b"C%6Fntact"),
        Some(&b"<sip:alias2@host2.example.com>"[..])
    );
}

/// §3.1.1.6 lwsdisp: no LWS between display name and `<`; accept.
#[test]
fn lwsdisp() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("lwsdisp"), &mut slots);
    m.validate().unwrap();
    let from = m.from().unwrap();
    assert_eq!(from.display_name, Some(&b"caller"[..]));
    assert_eq!(from.uri, b"sip:caller@example.com");
    assert_eq!(from.tag(), Some(&b"323"[..]));
}

/// §3.1.1.7 longreq: very long values and 34 Via header fields; accept.
#[test]
fn longreq() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("longreq"), &mut slots);
    m.validate().unwrap();
    let to = m.to().unwrap();
    assert!(to
        .display_name
        .unwrap()
        .starts_with(b"I have a user name of extremeextreme"));
    let to_uri = uri(&to);
    assert_eq!(to_uri.port, Some(6000));
    assert_eq!(to_uri.param(b"longparam"), None);
    let long_name = [&b"longparam"[..], &b"name".repeat(25)].concat();
    assert_eq!(to_uri.param(&long_name), Some(Some(&b"shortvalue"[..])));
    let from = m.from().unwrap();
    let tag = [&b"12"[..], &b"982".repeat(50), b"424"].concat();
    assert_eq!(from.tag(), Some(&tag[..]));
    assert_eq!(uri(&from).user.unwrap().len(), 5 * 23);
    let call_id = [&b"longreq.one"[..], &b"really".repeat(20), b"longcallid"].concat();
    assert_eq!(m.call_id().unwrap(), &call_id[..]);
    let vias: Vec<Via> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 34);
    assert_eq!(vias[0].host, b"sip33.example.com");
    assert_eq!(vias[32].host, b"sip1.example.com");
    assert_eq!(vias[33].received, Some(&b"192.0.2.5"[..]));
    assert_eq!(vias[33].branch.unwrap().len(), 4 + 4 * 50 + 11);
    assert_eq!(m.contacts().count(), 1);
    assert_eq!(m.body.len(), 150);
}

/// §3.1.1.8 dblreq: a REGISTER datagram followed by bytes that look like an INVITE;
/// handle the REGISTER (Content-Length 0) and ignore the rest (RFC 3261 §18.3).
#[test]
fn dblreq() {
    let buf = dat!("dblreq");
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(buf, &mut slots);
    m.validate().unwrap();
    assert_eq!(m.method(), Some(Method::Register));
    assert!(m.body.is_empty());
    assert!(m.len < buf.len());
    assert!(buf[m.len..].starts_with(b"INVITE sip:joe@example.com"));
    assert_eq!(
        m.call_id().unwrap(),
        b"dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    );
}

/// §3.1.1.9 semiuri: `;` inside the user part of the Request-URI; accept, user is
/// `user;par=u%40example.net`.
#[test]
fn semiuri() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("semiuri"), &mut slots);
    m.validate().unwrap();
    let ruri = Uri::parse_request_uri(m.request_uri().unwrap()).unwrap();
    assert_eq!(ruri.user, Some(&b"user;par=u%40example.net"[..]));
    assert_eq!(ruri.host, b"example.com");
    assert_eq!(ruri.params, b"");
    let accept: Vec<MediaType> = m.accept().map(Result::unwrap).collect();
    assert_eq!(accept.len(), 6);
    assert!(accept[0].matches(b"application/sdp"));
    assert!(accept[5].matches(b"message/sipfrag"));
}

/// §3.1.1.10 transports: Via with UDP, SCTP, TLS, an unknown transport and TCP; accept.
#[test]
fn transports() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("transports"), &mut slots);
    m.validate().unwrap();
    let t: Vec<&[u8]> = m.vias().map(|v| v.unwrap().transport).collect();
    assert_eq!(t, vec![&b"UDP"[..], b"SCTP", b"TLS", b"UNKNOWN", b"TCP"]);
    assert_eq!(m.call_id().unwrap(), b"transports.kijh4akdnaqjkwendsasfdj");
}

/// §3.1.1.11 mpart01: multipart body whose second part is binary with NUL bytes; frame it
/// by Content-Length.
#[test]
fn mpart01() {
    let buf = dat!("mpart01");
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(buf, &mut slots);
    m.validate().unwrap();
    assert_eq!(m.method(), Some(Method::Message));
    assert_eq!(m.body.len(), 553);
    assert!(m.body.contains(&0));
    assert!(m.body.ends_with(b"--7a9cbec02ceef655--\r\n"));
    let v = m.via().unwrap();
    assert_eq!(
        (v.host, v.port, v.rport),
        (&b"127.0.0.1"[..], Some(5070), Some(None))
    );
    assert_eq!(m.header(HeaderKind::Identity).unwrap().len(), 172);
    let ct = m.content_type().unwrap().unwrap();
    assert!(ct.matches(b"multipart/mixed"));
    assert_eq!(ct.param(b"boundary"), Some(Some(&b"7a9cbec02ceef655"[..])));
    assert_eq!(
        m.header(HeaderKind::UserAgent),
        Some(&b"SIPimp.org/0.2.5 (curses)"[..])
    );
    assert_eq!(uri(&m.routes().next().unwrap().unwrap()).port, Some(5080));
}

/// §3.1.1.12 unreason: reason phrase with UTF-8; accept.
#[test]
fn unreason() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("unreason"), &mut slots);
    m.validate().unwrap();
    assert_eq!(m.status(), Some(200));
    assert_eq!(
        m.reason(),
        Some("= 2**3 * 5**2 но сто девяносто девять - простое".as_bytes())
    );
    assert_eq!(m.body.len(), 154);
}

/// §3.1.1.13 noreason: empty reason phrase after the mandatory SP; accept.
#[test]
fn noreason() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("noreason"), &mut slots);
    m.validate().unwrap();
    assert_eq!(m.status(), Some(100));
    assert_eq!(m.reason(), Some(&b""[..]));
}

// ------------------------------------------------------------------ §3.1.2 invalid messages

/// §3.1.2.1 badinv01: empty Via / Contact params. RFC: 400. Herald: `vias()`/`contact()`
/// return Malformed (validate() fails on Via).
#[test]
fn badinv01() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("badinv01"), &mut slots);
    assert_eq!(m.validate(), Err(FieldError::Malformed(HeaderKind::Via)));
    assert_eq!(m.via().err(), Some(FieldError::Malformed(HeaderKind::Via)));
    assert_eq!(
        m.contact().err(),
        Some(FieldError::Malformed(HeaderKind::Contact))
    );
}

/// §3.1.2.2 clerr: Content-Length larger than the body. RFC: 400 over UDP; over TCP wait for
/// more data. Herald: BodyTooShort (status 400) for datagrams, Partial for streams.
#[test]
fn clerr() {
    let buf = dat!("clerr");
    let e = parse_err(buf);
    assert_eq!((e, e.status_code()), (ParseError::BodyTooShort, 400));
    let mut slots = [Header::EMPTY; 64];
    assert_eq!(
        parse(buf, &mut slots, Framing::Stream, &Limits::default()),
        Ok(Status::Partial)
    );
    // What a 400 needs is readable: `parse_head` stops at the empty line.
    let mut slots = [Header::EMPTY; 64];
    let m = parse_head(buf, &mut slots, &Limits::default()).unwrap();
    assert_eq!(m.method(), Some(Method::Invite));
    assert!(m.via().is_ok() && m.call_id().is_ok() && m.cseq().is_ok());
    assert!(m.body.is_empty());
    assert_eq!(&buf[m.len - 4..m.len], b"\r\n\r\n");
}

/// §3.1.2.3 ncl: negative Content-Length. RFC: error; close a TCP connection. Herald:
/// InvalidContentLength from parse on either framing.
#[test]
fn ncl() {
    let buf = dat!("ncl");
    assert_eq!(parse_err(buf), ParseError::InvalidContentLength);
    let mut slots = [Header::EMPTY; 64];
    assert_eq!(
        parse(buf, &mut slots, Framing::Stream, &Limits::default()).err(),
        Some(ParseError::InvalidContentLength)
    );
    let mut slots = [Header::EMPTY; 64];
    let m = parse_head(buf, &mut slots, &Limits::default()).unwrap();
    assert!(m.is_request() && m.via().is_ok() && m.body.is_empty());
}

/// §3.1.2.4 scalar02: CSeq > 2^32-1, Max-Forwards > 255, Expires and contact expires
/// > 2^32-1. RFC: 400 because of CSeq. Herald: every one of those accessors is Malformed.
#[test]
fn scalar02() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("scalar02"), &mut slots);
    assert_eq!(
        m.cseq().err(),
        Some(FieldError::Malformed(HeaderKind::CSeq))
    );
    assert_eq!(m.validate(), Err(FieldError::Malformed(HeaderKind::CSeq)));
    assert_eq!(
        m.max_forwards().err(),
        Some(FieldError::Malformed(HeaderKind::MaxForwards))
    );
    assert_eq!(
        m.expires().err(),
        Some(FieldError::Malformed(HeaderKind::Expires))
    );
    assert_eq!(
        m.contact().err(),
        Some(FieldError::Malformed(HeaderKind::Contact))
    );
}

/// §3.1.2.5 scalarlg: response with CSeq > 2^32-1, huge Retry-After, 4-digit warn-code.
/// RFC: discard. Herald: `validate()` fails on CSeq so the response is dropped.
#[test]
fn scalarlg() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("scalarlg"), &mut slots);
    assert_eq!(m.status(), Some(503));
    assert_eq!(m.validate(), Err(FieldError::Malformed(HeaderKind::CSeq)));
    assert_eq!(
        m.retry_after().err(),
        Some(FieldError::Malformed(HeaderKind::RetryAfter))
    );
}

/// §3.1.2.6 quotbal: unterminated quote in the To display name. RFC: 400.
#[test]
fn quotbal() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("quotbal"), &mut slots);
    assert_eq!(m.to().err(), Some(FieldError::Malformed(HeaderKind::To)));
    assert_eq!(m.validate(), Err(FieldError::Malformed(HeaderKind::To)));
}

/// §3.1.2.7 ltgtruri: Request-URI in `<>`. RFC: 400 is reasonable. Herald: parse rejects.
#[test]
fn ltgtruri() {
    let e = parse_err(dat!("ltgtruri"));
    assert_eq!((e, e.status_code()), (ParseError::InvalidRequestUri, 400));
}

/// §3.1.2.8 lwsruri: LWS inside the Request-URI. RFC: 400. Herald: parse rejects.
#[test]
fn lwsruri() {
    assert_eq!(parse_err(dat!("lwsruri")), ParseError::InvalidRequestUri);
}

/// §3.1.2.9 lwsstart: several SP between request-line elements. RFC: may reject. Herald:
/// parse rejects (400).
#[test]
fn lwsstart() {
    assert_eq!(parse_err(dat!("lwsstart")), ParseError::InvalidRequestUri);
}

/// §3.1.2.10 trws: SP after SIP-Version. RFC: may reject. Herald: parse rejects (400).
#[test]
fn trws() {
    assert_eq!(parse_err(dat!("trws")), ParseError::InvalidStartLine);
}

/// §3.1.2.11 escruri: escaped headers in the Request-URI. RFC: 400 is acceptable. Herald:
/// `Uri::parse_request_uri` returns HeadersNotAllowed; the engine answers 400.
#[test]
fn escruri() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("escruri"), &mut slots);
    assert_eq!(
        Uri::parse_request_uri(m.request_uri().unwrap()).err(),
        Some(UriError::HeadersNotAllowed)
    );
    assert_eq!(
        Uri::parse(m.request_uri().unwrap()).unwrap().headers,
        b"Route=%3Csip:example.com%3E"
    );
}

/// §3.1.2.12 baddate: non-GMT Date. RFC: reject only if the Date matters, else ignore.
/// Herald never uses Date: the message is accepted and Date left uninterpreted.
#[test]
fn baddate() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("baddate"), &mut slots);
    m.validate().unwrap();
    assert_eq!(
        m.header_named(b"Date"),
        Some(&b"Fri, 01 Jan 2010 16:00:00 EST"[..])
    );
}

/// §3.1.2.13 regbadct: Contact URI with `?headers` not in `<>`. RFC: 400 is reasonable.
#[test]
fn regbadct() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("regbadct"), &mut slots);
    assert_eq!(
        m.contact().err(),
        Some(FieldError::Malformed(HeaderKind::Contact))
    );
}

/// §3.1.2.14 badaspec: spaces inside `< sip:... >` in To. RFC: must not break; 400 reasonable.
#[test]
fn badaspec() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("badaspec"), &mut slots);
    assert_eq!(
        m.from().unwrap().display_name,
        Some(&b"Bell, Alexander"[..])
    );
    assert_eq!(m.to().err(), Some(FieldError::Malformed(HeaderKind::To)));
    assert_eq!(m.validate(), Err(FieldError::Malformed(HeaderKind::To)));
}

/// §3.1.2.15 baddn: unquoted display names with non-token characters. RFC: 400.
#[test]
fn baddn() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("baddn"), &mut slots);
    assert_eq!(
        m.from().err(),
        Some(FieldError::Malformed(HeaderKind::From))
    );
    assert_eq!(m.to().err(), Some(FieldError::Malformed(HeaderKind::To)));
}

/// §3.1.2.16 badvers: SIP/7.0. RFC: 505 Version Not Supported.
#[test]
fn badvers() {
    let e = parse_err(dat!("badvers"));
    assert_eq!((e, e.status_code()), (ParseError::VersionNotSupported, 505));
}

/// §3.1.2.17 mismatch01: CSeq method differs from the request method. RFC: 400.
#[test]
fn mismatch01() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("mismatch01"), &mut slots);
    assert_eq!(m.validate(), Err(FieldError::Mismatch(HeaderKind::CSeq)));
}

/// §3.1.2.18 mismatch02: unknown method and mismatching CSeq. RFC: 501 preferred (400 ok).
/// Herald: the method is `Other` (engine answers 501 before validating); validate() flags it.
#[test]
fn mismatch02() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("mismatch02"), &mut slots);
    assert_eq!(m.method(), Some(Method::Other(b"NEWMETHOD")));
    assert_eq!(m.validate(), Err(FieldError::Mismatch(HeaderKind::CSeq)));
    assert_eq!(m.body.len(), 138);
}

/// §3.1.2.19 bigcode: status code 4294967301. RFC: drop. Herald: parse rejects.
#[test]
fn bigcode() {
    assert_eq!(parse_err(dat!("bigcode")), ParseError::InvalidStatusCode);
}

// ------------------------------------------------------------------ §3.3 application layer

/// §3.3 insuf: missing To, From, Call-ID, Max-Forwards. RFC: 400.
#[test]
fn insuf() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("insuf"), &mut slots);
    assert_eq!(m.validate(), Err(FieldError::Missing(HeaderKind::CallId)));
    assert_eq!(m.to().err(), Some(FieldError::Missing(HeaderKind::To)));
    assert_eq!(m.from().err(), Some(FieldError::Missing(HeaderKind::From)));
    assert_eq!(m.max_forwards(), Ok(None));
}

/// §3.3 mcl01: two different Content-Length values. RFC: 400 (framing unknowable).
#[test]
fn mcl01() {
    assert_eq!(parse_err(dat!("mcl01")), ParseError::InvalidContentLength);
}

/// §3.3 multi01: several values in single-value fields (CSeq, Call-ID, To, From,
/// Max-Forwards). RFC: 400.
#[test]
fn multi01() {
    let mut slots = [Header::EMPTY; 64];
    let m = parse_ok(dat!("multi01"), &mut slots);
    assert_eq!(m.validate(), Err(FieldError::Duplicate(HeaderKind::CSeq)));
    assert_eq!(
        m.call_id().err(),
        Some(FieldError::Duplicate(HeaderKind::CallId))
    );
    assert_eq!(m.to().err(), Some(FieldError::Duplicate(HeaderKind::To)));
    assert_eq!(
        m.from().err(),
        Some(FieldError::Duplicate(HeaderKind::From))
    );
    assert_eq!(
        m.max_forwards().err(),
        Some(FieldError::Duplicate(HeaderKind::MaxForwards))
    );
    assert_eq!(m.contacts().count(), 2);
}

/// Every torture message, cut at every length, never panics and never reads past the end.
#[test]
fn every_prefix_of_every_message_is_safe() {
    let all: &[&[u8]] = &[
        dat!("wsinv"),
        dat!("intmeth"),
        dat!("esc01"),
        dat!("escnull"),
        dat!("esc02"),
        dat!("lwsdisp"),
        dat!("longreq"),
        dat!("dblreq"),
        dat!("semiuri"),
        dat!("transports"),
        dat!("mpart01"),
        dat!("unreason"),
        dat!("noreason"),
        dat!("badinv01"),
        dat!("clerr"),
        dat!("ncl"),
        dat!("scalar02"),
        dat!("scalarlg"),
        dat!("quotbal"),
        dat!("ltgtruri"),
        dat!("lwsruri"),
        dat!("lwsstart"),
        dat!("trws"),
        dat!("escruri"),
        dat!("baddate"),
        dat!("regbadct"),
        dat!("badaspec"),
        dat!("baddn"),
        dat!("badvers"),
        dat!("mismatch01"),
        dat!("mismatch02"),
        dat!("bigcode"),
        dat!("insuf"),
        dat!("mcl01"),
        dat!("multi01"),
    ];
    for buf in all {
        for cut in 0..=buf.len() {
            for framing in [Framing::Datagram, Framing::Stream] {
                let mut slots = [Header::EMPTY; 64];
                if let Ok(Status::Complete(m)) =
                    parse(&buf[..cut], &mut slots, framing, &Limits::default())
                {
                    assert!(m.len <= cut);
                    let _ = m.validate();
                    let _ = m.contacts().count();
                    let _ = m.accept().count();
                }
            }
        }
    }
}
