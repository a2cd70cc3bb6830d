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
/// gen-value bytes outside quotes: token plus `:` `[` `]` (host values such as IPv6).
const PARAM_VALUE: u16 = 512;
/// Controls, SP and DEL: not allowed in a Call-ID.
const CTL_OR_SPACE: u16 = 1024;
/// `NOT_NAMEADDR_URI` plus `>`: where the URI of a `<uri>` ends, rightly or not.
const NAMEADDR_URI_END: u16 = 2048;

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
            v |= NOT_REQUEST_URI | NAMEADDR_URI_END;
        }
        if v & NOT_NAMEADDR_URI != 0 {
            v |= NAMEADDR_URI_END;
        }
        if c <= b' ' || c == 0x7f {
            v |= CTL_OR_SPACE;
        }
        if v & TOKEN != 0 || matches!(c, b':' | b'[' | b']') {
            v |= PARAM_VALUE;
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
pub(crate) fn is_ws(b: u8) -> bool {
    // A compare and a bit test, without the table load: this runs on every value's ends.
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}
#[inline]
pub(crate) fn is_digit(b: u8) -> bool {
    CLASS[b as usize] & DIGIT != 0
}
#[inline]
pub(crate) fn is_hex(b: u8) -> bool {
    CLASS[b as usize] & HEX != 0
}
#[cfg(test)]
pub(crate) fn is_param_value(b: u8) -> bool {
    CLASS[b as usize] & PARAM_VALUE != 0
}
#[inline]
pub(crate) fn is_uri_user(b: u8) -> bool {
    CLASS[b as usize] & URI_USER != 0
}
#[inline]
pub(crate) fn is_uri_param(b: u8) -> bool {
    CLASS[b as usize] & URI_PARAM != 0
}

/// Class bits of eight bytes AND-ed (`all`) or OR-ed together, without a branch per byte.
#[inline(always)]
fn classes8(c: &[u8], all: bool) -> u16 {
    let mut a = [0u8; 8];
    a.copy_from_slice(c);
    let k = |i: usize| CLASS[a[i] as usize];
    if all {
        k(0) & k(1) & k(2) & k(3) & k(4) & k(5) & k(6) & k(7)
    } else {
        k(0) | k(1) | k(2) | k(3) | k(4) | k(5) | k(6) | k(7)
    }
}

/// Length of the run at the start of `s` of bytes in class `bit` (one class bit). Eight
/// bytes per step: values such as branches, tags and URIs are long, and one branch per
/// eight table lookups costs half of one per byte.
#[inline]
fn run_len(s: &[u8], bit: u16) -> usize {
    let mut chunks = s.chunks_exact(8);
    let mut n = 0;
    for c in &mut chunks {
        if classes8(c, true) & bit == 0 {
            break;
        }
        n += 8;
    }
    let tail = s.get(n..).unwrap_or_default();
    n + tail
        .iter()
        .position(|&b| CLASS[b as usize] & bit == 0)
        .unwrap_or(tail.len())
}

/// Whether `s` has a byte in class `bit`, eight bytes per step.
#[inline]
fn any_in(s: &[u8], bit: u16) -> bool {
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        if classes8(c, false) & bit != 0 {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| CLASS[b as usize] & bit != 0)
}

/// Splits off the leading token bytes of `s`, eight at a time (for tokens often longer than
/// eight bytes, such as media types).
#[inline]
pub(crate) fn split_token_long(s: &[u8]) -> (&[u8], &[u8]) {
    s.split_at(run_len(s, TOKEN))
}

/// Splits off the leading gen-value bytes (token, `:`, `[`, `]`) of `s`.
#[inline]
pub(crate) fn split_param_value(s: &[u8]) -> (&[u8], &[u8]) {
    s.split_at(run_len(s, PARAM_VALUE))
}

/// Whether `s` has a byte a name-addr URI must not contain (see `NOT_NAMEADDR_URI`).
#[inline]
pub(crate) fn has_non_nameaddr_uri_byte(s: &[u8]) -> bool {
    any_in(s, NOT_NAMEADDR_URI)
}

/// Index of the first byte of `s` that ends the URI of a `<uri>`: `>` when the URI is
/// well formed, else a byte it may not contain (see `NOT_NAMEADDR_URI`). One pass, eight
/// bytes per step, where finding `>` and then checking the bytes before it took two.
#[inline]
pub(crate) fn find_nameaddr_uri_end(s: &[u8]) -> Option<usize> {
    let mut chunks = s.chunks_exact(8);
    let mut at = 0;
    for c in &mut chunks {
        if classes8(c, false) & NAMEADDR_URI_END != 0 {
            break;
        }
        at += 8;
    }
    let tail = s.get(at..).unwrap_or_default();
    tail.iter()
        .position(|&b| CLASS[b as usize] & NAMEADDR_URI_END != 0)
        .map(|i| at + i)
}

/// Whether `s` has a control byte, SP or DEL.
#[inline]
pub(crate) fn has_ctl_or_space(s: &[u8]) -> bool {
    any_in(s, CTL_OR_SPACE)
}

/// Whether `s` has a byte a Request-URI must not contain (see `NOT_REQUEST_URI`).
#[inline]
pub(crate) fn has_non_request_uri_byte(s: &[u8]) -> bool {
    any_in(s, NOT_REQUEST_URI)
}

/// True if `s` is a non-empty RFC 3261 token.
#[inline]
pub(crate) fn is_token_str(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token(b))
}

#[inline]
pub(crate) fn trim_start(s: &[u8]) -> &[u8] {
    // Values rarely start with whitespace: test one byte before looping.
    match s.first() {
        Some(&b) if is_ws(b) => {}
        _ => return s,
    }
    let n = s.iter().position(|&b| !is_ws(b)).unwrap_or(s.len());
    s.get(n..).unwrap_or_default()
}

#[inline]
pub(crate) fn trim_end(s: &[u8]) -> &[u8] {
    match s.last() {
        Some(&b) if is_ws(b) => {}
        _ => return s,
    }
    let n = s.iter().rposition(|&b| !is_ws(b)).map_or(0, |i| i + 1);
    s.get(..n).unwrap_or_default()
}

#[inline]
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    trim_end(trim_start(s))
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// High bit set in every zero byte of `v` (and possibly in bytes above one): the lowest set
/// bit always marks a true zero byte, since borrows only propagate upwards.
#[inline(always)]
fn zero_bytes(v: u64) -> u64 {
    v.wrapping_sub(ONES) & !v & HIGH
}

/// Eight bytes of `chunk` (exactly 8 long) as a little-endian word.
#[inline(always)]
fn word(chunk: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(chunk);
    u64::from_le_bytes(w)
}

/// SWAR search over short slices, where memchr's per-call set-up costs more than the scan:
/// `hits(word)` flags matching bytes (see `zero_bytes`), `one(byte)` tests the tail.
#[inline(always)]
fn swar_find(s: &[u8], hits: impl Fn(u64) -> u64, one: impl Fn(u8) -> bool) -> Option<usize> {
    let mut chunks = s.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let h = hits(word(chunk));
        if h != 0 {
            return Some(at + (h.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| one(b))
        .map(|i| at + i)
}

/// The SWAR scanners look at this many bytes first, memchr (whose per-call set-up costs as
/// much as a SWAR scan of ~50 bytes) at the rest: the byte sought is usually close.
const SHORT: usize = 48;

/// Runs `swar` on the first `SHORT` bytes of `s`, then `long` on the rest.
#[inline(always)]
fn hybrid(
    s: &[u8],
    swar: impl Fn(&[u8]) -> Option<usize>,
    long: impl Fn(&[u8]) -> Option<usize>,
) -> Option<usize> {
    match (s.get(..SHORT), s.get(SHORT..)) {
        (Some(head), Some(tail)) => swar(head).or_else(|| long(tail).map(|i| i + SHORT)),
        _ => swar(s),
    }
}

/// `memchr::memchr`, faster when the byte is near the start.
#[inline]
pub(crate) fn find1(a: u8, s: &[u8]) -> Option<usize> {
    let pa = ONES * u64::from(a);
    hybrid(
        s,
        |h| swar_find(h, |x| zero_bytes(x ^ pa), |b| b == a),
        |t| memchr::memchr(a, t),
    )
}

/// `memchr::memchr2`, faster when a byte is near the start.
#[inline]
pub(crate) fn find2(a: u8, b: u8, s: &[u8]) -> Option<usize> {
    let (pa, pb) = (ONES * u64::from(a), ONES * u64::from(b));
    hybrid(
        s,
        |h| {
            swar_find(
                h,
                |x| zero_bytes(x ^ pa) | zero_bytes(x ^ pb),
                |x| x == a || x == b,
            )
        },
        |t| memchr::memchr2(a, b, t),
    )
}

/// `memchr::memchr3`, faster when a byte is near the start.
#[inline]
pub(crate) fn find3(a: u8, b: u8, c: u8, s: &[u8]) -> Option<usize> {
    let (pa, pb, pc) = (
        ONES * u64::from(a),
        ONES * u64::from(b),
        ONES * u64::from(c),
    );
    hybrid(
        s,
        |h| {
            swar_find(
                h,
                |x| zero_bytes(x ^ pa) | zero_bytes(x ^ pb) | zero_bytes(x ^ pc),
                |x| x == a || x == b || x == c,
            )
        },
        |t| memchr::memchr3(a, b, c, t),
    )
}

/// ASCII lower-case of eight bytes at once: `A`..=`Z` get 0x20 added, every other byte
/// (including non-ASCII) is unchanged.
#[inline(always)]
fn lower8(x: u64) -> u64 {
    let low7 = x & !HIGH;
    let ge_a = low7.wrapping_add(ONES * u64::from(0x80 - b'A'));
    let gt_z = low7.wrapping_add(ONES * u64::from(0x7f - b'Z'));
    let upper = ge_a & !gt_z & !x & HIGH;
    x | (upper >> 2)
}

/// `s` (at most eight bytes) folded to lower case in one zero-padded word: two names of
/// equal length are equal ignoring ASCII case exactly when their folded words are.
/// `None` for longer names.
/// Meant for constant names (it then folds away at compile time); names read from the
/// input go through [`folded_prefix`].
#[inline(always)]
pub(crate) fn folded_word(s: &[u8]) -> Option<u64> {
    let mut w = [0u8; 8];
    w.get_mut(..s.len())?.copy_from_slice(s);
    Some(lower8(u64::from_le_bytes(w)))
}

/// `s` (at most eight bytes) as a zero-padded little-endian word, from two overlapping
/// loads (the bytes they share are equal, so OR-ing them is exact): a copy of a variable
/// number of bytes into a buffer compiles to a `memcpy` call. `None` for longer slices.
#[inline(always)]
fn load_short(s: &[u8]) -> Option<u64> {
    let n = s.len();
    let word = if let (Some(lo), Some(hi)) = (s.first_chunk::<4>(), s.last_chunk::<4>()) {
        if n > 8 {
            return None;
        }
        u64::from(u32::from_le_bytes(*lo)) | u64::from(u32::from_le_bytes(*hi)) << (8 * (n - 4))
    } else if let (Some(lo), Some(hi)) = (s.first_chunk::<2>(), s.last_chunk::<2>()) {
        u64::from(u16::from_le_bytes(*lo)) | u64::from(u16::from_le_bytes(*hi)) << (8 * (n - 2))
    } else {
        s.first().map_or(0, |&b| u64::from(b))
    };
    Some(word)
}

/// [`folded_word`] of a lower-case constant, at compile time.
pub(crate) const fn folded_word_const(s: &[u8]) -> Option<u64> {
    if s.len() > 8 {
        return None;
    }
    let mut w = 0u64;
    let mut i = 0;
    while i < s.len() {
        w |= (s[i].to_ascii_lowercase() as u64) << (8 * i);
        i += 1;
    }
    Some(w)
}

/// [`folded_word`] of `s[..n]`, `1 <= n <= 8`, as one load when `s` has eight bytes (the
/// bytes past `n` are masked off): names are followed by `=`, `;` or more text.
#[inline(always)]
pub(crate) fn folded_prefix(s: &[u8], n: usize) -> Option<u64> {
    match s.first_chunk::<8>() {
        Some(c) if (1..=8).contains(&n) => {
            Some(lower8(u64::from_le_bytes(*c)) & (u64::MAX >> (64 - 8 * n)))
        }
        _ => Some(lower8(load_short(s.get(..n)?)?)),
    }
}

/// `a.eq_ignore_ascii_case(b)`, eight bytes per step.
#[inline]
pub(crate) fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut ca = a.chunks_exact(8);
    for (x, y) in (&mut ca).zip(b.chunks_exact(8)) {
        if lower8(word(x)) != lower8(word(y)) {
            return false;
        }
    }
    let n = a.len() - ca.remainder().len();
    ca.remainder()
        .eq_ignore_ascii_case(b.get(n..).unwrap_or_default())
}

/// Index of the quote closing a quoted-string whose opening quote is `s[0]`.
/// Honours `\` quoted-pairs (RFC 3261 §25.1), so `"a\"b"` is one string.
pub(crate) fn closing_quote(s: &[u8]) -> Option<usize> {
    // Jump between `\` and `"` with memchr2 rather than stepping byte by byte: quoted
    // strings (display names, `+sip.instance`) are long and escapes rare.
    let mut i = 1;
    loop {
        let j = i + find2(b'\\', b'"', s.get(i..)?)?;
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
            find3(sep, b'"', b'<', rest)?
        } else {
            find2(sep, b'"', rest)?
        };
        match s[j] {
            b'"' => i = j + closing_quote(&s[j..])? + 1,
            // Inside `<...>` neither quotes nor `sep` count; an unclosed `<` hides `sep`.
            b'<' if angles => i = j + find1(b'>', &s[j..])? + 1,
            _ => return Some(j),
        }
    }
}

/// Parses a decimal number made only of digits (no sign, no space) into a `u32`.
/// Overflow is an error: RFC 3261 scalars are bounded and RFC 4475 §3.1.2.4 wants them rejected.
#[inline]
pub(crate) fn parse_u32(s: &[u8]) -> Option<u32> {
    // Up to nine digits cannot overflow: one pass, a subtract and a compare per digit
    // (ports, CSeq numbers, expiries and lengths are all this short).
    if !s.is_empty() && s.len() <= 9 {
        let mut v = 0u32;
        for &b in s {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            v = v * 10 + u32::from(d);
        }
        return Some(v);
    }
    parse_u32_long(s)
}

/// [`parse_u32`] for empty input and ten or more bytes (leading zeros allowed).
fn parse_u32_long(s: &[u8]) -> Option<u32> {
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

/// Splits off the leading host bytes (alphanumerics, `-`, `.`, `_`).
#[inline]
pub(crate) fn split_host_chars(s: &[u8]) -> (&[u8], &[u8]) {
    take_while(s, |b| CLASS[b as usize] & HOST != 0)
}

/// As [`parse_u32`] for a `u16` (ports).
#[inline]
pub(crate) fn parse_u16(s: &[u8]) -> Option<u16> {
    parse_u32(s).and_then(|v| u16::try_from(v).ok())
}

/// Splits `s` at the first byte for which `f` is false.
#[inline]
pub(crate) fn take_while(s: &[u8], f: impl Fn(u8) -> bool) -> (&[u8], &[u8]) {
    let n = s.iter().position(|&b| !f(b)).unwrap_or(s.len());
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
                prop::sample::select(&b"ab,;<>\"\\ (=x:[]\x7f\t@`Z{\xc1"[..]), 0..120),
            angles: bool,
        ) {
            prop_assert_eq!(super::closing_quote(&s), closing_quote(&s));
            prop_assert_eq!(super::find1(b'<', &s), memchr::memchr(b'<', &s));
            let (v, _) = super::split_param_value(&s);
            let (t, _) = super::split_token_long(&s);
            prop_assert_eq!(t.len(), s.iter().take_while(|&&b| super::is_token(b)).count());
            let t: Vec<u8> = s.iter().map(|b| b.to_ascii_uppercase()).collect();
            for n in 0..s.len() {
                prop_assert_eq!(super::eq_ignore_case(&s[n..], &t[n..]), true);
                prop_assert_eq!(
                    super::eq_ignore_case(&s[..n], &s[1..=n]),
                    s[..n].eq_ignore_ascii_case(&s[1..=n])
                );
            }
            prop_assert_eq!(v.len(), s.iter().take_while(|&&b| super::is_param_value(b)).count());
            prop_assert_eq!(
                super::has_non_nameaddr_uri_byte(&s),
                s.iter().any(|&b| b <= b' ' || b == 0x7f || b == b'<' || b == b'"')
            );
            prop_assert_eq!(
                super::has_ctl_or_space(&s),
                s.iter().any(|&b| b <= b' ' || b == 0x7f)
            );
            prop_assert_eq!(super::find2(b',', b'"', &s), memchr::memchr2(b',', b'"', &s));
            prop_assert_eq!(
                super::find3(b';', b'\\', b'>', &s),
                memchr::memchr3(b';', b'\\', b'>', &s)
            );
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

#[cfg(test)]
mod folded {
    use super::*;

    #[test]
    fn folded_words_match_a_bytewise_fold() {
        let text = b"Tag;TAG=xyZ09-_.!%*+`'~aBcDeFgHiJ@[]:";
        for start in 0..text.len() {
            for end in start..=text.len().min(start + 10) {
                let s = &text[start..end];
                let mut want = 0u64;
                for (i, &b) in s.iter().enumerate().take(8) {
                    want |= u64::from(b.to_ascii_lowercase()) << (8 * i);
                }
                let want = (s.len() <= 8).then_some(want);
                assert_eq!(folded_word(s), want, "{}", String::from_utf8_lossy(s));
                if (1..=8).contains(&s.len()) {
                    let rest = &text[start..];
                    assert_eq!(folded_prefix(rest, s.len()), want);
                    assert_eq!(folded_prefix(s, s.len()), want);
                }
                if s.iter().all(|b| !b.is_ascii_uppercase()) {
                    assert_eq!(folded_word_const(s), want);
                }
            }
        }
    }
}
