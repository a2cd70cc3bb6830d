//! HTTP authentication as OpenXCAP does it: Digest (RFC 7616; MD5 and SHA-256, qop=auth)
//! and Basic (RFC 7617, meant for https roots), against the subscriber HA1s, with the realm
//! derived per request from the XCAP URI.
//!
//! Nonces are stateless: `<issued-at hex>.<tag>` where the tag is SHA-256 over a server
//! secret, the timestamp and the realm. A nonce is accepted until it expires (then the
//! challenge says `stale=true`, so clients retry without asking the user).
//!
//! Replay protection ([`authenticate_request`]): the `uri=` of the Authorization header must
//! name the request target, and with `qop=auth` the nonce count must grow with every use of
//! a nonce ([`NonceCounts`], bounded; a request whose count was already seen gets a
//! `stale=true` challenge, so a client that raced itself just retries with a fresh nonce).
//! The server routes every request for a document to one shard, so one shard's table sees
//! every use of a nonce for that URI.

use base64::Engine as _;
use md5::Md5;
use sha2::{Digest as _, Sha256};

use crate::store::{Credentials, DocumentStore};
use crate::uri::UserId;

/// Default lifetime of a nonce, in seconds.
pub const DEFAULT_NONCE_TTL: u64 = 300;

/// Who is making the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A trusted peer (by address): no authentication, full access.
    Trusted,
    User(UserId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex(&Sha256::digest(data.as_bytes())),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

/// hex MD5(user:realm:password), the `ha1` column of the subscriber table.
pub fn ha1_md5(user: &str, realm: &str, password: &str) -> String {
    Algorithm::Md5.hash(&format!("{user}:{realm}:{password}"))
}

/// hex SHA-256(user:realm:password) for `algorithm=SHA-256`.
pub fn ha1_sha256(user: &str, realm: &str, password: &str) -> String {
    Algorithm::Sha256.hash(&format!("{user}:{realm}:{password}"))
}

/// Settings for authentication.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Secret for nonce tags; random per process is fine (old nonces then become stale).
    pub secret: Vec<u8>,
    pub nonce_ttl: u64,
    /// Offer and accept Basic (sensible only over TLS).
    pub allow_basic: bool,
}

fn nonce_tag(secret: &[u8], stamp: &str, realm: &str) -> String {
    let mut h = Sha256::new();
    h.update(secret);
    h.update(b":");
    h.update(stamp.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    hex(&h.finalize()[..16])
}

/// Makes every nonce unique (two challenges in the same second must differ, or their
/// nonce counts would collide in [`NonceCounts`]).
static NONCE_SALT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `<issued hex>.<salt hex>.<tag>`.
pub fn make_nonce(cfg: &AuthConfig, realm: &str, now: u64) -> String {
    let salt = NONCE_SALT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let stamp = format!("{now:x}.{salt:x}");
    let tag = nonce_tag(&cfg.secret, &stamp, realm);
    format!("{stamp}.{tag}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceState {
    Valid,
    Stale,
    Invalid,
}

pub fn check_nonce(cfg: &AuthConfig, realm: &str, nonce: &str, now: u64) -> NonceState {
    let Some((stamp, tag)) = nonce.rsplit_once('.') else {
        return NonceState::Invalid;
    };
    let Some(Ok(issued)) = stamp
        .split_once('.')
        .map(|(ts, _)| u64::from_str_radix(ts, 16))
    else {
        return NonceState::Invalid;
    };
    if !ct_eq(
        tag.as_bytes(),
        nonce_tag(&cfg.secret, stamp, realm).as_bytes(),
    ) {
        return NonceState::Invalid;
    }
    if issued > now.saturating_add(5) || now - issued.min(now) > cfg.nonce_ttl {
        return NonceState::Stale;
    }
    NonceState::Valid
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The Digest algorithms to challenge a request for `user` (its XUI's user and domain)
/// with: both, SHA-256 first (RFC 7616 §3.7), unless the user exists with only an MD5 HA1
/// (an account imported from its hash): a client offered SHA-256 picks it (curl does) and
/// could then never authenticate.
pub fn challenge_algorithms(
    store: &dyn DocumentStore,
    user: Option<(&str, &str)>,
) -> &'static [Algorithm] {
    let md5_only = user
        .and_then(|(u, d)| lookup(store, u, d))
        .is_some_and(|c| c.ha1_sha256.is_none() && c.ha1_md5.is_some());
    if md5_only {
        &[Algorithm::Md5]
    } else {
        &[Algorithm::Sha256, Algorithm::Md5]
    }
}

/// `WWW-Authenticate` values for a 401: one Digest challenge per algorithm (see
/// [`challenge_algorithms`]), then Basic when allowed.
pub fn challenges(
    cfg: &AuthConfig,
    realm: &str,
    now: u64,
    stale: bool,
    algorithms: &[Algorithm],
) -> Vec<String> {
    let nonce = make_nonce(cfg, realm, now);
    let opaque = &nonce_tag(&cfg.secret, "0", realm)[..16];
    let stale = if stale { ", stale=true" } else { "" };
    let realm_q = quote(realm);
    let mut out: Vec<String> = algorithms
        .iter()
        .map(|a| {
            format!(
                "Digest realm={realm_q}, qop=\"auth\", algorithm={}, nonce=\"{nonce}\", opaque=\"{opaque}\"{stale}",
                a.name()
            )
        })
        .collect();
    if cfg.allow_basic {
        out.push(format!("Basic realm={realm_q}, charset=\"UTF-8\""));
    }
    out
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    Digest(Vec<(String, String)>),
    Basic { user: String, password: String },
}

impl Authorization {
    fn param(&self, name: &str) -> Option<&str> {
        match self {
            Authorization::Digest(p) => p
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str()),
            Authorization::Basic { .. } => None,
        }
    }
}

/// Parses `Digest k=v, k="v"` or `Basic <b64>`. Quoted values may contain raw `"` (clients
/// put unescaped node selectors in `uri="…"`): a quote only closes a value when what follows
/// is the end or `, name=`.
pub fn parse_authorization(value: &str) -> Option<Authorization> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(|c: char| c.is_ascii_whitespace())?;
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (user, password) = s.split_once(':')?;
        return Some(Authorization::Basic {
            user: user.to_string(),
            password: password.to_string(),
        });
    }
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let mut params = Vec::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let k0 = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = rest[k0..i].to_string();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            return None;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let val;
        if i < b.len() && b[i] == b'"' {
            i += 1;
            // Bytes, not chars: a backslash may escape the first byte of a multi-byte
            // character. Dropping only the (ASCII) backslashes keeps the value UTF-8.
            let mut out = Vec::new();
            let mut seg = i;
            loop {
                if i >= b.len() {
                    return None;
                }
                match b[i] {
                    b'\\' if i + 1 < b.len() => {
                        out.extend_from_slice(&b[seg..i]);
                        seg = i + 1;
                        i += 2;
                    }
                    b'"' if closes_value(&b[i + 1..]) => {
                        out.extend_from_slice(&b[seg..i]);
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
            val = String::from_utf8(out).ok()?;
        } else {
            let v0 = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            val = rest[v0..i].trim().to_string();
        }
        params.push((key, val));
        if params.len() > 32 {
            return None;
        }
    }
    Some(Authorization::Digest(params))
}

fn closes_value(after: &[u8]) -> bool {
    let t = after.trim_ascii_start();
    if t.is_empty() {
        return true;
    }
    let Some(next) = t.strip_prefix(b",") else {
        return false;
    };
    let next = next.trim_ascii_start();
    let name_len = next
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'-' || **c == b'_')
        .count();
    name_len > 0 && next[name_len..].trim_ascii_start().starts_with(b"=")
}

/// Why authentication failed; the caller answers 401 with `challenges(.., stale)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthFailure {
    pub stale: bool,
}

/// Splits a client-supplied user name (`alice` or `alice@example.com`) for `realm`.
fn split_username<'a>(username: &'a str, realm: &'a str) -> (&'a str, &'a str) {
    let bare = username.strip_prefix("sip:").unwrap_or(username);
    match bare.rsplit_once('@') {
        Some((u, d)) => (u, d),
        None => (bare, realm),
    }
}

/// Most nonces whose count [`NonceCounts`] remembers (per shard).
pub const MAX_TRACKED_NONCES: usize = 65_536;

/// Highest nonce count seen per nonce (RFC 7616 §3.3), bounded: when full, expired nonces go
/// first, then the oldest; a nonce issued at or before the newest one forgotten that way is
/// answered `stale=true` (its history is unknown), so the client fetches a fresh one.
#[derive(Debug, Clone)]
pub struct NonceCounts {
    seen: std::collections::HashMap<String, (u64, u32)>,
    /// Nonces issued at or before this time may have been forgotten.
    floor: Option<u64>,
    cap: usize,
}

impl Default for NonceCounts {
    fn default() -> Self {
        NonceCounts::new(MAX_TRACKED_NONCES)
    }
}

impl NonceCounts {
    pub fn new(cap: usize) -> Self {
        NonceCounts {
            seen: Default::default(),
            floor: None,
            cap: cap.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Records use `nc` of `nonce` (issued at `issued`); false when it is not above every
    /// count seen before for that nonce, or the nonce's history was forgotten.
    pub fn accept(&mut self, nonce: &str, issued: u64, nc: u32, now: u64, ttl: u64) -> bool {
        if let Some((_, last)) = self.seen.get_mut(nonce) {
            if nc <= *last {
                return false;
            }
            *last = nc;
            return true;
        }
        if self.floor.is_some_and(|f| issued <= f) {
            return false;
        }
        if self.seen.len() >= self.cap {
            self.evict(now, ttl);
        }
        self.seen.insert(nonce.to_string(), (issued, nc));
        true
    }

    fn evict(&mut self, now: u64, ttl: u64) {
        // Expired nonces are refused by their timestamp anyway.
        self.seen
            .retain(|_, (issued, _)| issued.saturating_add(ttl) >= now);
        if self.seen.len() < self.cap {
            return;
        }
        let mut times: Vec<u64> = self.seen.values().map(|(t, _)| *t).collect();
        times.sort_unstable();
        let cut = times[(self.cap / 4).min(times.len() - 1)];
        self.seen.retain(|_, (issued, _)| *issued > cut);
        self.floor = Some(self.floor.map_or(cut, |f| f.max(cut)));
    }
}

/// How a successful Digest authentication used its nonce.
struct DigestUse {
    nonce: String,
    issued: u64,
    nc: Option<u32>,
    uri: String,
}

/// Whether the `uri=` of a Digest header names `target` (RFC 7616 §3.4.6): both are compared
/// percent-decoded, an absolute form reduced to its path and query.
pub fn uri_matches(digest_uri: &str, target: &str) -> bool {
    fn norm(u: &str) -> Vec<u8> {
        let u = match u.find("://") {
            Some(i) if !u[..i].contains('/') => {
                let rest = &u[i + 3..];
                &rest[rest.find('/').unwrap_or(rest.len())..]
            }
            _ => u,
        };
        let b = u.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                let hex = |c: u8| (c as char).to_digit(16);
                if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
            }
            out.push(b[i]);
            i += 1;
        }
        out
    }
    norm(digest_uri) == norm(target)
}

/// [`authenticate`] plus the replay checks for a request to `target`: the Digest `uri=` must
/// name the target, and the nonce count must be fresh in `counts`.
#[allow(clippy::too_many_arguments)]
pub fn authenticate_request(
    cfg: &AuthConfig,
    method: &str,
    target: &str,
    header: Option<&str>,
    realm: &str,
    now: u64,
    store: &dyn DocumentStore,
    counts: &mut NonceCounts,
) -> Result<UserId, AuthFailure> {
    let (user, used) = verify(cfg, method, header, realm, now, store)?;
    if let Some(d) = used {
        if !uri_matches(&d.uri, target) {
            return Err(AuthFailure { stale: false });
        }
        if let Some(nc) = d.nc {
            if !counts.accept(&d.nonce, d.issued, nc, now, cfg.nonce_ttl) {
                return Err(AuthFailure { stale: true });
            }
        }
    }
    Ok(user)
}

/// Verifies the `Authorization` header for `method` in `realm` (no replay checks: see
/// [`authenticate_request`]).
pub fn authenticate(
    cfg: &AuthConfig,
    method: &str,
    header: Option<&str>,
    realm: &str,
    now: u64,
    store: &dyn DocumentStore,
) -> Result<UserId, AuthFailure> {
    verify(cfg, method, header, realm, now, store).map(|(u, _)| u)
}

fn verify(
    cfg: &AuthConfig,
    method: &str,
    header: Option<&str>,
    realm: &str,
    now: u64,
    store: &dyn DocumentStore,
) -> Result<(UserId, Option<DigestUse>), AuthFailure> {
    let fail = AuthFailure { stale: false };
    let auth = header.and_then(parse_authorization).ok_or(fail)?;
    match &auth {
        Authorization::Basic { user, password } => {
            if !cfg.allow_basic {
                return Err(fail);
            }
            let (u, d) = split_username(user, realm);
            if !d.eq_ignore_ascii_case(realm) {
                return Err(fail);
            }
            let creds = lookup(store, u, realm).ok_or(fail)?;
            let ok = match (&creds.ha1_md5, &creds.ha1_sha256) {
                (Some(h), _) => ct_eq(h.as_bytes(), ha1_md5(u, realm, password).as_bytes()),
                (None, Some(h)) => ct_eq(h.as_bytes(), ha1_sha256(u, realm, password).as_bytes()),
                (None, None) => false,
            };
            if !ok {
                return Err(fail);
            }
            Ok((
                UserId {
                    user: u.to_string(),
                    domain: realm.to_ascii_lowercase(),
                },
                None,
            ))
        }
        Authorization::Digest(_) => {
            let p = |k: &str| auth.param(k);
            let username = p("username").ok_or(fail)?;
            let nonce = p("nonce").ok_or(fail)?;
            let uri = p("uri").ok_or(fail)?;
            let response = p("response").ok_or(fail)?;
            if p("realm") != Some(realm) {
                return Err(fail);
            }
            let alg = match p("algorithm") {
                None => Algorithm::Md5,
                Some(a) if a.eq_ignore_ascii_case("MD5") => Algorithm::Md5,
                Some(a) if a.eq_ignore_ascii_case("SHA-256") => Algorithm::Sha256,
                Some(_) => return Err(fail),
            };
            let nonce_state = check_nonce(cfg, realm, nonce, now);
            if nonce_state == NonceState::Invalid {
                return Err(fail);
            }
            // The digest uses the user name exactly as the client sent it.
            let (u, d) = split_username(username, realm);
            if !d.eq_ignore_ascii_case(realm) {
                return Err(fail);
            }
            let creds = lookup(store, u, realm).ok_or(fail)?;
            let ha1 = match alg {
                Algorithm::Md5 => creds.ha1_md5.as_ref(),
                Algorithm::Sha256 => creds.ha1_sha256.as_ref(),
            }
            .ok_or(fail)?;
            let ha2 = alg.hash(&format!("{method}:{uri}"));
            let mut nc_value = None;
            let expected = match p("qop") {
                Some(q) if q.eq_ignore_ascii_case("auth") => {
                    let nc = p("nc").ok_or(fail)?;
                    nc_value = Some(u32::from_str_radix(nc, 16).map_err(|_| fail)?);
                    let cnonce = p("cnonce").ok_or(fail)?;
                    alg.hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
                }
                None => alg.hash(&format!("{ha1}:{nonce}:{ha2}")),
                Some(_) => return Err(fail),
            };
            if !ct_eq(
                expected.as_bytes(),
                response.to_ascii_lowercase().as_bytes(),
            ) {
                return Err(fail);
            }
            if nonce_state == NonceState::Stale {
                return Err(AuthFailure { stale: true });
            }
            let issued = nonce
                .split_once('.')
                .and_then(|(ts, _)| u64::from_str_radix(ts, 16).ok())
                .unwrap_or(0);
            Ok((
                UserId {
                    user: u.to_string(),
                    domain: realm.to_ascii_lowercase(),
                },
                Some(DigestUse {
                    nonce: nonce.to_string(),
                    issued,
                    nc: nc_value,
                    uri: uri.to_string(),
                }),
            ))
        }
    }
}

fn lookup(store: &dyn DocumentStore, user: &str, realm: &str) -> Option<Credentials> {
    store.credentials(user, realm).ok().flatten()
}

/// Builds a Digest `Authorization` value as a client would (tests, load generator).
#[allow(clippy::too_many_arguments)]
pub fn client_digest(
    algorithm: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    cnonce: &str,
    nc: u32,
) -> String {
    let ha1 = algorithm.hash(&format!("{username}:{realm}:{password}"));
    let ha2 = algorithm.hash(&format!("{method}:{uri}"));
    let nc = format!("{nc:08x}");
    let response = algorithm.hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    format!(
        "Digest username=\"{username}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", algorithm={}, qop=auth, nc={nc}, cnonce=\"{cnonce}\", response=\"{response}\"",
        algorithm.name()
    )
}

/// Extracts the nonce from a challenge (tests, load generator).
pub fn challenge_nonce(challenge: &str) -> Option<String> {
    let i = challenge.find("nonce=\"")? + 7;
    let j = challenge[i..].find('"')?;
    Some(challenge[i..i + j].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    fn cfg() -> AuthConfig {
        AuthConfig {
            secret: b"s3cret".to_vec(),
            nonce_ttl: 60,
            allow_basic: true,
        }
    }

    /// Found by the `service` fuzz target: a backslash before a multi-byte character sliced
    /// the header inside that character, a panic (an abort in release builds) that any
    /// client could send before authenticating.
    #[test]
    fn escapes_in_quoted_values() {
        let p = |h: &str| match parse_authorization(h) {
            Some(Authorization::Digest(p)) => p,
            other => panic!("{h}: {other:?}"),
        };
        let got = p("Digest username=\"a\\\u{feff}b\\\"c\", realm=\"r\\\\\"");
        assert_eq!(
            got[0],
            ("username".to_string(), "a\u{feff}b\"c".to_string())
        );
        assert_eq!(got[1], ("realm".to_string(), "r\\".to_string()));
        let got = p("Digest uri=\"/x/~~/l[@n=\"f\"]\", nc=1");
        assert_eq!(got[0].1, "/x/~~/l[@n=\"f\"]");
        assert_eq!(got[1].1, "1");
        assert!(parse_authorization("Digest username=\"\u{e9}\\\u{e9}").is_none());
    }

    #[test]
    fn ha1_known_value() {
        // The example row from the OpenXCAP README.
        assert_eq!(
            ha1_md5("alice", "example.com", "123"),
            Algorithm::Md5.hash("alice:example.com:123")
        );
        assert_eq!(ha1_md5("a", "b", "c").len(), 32);
        assert_eq!(ha1_sha256("a", "b", "c").len(), 64);
    }

    #[test]
    fn digest_roundtrip_both_algorithms() {
        let mut store = MemStore::new();
        store.add_user("alice", "example.com", "pw");
        let c = cfg();
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let nonce = make_nonce(&c, "example.com", 1000);
            let uri = "/xcap-root/resource-lists/users/sip:alice@example.com/index/~~/resource-lists/list[@name=\"a, b=\"]";
            let h = client_digest(
                alg,
                "alice",
                "example.com",
                "pw",
                "GET",
                uri,
                &nonce,
                "cn",
                1,
            );
            let got = authenticate(&c, "GET", Some(&h), "example.com", 1010, &store).unwrap();
            assert_eq!(got.to_string(), "alice@example.com");
            // wrong method → different HA2
            assert!(authenticate(&c, "PUT", Some(&h), "example.com", 1010, &store).is_err());
            // expired → stale
            assert_eq!(
                authenticate(&c, "GET", Some(&h), "example.com", 5000, &store),
                Err(AuthFailure { stale: true })
            );
            // wrong password
            let bad = client_digest(
                alg,
                "alice",
                "example.com",
                "x",
                "GET",
                uri,
                &nonce,
                "cn",
                1,
            );
            assert!(authenticate(&c, "GET", Some(&bad), "example.com", 1010, &store).is_err());
        }
    }

    #[test]
    fn replay_and_uri_checks() {
        let mut store = MemStore::new();
        store.add_user("alice", "example.com", "pw");
        let c = cfg();
        let mut counts = NonceCounts::new(4);
        let nonce = make_nonce(&c, "example.com", 1000);
        let target = "/xcap-root/resource-lists/users/sip:alice@example.com/index/~~/resource-lists/list%5B@name=%22a%22%5D";
        let raw_uri = "/xcap-root/resource-lists/users/sip:alice@example.com/index/~~/resource-lists/list[@name=\"a\"]";
        let h = |nc: u32, uri: &str| {
            client_digest(
                Algorithm::Md5,
                "alice",
                "example.com",
                "pw",
                "GET",
                uri,
                &nonce,
                "cn",
                nc,
            )
        };
        let run = |counts: &mut NonceCounts, hv: &str, target: &str| {
            authenticate_request(
                &c,
                "GET",
                target,
                Some(hv),
                "example.com",
                1001,
                &store,
                counts,
            )
        };
        // The digest uri may carry raw selector characters where the target is encoded.
        assert!(run(&mut counts, &h(1, raw_uri), target).is_ok());
        // The same request again: replay → stale challenge.
        assert_eq!(
            run(&mut counts, &h(1, raw_uri), target),
            Err(AuthFailure { stale: true })
        );
        assert!(run(&mut counts, &h(2, target), target).is_ok());
        // A valid digest for another URI does not authorise this target.
        let other = "/xcap-root/resource-lists/users/sip:alice@example.com/other";
        assert_eq!(
            run(&mut counts, &h(3, other), target),
            Err(AuthFailure { stale: false })
        );
        assert!(run(&mut counts, &h(3, other), other).is_ok());
        // Absolute-form uri= is reduced to its path.
        assert!(uri_matches("http://h:80/a%2Fb?x", "/a/b?x"));
        assert!(!uri_matches("/a/b", "/a/c"));
        // Bounded: old nonces get forgotten, then refused as stale.
        let mut small = NonceCounts::new(2);
        assert!(small.accept("n1", 10, 1, 20, 300));
        assert!(small.accept("n2", 11, 1, 20, 300));
        assert!(small.accept("n3", 12, 1, 20, 300));
        assert!(small.len() <= 2);
        assert!(
            !small.accept("n1", 10, 2, 20, 300),
            "forgotten nonce is stale"
        );
        assert!(small.accept("n4", 13, 1, 20, 300));
    }

    #[test]
    fn raw_quotes_in_uri_param() {
        let h = "Digest username=\"alice\", realm=\"r\", uri=\"/x/~~/a/b[@n=\"v\"]\", nonce=\"n\", response=\"abc\"";
        let a = parse_authorization(h).unwrap();
        assert_eq!(a.param("uri"), Some("/x/~~/a/b[@n=\"v\"]"));
        assert_eq!(a.param("nonce"), Some("n"));
    }

    /// A user imported from its MD5 HA1 is challenged with MD5 only (a client offered
    /// SHA-256 would pick it and fail); everyone else, known or not, with both.
    #[test]
    fn an_md5_only_user_is_challenged_with_md5_only() {
        let mut store = MemStore::new();
        store.add_user("alice", "example.com", "pw");
        store.add_credentials(
            "bob",
            "example.com",
            crate::store::Credentials {
                ha1_md5: Some(ha1_md5("bob", "example.com", "pw")),
                ha1_sha256: None,
            },
        );
        let both = [Algorithm::Sha256, Algorithm::Md5];
        assert_eq!(
            challenge_algorithms(&store, Some(("bob", "example.com"))),
            &[Algorithm::Md5]
        );
        assert_eq!(
            challenge_algorithms(&store, Some(("alice", "example.com"))),
            &both
        );
        assert_eq!(
            challenge_algorithms(&store, Some(("nobody", "example.com"))),
            &both
        );
        assert_eq!(challenge_algorithms(&store, None), &both);
        let ch = challenges(&cfg(), "example.com", 7, false, &[Algorithm::Md5]);
        assert!(ch.iter().all(|c| !c.contains("SHA-256")), "{ch:?}");
    }

    #[test]
    fn basic_and_challenges() {
        let mut store = MemStore::new();
        store.add_user("bob", "example.com", "pw");
        let c = cfg();
        let h = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("bob:pw")
        );
        assert!(authenticate(&c, "GET", Some(&h), "example.com", 0, &store).is_ok());
        let both = challenge_algorithms(&store, Some(("bob", "example.com")));
        let ch = challenges(&c, "example.com", 7, false, both);
        assert_eq!(ch.len(), 3);
        assert!(ch[0].contains("algorithm=SHA-256"));
        assert!(ch[1].contains("algorithm=MD5"));
        assert!(ch[2].starts_with("Basic"));
        assert_eq!(
            check_nonce(&c, "example.com", &challenge_nonce(&ch[0]).unwrap(), 8),
            NonceState::Valid
        );
        assert_eq!(
            check_nonce(&c, "other.com", &challenge_nonce(&ch[0]).unwrap(), 8),
            NonceState::Invalid
        );
    }
}
