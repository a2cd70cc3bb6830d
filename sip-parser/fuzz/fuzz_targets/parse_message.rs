//! Parses arbitrary bytes as a datagram and as a stream (and with `parse_head`), calls every
//! accessor, builds a response with the writer and checks the writer's output parses back with
//! the same dialog identifiers. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_parser::*;

fuzz_target!(|data: &[u8]| {
    // `parse_head` (what a stateless 400 for broken body framing reads) reads what `parse`
    // does up to the empty line: where both succeed, the same headers, ending where the body
    // starts.
    let mut head_slots = [Header::EMPTY; 64];
    if let Ok(h) = parse_head(data, &mut head_slots, &Limits::default()) {
        assert!(h.body.is_empty() && h.len <= data.len());
        exercise(&h);
        let mut slots = [Header::EMPTY; 64];
        if let Ok(Status::Complete(m)) =
            parse(data, &mut slots, Framing::Datagram, &Limits::default())
        {
            assert_eq!(h.headers, m.headers);
            assert_eq!(h.len + m.body.len(), m.len);
        }
    }
    for framing in [Framing::Datagram, Framing::Stream] {
        let mut slots = [Header::EMPTY; 64];
        let Ok(Status::Complete(m)) = parse(data, &mut slots, framing, &Limits::default()) else {
            continue;
        };
        assert!(m.len <= data.len());
        exercise(&m);
        check_typed_lists(&m);
        if m.is_request() {
            check_response_writer(&m);
        }
    }
});

fn exercise(m: &Message<'_, '_>) {
    let _ = (m.is_request(), m.method(), m.status(), m.reason());
    if let Some(ruri) = m.request_uri() {
        if let Ok(u) = Uri::parse(ruri) {
            let _ = Aor::from_uri(&u);
        }
        let _ = Uri::parse_request_uri(ruri);
    }
    for h in m.headers {
        let _ = m.values(h.kind).count();
        let _ = m.header_named(h.name);
    }
    let _ = m.via().map(|v| {
        (
            v.host_ip(),
            v.received_ip(),
            v.param(b"maddr"),
            v.has_rfc3261_branch(),
        )
    });
    for v in m.vias() {
        let _ = v;
    }
    for n in [m.from(), m.to()].into_iter().flatten() {
        let _ = (n.tag(), n.param(b"x"));
        if let Ok(u) = n.parse_uri() {
            let _ = Aor::from_uri(&u);
            assert!(u.equivalent(&u));
        }
    }
    let _ = (
        m.call_id(),
        m.cseq(),
        m.max_forwards(),
        m.expires(),
        m.min_expires(),
    );
    let _ = (
        m.contact(),
        m.contacts().count(),
        m.event()
            .map(|e| e.map(|e| (e.full_name(), e.has_param(b"sla")))),
    );
    for a in m.accept().flatten() {
        let _ = (
            a.matches(b"application/pidf+xml"),
            a.accepts(b"application/pidf+xml"),
        );
    }
    let _ = (
        m.content_type(),
        m.content_length(),
        m.sip_etag(),
        m.sip_if_match(),
        m.retry_after(),
    );
    let _ = m.subscription_state();
    let _ = (m.routes().count(), m.record_routes().count());
    let _ = (
        m.require().count(),
        m.supported().count(),
        m.allow_events().count(),
        m.allow().count(),
    );
    let _ = (
        m.unsupported().count(),
        m.proxy_require().count(),
        m.validate(),
    );
}

/// The typed list accessors parse elements in place; they must agree exactly with splitting
/// at top-level commas (`values`) and parsing each element with the public full parsers.
fn check_typed_lists(m: &Message<'_, '_>) {
    fn split<'b, T: PartialEq + core::fmt::Debug>(
        m: &Message<'_, 'b>,
        kind: HeaderKind,
        parse: fn(&'b [u8]) -> Option<T>,
        fast: Vec<Result<T, FieldError>>,
    ) {
        let slow: Vec<_> = m
            .values(kind)
            .map(|v| parse(v).ok_or(FieldError::Malformed(kind)))
            .collect();
        assert_eq!(fast, slow, "{kind}");
    }
    split(m, HeaderKind::Via, Via::parse, m.vias().collect());
    split(
        m,
        HeaderKind::Contact,
        Contact::parse,
        m.contacts().collect(),
    );
    split(m, HeaderKind::Route, NameAddr::parse, m.routes().collect());
    split(
        m,
        HeaderKind::RecordRoute,
        NameAddr::parse,
        m.record_routes().collect(),
    );
    split(
        m,
        HeaderKind::Accept,
        MediaType::parse,
        m.accept().collect(),
    );
    for (kind, got) in [(HeaderKind::From, m.from()), (HeaderKind::To, m.to())] {
        if let Some(v) = m.header(kind) {
            if let Ok(n) = got {
                assert_eq!(Some(n), NameAddr::parse(v));
                for name in [&b"tag"[..], b"x", b"lr"] {
                    let it = Params::new(n.params)
                        .find(|(p, _)| p.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v);
                    assert_eq!(n.param(name), it);
                }
            } else if got == Err(FieldError::Malformed(kind)) {
                assert_eq!(NameAddr::parse(v), None);
            }
        }
    }
}

fn check_response_writer(req: &Message<'_, '_>) {
    let mut out = Vec::new();
    let mut w = ResponseWriter::new(&mut out, req, 200, reason_phrase(200), Some(b"fuzztag"));
    w.header_u32("Expires", 600)
        .header("Contact", b"<sip:herald@127.0.0.1>");
    w.finish_with_body("application/pidf+xml", b"<presence/>");
    let big = Limits {
        max_message_len: usize::MAX,
        max_headers: usize::MAX,
        max_header_len: usize::MAX,
    };
    let mut slots = vec![Header::EMPTY; req.headers.len() + 8];
    let resp = match parse(&out, &mut slots, Framing::Stream, &big) {
        Ok(Status::Complete(r)) => r,
        other => panic!(
            "writer output does not parse: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(resp.len, out.len());
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.body, b"<presence/>");
    assert_eq!(
        resp.values(HeaderKind::Via).count(),
        req.values(HeaderKind::Via).count()
    );
    assert_eq!(resp.call_id().ok(), req.call_id().ok());
    assert_eq!(resp.cseq().ok(), req.cseq().ok());
    assert_eq!(resp.from().ok(), req.from().ok());
    if let (Ok(to), Ok(rto)) = (req.to(), resp.to()) {
        if to.param(b"tag").is_none() {
            assert_eq!(rto.tag(), Some(&b"fuzztag"[..]));
        } else {
            assert_eq!(rto.tag(), to.tag());
        }
    }
}
