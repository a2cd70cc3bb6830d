//! The generator: one worker per thread, each owning its sockets and calls.
//!
//! Why this shape: every response and NOTIFY comes back to the socket that sent the
//! request (the Contact names that socket), and the Call-ID names the thread and call slot,
//! so a worker never touches another worker's state. The only shared data are a few
//! atomics for fan-out phase changes and NOTIFY accounting. PUBLISH→NOTIFY delay needs no
//! shared table either: the PUBLISH body carries its send time (Unix-epoch ns, so stamps left
//! on the server by earlier runs are older than ours and never mistaken for this run's).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, Scenario};
use crate::msg::{self, Ids, Method, Req, User};
use crate::net::{self, RecvBatch, SendQueue};
use crate::stats::{record, Report, Stats};
use crate::wire::{self, Start};

/// Most calls started in one open-loop round (keeps each round short).
const MAX_STARTS_PER_ROUND: u64 = 4_096;
/// Most receive batches drained from one socket per round (fairness between sockets).
const MAX_RECV_BATCHES: usize = 16;
/// A kernel arrival stamp older than this (or in the future) is not trusted: the wall
/// clock stepped during the run.
const MAX_ARRIVAL_LAG_NS: u64 = 1_000_000_000;
/// Calls started on one socket before the next one takes its turn (`Worker::pick_sock`).
const CALLS_PER_SOCKET_TURN: usize = 16;
/// Longest sleep, so phase changes and deadlines are noticed promptly.
const MAX_WAIT: Duration = Duration::from_millis(20);

const WATCHER_PREFIX: &str = "watcher";

/// State shared by all workers of one run.
pub struct Shared {
    pub epoch: Instant,
    /// Unix time of `epoch`, ns: PIDF stamps are `epoch_unix_ns + now`.
    pub epoch_unix_ns: u64,
    pub run: u32,
    setup_done: AtomicUsize,
    run_done: AtomicUsize,
    teardown_done: AtomicUsize,
    run_start_ns: AtomicU64,
    expected_pub_notifies: AtomicU64,
    pub_notifies: AtomicU64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Options,
    Subscribe,
    Publish,
    Churn,
    Watcher,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Retransmit,
    NotifyWait,
}

/// (deadline ns, slot, generation, cseq, kind); stale entries are skipped when they fire.
type Timer = (u64, u32, u32, u32, TimerKind);

struct Call {
    gen: u32,
    active: bool,
    kind: Kind,
    step: u8,
    user: u64,
    target: u64,
    sock: u16,
    cseq: u32,
    waiting_final: bool,
    got_final: bool,
    need_notify: bool,
    got_notify: bool,
    holding: bool,
    first_ns: u64,
    interval_ns: u64,
    /// Local index of the published user (publish busy flag / entity tag), if any.
    pub_slot: Option<u32>,
    remote_tag: Vec<u8>,
    req: Vec<u8>,
}

impl Call {
    fn empty() -> Call {
        Call {
            gen: 0,
            active: false,
            kind: Kind::Options,
            step: 0,
            user: 0,
            target: 0,
            sock: 0,
            cseq: 0,
            waiting_final: false,
            got_final: false,
            need_notify: false,
            got_notify: false,
            holding: false,
            first_ns: 0,
            interval_ns: 0,
            pub_slot: None,
            remote_tag: Vec::new(),
            req: Vec::new(),
        }
    }
}

/// A user this worker publishes for: its current entity tag and whether a PUBLISH is in flight.
#[derive(Default)]
struct Publication {
    etag: Vec<u8>,
    busy: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Setup,
    WaitSetup,
    Run,
    Drain,
    WaitRun,
    Teardown,
    WaitTeardown,
    Done,
}

struct Worker {
    id: usize,
    cfg: Arc<Config>,
    shared: Arc<Shared>,
    socks: Vec<UdpSocket>,
    local: Vec<SocketAddr>,
    pollfds: Vec<libc::pollfd>,
    out: Vec<SendQueue>,
    rx: RecvBatch,
    scratch: Vec<u8>,
    calls: Vec<Call>,
    free: Vec<u32>,
    timers: BinaryHeap<Reverse<Timer>>,
    outstanding: usize,
    stats: Stats,
    final_stats: Option<Stats>,
    phase: Phase,
    phase_deadline_ns: u64,
    hard_deadline_ns: u64,
    /// Calls this worker may start in the measured phase, and has started/scheduled.
    quota: u64,
    scheduled: u64,
    rate: Option<f64>,
    max_out: usize,
    run_start_ns: u64,
    run_end_ns: u64,
    next_sock: usize,
    /// Calls started on `next_sock` since it became current (see [`CALLS_PER_SOCKET_TURN`]).
    sock_turn: usize,
    /// Publishers owned by this worker: global user = id + j * threads.
    pubs: Vec<Publication>,
    pub_cursor: usize,
    /// Fan-out watchers owned by this worker: global watcher = id + j * threads.
    watchers_local: u64,
    watchers_started: u64,
    held: Vec<u32>,
    teardown_cursor: usize,
}

fn ns(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

fn share(total: u64, parts: usize, i: usize) -> u64 {
    let parts = parts as u64;
    total / parts + u64::from((i as u64) < total % parts)
}

impl Worker {
    fn now(&self) -> u64 {
        ns(self.shared.epoch.elapsed())
    }

    /// A datagram's arrival on this run's clock: the kernel's stamp (wall clock, converted
    /// through the epoch's wall time) when it is plausible, else `now` (when it was read).
    fn arrival(&self, stamp_unix_ns: Option<u64>, now: u64) -> u64 {
        stamp_unix_ns
            .and_then(|u| u.checked_sub(self.shared.epoch_unix_ns))
            .filter(|&t| t <= now && now - t < MAX_ARRIVAL_LAG_NS)
            .unwrap_or(now)
    }

    fn new(id: usize, cfg: Arc<Config>, shared: Arc<Shared>) -> std::io::Result<Worker> {
        let n_socks = share(cfg.sockets as u64, cfg.threads, id) as usize;
        let bind: SocketAddr = if cfg.target.is_ipv4() {
            "127.0.0.1:0".parse().expect("literal")
        } else {
            "[::1]:0".parse().expect("literal")
        };
        let mut socks = Vec::with_capacity(n_socks);
        let mut local = Vec::with_capacity(n_socks);
        let mut pollfds = Vec::with_capacity(n_socks);
        for _ in 0..n_socks {
            let s = net::udp_socket(bind, false, true)?;
            // Best effort: without kernel stamps, arrival is when the datagram is read.
            let _ = net::enable_rx_timestamps(net::raw_fd(&s));
            local.push(s.local_addr()?);
            pollfds.push(libc::pollfd {
                fd: net::raw_fd(&s),
                events: libc::POLLIN,
                revents: 0,
            });
            socks.push(s);
        }
        let threads = cfg.threads;
        let (quota, pubs_n, watchers_local) = match cfg.scenario {
            Scenario::Fanout => (
                share(cfg.count, threads, id),
                share(cfg.presentities, threads, id),
                share(cfg.presentities * cfg.watchers, threads, id),
            ),
            Scenario::Publish => (
                share(cfg.count, threads, id),
                share(cfg.users, threads, id),
                0,
            ),
            _ => (share(cfg.count, threads, id), 0, 0),
        };
        let max_out = (cfg.max_outstanding / threads).max(1);
        let rate = cfg.rate.map(|r| r / threads as f64);
        let hard = ns(cfg.setup_timeout * 2
            + cfg.duration
            + cfg.timeout * 2
            + cfg.notify_timeout * 2
            + Duration::from_secs(5));
        let phase = if cfg.scenario == Scenario::Fanout {
            Phase::Setup
        } else {
            Phase::Run
        };
        let mut w = Worker {
            id,
            out: (0..n_socks).map(|_| SendQueue::default()).collect(),
            socks,
            local,
            pollfds,
            rx: RecvBatch::new(),
            scratch: Vec::with_capacity(1024),
            calls: Vec::new(),
            free: Vec::new(),
            timers: BinaryHeap::new(),
            outstanding: 0,
            stats: Stats::default(),
            final_stats: None,
            phase,
            phase_deadline_ns: 0,
            hard_deadline_ns: 0,
            quota,
            scheduled: 0,
            rate,
            max_out,
            run_start_ns: 0,
            run_end_ns: 0,
            next_sock: 0,
            sock_turn: 0,
            pubs: (0..pubs_n).map(|_| Publication::default()).collect(),
            pub_cursor: 0,
            watchers_local,
            watchers_started: 0,
            held: Vec::new(),
            teardown_cursor: 0,
            cfg,
            shared,
        };
        let now = w.now();
        w.hard_deadline_ns = now + hard;
        if w.phase == Phase::Setup {
            w.phase_deadline_ns = now + ns(w.cfg.setup_timeout);
        } else {
            w.begin_run(now);
        }
        Ok(w)
    }

    fn begin_run(&mut self, now: u64) {
        // Fan-out setup figures are not part of the measured phase; keep only the watcher count.
        let established = self.stats.watchers_established;
        self.stats = Stats::default();
        self.stats.watchers_established = established;
        self.phase = Phase::Run;
        self.run_start_ns = now;
        self.run_end_ns = now + ns(self.cfg.duration);
        self.stats.phase_start_ns = now;
        self.shared.run_start_ns.fetch_min(now, Ordering::Relaxed);
    }

    fn alloc(&mut self) -> u32 {
        if let Some(s) = self.free.pop() {
            return s;
        }
        self.calls.push(Call::empty());
        (self.calls.len() - 1) as u32
    }

    /// Consecutive calls share a socket for [`CALLS_PER_SOCKET_TURN`] calls, then the next
    /// socket takes over: over a run every socket (source port) carries its share, while the
    /// calls started in one open-loop round (`run`) and their answers meet on few sockets,
    /// so one `sendmmsg` / `recvmmsg` moves several. (Alone, without the rounds, it saved
    /// nothing: the loop then woke per event and each send was one datagram anyway.)
    fn pick_sock(&mut self) -> u16 {
        let s = self.next_sock;
        self.sock_turn += 1;
        if self.sock_turn >= CALLS_PER_SOCKET_TURN {
            self.sock_turn = 0;
            self.next_sock = (self.next_sock + 1) % self.socks.len();
        }
        s as u16
    }

    /// Starts one call of `kind`. Returns false if it could not (no free publisher).
    fn start_call(&mut self, kind: Kind, now: u64) -> bool {
        let threads = self.cfg.threads as u64;
        let (user, target, pub_slot) = match kind {
            Kind::Options | Kind::Subscribe | Kind::Churn => {
                let g = self.id as u64 + threads * self.stats.calls_started;
                let u = self.cfg.users;
                (g % u, (g + 1) % u, None)
            }
            Kind::Publish => {
                let n = self.pubs.len();
                let mut found = None;
                for _ in 0..n {
                    let j = self.pub_cursor;
                    self.pub_cursor = (self.pub_cursor + 1) % n;
                    if !self.pubs[j].busy {
                        found = Some(j);
                        break;
                    }
                }
                let Some(j) = found else { return false };
                self.pubs[j].busy = true;
                let u = self.id as u64 + threads * j as u64;
                (u, u, Some(j as u32))
            }
            Kind::Watcher => {
                let k = self.id as u64 + threads * self.watchers_started;
                self.watchers_started += 1;
                (k, k % self.cfg.presentities, None)
            }
        };
        let slot = self.alloc();
        let sock = self.pick_sock();
        let c = &mut self.calls[slot as usize];
        c.active = true;
        c.kind = kind;
        c.step = 0;
        c.user = user;
        c.target = target;
        c.sock = sock;
        c.cseq = 0;
        c.holding = false;
        c.pub_slot = pub_slot;
        c.remote_tag.clear();
        self.outstanding += 1;
        self.stats.calls_started += 1;
        self.send_step(slot, now);
        true
    }

    /// Builds and sends the request of the call's current step.
    fn send_step(&mut self, slot: u32, now: u64) {
        let cfg = &*self.cfg;
        let c = &mut self.calls[slot as usize];
        c.cseq += 1;
        let (method, expires, need_notify) = match (c.kind, c.step) {
            (Kind::Options, _) => (Method::Options, None, false),
            (Kind::Publish, _) => (Method::Publish, Some(cfg.expires), false),
            (Kind::Subscribe, _) | (Kind::Watcher, 0) | (Kind::Churn, 0 | 1) => {
                (Method::Subscribe, Some(cfg.expires), true)
            }
            (Kind::Watcher, _) | (Kind::Churn, _) => (Method::Subscribe, Some(0), true),
        };
        let from_prefix = if c.kind == Kind::Watcher {
            WATCHER_PREFIX
        } else {
            cfg.user_prefix.as_str()
        };
        let etag = match c.pub_slot {
            Some(j) if !self.pubs[j as usize].etag.is_empty() => {
                Some(self.pubs[j as usize].etag.as_slice())
            }
            _ => None,
        };
        let Call {
            req, remote_tag, ..
        } = c;
        let r = Req {
            method,
            target: User {
                prefix: cfg.user_prefix.as_bytes(),
                n: c.target,
            },
            from: User {
                prefix: from_prefix.as_bytes(),
                n: c.user,
            },
            domain: cfg.domain.as_bytes(),
            ids: Ids {
                run: self.shared.run,
                thread: self.id as u32,
                slot,
                gen: c.gen,
            },
            cseq: c.cseq,
            to_tag: if remote_tag.is_empty() {
                None
            } else {
                Some(remote_tag.as_slice())
            },
            local: self.local[c.sock as usize],
            expires,
            if_match: etag,
            pidf_stamp: (method == Method::Publish).then_some(self.shared.epoch_unix_ns + now),
        };
        req.clear();
        msg::write_request(req, &mut self.scratch, &r);
        c.waiting_final = true;
        c.got_final = false;
        c.need_notify = need_notify;
        c.got_notify = false;
        c.first_ns = now;
        c.interval_ns = ns(cfg.t1);
        let deadline = (now + c.interval_ns).min(now + ns(cfg.timeout));
        self.timers.push(Reverse((
            deadline,
            slot,
            c.gen,
            c.cseq,
            TimerKind::Retransmit,
        )));
        self.out[c.sock as usize].push(cfg.target, &c.req);
        self.stats.requests += 1;
    }

    fn finish(&mut self, slot: u32, ok: bool, now: u64) {
        let c = &mut self.calls[slot as usize];
        debug_assert!(c.active);
        c.active = false;
        c.holding = false;
        c.waiting_final = false;
        c.gen = c.gen.wrapping_add(1);
        let kind = c.kind;
        if let Some(j) = c.pub_slot.take() {
            self.pubs[j as usize].busy = false;
        }
        self.outstanding -= 1;
        if ok {
            self.stats.calls_ok += 1;
        } else {
            self.stats.calls_failed += 1;
        }
        if kind == Kind::Watcher {
            // Fan-out setup and teardown: not the measured calls.
            self.stats.last_completion_ns = now;
        } else {
            self.stats.completed(now);
        }
        self.free.push(slot);
    }

    fn step_done(&mut self, slot: u32, now: u64) {
        let c = &mut self.calls[slot as usize];
        match (c.kind, c.step) {
            (Kind::Churn, 0 | 1) => {
                c.step += 1;
                self.send_step(slot, now);
            }
            (Kind::Watcher, 0) => {
                c.holding = true;
                c.step = 1;
                self.outstanding -= 1;
                self.stats.watchers_established += 1;
                self.held.push(slot);
            }
            _ => self.finish(slot, true, now),
        }
    }

    fn lookup(&self, call_id: &[u8]) -> Option<u32> {
        let ids = Ids::parse_call_id(call_id)?;
        if ids.run != self.shared.run || ids.thread as usize != self.id {
            return None;
        }
        let c = self.calls.get(ids.slot as usize)?;
        (c.active && c.gen == ids.gen).then_some(ids.slot)
    }

    fn on_response(&mut self, m: &wire::Incoming, code: u16, now: u64) {
        let Some(slot) = self.lookup(m.call_id) else {
            self.stats.responses_stray += 1;
            return;
        };
        let c = &mut self.calls[slot as usize];
        let method = match c.kind {
            Kind::Options => &b"OPTIONS"[..],
            Kind::Publish => b"PUBLISH",
            _ => b"SUBSCRIBE",
        };
        if !c.waiting_final || m.cseq != c.cseq || !m.cseq_method.eq_ignore_ascii_case(method) {
            self.stats.responses_stray += 1;
            return;
        }
        if code < 200 {
            self.stats.responses_provisional += 1;
            c.interval_ns = ns(self.cfg.t2);
            return;
        }
        c.waiting_final = false;
        record(&mut self.stats.rtt, now.saturating_sub(c.first_ns));
        if code >= 300 {
            if code == 412 {
                if let Some(j) = c.pub_slot {
                    self.pubs[j as usize].etag.clear();
                }
            }
            self.stats.failure_code(code);
            self.finish(slot, false, now);
            return;
        }
        self.stats.responses_2xx += 1;
        c.got_final = true;
        if c.remote_tag.is_empty() && c.kind != Kind::Publish && c.kind != Kind::Options {
            if let Some(t) = m.to_tag {
                c.remote_tag.extend_from_slice(t);
            }
        }
        if let Some(j) = c.pub_slot {
            let p = &mut self.pubs[j as usize];
            p.etag.clear();
            if let Some(e) = m.etag {
                p.etag.extend_from_slice(e);
            }
            self.stats.publishes_ok += 1;
            if self.cfg.scenario == Scenario::Fanout {
                self.shared
                    .expected_pub_notifies
                    .fetch_add(self.cfg.watchers, Ordering::Relaxed);
            }
        }
        if c.need_notify && !c.got_notify {
            let deadline = now + ns(self.cfg.notify_timeout);
            self.timers.push(Reverse((
                deadline,
                slot,
                c.gen,
                c.cseq,
                TimerKind::NotifyWait,
            )));
        } else {
            self.step_done(slot, now);
        }
    }

    fn on_notify(&mut self, m: &wire::Incoming, now: u64) {
        self.stats.notifies += 1;
        let Some(slot) = self.lookup(m.call_id) else {
            self.stats.notifies_stray += 1;
            return;
        };
        let c = &mut self.calls[slot as usize];
        if c.remote_tag.is_empty() {
            if let Some(t) = m.from_tag {
                c.remote_tag.extend_from_slice(t);
            }
        }
        if c.holding {
            if m.terminated {
                // The server ended it (expiry): nothing to unsubscribe later.
                c.holding = false;
            }
            if let Some(stamp) = wire::body_stamp(m.body) {
                let run_start = self.shared.run_start_ns.load(Ordering::Relaxed);
                let stamp = stamp.saturating_sub(self.shared.epoch_unix_ns);
                if stamp >= run_start && stamp <= now {
                    record(&mut self.stats.pub_notify, now - stamp);
                    self.stats.publish_notifies += 1;
                    self.stats.completed(now);
                    self.shared.pub_notifies.fetch_add(1, Ordering::Relaxed);
                }
            }
            return;
        }
        if c.need_notify && !c.got_notify {
            c.got_notify = true;
            record(&mut self.stats.sub_notify, now.saturating_sub(c.first_ns));
            if c.got_final {
                self.step_done(slot, now);
            }
        }
    }

    fn on_datagram(&mut self, sock: usize, buf: &[u8], src: Option<SocketAddr>, now: u64) {
        self.stats.datagrams_received += 1;
        let Some(m) = wire::scan(buf) else {
            self.stats.unparseable += 1;
            return;
        };
        match m.start {
            Start::Response { code } => self.on_response(&m, code, now),
            Start::Request { method } => {
                // Answer first: NOTIFY (and OPTIONS keep-alives) always get a 200.
                if let Some(src) = src {
                    let ok = method == b"NOTIFY" || method == b"OPTIONS";
                    let (code, reason): (u16, &[u8]) = if ok {
                        (200, b"OK")
                    } else {
                        (501, b"Not Implemented")
                    };
                    self.out[sock].push_with(src, |b| {
                        msg::write_response(b, buf, code, reason, None);
                    });
                }
                if method == b"NOTIFY" {
                    self.on_notify(&m, now);
                }
            }
        }
    }

    fn fire_timers(&mut self, now: u64) {
        while let Some(&Reverse((deadline, slot, gen, cseq, kind))) = self.timers.peek() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.calls.get_mut(slot as usize) else {
                continue;
            };
            if !c.active || c.gen != gen || c.cseq != cseq {
                continue;
            }
            match kind {
                TimerKind::Retransmit => {
                    if !c.waiting_final {
                        continue;
                    }
                    let give_up = c.first_ns + ns(self.cfg.timeout);
                    if now >= give_up {
                        self.stats.timeouts += 1;
                        self.finish(slot, false, now);
                        continue;
                    }
                    self.out[c.sock as usize].push(self.cfg.target, &c.req);
                    self.stats.retransmissions += 1;
                    c.interval_ns = (c.interval_ns * 2).min(ns(self.cfg.t2));
                    let next = (now + c.interval_ns).min(give_up);
                    self.timers
                        .push(Reverse((next, slot, gen, cseq, TimerKind::Retransmit)));
                }
                TimerKind::NotifyWait => {
                    if c.got_final && c.need_notify && !c.got_notify && !c.holding {
                        self.stats.notify_timeouts += 1;
                        self.finish(slot, false, now);
                    }
                }
            }
        }
    }

    fn flush(&mut self) {
        for (i, q) in self.out.iter_mut().enumerate() {
            if q.pending() == 0 {
                continue;
            }
            match q.flush(net::raw_fd(&self.socks[i])) {
                Ok(n) => self.stats.datagrams_sent += n as u64,
                Err(_) => self.stats.send_errors += 1,
            }
        }
    }

    fn receive(&mut self, wait_ns: u64) {
        let ready = match net::wait_readable(&mut self.pollfds, wait_ns) {
            Ok(n) => n,
            Err(_) => return,
        };
        if ready == 0 {
            return;
        }
        let mut rx = std::mem::take(&mut self.rx);
        for i in 0..self.socks.len() {
            if self.pollfds[i].revents & libc::POLLIN == 0 {
                continue;
            }
            for _ in 0..MAX_RECV_BATCHES {
                let n = rx
                    .recv(net::raw_fd(&self.socks[i]), false)
                    .unwrap_or_default();
                if n == 0 {
                    break;
                }
                let now = self.now();
                for k in 0..n {
                    let (buf, src) = rx.get(k);
                    let at = self.arrival(rx.arrival_unix_ns(k), now);
                    self.on_datagram(i, buf, src, at);
                }
                if n < net::MAX_BATCH {
                    break;
                }
            }
        }
        self.rx = rx;
    }

    /// Starts calls due in the measured phase. Returns ns until the next start is due.
    fn start_due(&mut self, now: u64) -> Option<u64> {
        let kind = match self.cfg.scenario {
            Scenario::Options => Kind::Options,
            Scenario::Subscribe => Kind::Subscribe,
            Scenario::Publish | Scenario::Fanout => Kind::Publish,
            Scenario::Churn => Kind::Churn,
        };
        match self.rate {
            Some(rate) => {
                let elapsed = now.saturating_sub(self.run_start_ns) as f64 / 1e9;
                let due = ((elapsed * rate) as u64 + 1).min(self.quota);
                let n = due.saturating_sub(self.scheduled).min(MAX_STARTS_PER_ROUND);
                for _ in 0..n {
                    self.scheduled += 1;
                    if self.outstanding >= self.max_out || !self.start_call(kind, now) {
                        self.stats.calls_skipped += 1;
                    }
                }
                if self.scheduled >= self.quota {
                    return None;
                }
                let next_at = self.run_start_ns + ((self.scheduled as f64 / rate) * 1e9) as u64;
                Some(next_at.saturating_sub(now))
            }
            None => {
                while self.outstanding < self.max_out && self.scheduled < self.quota {
                    self.scheduled += 1;
                    if !self.start_call(kind, now) {
                        self.stats.calls_skipped += 1;
                        break;
                    }
                }
                None
            }
        }
    }

    fn all(&self, counter: &AtomicUsize) -> bool {
        counter.load(Ordering::Acquire) >= self.cfg.threads
    }

    /// Advances the phase machine and starts the calls the phase wants.
    /// Returns ns until something is due (for the sleep).
    fn step_phase(&mut self, now: u64) -> Option<u64> {
        if now >= self.hard_deadline_ns && self.phase != Phase::Done {
            self.phase = Phase::Done;
        }
        match self.phase {
            Phase::Setup => {
                let cap = (self.cfg.setup_outstanding / self.cfg.threads).max(1);
                while self.outstanding < cap && self.watchers_started < self.watchers_local {
                    self.start_call(Kind::Watcher, now);
                }
                if (self.watchers_started >= self.watchers_local && self.outstanding == 0)
                    || now >= self.phase_deadline_ns
                {
                    self.shared.setup_done.fetch_add(1, Ordering::AcqRel);
                    self.phase = Phase::WaitSetup;
                }
                None
            }
            Phase::WaitSetup => {
                if self.all(&self.shared.setup_done) || now >= self.phase_deadline_ns {
                    self.begin_run(now);
                }
                None
            }
            Phase::Run => {
                if now >= self.run_end_ns || self.scheduled >= self.quota {
                    self.stats.phase_send_end_ns = now;
                    self.phase = Phase::Drain;
                    self.phase_deadline_ns =
                        now + ns(self.cfg.timeout) + ns(self.cfg.notify_timeout);
                    return None;
                }
                self.start_due(now)
            }
            Phase::Drain => {
                if self.outstanding == 0 || now >= self.phase_deadline_ns {
                    if self.cfg.scenario == Scenario::Fanout {
                        self.shared.run_done.fetch_add(1, Ordering::AcqRel);
                        self.phase = Phase::WaitRun;
                        self.phase_deadline_ns = now + ns(self.cfg.notify_timeout);
                    } else {
                        self.phase = Phase::Done;
                    }
                }
                None
            }
            Phase::WaitRun => {
                let all_done = self.all(&self.shared.run_done);
                let got = self.shared.pub_notifies.load(Ordering::Relaxed);
                let want = self.shared.expected_pub_notifies.load(Ordering::Relaxed);
                if (all_done && got >= want) || now >= self.phase_deadline_ns {
                    self.stats.end_ns = now;
                    self.final_stats = Some(self.stats.clone());
                    if self.cfg.unsubscribe {
                        self.phase = Phase::Teardown;
                        self.phase_deadline_ns = now + ns(self.cfg.setup_timeout);
                    } else {
                        self.phase = Phase::Done;
                    }
                }
                None
            }
            Phase::Teardown => {
                let cap = (self.cfg.setup_outstanding / self.cfg.threads).max(1);
                while self.outstanding < cap && self.teardown_cursor < self.held.len() {
                    let slot = self.held[self.teardown_cursor];
                    self.teardown_cursor += 1;
                    let c = &mut self.calls[slot as usize];
                    if !c.active || !c.holding {
                        continue;
                    }
                    c.holding = false;
                    self.outstanding += 1;
                    self.send_step(slot, now);
                }
                if (self.teardown_cursor >= self.held.len() && self.outstanding == 0)
                    || now >= self.phase_deadline_ns
                {
                    self.shared.teardown_done.fetch_add(1, Ordering::AcqRel);
                    self.phase = Phase::WaitTeardown;
                }
                None
            }
            Phase::WaitTeardown => {
                if self.all(&self.shared.teardown_done) || now >= self.phase_deadline_ns {
                    self.phase = Phase::Done;
                }
                None
            }
            Phase::Done => None,
        }
    }

    fn run(mut self) -> Stats {
        let tick_ns = ns(self.cfg.tick);
        let mut round_start = 0u64;
        loop {
            // Open loop: at most one round per tick. Everything due or arrived meanwhile is
            // handled in one go (one `sendmmsg` / `recvmmsg` per busy socket instead of one
            // per event: the generator's CPU is CPU the server under test does not get);
            // arrival times come from the kernel's stamps, so latencies do not include it.
            if self.rate.is_some() {
                let since = self.now().saturating_sub(round_start);
                if since < tick_ns {
                    std::thread::sleep(Duration::from_nanos(tick_ns - since));
                }
                round_start = self.now();
            }
            let now = self.now();
            let due_in = self.step_phase(now);
            if self.phase == Phase::Done {
                break;
            }
            self.fire_timers(now);
            self.flush();
            let tick = ns(self.cfg.tick);
            let mut wait = ns(MAX_WAIT);
            if let Some(d) = due_in {
                wait = wait.min(d.max(tick));
            }
            if let Some(Reverse((deadline, ..))) = self.timers.peek() {
                wait = wait.min(deadline.saturating_sub(now));
            }
            if self.out.iter().any(|q| q.pending() > 0) {
                wait = wait.min(tick);
            }
            self.receive(wait);
            self.flush();
        }
        // Answer what is already queued (e.g. 200s to final NOTIFYs) before leaving.
        self.flush();
        let now = self.now();
        let mut s = self.final_stats.take().unwrap_or(self.stats);
        if s.phase_send_end_ns == 0 {
            s.phase_send_end_ns = now;
        }
        if s.end_ns == 0 {
            s.end_ns = now;
        }
        s
    }
}

/// Runs the configured load and returns the merged report.
pub fn run(cfg: Config) -> Result<Report, String> {
    cfg.validate()?;
    let cfg = Arc::new(cfg);
    let epoch = Instant::now();
    let epoch_unix_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, ns);
    let run = (std::process::id() ^ (epoch.elapsed().subsec_nanos() << 8)) % 1_000_000_000;
    let shared = Arc::new(Shared {
        epoch,
        epoch_unix_ns,
        run: run.max(1),
        setup_done: AtomicUsize::new(0),
        run_done: AtomicUsize::new(0),
        teardown_done: AtomicUsize::new(0),
        run_start_ns: AtomicU64::new(u64::MAX),
        expected_pub_notifies: AtomicU64::new(0),
        pub_notifies: AtomicU64::new(0),
    });
    let mut workers = Vec::new();
    for id in 0..cfg.threads {
        workers.push(
            Worker::new(id, cfg.clone(), shared.clone())
                .map_err(|e| format!("cannot open sockets: {e}"))?,
        );
    }
    let handles: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(id, w)| {
            std::thread::Builder::new()
                .name(format!("load-{id}"))
                .spawn(move || w.run())
                .map_err(|e| format!("cannot spawn thread: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let mut total = Stats::default();
    for h in handles {
        let s = h.join().map_err(|_| "worker thread panicked".to_string())?;
        total.merge(&s);
    }
    let expected = if cfg.scenario == Scenario::Fanout {
        shared.expected_pub_notifies.load(Ordering::Relaxed)
    } else {
        0
    };
    Ok(Report {
        scenario: cfg.scenario.name().into(),
        target: cfg.target.to_string(),
        threads: cfg.threads,
        sockets: cfg.sockets,
        offered_rate: cfg.rate,
        max_outstanding: cfg.rate.is_none().then_some(cfg.max_outstanding),
        watchers_per_presentity: if cfg.scenario == Scenario::Fanout {
            cfg.watchers
        } else {
            0
        },
        expected_publish_notifies: expected,
        stats: total,
    })
}
