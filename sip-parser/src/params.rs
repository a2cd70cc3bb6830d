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
            return Some(match lex::find1(b'=', item) {
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
    // On a valid section (the usual case: typed parsers validated it) one grammar pass finds
    // the same parameter as the iterator (see the `single_pass_matches_reference` test).
    if let Some([found]) = validate_find(raw, [name]) {
        return found;
    }
    Params::new(raw)
        .find(|(n, _)| lex::eq_ignore_case(n, name))
        .map(|(_, v)| v)
}

/// Checks that a raw parameter section is `*( SEMI generic-param )`: non-empty token names
/// and token / host / quoted-string values.
pub(crate) fn validate(raw: &[u8]) -> bool {
    validate_find(raw, []).is_some()
}

/// Found parameters: per wanted name, `None` absent, `Some(None)` flag, `Some(Some(v))`.
pub(crate) type Found<'b, const N: usize> = [Option<Option<&'b [u8]>>; N];

/// [`validate`] and, in the same single pass, [`param`] for each of `names` (first
/// occurrence wins, as with `param`). `None` if the section is invalid.
///
/// Typed parsers used to validate and then re-scan once per parameter they decode; a Via
/// costs three lookups (rport, received, branch), so one grammar-driven pass over the bytes
/// (each byte tested once against the class table) replaces four memchr-driven ones.
pub(crate) fn validate_find<'b, const N: usize>(
    raw: &'b [u8],
    names: [&[u8]; N],
) -> Option<Found<'b, N>> {
    let raw = lex::trim(raw);
    match validate_find_prefix(raw, names)? {
        (found, end) if end == raw.len() => Some(found),
        _ => None,
    }
}

/// [`validate_find`] on the longest valid parameter section at the start of `raw` (which
/// must be empty or start with `;`): also returns where that section ends (after its last
/// value, before any whitespace), so a caller parsing one element of a comma list can stop
/// there instead of finding the comma first. Bytes after the end are not examined.
#[inline(always)]
pub(crate) fn validate_find_prefix<'b, const N: usize>(
    raw: &'b [u8],
    names: [&[u8]; N],
) -> Option<(Found<'b, N>, usize)> {
    let mut found: Found<'b, N> = [None; N];
    // Walks `rest` forward; every step is a slice split, so no per-byte bounds checks.
    let mut rest = match raw.split_first() {
        Some((b';', r)) => r,
        _ => return Some((found, 0)),
    };
    // Wanted names of up to eight bytes are matched by one word compare (see `folded_word`);
    // with constant names (every typed parser) these words are computed at compile time.
    let wants = names.map(lex::folded_word);
    loop {
        // generic-param = token [ EQUAL gen-value ], LWS allowed around `=` and `;`.
        let r = lex::trim_start(rest);
        let (name, after) = lex::take_while(r, lex::is_token);
        if name.is_empty() {
            return None;
        }
        let word = lex::folded_prefix(r, name.len());
        rest = after;
        let value = match lex::trim_start(after).split_first() {
            Some((b'=', r)) => {
                let r = lex::trim_start(r);
                if r.first() == Some(&b'"') {
                    let close = lex::closing_quote(r)?;
                    rest = r.get(close + 1..)?;
                    Some(r.get(1..close)?)
                } else {
                    let (v, r) = lex::split_param_value(r);
                    if v.is_empty() {
                        return None;
                    }
                    rest = r;
                    Some(v)
                }
            }
            _ => None,
        };
        // An index loop over the const `N` unrolls; a zip of three iterators did not.
        for i in 0..N {
            let want = names[i];
            if found[i].is_none()
                && want.len() == name.len()
                && match (word, wants[i]) {
                    (Some(a), Some(b)) => a == b,
                    _ => lex::eq_ignore_case(name, want),
                }
            {
                found[i] = Some(value);
            }
        }
        match rest.split_first() {
            Some((b';', r)) => rest = r,
            Some((&b, _)) if lex::is_ws(b) => match lex::trim_start(rest).split_first() {
                Some((b';', r)) => rest = r,
                _ => return Some((found, raw.len() - rest.len())),
            },
            _ => return Some((found, raw.len() - rest.len())),
        }
    }
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
        for bad in [
            &b";"[..],
            b";;a",
            b";a;",
            b";a=",
            b";a=b=c",
            b";a b",
            b";a=\"x\"y",
            b";a=x\"y;z\"",
            b";\"a\"=b",
            b"; a = b c",
        ] {
            assert!(!validate(bad), "{}", String::from_utf8_lossy(bad));
        }
        assert!(validate(b" ; a = \"x;y\" ;\r\n b ; c=d "));
        let f = validate_find(raw, [&b"q"[..], b"LR", b"x", b"none"]).unwrap();
        assert_eq!(
            f,
            [param(raw, b"q"), param(raw, b"lr"), param(raw, b"x"), None]
        );
    }
}

/// The split-then-check validator used before `validate_find`, kept as the reference the
/// single-pass grammar scanner must agree with on arbitrary input.
#[cfg(test)]
mod reference {
    use super::*;
    use proptest::prelude::*;

    fn validate_old(raw: &[u8]) -> bool {
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
        !v.is_empty()
            && v.iter()
                .all(|&b| lex::is_token(b) || matches!(b, b':' | b'[' | b']'))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]
        #[test]
        fn single_pass_matches_reference(
            s in proptest::collection::vec(
                prop::sample::select(&b"aB;;==\" \\:[]\r\n\t,x"[..]), 0..32),
        ) {
            let fast = validate_find(&s, [&b"a"[..], b"b", b"x"]);
            if let Some((found, end)) = validate_find_prefix(&s, [&b"a"[..], b"b", b"x"]) {
                prop_assert_eq!(Some(found), validate_find(&s[..end], [&b"a"[..], b"b", b"x"]));
                prop_assert_eq!(lex::trim_end(&s[..end]).len(), end);
            }
            prop_assert_eq!(fast.is_some(), validate_old(&s));
            if let Some(found) = fast {
                // The iterator `param` falls back to; `param` itself must agree too.
                let it = |name: &[u8]| {
                    Params::new(&s).find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
                };
                prop_assert_eq!(found, [it(b"a"), it(b"b"), it(b"x")]);
                prop_assert_eq!(found, [param(&s, b"a"), param(&s, b"b"), param(&s, b"x")]);
            }
        }
    }
}
