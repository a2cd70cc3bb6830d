//! Realistic presence traffic, CRLF line ends, correct Content-Length.

/// SUBSCRIBE for presence from Blink, as it reaches herald through an edge proxy
/// (three Via, Record-Route).
pub const SUBSCRIBE: &[u8] = b"SUBSCRIBE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK3f1a.8c2e4f0b7d1a9e3c5b6d.0\r\n\
Via: SIP/2.0/TLS 198.51.100.23:58912;received=198.51.100.23;rport=58912;branch=z9hG4bKPjd8a1b7c2-3e4f-4a5b-9c6d-7e8f9a0b1c2d;alias\r\n\
Record-Route: <sip:203.0.113.10;lr;ftag=6e1bb6d0-21a4-4c1b;did=a1b.c2d3e4f1>\r\n\
Max-Forwards: 69\r\n\
From: \"Alice Liddell\" <sip:alice@example.com>;tag=6e1bb6d0-21a4-4c1b-8f7e-3a2b1c0d9e8f\r\n\
To: <sip:bob@example.com>\r\n\
Contact: <sip:gjwxhqyo@198.51.100.23:58912;transport=tls;ob>;+sip.instance=\"<urn:uuid:2d8ac1f2-8a1b-4c3d-9e5f-0a1b2c3d4e5f>\"\r\n\
Call-ID: 4a5b6c7d-8e9f-4a0b-1c2d-3e4f5a6b7c8d\r\n\
CSeq: 24123 SUBSCRIBE\r\n\
Event: presence\r\n\
Expires: 600\r\n\
Supported: 100rel, replaces, norefersub, gruu, outbound\r\n\
Accept: application/pidf+xml, application/rpid+xml, application/watcherinfo+xml, multipart/related, application/rlmi+xml\r\n\
Allow-Events: conference, message-summary, dialog, presence, presence.winfo, xcap-diff, dialog-info, refer\r\n\
Allow: SUBSCRIBE, NOTIFY, PRACK, INVITE, ACK, BYE, CANCEL, UPDATE, MESSAGE, REFER\r\n\
User-Agent: Blink 5.1.7 (Linux)\r\n\
Content-Length: 0\r\n\r\n";

/// [`SUBSCRIBE`] with the Contact reduced to `<uri>;expires=600`: rsip 0.4 cannot parse
/// Blink's `+sip.instance="<urn:uuid:...>"` Contact parameter, so the herald-vs-rsip
/// comparison runs on these bytes.
pub fn subscribe_rsip_compatible() -> Vec<u8> {
    let s = core::str::from_utf8(SUBSCRIBE).unwrap_or_default();
    s.replace(
        ";+sip.instance=\"<urn:uuid:2d8ac1f2-8a1b-4c3d-9e5f-0a1b2c3d4e5f>\"",
        ";expires=600",
    )
    .into_bytes()
}

/// PIDF document (~1 KB) published by Linphone: status, note, device and RPID activity.
pub const PIDF: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\r\n\
<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" \
xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" xmlns:pidfonline=\"http://www.linphone.org/xsds/pidfonline.xsd\" \
entity=\"sip:alice@example.com\">\r\n\
  <tuple id=\"ec7bd1b8d4c7\">\r\n\
<status>\r\n\
  <basic>open</basic>\r\n\
  <pidfonline:online/>\r\n\
</status>\r\n\
<contact priority=\"0.8\">sip:alice@198.51.100.23:58912;transport=tls</contact>\r\n\
<timestamp>2026-11-22T12:00:00Z</timestamp>\r\n\
  </tuple>\r\n\
  <dm:person id=\"p7a8b9c0d1\">\r\n\
<rpid:activities>\r\n\
  <rpid:on-the-phone/>\r\n\
</rpid:activities>\r\n\
<rpid:mood>\r\n\
  <rpid:happy/>\r\n\
</rpid:mood>\r\n\
<rpid:place-type>\r\n\
  <rpid:office/>\r\n\
</rpid:place-type>\r\n\
<dm:note xml:lang=\"en\">In a meeting until 14:00, reachable by chat</dm:note>\r\n\
<dm:timestamp>2026-11-22T12:00:00Z</dm:timestamp>\r\n\
  </dm:person>\r\n\
  <dm:device id=\"d4e5f6a7b8\">\r\n\
<dm:deviceID>urn:uuid:2d8ac1f2-8a1b-4c3d-9e5f-0a1b2c3d4e5f</dm:deviceID>\r\n\
<dm:note>Linphone Desktop on a laptop</dm:note>\r\n\
<dm:timestamp>2026-11-22T12:00:00Z</dm:timestamp>\r\n\
  </dm:device>\r\n\
</presence>\r\n";

/// PUBLISH of [`PIDF`] from Linphone (refresh of an existing publication: SIP-If-Match).
pub fn publish() -> Vec<u8> {
    let mut m = b"PUBLISH sip:alice@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK7c2d.1e4a9b3f6c8d2e5a7b1c.0\r\n\
Via: SIP/2.0/UDP 192.168.1.20:5060;received=198.51.100.44;rport=40112;branch=z9hG4bK.Rj3cvlk2y\r\n\
From: <sip:alice@example.com>;tag=Tz1tP~XyU\r\n\
To: sip:alice@example.com\r\n\
CSeq: 21 PUBLISH\r\n\
Call-ID: o6wyBXfVdc\r\n\
Max-Forwards: 69\r\n\
Supported: replaces, outbound, gruu\r\n\
Event: presence\r\n\
Expires: 600\r\n\
SIP-If-Match: 6a3e9b2c1d\r\n\
Content-Type: application/pidf+xml\r\n\
User-Agent: Linphone Desktop/5.2.4 (Ubuntu 22.04.3 LTS, Qt 5.15.2) LinphoneCore/5.3.0\r\n"
        .to_vec();
    m.extend_from_slice(format!("Content-Length: {}\r\n\r\n", PIDF.len()).as_bytes());
    m.extend_from_slice(PIDF);
    m
}

/// NOTIFY herald sends to the Blink watcher carrying [`PIDF`].
pub fn notify() -> Vec<u8> {
    let mut m = b"NOTIFY sip:gjwxhqyo@198.51.100.23:58912;transport=tls;ob SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.20:5060;branch=z9hG4bK0f9e8d7c6b5a4f3e\r\n\
Route: <sip:203.0.113.10;lr;ftag=6e1bb6d0-21a4-4c1b;did=a1b.c2d3e4f1>\r\n\
Max-Forwards: 70\r\n\
From: <sip:bob@example.com>;tag=hrld-7d1e3f5a\r\n\
To: \"Alice Liddell\" <sip:alice@example.com>;tag=6e1bb6d0-21a4-4c1b-8f7e-3a2b1c0d9e8f\r\n\
Call-ID: 4a5b6c7d-8e9f-4a0b-1c2d-3e4f5a6b7c8d\r\n\
CSeq: 2 NOTIFY\r\n\
Contact: <sip:203.0.113.20:5060>\r\n\
Event: presence\r\n\
Subscription-State: active;expires=599\r\n\
Content-Type: application/pidf+xml\r\n"
        .to_vec();
    m.extend_from_slice(format!("Content-Length: {}\r\n\r\n", PIDF.len()).as_bytes());
    m.extend_from_slice(PIDF);
    m
}

/// 200 OK Blink answers to a NOTIFY (Via copied, Contact, Allow, Supported, Server).
pub const OK_200: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 203.0.113.20:5060;received=203.0.113.20;branch=z9hG4bK0f9e8d7c6b5a4f3e\r\n\
Call-ID: 4a5b6c7d-8e9f-4a0b-1c2d-3e4f5a6b7c8d\r\n\
From: <sip:bob@example.com>;tag=hrld-7d1e3f5a\r\n\
To: \"Alice Liddell\" <sip:alice@example.com>;tag=6e1bb6d0-21a4-4c1b-8f7e-3a2b1c0d9e8f\r\n\
CSeq: 2 NOTIFY\r\n\
Contact: <sip:gjwxhqyo@198.51.100.23:58912;transport=tls;ob>;+sip.instance=\"<urn:uuid:2d8ac1f2-8a1b-4c3d-9e5f-0a1b2c3d4e5f>\"\r\n\
Allow: SUBSCRIBE, NOTIFY, PRACK, INVITE, ACK, BYE, CANCEL, UPDATE, MESSAGE, REFER\r\n\
Supported: 100rel, replaces, norefersub, gruu, outbound\r\n\
Server: Blink 5.1.7 (Linux)\r\n\
Content-Length: 0\r\n\r\n";
