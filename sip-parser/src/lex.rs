//! Byte-level lexical helpers shared by every accessor (RFC 3261 §25.1).
//!
//! Accessors only ever see header values produced by `message::parse`, where CR and LF can
//! only occur as part of a fold (CRLF followed by SP/HT). Treating CR and LF as plain
//! whitespace here is therefore exactly RFC 3261's LWS rule, with no extra pass to unfold.

/// Character classes, one bit each, looked up in a 256-entry table (no branches per byte).
const TOKEN: u16 = 1;
const HOST: u16 = 2;
const WS: u16 = 4;
const DIGIT: u16 = 8;
const URI_USER: u16 = 16;
const URI_PARAM: u16 = 32;
const HEX: u16 = 64;
/// Bytes a URI may not contain inside a name-addr: controls, SP, DEL, `<` and `"`.
const NOT_NAMEADDR_URI: u16 = 128;
/// Bytes a Request-URI may not contain: the above plus `>` (RFC 4475 `ltgtruri`).
const NOT_REQUEST_URI: u16 = 256;

const fn build_table() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let mut v = 0u16;
        let alnum = c.is_ascii_alphanumeric();
        let mark = matches!(
            c,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        );
        if alnum
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
        {
            v |= TOKEN;
        }
        if alnum || matches!(c, b'-' | b'.' | b'_') {
            v |= HOST;
        }
        if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
            v |= WS;
        }
        if c.is_ascii_digit() {
            v |= DIGIT;
        }
        if c.is_ascii_hexdigit() {
            v |= HEX;
        }
        // unreserved / escaped('%') / user-unreserved
        if alnum
            || mark
            || matches!(
                c,
                b'%' | b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/'
            )
        {
            v |= URI_USER;
        }
        // paramchar / hnv-unreserved and the separators inside params/headers
        if alnum
            || mark
            || matches!(
                c,
                b'%' | b'['
                    | b']'
                    | b'/'
                    | b':'
                    | b'&'
                    | b'+'
                    | b'$'
                    | b'?'
                    | b';'
                    | b'='
                    | b'@'
                    | b','
            )
        {
            v |= URI_PARAM;
        }
        if c <= b' ' || c == 0x7f || c == b'<' || c == b'"' {
            v |= NOT_NAMEADDR_URI | NOT_REQUEST_URI;
        }
        if c == b'>' {
            v |= NOT_REQUEST_URI;
        }
        t[i] = v;
        i += 1;
    }
    t
}

static CLASS: [u16; 256] = build_table();

#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    CLASS[b as usize] & TOKEN != 0
}
#[inline]
pub(crate) fn is_host_char(b: u8) -> bool {
    CLASS[b as usize] & HOST != 0
}
#[inline]
pub(crate) fn is_ws(b: u8) -> bool {
    CLASS[b as usize] & WS != 0
}
#[inline]
pub(crate) fn is_digit(b: u8) -> bool {
    CLASS[b as usize] & DIGIT != 0
}
#[inline]
pub(crate) fn is_hex(b: u8) -> bool {
    CLASS[b as usize] & HEX != 0
}
#[inline]
pub(crate) fn is_uri_user(b: u8) -> bool {
    CLASS[b as usize] & URI_USER != 0
}
#[inline]
pub(crate) fn is_uri_param(b: u8) -> bool {
    CLASS[b as usize] & URI_PARAM != 0
}

/// Whether `s` has a byte a name-addr URI must not contain (see `NOT_NAMEADDR_URI`).
#[inline]
pub(crate) fn has_non_nameaddr_uri_byte(s: &[u8]) -> bool {
    s.iter().any(|&b| CLASS[b as usize] & NOT_NAMEADDR_URI != 0)
}

/// Whether `s` has a byte a Request-URI must not contain (see `NOT_REQUEST_URI`).
#[inline]
pub(crate) fn has_non_request_uri_byte(s: &[u8]) -> bool {
    s.iter().any(|&b| CLASS[b as usize] & NOT_REQUEST_URI != 0)
}

/// True if `s` is a non-empty RFC 3261 token.
#[inline]
pub(crate) fn is_token_str(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token(b))
}

#[inline]
pub(crate) fn trim_start(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ws(*first) {
            break;
        }
        s = rest;
    }
    s
}

#[inline]
pub(crate) fn trim_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., last] = s {
        if !is_ws(*last) {
            break;
        }
        s = rest;
    }
    s
}

#[inline]
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    trim_end(trim_start(s))
}

/// Index of the quote closing a quoted-string whose opening quote is `s[0]`.
/// Honours `\` quoted-pairs (RFC 3261 §25.1), so `"a\"b"` is one string.
pub(crate) fn closing_quote(s: &[u8]) -> Option<usize> {
    // Jump between `\` and `"` with memchr2 rather than stepping byte by byte: quoted
    // strings (display names, `+sip.instance`) are long and escapes rare.
    let mut i = 1;
    loop {
        let j = i + memchr::memchr2(b'\\', b'"', s.get(i..)?)?;
        if s[j] == b'"' {
            return Some(j);
        }
        i = j + 2;
    }
}

/// First index of `sep` outside quoted strings (and outside `<...>` when `angles`).
/// `None` if absent or if a quote / angle bracket is left open.
pub(crate) fn find_unquoted(s: &[u8], sep: u8, angles: bool) -> Option<usize> {
    // memchr jumps to the next byte that matters instead of testing every byte: this runs
    // over every list value (Via, Contact, Accept...) and every parameter section.
    let mut i = 0;
    loop {
        let rest = s.get(i..)?;
        let j = i + if angles {
            memchr::memchr3(sep, b'"', b'<', rest)?
        } else {
            memchr::memchr2(sep, b'"', rest)?
        };
        match s[j] {
            b'"' => i = j + closing_quote(&s[j..])? + 1,
            // Inside `<...>` neither quotes nor `sep` count; an unclosed `<` hides `sep`.
            b'<' if angles => i = j + memchr::memchr(b'>', &s[j..])? + 1,
            _ => return Some(j),
        }
    }
}

/// Parses a decimal number made only of digits (no sign, no space) into a `u32`.
/// Overflow is an error: RFC 3261 scalars are bounded and RFC 4475 §3.1.2.4 wants them rejected.
pub(crate) fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(|&b| is_digit(b)) {
        return None;
    }
    let zeros = s.iter().take_while(|&&b| b == b'0').count();
    let significant = s.get(zeros..)?;
    if significant.len() > 10 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in significant {
        v = v * 10 + u64::from(b - b'0');
    }
    u32::try_from(v).ok()
}

/// As [`parse_u32`] for a `u16` (ports).
pub(crate) fn parse_u16(s: &[u8]) -> Option<u16> {
    parse_u32(s).and_then(|v| u16::try_from(v).ok())
}

/// Splits `s` at the first byte for which `f` is false.
#[inline]
pub(crate) fn take_while(s: &[u8], f: impl Fn(u8) -> bool) -> (&[u8], &[u8]) {
    let mut n = 0;
    while s.get(n).is_some_and(|&b| f(b)) {
        n += 1;
    }
    s.split_at(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_u32(b"0"), Some(0));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"000000000001"), Some(1));
        assert_eq!(parse_u32(b"00000000000"), Some(0));
        assert_eq!(parse_u32(b"99999999999"), None);
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_u32(b"1a"), None);
        assert_eq!(parse_u32(b"+1"), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(find_unquoted(b"\"a,b\" , c", b',', false), Some(6));
        assert_eq!(find_unquoted(b"\"a\\\",b\",c", b',', false), Some(7));
        assert_eq!(find_unquoted(b"<sip:a,b>,c", b',', true), Some(9));
        assert_eq!(find_unquoted(b"\"open", b',', false), None);
        assert_eq!(trim(b" \r\n\tab \r\n "), b"ab");
    }
}

/// The byte-at-a-time scanners this module used before the memchr versions, kept as the
/// reference the fast ones must agree with on arbitrary input.
#[cfg(test)]
mod reference {
    use proptest::prelude::*;

    fn closing_quote(s: &[u8]) -> Option<usize> {
        let mut i = 1;
        while i < s.len() {
            match s[i] {
                b'\\' => i += 2,
                b'"' => return Some(i),
                _ => i += 1,
            }
        }
        None
    }

    fn find_unquoted(s: &[u8], sep: u8, angles: bool) -> Option<usize> {
        let mut i = 0;
        let mut in_angle = false;
        while i < s.len() {
            let b = s[i];
            if b == b'"' && !in_angle {
                i += closing_quote(&s[i..])? + 1;
                continue;
            }
            if angles && b == b'<' {
                in_angle = true;
            } else if angles && b == b'>' {
                in_angle = false;
            } else if b == sep && !in_angle {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn fast_scanners_match_reference(
            s in proptest::collection::vec(
                prop::sample::select(&b"ab,;<>\"\\ (=x"[..]), 0..40),
            angles: bool,
        ) {
            prop_assert_eq!(super::closing_quote(&s), closing_quote(&s));
            for sep in [b',', b';', b'('] {
                prop_assert_eq!(
                    super::find_unquoted(&s, sep, angles),
                    find_unquoted(&s, sep, angles)
                );
            }
            prop_assert_eq!(super::trim(&s), {
                let t = s.iter().position(|&b| !super::is_ws(b)).unwrap_or(s.len());
                let e = s.iter().rposition(|&b| !super::is_ws(b)).map_or(t, |e| e + 1);
                &s[t..e.max(t)]
            });
        }
    }
}
