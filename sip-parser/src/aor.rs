//! The presentity key (Address of Record) used to shard and index all presence state.
//!
//! Two URIs that RFC 3261 §19.1.4 calls equivalent for user and host must give the same key,
//! so the key is normalised: `sips` → `sip`, host lower-cased, port/params/headers dropped,
//! user escapes normalised (unreserved characters decoded, other escapes upper-case hex),
//! tel numbers stripped of visual separators. This is the only allocation in the crate.

use core::fmt;

use crate::error::UriError;
use crate::lex;
use crate::uri::{hex_val, Scheme, Uri};

/// Normalised `sip:user@host` or `tel:+number`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aor(Box<[u8]>);

impl Aor {
    pub fn from_uri(uri: &Uri<'_>) -> Aor {
        let mut out = Vec::with_capacity(5 + uri.user.map_or(0, <[u8]>::len) + uri.host.len());
        Aor::normalise_into(uri, &mut out);
        Aor(out.into_boxed_slice())
    }

    /// Appends the normalised form of `uri` (exactly the bytes `Aor::from_uri` would hold)
    /// to `out`: a hot path looks a presentity up through a reused buffer and allocates an
    /// `Aor` only when it must keep one ([`Aor::from_normalised`]).
    pub fn normalise_into(uri: &Uri<'_>, out: &mut Vec<u8>) {
        match uri.scheme {
            Scheme::Tel => {
                out.extend_from_slice(b"tel:");
                let n = uri.user.unwrap_or_default();
                out.extend(
                    n.iter()
                        .copied()
                        .filter(|c| !matches!(c, b'-' | b'.' | b'(' | b')'))
                        .map(|c| c.to_ascii_lowercase()),
                );
            }
            Scheme::Sip | Scheme::Sips => {
                out.extend_from_slice(b"sip:");
                if let Some(user) = uri.user {
                    push_normalised_user(out, user);
                    out.push(b'@');
                }
                // Copy then lower-case in place: one memcpy and a vectorised pass instead
                // of a capacity-checked push per byte.
                let from = out.len();
                out.extend_from_slice(uri.host);
                if let Some(host) = out.get_mut(from..) {
                    host.make_ascii_lowercase();
                }
            }
        }
    }

    /// An `Aor` from bytes [`Aor::normalise_into`] wrote. Other bytes make a key no
    /// request can match, never a wrong match: callers must pass normalised bytes.
    pub fn from_normalised(normalised: &[u8]) -> Aor {
        Aor(normalised.into())
    }

    /// Parses a URI (optionally in `<...>`) and normalises it.
    pub fn parse(raw: &[u8]) -> Result<Aor, UriError> {
        let raw = lex::trim(raw);
        let raw = match raw {
            [b'<', inner @ .., b'>'] => inner,
            _ => raw,
        };
        Uri::parse(raw).map(|u| Aor::from_uri(&u))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The user part (the number for tel), empty if none.
    pub fn user(&self) -> &[u8] {
        let rest = self.after_scheme();
        if self.0.starts_with(b"tel:") {
            return rest;
        }
        match memchr::memrchr(b'@', rest) {
            Some(at) => &rest[..at],
            None => b"",
        }
    }

    /// The host (empty for tel).
    pub fn host(&self) -> &[u8] {
        let rest = self.after_scheme();
        if self.0.starts_with(b"tel:") {
            return b"";
        }
        match memchr::memrchr(b'@', rest) {
            Some(at) => &rest[at + 1..],
            None => rest,
        }
    }

    fn after_scheme(&self) -> &[u8] {
        self.0.get(4..).unwrap_or_default()
    }
}

fn push_normalised_user(out: &mut Vec<u8>, user: &[u8]) {
    // Escapes are rare: without one the user is copied as is.
    if lex::find1(b'%', user).is_none() {
        out.extend_from_slice(user);
        return;
    }
    let mut i = 0;
    while i < user.len() {
        let b = user[i];
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                user.get(i + 1).copied().and_then(hex_val),
                user.get(i + 2).copied().and_then(hex_val),
            ) {
                let c = h * 16 + l;
                let unreserved = c.is_ascii_alphanumeric()
                    || matches!(
                        c,
                        b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
                    );
                if unreserved {
                    out.push(c);
                } else {
                    out.push(b'%');
                    out.push(HEX[usize::from(c >> 4)]);
                    out.push(HEX[usize::from(c & 15)]);
                }
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

impl AsRef<[u8]> for Aor {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Aor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Aor({})", self)
    }
}

impl fmt::Display for Aor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        let a = Aor::parse(b"sips:%61lice@AtLanTa.CoM:5061;transport=tcp?x=y").unwrap();
        assert_eq!(a.as_bytes(), b"sip:alice@atlanta.com");
        assert_eq!(a.user(), b"alice");
        assert_eq!(a.host(), b"atlanta.com");
        assert_eq!(Aor::parse(b"<sip:alice@atlanta.com>").unwrap(), a);
        assert_eq!(
            Aor::parse(b"sip:a%3bb@x").unwrap().as_bytes(),
            b"sip:a%3Bb@x"
        );
        let t = Aor::parse(b"tel:+1-201-555-0123;phone-context=x").unwrap();
        assert_eq!(t.as_bytes(), b"tel:+12015550123");
        assert_eq!(t.user(), b"+12015550123");
        assert_eq!(t.host(), b"");
        let h = Aor::parse(b"sip:Example.COM").unwrap();
        assert_eq!(h.as_bytes(), b"sip:example.com");
        assert_eq!(h.user(), b"");
        assert_eq!(h.host(), b"example.com");
        assert_eq!(a.to_string(), "sip:alice@atlanta.com");
    }

    #[test]
    fn normalise_into_appends_what_from_uri_holds() {
        for raw in [
            &b"sips:%61lice@AtLanTa.CoM:5061"[..],
            b"tel:+1-201-555-0123",
            b"sip:X.org",
        ] {
            let uri = Uri::parse(raw).unwrap();
            let mut buf = b"junk".to_vec();
            Aor::normalise_into(&uri, &mut buf);
            assert_eq!(&buf[4..], Aor::from_uri(&uri).as_bytes());
            assert_eq!(Aor::from_normalised(&buf[4..]), Aor::from_uri(&uri));
        }
    }
}
