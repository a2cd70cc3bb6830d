//! XCAP request URIs (RFC 4825 §6): root, AUID, `global`/`users`/XUI, document path,
//! node selector after `~~`, and `xmlns()` namespace bindings from the query.

use std::fmt;

/// Longest request target we look at; XCAP URIs are short.
pub const MAX_URI_LEN: usize = 8 * 1024;

/// The configured XCAP root (`--xcap-root`), e.g. `http://127.0.0.1:8080/xcap-root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XcapRoot {
    /// Scheme and authority as configured, e.g. `http://127.0.0.1:8080` (used in error
    /// bodies and xcap-directory URIs).
    pub origin: String,
    /// Path of the root without trailing slash, e.g. `/xcap-root` (may be empty).
    pub path: String,
}

impl XcapRoot {
    /// Parses `scheme://authority/path`; a bare path (`/xcap-root`) is also accepted.
    pub fn parse(root: &str) -> Result<XcapRoot, UriError> {
        let root = root.trim();
        let (origin, path) = match root.find("://") {
            Some(i) => {
                let after = &root[i + 3..];
                let slash = after.find('/').unwrap_or(after.len());
                (&root[..i + 3 + slash], &after[slash..])
            }
            None => ("", root),
        };
        if !path.is_empty() && !path.starts_with('/') {
            return Err(UriError::NotUnderRoot);
        }
        Ok(XcapRoot {
            origin: origin.to_string(),
            path: path.trim_end_matches('/').to_string(),
        })
    }

    /// Whether the root is served over TLS (Basic auth is only offered then).
    pub fn is_https(&self) -> bool {
        self.origin.starts_with("https://")
    }

    /// Absolute URI of the root as clients see it.
    pub fn to_uri(&self) -> String {
        format!("{}{}", self.origin, self.path)
    }
}

/// A user's identity as `user@domain` (the realm is the domain).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId {
    pub user: String,
    pub domain: String,
}

impl UserId {
    /// The SIP AoR, `sip:user@domain`: the key the presence core uses.
    pub fn aor(&self) -> String {
        format!("sip:{}@{}", self.user, self.domain)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.domain)
    }
}

/// Where a document lives: the global tree or a user's home directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Global,
    User(UserId),
}

/// A parsed XCAP URI. Percent-decoding has been applied to every part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XcapUri {
    /// Realm from the `xcap-root@domain` client convention, if used.
    pub root_realm: Option<String>,
    pub auid: String,
    pub scope: Scope,
    /// The XUI segment as sent (decoded), e.g. `sip:alice@example.com` or `alice`.
    pub xui: Option<String>,
    /// Document path inside the scope, e.g. `index` or `dir/doc.xml`; empty when the URI
    /// names the home directory itself.
    pub document: String,
    /// Node selector after `~~`, percent-decoded, `None` for whole-document URIs.
    pub node_selector: Option<String>,
    /// Prefix bindings from the `xmlns(p=uri)` query components.
    pub namespaces: Vec<(String, String)>,
}

/// Why a request target is not an XCAP URI. All map to 404 except `BadSelector`/`BadQuery`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriError {
    TooLong,
    NotUnderRoot,
    MissingAuid,
    BadTree,
    MissingXui,
    BadPercentEncoding,
    BadQuery,
    /// A control character (CR, LF, NUL…) in the XUI or the `xcap-root@realm` realm. Both
    /// name a user and a digest realm, which the challenge's `WWW-Authenticate` header
    /// carries: a `%0d%0a` there would split the response.
    ControlInIdentity,
}

impl UriError {
    pub fn status(&self) -> u16 {
        match self {
            UriError::TooLong
            | UriError::BadPercentEncoding
            | UriError::BadQuery
            | UriError::ControlInIdentity => 400,
            _ => 404,
        }
    }
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UriError::TooLong => "request URI too long",
            UriError::NotUnderRoot => "not under the XCAP root",
            UriError::MissingAuid => "no application usage in URI",
            UriError::BadTree => "expected 'global' or 'users' after the AUID",
            UriError::MissingXui => "no XUI after 'users'",
            UriError::BadPercentEncoding => "invalid percent-encoding",
            UriError::BadQuery => "invalid xmlns() query",
            UriError::ControlInIdentity => "control character in the XUI or realm",
        })
    }
}

impl std::error::Error for UriError {}

impl XcapUri {
    /// Parses a request target (origin-form or absolute-form) under `root`.
    pub fn parse(target: &str, root: &XcapRoot) -> Result<XcapUri, UriError> {
        if target.len() > MAX_URI_LEN {
            return Err(UriError::TooLong);
        }
        let path_and_query = strip_origin(target);
        let (raw_path, query) = match path_and_query.find('?') {
            Some(i) => (&path_and_query[..i], Some(&path_and_query[i + 1..])),
            None => (path_and_query, None),
        };
        let after_root = raw_path
            .strip_prefix(root.path.as_str())
            .ok_or(UriError::NotUnderRoot)?;
        // `xcap-root@domain/...`: realm convention for clients that send bare user names.
        let (root_realm, rest) = if let Some(r) = after_root.strip_prefix('@') {
            let end = r.find('/').unwrap_or(r.len());
            let realm = identity(percent_decode(&r[..end])?)?;
            (Some(realm).filter(|s| !s.is_empty()), &r[end..])
        } else {
            (None, after_root)
        };
        let rest = rest.strip_prefix('/').ok_or(UriError::NotUnderRoot)?;
        // The node selector separator is the literal path segment `~~`.
        let (doc_part, selector_raw) = match find_separator(rest) {
            Some((doc_end, sel_start)) => (&rest[..doc_end], Some(&rest[sel_start..])),
            None => (rest, None),
        };
        let mut segments = doc_part.split('/');
        let auid = percent_decode(segments.next().unwrap_or(""))?;
        if auid.is_empty() {
            return Err(UriError::MissingAuid);
        }
        let tree = segments.next().ok_or(UriError::BadTree)?;
        let (scope_is_global, xui) = match tree {
            "global" => (true, None),
            "users" => {
                let xui = identity(percent_decode(
                    segments.next().ok_or(UriError::MissingXui)?,
                )?)?;
                if xui.is_empty() {
                    return Err(UriError::MissingXui);
                }
                (false, Some(xui))
            }
            _ => return Err(UriError::BadTree),
        };
        let mut document = String::new();
        for (i, seg) in segments.enumerate() {
            if i > 0 {
                document.push('/');
            }
            document.push_str(&percent_decode(seg)?);
        }
        let node_selector = match selector_raw {
            Some(s) => Some(percent_decode(s)?),
            None => None,
        };
        let namespaces = match query {
            Some(q) if !q.is_empty() => parse_xmlns_query(&percent_decode(q)?)?,
            _ => Vec::new(),
        };
        let scope = if scope_is_global {
            Scope::Global
        } else {
            // Filled in by `resolve_user`; placeholder keeps the type total.
            Scope::User(UserId {
                user: String::new(),
                domain: String::new(),
            })
        };
        Ok(XcapUri {
            root_realm,
            auid,
            scope,
            xui,
            document,
            node_selector,
            namespaces,
        })
    }

    /// Resolves the XUI to `user@domain` following OpenXCAP: the domain of a
    /// `user@domain` XUI, else the `xcap-root@domain` realm, else `default_realm`.
    pub fn resolve_user(&mut self, default_realm: &str) {
        if let Some(xui) = &self.xui {
            self.scope = Scope::User(user_from_xui(
                xui,
                self.root_realm.as_deref(),
                default_realm,
            ));
        }
    }

    /// The realm for authenticating this request.
    pub fn realm<'a>(&'a self, default_realm: &'a str) -> &'a str {
        match &self.scope {
            Scope::User(u) if !u.domain.is_empty() => &u.domain,
            _ => self.root_realm.as_deref().unwrap_or(default_realm),
        }
    }

    pub fn user(&self) -> Option<&UserId> {
        match &self.scope {
            Scope::User(u) => Some(u),
            Scope::Global => None,
        }
    }
}

/// `sip:alice@example.com`, `alice@example.com` or `alice` → `UserId`.
pub fn user_from_xui(xui: &str, root_realm: Option<&str>, default_realm: &str) -> UserId {
    let bare = xui
        .strip_prefix("sip:")
        .or_else(|| xui.strip_prefix("sips:"))
        .or_else(|| xui.strip_prefix("tel:"))
        .unwrap_or(xui);
    match bare.rsplit_once('@') {
        Some((user, domain)) if !domain.is_empty() => UserId {
            user: user.to_string(),
            domain: domain.to_ascii_lowercase(),
        },
        _ => UserId {
            user: bare.trim_end_matches('@').to_string(),
            domain: root_realm.unwrap_or(default_realm).to_ascii_lowercase(),
        },
    }
}

/// Returns (end of document part, start of node selector) for a `~~` path segment.
fn find_separator(rest: &str) -> Option<(usize, usize)> {
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if &bytes[i..i + 2] == b"~~" && (i == 0 || bytes[i - 1] == b'/') {
            let doc_end = if i == 0 { 0 } else { i - 1 };
            return Some((doc_end, i + 2));
        }
        i += 1;
    }
    None
}

fn strip_origin(target: &str) -> &str {
    match target.find("://") {
        Some(i) if !target[..i].contains('/') => {
            let after = &target[i + 3..];
            match after.find('/') {
                Some(s) => &after[s..],
                None => "/",
            }
        }
        _ => target,
    }
}

/// Percent-decodes into UTF-8; `+` is kept literally (paths, not forms).
/// A decoded XUI or realm, refused if it holds a control character (see
/// [`UriError::ControlInIdentity`]).
fn identity(s: String) -> Result<String, UriError> {
    if s.chars().any(char::is_control) {
        return Err(UriError::ControlInIdentity);
    }
    Ok(s)
}

pub fn percent_decode(s: &str) -> Result<String, UriError> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(UriError::BadPercentEncoding)?;
            let v = (hex_val(hex[0]).ok_or(UriError::BadPercentEncoding)? << 4)
                | hex_val(hex[1]).ok_or(UriError::BadPercentEncoding)?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UriError::BadPercentEncoding)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `xmlns(a=urn:x)xmlns(b=urn:y)` (RFC 4825 §6.4, XPointer xmlns scheme).
fn parse_xmlns_query(q: &str) -> Result<Vec<(String, String)>, UriError> {
    let mut out = Vec::new();
    let mut rest = q.trim();
    while !rest.is_empty() {
        let body = rest.strip_prefix("xmlns(").ok_or(UriError::BadQuery)?;
        let close = body.find(')').ok_or(UriError::BadQuery)?;
        let (prefix, uri) = body[..close].split_once('=').ok_or(UriError::BadQuery)?;
        let prefix = prefix.trim();
        if prefix.is_empty() || !crate::selector::is_ncname(prefix) {
            return Err(UriError::BadQuery);
        }
        out.push((prefix.to_string(), uri.trim().to_string()));
        rest = body[close + 1..].trim_start();
        if out.len() > 32 {
            return Err(UriError::BadQuery);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> XcapRoot {
        XcapRoot::parse("http://127.0.0.1:8080/xcap-root").unwrap()
    }

    #[test]
    fn root_parse() {
        let r = root();
        assert_eq!(r.origin, "http://127.0.0.1:8080");
        assert_eq!(r.path, "/xcap-root");
        assert_eq!(XcapRoot::parse("http://h/").unwrap().path, "");
    }

    #[test]
    fn user_document() {
        let mut u = XcapUri::parse(
            "/xcap-root/resource-lists/users/sip:alice@Example.com/index",
            &root(),
        )
        .unwrap();
        u.resolve_user("default.org");
        assert_eq!(u.auid, "resource-lists");
        assert_eq!(u.document, "index");
        assert_eq!(
            u.user(),
            Some(&UserId {
                user: "alice".into(),
                domain: "example.com".into()
            })
        );
        assert_eq!(u.realm("default.org"), "example.com");
        assert_eq!(u.node_selector, None);
    }

    #[test]
    fn percent_encoded_xui_and_selector() {
        let mut u = XcapUri::parse(
            "http://127.0.0.1:8080/xcap-root/resource-lists/users/sip%3Aalice%40example.com/index/~~/resource-lists/list%5B@name=%22friends%22%5D?xmlns(rl=urn:ietf:params:xml:ns:resource-lists)",
            &root(),
        )
        .unwrap();
        u.resolve_user("d");
        assert_eq!(u.user().unwrap().to_string(), "alice@example.com");
        assert_eq!(
            u.node_selector.as_deref(),
            Some("/resource-lists/list[@name=\"friends\"]")
        );
        assert_eq!(
            u.namespaces,
            vec![(
                "rl".to_string(),
                "urn:ietf:params:xml:ns:resource-lists".to_string()
            )]
        );
    }

    #[test]
    fn raw_selector_characters() {
        let u = XcapUri::parse(
            "/xcap-root/resource-lists/users/sip:a@b/index/~~/resource-lists/list[@name=\"a b/c\"]/entry[1]",
            &root(),
        )
        .unwrap();
        assert_eq!(
            u.node_selector.as_deref(),
            Some("/resource-lists/list[@name=\"a b/c\"]/entry[1]")
        );
    }

    #[test]
    fn realm_conventions() {
        let mut u =
            XcapUri::parse("/xcap-root@example.org/pres-rules/users/bob/index", &root()).unwrap();
        u.resolve_user("default.org");
        assert_eq!(u.user().unwrap().to_string(), "bob@example.org");
        let mut u = XcapUri::parse("/xcap-root/pres-rules/users/bob/index", &root()).unwrap();
        u.resolve_user("default.org");
        assert_eq!(u.user().unwrap().to_string(), "bob@default.org");
        let u = XcapUri::parse("/xcap-root/xcap-caps/global/index", &root()).unwrap();
        assert_eq!(u.scope, Scope::Global);
        assert_eq!(u.realm("default.org"), "default.org");
    }

    #[test]
    fn errors() {
        let r = root();
        assert_eq!(
            XcapUri::parse("/other/x/users/a/index", &r),
            Err(UriError::NotUnderRoot)
        );
        assert_eq!(
            XcapUri::parse("/xcap-root/x/foo/a", &r),
            Err(UriError::BadTree)
        );
        assert_eq!(
            XcapUri::parse("/xcap-root/x/users/%zz/index", &r),
            Err(UriError::BadPercentEncoding)
        );
        for target in [
            "/xcap-root/x/users/sip:alice@example.com%0d%0aX-Injected:%201/index",
            "/xcap-root@exa%0dmple.com/x/users/alice/index",
            "/xcap-root/x/users/al%00ice/index",
        ] {
            assert_eq!(
                XcapUri::parse(target, &r),
                Err(UriError::ControlInIdentity),
                "{target}"
            );
        }
        assert_eq!(
            XcapUri::parse("/xcap-root/x/users/a/index?foo", &r),
            Err(UriError::BadQuery)
        );
    }
}
