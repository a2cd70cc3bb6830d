//! Framing, start line and header indexing: the only pass over the whole message.
//!
//! Like httparse, `parse` records borrowed slices into caller-provided slots and interprets
//! nothing else; typed accessors (see `accessors.rs`) parse a header value only when asked,
//! so a message the server drops early costs one scan.

use memchr::memchr;

use crate::error::ParseError;
use crate::header::{Header, HeaderKind};
use crate::lex;
use crate::limits::Limits;
use crate::line_ends::LineEnds;
use crate::method::Method;

/// Result of a successful parse of a possibly incomplete buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status<T> {
    Complete(T),
    /// More bytes needed (stream framing only).
    Partial,
}

impl<T> Status<T> {
    pub fn is_complete(&self) -> bool {
        matches!(self, Status::Complete(_))
    }
    /// The complete value, if any.
    pub fn complete(self) -> Option<T> {
        match self {
            Status::Complete(t) => Some(t),
            Status::Partial => None,
        }
    }
}

/// How the message boundary is found (RFC 3261 §18.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// UDP: the datagram is the message; without Content-Length the body is the rest.
    Datagram,
    /// TCP/TLS: Content-Length is mandatory; `Partial` until every body byte is present.
    Stream,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLine<'b> {
    Request { method: Method<'b>, uri: &'b [u8] },
    Response { code: u16, reason: &'b [u8] },
}

/// A parsed message borrowing the receive buffer (`'b`) and the header slots (`'h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'h, 'b> {
    pub start: StartLine<'b>,
    pub headers: &'h [Header<'b>],
    pub body: &'b [u8],
    /// Bytes of the buffer this message occupies (including leading CRLF keep-alives).
    pub len: usize,
    /// Where each header kind first appears, built by `parse` so accessors skip the scan.
    index: KindIndex,
}

/// Number of `HeaderKind` variants (`Other` is the last).
const N_KINDS: usize = HeaderKind::Other as usize + 1;
const _: () = assert!(N_KINDS <= 64, "repeat bits are a u64");
/// `first` entry of a kind that does not occur.
const ABSENT: u8 = u8::MAX;

/// First slot of every header kind plus a "seen more than once" bit per kind, so a lookup
/// is one array read and `single()` needs no duplicate scan unless the kind repeats.
/// `slots_addr`/`slots_len` tie it to the exact `headers` slice it describes: if a caller
/// swaps the public `headers` field, lookups fall back to scanning.
#[derive(Clone, Copy)]
struct KindIndex {
    first: [u8; N_KINDS],
    repeated: u64,
    slots_addr: usize,
    slots_len: usize,
}

/// The index is derived from `headers`: it takes no part in comparing messages (two parses
/// of the same bytes into different slot arrays are equal) and is left out of `Debug`.
impl PartialEq for KindIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for KindIndex {}

impl core::fmt::Debug for KindIndex {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("..")
    }
}

impl KindIndex {
    const EMPTY: KindIndex = KindIndex {
        first: [ABSENT; N_KINDS],
        repeated: 0,
        slots_addr: 0,
        slots_len: usize::MAX,
    };

    #[inline(always)]
    fn record(&mut self, kind: HeaderKind, slot: usize) {
        let k = kind as usize;
        if let Some(f) = self.first.get_mut(k) {
            if *f == ABSENT {
                // Slots past 254 cannot be recorded: the index is disabled below.
                *f = u8::try_from(slot).unwrap_or(ABSENT);
            } else {
                self.repeated |= 1 << k;
            }
        }
    }
}

/// Where a kind occurs, as known from the index.
pub(crate) enum Lookup {
    Absent,
    /// Exactly one header of the kind, in this slot.
    Once(usize),
    /// First of several headers of the kind.
    Repeated(usize),
    /// No usable index: scan.
    Unknown,
}

const VERSION: &[u8] = b"SIP/2.0";

/// Parses one message from the start of `buf`, indexing its headers into `slots`.
///
/// Leading CRLFs (keep-alives, RFC 3261 §7.5) are skipped and counted in `len`.
pub fn parse<'h, 'b>(
    buf: &'b [u8],
    slots: &'h mut [Header<'b>],
    framing: Framing,
    limits: &Limits,
) -> Result<Status<Message<'h, 'b>>, ParseError> {
    parse_impl::<false>(buf, slots, framing, limits)
}

/// The start line and headers of a datagram whose body framing is broken, for answering it.
///
/// Why: a request whose `Content-Length` is larger than the datagram, or not a number, fails
/// [`parse`] (RFC 3261 §18.3 wants a 400 for it), yet its Via, From, To, Call-ID and CSeq may be
/// fine, and a response needs nothing more. This reads the message as [`parse`] does up to the
/// empty line and stops there: the result has an empty body and `len` ends at the headers.
/// Errors before the body (start line, header lines, limits) are the same as [`parse`]'s.
pub fn parse_head<'h, 'b>(
    buf: &'b [u8],
    slots: &'h mut [Header<'b>],
    limits: &Limits,
) -> Result<Message<'h, 'b>, ParseError> {
    match parse_impl::<true>(buf, slots, Framing::Datagram, limits)? {
        Status::Complete(m) => Ok(m),
        // Datagram framing never asks for more input.
        Status::Partial => Err(ParseError::UnterminatedHeaders),
    }
}

/// [`parse`], or with `HEAD_ONLY` [`parse_head`]: one copy of the start-line and header code.
/// Inlined into each, so `HEAD_ONLY` costs `parse` nothing at run time (callgrind of
/// `herald bench-core`: 3 more instructions per `parse` call, of ~7,060 per SUBSCRIBE→NOTIFY
/// pair, from a slightly different layout).
#[inline(always)]
fn parse_impl<'h, 'b, const HEAD_ONLY: bool>(
    buf: &'b [u8],
    slots: &'h mut [Header<'b>],
    framing: Framing,
    limits: &Limits,
) -> Result<Status<Message<'h, 'b>>, ParseError> {
    let stream = framing == Framing::Stream;
    if !stream && buf.len() > limits.max_message_len {
        return Err(ParseError::TooLarge);
    }
    // Everything up to the end of the header section must lie in this window.
    let window = buf.get(..limits.max_message_len).unwrap_or(buf);
    let incomplete = || {
        if buf.len() > limits.max_message_len {
            Err(ParseError::TooLarge)
        } else if stream {
            Ok(Status::Partial)
        } else {
            Err(ParseError::UnterminatedHeaders)
        }
    };

    let mut pos = window
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if pos == window.len() {
        return if stream && buf.len() <= limits.max_message_len {
            Ok(Status::Partial)
        } else if stream {
            Err(ParseError::TooLarge)
        } else {
            Err(ParseError::Empty)
        };
    }

    // Start line.
    let mut ends = LineEnds::new(window, pos);
    let Some(nl) = ends.next_end() else {
        return incomplete();
    };
    let line = strip_cr(&window[pos..nl]);
    let start = parse_start_line(line)?;
    pos = nl + 1;

    // Header lines.
    let max_headers = limits.max_headers.min(slots.len());
    let slots = &mut slots[..max_headers];
    let (header_end, count, mut index) = match index_headers(buf, window, pos, ends, slots, limits)
    {
        Ok(done) => done,
        Err(None) => return incomplete(),
        Err(Some(e)) => return Err(e),
    };

    if HEAD_ONLY {
        let headers: &'h [Header<'b>] = slots;
        let headers = &headers[..count];
        if count < usize::from(ABSENT) {
            index.slots_addr = headers.as_ptr() as usize;
            index.slots_len = count;
        }
        return Ok(Status::Complete(Message {
            start,
            headers,
            body: &buf[header_end..header_end],
            len: header_end,
            index,
        }));
    }

    // Body framing.
    let cl_bit = 1u64 << (HeaderKind::ContentLength as usize);
    let content_length = match index.first.get(HeaderKind::ContentLength as usize) {
        Some(&ABSENT) if count < usize::from(ABSENT) => None,
        // A single Content-Length: parse just its slot.
        Some(&i) if index.repeated & cl_bit == 0 && i != ABSENT => {
            match slots.get(usize::from(i)) {
                Some(h) => {
                    Some(lex::parse_u32(h.value).ok_or(ParseError::InvalidContentLength)? as usize)
                }
                None => None,
            }
        }
        _ => content_length(&slots[..count])?,
    };
    let available = buf.len() - header_end;
    let body_len = match (content_length, framing) {
        (Some(cl), Framing::Stream) => {
            if header_end.saturating_add(cl) > limits.max_message_len {
                return Err(ParseError::TooLarge);
            }
            if available < cl {
                return Ok(Status::Partial);
            }
            cl
        }
        (None, Framing::Stream) => return Err(ParseError::MissingContentLength),
        (Some(cl), Framing::Datagram) => {
            if available < cl {
                return Err(ParseError::BodyTooShort);
            }
            cl
        }
        (None, Framing::Datagram) => available,
    };
    let len = header_end + body_len;
    let headers: &'h [Header<'b>] = slots;
    let headers = &headers[..count];
    if count < usize::from(ABSENT) {
        index.slots_addr = headers.as_ptr() as usize;
        index.slots_len = count;
    }
    Ok(Status::Complete(Message {
        start,
        headers,
        body: &buf[header_end..len],
        len,
        index,
    }))
}

/// Indexes the header lines of `window` from `pos` (just after the start line) into
/// `slots`; returns where the header section ends (after its empty line), how many slots
/// were filled and the kind index. `Err(None)`: the buffer ends before the empty line.
///
/// `ends` yields the line ends from `pos` on.
///
/// Out of `parse` so the loop's register allocation sees only the loop's state: in
/// `parse`, with the start line and framing around it, the loop kept its state in memory.
#[inline(never)]
fn index_headers<'b>(
    buf: &'b [u8],
    window: &'b [u8],
    mut pos: usize,
    mut ends: LineEnds<'b>,
    slots: &mut [Header<'b>],
    limits: &Limits,
) -> Result<(usize, usize, KindIndex), Option<ParseError>> {
    // Each header is stored as soon as its line is read; a folded continuation line then
    // widens the value of the last slot. Slots past `max_headers` were cut off by the
    // caller: `get_mut` failing is `TooManyHeaders`.
    let mut count = 0usize;
    let mut index = KindIndex::EMPTY;
    loop {
        let rest = window.get(pos..).unwrap_or_default();
        let Some(end) = ends.next_end() else {
            return Err(None);
        };
        let line = strip_cr(rest.get(..end - pos).unwrap_or_default());
        let line_start = pos;
        pos = end + 1;
        let Some(&first) = line.first() else {
            return Ok((pos, count, index));
        };
        if first == b' ' || first == b'\t' {
            // Folded continuation: extend the current header's value.
            fold(buf, slots, count, line_start + line.len(), limits)?;
            continue;
        }
        if line.len() > limits.max_header_len {
            return Err(Some(ParseError::HeaderTooLong));
        }
        // field-name HCOLON: the name is a token, then optional WSP, then the colon.
        let colon = colon_at(line, rest);
        let (mut name, value) = match line.split_at_checked(colon) {
            Some((name, [b':', value @ ..])) => (name, value),
            _ => return Err(Some(ParseError::InvalidHeaderLine)),
        };
        if let [.., b' ' | b'\t'] = name {
            while let [rest @ .., b' ' | b'\t'] = name {
                name = rest;
            }
        }
        // A recognised name matched a token spelling exactly; only others need the check
        // (which also rejects names with inner whitespace or empty names).
        let kind = HeaderKind::from_name(name);
        if kind == HeaderKind::Other && !is_token_name(name) {
            return Err(Some(ParseError::InvalidHeaderName));
        }
        let value = match value {
            // The usual `Name: value`: one space, no whitespace after it or at the end.
            // Every whitespace byte is at most SP, so `> SP` is one compare per end; other
            // low bytes (controls) take `trim`, which leaves them as they are.
            [b' ', v @ ..]
                if v.first().is_some_and(|&b| b > b' ') && v.last().is_some_and(|&b| b > b' ') =>
            {
                v
            }
            v => trim_value(v),
        };
        let Some(slot) = slots.get_mut(count) else {
            return Err(Some(ParseError::TooManyHeaders));
        };
        *slot = Header { kind, name, value };
        index.record(kind, count);
        count += 1;
    }
}

/// `lex::trim` for a value not in the usual `Name: value` shape; out of line, so its loops
/// do not weigh on the header loop's register allocation.
#[inline(never)]
fn trim_value(v: &[u8]) -> &[u8] {
    lex::trim(v)
}

/// `lex::is_token_str` for an unrecognised header name; out of line like [`trim_value`].
#[inline(never)]
fn is_token_name(name: &[u8]) -> bool {
    lex::is_token_str(name)
}

/// Widens the value of the last header (`slots[count - 1]`) to end at `value_end`, for a
/// folded continuation line. Out of line: folding is rare, and inlined its bookkeeping
/// cost every header line registers. The header's line is found again from its slot (the
/// name starts the line and holds no `:`), so the loop carries no offsets for it.
#[cold]
#[inline(never)]
fn fold<'b>(
    buf: &'b [u8],
    slots: &mut [Header<'b>],
    count: usize,
    value_end: usize,
    limits: &Limits,
) -> Result<(), ParseError> {
    let Some(slot) = count.checked_sub(1).and_then(|i| slots.get_mut(i)) else {
        return Err(ParseError::InvalidHeaderLine);
    };
    let name_start = (slot.name.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    if value_end.saturating_sub(name_start) > limits.max_header_len {
        return Err(ParseError::HeaderTooLong);
    }
    let header = buf.get(name_start..value_end).unwrap_or_default();
    if let Some(colon) = memchr(b':', header) {
        slot.value = lex::trim(header.get(colon + 1..).unwrap_or_default());
    }
    Ok(())
}

/// Index of the first `:` in `line` (its length if none), where `line` is a prefix of
/// `rest`. Eight bytes at a time (SWAR "has zero byte"), since this runs on every header
/// line: words are read from `rest`, so a name shorter than eight bytes (`l`, `Via`, `To`)
/// still takes one word rather than a byte loop; a hit past the line means "none".
#[inline]
fn colon_at(line: &[u8], rest: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const COLONS: u64 = ONES * b':' as u64;
    let len = line.len();
    let mut at = 0;
    while let Some(chunk) = rest.get(at..at + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let x = u64::from_le_bytes(w) ^ COLONS;
        let hits = x.wrapping_sub(ONES) & !x & HIGH;
        if hits != 0 {
            // Borrows only propagate upwards, so the lowest flagged byte is a true match.
            return (at + (hits.trailing_zeros() / 8) as usize).min(len);
        }
        at += 8;
        if at >= len {
            return len;
        }
    }
    colon_in_tail(line, at)
}

/// [`colon_at`] on the last bytes of the buffer, fewer than a word: out of line, since it
/// is rare and its byte loop would weigh on the header loop's register allocation.
#[inline(never)]
fn colon_in_tail(line: &[u8], at: usize) -> usize {
    let tail = line.get(at..).unwrap_or_default();
    at + tail.iter().position(|&b| b == b':').unwrap_or(tail.len())
}

#[inline]
fn strip_cr(line: &[u8]) -> &[u8] {
    match line.split_last() {
        Some((b'\r', rest)) => rest,
        _ => line,
    }
}

/// The body length announced by Content-Length (`l`); several agreeing copies are tolerated.
fn content_length(headers: &[Header<'_>]) -> Result<Option<usize>, ParseError> {
    let mut found = None;
    for h in headers
        .iter()
        .filter(|h| h.kind == HeaderKind::ContentLength)
    {
        let v = lex::parse_u32(h.value).ok_or(ParseError::InvalidContentLength)? as usize;
        if found.is_some_and(|f| f != v) {
            return Err(ParseError::InvalidContentLength);
        }
        found = Some(v);
    }
    Ok(found)
}

fn parse_start_line(line: &[u8]) -> Result<StartLine<'_>, ParseError> {
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        return parse_status_line(line);
    }
    // Request-Line = Method SP Request-URI SP SIP-Version (single spaces, RFC 3261 §7.1).
    let sp1 = lex::find1(b' ', line).ok_or(ParseError::InvalidStartLine)?;
    // The version is almost always ` SIP/2.0`: then the last space is the one before it,
    // and the version check is done; anything else takes the search.
    let (sp2, version_ok) = match line.len().checked_sub(8) {
        Some(at) if is_sp_version(line.get(at..).unwrap_or_default()) => (at, true),
        _ => (
            memchr::memrchr(b' ', line).ok_or(ParseError::InvalidStartLine)?,
            false,
        ),
    };
    if sp2 <= sp1 {
        return Err(ParseError::InvalidStartLine);
    }
    // A recognised method is a token; only extension methods need the byte check.
    let method = match Method::from_bytes(&line[..sp1]) {
        Method::Other(m) if !lex::is_token_str(m) => return Err(ParseError::InvalidMethod),
        m => m,
    };
    if !version_ok {
        check_version(&line[sp2 + 1..])?;
    }
    let uri = &line[sp1 + 1..sp2];
    // No whitespace, controls or the name-addr delimiters `<>"` (RFC 4475 `ltgtruri`).
    if uri.is_empty() || lex::has_non_request_uri_byte(uri) {
        return Err(ParseError::InvalidRequestUri);
    }
    Ok(StartLine::Request { method, uri })
}

/// `s` is exactly ` SIP/2.0`, the letters in any case: one word compare.
#[inline]
fn is_sp_version(s: &[u8]) -> bool {
    // 0x20 on the letters folds them to lower case; no other byte of the pattern changes.
    const FOLD: u64 = u64::from_le_bytes([0, 0x20, 0x20, 0x20, 0, 0, 0, 0]);
    const WANT: u64 = u64::from_le_bytes(*b" sip/2.0");
    match <[u8; 8]>::try_from(s) {
        Ok(w) => u64::from_le_bytes(w) | FOLD == WANT,
        Err(_) => false,
    }
}

fn check_version(v: &[u8]) -> Result<(), ParseError> {
    if lex::eq_ignore_case(v, VERSION) {
        Ok(())
    } else if v.len() >= 4 && v[..4].eq_ignore_ascii_case(b"SIP/") {
        Err(ParseError::VersionNotSupported)
    } else {
        Err(ParseError::InvalidStartLine)
    }
}

fn parse_status_line(line: &[u8]) -> Result<StartLine<'_>, ParseError> {
    // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
    let sp = memchr(b' ', line).ok_or(ParseError::InvalidStartLine)?;
    check_version(&line[..sp])?;
    let rest = &line[sp + 1..];
    let code = rest.get(..3).ok_or(ParseError::InvalidStatusCode)?;
    if !code.iter().all(|&b| lex::is_digit(b)) {
        return Err(ParseError::InvalidStatusCode);
    }
    let code = u16::from(code[0] - b'0') * 100
        + u16::from(code[1] - b'0') * 10
        + u16::from(code[2] - b'0');
    if !(100..=699).contains(&code) {
        return Err(ParseError::InvalidStatusCode);
    }
    let reason = match rest.get(3..) {
        None | Some([]) => &[][..],
        Some([b' ', reason @ ..]) => reason,
        Some(_) => return Err(ParseError::InvalidStatusCode),
    };
    Ok(StartLine::Response { code, reason })
}

impl<'h, 'b> Message<'h, 'b> {
    /// Where `kind` occurs, from the index built by `parse`.
    #[inline]
    pub(crate) fn lookup(&self, kind: HeaderKind) -> Lookup {
        let idx = &self.index;
        if idx.slots_len != self.headers.len() || idx.slots_addr != self.headers.as_ptr() as usize {
            return Lookup::Unknown;
        }
        let k = kind as usize;
        match idx.first.get(k) {
            Some(&ABSENT) => Lookup::Absent,
            Some(&f) => {
                let f = usize::from(f);
                // Cheap guard: the indexed slot must hold the kind.
                if self.headers.get(f).map(|h| h.kind) != Some(kind) {
                    Lookup::Unknown
                } else if idx.repeated & (1 << k) == 0 {
                    Lookup::Once(f)
                } else {
                    Lookup::Repeated(f)
                }
            }
            None => Lookup::Unknown,
        }
    }

    /// The headers that can hold `kind`: from its first slot on, or just that slot when it
    /// occurs once.
    #[inline]
    pub(crate) fn candidates(&self, kind: HeaderKind) -> &'h [Header<'b>] {
        let h = self.headers;
        match self.lookup(kind) {
            Lookup::Absent => &[],
            Lookup::Once(i) => h.get(i..=i).unwrap_or(h),
            Lookup::Repeated(i) => h.get(i..).unwrap_or(h),
            Lookup::Unknown => h,
        }
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn method(&self) -> Option<Method<'b>> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn request_uri(&self) -> Option<&'b [u8]> {
        match self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    pub fn reason(&self) -> Option<&'b [u8]> {
        match self.start {
            StartLine::Response { reason, .. } => Some(reason),
            StartLine::Request { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colon_at_matches_bytewise_scan() {
        let lines: &[&[u8]] = &[
            b"",
            b"Via",
            b"Via: x",
            b"Subscription-State: active",
            b"Content-Length : 0",
            b"Content-Length\t:0",
            b"abcdefgh:",
            b"abcdefghi",
            b"abcdefg:",
            b"X-Long-Header-Name-Past-Two-Words: 1",
        ];
        for &l in lines {
            let want = l.iter().position(|&b| b == b':').unwrap_or(l.len());
            assert_eq!(colon_at(l, l), want, "{}", String::from_utf8_lossy(l));
            for more in [&b"\r\n"[..], b":", b"\r\nabcdefgh:ijklmnop:"] {
                let rest = [l, more].concat();
                assert_eq!(
                    colon_at(l, &rest),
                    want,
                    "{}",
                    String::from_utf8_lossy(&rest)
                );
            }
        }
    }

    #[test]
    fn folded_value_is_widened_in_place() {
        let msg = b"OPTIONS sip:a@b SIP/2.0\r\nSubject: one\r\n two\r\n\tthree\r\nX: y\r\n\r\n";
        let mut slots = [Header::EMPTY; 8];
        let m = parse(msg, &mut slots, Framing::Datagram, &Limits::default())
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(m.headers.len(), 2);
        assert_eq!(m.headers[0].value, b"one\r\n two\r\n\tthree");
        assert_eq!(m.headers[1].value, b"y");
    }

    #[test]
    fn kind_index_agrees_with_a_scan() {
        let msg = b"SUBSCRIBE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
Accept: a/b, c/d\r\nCall-ID: x\r\nv: SIP/2.0/UDP g;branch=z9hG4bK2\r\nAccept: e/f\r\n\
Expires: 1\r\nExpires: 2\r\nl: 0\r\n\r\n";
        let mut slots = [Header::EMPTY; 16];
        let m = parse(msg, &mut slots, Framing::Datagram, &Limits::default())
            .unwrap()
            .complete()
            .unwrap();
        assert!(matches!(m.lookup(HeaderKind::CallId), Lookup::Once(2)));
        assert!(matches!(m.lookup(HeaderKind::Via), Lookup::Repeated(0)));
        assert!(matches!(m.lookup(HeaderKind::Event), Lookup::Absent));
        assert_eq!(m.values(HeaderKind::Via).count(), 2);
        let accept: Vec<&[u8]> = m.values(HeaderKind::Accept).collect();
        assert_eq!(accept, [&b"a/b"[..], b"c/d", b"e/f"]);
        assert!(m.expires().is_err(), "differing repeats are still caught");
        assert_eq!(m.call_id(), Ok(&b"x"[..]));
        assert_eq!(m.header(HeaderKind::Event), None);
        assert_eq!(m.content_length(), Ok(Some(0)));
        assert_eq!(m.sole_value(HeaderKind::Accept), None, "repeated");
        assert_eq!(m.sole_value(HeaderKind::CallId), Some(&b"x"[..]));
        assert_eq!(m.sole_value(HeaderKind::Event), None);
        assert!(m.has(HeaderKind::Accept) && !m.has(HeaderKind::Event));

        // A caller swapping the public `headers` field gets a scan, not a stale index.
        let other = [Header {
            kind: HeaderKind::Event,
            name: b"Event",
            value: b"presence",
        }];
        let swapped = Message {
            headers: &other,
            ..m
        };
        assert!(matches!(swapped.lookup(HeaderKind::Event), Lookup::Unknown));
        assert_eq!(swapped.header(HeaderKind::Event), Some(&b"presence"[..]));
        assert_eq!(swapped.header(HeaderKind::CallId), None);
        assert_eq!(
            swapped.sole_value(HeaderKind::Event),
            Some(&b"presence"[..])
        );
        assert!(swapped.has(HeaderKind::Event) && !swapped.has(HeaderKind::CallId));
        let mut slots2 = [Header::EMPTY; 16];
        let reparsed = parse(msg, &mut slots2, Framing::Datagram, &Limits::default())
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(m, reparsed, "the index takes no part in equality");
    }
}
