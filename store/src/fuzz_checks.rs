//! The check behind the `wal` cargo-fuzz target (in `server/fuzz`), here so that the target
//! and `tests/fuzz_regressions.rs` (which replays every seed and past crash under `cargo
//! test`) run the same code. It panics on a bug and returns quietly otherwise.

use crate::keys::{PresentityKey, SubscriptionKey};
use crate::records::{
    ArchivedPresentityRecord, ArchivedSubscriptionRecord, PresentityRecord, SubStatus,
    SubscriptionRecord, TransportKind, UnixMillis,
};
use crate::tables::decode;
use crate::wal::{each_frame, find_last, ops, subscription_expiry, WalBatch, WalKey, WalTable};

/// The log key of the check's segments. Fixed, so a crash input replays; which also means
/// the fuzzer, seeing the checksum comparisons, can learn it, unlike a client.
const KEY: WalKey = WalKey::from_bytes(*b"herald fuzz key!");

/// The log reader on hostile bytes. The first byte picks the mode:
///
/// - even: the rest is a segment file as found on disk (segment number 7). Reading its
///   frames, their ops and every value they hold must not panic, whatever the bytes.
/// - odd: the rest describes batches of ops (fuzzer-chosen keys, values and deletes) that
///   are written as the frames of segment 7, then one byte of the written log is changed
///   (position and mask from the input's last three bytes, or none). Without damage every
///   written frame reads back. With damage in a frame's checksum or payload, every frame
///   but that one does (a changed byte never passes the checksum, and the frame's length
///   leads to the next). With damage in a magic or a length, the frames before it do, and
///   nothing unwritten follows them unless the length was hit and the fuzzer spelt a
///   frame with this check's fixed key (a client does not know its server's key: see
///   `wal::read_segment`).
pub fn wal_frames(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        read_anything(rest);
    } else {
        write_damage_read(rest);
    }
}

fn read_anything(bytes: &[u8]) {
    let mut payloads = Vec::new();
    each_frame(bytes, 7, Some(&KEY), |p| payloads.extend_from_slice(p));
    for op in ops(&payloads) {
        let Ok(op) = op else { break };
        if let Some(v) = op.value {
            match op.table {
                WalTable::Presentity => {
                    let _ = decode::<ArchivedPresentityRecord>("presentity", op.key, v);
                }
                WalTable::ActiveWatchers => {
                    let _ = subscription_expiry(v);
                    let _ = decode::<ArchivedSubscriptionRecord>("active_watchers", op.key, v);
                }
            }
        }
        let _ = find_last(&payloads, op.table, op.key);
    }
}

fn write_damage_read(spec: &[u8]) {
    let (spec, damage) = match spec.len().checked_sub(3) {
        Some(n) => spec.split_at(n),
        None => (spec, &[][..]),
    };
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut log = Vec::new();
    let mut batch = WalBatch::new();
    // One batch per `|`-separated part; one op per `,`-separated piece of it: its first
    // byte picks the kind, the rest is the key part and value text.
    for part in spec.split(|&b| b == b'|').take(16) {
        batch.clear();
        for piece in part.split(|&b| b == b',').take(8) {
            let Some((&kind, text)) = piece.split_first() else {
                continue;
            };
            let key_p = PresentityKey {
                presentity: text,
                event: b"presence",
                pub_id: b"p",
            };
            let key_s = SubscriptionKey {
                presentity: text,
                dialog_id: b"d",
            };
            let done = match kind % 4 {
                0 => batch.put_presentity(key_p, &publication(text)),
                1 => batch.delete_presentity(key_p),
                2 => batch.put_subscription(key_s, &dialog(text)),
                _ => batch.delete_subscription(key_s),
            };
            if done.is_err() {
                return; // a key part we refuse to write (NUL, empty): nothing to check
            }
        }
        if batch.is_empty() {
            continue;
        }
        let frame = batch.frame(7, &KEY).to_vec();
        frames.push(batch.payload().to_vec());
        log.extend_from_slice(&frame);
    }
    let damaged = match damage {
        [hi, lo, mask] if *mask != 0 && !log.is_empty() => {
            let at = usize::from(u16::from_be_bytes([*hi, *lo])) % log.len();
            log[at] ^= mask;
            // Which frame the changed byte belongs to, and where in it.
            let mut start = 0;
            frames.iter().enumerate().find_map(|(i, p)| {
                let end = start + 12 + p.len();
                let hit = (at < end).then_some((i, at - start));
                start = end;
                hit
            })
        }
        _ => None,
    };
    let mut read: Vec<Vec<u8>> = Vec::new();
    each_frame(&log, 7, Some(&KEY), |p| read.push(p.to_vec()));
    match damaged {
        None => assert_eq!(read, frames, "an intact log reads back whole"),
        Some((k, off)) if off >= 8 => {
            let mut want = frames.clone();
            want.remove(k);
            assert_eq!(read, want, "damage in frame {k}'s checksum or payload");
        }
        Some((k, off)) => {
            assert!(read.len() >= k, "frames before the damaged header are read");
            assert_eq!(read[..k], frames[..k], "frames before the damaged header");
            if off < 4 {
                assert_eq!(read.len(), k, "a damaged magic ends the log");
            }
        }
    }
    for p in &read {
        assert!(
            ops(p).all(|op| op.is_ok()),
            "an intact frame holds a malformed op"
        );
    }
}

fn publication(text: &[u8]) -> PresentityRecord {
    PresentityRecord {
        expires_at: UnixMillis(text.len() as u64),
        received_at: UnixMillis(1),
        order: 1,
        etag: text.to_vec(),
        content_type: b"application/pidf+xml".to_vec(),
        body: text.to_vec(),
    }
}

fn dialog(text: &[u8]) -> SubscriptionRecord {
    SubscriptionRecord {
        event: b"presence".to_vec(),
        event_id: None,
        call_id: text.to_vec(),
        from_tag: b"f".to_vec(),
        to_tag: b"t".to_vec(),
        from_uri: text.to_vec(),
        to_uri: text.to_vec(),
        local_cseq: 1,
        remote_cseq: 1,
        route_set: Vec::new(),
        contact: text.to_vec(),
        transport: TransportKind::Udp,
        peer: std::net::SocketAddr::from(([127, 0, 0, 1], 5060)),
        status: SubStatus::Active,
        reason: None,
        expires_at: UnixMillis(9),
        version: 1,
    }
}
