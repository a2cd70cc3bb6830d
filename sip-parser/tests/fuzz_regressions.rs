//! Inputs found by (or written for) the cargo-fuzz targets in `sip-parser/fuzz`. Every file in
//! `testdata/fuzz-regressions/` is replayed through the same checks as the `parse_message`
//! and `parse_uri` targets: drop a crash artifact there and it becomes a regression test.
//! No crash was found in the runs recorded in the crate docs; the inline cases below are the
//! hostile shapes the targets were seeded with.

use sip_parser::*;

/// What `fuzz_targets/parse_message.rs` does, minus libFuzzer.
fn exercise_message(data: &[u8]) {
    for framing in [Framing::Datagram, Framing::Stream] {
        let mut slots = [Header::EMPTY; 64];
        let Ok(Status::Complete(m)) = parse(data, &mut slots, framing, &Limits::default()) else {
            continue;
        };
        assert!(m.len <= data.len());
        for h in m.headers {
            let _ = m.values(h.kind).count();
            let _ = m.header_named(h.name);
        }
        let _ = (
            m.via(),
            m.vias().count(),
            m.from(),
            m.to(),
            m.call_id(),
            m.cseq(),
            m.max_forwards(),
        );
        let _ = (
            m.contact(),
            m.contacts().count(),
            m.expires(),
            m.min_expires(),
            m.event(),
        );
        let _ = (
            m.accept().count(),
            m.content_type(),
            m.content_length(),
            m.subscription_state(),
        );
        let _ = (
            m.routes().count(),
            m.record_routes().count(),
            m.retry_after(),
            m.validate(),
        );
        if let Some(ruri) = m.request_uri() {
            if let Ok(u) = Uri::parse(ruri) {
                assert!(u.equivalent(&u));
                let _ = Aor::from_uri(&u);
            }
            let mut out = Vec::new();
            ResponseWriter::new(&mut out, &m, 200, "OK", Some(b"t")).finish();
            let big = Limits {
                max_message_len: usize::MAX,
                max_headers: usize::MAX,
                max_header_len: usize::MAX,
            };
            let mut rslots = vec![Header::EMPTY; m.headers.len() + 8];
            let r = parse(&out, &mut rslots, Framing::Stream, &big)
                .unwrap()
                .complete()
                .unwrap();
            assert_eq!(r.len, out.len());
        }
    }
}

/// What `fuzz_targets/parse_uri.rs` does.
fn exercise_uri(data: &[u8]) {
    if let Ok(u) = Uri::parse(data) {
        assert!(u.equivalent(&u));
        assert_eq!(Aor::parse(data).ok(), Some(Aor::from_uri(&u)));
    }
    if let Some(nul) = data.iter().position(|&b| b == 0) {
        if let (Ok(x), Ok(y)) = (Uri::parse(&data[..nul]), Uri::parse(&data[nul + 1..])) {
            assert_eq!(x.equivalent(&y), y.equivalent(&x));
            if x.equivalent(&y) {
                assert_eq!(Aor::from_uri(&x), Aor::from_uri(&y));
            }
        }
    }
}

#[test]
fn replay_saved_inputs() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/fuzz-regressions");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        exercise_message(&data);
        exercise_uri(&data);
    }
}

#[test]
fn hostile_shapes() {
    let cases: &[&[u8]] = &[
        b"",
        b"\n",
        b"\r\n\r\n\r\n",
        b"A B SIP/2.0\n\n",
        b"A B SIP/2.0\n \n\n",
        b"A B SIP/2.0\nv:\n\n",
        b"A B SIP/2.0\nv: ,,,,\nm: *,*\nt: \"\n\n",
        b"A B SIP/2.0\nf: \"\\\nt: <\nl: 00000000000000000000000000\n\n",
        b"A B SIP/2.0\nl: 4294967296\n\n",
        b"A B SIP/2.0\nl: 18446744073709551616\n\n",
        b"SIP/2.0 200\n\n",
        b"SIP/2.0 200\r",
        b"SIP/2.0 999 x\n\n",
        b"A sip:[ SIP/2.0\n\n",
        b"A sip:a@[::1 SIP/2.0\nv: SIP/2.0/UDP [\n\n",
        b"A B SIP/2.0\nv: SIP/2.0/UDP h;rport=99999;received\nv: SIP/2.0/UDP h(comment\n\n",
        b"A B SIP/2.0\no: a.;id\no: .\nc: a/b;c=\"\n\n",
        b"A B SIP/2.0\nSubscription-State: x;expires=;reason\nt: a <sip:a>;tag;tag=1\n\n",
        b"A B SIP/2.0\nt: <sip:a>;tag\n\n",
        b"sip:a@b;a=1;a=2",
        b"tel:1;a=1;a=2\0tel:1;a=1",
        b"sip:a@b;A=1\0sip:a@b;a=1;a=2",
        b"sip:%61@b\0sip:a@B",
        b"sip:%3a@b\0sip:%3A@b",
        b"sips:a:@b?&&",
    ];
    for c in cases {
        exercise_message(c);
        exercise_uri(c);
    }
}
