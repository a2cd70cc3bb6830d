//! Writers: build responses and requests straight into a caller-owned, reused `Vec<u8>`,
//! so steady-state sending allocates nothing once the buffer has grown to size.
//!
//! Both writers' `new` CLEAR the buffer first (one message per buffer);
//! [`ResponseWriter::append`] adds a response after what the buffer holds (a batch of
//! replies in one send buffer). They copy values verbatim
//! (folded values stay valid SIP), and always end the header section with a Content-Length
//! computed from the body actually written.

use crate::header::HeaderKind;
use crate::message::Message;
use crate::method::Method;
use crate::name_addr::NameAddr;

/// Builds a response to a parsed request.
pub struct ResponseWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> ResponseWriter<'a> {
    /// Starts `SIP/2.0 code reason` and copies every Via, From, To, Call-ID and CSeq from
    /// `req` (RFC 3261 §8.2.6.2). `to_tag` is appended to To unless To already has a tag.
    pub fn new(
        out: &'a mut Vec<u8>,
        req: &Message<'_, '_>,
        code: u16,
        reason: &str,
        to_tag: Option<&[u8]>,
    ) -> Self {
        out.clear();
        Self::append(out, req, code, reason, to_tag)
    }

    /// As [`new`](Self::new), but after what `out` already holds: the response is
    /// `out[len_before..]` once finished.
    pub fn append(
        out: &'a mut Vec<u8>,
        req: &Message<'_, '_>,
        code: u16,
        reason: &str,
        to_tag: Option<&[u8]>,
    ) -> Self {
        out.extend_from_slice(b"SIP/2.0 ");
        push_u32(out, u32::from(code));
        out.push(b' ');
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        let mut w = ResponseWriter { out };
        for h in req.headers {
            match h.kind {
                HeaderKind::Via | HeaderKind::From | HeaderKind::CallId | HeaderKind::CSeq => {
                    w.header_kind(h.kind, h.value);
                }
                HeaderKind::To => {
                    w.out.extend_from_slice(b"To: ");
                    w.out.extend_from_slice(h.value);
                    if let Some(tag) = to_tag {
                        if NameAddr::parse(h.value).is_some_and(|n| n.param(b"tag").is_none()) {
                            w.out.extend_from_slice(b";tag=");
                            w.out.extend_from_slice(tag);
                        }
                    }
                    w.out.extend_from_slice(b"\r\n");
                }
                _ => {}
            }
        }
        w
    }

    fn header_kind(&mut self, kind: HeaderKind, value: &[u8]) -> &mut Self {
        self.header(kind.name(), value)
    }

    pub fn header(&mut self, name: &str, value: &[u8]) -> &mut Self {
        push_header(self.out, name, value);
        self
    }

    /// Numeric header without allocating (`Expires`, `Min-Expires`...).
    pub fn header_u32(&mut self, name: &str, value: u32) -> &mut Self {
        push_header_u32(self.out, name, value);
        self
    }

    /// Ends the message with `Content-Length: 0`.
    pub fn finish(self) {
        finish(self.out, None, b"");
    }

    pub fn finish_with_body(self, content_type: &str, body: &[u8]) {
        finish(self.out, Some(content_type), body);
    }
}

/// Builds a request (NOTIFY, and anything else the server originates).
pub struct RequestWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> RequestWriter<'a> {
    /// Starts `METHOD request_uri SIP/2.0`.
    pub fn new(out: &'a mut Vec<u8>, method: Method<'_>, request_uri: &[u8]) -> Self {
        out.clear();
        out.extend_from_slice(method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(request_uri);
        out.extend_from_slice(b" SIP/2.0\r\n");
        RequestWriter { out }
    }

    pub fn header(&mut self, name: &str, value: &[u8]) -> &mut Self {
        push_header(self.out, name, value);
        self
    }

    pub fn header_u32(&mut self, name: &str, value: u32) -> &mut Self {
        push_header_u32(self.out, name, value);
        self
    }

    /// `CSeq: seq METHOD`.
    pub fn cseq(&mut self, seq: u32, method: Method<'_>) -> &mut Self {
        self.out.extend_from_slice(b"CSeq: ");
        push_u32(self.out, seq);
        self.out.push(b' ');
        self.out.extend_from_slice(method.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        self
    }

    pub fn finish(self) {
        finish(self.out, None, b"");
    }

    pub fn finish_with_body(self, content_type: &str, body: &[u8]) {
        finish(self.out, Some(content_type), body);
    }
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    debug_assert!(
        !name.is_empty() && !name.contains(':'),
        "bad header name {name:?}"
    );
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn push_header_u32(out: &mut Vec<u8>, name: &str, value: u32) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    push_u32(out, value);
    out.extend_from_slice(b"\r\n");
}

fn finish(out: &mut Vec<u8>, content_type: Option<&str>, body: &[u8]) {
    if let Some(ct) = content_type {
        push_header(out, "Content-Type", ct.as_bytes());
    }
    out.extend_from_slice(b"Content-Length: ");
    push_u32(out, u32::try_from(body.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// Decimal formatting without `fmt` machinery or allocation (also used by the server to write
/// NOTIFYs and responses into its reused buffers).
pub fn push_u32(out: &mut Vec<u8>, mut v: u32) {
    // Digits are written two at a time from a table into a fixed 10-byte buffer, left
    // aligned, which is appended whole (a fixed-size copy, not a `memcpy` call) and then cut
    // to length: this runs several times per response and per NOTIFY.
    if v < 10_000 {
        push_u32_short(out, v);
        return;
    }
    let n = match v {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        1000..=9999 => 4,
        _ => v.ilog10() as usize + 1,
    };
    let mut buf = [0u8; 10];
    let mut end = n;
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        if let (Some(d), Some(p)) = (buf.get_mut(end - 2..end), DIGIT_PAIRS.get(pair..pair + 2)) {
            d.copy_from_slice(p);
        }
        end -= 2;
    }
    if v >= 10 {
        let pair = v as usize * 2;
        if let (Some(d), Some(p)) = (buf.get_mut(..2), DIGIT_PAIRS.get(pair..pair + 2)) {
            d.copy_from_slice(p);
        }
    } else if let Some(d) = buf.first_mut() {
        *d = b'0' + v as u8;
    }
    let len = out.len();
    out.extend_from_slice(&buf);
    out.truncate(len + n);
}

/// [`push_u32`] for `v < 10_000` (codes, CSeq numbers, expiries, lengths: nearly every
/// call). Both digit pairs go into one word whose leading zero bytes are shifted out, so
/// there is no loop and no branch per digit; the word is appended whole (a fixed-size
/// copy) and cut to length.
#[inline]
fn push_u32_short(out: &mut Vec<u8>, v: u32) {
    let n: u32 = match v {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        _ => 4,
    };
    let pair = |i: u32| {
        let i = (i % 100) as usize * 2;
        match DIGIT_PAIRS.get(i..i + 2) {
            Some(&[a, b]) => u32::from(u16::from_le_bytes([a, b])),
            _ => 0,
        }
    };
    // Little-endian: the thousands digit is the lowest byte, and the `4 - n` leading
    // zeros are the lowest bytes, which the shift drops.
    let word = (pair(v / 100) | pair(v) << 16) >> (8 * (4 - n));
    let len = out.len();
    out.extend_from_slice(&word.to_le_bytes());
    out.truncate(len + n as usize);
}

/// `00`, `01`, ... `99`: two decimal digits per lookup.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Standard reason phrases (RFC 3261 §21, RFC 3265/6665, RFC 3903).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match code / 100 {
            1 => "Provisional",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        let mut all: Vec<u32> = vec![0, 7, 10, 99, 100, 101, 999, 1000, 65535, u32::MAX];
        all.extend((0..=9).map(|e| 10u32.pow(e)));
        all.extend((1..=9).map(|e| 10u32.pow(e) - 1));
        all.extend((0..100_000).map(|i| i * 7919 + i % 13));
        // Every value of the short path and past its edge.
        all.extend(0..20_000);
        for v in all {
            let mut out = b"x".to_vec();
            push_u32(&mut out, v);
            assert_eq!(out, format!("x{v}").as_bytes());
        }
    }
}
