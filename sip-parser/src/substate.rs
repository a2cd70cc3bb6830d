//! Subscription-State (RFC 6665 §8.2.3): carried by every NOTIFY; herald parses it when it
//! acts as a subscriber (tests, load generator) and the writers produce it.

use crate::lex;
use crate::params;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubState<'b> {
    Active,
    Pending,
    Terminated,
    Other(&'b [u8]),
}

impl<'b> SubState<'b> {
    pub fn as_bytes(&self) -> &'b [u8] {
        match *self {
            SubState::Active => b"active",
            SubState::Pending => b"pending",
            SubState::Terminated => b"terminated",
            SubState::Other(s) => s,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriptionState<'b> {
    pub state: SubState<'b>,
    pub reason: Option<&'b [u8]>,
    pub expires: Option<u32>,
    pub retry_after: Option<u32>,
}

impl<'b> SubscriptionState<'b> {
    pub fn parse(s: &'b [u8]) -> Option<SubscriptionState<'b>> {
        let s = lex::trim(s);
        let (value, rest) = lex::take_while(s, lex::is_token);
        let params = lex::trim_start(rest);
        if value.is_empty() || !params::validate(params) {
            return None;
        }
        let state = if value.eq_ignore_ascii_case(b"active") {
            SubState::Active
        } else if value.eq_ignore_ascii_case(b"pending") {
            SubState::Pending
        } else if value.eq_ignore_ascii_case(b"terminated") {
            SubState::Terminated
        } else {
            SubState::Other(value)
        };
        let number = |name: &[u8]| -> Option<Option<u32>> {
            match params::param(params, name) {
                None => Some(None),
                Some(v) => Some(Some(lex::parse_u32(v?)?)),
            }
        };
        let reason = match params::param(params, b"reason") {
            None => None,
            Some(v) => Some(v?),
        };
        Some(SubscriptionState {
            state,
            reason,
            expires: number(b"expires")?,
            retry_after: number(b"retry-after")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let s = SubscriptionState::parse(b"active;expires=3600").unwrap();
        assert_eq!(s.state, SubState::Active);
        assert_eq!(s.expires, Some(3600));
        let s = SubscriptionState::parse(b"terminated; reason=timeout ;retry-after=30").unwrap();
        assert_eq!(s.state, SubState::Terminated);
        assert_eq!(s.reason, Some(&b"timeout"[..]));
        assert_eq!(s.retry_after, Some(30));
        assert_eq!(
            SubscriptionState::parse(b"waiting").unwrap().state,
            SubState::Other(b"waiting")
        );
        assert!(SubscriptionState::parse(b"active;expires=x").is_none());
        assert!(SubscriptionState::parse(b"").is_none());
    }
}
