//! Stateless refusals the edge sends without involving any core: 403 to peers outside
//! `--trusted-peers` (as the reference presence-agent script does before anything else), and
//! 400 (or 513) to a request whose body framing is broken.

use sip_parser::{Framing, Header, Limits, Message, Method, ParseError, Status};

/// Appends `403 Forbidden` for `bytes` to `out` if it is a request other than ACK; returns
/// the number of bytes appended. Responses, ACKs and unparseable input get nothing (drop).
pub fn forbidden(bytes: &[u8], out: &mut Vec<u8>, limits: &Limits) -> Option<usize> {
    let mut slots = [Header::EMPTY; 64];
    let slots = &mut slots[..limits.max_headers.clamp(1, 64)];
    let msg = match sip_parser::parse(bytes, slots, Framing::Datagram, limits) {
        Ok(Status::Complete(m)) => m,
        _ => return None,
    };
    answer(&msg, 403, "Forbidden", Some(b"untrusted"), out)
}

/// Appends a final response to `msg` unless it is a response or an ACK; returns its length.
fn answer(
    msg: &Message<'_, '_>,
    code: u16,
    reason: &str,
    to_tag: Option<&[u8]>,
    out: &mut Vec<u8>,
) -> Option<usize> {
    match msg.method() {
        None | Some(Method::Ack) => return None,
        Some(_) => {}
    }
    let start = out.len();
    sip_parser::ResponseWriter::new(out, msg, code, reason, to_tag).finish();
    Some(out.len() - start)
}

/// Appends a stateless `400` for a request datagram whose body framing is broken (`err` from
/// `parse`: a `Content-Length` larger than the datagram, or not a number); returns the number
/// of bytes appended. Why: RFC 3261 §18.3 wants a 400 for such a request, and a client left
/// without an answer retransmits it for 32 s. Its head is read with `parse_head`; other errors,
/// responses, ACKs and heads that do not parse get nothing (drop).
pub fn broken_framing(
    bytes: &[u8],
    err: ParseError,
    out: &mut Vec<u8>,
    limits: &Limits,
) -> Option<usize> {
    let reason: &str = match err {
        ParseError::BodyTooShort => "Body shorter than Content-Length",
        ParseError::InvalidContentLength => "Invalid Content-Length",
        _ => return None,
    };
    answer_head(bytes, 400, reason, out, limits)
}

/// Appends the final response for a request on a stream (TCP) that cannot be framed (`err`
/// from `parse` with stream framing): `400` when its `Content-Length` is missing (RFC 3261
/// §18.3 makes it mandatory on streams) or not a number, `513` when it would take the message
/// past `--max-message-size`; returns the number of bytes appended. The connection closes
/// after it (the next message's start is unknown), but the client learns why instead of
/// seeing a bare close. Other errors, responses, ACKs and heads that do not parse get nothing.
pub fn broken_stream_framing(
    bytes: &[u8],
    err: ParseError,
    out: &mut Vec<u8>,
    limits: &Limits,
) -> Option<usize> {
    let (code, reason) = match err {
        ParseError::MissingContentLength => (400, "Missing Content-Length"),
        ParseError::InvalidContentLength => (400, "Invalid Content-Length"),
        ParseError::TooLarge => (513, "Message Too Large"),
        _ => return None,
    };
    // The head must lie within the size limit; what follows it may be any length.
    let head = bytes.get(..limits.max_message_len).unwrap_or(bytes);
    answer_head(head, code, reason, out, limits)
}

/// Reads the start line and headers of `bytes` (`parse_head`) and appends `code` to it if it
/// is a request other than ACK with a Via.
fn answer_head(
    bytes: &[u8],
    code: u16,
    reason: &str,
    out: &mut Vec<u8>,
    limits: &Limits,
) -> Option<usize> {
    let mut slots = [Header::EMPTY; 64];
    let slots = &mut slots[..limits.max_headers.clamp(1, 64)];
    let msg = sip_parser::parse_head(bytes, slots, limits).ok()?;
    msg.via().ok()?;
    // RFC 3261 §8.2.6.2: a To tag on every final response, as the 403's `untrusted`.
    answer(&msg, code, reason, Some(b"framing"), out)
}

/// True when the first line looks like a response (`SIP/2.0 …`): such input from an
/// untrusted peer is dropped rather than answered.
pub fn looks_like_response(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..8].eq_ignore_ascii_case(b"SIP/2.0 ")
}
