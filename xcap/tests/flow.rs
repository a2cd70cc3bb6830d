//! Request → response flow of the whole XCAP service on the in-memory store: every method,
//! usage, precondition and error condition of issue 6, with digest authentication.

use xcap::auth::{self, Algorithm};
use xcap::store::MemStore;
use xcap::uri::UserId;
use xcap::usage::{Watcher, WatchersSource};
use xcap::{Config, Effect, Outcome, Request, Xcap};

const ROOT: &str = "http://127.0.0.1:8080/xcap-root";
const NOW: u64 = 1_700_000_000;

struct W;
impl WatchersSource for W {
    fn watchers(&self, user: &UserId) -> Vec<Watcher> {
        if user.user == "alice" {
            vec![Watcher {
                uri: "sip:bob@example.com".into(),
                status: "pending".into(),
            }]
        } else {
            vec![]
        }
    }
}

struct Env {
    xcap: Xcap,
    store: MemStore,
    user: &'static str,
    password: &'static str,
    alg: Algorithm,
    nc: u32,
}

impl Env {
    fn new() -> Env {
        let mut store = MemStore::new();
        store.add_user("alice", "example.com", "secret");
        store.add_user("bob", "example.com", "pw2");
        let cfg = Config::new(ROOT, "example.com", b"test-secret").unwrap();
        Env {
            xcap: Xcap::new(cfg),
            store,
            user: "alice",
            password: "secret",
            alg: Algorithm::Md5,
            nc: 0,
        }
    }

    fn raw(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &str,
        trusted: bool,
    ) -> Outcome {
        let hv: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        let req = Request {
            method,
            target,
            headers: &hv,
            body: body.as_bytes(),
            trusted,
        };
        self.xcap.handle(&req, NOW, &mut self.store, &W)
    }

    /// Authenticated request (challenge, then digest), as a client does it.
    fn req(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Outcome {
        let target = format!("/xcap-root/{path}");
        let challenge = self.raw(method, &target, &[], "", false);
        assert_eq!(challenge.response.status, 401);
        let www: Vec<&str> = challenge
            .response
            .headers
            .iter()
            .filter(|(n, _)| *n == "WWW-Authenticate")
            .map(|(_, v)| v.as_str())
            .collect();
        let nonce = auth::challenge_nonce(www[0]).unwrap();
        let realm_start = www[0].find("realm=\"").unwrap() + 7;
        let realm = &www[0][realm_start..realm_start + www[0][realm_start..].find('"').unwrap()];
        self.nc += 1;
        let authz = auth::client_digest(
            self.alg,
            self.user,
            realm,
            self.password,
            method,
            &target,
            &nonce,
            "abcdef",
            self.nc,
        );
        let mut h: Vec<(&str, &str)> = headers.to_vec();
        h.push(("Authorization", &authz));
        self.raw(method, &target, &h, body, false)
    }

    fn status(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> u16 {
        self.req(method, path, headers, body).response.status
    }
}

const RL: &str = "resource-lists/users/sip:alice@example.com/index";
const RL_DOC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- Alice's buddies -->
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">
  <list name="friends">
    <entry uri="sip:bob@example.com"><display-name>Bob</display-name></entry>
    <entry uri="sip:carol@example.com"/>
  </list>
</resource-lists>
"#;

fn body(o: &Outcome) -> String {
    String::from_utf8(o.response.body.clone()).unwrap()
}

fn etag(o: &Outcome) -> String {
    o.response.header("ETag").unwrap().to_string()
}

fn conflict(o: &Outcome, tag: &str) {
    assert_eq!(o.response.status, 409, "{}", body(o));
    assert_eq!(
        o.response.header("Content-Type"),
        Some("application/xcap-error+xml")
    );
    assert!(
        body(o).contains(&format!("<{tag}")),
        "{tag} not in {}",
        body(o)
    );
}

#[test]
fn auth_challenges_and_access() {
    let mut env = Env::new();
    let o = env.raw("GET", &format!("/xcap-root/{RL}"), &[], "", false);
    assert_eq!(o.response.status, 401);
    let www: Vec<_> = o
        .response
        .headers
        .iter()
        .filter(|(n, _)| *n == "WWW-Authenticate")
        .collect();
    assert_eq!(
        www.len(),
        2,
        "one Digest challenge per algorithm, no Basic over http"
    );
    assert!(www[0].1.contains("algorithm=SHA-256") && www[0].1.contains("realm=\"example.com\""));
    // Unknown AUID: still 401 first.
    assert_eq!(
        env.raw("GET", "/xcap-root/nope/users/alice/index", &[], "", false)
            .response
            .status,
        401
    );
    // Realm from xcap-root@domain.
    let o = env.raw(
        "GET",
        "/xcap-root@other.org/resource-lists/users/alice/index",
        &[],
        "",
        false,
    );
    assert!(o
        .response
        .header("WWW-Authenticate")
        .unwrap()
        .contains("realm=\"other.org\""));
    // Both algorithms work.
    assert_eq!(env.status("GET", RL, &[], ""), 404);
    env.alg = Algorithm::Sha256;
    assert_eq!(env.status("GET", RL, &[], ""), 404);
    // Wrong password.
    env.password = "wrong";
    assert_eq!(env.status("GET", RL, &[], ""), 401);
    env.password = "secret";
    // Someone else's document.
    assert_eq!(
        env.status(
            "GET",
            "resource-lists/users/sip:bob@example.com/index",
            &[],
            ""
        ),
        403
    );
    // Unknown AUID after auth → 404.
    assert_eq!(
        env.status("GET", "nope/users/sip:alice@example.com/index", &[], ""),
        404
    );
    // Trusted peers skip auth.
    let o = env.raw("GET", "/xcap-root/xcap-caps/global/index", &[], "", true);
    assert_eq!(o.response.status, 200);
}

#[test]
fn document_lifecycle_etags_and_preconditions() {
    let mut env = Env::new();
    // A body in a content coding herald does not decode: 415 naming `identity`, nothing
    // stored (before, gzip bytes read as XML gave 409 not-utf-8).
    let o = env.req(
        "PUT",
        RL,
        &[
            ("Content-Type", "application/resource-lists+xml"),
            ("Content-Encoding", "gzip"),
        ],
        RL_DOC,
    );
    assert_eq!(o.response.status, 415, "{}", body(&o));
    assert_eq!(o.response.header("Accept-Encoding"), Some("identity"));
    assert_eq!(env.status("GET", RL, &[], ""), 404);
    let o = env.req(
        "PUT",
        RL,
        &[("Content-Type", "application/resource-lists+xml")],
        RL_DOC,
    );
    assert_eq!(o.response.status, 201, "{}", body(&o));
    let e1 = etag(&o);
    assert_eq!(
        o.effects,
        vec![Effect::ResourceListsChanged {
            user: UserId {
                user: "alice".into(),
                domain: "example.com".into()
            }
        }]
    );
    let o = env.req("GET", RL, &[], "");
    assert_eq!(o.response.status, 200);
    assert_eq!(body(&o), RL_DOC, "stored byte for byte");
    assert_eq!(
        o.response.header("Content-Type"),
        Some("application/resource-lists+xml")
    );
    assert_eq!(etag(&o), e1);
    // Same bytes again, generic content type: 200 and a new ETag.
    let o = env.req("PUT", RL, &[("Content-Type", "text/xml")], RL_DOC);
    assert_eq!(o.response.status, 200);
    let e2 = etag(&o);
    assert_ne!(e1, e2);
    // Preconditions.
    assert_eq!(env.status("PUT", RL, &[("If-Match", &e1)], RL_DOC), 412);
    let unquoted = e2.trim_matches('"').to_string();
    let o = env.req("PUT", RL, &[("If-Match", &unquoted)], RL_DOC);
    assert_eq!(o.response.status, 200);
    let e3 = etag(&o);
    assert_eq!(
        env.status("PUT", RL, &[("If-None-Match", "*")], RL_DOC),
        412
    );
    assert_eq!(env.status("GET", RL, &[("If-None-Match", &e3)], ""), 304);
    assert_eq!(env.status("GET", RL, &[("If-Match", "\"nope\"")], ""), 412);
    assert_eq!(
        env.status("DELETE", RL, &[("If-Match", "\"nope\"")], ""),
        412
    );
    assert_eq!(env.status("GET", RL, &[], ""), 200, "412 wrote nothing");
    let o = env.req("DELETE", RL, &[("If-Match", "*")], "");
    assert_eq!(o.response.status, 200);
    assert_eq!(env.status("GET", RL, &[], ""), 404);
    assert_eq!(env.status("DELETE", RL, &[], ""), 404);
    assert_eq!(env.status("PUT", RL, &[("If-Match", "*")], RL_DOC), 412);
    assert_eq!(
        env.status("PUT", RL, &[("If-None-Match", "*")], RL_DOC),
        201
    );
}

#[test]
fn elements_attributes_namespaces() {
    let mut env = Env::new();
    assert_eq!(env.status("PUT", RL, &[], RL_DOC), 201);
    let el = [("Content-Type", "application/xcap-el+xml")];
    let att = [("Content-Type", "application/xcap-att+xml")];
    // GET by attribute predicate, by position, by *.
    let o = env.req(
        "GET",
        &format!("{RL}/~~/resource-lists/list%5B@name=%22friends%22%5D/entry%5B2%5D"),
        &[],
        "",
    );
    assert_eq!(o.response.status, 200);
    assert_eq!(body(&o), "<entry uri=\"sip:carol@example.com\"/>");
    assert_eq!(
        o.response.header("Content-Type"),
        Some("application/xcap-el+xml")
    );
    let o = env.req(
        "GET",
        &format!("{RL}/~~/resource-lists/list[@name=\"friends\"]/*[1]/display-name"),
        &[],
        "",
    );
    assert_eq!(body(&o), "<display-name>Bob</display-name>");
    // Prefixed selector with xmlns() query.
    let o = env.req("GET", &format!("{RL}/~~/rl:resource-lists/rl:list/rl:entry[@uri=\"sip:bob@example.com\"]/@uri?xmlns(rl=urn:ietf:params:xml:ns:resource-lists)"), &[], "");
    assert_eq!(o.response.status, 200);
    assert_eq!(body(&o), "sip:bob@example.com");
    assert_eq!(
        o.response.header("Content-Type"),
        Some("application/xcap-att+xml")
    );
    // Namespace bindings.
    let o = env.req(
        "GET",
        &format!("{RL}/~~/resource-lists/list/namespace::*"),
        &[],
        "",
    );
    assert_eq!(
        body(&o),
        "<list xmlns=\"urn:ietf:params:xml:ns:resource-lists\"/>"
    );
    assert_eq!(
        o.response.header("Content-Type"),
        Some("application/xcap-ns+xml")
    );
    // Create an element (201), replace it (200), delete it.
    let sel = format!(
        "{RL}/~~/resource-lists/list[@name=\"friends\"]/entry[@uri=\"sip:dave@example.com\"]"
    );
    let o = env.req("PUT", &sel, &el, "<entry uri=\"sip:dave@example.com\"/>");
    assert_eq!(o.response.status, 201, "{}", body(&o));
    assert!(o.response.header("ETag").is_some());
    let o = env.req(
        "PUT",
        &sel,
        &el,
        "<entry uri=\"sip:dave@example.com\"><display-name>Dave</display-name></entry>",
    );
    assert_eq!(o.response.status, 200, "{}", body(&o));
    let full = body(&env.req("GET", RL, &[], ""));
    assert!(
        full.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- Alice's buddies -->"),
        "declaration and comment kept"
    );
    assert!(full.contains("<entry uri=\"sip:carol@example.com\"/><entry uri=\"sip:dave@example.com\"><display-name>Dave</display-name></entry>"));
    assert_eq!(env.status("DELETE", &sel, &[], ""), 200);
    assert_eq!(
        body(&env.req("GET", RL, &[], "")),
        RL_DOC,
        "insert then delete restores the bytes"
    );
    // Attributes.
    let a = format!("{RL}/~~/resource-lists/list/@name");
    assert_eq!(env.status("PUT", &a, &att, "family"), 200);
    assert_eq!(body(&env.req("GET", &a, &[], "")), "family");
    // An attribute the schema does not allow is refused; an optional one is re-creatable.
    conflict(
        &env.req(
            "PUT",
            &format!("{RL}/~~/resource-lists/list/entry[2]/@foo"),
            &att,
            "bar",
        ),
        "schema-validation-error",
    );
    assert_eq!(env.status("DELETE", &a, &[], ""), 200);
    assert_eq!(env.status("GET", &a, &[], ""), 404);
    assert_eq!(env.status("PUT", &a, &att, "friends"), 201);
    assert_eq!(body(&env.req("GET", RL, &[], "")), RL_DOC);
    // Wrong media types → 415; a whole document PUT with xcap-el+xml → 415.
    assert_eq!(
        env.status("PUT", &sel, &att, "<entry uri=\"sip:x@y\"/>"),
        415
    );
    assert_eq!(env.status("PUT", &a, &el, "x"), 415);
    assert_eq!(env.status("PUT", RL, &el, RL_DOC), 415);
    // Methods.
    let o = env.req("POST", RL, &[], "");
    assert_eq!(o.response.status, 405);
    assert_eq!(o.response.header("Allow"), Some("GET, PUT, DELETE"));
    let o = env.req(
        "PUT",
        &format!("{RL}/~~/resource-lists/namespace::*"),
        &[],
        "",
    );
    assert_eq!(o.response.status, 405);
    // 400 for a bad selector, 404 for one that selects nothing.
    assert_eq!(
        env.status(
            "GET",
            &format!("{RL}/~~/resource-lists/list[@name=x]"),
            &[],
            ""
        ),
        400
    );
    assert_eq!(
        env.status("GET", &format!("{RL}/~~/resource-lists/list[9]"), &[], ""),
        404
    );
}

#[test]
fn conflict_conditions() {
    let mut env = Env::new();
    let el = [("Content-Type", "application/xcap-el+xml")];
    let att = [("Content-Type", "application/xcap-att+xml")];
    conflict(
        &env.req("PUT", RL, &[], "<resource-lists"),
        "not-well-formed",
    );
    conflict(
        &env.req(
            "PUT",
            RL,
            &[],
            "<!DOCTYPE x [<!ENTITY a \"b\">]><resource-lists/>",
        ),
        "not-well-formed",
    );
    let latin1 = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"/>";
    conflict(&env.req("PUT", RL, &[], latin1), "not-utf-8");
    conflict(&env.req("PUT", RL, &[], "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"><list><bogus/></list></resource-lists>"), "schema-validation-error");
    let dup = "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"><list name=\"a\"/><list name=\"a\"/></resource-lists>";
    let o = env.req("PUT", RL, &[], dup);
    conflict(&o, "uniqueness-failure");
    assert!(
        body(&o).contains("<exists field=\"/resource-lists/list/@name\"><alt-value>a1</alt-value>"),
        "{}",
        body(&o)
    );
    let dup_entry = "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"><list name=\"a\"><entry uri=\"sip:x@y\"/><entry uri=\"sip:x@y\"/></list></resource-lists>";
    conflict(&env.req("PUT", RL, &[], dup_entry), "uniqueness-failure");
    let abs_ref = "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"><list name=\"a\"><entry-ref ref=\"http://evil/x\"/></list></resource-lists>";
    conflict(&env.req("PUT", RL, &[], abs_ref), "constraint-failure");
    // Element edits against a missing document: no-parent.
    let o = env.req(
        "PUT",
        &format!("{RL}/~~/resource-lists/list"),
        &el,
        "<list/>",
    );
    conflict(&o, "no-parent");
    assert_eq!(env.status("PUT", RL, &[], RL_DOC), 201);
    let o = env.req(
        "PUT",
        &format!("{RL}/~~/resource-lists/list[@name=\"nope\"]/entry"),
        &el,
        "<entry uri=\"sip:z@y\"/>",
    );
    conflict(&o, "no-parent");
    assert!(body(&o).contains("<ancestor>http://127.0.0.1:8080/xcap-root/resource-lists/users/sip:alice@example.com/index/~~/resource-lists</ancestor>"), "{}", body(&o));
    conflict(
        &env.req(
            "PUT",
            &format!("{RL}/~~/resource-lists/list/entry[1]"),
            &el,
            "<entry uri=\"x\"/><entry uri=\"y\"/>",
        ),
        "not-xml-frag",
    );
    conflict(
        &env.req(
            "PUT",
            &format!("{RL}/~~/resource-lists/list/@name"),
            &att,
            "a<b",
        ),
        "not-xml-att-value",
    );
    conflict(
        &env.req(
            "PUT",
            &format!("{RL}/~~/resource-lists/list/entry[@uri=\"sip:q@y\"]"),
            &el,
            "<entry uri=\"sip:other@y\"/>",
        ),
        "cannot-insert",
    );
    conflict(
        &env.req(
            "DELETE",
            &format!("{RL}/~~/resource-lists/list/entry[1]"),
            &[],
            "",
        ),
        "cannot-delete",
    );
    // Schema checked after element edits too: an entry without uri.
    conflict(
        &env.req(
            "PUT",
            &format!("{RL}/~~/resource-lists/list/entry[3]"),
            &el,
            "<entry/>",
        ),
        "schema-validation-error",
    );
    // Uniqueness after an element edit.
    conflict(
        &env.req(
            "PUT",
            &format!("{RL}/~~/resource-lists/list/entry[3]"),
            &el,
            "<entry uri=\"sip:bob@example.com\"/>",
        ),
        "uniqueness-failure",
    );
    // Nothing of the failures was stored.
    assert_eq!(body(&env.req("GET", RL, &[], "")), RL_DOC);
}

#[test]
fn rls_services_unique_across_users() {
    let mut env = Env::new();
    let doc = |uri: &str| {
        format!("<rls-services xmlns=\"urn:ietf:params:xml:ns:rls-services\" xmlns:rl=\"urn:ietf:params:xml:ns:resource-lists\"><service uri=\"{uri}\"><list><rl:entry uri=\"sip:bob@example.com\"/></list><packages><package>presence</package></packages></service></rls-services>")
    };
    assert_eq!(
        env.status(
            "PUT",
            "rls-services/users/sip:alice@example.com/index",
            &[],
            &doc("sip:alice-buddies@example.com")
        ),
        201
    );
    env.user = "bob";
    env.password = "pw2";
    let o = env.req(
        "PUT",
        "rls-services/users/sip:bob@example.com/index",
        &[],
        &doc("sip:alice-buddies@example.com"),
    );
    conflict(&o, "uniqueness-failure");
    assert!(
        body(&o).contains("<alt-value>sip:alice-buddies1@example.com</alt-value>"),
        "{}",
        body(&o)
    );
    assert_eq!(
        env.status(
            "PUT",
            "rls-services/users/sip:bob@example.com/index",
            &[],
            &doc("sip:bob-buddies@example.com")
        ),
        201
    );
    let bad = "<rls-services xmlns=\"urn:ietf:params:xml:ns:rls-services\"><service uri=\"sip:x@example.com\"><resource-list>sip:not-http</resource-list></service></rls-services>";
    conflict(
        &env.req(
            "PUT",
            "rls-services/users/sip:bob@example.com/index",
            &[],
            bad,
        ),
        "constraint-failure",
    );
    let o = env.req("GET", "rls-services/global/index", &[], "");
    assert_eq!(o.response.status, 200);
    assert!(
        body(&o).contains("sip:alice-buddies@example.com")
            && body(&o).contains("sip:bob-buddies@example.com")
    );
    assert_eq!(
        env.req("PUT", "rls-services/global/index", &[], "<x/>")
            .response
            .status,
        403
    );
}

#[test]
fn presence_usages_and_effects() {
    let mut env = Env::new();
    let alice = UserId {
        user: "alice".into(),
        domain: "example.com".into(),
    };
    let pidf = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:alice@example.com\"><tuple id=\"t1\"><status><basic>open</basic></status><note>Hi</note></tuple></presence>";
    let o = env.req(
        "PUT",
        "pidf-manipulation/users/sip:alice@example.com/index",
        &[("Content-Type", "application/pidf+xml")],
        pidf,
    );
    assert_eq!(o.response.status, 201, "{}", body(&o));
    assert_eq!(
        o.effects,
        vec![Effect::PidfManipulationChanged {
            user: alice.clone()
        }]
    );
    let o = env.req(
        "PUT",
        "pidf-manipulation/users/sip:alice@example.com/index/~~/presence/tuple/status/basic",
        &[("Content-Type", "application/xcap-el+xml")],
        "<basic>closed</basic>",
    );
    assert_eq!(o.response.status, 200, "{}", body(&o));
    assert_eq!(
        o.effects,
        vec![Effect::PidfManipulationChanged {
            user: alice.clone()
        }]
    );
    conflict(
        &env.req(
            "PUT",
            "pidf-manipulation/users/sip:alice@example.com/index/~~/presence/tuple/status/basic",
            &[("Content-Type", "application/xcap-el+xml")],
            "<basic>maybe</basic>",
        ),
        "schema-validation-error",
    );
    let rules = "<cr:ruleset xmlns:cr=\"urn:ietf:params:xml:ns:common-policy\" xmlns:pr=\"urn:ietf:params:xml:ns:pres-rules\"><cr:rule id=\"wl\"><cr:conditions><cr:identity><cr:one id=\"sip:bob@example.com\"/></cr:identity></cr:conditions><cr:actions><pr:sub-handling>allow</pr:sub-handling></cr:actions><cr:transformations><pr:provide-services><pr:all-services/></pr:provide-services></cr:transformations></cr:rule></cr:ruleset>";
    for auid in ["pres-rules", "org.openmobilealliance.pres-rules"] {
        let o = env.req(
            "PUT",
            &format!("{auid}/users/sip:alice@example.com/index"),
            &[],
            rules,
        );
        assert_eq!(o.response.status, 201, "{}", body(&o));
        assert_eq!(
            o.effects,
            vec![Effect::PresRulesChanged {
                user: alice.clone()
            }]
        );
        assert_eq!(o.response.status, 201);
        let o = env.req(
            "GET",
            &format!(
                "{auid}/users/sip:alice@example.com/index/~~/ruleset/rule[@id=\"wl\"]/actions"
            ),
            &[],
            "",
        );
        assert_eq!(
            body(&o),
            "<cr:actions><pr:sub-handling>allow</pr:sub-handling></cr:actions>"
        );
    }
    // Bare user name XUI, realm from the default.
    assert_eq!(
        env.status("GET", "pres-rules/users/alice/index", &[], ""),
        200
    );
}

#[test]
fn generated_usages() {
    let mut env = Env::new();
    let o = env.req("GET", "xcap-caps/global/index", &[], "");
    assert_eq!(o.response.status, 200);
    let caps = body(&o);
    for auid in [
        "resource-lists",
        "rls-services",
        "pres-rules",
        "org.openmobilealliance.pres-rules",
        "pidf-manipulation",
        "org.openxcap.watchers",
        "org.openmobilealliance.xcap-directory",
        "test-app",
        "xcap-caps",
    ] {
        assert!(caps.contains(&format!("<auid>{auid}</auid>")), "{auid}");
    }
    assert!(caps.contains("<namespace>urn:ietf:params:xml:ns:resource-lists</namespace>"));
    let et = etag(&o);
    assert_eq!(
        env.status(
            "GET",
            "xcap-caps/global/index",
            &[("If-None-Match", &et)],
            ""
        ),
        304
    );
    assert_eq!(
        body(&env.req(
            "GET",
            "xcap-caps/global/index/~~/xcap-caps/auids/auid[1]",
            &[],
            ""
        )),
        "<auid>xcap-caps</auid>"
    );
    let o = env.req("PUT", "xcap-caps/global/index", &[], "<x/>");
    assert_eq!(
        o.response.status, 403,
        "global documents are not writable by users"
    );
    let o = env.raw(
        "PUT",
        "/xcap-root/xcap-caps/global/index",
        &[],
        "<x/>",
        true,
    );
    assert_eq!(o.response.status, 405);
    assert_eq!(o.response.header("Allow"), Some("GET"));
    let o = env.req(
        "GET",
        "org.openxcap.watchers/users/sip:alice@example.com/index",
        &[],
        "",
    );
    assert_eq!(o.response.status, 200);
    assert!(body(&o).contains("<watcher status=\"pending\">sip:bob@example.com</watcher>"));
    assert_eq!(
        env.req(
            "DELETE",
            "org.openxcap.watchers/users/sip:alice@example.com/index",
            &[],
            ""
        )
        .response
        .status,
        405
    );
    assert_eq!(env.status("PUT", RL, &[], RL_DOC), 201);
    let o = env.req(
        "GET",
        "org.openmobilealliance.xcap-directory/users/sip:alice@example.com/directory.xml",
        &[],
        "",
    );
    assert_eq!(o.response.status, 200);
    assert!(
        body(&o).contains("<folder auid=\"resource-lists\">"),
        "{}",
        body(&o)
    );
    assert!(body(&o).contains(
        "uri=\"http://127.0.0.1:8080/xcap-root/resource-lists/users/sip:alice@example.com/index\""
    ));
}

#[test]
fn test_app_any_namespace_and_hostile_xml() {
    let mut env = Env::new();
    let doc = "<?xml version='1.0' encoding='UTF-8'?>\n<root xmlns=\"test-app\">\n<el1 att=\"first\"/>\n<el1 att=\"second\"/>\n<!-- comment -->\n<el2 att=\"first\"/>\n</root>";
    let path = "test-app/users/sip:alice@example.com/index";
    assert_eq!(env.status("PUT", path, &[], doc), 201);
    let o = env.req(
        "PUT",
        &format!("{path}/~~/root/el1[@att=\"third\"]"),
        &[("Content-Type", "application/xcap-el+xml")],
        "<el1 att=\"third\"/>",
    );
    assert_eq!(o.response.status, 201);
    assert!(
        body(&env.req("GET", path, &[], "")).contains("<el1 att=\"second\"/><el1 att=\"third\"/>")
    );
    let deep = "<a>".repeat(500) + &"</a>".repeat(500);
    assert_eq!(env.req("PUT", path, &[], &deep).response.status, 409);
    let big_name = format!("<{}/>", "n".repeat(10_000));
    assert_eq!(env.req("PUT", path, &[], &big_name).response.status, 409);
    let billion =
        "<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]><lolz>&lol2;</lolz>";
    conflict(&env.req("PUT", path, &[], billion), "not-well-formed");
}

/// A document an older version stored with a character XML forbids (a C0 control in a
/// display name) is read by selector as it is read whole; an edit of it is a conflict that
/// names the character, and rewriting it whole without the character works.
#[test]
fn a_stored_document_with_a_forbidden_character_is_read_by_selector() {
    use xcap::store::{DocKey, DocumentStore, Expect, StoredDoc};
    use xcap::uri::Scope;
    let mut env = Env::new();
    assert_eq!(env.status("PUT", RL, &[], RL_DOC), 201);
    let key = DocKey {
        auid: "resource-lists".into(),
        scope: Scope::User(UserId {
            user: "alice".into(),
            domain: "example.com".into(),
        }),
        path: "index".into(),
    };
    let stored = env.store.get(&key).unwrap().unwrap();
    let old = RL_DOC.replace("<display-name>Bob", "<display-name>Bob\u{1}");
    env.store
        .put(
            &key,
            &Expect::Tag(stored.etag.clone()),
            StoredDoc {
                etag: stored.etag,
                bytes: old.clone().into_bytes(),
            },
        )
        .unwrap();
    let o = env.req("GET", RL, &[], "");
    assert_eq!((o.response.status, body(&o)), (200, old.clone()));
    let o = env.req(
        "GET",
        &format!("{RL}/~~/resource-lists/list/entry%5B1%5D/display-name"),
        &[],
        "",
    );
    assert_eq!(o.response.status, 200, "{}", body(&o));
    assert_eq!(body(&o), "<display-name>Bob\u{1}</display-name>");
    let o = env.req(
        "PUT",
        &format!("{RL}/~~/resource-lists/list/entry%5B2%5D/@uri"),
        &[("Content-Type", "application/xcap-att+xml")],
        "sip:dave@example.com",
    );
    conflict(&o, "not-well-formed");
    assert!(body(&o).contains("character"), "{}", body(&o));
    assert_eq!(env.status("PUT", RL, &[], RL_DOC), 200);
}
