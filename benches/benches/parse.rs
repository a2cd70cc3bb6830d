//! Parser benches: (a) header indexing throughput, (b) parse + the accessors a SUBSCRIBE
//! needs, herald vs rsip on the same bytes, (c) building the 200 OK to a SUBSCRIBE.
//!
//!   cargo bench -p benches --bench parse -- --warm-up-time 1 --measurement-time 3

use std::hint::black_box;

use benches::messages;
use benches::subscribe_facts::{herald_subscribe, rsip_subscribe};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sip_parser::{parse, Framing, Header, Limits, ResponseWriter, Status};

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
