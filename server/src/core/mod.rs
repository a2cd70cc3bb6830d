//! The sans-IO presence core: SIP transactions, subscriptions, publications, timers and
//! NOTIFY generation as plain Rust.
//!
//! The core never touches a socket, a clock, an executor or the disk. The edge (glommio,
//! sockets, LMDB) feeds it messages and the current time and drains what it wants to send
//! and when it wants to be woken. That keeps every protocol decision testable with a
//! simulated clock and a lossy simulated network (see `tests/sim.rs`).
//!
//! This file is the contract between the core and the edge; keep these signatures stable.

use std::net::SocketAddr;

/// Milliseconds on the core's monotonic clock. The edge converts from its real clock;
/// the simulator advances it by hand. The core never reads a clock itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(pub u64);

impl Instant {
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms)
    }
    pub const fn as_millis(self) -> u64 {
        self.0
    }
    pub const fn add_millis(self, ms: u64) -> Self {
        Instant(self.0.saturating_add(ms))
    }
}

/// Index of a shard (one executor pinned to one core).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u16);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Identifies one accepted or dialled TCP connection on a shard; chosen by the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// The far end of a message: where it came from, or where it must go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
    /// For TCP: the connection the message arrived on / should preferably leave on.
    pub conn: Option<ConnId>,
}

/// One message the core wants sent: its bytes were appended to the buffer given to
/// [`Core::poll_transmit`], starting at `offset`, `len` bytes long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub dst: Peer,
    pub offset: usize,
    pub len: usize,
}

/// Where a received message must be processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// This shard owns it (or it is stateless: OPTIONS, errors).
    Local,
    /// Hand it over, once, to that shard.
    Shard(ShardId),
    /// Not even parseable enough to route: drop and count.
    Drop,
}

pub mod auth;
mod config;
pub mod conn_lost;
mod notify;
pub mod package;
mod persist;
pub mod pidf;
mod presentity;
mod publish;
pub mod rng;
mod route;
pub mod routing;
mod slab;
mod stats;
pub mod steer;
mod subscribe;
mod subscription;
pub mod tags;
pub mod timers;
pub mod transaction;
pub mod unreachable;
mod xcap_publish;
pub use xcap_publish::{XcapPidfError, XCAP_PUBLICATION_ID, XCAP_PUBLICATION_LIFETIME_MS};

pub use config::Config;
pub use persist::{
    PersistOp, PublicationRecord, Refused, RestoreError, SubStatus, SubscriptionRecord,
};
pub use route::{reply_overloaded, route, route_message, shard_contact, shard_for};
pub use stats::Stats;
pub use unreachable::{route_refused, SendRefused};

use package::{EventPackage, PkgId};
use presentity::Presentities;
use rng::Rng;
use routing::{Extra, Reason, Reject};
use sip_parser::{
    parse, push_u32, Framing, Header, HeaderKind, Message, Method, ParseError, Status, Via,
};
use std::collections::VecDeque;
use subscription::Subscriptions;
use timers::{ExpiryWheel, Timers};
use transaction::client::NotifyTx;
use transaction::server::{ServerTxs, TxSeq};

/// Header slots on the stack per parsed message; `Limits::max_headers` above this is capped.
pub const MAX_HEADER_SLOTS: usize = 128;
/// Every this many NOTIFYs a dialog's local CSeq is persisted; a restored dialog resumes
/// this much higher, so CSeq keeps increasing across a crash without a write per NOTIFY.
pub const CSEQ_PERSIST_EVERY: u32 = 256;
/// Closed TCP connections remembered so NOTIFYs stop naming them.
const MAX_CLOSED_CONNS: usize = 1024;
/// Finished NOTIFY transactions (their boxes) kept for reuse.
const MAX_POOLED_TXS: usize = 4096;
/// Restored dialogs owe a NOTIFY (`Config::notify_on_restore`); they are released this many
/// at a time, every `RESTORE_NOTIFY_INTERVAL_MS`, so a shard restored with a million
/// subscriptions serves requests at once instead of first sending a million NOTIFYs
/// (at most 200k NOTIFYs/s per shard from the restore).
pub const RESTORE_NOTIFY_BATCH: usize = 2_000;
pub const RESTORE_NOTIFY_INTERVAL_MS: u64 = 10;

/// Something waiting in the transmit queue: a small descriptor, the bytes are produced (or
/// copied) only in `poll_transmit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Out {
    /// The response stored in a server transaction.
    Response(TxSeq),
    /// Build the dialog's next NOTIFY now (coalesces every change queued before).
    Notify(u64),
    /// The same, queued by a timer (an expiry, a paced restore): it leaves with the other
    /// timer output, after the answers to requests (see `Core::background`).
    TimerNotify(u64),
    /// Timer E: resend the NOTIFY with this CSeq.
    Retransmit(u64, u32),
}

impl Out {
    /// The dialog's next NOTIFY, queued by a timer or not.
    fn notify(id: u64, from_timer: bool) -> Out {
        if from_timer {
            Out::TimerNotify(id)
        } else {
            Out::Notify(id)
        }
    }
}

/// What a timer is for. Tokens / CSeqs tell live timers from stale ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    SubExpiry {
        id: u64,
        token: u32,
    },
    Notify {
        id: u64,
        cseq: u32,
    },
    PubExpiry {
        pres: u32,
        token: u32,
    },
    /// Release the next slice of restored dialogs' NOTIFYs (see `RESTORE_NOTIFY_BATCH`).
    RestoreNotify,
}

/// Extra header of a response.
#[derive(Clone, Copy, Debug)]
enum Add<'a> {
    Expires(u32),
    ETag(&'a [u8]),
    Contact,
    Extra(Extra),
}

/// One shard's presence engine: owns the presentities whose AoR hashes to this shard and
/// every subscription dialog watching them. Sans-IO: see the module docs.
pub struct Core {
    cfg: Config,
    shard: ShardId,
    shards: u16,
    rng: Rng,
    /// Keys the server-transaction hash so peers cannot aim collisions.
    key_seed: u64,
    /// Latest time seen by any `handle_*` call (used by `poll_transmit`).
    now: Instant,
    stats: Stats,
    packages: Vec<Box<dyn EventPackage>>,
    allow_events: Vec<u8>,
    /// Header lines that never change on this shard, written once and copied whole instead
    /// of assembled piece by piece: the NOTIFY `Via: SIP/2.0/UDP <sent-by>;branch=`
    /// (index 0) and its TCP twin; `Contact: <server_address>` of 2xx and NOTIFYs.
    notify_via: [Vec<u8>; 2],
    contact_line: Vec<u8>,
    subs: Subscriptions,
    pres: Presentities,
    stx: ServerTxs,
    timers: Timers<TimerKey>,
    /// Subscription expiries more than a second away (see `ExpiryWheel`).
    expiries: ExpiryWheel,
    /// Reused by `handle_timeout` for the ids of opened expiry buckets.
    opened: Vec<(u64, u64)>,
    ready: VecDeque<Out>,
    /// What timers produced: the NOTIFYs queued by expiries and paced restores (here) and
    /// Timer E retransmissions (`resends`). [`Core::poll_transmit_within`] writes them only
    /// once `ready` (answers to requests and the NOTIFYs they caused) is empty, and then
    /// within a budget the edge gives per flush. Why: after a mass expiry of watchers that
    /// are gone (a SIPp run that ended, a site that dropped off the network), Timer E kept
    /// ~10 retransmissions per terminated NOTIFY for 32 s in the same queue as the answers
    /// to new requests, and a shard spent seconds on them while SUBSCRIBEs timed out
    /// (measured: 945 calls/s instead of 75,000). Not bounded by `max_pending_transmits`:
    /// it holds at most one entry per NOTIFY transaction (`NotifyTx::resend_queued`) and
    /// per expiring dialog. First sends leave before retransmissions: an expired dialog's
    /// transaction (and so its Timer F, which frees its slot) starts when its NOTIFY first
    /// leaves, which a backlog of retransmissions to earlier dead watchers would delay.
    background: VecDeque<Out>,
    /// Timer E retransmissions (see `background`).
    resends: VecDeque<Out>,
    /// Set while `handle_timeout` runs: NOTIFYs it queues go to `background`.
    in_timer: bool,
    /// Restored dialogs whose NOTIFY is not yet released (paced by `TimerKey::RestoreNotify`).
    restore_backlog: VecDeque<u64>,
    gated: VecDeque<(u64, Out)>,
    persist_q: VecDeque<PersistOp>,
    next_persist_seq: u64,
    persisted_seq: u64,
    next_token: u32,
    next_order: u64,
    reason: String,
    /// The normalised presentity AoR of the request being handled (reused: no allocation
    /// per SUBSCRIBE unless a presentity is created).
    aor_buf: Vec<u8>,
    scratch: Vec<u8>,
    scratch_ids: Vec<u64>,
    /// Finished NOTIFY transactions kept for reuse (see `recycle_tx`). Boxed on purpose:
    /// what is recycled is the box a `Subscription::tx` points to.
    #[allow(clippy::vec_box)]
    pool: Vec<Box<NotifyTx>>,
    closed_conns: VecDeque<ConnId>,
    /// TCP NOTIFYs by the connection they were handed to (see `conn_lost`).
    tcp_in_flight: conn_lost::TcpInFlight,
}

fn sent_by_of(server_address: &[u8]) -> Vec<u8> {
    let mut s = server_address;
    for scheme in [&b"sips:"[..], b"sip:"] {
        if s.len() >= scheme.len() && s[..scheme.len()].eq_ignore_ascii_case(scheme) {
            s = &s[scheme.len()..];
        }
    }
    if let Some(at) = memchr::memchr(b'@', s) {
        s = &s[at + 1..];
    }
    let end = s
        .iter()
        .position(|&b| b == b';' || b == b'?' || b == b'>')
        .unwrap_or(s.len());
    let s = &s[..end];
    if s.is_empty() {
        b"127.0.0.1".to_vec()
    } else {
        s.to_vec()
    }
}

/// How a message from `transport` is framed: a datagram is the message; a TCP message
/// must carry its Content-Length.
pub fn framing_of(transport: Transport) -> Framing {
    match transport {
        Transport::Udp => Framing::Datagram,
        Transport::Tcp => Framing::Stream,
    }
}

/// Header slots of the first parse attempt (see [`with_parsed`]): more than an ordinary
/// request carries, even one that crossed a few proxies.
const FEW_HEADER_SLOTS: usize = 32;

/// Parses `bytes` into header slots on the stack and runs `f` on the result.
///
/// The slots must be filled before `parse` can borrow them, and filling the default 64
/// cost ~300 instructions a message, a seventh of parsing it. So the parse first runs on
/// [`FEW_HEADER_SLOTS`]; only a message with more headers than that (`TooManyHeaders`)
/// is parsed again with `limits.max_headers` slots (at most [`MAX_HEADER_SLOTS`]). The
/// result is the same as one parse with all the slots: with fewer, parsing stops at the
/// first header past them, and a message that gets that far is always parsed again.
pub(crate) fn with_parsed<'b, R>(
    bytes: &'b [u8],
    framing: Framing,
    limits: &sip_parser::Limits,
    f: impl for<'h> FnOnce(Result<Status<Message<'h, 'b>>, ParseError>) -> R,
) -> R {
    let n = limits.max_headers.clamp(1, MAX_HEADER_SLOTS);
    let mut few = [Header::EMPTY; FEW_HEADER_SLOTS];
    let first = parse(bytes, &mut few[..n.min(FEW_HEADER_SLOTS)], framing, limits);
    if n <= FEW_HEADER_SLOTS || first != Err(ParseError::TooManyHeaders) {
        return f(first);
    }
    if n <= sip_parser::DEFAULT_MAX_HEADERS {
        let mut slots = [Header::EMPTY; sip_parser::DEFAULT_MAX_HEADERS];
        f(parse(bytes, &mut slots[..n], framing, limits))
    } else {
        let mut slots = [Header::EMPTY; MAX_HEADER_SLOTS];
        f(parse(bytes, &mut slots[..n], framing, limits))
    }
}

/// The server-transaction key: a seeded hash of its identifying parts.
fn keyed_hash(seed: u64, parts: &[&[u8]]) -> u64 {
    presentity::seeded_hash(seed, parts)
}

impl Core {
    /// `seed` must differ between starts of the same shard (e.g. wall clock ^ shard) so
    /// fresh tags and ETags never repeat ones handed out before a restart.
    pub fn new(config: Config, shard: ShardId, shards: u16, seed: u64, now: Instant) -> Core {
        let packages = package::registry();
        let mut allow_events = Vec::new();
        for (i, p) in packages.iter().enumerate() {
            if i > 0 {
                allow_events.extend_from_slice(b", ");
            }
            allow_events.extend_from_slice(p.name().as_bytes());
        }
        let via_sent_by = sent_by_of(&config.server_address);
        let notify_via = [&b"UDP"[..], b"TCP"].map(|transport| {
            [
                &b"Via: SIP/2.0/"[..],
                transport,
                b" ",
                &via_sent_by,
                b";branch=",
            ]
            .concat()
        });
        let contact = route::shard_contact(&config.server_address, shard, shards);
        let contact_line = [&b"Contact: <"[..], &contact, b">\r\n"].concat();
        let mut rng = Rng::new(seed ^ (shard.0 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let key_seed = rng.next_u64();
        let pres_seed = rng.next_u64();
        Core {
            stx: ServerTxs::new(config.max_server_transactions),
            cfg: config,
            shard,
            shards: shards.max(1),
            rng,
            key_seed,
            now,
            stats: Stats::default(),
            packages,
            allow_events,
            notify_via,
            contact_line,
            subs: Subscriptions::default(),
            pres: Presentities::with_seed(pres_seed),
            timers: Timers::default(),
            expiries: ExpiryWheel::default(),
            opened: Vec::new(),
            ready: VecDeque::new(),
            background: VecDeque::new(),
            resends: VecDeque::new(),
            in_timer: false,
            restore_backlog: VecDeque::new(),
            gated: VecDeque::new(),
            persist_q: VecDeque::new(),
            next_persist_seq: 1,
            persisted_seq: 0,
            next_token: 1,
            next_order: 1,
            reason: String::new(),
            aor_buf: Vec::new(),
            scratch: Vec::new(),
            scratch_ids: Vec::new(),
            pool: Vec::new(),
            closed_conns: VecDeque::new(),
            tcp_in_flight: Default::default(),
        }
    }

    pub fn shard(&self) -> ShardId {
        self.shard
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// One SIP message (a UDP datagram, or one framed TCP message). Parses it itself.
    pub fn handle_message(&mut self, now: Instant, from: Peer, bytes: &[u8]) {
        let limits = self.cfg.limits;
        with_parsed(
            bytes,
            framing_of(from.transport),
            &limits,
            |parsed| match parsed {
                Ok(Status::Complete(msg)) => self.handle_parsed(now, from, &msg),
                _ => self.stats.rx_dropped += 1,
            },
        );
    }

    /// One SIP message the caller already parsed, with `framing_of(from.transport)` and
    /// this core's limits: the edge parses a datagram once to route it
    /// ([`route::route_message`]) and hands the same parse to its owner's core.
    pub fn handle_parsed(&mut self, now: Instant, from: Peer, msg: &Message<'_, '_>) {
        self.advance(now);
        let now = self.now;
        if msg.is_request() {
            self.stats.rx_requests += 1;
            self.on_request(now, from, msg);
        } else {
            self.stats.rx_responses += 1;
            self.on_response(now, msg);
        }
        self.refresh_gauges();
    }

    fn tx_key(&self, msg: &Message<'_, '_>, via: &Via<'_>, method: Method<'_>) -> u64 {
        match via.branch {
            Some(b) if via.has_rfc3261_branch() => {
                let port = via.port.unwrap_or(0).to_be_bytes();
                keyed_hash(self.key_seed, &[b, via.host, &port, method.as_bytes()])
            }
            _ => {
                // RFC 2543 peers: match on the request identity instead (§17.2.3).
                let cid = msg.call_id().unwrap_or(b"");
                let cseq = msg.header(sip_parser::HeaderKind::CSeq).unwrap_or(b"");
                let from = msg.header(sip_parser::HeaderKind::From).unwrap_or(b"");
                let v = msg.header(sip_parser::HeaderKind::Via).unwrap_or(b"");
                keyed_hash(self.key_seed, &[cid, cseq, from, v])
            }
        }
    }

    fn on_request(&mut self, now: Instant, from: Peer, msg: &Message<'_, '_>) {
        let Some(method) = msg.method() else { return };
        if method == Method::Ack {
            // Only INVITE transactions are acknowledged; we have none.
            return;
        }
        let Ok(via) = msg.via() else {
            // Nowhere to send a response.
            self.stats.rx_dropped += 1;
            return;
        };
        let key = self.tx_key(msg, &via, method);
        if let Some(seq) = self.stx.lookup(key) {
            self.stats.rx_retransmissions += 1;
            if self.stx.get(seq).is_some_and(|t| t.sent) {
                self.ready.push_back(Out::Response(seq));
            }
            return;
        }
        if self.ready.len() + self.gated.len() >= self.cfg.max_pending_transmits {
            self.stats.rx_dropped += 1;
            return;
        }
        match method {
            Method::Subscribe => self.stats.rx_subscribe += 1,
            Method::Publish => self.stats.rx_publish += 1,
            Method::Notify => self.stats.rx_notify += 1,
            Method::Options => self.stats.rx_options += 1,
            _ => self.stats.rx_other += 1,
        }
        let dlg = match routing::screen(msg, method) {
            Ok(d) => d,
            Err(rej) => {
                self.reject(now, from, key, msg, rej);
                return;
            }
        };
        let result = match method {
            Method::Subscribe => self.on_subscribe(now, from, key, msg, &dlg),
            Method::Publish => self.on_publish(now, from, key, msg),
            Method::Options => {
                let adds = [
                    Add::Extra(Extra::Allow),
                    Add::Extra(Extra::AllowEvents),
                    Add::Extra(Extra::Accept(0)),
                ];
                self.respond(now, from, key, msg, 200, Reason::Std, None, &adds, 0);
                Ok(())
            }
            // We never subscribe to anything, so no NOTIFY can match a dialog of ours.
            _ => Err(Reject::std(481)),
        };
        if let Err(rej) = result {
            self.reject(now, from, key, msg, rej);
        }
    }

    fn reject(&mut self, now: Instant, from: Peer, key: u64, msg: &Message<'_, '_>, rej: Reject) {
        let adds = [Add::Extra(rej.extra)];
        self.respond(now, from, key, msg, rej.code, rej.reason, None, &adds, 0);
    }

    /// Writes a final response into a new server transaction and queues it (held until
    /// `gate` is persisted when non-zero).
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &mut self,
        now: Instant,
        peer: Peer,
        key: u64,
        msg: &Message<'_, '_>,
        code: u16,
        reason: Reason,
        to_tag: Option<&[u8]>,
        adds: &[Add<'_>],
        gate: u64,
    ) {
        self.respond_tagged(now, peer, key, msg, code, reason, to_tag, None, adds, gate)
    }

    /// [`Core::respond`] when the caller already knows whether the request's To has a
    /// tag (`to_tagged`), so the To header is not parsed again.
    #[allow(clippy::too_many_arguments)]
    fn respond_tagged(
        &mut self,
        now: Instant,
        peer: Peer,
        key: u64,
        msg: &Message<'_, '_>,
        code: u16,
        reason: Reason,
        to_tag: Option<&[u8]>,
        to_tagged: Option<bool>,
        adds: &[Add<'_>],
        gate: u64,
    ) {
        let timer_j = match peer.transport {
            Transport::Udp => 64 * self.cfg.t1_ms,
            Transport::Tcp => 0,
        };
        let reason: &str = match reason {
            Reason::Std => sip_parser::reason_phrase(code),
            r => {
                r.write(code, &mut self.reason);
                &self.reason
            }
        };
        // RFC 3261 8.2.6.2: every response but 100 carries a To tag. Responses that create
        // no dialog (OPTIONS, rejections) get one derived from the transaction key, so a
        // retransmitted request is answered with the same tag.
        let mut stateless = [0u8; 17];
        let to_tag = match to_tag {
            Some(t) => t,
            None => stateless_tag(key, &mut stateless),
        };
        let (contact_line, allow_events, packages) =
            (&self.contact_line, &self.allow_events, &self.packages);
        let inserted = self.stx.insert(now, key, peer, timer_j, |w| {
            write_response_head(w, msg, code, reason, to_tag, to_tagged);
            for a in adds {
                match *a {
                    Add::Expires(e) => push_header_u32(w, b"Expires", e),
                    Add::ETag(t) => push_header(w, b"SIP-ETag", t),
                    Add::Contact => w.extend_from_slice(contact_line),
                    Add::Extra(Extra::None) => {}
                    Add::Extra(Extra::Allow) => push_header(w, b"Allow", routing::ALLOW),
                    Add::Extra(Extra::AllowEvents) => push_header(w, b"Allow-Events", allow_events),
                    Add::Extra(Extra::MinExpires(m)) => push_header_u32(w, b"Min-Expires", m),
                    Add::Extra(Extra::Accept(pkg)) => {
                        if let Some(p) = packages.get(pkg as usize) {
                            for ct in p.content_types() {
                                push_header(w, b"Accept", ct.as_bytes());
                            }
                        }
                    }
                    Add::Extra(Extra::AcceptEncoding) => {
                        push_header(w, b"Accept-Encoding", b"identity")
                    }
                    Add::Extra(Extra::Unsupported) => {
                        for v in msg.require() {
                            push_header(w, b"Unsupported", v);
                        }
                    }
                    Add::Extra(Extra::RetryAfter(s)) => push_header_u32(w, b"Retry-After", s),
                }
            }
            w.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        });
        self.stats.server_tx_evicted = self.stx.evicted;
        let Ok(seq) = inserted else {
            self.stats.rx_dropped += 1;
            return;
        };
        self.stats.tx_responses += 1;
        self.stats.count_code(code);
        if gate > self.persisted_seq {
            self.gated.push_back((gate, Out::Response(seq)));
        } else {
            self.ready.push_back(Out::Response(seq));
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        let now = self.now;
        self.stx.expire(now);
        self.open_expiry_buckets(now);
        self.in_timer = true;
        while let Some((_, key)) = self.timers.pop_due(now) {
            match key {
                TimerKey::SubExpiry { id, token } => self.on_sub_expiry_timer(now, id, token),
                TimerKey::Notify { id, cseq } => self.on_notify_timer(now, id, cseq),
                TimerKey::PubExpiry { pres, token } => self.on_pub_expiry_timer(now, pres, token),
                TimerKey::RestoreNotify => self.release_restore_notifies(now),
            }
        }
        self.in_timer = false;
        self.maybe_compact_timers();
        self.refresh_gauges();
    }

    /// Earliest instant at which [`Core::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.timers.next_deadline(),
            self.expiries.next_deadline(),
            self.stx.next_expiry(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Appends the next outgoing message to `out` and says where it goes. Call after
    /// every `handle_*` until it returns `None`.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> Option<Transmit> {
        let mut unlimited = usize::MAX;
        self.poll_transmit_within(out, &mut unlimited)
    }

    /// [`Core::poll_transmit`], writing at most `background_budget` of what timers
    /// produced (decremented per message), and only once nothing else waits: answers to
    /// requests go first. `None` with [`Core::has_background`] true means the budget ran
    /// out: call again later (the edge does, from its timer task, so input is read between
    /// the rounds).
    pub fn poll_transmit_within(
        &mut self,
        out: &mut Vec<u8>,
        background_budget: &mut usize,
    ) -> Option<Transmit> {
        let now = self.now;
        loop {
            let item = match self.ready.pop_front() {
                Some(item) => item,
                None if *background_budget > 0 => {
                    let item = match self.background.pop_front() {
                        Some(item) => item,
                        None => self.resends.pop_front()?,
                    };
                    *background_budget -= 1;
                    item
                }
                None => return None,
            };
            match item {
                Out::Response(seq) => {
                    let Some(tx) = self.stx.get_mut(seq) else {
                        continue;
                    };
                    tx.sent = true;
                    let dst = tx.peer;
                    let Some(response) = self.stx.response(seq) else {
                        continue;
                    };
                    let offset = out.len();
                    out.extend_from_slice(response);
                    return Some(Transmit {
                        dst,
                        offset,
                        len: response.len(),
                    });
                }
                Out::Notify(id) | Out::TimerNotify(id) => {
                    if let Some(t) =
                        self.build_notify(now, id, matches!(item, Out::TimerNotify(_)), out)
                    {
                        self.refresh_gauges();
                        return Some(t);
                    }
                }
                Out::Retransmit(id, cseq) => {
                    let Some(sub) = self.subs.get_mut(&id) else {
                        continue;
                    };
                    match sub.tx.as_mut() {
                        Some(t) if t.cseq == cseq => t.resend_queued = false,
                        _ => continue,
                    }
                    let sub = &*sub;
                    let Some(tx) = sub.tx.as_ref() else {
                        continue;
                    };
                    self.stats.notify_retransmitted += 1;
                    let offset = out.len();
                    let parts = notify::NotifyParts {
                        via: &self.notify_via,
                        contact_line: &self.contact_line,
                        pkg: &*self.packages[sub.pkg as usize],
                    };
                    notify::write_notify(out, &parts, sub, id, tx);
                    let peer = sub.peer();
                    return Some(Transmit {
                        dst: self.notify_dst(peer),
                        offset,
                        len: out.len() - offset,
                    });
                }
            }
        }
    }

    /// Queues output that may leave now: timer output behind the answers to requests.
    fn queue_out(&mut self, item: Out) {
        match item {
            Out::TimerNotify(_) => self.background.push_back(item),
            Out::Retransmit(..) => self.resends.push_back(item),
            Out::Response(_) | Out::Notify(_) => self.ready.push_back(item),
        }
    }

    /// Whether timer output waits beyond the last budget (see [`Core::poll_transmit_within`]).
    pub fn has_background(&self) -> bool {
        !self.background.is_empty() || !self.resends.is_empty()
    }

    fn notify_dst(&self, mut peer: Peer) -> Peer {
        if let Some(c) = peer.conn {
            if self.closed_conns.contains(&c) {
                peer.conn = None;
            }
        }
        peer
    }

    /// TCP connection closed by the edge: later NOTIFYs for dialogs that used it go out
    /// with `conn: None`, so the edge dials the watcher's address again.
    pub fn handle_conn_closed(&mut self, conn: ConnId) {
        if self.closed_conns.len() >= MAX_CLOSED_CONNS {
            self.closed_conns.pop_front();
        }
        self.closed_conns.push_back(conn);
        self.on_conn_lost(conn);
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn refresh_gauges(&mut self) {
        self.stats.subscriptions = self.subs.len() as u64;
        self.stats.presentities = self.pres.len() as u64;
        self.stats.publications = self.pres.publications as u64;
        self.stats.pending_transmits =
            (self.ready.len() + self.gated.len() + self.background.len() + self.resends.len())
                as u64;
        self.stats.pending_persist = self.persist_q.len() as u64;
    }

    /// A timer generation (never 0, which means "no timer"). 32 bits keep timer entries
    /// small; a wrapped token could only match a stale entry that outlived 4 billion
    /// newer timers, far longer than any expiry.
    fn fresh_token(&mut self) -> u32 {
        let t = self.next_token;
        self.next_token = self.next_token.wrapping_add(1).max(1);
        t
    }

    /// A dialog id not in use (0 is never used), naming the slot the next
    /// `subs.insert` fills, salted at random.
    fn fresh_sub_id(&mut self) -> u64 {
        loop {
            let id = self.subs.vacant_id(self.rng.next_u64() as u32);
            if id != 0 && !self.subs.contains_key(&id) {
                return id;
            }
        }
    }

    fn package_index(&self, name: &[u8]) -> Option<PkgId> {
        self.packages
            .iter()
            .position(|p| p.name().as_bytes() == name)
            .map(|i| i as PkgId)
    }

    fn owns(&mut self, hash: u32) {
        if hash % self.shards as u32 != self.shard.0 as u32 {
            // The edge routed it here anyway; serve it but count, it means split state.
            self.stats.misrouted += 1;
        }
    }

    fn domain_served(&self, host: &[u8]) -> bool {
        self.cfg.local_domains.is_empty()
            || self
                .cfg
                .local_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(host))
    }

    fn maybe_compact_timers(&mut self) {
        let live = self.subs.len() * 2 + self.pres.publications + 1024;
        if self.expiries.len() > 4 * live {
            let subs = &self.subs;
            self.expiries.compact(|sec, id| {
                subs.get(&id).is_some_and(|s| {
                    s.expiry_token != 0 && ExpiryWheel::second(s.expiry_armed) == sec
                })
            });
        }
        if self.timers.len() > 4 * live {
            let subs = &self.subs;
            let pres = &self.pres;
            self.timers.compact(|k| match *k {
                TimerKey::SubExpiry { id, token } => {
                    subs.get(&id).is_some_and(|s| s.expiry_token == token)
                }
                TimerKey::Notify { id, cseq } => subs
                    .get(&id)
                    .and_then(|s| s.tx.as_ref())
                    .is_some_and(|t| t.cseq == cseq),
                TimerKey::PubExpiry { pres: slot, token } => pres
                    .get(slot)
                    .is_some_and(|p| p.pubs.iter().any(|q| q.timer == token)),
                TimerKey::RestoreNotify => true,
            });
        }
    }

    /// Keeps a finished NOTIFY transaction's box for the next NOTIFY: a NOTIFY then costs
    /// no allocation.
    fn recycle_tx(&mut self, mut tx: Box<NotifyTx>) {
        if self.pool.len() < MAX_POOLED_TXS {
            // Lets go of the body version (and moved Contact) it held.
            tx.content.body = None;
            tx.content.old_contact = None;
            self.pool.push(tx);
        }
    }

    /// Whether the dialog whose To-tag we handed out still exists (diagnostics, tests).
    pub fn dialog_exists(&self, to_tag: &[u8]) -> bool {
        tags::Token::decode(to_tag).is_some_and(|(_, id)| self.subs.contains_key(&id))
    }

    /// Whether `presentity` has a live publication with this SIP-ETag (diagnostics, tests).
    pub fn publication_exists(&self, presentity: &sip_parser::Aor, etag: &[u8]) -> bool {
        (0..self.packages.len()).any(|pkg| {
            self.pres
                .lookup(&(presentity.clone(), pkg as PkgId))
                .and_then(|slot| self.pres.get(slot))
                .is_some_and(|p| p.find_pub(etag).is_some())
        })
    }

    /// Test aid: checks the core's internal invariants, describing the first violation.
    /// Every live subscription has exactly one live expiry timer; every NOTIFY
    /// transaction exactly one live timer; indexes agree.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut expiry = std::collections::HashMap::<u64, usize>::new();
        let mut tx_timers = std::collections::HashMap::<u64, usize>::new();
        for (_, k) in self.timers.iter() {
            match k {
                TimerKey::SubExpiry { id, token } => {
                    if self
                        .subs
                        .get(&id)
                        .is_some_and(|s| s.expiry_token == token && s.is_live())
                    {
                        *expiry.entry(id).or_default() += 1;
                    }
                }
                TimerKey::Notify { id, cseq } => {
                    if self
                        .subs
                        .get(&id)
                        .and_then(|s| s.tx.as_ref())
                        .is_some_and(|t| t.cseq == cseq)
                    {
                        *tx_timers.entry(id).or_default() += 1;
                    }
                }
                TimerKey::PubExpiry { .. } | TimerKey::RestoreNotify => {}
            }
        }
        for (sec, ids) in self.expiries.iter() {
            for id in ids {
                if self.subs.get(&id).is_some_and(|s| {
                    s.expiry_token != 0 && s.is_live() && ExpiryWheel::second(s.expiry_armed) == sec
                }) {
                    *expiry.entry(id).or_default() += 1;
                }
            }
        }
        for (id, s) in &self.subs {
            if s.is_live() && expiry.get(id) != Some(&1) {
                return Err(format!(
                    "live subscription {id:x} has {:?} expiry timers",
                    expiry.get(id)
                ));
            }
            if s.tx.is_some() && tx_timers.get(id) != Some(&1) {
                return Err(format!(
                    "NOTIFY transaction of {id:x} has {:?} timers",
                    tx_timers.get(id)
                ));
            }
            match self.pres.get(s.pres) {
                Some(p) if p.watchers.contains(id) => {}
                _ => {
                    return Err(format!(
                        "subscription {id:x} missing from its presentity's watchers"
                    ))
                }
            }
        }
        let mut pubs = 0;
        for (slot, p) in self.pres.iter() {
            pubs += p.pubs.len();
            for w in &p.watchers {
                if self.subs.get(w).map(|s| s.pres) != Some(slot) {
                    return Err(format!("presentity {} lists unknown watcher {w:x}", p.aor));
                }
            }
            if p.hash != tags::aor_hash(p.aor.as_bytes())
                || p.hash % self.shards as u32 != self.shard.0 as u32
            {
                return Err(format!("presentity {} hash/shard mismatch", p.aor));
            }
            if p.pubs.is_empty() && p.watchers.is_empty() {
                return Err(format!("empty presentity {} kept", p.aor));
            }
            if p.pubs.windows(2).any(|w| w[0].order <= w[1].order) {
                return Err(format!("publications of {} not newest first", p.aor));
            }
        }
        if pubs != self.pres.publications {
            return Err(format!(
                "publication count {} != {}",
                self.pres.publications, pubs
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn push_header_u32(out: &mut Vec<u8>, name: &[u8], value: u32) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    push_u32(out, value);
    out.extend_from_slice(b"\r\n");
}

/// `name` (with its colon and space), `value`, CRLF. The name is an array so its length is a
/// constant: copied inline, where a slice chosen at run time is a `memcpy` call.
#[inline(always)]
fn header_line<const N: usize>(out: &mut Vec<u8>, name: &[u8; N], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Status line plus the Via, From, To, Call-ID and CSeq of `req` (RFC 3261 §8.2.6.2), as
/// `sip_parser::ResponseWriter` writes them; `to_tag` is added unless To has a tag
/// (`to_tagged`, parsed here only when the caller does not know).
fn write_response_head(
    out: &mut Vec<u8>,
    req: &Message<'_, '_>,
    code: u16,
    reason: &str,
    to_tag: &[u8],
    to_tagged: Option<bool>,
) {
    out.extend_from_slice(b"SIP/2.0 ");
    push_u32(out, u32::from(code));
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in req.headers {
        match h.kind {
            // Name and colon as one literal: one copy fewer per header than `push_header`.
            HeaderKind::Via => header_line(out, b"Via: ", h.value),
            HeaderKind::From => header_line(out, b"From: ", h.value),
            HeaderKind::CallId => header_line(out, b"Call-ID: ", h.value),
            HeaderKind::CSeq => header_line(out, b"CSeq: ", h.value),
            HeaderKind::To => {
                out.extend_from_slice(b"To: ");
                out.extend_from_slice(h.value);
                let tagged = to_tagged.unwrap_or_else(|| {
                    sip_parser::NameAddr::parse(h.value).is_none_or(|n| n.param(b"tag").is_some())
                });
                if !tagged {
                    out.extend_from_slice(b";tag=");
                    out.extend_from_slice(to_tag);
                }
                out.extend_from_slice(b"\r\n");
            }
            _ => {}
        }
    }
}

/// A To tag for a response that creates no dialog: `n` + the transaction key in hex. It never
/// decodes as one of our dialog tokens, so a request carrying it is simply not in a dialog.
fn stateless_tag(key: u64, buf: &mut [u8; 17]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf[0] = b'n';
    for (i, b) in buf[1..].iter_mut().enumerate() {
        *b = HEX[((key >> (60 - 4 * i)) & 0xf) as usize];
    }
    &buf[..]
}
