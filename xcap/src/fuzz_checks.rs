//! The check behind the cargo-fuzz target `service` in `xcap/fuzz`, here so that the target
//! and `tests/fuzz_regressions.rs` (which replays every seed in CI, without libFuzzer) run
//! the same code. It panics on a bug and returns quietly on input that is merely refused.

use crate::http::{decode, reason_phrase, Decoded, Limits};
use crate::store::MemStore;
use crate::uri::UserId;
use crate::usage::{Watcher, WatchersSource};
use crate::{Config, Request, Xcap};

struct W;
impl WatchersSource for W {
    fn watchers(&self, _user: &UserId) -> Vec<Watcher> {
        vec![Watcher {
            uri: "sip:bob@example.com".into(),
            status: "pending".into(),
        }]
    }
}

/// Pipelined HTTP requests through the whole XCAP service on the in-memory store: the
/// framer, the XCAP URI, digest and Basic `Authorization` headers, node selectors,
/// preconditions and every application usage's document checks. The first input byte's low
/// bit makes the peer trusted (no authentication, so documents reach the usages). Nothing
/// may panic, and every response must carry a status the HTTP writer knows.
pub fn service(data: &[u8]) {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let cfg = Config::new("http://127.0.0.1:8080/xcap-root", "example.com", b"s").unwrap();
    let mut xcap = Xcap::new(cfg);
    let mut store = MemStore::new();
    store.add_user("alice", "example.com", "secret");
    let limits = Limits {
        max_body: 16 * 1024,
        ..Limits::default()
    };
    let mut pos = 0;
    for _ in 0..16 {
        let Ok(Decoded::Complete {
            head,
            body,
            consumed,
        }) = decode(&data[pos..], &limits)
        else {
            break;
        };
        pos += consumed;
        let req = Request {
            method: head.method,
            target: head.target,
            headers: &head.headers,
            body: &body,
            trusted: flags & 1 == 1,
        };
        let out = xcap.handle(&req, 1_700_000_000, &mut store, &W);
        assert!(
            reason_phrase(out.response.status) != "Unknown",
            "status {}",
            out.response.status
        );
    }
}
