//! Parser benches: (a) header indexing throughput, (b) parse + the accessors a SUBSCRIBE
//! needs, herald vs rsip on the same bytes, (c) building the 200 OK to a SUBSCRIBE.
//!
//!   cargo bench -p benches --bench parse -- --warm-up-time 1 --measurement-time 3

use std::hint::black_box;

use benches::messages;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sip_parser::{parse, Aor, Framing, Header, Limits, ResponseWriter, Status, Uri};

fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("subscribe", messages::SUBSCRIBE.to_vec()),
        ("publish_pidf", messages::publish()),
        ("notify", messages::notify()),
        ("ok_200", messages::OK_200.to_vec()),
    ]
}

/// (a) `parse` only: start line + header index + body framing.
fn index_headers(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("index_headers");
    for (name, msg) in fixtures() {
        g.throughput(Throughput::Bytes(msg.len() as u64));
        g.bench_function(name, |b| {
            let mut slots = [Header::EMPTY; 64];
            b.iter(|| {
                let r = parse(black_box(&msg), &mut slots, Framing::Datagram, &limits);
                match r {
                    Ok(Status::Complete(m)) => black_box(m.len),
                    _ => unreachable!(),
                }
            })
        });
    }
    g.finish();
}

/// What the engine reads from a SUBSCRIBE, as owned-free values.
#[derive(Debug, PartialEq)]
struct SubscribeFacts {
    aor_len: usize,
    branch_len: usize,
    from_tag_len: usize,
    to_tag: bool,
    call_id_len: usize,
    cseq: u32,
    expires: u32,
    event_len: usize,
    contact_len: usize,
    accepts: usize,
}

fn herald_subscribe<'b>(
    buf: &'b [u8],
    slots: &mut [Header<'b>],
    limits: &Limits,
) -> SubscribeFacts {
    let Ok(Status::Complete(m)) = parse(buf, slots, Framing::Datagram, limits) else {
        unreachable!()
    };
    let _method = m.method().unwrap();
    let aor = Aor::from_uri(&Uri::parse(m.request_uri().unwrap()).unwrap());
    let via = m.via().unwrap();
    let from = m.from().unwrap();
    let to = m.to().unwrap();
    let call_id = m.call_id().unwrap();
    let cseq = m.cseq().unwrap();
    let expires = m.expires().unwrap().unwrap();
    let event = m.event().unwrap().unwrap();
    let contact = m.contact().unwrap().unwrap();
    let accepts = m
        .accept()
        .filter(|a| a.as_ref().is_ok_and(|a| a.matches(b"application/pidf+xml")))
        .count();
    SubscribeFacts {
        aor_len: aor.as_bytes().len(),
        branch_len: via.branch.unwrap().len(),
        from_tag_len: from.tag().unwrap().len(),
        to_tag: to.tag().is_some(),
        call_id_len: call_id.len(),
        cseq: cseq.seq,
        expires,
        event_len: event.full_name().len(),
        contact_len: contact.addr.uri.len(),
        accepts,
    }
}

fn rsip_subscribe(buf: &[u8]) -> SubscribeFacts {
    use rsip::headers::ToTypedHeader;
    use rsip::message::HeadersExt;
    use rsip::Header as H;
    let msg = rsip::SipMessage::try_from(buf).unwrap();
    let rsip::SipMessage::Request(req) = msg else {
        unreachable!()
    };
    let _method = req.method;
    let aor = format!(
        "sip:{}@{}",
        req.uri.auth.as_ref().map(|a| a.user.as_str()).unwrap_or(""),
        req.uri.host_with_port.host
    )
    .to_ascii_lowercase();
    let via = req.via_header().unwrap().typed().unwrap();
    let from = req.from_header().unwrap().typed().unwrap();
    let to = req.to_header().unwrap().typed().unwrap();
    let call_id = req.call_id_header().unwrap().clone();
    let cseq = req.cseq_header().unwrap().typed().unwrap();
    let expires = req.expires_header().unwrap().seconds().unwrap();
    let event = req
        .headers
        .iter()
        .find_map(|h| {
            if let H::Event(e) = h {
                Some(e.clone())
            } else {
                None
            }
        })
        .unwrap();
    let contact = req.contact_header().unwrap().typed().unwrap();
    let accept = req
        .headers
        .iter()
        .find_map(|h| {
            if let H::Accept(a) = h {
                Some(a.typed().unwrap())
            } else {
                None
            }
        })
        .unwrap();
    let accepts = accept
        .0
        .iter()
        .filter(|m| m.to_string().starts_with("application/pidf+xml"))
        .count();
    use rsip::headers::UntypedHeader;
    SubscribeFacts {
        aor_len: aor.len(),
        branch_len: via.branch().unwrap().to_string().len(),
        from_tag_len: from.tag().unwrap().to_string().len(),
        to_tag: to.tag().is_some(),
        call_id_len: call_id.value().len(),
        cseq: cseq.seq,
        expires,
        event_len: event.value().len(),
        contact_len: contact.uri.to_string().len(),
        accepts,
    }
}

/// (b) parse + SUBSCRIBE accessors: herald vs rsip, same bytes, same run.
fn subscribe_accessors(c: &mut Criterion) {
    let limits = Limits::default();
    let owned = messages::subscribe_rsip_compatible();
    let buf: &'static [u8] = Box::leak(owned.into_boxed_slice());
    let mut slots = [Header::EMPTY; 64];
    let ours = herald_subscribe(buf, &mut slots, &limits);
    let theirs = rsip_subscribe(buf);
    assert_eq!(
        (ours.cseq, ours.expires, ours.to_tag, ours.accepts),
        (theirs.cseq, theirs.expires, theirs.to_tag, theirs.accepts)
    );
    assert_eq!(
        (ours.call_id_len, ours.from_tag_len),
        (theirs.call_id_len, theirs.from_tag_len)
    );
    let mut g = c.benchmark_group("subscribe_parse_and_accessors");
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.bench_function("herald", |b| {
        b.iter(|| black_box(herald_subscribe(black_box(buf), &mut slots, &limits)))
    });
    g.bench_function("rsip", |b| {
        b.iter(|| black_box(rsip_subscribe(black_box(buf))))
    });
    // The unmodified Blink SUBSCRIBE (rsip cannot parse its Contact), herald only.
    let full = messages::SUBSCRIBE;
    let mut full_slots = [Header::EMPTY; 64];
    g.bench_function("herald_blink_contact", |b| {
        b.iter(|| black_box(herald_subscribe(black_box(full), &mut full_slots, &limits)))
    });
    g.finish();
}

/// (c) 200 OK to a SUBSCRIBE into a reused buffer (request already parsed).
fn write_200_ok(c: &mut Criterion) {
    let limits = Limits::default();
    let mut slots = [Header::EMPTY; 64];
    let Ok(Status::Complete(req)) =
        parse(messages::SUBSCRIBE, &mut slots, Framing::Datagram, &limits)
    else {
        unreachable!()
    };
    let mut out = Vec::with_capacity(2048);
    let mut g = c.benchmark_group("write_response");
    g.bench_function("200_ok_to_subscribe", |b| {
        b.iter(|| {
            let mut w =
                ResponseWriter::new(&mut out, black_box(&req), 200, "OK", Some(b"hrld-7d1e3f5a"));
            w.header_u32("Expires", 600)
                .header("Contact", b"<sip:203.0.113.20:5060>");
            w.finish();
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, index_headers, subscribe_accessors, write_200_ok);
criterion_main!(benches);
