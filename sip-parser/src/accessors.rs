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
        if method.len() == rest.len() {
            return None;
        }
        // A recognised method is a token; only extension methods need the byte check.
        let method = match Method::from_bytes(method) {
            Method::Other(m) if !lex::is_token_str(m) => return None,
            m => m,
        };
        Some(CSeq {
            seq: lex::parse_u32(digits)?,
            method,
        })
    }
}

/// Iterator returned by the typed list accessors (`vias`, `contacts`, `accept`, `routes`,
/// `record_routes`): every comma-separated element of every header of one kind, parsed.
///
/// Each element is first parsed in place by a prefix parser that stops where the element's
/// grammar ends; if the next byte is a comma (or the value ends) that is the element, with no
/// separate comma search. Anything else (comments, stray bytes, malformed input) falls back
/// to splitting at the top-level comma and parsing the element alone, so results and errors
/// are exactly those of split-then-parse (see the `typed_lists_match_split_then_parse` test).
#[derive(Clone)]
pub struct Typed<'h, 'b, T> {
    headers: core::slice::Iter<'h, Header<'b>>,
    kind: HeaderKind,
    rest: &'b [u8],
    _element: core::marker::PhantomData<fn() -> T>,
}

/// An element type of a comma-separated list header (see [`Typed`]).
pub(crate) trait ListElement<'b>: Sized {
    /// Parses the element at the start of `s` and says where it ends; `None` when unsure.
    fn parse_prefix(s: &'b [u8]) -> Option<(Self, usize)>;
    /// Parses exactly one (trimmed) element.
    fn parse_full(s: &'b [u8]) -> Option<Self>;
}

macro_rules! list_element {
    ($ty:ident) => {
        impl<'b> ListElement<'b> for $ty<'b> {
            #[inline(always)]
            fn parse_prefix(s: &'b [u8]) -> Option<(Self, usize)> {
                $ty::parse_prefix(s)
            }
            #[inline]
            fn parse_full(s: &'b [u8]) -> Option<Self> {
                $ty::parse(s)
            }
        }
    };
}

list_element!(Via);
list_element!(Contact);
list_element!(NameAddr);
list_element!(MediaType);

impl<T> core::fmt::Debug for Typed<'_, '_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Typed")
            .field("kind", &self.kind)
            .field("rest", &self.rest)
            .finish_non_exhaustive()
    }
}

impl<'h, 'b, T> Typed<'h, 'b, T> {
    fn new(headers: &'h [Header<'b>], kind: HeaderKind) -> Self {
        Typed {
            headers: headers.iter(),
            kind,
            rest: b"",
            _element: core::marker::PhantomData,
        }
    }
}

#[allow(private_bounds)]
impl<'b, T: ListElement<'b>> Iterator for Typed<'_, 'b, T> {
    type Item = Result<T, FieldError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            // Empty elements (`a, , b`) and whitespace are skipped, as `CommaSplit` does.
            let start = self.rest.iter().position(|&b| b != b',' && !lex::is_ws(b));
            let Some(start) = start else {
                let h = self.headers.find(|h| h.kind == self.kind)?;
                self.rest = h.value;
                continue;
            };
            let s = self.rest.get(start..).unwrap_or_default();
            if let Some((t, end)) = T::parse_prefix(s) {
                let after = lex::trim_start(s.get(end..).unwrap_or_default());
                if matches!(after.first(), None | Some(b',')) {
                    self.rest = after;
                    return Some(Ok(t));
                }
            }
            let (item, rest) = match lex::find_unquoted(s, b',', true) {
                Some(i) => (&s[..i], &s[i + 1..]),
                None => (s, &[][..]),
            };
            self.rest = rest;
            return Some(T::parse_full(lex::trim(item)).ok_or(FieldError::Malformed(self.kind)));
        }
    }
}

/// `NameAddr::parse` of a whole value: the in-place prefix parser when it consumes the
/// value, else the full parser (same result, see `Typed`).
fn name_addr(v: &[u8]) -> Option<NameAddr<'_>> {
    match NameAddr::parse_prefix(v) {
        Some((n, end)) if lex::trim(v.get(end..).unwrap_or_default()).is_empty() => Some(n),
        _ => NameAddr::parse(v),
    }
}

macro_rules! typed_list {
    ($(#[$doc:meta])* $fn:ident, $kind:expr, $ty:ident) => {
        $(#[$doc])*
        pub fn $fn(&self) -> Typed<'h, 'b, $ty<'b>> {
            Typed::new(self.candidates($kind), $kind)
        }
    };
}

impl<'h, 'b> Message<'h, 'b> {
    /// First value of `kind`: for list headers the first comma-separated element, otherwise
    /// the whole (trimmed) value of the first such header.
    pub fn header(&self, kind: HeaderKind) -> Option<&'b [u8]> {
        // A non-list header's first value is its first slot's value, which the index gives
        // without building an iterator (servers ask for From, To, Event... by name).
        if !kind.is_list() {
            match self.lookup(kind) {
                Lookup::Absent => return None,
                Lookup::Once(i) | Lookup::Repeated(i) => {
                    return self.headers.get(i).map(|h| h.value)
                }
                Lookup::Unknown => {}
            }
        }
        self.values(kind).next()
    }

    /// Whether a header of `kind` is present, even with an empty value (an empty Accept
    /// accepts nothing, while an absent one means the default).
    pub fn has(&self, kind: HeaderKind) -> bool {
        match self.lookup(kind) {
            Lookup::Absent => false,
            Lookup::Once(_) | Lookup::Repeated(_) => true,
            Lookup::Unknown => self.candidates(kind).iter().any(|h| h.kind == kind),
        }
    }

    /// The whole value of `kind`, not comma-split, when exactly one such header is present
    /// (`None` when absent or repeated): lets a caller compare a list header against its
    /// common single value (`Accept: application/pidf+xml`) before parsing its elements.
    pub fn sole_value(&self, kind: HeaderKind) -> Option<&'b [u8]> {
        match self.lookup(kind) {
            Lookup::Once(i) => self.headers.get(i).map(|h| h.value),
            Lookup::Absent | Lookup::Repeated(_) => None,
            Lookup::Unknown => {
                let mut it = self.headers.iter().filter(|h| h.kind == kind);
                let first = it.next()?;
                it.next().is_none().then_some(first.value)
            }
        }
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
    #[inline]
    fn single(&self, kind: HeaderKind) -> Result<Option<&'b [u8]>, FieldError> {
        // The index answers the common cases (absent, or exactly once) without a scan;
        // inlined, since every typed accessor of a single-valued header starts here.
        match self.lookup(kind) {
            Lookup::Absent => Ok(None),
            Lookup::Once(i) => Ok(self.headers.get(i).map(|h| h.value)),
            Lookup::Repeated(_) | Lookup::Unknown => self.single_scan(kind),
        }
    }

    /// [`single`](Self::single) when the kind repeats or there is no usable index.
    #[inline(never)]
    fn single_scan(&self, kind: HeaderKind) -> Result<Option<&'b [u8]>, FieldError> {
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

    #[inline]
    fn required(&self, kind: HeaderKind) -> Result<&'b [u8], FieldError> {
        self.single(kind)?.ok_or(FieldError::Missing(kind))
    }

    #[inline]
    fn number(&self, kind: HeaderKind) -> Result<Option<u32>, FieldError> {
        match self.single(kind)? {
            None => Ok(None),
            Some(v) => lex::parse_u32(v)
                .map(Some)
                .ok_or(FieldError::Malformed(kind)),
        }
    }

    /// Value of the first header of `kind`, straight from the index (`None`: absent or no
    /// usable index).
    #[inline]
    fn first_value(&self, kind: HeaderKind) -> Option<&'b [u8]> {
        match self.lookup(kind) {
            Lookup::Once(i) | Lookup::Repeated(i) => self.headers.get(i).map(|h| h.value),
            Lookup::Absent | Lookup::Unknown => None,
        }
    }

    /// The first element of a list header when it is the whole first value or ends at a
    /// comma, parsed in place: exactly what `Typed` yields first (it starts at the same
    /// byte and accepts the same prefix), without building the iterator. `None`: ask
    /// `Typed`.
    #[inline]
    fn first_element<T: ListElement<'b>>(&self, kind: HeaderKind) -> Option<T> {
        let v = self.first_value(kind)?;
        // `Typed` skips leading commas and whitespace (and empty values): leave those to it.
        if v.first().is_none_or(|&b| b == b',' || lex::is_ws(b)) {
            return None;
        }
        let (t, end) = T::parse_prefix(v)?;
        let after = lex::trim_start(v.get(end..).unwrap_or_default());
        matches!(after.first(), None | Some(b',')).then_some(t)
    }

    /// Top-most Via.
    pub fn via(&self) -> Result<Via<'b>, FieldError> {
        if let Some(v) = self.first_element(HeaderKind::Via) {
            return Ok(v);
        }
        self.vias()
            .next()
            .unwrap_or(Err(FieldError::Missing(HeaderKind::Via)))
    }

    typed_list!(
        /// Every Via, top-most first.
        vias, HeaderKind::Via, Via
    );

    pub fn from(&self) -> Result<NameAddr<'b>, FieldError> {
        name_addr(self.required(HeaderKind::From)?).ok_or(FieldError::Malformed(HeaderKind::From))
    }

    pub fn to(&self) -> Result<NameAddr<'b>, FieldError> {
        name_addr(self.required(HeaderKind::To)?).ok_or(FieldError::Malformed(HeaderKind::To))
    }

    pub fn call_id(&self) -> Result<&'b [u8], FieldError> {
        let v = self.required(HeaderKind::CallId)?;
        if v.is_empty() || lex::has_ctl_or_space(v) {
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
        if let Some(c) = self.first_element(HeaderKind::Contact) {
            return Ok(Some(c));
        }
        self.contacts().next().transpose()
    }

    typed_list!(
        /// Every Contact value.
        contacts, HeaderKind::Contact, Contact
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
        /// (the client accepts no body); check `has(HeaderKind::Accept)` to tell it from an
        /// absent one.
        accept, HeaderKind::Accept, MediaType
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
        routes, HeaderKind::Route, NameAddr
    );

    typed_list!(
        /// Record-Route set, in order.
        record_routes, HeaderKind::RecordRoute, NameAddr
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::Values;
    use proptest::prelude::*;

    /// Split-then-parse, the way the typed lists worked before `Typed` parsed in place.
    fn reference<'b, T>(
        headers: &[Header<'b>],
        kind: HeaderKind,
        full: fn(&'b [u8]) -> Option<T>,
    ) -> Vec<Result<T, FieldError>> {
        Values::new(headers, kind)
            .map(|v| full(v).ok_or(FieldError::Malformed(kind)))
            .collect()
    }

    fn check<'b, T: PartialEq + core::fmt::Debug + ListElement<'b>>(
        values: &[&'b [u8]],
        kind: HeaderKind,
    ) -> Result<(), TestCaseError> {
        let headers: Vec<Header<'b>> = values
            .iter()
            .map(|&value| Header {
                kind,
                name: b"x",
                value,
            })
            .collect();
        let fast: Vec<Result<T, _>> = Typed::new(&headers, kind).collect();
        prop_assert_eq!(fast, reference(&headers, kind, T::parse_full));
        Ok(())
    }

    fn piece() -> impl Strategy<Value = Vec<u8>> {
        let atoms: &[&[u8]] = &[
            b"SIP/2.0/UDP ",
            b"sip/2.0/tcp",
            b"SIP / 2.0 / TLS ",
            b"h.example.com",
            b"[2001:db8::1]",
            b":5060",
            b";branch=z9hG4bK1",
            b";rport",
            b";received=1.2.3.4",
            b";expires=60",
            b";q=0.5",
            b";x=\"a,b\"",
            b";x=\"<\"",
            b"sip:e@f;x=\"<\"",
            b"<sip:a@b;lr>",
            b"<sip:c@d,e>",
            b"sip:e@f",
            b"\"Bob, Jr\" ",
            b"Bob ",
            b"application/pidf+xml",
            b"text / plain",
            b"*/*",
            b"*",
            b", ",
            b",",
            b" ",
            b"\r\n ",
            b"(c, d)",
            b"\"",
            b"<",
            b">",
            b";",
            b"=",
            b"?",
            b"a",
        ];
        proptest::collection::vec(prop::sample::select(atoms), 0..8).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn typed_lists_match_split_then_parse(a in piece(), b in piece()) {
            let values: [&[u8]; 2] = [&a, &b];
            check::<Via>(&values, HeaderKind::Via)?;
            check::<Contact>(&values, HeaderKind::Contact)?;
            check::<NameAddr>(&values, HeaderKind::Route)?;
            check::<MediaType>(&values, HeaderKind::Accept)?;
            prop_assert_eq!(name_addr(lex::trim(&a)), NameAddr::parse(lex::trim(&a)));
            prop_assert_eq!(name_addr(lex::trim(&b)), NameAddr::parse(lex::trim(&b)));
        }
    }

    #[test]
    fn typed_lists_on_common_shapes() {
        let vias: [&[u8]; 1] = [b"SIP/2.0/UDP a:1;branch=z9hG4bKx, SIP/2.0/TCP b;rport=5 ,,"];
        let contacts: [&[u8]; 2] = [
            b"\"A, B\" <sip:a@b;x=1,2>;expires=5, sip:c@d;expires=7",
            b"Bob <sip:e@f>;+sip.instance=\"<urn:uuid:1>\", *",
        ];
        let accept: [&[u8]; 1] = [b"application/pidf+xml;q=1, text/plain , */*"];
        for (values, kind) in [
            (&vias[..], HeaderKind::Via),
            (&contacts[..], HeaderKind::Contact),
            (&accept[..], HeaderKind::Accept),
        ] {
            check::<Via>(values, kind).unwrap();
            check::<Contact>(values, kind).unwrap();
            check::<MediaType>(values, kind).unwrap();
        }
        let headers = [Header {
            kind: HeaderKind::Via,
            name: b"Via",
            value: vias[0],
        }];
        let n: Typed<'_, '_, Via<'_>> = Typed::new(&headers, HeaderKind::Via);
        assert_eq!(n.filter(Result::is_ok).count(), 2);
    }
}
