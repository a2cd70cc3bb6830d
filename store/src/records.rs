//! Record values, as stored in LMDB. Each owned struct (for writing) has an rkyv archived twin
//! (`Archived*`, for reading in place from the memory map without a copy).
//!
//! Key parts are NOT repeated in values: the key already holds them and a prefix scan
//! yields both (see `keys`).

use std::net::SocketAddr;

use rkyv::rancor::Fallible;
use rkyv::ser::{Allocator, Writer};
use rkyv::vec::{ArchivedVec, VecResolver};
use rkyv::{Archive, Deserialize, Place, Serialize};

/// Wall-clock milliseconds since the Unix epoch. Persisted times must survive a restart, so
/// they cannot be the core's monotonic `Instant`; the persistence driver converts.
#[derive(
    Archive,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// The current wall-clock time.
    pub fn now() -> UnixMillis {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        UnixMillis(d.as_millis() as u64)
    }
}

impl ArchivedUnixMillis {
    pub fn get(&self) -> UnixMillis {
        UnixMillis(self.0.to_native())
    }
}

/// Subscription / authorisation state (RFC 6665 Subscription-State values).
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[rkyv(compare(PartialEq), derive(Debug))]
pub enum SubStatus {
    Pending,
    Active,
    Terminated,
    /// Authorisation said no (watchers table: "rejected"/"blocked").
    Rejected,
}

impl ArchivedSubStatus {
    pub fn get(&self) -> SubStatus {
        match self {
            ArchivedSubStatus::Pending => SubStatus::Pending,
            ArchivedSubStatus::Active => SubStatus::Active,
            ArchivedSubStatus::Terminated => SubStatus::Terminated,
            ArchivedSubStatus::Rejected => SubStatus::Rejected,
        }
    }
}

impl SubStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SubStatus::Pending => "pending",
            SubStatus::Active => "active",
            SubStatus::Terminated => "terminated",
            SubStatus::Rejected => "rejected",
        }
    }
}

/// Transport of a subscription dialog's remote target.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[rkyv(compare(PartialEq), derive(Debug))]
pub enum TransportKind {
    Udp,
    Tcp,
}

impl ArchivedTransportKind {
    pub fn get(&self) -> TransportKind {
        match self {
            ArchivedTransportKind::Udp => TransportKind::Udp,
            ArchivedTransportKind::Tcp => TransportKind::Tcp,
        }
    }
}

/// `presentity` table value: one publication (key: presentity AoR, event, publication id).
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PresentityRecord {
    pub expires_at: UnixMillis,
    pub received_at: UnixMillis,
    /// Publication order within the presentity (newest = largest): keeps the aggregation
    /// order of several publications stable across restarts.
    pub order: u64,
    /// The current entity-tag (SIP-ETag). It changes with every refresh and modification
    /// while the key's publication id stays, so a refresh overwrites the record in place.
    pub etag: Vec<u8>,
    pub content_type: Vec<u8>,
    pub body: Vec<u8>,
}

/// `active_watchers` table value: one subscription dialog (key: presentity AoR, dialog id).
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionRecord {
    /// Event package, e.g. `presence`.
    pub event: Vec<u8>,
    /// Event header `id` parameter.
    pub event_id: Option<Vec<u8>>,
    pub call_id: Vec<u8>,
    /// The watcher's tag (From tag of its SUBSCRIBE).
    pub from_tag: Vec<u8>,
    /// Our tag (To tag of our 2xx).
    pub to_tag: Vec<u8>,
    /// The watcher: From header value of the SUBSCRIBE without tag (name-addr).
    pub from_uri: Vec<u8>,
    /// To header value of the SUBSCRIBE without tag (name-addr): NOTIFY From.
    pub to_uri: Vec<u8>,
    /// CSeq of the last NOTIFY we sent (or a bound above it); continues after a restart.
    pub local_cseq: u32,
    /// CSeq of the last SUBSCRIBE we accepted in this dialog.
    pub remote_cseq: u32,
    /// Record-Route values joined by ", " in received order (NOTIFY Route header).
    pub route_set: Vec<u8>,
    /// Remote target (Contact of the SUBSCRIBE): NOTIFY Request-URI.
    pub contact: Vec<u8>,
    pub transport: TransportKind,
    /// Where NOTIFYs go (received-from address of the SUBSCRIBE).
    pub peer: SocketAddr,
    pub status: SubStatus,
    /// Subscription-State reason.
    pub reason: Option<Vec<u8>>,
    pub expires_at: UnixMillis,
    /// Bumped on every change of the dialog.
    pub version: u64,
}

/// A borrowed byte string that archives exactly as a `Vec<u8>` field does
/// (`ArchivedVec<u8>`): the borrowed twins below write the same bytes as the owned records
/// without first copying every field into a vector of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteStr<'a>(pub &'a [u8]);

impl Archive for ByteStr<'_> {
    type Archived = ArchivedVec<u8>;
    type Resolver = VecResolver;

    fn resolve(&self, resolver: VecResolver, out: Place<ArchivedVec<u8>>) {
        ArchivedVec::resolve_from_len(self.0.len(), resolver, out);
    }
}

impl<S> Serialize<S> for ByteStr<'_>
where
    S: Fallible + Allocator + Writer + ?Sized,
{
    fn serialize(&self, serializer: &mut S) -> Result<VecResolver, S::Error> {
        ArchivedVec::<u8>::serialize_from_slice(self.0, serializer)
    }
}

/// Defines the borrowed twin of a record: same fields, bytes borrowed as [`ByteStr`],
/// archived to the owned record's archived type. (rkyv's derive with `as = ...` cannot
/// resolve the field types' archives through the lifetime, hence the hand-written impls.)
macro_rules! borrowed_twin {
    ($(#[$m:meta])* $name:ident => $archived:ident, $resolver:ident { $($field:ident: $ty:ty,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name<'a> {
            $(pub $field: $ty,)*
        }

        #[doc(hidden)]
        pub struct $resolver<'a> {
            $($field: <$ty as Archive>::Resolver,)*
        }

        impl<'a> Archive for $name<'a> {
            type Archived = $archived;
            type Resolver = $resolver<'a>;

            fn resolve(&self, resolver: $resolver<'a>, out: Place<$archived>) {
                rkyv::munge::munge!(let $archived { $($field,)* } = out);
                $(self.$field.resolve(resolver.$field, $field);)*
            }
        }

        impl<'a, S> Serialize<S> for $name<'a>
        where
            S: Fallible + Allocator + Writer + ?Sized,
        {
            fn serialize(&self, serializer: &mut S) -> Result<$resolver<'a>, S::Error> {
                Ok($resolver {
                    $($field: self.$field.serialize(serializer)?,)*
                })
            }
        }
    };
}

borrowed_twin! {
    /// [`PresentityRecord`] with borrowed bytes: archives to [`ArchivedPresentityRecord`],
    /// byte for byte what the owned record gives. The server writes publications with it,
    /// straight from the records its core handed over.
    PresentityRecordRef => ArchivedPresentityRecord, PresentityRecordRefResolver {
        expires_at: UnixMillis,
        received_at: UnixMillis,
        order: u64,
        etag: ByteStr<'a>,
        content_type: ByteStr<'a>,
        body: ByteStr<'a>,
    }
}

borrowed_twin! {
    /// [`SubscriptionRecord`] with borrowed bytes: archives to [`ArchivedSubscriptionRecord`]
    /// (see [`PresentityRecordRef`]).
    SubscriptionRecordRef => ArchivedSubscriptionRecord, SubscriptionRecordRefResolver {
        event: ByteStr<'a>,
        event_id: Option<ByteStr<'a>>,
        call_id: ByteStr<'a>,
        from_tag: ByteStr<'a>,
        to_tag: ByteStr<'a>,
        from_uri: ByteStr<'a>,
        to_uri: ByteStr<'a>,
        local_cseq: u32,
        remote_cseq: u32,
        route_set: ByteStr<'a>,
        contact: ByteStr<'a>,
        transport: TransportKind,
        peer: SocketAddr,
        status: SubStatus,
        reason: Option<ByteStr<'a>>,
        expires_at: UnixMillis,
        version: u64,
    }
}

impl PresentityRecord {
    /// The borrowed twin (writes the same bytes).
    pub fn as_ref(&self) -> PresentityRecordRef<'_> {
        PresentityRecordRef {
            expires_at: self.expires_at,
            received_at: self.received_at,
            order: self.order,
            etag: ByteStr(&self.etag),
            content_type: ByteStr(&self.content_type),
            body: ByteStr(&self.body),
        }
    }
}

impl SubscriptionRecord {
    /// The borrowed twin (writes the same bytes).
    pub fn as_ref(&self) -> SubscriptionRecordRef<'_> {
        SubscriptionRecordRef {
            event: ByteStr(&self.event),
            event_id: self.event_id.as_deref().map(ByteStr),
            call_id: ByteStr(&self.call_id),
            from_tag: ByteStr(&self.from_tag),
            to_tag: ByteStr(&self.to_tag),
            from_uri: ByteStr(&self.from_uri),
            to_uri: ByteStr(&self.to_uri),
            local_cseq: self.local_cseq,
            remote_cseq: self.remote_cseq,
            route_set: ByteStr(&self.route_set),
            contact: ByteStr(&self.contact),
            transport: self.transport,
            peer: self.peer,
            status: self.status,
            reason: self.reason.as_deref().map(ByteStr),
            expires_at: self.expires_at,
            version: self.version,
        }
    }
}

/// `watchers` table value: authorisation of a watcher for a presentity+event.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WatcherRecord {
    pub status: SubStatus,
    pub reason: Vec<u8>,
    pub inserted_at: UnixMillis,
}

/// `xcap` table value: one XCAP document.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct XcapRecord {
    pub etag: Vec<u8>,
    pub doc: Vec<u8>,
    pub updated_at: UnixMillis,
}

impl ArchivedXcapRecord {
    /// The entity tag as text, if it can be one: one or more `etagc` bytes of RFC 9110
    /// §8.8.3 without obs-text (`!` and `#`–`~`), which is all herald ever writes. LMDB has
    /// no checksum, so a disk fault inside the tag passes validation; a tag outside this set
    /// would be copied into an HTTP `ETag` header or an xcap-directory attribute as is (a CR
    /// LF splits the response), so readers treat such a record as unreadable.
    pub fn etag_str(&self) -> Option<&str> {
        let tag = self.etag.as_slice();
        let etagc = |b: &u8| *b == 0x21 || (0x23..=0x7e).contains(b);
        if tag.is_empty() || !tag.iter().all(etagc) {
            return None;
        }
        std::str::from_utf8(tag).ok()
    }
}

/// `subscriber` table value: digest credentials (lowercase hex, as OpenSIPS stores `ha1`).
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SubscriberRecord {
    /// MD5(user:realm:password), hex.
    pub ha1_md5: String,
    /// SHA-256(user:realm:password), hex (RFC 7616); empty if not provisioned.
    pub ha1_sha256: String,
}

macro_rules! to_owned_impl {
    ($($archived:ident => $owned:ident),*) => {$(
        impl $archived {
            /// Copies the archived value out of the map into its owned form.
            pub fn to_owned_record(&self) -> $owned {
                // Deserialising a validated archive of plain data cannot fail.
                rkyv::deserialize::<$owned, rkyv::rancor::Error>(self).expect("deserialise validated archive")
            }
        }
    )*};
}

to_owned_impl!(
    ArchivedPresentityRecord => PresentityRecord,
    ArchivedSubscriptionRecord => SubscriptionRecord,
    ArchivedWatcherRecord => WatcherRecord,
    ArchivedXcapRecord => XcapRecord,
    ArchivedSubscriberRecord => SubscriberRecord
);
