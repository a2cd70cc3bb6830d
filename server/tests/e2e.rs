//! End-to-end tests: the real `herald` binary (2 shards) on fresh loopback ports, driven by
//! Rust SIP clients over UDP and TCP. Every wait is bounded (see `common`).

mod common;

use std::time::Duration;

use common::*;

fn ok(m: &Msg) -> bool {
    m.code.is_some_and(|c| (200..300).contains(&c))
}

#[test]
fn stats_endpoints_answer() {
    let s = Server::start(&[]);
    let text = s.http_get("/stats").expect("/stats");
    assert!(text.contains("shards 2"), "{text}");
    assert!(text.contains("edge.udp_in"), "{text}");
    let json = s.http_get("/stats.json").expect("/stats.json");
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(v["shards"], 2);
    assert!(v["total"]["edge.udp_in"].is_u64(), "{json}");
    assert_eq!(v["per_shard"].as_array().map(|a| a.len()), Some(2));
}

#[test]
fn sigterm_stops_cleanly() {
    let mut s = Server::start(&[]);
    let status = s.stop().expect("herald exits within 10 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn options_gets_200_with_allow() {
    let s = Server::start(&[]);
    let mut c = Client::udp(s.sip);
    let r = c.request(&options(&c, "sip:herald@127.0.0.1"));
    assert_eq!(r.code, Some(200), "{}", r.text());
    let allow = r.header("Allow").expect("Allow").to_ascii_uppercase();
    for m in ["SUBSCRIBE", "PUBLISH", "NOTIFY", "OPTIONS"] {
        assert!(allow.contains(m), "Allow lacks {m}: {allow}");
    }
    assert!(
        r.header("Allow-Events")
            .expect("Allow-Events")
            .contains("presence"),
        "{}",
        r.text()
    );
}

#[test]
fn untrusted_peer_gets_403() {
    let s = Server::start(&["--trusted-peers", "10.0.0.0/8"]);
    let mut c = Client::udp(s.sip);
    let r = c.request(&options(&c, "sip:herald@127.0.0.1"));
    assert_eq!(r.code, Some(403), "{}", r.text());
}

/// RFC 3261 §18.3 / RFC 4475 §3.1.2.2 (clerr): a request datagram whose Content-Length is larger
/// than what arrived gets a stateless 400 (it used to be dropped, so the client retransmitted it
/// for 32 s); a broken ACK gets nothing.
#[test]
fn request_with_content_length_beyond_the_datagram_gets_400() {
    let s = Server::start(&[]);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let call_id = unique("clerr");
    let broken = |method: &str| {
        format!(
            "{method} sip:clerr@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{method}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:w@example.com>;tag=1\r\nTo: <sip:clerr@example.com>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:w@127.0.0.1:{port}>\r\n\
             Event: presence\r\nContent-Length: 100\r\n\r\nshort"
        )
    };
    let mut buf = [0u8; 4096];
    let mut answer = None;
    for _ in 0..10 {
        sock.send_to(broken("SUBSCRIBE").as_bytes(), s.sip).unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            answer = Some(buf[..n].to_vec());
            break;
        }
    }
    let answer = answer.expect("an answer to the broken SUBSCRIBE");
    let (m, _) = Msg::parse(&answer, sip_parser::Framing::Datagram).expect("a parseable response");
    assert_eq!(m.code, Some(400), "{}", m.text());
    assert_eq!(m.call_id(), call_id);
    assert!(m.text().contains("Content-Length"), "{}", m.text());
    assert!(
        m.tag_of("To").is_some(),
        "a To tag (RFC 3261 §8.2.6.2): {}",
        m.text()
    );
    s.wait_stats("the 400 counted", |st| {
        st.get("edge.broken_framing_400").copied() == Some(1)
    });
    // The same counter as Prometheus scrapes it, per shard: the shards' values sum to 1.
    let metrics = s.http_get("/metrics").expect("/metrics answers");
    let samples: Vec<u64> = metrics
        .lines()
        .filter(|l| l.starts_with("herald_edge_broken_framing_400{shard=\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        (samples.len(), samples.iter().sum::<u64>()),
        (2, 1),
        "{metrics}"
    );
    // The core's rows appear with its first periodic snapshot.
    let deadline = std::time::Instant::now() + REPLY_TIMEOUT;
    while !s
        .http_get("/metrics")
        .unwrap_or_default()
        .lines()
        .any(|l| l == "# TYPE herald_core_subscriptions gauge")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no core gauge in /metrics"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sock.send_to(broken("ACK").as_bytes(), s.sip).unwrap();
    assert!(sock.recv(&mut buf).is_err(), "no answer to an ACK");
    s.wait_stats("the ACK dropped", |st| {
        st.get("edge.dropped_unroutable").copied().unwrap_or(0) >= 1
    });
}

#[test]
fn subscribe_gets_200_and_notify() {
    let s = Server::start(&[]);
    let mut c = Client::udp(s.sip);
    let mut d = Dialog::new("sip:watcher@example.com", "sip:alice@example.com");
    let r = d.send_subscribe(&mut c, 600);
    assert_eq!(r.code, Some(200), "{}", r.text());
    assert!(d.to_tag.is_some(), "200 has a To-tag: {}", r.text());
    assert!(r.has_header("Contact"), "{}", r.text());
    let exp: u32 = r
        .header("Expires")
        .expect("Expires")
        .trim()
        .parse()
        .unwrap();
    assert!(exp > 0 && exp <= 600, "{exp}");
    let n = c.expect_notify("initial");
    assert!(n.sub_state().starts_with("active"), "{}", n.text());
    assert_eq!(n.call_id(), d.call_id);
    assert_eq!(n.header("Event").map(|e| e.trim()), Some("presence"));
    s.wait_stats("a subscription exists", |st| {
        st.get("core.subscriptions").copied().unwrap_or(1) >= 1
    });
}

#[test]
fn publish_reaches_watcher_then_modify_refresh_remove() {
    let s = Server::start(&[]);
    let p = "sip:bob@example.com";
    let mut w = Client::udp(s.sip);
    let mut d = Dialog::new("sip:watcher@example.com", p);
    assert!(ok(&d.send_subscribe(&mut w, 600)));
    w.expect_notify("initial");

    let mut pubc = Client::udp(s.sip);
    let body1 = pidf(p, "t1", "open", "first-note");
    let r = pubc.request(&publish(&pubc, p, 600, None, Some(&body1)));
    assert_eq!(r.code, Some(200), "{}", r.text());
    let etag1 = r.header("SIP-ETag").expect("SIP-ETag").trim().to_string();
    assert!(r.has_header("Expires"));
    let n = w.expect_notify_where("body with first-note", |n| {
        n.body_str().contains("first-note")
    });
    assert!(
        n.header("Content-Type").unwrap_or("").contains("pidf"),
        "{}",
        n.text()
    );

    // Modify: new body with SIP-If-Match.
    let body2 = pidf(p, "t1", "closed", "second-note");
    let r = pubc.request(&publish(&pubc, p, 600, Some(&etag1), Some(&body2)));
    assert_eq!(r.code, Some(200), "{}", r.text());
    let etag2 = r.header("SIP-ETag").expect("SIP-ETag").trim().to_string();
    w.expect_notify_where("body with second-note", |n| {
        n.body_str().contains("second-note") && !n.body_str().contains("first-note")
    });

    // Refresh: no body, new ETag.
    let r = pubc.request(&publish(&pubc, p, 600, Some(&etag2), None));
    assert_eq!(r.code, Some(200), "{}", r.text());
    let etag3 = r.header("SIP-ETag").expect("SIP-ETag").trim().to_string();
    assert_ne!(etag3, etag2);

    // Remove: Expires 0.
    let r = pubc.request(&publish(&pubc, p, 0, Some(&etag3), None));
    assert_eq!(r.code, Some(200), "{}", r.text());
    w.expect_notify_where("state without the publication", |n| {
        !n.body_str().contains("second-note")
    });
}

#[test]
fn publish_with_unknown_etag_gets_412() {
    let s = Server::start(&[]);
    let mut c = Client::udp(s.sip);
    let r = c.request(&publish(
        &c,
        "sip:carol@example.com",
        600,
        Some("no-such-etag"),
        None,
    ));
    assert_eq!(r.code, Some(412), "{}", r.text());
}

#[test]
fn unknown_event_gets_489() {
    let s = Server::start(&[]);
    let mut c = Client::udp(s.sip);
    let mut d = Dialog::new("sip:watcher@example.com", "sip:dave@example.com");
    d.event = "no-such-package".into();
    let r = d.send_subscribe(&mut c, 600);
    assert_eq!(r.code, Some(489), "{}", r.text());
    assert!(r.has_header("Allow-Events"), "{}", r.text());
}

#[test]
fn too_brief_subscription_gets_423() {
    let s = Server::start(&[]);
    let mut c = Client::udp(s.sip);
    let mut d = Dialog::new("sip:watcher@example.com", "sip:erin@example.com");
    let r = d.send_subscribe(&mut c, 10);
    assert_eq!(r.code, Some(423), "{}", r.text());
    assert_eq!(r.header("Min-Expires").map(|v| v.trim()), Some("60"));
}

#[test]
fn unsubscribe_gets_terminated_notify() {
    let s = Server::start(&[]);
    let mut c = Client::udp(s.sip);
    let mut d = Dialog::new("sip:watcher@example.com", "sip:frank@example.com");
    assert!(ok(&d.send_subscribe(&mut c, 600)));
    c.expect_notify("initial");
    let r = d.send_subscribe(&mut c, 0);
    assert_eq!(r.code, Some(200), "{}", r.text());
    let n = c.expect_notify_where("terminated", |n| n.sub_state().starts_with("terminated"));
    assert_eq!(n.call_id(), d.call_id);
}

#[test]
fn refresh_in_dialog_gets_200_and_notify() {
    let s = Server::start(&[]);
    let mut c = Client::udp(s.sip);
    let mut d = Dialog::new("sip:watcher@example.com", "sip:gina@example.com");
    assert!(ok(&d.send_subscribe(&mut c, 600)));
    let n1 = c.expect_notify("initial");
    let r = d.send_subscribe(&mut c, 900);
    assert_eq!(r.code, Some(200), "{}", r.text());
    assert_eq!(r.tag_of("To"), d.to_tag, "same dialog");
    let n2 = c.expect_notify("after refresh");
    assert!(n2.sub_state().starts_with("active"), "{}", n2.text());
    assert!(n2.cseq().0 > n1.cseq().0, "NOTIFY CSeq increases");
}

#[test]
fn subscription_expires_with_timeout_notify() {
    let s = Server::start(&["--min-expires", "1"]);
    let mut c = Client::udp(s.sip);
    let mut d = Dialog::new("sip:watcher@example.com", "sip:hank@example.com");
    let r = d.send_subscribe(&mut c, 2);
    assert_eq!(r.code, Some(200), "{}", r.text());
    c.expect_notify("initial");
    let n = c
        .next_notify(Duration::from_secs(10))
        .expect("terminated NOTIFY on expiry");
    let st = n.sub_state();
    assert!(st.starts_with("terminated"), "{}", n.text());
    assert!(st.contains("timeout"), "{}", n.text());
}

#[test]
fn notify_answered_481_removes_subscription() {
    let s = Server::start(&[]);
    let p = "sip:ivan@example.com";
    let mut w = Client::udp(s.sip);
    w.notify_answer = Some(481);
    let mut d = Dialog::new("sip:watcher@example.com", p);
    assert!(ok(&d.send_subscribe(&mut w, 600)));
    w.expect_notify("initial (answered 481)");
    // Give the 481 time to land, then change state: no NOTIFY may follow.
    std::thread::sleep(Duration::from_millis(300));
    let mut pubc = Client::udp(s.sip);
    publish_ok(&mut pubc, p, "x");
    let late = w.collect_notifies(Duration::from_secs(2));
    assert!(
        late.iter().all(|n| n.call_id() != d.call_id),
        "NOTIFY after 481: {:?}",
        late.iter().map(|n| n.text()).collect::<Vec<_>>()
    );
}

/// Watchers that left without unsubscribing (their UDP ports closed): the NOTIFY a PUBLISH
/// sends them comes back as ICMP port unreachable, which ends the transaction and, with
/// `--end-sub-on-timeout` (the default), the subscription at once, with no retransmission,
/// instead of ten sends over 32 s. The presentities are on both shards, so some errors land
/// on the shard that did not send the NOTIFY and are handed over. With
/// `--udp-icmp-errors=false` the same dialogs keep retransmitting.
#[test]
fn a_watcher_that_left_is_dropped_at_its_first_notify() {
    const WATCHERS: usize = 8;
    for icmp in [true, false] {
        let flag = format!("--udp-icmp-errors={icmp}");
        let s = Server::start(&[&flag]);
        let mut presentities = Vec::new();
        for i in 0..WATCHERS {
            let p = aor_on_shard(&format!("gone{i}x"), (i % 2) as u16, 2);
            let mut w = Client::udp(s.sip);
            let mut d = Dialog::new(&format!("sip:w{i}@example.com"), &p);
            assert!(ok(&d.send_subscribe(&mut w, 600)));
            w.expect_notify("initial");
            drop(w);
            presentities.push(p);
        }
        s.wait_stats("subscriptions held", |st| {
            st.get("core.subscriptions") == Some(&(WATCHERS as u64))
        });
        let mut pubc = Client::udp(s.sip);
        for p in &presentities {
            publish_ok(&mut pubc, p, "x");
        }
        if icmp {
            s.wait_stats("watchers that left dropped", |st| {
                st.get("core.subscriptions") == Some(&0)
                    && st.get("core.notify_unreachable") == Some(&(WATCHERS as u64))
            });
            assert_eq!(s.stat("core.notify_retransmitted"), 0);
            assert!(s.stat("edge.udp_icmp_errors") >= WATCHERS as u64);
            assert_eq!(s.stat("edge.udp_send_errors"), 0);
        } else {
            s.wait_stats("NOTIFYs retransmitted", |st| {
                st.get("core.notify_retransmitted")
                    .is_some_and(|&n| n >= WATCHERS as u64)
            });
            assert_eq!(s.stat("core.subscriptions"), WATCHERS as u64);
            assert_eq!(s.stat("core.notify_unreachable"), 0);
            assert_eq!(s.stat("edge.udp_icmp_errors"), 0);
        }
    }
}

#[test]
fn tcp_subscribe_and_notify() {
    let s = Server::start(&[]);
    let p = "sip:judy@example.com";
    let mut w = Client::tcp(s.sip);
    let mut d = Dialog::new("sip:watcher@example.com", p);
    let r = d.send_subscribe(&mut w, 600);
    assert_eq!(r.code, Some(200), "{}", r.text());
    w.expect_notify("initial over TCP");
    let mut pubc = Client::tcp(s.sip);
    let r = pubc.request(&publish(
        &pubc,
        p,
        600,
        None,
        Some(&pidf(p, "t", "open", "tcp-note")),
    ));
    assert_eq!(r.code, Some(200), "{}", r.text());
    w.expect_notify_where("PUBLISH state over TCP", |n| {
        n.body_str().contains("tcp-note")
    });
    s.wait_stats("tcp connections counted", |st| {
        st.get("edge.tcp_accepted").copied().unwrap_or(0) >= 2
    });
}

/// Three watchers of `p`, each on its own client from `connect`, each subscribed and past
/// its initial NOTIFY.
fn subscribed_watchers(
    connect: fn(std::net::SocketAddr) -> Client,
    sip: std::net::SocketAddr,
    user_prefix: &str,
    p: &str,
    what: &str,
) -> Vec<(Client, Dialog)> {
    (0..3)
        .map(|i| {
            let mut c = connect(sip);
            let mut d = Dialog::new(&format!("sip:{user_prefix}{i}@example.com"), p);
            let r = d.send_subscribe(&mut c, 600);
            assert_eq!(r.code, Some(200), "{what}: {}", r.text());
            c.expect_notify("initial");
            (c, d)
        })
        .collect()
}

/// Every watcher gets a NOTIFY in its own dialog whose body carries `note`.
fn expect_note(watchers: &mut [(Client, Dialog)], note: &str, what: &str) {
    for (c, d) in watchers.iter_mut() {
        let n = c.expect_notify_where(what, |n| n.body_str().contains(note));
        assert_eq!(n.call_id(), d.call_id);
    }
}

/// For a presentity on each shard: watchers subscribe, three publishers (each its own
/// socket) publish, and every watcher gets the note.
fn watch_and_publish_on_both_shards(s: &Server, name: &str) {
    for shard in 0..2u16 {
        let p = aor_on_shard(name, shard, 2);
        let mut watchers =
            subscribed_watchers(Client::udp, s.sip, "w", &p, &format!("shard {shard}"));
        let note = format!("{name}-note-for-shard-{shard}");
        for attempt in 0..3 {
            let mut pubc = Client::udp(s.sip);
            let r = pubc.request(&publish(
                &pubc,
                &p,
                600,
                None,
                Some(&pidf(&p, &format!("t{attempt}"), "open", &note)),
            ));
            assert_eq!(r.code, Some(200), "{}", r.text());
        }
        expect_note(&mut watchers, &note, "published note");
    }
}

/// Presentities owned by each shard, each driven from several client sockets (with the
/// kernel's 4-tuple hash spreading them, so requests land on both shards and hand-offs
/// happen).
#[test]
fn presentities_on_both_shards() {
    let s = Server::start(&["--udp-steering", "hash"]);
    watch_and_publish_on_both_shards(&s, "shardy");
    s.wait_stats("both shards took part", |st| {
        st.get("edge.handoff_out").copied().unwrap_or(0) > 0
    });
}

/// With the default `--udp-steering bpf`, the kernel delivers SUBSCRIBE (initial, and
/// refreshes sent to our Contact), PUBLISH and the 200s to our NOTIFYs straight to their
/// owner: presentities on both shards, many client sockets, and not one hand-off.
#[test]
fn udp_steering_delivers_to_the_owner_without_handoffs() {
    let s = Server::start(&[]);
    assert!(
        !s.log_text().contains("steering program refused"),
        "{}",
        s.log_text()
    );
    watch_and_publish_on_both_shards(&s, "steered");
    // Refreshes sent where RFC 3261 §12.2.1.1 says, to the Contact of our 2xx: its
    // per-shard user part steers them to the owner as well.
    // Eight dialogs, each from its own socket: by the kernel's hash alone, all eight
    // would reach their owner one time in 256.
    for (shard, i) in (0..2u16).flat_map(|sh| (0..4).map(move |i| (sh, i))) {
        let p = aor_on_shard(&format!("steered-refresh{i}x"), shard, 2);
        let mut c = Client::udp(s.sip);
        let mut d = Dialog::new("sip:rw@example.com", &p);
        let r = d.send_subscribe(&mut c, 600);
        assert_eq!(r.code, Some(200), "{}", r.text());
        let contact = r.header("Contact").expect("Contact in 2xx");
        let target = contact
            .split_once('<')
            .and_then(|(_, rest)| rest.split_once('>'))
            .map(|(uri, _)| uri.to_string())
            .unwrap_or_else(|| panic!("Contact {contact}"));
        assert!(target.starts_with("sip:h"), "{target}");
        let refresh = d.subscribe(&c, 600).replacen(
            &format!("SUBSCRIBE {p} "),
            &format!("SUBSCRIBE {target} "),
            1,
        );
        let r = c.request(&refresh);
        assert_eq!(r.code, Some(200), "{}", r.text());
    }
    let json = s.http_get("/stats.json").expect("/stats.json");
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let udp_in: Vec<u64> = v["per_shard"]
        .as_array()
        .expect("per_shard")
        .iter()
        .map(|sh| sh["edge.udp_in"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        udp_in.iter().all(|&n| n > 0),
        "both shards received: {udp_in:?}"
    );
    assert_eq!(
        s.stat("edge.handoff_in"),
        0,
        "no hand-offs: {:?}",
        s.stats()
    );
}

/// TCP watchers and publishers for presentities on both shards: messages that arrive on a
/// connection held by a non-owner shard are handed over, and the owner's replies and NOTIFYs
/// come back through the connection's shard.
#[test]
fn tcp_presentities_on_both_shards() {
    let s = Server::start(&[]);
    for shard in 0..2u16 {
        let p = aor_on_shard("tcpshard", shard, 2);
        let mut watchers =
            subscribed_watchers(Client::tcp, s.sip, "tw", &p, &format!("shard {shard}"));
        let note = format!("tcp-note-shard-{shard}");
        let mut pubc = Client::tcp(s.sip);
        let r = pubc.request(&publish(
            &pubc,
            &p,
            600,
            None,
            Some(&pidf(&p, "t", "open", &note)),
        ));
        assert_eq!(r.code, Some(200), "{}", r.text());
        expect_note(&mut watchers, &note, "published note over TCP");
    }
}

/// A TCP watcher whose connection closed gets its next NOTIFY on a connection the server
/// dials to the watcher's address.
#[test]
fn tcp_notify_redials_closed_connection() {
    use std::io::{Read, Write};
    let s = Server::start(&[]);
    let p = "sip:redial@example.com";
    // Connect from a fixed local port so we can listen on it afterwards.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_reuse_address(true).unwrap();
    sock.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    let local = sock.local_addr().unwrap().as_socket().unwrap();
    sock.connect_timeout(&s.sip.into(), Duration::from_secs(5))
        .unwrap();
    let stream: std::net::TcpStream = sock.into();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut w = Client::tcp_from(stream, s.sip);
    let mut d = Dialog::new("sip:watcher@example.com", p);
    assert!(ok(&d.send_subscribe(&mut w, 600)));
    w.expect_notify("initial");
    drop(w);
    // Listen where the watcher was.
    let l = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    l.set_reuse_address(true).unwrap();
    l.bind(&local.into()).unwrap();
    l.listen(8).unwrap();
    let listener: std::net::TcpListener = l.into();
    listener.set_nonblocking(true).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut pubc = Client::udp(s.sip);
    let r = pubc.request(&publish(
        &pubc,
        p,
        600,
        None,
        Some(&pidf(p, "t", "open", "redialled")),
    ));
    assert_eq!(r.code, Some(200), "{}", r.text());
    let deadline = std::time::Instant::now() + REPLY_TIMEOUT;
    let mut conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("server never dialled the watcher: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let deadline = std::time::Instant::now() + REPLY_TIMEOUT;
    while std::time::Instant::now() < deadline {
        if let Ok(n) = conn.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        if let Some((m, _)) = Msg::parse(&buf, sip_parser::Framing::Stream) {
            assert!(m.is_notify(), "{}", m.text());
            assert_eq!(m.call_id(), d.call_id);
            let _ = conn.write_all(&response_to(&m, 200, "OK"));
            return;
        }
    }
    panic!(
        "no NOTIFY on the dialled connection: {:?}",
        String::from_utf8_lossy(&buf)
    );
}

/// Reads from a raw TCP stream until EOF/reset; true if the server closed within `within`.
fn closed_by_server(s: &mut std::net::TcpStream, within: Duration) -> bool {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = std::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn tcp_idle_connection_is_closed() {
    let s = Server::start(&["--tcp-idle-timeout", "1"]);
    let mut c = std::net::TcpStream::connect(s.sip).unwrap();
    assert!(
        closed_by_server(&mut c, Duration::from_secs(8)),
        "idle connection left open"
    );
    s.wait_stats("idle close counted", |st| {
        st.get("edge.tcp_idle_closed").copied().unwrap_or(0) >= 1
    });
}

#[test]
fn tcp_garbage_closes_connection() {
    use std::io::Write;
    let s = Server::start(&[]);
    let mut c = std::net::TcpStream::connect(s.sip).unwrap();
    c.write_all(b"\x16\x03\x01 this is not SIP at all\r\n\r\n")
        .unwrap();
    assert!(
        closed_by_server(&mut c, Duration::from_secs(8)),
        "garbage connection left open"
    );
}

/// RFC 3261 §18.3: Content-Length is mandatory on a stream. A request without one (or with
/// one beyond `--max-message-size`) cannot be framed, so the connection closes, but only
/// after the answers to the requests before it and a 400 (513) saying why.
#[test]
fn tcp_request_without_content_length_gets_400_then_close() {
    use std::io::{Read, Write};
    let s = Server::start(&["--max-message-size", "4096"]);
    for (strip, code) in [("Content-Length: 0\r\n", 400), ("", 513)] {
        let client = Client::tcp(s.sip);
        let Link::Tcp { stream: c, .. } = &client.link else {
            unreachable!("a TCP client")
        };
        let mut c = c.try_clone().unwrap();
        let ok = options(&client, "sip:herald@127.0.0.1");
        let mut bad = options(&client, "sip:herald@127.0.0.1");
        if strip.is_empty() {
            bad = bad.replace("Content-Length: 0", "Content-Length: 100000");
        } else {
            bad = bad.replace(strip, "");
        }
        c.write_all(format!("{ok}{bad}").as_bytes()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        let got = String::from_utf8_lossy(&got);
        let codes: Vec<&str> = got
            .split("SIP/2.0 ")
            .skip(1)
            .map(|r| r.get(..3).unwrap_or(r))
            .collect();
        assert_eq!(codes, ["200", &code.to_string()[..]], "{got}");
        assert!(got.contains(";tag=framing"), "{got}");
    }
    s.wait_stats("answered garbage counted", |st| {
        st.get("edge.tcp_garbage_answered").copied() == Some(2)
    });
}

/// A burst against a one-slot hand-off queue: every request still gets a final answer,
/// either 200 or 503 with Retry-After (never silence), and the 503s are counted.
#[test]
fn full_handoff_queue_answers_503_with_retry_after() {
    let s = Server::start(&["--handoff-queue", "1", "--udp-steering", "hash"]);
    let mut clients: Vec<(Client, Vec<String>)> =
        (0..16).map(|_| (Client::udp(s.sip), Vec::new())).collect();
    for (i, (c, reqs)) in clients.iter_mut().enumerate() {
        for j in 0..8 {
            let p = format!("sip:burst{i}x{j}@example.com");
            let mut d = Dialog::new("sip:w@example.com", &p);
            let req = d.subscribe(c, 600);
            c.send_raw(req.as_bytes());
            reqs.push(req);
        }
    }
    let mut n503 = 0;
    for (c, reqs) in clients.iter_mut() {
        for req in reqs.iter() {
            // Retransmits until answered (a 503 answer is final too).
            let r = c.request(req);
            match r.code {
                Some(200) => {}
                Some(503) => {
                    assert!(r.has_header("Retry-After"), "{}", r.text());
                    n503 += 1;
                }
                other => panic!("unexpected {other:?}: {}", r.text()),
            }
        }
    }
    if n503 > 0 {
        s.wait_stats("503s counted", |st| {
            st.get("edge.handoff_full_503").copied().unwrap_or(0) >= 1
        });
    }
    eprintln!("burst of 128 SUBSCRIBEs with --handoff-queue 1: {n503} answered 503");
}
