//! HTTP/1.1 for the XCAP front, sans-IO.
//!
//! Why httparse and our own framing rather than hyper: herald runs one glommio executor per
//! core with no tokio runtime. hyper's server wants tokio-style `AsyncRead`/`AsyncWrite`, an
//! executor trait and its own buffering; an adapter is possible but puts a second buffering
//! layer and a `Box<dyn Future>` per connection between the socket and the XCAP logic.
//! httparse parses a request head in place, borrowing every header from the receive buffer,
//! which is the same zero-copy model as our SIP parser, and the remaining framing XCAP needs
//! (Content-Length, chunked request bodies, `Expect: 100-continue`, keep-alive, pipelining,
//! limits) is a few hundred lines that can be unit-, property- and fuzz-tested without any
//! socket. The codec never does IO: the server feeds bytes and writes what we return.

mod request;
mod response;

pub use request::{
    decode, Decoded, HttpError, Limits, RequestHead, Version, DEFAULT_MAX_BODY,
    DEFAULT_MAX_HEADERS, DEFAULT_MAX_HEAD_BYTES,
};
pub use response::{reason_phrase, write_continue, write_response};
