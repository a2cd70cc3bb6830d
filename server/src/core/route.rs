//! Which shard owns a message, decided from its bytes alone (no table lookup), before any
//! hand-off; and the stateless 503 for when a hand-off queue is full.
//!
//! State-creating requests go to `shard_for(AoR of the Request-URI)`; in-dialog requests
//! carry the presentity hash in our To-tag, responses to our NOTIFYs in our Via branch
//! (see `tags`), so both reach the owner with `hash % shards`.

use super::tags::{aor_hash, Branch, Token};
use super::{with_parsed, Route, ShardId};
use sip_parser::{Aor, Framing, Limits, Message, Method, ResponseWriter, Status, Uri};

/// Owner shard of a presentity: FNV-1a-64 of the normalised AoR bytes folded to 32 bits
/// (`tags::aor_hash`), modulo the shard count. Stable across builds: the store uses it to
/// redistribute records when `--shards` changes.
pub fn shard_for(aor: &Aor, shards: u16) -> ShardId {
    ShardId((aor_hash(aor.as_bytes()) % shards.max(1) as u32) as u16)
}

/// Our Contact URI for the dialogs `shard` owns: `server_address` with a user part (`h<k>`)
/// chosen so that the URI's AoR hashes to `shard`. Why: in-dialog requests go to the
/// Contact (RFC 3261 §12.2.1.1), and the kernel's steering program (`steer`) picks the shard
/// from the Request-URI's AoR; with this user part, refreshes and unsubscribes of a dialog
/// reach its owner without a hand-off, as its initial SUBSCRIBE did. `route` itself still
/// decides by the To-tag. Unchanged with one shard, or when the address already has a user
/// part or does not parse as a `sip:` URI.
pub fn shard_contact(server_address: &[u8], shard: ShardId, shards: u16) -> Vec<u8> {
    let plain = server_address.to_vec();
    let usable = matches!(
        Uri::parse_request_uri(server_address),
        Ok(Uri {
            scheme: sip_parser::Scheme::Sip,
            user: None,
            ..
        })
    );
    if shards <= 1 || !usable || !server_address.starts_with(b"sip:") {
        return plain;
    }
    let (scheme, rest) = server_address.split_at(4);
    // The first k that lands on `shard`: about `shards` tries, deterministic per address.
    for k in 0..u32::from(shards) * 64 {
        let candidate = [scheme, format!("h{k}@").as_bytes(), rest].concat();
        if let Ok(uri) = Uri::parse_request_uri(&candidate) {
            if shard_for(&Aor::from_uri(&uri), shards) == shard {
                return candidate;
            }
        }
    }
    plain
}

pub(super) fn by_hash(hash: u32, shards: u16) -> Route {
    Route::Shard(ShardId((hash % shards.max(1) as u32) as u16))
}

/// Pure routing used by the edge before any hand-off: which shard owns this message?
/// Unparseable messages are `Drop`; stateless work (OPTIONS, errors) is `Local`.
pub fn route(bytes: &[u8], shards: u16, limits: &Limits) -> Route {
    with_parsed(bytes, Framing::Datagram, limits, |parsed| match parsed {
        Ok(Status::Complete(msg)) => route_message(&msg, shards),
        _ => Route::Drop,
    })
}

pub fn route_message(msg: &Message<'_, '_>, shards: u16) -> Route {
    if !msg.is_request() {
        let Ok(via) = msg.via() else {
            return Route::Drop;
        };
        return match via.branch.and_then(Branch::decode) {
            Some((hash, _, _)) => by_hash(hash, shards),
            None => Route::Drop,
        };
    }
    if shards <= 1 {
        return Route::Local;
    }
    match msg.method() {
        Some(Method::Subscribe | Method::Publish | Method::Notify) => {}
        _ => return Route::Local,
    }
    // PUBLISH is never in a dialog of ours: its Request-URI names the presentity.
    let in_dialog = msg.method() != Some(Method::Publish);
    if let Some(to) = msg.to().ok().filter(|_| in_dialog) {
        if let Some(tag) = to.tag() {
            return match Token::decode(tag) {
                Some((hash, _)) => by_hash(hash, shards),
                // A dialog we did not create: any shard answers 481.
                None => Route::Local,
            };
        }
    }
    if msg.method() == Some(Method::Notify) {
        return Route::Local;
    }
    match msg.request_uri().map(Uri::parse_request_uri) {
        Some(Ok(uri)) => Route::Shard(shard_for(&Aor::from_uri(&uri), shards)),
        _ => Route::Local,
    }
}

/// Stateless reply for a request the edge cannot queue (hand-off queue full): 503 +
/// Retry-After, appended to `out`; returns its length. `None` for responses and ACK.
pub fn reply_overloaded(
    bytes: &[u8],
    retry_after_s: u32,
    out: &mut Vec<u8>,
    limits: &Limits,
) -> Option<usize> {
    with_parsed(bytes, Framing::Datagram, limits, |parsed| {
        let msg = match parsed {
            Ok(Status::Complete(m)) => m,
            _ => return None,
        };
        if !msg.is_request() || msg.method() == Some(Method::Ack) || msg.via().is_err() {
            return None;
        }
        let start = out.len();
        // RFC 3261 §8.2.6.2: a To tag on every final response.
        let mut w = ResponseWriter::append(out, &msg, 503, "Service Unavailable", Some(b"busy"));
        w.header_u32("Retry-After", retry_after_s);
        w.finish();
        Some(out.len() - start)
    })
}
