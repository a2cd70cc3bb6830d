//! First checks on every request, as the reference presence-agent script does them:
//! Max-Forwards 0 → 483, a missing or broken mandatory header → 400 naming it, methods we
//! do not serve → 405 with Allow. (The trusted-peer check needs the source address and
//! the CIDR list, so the edge does it before the message reaches the core.)

use super::package::BodyError;
use sip_parser::{CSeq, FieldError, HeaderKind, Message, Method, NameAddr};
use std::fmt::Write;

/// Methods this server handles (Allow header).
pub const ALLOW: &[u8] = b"SUBSCRIBE, PUBLISH, NOTIFY, OPTIONS";

/// Why a request is refused, formatted into the reason phrase only when the response is
/// written (no allocation on the hot path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The standard phrase for the code.
    Std,
    Text(&'static str),
    Field(FieldError),
    Body(BodyError),
}

impl Reason {
    pub fn write(&self, code: u16, s: &mut String) {
        s.clear();
        let _ = match self {
            Reason::Std => s.write_str(sip_parser::reason_phrase(code)),
            Reason::Text(t) => s.write_str(t),
            Reason::Field(FieldError::Missing(k)) => write!(s, "Missing {} header", k.name()),
            Reason::Field(FieldError::Malformed(k)) => write!(s, "Malformed {} header", k.name()),
            Reason::Field(e) => write!(s, "{e}"),
            Reason::Body(e) => write!(s, "Bad body: {e}"),
        };
        // A reason phrase must stay on one line.
        if s.bytes().any(|b| b == b'\r' || b == b'\n') {
            s.clear();
            s.push_str(sip_parser::reason_phrase(code));
        }
    }
}

/// Extra header a refusal carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extra {
    None,
    Allow,
    AllowEvents,
    MinExpires(u32),
    /// Accept: the content types of this package.
    Accept(super::package::PkgId),
    /// Accept-Encoding: identity, the only content coding herald reads.
    AcceptEncoding,
    /// Unsupported: echo the Require header values.
    Unsupported,
    RetryAfter(u32),
}

/// A final non-2xx answer decided before any state is touched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reject {
    pub code: u16,
    pub reason: Reason,
    pub extra: Extra,
}

impl Reject {
    pub const fn new(code: u16, reason: Reason, extra: Extra) -> Reject {
        Reject {
            code,
            reason,
            extra,
        }
    }
    pub const fn std(code: u16) -> Reject {
        Reject {
            code,
            reason: Reason::Std,
            extra: Extra::None,
        }
    }
    pub const fn text(code: u16, t: &'static str) -> Reject {
        Reject {
            code,
            reason: Reason::Text(t),
            extra: Extra::None,
        }
    }
    pub const fn field(e: FieldError) -> Reject {
        Reject {
            code: 400,
            reason: Reason::Field(e),
            extra: Extra::None,
        }
    }
}

impl From<FieldError> for Reject {
    fn from(e: FieldError) -> Reject {
        Reject::field(e)
    }
}

/// The mandatory headers of a request, parsed once by [`screen`] and passed down the
/// method's path, so no handler parses From / To / Call-ID / CSeq again.
#[derive(Clone, Copy, Debug)]
pub struct Dialog<'b> {
    pub from: NameAddr<'b>,
    pub to: NameAddr<'b>,
    pub call_id: &'b [u8],
    pub cseq: CSeq<'b>,
}

/// Checks every request must pass, whatever its method; returns the headers it parsed.
pub fn screen<'b>(msg: &Message<'_, 'b>, method: Method<'_>) -> Result<Dialog<'b>, Reject> {
    if msg.max_forwards()? == Some(0) {
        return Err(Reject::std(483));
    }
    let from = msg.from()?;
    let to = msg.to()?;
    let call_id = msg.call_id()?;
    let cseq = msg.cseq()?;
    if cseq.method != method {
        return Err(Reject::text(400, "CSeq method does not match"));
    }
    match method {
        Method::Subscribe | Method::Publish | Method::Notify | Method::Options => {}
        _ => return Err(Reject::new(405, Reason::Std, Extra::Allow)),
    }
    if matches!(method, Method::Subscribe | Method::Publish) && msg.require().next().is_some() {
        return Err(Reject::new(420, Reason::Std, Extra::Unsupported));
    }
    if matches!(method, Method::Subscribe | Method::Publish)
        && msg.header(HeaderKind::Event).is_none()
    {
        return Err(Reject::field(FieldError::Missing(HeaderKind::Event)));
    }
    Ok(Dialog {
        from,
        to,
        call_id,
        cseq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_parser::{parse, Framing, Header, Limits, Status};

    fn check(raw: &str) -> Result<(), Reject> {
        let mut slots = [Header::EMPTY; 32];
        let Ok(Status::Complete(m)) = parse(
            raw.as_bytes(),
            &mut slots,
            Framing::Datagram,
            &Limits::default(),
        ) else {
            panic!("unparseable test message")
        };
        screen(&m, m.method().unwrap()).map(|_| ())
    }

    const BASE: &str = "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\n";

    #[test]
    fn script_rules() {
        let ok = format!("SUBSCRIBE sip:b@x SIP/2.0\r\n{BASE}CSeq: 1 SUBSCRIBE\r\nEvent: presence\r\nMax-Forwards: 70\r\n\r\n");
        assert_eq!(check(&ok), Ok(()));
        let mf0 = format!("SUBSCRIBE sip:b@x SIP/2.0\r\n{BASE}CSeq: 1 SUBSCRIBE\r\nEvent: presence\r\nMax-Forwards: 0\r\n\r\n");
        assert_eq!(check(&mf0).unwrap_err().code, 483);
        let inv = format!("INVITE sip:b@x SIP/2.0\r\n{BASE}CSeq: 1 INVITE\r\n\r\n");
        assert_eq!(
            check(&inv).unwrap_err(),
            Reject::new(405, Reason::Std, Extra::Allow)
        );
        let no_cid = "SUBSCRIBE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCSeq: 1 SUBSCRIBE\r\n\r\n";
        let r = check(no_cid).unwrap_err();
        let mut s = String::new();
        r.reason.write(r.code, &mut s);
        assert_eq!((r.code, s.as_str()), (400, "Missing Call-ID header"));
        let no_event = format!("PUBLISH sip:b@x SIP/2.0\r\n{BASE}CSeq: 1 PUBLISH\r\n\r\n");
        let r = check(&no_event).unwrap_err();
        r.reason.write(r.code, &mut s);
        assert_eq!((r.code, s.as_str()), (400, "Missing Event header"));
        let mismatch = format!(
            "SUBSCRIBE sip:b@x SIP/2.0\r\n{BASE}CSeq: 1 PUBLISH\r\nEvent: presence\r\n\r\n"
        );
        assert_eq!(check(&mismatch).unwrap_err().code, 400);
        let req = format!("SUBSCRIBE sip:b@x SIP/2.0\r\n{BASE}CSeq: 1 SUBSCRIBE\r\nEvent: presence\r\nRequire: foo\r\n\r\n");
        assert_eq!(check(&req).unwrap_err().code, 420);
    }
}
