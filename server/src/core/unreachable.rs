//! NOTIFYs the network refused: ICMP errors for our UDP datagrams (RFC 3261 §18.4).
//!
//! Why: a watcher that went away without unsubscribing (a softphone restarted on another
//! port, a SIPp run that ended) still gets NOTIFYs. Over UDP each one is retransmitted about
//! ten times over 32 s (Timer E, §17.1.2) before Timer F ends it, and its dialog holds a
//! table slot all that time. When the watcher's host is up but its port is closed, the
//! host says so at once with an ICMP port unreachable. §18.4: host, network, port or
//! protocol unreachable and parameter problem errors "SHOULD cause the transport layer to
//! inform the transport user of a failure in sending", and §17.1.4 ends the client
//! transaction on a transport failure.
//!
//! The edge reads such errors from the socket's error queue (`IP_RECVERR`; on by default,
//! `--udp-icmp-errors off` to ignore them) and hands the core what the kernel returns with
//! each: the destination, and the start of the datagram that was refused (at least the first
//! ~500 bytes, so always our NOTIFY's request line and its Via, which we write first).
//! The NOTIFY's Via branch names its dialog and CSeq (`tags::Branch`), so the error ends
//! exactly that transaction, as Timer F would 32 s later: a final NOTIFY frees its dialog,
//! and a live dialog ends when `end_sub_on_timeout` says so (the same rule as a TCP dial
//! that fails, `conn_lost`).
//!
//! Forgery: an error ends a transaction only if it names the branch, CSeq and destination of
//! the NOTIFY in flight; the kernel delivers it only for a datagram sent from our socket.

use std::net::SocketAddr;

use sip_parser::{HeaderKind, Via};

use super::tags::Branch;
use super::{Core, Instant, Route, Transport};

/// What a refused datagram meant to the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendRefused {
    /// It was the NOTIFY in flight of a dialog: that transaction ended.
    Ended,
    /// One of our NOTIFYs, but not the one in flight to that destination (already answered,
    /// superseded, or over TCP): nothing to do.
    Stale,
    /// Not a NOTIFY of ours (a response we sent, or bytes we cannot read).
    NotNotify,
}

/// `(presentity hash, dialog id, CSeq)` from our branch in the first Via of a datagram we
/// sent, which may be cut short anywhere after its first few hundred bytes.
pub fn refused_notify_branch(sent: &[u8]) -> Option<(u32, u64, u32)> {
    let rest = sent.strip_prefix(b"NOTIFY ")?;
    // Only complete lines count: the cut may fall in the middle of one.
    let complete = &rest[..memchr::memrchr(b'\n', rest)?];
    for line in complete.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        let colon = line.iter().position(|&b| b == b':')?;
        if HeaderKind::from_name(line[..colon].trim_ascii()) == HeaderKind::Via {
            let via = Via::parse(&line[colon + 1..])?;
            return via.branch.and_then(Branch::decode);
        }
    }
    None
}

/// Owner shard of the transaction a refused datagram belongs to: an error may come back on
/// any shard's socket (the kernel picks one of the SO_REUSEPORT group by hash).
pub fn route_refused(sent: &[u8], shards: u16) -> Route {
    match refused_notify_branch(sent) {
        Some((hash, _, _)) => super::route::by_hash(hash, shards),
        None => Route::Drop,
    }
}

impl Core {
    /// The network refused a datagram this shard sent to `dst` (an ICMP error the edge
    /// read); `sent` is the start of that datagram. See the module doc.
    pub fn handle_refused(&mut self, now: Instant, dst: SocketAddr, sent: &[u8]) -> SendRefused {
        self.advance(now);
        let Some((hash, id, cseq)) = refused_notify_branch(sent) else {
            return SendRefused::NotNotify;
        };
        let in_flight = self.subs.get(&id).is_some_and(|sub| {
            sub.hash == hash
                && sub.transport() == Transport::Udp
                && sub.peer().addr == dst
                && sub
                    .tx
                    .as_ref()
                    .is_some_and(|tx| tx.cseq == cseq && !tx.reliable())
        });
        if !in_flight {
            return SendRefused::Stale;
        }
        self.stats.notify_unreachable += 1;
        self.notify_done(id, 408);
        self.refresh_gauges();
        SendRefused::Ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notify(branch: &[u8]) -> Vec<u8> {
        let mut m = b"NOTIFY sip:w@10.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9:5060;branch="
            .to_vec();
        m.extend_from_slice(branch);
        m.extend_from_slice(b";rport\r\nMax-Forwards: 70\r\nFrom: <sip:p@x>;tag=1\r\n");
        m
    }

    #[test]
    fn reads_our_branch_from_a_cut_datagram() {
        let b = Branch::new(7, 42, 3);
        let m = notify(b.as_bytes());
        assert_eq!(refused_notify_branch(&m), Some((7, 42, 3)));
        // Cut inside the Via line: not a complete line, not read.
        let cut = m.iter().position(|&b| b == b';').unwrap();
        assert_eq!(refused_notify_branch(&m[..cut]), None);
        // Compact form, odd spacing.
        let m2 = [
            b"NOTIFY sip:w@h SIP/2.0\r\nv :SIP/2.0/UDP h;branch=".as_slice(),
            b.as_bytes(),
            b"\r\n",
        ]
        .concat();
        assert_eq!(refused_notify_branch(&m2), Some((7, 42, 3)));
    }

    #[test]
    fn ignores_what_is_not_our_notify() {
        let b = Branch::new(7, 42, 3);
        let mut resp = notify(b.as_bytes());
        resp.splice(..6, b"SIP/2.0 200 OK".iter().copied());
        assert_eq!(refused_notify_branch(&resp), None);
        assert_eq!(refused_notify_branch(&notify(b"z9hG4bK-foreign")), None);
        assert_eq!(refused_notify_branch(b"NOTIFY "), None);
        assert_eq!(refused_notify_branch(b""), None);
        assert_eq!(refused_notify_branch(b"NOTIFY x\r\n\r\nVia: a\r\n"), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let mut m = b"NOTIFY ".to_vec();
            m.extend_from_slice(&bytes);
            let _ = refused_notify_branch(&m);
            let _ = refused_notify_branch(&bytes);
        }
    }
}
