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
    let Some(nl) = memchr(b'\n', &window[pos..]) else {
        return incomplete();
    };
    let line = strip_cr(&window[pos..pos + nl]);
    let start = parse_start_line(line)?;
    pos += nl + 1;

    // Header lines. `cur` is the header being accumulated (it may be continued by folds).
    let max_headers = limits.max_headers.min(slots.len());
    let mut count = 0usize;
    let mut cur: Option<(HeaderKind, usize, usize, usize, usize)> = None; // kind, name start/end, value start/end
    let header_end;
    loop {
        let rest = match window.get(pos..) {
            Some(r) if !r.is_empty() => r,
            _ => return incomplete(),
        };
        let Some(nl) = memchr(b'\n', rest) else {
            return incomplete();
        };
        let line = strip_cr(&rest[..nl]);
        let line_start = pos;
        pos += nl + 1;
        if line.is_empty() {
            header_end = pos;
            break;
        }
        let first = line[0];
        if first == b' ' || first == b'\t' {
            // Folded continuation: extend the current header's value.
            let Some((_, name_start, _, _, value_end)) = cur.as_mut() else {
                return Err(ParseError::InvalidHeaderLine);
            };
            *value_end = line_start + line.len();
            if *value_end - *name_start > limits.max_header_len {
                return Err(ParseError::HeaderTooLong);
            }
            continue;
        }
        if let Some(h) = cur.take() {
            store(slots, &mut count, max_headers, buf, h)?;
        }
        if line.len() > limits.max_header_len {
            return Err(ParseError::HeaderTooLong);
        }
        // One pass: token name, optional WSP, colon (RFC 3261 HCOLON).
        let name_len = line.iter().take_while(|&&b| lex::is_token(b)).count();
        let colon = name_len
            + line[name_len..]
                .iter()
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
        if name_len == 0 || line.get(colon) != Some(&b':') {
            return Err(if memchr(b':', line).is_some() {
                ParseError::InvalidHeaderName
            } else {
                ParseError::InvalidHeaderLine
            });
        }
        let name = &line[..name_len];
        let kind = HeaderKind::from_name(name);
        cur = Some((
            kind,
            line_start,
            line_start + name.len(),
            line_start + colon + 1,
            line_start + line.len(),
        ));
    }
    if let Some(h) = cur.take() {
        store(slots, &mut count, max_headers, buf, h)?;
    }

    // Body framing.
    let content_length = content_length(&slots[..count])?;
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
    Ok(Status::Complete(Message {
        start,
        headers: &headers[..count],
        body: &buf[header_end..len],
        len,
    }))
}

#[inline]
fn strip_cr(line: &[u8]) -> &[u8] {
    match line.split_last() {
        Some((b'\r', rest)) => rest,
        _ => line,
    }
}

fn store<'b>(
    slots: &mut [Header<'b>],
    count: &mut usize,
    max: usize,
    buf: &'b [u8],
    (kind, name_start, name_end, value_start, value_end): (HeaderKind, usize, usize, usize, usize),
) -> Result<(), ParseError> {
    if *count >= max {
        return Err(ParseError::TooManyHeaders);
    }
    let slot = slots.get_mut(*count).ok_or(ParseError::TooManyHeaders)?;
    *slot = Header {
        kind,
        name: &buf[name_start..name_end],
        value: lex::trim(&buf[value_start..value_end]),
    };
    *count += 1;
    Ok(())
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
    let sp1 = memchr(b' ', line).ok_or(ParseError::InvalidStartLine)?;
    let sp2 = memchr::memrchr(b' ', line).ok_or(ParseError::InvalidStartLine)?;
    if sp2 <= sp1 {
        return Err(ParseError::InvalidStartLine);
    }
    let method = &line[..sp1];
    if !lex::is_token_str(method) {
        return Err(ParseError::InvalidMethod);
    }
    let version = &line[sp2 + 1..];
    check_version(version)?;
    let uri = &line[sp1 + 1..sp2];
    // No whitespace, controls or the name-addr delimiters `<>"` (RFC 4475 `ltgtruri`).
    if uri.is_empty()
        || uri
            .iter()
            .any(|&b| b <= b' ' || b == 0x7f || matches!(b, b'<' | b'>' | b'"'))
    {
        return Err(ParseError::InvalidRequestUri);
    }
    Ok(StartLine::Request {
        method: Method::from_bytes(method),
        uri,
    })
}

fn check_version(v: &[u8]) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case(VERSION) {
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
