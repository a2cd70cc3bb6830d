//! The XCAP front: HTTP/1.1 over glommio TCP, feeding the sans-IO `xcap` crate.
//!
//! One listener per shard (SO_REUSEPORT, like the SIP TCP edge); each accepted connection is
//! served by a task on the accepting shard. Bytes go through `xcap::http::decode` (framing,
//! limits, `Expect: 100-continue`, pipelining, keep-alive) and each complete request is
//! handed to an [`XcapService`]. The service is async so the server can route a user's
//! request to the shard that owns that user (`shard_for` of the AoR) and await the answer;
//! [`LocalXcap`] is the in-shard implementation over any `DocumentStore`.
//!
//! Responses of pipelined requests are written in order, batched into one write when
//! several requests arrived together.

mod conn;
mod service;

pub use conn::{accept_loop, bind, serve_connection, FrontConfig};
pub use service::{LocalXcap, XcapService};
