//! Header names: the kinds herald cares about, their canonical and compact spellings, and the
//! case-insensitive recognition done once per header line while indexing.
//!
//! Recognition switches on the name length first, so each header costs at most a couple of
//! short case-insensitive compares (no hashing, no allocation).

use core::fmt;

/// A header the parser recognises; everything else is `Other` (match on `Header::name`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum HeaderKind {
    Via,
    From,
    To,
    CallId,
    CSeq,
    MaxForwards,
    Contact,
    Expires,
    MinExpires,
    Event,
    Accept,
    ContentType,
    ContentLength,
    SipETag,
    SipIfMatch,
    SubscriptionState,
    Route,
    RecordRoute,
    Require,
    Supported,
    AllowEvents,
    Allow,
    Unsupported,
    ProxyRequire,
    RetryAfter,
    UserAgent,
    Server,
    // Added beyond the contract so every compact form maps to a kind.
    ContentEncoding,
    Subject,
    ReferTo,
    ReferredBy,
    SessionExpires,
    Identity,
    Other,
}

impl HeaderKind {
    /// Canonical spelling, used by the writers and in error messages.
    pub const fn name(self) -> &'static str {
        match self {
            HeaderKind::Via => "Via",
            HeaderKind::From => "From",
            HeaderKind::To => "To",
            HeaderKind::CallId => "Call-ID",
            HeaderKind::CSeq => "CSeq",
            HeaderKind::MaxForwards => "Max-Forwards",
            HeaderKind::Contact => "Contact",
            HeaderKind::Expires => "Expires",
            HeaderKind::MinExpires => "Min-Expires",
            HeaderKind::Event => "Event",
            HeaderKind::Accept => "Accept",
            HeaderKind::ContentType => "Content-Type",
            HeaderKind::ContentLength => "Content-Length",
            HeaderKind::SipETag => "SIP-ETag",
            HeaderKind::SipIfMatch => "SIP-If-Match",
            HeaderKind::SubscriptionState => "Subscription-State",
            HeaderKind::Route => "Route",
            HeaderKind::RecordRoute => "Record-Route",
            HeaderKind::Require => "Require",
            HeaderKind::Supported => "Supported",
            HeaderKind::AllowEvents => "Allow-Events",
            HeaderKind::Allow => "Allow",
            HeaderKind::Unsupported => "Unsupported",
            HeaderKind::ProxyRequire => "Proxy-Require",
            HeaderKind::RetryAfter => "Retry-After",
            HeaderKind::UserAgent => "User-Agent",
            HeaderKind::Server => "Server",
            HeaderKind::ContentEncoding => "Content-Encoding",
            HeaderKind::Subject => "Subject",
            HeaderKind::ReferTo => "Refer-To",
            HeaderKind::ReferredBy => "Referred-By",
            HeaderKind::SessionExpires => "Session-Expires",
            HeaderKind::Identity => "Identity",
            HeaderKind::Other => "(other)",
        }
    }

    /// Whether the grammar allows several comma-separated values on one line (RFC 3261 §7.3.1),
    /// i.e. whether `Message::values` splits this header at top-level commas.
    pub const fn is_list(self) -> bool {
        matches!(
            self,
            HeaderKind::Via
                | HeaderKind::Contact
                | HeaderKind::Route
                | HeaderKind::RecordRoute
                | HeaderKind::Require
                | HeaderKind::Supported
                | HeaderKind::AllowEvents
                | HeaderKind::Allow
                | HeaderKind::Accept
                | HeaderKind::Unsupported
                | HeaderKind::ProxyRequire
                | HeaderKind::ContentEncoding
        )
    }

    /// Recognises a header name, full or compact, ignoring ASCII case.
    #[inline(always)]
    pub fn from_name(name: &[u8]) -> HeaderKind {
        classify(name)
    }
}

impl fmt::Display for HeaderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One header field as indexed by `parse`: borrowed name and trimmed value.
/// The value may contain folded CRLF + WSP; accessors treat it as whitespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'b> {
    pub kind: HeaderKind,
    pub name: &'b [u8],
    pub value: &'b [u8],
}

impl Header<'_> {
    /// Filler for slot arrays: `[Header::EMPTY; 64]`.
    pub const EMPTY: Header<'static> = Header {
        kind: HeaderKind::Other,
        name: b"",
        value: b"",
    };
}

/// Eight bytes of `a` from `at`, zero-padded past its end.
#[inline(always)]
fn word_at(a: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    let src = a.get(at..).unwrap_or_default();
    let n = src.len().min(8);
    w[..n].copy_from_slice(&src[..n]);
    u64::from_le_bytes(w)
}

/// The pattern word and case-fold mask (0x20 on letters) of `lower` from `at`.
#[inline(always)]
fn pattern_at(lower: &[u8], at: usize) -> (u64, u64) {
    let (mut p, mut fold) = (0u64, 0u64);
    let mut i = 0;
    while i < 8 {
        if let Some(&c) = lower.get(at + i) {
            p |= u64::from(c) << (8 * i);
            if c.is_ascii_lowercase() {
                fold |= 0x20 << (8 * i);
            }
        }
        i += 1;
    }
    (p, fold)
}

/// `a` equals the lower-case ASCII pattern `lower`, ignoring case: letters are compared
/// after OR-ing 0x20, every other byte exactly, so the result is exact for any input. Eight
/// bytes per compare; with `lower` a constant the pattern words fold away at compile time.
#[inline(always)]
fn eq<const L: usize>(a: &[u8], lower: &[u8; L]) -> bool {
    if a.len() != L {
        return false;
    }
    let mut at = 0;
    while at < L {
        // The last word overlaps the previous one rather than reading past the end.
        let start = if at + 8 > L && L >= 8 { L - 8 } else { at };
        let (p, fold) = pattern_at(lower, start);
        if word_at(a, start) | fold != p {
            return false;
        }
        at += 8;
    }
    true
}

/// Always inlined: it runs once per header line inside `parse`'s loop, where a call forces
/// the loop's state to memory (a thin-LTO build that left it out of line spent ~80 more
/// instructions per message).
#[inline(always)]
fn classify(n: &[u8]) -> HeaderKind {
    use HeaderKind as K;
    match n.len() {
        1 => match n[0] | 0x20 {
            b'i' => K::CallId,
            b'm' => K::Contact,
            b'e' => K::ContentEncoding,
            b'l' => K::ContentLength,
            b'c' => K::ContentType,
            b'f' => K::From,
            b's' => K::Subject,
            b'k' => K::Supported,
            b't' => K::To,
            b'v' => K::Via,
            b'o' => K::Event,
            b'u' => K::AllowEvents,
            b'r' => K::ReferTo,
            b'b' => K::ReferredBy,
            b'x' => K::SessionExpires,
            b'y' => K::Identity,
            _ => K::Other,
        },
        2 if eq(n, b"to") => K::To,
        3 if eq(n, b"via") => K::Via,
        4 if eq(n, b"from") => K::From,
        4 if eq(n, b"cseq") => K::CSeq,
        5 if eq(n, b"event") => K::Event,
        5 if eq(n, b"allow") => K::Allow,
        5 if eq(n, b"route") => K::Route,
        6 if eq(n, b"accept") => K::Accept,
        6 if eq(n, b"server") => K::Server,
        7 => match n[0] | 0x20 {
            b'c' if eq(n, b"call-id") => K::CallId,
            b'c' if eq(n, b"contact") => K::Contact,
            b'e' if eq(n, b"expires") => K::Expires,
            b'r' if eq(n, b"require") => K::Require,
            b's' if eq(n, b"subject") => K::Subject,
            _ => K::Other,
        },
        8 if eq(n, b"sip-etag") => K::SipETag,
        8 if eq(n, b"refer-to") => K::ReferTo,
        8 if eq(n, b"identity") => K::Identity,
        9 if eq(n, b"supported") => K::Supported,
        10 if eq(n, b"user-agent") => K::UserAgent,
        11 => match n[0] | 0x20 {
            b'm' if eq(n, b"min-expires") => K::MinExpires,
            b'r' if eq(n, b"retry-after") => K::RetryAfter,
            b'u' if eq(n, b"unsupported") => K::Unsupported,
            b'r' if eq(n, b"referred-by") => K::ReferredBy,
            _ => K::Other,
        },
        12 => match n[0] | 0x20 {
            b'c' if eq(n, b"content-type") => K::ContentType,
            b'm' if eq(n, b"max-forwards") => K::MaxForwards,
            b'a' if eq(n, b"allow-events") => K::AllowEvents,
            b'r' if eq(n, b"record-route") => K::RecordRoute,
            b's' if eq(n, b"sip-if-match") => K::SipIfMatch,
            _ => K::Other,
        },
        13 if eq(n, b"proxy-require") => K::ProxyRequire,
        14 if eq(n, b"content-length") => K::ContentLength,
        15 if eq(n, b"session-expires") => K::SessionExpires,
        16 if eq(n, b"content-encoding") => K::ContentEncoding,
        18 if eq(n, b"subscription-state") => K::SubscriptionState,
        _ => K::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[HeaderKind] = &[
        HeaderKind::Via,
        HeaderKind::From,
        HeaderKind::To,
        HeaderKind::CallId,
        HeaderKind::CSeq,
        HeaderKind::MaxForwards,
        HeaderKind::Contact,
        HeaderKind::Expires,
        HeaderKind::MinExpires,
        HeaderKind::Event,
        HeaderKind::Accept,
        HeaderKind::ContentType,
        HeaderKind::ContentLength,
        HeaderKind::SipETag,
        HeaderKind::SipIfMatch,
        HeaderKind::SubscriptionState,
        HeaderKind::Route,
        HeaderKind::RecordRoute,
        HeaderKind::Require,
        HeaderKind::Supported,
        HeaderKind::AllowEvents,
        HeaderKind::Allow,
        HeaderKind::Unsupported,
        HeaderKind::ProxyRequire,
        HeaderKind::RetryAfter,
        HeaderKind::UserAgent,
        HeaderKind::Server,
        HeaderKind::ContentEncoding,
        HeaderKind::Subject,
        HeaderKind::ReferTo,
        HeaderKind::ReferredBy,
        HeaderKind::SessionExpires,
        HeaderKind::Identity,
    ];

    #[test]
    fn canonical_names_round_trip_in_any_case() {
        for &k in ALL {
            assert_eq!(HeaderKind::from_name(k.name().as_bytes()), k, "{k}");
            let upper = k.name().to_ascii_uppercase();
            assert_eq!(HeaderKind::from_name(upper.as_bytes()), k);
            let lower = k.name().to_ascii_lowercase();
            assert_eq!(HeaderKind::from_name(lower.as_bytes()), k);
        }
    }

    #[test]
    fn near_misses_are_other() {
        for &k in ALL {
            let name = k.name().as_bytes();
            for i in 0..name.len() {
                for repl in [b'@', b'`', b'{', b'-' ^ 0x20, name[i] ^ 0x20, name[i] ^ 1] {
                    let mut n = name.to_vec();
                    n[i] = repl;
                    let same = n.eq_ignore_ascii_case(name);
                    let got = HeaderKind::from_name(&n);
                    assert_eq!(got == k, same, "{}", String::from_utf8_lossy(&n));
                }
            }
            let longer = [name, b"x"].concat();
            assert_ne!(HeaderKind::from_name(&longer), k);
            assert_ne!(HeaderKind::from_name(&name[1..]), k);
        }
    }

    #[test]
    fn compact_forms() {
        let pairs: &[(&[u8], HeaderKind)] = &[
            (b"i", HeaderKind::CallId),
            (b"M", HeaderKind::Contact),
            (b"e", HeaderKind::ContentEncoding),
            (b"l", HeaderKind::ContentLength),
            (b"c", HeaderKind::ContentType),
            (b"f", HeaderKind::From),
            (b"s", HeaderKind::Subject),
            (b"k", HeaderKind::Supported),
            (b"t", HeaderKind::To),
            (b"V", HeaderKind::Via),
            (b"o", HeaderKind::Event),
            (b"u", HeaderKind::AllowEvents),
            (b"r", HeaderKind::ReferTo),
            (b"b", HeaderKind::ReferredBy),
            (b"x", HeaderKind::SessionExpires),
            (b"y", HeaderKind::Identity),
            (b"z", HeaderKind::Other),
            (b"X-Foo", HeaderKind::Other),
            (b"", HeaderKind::Other),
        ];
        for (n, k) in pairs {
            assert_eq!(HeaderKind::from_name(n), *k);
        }
    }
}
