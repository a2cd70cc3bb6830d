//! SIP, SIPS (RFC 3261 §19.1) and tel (RFC 3966) URIs, borrowed, plus the §19.1.4
//! equivalence rules used to match Request-URIs and presentities.

use crate::error::UriError;
use crate::lex;
use crate::params::{self, Params};
use crate::via::split_host;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
}

/// A parsed URI. For `tel:` URIs the number is in `user` and `host` is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'b> {
    pub scheme: Scheme,
    pub user: Option<&'b [u8]>,
    pub password: Option<&'b [u8]>,
    /// As written (IPv6 references keep brackets); compare case-insensitively.
    pub host: &'b [u8],
    pub port: Option<u16>,
    /// Raw `;name=value` section starting at the first `;` (empty if none).
    pub params: &'b [u8],
    /// Raw headers after `?`, without the `?` (empty if none).
    pub headers: &'b [u8],
}

impl<'b> Uri<'b> {
    /// Whether `s` can be the Request-URI of a request we send inside a dialog (the remote
    /// target taken from a Contact): a `sip:` or `sips:` URI with something after the
    /// scheme and none of the bytes a start line cannot carry (whitespace, controls, `<`,
    /// `>`, `"`). Why not [`Uri::parse`]: this is all a NOTIFY's start line needs, and
    /// every SUBSCRIBE pays it (a full parse of a short Contact costs ~380 instructions,
    /// this ~40).
    pub fn is_sendable(s: &[u8]) -> bool {
        let rest = match s {
            [a, b, c, b':', rest @ ..] if [*a, *b, *c].eq_ignore_ascii_case(b"sip") => rest,
            [a, b, c, d, b':', rest @ ..] if [*a, *b, *c, *d].eq_ignore_ascii_case(b"sips") => rest,
            _ => return false,
        };
        !rest.is_empty() && !lex::has_non_request_uri_byte(rest)
    }

    pub fn parse(s: &'b [u8]) -> Result<Uri<'b>, UriError> {
        if s.is_empty() {
            return Err(UriError::Empty);
        }
        let colon = lex::find1(b':', s).ok_or(UriError::UnsupportedScheme)?;
        let (scheme, rest) = (&s[..colon], &s[colon + 1..]);
        // Scheme names are at most four bytes: one folded-word compare each.
        const SIP: Option<u64> = lex::folded_word_const(b"sip");
        const SIPS: Option<u64> = lex::folded_word_const(b"sips");
        const TEL: Option<u64> = lex::folded_word_const(b"tel");
        let folded = lex::folded_prefix(s, colon);
        let scheme = match (scheme.len(), folded) {
            (3, f) if f == SIP => Scheme::Sip,
            (4, f) if f == SIPS => Scheme::Sips,
            (3, f) if f == TEL => return parse_tel(rest),
            _ => return Err(UriError::UnsupportedScheme),
        };
        let (user, password, hostport) = match lex::find1(b'@', rest) {
            Some(at) => {
                let userinfo = &rest[..at];
                // One pass finds the end of the user (its first byte outside the user
                // class) and whether it has escapes to check; the user ends at the first
                // `:` (not in the class), so any other stop byte makes it invalid.
                let mut end = userinfo.len();
                let mut escapes = false;
                for (i, &b) in userinfo.iter().enumerate() {
                    if !lex::is_uri_user(b) {
                        end = i;
                        break;
                    }
                    escapes |= b == b'%';
                }
                let (user, password) = match userinfo.split_at_checked(end) {
                    Some((user, [b':', password @ ..])) => (user, Some(password)),
                    Some((user, [])) => (user, None),
                    _ => return Err(UriError::InvalidUser),
                };
                if user.is_empty() || escapes && !valid_escapes(user) {
                    return Err(UriError::InvalidUser);
                }
                if let Some(p) = password {
                    let ok = |b: u8| {
                        lex::is_uri_user(b) && !matches!(b, b';' | b'?' | b'/') || b == b':'
                    };
                    if !p.iter().all(|&b| ok(b)) || !valid_escapes(p) {
                        return Err(UriError::InvalidUser);
                    }
                }
                (Some(user), password, &rest[at + 1..])
            }
            None => (None, None, rest),
        };
        let (host, rest) = split_host(hostport).ok_or(UriError::InvalidHost)?;
        let (port, rest) = match rest.split_first() {
            Some((b':', r)) => {
                let (digits, r) = lex::take_while(r, lex::is_digit);
                (
                    Some(lex::parse_u16(digits).ok_or(UriError::InvalidPort)?),
                    r,
                )
            }
            _ => (None, rest),
        };
        if rest.is_empty() {
            // No parameters or headers (an AoR, most Request-URIs): nothing left to check.
            return Ok(Uri {
                scheme,
                user,
                password,
                host,
                port,
                params: rest,
                headers: &[],
            });
        }
        let (params, headers) = match lex::find1(b'?', rest) {
            Some(q) => (&rest[..q], &rest[q + 1..]),
            None => (rest, &[][..]),
        };
        if !params.is_empty() && params[0] != b';' {
            return Err(UriError::InvalidHost);
        }
        if !params.iter().all(|&b| lex::is_uri_param(b) && b != b'?')
            || !headers.iter().all(|&b| lex::is_uri_param(b))
            || !valid_escapes(params)
            || !valid_escapes(headers)
            || Params::new(params).any(|(n, _)| n.is_empty())
        {
            return Err(UriError::InvalidParams);
        }
        Ok(Uri {
            scheme,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// As [`parse`](Self::parse) for a Request-URI, where `?headers` are not allowed.
    pub fn parse_request_uri(s: &'b [u8]) -> Result<Uri<'b>, UriError> {
        let uri = Uri::parse(s)?;
        if !uri.headers.is_empty() || s.last() == Some(&b'?') {
            return Err(UriError::HeadersNotAllowed);
        }
        Ok(uri)
    }

    pub fn param(&self, name: &[u8]) -> Option<Option<&'b [u8]>> {
        params::param(self.params, name)
    }

    /// URI comparison of RFC 3261 §19.1.4 (and RFC 3966 §4 for tel).
    pub fn equivalent(&self, other: &Uri<'_>) -> bool {
        if self.scheme != other.scheme {
            return false;
        }
        if self.scheme == Scheme::Tel {
            return tel_equivalent(self, other);
        }
        // userinfo: case-sensitive, escapes decoded.
        if !opt_eq(self.user, other.user, |a, b| escaped_eq(a, b, false))
            || !opt_eq(self.password, other.password, |a, b| {
                escaped_eq(a, b, false)
            })
        {
            return false;
        }
        if !escaped_eq(self.host, other.host, true) || self.port != other.port {
            return false;
        }
        // Parameters present in both must match; user/ttl/method/maddr/transport must be in both.
        // Only the first occurrence of a repeated parameter counts (keeps this reflexive).
        for (name, value) in first_occurrences(self.params) {
            match params_get(other.params, name) {
                Some(v2) if !opt_eq(value, v2, |a, b| escaped_eq(a, b, true)) => return false,
                Some(_) => {}
                None if is_sticky(name) => return false,
                None => {}
            }
        }
        for (name, _) in Params::new(other.params) {
            if is_sticky(name) && params_get(self.params, name).is_none() {
                return false;
            }
        }
        // Headers: every header in either must be in the other with an equal value.
        headers_subset(self.headers, other.headers) && headers_subset(other.headers, self.headers)
    }
}

fn parse_tel(rest: &[u8]) -> Result<Uri<'_>, UriError> {
    let end = lex::find1(b';', rest).unwrap_or(rest.len());
    let (number, params) = rest.split_at(end);
    let global = number.first() == Some(&b'+');
    let digits = if global { &number[1..] } else { number };
    let has_digit = digits
        .iter()
        .any(|&b| lex::is_hex(b) || b == b'*' || b == b'#');
    if !has_digit
        || !digits
            .iter()
            .all(|&b| lex::is_hex(b) || matches!(b, b'*' | b'#' | b'-' | b'.' | b'(' | b')'))
    {
        return Err(UriError::InvalidNumber);
    }
    if !params.iter().all(|&b| lex::is_uri_param(b))
        || Params::new(params).any(|(n, _)| n.is_empty())
    {
        return Err(UriError::InvalidParams);
    }
    Ok(Uri {
        scheme: Scheme::Tel,
        user: Some(number),
        password: None,
        host: b"",
        port: None,
        params,
        headers: b"",
    })
}

/// Parameters whose name did not appear earlier in the list.
fn first_occurrences(raw: &[u8]) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
    Params::new(raw)
        .enumerate()
        .filter(move |(i, (name, _))| {
            !Params::new(raw)
                .take(*i)
                .any(|(n, _)| escaped_eq(n, name, true))
        })
        .map(|(_, p)| p)
}

fn is_sticky(name: &[u8]) -> bool {
    [&b"user"[..], b"ttl", b"method", b"maddr", b"transport"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
}

/// Like `params::param` but compares names with escapes decoded.
fn params_get<'b>(raw: &'b [u8], name: &[u8]) -> Option<Option<&'b [u8]>> {
    Params::new(raw)
        .find(|(n, _)| escaped_eq(n, name, true))
        .map(|(_, v)| v)
}

fn headers_subset(a: &[u8], b: &[u8]) -> bool {
    Params::with_separator(a, b'&').all(|(name, value)| {
        Params::with_separator(b, b'&').any(|(n2, v2)| {
            escaped_eq(name, n2, true) && opt_eq(value, v2, |x, y| escaped_eq(x, y, false))
        })
    })
}

fn opt_eq(a: Option<&[u8]>, b: Option<&[u8]>, f: impl Fn(&[u8], &[u8]) -> bool) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => f(a, b),
        _ => false,
    }
}

/// RFC 3261 §19.1.4: characters outside the reserved set are equivalent to their `%HH`
/// encoding; an escaped reserved character is distinct from the unescaped one.
fn escaped_eq(a: &[u8], b: &[u8], ignore_case: bool) -> bool {
    let mut x = Decoded { s: a, i: 0 };
    let mut y = Decoded { s: b, i: 0 };
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(p), Some(q)) => {
                let same = if ignore_case && p < 256 && q < 256 {
                    (p as u8).eq_ignore_ascii_case(&(q as u8))
                } else {
                    p == q
                };
                if !same {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Decodes `%HH` escapes; escaped reserved characters are tagged with +256 so they never
/// compare equal to their literal form.
struct Decoded<'a> {
    s: &'a [u8],
    i: usize,
}

impl Iterator for Decoded<'_> {
    type Item = u16;
    fn next(&mut self) -> Option<u16> {
        let b = *self.s.get(self.i)?;
        if b == b'%' {
            if let (Some(&h), Some(&l)) = (self.s.get(self.i + 1), self.s.get(self.i + 2)) {
                if let (Some(h), Some(l)) = (hex_val(h), hex_val(l)) {
                    self.i += 3;
                    let c = h * 16 + l;
                    let reserved = matches!(
                        c,
                        b';' | b'/' | b'?' | b':' | b'@' | b'&' | b'=' | b'+' | b'$' | b','
                    );
                    return Some(u16::from(c) + if reserved { 256 } else { 0 });
                }
            }
        }
        self.i += 1;
        Some(u16::from(b))
    }
}

pub(crate) fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Every `%` starts a two-hex-digit escape.
fn valid_escapes(s: &[u8]) -> bool {
    let Some(mut i) = lex::find1(b'%', s) else {
        return true;
    };
    while i < s.len() {
        if s[i] == b'%' {
            match (s.get(i + 1), s.get(i + 2)) {
                (Some(&h), Some(&l)) if lex::is_hex(h) && lex::is_hex(l) => i += 3,
                _ => return false,
            }
        } else {
            i += 1;
        }
    }
    true
}

/// RFC 3966 §4: numbers compared ignoring visual separators, parameters as a set.
fn tel_equivalent(a: &Uri<'_>, b: &Uri<'_>) -> bool {
    fn digits<'x>(u: &Uri<'x>) -> impl Iterator<Item = u8> + 'x {
        let n: &'x [u8] = u.user.unwrap_or_default();
        n.iter()
            .copied()
            .filter(|c| !matches!(c, b'-' | b'.' | b'(' | b')'))
            .map(|c| c.to_ascii_lowercase())
    }
    if !digits(a).eq(digits(b)) {
        return false;
    }
    let subset = |x: &[u8], y: &[u8]| {
        first_occurrences(x).all(|(n, v)| {
            params_get(y, n).is_some_and(|v2| opt_eq(v, v2, |p, q| p.eq_ignore_ascii_case(q)))
        })
    };
    subset(a.params, b.params) && subset(b.params, a.params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendable_request_uris() {
        for ok in [
            &b"sip:w@10.0.0.1:5060"[..],
            b"SIPS:a@b;transport=tls",
            b"sip:[::1]:5070",
            b"sip:x",
        ] {
            assert!(Uri::is_sendable(ok), "{}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b"sip:w@10.0.0.1:5060>"[..],
            b"\xcb\x8c\x96\x8f:w@10.0.0.1",
            b"tel:+15551234",
            b"sip:",
            b"sips:",
            b"sip:a b@c",
            b"sip:a@b\r\nX: y",
            b"sip:\"a\"@b",
            b"si:a@b",
            b"",
        ] {
            assert!(!Uri::is_sendable(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    fn eqv(a: &str, b: &str) -> bool {
        Uri::parse(a.as_bytes())
            .unwrap()
            .equivalent(&Uri::parse(b.as_bytes()).unwrap())
    }

    #[test]
    fn parses_parts() {
        let u = Uri::parse(
            b"sips:alice:secret@Atlanta.COM:5061;transport=tcp;lr?subject=x&priority=urgent",
        )
        .unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.user, Some(&b"alice"[..]));
        assert_eq!(u.password, Some(&b"secret"[..]));
        assert_eq!(u.host, b"Atlanta.COM");
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.param(b"transport"), Some(Some(&b"tcp"[..])));
        assert_eq!(u.param(b"lr"), Some(None));
        assert_eq!(u.headers, b"subject=x&priority=urgent");

        let u = Uri::parse(b"sip:[2001:db8::10]:5070").unwrap();
        assert_eq!(u.host, b"[2001:db8::10]");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.user, None);

        let u = Uri::parse(b"tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.user, Some(&b"+1-201-555-0123"[..]));
    }

    #[test]
    fn rejects() {
        for bad in [
            &b""[..],
            b"http://x",
            b"sip:",
            b"sip:@host",
            b"sip:a@",
            b"sip:a@host:99999",
            b"sip:a@host:",
            b"sip:a b@host",
            b"sip:a@host x",
            b"sip:a%4@host",
            b"sip:a@[::g]",
            b"tel:",
            b"tel:abc-x",
        ] {
            assert!(Uri::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn rfc3261_19_1_4_equivalent() {
        // The examples of §19.1.4.
        assert!(eqv(
            "sip:%61lice@atlanta.com;transport=TCP",
            "sip:alice@AtLanTa.CoM;Transport=tcp"
        ));
        assert!(eqv(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;newparam=5"
        ));
        assert!(eqv(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;security=on"
        ));
        assert!(eqv(
            "sip:carol@chicago.com;newparam=5",
            "sip:carol@chicago.com;security=on"
        ));
        assert!(eqv(
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"
        ));
        assert!(eqv(
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x"
        ));
    }

    #[test]
    fn rfc3261_19_1_4_not_equivalent() {
        assert!(!eqv(
            "SIP:ALICE@AtLanTa.CoM;Transport=udp",
            "sip:alice@AtLanTa.CoM;Transport=UDP"
        ));
        assert!(!eqv("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
        assert!(!eqv(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com;transport=udp"
        ));
        assert!(!eqv(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com:6000;transport=tcp"
        ));
        assert!(!eqv(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com?Subject=next%20meeting"
        ));
        assert!(!eqv("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"));
        assert!(!eqv(
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;security=off"
        ));
        assert!(!eqv("sip:alice@atlanta.com", "sips:alice@atlanta.com"));
        assert!(!eqv("sip:a%3Bb@x.com", "sip:a;b@x.com"));
    }

    #[test]
    fn tel_equivalence() {
        assert!(eqv("tel:+1-201-555-0123", "tel:+12015550123"));
        assert!(!eqv("tel:+12015550123", "tel:+12015550124"));
    }
}
