//! Request framing: head via httparse, body via Content-Length or chunked coding.
//!
//! `decode` is called with everything received and not yet consumed; it either asks for more
//! bytes, or returns one complete request and how many bytes it used, so pipelined requests are
//! taken one after the other from the same buffer, in order.

use std::borrow::Cow;

/// Most headers we accept in one request (httparse needs the array up front).
pub const DEFAULT_MAX_HEADERS: usize = 64;
/// Largest request head (request line + headers) in bytes.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest request body in bytes, after de-chunking. XCAP documents are small.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// Hard ceiling on `Limits::max_headers` (size of the stack array given to httparse).
const HEADER_ARRAY: usize = 128;

/// Bounds applied while framing; each is a server flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_headers: usize,
    pub max_head_bytes: usize,
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_headers: DEFAULT_MAX_HEADERS,
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// A parsed request head; every slice borrows from the receive buffer.
#[derive(Debug, Clone)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// Request target as sent (origin-form or absolute-form), not yet percent-decoded.
    pub target: &'a str,
    pub version: Version,
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// Whether the connection stays open after the response (HTTP/1.1 default, or
    /// HTTP/1.0 with `Connection: keep-alive`; never with `Connection: close`).
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue`.
    pub expect_continue: bool,
}

impl<'a> RequestHead<'a> {
    /// First header with that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// First header with that name as trimmed UTF-8 text.
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        self.header(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
    }
}

#[derive(Debug)]
pub enum Decoded<'a> {
    /// More bytes are needed. `expect_continue` is true when the head is complete, the body
    /// is not, and the client waits for `100 Continue` before sending it: the server writes
    /// `write_continue` once for this request.
    Partial { expect_continue: bool },
    /// One complete request; `consumed` bytes of the buffer belong to it.
    Complete {
        head: RequestHead<'a>,
        /// Borrowed for Content-Length bodies, owned when de-chunked.
        body: Cow<'a, [u8]>,
        consumed: usize,
    },
}

/// Framing failures; each maps to a status, after which the server closes the connection
/// (the stream can no longer be framed reliably).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Garbage, conflicting or invalid framing headers.
    BadRequest(&'static str),
    /// Head larger than `max_head_bytes` or more than `max_headers` headers.
    HeadTooLarge,
    /// Body larger than `max_body`.
    BodyTooLarge,
    /// A transfer coding other than `chunked`.
    UnsupportedTransferEncoding,
    /// Not HTTP/1.0 or HTTP/1.1.
    VersionNotSupported,
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::HeadTooLarge => 431,
            HttpError::BodyTooLarge => 413,
            HttpError::UnsupportedTransferEncoding => 501,
            HttpError::VersionNotSupported => 505,
        }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::BadRequest(why) => write!(f, "bad request: {why}"),
            HttpError::HeadTooLarge => f.write_str("request head too large"),
            HttpError::BodyTooLarge => f.write_str("request body too large"),
            HttpError::UnsupportedTransferEncoding => f.write_str("unsupported transfer coding"),
            HttpError::VersionNotSupported => f.write_str("HTTP version not supported"),
        }
    }
}

impl std::error::Error for HttpError {}

enum Framing {
    None,
    Length(usize),
    Chunked,
}

/// Frames the first request in `buf`.
pub fn decode<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<'a>, HttpError> {
    // Tolerate empty lines between pipelined requests (RFC 9112 §2.2).
    let mut skip = 0;
    while skip < buf.len() && (buf[skip] == b'\r' || buf[skip] == b'\n') {
        skip += 1;
    }
    if skip > 0 {
        return match decode(&buf[skip..], limits)? {
            Decoded::Complete {
                head,
                body,
                consumed,
            } => Ok(Decoded::Complete {
                head,
                body,
                consumed: consumed + skip,
            }),
            partial => Ok(partial),
        };
    }
    let mut storage = [httparse::EMPTY_HEADER; HEADER_ARRAY];
    let max_headers = limits.max_headers.clamp(1, HEADER_ARRAY);
    let mut req = httparse::Request::new(&mut storage[..max_headers]);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_head_bytes {
                return Err(HttpError::HeadTooLarge);
            }
            return Ok(Decoded::Partial {
                expect_continue: false,
            });
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(httparse::Error::Version) => return Err(HttpError::VersionNotSupported),
        Err(_) => return Err(HttpError::BadRequest("malformed request head")),
    };
    if head_len > limits.max_head_bytes {
        return Err(HttpError::HeadTooLarge);
    }
    let method = req.method.ok_or(HttpError::BadRequest("no method"))?;
    let target = req.path.ok_or(HttpError::BadRequest("no target"))?;
    let version = match req.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(HttpError::VersionNotSupported),
    };
    let mut headers = Vec::with_capacity(req.headers.len());
    let mut framing = Framing::None;
    let mut seen_length: Option<usize> = None;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;
    let mut has_host = false;
    for h in req.headers.iter() {
        let name: &'a str = h.name;
        let value: &'a [u8] = h.value;
        headers.push((name, value));
        if name.eq_ignore_ascii_case("content-length") {
            let v = parse_content_length(value)?;
            if seen_length.is_some_and(|old| old != v) {
                return Err(HttpError::BadRequest("conflicting Content-Length"));
            }
            seen_length = Some(v);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            for coding in tokens(value) {
                if coding.eq_ignore_ascii_case(b"chunked") {
                    if chunked {
                        return Err(HttpError::BadRequest("chunked applied twice"));
                    }
                    chunked = true;
                } else if !coding.eq_ignore_ascii_case(b"identity") {
                    return Err(HttpError::UnsupportedTransferEncoding);
                }
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for t in tokens(value) {
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive_token = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if trim(value).eq_ignore_ascii_case(b"100-continue") {
                expect_continue = true;
            } else {
                return Err(HttpError::BadRequest("unsupported expectation"));
            }
        } else if name.eq_ignore_ascii_case("host") {
            has_host = true;
        }
    }
    if version == Version::Http11 && !has_host {
        return Err(HttpError::BadRequest("missing Host"));
    }
    if chunked {
        if seen_length.is_some() {
            // Request smuggling vector (RFC 9112 §6.3): refuse rather than guess.
            return Err(HttpError::BadRequest(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        if version == Version::Http10 {
            return Err(HttpError::BadRequest("chunked in HTTP/1.0"));
        }
        framing = Framing::Chunked;
    } else if let Some(n) = seen_length {
        if n > limits.max_body {
            return Err(HttpError::BodyTooLarge);
        }
        framing = Framing::Length(n);
    }
    let keep_alive = match version {
        Version::Http11 => !close,
        Version::Http10 => keep_alive_token && !close,
    };
    let head = RequestHead {
        method,
        target,
        version,
        headers,
        keep_alive,
        expect_continue: expect_continue && version == Version::Http11,
    };
    let rest = &buf[head_len..];
    let waiting = head.expect_continue;
    match framing {
        Framing::None => Ok(Decoded::Complete {
            head,
            body: Cow::Borrowed(&[]),
            consumed: head_len,
        }),
        Framing::Length(n) => {
            if rest.len() < n {
                return Ok(Decoded::Partial {
                    expect_continue: waiting,
                });
            }
            Ok(Decoded::Complete {
                head,
                body: Cow::Borrowed(&rest[..n]),
                consumed: head_len + n,
            })
        }
        Framing::Chunked => match dechunk(rest, limits)? {
            None => Ok(Decoded::Partial {
                expect_continue: waiting,
            }),
            Some((body, used)) => Ok(Decoded::Complete {
                head,
                body: Cow::Owned(body),
                consumed: head_len + used,
            }),
        },
    }
}

fn parse_content_length(value: &[u8]) -> Result<usize, HttpError> {
    let v = trim(value);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::BadRequest("invalid Content-Length"));
    }
    let mut n: usize = 0;
    for d in v {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(usize::from(d - b'0')))
            .ok_or(HttpError::BadRequest("invalid Content-Length"))?;
    }
    Ok(n)
}

/// Decodes a chunked body; `None` when incomplete. Returns the body and bytes used.
fn dechunk(buf: &[u8], limits: &Limits) -> Result<Option<(Vec<u8>, usize)>, HttpError> {
    let mut pos = 0;
    let mut body = Vec::new();
    loop {
        let (size_len, size) = match httparse::parse_chunk_size(&buf[pos..]) {
            Ok(httparse::Status::Complete((n, size))) => (n, size),
            Ok(httparse::Status::Partial) => {
                if buf.len() - pos > 1024 {
                    return Err(HttpError::BadRequest("chunk size line too long"));
                }
                return Ok(None);
            }
            Err(_) => return Err(HttpError::BadRequest("invalid chunk size")),
        };
        pos += size_len;
        if size == 0 {
            // Trailer section: header lines up to an empty line; we ignore their content.
            loop {
                let line_end = match memchr::memchr(b'\n', &buf[pos..]) {
                    Some(i) => pos + i,
                    None => {
                        if buf.len() - pos > limits.max_head_bytes {
                            return Err(HttpError::HeadTooLarge);
                        }
                        return Ok(None);
                    }
                };
                let line = &buf[pos..line_end];
                pos = line_end + 1;
                if line.is_empty() || line == b"\r" {
                    return Ok(Some((body, pos)));
                }
                if pos > limits.max_head_bytes + body.len() + 64 * 1024 {
                    return Err(HttpError::HeadTooLarge);
                }
            }
        }
        let size = usize::try_from(size).map_err(|_| HttpError::BodyTooLarge)?;
        if size > limits.max_body || body.len() + size > limits.max_body {
            return Err(HttpError::BodyTooLarge);
        }
        if buf.len() - pos < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size;
        if &buf[pos..pos + 2] != b"\r\n" {
            return Err(HttpError::BadRequest("chunk not followed by CRLF"));
        }
        pos += 2;
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &v[start..end]
}

fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|b| *b == b',').map(trim).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> Limits {
        Limits::default()
    }

    fn complete(buf: &[u8]) -> (RequestHead<'_>, Vec<u8>, usize) {
        match decode(buf, &lim()).unwrap() {
            Decoded::Complete {
                head,
                body,
                consumed,
            } => (head, body.into_owned(), consumed),
            Decoded::Partial { .. } => panic!("partial"),
        }
    }

    #[test]
    fn simple_get_keep_alive() {
        let (h, body, n) = complete(b"GET /xcap-root/x HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, "/xcap-root/x");
        assert!(h.keep_alive);
        assert!(body.is_empty());
        assert_eq!(n, 38);
    }

    #[test]
    fn connection_close_and_http10() {
        let (h, _, _) = complete(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        assert!(!h.keep_alive);
        let (h, _, _) = complete(b"GET / HTTP/1.0\r\n\r\n");
        assert!(!h.keep_alive);
        let (h, _, _) = complete(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(h.keep_alive);
    }

    #[test]
    fn content_length_body_and_partial() {
        let full = b"PUT /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        for cut in 0..full.len() {
            assert!(matches!(
                decode(&full[..cut], &lim()).unwrap(),
                Decoded::Partial { .. }
            ));
        }
        let (_, body, n) = complete(full);
        assert_eq!(body, b"hello");
        assert_eq!(n, full.len());
    }

    #[test]
    fn pipelined_requests_in_order() {
        let buf = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPUT /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nokGET /3 HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut pos = 0;
        let mut targets = vec![];
        while pos < buf.len() {
            let (h, _, n) = complete(&buf[pos..]);
            targets.push(h.target.to_string());
            pos += n;
        }
        assert_eq!(targets, ["/1", "/2", "/3"]);
    }

    #[test]
    fn chunked_body_with_trailer() {
        let buf = b"PUT /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let (_, body, n) = complete(buf);
        assert_eq!(body, b"hello world");
        assert_eq!(&buf[n..], b"NEXT");
        for cut in 0..buf.len() - 4 {
            assert!(matches!(
                decode(&buf[..cut], &lim()).unwrap(),
                Decoded::Partial { .. }
            ));
        }
    }

    #[test]
    fn expect_continue_reported_while_body_missing() {
        let buf =
            b"PUT /a HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
        assert!(matches!(
            decode(buf, &lim()).unwrap(),
            Decoded::Partial {
                expect_continue: true
            }
        ));
    }

    #[test]
    fn errors() {
        let e = |b: &[u8]| decode(b, &lim()).unwrap_err().status();
        assert_eq!(e(b"\x00\x01garbage\r\n\r\n"), 400);
        assert_eq!(e(b"GET / HTTP/1.1\r\n\r\n"), 400); // no Host
        assert_eq!(
            e(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(
            e(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n"),
            400
        );
        assert_eq!(
            e(b"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
            501
        );
        assert_eq!(
            e(b"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
            400
        );
        assert_eq!(
            e(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n"),
            413
        );
        let big = vec![b'a'; DEFAULT_MAX_HEAD_BYTES + 10];
        let mut req = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        req.extend_from_slice(&big);
        assert_eq!(e(&req), 431);
        let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..100 {
            many.extend_from_slice(format!("X{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(e(&many), 431);
    }

    #[test]
    fn chunked_body_limit() {
        let limits = Limits {
            max_body: 4,
            ..Limits::default()
        };
        let buf = b"PUT /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(decode(buf, &limits).unwrap_err(), HttpError::BodyTooLarge);
    }
}
