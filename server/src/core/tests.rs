//! Scenario tests of the whole core through its public sans-IO interface.

use super::*;
use std::net::SocketAddr;

const PIDF_A: &str = "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:bob@example.com\"><tuple id=\"a\"><status><basic>open</basic></status><note>A</note></tuple></presence>";
const PIDF_B: &str = "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:bob@example.com\"><tuple id=\"b\"><status><basic>closed</basic></status><note>B</note></tuple></presence>";

struct H {
    core: Core,
    now: Instant,
    out: Vec<u8>,
    n: u32,
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 2], port))
}

fn udp(port: u16) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr(port),
        conn: None,
    }
}

fn hdr<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn body(msg: &str) -> &str {
    msg.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

fn code(msg: &str) -> u16 {
    msg.strip_prefix("SIP/2.0 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn to_tag(msg: &str) -> String {
    hdr(msg, "To")
        .unwrap()
        .split(";tag=")
        .nth(1)
        .unwrap()
        .to_string()
}

impl H {
    fn new(cfg: Config) -> H {
        H {
            core: Core::new(cfg, ShardId(0), 1, 42, Instant(1_000_000)),
            now: Instant(1_000_000),
            out: Vec::new(),
            n: 0,
        }
    }

    fn send(&mut self, from: Peer, msg: &str) {
        self.core.handle_message(self.now, from, msg.as_bytes());
    }

    fn drain(&mut self) -> Vec<(Peer, String)> {
        let mut v = Vec::new();
        self.out.clear();
        while let Some(t) = self.core.poll_transmit(&mut self.out) {
            v.push((
                t.dst,
                String::from_utf8(self.out[t.offset..t.offset + t.len].to_vec()).unwrap(),
            ));
        }
        self.core.check_invariants().unwrap();
        v
    }

    fn advance(&mut self, ms: u64) {
        let end = self.now.add_millis(ms);
        while let Some(t) = self.core.poll_timeout().filter(|t| *t <= end) {
            self.now = self.now.max(t);
            self.core.handle_timeout(self.now);
        }
        self.now = end;
    }

    fn branch(&mut self) -> String {
        self.n += 1;
        format!("z9hG4bKt{}", self.n)
    }

    fn subscribe(&mut self, extra: &str, to_tag: Option<&str>, cseq: u32) -> String {
        let b = self.branch();
        let tt = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        format!(
            "SUBSCRIBE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2:5070;branch={b}\r\nMax-Forwards: 70\r\n\
             From: <sip:alice@example.com>;tag=al1\r\nTo: <sip:bob@example.com>{tt}\r\nCall-ID: call-1\r\n\
             CSeq: {cseq} SUBSCRIBE\r\nContact: <sip:alice@10.0.0.2:5070>\r\n{extra}Content-Length: 0\r\n\r\n"
        )
    }

    fn publish(&mut self, extra: &str, body: &str, cseq: u32) -> String {
        let b = self.branch();
        let ct = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/pidf+xml\r\n".into()
        };
        format!(
            "PUBLISH sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.3:5080;branch={b}\r\nMax-Forwards: 70\r\n\
             From: <sip:bob@example.com>;tag=b1\r\nTo: <sip:bob@example.com>\r\nCall-ID: pub-1\r\n\
             CSeq: {cseq} PUBLISH\r\nEvent: presence\r\n{extra}{ct}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn answer(&mut self, notify: &str, code: u16) -> String {
        let mut r = format!("SIP/2.0 {code} X\r\n");
        for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
            r.push_str(&format!("{h}: {}\r\n", hdr(notify, h).unwrap()));
        }
        r.push_str("Content-Length: 0\r\n\r\n");
        r
    }
}

fn sub_ok(h: &mut H, extra: &str) -> (String, String) {
    let s = h.subscribe(extra, None, 1);
    h.send(udp(5070), &s);
    let out = h.drain();
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(code(&out[0].1), 200, "{}", out[0].1);
    (out[0].1.clone(), out[1].1.clone())
}

#[test]
fn subscribe_gets_200_then_notify_following_the_dialog() {
    let mut h = H::new(Config::default());
    let (ok, notify) = sub_ok(
        &mut h,
        "Event: presence;id=7\r\nExpires: 600\r\nRecord-Route: <sip:p1;lr>, <sip:p2;lr>\r\n",
    );
    let tag = to_tag(&ok);
    assert!(tags::Token::decode(tag.as_bytes()).is_some());
    assert_eq!(hdr(&ok, "Expires"), Some("600"));
    assert_eq!(hdr(&ok, "Contact"), Some("<sip:127.0.0.1:5060>"));
    assert!(
        notify.starts_with("NOTIFY sip:alice@10.0.0.2:5070 SIP/2.0\r\n"),
        "{notify}"
    );
    assert_eq!(
        hdr(&notify, "From"),
        Some(format!("<sip:bob@example.com>;tag={tag}").as_str())
    );
    assert_eq!(hdr(&notify, "To"), Some("<sip:alice@example.com>;tag=al1"));
    assert_eq!(hdr(&notify, "Call-ID"), Some("call-1"));
    assert_eq!(hdr(&notify, "CSeq"), Some("1 NOTIFY"));
    assert_eq!(hdr(&notify, "Event"), Some("presence;id=7"));
    assert_eq!(
        hdr(&notify, "Subscription-State"),
        Some("active;expires=600")
    );
    assert_eq!(hdr(&notify, "Route"), Some("<sip:p1;lr>, <sip:p2;lr>"));
    assert_eq!(hdr(&notify, "Max-Forwards"), Some("70"));
    assert_eq!(hdr(&notify, "Contact"), Some("<sip:127.0.0.1:5060>"));
    assert!(hdr(&notify, "Via").unwrap().contains(";branch=z9hG4bK"));
    assert_eq!(hdr(&notify, "Content-Length"), Some("0"));
    assert_eq!(h.core.stats().subscriptions, 1);
}

#[test]
fn subscribe_refusals() {
    let mut h = H::new(Config::default());
    let s = h.subscribe("Event: dialog-nope\r\n", None, 1);
    h.send(udp(5070), &s);
    let r = h.drain().remove(0).1;
    assert_eq!(code(&r), 489);
    assert_eq!(hdr(&r, "Allow-Events"), Some("presence"));
    let s = h.subscribe("Event: presence\r\nExpires: 5\r\n", None, 1);
    h.send(udp(5070), &s);
    let r = h.drain().remove(0).1;
    assert_eq!((code(&r), hdr(&r, "Min-Expires")), (423, Some("60")));
    let s = h.subscribe("Event: presence\r\nExpires: 99999\r\n", None, 1);
    h.send(udp(5070), &s);
    let out = h.drain();
    assert_eq!(hdr(&out[0].1, "Expires"), Some("3600"));
    let s = h.subscribe("Event: presence\r\n", Some("nosuchtag"), 2);
    h.send(udp(5070), &s);
    assert_eq!(code(&h.drain()[0].1), 481);
    // Each refusal counted by its code (and in tx_4xx), for /stats.
    let st = h.core.stats();
    assert_eq!((st.tx_489, st.tx_423, st.tx_481, st.tx_4xx), (1, 1, 1, 3));
    let cfg = Config {
        local_domains: vec![b"other.org".to_vec()],
        ..Config::default()
    };
    let mut h = H::new(cfg);
    let s = h.subscribe("Event: presence\r\n", None, 1);
    h.send(udp(5070), &s);
    assert_eq!(code(&h.drain()[0].1), 403);
}

/// RFC 3856 §6.2: an Accept, when present, must admit PIDF; otherwise 406 naming it, and no
/// dialog. Wildcards, parameters, several headers and `q` are honoured.
#[test]
fn subscribe_accept_must_admit_pidf() {
    let mut h = H::new(Config::default());
    for refused in [
        "Accept: application/xpidf+xml\r\n",
        "Accept: text/*, application/cpim-pidf+xml\r\n",
        "Accept: application/pidf+xml;q=0, application/xpidf+xml\r\n",
        "Accept: application/pidf+xml;q=0.000\r\n",
        "Accept:\r\n",
    ] {
        let s = h.subscribe(&format!("Event: presence\r\n{refused}"), None, 1);
        h.send(udp(5070), &s);
        let out = h.drain();
        assert_eq!(out.len(), 1, "{refused}: {out:?}");
        let r = &out[0].1;
        assert!(
            r.starts_with("SIP/2.0 406 Not Acceptable\r\n"),
            "{refused}: {r}"
        );
        assert_eq!(hdr(r, "Accept"), Some("application/pidf+xml"), "{refused}");
    }
    assert_eq!(h.core.stats().subscriptions, 0);
    assert_eq!((h.core.stats().tx_406, h.core.stats().tx_4xx), (5, 5));
    let s = h.subscribe(
        "Event: presence\r\nAccept: pidf, application/pidf+xml\r\n",
        None,
        1,
    );
    h.send(udp(5070), &s);
    assert_eq!(code(&h.drain()[0].1), 400, "malformed media range");
    for accepted in [
        "Accept: application/pidf+xml\r\n",
        "Accept: Application/PIDF+XML;q=0.8\r\n",
        "Accept: application/xpidf+xml\r\nAccept: application/pidf+xml\r\n",
        "Accept: multipart/related;type=\"application/rlmi+xml\", application/*;q=0.1\r\n",
        "Accept: */*\r\n",
        "",
    ] {
        let s = h.subscribe(&format!("Event: presence\r\n{accepted}"), None, 1);
        h.send(udp(5070), &s);
        let out = h.drain();
        assert_eq!(code(&out[0].1), 200, "{accepted}: {out:?}");
    }
    // `--check-accept=false`: PIDF for everyone, as Kamailio and OpenSIPS serve it.
    let mut h = H::new(Config {
        check_accept: false,
        ..Config::default()
    });
    let s = h.subscribe(
        "Event: presence\r\nAccept: application/xpidf+xml\r\n",
        None,
        1,
    );
    h.send(udp(5070), &s);
    assert_eq!(code(&h.drain()[0].1), 200);
}

/// Every NOTIFY of a dialog carries its Contact as Request-URI: a Contact that is not a SIP
/// URI is refused (found by the `core_messages` fuzz target: a NOTIFY that did not parse).
#[test]
fn subscribe_needs_a_sip_contact() {
    let mut h = H::new(Config::default());
    let good = "Contact: <sip:alice@10.0.0.2:5070>";
    for bad in [
        "Contact: \u{2cc}:w@10.0.0.1:5060>",
        "Contact: sip:w@10.0.0.1:5060>",
        "Contact: <tel:+15551234>",
        "Contact: <sip:>",
        "Contact: *",
    ] {
        let s = h
            .subscribe("Event: presence\r\n", None, 1)
            .replace(good, bad);
        h.send(udp(5070), &s);
        let r = h.drain().remove(0).1;
        assert_eq!(code(&r), 400, "{bad}: {r}");
        assert!(r.contains("Contact"), "{r}");
    }
    // A refresh with a bad Contact is refused and the dialog keeps its own.
    let (ok, notify) = sub_ok(&mut h, "Event: presence\r\n");
    let tag = to_tag(&ok);
    let a = h.answer(&notify, 200);
    h.send(udp(5070), &a);
    h.drain();
    let s = h
        .subscribe("Event: presence\r\n", Some(&tag), 2)
        .replace(good, "Contact: sip:x@10.0.0.9>");
    h.send(udp(5070), &s);
    assert_eq!(code(&h.drain()[0].1), 400);
    let s = h.subscribe("Event: presence\r\n", Some(&tag), 3);
    h.send(udp(5070), &s);
    let out = h.drain();
    assert_eq!(code(&out[0].1), 200);
    assert!(
        out[1]
            .1
            .starts_with("NOTIFY sip:alice@10.0.0.2:5070 SIP/2.0"),
        "{}",
        out[1].1
    );
}

#[test]
fn retransmitted_subscribe_is_absorbed() {
    let mut h = H::new(Config::default());
    let s = h.subscribe("Event: presence\r\n", None, 1);
    h.send(udp(5070), &s);
    let first = h.drain();
    h.send(udp(5070), &s);
    let again = h.drain();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1, first[0].1);
    assert_eq!(h.core.stats().subscriptions, 1);
    assert_eq!(h.core.stats().rx_retransmissions, 1);
}

#[test]
fn publish_lifecycle_notifies_watchers() {
    let mut h = H::new(Config::default());
    let (_, n1) = sub_ok(&mut h, "Event: presence\r\n");
    let a = h.answer(&n1, 200);
    h.send(udp(5070), &a);
    assert!(h.drain().is_empty());

    let p = h.publish("Expires: 120\r\n", PIDF_A, 1);
    h.send(udp(5080), &p);
    let out = h.drain();
    assert_eq!(code(&out[0].1), 200);
    let etag1 = hdr(&out[0].1, "SIP-ETag").unwrap().to_string();
    assert_eq!(hdr(&out[0].1, "Expires"), Some("120"));
    let n2 = &out[1].1;
    assert_eq!(hdr(n2, "CSeq"), Some("2 NOTIFY"));
    assert_eq!(hdr(n2, "Content-Type"), Some("application/pidf+xml"));
    assert_eq!(body(n2), PIDF_A);
    let a = h.answer(n2, 200);
    h.send(udp(5070), &a);

    // Refresh: new ETag, nobody notified.
    let p = h.publish(&format!("SIP-If-Match: {etag1}\r\nExpires: 120\r\n"), "", 2);
    h.send(udp(5080), &p);
    let out = h.drain();
    assert_eq!(out.len(), 1);
    let etag2 = hdr(&out[0].1, "SIP-ETag").unwrap().to_string();
    assert_ne!(etag1, etag2);
    // The old ETag is gone.
    let p = h.publish(&format!("SIP-If-Match: {etag1}\r\n"), "", 3);
    h.send(udp(5080), &p);
    assert_eq!(code(&h.drain()[0].1), 412);

    // Second publication aggregates, newest first.
    let p = h.publish("", PIDF_B, 4);
    h.send(udp(5080), &p);
    let out = h.drain();
    let etag_b = hdr(&out[0].1, "SIP-ETag").unwrap().to_string();
    let agg = body(&out[1].1);
    assert!(
        agg.find("<note>B</note>").unwrap() < agg.find("<note>A</note>").unwrap(),
        "{agg}"
    );
    let a = h.answer(&out[1].1, 200);
    h.send(udp(5070), &a);

    // Modify A: it becomes newest.
    let p = h.publish(
        &format!("SIP-If-Match: {etag2}\r\n"),
        &PIDF_A.replace("open", "busy"),
        5,
    );
    h.send(udp(5080), &p);
    let out = h.drain();
    let etag3 = hdr(&out[0].1, "SIP-ETag").unwrap().to_string();
    let agg = body(&out[1].1);
    assert!(
        agg.contains("busy")
            && agg.find("<note>A</note>").unwrap() < agg.find("<note>B</note>").unwrap()
    );
    let a = h.answer(&out[1].1, 200);
    h.send(udp(5070), &a);

    // Remove both: the last NOTIFY has no body.
    for (i, e) in [etag3, etag_b].iter().enumerate() {
        let p = h.publish(
            &format!("SIP-If-Match: {e}\r\nExpires: 0\r\n"),
            "",
            6 + i as u32,
        );
        h.send(udp(5080), &p);
        let out = h.drain();
        assert_eq!(code(&out[0].1), 200);
        assert_eq!(hdr(&out[0].1, "Expires"), Some("0"));
        let a = h.answer(&out[1].1, 200);
        h.send(udp(5070), &a);
        if i == 1 {
            assert_eq!(body(&out[1].1), "");
        }
    }
    assert_eq!(h.core.stats().publications, 0);
}

#[test]
fn publish_refusals() {
    let mut h = H::new(Config::default());
    let p = h.publish("", "", 1);
    h.send(udp(5080), &p);
    assert_eq!(code(&h.drain()[0].1), 400);
    let p = h
        .publish("", "<presence>", 1)
        .replace("application/pidf+xml", "text/plain");
    h.send(udp(5080), &p);
    let r = h.drain().remove(0).1;
    assert_eq!(
        (code(&r), hdr(&r, "Accept")),
        (415, Some("application/pidf+xml"))
    );
    let p = h.publish(
        "",
        "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='x'><tuple>",
        1,
    );
    h.send(udp(5080), &p);
    let r = h.drain().remove(0).1;
    assert_eq!(code(&r), 400);
    assert!(r.starts_with("SIP/2.0 400 Bad body"), "{r}");
    let p = h.publish("SIP-If-Match: nope\r\n", "", 1);
    h.send(udp(5080), &p);
    assert_eq!(code(&h.drain()[0].1), 412);
    let p = h.publish("Expires: 1\r\n", PIDF_A, 1);
    h.send(udp(5080), &p);
    assert_eq!(code(&h.drain()[0].1), 423);
    // A content coding we do not decode: 415 naming the one we do (RFC 3261 §8.2.3), not
    // 400 from reading the compressed bytes as XML; `identity` (any case) is no coding.
    let p = h.publish("Content-Encoding: gzip\r\n", PIDF_A, 1);
    h.send(udp(5080), &p);
    let r = h.drain().remove(0).1;
    assert_eq!(
        (code(&r), hdr(&r, "Accept-Encoding")),
        (415, Some("identity"))
    );
    assert_eq!(h.core.stats().publications, 0);
    let p = h.publish("e: Identity\r\n", PIDF_A, 1);
    h.send(udp(5080), &p);
    assert_eq!(code(&h.drain()[0].1), 200);
}

#[test]
fn stateless_rules() {
    let mut h = H::new(Config::default());
    let o = "OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKo\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: o\r\nCSeq: 1 OPTIONS\r\n\r\n";
    h.send(udp(5070), o);
    let r = h.drain().remove(0).1;
    assert_eq!(code(&r), 200);
    assert_eq!(hdr(&r, "Allow-Events"), Some("presence"));
    assert!(hdr(&r, "Allow").unwrap().contains("SUBSCRIBE"));
    // RFC 3261 8.2.6.2: a To tag even on responses that create no dialog.
    assert!(hdr(&r, "To").unwrap().contains(";tag=n"), "{r}");
    let i = o
        .replace("OPTIONS", "INVITE")
        .replace("z9hG4bKo", "z9hG4bKi");
    h.send(udp(5070), &i);
    assert_eq!(code(&h.drain()[0].1), 405);
    let s = h
        .subscribe("Event: presence\r\n", None, 1)
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    h.send(udp(5070), &s);
    assert_eq!(code(&h.drain()[0].1), 483);
    h.send(udp(5070), "garbage\r\n\r\n");
    assert!(h.drain().is_empty());
    assert_eq!(h.core.stats().rx_dropped, 1);
}

#[test]
fn notify_retransmits_over_udp_then_timer_f_ends_subscription() {
    let mut h = H::new(Config::default());
    let (_, n1) = sub_ok(&mut h, "Event: presence\r\n");
    h.advance(500);
    let r = h.drain();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1, n1);
    h.advance(1000);
    assert_eq!(h.drain().len(), 1);
    h.advance(40_000);
    let _ = h.drain();
    assert_eq!(h.core.stats().subscriptions, 0, "Timer F removed it");
    assert_eq!(h.core.stats().notify_failed, 1);
}

/// A NOTIFY's retransmissions are written again, not stored: they must still be the
/// request first sent, byte for byte, after a PUBLISH replaced the body it carried and a
/// target refresh moved the Contact it was sent to. The next NOTIFY then has both.
#[test]
fn a_retransmission_is_the_notify_as_sent_whatever_changed_since() {
    let mut h = H::new(Config::default());
    let p = h.publish("", PIDF_A, 1);
    h.send(udp(5080), &p);
    let first = h.drain().remove(0).1;
    let etag = hdr(&first, "SIP-ETag").unwrap().to_string();
    let (ok, n1) = sub_ok(&mut h, "Event: presence\r\n");
    assert!(n1.contains("<note>A</note>"), "{n1}");
    let p = h.publish(&format!("SIP-If-Match: {etag}\r\n"), PIDF_B, 2);
    h.send(udp(5080), &p);
    let out = h.drain();
    assert_eq!(code(&out[0].1), 200, "{out:?}");
    assert_eq!(
        out.len(),
        1,
        "the change waits for the NOTIFY in flight: {out:?}"
    );
    let refresh = h
        .subscribe("Event: presence\r\n", Some(&to_tag(&ok)), 2)
        .replace(
            "Contact: <sip:alice@10.0.0.2:5070>",
            "Contact: <sip:alice@10.0.0.9:5099>",
        );
    h.send(udp(5070), &refresh);
    let out = h.drain();
    assert_eq!(code(&out[0].1), 200, "{out:?}");
    assert_eq!(out.len(), 1, "still one NOTIFY in flight: {out:?}");
    h.advance(500);
    let r = h.drain();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].1, n1, "Timer E resends the request as sent");
    let a = h.answer(&n1, 200);
    h.send(udp(5070), &a);
    let next = h.drain();
    assert_eq!(next.len(), 1, "{next:?}");
    let n2 = &next[0].1;
    assert!(
        n2.starts_with("NOTIFY sip:alice@10.0.0.9:5099 SIP/2.0\r\n"),
        "{n2}"
    );
    assert!(
        n2.contains("<note>B</note>") && !n2.contains("<note>A</note>"),
        "{n2}"
    );
}

#[test]
fn answered_notify_is_not_retransmitted_and_481_removes() {
    let mut h = H::new(Config::default());
    let (ok, n1) = sub_ok(&mut h, "Event: presence\r\n");
    let a = h.answer(&n1, 200);
    h.send(udp(5070), &a);
    h.send(udp(5070), &a); // duplicate response: absorbed
    h.advance(10_000);
    assert!(h.drain().is_empty());
    let p = h.publish("", PIDF_A, 1);
    h.send(udp(5080), &p);
    let out = h.drain();
    let a = h.answer(&out[1].1, 481);
    h.send(udp(5070), &a);
    assert_eq!(h.core.stats().subscriptions, 0);
    let s = h.subscribe("Event: presence\r\n", Some(&to_tag(&ok)), 2);
    h.send(udp(5070), &s);
    assert_eq!(code(&h.drain()[0].1), 481);
}

/// A 481 to a NOTIFY whose transaction is over (as after a restart, when the watcher
/// answers a NOTIFY the restored core never sent) ends the dialog if its Call-ID and the
/// watcher's tag match; one that only shares the branch (a later dialog on a reused slab
/// id) does not.
#[test]
fn stray_481_of_the_dialog_ends_it() {
    let mut h = H::new(Config::default());
    let (_, n1) = sub_ok(&mut h, "Event: presence\r\n");
    let ok = h.answer(&n1, 200);
    h.send(udp(5070), &ok);
    let late = h.answer(&n1, 481);
    assert!(
        late.contains("Call-ID: call-1") && late.contains(";tag=al1"),
        "{late}"
    );
    for stray in [
        late.replace("Call-ID: call-1", "Call-ID: call-2"),
        late.replace(";tag=al1", ";tag=al2"),
    ] {
        h.send(udp(5070), &stray);
        assert_eq!(h.core.stats().subscriptions, 1, "{stray}");
    }
    h.send(udp(5070), &late);
    assert_eq!(h.core.stats().subscriptions, 0);
    let p = h.publish("", PIDF_A, 1);
    h.send(udp(5080), &p);
    let out = h.drain();
    assert_eq!(
        out.len(),
        1,
        "the 200 to the PUBLISH and no NOTIFY: {out:?}"
    );
}

#[test]
fn refresh_unsubscribe_and_expiry() {
    let mut h = H::new(Config::default());
    let (ok, n1) = sub_ok(&mut h, "Event: presence\r\nExpires: 100\r\n");
    let tag = to_tag(&ok);
    let a = h.answer(&n1, 200);
    h.send(udp(5070), &a);
    h.advance(50_000);
    let s = h.subscribe("Event: presence\r\nExpires: 300\r\n", Some(&tag), 2);
    h.send(udp(5070), &s);
    let out = h.drain();
    assert_eq!(code(&out[0].1), 200);
    assert_eq!(
        hdr(&out[1].1, "Subscription-State"),
        Some("active;expires=300")
    );
    assert_eq!(hdr(&out[1].1, "CSeq"), Some("2 NOTIFY"));
    let a = h.answer(&out[1].1, 200);
    h.send(udp(5070), &a);
    // Out-of-order CSeq.
    let s = h.subscribe("Event: presence\r\n", Some(&tag), 2);
    h.send(udp(5070), &s);
    assert_eq!(code(&h.drain()[0].1), 500);
    // Expiry.
    h.advance(301_000);
    let out = h.drain();
    assert_eq!(out.len(), 1);
    assert_eq!(
        hdr(&out[0].1, "Subscription-State"),
        Some("terminated;reason=timeout")
    );
    let a = h.answer(&out[0].1, 200);
    h.send(udp(5070), &a);
    assert_eq!(h.core.stats().subscriptions, 0);
    assert_eq!(h.core.stats().subscriptions_expired, 1);

    // Unsubscribe.
    let (ok, n1) = sub_ok(&mut h, "Event: presence\r\n");
    let a = h.answer(&n1, 200);
    h.send(udp(5070), &a);
    let s = h.subscribe("Event: presence\r\nExpires: 0\r\n", Some(&to_tag(&ok)), 2);
    h.send(udp(5070), &s);
    let out = h.drain();
    assert_eq!(
        (code(&out[0].1), hdr(&out[0].1, "Expires")),
        (200, Some("0"))
    );
    assert_eq!(
        hdr(&out[1].1, "Subscription-State"),
        Some("terminated;reason=timeout")
    );
    let a = h.answer(&out[1].1, 200);
    h.send(udp(5070), &a);
    assert_eq!(h.core.stats().subscriptions, 0);
}

#[test]
fn changes_coalesce_while_a_notify_is_in_flight() {
    let mut h = H::new(Config::default());
    let (_, n1) = sub_ok(&mut h, "Event: presence\r\n");
    let p = h.publish("", PIDF_A, 1);
    h.send(udp(5080), &p);
    let p = h.publish("", PIDF_B, 2);
    h.send(udp(5080), &p);
    let out = h.drain();
    assert_eq!(out.len(), 2, "only the two 200s: NOTIFY 1 still in flight");
    let a = h.answer(&n1, 200);
    h.send(udp(5070), &a);
    let out = h.drain();
    assert_eq!(out.len(), 1);
    assert_eq!(hdr(&out[0].1, "CSeq"), Some("2 NOTIFY"));
    assert!(
        body(&out[0].1).contains("<note>A</note>") && body(&out[0].1).contains("<note>B</note>")
    );
}

#[test]
fn durability_gate_holds_2xx_until_persisted_and_restore_resumes() {
    let cfg = Config {
        durability_gate: true,
        ..Config::default()
    };
    let mut h = H::new(cfg.clone());
    let s = h.subscribe("Event: presence\r\n", None, 1);
    h.send(udp(5070), &s);
    assert!(h.drain().is_empty(), "held");
    let p = h.publish("", PIDF_A, 1);
    h.send(udp(5080), &p);
    let mut ops = Vec::new();
    while let Some(op) = h.core.poll_persist() {
        ops.push(op);
    }
    assert_eq!(ops.len(), 2);
    let last = ops.last().unwrap().seq();
    h.core.handle_persisted(h.now, last);
    let out = h.drain();
    assert_eq!(out.iter().filter(|(_, m)| code(m) == 200).count(), 2);
    let ok = out
        .iter()
        .find(|(_, m)| hdr(m, "CSeq") == Some("1 SUBSCRIBE"))
        .unwrap()
        .1
        .clone();
    let etag = out
        .iter()
        .find_map(|(_, m)| hdr(m, "SIP-ETag"))
        .unwrap()
        .to_string();

    // Restart from the ops.
    let mut h2 = H::new(cfg);
    h2.n = 100;
    for op in ops {
        match op {
            PersistOp::PutPublication { rec, .. } => {
                h2.core.restore_publication(h2.now, rec).unwrap()
            }
            PersistOp::PutSubscription { rec, .. } => {
                h2.core.restore_subscription(h2.now, rec).unwrap()
            }
            _ => {}
        }
    }
    h2.core.check_invariants().unwrap();
    let s = h2.subscribe("Event: presence\r\n", Some(&to_tag(&ok)), 2);
    h2.send(udp(5070), &s);
    let p = h2.publish(&format!("SIP-If-Match: {etag}\r\n"), "", 2);
    h2.send(udp(5080), &p);
    while let Some(op) = h2.core.poll_persist() {
        h2.core.handle_persisted(h2.now, op.seq());
    }
    let out = h2.drain();
    assert!(
        out.iter().filter(|(_, m)| code(m) == 200).count() == 2,
        "{out:?}"
    );
    let notify = out.iter().find(|(_, m)| m.starts_with("NOTIFY")).unwrap();
    let cseq: u32 = hdr(&notify.1, "CSeq")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        cseq > CSEQ_PERSIST_EVERY,
        "CSeq resumes above what was sent before the restart"
    );
    assert_eq!(body(&notify.1), PIDF_A);
}

/// A PUBLISH body with a character XML forbids gets 400; a stored one (acknowledged by a
/// version before that rule) is still restored, and its watchers are notified of it.
#[test]
fn forbidden_characters_are_refused_in_new_bodies_and_kept_in_stored_ones() {
    let cfg = Config {
        persist: true,
        ..Config::default()
    };
    let mut h = H::new(cfg.clone());
    let bad = PIDF_A.replace("<note>A", "<note>A\u{1}");
    let p = h.publish("", &bad, 1);
    h.send(udp(5080), &p);
    assert_eq!(code(&h.drain()[0].1), 400);
    let p = h.publish("", PIDF_A, 2);
    h.send(udp(5080), &p);
    assert_eq!(code(&h.drain()[0].1), 200);
    let mut stored = None;
    while let Some(op) = h.core.poll_persist() {
        if let PersistOp::PutPublication { rec, .. } = op {
            stored = Some(rec);
        }
    }
    let mut rec = stored.expect("the publication was stored");
    rec.body = bad.as_bytes().into();
    let mut h2 = H::new(cfg);
    h2.core.restore_publication(h2.now, rec).unwrap();
    let (_, notify) = sub_ok(&mut h2, "Event: presence\r\n");
    assert!(notify.contains("<note>A\u{1}</note>"), "{notify}");
}

/// A PUBLISH body that is not UTF-8 gets 400 naming why, and leaves the presentity's
/// state as it was.
#[test]
fn a_body_that_is_not_utf8_gets_400() {
    let mut h = H::new(Config::default());
    let p = h.publish("", &PIDF_A.replace("<note>A", "<note>A\u{e9}"), 1);
    // The same length in Latin-1: é is C3 A9 in UTF-8, E9 alone in Latin-1.
    let mut raw = p.into_bytes();
    let at = raw.windows(2).position(|w| w == [0xc3, 0xa9]).unwrap();
    raw.splice(at..at + 2, [0xe9, b' ']);
    h.core.handle_message(h.now, udp(5080), &raw);
    let out = h.drain();
    assert_eq!(code(&out[0].1), 400, "{}", out[0].1);
    assert!(out[0].1.contains("not UTF-8"), "{}", out[0].1);
    let (_, notify) = sub_ok(&mut h, "Event: presence\r\n");
    assert!(!notify.contains("<note>"), "{notify}");
}

#[test]
fn routing_finds_the_owner_without_lookup() {
    let limits = sip_parser::Limits::default();
    let mut h = H::new(Config::default());
    let s = h.subscribe("Event: presence\r\n", None, 1);
    let aor = sip_parser::Aor::parse(b"sip:bob@example.com").unwrap();
    for shards in 1..6u16 {
        let want = shard_for(&aor, shards);
        let got = route(s.as_bytes(), shards, &limits);
        assert!(
            got == Route::Shard(want) || (shards == 1 && got == Route::Local),
            "{got:?}"
        );
    }
    let (ok, n) = sub_ok(&mut h, "Event: presence\r\n");
    let refresh = h.subscribe("Event: presence\r\n", Some(&to_tag(&ok)), 2);
    let resp = h.answer(&n, 200);
    for shards in 2..6u16 {
        let want = Route::Shard(shard_for(&aor, shards));
        assert_eq!(route(refresh.as_bytes(), shards, &limits), want);
        assert_eq!(route(resp.as_bytes(), shards, &limits), want);
    }
    assert_eq!(route(b"junk", 4, &limits), Route::Drop);
    let mut out = b"prefix".to_vec();
    let n = reply_overloaded(s.as_bytes(), 5, &mut out, &limits).unwrap();
    let r = std::str::from_utf8(&out[6..6 + n]).unwrap();
    assert_eq!((code(r), hdr(r, "Retry-After")), (503, Some("5")));
    assert!(hdr(r, "To").unwrap().contains(";tag="), "{r}");
    assert_eq!(
        reply_overloaded(resp.as_bytes(), 5, &mut out, &limits),
        None
    );
}

#[test]
fn restored_dialogs_notify_in_paced_slices() {
    let cfg = Config {
        durability_gate: true,
        notify_on_restore: true,
        ..Config::default()
    };
    let mut h = H::new(cfg.clone());
    let s = h.subscribe("Event: presence\r\n", None, 1);
    h.send(udp(5070), &s);
    let rec = std::iter::from_fn(|| h.core.poll_persist())
        .find_map(|op| match op {
            PersistOp::PutSubscription { rec, .. } => Some(rec),
            _ => None,
        })
        .expect("the SUBSCRIBE is persisted");
    let total = crate::core::RESTORE_NOTIFY_BATCH + 500;
    let mut h2 = H::new(cfg);
    for i in 0..total as u64 {
        let mut r = rec.clone();
        r.id = rec.id + i;
        let (hash, _) = crate::core::tags::Token::decode(&rec.to_tag).unwrap();
        r.to_tag = crate::core::tags::Token::new(hash, r.id)
            .as_bytes()
            .to_vec();
        h2.core.restore_subscription(h2.now, r).unwrap();
    }
    let notifies =
        |out: &[(Peer, String)]| out.iter().filter(|(_, m)| m.starts_with("NOTIFY")).count();
    assert_eq!(
        notifies(&h2.drain()),
        0,
        "nothing before the pacing timer fires"
    );
    h2.advance(0);
    assert_eq!(notifies(&h2.drain()), crate::core::RESTORE_NOTIFY_BATCH);
    h2.advance(crate::core::RESTORE_NOTIFY_INTERVAL_MS);
    assert_eq!(notifies(&h2.drain()), 500);
}

/// `with_parsed` first parses into `FEW_HEADER_SLOTS` slots: a request with more headers
/// is parsed again with all of them and answered as usual; past `max_headers` it is still
/// refused, whether the limit is under or over the first try's slots.
#[test]
fn requests_with_many_headers_are_parsed_again_with_all_slots() {
    let many = |n: usize| -> String { (0..n).map(|i| format!("X-Pad-{i}: {i}\r\n")).collect() };
    let extra = many(FEW_HEADER_SLOTS + 10);
    let mut h = H::new(Config::default());
    sub_ok(&mut h, &format!("Event: presence\r\n{extra}"));
    let bigger = many(sip_parser::DEFAULT_MAX_HEADERS);
    let s = h.subscribe(&format!("Event: presence\r\n{bigger}"), None, 1);
    h.send(udp(5070), &s);
    assert!(h.drain().is_empty());
    assert_eq!(h.core.stats().rx_dropped, 1);

    for max_headers in [FEW_HEADER_SLOTS / 2, FEW_HEADER_SLOTS + 20] {
        let mut cfg = Config::default();
        cfg.limits.max_headers = max_headers;
        let mut h = H::new(cfg);
        let fits = many(max_headers - 12);
        sub_ok(&mut h, &format!("Event: presence\r\n{fits}"));
        let over = many(max_headers);
        let s = h.subscribe(&format!("Event: presence\r\n{over}"), None, 1);
        h.send(udp(5070), &s);
        assert!(h.drain().is_empty(), "max_headers {max_headers}");
        assert_eq!(h.core.stats().rx_dropped, 1);
    }
}

/// Timer output (Timer E retransmissions, expiry NOTIFYs) waits behind the answers to
/// requests and leaves only within the caller's budget; a retransmission that has not
/// left yet is not queued a second time when Timer E fires again.
#[test]
fn timer_output_yields_to_answers_and_is_queued_once() {
    let mut h = H::new(Config::default());
    let (_, n1) = sub_ok(&mut h, "Event: presence\r\n");
    // The watcher never answers: Timer E at 500 ms and again at 1500 ms, nothing polled
    // in between.
    h.advance(500);
    h.advance(1000);
    assert_eq!(h.core.stats().notify_retransmits_merged, 1);
    assert!(h.core.has_background());
    // A new watcher's SUBSCRIBE arrives meanwhile.
    let carol = "SUBSCRIBE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2:5090;branch=z9hG4bKcarol\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:carol@example.com>;tag=c1\r\nTo: <sip:bob@example.com>\r\n\
                 Call-ID: call-carol\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:carol@10.0.0.2:5090>\r\n\
                 Event: presence\r\nContent-Length: 0\r\n\r\n";
    h.send(udp(5090), carol);
    let mut sent = Vec::new();
    let mut budget = 0;
    h.out.clear();
    while let Some(t) = h.core.poll_transmit_within(&mut h.out, &mut budget) {
        sent.push(String::from_utf8(h.out[t.offset..t.offset + t.len].to_vec()).unwrap());
    }
    assert_eq!(sent.len(), 2, "the 200 and carol's NOTIFY only: {sent:?}");
    assert_eq!(code(&sent[0]), 200);
    assert!(sent[1].starts_with("NOTIFY sip:carol@"), "{}", sent[1]);
    assert!(h.core.has_background(), "the retransmission still waits");
    let ok = h.answer(&sent[1], 200);
    h.send(udp(5090), &ok);
    // Within a budget of 5: the one retransmission, as first sent.
    let mut budget = 5;
    h.out.clear();
    let t = h
        .core
        .poll_transmit_within(&mut h.out, &mut budget)
        .expect("the retransmission");
    assert_eq!(&h.out[t.offset..t.offset + t.len], n1.as_bytes());
    assert_eq!(budget, 4);
    assert!(h
        .core
        .poll_transmit_within(&mut h.out, &mut budget)
        .is_none());
    assert!(!h.core.has_background());
    assert_eq!(h.core.stats().notify_retransmitted, 1);
    // Sent, so the next Timer E (3500 ms) queues one again.
    h.advance(2000);
    assert_eq!(h.drain().len(), 1);
    assert_eq!(h.core.stats().notify_retransmits_merged, 1);
}

/// With `--durability sync`, an expiry's `terminated` NOTIFY first waits for its commit;
/// released, it is still timer output (behind answers, within the budget).
#[test]
fn an_expiry_notify_released_by_a_commit_stays_timer_output() {
    let cfg = Config {
        durability_gate: true,
        ..Config::default()
    };
    let mut h = H::new(cfg);
    let s = h.subscribe("Event: presence\r\nExpires: 60\r\n", None, 1);
    h.send(udp(5070), &s);
    let mut last = 0;
    while let Some(op) = h.core.poll_persist() {
        last = op.seq();
    }
    h.core.handle_persisted(h.now, last);
    let out = h.drain();
    assert_eq!(out.len(), 2, "200 and the first NOTIFY: {out:?}");
    let ok = h.answer(&out[1].1, 200);
    h.send(udp(5070), &ok);
    h.advance(61_000);
    assert_eq!(h.core.stats().subscriptions_expired, 1);
    assert!(
        h.drain().is_empty(),
        "the final NOTIFY waits for its commit"
    );
    while let Some(op) = h.core.poll_persist() {
        last = op.seq();
    }
    h.core.handle_persisted(h.now, last);
    assert!(h.core.has_background());
    let mut budget = 0;
    h.out.clear();
    assert!(h
        .core
        .poll_transmit_within(&mut h.out, &mut budget)
        .is_none());
    let out = h.drain();
    assert_eq!(out.len(), 1);
    assert_eq!(
        hdr(&out[0].1, "Subscription-State"),
        Some("terminated;reason=timeout")
    );
}

/// An ICMP error for the NOTIFY in flight ends its transaction at once (RFC 3261 §18.4),
/// not 32 s of retransmissions later; one that does not name that NOTIFY, its CSeq and its
/// destination changes nothing.
#[test]
fn an_icmp_error_for_the_notify_in_flight_ends_it_at_once() {
    let cut = |m: &str| m.as_bytes()[..m.len().min(300)].to_vec();
    // A live dialog: ended like Timer F, so `end_sub_on_timeout` decides.
    for end_sub in [true, false] {
        let mut h = H::new(Config {
            end_sub_on_timeout: end_sub,
            ..Config::default()
        });
        let (_, n1) = sub_ok(&mut h, "Event: presence\r\n");
        let now = h.now;
        let wrong_dst = addr(5071);
        assert_eq!(
            h.core.handle_refused(now, wrong_dst, &cut(&n1)),
            SendRefused::Stale
        );
        // The same dialog's branch with another CSeq (a NOTIFY it has not sent).
        let forged = {
            let b = hdr(&n1, "Via").unwrap().split("branch=").nth(1).unwrap();
            let b = b.split(';').next().unwrap();
            n1.replace(b, &format!("{}00000009", &b[..b.len() - 8]))
        };
        assert_ne!(forged, n1);
        assert_eq!(
            h.core.handle_refused(now, addr(5070), &cut(&forged)),
            SendRefused::Stale
        );
        assert_eq!(
            h.core
                .handle_refused(now, addr(5070), b"SIP/2.0 200 OK\r\n"),
            SendRefused::NotNotify
        );
        assert_eq!(h.core.stats().notify_unreachable, 0);
        assert_eq!(
            h.core.handle_refused(now, addr(5070), &cut(&n1)),
            SendRefused::Ended
        );
        assert_eq!(h.core.stats().notify_unreachable, 1);
        assert_eq!(h.core.stats().notify_failed, 1);
        h.core.check_invariants().unwrap();
        assert_eq!(h.core.stats().subscriptions, u64::from(!end_sub));
        // No retransmission follows, and the same error again is stale.
        h.advance(40_000);
        assert!(h.drain().is_empty());
        assert_eq!(h.core.stats().notify_retransmitted, 0);
        assert_eq!(
            h.core.handle_refused(h.now, addr(5070), &cut(&n1)),
            SendRefused::Stale
        );
    }
    // A final NOTIFY (the watcher unsubscribed and left): its dialog goes with the error,
    // instead of holding its slot until Timer F.
    let mut h = H::new(Config::default());
    let (resp, n1) = sub_ok(&mut h, "Event: presence\r\n");
    let tag = to_tag(&resp);
    let ok = h.answer(&n1, 200);
    h.send(udp(5070), &ok);
    let unsub = h.subscribe("Event: presence\r\nExpires: 0\r\n", Some(&tag), 2);
    h.send(udp(5070), &unsub);
    let out = h.drain();
    let fin = &out.iter().find(|(_, m)| m.starts_with("NOTIFY")).unwrap().1;
    assert!(hdr(fin, "Subscription-State")
        .unwrap()
        .starts_with("terminated"));
    assert_eq!(
        h.core.stats().subscriptions,
        1,
        "held until the final NOTIFY ends"
    );
    assert_eq!(
        h.core.handle_refused(h.now, addr(5070), &cut(fin)),
        SendRefused::Ended
    );
    assert_eq!(h.core.stats().subscriptions, 0);
    h.core.check_invariants().unwrap();
}
