//! What the generator needs from an incoming datagram: routing (Call-ID, CSeq), dialog
//! tags, PUBLISH entity tags, and the timestamp we planted in PIDF bodies.
//!
//! Incoming messages are read with `sip-parser` (herald's own parser, so the generator
//! exercises it too). `Lines` is a plain header-line walker used to build responses by
//! copying lines verbatim (RFC 3261 §8.2.6.2), which needs no interpretation at all.

use memchr::memmem;

/// Request or response start line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start<'a> {
    Request { method: &'a [u8] },
    Response { code: u16 },
}

/// The fields of one incoming message the generator acts on.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub start: Start<'a>,
    pub call_id: &'a [u8],
    pub cseq: u32,
    pub cseq_method: &'a [u8],
    pub from_tag: Option<&'a [u8]>,
    pub to_tag: Option<&'a [u8]>,
    pub etag: Option<&'a [u8]>,
    /// `Subscription-State: terminated` (NOTIFY that ends a subscription).
    pub terminated: bool,
    pub body: &'a [u8],
}

impl Incoming<'_> {
    pub fn is_request(&self) -> bool {
        matches!(self.start, Start::Request { .. })
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = s {
        s = rest;
    }
    s
}

/// Value of the `tag` parameter of a From/To header value.
pub fn tag_param(v: &[u8]) -> Option<&[u8]> {
    // Parameters of the header (not of the URI) follow the closing '>' when there is one.
    let params = match memchr::memrchr(b'>', v) {
        Some(i) => &v[i + 1..],
        None => v,
    };
    let mut rest = params;
    while let Some(i) = memchr::memchr(b';', rest) {
        rest = &rest[i + 1..];
        let p = trim(rest);
        if p.len() > 4 && p[..4].eq_ignore_ascii_case(b"tag=") {
            let val = &p[4..];
            let end = val
                .iter()
                .position(|&c| c == b';' || c == b' ' || c == b'\t' || c == b',')
                .unwrap_or(val.len());
            return Some(&val[..end]);
        }
    }
    None
}

/// Header names we care about (full and compact forms, case-insensitive).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Name {
    Via,
    From,
    To,
    CallId,
    CSeq,
    SipETag,
    SubscriptionState,
    ContentLength,
    Other,
}

pub fn classify(name: &[u8]) -> Name {
    let n = name;
    let eq = |s: &[u8]| n.eq_ignore_ascii_case(s);
    if n.len() == 1 {
        return match n[0].to_ascii_lowercase() {
            b'v' => Name::Via,
            b'f' => Name::From,
            b't' => Name::To,
            b'i' => Name::CallId,
            b'l' => Name::ContentLength,
            _ => Name::Other,
        };
    }
    if eq(b"via") {
        Name::Via
    } else if eq(b"from") {
        Name::From
    } else if eq(b"to") {
        Name::To
    } else if eq(b"call-id") {
        Name::CallId
    } else if eq(b"cseq") {
        Name::CSeq
    } else if eq(b"sip-etag") {
        Name::SipETag
    } else if eq(b"subscription-state") {
        Name::SubscriptionState
    } else if eq(b"content-length") {
        Name::ContentLength
    } else {
        Name::Other
    }
}

/// Iterates header lines: (name, value, whole line including CRLF). Stops at the blank line.
/// Folded lines (CRLF + WSP) are not expected from the servers we drive; a folded line
/// shows up as a line without a colon and is skipped.
pub struct Lines<'a> {
    buf: &'a [u8],
    pos: usize,
    pub body_start: Option<usize>,
}

impl<'a> Lines<'a> {
    /// Starts after the start line.
    pub fn new(buf: &'a [u8]) -> Option<Self> {
        let first = memchr::memchr(b'\n', buf)?;
        Some(Lines {
            buf,
            pos: first + 1,
            body_start: None,
        })
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = (&'a [u8], &'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.pos >= self.buf.len() {
                return None;
            }
            let rest = &self.buf[self.pos..];
            let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
            let line = &rest[..end];
            self.pos += end;
            let content = trim_eol(line);
            if content.is_empty() {
                self.body_start = Some(self.pos);
                self.pos = self.buf.len();
                return None;
            }
            if let Some(c) = memchr::memchr(b':', content) {
                return Some((trim(&content[..c]), trim(&content[c + 1..]), line));
            }
        }
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let mut l = line;
    if let [rest @ .., b'\n'] = l {
        l = rest;
    }
    if let [rest @ .., b'\r'] = l {
        l = rest;
    }
    l
}

/// Header slots for one incoming message (servers send ~10-15 headers).
const SLOTS: usize = 32;

/// Reads one datagram with `sip-parser`. `None`: not SIP enough to act on (counted by the
/// caller): unparseable, or missing/malformed Call-ID or CSeq.
pub fn scan(buf: &[u8]) -> Option<Incoming<'_>> {
    let mut slots = [sip_parser::Header::EMPTY; SLOTS];
    let limits = sip_parser::Limits::default();
    let m = match sip_parser::parse(buf, &mut slots, sip_parser::Framing::Datagram, &limits) {
        Ok(sip_parser::Status::Complete(m)) => m,
        _ => return None,
    };
    let start = match m.start {
        sip_parser::StartLine::Request { method, .. } => Start::Request {
            method: method.as_bytes(),
        },
        sip_parser::StartLine::Response { code, .. } => Start::Response { code },
    };
    let call_id = m.call_id().ok()?;
    let cseq = m.cseq().ok()?;
    let terminated = matches!(
        m.subscription_state(),
        Ok(Some(sip_parser::SubscriptionState {
            state: sip_parser::SubState::Terminated,
            ..
        }))
    );
    Some(Incoming {
        start,
        call_id,
        cseq: cseq.seq,
        cseq_method: cseq.method.as_bytes(),
        from_tag: m.from().ok().and_then(|f| f.tag()),
        to_tag: m.to().ok().and_then(|t| t.tag()),
        etag: m.sip_etag(),
        terminated,
        body: m.body,
    })
}

/// Finds the newest `hl-ts:<nanoseconds>` stamp herald-load planted in a PIDF body. A
/// server aggregating several publications of one presentity (RFC 3863 tuples) may carry
/// older stamps too, possibly from earlier runs; the newest is the PUBLISH that caused this NOTIFY.
pub fn body_stamp(body: &[u8]) -> Option<u64> {
    let mut best: Option<u64> = None;
    for i in memmem::find_iter(body, crate::msg::STAMP) {
        let digits = &body[i + crate::msg::STAMP.len()..];
        let end = digits
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        if end == 0 || end > 19 {
            continue;
        }
        let v = digits[..end]
            .iter()
            .fold(0u64, |v, &c| v * 10 + u64::from(c - b'0'));
        best = Some(best.map_or(v, |b: u64| b.max(v)));
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_a_notify() {
        let m = b"NOTIFY sip:a@127.0.0.1:4000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nTo: <sip:a@x>;tag=abc\r\nFrom: <sip:b@x>;tag=srv;x=1\r\nCSeq: 7 NOTIFY\r\ni: cid-1\r\nSubscription-State: terminated;reason=timeout\r\nSIP-ETag: e1\r\nContent-Length: 4\r\n\r\nbodyEXTRA";
        let s = scan(m).unwrap();
        assert_eq!(s.start, Start::Request { method: b"NOTIFY" });
        assert_eq!(s.call_id, b"cid-1");
        assert_eq!(s.cseq, 7);
        assert_eq!(s.cseq_method, b"NOTIFY");
        assert_eq!(s.to_tag, Some(&b"abc"[..]));
        assert_eq!(s.from_tag, Some(&b"srv"[..]));
        assert!(s.terminated);
        assert_eq!(s.etag, Some(&b"e1"[..]));
        assert_eq!(s.body, b"body");
    }

    #[test]
    fn scans_a_response_without_body() {
        let m = b"SIP/2.0 412 Conditional Request Failed\r\nCall-ID: x\r\nCSeq: 2 PUBLISH\r\nTo: <sip:a@x;tag=urlparam>\r\n\r\n";
        let s = scan(m).unwrap();
        assert_eq!(s.start, Start::Response { code: 412 });
        assert_eq!(s.to_tag, None);
        assert!(s.body.is_empty());
    }

    #[test]
    fn rejects_garbage() {
        assert!(scan(b"hello").is_none());
        assert!(scan(b"SIP/2.0 2x0 OK\r\nCall-ID: a\r\nCSeq: 1 A\r\n\r\n").is_none());
        assert!(scan(b"OPTIONS sip:a SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n").is_none());
    }

    #[test]
    fn finds_stamp() {
        assert_eq!(body_stamp(b"<note>hl-ts:12345</note>"), Some(12345));
        assert_eq!(body_stamp(b"<note>none</note>"), None);
        assert_eq!(
            body_stamp(b"<note>hl-ts:900</note><note>hl-ts:12</note><note>hl-ts:</note>"),
            Some(900)
        );
    }
}
