//! The simulated world: one or two cores (a shard each, `route()` picks the owner as the
//! edge would), simulated watchers and publishers, a lossy network and a simulated clock.
//! Some watchers leave for good without unsubscribing: what the server then sends them hits a
//! closed port, and the host answers with an ICMP port unreachable (itself lossy and late)
//! that reaches the owning core through `route_refused` / `handle_refused`, as the edge does
//! with `--udp-icmp-errors`. Everything derives from one seed, so a failing seed replays
//! exactly.

pub mod net;
pub mod ua;

use net::{Net, Packet};
use server::core::rng::Rng;
use server::core::tags::Token;
use server::core::{
    route, route_refused, shard_for, Config, Core, Instant, Peer, PersistOp, PublicationRecord,
    Route, SendRefused, ShardId, SubscriptionRecord, Transport,
};
use std::collections::BTreeSet;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use ua::{markers, Outbox, Publisher, Watcher};

/// Simulated ms during which UAs act; then the network heals and everything settles.
pub const ACT_MS: u64 = 300_000;
/// Settling time: longer than Timer F so every transaction has ended.
pub const SETTLE_MS: u64 = 40_000;
/// Start of the simulated clock (so no arithmetic sits at 0).
const EPOCH: u64 = 1_000_000;

#[derive(Debug, Default)]
pub struct Outcome {
    pub packets: u64,
    pub lost: u64,
    pub notifies: u64,
    pub converged_checks: u64,
    pub crashes: u64,
    /// ICMP errors delivered to a core, and how many of them ended a NOTIFY in flight.
    pub refusals: u64,
    pub refusals_ended: u64,
}

/// Bytes of a refused datagram an ICMP error quotes, at most: the kernel gives ~520. Cuts
/// are drawn from `MIN_QUOTE..=MAX_QUOTE`, so some end mid-header.
const MIN_QUOTE: usize = 200;
const MAX_QUOTE: usize = 600;

/// An ICMP error on its way back to the server.
struct Refusal {
    due: u64,
    dst: SocketAddr,
    quoted: Vec<u8>,
}

/// A simulated store: ops commit `delay` ms after the core emits them; a crash loses the
/// uncommitted ones, and the restarted cores reload what was committed.
struct Store {
    delay: u64,
    pending: VecDeque<(u64, usize, PersistOp)>,
    pubs: BTreeMap<(Vec<u8>, Token), PublicationRecord>,
    subs: BTreeMap<u64, SubscriptionRecord>,
}

impl Store {
    fn apply(&mut self, op: PersistOp) {
        match op {
            PersistOp::PutPublication { rec, .. } => {
                self.pubs
                    .insert((rec.presentity.as_bytes().to_vec(), rec.id), rec);
            }
            PersistOp::DeletePublication { presentity, id, .. } => {
                self.pubs.remove(&(presentity.as_bytes().to_vec(), id));
            }
            PersistOp::PutSubscription { rec, .. } => {
                self.subs.insert(rec.id, rec);
            }
            PersistOp::DeleteSubscription { id, .. } => {
                self.subs.remove(&id);
            }
        }
    }
}

pub struct World {
    net: Net,
    rng: Rng,
    config: Config,
    store: Option<Store>,
    crash_at: Option<u64>,
    crashes: u64,
    cores: Vec<Core>,
    server: SocketAddr,
    watchers: Vec<Watcher>,
    publishers: Vec<Publisher>,
    presentities: usize,
    now: u64,
    limits: sip_parser::Limits,
    /// Watchers that leave for good, and when.
    departures: HashMap<SocketAddr, u64>,
    /// Per mille of ICMP errors lost (0 in some worlds: every one arrives).
    icmp_loss: u64,
    icmp_rng: Rng,
    refusals: Vec<Refusal>,
    refused: u64,
    refused_ended: u64,
}

impl World {
    pub fn new(seed: u64) -> World {
        let mut rng = Rng::new(seed);
        let shards = 1 + rng.below(2) as u16;
        let loss = rng.below(200);
        let dup = rng.below(100);
        let max_delay = 1 + rng.below(150);
        let net = Net::new(rng.next_u64(), loss, dup, 1, max_delay);
        let durable = rng.below(2) == 1;
        let config = Config {
            t1_ms: ua::T1,
            t2_ms: ua::T2,
            durability_gate: durable,
            ..Config::default()
        };
        let store = durable.then(|| Store {
            delay: 1 + rng.below(400),
            pending: VecDeque::new(),
            pubs: BTreeMap::new(),
            subs: BTreeMap::new(),
        });
        let crash_at = durable.then(|| EPOCH + 30_000 + rng.below(ACT_MS - 60_000));
        let cores = (0..shards)
            .map(|s| {
                Core::new(
                    config.clone(),
                    ShardId(s),
                    shards,
                    rng.next_u64(),
                    Instant(EPOCH),
                )
            })
            .collect();
        let presentities = 1 + rng.below(3) as usize;
        let mut watchers = Vec::new();
        let mut publishers = Vec::new();
        for p in 0..presentities {
            for i in 0..(1 + rng.below(2)) as usize {
                let addr = SocketAddr::from(([10, 2, p as u8, i as u8], 5060));
                publishers.push(Publisher::new(
                    addr,
                    p,
                    i,
                    rng.next_u64(),
                    EPOCH + rng.below(20_000),
                ));
            }
            for i in 0..(1 + rng.below(4)) as usize {
                let addr = SocketAddr::from(([10, 1, p as u8, i as u8], 5060));
                watchers.push(Watcher::new(
                    addr,
                    p,
                    rng.next_u64(),
                    EPOCH + rng.below(20_000),
                ));
            }
        }
        // Its own generator, so the worlds drawn above stay what they were before departures.
        let mut icmp_rng = Rng::new(seed ^ 0x1c3b_7e57_0000_0001);
        let mut departures = HashMap::new();
        for w in &watchers {
            if icmp_rng.below(3) == 0 {
                let at = EPOCH + 20_000 + icmp_rng.below(ACT_MS - 40_000);
                departures.insert(w.addr, at);
            }
        }
        let icmp_loss = match icmp_rng.below(4) {
            0 => 0,
            _ => icmp_rng.below(600),
        };
        World {
            departures,
            icmp_loss,
            icmp_rng,
            refusals: Vec::new(),
            refused: 0,
            refused_ended: 0,
            net,
            rng,
            config,
            store,
            crash_at,
            crashes: 0,
            cores,
            server: SocketAddr::from(([127, 0, 0, 1], 5060)),
            watchers,
            publishers,
            presentities,
            now: EPOCH,
            limits: sip_parser::Limits::default(),
        }
    }

    fn owner(&self, bytes: &[u8]) -> Option<usize> {
        match route(bytes, self.cores.len() as u16, &self.limits) {
            Route::Local => Some(0),
            Route::Shard(ShardId(s)) => Some(s as usize),
            Route::Drop => None,
        }
    }

    fn flush(&mut self, outbox: &mut Outbox, src: SocketAddr) {
        for (dst, bytes) in outbox.drain(..) {
            self.net.send(self.now, Packet { src, dst, bytes });
        }
    }

    fn drain_cores(&mut self) {
        let mut buf = Vec::new();
        for c in 0..self.cores.len() {
            buf.clear();
            let mut sends = Vec::new();
            while let Some(t) = self.cores[c].poll_transmit(&mut buf) {
                sends.push((t.dst.addr, buf[t.offset..t.offset + t.len].to_vec()));
            }
            for (dst, bytes) in sends {
                self.net.send(
                    self.now,
                    Packet {
                        src: self.server,
                        dst,
                        bytes,
                    },
                );
            }
        }
    }

    /// Moves emitted ops into the store's commit queue and commits those that are due.
    fn run_store(&mut self) {
        let Some(store) = self.store.as_mut() else {
            return;
        };
        for (c, core) in self.cores.iter_mut().enumerate() {
            while let Some(op) = core.poll_persist() {
                store.pending.push_back((self.now + store.delay, c, op));
            }
        }
        while store
            .pending
            .front()
            .is_some_and(|(t, _, _)| *t <= self.now)
        {
            let Some((_, c, op)) = store.pending.pop_front() else {
                break;
            };
            let seq = op.seq();
            store.apply(op);
            self.cores[c].handle_persisted(Instant(self.now), seq);
        }
    }

    /// kill -9: every core and every uncommitted op is gone; new cores reload the store.
    fn crash(&mut self) -> Result<(), String> {
        self.crashes += 1;
        let now = Instant(self.now);
        let shards = self.cores.len() as u16;
        // Dialogs the server held up to the crash. A watcher may believe in one the server
        // already ended (every answer to a NOTIFY lost: Timer F), which no crash can lose.
        let held_before: HashSet<String> = self
            .watchers
            .iter()
            .filter_map(|w| w.dialog.as_ref())
            .filter(|d| {
                self.owner_of_tag(&d.to_tag)
                    .is_some_and(|c| self.cores[c].dialog_exists(d.to_tag.as_bytes()))
            })
            .map(|d| d.to_tag.clone())
            .collect();
        let store = self.store.as_mut().ok_or("crash without store")?;
        store.pending.clear();
        self.cores = (0..shards)
            .map(|s| {
                Core::new(
                    self.config.clone(),
                    ShardId(s),
                    shards,
                    self.rng.next_u64(),
                    now,
                )
            })
            .collect();
        for rec in store.pubs.values() {
            let c = shard_for(&rec.presentity, shards).0 as usize;
            let _ = self.cores[c].restore_publication(now, rec.clone());
        }
        for rec in store.subs.values() {
            let c = shard_for(&rec.presentity, shards).0 as usize;
            let _ = self.cores[c].restore_subscription(now, rec.clone());
        }
        // Call-ID → the first CSeq the restored dialog(s) with it can use. By Call-ID
        // alone: a watcher whose 200 was still in flight at the crash knows no tag yet.
        let mut resumed: HashMap<Vec<u8>, u32> = HashMap::new();
        for r in store.subs.values() {
            let first = r
                .local_cseq
                .saturating_add(server::core::CSEQ_PERSIST_EVERY);
            let e = resumed.entry(r.call_id.clone()).or_default();
            *e = (*e).max(first);
        }
        self.check_cores()?;
        // Nothing acknowledged is lost.
        const MARGIN: u64 = 2_000;
        for w in &mut self.watchers {
            if let Some(d) = w.dialog.as_mut() {
                d.reject_maybe_lost |= d.rejected_at.is_some();
                d.crashed = true;
                d.resumed_at = resumed.get(d.call_id.as_bytes()).copied();
            }
            let Some(d) = w.dialog.as_ref() else { continue };
            let settled = d.confirmed
                && !d.dead
                && d.terminated_at.is_none()
                && d.rejected_at.is_none()
                && held_before.contains(&d.to_tag);
            if settled && d.silent.is_empty() && w.tx.is_none() && d.expires_lo > self.now + MARGIN
            {
                let (hash, _) =
                    server::core::tags::Token::decode(d.to_tag.as_bytes()).ok_or("bad tag")?;
                let c = (hash % shards as u32) as usize;
                if !self.cores[c].dialog_exists(d.to_tag.as_bytes()) {
                    return Err(format!(
                        "crash lost the acknowledged subscription of {}",
                        w.addr
                    ));
                }
            }
        }
        for p in &mut self.publishers {
            if p.tx.is_some() {
                // Its request may have been committed without the 200 leaving: a ghost.
                p.unknown = true;
            }
            let (Some(etag), false) = (p.etag.as_ref(), p.unknown) else {
                continue;
            };
            if p.expires_lo > self.now + MARGIN {
                let uri = format!("sip:p{}@example.com", p.presentity);
                let aor = sip_parser::Aor::parse(uri.as_bytes()).map_err(|e| e.to_string())?;
                let c = shard_for(&aor, shards).0 as usize;
                if !self.cores[c].publication_exists(&aor, etag.as_bytes()) {
                    return Err(format!(
                        "crash lost the acknowledged publication {etag} of {}",
                        p.addr
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_cores(&self) -> Result<(), String> {
        for (i, c) in self.cores.iter().enumerate() {
            c.check_invariants().map_err(|e| format!("core {i}: {e}"))?;
            if c.stats().misrouted != 0 {
                return Err(format!("core {i}: misrouted requests"));
            }
        }
        Ok(())
    }

    pub fn run(&mut self) -> Result<Outcome, String> {
        let end = EPOCH + ACT_MS + SETTLE_MS;
        let mut steps = 0u64;
        let mut outbox = Outbox::new();
        loop {
            let acting = self.now < EPOCH + ACT_MS;
            if !acting && self.net.loss != 0 {
                self.net.loss = 0;
                self.net.dup = 0;
            }
            let mut next = end;
            next = next.min(self.net.next_time().unwrap_or(end));
            if let Some(s) = self.store.as_ref() {
                next = next.min(s.pending.front().map_or(end, |(t, _, _)| *t));
            }
            if let Some(t) = self.crash_at {
                next = next.min(t);
            }
            for c in &self.cores {
                next = next.min(c.poll_timeout().map_or(end, |t| t.0));
            }
            for w in self.watchers.iter().filter(|w| !self.departed(w.addr)) {
                next = next.min(w.next_wakeup(acting).unwrap_or(end));
            }
            for r in &self.refusals {
                next = next.min(r.due);
            }
            for p in &self.publishers {
                next = next.min(p.next_wakeup(acting).unwrap_or(end));
            }
            self.now = next.max(self.now);
            if self.now >= end {
                break;
            }
            steps += 1;
            if steps > 5_000_000 {
                return Err("simulation did not settle (step bound)".into());
            }
            let now = Instant(self.now);
            if self.crash_at.is_some_and(|t| t <= self.now) {
                self.crash_at = None;
                self.crash()?;
                self.drain_cores();
            }
            self.run_store();
            while let Some(p) = self.net.pop_due(self.now) {
                if p.dst == self.server {
                    if let Some(c) = self.owner(&p.bytes) {
                        let from = Peer {
                            transport: Transport::Udp,
                            addr: p.src,
                            conn: None,
                        };
                        self.cores[c].handle_message(now, from, &p.bytes);
                    }
                } else if self.departed(p.dst) {
                    self.port_closed(p);
                } else if let Some(w) = self.watchers.iter_mut().find(|w| w.addr == p.dst) {
                    w.on_packet(self.now, &p.bytes, self.server, &mut outbox);
                    let src = w.addr;
                    self.flush(&mut outbox, src);
                } else if let Some(pb) = self.publishers.iter_mut().find(|x| x.addr == p.dst) {
                    pb.on_packet(self.now, &p.bytes);
                }
                self.run_store();
                self.drain_cores();
            }
            self.deliver_refusals()?;
            for c in &mut self.cores {
                if c.poll_timeout().is_some_and(|t| t <= now) {
                    c.handle_timeout(now);
                }
            }
            self.run_store();
            self.drain_cores();
            for i in 0..self.watchers.len() {
                if self.departed(self.watchers[i].addr) {
                    continue;
                }
                self.watchers[i].on_timer(self.now, self.server, acting, &mut outbox);
                let src = self.watchers[i].addr;
                self.flush(&mut outbox, src);
            }
            for i in 0..self.publishers.len() {
                self.publishers[i].on_timer(self.now, self.server, acting, &mut outbox);
                let src = self.publishers[i].addr;
                self.flush(&mut outbox, src);
            }
            if steps % 64 == 0 {
                self.check_cores()?;
            }
        }
        self.check_cores()?;
        let mut outcome = Outcome {
            packets: self.net.sent,
            lost: self.net.lost,
            crashes: self.crashes,
            refusals: self.refused,
            refusals_ended: self.refused_ended,
            ..Outcome::default()
        };
        for w in &self.watchers {
            if let Some(v) = w.violations.first() {
                return Err(format!("watcher {}: {v}", w.addr));
            }
            outcome.notifies += w.notifies;
        }
        for p in &self.publishers {
            if let Some(v) = p.violations.first() {
                return Err(format!("publisher {}: {v}", p.addr));
            }
        }
        outcome.converged_checks = self.check_convergence(end)?;
        Ok(outcome)
    }

    /// After settling, every watcher whose dialog the server still holds has been told
    /// the presentity's current state: exactly the markers of the live publications.
    fn check_convergence(&self, end: u64) -> Result<u64, String> {
        const MARGIN: u64 = 2_000;
        let mut checked = 0;
        for p in 0..self.presentities {
            let pubs: Vec<&Publisher> = self
                .publishers
                .iter()
                .filter(|x| x.presentity == p)
                .collect();
            if pubs.iter().any(|x| x.unknown || x.tx.is_some()) {
                continue;
            }
            if pubs.iter().any(|x| {
                x.marker.is_some() && x.expires_lo <= end + MARGIN && x.expires_hi + MARGIN >= end
            }) {
                continue;
            }
            let expected: BTreeSet<String> = pubs
                .iter()
                .filter(|x| x.expires_lo > end)
                .filter_map(|x| x.marker.clone())
                .collect();
            for w in self.watchers.iter().filter(|w| w.presentity == p) {
                if self.departures.contains_key(&w.addr) {
                    continue;
                }
                let Some(d) = w.dialog.as_ref() else { continue };
                if d.to_tag.is_empty()
                    || d.terminated_at.is_some()
                    || d.rejected_at.is_some()
                    || w.tx.is_some()
                {
                    continue;
                }
                if d.expires_lo <= end + MARGIN && d.expires_hi + MARGIN >= end {
                    continue;
                }
                // We never answered the newest NOTIFY: the server sends no newer one in
                // this dialog until that transaction times out (Timer F, 64 T1).
                if d.silent.contains(&d.max_cseq) && d.max_cseq_at + 64 * ua::T1 + MARGIN > end {
                    continue;
                }
                let Some(owner) = self.owner_of_tag(&d.to_tag) else {
                    continue;
                };
                if !self.cores[owner].dialog_exists(d.to_tag.as_bytes()) {
                    continue;
                }
                let got: BTreeSet<String> = markers(&d.last_body).into_iter().collect();
                if got != expected {
                    return Err(format!(
                        "watcher {} of p{p} did not converge: last NOTIFY (CSeq {}) shows {got:?}, live publications are {expected:?}",
                        w.addr, d.max_cseq
                    ));
                }
                checked += 1;
            }
        }
        Ok(checked)
    }

    /// Whether the watcher at `addr` has left (its port is closed).
    fn departed(&self, addr: SocketAddr) -> bool {
        self.departures.get(&addr).is_some_and(|&t| t <= self.now)
    }

    /// A datagram reached a closed port: the host answers the server with an ICMP port
    /// unreachable quoting its start, unless that error is lost.
    fn port_closed(&mut self, p: Packet) {
        if p.src != self.server || self.icmp_rng.below(1000) < self.icmp_loss {
            return;
        }
        let cut = MIN_QUOTE + self.icmp_rng.below((MAX_QUOTE - MIN_QUOTE + 1) as u64) as usize;
        let due = self.now + 1 + self.icmp_rng.below(self.net.max_delay);
        self.refusals.push(Refusal {
            due,
            dst: p.dst,
            quoted: p.bytes[..cut.min(p.bytes.len())].to_vec(),
        });
    }

    /// Hands the ICMP errors that are due to the core that sent the datagram, and checks
    /// what each did: one that ends a NOTIFY in flight frees that dialog at once
    /// (`end_sub_on_timeout`, on here); one quoting a NOTIFY is always read as ours.
    fn deliver_refusals(&mut self) -> Result<(), String> {
        let now = self.now;
        let (due, later): (Vec<Refusal>, Vec<Refusal>) = std::mem::take(&mut self.refusals)
            .into_iter()
            .partition(|r| r.due <= now);
        self.refusals = later;
        for r in due {
            let c = match route_refused(&r.quoted, self.cores.len() as u16) {
                Route::Local => 0,
                Route::Shard(ShardId(c)) => usize::from(c),
                Route::Drop if r.quoted.starts_with(b"NOTIFY") => {
                    return Err(format!(
                        "an ICMP error quoting a NOTIFY of ours was not routed: {:?}",
                        String::from_utf8_lossy(&r.quoted)
                    ));
                }
                Route::Drop => continue,
            };
            let core = &mut self.cores[c];
            let before = core.stats().subscriptions;
            let outcome = core.handle_refused(Instant(now), r.dst, &r.quoted);
            self.refused += 1;
            match outcome {
                SendRefused::Ended => {
                    self.refused_ended += 1;
                    let after = core.stats().subscriptions;
                    if after + 1 != before {
                        return Err(format!("an ICMP error ended a NOTIFY to {} but the core holds {after} dialogs, {before} before", r.dst));
                    }
                }
                SendRefused::Stale => {}
                SendRefused::NotNotify if r.quoted.starts_with(b"NOTIFY") => {
                    return Err(format!(
                        "an ICMP error quoting our NOTIFY to {} was not read as one",
                        r.dst
                    ));
                }
                SendRefused::NotNotify => {}
            }
            self.run_store();
            self.drain_cores();
        }
        Ok(())
    }

    fn owner_of_tag(&self, tag: &str) -> Option<usize> {
        let (hash, _) = server::core::tags::Token::decode(tag.as_bytes())?;
        Some((hash % self.cores.len() as u32) as usize)
    }
}
