//! The check behind the cargo-fuzz target `service` in `xcap/fuzz`, here so that the target
//! and `tests/fuzz_regressions.rs` (which replays every seed in CI, without libFuzzer) run
//! the same code. It panics on a bug and returns quietly on input that is merely refused.
//! Its request loop ([`Session`]) also serves the server's `xcap_stored` target, which
//! first fills the store with documents and credentials as they may be found on disk.

use crate::auth::{self, Algorithm};
use crate::http::{decode, reason_phrase, Decoded, Limits};
use crate::store::MemStore;
use crate::uri::{Scope, UserId, XcapRoot, XcapUri};
use crate::usage::{Watcher, WatchersSource};
use crate::{Config, Request, Xcap};

const BOB_DOC: &str = "/xcap-root/resource-lists/users/sip:bob@example.com/index";
const BOB_LISTS: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="secret"><entry uri="sip:carol@example.com"/></list></resource-lists>"#;

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
/// bit makes the peer trusted (no authentication, so documents reach the usages); its
/// second bit serves an `https` root, where Basic authentication is allowed, so an input
/// can carry alice's credentials (`alice:secret`, the only account). A fuzzer cannot forge
/// a digest, so an `Authorization: Digest auto-md5` (or `auto-sha256`) header is replaced
/// by alice's correct answer to the last challenge (nonce counts rising), which lets
/// inputs reach the digest-authenticated paths and nonce replay checks. Nothing may panic,
/// every response must carry a status the HTTP writer knows and header fields that stay
/// one line each, and an untrusted request may succeed only on alice's own documents or by
/// reading a global one: bob's document, put there before the input runs, must stay out of
/// reach.
pub fn service(data: &[u8]) {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    Session::new(flags).requests(data);
}

/// One run of [`service`]: the service, its store (alice's account, bob's document) and
/// the peer the first byte chose. Other checks (the server's stored-record target) put
/// documents and credentials into [`Session::store`] before the requests.
pub struct Session {
    xcap: Xcap,
    xcap_root: XcapRoot,
    trusted: bool,
    pub store: MemStore,
}

impl Session {
    pub fn new(flags: u8) -> Session {
        let root = if flags & 2 == 2 {
            "https://127.0.0.1:8443/xcap-root"
        } else {
            "http://127.0.0.1:8080/xcap-root"
        };
        let cfg = Config::new(root, "example.com", b"s").unwrap();
        let xcap_root = cfg.root.clone();
        let mut xcap = Xcap::new(cfg);
        let mut store = MemStore::new();
        store.add_user("alice", "example.com", "secret");
        let bobs = Request {
            method: "PUT",
            target: BOB_DOC,
            headers: &[("Content-Type", b"application/resource-lists+xml")],
            body: BOB_LISTS,
            trusted: true,
        };
        let put = xcap.handle(&bobs, 1_700_000_000, &mut store, &W);
        assert_eq!(put.response.status, 201, "{:?}", put.response);
        Session {
            xcap,
            xcap_root,
            trusted: flags & 1 == 1,
            store,
        }
    }

    /// Up to 16 pipelined requests from `data`, each answered and checked.
    pub fn requests(&mut self, data: &[u8]) {
        let limits = Limits {
            max_body: 16 * 1024,
            ..Limits::default()
        };
        let mut pos = 0;
        let (mut nonce, mut nc) = (None::<String>, 0u32);
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
            let digest = auto_digest(&head.headers, head.method, head.target, &nonce, &mut nc);
            let mut headers = head.headers.clone();
            if let Some(d) = &digest {
                for h in headers.iter_mut() {
                    if h.0.eq_ignore_ascii_case("authorization") {
                        h.1 = d.as_bytes();
                    }
                }
            }
            let req = Request {
                method: head.method,
                target: head.target,
                headers: &headers,
                body: &body,
                trusted: self.trusted,
            };
            let out = self.xcap.handle(&req, 1_700_000_000, &mut self.store, &W);
            if let Some(n) = out
                .response
                .header("WWW-Authenticate")
                .and_then(auth::challenge_nonce)
            {
                nonce = Some(n);
            }
            let status = out.response.status;
            assert!(reason_phrase(status) != "Unknown", "status {status}");
            generated_xml_is_well_formed(&out.response, &req);
            for (name, value) in &out.response.headers {
                assert!(
                    !name.is_empty() && !value.bytes().any(|b| b == b'\r' || b == b'\n'),
                    "{status} to {} {}: header {name}: {value:?} is not one line",
                    req.method,
                    req.target
                );
            }
            if !req.trusted && (200..300).contains(&status) {
                let mut uri = XcapUri::parse(req.target, &self.xcap_root).unwrap_or_else(|e| {
                    panic!("{status} for an unparsable URI {}: {e:?}", req.target)
                });
                uri.resolve_user("example.com");
                match &uri.scope {
                    Scope::User(owner) => assert!(
                        owner.user == "alice" && owner.domain == "example.com",
                        "{status} to an untrusted {} of {owner:?}'s {}",
                        req.method,
                        req.target
                    ),
                    Scope::Global => assert!(
                        matches!(req.method, "GET" | "HEAD"),
                        "{status} to an untrusted {} of the global {}",
                        req.method,
                        req.target
                    ),
                }
            }
        }
    }
}

/// Bodies herald writes itself from request and store text (conflict reports, the
/// xcap-directory listing) must be well-formed XML: only XML 1.0 characters, and a
/// document the crate's own indexer accepts. Stored documents are served as stored, so
/// other types are not checked.
fn generated_xml_is_well_formed(resp: &crate::Response, req: &Request<'_>) {
    let generated = matches!(
        resp.header("Content-Type"),
        Some("application/xcap-error+xml" | "application/vnd.oma.xcap-directory+xml")
    );
    if !generated || req.method == "HEAD" {
        return;
    }
    let text = std::str::from_utf8(&resp.body)
        .unwrap_or_else(|e| panic!("{} {}: body is not UTF-8: {e}", req.method, req.target));
    let xml_char = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
            || c >= '\u{10000}'
    };
    assert!(
        text.chars().all(xml_char),
        "{} {}: body holds a character XML forbids: {text:?}",
        req.method,
        req.target
    );
    if let Err(e) = crate::xml::XmlIndex::document(text.as_bytes(), &Default::default()) {
        panic!(
            "{} {}: body is not well-formed ({e:?}): {text}",
            req.method, req.target
        );
    }
}

/// Alice's digest answer to the last challenge, for an `Authorization: Digest auto-md5` or
/// `auto-sha256` header; `None` for any other header, or before any challenge.
fn auto_digest(
    headers: &[(&str, &[u8])],
    method: &str,
    target: &str,
    nonce: &Option<String>,
    nc: &mut u32,
) -> Option<String> {
    let (_, value) = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))?;
    let algorithm = match value.trim_ascii() {
        b"Digest auto-md5" => Algorithm::Md5,
        b"Digest auto-sha256" => Algorithm::Sha256,
        _ => return None,
    };
    *nc += 1;
    Some(auth::client_digest(
        algorithm,
        "alice",
        "example.com",
        "secret",
        method,
        target,
        nonce.as_deref()?,
        "fuzz",
        *nc,
    ))
}
