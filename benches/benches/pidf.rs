//! PIDF handling of one PUBLISH, without the rest of the core: validation (once per
//! accepted body) and aggregation of a presentity's publications (once per change, shared
//! by every watcher's NOTIFY), for one device, three devices binding the same prefixes,
//! and three devices binding one prefix to different namespaces (each re-declared on its
//! children). Run: `cargo bench -p benches --bench pidf`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use server::core::pidf::{aggregate, validate, PidfIndex};
use std::hint::black_box;

/// What Blink publishes for one device: a tuple with a note, an RPID person with
/// activities and a device element (~1 KB).
fn device(n: usize, caps_prefix: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" xmlns:{caps_prefix}="urn:ietf:params:xml:ns:pidf:caps" entity="sip:alice@example.com">
  <tuple id="t{n}">
    <status><basic>open</basic></status>
    <{caps_prefix}:servcaps><{caps_prefix}:audio>true</{caps_prefix}:audio><{caps_prefix}:message>true</{caps_prefix}:message></{caps_prefix}:servcaps>
    <contact priority="0.8">sip:alice@10.0.0.{n}:5060</contact>
    <note xml:lang="en">At my desk, device {n}</note>
    <timestamp>2026-11-23T21:00:00Z</timestamp>
  </tuple>
  <dm:person id="p{n}">
    <rpid:activities><rpid:on-the-phone/></rpid:activities>
    <rpid:mood><rpid:happy/></rpid:mood>
    <dm:note>In a call</dm:note>
  </dm:person>
  <dm:device id="d{n}"><dm:deviceID>urn:uuid:00000000-0000-0000-0000-00000000000{n}</dm:deviceID></dm:device>
</presence>"#
    )
}

fn bench(c: &mut Criterion) {
    let one = device(1, "caps");
    let mut g = c.benchmark_group("pidf");
    g.throughput(Throughput::Bytes(one.len() as u64));
    g.bench_function("validate_1k", |b| {
        b.iter(|| validate(black_box(one.as_bytes())).unwrap())
    });
    g.throughput(Throughput::Elements(1));
    let same: Vec<String> = (1..=3).map(|n| device(n, "caps")).collect();
    // `same`: three devices binding the same prefixes. `clash`: all three bind `c`, the
    // first to caps, the others to CIPID, so their children get `xmlns:c` declared again.
    let clash: Vec<String> = (1..=3)
        .map(|n| {
            let d = device(n, "c");
            if n == 1 {
                d
            } else {
                d.replace(
                    "urn:ietf:params:xml:ns:pidf:caps",
                    "urn:ietf:params:xml:ns:pidf:cipid",
                )
            }
        })
        .collect();
    for (name, docs) in [
        ("aggregate_1", &same[..1]),
        ("aggregate_3", &same[..]),
        ("aggregate_3_rebind", &clash[..]),
    ] {
        let idx: Vec<PidfIndex> = docs
            .iter()
            .map(|d| validate(d.as_bytes()).unwrap())
            .collect();
        let pairs: Vec<(&[u8], &PidfIndex)> = docs.iter().map(|d| d.as_bytes()).zip(&idx).collect();
        let mut out = Vec::new();
        g.bench_function(name, |b| {
            b.iter(|| {
                aggregate(black_box(&pairs), &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
