//! SIP message builders writing straight into reused buffers (no `format!` on the hot path).

use std::net::SocketAddr;

use crate::wire::{classify, tag_param, Lines, Name};

/// Marker planted in PIDF notes: `hl-ts:<ns since the run's epoch>` so a watcher can time
/// PUBLISH→NOTIFY without any state shared between threads.
pub const STAMP: &[u8] = b"hl-ts:";

pub const USER_AGENT: &[u8] = b"herald-load";

/// Appends the decimal form of `v`.
pub fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

fn push_addr(out: &mut Vec<u8>, a: &SocketAddr) {
    match a {
        SocketAddr::V4(v4) => {
            let o = v4.ip().octets();
            for (i, b) in o.iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_u64(out, u64::from(*b));
            }
        }
        SocketAddr::V6(v6) => {
            out.push(b'[');
            out.extend_from_slice(v6.ip().to_string().as_bytes());
            out.push(b']');
        }
    }
    out.push(b':');
    push_u64(out, u64::from(a.port()));
}

/// A user name made of a prefix and a number (`user42`), written without allocating.
#[derive(Clone, Copy, Debug)]
pub struct User<'a> {
    pub prefix: &'a [u8],
    pub n: u64,
}

impl User<'_> {
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.prefix);
        push_u64(out, self.n);
    }
}

fn push_uri(out: &mut Vec<u8>, user: &User, domain: &[u8]) {
    out.extend_from_slice(b"sip:");
    user.write(out);
    out.push(b'@');
    out.extend_from_slice(domain);
}

/// Identifiers that make a transaction and a dialog ours and routable back to its call.
#[derive(Clone, Copy, Debug)]
pub struct Ids {
    pub run: u32,
    pub thread: u32,
    pub slot: u32,
    pub gen: u32,
}

impl Ids {
    /// `<thread>.<slot>.<gen>.<run>@hl`: the receiving thread finds the call by index.
    pub fn write_call_id(&self, out: &mut Vec<u8>) {
        push_u64(out, self.thread.into());
        out.push(b'.');
        push_u64(out, self.slot.into());
        out.push(b'.');
        push_u64(out, self.gen.into());
        out.push(b'.');
        push_u64(out, self.run.into());
        out.extend_from_slice(b"@hl");
    }

    pub fn parse_call_id(cid: &[u8]) -> Option<Ids> {
        let cid = cid.strip_suffix(b"@hl")?;
        let mut parts = cid.split(|&c| c == b'.');
        let mut next = || -> Option<u32> {
            let p = parts.next()?;
            if p.is_empty() || p.len() > 10 || !p.iter().all(u8::is_ascii_digit) {
                return None;
            }
            p.iter()
                .try_fold(0u64, |a, &c| Some(a * 10 + u64::from(c - b'0')))
                .and_then(|v| u32::try_from(v).ok())
        };
        let thread = next()?;
        let slot = next()?;
        let gen = next()?;
        let run = next()?;
        Some(Ids {
            run,
            thread,
            slot,
            gen,
        })
    }
}

/// Method of an outgoing request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Subscribe,
    Publish,
    Options,
}

impl Method {
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Method::Subscribe => b"SUBSCRIBE",
            Method::Publish => b"PUBLISH",
            Method::Options => b"OPTIONS",
        }
    }
}

/// Everything a request needs; built by the engine per transaction.
#[derive(Clone, Copy, Debug)]
pub struct Req<'a> {
    pub method: Method,
    /// Request-URI and To user (the presentity, or the target for OPTIONS).
    pub target: User<'a>,
    /// From user (watcher / publisher).
    pub from: User<'a>,
    pub domain: &'a [u8],
    pub ids: Ids,
    pub cseq: u32,
    /// Remote tag once the dialog exists (in-dialog SUBSCRIBE).
    pub to_tag: Option<&'a [u8]>,
    /// Our socket: Via sent-by and Contact (NOTIFYs come back here).
    pub local: SocketAddr,
    pub expires: Option<u32>,
    pub if_match: Option<&'a [u8]>,
    /// PIDF note stamp (PUBLISH with a body); `None` for a bodiless PUBLISH (refresh).
    pub pidf_stamp: Option<u64>,
}

/// Appends the PIDF document for `entity` carrying `stamp`. The tuple id names the run:
/// servers aggregating several publications of one presentity keep one tuple per id, so
/// publications left by earlier runs must not share ours.
pub fn write_pidf(out: &mut Vec<u8>, entity: &User, domain: &[u8], run: u32, stamp: u64) {
    out.extend_from_slice(
        b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"",
    );
    push_uri(out, entity, domain);
    out.extend_from_slice(b"\"><tuple id=\"hl");
    push_u64(out, run.into());
    out.extend_from_slice(b"\"><status><basic>open</basic></status><note>");
    out.extend_from_slice(STAMP);
    push_u64(out, stamp);
    out.extend_from_slice(b"</note></tuple></presence>\r\n");
}

/// Appends one request. `scratch` holds the body while its length is computed.
pub fn write_request(out: &mut Vec<u8>, scratch: &mut Vec<u8>, r: &Req) {
    out.extend_from_slice(r.method.as_bytes());
    out.push(b' ');
    push_uri(out, &r.target, r.domain);
    out.extend_from_slice(b" SIP/2.0\r\nVia: SIP/2.0/UDP ");
    push_addr(out, &r.local);
    out.extend_from_slice(b";rport;branch=z9hG4bK");
    r.ids.write_call_id_branch(out);
    out.push(b'.');
    push_u64(out, r.cseq.into());
    out.extend_from_slice(b"\r\nMax-Forwards: 70\r\nFrom: <");
    push_uri(out, &r.from, r.domain);
    out.extend_from_slice(b">;tag=f");
    push_u64(out, r.ids.slot.into());
    out.push(b'x');
    push_u64(out, r.ids.gen.into());
    out.extend_from_slice(b"\r\nTo: <");
    push_uri(out, &r.target, r.domain);
    out.push(b'>');
    if let Some(t) = r.to_tag {
        out.extend_from_slice(b";tag=");
        out.extend_from_slice(t);
    }
    out.extend_from_slice(b"\r\nCall-ID: ");
    r.ids.write_call_id(out);
    out.extend_from_slice(b"\r\nCSeq: ");
    push_u64(out, r.cseq.into());
    out.push(b' ');
    out.extend_from_slice(r.method.as_bytes());
    out.extend_from_slice(b"\r\nUser-Agent: herald-load\r\n");
    match r.method {
        Method::Subscribe => {
            out.extend_from_slice(b"Contact: <sip:");
            r.from.write(out);
            out.push(b'@');
            push_addr(out, &r.local);
            out.extend_from_slice(b">\r\nEvent: presence\r\nAccept: application/pidf+xml\r\n");
        }
        Method::Publish => out.extend_from_slice(b"Event: presence\r\n"),
        Method::Options => out.extend_from_slice(b"Accept: application/sdp\r\n"),
    }
    if let Some(e) = r.expires {
        out.extend_from_slice(b"Expires: ");
        push_u64(out, e.into());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(m) = r.if_match {
        out.extend_from_slice(b"SIP-If-Match: ");
        out.extend_from_slice(m);
        out.extend_from_slice(b"\r\n");
    }
    match r.pidf_stamp {
        Some(stamp) => {
            scratch.clear();
            write_pidf(scratch, &r.target, r.domain, r.ids.run, stamp);
            out.extend_from_slice(b"Content-Type: application/pidf+xml\r\nContent-Length: ");
            push_u64(out, scratch.len() as u64);
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(scratch);
        }
        None => out.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
    }
}

impl Ids {
    fn write_call_id_branch(&self, out: &mut Vec<u8>) {
        push_u64(out, self.run.into());
        out.push(b'.');
        push_u64(out, self.thread.into());
        out.push(b'.');
        push_u64(out, self.slot.into());
        out.push(b'.');
        push_u64(out, self.gen.into());
    }
}

/// Appends a response to the request in `req`: copies its Via, From, To, Call-ID and CSeq
/// lines (RFC 3261 §8.2.6.2); adds `;tag=<to_tag>` to To when it has none and one is given.
/// Returns false (and appends nothing) if the request lacks one of those headers.
pub fn write_response(
    out: &mut Vec<u8>,
    req: &[u8],
    code: u16,
    reason: &[u8],
    to_tag: Option<&[u8]>,
) -> bool {
    let start = out.len();
    out.extend_from_slice(b"SIP/2.0 ");
    push_u64(out, code.into());
    out.push(b' ');
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
    let Some(lines) = Lines::new(req) else {
        out.truncate(start);
        return false;
    };
    let mut seen = 0u8;
    for (name, value, line) in lines {
        let bit = match classify(name) {
            Name::Via => 1,
            Name::From => 2,
            Name::To => 4,
            Name::CallId => 8,
            Name::CSeq => 16,
            _ => continue,
        };
        seen |= bit;
        if bit == 4 && tag_param(value).is_none() {
            if let Some(t) = to_tag {
                let end = line.len()
                    - line
                        .iter()
                        .rev()
                        .take_while(|c| c.is_ascii_whitespace())
                        .count();
                out.extend_from_slice(&line[..end]);
                out.extend_from_slice(b";tag=");
                out.extend_from_slice(t);
                out.extend_from_slice(b"\r\n");
                continue;
            }
        }
        out.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    if seen != 31 {
        out.truncate(start);
        return false;
    }
    out.extend_from_slice(b"Server: herald-load\r\nContent-Length: 0\r\n\r\n");
    true
}

/// Appends the NOTIFY a server sends for a new subscription (used by `herald-echo --notify`
/// so the subscribe scenario can be exercised without a presence server). `contact` is the
/// subscriber's address taken from the datagram's source.
pub fn write_notify_for(
    out: &mut Vec<u8>,
    sub: &[u8],
    local: &SocketAddr,
    contact: &SocketAddr,
    to_tag: &[u8],
) -> bool {
    let Some(lines) = Lines::new(sub) else {
        return false;
    };
    let (mut from, mut to, mut cid, mut expires) = (None, None, None, None);
    for (name, value, _) in lines {
        match classify(name) {
            Name::From => from = Some(value),
            Name::To => to = Some(value),
            Name::CallId => cid = Some(value),
            Name::Other if name.eq_ignore_ascii_case(b"expires") => expires = Some(value),
            _ => {}
        }
    }
    let (Some(from), Some(to), Some(cid)) = (from, to, cid) else {
        return false;
    };
    let terminated = expires == Some(&b"0"[..]);
    out.extend_from_slice(b"NOTIFY sip:");
    push_addr(out, contact);
    out.extend_from_slice(b" SIP/2.0\r\nVia: SIP/2.0/UDP ");
    push_addr(out, local);
    out.extend_from_slice(b";branch=z9hG4bKecho\r\nMax-Forwards: 70\r\nFrom: ");
    out.extend_from_slice(to);
    if tag_param(to).is_none() {
        out.extend_from_slice(b";tag=");
        out.extend_from_slice(to_tag);
    }
    out.extend_from_slice(b"\r\nTo: ");
    out.extend_from_slice(from);
    out.extend_from_slice(b"\r\nCall-ID: ");
    out.extend_from_slice(cid);
    out.extend_from_slice(b"\r\nCSeq: 1 NOTIFY\r\nEvent: presence\r\nSubscription-State: ");
    if terminated {
        out.extend_from_slice(b"terminated;reason=timeout");
    } else {
        out.extend_from_slice(b"active;expires=600");
    }
    out.extend_from_slice(b"\r\nContact: <sip:");
    push_addr(out, local);
    out.extend_from_slice(b">\r\nContent-Length: 0\r\n\r\n");
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_parser::{Framing, Header, HeaderKind, Limits, Status};

    fn ids() -> Ids {
        Ids {
            run: 77,
            thread: 1,
            slot: 42,
            gen: 3,
        }
    }

    fn req(method: Method) -> Req<'static> {
        Req {
            method,
            target: User {
                prefix: b"user",
                n: 7,
            },
            from: User {
                prefix: b"user",
                n: 6,
            },
            domain: b"example.com",
            ids: ids(),
            cseq: 2,
            to_tag: None,
            local: "127.0.0.1:40000".parse().unwrap(),
            expires: Some(600),
            if_match: None,
            pidf_stamp: None,
        }
    }

    fn check<F: FnOnce(&sip_parser::Message)>(buf: &[u8], f: F) {
        let mut slots = [Header::EMPTY; 32];
        match sip_parser::parse(buf, &mut slots, Framing::Datagram, &Limits::default()) {
            Ok(Status::Complete(m)) => {
                assert_eq!(m.len, buf.len(), "whole datagram consumed");
                f(&m)
            }
            Ok(Status::Partial) => panic!("partial: {}", String::from_utf8_lossy(buf)),
            Err(e) => panic!("{e}: {}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn call_id_round_trip() {
        let mut b = Vec::new();
        ids().write_call_id(&mut b);
        let back = Ids::parse_call_id(&b).unwrap();
        assert_eq!((back.run, back.thread, back.slot, back.gen), (77, 1, 42, 3));
        assert!(Ids::parse_call_id(b"1.2.3@hl").is_none());
        assert!(Ids::parse_call_id(b"a.2.3.4@hl").is_none());
        assert!(Ids::parse_call_id(b"1.2.3.4@x").is_none());
    }

    #[test]
    fn subscribe_parses_back() {
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        let mut r = req(Method::Subscribe);
        r.to_tag = Some(b"srvtag");
        write_request(&mut out, &mut scratch, &r);
        check(&out, |m| {
            assert_eq!(m.method(), Some(sip_parser::Method::Subscribe));
            assert_eq!(m.request_uri(), Some(&b"sip:user7@example.com"[..]));
            assert_eq!(m.cseq().unwrap().seq, 2);
            assert_eq!(m.expires().unwrap(), Some(600));
            assert_eq!(m.event().unwrap().unwrap().package, b"presence");
            assert_eq!(m.to().unwrap().tag(), Some(&b"srvtag"[..]));
            assert_eq!(m.from().unwrap().tag(), Some(&b"f42x3"[..]));
            let c = m.contact().unwrap().unwrap();
            assert_eq!(c.addr.uri, b"sip:user6@127.0.0.1:40000");
            let cid = m.call_id().unwrap();
            assert_eq!(Ids::parse_call_id(cid).unwrap().slot, 42);
            let via = m.via().unwrap();
            assert_eq!(via.port, Some(40000));
            assert!(via.branch.unwrap().starts_with(b"z9hG4bK"));
            assert!(m.body.is_empty());
        });
        // Our own scanner agrees.
        let s = crate::wire::scan(&out).unwrap();
        assert_eq!(s.cseq, 2);
        assert_eq!(s.to_tag, Some(&b"srvtag"[..]));
    }

    #[test]
    fn publish_with_body_parses_back() {
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        let mut r = req(Method::Publish);
        r.if_match = Some(b"etag-1");
        r.pidf_stamp = Some(123_456_789);
        write_request(&mut out, &mut scratch, &r);
        check(&out, |m| {
            assert_eq!(m.method(), Some(sip_parser::Method::Publish));
            assert_eq!(m.sip_if_match(), Some(&b"etag-1"[..]));
            let ct = m.content_type().unwrap().unwrap();
            assert_eq!(
                (ct.type_, ct.subtype),
                (&b"application"[..], &b"pidf+xml"[..])
            );
            assert_eq!(m.content_length().unwrap(), Some(m.body.len()));
            assert_eq!(crate::wire::body_stamp(m.body), Some(123_456_789));
            assert!(m.body.ends_with(b"</presence>\r\n"));
            assert!(memchr::memmem::find(m.body, b"<tuple id=\"hl77\">").is_some());
        });
    }

    #[test]
    fn options_and_refresh_parse_back() {
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        write_request(&mut out, &mut scratch, &req(Method::Options));
        check(&out, |m| {
            assert_eq!(m.method(), Some(sip_parser::Method::Options));
            assert_eq!(m.header(HeaderKind::MaxForwards), Some(&b"70"[..]));
        });
        out.clear();
        let mut r = req(Method::Publish);
        r.if_match = Some(b"e");
        write_request(&mut out, &mut scratch, &r);
        check(&out, |m| {
            assert_eq!(m.content_length().unwrap(), Some(0));
            assert!(m.body.is_empty());
        });
    }

    #[test]
    fn response_copies_dialog_headers_and_adds_tag() {
        let (mut sub, mut scratch) = (Vec::new(), Vec::new());
        write_request(&mut sub, &mut scratch, &req(Method::Subscribe));
        let mut out = Vec::new();
        assert!(write_response(&mut out, &sub, 200, b"OK", Some(b"echo1")));
        check(&out, |m| {
            assert_eq!(m.status(), Some(200));
            assert_eq!(m.to().unwrap().tag(), Some(&b"echo1"[..]));
            assert_eq!(m.cseq().unwrap().method, sip_parser::Method::Subscribe);
            assert_eq!(m.via().unwrap().port, Some(40000));
        });
        let s = crate::wire::scan(&out).unwrap();
        assert_eq!(s.start, crate::wire::Start::Response { code: 200 });
        assert!(!write_response(
            &mut out,
            b"SIP/2.0 200 OK\r\n\r\n",
            200,
            b"OK",
            None
        ));
    }

    #[test]
    fn echo_notify_parses_back() {
        let (mut sub, mut scratch) = (Vec::new(), Vec::new());
        write_request(&mut sub, &mut scratch, &req(Method::Subscribe));
        let mut out = Vec::new();
        let local = "127.0.0.1:5060".parse().unwrap();
        let contact = "127.0.0.1:40000".parse().unwrap();
        assert!(write_notify_for(&mut out, &sub, &local, &contact, b"t9"));
        check(&out, |m| {
            assert_eq!(m.method(), Some(sip_parser::Method::Notify));
            assert_eq!(m.from().unwrap().tag(), Some(&b"t9"[..]));
            assert_eq!(m.to().unwrap().tag(), Some(&b"f42x3"[..]));
            let ss = m.subscription_state().unwrap().unwrap();
            assert_eq!(ss.state, sip_parser::SubState::Active);
        });
    }
}
