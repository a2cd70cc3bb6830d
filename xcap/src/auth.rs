//! HTTP authentication as OpenXCAP does it: Digest (RFC 7616; MD5 and SHA-256, qop=auth)
//! and Basic (RFC 7617, meant for https roots), against the subscriber HA1s, with the realm
//! derived per request from the XCAP URI.
//!
//! Nonces are stateless: `<issued-at hex>.<tag>` where the tag is SHA-256 over a server
//! secret, the timestamp and the realm. A nonce is accepted until it expires (then the
//! challenge says `stale=true`, so clients retry without asking the user). Nonce counts are
//! not tracked, so a captured request can be replayed within the nonce lifetime; keep the
//! lifetime short and use TLS where that matters.

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

fn nonce_tag(secret: &[u8], issued: u64, realm: &str) -> String {
    let mut h = Sha256::new();
    h.update(secret);
    h.update(b":");
    h.update(format!("{issued:x}").as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    hex(&h.finalize()[..16])
}

pub fn make_nonce(cfg: &AuthConfig, realm: &str, now: u64) -> String {
    format!("{now:x}.{}", nonce_tag(&cfg.secret, now, realm))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceState {
    Valid,
    Stale,
    Invalid,
}

pub fn check_nonce(cfg: &AuthConfig, realm: &str, nonce: &str, now: u64) -> NonceState {
    let Some((ts, tag)) = nonce.split_once('.') else {
        return NonceState::Invalid;
    };
    let Ok(issued) = u64::from_str_radix(ts, 16) else {
        return NonceState::Invalid;
    };
    if !ct_eq(
        tag.as_bytes(),
        nonce_tag(&cfg.secret, issued, realm).as_bytes(),
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

/// `WWW-Authenticate` values for a 401: one Digest challenge per algorithm (SHA-256 first,
/// RFC 7616 §3.7), then Basic when allowed.
pub fn challenges(cfg: &AuthConfig, realm: &str, now: u64, stale: bool) -> Vec<String> {
    let nonce = make_nonce(cfg, realm, now);
    let opaque = &nonce_tag(&cfg.secret, 0, realm)[..16];
    let stale = if stale { ", stale=true" } else { "" };
    let realm_q = quote(realm);
    let mut out: Vec<String> = [Algorithm::Sha256, Algorithm::Md5]
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
            let v0 = i;
            let mut out = String::new();
            let mut seg = v0;
            loop {
                if i >= b.len() {
                    return None;
                }
                match b[i] {
                    b'\\' if i + 1 < b.len() => {
                        out.push_str(&rest[seg..i]);
                        out.push(b[i + 1] as char);
                        i += 2;
                        seg = i;
                    }
                    b'"' if closes_value(&rest[i + 1..]) => {
                        out.push_str(&rest[seg..i]);
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
            val = out;
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

fn closes_value(after: &str) -> bool {
    let t = after.trim_start();
    if t.is_empty() {
        return true;
    }
    let Some(next) = t.strip_prefix(',') else {
        return false;
    };
    let next = next.trim_start();
    let name_len = next
        .bytes()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        .count();
    name_len > 0 && next[name_len..].trim_start().starts_with('=')
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

/// Verifies the `Authorization` header for `method` in `realm`.
pub fn authenticate(
    cfg: &AuthConfig,
    method: &str,
    header: Option<&str>,
    realm: &str,
    now: u64,
    store: &dyn DocumentStore,
) -> Result<UserId, AuthFailure> {
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
            Ok(UserId {
                user: u.to_string(),
                domain: realm.to_ascii_lowercase(),
            })
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
            let expected = match p("qop") {
                Some(q) if q.eq_ignore_ascii_case("auth") => {
                    let nc = p("nc").ok_or(fail)?;
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
            Ok(UserId {
                user: u.to_string(),
                domain: realm.to_ascii_lowercase(),
            })
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
    fn raw_quotes_in_uri_param() {
        let h = "Digest username=\"alice\", realm=\"r\", uri=\"/x/~~/a/b[@n=\"v\"]\", nonce=\"n\", response=\"abc\"";
        let a = parse_authorization(h).unwrap();
        assert_eq!(a.param("uri"), Some("/x/~~/a/b[@n=\"v\"]"));
        assert_eq!(a.param("nonce"), Some("n"));
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
        let ch = challenges(&c, "example.com", 7, false);
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
