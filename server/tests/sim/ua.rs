//! Simulated user agents: watchers (SUBSCRIBE, answer NOTIFYs, sometimes 481 or silence)
//! and publishers (publish / modify / refresh / remove). Each keeps at most one request of
//! its own outstanding and retransmits it like an RFC 3261 non-INVITE client transaction.
//! Watchers check the per-dialog NOTIFY invariants as NOTIFYs arrive.

use server::core::rng::Rng;
use sip_parser::{parse, Framing, Header, HeaderKind, Limits, Status};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

pub const T1: u64 = 500;
pub const T2: u64 = 4000;

pub fn fnv(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Markers (`<note>` texts) of a PIDF body, sorted.
pub fn markers(body: &[u8]) -> Vec<String> {
    let s = String::from_utf8_lossy(body);
    let mut v: Vec<String> = s
        .split("<note>")
        .skip(1)
        .filter_map(|p| p.split_once("</note>").map(|(m, _)| m.to_string()))
        .collect();
    v.sort();
    v
}

/// A request of ours awaiting its final response.
pub struct ClientTx {
    pub branch: String,
    pub bytes: Vec<u8>,
    pub first_sent: u64,
    next: u64,
    interval: u64,
}

impl ClientTx {
    fn new(now: u64, branch: String, bytes: Vec<u8>) -> ClientTx {
        ClientTx {
            branch,
            bytes,
            first_sent: now,
            next: now + T1,
            interval: T1,
        }
    }
    fn deadline(&self) -> u64 {
        self.next.min(self.first_sent + 64 * T1)
    }
}

/// What a UA wants sent.
pub type Outbox = Vec<(SocketAddr, Vec<u8>)>;

pub struct Parsed {
    pub is_request: bool,
    pub status: u16,
    pub branch: String,
    pub cseq: u32,
    pub call_id: String,
    pub from_tag: String,
    pub to_tag: String,
    pub headers: HashMap<HeaderKind, String>,
    pub body: Vec<u8>,
}

pub fn parse_msg(bytes: &[u8]) -> Option<Parsed> {
    let mut slots = [Header::EMPTY; 64];
    let Ok(Status::Complete(m)) = parse(bytes, &mut slots, Framing::Datagram, &Limits::default())
    else {
        return None;
    };
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut headers = HashMap::new();
    for h in m.headers {
        headers.entry(h.kind).or_insert_with(|| s(h.value));
    }
    Some(Parsed {
        is_request: m.is_request(),
        status: m.status().unwrap_or(0),
        branch: m.via().ok()?.branch.map(s).unwrap_or_default(),
        cseq: m.cseq().ok()?.seq,
        call_id: s(m.call_id().ok()?),
        from_tag: m.from().ok()?.tag().map(s).unwrap_or_default(),
        to_tag: m.to().ok()?.tag().map(s).unwrap_or_default(),
        headers,
        body: m.body.to_vec(),
    })
}

fn response(req: &Parsed, raw: &[u8], code: u16) -> Vec<u8> {
    let mut slots = [Header::EMPTY; 64];
    let Ok(Status::Complete(m)) = parse(raw, &mut slots, Framing::Datagram, &Limits::default())
    else {
        return Vec::new();
    };
    let _ = req;
    let mut out = Vec::new();
    sip_parser::ResponseWriter::new(&mut out, &m, code, "Sim", Some(b"uas")).finish();
    out
}

/// One subscription dialog as the watcher sees it.
#[derive(Default, Debug)]
pub struct Dialog {
    pub call_id: String,
    pub to_tag: String,
    pub cseq: u32,
    pub confirmed: bool,
    /// CSeq → hash of the NOTIFY received with it.
    pub seen: HashMap<u32, u64>,
    pub max_cseq: u32,
    /// When the NOTIFY with `max_cseq` first arrived.
    pub max_cseq_at: u64,
    pub terminated_at: Option<u32>,
    /// CSeq we answered 481: nothing newer may come.
    pub rejected_at: Option<u32>,
    /// CSeqs we decided never to answer.
    pub silent: HashSet<u32>,
    pub last_body: Vec<u8>,
    /// Server-side expiry lies within [lo, hi] (ms).
    pub expires_lo: u64,
    pub expires_hi: u64,
    pub dead: bool,
    /// The server crashed after we answered 481: it may not have seen the answer and
    /// may NOTIFY again (we answer 481 again).
    pub reject_maybe_lost: bool,
    /// The server crashed during this dialog: NOTIFYs it sent before may still arrive
    /// after newer ones from its restored incarnation (stale, never applied).
    pub crashed: bool,
    /// The first CSeq the restored incarnation can use (the restored `local_cseq` plus
    /// `CSEQ_PERSIST_EVERY`): NOTIFYs below it were sent before the last crash (some
    /// arrive after it), and our answer to one of them matches no transaction of the
    /// restored server, which may then NOTIFY (we answer 481 again).
    pub resumed_at: Option<u32>,
}

pub struct Watcher {
    pub addr: SocketAddr,
    pub presentity: usize,
    rng: Rng,
    n: u64,
    pub dialog: Option<Dialog>,
    pub tx: Option<(ClientTx, u32 /* expires asked */)>,
    next_action: u64,
    pub violations: Vec<String>,
    pub notifies: u64,
}

fn request_line(uri: &str) -> String {
    format!("SUBSCRIBE {uri} SIP/2.0\r\n")
}

impl Watcher {
    pub fn new(addr: SocketAddr, presentity: usize, seed: u64, start: u64) -> Watcher {
        Watcher {
            addr,
            presentity,
            rng: Rng::new(seed),
            n: 0,
            dialog: None,
            tx: None,
            next_action: start,
            violations: Vec::new(),
            notifies: 0,
        }
    }

    pub fn next_wakeup(&self, acting: bool) -> Option<u64> {
        let tx = self.tx.as_ref().map(|(t, _)| t.deadline());
        let act = acting.then_some(self.next_action);
        [tx, act].into_iter().flatten().min()
    }

    fn subscribe(&mut self, now: u64, server: SocketAddr, expires: u32) -> (SocketAddr, Vec<u8>) {
        self.n += 1;
        let branch = format!("z9hG4bKw{}x{}", self.addr.ip(), self.n);
        let d = self.dialog.get_or_insert_with(Dialog::default);
        if d.call_id.is_empty() {
            d.call_id = format!("c{}-{}", self.addr.ip(), self.n);
            d.cseq = 0;
        }
        d.cseq += 1;
        let to_tag = if d.to_tag.is_empty() {
            String::new()
        } else {
            format!(";tag={}", d.to_tag)
        };
        let uri = if d.to_tag.is_empty() {
            format!("sip:p{}@example.com", self.presentity)
        } else {
            "sip:127.0.0.1:5060".into()
        };
        let msg = format!(
            "{}Via: SIP/2.0/UDP {};branch={branch}\r\nMax-Forwards: 70\r\nFrom: <sip:w{}@example.com>;tag=wt{}\r\n\
             To: <sip:p{}@example.com>{to_tag}\r\nCall-ID: {}\r\nCSeq: {} SUBSCRIBE\r\nContact: <sip:w@{}>\r\n\
             Event: presence\r\nExpires: {expires}\r\nContent-Length: 0\r\n\r\n",
            request_line(&uri),
            self.addr,
            self.addr.ip(),
            d.call_id,
            self.presentity,
            d.call_id,
            d.cseq,
            self.addr
        );
        let bytes = msg.into_bytes();
        self.tx = Some((ClientTx::new(now, branch, bytes.clone()), expires));
        (server, bytes)
    }

    /// Timers and scheduled behaviour.
    pub fn on_timer(&mut self, now: u64, server: SocketAddr, acting: bool, out: &mut Outbox) {
        if let Some((tx, _)) = self.tx.as_mut() {
            if now >= tx.first_sent + 64 * T1 {
                // Timer F: give up; the dialog's fate is unknown to us: start over later.
                self.tx = None;
                if let Some(d) = self.dialog.as_mut() {
                    d.dead = true;
                }
            } else if now >= tx.next {
                tx.interval = (tx.interval * 2).min(T2);
                tx.next = now + tx.interval;
                out.push((server, tx.bytes.clone()));
            }
        }
        if !acting || now < self.next_action {
            return;
        }
        self.next_action = now + 5_000 + self.rng.below(30_000);
        if self.tx.is_some() {
            return;
        }
        let dead = self
            .dialog
            .as_ref()
            .is_none_or(|d| d.dead || d.terminated_at.is_some() || d.rejected_at.is_some());
        if dead {
            self.dialog = None;
            let e = 60 + self.rng.below(240) as u32;
            out.push(self.subscribe(now, server, e));
            return;
        }
        let d = self.dialog.as_ref().unwrap();
        if !d.confirmed {
            return;
        }
        let roll = self.rng.below(100);
        if roll < 5 {
            out.push(self.subscribe(now, server, 0));
        } else if roll < 15 {
            // Let it expire: do nothing for a while.
            self.next_action = now + 400_000;
        } else if now + 30_000 >= d.expires_lo {
            let e = 60 + self.rng.below(240) as u32;
            out.push(self.subscribe(now, server, e));
        }
    }

    pub fn on_packet(&mut self, now: u64, bytes: &[u8], server: SocketAddr, out: &mut Outbox) {
        let Some(p) = parse_msg(bytes) else {
            self.violations
                .push("unparseable message from the server".into());
            return;
        };
        if p.is_request {
            self.on_notify(now, &p, bytes, server, out);
            return;
        }
        let Some((tx, expires)) = self.tx.as_ref() else {
            return;
        };
        if p.branch != tx.branch || p.status < 200 {
            return;
        }
        let (first_sent, expires) = (tx.first_sent, *expires);
        self.tx = None;
        let Some(d) = self.dialog.as_mut() else {
            return;
        };
        if p.status == 200 {
            if d.to_tag.is_empty() {
                d.to_tag = p.to_tag.clone();
            }
            d.confirmed = true;
            let granted: u64 = p
                .headers
                .get(&HeaderKind::Expires)
                .and_then(|e| e.parse().ok())
                .unwrap_or(0);
            if granted != expires as u64 {
                self.violations
                    .push(format!("asked Expires {expires}, granted {granted}"));
            }
            d.expires_lo = first_sent + granted * 1000;
            d.expires_hi = now + granted * 1000;
        } else {
            d.dead = true;
        }
    }

    fn on_notify(
        &mut self,
        now: u64,
        p: &Parsed,
        raw: &[u8],
        server: SocketAddr,
        out: &mut Outbox,
    ) {
        self.notifies += 1;
        let Some(d) = self.dialog.as_mut().filter(|d| d.call_id == p.call_id) else {
            // An old dialog's NOTIFY (retransmission): answer 481.
            out.push((server, response(p, raw, 481)));
            return;
        };
        if d.to_tag.is_empty() {
            d.to_tag = p.from_tag.clone();
        } else if d.to_tag != p.from_tag {
            // Another dialog sharing our Call-ID (a retransmitted initial SUBSCRIBE the
            // server saw twice, e.g. across a restart): not ours.
            out.push((server, response(p, raw, 481)));
            return;
        }
        let h = fnv(raw);
        let c = p.cseq;
        let name = &d.call_id;
        if let Some(prev) = d.seen.get(&c) {
            if *prev != h {
                self.violations
                    .push(format!("{name}: two different NOTIFYs with CSeq {c}"));
            }
        } else {
            if c < d.max_cseq && !d.crashed {
                self.violations.push(format!(
                    "{name}: NOTIFY CSeq {c} first seen after CSeq {}",
                    d.max_cseq
                ));
            }
            if let Some(t) = d.terminated_at.filter(|t| c > *t) {
                self.violations
                    .push(format!("{name}: NOTIFY CSeq {c} after terminated at {t}"));
            }
            if let Some(t) = d.rejected_at.filter(|t| c > *t && !d.reject_maybe_lost) {
                self.violations
                    .push(format!("{name}: NOTIFY CSeq {c} after our 481 to {t}"));
            }
            d.seen.insert(c, h);
        }
        if c > d.max_cseq {
            d.max_cseq = c;
            d.max_cseq_at = now;
            d.last_body = p.body.clone();
            let state = p
                .headers
                .get(&HeaderKind::SubscriptionState)
                .cloned()
                .unwrap_or_default();
            if state.starts_with("terminated") {
                d.terminated_at = Some(c);
            } else if !state.starts_with("active") {
                self.violations
                    .push(format!("{name}: unexpected Subscription-State {state}"));
            }
            let roll = self.rng.below(1000);
            if roll < 15 && d.terminated_at.is_none() {
                d.rejected_at = Some(c);
                d.reject_maybe_lost |= d.resumed_at.is_some_and(|r| c < r);
            } else if roll < 30 && d.terminated_at.is_none() {
                d.silent.insert(c);
            }
        }
        if d.silent.contains(&c) {
            return;
        }
        let code = if d.rejected_at.is_some_and(|t| t <= c) {
            481
        } else {
            200
        };
        out.push((server, response(p, raw, code)));
    }
}

pub struct Publisher {
    pub addr: SocketAddr,
    pub presentity: usize,
    pub index: usize,
    rng: Rng,
    n: u64,
    pub etag: Option<String>,
    pub marker: Option<String>,
    /// We lost track (a request timed out): the server may hold a ghost publication.
    pub unknown: bool,
    pub expires_lo: u64,
    pub expires_hi: u64,
    pub tx: Option<(
        ClientTx,
        Option<String>, /* marker if accepted */
        bool,           /* removal */
    )>,
    next_action: u64,
    pub violations: Vec<String>,
}

impl Publisher {
    pub fn new(
        addr: SocketAddr,
        presentity: usize,
        index: usize,
        seed: u64,
        start: u64,
    ) -> Publisher {
        Publisher {
            addr,
            presentity,
            index,
            rng: Rng::new(seed),
            n: 0,
            etag: None,
            marker: None,
            unknown: false,
            expires_lo: 0,
            expires_hi: 0,
            tx: None,
            next_action: start,
            violations: Vec::new(),
        }
    }

    pub fn next_wakeup(&self, acting: bool) -> Option<u64> {
        let tx = self.tx.as_ref().map(|(t, _, _)| t.deadline());
        let act = acting.then_some(self.next_action);
        [tx, act].into_iter().flatten().min()
    }

    fn publish(&mut self, now: u64, expires: u32, body: Option<&str>, removal: bool) -> Vec<u8> {
        self.n += 1;
        let branch = format!("z9hG4bKp{}x{}", self.addr.ip(), self.n);
        let if_match = self
            .etag
            .as_ref()
            .map(|e| format!("SIP-If-Match: {e}\r\n"))
            .unwrap_or_default();
        let (ct, body) = match body {
            Some(b) => ("Content-Type: application/pidf+xml\r\n", b.to_string()),
            None => ("", String::new()),
        };
        let msg = format!(
            "PUBLISH sip:p{p}@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {a};branch={branch}\r\nMax-Forwards: 70\r\n\
             From: <sip:p{p}@example.com>;tag=pt{n}\r\nTo: <sip:p{p}@example.com>\r\nCall-ID: pc{ip}-{n}\r\n\
             CSeq: 1 PUBLISH\r\nEvent: presence\r\nExpires: {expires}\r\n{if_match}{ct}Content-Length: {len}\r\n\r\n{body}",
            p = self.presentity,
            a = self.addr,
            n = self.n,
            ip = self.addr.ip(),
            len = body.len()
        );
        let marker = if removal {
            None
        } else if body.is_empty() {
            self.marker.clone()
        } else {
            Some(format!("m{}-{}-{}", self.presentity, self.index, self.n))
        };
        let bytes = msg.into_bytes();
        self.tx = Some((ClientTx::new(now, branch, bytes.clone()), marker, removal));
        bytes
    }

    pub fn on_timer(&mut self, now: u64, server: SocketAddr, acting: bool, out: &mut Outbox) {
        if let Some((tx, _, _)) = self.tx.as_mut() {
            if now >= tx.first_sent + 64 * T1 {
                self.tx = None;
                self.unknown = true;
                self.etag = None;
                self.marker = None;
            } else if now >= tx.next {
                tx.interval = (tx.interval * 2).min(T2);
                tx.next = now + tx.interval;
                out.push((server, tx.bytes.clone()));
            }
        }
        if !acting || now < self.next_action {
            return;
        }
        self.next_action = now + 3_000 + self.rng.below(40_000);
        if self.tx.is_some() {
            return;
        }
        let expires = 60 + self.rng.below(240) as u32;
        let roll = self.rng.below(100);
        let body_for = |n: u64, p: usize, i: usize| {
            format!(
                "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:p{p}@example.com\">\
                 <tuple id=\"t{i}\"><status><basic>open</basic></status><note>m{p}-{i}-{n}</note></tuple></presence>"
            )
        };
        let bytes = if self.etag.is_none() || roll < 50 {
            let b = body_for(self.n + 1, self.presentity, self.index);
            self.publish(now, expires, Some(&b), false)
        } else if roll < 85 {
            self.publish(now, expires, None, false)
        } else {
            self.publish(now, 0, None, true)
        };
        out.push((server, bytes));
    }

    pub fn on_packet(&mut self, now: u64, bytes: &[u8]) {
        let Some(p) = parse_msg(bytes) else {
            self.violations.push("unparseable response".into());
            return;
        };
        let Some((tx, marker, removal)) = self.tx.as_ref() else {
            return;
        };
        if p.branch != tx.branch || p.status < 200 {
            return;
        }
        let (first_sent, marker, removal) = (tx.first_sent, marker.clone(), *removal);
        self.tx = None;
        match p.status {
            200 if removal => {
                self.etag = None;
                self.marker = None;
            }
            200 => {
                let Some(etag) = p.headers.get(&HeaderKind::SipETag) else {
                    self.violations
                        .push("200 to PUBLISH without SIP-ETag".into());
                    return;
                };
                self.etag = Some(etag.clone());
                self.marker = marker;
                let granted: u64 = p
                    .headers
                    .get(&HeaderKind::Expires)
                    .and_then(|e| e.parse().ok())
                    .unwrap_or(0);
                self.expires_lo = first_sent + granted * 1000;
                self.expires_hi = now + granted * 1000;
            }
            412 => {
                // Our publication expired at the server (we refreshed too late).
                if now < self.expires_lo && !self.unknown {
                    self.violations.push(format!(
                        "412 before the publication could have expired ({now} < {})",
                        self.expires_lo
                    ));
                }
                self.etag = None;
                self.marker = None;
            }
            c => self.violations.push(format!("unexpected {c} to PUBLISH")),
        }
    }
}
