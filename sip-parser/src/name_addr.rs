//! name-addr / addr-spec with header parameters (RFC 3261 §20.10, §25.1): From, To, Contact,
//! Route, Record-Route. Without angle brackets every `;param` belongs to the header, not to
//! the URI, which is why the URI is kept raw here and parsed separately by `Uri::parse`.

use crate::error::UriError;
use crate::lex;
use crate::params;
use crate::uri::Uri;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'b> {
    /// Display name: the content of a quoted string (quotes removed, `\` escapes kept), or the
    /// tokens before `<` as written. `None` if absent or empty.
    pub display_name: Option<&'b [u8]>,
    /// The URI as written, without `<>`; parse it with [`Uri::parse`].
    pub uri: &'b [u8],
    /// Raw header parameters starting at the first `;` (empty if none).
    pub params: &'b [u8],
}

impl<'b> NameAddr<'b> {
    pub fn parse(s: &'b [u8]) -> Option<NameAddr<'b>> {
        Self::parse_find(s, []).map(|(n, [])| n)
    }

    /// [`parse`](Self::parse) that also looks up `names` among the header parameters in the
    /// validation pass (see `params::validate_find`), so Contact's `expires` costs no rescan.
    pub(crate) fn parse_find<const N: usize>(
        s: &'b [u8],
        names: [&[u8]; N],
    ) -> Option<(NameAddr<'b>, params::Found<'b, N>)> {
        let s = lex::trim(s);
        let (display_name, rest) = if s.first() == Some(&b'"') {
            let close = lex::closing_quote(s)?;
            let rest = lex::trim_start(&s[close + 1..]);
            if rest.first() != Some(&b'<') {
                return None;
            }
            (Some(&s[1..close]), rest)
        } else {
            match lex::find1(b'<', s) {
                Some(lt) => {
                    let name = lex::trim(&s[..lt]);
                    // *(token LWS): only tokens and whitespace before the '<'.
                    if !name.iter().all(|&b| lex::is_token(b) || lex::is_ws(b)) {
                        return None;
                    }
                    ((!name.is_empty()).then_some(name), &s[lt..])
                }
                None => (None, s),
            }
        };
        let (uri, params) = if rest.first() == Some(&b'<') {
            let gt = lex::find1(b'>', rest)?;
            (&rest[1..gt], lex::trim_start(&rest[gt + 1..]))
        } else {
            // addr-spec: the URI ends at the first ';' (header params follow) or whitespace.
            let end = rest
                .iter()
                .position(|&b| b == b';' || lex::is_ws(b))
                .unwrap_or(rest.len());
            let after = lex::trim_start(&rest[end..]);
            let uri = &rest[..end];
            // §20.10: a URI with `,` `?` or `;` must be in angle brackets (RFC 4475 `regbadct`).
            if uri.iter().any(|&b| b == b'?' || b == b',') {
                return None;
            }
            (uri, after)
        };
        if uri.is_empty() || lex::has_non_nameaddr_uri_byte(uri) {
            return None;
        }
        let found = params::validate_find(params, names)?;
        Some((
            NameAddr {
                display_name,
                uri,
                params,
            },
            found,
        ))
    }

    /// As [`parse`](Self::parse) on the name-addr / addr-spec at the start of `s` (no leading
    /// whitespace), stopping after its parameters; returns where it ends (see `Typed`).
    pub(crate) fn parse_prefix(s: &'b [u8]) -> Option<(NameAddr<'b>, usize)> {
        Self::prefix_find(s, []).map(|(n, [], end)| (n, end))
    }

    /// Prefix form of [`parse_find`](Self::parse_find). Only the common shapes are handled
    /// (`"quoted" <uri>`, `<uri>`, `token <uri>`, bare `sip:` URI); `None` sends the caller
    /// to split-then-parse, which handles (and rejects) everything else exactly as before.
    pub(crate) fn prefix_find<const N: usize>(
        s: &'b [u8],
        names: [&[u8]; N],
    ) -> Option<(NameAddr<'b>, params::Found<'b, N>, usize)> {
        let (display_name, rest) = match s.first() {
            Some(b'"') => {
                let close = lex::closing_quote(s)?;
                let rest = lex::trim_start(s.get(close + 1..)?);
                if rest.first() != Some(&b'<') {
                    return None;
                }
                (Some(s.get(1..close)?), rest)
            }
            Some(b'<') => (None, s),
            _ => {
                // Tokens and whitespace up to `<` (display name), else an addr-spec.
                let n = s
                    .iter()
                    .position(|&b| !(lex::is_token(b) || lex::is_ws(b)))
                    .unwrap_or(s.len());
                match s.get(n) {
                    Some(b'<') => {
                        let name = lex::trim(s.get(..n)?);
                        ((!name.is_empty()).then_some(name), s.get(n..)?)
                    }
                    _ => (None, s),
                }
            }
        };
        let (uri, after_uri) = if let Some((b'<', inner)) = rest.split_first() {
            // The URI ends at `>`; a byte it may not contain before that makes the element
            // invalid (as `parse` finds), and so does a missing `>`.
            let end = lex::find_nameaddr_uri_end(inner)?;
            match inner.split_at_checked(end) {
                Some((uri, [b'>', after @ ..])) if !uri.is_empty() => (uri, lex::trim_start(after)),
                _ => return None,
            }
        } else {
            // addr-spec: the URI ends at `;` or whitespace, and contains none of `,?<"`
            // (the first two make it invalid, the others would confuse the comma split).
            let end = rest
                .iter()
                .position(|&b| b == b';' || lex::is_ws(b))
                .unwrap_or(rest.len());
            let uri = rest.get(..end)?;
            if uri.iter().any(|&b| matches!(b, b'?' | b',' | b'<' | b'"'))
                || uri.is_empty()
                || lex::has_non_nameaddr_uri_byte(uri)
            {
                return None;
            }
            (uri, lex::trim_start(rest.get(end..)?))
        };
        let (found, end) = params::validate_find_prefix(after_uri, names)?;
        let params = after_uri.get(..end)?;
        // `parse` looks for `<` anywhere in the element, even inside a quoted parameter value
        // after an addr-spec (and then rejects it): stay identical by falling back.
        if display_name.is_none() && rest.first() != Some(&b'<') && params.contains(&b'<') {
            return None;
        }
        let n = NameAddr {
            display_name,
            uri,
            params,
        };
        Some((n, found, s.len() - after_uri.len() + end))
    }

    /// The `tag` parameter (From/To dialog identification, RFC 3261 §19.3).
    pub fn tag(&self) -> Option<&'b [u8]> {
        // Fast path for the usual `;tag=value` first, the value a plain run that ends the
        // section or meets the next `;`: the first occurrence, as the grammar pass finds it.
        // Every request's From (and an in-dialog To) is asked for its tag.
        if self.params.is_empty() {
            // An initial request's To: no parameter at all.
            return None;
        }
        // `;tag=` in any case is one folded-word compare (see `lex::folded_prefix`).
        const TAG: Option<u64> = lex::folded_word_const(b";tag=");
        if lex::folded_prefix(self.params, 5) == TAG {
            let (v, after) = lex::split_param_value(self.params.get(5..).unwrap_or_default());
            if !v.is_empty() && matches!(after.first(), None | Some(b';')) {
                return Some(v);
            }
        }
        self.param(b"tag").flatten()
    }

    pub fn param(&self, name: &[u8]) -> Option<Option<&'b [u8]>> {
        params::param(self.params, name)
    }

    /// Parses the URI.
    pub fn parse_uri(&self) -> Result<Uri<'b>, UriError> {
        Uri::parse(self.uri)
    }
}

/// One Contact value: a name-addr with the `expires` parameter decoded, or `*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contact<'b> {
    /// For `Contact: *` the URI is `b"*"` and there are no params (see [`Contact::is_star`]).
    pub addr: NameAddr<'b>,
    pub expires: Option<u32>,
}

impl<'b> Contact<'b> {
    pub fn parse(s: &'b [u8]) -> Option<Contact<'b>> {
        let s = lex::trim(s);
        if s == b"*" {
            return Some(Contact {
                addr: NameAddr {
                    display_name: None,
                    uri: s,
                    params: b"",
                },
                expires: None,
            });
        }
        let (addr, [expires]) = NameAddr::parse_find(s, [b"expires"])?;
        let expires = match expires {
            None => None,
            Some(v) => Some(lex::parse_u32(v?)?),
        };
        Some(Contact { addr, expires })
    }

    /// As [`parse`](Self::parse) on the Contact value at the start of `s`, stopping after its
    /// parameters; returns where it ends (see `Typed`). `*` takes the fallback.
    pub(crate) fn parse_prefix(s: &'b [u8]) -> Option<(Contact<'b>, usize)> {
        if s.first() == Some(&b'*') {
            return None;
        }
        let (addr, [expires], end) = NameAddr::prefix_find(s, [b"expires"])?;
        let expires = match expires {
            None => None,
            Some(v) => Some(lex::parse_u32(v?)?),
        };
        Some((Contact { addr, expires }, end))
    }

    pub fn is_star(&self) -> bool {
        self.addr.uri == b"*"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let n =
            NameAddr::parse(b"\"Alice \\\"A\\\" Smith\" <sip:alice@atlanta.com>;tag=1928301774")
                .unwrap();
        assert_eq!(n.display_name, Some(&b"Alice \\\"A\\\" Smith"[..]));
        assert_eq!(n.uri, b"sip:alice@atlanta.com");
        assert_eq!(n.tag(), Some(&b"1928301774"[..]));

        let n = NameAddr::parse(b"Bob Smith <sip:bob@b.com;transport=tcp> ; tag = x").unwrap();
        assert_eq!(n.display_name, Some(&b"Bob Smith"[..]));
        assert_eq!(n.uri, b"sip:bob@b.com;transport=tcp");
        assert_eq!(n.tag(), Some(&b"x"[..]));

        let n = NameAddr::parse(b"sip:carol@c.com;tag=77").unwrap();
        assert_eq!(n.display_name, None);
        assert_eq!(n.uri, b"sip:carol@c.com");
        assert_eq!(n.tag(), Some(&b"77"[..]));

        let n = NameAddr::parse(b"<sip:d@d.com>").unwrap();
        assert_eq!(n.display_name, None);
        assert_eq!(n.tag(), None);
        assert_eq!(n.parse_uri().unwrap().host, b"d.com");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// The `;tag=` fast path finds what the grammar pass finds, on any section.
        #[test]
        fn tag_fast_path_matches_param(params in "(;tag=|;TaG=)?(;|=|tag|a|\"|,| |x;y|%41){0,6}") {
            let n = NameAddr { display_name: None, uri: b"sip:a@b", params: params.as_bytes() };
            proptest::prop_assert_eq!(n.tag(), n.param(b"tag").flatten());
        }
    }

    #[test]
    fn rejects() {
        for bad in [
            &b""[..],
            b"\"open <sip:a@b>",
            b"\"x\" sip:a@b",
            b"<sip:a@b",
            b"<>",
            b"<sip:a @b>",
            b"sip:a@b;tag",
            b"<sip:a@b> junk",
            b"a,b <sip:a@b>",
        ] {
            let r = NameAddr::parse(bad);
            if bad == b"sip:a@b;tag" {
                assert!(r.is_some());
                continue;
            }
            assert!(r.is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn contact() {
        let c =
            Contact::parse(b"<sip:a@10.0.0.1:5060;ob>;expires=600;+sip.instance=\"<urn:uuid:1>\"")
                .unwrap();
        assert_eq!(c.expires, Some(600));
        assert_eq!(c.addr.uri, b"sip:a@10.0.0.1:5060;ob");
        assert!(Contact::parse(b" * ").unwrap().is_star());
        assert!(Contact::parse(b"<sip:a@b>;expires=99999999999").is_none());
        assert!(Contact::parse(b"<sip:a@b>;expires").is_none());
    }
}
