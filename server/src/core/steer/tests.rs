use super::interp::run;
use super::*;
use crate::core::tags::{aor_hash, Branch};
use crate::core::{route, Route};
use proptest::prelude::*;
use sip_parser::Limits;

fn request(method: &str, ruri: &str) -> Vec<u8> {
    format!(
        "{method} {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:bob@example.com>\r\n\
         From: <sip:alice@example.com>;tag=1928301774\r\n\
         Call-ID: a84b4c76e66710@pc33.example.com\r\n\
         CSeq: 1 {method}\r\n\
         Event: presence\r\n\
         Contact: <sip:alice@10.0.0.1:5060>\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn response(via_host: &str, branch: &[u8]) -> Vec<u8> {
    let mut m = format!("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {via_host};branch=").into_bytes();
    m.extend_from_slice(branch);
    m.extend_from_slice(
        b";rport=5060\r\nTo: <sip:alice@example.com>;tag=99\r\n\
          From: <sip:bob@example.com>;tag=hd0000000000000000000000001\r\n\
          Call-ID: x@y\r\nCSeq: 7 NOTIFY\r\nContent-Length: 0\r\n\r\n",
    );
    m
}

/// What `route` says, as the program would: the owner index, or `FALLBACK` when the kernel
/// may pick any shard (local work, or a message route drops).
fn oracle(msg: &[u8], shards: u16) -> Option<u32> {
    match route(msg, shards, &Limits::default()) {
        Route::Shard(s) => Some(u32::from(s.0)),
        _ => None,
    }
}

/// The property that makes steering worth it: whenever `route` names an owner and the
/// program names a shard, they agree. (Where `route` has no owner, any shard will do.)
fn agrees(msg: &[u8], shards: u16) -> Result<u32, TestCaseError> {
    let prog = program(shards).unwrap();
    let got = run(&prog, msg);
    if let (Some(owner), true) = (oracle(msg, shards), got != FALLBACK) {
        prop_assert_eq!(got, owner, "{}", String::from_utf8_lossy(msg));
    }
    Ok(got)
}

#[test]
fn fits_the_kernel_limit_for_any_shard_count() {
    assert!(program(1).is_none());
    for n in [2u16, 3, 4, 7, 64, 1024, u16::MAX] {
        let p = program(n).unwrap();
        assert!(p.len() <= asm::MAX_INSNS, "{} instructions", p.len());
    }
}

#[test]
fn steers_initial_requests_by_their_aor() {
    for shards in [2u16, 3, 8] {
        for (method, ruri, aor) in [
            (
                "SUBSCRIBE",
                "sip:alice@example.com",
                "sip:alice@example.com",
            ),
            ("PUBLISH", "sip:bob@example.com", "sip:bob@example.com"),
            (
                "SUBSCRIBE",
                "sip:Carol@EXAMPLE.com:5070;transport=udp",
                "sip:Carol@example.com",
            ),
            (
                "PUBLISH",
                "sip:user1234@10.1.2.3?x=y",
                "sip:user1234@10.1.2.3",
            ),
        ] {
            let msg = request(method, ruri);
            let got = agrees(&msg, shards).unwrap();
            assert_eq!(got, aor_hash(aor.as_bytes()) % u32::from(shards), "{ruri}");
        }
    }
}

#[test]
fn leaves_to_the_kernel_what_it_cannot_decide_exactly() {
    for ruri in [
        "sip:al%69ce@example.com",                      // escape: normalised by Aor
        "sip:alice:secret@example.com",                 // password
        "sip:Example.com",                              // no user: whole host lower-cased
        "sips:alice@example.com",                       // sips: -> sip:
        "tel:+1-555-0100",                              // tel
        "sip:a=b@example.com",                          // '=' in the user
        &format!("sip:{}@example.com", "u".repeat(70)), // longer than AOR_SCAN
    ] {
        let msg = request("SUBSCRIBE", ruri);
        assert_eq!(agrees(&msg, 2).unwrap(), FALLBACK, "{ruri}");
    }
    for msg in [
        request("OPTIONS", "sip:alice@example.com"),
        request("NOTIFY", "sip:alice@example.com"),
        request("SUBSCRIBEX", "sip:alice@example.com"),
        b"\r\n\r\n".to_vec(),
        Vec::new(),
    ] {
        assert_eq!(agrees(&msg, 2).unwrap(), FALLBACK);
    }
}

#[test]
fn steers_responses_to_our_notifies_by_branch() {
    for shards in [2u16, 5] {
        for hash in [0u32, 1, 0xdead_beef, u32::MAX] {
            let b = Branch::new(hash, 0x1234_5678_9abc_def0, 9);
            for host in ["127.0.0.1:5060", "presence.example.com", &"h".repeat(60)] {
                let msg = response(host, b.as_bytes());
                assert_eq!(agrees(&msg, shards).unwrap(), hash % u32::from(shards));
            }
        }
    }
    // A foreign branch, and ours beyond the scan window, fall back.
    let msg = response("127.0.0.1", b"z9hG4bK776asdhds");
    assert_eq!(agrees(&msg, 2).unwrap(), FALLBACK);
    let far = response(&"h".repeat(200), Branch::new(1, 2, 3).as_bytes());
    assert_eq!(agrees(&far, 2).unwrap(), FALLBACK);
}

/// Refreshes and unsubscribes go to our Contact (RFC 3261 §12.2.1.1): its per-shard user
/// part makes the program name the dialog's owner, the one its To-tag names.
#[test]
fn steers_in_dialog_requests_sent_to_our_contact() {
    use crate::core::tags::Token;
    use crate::core::{shard_contact, ShardId};
    for shards in [2u16, 3, 8] {
        for addr in [
            "sip:127.0.0.1:5060",
            "sip:Presence.Example.com",
            "sip:10.0.0.7:5070;transport=udp",
        ] {
            for s in 0..shards {
                let contact = shard_contact(addr.as_bytes(), ShardId(s), shards);
                let contact = String::from_utf8(contact).unwrap();
                assert!(contact.starts_with("sip:h"), "{contact}");
                let tag = Token::new(u32::from(s) + 7 * u32::from(shards), 42);
                let msg = String::from_utf8(request("SUBSCRIBE", &contact))
                    .unwrap()
                    .replace(
                        "To: <sip:bob@example.com>",
                        &format!(
                            "To: <sip:bob@example.com>;tag={}",
                            std::str::from_utf8(tag.as_bytes()).unwrap()
                        ),
                    );
                assert_eq!(oracle(msg.as_bytes(), shards), Some(u32::from(s)));
                assert_eq!(
                    agrees(msg.as_bytes(), shards).unwrap(),
                    u32::from(s),
                    "{contact}"
                );
            }
        }
    }
    // One shard, or an address with a user part: left as configured.
    assert_eq!(
        shard_contact(b"sip:127.0.0.1", ShardId(0), 1),
        b"sip:127.0.0.1"
    );
    assert_eq!(
        shard_contact(b"sip:presence@10.0.0.1", ShardId(1), 2),
        b"sip:presence@10.0.0.1"
    );
}

fn user() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9._!~*'()&=+$,;?/%:-]{1,20}").unwrap()
}

fn host() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9.-]{1,30}").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn names_the_owner_or_falls_back(
        method in prop_oneof![Just("SUBSCRIBE"), Just("PUBLISH")],
        user in user(),
        host in host(),
        tail in prop_oneof![Just(""), Just(":5060"), Just(";transport=udp"), Just("?a=b")],
        shards in 2u16..9,
    ) {
        let msg = request(method, &format!("sip:{user}@{host}{tail}"));
        agrees(&msg, shards)?;
    }

    #[test]
    fn plain_aors_are_always_steered(
        user in "[a-z0-9.]{1,24}",
        host in "[a-zA-Z0-9.-]{1,30}",
        shards in 2u16..9,
    ) {
        let msg = request("SUBSCRIBE", &format!("sip:{user}@{host}"));
        prop_assert_ne!(agrees(&msg, shards)?, FALLBACK);
    }

    #[test]
    fn any_bytes_end_in_a_valid_answer(bytes in proptest::collection::vec(any::<u8>(), 0..600),
                                        shards in 2u16..9) {
        let got = run(&program(shards).unwrap(), &bytes);
        prop_assert!(got == FALLBACK || got < u32::from(shards));
    }

    #[test]
    fn mangled_messages_never_misroute(msg in prop_oneof![
            Just(request("SUBSCRIBE", "sip:alice@example.com")),
            Just(response("127.0.0.1:5060", Branch::new(77, 5, 1).as_bytes())),
        ],
        at in 0usize..200, byte in any::<u8>(), shards in 2u16..5) {
        let mut m = msg.clone();
        if at < m.len() {
            m[at] = byte;
        }
        agrees(&m, shards)?;
    }
}
