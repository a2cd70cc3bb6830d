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
    sip_parser::ResponseWriter::append(out, msg, code, reason, to_tag).finish();
    Some(out.len() - start)
}

/// Appends the stateless final response for a request whose body framing is broken (`err`
/// from `parse`); returns the number of bytes appended. Why: RFC 3261 §18.3 wants a 400 for
/// such a request; over UDP a client left without an answer retransmits it for 32 s, and over
/// TCP, where the connection closes after it (the next message's start is unknown), it learns
/// why instead of seeing a bare close.
/// - `400` when `Content-Length` is larger than the datagram, not a number, or missing on a
///   stream (where it is mandatory);
/// - `513` when it would take a stream message past `--max-message-size` (an oversize
///   datagram is dropped before parsing and never gets here).
///
/// Its head is read with `parse_head`; other errors, responses, ACKs and heads that do not
/// parse get nothing (drop).
pub fn broken_framing(
    bytes: &[u8],
    err: ParseError,
    out: &mut Vec<u8>,
    limits: &Limits,
) -> Option<usize> {
    let (code, reason) = match err {
        ParseError::BodyTooShort => (400, "Body shorter than Content-Length"),
        ParseError::InvalidContentLength => (400, "Invalid Content-Length"),
        ParseError::MissingContentLength => (400, "Missing Content-Length"),
        ParseError::TooLarge => (513, "Message Too Large"),
        _ => return None,
    };
    // The head must lie within the size limit; on a stream what follows may be any length.
    let head = bytes.get(..limits.max_message_len).unwrap_or(bytes);
    let mut slots = [Header::EMPTY; 64];
    let slots = &mut slots[..limits.max_headers.clamp(1, 64)];
    let msg = sip_parser::parse_head(head, slots, limits).ok()?;
    msg.via().ok()?;
    // RFC 3261 §8.2.6.2: a To tag on every final response, as the 403's `untrusted`.
    answer(&msg, code, reason, Some(b"framing"), out)
}

/// True when the first line looks like a response (`SIP/2.0 …`): such input from an
/// untrusted peer is dropped rather than answered.
pub fn looks_like_response(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..8].eq_ignore_ascii_case(b"SIP/2.0 ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] =
        b"SUBSCRIBE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKr\r\n\
From: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: r\r\nCSeq: 1 SUBSCRIBE\r\n\
Content-Length: 0\r\n\r\n";

    /// The edge writes these into its batch's shared send buffer: each reply is appended after
    /// the replies already queued for earlier datagrams of the batch, which stay intact.
    #[test]
    fn replies_append_to_what_the_batch_already_holds() {
        let limits = Limits::default();
        let mut out = b"earlier".to_vec();
        let n = forbidden(REQ, &mut out, &limits).unwrap();
        assert_eq!(out.len(), 7 + n);
        assert!(out.starts_with(b"earlierSIP/2.0 403 Forbidden\r\n"));
        let broken = String::from_utf8_lossy(REQ).replace("Content-Length: 0", "Content-Length: 9");
        let m = broken_framing(
            broken.as_bytes(),
            ParseError::BodyTooShort,
            &mut out,
            &limits,
        );
        assert_eq!(out.len(), 7 + n + m.unwrap());
        assert!(out.starts_with(b"earlierSIP/2.0 403 Forbidden\r\n"));
        assert!(out[7 + n..].starts_with(b"SIP/2.0 400 Body shorter than Content-Length\r\n"));
    }
}
