//! `;name[=value]` parameter lists (generic-param, RFC 3261 §25.1), shared by Via, name-addr,
//! Event, media types, Subscription-State and URIs.
//!
//! Parameters stay as one raw borrowed slice in the typed structs; lookups scan it on demand,
//! which is cheaper than materialising a list for the two or three parameters ever read.

use crate::lex;

/// Iterates the parameters of a raw `;a=1;b;c="x"` slice (leading `;` optional).
/// Names and values are trimmed; a quoted value is returned without its quotes
/// (quoted-pairs stay escaped).
#[derive(Clone, Debug)]
pub struct Params<'b> {
    rest: &'b [u8],
    sep: u8,
}

impl<'b> Params<'b> {
    pub fn new(raw: &'b [u8]) -> Self {
        Params {
            rest: raw,
            sep: b';',
        }
    }

    /// URI headers (`?a=b&c=d`) use `&` as separator.
    pub(crate) fn with_separator(raw: &'b [u8], sep: u8) -> Self {
        Params { rest: raw, sep }
    }
}

impl<'b> Iterator for Params<'b> {
    type Item = (&'b [u8], Option<&'b [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (item, rest) = match lex::find_unquoted(self.rest, self.sep, false) {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            let item = lex::trim(item);
            if item.is_empty() {
                continue;
            }
            return Some(match memchr::memchr(b'=', item) {
                None => (item, None),
                Some(eq) => (
                    lex::trim(&item[..eq]),
                    Some(unquote(lex::trim(&item[eq + 1..]))),
                ),
            });
        }
    }
}

/// Strips surrounding double quotes, if the value is a complete quoted-string.
pub(crate) fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] if lex::closing_quote(v) == Some(v.len() - 1) => inner,
        _ => v,
    }
}

/// Looks a parameter up by name, ignoring ASCII case (parameter names are case-insensitive).
/// `Some(None)` for a flag such as `;lr` or `;rport`.
pub fn param<'b>(raw: &'b [u8], name: &[u8]) -> Option<Option<&'b [u8]>> {
    Params::new(raw)
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Checks that a raw parameter section is `*( SEMI generic-param )`: non-empty token names
/// and token / host / quoted-string values.
pub(crate) fn validate(raw: &[u8]) -> bool {
    let raw = lex::trim(raw);
    if raw.is_empty() {
        return true;
    }
    if raw[0] != b';' {
        return false;
    }
    let mut rest = &raw[1..];
    loop {
        let (item, next) = match lex::find_unquoted(rest, b';', false) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => {
                // An unterminated quoted string never yields a separator: reject it.
                if rest.contains(&b'"') && !balanced_quotes(rest) {
                    return false;
                }
                (rest, None)
            }
        };
        let item = lex::trim(item);
        let ok = match memchr::memchr(b'=', item) {
            None => lex::is_token_str(item),
            Some(eq) => {
                let name = lex::trim(&item[..eq]);
                let value = lex::trim(&item[eq + 1..]);
                lex::is_token_str(name) && valid_value(value)
            }
        };
        if !ok {
            return false;
        }
        match next {
            Some(n) => rest = n,
            None => return true,
        }
    }
}

fn balanced_quotes(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'"' {
            match lex::closing_quote(&s[i..]) {
                Some(c) => i += c + 1,
                None => return false,
            }
        } else {
            i += 1;
        }
    }
    true
}

fn valid_value(v: &[u8]) -> bool {
    if v.first() == Some(&b'"') {
        return lex::closing_quote(v) == Some(v.len() - 1);
    }
    // token / host (IPv6 references contain ':' '[' ']')
    !v.is_empty()
        && v.iter()
            .all(|&b| lex::is_token(b) || matches!(b, b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterates_and_finds() {
        let raw = b";Tag=abc ; lr;  q = 0.5;x=\"a;b\"";
        let all: Vec<_> = Params::new(raw).collect();
        assert_eq!(all.len(), 4);
        assert_eq!(param(raw, b"tag"), Some(Some(&b"abc"[..])));
        assert_eq!(param(raw, b"lr"), Some(None));
        assert_eq!(param(raw, b"q"), Some(Some(&b"0.5"[..])));
        assert_eq!(param(raw, b"x"), Some(Some(&b"a;b"[..])));
        assert_eq!(param(raw, b"nope"), None);
        assert!(validate(raw));
        assert!(!validate(b";=x"));
        assert!(!validate(b"x"));
        assert!(!validate(b";a=\"open"));
        assert!(validate(b""));
        assert!(validate(b";received=[2001:db8::1]"));
    }
}
