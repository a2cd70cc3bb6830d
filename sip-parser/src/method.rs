//! SIP request methods. Method names are case-sensitive (RFC 3261 §7.1), so recognition is an
//! exact byte compare; unknown extension methods stay borrowed in `Other`.

use core::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method<'b> {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Subscribe,
    Notify,
    Publish,
    Info,
    Refer,
    Message,
    Update,
    Prack,
    Other(&'b [u8]),
}

impl<'b> Method<'b> {
    pub fn as_bytes(&self) -> &'b [u8] {
        match *self {
            Method::Invite => b"INVITE",
            Method::Ack => b"ACK",
            Method::Bye => b"BYE",
            Method::Cancel => b"CANCEL",
            Method::Options => b"OPTIONS",
            Method::Register => b"REGISTER",
            Method::Subscribe => b"SUBSCRIBE",
            Method::Notify => b"NOTIFY",
            Method::Publish => b"PUBLISH",
            Method::Info => b"INFO",
            Method::Refer => b"REFER",
            Method::Message => b"MESSAGE",
            Method::Update => b"UPDATE",
            Method::Prack => b"PRACK",
            Method::Other(m) => m,
        }
    }

    /// Never fails: anything unknown is `Other`. Callers wanting token validation use
    /// `parse` (start line) or `CSeq`, which check it.
    pub fn from_bytes(b: &'b [u8]) -> Method<'b> {
        // Switch on the length first: then each candidate is one fixed-size compare
        // (a word or two), not a walk down fourteen slice compares.
        match b.len() {
            3 if b == b"ACK" => Method::Ack,
            3 if b == b"BYE" => Method::Bye,
            4 if b == b"INFO" => Method::Info,
            5 if b == b"REFER" => Method::Refer,
            5 if b == b"PRACK" => Method::Prack,
            6 if b == b"INVITE" => Method::Invite,
            6 if b == b"CANCEL" => Method::Cancel,
            6 if b == b"NOTIFY" => Method::Notify,
            6 if b == b"UPDATE" => Method::Update,
            7 if b == b"OPTIONS" => Method::Options,
            7 if b == b"PUBLISH" => Method::Publish,
            7 if b == b"MESSAGE" => Method::Message,
            8 if b == b"REGISTER" => Method::Register,
            9 if b == b"SUBSCRIBE" => Method::Subscribe,
            _ => Method::Other(b),
        }
    }
}

impl fmt::Display for Method<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for m in [
            Method::Invite,
            Method::Ack,
            Method::Bye,
            Method::Cancel,
            Method::Options,
            Method::Register,
            Method::Subscribe,
            Method::Notify,
            Method::Publish,
            Method::Info,
            Method::Refer,
            Method::Message,
            Method::Update,
            Method::Prack,
        ] {
            assert_eq!(Method::from_bytes(m.as_bytes()), m);
        }
        assert_eq!(
            Method::from_bytes(b"subscribe"),
            Method::Other(b"subscribe")
        );
        assert_eq!(Method::from_bytes(b"NEWMETHOD").as_bytes(), b"NEWMETHOD");
    }
}
