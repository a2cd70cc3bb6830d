//! Stateless refusals the edge sends without involving any core: 403 to peers outside
//! `--trusted-peers` (as the reference presence-agent script does before anything else).

use sip_parser::{Framing, Header, Limits, Method, Status};

/// Appends `403 Forbidden` for `bytes` to `out` if it is a request other than ACK; returns
/// the number of bytes appended. Responses, ACKs and unparseable input get nothing (drop).
pub fn forbidden(bytes: &[u8], out: &mut Vec<u8>, limits: &Limits) -> Option<usize> {
    let mut slots = [Header::EMPTY; 64];
    let slots = &mut slots[..limits.max_headers.clamp(1, 64)];
    let msg = match sip_parser::parse(bytes, slots, Framing::Datagram, limits) {
        Ok(Status::Complete(m)) => m,
        _ => return None,
    };
    match msg.method() {
        None | Some(Method::Ack) => return None,
        Some(_) => {}
    }
    let start = out.len();
    sip_parser::ResponseWriter::new(out, &msg, 403, "Forbidden", Some(b"untrusted")).finish();
    Some(out.len() - start)
}

/// True when the first line looks like a response (`SIP/2.0 …`): such input from an
/// untrusted peer is dropped rather than answered.
pub fn looks_like_response(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..8].eq_ignore_ascii_case(b"SIP/2.0 ")
}
