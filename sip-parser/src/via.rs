//! Via (RFC 3261 §20.42, §18.2.2): where responses go and how transactions are matched
//! (branch). `received`/`rport` (RFC 3581) let the edge answer NATed clients.

use std::net::IpAddr;

use crate::lex;
use crate::params;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'b> {
    /// `UDP`, `TCP`, `TLS`, `WS`... as written (compare case-insensitively).
    pub transport: &'b [u8],
    /// Host as written; IPv6 references keep their brackets (`[2001:db8::1]`).
    pub host: &'b [u8],
    pub port: Option<u16>,
    pub branch: Option<&'b [u8]>,
    pub received: Option<&'b [u8]>,
    /// `None`: absent; `Some(None)`: `;rport` flag; `Some(Some(p))`: filled in.
    pub rport: Option<Option<u16>>,
    /// Raw parameter section starting at the first `;` (empty if none).
    pub params: &'b [u8],
}

/// Cookie marking RFC 3261 branches (§8.1.1.7).
pub const MAGIC_COOKIE: &[u8] = b"z9hG4bK";

impl<'b> Via<'b> {
    /// Parses one via-parm: `SIP / 2.0 / UDP host[:port] *(;param)`.
    pub fn parse(s: &'b [u8]) -> Option<Via<'b>> {
        let s = lex::trim(s);
        let (name, rest) = lex::take_while(s, lex::is_token);
        let rest = expect(lex::trim_start(rest), b'/')?;
        let (version, rest) = lex::take_while(lex::trim_start(rest), lex::is_token);
        let rest = expect(lex::trim_start(rest), b'/')?;
        let (transport, rest) = lex::take_while(lex::trim_start(rest), lex::is_token);
        if !name.eq_ignore_ascii_case(b"SIP") || version != b"2.0" || transport.is_empty() {
            return None;
        }
        // LWS is mandatory between sent-protocol and sent-by.
        let after = lex::trim_start(rest);
        if after.len() == rest.len() {
            return None;
        }
        let (host, rest) = split_host(after)?;
        let rest = lex::trim_start(rest);
        let (port, rest) = match rest.split_first() {
            Some((b':', r)) => {
                let (digits, r) = lex::take_while(lex::trim_start(r), lex::is_digit);
                (Some(lex::parse_u16(digits)?), lex::trim_start(r))
            }
            _ => (None, rest),
        };
        // Drop a trailing comment, which RFC 3261 allows after via-params.
        let params = lex::trim(strip_comment(rest));
        let [rport, received, branch] =
            params::validate_find(params, [b"rport", b"received", b"branch"])?;
        let rport = match rport {
            None => None,
            Some(None) => Some(None),
            Some(Some(p)) => Some(Some(lex::parse_u16(p)?)),
        };
        let received = received.map(|v| v.unwrap_or_default());
        Some(Via {
            transport,
            host,
            port,
            branch: branch.flatten(),
            received,
            rport,
            params,
        })
    }

    /// Parses the via-parm at the start of `s` (no leading whitespace) without looking past
    /// its last parameter; returns it and where it ends. `None` where [`parse`](Self::parse)
    /// would need the whole element (comments) or the input is malformed: `Typed` then falls
    /// back to split-then-parse.
    pub(crate) fn parse_prefix(s: &'b [u8]) -> Option<(Via<'b>, usize)> {
        // Fast path for the canonical `SIP/2.0/` spelling; anything else takes the fallback.
        let rest = match s.split_first_chunk::<8>() {
            Some((head, rest)) if is_sip_2_0_slash(head) => rest,
            _ => return None,
        };
        let (transport, rest) = lex::take_while(rest, lex::is_token);
        let after = lex::trim_start(rest);
        if transport.is_empty() || after.len() == rest.len() {
            return None;
        }
        let (host, rest) = split_host(after)?;
        let rest = lex::trim_start(rest);
        let (port, rest) = match rest.split_first() {
            Some((b':', r)) => {
                let (digits, r) = lex::take_while(lex::trim_start(r), lex::is_digit);
                (Some(lex::parse_u16(digits)?), lex::trim_start(r))
            }
            _ => (None, rest),
        };
        let ([rport, received, branch], end) =
            params::validate_find_prefix(rest, [b"rport", b"received", b"branch"])?;
        let params = rest.get(..end)?;
        let rport = match rport {
            None => None,
            Some(None) => Some(None),
            Some(Some(p)) => Some(Some(lex::parse_u16(p)?)),
        };
        let received = received.map(|v| v.unwrap_or_default());
        let via = Via {
            transport,
            host,
            port,
            branch: branch.flatten(),
            received,
            rport,
            params,
        };
        Some((via, s.len() - rest.len() + end))
    }

    pub fn param(&self, name: &[u8]) -> Option<Option<&'b [u8]>> {
        params::param(self.params, name)
    }

    /// Whether the branch carries the RFC 3261 magic cookie (else RFC 2543 matching applies).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch.is_some_and(|b| b.starts_with(MAGIC_COOKIE))
    }

    /// The sent-by host as an IP address, if it is one.
    pub fn host_ip(&self) -> Option<IpAddr> {
        ip_of(self.host)
    }

    /// The `received` address, if present and an IP address.
    pub fn received_ip(&self) -> Option<IpAddr> {
        self.received.and_then(ip_of)
    }
}

/// `SIP/2.0/` in any case, as one word compare: 0x20 folds the three letters to lower case
/// and changes no other byte of the pattern, so the test is exact.
#[inline]
fn is_sip_2_0_slash(head: &[u8; 8]) -> bool {
    const FOLD: u64 = u64::from_le_bytes([0x20, 0x20, 0x20, 0, 0, 0, 0, 0]);
    u64::from_le_bytes(*head) | FOLD == u64::from_le_bytes(*b"sip/2.0/")
}

/// Parses an IP literal, accepting IPv6 with or without brackets; allocation free.
pub fn ip_of(host: &[u8]) -> Option<IpAddr> {
    let inner = match host {
        [b'[', inner @ .., b']'] => inner,
        _ => host,
    };
    core::str::from_utf8(inner).ok()?.parse().ok()
}

fn expect(s: &[u8], c: u8) -> Option<&[u8]> {
    match s.split_first() {
        Some((&b, rest)) if b == c => Some(rest),
        _ => None,
    }
}

/// Splits a host (hostname, IPv4 or bracketed IPv6) off the front of `s`.
#[inline]
pub(crate) fn split_host(s: &[u8]) -> Option<(&[u8], &[u8])> {
    if s.first() == Some(&b'[') {
        let close = lex::find1(b']', s)?;
        let inner = &s[1..close];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&b| lex::is_hex(b) || b == b':' || b == b'.')
        {
            return None;
        }
        Some(s.split_at(close + 1))
    } else {
        let (host, rest) = lex::split_host_chars(s);
        if host.is_empty() {
            return None;
        }
        Some((host, rest))
    }
}

fn strip_comment(s: &[u8]) -> &[u8] {
    // Test the cheap condition first: comments are rare, the scan is not free.
    if s.last() != Some(&b')') {
        return s;
    }
    match lex::find_unquoted(s, b'(', false) {
        Some(i) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typical() {
        let v = Via::parse(
            b"SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bK776asdhds;rport;received=10.0.0.1",
        )
        .unwrap();
        assert_eq!(v.transport, b"UDP");
        assert_eq!(v.host, b"192.0.2.4");
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch, Some(&b"z9hG4bK776asdhds"[..]));
        assert_eq!(v.rport, Some(None));
        assert_eq!(v.received, Some(&b"10.0.0.1"[..]));
        assert!(v.has_rfc3261_branch());
        assert_eq!(v.host_ip(), Some("192.0.2.4".parse().unwrap()));
    }

    #[test]
    fn lws_ipv6_and_rport_value() {
        let v = Via::parse(b"SIP / 2.0 / TCP\r\n [2001:db8::9:1] : 5070 ; rport=1234 ; branch=x")
            .unwrap();
        assert_eq!(v.transport, b"TCP");
        assert_eq!(v.host, b"[2001:db8::9:1]");
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.rport, Some(Some(1234)));
        assert_eq!(v.host_ip(), Some("2001:db8::9:1".parse().unwrap()));
        assert_eq!(v.branch, Some(&b"x"[..]));
    }

    #[test]
    fn rejects() {
        for bad in [
            &b"SIP/2.0/UDP"[..],
            b"SIP/2.0/UDPhost",
            b"SIP/3.0/UDP host",
            b"SIP/2.0/UDP host:99999",
            b"SIP/2.0/UDP host:",
            b"SIP/2.0/UDP [zz::1]",
            b"SIP/2.0/UDP host;=x",
            b"SIP/2.0/UDP host;rport=abc",
            b"SIP/2.0/UDP host junk",
        ] {
            assert!(
                Via::parse(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
