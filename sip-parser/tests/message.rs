//! Whole-message tests: framing, start line, header indexing and every typed accessor.

use sip_parser::*;

const SUBSCRIBE: &[u8] = b"SUBSCRIBE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bKabc\r\n\
Via: SIP/2.0/TCP proxy.example.com;branch=z9hG4bKdef, SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bKghi\r\n\
Max-Forwards: 70\r\n\
From: \"Alice, A.\" <sip:alice@example.com>;tag=1234\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: abc@192.0.2.10\r\n\
CSeq: 1 SUBSCRIBE\r\n\
Contact: <sip:alice@192.0.2.10:5060;transport=udp>;expires=3600\r\n\
Expires: 3600\r\n\
Event: presence\r\n\
Accept: application/pidf+xml, application/cpim-pidf+xml;q=0.5\r\n\
Supported: eventlist, path\r\n\
Allow-Events: presence, presence.winfo\r\n\
Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Route: <sip:p3.example.com;lr>\r\n\
Content-Length: 0\r\n\r\n";

fn parse_dgram(buf: &[u8]) -> Result<(Vec<Header<'_>>, usize), ParseError> {
    let mut slots = [Header::EMPTY; 64];
    match parse(buf, &mut slots, Framing::Datagram, &Limits::default())? {
        Status::Complete(m) => Ok((m.headers.to_vec(), m.len)),
        Status::Partial => unreachable!("datagrams are never partial"),
    }
}

macro_rules! with_msg {
    ($buf:expr, $m:ident, $body:block) => {{
        let mut slots = [Header::EMPTY; 64];
        let status = parse($buf, &mut slots, Framing::Datagram, &Limits::default()).expect("parse");
        let Status::Complete($m) = status else {
            panic!("partial")
        };
        $body
    }};
}

#[test]
fn subscribe_accessors() {
    with_msg!(SUBSCRIBE, m, {
        assert!(m.is_request());
        assert_eq!(m.method(), Some(Method::Subscribe));
        assert_eq!(m.request_uri(), Some(&b"sip:bob@example.com"[..]));
        assert_eq!(m.status(), None);
        assert_eq!(m.len, SUBSCRIBE.len());
        assert!(m.body.is_empty());
        let via = m.via().unwrap();
        assert_eq!(via.host, b"192.0.2.10");
        assert_eq!(via.branch, Some(&b"z9hG4bKabc"[..]));
        assert_eq!(via.rport, Some(None));
        let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
        assert_eq!(vias.len(), 3);
        assert_eq!(vias[1].host, b"proxy.example.com");
        assert_eq!(vias[2].host, b"[2001:db8::1]");
        assert_eq!(vias[2].port, Some(5070));
        let from = m.from().unwrap();
        assert_eq!(from.display_name, Some(&b"Alice, A."[..]));
        assert_eq!(from.tag(), Some(&b"1234"[..]));
        let to = m.to().unwrap();
        assert_eq!(to.tag(), None);
        assert_eq!(
            Aor::from_uri(&to.parse_uri().unwrap()).as_bytes(),
            b"sip:bob@example.com"
        );
        assert_eq!(m.call_id().unwrap(), b"abc@192.0.2.10");
        let cseq = m.cseq().unwrap();
        assert_eq!((cseq.seq, cseq.method), (1, Method::Subscribe));
        assert_eq!(m.max_forwards().unwrap(), Some(70));
        let c = m.contact().unwrap().unwrap();
        assert_eq!(c.expires, Some(3600));
        assert_eq!(c.addr.uri, b"sip:alice@192.0.2.10:5060;transport=udp");
        assert_eq!(m.expires().unwrap(), Some(3600));
        assert_eq!(m.min_expires().unwrap(), None);
        let e = m.event().unwrap().unwrap();
        assert_eq!(e.package, b"presence");
        let acc: Vec<_> = m.accept().map(Result::unwrap).collect();
        assert_eq!(acc.len(), 2);
        assert!(acc[0].matches(b"application/pidf+xml"));
        assert_eq!(acc[1].param(b"q"), Some(Some(&b"0.5"[..])));
        assert_eq!(
            m.supported().collect::<Vec<_>>(),
            vec![&b"eventlist"[..], b"path"]
        );
        assert_eq!(
            m.allow_events().collect::<Vec<_>>(),
            vec![&b"presence"[..], b"presence.winfo"]
        );
        let routes: Vec<_> = m.routes().map(|r| r.unwrap().uri).collect();
        assert_eq!(
            routes,
            vec![
                &b"sip:p1.example.com;lr"[..],
                b"sip:p2.example.com;lr",
                b"sip:p3.example.com;lr"
            ]
        );
        assert_eq!(m.record_routes().count(), 0);
        assert_eq!(m.require().count(), 0);
        assert_eq!(m.content_length().unwrap(), Some(0));
        assert_eq!(m.content_type().unwrap(), None);
        assert_eq!(m.sip_etag(), None);
        assert_eq!(m.subscription_state().unwrap(), None);
        assert_eq!(
            m.header(HeaderKind::Via),
            Some(&b"SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bKabc"[..])
        );
        assert_eq!(m.header_named(b"call-id"), Some(&b"abc@192.0.2.10"[..]));
        assert_eq!(m.header_named(b"i"), Some(&b"abc@192.0.2.10"[..]));
    });
}

#[test]
fn compact_forms_and_case() {
    let msg = b"NOTIFY sip:alice@192.0.2.10:5060 SIP/2.0\r\n\
v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
f: <sip:bob@example.com>;tag=x\r\n\
T: <sip:alice@example.com>;tag=1234\r\n\
I: n1\r\n\
cseq: 7 NOTIFY\r\n\
m: <sip:10.0.0.1>\r\n\
o: presence;id=5\r\n\
SUBSCRIPTION-STATE: active;expires=599\r\n\
c: application/pidf+xml\r\n\
k: eventlist\r\n\
u: presence\r\n\
X-Custom: hello\r\n\
l: 5\r\n\r\nhello";
    with_msg!(msg, m, {
        assert_eq!(m.method(), Some(Method::Notify));
        assert_eq!(m.via().unwrap().branch, Some(&b"z9hG4bK1"[..]));
        assert_eq!(m.from().unwrap().tag(), Some(&b"x"[..]));
        assert_eq!(m.to().unwrap().tag(), Some(&b"1234"[..]));
        assert_eq!(m.call_id().unwrap(), b"n1");
        assert_eq!(m.cseq().unwrap().seq, 7);
        assert!(m.contact().unwrap().is_some());
        let e = m.event().unwrap().unwrap();
        assert_eq!(e.id, Some(&b"5"[..]));
        let s = m.subscription_state().unwrap().unwrap();
        assert_eq!((s.state, s.expires), (SubState::Active, Some(599)));
        assert!(m
            .content_type()
            .unwrap()
            .unwrap()
            .matches(b"application/pidf+xml"));
        assert_eq!(m.supported().next(), Some(&b"eventlist"[..]));
        assert_eq!(m.allow_events().next(), Some(&b"presence"[..]));
        assert_eq!(m.header_named(b"x-custom"), Some(&b"hello"[..]));
        assert_eq!(m.values(HeaderKind::Other).count(), 1);
        assert_eq!(m.body, b"hello");
        assert_eq!(m.content_length().unwrap(), Some(5));
    });
}

#[test]
fn line_folding() {
    let msg = b"SUBSCRIBE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP\r\n  192.0.2.10\r\n\t;branch=z9hG4bKf\r\n\
From: \"Alice\"\r\n <sip:alice@example.com>\r\n ;tag=9\r\n\
To:\r\n <sip:bob@example.com>\r\n\
Call-ID: f1\r\n\
CSeq: 1\r\n SUBSCRIBE\r\n\
Event: presence\r\n ;id=1\r\n\
Expires:\r\n 60\r\n\
Content-Length: 0\r\n\r\n";
    with_msg!(msg, m, {
        assert_eq!(m.headers.len(), 8);
        let via = m.via().unwrap();
        assert_eq!(
            (via.host, via.branch),
            (&b"192.0.2.10"[..], Some(&b"z9hG4bKf"[..]))
        );
        let from = m.from().unwrap();
        assert_eq!(from.display_name, Some(&b"Alice"[..]));
        assert_eq!(from.tag(), Some(&b"9"[..]));
        assert_eq!(m.to().unwrap().uri, b"sip:bob@example.com");
        assert_eq!(
            m.header(HeaderKind::To),
            Some(&b"<sip:bob@example.com>"[..])
        );
        assert_eq!(m.cseq().unwrap().method, Method::Subscribe);
        assert_eq!(m.event().unwrap().unwrap().id, Some(&b"1"[..]));
        assert_eq!(m.expires().unwrap(), Some(60));
    });
}

#[test]
fn response_start_line() {
    let msg =
        b"SIP/2.0 202 Accepted\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n";
    with_msg!(msg, m, {
        assert!(!m.is_request());
        assert_eq!(m.status(), Some(202));
        assert_eq!(m.reason(), Some(&b"Accepted"[..]));
        assert_eq!(m.method(), None);
        assert_eq!(m.request_uri(), None);
    });
    with_msg!(b"SIP/2.0 100 \r\n\r\n", m, {
        assert_eq!(m.reason(), Some(&b""[..]));
    });
}

#[test]
fn start_line_errors() {
    let cases: &[(&[u8], ParseError)] = &[
        (b"SIP/3.0 200 OK\r\n\r\n", ParseError::VersionNotSupported),
        (
            b"INVITE sip:a@b SIP/7.0\r\n\r\n",
            ParseError::VersionNotSupported,
        ),
        (
            b"INVITE sip:a@b HTTP/1.1\r\n\r\n",
            ParseError::InvalidStartLine,
        ),
        (
            b"INVITE  sip:a@b SIP/2.0\r\n\r\n",
            ParseError::InvalidRequestUri,
        ),
        (
            b"INVITE sip:a@b  SIP/2.0\r\n\r\n",
            ParseError::InvalidRequestUri,
        ),
        (b"INV<TE sip:a@b SIP/2.0\r\n\r\n", ParseError::InvalidMethod),
        (b"SIP/2.0 99 Low\r\n\r\n", ParseError::InvalidStatusCode),
        (b"SIP/2.0 2000 OK\r\n\r\n", ParseError::InvalidStatusCode),
        (b"SIP/2.0 OK\r\n\r\n", ParseError::InvalidStatusCode),
        (b"garbage\r\n\r\n", ParseError::InvalidStartLine),
        (b"\r\n\r\n", ParseError::Empty),
        (b"", ParseError::Empty),
        (
            b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n",
            ParseError::UnterminatedHeaders,
        ),
        (
            b"OPTIONS sip:a@b SIP/2.0\r\n no header\r\n\r\n",
            ParseError::InvalidHeaderLine,
        ),
        (
            b"OPTIONS sip:a@b SIP/2.0\r\nNoColon\r\n\r\n",
            ParseError::InvalidHeaderLine,
        ),
        (
            b"OPTIONS sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n",
            ParseError::InvalidHeaderName,
        ),
        (
            b"OPTIONS sip:a@b SIP/2.0\r\n: x\r\n\r\n",
            ParseError::InvalidHeaderName,
        ),
        (
            b"OPTIONS sip:a@b SIP/2.0\r\nl: x\r\n\r\n",
            ParseError::InvalidContentLength,
        ),
        (
            b"OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nl: 2\r\n\r\nab",
            ParseError::InvalidContentLength,
        ),
        (
            b"OPTIONS sip:a@b SIP/2.0\r\nl: 10\r\n\r\nab",
            ParseError::BodyTooShort,
        ),
    ];
    for (buf, err) in cases {
        assert_eq!(
            parse_dgram(buf).err(),
            Some(*err),
            "{}",
            String::from_utf8_lossy(buf)
        );
    }
}

#[test]
fn datagram_body_framing() {
    // No Content-Length: the rest of the datagram; shorter Content-Length truncates.
    with_msg!(b"MESSAGE sip:a@b SIP/2.0\r\n\r\nbody", m, {
        assert_eq!(m.body, b"body");
    });
    with_msg!(
        b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 2\r\n\r\nbody",
        m,
        {
            assert_eq!((m.body, m.len), (&b"bo"[..], 48));
        }
    );
    // Bare LF line ends are tolerated.
    with_msg!(b"OPTIONS sip:a@b SIP/2.0\nCall-ID: x\n\n", m, {
        assert_eq!(m.call_id().unwrap(), b"x");
    });
}

#[test]
fn stream_framing() {
    let msg = b"\r\n\r\nNOTIFY sip:a@b SIP/2.0\r\nContent-Length: 4\r\n\r\nbodyNEXT";
    let limits = Limits::default();
    for cut in 0..msg.len() - 4 {
        let mut slots = [Header::EMPTY; 8];
        let r = parse(&msg[..cut], &mut slots, Framing::Stream, &limits).unwrap();
        assert_eq!(r.complete().map(|m| m.len), None, "cut {cut}");
    }
    let mut slots = [Header::EMPTY; 8];
    let m = parse(msg, &mut slots, Framing::Stream, &limits)
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!(m.len, msg.len() - 4);
    assert_eq!(m.body, b"body");
    let mut slots = [Header::EMPTY; 8];
    assert_eq!(
        parse(
            b"OPTIONS sip:a@b SIP/2.0\r\n\r\n",
            &mut slots,
            Framing::Stream,
            &limits
        )
        .err(),
        Some(ParseError::MissingContentLength)
    );
}

#[test]
fn limits_enforced() {
    let small = Limits {
        max_message_len: 64,
        max_headers: 2,
        max_header_len: 20,
    };
    let mut slots = [Header::EMPTY; 8];
    let long = [b'x'; 100];
    let mut msg = b"OPTIONS sip:a@b SIP/2.0\r\n\r\n".to_vec();
    msg.extend_from_slice(&long);
    assert_eq!(
        parse(&msg, &mut slots, Framing::Datagram, &small).err(),
        Some(ParseError::TooLarge)
    );
    let msg = b"OPTIONS sip:a@b SIP/2.0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(
        parse(msg, &mut slots, Framing::Datagram, &small).err(),
        Some(ParseError::TooManyHeaders)
    );
    let mut two = [Header::EMPTY; 2];
    assert_eq!(
        parse(msg, &mut two, Framing::Datagram, &Limits::default()).err(),
        Some(ParseError::TooManyHeaders)
    );
    let msg = b"OPTIONS sip:a@b SIP/2.0\r\nA: 0123456789012345678901\r\n\r\n";
    assert_eq!(
        parse(msg, &mut slots, Framing::Datagram, &small).err(),
        Some(ParseError::HeaderTooLong)
    );
    let msg = b"OPTIONS sip:a@b SIP/2.0\r\nA: 0123456789\r\n 0123456789\r\n\r\n";
    assert_eq!(
        parse(msg, &mut slots, Framing::Datagram, &small).err(),
        Some(ParseError::HeaderTooLong)
    );
    // Stream: header section never ending within the limit.
    let msg = [b'A'; 100];
    assert_eq!(
        parse(&msg, &mut slots, Framing::Stream, &small).err(),
        Some(ParseError::TooLarge)
    );
    let msg = b"OPTIONS sip:a@b SIP/2.0\r\nl: 100\r\n\r\n";
    assert_eq!(
        parse(msg, &mut slots, Framing::Stream, &small).err(),
        Some(ParseError::TooLarge)
    );
    assert_eq!(ParseError::TooLarge.status_code(), 513);
    assert_eq!(ParseError::VersionNotSupported.status_code(), 505);
}

#[test]
fn field_errors_name_the_header() {
    let msg = b"SUBSCRIBE sip:a@b SIP/2.0\r\n\
Via: SIP/2.0/UDP\r\nFrom: <sip:a@b\r\nCall-ID: a b\r\nCSeq: x SUBSCRIBE\r\nMax-Forwards: 256\r\n\
Expires: -1\r\nEvent: ;x\r\nContent-Type: text\r\nSubscription-State: active;expires=z\r\n\
Contact: <sip:a@b>;expires=x\r\nAccept: x\r\nRoute: <sip:a\r\n\r\n";
    with_msg!(msg, m, {
        use HeaderKind as K;
        assert_eq!(m.via().err(), Some(FieldError::Malformed(K::Via)));
        assert_eq!(m.from().err(), Some(FieldError::Malformed(K::From)));
        assert_eq!(m.to().err(), Some(FieldError::Missing(K::To)));
        assert_eq!(m.call_id().err(), Some(FieldError::Malformed(K::CallId)));
        assert_eq!(m.cseq().err(), Some(FieldError::Malformed(K::CSeq)));
        assert_eq!(
            m.max_forwards().err(),
            Some(FieldError::Malformed(K::MaxForwards))
        );
        assert_eq!(m.expires().err(), Some(FieldError::Malformed(K::Expires)));
        assert_eq!(m.event().err(), Some(FieldError::Malformed(K::Event)));
        assert_eq!(
            m.content_type().err(),
            Some(FieldError::Malformed(K::ContentType))
        );
        assert_eq!(
            m.subscription_state().err(),
            Some(FieldError::Malformed(K::SubscriptionState))
        );
        assert_eq!(m.contact().err(), Some(FieldError::Malformed(K::Contact)));
        assert_eq!(
            m.accept().next(),
            Some(Err(FieldError::Malformed(K::Accept)))
        );
        assert_eq!(
            m.routes().next(),
            Some(Err(FieldError::Malformed(K::Route)))
        );
        assert_eq!(
            FieldError::Malformed(K::CSeq).to_string(),
            "malformed CSeq header"
        );
        assert_eq!(FieldError::Missing(K::To).to_string(), "missing To header");
    });
    let msg = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: a\r\ni: b\r\nCSeq: 1 OPTIONS\r\nCSeq: 1 OPTIONS\r\n\r\n";
    with_msg!(msg, m, {
        assert_eq!(
            m.call_id().err(),
            Some(FieldError::Duplicate(HeaderKind::CallId))
        );
        assert_eq!(m.cseq().unwrap().seq, 1);
        assert_eq!(m.via().err(), Some(FieldError::Missing(HeaderKind::Via)));
    });
}

#[test]
fn response_writer_copies_dialog_headers() {
    with_msg!(SUBSCRIBE, req, {
        let mut out = b"stale".to_vec();
        let mut w = ResponseWriter::new(&mut out, &req, 200, reason_phrase(200), Some(b"srv1"));
        w.header_u32("Expires", 3600)
            .header("Contact", b"<sip:herald@192.0.2.1>");
        w.finish();
        let mut slots = [Header::EMPTY; 32];
        let r = parse(&out, &mut slots, Framing::Stream, &Limits::default())
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(r.len, out.len());
        assert_eq!(r.status(), Some(200));
        assert_eq!(r.reason(), Some(&b"OK"[..]));
        assert_eq!(r.vias().count(), 3);
        assert_eq!(r.via().unwrap().branch, Some(&b"z9hG4bKabc"[..]));
        assert_eq!(r.from().unwrap(), req.from().unwrap());
        assert_eq!(r.to().unwrap().tag(), Some(&b"srv1"[..]));
        assert_eq!(r.call_id().unwrap(), req.call_id().unwrap());
        assert_eq!(r.cseq().unwrap(), req.cseq().unwrap());
        assert_eq!(r.expires().unwrap(), Some(3600));
        assert_eq!(r.content_length().unwrap(), Some(0));
        assert_eq!(r.routes().count(), 0);
    });
    // An existing To tag is kept, not doubled.
    let msg = b"SUBSCRIBE sip:a@b SIP/2.0\r\nTo: <sip:a@b>;tag=old\r\nCSeq: 2 SUBSCRIBE\r\n\r\n";
    with_msg!(msg, req, {
        let mut out = Vec::new();
        ResponseWriter::new(&mut out, &req, 489, "Bad Event", Some(b"new"))
            .finish_with_body("text/plain", b"no");
        let mut slots = [Header::EMPTY; 32];
        let r = parse(&out, &mut slots, Framing::Stream, &Limits::default())
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(r.to().unwrap().tag(), Some(&b"old"[..]));
        assert_eq!(r.body, b"no");
        assert!(r.content_type().unwrap().unwrap().matches(b"text/plain"));
        // `append` keeps what the buffer holds and adds the same response after it; `new`
        // starts the buffer over.
        let alone = out.clone();
        let mut batch = b"earlier".to_vec();
        ResponseWriter::append(&mut batch, &req, 489, "Bad Event", Some(b"new"))
            .finish_with_body("text/plain", b"no");
        assert_eq!(&batch[..7], b"earlier");
        assert_eq!(&batch[7..], &alone[..]);
        ResponseWriter::new(&mut batch, &req, 489, "Bad Event", Some(b"new"))
            .finish_with_body("text/plain", b"no");
        assert_eq!(batch, alone);
    });
}

#[test]
fn request_writer_builds_notify() {
    let mut out = Vec::new();
    let body = b"<?xml version=\"1.0\"?><presence/>";
    let mut w = RequestWriter::new(&mut out, Method::Notify, b"sip:alice@192.0.2.10:5060");
    w.header("Via", b"SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKn1")
        .header("From", b"<sip:bob@example.com>;tag=srv1")
        .header("To", b"<sip:alice@example.com>;tag=1234")
        .header("Call-ID", b"abc")
        .cseq(5, Method::Notify)
        .header_u32("Max-Forwards", 70)
        .header("Event", b"presence")
        .header("Subscription-State", b"active;expires=3599");
    w.finish_with_body("application/pidf+xml", body);
    let mut slots = [Header::EMPTY; 32];
    let m = parse(&out, &mut slots, Framing::Stream, &Limits::default())
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!(m.method(), Some(Method::Notify));
    assert_eq!(m.request_uri(), Some(&b"sip:alice@192.0.2.10:5060"[..]));
    assert_eq!(
        m.cseq().unwrap(),
        CSeq {
            seq: 5,
            method: Method::Notify
        }
    );
    assert_eq!(m.max_forwards().unwrap(), Some(70));
    assert_eq!(m.subscription_state().unwrap().unwrap().expires, Some(3599));
    assert_eq!(m.body, body);
    assert_eq!(m.len, out.len());
}

#[test]
fn reason_phrases() {
    assert_eq!(reason_phrase(489), "Bad Event");
    assert_eq!(reason_phrase(412), "Conditional Request Failed");
    assert_eq!(reason_phrase(299), "Success");
    assert_eq!(reason_phrase(0), "Global Failure");
}
