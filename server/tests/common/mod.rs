//! Helpers for the end-to-end tests: start the real `herald` binary on fresh loopback ports,
//! talk SIP to it over UDP/TCP with small blocking clients, read its /stats.
//!
//! Everything is bounded in time: every wait has a deadline, UDP requests are retransmitted
//! (the machine is small and shared, datagrams can be late), and the server is killed when
//! the handle drops.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sip_parser::{Framing, Header, Status};

/// Generous: the CI box has 2 cores shared by many processes.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(8);
pub const RETRANSMIT_EVERY: Duration = Duration::from_millis(500);

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// Unique token for tags, branches and Call-IDs.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}{}x{n}x{t:x}", std::process::id())
}

/// A port free for both UDP and TCP on 127.0.0.1 (bound once with port 0, then released).
pub fn free_port_udp_tcp() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)) {
            drop(tcp);
            drop(udp);
            return port;
        }
    }
    panic!("no free UDP+TCP port");
}

pub fn free_tcp_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The running server; killed on drop.
pub struct Server {
    pub child: Child,
    pub sip: SocketAddr,
    pub admin: SocketAddr,
    pub log: std::path::PathBuf,
    /// `--data-dir` of this server.
    pub data_dir: std::path::PathBuf,
    /// Remove `data_dir` on drop (it was created by `start`).
    owns_data_dir: bool,
}

/// A fresh, empty directory under the temp dir (two servers must never share a data dir).
pub fn fresh_data_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("herald-e2e-data-{}", unique("")));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Server {
    /// `herald --shards 2` on fresh ports and a fresh data dir, plus `extra` flags.
    pub fn start(extra: &[&str]) -> Server {
        let dir = fresh_data_dir();
        let mut s = Server::start_in(&dir, extra);
        s.owns_data_dir = true;
        s
    }

    /// Like `start`, on the given data directory (kept on drop: restart tests reuse it).
    pub fn start_in(data_dir: &std::path::Path, extra: &[&str]) -> Server {
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = free_port_udp_tcp();
            let admin_port = free_tcp_port();
            let sip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
            let log = std::env::temp_dir().join(format!("herald-e2e-{}.log", unique("")));
            let log_file = std::fs::File::create(&log).unwrap();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
            if !extra.contains(&"--shards") {
                cmd.args(["--shards", "2"]);
            }
            // XCAP's default port (8080) is shared by every test server: off unless asked.
            if !extra.contains(&"--xcap-listen") {
                cmd.args(["--xcap-listen", "none"]);
            }
            cmd.arg("--no-pin")
                .arg("--listen")
                .arg(sip.to_string())
                .arg("--admin-listen")
                .arg(admin.to_string())
                .args(["--log", "warn"])
                .arg("--data-dir")
                .arg(data_dir)
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log_file));
            let child = cmd.spawn().expect("spawn herald");
            let mut server = Server {
                child,
                sip,
                admin,
                log,
                data_dir: data_dir.to_path_buf(),
                owns_data_dir: false,
            };
            let deadline = Instant::now() + READY_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(status)) = server.child.try_wait() {
                    last_err = format!("herald exited early ({status}): {}", server.log_text());
                    break;
                }
                if server.http_get("/stats").is_some() {
                    return server;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if last_err.is_empty() {
                last_err = format!("herald not ready in time: {}", server.log_text());
            }
        }
        panic!("{last_err}");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Plain HTTP/1.0 GET on the admin listener; None if it does not answer 200.
    pub fn http_get(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect_timeout(&self.admin, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
        let mut resp = String::new();
        s.read_to_string(&mut resp).ok()?;
        let (head, body) = resp.split_once("\r\n\r\n")?;
        if !head.starts_with("HTTP/1.0 200") {
            return None;
        }
        Some(body.to_string())
    }

    /// Totals from `/stats` (`name total per-shard...`).
    pub fn stats(&self) -> HashMap<String, u64> {
        let text = self.http_get("/stats").unwrap_or_default();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                Some((it.next()?.to_string(), it.next()?.parse().ok()?))
            })
            .collect()
    }

    pub fn stat(&self, name: &str) -> u64 {
        self.stats().get(name).copied().unwrap_or(0)
    }

    /// Polls `/stats` until `pred` holds (stats are republished every 250 ms).
    pub fn wait_stats(&self, what: &str, pred: impl Fn(&HashMap<String, u64>) -> bool) {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let s = self.stats();
            if pred(&s) {
                return;
            }
            if Instant::now() > deadline {
                panic!("stats never satisfied `{what}`: {s:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL (a crash): nothing gets a chance to flush.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Runs `herald store <args…> --data-dir <this server's dir>`; returns (success, stdout).
    pub fn store_cmd(&self, args: &[&str]) -> (bool, String) {
        herald_store(&self.data_dir, args)
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let pid = self.child.id() as i32;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// Runs `herald store <args…> --data-dir <dir>`; returns (success, stdout + stderr).
pub fn herald_store(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("store")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run herald store");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.owns_data_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        } else {
            eprintln!(
                "--- herald log ({}) ---\n{}",
                self.log.display(),
                self.log_text()
            );
        }
    }
}

/// One SIP message, owned (parsed with sip-parser, then copied out).
#[derive(Clone, Debug)]
pub struct Msg {
    pub raw: Vec<u8>,
    /// Status code for responses.
    pub code: Option<u16>,
    /// Method for requests.
    pub method: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Msg {
    pub fn parse(bytes: &[u8], framing: Framing) -> Option<(Msg, usize)> {
        let mut slots = vec![Header::EMPTY; 128];
        let limits = sip_parser::Limits::default();
        let m = match sip_parser::parse(bytes, &mut slots, framing, &limits) {
            Ok(Status::Complete(m)) => m,
            _ => return None,
        };
        let len = m.len;
        let msg = Msg {
            raw: bytes[..len].to_vec(),
            code: m.status(),
            method: m
                .method()
                .map(|x| String::from_utf8_lossy(x.as_bytes()).into_owned()),
            headers: m
                .headers
                .iter()
                .map(|h| {
                    (
                        String::from_utf8_lossy(h.name).into_owned(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect(),
            body: m.body.to_vec(),
        };
        Some((msg, len))
    }

    /// First value of a header (full or compact name), case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        let compact = compact_of(name);
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n == c))
            .map(|(_, v)| v.as_str())
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn call_id(&self) -> &str {
        self.header("Call-ID").unwrap_or("")
    }

    pub fn cseq(&self) -> (u32, String) {
        let v = self.header("CSeq").unwrap_or("0 X");
        let mut it = v.split_whitespace();
        let n = it.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        (n, it.next().unwrap_or("").to_string())
    }

    /// `tag=` parameter of a From/To header value.
    pub fn tag_of(&self, header: &str) -> Option<String> {
        let v = self.header(header)?;
        v.split(';')
            .skip(1)
            .map(str::trim)
            .find_map(|p| p.strip_prefix("tag=").map(str::to_string))
    }

    pub fn is_notify(&self) -> bool {
        self.method.as_deref() == Some("NOTIFY")
    }

    /// Value of the Subscription-State header, lower-cased.
    pub fn sub_state(&self) -> String {
        self.header("Subscription-State")
            .unwrap_or("")
            .to_ascii_lowercase()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

fn compact_of(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "call-id" => "i",
        "contact" => "m",
        "content-encoding" => "e",
        "content-length" => "l",
        "content-type" => "c",
        "from" => "f",
        "subject" => "s",
        "supported" => "k",
        "to" => "t",
        "via" => "v",
        "event" => "o",
        "allow-events" => "u",
        "refer-to" => "r",
        _ => return None,
    })
}

/// Builds a response to `req` (copying Via, From, To, Call-ID, CSeq).
pub fn response_to(req: &Msg, code: u16, reason: &str) -> Vec<u8> {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for (n, v) in &req.headers {
        let lower = n.to_ascii_lowercase();
        if ["via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"].contains(&lower.as_str()) {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}

/// Transport of a client.
pub enum Link {
    Udp(UdpSocket),
    Tcp { stream: TcpStream, buf: Vec<u8> },
}

/// A blocking SIP user agent for the tests: sends requests (retransmitting over UDP),
/// collects responses, and answers NOTIFYs automatically with `notify_answer`.
pub struct Client {
    pub link: Link,
    pub server: SocketAddr,
    pub local: SocketAddr,
    /// Code sent back to every NOTIFY (None: don't answer).
    pub notify_answer: Option<u16>,
    pub notifies: VecDeque<Msg>,
    responses: VecDeque<Msg>,
    seen_notify: std::collections::HashSet<(String, u32)>,
}

impl Client {
    pub fn udp(server: SocketAddr) -> Client {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let local = sock.local_addr().unwrap();
        Client {
            link: Link::Udp(sock),
            server,
            local,
            notify_answer: Some(200),
            notifies: VecDeque::new(),
            responses: VecDeque::new(),
            seen_notify: Default::default(),
        }
    }

    pub fn tcp(server: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&server, Duration::from_secs(5)).unwrap();
        Client::tcp_from(stream, server)
    }

    /// Wraps an already connected stream.
    pub fn tcp_from(stream: TcpStream, server: SocketAddr) -> Client {
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let local = stream.local_addr().unwrap();
        Client {
            link: Link::Tcp {
                stream,
                buf: Vec::new(),
            },
            server,
            local,
            notify_answer: Some(200),
            notifies: VecDeque::new(),
            responses: VecDeque::new(),
            seen_notify: Default::default(),
        }
    }

    pub fn transport(&self) -> &'static str {
        match self.link {
            Link::Udp(_) => "UDP",
            Link::Tcp { .. } => "TCP",
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        match &mut self.link {
            Link::Udp(s) => {
                let _ = s.send_to(bytes, self.server);
            }
            Link::Tcp { stream, .. } => {
                let _ = stream.write_all(bytes);
            }
        }
    }

    /// Reads whatever arrives within ~50 ms, sorting NOTIFYs from responses.
    fn pump(&mut self) {
        let mut got: Vec<Msg> = Vec::new();
        match &mut self.link {
            Link::Udp(s) => {
                let mut buf = [0u8; 65_536];
                while let Ok((n, _)) = s.recv_from(&mut buf) {
                    if let Some((m, _)) = Msg::parse(&buf[..n], Framing::Datagram) {
                        got.push(m);
                    }
                    s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
                }
                s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            }
            Link::Tcp { stream, buf } => {
                let mut chunk = [0u8; 16_384];
                if let Ok(n) = stream.read(&mut chunk) {
                    buf.extend_from_slice(&chunk[..n]);
                }
                loop {
                    let skip = buf
                        .iter()
                        .take_while(|&&b| b == b'\r' || b == b'\n')
                        .count();
                    buf.drain(..skip);
                    match Msg::parse(buf, Framing::Stream) {
                        Some((m, len)) => {
                            buf.drain(..len);
                            got.push(m);
                        }
                        None => break,
                    }
                }
            }
        }
        for m in got {
            if m.is_notify() {
                if let Some(code) = self.notify_answer {
                    let resp = response_to(&m, code, if code == 200 { "OK" } else { "Error" });
                    self.send_raw(&resp);
                }
                // Retransmissions of a NOTIFY we already have are answered, not queued twice.
                let key = (m.call_id().to_string(), m.cseq().0);
                if self.seen_notify.insert(key) {
                    self.notifies.push_back(m);
                }
            } else if m.code.is_some() {
                self.responses.push_back(m);
            }
        }
    }

    /// Sends a request and waits for its final response (retransmitting over UDP).
    pub fn request(&mut self, req: &str) -> Msg {
        self.try_request(req)
            .unwrap_or_else(|| panic!("no final response to:\n{req}"))
    }

    pub fn try_request(&mut self, req: &str) -> Option<Msg> {
        self.try_request_within(req, REPLY_TIMEOUT)
    }

    /// Like `try_request`, giving up after `timeout`.
    pub fn try_request_within(&mut self, req: &str, timeout: Duration) -> Option<Msg> {
        let (call_id, cseq) = {
            let (m, _) = Msg::parse(req.as_bytes(), Framing::Datagram)
                .unwrap_or_else(|| panic!("test built an unparseable request:\n{req}"));
            (m.call_id().to_string(), m.cseq())
        };
        let deadline = Instant::now() + timeout;
        let mut next_send = Instant::now();
        let udp = matches!(self.link, Link::Udp(_));
        let mut sent = false;
        while Instant::now() < deadline {
            if !sent || (udp && Instant::now() >= next_send) {
                self.send_raw(req.as_bytes());
                sent = true;
                next_send = Instant::now() + RETRANSMIT_EVERY;
            }
            self.pump();
            if let Some(pos) = self.responses.iter().position(|r| {
                r.call_id() == call_id && r.cseq() == cseq && r.code.is_some_and(|c| c >= 200)
            }) {
                return self.responses.remove(pos);
            }
        }
        None
    }

    /// Next NOTIFY (already answered), waiting up to `timeout`.
    pub fn next_notify(&mut self, timeout: Duration) -> Option<Msg> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(n) = self.notifies.pop_front() {
                return Some(n);
            }
            if Instant::now() >= deadline {
                return None;
            }
            self.pump();
        }
    }

    pub fn expect_notify(&mut self, what: &str) -> Msg {
        self.next_notify(REPLY_TIMEOUT)
            .unwrap_or_else(|| panic!("no NOTIFY ({what})"))
    }

    /// Waits for a NOTIFY satisfying `pred`, skipping others (e.g. an earlier state).
    pub fn expect_notify_where(&mut self, what: &str, pred: impl Fn(&Msg) -> bool) -> Msg {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_notify(left) {
                Some(n) if pred(&n) => return n,
                Some(_) => continue,
                None => panic!("no NOTIFY matching `{what}`"),
            }
        }
    }

    /// Keeps answering for `d`, returns the NOTIFYs that arrived.
    pub fn collect_notifies(&mut self, d: Duration) -> Vec<Msg> {
        let deadline = Instant::now() + d;
        while Instant::now() < deadline {
            self.pump();
        }
        self.notifies.drain(..).collect()
    }

    pub fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch=z9hG4bK{branch};rport",
            self.transport(),
            self.local
        )
    }

    pub fn contact(&self, user: &str) -> String {
        let t = if self.transport() == "TCP" {
            ";transport=tcp"
        } else {
            ""
        };
        format!("<sip:{user}@{}{t}>", self.local)
    }
}

/// A subscription dialog from the watcher's side.
pub struct Dialog {
    pub watcher: String,
    pub presentity: String,
    pub call_id: String,
    pub from_tag: String,
    pub to_tag: Option<String>,
    pub cseq: u32,
    pub event: String,
}

impl Dialog {
    pub fn new(watcher: &str, presentity: &str) -> Dialog {
        Dialog {
            watcher: watcher.into(),
            presentity: presentity.into(),
            call_id: unique("cid"),
            from_tag: unique("ft"),
            to_tag: None,
            cseq: 0,
            event: "presence".into(),
        }
    }

    /// Next SUBSCRIBE of this dialog (initial while `to_tag` is None).
    pub fn subscribe(&mut self, c: &Client, expires: u32) -> String {
        self.cseq += 1;
        let to_tag = self
            .to_tag
            .as_ref()
            .map(|t| format!(";tag={t}"))
            .unwrap_or_default();
        format!(
            "SUBSCRIBE {p} SIP/2.0\r\n\
             Via: {via}\r\n\
             Max-Forwards: 70\r\n\
             From: <{w}>;tag={ft}\r\n\
             To: <{p}>{to_tag}\r\n\
             Call-ID: {cid}\r\n\
             CSeq: {cseq} SUBSCRIBE\r\n\
             Contact: {contact}\r\n\
             Event: {ev}\r\n\
             Accept: application/pidf+xml\r\n\
             Expires: {expires}\r\n\
             Content-Length: 0\r\n\r\n",
            p = self.presentity,
            via = c.via(&unique("b")),
            w = self.watcher,
            ft = self.from_tag,
            cid = self.call_id,
            cseq = self.cseq,
            contact = c.contact("watcher"),
            ev = self.event,
        )
    }

    /// Sends the SUBSCRIBE and records the To-tag of a 2xx.
    pub fn send_subscribe(&mut self, c: &mut Client, expires: u32) -> Msg {
        let req = self.subscribe(c, expires);
        let resp = c.request(&req);
        if resp.code.is_some_and(|x| (200..300).contains(&x)) && self.to_tag.is_none() {
            self.to_tag = resp.tag_of("To");
        }
        resp
    }
}

pub const PIDF_CT: &str = "application/pidf+xml";

/// A small valid PIDF document.
pub fn pidf(entity: &str, tuple: &str, basic: &str, note: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
         <presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"{entity}\">\r\n\
         <tuple id=\"{tuple}\"><status><basic>{basic}</basic></status><note>{note}</note></tuple>\r\n\
         </presence>\r\n"
    )
}

/// A new publication of `p` (600 s, a PIDF with `note`) that must get 200; its ETag.
pub fn publish_ok(c: &mut Client, p: &str, note: &str) -> String {
    let r = c.request(&publish(
        c,
        p,
        600,
        None,
        Some(&pidf(p, "t1", "open", note)),
    ));
    assert_eq!(r.code, Some(200), "{}", r.text());
    r.header("SIP-ETag").expect("SIP-ETag").trim().to_string()
}

/// A PUBLISH request.
pub fn publish(
    c: &Client,
    presentity: &str,
    expires: u32,
    if_match: Option<&str>,
    body: Option<&str>,
) -> String {
    let mut s = format!(
        "PUBLISH {p} SIP/2.0\r\n\
         Via: {via}\r\n\
         Max-Forwards: 70\r\n\
         From: <{p}>;tag={ft}\r\n\
         To: <{p}>\r\n\
         Call-ID: {cid}\r\n\
         CSeq: 1 PUBLISH\r\n\
         Event: presence\r\n\
         Expires: {expires}\r\n",
        p = presentity,
        via = c.via(&unique("b")),
        ft = unique("pt"),
        cid = unique("pcid"),
    );
    if let Some(e) = if_match {
        s.push_str(&format!("SIP-If-Match: {e}\r\n"));
    }
    match body {
        Some(b) => s.push_str(&format!(
            "Content-Type: {PIDF_CT}\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => s.push_str("Content-Length: 0\r\n\r\n"),
    }
    s
}

/// An OPTIONS request.
pub fn options(c: &Client, uri: &str) -> String {
    format!(
        "OPTIONS {uri} SIP/2.0\r\n\
         Via: {via}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:tester@example.com>;tag={ft}\r\n\
         To: <{uri}>\r\n\
         Call-ID: {cid}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n",
        via = c.via(&unique("b")),
        ft = unique("ot"),
        cid = unique("ocid"),
    )
}

/// A presentity AoR (`sip:userN@example.com`) owned by `shard` of `shards`.
pub fn aor_on_shard(prefix: &str, shard: u16, shards: u16) -> String {
    for i in 0..10_000 {
        let uri = format!("sip:{prefix}{i}@example.com");
        let aor = sip_parser::Aor::parse(uri.as_bytes()).expect("test AoR parses");
        if server::core::shard_for(&aor, shards).0 == shard {
            return uri;
        }
    }
    panic!("no AoR for shard {shard}");
}
