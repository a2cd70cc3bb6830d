//! Shared generators and helpers for the store tests.
#![allow(dead_code)]

use std::net::SocketAddr;

use proptest::prelude::*;
use store::wal::{Wal, WalBatch};
use store::*;

pub fn opts() -> StoreOptions {
    StoreOptions {
        initial_map_size: 1 << 20,
        max_map_size: 256 << 20,
        no_sync: true,
        ..Default::default()
    }
}

/// Proptest case count: modest by default, more via `STORE_PROPTEST_CASES`.
pub fn cases(default: u32) -> u32 {
    std::env::var("STORE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

pub fn millis() -> impl Strategy<Value = UnixMillis> {
    any::<u64>().prop_map(UnixMillis)
}

pub fn status() -> impl Strategy<Value = SubStatus> {
    prop_oneof![
        Just(SubStatus::Pending),
        Just(SubStatus::Active),
        Just(SubStatus::Terminated),
        Just(SubStatus::Rejected)
    ]
}

pub fn peer() -> impl Strategy<Value = SocketAddr> {
    any::<SocketAddr>()
}

pub fn presentity_record() -> impl Strategy<Value = PresentityRecord> {
    (
        millis(),
        millis(),
        any::<u64>(),
        bytes(30),
        bytes(40),
        bytes(300),
    )
        .prop_map(
            |(expires_at, received_at, order, etag, content_type, body)| PresentityRecord {
                expires_at,
                received_at,
                order,
                etag,
                content_type,
                body,
            },
        )
}

pub fn subscription_record() -> impl Strategy<Value = SubscriptionRecord> {
    (
        (
            bytes(16),
            proptest::option::of(bytes(8)),
            bytes(40),
            bytes(16),
            bytes(16),
            bytes(60),
            bytes(60),
        ),
        (
            any::<u32>(),
            any::<u32>(),
            bytes(100),
            bytes(60),
            any::<bool>(),
            peer(),
        ),
        (
            status(),
            proptest::option::of(bytes(12)),
            millis(),
            any::<u64>(),
        ),
    )
        .prop_map(
            |(
                (event, event_id, call_id, from_tag, to_tag, from_uri, to_uri),
                (local_cseq, remote_cseq, route_set, contact, tcp, peer),
                (status, reason, expires_at, version),
            )| SubscriptionRecord {
                event,
                event_id,
                call_id,
                from_tag,
                to_tag,
                from_uri,
                to_uri,
                local_cseq,
                remote_cseq,
                route_set,
                contact,
                transport: if tcp {
                    TransportKind::Tcp
                } else {
                    TransportKind::Udp
                },
                peer,
                status,
                reason,
                expires_at,
                version,
            },
        )
}

pub fn watcher_record() -> impl Strategy<Value = WatcherRecord> {
    (status(), bytes(20), millis()).prop_map(|(status, reason, inserted_at)| WatcherRecord {
        status,
        reason,
        inserted_at,
    })
}

pub fn xcap_record() -> impl Strategy<Value = XcapRecord> {
    (bytes(20), bytes(2000), millis()).prop_map(|(etag, doc, updated_at)| XcapRecord {
        etag,
        doc,
        updated_at,
    })
}

pub fn subscriber_record() -> impl Strategy<Value = SubscriberRecord> {
    ("[0-9a-f]{32}", "[0-9a-f]{0,64}").prop_map(|(ha1_md5, ha1_sha256)| SubscriberRecord {
        ha1_md5,
        ha1_sha256,
    })
}

/// A simple subscription record for fixed-shape tests.
pub fn sub(expires_at: u64, cseq: u32) -> SubscriptionRecord {
    SubscriptionRecord {
        event: b"presence".to_vec(),
        event_id: None,
        call_id: format!("call-{cseq}").into_bytes(),
        from_tag: b"ft".to_vec(),
        to_tag: b"tt".to_vec(),
        from_uri: b"<sip:w@example.com>".to_vec(),
        to_uri: b"<sip:p@example.com>".to_vec(),
        local_cseq: cseq,
        remote_cseq: cseq + 1,
        route_set: Vec::new(),
        contact: b"sip:w@192.0.2.1:5060".to_vec(),
        transport: TransportKind::Udp,
        peer: "192.0.2.1:5060".parse().unwrap(),
        status: SubStatus::Active,
        reason: None,
        expires_at: UnixMillis(expires_at),
        version: 1,
    }
}

pub fn pres(expires_at: u64, body: &[u8]) -> PresentityRecord {
    PresentityRecord {
        expires_at: UnixMillis(expires_at),
        received_at: UnixMillis(1),
        order: 1,
        etag: b"e".to_vec(),
        content_type: b"application/pidf+xml".to_vec(),
        body: body.to_vec(),
    }
}

/// A publication whose ETag names its body.
pub fn rec(body: &str, exp: u64) -> PresentityRecord {
    PresentityRecord {
        expires_at: UnixMillis(exp),
        received_at: UnixMillis(1),
        order: 1,
        etag: format!("etag-{body}").into_bytes(),
        content_type: b"application/pidf+xml".to_vec(),
        body: body.as_bytes().to_vec(),
    }
}

/// The key of `aor`'s one presence publication.
pub fn key(aor: &str) -> PresentityKey<'_> {
    PresentityKey {
        presentity: aor.as_bytes(),
        event: b"presence",
        pub_id: b"p1",
    }
}

/// One batch (one frame) of puts (`Some(body)`) and deletes (`None`), appended and flushed.
pub fn append(wal: &mut Wal, ops: &[(&str, Option<&str>)]) {
    let mut b = WalBatch::new();
    for (aor, body) in ops {
        match body {
            Some(body) => b.put_presentity(key(aor), &rec(body, 1_000)).unwrap(),
            None => b.delete_presentity(key(aor)).unwrap(),
        }
    }
    wal.append(&mut b).unwrap();
}
