//! NOTIFYs caught by a dying TCP connection (RFC 3261 §17.1.2, §18.1.1).
//!
//! Over TCP our NOTIFY client transactions never retransmit: the transport is reliable,
//! until the connection drops with the NOTIFY still queued or unanswered. Left alone, such
//! a NOTIFY would be lost until Timer F (64·T1) and, with `end_sub_on_timeout`, the
//! subscription ended for a watcher that is alive and merely reconnected. So the core
//! remembers which carrier each TCP NOTIFY was handed to, and when the edge reports that
//! carrier gone, it sends the very same request again (same branch and CSeq: it is the
//! same transaction, a duplicate is absorbed by the watcher's transaction layer) towards
//! the dialog's next hop with no connection named, so the edge opens a fresh one. Later
//! NOTIFYs of the dialog follow it there.
//!
//! Framing stays intact by construction: every message is queued whole on exactly one
//! connection's write queue; what the dead connection still held dies with it and the
//! resend is a complete message of its own on the new connection.
//!
//! Bounded: at most one resend per carrier loss per transaction and
//! [`MAX_RESENDS_AFTER_CONN_LOSS`] per transaction; a dial that fails is a transport error
//! (§17.1.4) and, like one loss too many, ends the transaction like Timer F (408:
//! `end_sub_on_timeout` applies). Timer F keeps running from the first send, so a
//! transaction never outlives 64·T1.

use std::collections::HashMap;
use std::net::SocketAddr;

use sip_parser::{ip_of, CommaSplit, NameAddr, Scheme, Uri};

use super::subscription::{DialogStrings, Subscriptions};
use super::{ConnId, Core, Out, Peer, Transport};

/// Resends one NOTIFY transaction may get after losing its connection; one more loss ends
/// it like Timer F. Small: a watcher whose connections keep dying is not being reached.
pub const MAX_RESENDS_AFTER_CONN_LOSS: u8 = 3;
/// Stale entries (answered transactions) tolerated beyond twice the live ones before the
/// table is swept; keeps the sweep amortised O(1) per tracked NOTIFY.
const PRUNE_SLACK: usize = 1024;
/// Default SIP ports (RFC 3261 §19.1.2) when a URI names none.
const SIP_PORT: u16 = 5060;
const SIPS_PORT: u16 = 5061;

/// How a carrier of TCP NOTIFYs went away; the edge tells which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnLoss {
    /// It was (or may have been) connected and closed: what it carried is resent.
    Closed,
    /// The dial never connected: the target is unreachable, its NOTIFYs fail with 408.
    DialFailed,
}

/// What the edge was asked to carry a TCP NOTIFY on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Carrier {
    /// A named connection (the subscriber's own, held by any shard).
    Conn(ConnId),
    /// Whichever connection this shard's edge holds to the address, or dials to it.
    Addr(SocketAddr),
}

/// One TCP NOTIFY transaction handed to a carrier.
#[derive(Clone, Copy, Debug)]
struct Sent {
    id: u64,
    cseq: u32,
    /// Times this transaction was already resent after a connection loss.
    resends: u8,
}

/// TCP NOTIFY transactions by carrier. Entries of answered transactions are not removed at
/// once (that would cost every response a lookup); they are skipped on loss and swept in
/// bulk.
#[derive(Debug, Default)]
pub(super) struct TcpInFlight {
    by_carrier: HashMap<Carrier, Vec<Sent>>,
    entries: usize,
}

impl TcpInFlight {
    fn push(&mut self, carrier: Carrier, sent: Sent, subs: &Subscriptions) {
        if self.entries >= 2 * subs.len() + PRUNE_SLACK {
            self.prune(subs);
        }
        self.by_carrier.entry(carrier).or_default().push(sent);
        self.entries += 1;
    }

    fn take(&mut self, carrier: Carrier) -> Vec<Sent> {
        let list = self.by_carrier.remove(&carrier).unwrap_or_default();
        self.entries -= list.len();
        list
    }

    /// Drops every entry whose transaction is over.
    fn prune(&mut self, subs: &Subscriptions) {
        self.by_carrier.retain(|_, list| {
            list.retain(|s| is_open(subs, s));
            !list.is_empty()
        });
        self.entries = self.by_carrier.values().map(Vec::len).sum();
    }
}

/// Whether the transaction an entry names is still waiting for its final response.
fn is_open(subs: &Subscriptions, s: &Sent) -> bool {
    subs.get(&s.id)
        .and_then(|sub| sub.tx.as_ref())
        .is_some_and(|tx| tx.cseq == s.cseq)
}

/// Where a NOTIFY of the dialog goes without the subscriber's connection: the first Route
/// (RFC 3261 §12.2.1.1: the route set decides the next hop) else the remote target
/// (Contact), when that URI's host is an IP literal. A host name needs DNS (RFC 3263),
/// which the core does not do: `None`, and the caller keeps the address it has.
fn next_hop(s: &DialogStrings<'_>) -> Option<SocketAddr> {
    let uri = match CommaSplit::new(s.routes).next() {
        Some(route) => NameAddr::parse(route)?.uri,
        None => s.contact,
    };
    let uri = Uri::parse(uri).ok()?;
    let port = uri.port.unwrap_or(match uri.scheme {
        Scheme::Sips => SIPS_PORT,
        _ => SIP_PORT,
    });
    Some(SocketAddr::new(ip_of(uri.host)?, port))
}

impl Core {
    /// Destination of a NOTIFY just built for dialog `id` (transaction `cseq`), replacing
    /// [`Core::notify_dst`] for it: a TCP dialog whose connection is gone (or unknown, after
    /// a restore) is retargeted to its next hop, and the carrier is remembered for
    /// [`Core::handle_tcp_target_lost`] / [`Core::handle_conn_closed`].
    pub(super) fn notify_carrier(&mut self, id: u64, cseq: u32, peer: Peer) -> Peer {
        let dst = self.notify_dst(peer);
        if dst.transport != Transport::Tcp {
            return dst;
        }
        let dst = match dst.conn {
            Some(_) => dst,
            None => self.retarget(id).unwrap_or(dst),
        };
        self.track(id, cseq, 0, dst);
        dst
    }

    /// Points the dialog at its next hop with no connection named, so this NOTIFY and the
    /// later ones go on whatever connection the edge holds or opens to it.
    fn retarget(&mut self, id: u64) -> Option<Peer> {
        let sub = self.subs.get_mut(&id)?;
        let addr = next_hop(&sub.strings()).unwrap_or(sub.peer().addr);
        let peer = Peer {
            transport: Transport::Tcp,
            addr,
            conn: None,
        };
        sub.set_peer(peer);
        Some(peer)
    }

    fn track(&mut self, id: u64, cseq: u32, resends: u8, dst: Peer) {
        let carrier = match dst.conn {
            Some(c) => Carrier::Conn(c),
            None => Carrier::Addr(dst.addr),
        };
        let sent = Sent { id, cseq, resends };
        self.tcp_in_flight.push(carrier, sent, &self.subs);
    }

    /// The edge's connection `conn` closed (on any shard): its NOTIFYs still unanswered are
    /// resent on a fresh connection.
    pub(super) fn on_conn_lost(&mut self, conn: ConnId) {
        self.carrier_lost(Carrier::Conn(conn), ConnLoss::Closed);
    }

    /// This shard's connection to `addr`, the one NOTIFYs naming no connection were queued
    /// on, is gone (`Closed`) or never came up (`DialFailed`). Only the shard whose edge
    /// held it may call this: NOTIFYs naming no connection never leave their shard.
    pub fn handle_tcp_target_lost(&mut self, addr: SocketAddr, loss: ConnLoss) {
        self.carrier_lost(Carrier::Addr(addr), loss);
    }

    fn carrier_lost(&mut self, carrier: Carrier, loss: ConnLoss) {
        for sent in self.tcp_in_flight.take(carrier) {
            if !is_open(&self.subs, &sent) {
                continue;
            }
            if loss == ConnLoss::DialFailed || sent.resends >= MAX_RESENDS_AFTER_CONN_LOSS {
                self.stats.notify_failed_after_conn_loss += 1;
                self.notify_done(sent.id, 408);
                continue;
            }
            let Some(dst) = self.retarget(sent.id) else {
                continue;
            };
            self.stats.notify_resent_after_conn_loss += 1;
            self.ready.push_back(Out::Retransmit(sent.id, sent.cseq));
            self.track(sent.id, sent.cseq, sent.resends + 1, dst);
        }
        self.refresh_gauges();
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Instant, ShardId};
    use super::*;

    const WATCHER: &str = "10.0.0.2:40001";
    const CONTACT: &str = "10.0.0.2:5070";

    fn tcp(addr: &str, conn: u64) -> Peer {
        Peer {
            transport: Transport::Tcp,
            addr: addr.parse().unwrap(),
            conn: Some(ConnId(conn)),
        }
    }

    fn subscribe(routes: &str) -> String {
        format!(
            "SUBSCRIBE sip:bob@example.com SIP/2.0\r\n\
             Via: SIP/2.0/TCP {WATCHER};branch=z9hG4bKs1\r\nMax-Forwards: 70\r\n\
             From: <sip:alice@example.com>;tag=al1\r\nTo: <sip:bob@example.com>\r\n\
             Call-ID: call-1\r\nCSeq: 1 SUBSCRIBE\r\n\
             Contact: <sip:alice@{CONTACT};transport=tcp>\r\n{routes}Event: presence\r\n\
             Expires: 600\r\nContent-Length: 0\r\n\r\n"
        )
    }

    fn publish(n: u32) -> String {
        let body = format!(
            "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
             entity=\"sip:bob@example.com\"><tuple id=\"t\"><status><basic>open</basic>\
             </status><note>n{n}</note></tuple></presence>"
        );
        format!(
            "PUBLISH sip:bob@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.0.0.3:5080;branch=z9hG4bKp{n}\r\nMax-Forwards: 70\r\n\
             From: <sip:bob@example.com>;tag=b1\r\nTo: <sip:bob@example.com>\r\n\
             Call-ID: pub-{n}\r\nCSeq: 1 PUBLISH\r\nEvent: presence\r\nExpires: 600\r\n\
             Content-Type: application/pidf+xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn header<'a>(msg: &'a str, name: &str) -> &'a str {
        msg.split("\r\n")
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
            .unwrap_or_else(|| panic!("no {name} in {msg}"))
    }

    fn answer(notify: &str, code: u16) -> String {
        let mut r = format!("SIP/2.0 {code} X\r\n");
        for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
            r.push_str(&format!("{h}: {}\r\n", header(notify, h)));
        }
        r + "Content-Length: 0\r\n\r\n"
    }

    struct H {
        core: Core,
        now: Instant,
    }

    impl H {
        fn new(cfg: Config) -> H {
            let now = Instant(1_000_000);
            H {
                core: Core::new(cfg, ShardId(0), 1, 7, now),
                now,
            }
        }

        fn drain(&mut self) -> Vec<(Peer, String)> {
            let mut out = Vec::new();
            let mut v = Vec::new();
            while let Some(t) = self.core.poll_transmit(&mut out) {
                let text = &out[t.offset..t.offset + t.len];
                v.push((t.dst, String::from_utf8(text.to_vec()).unwrap()));
            }
            self.core.check_invariants().unwrap();
            v
        }

        /// Subscribes over connection 1 and returns the initial NOTIFY, left unanswered.
        fn subscribed(&mut self, routes: &str) -> (Peer, String) {
            let from = tcp(WATCHER, 1);
            self.core
                .handle_message(self.now, from, subscribe(routes).as_bytes());
            let mut out = self.drain();
            assert_eq!(out.len(), 2, "200 + NOTIFY: {out:?}");
            assert_eq!(
                out[1].0, from,
                "first NOTIFY rides the SUBSCRIBE's connection"
            );
            out.pop().unwrap()
        }

        fn recv(&mut self, from: Peer, msg: &str) {
            self.core.handle_message(self.now, from, msg.as_bytes());
        }
    }

    fn contact_peer() -> Peer {
        Peer {
            transport: Transport::Tcp,
            addr: CONTACT.parse().unwrap(),
            conn: None,
        }
    }

    #[test]
    fn notify_in_flight_is_resent_to_the_contact_when_its_connection_closes() {
        let mut h = H::new(Config::default());
        let (_, first) = h.subscribed("");
        h.core.handle_conn_closed(ConnId(1));
        let out = h.drain();
        assert_eq!(out.len(), 1, "{out:?}");
        let (dst, again) = &out[0];
        assert_eq!(*dst, contact_peer());
        assert_eq!(again, &first, "the same request: same branch and CSeq");
        assert_eq!(h.core.stats().notify_resent_after_conn_loss, 1);

        // A change meanwhile rides on the next NOTIFY, which follows the new carrier.
        h.recv(tcp("10.0.0.3:5080", 9), &publish(1));
        assert!(h.drain().iter().all(|(_, m)| m.starts_with("SIP/2.0 200")));
        h.recv(contact_peer(), &answer(&first, 200));
        let out = h.drain();
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].0, contact_peer());
        assert_eq!(header(&out[0].1, "CSeq"), "2 NOTIFY");
        assert!(out[0].1.contains("n1"), "{}", out[0].1);

        // Closing the carrier after the answer resends nothing.
        h.recv(contact_peer(), &answer(&out[0].1, 200));
        h.core
            .handle_tcp_target_lost(CONTACT.parse().unwrap(), ConnLoss::Closed);
        assert!(h.drain().is_empty());
    }

    #[test]
    fn next_hop_is_the_first_route() {
        let mut h = H::new(Config::default());
        let routes = "Record-Route: <sip:10.9.9.9:5099;transport=tcp;lr>, <sip:p2;lr>\r\n";
        h.subscribed(routes);
        h.core.handle_conn_closed(ConnId(1));
        let out = h.drain();
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].0.addr,
            "10.9.9.9:5099".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn failed_dial_ends_like_timer_f() {
        let mut h = H::new(Config::default());
        let (_, first) = h.subscribed("");
        h.core.handle_conn_closed(ConnId(1));
        assert_eq!(h.drain().len(), 1);
        h.core
            .handle_tcp_target_lost(CONTACT.parse().unwrap(), ConnLoss::DialFailed);
        assert!(h.drain().is_empty());
        assert_eq!(h.core.stats().notify_failed_after_conn_loss, 1);
        assert_eq!(h.core.stats().subscriptions, 0, "--end-sub-on-timeout");
        let our_tag = header(&first, "From").split("tag=").nth(1).unwrap();
        assert!(!h.core.dialog_exists(our_tag.as_bytes()));
    }

    #[test]
    fn resends_are_bounded() {
        let mut h = H::new(Config {
            end_sub_on_timeout: false,
            ..Config::default()
        });
        h.subscribed("");
        h.core.handle_conn_closed(ConnId(1));
        let contact: SocketAddr = CONTACT.parse().unwrap();
        for _ in 1..MAX_RESENDS_AFTER_CONN_LOSS {
            assert_eq!(h.drain().len(), 1);
            h.core.handle_tcp_target_lost(contact, ConnLoss::Closed);
        }
        assert_eq!(h.drain().len(), 1);
        h.core.handle_tcp_target_lost(contact, ConnLoss::Closed);
        assert!(h.drain().is_empty());
        let st = h.core.stats();
        assert_eq!(
            st.notify_resent_after_conn_loss,
            MAX_RESENDS_AFTER_CONN_LOSS as u64
        );
        assert_eq!(st.notify_failed_after_conn_loss, 1);
        assert_eq!(st.subscriptions, 1, "kept without --end-sub-on-timeout");
    }

    #[test]
    fn idle_dialog_of_a_closed_connection_notifies_its_contact() {
        let mut h = H::new(Config::default());
        let (_, first) = h.subscribed("");
        h.recv(tcp(WATCHER, 1), &answer(&first, 200));
        h.core.handle_conn_closed(ConnId(1));
        assert!(h.drain().is_empty(), "nothing in flight, nothing resent");
        h.recv(tcp("10.0.0.3:5080", 9), &publish(1));
        let out = h.drain();
        let notify = out.iter().find(|(_, m)| m.starts_with("NOTIFY")).unwrap();
        assert_eq!(notify.0, contact_peer());
    }
}
