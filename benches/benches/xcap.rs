//! XCAP request handling without sockets: HTTP framing, document GET, element GET and
//! document PUT (with schema validation) through `Xcap::handle` on the in-memory store.
//! Run: `cargo bench -p benches --bench xcap`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use xcap::http::{decode, Limits};
use xcap::store::MemStore;
use xcap::{Config, Request, Xcap};

const DOC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">
  <list name="friends">
    <entry uri="sip:bob@example.com"><display-name>Bob</display-name></entry>
    <entry uri="sip:carol@example.com"><display-name>Carol</display-name></entry>
    <entry uri="sip:dave@example.com"><display-name>Dave</display-name></entry>
  </list>
</resource-lists>
"#;
const PATH: &str = "/xcap-root/resource-lists/users/sip:alice@example.com/index";

fn req<'a>(method: &'a str, target: &'a str, body: &'a [u8]) -> Request<'a> {
    Request {
        method,
        target,
        headers: &[],
        body,
        trusted: true,
    }
}

fn bench(c: &mut Criterion) {
    let cfg = Config::new("http://127.0.0.1:8080/xcap-root", "example.com", b"k").unwrap();
    let mut x = Xcap::new(cfg);
    let mut store = MemStore::new();
    let put = x.handle(&req("PUT", PATH, DOC.as_bytes()), 0, &mut store, &());
    assert_eq!(put.response.status, 201);

    let mut g = c.benchmark_group("xcap");
    g.throughput(Throughput::Elements(1));
    let raw = format!("GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Digest username=\"alice\"\r\nUser-Agent: bench\r\n\r\n");
    g.bench_function("http_decode_get", |b| {
        b.iter(|| black_box(decode(black_box(raw.as_bytes()), &Limits::default()).unwrap()))
    });
    g.bench_function("get_document", |b| {
        b.iter(|| {
            let o = x.handle(&req("GET", PATH, b""), 0, &mut store, &());
            black_box(o.response.body.len())
        })
    });
    let el = format!(
        "{PATH}/~~/resource-lists/list[@name=\"friends\"]/entry[@uri=\"sip:dave@example.com\"]"
    );
    g.bench_function("get_element", |b| {
        b.iter(|| {
            let o = x.handle(&req("GET", &el, b""), 0, &mut store, &());
            black_box(o.response.body.len())
        })
    });
    g.bench_function("put_document_validated", |b| {
        b.iter(|| {
            let o = x.handle(&req("PUT", PATH, DOC.as_bytes()), 0, &mut store, &());
            assert_eq!(o.response.status, 200);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
