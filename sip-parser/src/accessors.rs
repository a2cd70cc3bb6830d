//! Lazy typed accessors on `Message`: each parses one header value only when called, so the
//! server pays only for the headers it reads. Each returns `FieldError` naming the header.

use crate::error::FieldError;
use crate::event::Event;
use crate::header::{Header, HeaderKind};
use crate::lex;
use crate::media_type::MediaType;
use crate::message::{Lookup, Message};
use crate::method::Method;
use crate::name_addr::{Contact, NameAddr};
use crate::substate::SubscriptionState;
use crate::values::Values;
use crate::via::Via;

/// CSeq (RFC 3261 §20.16): sequence number and method of the transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CSeq<'b> {
    pub seq: u32,
    pub method: Method<'b>,
}

impl<'b> CSeq<'b> {
    pub fn parse(s: &'b [u8]) -> Option<CSeq<'b>> {
        let s = lex::trim(s);
        let (digits, rest) = lex::take_while(s, lex::is_digit);
        let method = lex::trim_start(rest);
        if method.len() == rest.len() || !lex::is_token_str(method) {
            return None;
        }
        Some(CSeq {
            seq: lex::parse_u32(digits)?,
            method: Method::from_bytes(method),
        })
    }
}

/// Type of the iterators returned by the typed list accessors.
pub type Typed<'h, 'b, T> = core::iter::Map<Values<'h, 'b>, fn(&'b [u8]) -> Result<T, FieldError>>;

macro_rules! typed_list {
    ($(#[$doc:meta])* $fn:ident, $kind:expr, $ty:ident, $parse:expr) => {
        $(#[$doc])*
        pub fn $fn(&self) -> Typed<'h, 'b, $ty<'b>> {
            fn parse<'b>(v: &'b [u8]) -> Result<$ty<'b>, FieldError> {
                $parse(v).ok_or(FieldError::Malformed($kind))
            }
            self.values($kind).map(parse as fn(&'b [u8]) -> Result<$ty<'b>, FieldError>)
        }
    };
}

impl<'h, 'b> Message<'h, 'b> {
    /// First value of `kind`: for list headers the first comma-separated element, otherwise
    /// the whole (trimmed) value of the first such header.
    pub fn header(&self, kind: HeaderKind) -> Option<&'b [u8]> {
        self.values(kind).next()
    }

    /// All values of `kind` in order, comma-split for list headers (`HeaderKind::is_list`).
    pub fn values(&self, kind: HeaderKind) -> Values<'h, 'b> {
        Values::new(self.candidates(kind), kind)
    }

    /// Values of a header by name, case-insensitive; full and compact names of known
    /// headers are equivalent. Use for headers without a `HeaderKind`.
    pub fn values_named<'n>(&self, name: &'n [u8]) -> Values<'n, 'b>
    where
        'h: 'n,
    {
        Values::named(self.headers, name)
    }

    /// First value of a header by name (see [`values_named`](Self::values_named)).
    pub fn header_named(&self, name: &[u8]) -> Option<&'b [u8]> {
        Values::named(self.headers, name).next()
    }

    /// Value of a header that must appear at most once; a repeat with a different value is
    /// `Duplicate` (RFC 4475 §3.1.2.19 wants those requests rejected).
    fn single(&self, kind: HeaderKind) -> Result<Option<&'b [u8]>, FieldError> {
        // The index answers the common cases (absent, or exactly once) without a scan.
        match self.lookup(kind) {
            Lookup::Absent => return Ok(None),
            Lookup::Once(i) => return Ok(self.headers.get(i).map(|h| h.value)),
            Lookup::Repeated(_) | Lookup::Unknown => {}
        }
        let mut it = self
            .candidates(kind)
            .iter()
            .filter(|h: &&Header<'b>| h.kind == kind);
        let Some(first) = it.next() else {
            return Ok(None);
        };
        if it.any(|h| h.value != first.value) {
            return Err(FieldError::Duplicate(kind));
        }
        Ok(Some(first.value))
    }

    fn required(&self, kind: HeaderKind) -> Result<&'b [u8], FieldError> {
        self.single(kind)?.ok_or(FieldError::Missing(kind))
    }

    fn number(&self, kind: HeaderKind) -> Result<Option<u32>, FieldError> {
        match self.single(kind)? {
            None => Ok(None),
            Some(v) => lex::parse_u32(v)
                .map(Some)
                .ok_or(FieldError::Malformed(kind)),
        }
    }

    /// Top-most Via.
    pub fn via(&self) -> Result<Via<'b>, FieldError> {
        let v = self
            .header(HeaderKind::Via)
            .ok_or(FieldError::Missing(HeaderKind::Via))?;
        Via::parse(v).ok_or(FieldError::Malformed(HeaderKind::Via))
    }

    typed_list!(
        /// Every Via, top-most first.
        vias, HeaderKind::Via, Via, Via::parse
    );

    pub fn from(&self) -> Result<NameAddr<'b>, FieldError> {
        NameAddr::parse(self.required(HeaderKind::From)?)
            .ok_or(FieldError::Malformed(HeaderKind::From))
    }

    pub fn to(&self) -> Result<NameAddr<'b>, FieldError> {
        NameAddr::parse(self.required(HeaderKind::To)?).ok_or(FieldError::Malformed(HeaderKind::To))
    }

    pub fn call_id(&self) -> Result<&'b [u8], FieldError> {
        let v = self.required(HeaderKind::CallId)?;
        if v.is_empty() || v.iter().any(|&b| b <= b' ' || b == 0x7f) {
            return Err(FieldError::Malformed(HeaderKind::CallId));
        }
        Ok(v)
    }

    pub fn cseq(&self) -> Result<CSeq<'b>, FieldError> {
        CSeq::parse(self.required(HeaderKind::CSeq)?).ok_or(FieldError::Malformed(HeaderKind::CSeq))
    }

    /// Max-Forwards, 0..=255 (RFC 3261 §20.22).
    pub fn max_forwards(&self) -> Result<Option<u32>, FieldError> {
        match self.number(HeaderKind::MaxForwards)? {
            Some(v) if v > 255 => Err(FieldError::Malformed(HeaderKind::MaxForwards)),
            v => Ok(v),
        }
    }

    /// First Contact value (`Ok(None)` if there is no Contact).
    pub fn contact(&self) -> Result<Option<Contact<'b>>, FieldError> {
        self.contacts().next().transpose()
    }

    typed_list!(
        /// Every Contact value.
        contacts, HeaderKind::Contact, Contact, Contact::parse
    );

    pub fn expires(&self) -> Result<Option<u32>, FieldError> {
        self.number(HeaderKind::Expires)
    }

    pub fn min_expires(&self) -> Result<Option<u32>, FieldError> {
        self.number(HeaderKind::MinExpires)
    }

    pub fn event(&self) -> Result<Option<Event<'b>>, FieldError> {
        match self.single(HeaderKind::Event)? {
            None => Ok(None),
            Some(v) => Event::parse(v)
                .map(Some)
                .ok_or(FieldError::Malformed(HeaderKind::Event)),
        }
    }

    typed_list!(
        /// Accept media ranges. An Accept header present with an empty value yields nothing
        /// (the client accepts no body); check `header(HeaderKind::Accept)` to tell it from
        /// an absent one.
        accept, HeaderKind::Accept, MediaType, MediaType::parse
    );

    pub fn content_type(&self) -> Result<Option<MediaType<'b>>, FieldError> {
        match self.single(HeaderKind::ContentType)? {
            None => Ok(None),
            Some(v) => MediaType::parse(v)
                .map(Some)
                .ok_or(FieldError::Malformed(HeaderKind::ContentType)),
        }
    }

    /// Retry-After delta-seconds (comment and parameters ignored).
    pub fn retry_after(&self) -> Result<Option<u32>, FieldError> {
        match self.single(HeaderKind::RetryAfter)? {
            None => Ok(None),
            Some(v) => {
                let (digits, _) = lex::take_while(v, lex::is_digit);
                lex::parse_u32(digits)
                    .map(Some)
                    .ok_or(FieldError::Malformed(HeaderKind::RetryAfter))
            }
        }
    }

    /// Checks what RFC 3261 §8.1.1 makes mandatory in every request before the engine looks
    /// at it: Via, From, To, Call-ID and CSeq present and well formed, CSeq method equal to
    /// the request method, Max-Forwards well formed if present. An `Ok` request still needs
    /// method-specific checks (Event, Expires...). For responses only Via/CSeq are checked.
    pub fn validate(&self) -> Result<(), FieldError> {
        self.via()?;
        for v in self.vias() {
            v?;
        }
        let cseq = self.cseq()?;
        self.call_id()?;
        self.from()?;
        self.to()?;
        if let Some(method) = self.method() {
            self.max_forwards()?;
            if cseq.method != method {
                return Err(FieldError::Mismatch(HeaderKind::CSeq));
            }
        }
        Ok(())
    }

    pub fn content_length(&self) -> Result<Option<usize>, FieldError> {
        Ok(self.number(HeaderKind::ContentLength)?.map(|v| v as usize))
    }

    pub fn sip_etag(&self) -> Option<&'b [u8]> {
        self.header(HeaderKind::SipETag)
    }

    pub fn sip_if_match(&self) -> Option<&'b [u8]> {
        self.header(HeaderKind::SipIfMatch)
    }

    pub fn subscription_state(&self) -> Result<Option<SubscriptionState<'b>>, FieldError> {
        match self.single(HeaderKind::SubscriptionState)? {
            None => Ok(None),
            Some(v) => SubscriptionState::parse(v)
                .map(Some)
                .ok_or(FieldError::Malformed(HeaderKind::SubscriptionState)),
        }
    }

    typed_list!(
        /// Route set, in order.
        routes, HeaderKind::Route, NameAddr, NameAddr::parse
    );

    typed_list!(
        /// Record-Route set, in order.
        record_routes, HeaderKind::RecordRoute, NameAddr, NameAddr::parse
    );

    /// Option tags the request requires (tokens as written).
    pub fn require(&self) -> Values<'h, 'b> {
        self.values(HeaderKind::Require)
    }

    pub fn supported(&self) -> Values<'h, 'b> {
        self.values(HeaderKind::Supported)
    }

    pub fn allow_events(&self) -> Values<'h, 'b> {
        self.values(HeaderKind::AllowEvents)
    }

    pub fn allow(&self) -> Values<'h, 'b> {
        self.values(HeaderKind::Allow)
    }

    pub fn unsupported(&self) -> Values<'h, 'b> {
        self.values(HeaderKind::Unsupported)
    }

    pub fn proxy_require(&self) -> Values<'h, 'b> {
        self.values(HeaderKind::ProxyRequire)
    }
}
