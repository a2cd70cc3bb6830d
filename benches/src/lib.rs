//! Shared fixtures for the criterion benches.
//!
//! `messages` holds realistic SIP traffic as Blink and Linphone send it (several Via, Contact
//! with instance/feature params, Allow, Supported, User-Agent...), so every bench measures
//! the same bytes.

pub mod messages;
pub mod subscribe_facts;

#[cfg(test)]
mod tests {
    use super::messages::*;
    use sip_parser::{parse, Framing, Header, Limits, Status};

    #[test]
    fn fixtures_are_valid_sip() {
        let (p, n) = (publish(), notify());
        assert!(PIDF.len() > 900 && PIDF.len() < 1300, "{}", PIDF.len());
        let s = subscribe_rsip_compatible();
        assert_ne!(&s[..], SUBSCRIBE);
        for m in [SUBSCRIBE, &s[..], &p[..], &n[..], OK_200] {
            let mut slots = [Header::EMPTY; 32];
            let Ok(Status::Complete(msg)) =
                parse(m, &mut slots, Framing::Stream, &Limits::default())
            else {
                panic!("fixture does not parse")
            };
            assert_eq!(msg.len, m.len());
            msg.validate().unwrap();
        }
    }
}
