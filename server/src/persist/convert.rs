//! Core records ⇄ store records. Core instants are Unix-epoch milliseconds (the edge feeds
//! wall-clock time to the core), so they map 1:1 onto `UnixMillis`.

use sip_parser::Aor;
use store::{
    ByteStr, PresentityKey, PresentityRecordRef, SubscriptionKey, SubscriptionRecordRef, UnixMillis,
};

use crate::core::{Instant, PublicationRecord, SubStatus, SubscriptionRecord, Transport};

/// The `active_watchers` key part of a dialog: its core id as 16 lowercase hex digits
/// (readable in `herald store list`, and ordered like the id).
pub fn dialog_id(id: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    let hex = b"0123456789abcdef";
    for (i, b) in out.iter_mut().enumerate() {
        *b = hex[((id >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

pub(crate) fn parse_dialog_id(b: &[u8]) -> Option<u64> {
    if b.len() != 16 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(b).ok()?, 16).ok()
}

/// Key and value of a publication, borrowed from the core's record (the value archives
/// like `store::PresentityRecord`, without copying the body first).
pub fn publication_to_store(
    r: &PublicationRecord,
    received_at: UnixMillis,
) -> (PresentityKey<'_>, PresentityRecordRef<'_>) {
    (
        PresentityKey {
            presentity: r.presentity.as_bytes(),
            event: &r.event,
            pub_id: &r.id,
        },
        PresentityRecordRef {
            expires_at: UnixMillis(r.expires_at.as_millis()),
            received_at,
            order: r.order,
            etag: ByteStr(&r.etag),
            content_type: ByteStr(&r.content_type),
            body: ByteStr(&r.body),
        },
    )
}

/// Key and value of a subscription dialog (`key_buf` holds the dialog id), borrowed from
/// the core's record like [`publication_to_store`].
pub fn subscription_to_store<'a>(
    r: &'a SubscriptionRecord,
    key_buf: &'a mut [u8; 16],
) -> (SubscriptionKey<'a>, SubscriptionRecordRef<'a>) {
    *key_buf = dialog_id(r.id);
    (
        SubscriptionKey {
            presentity: r.presentity.as_bytes(),
            dialog_id: key_buf,
        },
        SubscriptionRecordRef {
            event: ByteStr(&r.event),
            event_id: r.event_id.as_deref().map(ByteStr),
            call_id: ByteStr(&r.call_id),
            from_tag: ByteStr(&r.from_tag),
            to_tag: ByteStr(&r.to_tag),
            from_uri: ByteStr(&r.from_uri),
            to_uri: ByteStr(&r.to_uri),
            local_cseq: r.local_cseq,
            remote_cseq: r.remote_cseq,
            route_set: ByteStr(&r.route_set),
            contact: ByteStr(&r.contact),
            transport: match r.transport {
                Transport::Udp => store::TransportKind::Udp,
                Transport::Tcp => store::TransportKind::Tcp,
            },
            peer: r.peer,
            status: match r.status {
                SubStatus::Active => store::SubStatus::Active,
                SubStatus::Pending => store::SubStatus::Pending,
                SubStatus::Terminated => store::SubStatus::Terminated,
            },
            reason: r.reason.as_deref().map(ByteStr),
            expires_at: UnixMillis(r.expires_at.as_millis()),
            version: r.version,
        },
    )
}

pub(crate) fn publication_from_store(
    k: PresentityKey<'_>,
    v: &store::ArchivedPresentityRecord,
) -> Option<PublicationRecord> {
    Some(PublicationRecord {
        presentity: Aor::parse(k.presentity).ok()?,
        event: k.event.to_vec(),
        id: k.pub_id.to_vec(),
        etag: v.etag.to_vec(),
        expires_at: Instant::from_millis(v.expires_at.get().0),
        content_type: v.content_type.to_vec(),
        body: v.body.to_vec(),
        order: v.order.to_native(),
    })
}

pub(crate) fn subscription_from_store(
    k: SubscriptionKey<'_>,
    v: &store::ArchivedSubscriptionRecord,
) -> Option<SubscriptionRecord> {
    Some(SubscriptionRecord {
        id: parse_dialog_id(k.dialog_id)?,
        presentity: Aor::parse(k.presentity).ok()?,
        event: v.event.to_vec(),
        event_id: v.event_id.as_ref().map(|b| b.to_vec()),
        call_id: v.call_id.to_vec(),
        from_tag: v.from_tag.to_vec(),
        to_tag: v.to_tag.to_vec(),
        from_uri: v.from_uri.to_vec(),
        to_uri: v.to_uri.to_vec(),
        remote_cseq: v.remote_cseq.to_native(),
        local_cseq: v.local_cseq.to_native(),
        route_set: v.route_set.to_vec(),
        contact: v.contact.to_vec(),
        transport: match v.transport.get() {
            store::TransportKind::Udp => Transport::Udp,
            store::TransportKind::Tcp => Transport::Tcp,
        },
        peer: v.peer.as_socket_addr(),
        status: match v.status.get() {
            store::SubStatus::Active => SubStatus::Active,
            store::SubStatus::Pending => SubStatus::Pending,
            store::SubStatus::Terminated | store::SubStatus::Rejected => SubStatus::Terminated,
        },
        reason: v.reason.as_ref().map(|b| b.to_vec()),
        expires_at: Instant::from_millis(v.expires_at.get().0),
        version: v.version.to_native(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialog_id_round_trips_in_order() {
        for id in [0u64, 1, 0xdead_beef, u64::MAX] {
            assert_eq!(parse_dialog_id(&dialog_id(id)), Some(id));
        }
        assert!(dialog_id(9) < dialog_id(10));
        assert_eq!(&dialog_id(0xab), b"00000000000000ab");
    }
}
