//! What the engine reads from a SUBSCRIBE, extracted by herald's parser and by rsip from the
//! same bytes: shared by the criterion bench (`benches/parse.rs`) and the callgrind driver
//! (`examples/parse_cg.rs`) so both measure exactly the same work.

use sip_parser::{parse, Aor, Framing, Header, Limits, Status, Uri};

/// What the engine reads from a SUBSCRIBE, as owned-free values.
#[derive(Debug, PartialEq)]
pub struct SubscribeFacts {
    pub aor_len: usize,
    pub branch_len: usize,
    pub from_tag_len: usize,
    pub to_tag: bool,
    pub call_id_len: usize,
    pub cseq: u32,
    pub expires: u32,
    pub event_len: usize,
    pub contact_len: usize,
    pub accepts: usize,
}

pub fn herald_subscribe<'b>(
    buf: &'b [u8],
    slots: &mut [Header<'b>],
    limits: &Limits,
) -> SubscribeFacts {
    let Ok(Status::Complete(m)) = parse(buf, slots, Framing::Datagram, limits) else {
        unreachable!()
    };
    let _method = m.method().unwrap();
    let aor = Aor::from_uri(&Uri::parse(m.request_uri().unwrap()).unwrap());
    let via = m.via().unwrap();
    let from = m.from().unwrap();
    let to = m.to().unwrap();
    let call_id = m.call_id().unwrap();
    let cseq = m.cseq().unwrap();
    let expires = m.expires().unwrap().unwrap();
    let event = m.event().unwrap().unwrap();
    let contact = m.contact().unwrap().unwrap();
    let accepts = m
        .accept()
        .filter(|a| a.as_ref().is_ok_and(|a| a.matches(b"application/pidf+xml")))
        .count();
    SubscribeFacts {
        aor_len: aor.as_bytes().len(),
        branch_len: via.branch.unwrap().len(),
        from_tag_len: from.tag().unwrap().len(),
        to_tag: to.tag().is_some(),
        call_id_len: call_id.len(),
        cseq: cseq.seq,
        expires,
        event_len: event.full_name().len(),
        contact_len: contact.addr.uri.len(),
        accepts,
    }
}

pub fn rsip_subscribe(buf: &[u8]) -> SubscribeFacts {
    use rsip::headers::ToTypedHeader;
    use rsip::message::HeadersExt;
    use rsip::Header as H;
    let msg = rsip::SipMessage::try_from(buf).unwrap();
    let rsip::SipMessage::Request(req) = msg else {
        unreachable!()
    };
    let _method = req.method;
    let aor = format!(
        "sip:{}@{}",
        req.uri.auth.as_ref().map(|a| a.user.as_str()).unwrap_or(""),
        req.uri.host_with_port.host
    )
    .to_ascii_lowercase();
    let via = req.via_header().unwrap().typed().unwrap();
    let from = req.from_header().unwrap().typed().unwrap();
    let to = req.to_header().unwrap().typed().unwrap();
    let call_id = req.call_id_header().unwrap().clone();
    let cseq = req.cseq_header().unwrap().typed().unwrap();
    let expires = req.expires_header().unwrap().seconds().unwrap();
    let event = req
        .headers
        .iter()
        .find_map(|h| {
            if let H::Event(e) = h {
                Some(e.clone())
            } else {
                None
            }
        })
        .unwrap();
    let contact = req.contact_header().unwrap().typed().unwrap();
    let accept = req
        .headers
        .iter()
        .find_map(|h| {
            if let H::Accept(a) = h {
                Some(a.typed().unwrap())
            } else {
                None
            }
        })
        .unwrap();
    let accepts = accept
        .0
        .iter()
        .filter(|m| m.to_string().starts_with("application/pidf+xml"))
        .count();
    use rsip::headers::UntypedHeader;
    SubscribeFacts {
        aor_len: aor.len(),
        branch_len: via.branch().unwrap().to_string().len(),
        from_tag_len: from.tag().unwrap().to_string().len(),
        to_tag: to.tag().is_some(),
        call_id_len: call_id.value().len(),
        cseq: cseq.seq,
        expires,
        event_len: event.value().len(),
        contact_len: contact.uri.to_string().len(),
        accepts,
    }
}
