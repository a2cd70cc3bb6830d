//! One XCAP request → one response plus effects.

use crate::auth::{self, AuthConfig, NonceCounts, Principal};
use crate::error::{Conflict, XcapError, XCAP_ERROR_MIME};
use crate::etag::{self, ETag, ETagGenerator, Precondition};
use crate::schema::{self, SchemaError};
use crate::select::NsContext;
use crate::selector::{NodeSelector, Terminal};
use crate::splice;
use crate::store::{DocKey, DocumentStore, Expect, StoreError, StoredDoc};
use crate::uri::{Scope, XcapRoot, XcapUri};
use crate::usage::{ApplicationUsage, Registry, UsageCtx, WatchersSource};
use crate::xml::{XmlIndex, XmlLimits};
use crate::Effect;

pub const MIME_EL: &str = "application/xcap-el+xml";
pub const MIME_ATT: &str = "application/xcap-att+xml";
pub const MIME_NS: &str = "application/xcap-ns+xml";
const ALLOW_RW: &str = "GET, PUT, DELETE";
const ALLOW_RO: &str = "GET";

/// Server settings that shape XCAP behaviour (each one a CLI flag of `herald`).
#[derive(Debug, Clone)]
pub struct Config {
    pub root: XcapRoot,
    /// Realm when neither the XUI nor the root (`xcap-root@domain`) names one.
    pub default_realm: String,
    pub auth: AuthConfig,
    pub xml_limits: XmlLimits,
    /// Unique per `Xcap` instance (shard id + boot time): keeps ETags unique server-wide.
    pub etag_prefix: String,
}

impl Config {
    /// Defaults for a root; the secret should be random per process.
    pub fn new(
        root: &str,
        default_realm: &str,
        secret: &[u8],
    ) -> Result<Config, crate::uri::UriError> {
        let root = XcapRoot::parse(root)?;
        Ok(Config {
            auth: AuthConfig {
                secret: secret.to_vec(),
                nonce_ttl: auth::DEFAULT_NONCE_TTL,
                allow_basic: root.is_https(),
            },
            root,
            default_realm: default_realm.to_ascii_lowercase(),
            xml_limits: XmlLimits::default(),
            etag_prefix: "x".to_string(),
        })
    }
}

/// A framed request; everything borrows from the connection's receive buffer.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub headers: &'a [(&'a str, &'a [u8])],
    pub body: &'a [u8],
    /// The peer address is in `--xcap-trusted-peers`: skip authentication.
    pub trusted: bool,
}

impl<'a> Request<'a> {
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .map(str::trim)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn empty(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub response: Response,
    pub effects: Vec<Effect>,
}

/// The XCAP service of one shard.
pub struct Xcap {
    config: Config,
    registry: Registry,
    etags: ETagGenerator,
    /// Digest nonce counts seen (replay protection).
    nonce_counts: NonceCounts,
}

impl Xcap {
    pub fn new(config: Config) -> Self {
        let etags = ETagGenerator::new(config.etag_prefix.clone());
        Xcap {
            config,
            registry: Registry::standard(),
            etags,
            nonce_counts: NonceCounts::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Serves one request. `now` is Unix time in seconds (nonce issue/expiry).
    pub fn handle(
        &mut self,
        req: &Request<'_>,
        now: u64,
        store: &mut dyn DocumentStore,
        watchers: &dyn WatchersSource,
    ) -> Outcome {
        let parsed = XcapUri::parse(req.target, &self.config.root).map(|mut u| {
            u.resolve_user(&self.config.default_realm);
            u
        });
        // Authentication comes first, for every URI, known AUID or not.
        let realm = match &parsed {
            Ok(u) => u.realm(&self.config.default_realm).to_string(),
            Err(_) => self.config.default_realm.clone(),
        };
        let principal = if req.trusted {
            Principal::Trusted
        } else {
            match auth::authenticate_request(
                &self.config.auth,
                req.method,
                req.target,
                req.header("authorization"),
                &realm,
                now,
                &*store,
                &mut self.nonce_counts,
            ) {
                Ok(user) => Principal::User(user),
                Err(fail) => {
                    let mut r = Response::empty(401);
                    let user = parsed.as_ref().ok().and_then(|u| u.user());
                    let algorithms = auth::challenge_algorithms(
                        &*store,
                        user.map(|u| (u.user.as_str(), u.domain.as_str())),
                    );
                    for c in
                        auth::challenges(&self.config.auth, &realm, now, fail.stale, algorithms)
                    {
                        r.headers.push(("WWW-Authenticate", c));
                    }
                    return Outcome {
                        response: r,
                        effects: Vec::new(),
                    };
                }
            }
        };
        let mut effects = Vec::new();
        let response = match parsed {
            Err(e) => error_response(&XcapError::BadRequest(e.to_string()), e.status()),
            Ok(uri) => match self.dispatch(req, &uri, &principal, store, watchers, &mut effects) {
                Ok(r) => r,
                Err(e) => {
                    effects.clear();
                    error_response(&e, e.status())
                }
            },
        };
        Outcome { response, effects }
    }

    fn dispatch(
        &mut self,
        req: &Request<'_>,
        uri: &XcapUri,
        principal: &Principal,
        store: &mut dyn DocumentStore,
        watchers: &dyn WatchersSource,
        effects: &mut Vec<Effect>,
    ) -> Result<Response, XcapError> {
        let usage = self.registry.get(&uri.auid).ok_or(XcapError::NotFound)?;
        let access = usage.access();
        match &uri.scope {
            Scope::Global if !access.global => return Err(XcapError::NotFound),
            Scope::User(_) if !access.users => return Err(XcapError::NotFound),
            _ => {}
        }
        if uri.document.is_empty() || uri.document.ends_with('/') {
            return Err(XcapError::NotFound);
        }
        // Users reach only their own documents; global documents are readable by all.
        let write = !matches!(req.method, "GET" | "HEAD");
        if let Principal::User(me) = principal {
            match &uri.scope {
                Scope::User(owner) if owner != me => return Err(XcapError::Forbidden),
                Scope::Global if write => return Err(XcapError::Forbidden),
                _ => {}
            }
        }
        let generated = access.read_only || (uri.scope == Scope::Global && access.global);
        let allow = if generated { ALLOW_RO } else { ALLOW_RW };
        match req.method {
            "GET" | "HEAD" => {}
            "PUT" | "DELETE" if !generated => {}
            _ => return Err(XcapError::MethodNotAllowed(allow)),
        }
        let key = DocKey {
            auid: uri.auid.clone(),
            scope: uri.scope.clone(),
            path: uri.document.clone(),
        };
        let selector = match &uri.node_selector {
            Some(s) => {
                Some(NodeSelector::parse(s).map_err(|e| XcapError::BadRequest(e.to_string()))?)
            }
            None => None,
        };
        let ns = NsContext {
            default_ns: usage.default_ns(),
            bindings: &uri.namespaces,
        };
        let registered = self.registry.auids();
        let current: Option<StoredDoc> = if generated {
            let ctx = UsageCtx {
                store: &*store,
                key: &key,
                root: &self.config.root,
                registered,
                watchers,
            };
            let bytes = usage.generate(&ctx)?;
            let etag = ETag(format!("g{}", short_hash(&bytes)));
            Some(StoredDoc { etag, bytes })
        } else {
            store.get(&key).map_err(storage)?
        };
        let pre = etag::evaluate(
            req.header("if-match"),
            req.header("if-none-match"),
            current.as_ref().map(|d| &d.etag),
            !write,
        );
        match pre {
            Precondition::Proceed => {}
            Precondition::NotModified => {
                let mut r = Response::empty(304);
                if let Some(d) = &current {
                    r.headers.push(("ETag", d.etag.header_value()));
                }
                return Ok(r);
            }
            Precondition::Failed => return Err(XcapError::PreconditionFailed),
        }
        let limits = self.config.xml_limits;
        let doc_uri = format!("{}/{}", self.config.root.to_uri(), req.target_path_for(uri));
        match req.method {
            "GET" | "HEAD" => {
                let doc = current.ok_or(XcapError::NotFound)?;
                let etag = doc.etag.header_value();
                let (mime, body) = match &selector {
                    None => (usage.mime(), doc.bytes),
                    Some(sel) => match &sel.terminal {
                        None => (
                            MIME_EL,
                            splice::get_element(&doc.bytes, &limits, &sel.steps, &ns)?.to_vec(),
                        ),
                        Some(Terminal::Attribute(a)) => (
                            MIME_ATT,
                            splice::get_attribute(&doc.bytes, &limits, &sel.steps, a, &ns)?
                                .to_vec(),
                        ),
                        Some(Terminal::Namespaces) => (
                            MIME_NS,
                            splice::get_namespaces(&doc.bytes, &limits, &sel.steps, &ns)?,
                        ),
                    },
                };
                Ok(Response {
                    status: 200,
                    headers: vec![("Content-Type", mime.to_string()), ("ETag", etag)],
                    body,
                })
            }
            "PUT" => {
                if req.body.len() > limits.max_bytes {
                    return Err(XcapError::PayloadTooLarge);
                }
                if !identity_coded(req) {
                    return Err(XcapError::UnsupportedContentEncoding);
                }
                let ctype = content_type(req);
                let (new_doc, created) = match &selector {
                    None => {
                        if matches!(ctype.as_deref(), Some(MIME_EL | MIME_ATT | MIME_NS)) {
                            return Err(XcapError::UnsupportedMediaType);
                        }
                        (req.body.to_vec(), current.is_none())
                    }
                    Some(sel) => {
                        let Some(doc) = &current else {
                            return Err(Conflict::NoParent {
                                ancestor: parent_uri(&doc_uri),
                            }
                            .into());
                        };
                        let edit = match &sel.terminal {
                            None => {
                                if ctype.as_deref() != Some(MIME_EL) {
                                    return Err(XcapError::UnsupportedMediaType);
                                }
                                splice::put_element(
                                    &doc.bytes, &limits, &sel.steps, &ns, req.body, &doc_uri,
                                )?
                            }
                            Some(Terminal::Attribute(a)) => {
                                if ctype.as_deref() != Some(MIME_ATT) {
                                    return Err(XcapError::UnsupportedMediaType);
                                }
                                splice::put_attribute(
                                    &doc.bytes, &limits, &sel.steps, a, &ns, req.body, &doc_uri,
                                )?
                            }
                            Some(Terminal::Namespaces) => {
                                return Err(XcapError::MethodNotAllowed(ALLOW_RO))
                            }
                        };
                        (edit.new_doc, edit.created)
                    }
                };
                self.validate(usage, &new_doc, &key, store, watchers)?;
                let etag = self.etags.issue();
                let expect = match &current {
                    None => Expect::Absent,
                    Some(d) => Expect::Tag(d.etag.clone()),
                };
                store
                    .put(
                        &key,
                        &expect,
                        StoredDoc {
                            etag: etag.clone(),
                            bytes: new_doc,
                        },
                    )
                    .map_err(storage)?;
                if let Some(u) = uri.user() {
                    effects.extend(usage.effect(u));
                }
                let mut r = Response::empty(if created { 201 } else { 200 });
                r.headers.push(("ETag", etag.header_value()));
                Ok(r)
            }
            "DELETE" => {
                let doc = current.ok_or(XcapError::NotFound)?;
                let mut r = Response::empty(200);
                match &selector {
                    None => {
                        store.delete(&key, &doc.etag).map_err(storage)?;
                    }
                    Some(sel) => {
                        let new_doc = match &sel.terminal {
                            None => splice::delete_element(&doc.bytes, &limits, &sel.steps, &ns)?,
                            Some(Terminal::Attribute(a)) => {
                                splice::delete_attribute(&doc.bytes, &limits, &sel.steps, a, &ns)?
                            }
                            Some(Terminal::Namespaces) => {
                                return Err(XcapError::MethodNotAllowed(ALLOW_RO))
                            }
                        };
                        self.validate(usage, &new_doc, &key, store, watchers)?;
                        let etag = self.etags.issue();
                        store
                            .put(
                                &key,
                                &Expect::Tag(doc.etag.clone()),
                                StoredDoc {
                                    etag: etag.clone(),
                                    bytes: new_doc,
                                },
                            )
                            .map_err(storage)?;
                        r.headers.push(("ETag", etag.header_value()));
                    }
                }
                if let Some(u) = uri.user() {
                    effects.extend(usage.effect(u));
                }
                Ok(r)
            }
            _ => Err(XcapError::MethodNotAllowed(allow)),
        }
    }

    /// Whole-document checks for what is about to be stored: hostile-XML bounds and
    /// positions (our indexer), well-formedness and schema (libxml2), usage constraints.
    fn validate(
        &self,
        usage: &dyn ApplicationUsage,
        doc: &[u8],
        key: &DocKey,
        store: &dyn DocumentStore,
        watchers: &dyn WatchersSource,
    ) -> Result<(), XcapError> {
        let ix = XmlIndex::document(doc, &self.config.xml_limits)
            .map_err(|e| XcapError::Conflict(splice::xml_conflict(e)))?;
        let schema_result = match usage.schema() {
            Some(id) => schema::validate(id, doc),
            None => schema::check_well_formed(doc),
        };
        match schema_result {
            Ok(()) => {}
            Err(SchemaError::NotWellFormed(p)) => return Err(Conflict::NotWellFormed(p).into()),
            Err(SchemaError::Invalid(p)) => return Err(Conflict::SchemaValidation(p).into()),
            Err(SchemaError::Unavailable(p)) => return Err(XcapError::Storage(p)),
        }
        let ctx = UsageCtx {
            store,
            key,
            root: &self.config.root,
            registered: self.registry.auids(),
            watchers,
        };
        usage.check(&ix, &ctx)?;
        Ok(())
    }
}

trait TargetPath {
    fn target_path_for(&self, uri: &XcapUri) -> String;
}

impl TargetPath for Request<'_> {
    /// Document path below the root as the client addressed it (for `<ancestor>`).
    fn target_path_for(&self, uri: &XcapUri) -> String {
        match &uri.scope {
            Scope::Global => format!("{}/global/{}", uri.auid, uri.document),
            Scope::User(_) => format!(
                "{}/users/{}/{}",
                uri.auid,
                uri.xui.as_deref().unwrap_or(""),
                uri.document
            ),
        }
    }
}

fn parent_uri(doc_uri: &str) -> String {
    match doc_uri.rfind('/') {
        Some(i) => doc_uri[..i].to_string(),
        None => doc_uri.to_string(),
    }
}

fn content_type(req: &Request<'_>) -> Option<String> {
    req.header("content-type").map(|v| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
}

/// Whether the body is as sent: no `Content-Encoding`, or only `identity`. Why: a gzip body
/// read as XML would get a misleading 409 `not-utf-8` instead of 415.
fn identity_coded(req: &Request<'_>) -> bool {
    req.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-encoding"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .all(|c| c.is_empty() || c.eq_ignore_ascii_case(b"identity"))
}

fn storage(e: StoreError) -> XcapError {
    match e {
        StoreError::Changed => XcapError::PreconditionFailed,
        StoreError::Io(s) => XcapError::Storage(s),
    }
}

fn short_hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(bytes);
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn error_response(e: &XcapError, status: u16) -> Response {
    let mut r = Response::empty(status);
    match e {
        XcapError::Conflict(c) => {
            r.headers
                .push(("Content-Type", XCAP_ERROR_MIME.to_string()));
            r.body = c.to_xml().into_bytes();
        }
        XcapError::MethodNotAllowed(allow) => r.headers.push(("Allow", allow.to_string())),
        XcapError::UnsupportedContentEncoding => {
            r.headers.push(("Accept-Encoding", "identity".to_string()))
        }
        _ => {}
    }
    r
}
