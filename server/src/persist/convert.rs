//! Core records ⇄ store records. Core instants are Unix-epoch milliseconds (the edge feeds
//! wall-clock time to the core), so they map 1:1 onto `UnixMillis`.

use sip_parser::Aor;
use store::{
    ByteStr, PresentityKey, PresentityRecordRef, SubscriptionKey, SubscriptionRecordRef, UnixMillis,
};

use crate::core::tags::Token;
use crate::core::{
    Instant, PersistOp, PublicationRecord, SubStatus, SubscriptionRecord, Transport,
};
use store::StoreError;

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
            pub_id: r.id.as_bytes(),
        },
        PresentityRecordRef {
            expires_at: UnixMillis(r.expires_at.as_millis()),
            received_at,
            order: r.order,
            etag: ByteStr(r.etag.as_bytes()),
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
        event: k.event.to_vec().into(),
        id: Token::parse(k.pub_id)?,
        etag: Token::parse(&v.etag)?,
        expires_at: Instant::from_millis(v.expires_at.get().0),
        content_type: (&v.content_type[..]).into(),
        body: (&v.body[..]).into(),
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

/// Where [`write_ops`] sends the store form of persist ops: an LMDB write transaction
/// (periodic mode, final commits) or a write-ahead log batch (sync mode).
pub(super) trait OpSink {
    fn put_publication(
        &mut self,
        k: PresentityKey<'_>,
        v: &PresentityRecordRef<'_>,
    ) -> Result<(), StoreError>;
    fn delete_publication(&mut self, k: PresentityKey<'_>) -> Result<(), StoreError>;
    fn put_subscription(
        &mut self,
        k: SubscriptionKey<'_>,
        v: &SubscriptionRecordRef<'_>,
    ) -> Result<(), StoreError>;
    fn delete_subscription(&mut self, k: SubscriptionKey<'_>) -> Result<(), StoreError>;
}

impl OpSink for (&store::Store, &mut store::RwTxn<'_>) {
    fn put_publication(
        &mut self,
        k: PresentityKey<'_>,
        v: &PresentityRecordRef<'_>,
    ) -> Result<(), StoreError> {
        self.0.put_presentity(self.1, k, v)
    }
    fn delete_publication(&mut self, k: PresentityKey<'_>) -> Result<(), StoreError> {
        self.0.delete_presentity(self.1, k).map(drop)
    }
    fn put_subscription(
        &mut self,
        k: SubscriptionKey<'_>,
        v: &SubscriptionRecordRef<'_>,
    ) -> Result<(), StoreError> {
        self.0.put_subscription(self.1, k, v)
    }
    fn delete_subscription(&mut self, k: SubscriptionKey<'_>) -> Result<(), StoreError> {
        self.0.delete_subscription(self.1, k).map(drop)
    }
}

impl OpSink for store::wal::WalBatch {
    fn put_publication(
        &mut self,
        k: PresentityKey<'_>,
        v: &PresentityRecordRef<'_>,
    ) -> Result<(), StoreError> {
        self.put_presentity(k, v)
    }
    fn delete_publication(&mut self, k: PresentityKey<'_>) -> Result<(), StoreError> {
        self.delete_presentity(k)
    }
    fn put_subscription(
        &mut self,
        k: SubscriptionKey<'_>,
        v: &SubscriptionRecordRef<'_>,
    ) -> Result<(), StoreError> {
        store::wal::WalBatch::put_subscription(self, k, v)
    }
    fn delete_subscription(&mut self, k: SubscriptionKey<'_>) -> Result<(), StoreError> {
        store::wal::WalBatch::delete_subscription(self, k)
    }
}

/// Writes `ops` in order to `sink`. Returns how many were skipped because the store cannot
/// hold their key (logged; the core's limits should prevent it); other errors end it.
pub(super) fn write_ops(
    sink: &mut impl OpSink,
    ops: &[PersistOp],
    received_at: UnixMillis,
) -> Result<u64, StoreError> {
    let mut skipped = 0;
    let mut id_buf = [0u8; 16];
    for op in ops {
        let r = match op {
            PersistOp::PutPublication { rec, .. } => {
                let (k, v) = publication_to_store(rec, received_at);
                sink.put_publication(k, &v)
            }
            PersistOp::DeletePublication {
                presentity,
                event,
                id,
                ..
            } => sink.delete_publication(PresentityKey {
                presentity: presentity.as_bytes(),
                event,
                pub_id: id.as_bytes(),
            }),
            PersistOp::PutSubscription { rec, .. } => {
                let (k, v) = subscription_to_store(rec, &mut id_buf);
                sink.put_subscription(k, &v)
            }
            PersistOp::DeleteSubscription { id, presentity, .. } => {
                id_buf = dialog_id(*id);
                sink.delete_subscription(SubscriptionKey {
                    presentity: presentity.as_bytes(),
                    dialog_id: &id_buf,
                })
            }
        };
        match r {
            Ok(()) => {}
            Err(e @ StoreError::InvalidKey { .. }) => {
                skipped += 1;
                tracing::error!(seq = op.seq(), error = %e, "persist op skipped");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(skipped)
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
