//! End-to-end XCAP: the real `herald` binary over real HTTP on loopback, with users added by
//! `herald user add`, two shards, digest authentication, documents on LMDB (durability sync),
//! and a pidf-manipulation PUT reaching a SIP watcher as a NOTIFY.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{aor_on_shard, fresh_data_dir, Client, Dialog, Server, REPLY_TIMEOUT};
use xcap::auth::{self, Algorithm};

const PASSWORD: &str = "s3cret";

/// One HTTP response as read off the wire.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// A keep-alive HTTP/1.1 connection (plain or TLS).
struct Http {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

impl Http {
    fn connect(addr: SocketAddr) -> Http {
        Http {
            stream: Box::new(tcp(addr)),
            buf: Vec::new(),
        }
    }

    /// HTTPS, trusting only `ca_pem` (the server's self-signed certificate).
    fn connect_tls(addr: SocketAddr, ca_pem: &str) -> Http {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let conn = rustls::ClientConnection::new(
            std::sync::Arc::new(cfg),
            "localhost".try_into().unwrap(),
        )
        .unwrap();
        Http {
            stream: Box::new(rustls::StreamOwned::new(conn, tcp(addr))),
            buf: Vec::new(),
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one complete response (Content-Length framed; every herald response has one).
    fn read(&mut self) -> Resp {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let mut lines = head.split("\r\n");
                let status: u16 = lines
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or_else(|| panic!("bad status line in {head:?}"));
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    let body = self.buf[end + 4..end + 4 + len].to_vec();
                    self.buf.drain(..end + 4 + len);
                    return Resp {
                        status,
                        headers,
                        body,
                    };
                }
            }
            assert!(Instant::now() < deadline, "no complete HTTP response");
            let mut chunk = [0u8; 16384];
            let n = self.stream.read(&mut chunk).expect("read response");
            assert!(n > 0, "connection closed before a full response");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let mut s = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (n, v) in headers {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
        s.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = s.into_bytes();
        bytes.extend_from_slice(body);
        self.send_raw(&bytes);
        self.read()
    }
}

/// A user agent doing digest authentication like Blink: challenge once, then reuse the
/// nonce with an increasing nonce count.
struct Agent {
    http: Http,
    user: String,
    password: String,
    alg: Algorithm,
    nonce: Option<(String, String)>,
    nc: u32,
}

impl Agent {
    fn new(addr: SocketAddr, user: &str, alg: Algorithm) -> Agent {
        Agent {
            http: Http::connect(addr),
            user: user.to_string(),
            password: PASSWORD.to_string(),
            alg,
            nonce: None,
            nc: 0,
        }
    }

    fn challenge(&mut self, method: &str, target: &str) -> Resp {
        let r = self.http.request(method, target, &[], b"");
        assert_eq!(r.status, 401, "unauthenticated {method} {target}");
        let name = match self.alg {
            Algorithm::Md5 => "algorithm=MD5",
            Algorithm::Sha256 => "algorithm=SHA-256",
        };
        let ch = r
            .all("WWW-Authenticate")
            .into_iter()
            .find(|c| c.contains(name))
            .unwrap_or_else(|| panic!("no {name} challenge: {r:?}"))
            .to_string();
        let nonce = auth::challenge_nonce(&ch).unwrap();
        let i = ch.find("realm=\"").unwrap() + 7;
        let realm = ch[i..i + ch[i..].find('"').unwrap()].to_string();
        self.nonce = Some((nonce, realm));
        self.nc = 0;
        r
    }

    fn req(&mut self, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        if self.nonce.is_none() {
            self.challenge(method, target);
        }
        let (nonce, realm) = self.nonce.clone().unwrap();
        self.nc += 1;
        let user = self.user.split('@').next().unwrap().to_string();
        let authz = auth::client_digest(
            self.alg,
            &user,
            &realm,
            &self.password,
            method,
            target,
            &nonce,
            "0a4f113b",
            self.nc,
        );
        let mut h = headers.to_vec();
        h.push(("Authorization", &authz));
        self.http.request(method, target, &h, body)
    }
}

fn herald_user_add(dir: &Path, user: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--shards", "2", "user", "add", user, "--password", PASSWORD])
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run herald user add");
    assert!(
        out.status.success(),
        "herald user add {user}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn herald_user_import(dir: &Path, list: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--shards", "2", "user", "import"])
        .arg(list)
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run herald user import")
}

/// `herald user import` of a migrated `subscriber` table: one user with a password (both
/// digests work), one with only its MD5 HA1 (challenged with MD5 only), one commit per
/// shard, users owned by both shards.
#[test]
fn imported_users_authenticate_with_password_or_md5_ha1() {
    let dir = fresh_data_dir();
    let alice = user_of(&aor_on_shard("alice", 0, 2));
    let bob = user_of(&aor_on_shard("bob", 1, 2));
    let bob_name = bob.split('@').next().unwrap();
    let ha1 = auth::ha1_md5(bob_name, "example.com", PASSWORD);
    let list = dir.join("users.txt");
    std::fs::write(
        &list,
        format!("# user@domain, password or ha1=\n{alice}\t{PASSWORD}\n\n{bob},ha1={ha1}\n"),
    )
    .unwrap();
    let out = herald_user_import(&dir, &list);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("2 user(s) imported (1 from an MD5 HA1"),
        "{said}"
    );
    // A malformed line names itself and imports nothing.
    std::fs::write(&list, "carol@example.com\tpw\nnot-a-user pw\n").unwrap();
    let out = herald_user_import(&dir, &list);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));

    let (_server, addr) = start_xcap(&dir, &[]);
    for (user, alg) in [
        (&alice, Algorithm::Md5),
        (&alice, Algorithm::Sha256),
        (&bob, Algorithm::Md5),
    ] {
        let mut a = Agent::new(addr, user, alg);
        let r = a.req("GET", &rl_path(user), &[], b"");
        assert_eq!(r.status, 404, "{user} {alg:?}: authenticated");
    }
    // Bob has no SHA-256 HA1: he is challenged with MD5 only (a client offered SHA-256
    // picks it, as curl does, and could never get in); Alice with both.
    let mut raw = Http::connect(addr);
    let ch = raw.request("GET", &rl_path(&bob), &[], b"");
    assert_eq!(ch.status, 401);
    let offered = ch.all("WWW-Authenticate");
    assert!(
        !offered.is_empty() && offered.iter().all(|c| c.contains("algorithm=MD5")),
        "{offered:?}"
    );
    let ch = raw.request("GET", &rl_path(&alice), &[], b"");
    assert_eq!(ch.all("WWW-Authenticate").len(), 2);
    let mut a = Agent::new(addr, &user_of("sip:carol@example.com"), Algorithm::Md5);
    assert_eq!(
        a.req("GET", &rl_path("carol@example.com"), &[], b"").status,
        401
    );
}

/// Starts herald with XCAP on a fresh port; returns the server and the XCAP address.
fn start_xcap(dir: &Path, extra: &[&str]) -> (Server, SocketAddr) {
    start_xcap_scheme(dir, "http", extra)
}

fn start_xcap_scheme(dir: &Path, scheme: &str, extra: &[&str]) -> (Server, SocketAddr) {
    let port = common::free_tcp_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let listen = addr.to_string();
    let root = format!("{scheme}://{addr}/xcap-root");
    let mut args = vec![
        "--xcap-listen",
        &listen,
        "--xcap-root",
        &root,
        "--default-realm",
        "example.com",
    ];
    args.extend_from_slice(extra);
    let server = Server::start_in(dir, &args);
    // The XCAP listener is up when the shards are ready; wait for it to answer anyway.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "XCAP listener never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, addr)
}

fn user_of(aor: &str) -> String {
    aor.trim_start_matches("sip:").to_string()
}

const RL_DOC: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- buddies -->\n<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\">\n  <list name=\"friends\">\n    <entry uri=\"sip:bob@example.com\"><display-name>Bob</display-name></entry>\n  </list>\n</resource-lists>\n";

fn rl_path(user: &str) -> String {
    format!("/xcap-root/resource-lists/users/sip:{user}/index")
}

#[test]
fn digest_auth_documents_preconditions_and_errors_on_two_shards() {
    let dir = fresh_data_dir();
    // One user owned by each shard: every request runs on its owner, wherever it arrived.
    let alice = user_of(&aor_on_shard("alice", 0, 2));
    let bob = user_of(&aor_on_shard("bob", 1, 2));
    herald_user_add(&dir, &alice);
    herald_user_add(&dir, &bob);
    let (server, addr) = start_xcap(&dir, &[]);

    // 401 with one Digest challenge per algorithm (SHA-256 first), even for unknown AUIDs.
    let mut raw = Http::connect(addr);
    let r = raw.request("GET", &rl_path(&alice), &[], b"");
    assert_eq!(r.status, 401);
    let ch = r.all("WWW-Authenticate");
    assert_eq!(ch.len(), 2, "{ch:?}");
    assert!(ch[0].starts_with("Digest ") && ch[0].contains("algorithm=SHA-256"));
    assert!(ch[1].contains("algorithm=MD5") && ch[1].contains("qop=\"auth\""));
    assert!(ch[0].contains("realm=\"example.com\""));
    let r = raw.request(
        "GET",
        "/xcap-root/no-such-auid/users/sip:x@example.com/index",
        &[],
        b"",
    );
    assert_eq!(r.status, 401);

    for (user, alg) in [(&alice, Algorithm::Md5), (&bob, Algorithm::Sha256)] {
        let mut a = Agent::new(addr, user, alg);
        let path = rl_path(user);
        let r = a.req("GET", &path, &[], b"");
        assert_eq!(r.status, 404, "authenticated GET of a missing document");
        // PUT creates (201), replaces (200); GET gives the same bytes and the ETag.
        let r = a.req(
            "PUT",
            &path,
            &[("Content-Type", "application/resource-lists+xml")],
            RL_DOC.as_bytes(),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let e1 = r.header("ETag").unwrap().to_string();
        let r = a.req(
            "PUT",
            &path,
            &[("Content-Type", "application/resource-lists+xml")],
            RL_DOC.as_bytes(),
        );
        assert_eq!(r.status, 200);
        let e2 = r.header("ETag").unwrap().to_string();
        assert_ne!(e1, e2, "a new ETag after every PUT");
        let r = a.req("GET", &path, &[], b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), RL_DOC);
        assert_eq!(
            r.header("Content-Type"),
            Some("application/resource-lists+xml")
        );
        assert_eq!(r.header("ETag"), Some(e2.as_str()));
        // Preconditions.
        assert_eq!(
            a.req("PUT", &path, &[("If-Match", &e1)], RL_DOC.as_bytes())
                .status,
            412
        );
        let r = a.req("GET", &path, &[("If-None-Match", &e2)], b"");
        assert_eq!(r.status, 304);
        assert_eq!(a.req("GET", &path, &[("If-Match", &e2)], b"").status, 200);
        // Wrong password: 401 again.
        let mut wrong = Agent::new(addr, user, alg);
        wrong.password = "nope".into();
        assert_eq!(wrong.req("GET", &path, &[], b"").status, 401);
    }

    let mut a = Agent::new(addr, &alice, Algorithm::Md5);
    // A replayed request (same nonce count) gets a stale challenge; the uri= of the
    // Authorization header must name the request target.
    let path = rl_path(&alice);
    assert_eq!(a.req("GET", &path, &[], b"").status, 200);
    let (nonce, realm) = a.nonce.clone().unwrap();
    let user = alice.split('@').next().unwrap();
    let authz = auth::client_digest(
        Algorithm::Md5,
        user,
        &realm,
        PASSWORD,
        "GET",
        &path,
        &nonce,
        "0a4f113b",
        a.nc,
    );
    let r = a
        .http
        .request("GET", &path, &[("Authorization", &authz)], b"");
    assert_eq!(r.status, 401, "replay accepted");
    assert!(
        r.all("WWW-Authenticate")
            .iter()
            .all(|c| c.contains("stale=true")),
        "{r:?}"
    );
    a.nc += 1;
    let authz = auth::client_digest(
        Algorithm::Md5,
        user,
        &realm,
        PASSWORD,
        "GET",
        &rl_path(&bob),
        &nonce,
        "0a4f113b",
        a.nc,
    );
    assert_eq!(
        a.http
            .request("GET", &path, &[("Authorization", &authz)], b"")
            .status,
        401
    );
    assert_eq!(
        a.req("GET", &path, &[], b"").status,
        200,
        "next count is fine"
    );
    // Another user's document: 403 (after successful authentication).
    assert_eq!(a.req("GET", &rl_path(&bob), &[], b"").status, 403);
    assert_eq!(
        a.req("PUT", &rl_path(&bob), &[], RL_DOC.as_bytes()).status,
        403
    );

    // Elements: create 201, GET it back, replace 200, DELETE 200, then 404.
    let path = rl_path(&alice);
    let sel = format!("{path}/~~/resource-lists/list%5B@name=%22friends%22%5D/entry%5B@uri=%22sip:carol@example.com%22%5D");
    let el = [("Content-Type", "application/xcap-el+xml")];
    let r = a.req("PUT", &sel, &el, b"<entry uri=\"sip:carol@example.com\"/>");
    assert_eq!(r.status, 201, "{}", r.text());
    let r = a.req("GET", &sel, &[], b"");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "<entry uri=\"sip:carol@example.com\"/>")
    );
    assert_eq!(r.header("Content-Type"), Some("application/xcap-el+xml"));
    let r = a.req(
        "PUT",
        &sel,
        &el,
        b"<entry uri=\"sip:carol@example.com\"><display-name>Carol</display-name></entry>",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Element PUT with a generic type: 415.
    assert_eq!(
        a.req(
            "PUT",
            &sel,
            &[("Content-Type", "text/plain")],
            b"<entry uri=\"sip:carol@example.com\"/>"
        )
        .status,
        415
    );
    // Attributes: GET, PUT (the list's name), GET back.
    let att_sel = format!("{path}/~~/resource-lists/list%5B@name=%22friends%22%5D/@name");
    let r = a.req("GET", &att_sel, &[], b"");
    assert_eq!((r.status, r.text().as_str()), (200, "friends"));
    assert_eq!(r.header("Content-Type"), Some("application/xcap-att+xml"));
    let att = [("Content-Type", "application/xcap-att+xml")];
    let r = a.req("PUT", &att_sel, &att, b"friends");
    assert_eq!(r.status, 200, "{}", r.text());
    // Element DELETE (a child element, then the entry created above).
    let dn = format!("{path}/~~/resource-lists/list%5B@name=%22friends%22%5D/entry%5B@uri=%22sip:bob@example.com%22%5D/display-name");
    assert_eq!(a.req("DELETE", &dn, &[], b"").status, 200);
    assert_eq!(a.req("GET", &dn, &[], b"").status, 404);
    assert_eq!(a.req("DELETE", &sel, &[], b"").status, 200);
    assert_eq!(a.req("GET", &sel, &[], b"").status, 404);
    // Attribute DELETE (the list's optional name), then 404 for it.
    assert_eq!(a.req("DELETE", &att_sel, &[], b"").status, 200);
    assert_eq!(a.req("GET", &att_sel, &[], b"").status, 404);
    assert_eq!(
        a.req(
            "GET",
            &format!("{path}/~~/resource-lists/list/@name"),
            &[],
            b""
        )
        .status,
        404
    );
    // The document keeps its comment and declaration through the splices.
    let r = a.req("GET", &path, &[], b"");
    assert!(
        r.text()
            .starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- buddies -->"),
        "{}",
        r.text()
    );

    // 409 with an xcap-error body for a schema violation; nothing stored.
    let bad = "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"><list><bogus/></list></resource-lists>";
    let other = format!("/xcap-root/resource-lists/users/sip:{alice}/other");
    let r = a.req("PUT", &other, &[], bad.as_bytes());
    assert_eq!(r.status, 409);
    assert_eq!(r.header("Content-Type"), Some("application/xcap-error+xml"));
    assert!(
        r.text().contains("<schema-validation-error"),
        "{}",
        r.text()
    );
    assert_eq!(a.req("GET", &other, &[], b"").status, 404);
    // 405 with Allow for a method not allowed, and for PUT to a generated document.
    let r = a.req("POST", &path, &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, PUT, DELETE"));
    // Users never write the global tree.
    let r = a.req("PUT", "/xcap-root/xcap-caps/global/index", &[], b"<x/>");
    assert_eq!(r.status, 403, "{}", r.text());
    // Global xcap-caps (runs on shard 0) lists the usages.
    let r = a.req("GET", "/xcap-root/xcap-caps/global/index", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("pidf-manipulation"));
    // DELETE of the whole document, then 404.
    let e = a
        .req("GET", &path, &[], b"")
        .header("ETag")
        .unwrap()
        .to_string();
    assert_eq!(a.req("DELETE", &path, &[("If-Match", &e)], b"").status, 200);
    assert_eq!(a.req("GET", &path, &[], b"").status, 404);
    // What an operator reads in /stats: requests by method, responses by status, summed
    // over the shards that answered them.
    server.wait_stats("xcap counters", |st| {
        let at_least = |name: &str, n: u64| st.get(name).copied().unwrap_or(0) >= n;
        at_least("xcap.connections_accepted", 4)
            && at_least("xcap.requests_delete", 1)
            && at_least("xcap.requests_put", 6)
            && at_least("xcap.requests_other", 1)
            && at_least("xcap.responses_2xx", 8)
            && at_least("xcap.responses_304", 2)
            && at_least("xcap.responses_401", 4)
            && at_least("xcap.responses_403", 1)
            && at_least("xcap.responses_404", 3)
            && at_least("xcap.responses_409", 1)
            && at_least("xcap.responses_412", 2)
            && at_least("xcap.responses_4xx_other", 1)
            && st.get("xcap.responses_5xx") == Some(&0)
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pipelining_keep_alive_trusted_peer_and_restart_keeps_documents() {
    let dir = fresh_data_dir();
    let carol = user_of(&aor_on_shard("carol", 1, 2));
    let dave = user_of(&aor_on_shard("dave", 0, 2));
    let (mut server, addr) = start_xcap(&dir, &["--xcap-trusted-peers", "127.0.0.1/32"]);
    // Trusted peer: no Authorization needed, any user's documents.
    let mut h = Http::connect(addr);
    let mut etags = Vec::new();
    for u in [&carol, &dave] {
        let r = h.request("PUT", &rl_path(u), &[], RL_DOC.as_bytes());
        assert_eq!(r.status, 201, "{}", r.text());
        etags.push(r.header("ETag").unwrap().to_string());
    }
    // Pipelining on one keep-alive connection: three requests in one write, answered in
    // order (the two users live on different shards).
    let mut batch = Vec::new();
    for u in [&carol, &dave, &carol] {
        batch.extend_from_slice(
            format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", rl_path(u)).as_bytes(),
        );
    }
    batch.extend_from_slice(b"GET /xcap-root/resource-lists/users/sip:nobody@example.com/index HTTP/1.1\r\nHost: x\r\n\r\n");
    h.send_raw(&batch);
    for (i, want) in [&etags[0], &etags[1], &etags[0]].into_iter().enumerate() {
        let r = h.read();
        assert_eq!(r.status, 200, "pipelined response {i}");
        assert_eq!(
            r.header("ETag"),
            Some(want.as_str()),
            "pipelined response {i} out of order"
        );
        assert_eq!(r.text(), RL_DOC);
    }
    assert_eq!(h.read().status, 404);
    // A generated document is read-only, also for a trusted peer: 405 with Allow.
    let r = h.request("PUT", "/xcap-root/xcap-caps/global/index", &[], b"<x/>");
    assert_eq!(r.status, 405, "{}", r.text());
    assert_eq!(r.header("Allow"), Some("GET"));
    // Connection: close is honoured.
    h.send_raw(
        format!(
            "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            rl_path(&dave)
        )
        .as_bytes(),
    );
    assert_eq!(h.read().status, 200);
    let mut rest = Vec::new();
    let _ = h.stream.read_to_end(&mut rest);
    assert!(rest.is_empty());

    // Durability sync: a 2xx means on disk. SIGKILL, restart, same bytes and ETags.
    server.kill9();
    drop(server);
    let (server, addr) = start_xcap(&dir, &["--xcap-trusted-peers", "127.0.0.1/32"]);
    let mut h = Http::connect(addr);
    for (u, e) in [(&carol, &etags[0]), (&dave, &etags[1])] {
        let r = h.request("GET", &rl_path(u), &[], b"");
        assert_eq!(r.status, 200, "document of {u} lost in the restart");
        assert_eq!(r.text(), RL_DOC);
        assert_eq!(r.header("ETag"), Some(e.as_str()));
        // And a write after the restart gets an ETag never seen before.
        let r = h.request("PUT", &rl_path(u), &[("If-Match", e)], RL_DOC.as_bytes());
        assert_eq!(r.status, 200);
        assert!(!etags.contains(&r.header("ETag").unwrap().to_string()));
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pidf_manipulation_put_notifies_sip_watcher() {
    let dir = fresh_data_dir();
    let erin_aor = aor_on_shard("erin", 1, 2);
    let erin = user_of(&erin_aor);
    herald_user_add(&dir, &erin);
    let (server, addr) = start_xcap(&dir, &[]);
    // A watcher subscribes over UDP (to whichever shard the kernel picks; SIP routes it).
    let mut c = Client::udp(server.sip);
    let mut d = Dialog::new("sip:watcher@example.com", &erin_aor);
    let r = d.send_subscribe(&mut c, 600);
    assert_eq!(r.code, Some(200), "{}", r.text());
    c.expect_notify("initial NOTIFY");

    // Erin's softphone stores hard state over XCAP (digest-authenticated).
    let pidf = common::pidf(&erin_aor, "xcap1", "open", "Out to lunch (XCAP)");
    let mut a = Agent::new(addr, &erin, Algorithm::Sha256);
    let path = format!("/xcap-root/pidf-manipulation/users/sip:{erin}/index");
    let r = a.req(
        "PUT",
        &path,
        &[("Content-Type", "application/pidf+xml")],
        pidf.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let n = c.expect_notify_where("NOTIFY with the XCAP PIDF", |n| {
        n.body_str().contains("Out to lunch (XCAP)")
    });
    assert!(
        n.body_str().contains("<basic>open</basic>"),
        "{}",
        n.body_str()
    );
    assert!(n.sub_state().starts_with("active"));

    // The watcher shows up in org.openxcap.watchers.
    let r = a.req(
        "GET",
        &format!("/xcap-root/org.openxcap.watchers/users/sip:{erin}/index"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(r.text().contains("sip:watcher@example.com"), "{}", r.text());

    // DELETE removes that state: the next NOTIFY no longer carries it.
    assert_eq!(a.req("DELETE", &path, &[], b"").status, 200);
    c.expect_notify_where("NOTIFY after the DELETE", |n| {
        !n.body_str().contains("Out to lunch (XCAP)")
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn https_root_with_durability_none_uses_data_dir_users() {
    let dir = fresh_data_dir();
    let frank = user_of(&aor_on_shard("frank", 0, 2));
    herald_user_add(&dir, &frank);
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let (cert_s, key_s) = (cert.display().to_string(), key.display().to_string());
    let (server, addr) = start_xcap_scheme(
        &dir,
        "https",
        &[
            "--tls-cert",
            &cert_s,
            "--tls-key",
            &key_s,
            "--durability",
            "none",
        ],
    );
    let ca = ck.cert.pem();
    // Over TLS the challenge offers Basic too (after the two Digest ones).
    let mut h = Http::connect_tls(addr, &ca);
    let path = rl_path(&frank);
    let r = h.request("GET", &path, &[], b"");
    assert_eq!(r.status, 401);
    let ch = r.all("WWW-Authenticate");
    assert_eq!(ch.len(), 3, "{ch:?}");
    assert!(ch[2].starts_with("Basic "));
    // Basic with the user added to the data dir, documents in memory.
    use base64_engine::encode;
    let basic = format!(
        "Basic {}",
        encode(&format!("{}:{PASSWORD}", frank.split('@').next().unwrap()))
    );
    let auth = [("Authorization", basic.as_str())];
    assert_eq!(
        h.request("PUT", &path, &auth, RL_DOC.as_bytes()).status,
        201
    );
    let r = h.request("GET", &path, &auth, b"");
    assert_eq!((r.status, r.text()), (200, RL_DOC.to_string()));
    // Digest works over TLS as well.
    let mut a = Agent::new(addr, &frank, Algorithm::Sha256);
    a.http = Http::connect_tls(addr, &ca);
    assert_eq!(a.req("GET", &path, &[], b"").status, 200);
    // Plain HTTP on the TLS port gets nothing useful (the handshake fails).
    let mut plain = tcp(addr);
    let _ = plain.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!String::from_utf8_lossy(&got).contains("HTTP/1.1 200"));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Minimal standard base64 (the test needs one Basic header).
mod base64_engine {
    pub fn encode(s: &str) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let b = s.as_bytes();
        let mut out = String::new();
        for c in b.chunks(3) {
            let n = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= c.len() {
                    out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

/// Percent-encodes the selector characters clients usually escape (`[`, `]`, `"`).
fn pct(sel: &str) -> String {
    sel.replace('[', "%5B")
        .replace(']', "%5D")
        .replace('"', "%22")
}

/// A 409 with an `application/xcap-error+xml` body naming `tag`.
fn assert_conflict(r: &Resp, tag: &str) {
    assert_eq!(r.status, 409, "{tag}: {}", r.text());
    assert_eq!(
        r.header("Content-Type"),
        Some("application/xcap-error+xml"),
        "{tag}"
    );
    assert!(
        r.text().contains("<xcap-error") && r.text().contains(&format!("<{tag}")),
        "{tag} not in {}",
        r.text()
    );
}

const TA_DOC: &str = "<?xml version='1.0' encoding='UTF-8'?>\n<root xmlns=\"test-app\">\n<el1 att=\"first\"/>\n<el1 att=\"second\"/>\n<!-- comment -->\n<el2 att=\"first\"/>\n</root>";

const EL: (&str, &str) = ("Content-Type", "application/xcap-el+xml");
const ATT: (&str, &str) = ("Content-Type", "application/xcap-att+xml");

fn rls_doc(service: &str) -> String {
    format!("<rls-services xmlns=\"urn:ietf:params:xml:ns:rls-services\" xmlns:rl=\"urn:ietf:params:xml:ns:resource-lists\"><service uri=\"{service}\"><list><rl:entry uri=\"sip:bob@example.com\"/></list><packages><package>presence</package></packages></service></rls-services>")
}

const PRES_RULES: &str = "<cr:ruleset xmlns:cr=\"urn:ietf:params:xml:ns:common-policy\" xmlns:pr=\"urn:ietf:params:xml:ns:pres-rules\"><cr:rule id=\"wl\"><cr:conditions><cr:identity><cr:one id=\"sip:bob@example.com\"/></cr:identity></cr:conditions><cr:actions><pr:sub-handling>allow</pr:sub-handling></cr:actions><cr:transformations><pr:provide-services><pr:all-services/></pr:provide-services></cr:transformations></cr:rule></cr:ruleset>";

#[test]
fn conflict_bodies_usages_namespaces_continue_and_chunked_trusted() {
    let dir = fresh_data_dir();
    // Two users on different shards: rls-services uniqueness is checked across shards.
    let carol = user_of(&aor_on_shard("carol", 1, 2));
    let dave = user_of(&aor_on_shard("dave", 0, 2));
    let (server, addr) = start_xcap(&dir, &["--xcap-trusted-peers", "127.0.0.1/32"]);
    let mut h = Http::connect(addr);
    let rl = rl_path(&carol);

    // Document PUTs refused before anything exists.
    assert_conflict(
        &h.request("PUT", &rl, &[], b"<resource-lists"),
        "not-well-formed",
    );
    let latin1 = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"/>";
    assert_conflict(&h.request("PUT", &rl, &[], latin1.as_bytes()), "not-utf-8");
    // Element edit of a missing document: no-parent.
    assert_conflict(
        &h.request(
            "PUT",
            &format!("{rl}/~~/resource-lists/list"),
            &[EL],
            b"<list/>",
        ),
        "no-parent",
    );
    // Uniqueness within one document, with <exists field=…> and an alternative.
    let dup = "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"><list name=\"a\"/><list name=\"a\"/></resource-lists>";
    let r = h.request("PUT", &rl, &[], dup.as_bytes());
    assert_conflict(&r, "uniqueness-failure");
    assert!(
        r.text()
            .contains("<exists field=\"/resource-lists/list/@name\"><alt-value>a1</alt-value>"),
        "{}",
        r.text()
    );
    let dup_entry = "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"><list name=\"a\"><entry uri=\"sip:x@y\"/><entry uri=\"sip:x@y\"/></list></resource-lists>";
    let r = h.request("PUT", &rl, &[], dup_entry.as_bytes());
    assert_conflict(&r, "uniqueness-failure");
    assert!(r.text().contains("<exists field=\""), "{}", r.text());
    let abs_ref = "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"><list name=\"a\"><entry-ref ref=\"http://evil/x\"/></list></resource-lists>";
    assert_conflict(
        &h.request("PUT", &rl, &[], abs_ref.as_bytes()),
        "constraint-failure",
    );
    assert_eq!(
        h.request("GET", &rl, &[], b"").status,
        404,
        "nothing stored"
    );

    // Element and attribute conflicts against a stored document.
    assert_eq!(h.request("PUT", &rl, &[], RL_DOC.as_bytes()).status, 201);
    let r = h.request(
        "PUT",
        &pct(&format!(
            "{rl}/~~/resource-lists/list[@name=\"nope\"]/entry"
        )),
        &[EL],
        b"<entry uri=\"sip:z@y\"/>",
    );
    assert_conflict(&r, "no-parent");
    assert!(
        r.text().contains(&format!(
            "<ancestor>http://{addr}/xcap-root/resource-lists/users/sip:{carol}/index/~~/resource-lists</ancestor>"
        )),
        "{}",
        r.text()
    );
    let entry1 = format!("{rl}/~~/resource-lists/list/entry%5B1%5D");
    assert_conflict(
        &h.request(
            "PUT",
            &entry1,
            &[EL],
            b"<entry uri=\"sip:x@y\"/><entry uri=\"sip:y@y\"/>",
        ),
        "not-xml-frag",
    );
    assert_conflict(
        &h.request("PUT", &entry1, &[EL], b"<entry uri=\"sip:\xff@y\"/>"),
        "not-utf-8",
    );
    assert_conflict(
        &h.request(
            "PUT",
            &format!("{rl}/~~/resource-lists/list/@name"),
            &[ATT],
            b"a<b",
        ),
        "not-xml-att-value",
    );
    // The body does not match the selector's predicate: cannot-insert.
    assert_conflict(
        &h.request(
            "PUT",
            &pct(&format!(
                "{rl}/~~/resource-lists/list/entry[@uri=\"sip:q@y\"]"
            )),
            &[EL],
            b"<entry uri=\"sip:other@y\"/>",
        ),
        "cannot-insert",
    );
    // Uniqueness after an element edit.
    assert_conflict(
        &h.request(
            "PUT",
            &format!("{rl}/~~/resource-lists/list/entry%5B2%5D"),
            &[EL],
            b"<entry uri=\"sip:bob@example.com\"/>",
        ),
        "uniqueness-failure",
    );
    let r = h.request("GET", &rl, &[], b"");
    assert_eq!(
        (r.status, r.text()),
        (200, RL_DOC.to_string()),
        "no failure stored"
    );

    // Namespace bindings: application/xcap-ns+xml.
    let r = h.request(
        "GET",
        &format!("{rl}/~~/resource-lists/list/namespace::*"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("application/xcap-ns+xml"));
    assert_eq!(
        r.text(),
        "<list xmlns=\"urn:ietf:params:xml:ns:resource-lists\"/>"
    );

    // Selector characters sent raw (as many clients do) work too.
    let r = h.request(
        "GET",
        &format!("{rl}/~~/resource-lists/list[@name=\"friends\"]/@name"),
        &[],
        b"",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "friends"));

    // test-app: any namespace, no schema; positional insertion rules (§8.2.3) and
    // cannot-delete.
    let ta = format!("/xcap-root/test-app/users/sip:{dave}/index");
    assert_eq!(h.request("PUT", &ta, &[], TA_DOC.as_bytes()).status, 201);
    let r = h.request("GET", &ta, &[], b"");
    assert_eq!((r.status, r.text()), (200, TA_DOC.to_string()));
    let other = format!("/xcap-root/test-app/users/sip:{dave}/other");
    let any = "<foo xmlns=\"urn:example:anything\"><bar baz=\"1\"/></foo>";
    assert_eq!(h.request("PUT", &other, &[], any.as_bytes()).status, 201);
    assert_eq!(h.request("GET", &other, &[], b"").text(), any);
    assert_conflict(
        &h.request(
            "PUT",
            &pct(&format!("{ta}/~~/root/el1[4][@att=\"third\"]")),
            &[EL],
            b"<el1 att=\"third\"/>",
        ),
        "cannot-insert",
    );
    let third = pct(&format!("{ta}/~~/root/el1[3][@att=\"third\"]"));
    let r = h.request("PUT", &third, &[EL], b"<el1 att=\"third\"/>");
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(h
        .request("GET", &ta, &[], b"")
        .text()
        .contains("<el1 att=\"second\"/><el1 att=\"third\"/>"));
    assert_eq!(h.request("DELETE", &third, &[], b"").status, 200);
    assert_eq!(h.request("GET", &ta, &[], b"").text(), TA_DOC);
    assert_conflict(
        &h.request("DELETE", &format!("{ta}/~~/root/el1%5B1%5D"), &[], b""),
        "cannot-delete",
    );
    assert_conflict(
        &h.request("DELETE", &format!("{ta}/~~/root"), &[], b""),
        "cannot-delete",
    );

    // rls-services: valid PUT/GET; service URIs unique across users (and shards).
    let rls = |u: &str| format!("/xcap-root/rls-services/users/sip:{u}/index");
    let shared = rls_doc("sip:shared-buddies@example.com");
    let r = h.request(
        "PUT",
        &rls(&carol),
        &[("Content-Type", "application/rls-services+xml")],
        shared.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = h.request("GET", &rls(&carol), &[], b"");
    assert_eq!((r.status, r.text()), (200, shared.clone()));
    assert_eq!(
        r.header("Content-Type"),
        Some("application/rls-services+xml")
    );
    let r = h.request("PUT", &rls(&dave), &[], shared.as_bytes());
    assert_conflict(&r, "uniqueness-failure");
    assert!(
        r.text()
            .contains("<alt-value>sip:shared-buddies1@example.com</alt-value>"),
        "{}",
        r.text()
    );
    let own = rls_doc("sip:dave-buddies@example.com");
    assert_eq!(
        h.request("PUT", &rls(&dave), &[], own.as_bytes()).status,
        201
    );
    let bad = "<rls-services xmlns=\"urn:ietf:params:xml:ns:rls-services\"><service uri=\"sip:x@example.com\"><resource-list>sip:not-http</resource-list></service></rls-services>";
    assert_conflict(
        &h.request("PUT", &rls(&dave), &[], bad.as_bytes()),
        "constraint-failure",
    );
    let r = h.request("GET", "/xcap-root/rls-services/global/index", &[], b"");
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("sip:shared-buddies@example.com")
            && r.text().contains("sip:dave-buddies@example.com"),
        "{}",
        r.text()
    );

    // xcap-directory lists the user's documents.
    let r = h.request(
        "GET",
        &format!(
            "/xcap-root/org.openmobilealliance.xcap-directory/users/sip:{carol}/directory.xml"
        ),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for auid in ["resource-lists", "rls-services"] {
        assert!(
            r.text().contains(&format!("<folder auid=\"{auid}\">")),
            "{auid}: {}",
            r.text()
        );
    }
    assert!(
        r.text().contains(&format!("uri=\"http://{addr}{rl}\"")),
        "{}",
        r.text()
    );
    let r = h.request(
        "GET",
        &format!("/xcap-root/org.openmobilealliance.xcap-directory/users/sip:{dave}/directory.xml"),
        &[],
        b"",
    );
    assert!(
        r.text().contains("<folder auid=\"test-app\">"),
        "{}",
        r.text()
    );
    assert!(r.text().contains(&format!("uri=\"http://{addr}{other}\"")));

    // Expect: 100-continue: the interim response comes before the body is sent.
    let doc2 = format!("/xcap-root/test-app/users/sip:{dave}/doc2");
    let body = b"<x xmlns=\"t\"/>";
    h.send_raw(
        format!(
            "PUT {doc2} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let r = h.read();
    assert_eq!(r.status, 100, "{r:?}");
    h.send_raw(body);
    let r = h.read();
    assert_eq!(r.status, 201, "{}", r.text());

    // A chunked request body (two chunks), pipelined with a GET on the same connection.
    let doc3 = format!("/xcap-root/test-app/users/sip:{dave}/doc3");
    let (a, b) = TA_DOC.split_at(20);
    let mut req = format!(
        "PUT {doc3} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    req.push_str(&format!("GET {doc3} HTTP/1.1\r\nHost: x\r\n\r\n"));
    h.send_raw(req.as_bytes());
    let r = h.read();
    assert_eq!(r.status, 201, "{}", r.text());
    let r = h.read();
    assert_eq!((r.status, r.text()), (200, TA_DOC.to_string()));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn digest_pres_rules_oma_pres_rules_and_rls_services() {
    let dir = fresh_data_dir();
    let gina = user_of(&aor_on_shard("gina", 0, 2));
    let hank = user_of(&aor_on_shard("hank", 1, 2));
    herald_user_add(&dir, &gina);
    herald_user_add(&dir, &hank);
    let (server, addr) = start_xcap(&dir, &[]);
    for (user, alg) in [(&gina, Algorithm::Md5), (&hank, Algorithm::Sha256)] {
        let mut a = Agent::new(addr, user, alg);
        for auid in ["pres-rules", "org.openmobilealliance.pres-rules"] {
            let path = format!("/xcap-root/{auid}/users/sip:{user}/index");
            let r = a.req(
                "PUT",
                &path,
                &[("Content-Type", "application/auth-policy+xml")],
                PRES_RULES.as_bytes(),
            );
            assert_eq!(r.status, 201, "{auid}: {}", r.text());
            let r = a.req("GET", &path, &[], b"");
            assert_eq!(
                (r.status, r.text()),
                (200, PRES_RULES.to_string()),
                "{auid}"
            );
            assert_eq!(
                r.header("Content-Type"),
                Some("application/auth-policy+xml")
            );
            let r = a.req(
                "GET",
                &pct(&format!("{path}/~~/ruleset/rule[@id=\"wl\"]/actions")),
                &[],
                b"",
            );
            assert_eq!(
                (r.status, r.text().as_str()),
                (
                    200,
                    "<cr:actions><pr:sub-handling>allow</pr:sub-handling></cr:actions>"
                ),
                "{auid}"
            );
            // Schema: a ruleset with an unknown element is refused.
            let r = a.req(
                "PUT",
                &path,
                &[],
                b"<cr:ruleset xmlns:cr=\"urn:ietf:params:xml:ns:common-policy\"><cr:bogus/></cr:ruleset>",
            );
            assert_conflict(&r, "schema-validation-error");
            assert_conflict(&a.req("PUT", &path, &[], b"<cr:ruleset"), "not-well-formed");
        }
        // Bare user name XUI, realm from --default-realm.
        let bare = user.split('@').next().unwrap();
        assert_eq!(
            a.req(
                "GET",
                &format!("/xcap-root/pres-rules/users/{bare}/index"),
                &[],
                b""
            )
            .status,
            200
        );
        // rls-services with digest: service URIs unique across the two users.
        let rls = format!("/xcap-root/rls-services/users/sip:{user}/index");
        let doc = rls_doc("sip:digest-buddies@example.com");
        let r = a.req("PUT", &rls, &[], doc.as_bytes());
        if *user == gina {
            assert_eq!(r.status, 201, "{}", r.text());
            let r = a.req("GET", &rls, &[], b"");
            assert_eq!((r.status, r.text()), (200, doc));
        } else {
            assert_conflict(&r, "uniqueness-failure");
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stored document that cannot be read (a disk fault) is served as absent: its user
/// gets 404 and can write it anew, and the other users of the shard are not affected. Two
/// faults: bytes that fail validation, and a valid record whose ETag is no longer a tag (a
/// CR LF in it would otherwise split the HTTP response); `herald store check` names both.
#[test]
fn a_damaged_document_is_absent_until_written_again() {
    let malformed_tag = store::encode_record(&store::XcapRecord {
        etag: b"e1\r\nX-Injected: 1".to_vec(),
        doc: RL_DOC.as_bytes().to_vec(),
        updated_at: store::UnixMillis(1),
    });
    let cases: [(&str, &[u8], &str); 2] = [
        (
            "fails validation",
            b"damaged",
            "corrupt record in table `xcap`",
        ),
        ("malformed ETag", &malformed_tag, "malformed ETag"),
    ];
    for (what, stored, reported) in cases {
        let dir = fresh_data_dir();
        let carol = user_of(&aor_on_shard("carol", 1, 2));
        let erin = user_of(&aor_on_shard("erin", 1, 2));
        let trusted = ["--xcap-trusted-peers", "127.0.0.1/32"];
        let (mut server, addr) = start_xcap(&dir, &trusted);
        let mut h = Http::connect(addr);
        for u in [&carol, &erin] {
            let r = h.request("PUT", &rl_path(u), &[], RL_DOC.as_bytes());
            assert_eq!(r.status, 201, "{what}: {}", r.text());
        }
        assert!(server.stop().is_some_and(|s| s.success()), "clean stop");
        drop(server);
        {
            let st = store::Store::open(
                &store::layout::shard_dir(&dir, 1),
                &store::StoreOptions::default(),
            )
            .unwrap();
            let key: Vec<u8> = {
                let r = st.read_txn().unwrap();
                let mut it = st.iter_xcap(&r).unwrap();
                let keys: Vec<Vec<u8>> = it
                    .by_ref()
                    .map(|i| i.unwrap().0)
                    .filter(|k| k.user.windows(5).any(|w| w == b"carol"))
                    .map(|k| store::RecordKey::to_vec(&k).unwrap())
                    .collect();
                assert_eq!(keys.len(), 1);
                keys.into_iter().next().unwrap()
            };
            let k = <store::XcapKey as store::RecordKey>::decode(&key).unwrap();
            st.write(|s, w| s.debug_put_raw_xcap(w, k, stored)).unwrap();
        }
        let (ok, out) = common::herald_store(&dir, &["check"]);
        assert!(
            !ok && out.contains(reported),
            "{what}: store check said {out}"
        );
        // `cleanup --unreadable` deletes it (on a copy: the server below must meet it).
        let copy = fresh_data_dir();
        let cp = Command::new("cp")
            .arg("-a")
            .arg(dir.join("."))
            .arg(&copy)
            .status()
            .unwrap();
        assert!(cp.success());
        let (ok, out) = common::herald_store(&copy, &["cleanup", "--unreadable"]);
        assert!(ok && out.contains("deleted 1 unreadable"), "{what}: {out}");
        let (ok, out) = common::herald_store(&copy, &["check"]);
        assert!(ok, "{what}: after cleanup, store check said {out}");
        let _ = std::fs::remove_dir_all(&copy);
        let (server, addr) = start_xcap(&dir, &trusted);
        let mut h = Http::connect(addr);
        let r = h.request("GET", &rl_path(&carol), &[], b"");
        assert_eq!(r.status, 404, "{what}");
        assert_eq!(
            h.request("GET", &rl_path(&erin), &[], b"").status,
            200,
            "{what}"
        );
        let r = h.request("PUT", &rl_path(&carol), &[], RL_DOC.as_bytes());
        assert_eq!(r.status, 201, "{what}: {}", r.text());
        let r = h.request("GET", &rl_path(&carol), &[], b"");
        assert_eq!((r.status, r.text()), (200, RL_DOC.to_string()), "{what}");
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A CR LF percent-encoded into the XUI's domain (the digest realm) or into the
/// `xcap-root@realm` realm used to reach the 401's `WWW-Authenticate` header, where it
/// added a header of the client's choosing. Such a URI is now refused: an untrusted client
/// is challenged in the default realm (authentication comes before URI errors), a trusted
/// one gets 400.
#[test]
fn a_line_break_in_the_xui_or_realm_gets_400_not_a_split_response() {
    let dir = fresh_data_dir();
    let (server, addr) = start_xcap(&dir, &[]);
    let mut h = Http::connect(addr);
    let r = h.request(
        "GET",
        "/xcap-root/resource-lists/users/sip:alice@example.com/index",
        &[],
        b"",
    );
    assert_eq!(r.status, 401, "a plain XUI is challenged");
    for target in [
        "/xcap-root/resource-lists/users/sip:alice@example.com%0d%0aX-Injected:%201/index",
        "/xcap-root@example.com%0d%0aX-Injected:%201/resource-lists/users/alice/index",
    ] {
        let r = h.request("GET", target, &[], b"");
        assert_eq!(r.status, 401, "{target}");
        assert!(
            r.headers.iter().all(|(n, v)| !format!("{n}: {v}")
                .to_ascii_lowercase()
                .contains("x-injected")),
            "{target}: {:?}",
            r.headers
        );
    }
    drop(server);
    let (server, addr) = start_xcap(&dir, &["--xcap-trusted-peers", "127.0.0.1/32"]);
    let mut h = Http::connect(addr);
    let r = h.request(
        "GET",
        "/xcap-root/resource-lists/users/sip:alice@example.com%0d%0aX-Injected:%201/index",
        &[],
        b"",
    );
    assert_eq!(r.status, 400, "trusted peer: {}", r.text());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
