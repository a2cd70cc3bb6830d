//! One shard: a glommio executor thread owning one [`Core`] and its sockets.
//!
//! Every input (UDP datagram, framed TCP message, hand-off item, timer) goes through
//! [`Shard::deliver`] / [`Shard::handle_local`] and is followed by [`Shard::flush`], which
//! drains the core's output into the task's own reused [`Outbox`] and sends it. The core
//! lives in a `RefCell` that is never borrowed across an `.await`, so tasks interleave freely.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::channels::shared_channel::ConnectedSender;
use glommio::net::UdpSocket;
use sip_parser::Status;

use super::handoff::{self, Ends, Handoff};
use super::stats::{EdgeCounters, ShardStats};
use super::{reject, tcp, udp, Clock, Settings};
use crate::core::{self, ConnId, Core, Instant, Peer, Route, ShardId, Transmit, Transport};
use crate::persist::{self, Driver, Kick, Store};

/// Most hand-off items handled per wake-up before the output is flushed.
const MAX_HANDOFF_BATCH: usize = 256;
/// How often each shard republishes the core's counters for the admin listener.
const STATS_PUBLISH_PERIOD: Duration = Duration::from_millis(250);
/// How late a core timer may fire, so one wake-up serves all deadlines that close together.
/// Far below every SIP timer (T1 = 500 ms) and expiry granularity (seconds).
const TIMER_SLACK: Duration = Duration::from_millis(10);
/// Most timer output (NOTIFY retransmissions, expiry NOTIFYs) the timer task writes at a
/// time, after all answers to requests (see `Core::poll_transmit_within`).
const BACKGROUND_PER_FLUSH: usize = 512;
/// Pause between two such shares while more waits. When requests arrived meanwhile, the
/// pause is at least as long as the last share took: timer output then gets at most half of
/// the shard's time, and requests the rest. Why: a wave of NOTIFYs to watchers that are
/// gone (terminated NOTIFYs at expiry, each retransmitted ~10 times over 32 s) otherwise
/// held the shards off their sockets, and new SUBSCRIBEs timed out (measured: 945–4,000
/// calls/s and thousands of timeouts, instead of ~80,000/s, while 200,000 such dialogs
/// expired every 2.4 s; README, "Answers before timer output").
const BACKGROUND_PAUSE: Duration = Duration::from_micros(200);
/// How often a shard checks whether the process is stopping.
const STOP_POLL: Duration = Duration::from_millis(50);
/// How often each shard hands the heap pages it freed back to the kernel (see `memory`).
const MEMORY_RELEASE_PERIOD: Duration = Duration::from_secs(1);

/// Everything a shard thread is started with (all `Send`).
pub struct ShardInit {
    pub id: ShardId,
    pub settings: Settings,
    pub clock: Clock,
    pub stats: Arc<ShardStats>,
    pub udp: Vec<socket2::Socket>,
    pub tcp: Vec<socket2::Socket>,
    pub handoff: Ends,
    pub stop: Arc<AtomicBool>,
    pub ready: mpsc::Sender<u16>,
    /// This shard's LMDB environment (None with `--durability none`).
    pub store: Option<Arc<Store>>,
    /// XCAP listener and mesh ends (None: `--xcap-listen none`).
    pub xcap: Option<crate::xcap_front::ShardXcapInit>,
}

/// Output of one task: messages to send, appended into one reused buffer.
#[derive(Default)]
pub struct Outbox {
    pub buf: Vec<u8>,
    pub txs: Vec<Transmit>,
}

impl Outbox {
    pub fn new() -> Self {
        Outbox {
            buf: Vec::with_capacity(64 * 1024),
            txs: Vec::with_capacity(64),
        }
    }

    /// Queues to `dst` what `write` appends to the buffer (a stateless reply), if it appends
    /// anything (`Some(len)`); returns whether it did.
    pub fn reply(&mut self, dst: Peer, write: impl FnOnce(&mut Vec<u8>) -> Option<usize>) -> bool {
        let offset = self.buf.len();
        let Some(len) = write(&mut self.buf) else {
            return false;
        };
        self.txs.push(Transmit { dst, offset, len });
        true
    }
}

pub struct Shard {
    pub id: ShardId,
    pub settings: Settings,
    pub clock: Clock,
    pub core: RefCell<Core>,
    pub stats: Arc<ShardStats>,
    pub udp: Vec<Rc<UdpSocket>>,
    pub handoff_tx: Vec<Option<ConnectedSender<Handoff>>>,
    pub tcp: tcp::Registry,
    timer_wake: LocalSender<()>,
    armed: Cell<Option<Instant>>,
    /// Wakes the persistence driver after the core was fed (None: memory only).
    persist_kick: Option<Rc<Kick>>,
    /// The driver, for its counters in /stats.
    driver: Option<Rc<Driver>>,
    /// Wakes the task that flushes output produced outside a flushing task: what a commit
    /// released, what an ICMP error caused (bounded 1: a wake-up is a flag).
    flush_wake: LocalSender<()>,
}

impl Shard {
    pub fn edge(&self) -> &EdgeCounters {
        &self.stats.edge
    }

    /// Entry point for every message received from the network on this shard.
    pub fn deliver(&self, from: Peer, bytes: &[u8], out: &mut Outbox) {
        let limits = &self.settings.core.limits;
        if !self.settings.is_trusted(from.addr.ip()) {
            EdgeCounters::inc(&self.edge().untrusted_403);
            if !reject::looks_like_response(bytes) {
                out.reply(from, |buf| reject::forbidden(bytes, buf, limits));
            }
            return;
        }
        if bytes.len() > limits.max_message_len {
            EdgeCounters::inc(&self.edge().dropped_oversize);
            return;
        }
        // One parse serves routing and, when this shard owns the message, the core.
        let framing = core::framing_of(from.transport);
        core::with_parsed(bytes, framing, limits, |parsed| {
            let msg = match parsed {
                Ok(Status::Complete(msg)) => msg,
                Err(e) if from.transport == Transport::Udp => {
                    return if out.reply(from, |buf| reject::broken_framing(bytes, e, buf, limits)) {
                        EdgeCounters::inc(&self.edge().broken_framing_400)
                    } else {
                        EdgeCounters::inc(&self.edge().dropped_unroutable)
                    };
                }
                _ => return EdgeCounters::inc(&self.edge().dropped_unroutable),
            };
            match core::route_message(&msg, self.settings.shards) {
                Route::Shard(s) if s != self.id => self.hand_over(s, from, bytes, out),
                Route::Local | Route::Shard(_) => self.handle_local_parsed(from, &msg),
                Route::Drop => EdgeCounters::inc(&self.edge().dropped_unroutable),
            }
        })
    }

    /// Runs the core on a message this shard owns and the edge already parsed.
    fn handle_local_parsed(&self, from: Peer, msg: &sip_parser::Message<'_, '_>) {
        let now = self.clock.now();
        self.core.borrow_mut().handle_parsed(now, from, msg);
    }

    /// Runs the core on a message this shard owns.
    pub fn handle_local(&self, from: Peer, bytes: &[u8]) {
        let now = self.clock.now();
        self.core.borrow_mut().handle_message(now, from, bytes);
    }

    /// Queues `item` for shard `to` without waiting. `None`: no channel to that shard (it is
    /// this one, or out of range); `Some(false)`: its queue is full.
    fn try_hand_to(&self, to: ShardId, item: Handoff) -> Option<bool> {
        let tx = self.handoff_tx.get(usize::from(to.0))?.as_ref()?;
        Some(tx.try_send(item).is_ok())
    }

    fn hand_over(&self, to: ShardId, from: Peer, bytes: &[u8], out: &mut Outbox) {
        let item = Handoff::Inbound {
            from,
            bytes: bytes.into(),
        };
        match self.try_hand_to(to, item) {
            None => EdgeCounters::inc(&self.edge().dropped_unroutable),
            Some(true) => EdgeCounters::inc(&self.edge().handoff_out),
            Some(false) => {
                let limits = &self.settings.core.limits;
                let retry_after = self.settings.retry_after;
                if out.reply(from, |buf| {
                    core::reply_overloaded(bytes, retry_after, buf, limits)
                }) {
                    EdgeCounters::inc(&self.edge().handoff_full_503)
                } else {
                    EdgeCounters::inc(&self.edge().handoff_full_dropped)
                }
            }
        }
    }

    /// Sends bytes to a TCP connection held by another shard. False when its queue is full.
    pub fn hand_over_outbound(&self, to: ShardId, dst: Peer, bytes: &[u8]) -> bool {
        let item = Handoff::Outbound {
            dst,
            bytes: bytes.into(),
        };
        let sent = self.try_hand_to(to, item) == Some(true);
        if sent {
            EdgeCounters::inc(&self.edge().handoff_out);
        }
        sent
    }

    /// An ICMP error read on one of this shard's UDP sockets: the network refused a datagram
    /// sent to `dst`, of which `sent` is the start. The kernel picks the socket of the
    /// SO_REUSEPORT group by address hash, not the one that sent it, so a NOTIFY's error
    /// goes to the shard its branch names, like a response would.
    pub fn refused(&self, dst: SocketAddr, sent: &[u8]) {
        EdgeCounters::inc(&self.edge().udp_icmp_errors);
        match core::route_refused(sent, self.settings.shards) {
            Route::Shard(s) if s != self.id => {
                let item = Handoff::Refused {
                    dst,
                    sent: sent.into(),
                };
                match self.try_hand_to(s, item) {
                    Some(true) => EdgeCounters::inc(&self.edge().udp_icmp_handed_over),
                    // Best effort: the NOTIFY then ends by Timer F, as without the error.
                    Some(false) => EdgeCounters::inc(&self.edge().handoff_full_dropped),
                    None => {}
                }
            }
            Route::Shard(_) | Route::Local => self.handle_refused(dst, sent),
            // A response we sent, or not readable: nothing waits on it.
            Route::Drop => {}
        }
    }

    /// [`Shard::refused`] for a NOTIFY this shard sent. What the core does next (a NOTIFY
    /// for a dialog that lives on, a persisted removal) leaves with the flush task's flush.
    fn handle_refused(&self, dst: SocketAddr, sent: &[u8]) {
        let now = self.clock.now();
        self.core.borrow_mut().handle_refused(now, dst, sent);
        if let Some(k) = &self.persist_kick {
            k.notify();
        }
        let _ = self.flush_wake.try_send(());
    }

    /// Tells the local core and every other shard's core that a connection held here closed.
    pub fn conn_closed(&self, conn: ConnId) {
        self.core.borrow_mut().handle_conn_closed(conn);
        for tx in self.handoff_tx.iter().flatten() {
            // Best effort: a full queue only means that shard's NOTIFY to this connection
            // will find it gone and be re-dialled or fail its transaction.
            let _ = tx.try_send(Handoff::ConnClosed(conn));
        }
    }

    /// Sends what the core has ready (answers to requests, the NOTIFYs they caused) plus
    /// what the edge queued in `out`; re-arms the timer task if the core's earliest deadline
    /// moved earlier. Timer output (`Core::has_background`) is left to the timer task,
    /// which writes it a share at a time ([`Shard::flush_within`]).
    pub async fn flush(self: &Rc<Self>, out: &mut Outbox) {
        self.flush_within(out, 0).await
    }

    /// [`Shard::flush`], also writing up to `background` messages of timer output.
    async fn flush_within(self: &Rc<Self>, out: &mut Outbox, background: usize) {
        // A busy executor may run its heartbeat task only at its next preemption: beat here.
        self.stats.heartbeat.beat();
        if let Some(k) = &self.persist_kick {
            k.notify();
        }
        {
            let mut core = self.core.borrow_mut();
            let mut produced = 0;
            let mut budget = background;
            while let Some(t) = core.poll_transmit_within(&mut out.buf, &mut budget) {
                out.txs.push(t);
                produced += 1;
            }
            if produced > 0 {
                EdgeCounters::add(&self.edge().core_transmits, produced);
            }
            let next = core.poll_timeout();
            let backlog = core.has_background();
            drop(core);
            if backlog {
                // The timer task writes the rest, a share at a time.
                let _ = self.timer_wake.try_send(());
            } else {
                self.maybe_rearm(next);
            }
        }
        if out.txs.is_empty() {
            out.buf.clear();
            return;
        }
        // TCP messages go to their connection's queue at once; UDP datagrams are gathered
        // per socket and leave in as few sendmmsg calls as possible (order per socket kept).
        let mut udp_batch: Vec<(SocketAddr, &[u8])> = Vec::with_capacity(out.txs.len());
        for sock in &self.udp {
            udp_batch.clear();
            for t in &out.txs {
                if t.dst.transport != Transport::Udp {
                    continue;
                }
                let Some(bytes) = out.buf.get(t.offset..t.offset + t.len) else {
                    continue;
                };
                match self.udp_for(t.dst.addr) {
                    Some(s) if Rc::ptr_eq(s, sock) => udp_batch.push((t.dst.addr, bytes)),
                    _ => {}
                }
            }
            if !udp_batch.is_empty()
                && udp::send_all(self.edge(), sock, &udp_batch).await
                && self.settings.udp_icmp_errors
            {
                // A send consumed the error flag the receive loop waits on: read the
                // errors here, or they would wait for the next one.
                udp::take_refusals(self, sock.as_raw_fd());
            }
        }
        if self.udp.is_empty() {
            let udp_n = out
                .txs
                .iter()
                .filter(|t| t.dst.transport == Transport::Udp)
                .count();
            EdgeCounters::add(&self.edge().udp_send_errors, udp_n as u64);
        }
        drop(udp_batch);
        for t in &out.txs {
            if t.dst.transport != Transport::Tcp {
                continue;
            }
            if let Some(bytes) = out.buf.get(t.offset..t.offset + t.len) {
                tcp::send(self, t.dst, bytes);
            }
        }
        out.txs.clear();
        out.buf.clear();
    }

    /// Datagrams and TCP messages received so far (the timer task's sign of input).
    fn input_count(&self) -> u64 {
        let e = self.edge();
        e.udp_in.load(Ordering::Relaxed) + e.tcp_in.load(Ordering::Relaxed)
    }

    fn udp_for(&self, dst: SocketAddr) -> Option<&Rc<UdpSocket>> {
        if self.udp.len() <= 1 {
            // The common case needs no getsockname per datagram.
            return self.udp.first();
        }
        self.udp
            .iter()
            .find(|s| {
                s.local_addr()
                    .map(|a| a.is_ipv4() == dst.is_ipv4())
                    .unwrap_or(false)
            })
            .or_else(|| self.udp.first())
    }

    fn maybe_rearm(&self, next: Option<Instant>) {
        let earlier = match (next, self.armed.get()) {
            (Some(n), Some(a)) => n < a,
            (Some(_), None) => true,
            _ => false,
        };
        if earlier {
            self.armed.set(next);
            let _ = self.timer_wake.try_send(());
        }
    }

    fn publish_core_stats(&self) {
        let mut snapshot = core_counters(&self.core.borrow());
        if let Some(d) = &self.driver {
            let st = d.stats();
            snapshot.extend([
                ("persist_commits".to_string(), st.commits),
                ("persist_ops_committed".to_string(), st.ops_committed),
                ("persist_ops_discarded".to_string(), st.ops_discarded),
                ("persist_failed_commits".to_string(), st.failed_commits),
                ("persist_map_full_batches".to_string(), st.map_full_batches),
                ("persist_ops_refused".to_string(), st.ops_refused),
                ("persist_last_commit_us".to_string(), st.last_commit_us),
                ("persist_max_commit_us".to_string(), st.max_commit_us),
                ("persist_checkpoints".to_string(), st.checkpoints),
                (
                    "persist_checkpoint_failures".to_string(),
                    st.checkpoint_failures,
                ),
                ("persist_checkpoint_ops".to_string(), st.checkpoint_ops),
                ("persist_checkpoint_keys".to_string(), st.checkpoint_keys),
                (
                    "persist_last_checkpoint_us".to_string(),
                    st.last_checkpoint_us,
                ),
                (
                    "persist_max_checkpoint_us".to_string(),
                    st.max_checkpoint_us,
                ),
                (
                    "persist_wal_pending_bytes".to_string(),
                    st.wal_pending_bytes,
                ),
                ("persist_driver_phase".to_string(), st.phase),
                ("persist_driver_phase_ms".to_string(), st.phase_ms),
            ]);
            let bounds = persist::COMMIT_BUCKETS_US;
            for (i, n) in st.commit_us_hist.iter().enumerate() {
                let name = match bounds.get(i) {
                    Some(b) => format!("persist_commits_le_{}ms", b / 1000),
                    None => format!("persist_commits_over_{}ms", bounds[bounds.len() - 1] / 1000),
                };
                snapshot.push((name, *n));
            }
        }
        if let Ok(mut g) = self.stats.core.lock() {
            *g = snapshot;
        }
    }
}

/// The core's counters as (name, value) pairs.
fn core_counters(core: &Core) -> Vec<(String, u64)> {
    super::stats::parse_display_counters(&core.stats().to_string())
}

/// Body of one shard's executor.
pub async fn run_shard(init: ShardInit) {
    let ShardInit {
        id,
        settings,
        clock,
        stats,
        udp: udp_socks,
        tcp: tcp_socks,
        handoff: ends,
        stop,
        ready,
        store,
        xcap,
    } = init;

    // Watched from the first await on: a wedge can strike while the mesh connects.
    let watched = stats.clone();
    let _finished = watched.heartbeat.finish_on_drop();
    watched.heartbeat.start();
    glommio::spawn_local(super::watchdog::beat_forever(stats.clone())).detach();

    // Connect the mesh: every connect waits for its peer, so run them all concurrently.
    let sender_tasks: Vec<_> = ends
        .senders
        .into_iter()
        .map(|s| s.map(|s| glommio::spawn_local(s.connect())))
        .collect();
    let receiver_tasks: Vec<_> = ends
        .receivers
        .into_iter()
        .map(|(from, r)| (from, glommio::spawn_local(r.connect())))
        .collect();
    let mut handoff_tx = Vec::with_capacity(sender_tasks.len());
    for t in sender_tasks {
        handoff_tx.push(match t {
            Some(t) => Some(t.await),
            None => None,
        });
    }
    let mut receivers = Vec::with_capacity(receiver_tasks.len());
    for (from, t) in receiver_tasks {
        receivers.push((from, t.await));
    }

    // Fresh tags and ETags must never repeat ones handed out before a restart: mix in the
    // wall clock in nanoseconds and the pid.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let seed = (std::process::id() as u64) << 16 ^ id.0 as u64 ^ nanos.rotate_left(17);
    let mut core = Core::new(
        settings.core.clone(),
        id,
        settings.shards,
        seed,
        clock.now(),
    );
    if let Some(st) = &store {
        // Before serving: the sockets are bound, so requests wait in the kernel meanwhile.
        // Loading runs on this thread without yielding: no beats, and not a wedge.
        stats.heartbeat.pause();
        let now = clock.now();
        match persist::load_shard(st, id, now) {
            Ok(loaded) => {
                let rep = persist::restore_into(&mut core, loaded, clock.now());
                tracing::info!(
                    shard = id.0,
                    publications = rep.publications,
                    subscriptions = rep.subscriptions,
                    "shard state restored"
                );
                stats.heartbeat.beat();
            }
            Err(e) => {
                tracing::error!(shard = id.0, error = %e, "cannot load the shard's state; exiting");
                std::process::exit(1);
            }
        }
    }
    let driver = (settings.durability.writes() || settings.core.durability_gate).then(|| {
        match Driver::new(id, store.clone(), settings.durability) {
            Ok(d) => Rc::new(
                d.holding_checkpoints(settings.hold_checkpoints)
                    .with_commit_interval(settings.commit_interval),
            ),
            Err(e) => {
                tracing::error!(shard = id.0, error = %e, "cannot start the shard's persistence; exiting");
                std::process::exit(1);
            }
        }
    });
    let (timer_wake, timer_rx) = local_channel::new_bounded(1);
    let (flush_wake, flush_rx) = local_channel::new_bounded(1);
    let udp: Vec<Rc<UdpSocket>> = udp_socks
        .into_iter()
        .map(|s| Rc::new(udp::adopt(s)))
        .collect();
    let shard = Rc::new(Shard {
        id,
        settings,
        clock,
        core: RefCell::new(core),
        stats,
        udp,
        handoff_tx,
        tcp: tcp::Registry::new(id),
        timer_wake,
        armed: Cell::new(None),
        persist_kick: driver.as_ref().map(|d| d.kick()),
        driver: driver.clone(),
        flush_wake,
    });

    if let Some(driver) = driver.clone() {
        let sh = shard.clone();
        glommio::spawn_local(async move {
            let clock = sh.clock;
            driver
                .run(
                    &sh.core,
                    move || clock.now(),
                    || {
                        let _ = sh.flush_wake.try_send(());
                    },
                )
                .await
        })
        .detach();
    }
    glommio::spawn_local(flush_loop(shard.clone(), flush_rx)).detach();

    for sock in shard.udp.clone() {
        glommio::spawn_local(udp::recv_loop(shard.clone(), sock)).detach();
    }
    for l in tcp_socks {
        glommio::spawn_local(tcp::accept_loop(shard.clone(), tcp::adopt_listener(l))).detach();
    }
    for (_from, rx) in receivers {
        glommio::spawn_local(handoff_loop(shard.clone(), rx)).detach();
    }
    glommio::spawn_local(timer_loop(shard.clone(), timer_rx)).detach();
    if let Some(x) = xcap {
        crate::xcap_front::spawn(shard.clone(), x);
    }

    let _ = ready.send(id.0);
    tracing::debug!(shard = id.0, "shard running");

    let mut since_publish = Duration::ZERO;
    let mut since_release = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        glommio::timer::sleep(STOP_POLL).await;
        since_publish += STOP_POLL;
        since_release += STOP_POLL;
        if since_publish >= STATS_PUBLISH_PERIOD {
            since_publish = Duration::ZERO;
            shard.publish_core_stats();
        }
        if since_release >= MEMORY_RELEASE_PERIOD {
            since_release = Duration::ZERO;
            // Heap pages freed since (e.g. by server transactions retired at their Timer J,
            // which the core's own timeout covers) go back to the kernel after a burst.
            super::memory::release_freed();
        }
    }
    shard.publish_core_stats();
    if let (Some(d), Some(st)) = (&driver, &store) {
        if d.mode() == persist::Durability::Sync {
            let clock = shard.clock;
            d.finish(&shard.core, move || clock.now()).await;
        } else {
            shard.stats.heartbeat.pause();
            final_commit(&shard, d, st);
        }
    }
    tracing::info!(shard = id.0, stats = %shard.core.borrow().stats(), "shard stopped");
}

/// On a clean stop, writes what the driver has not committed yet (periodic mode's
/// write-behind window) so a graceful restart loses nothing. Sync mode: `Driver::finish`.
fn final_commit(shard: &Shard, driver: &Driver, store: &Store) {
    let mut ops = Vec::new();
    {
        let mut core = shard.core.borrow_mut();
        while let Some(op) = core.poll_persist() {
            ops.push(op);
        }
    }
    if ops.is_empty() {
        return;
    }
    let now = store::UnixMillis(shard.clock.now().as_millis());
    match persist::commit_batch(store, &ops, now) {
        Ok(_) => {
            tracing::info!(shard = shard.id.0, ops = ops.len(), stats = ?driver.stats(), "final commit done")
        }
        Err(e) => tracing::error!(shard = shard.id.0, error = %e, "final commit failed"),
    }
}

/// Sends what the core produced outside the tasks that flush after their input: the replies
/// and NOTIFYs a commit released (the driver only signals), and what an ICMP error caused.
async fn flush_loop(shard: Rc<Shard>, wake: LocalReceiver<()>) {
    let mut out = Outbox::new();
    while wake.recv().await.is_some() {
        shard.flush(&mut out).await;
    }
}

async fn handoff_loop(
    shard: Rc<Shard>,
    rx: glommio::channels::shared_channel::ConnectedReceiver<Handoff>,
) {
    let mut batch = Vec::with_capacity(MAX_HANDOFF_BATCH);
    let mut out = Outbox::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        handoff::drain_ready(&rx, &mut batch, MAX_HANDOFF_BATCH);
        let n = batch.len() as u64;
        EdgeCounters::inc(&shard.edge().handoff_batches);
        EdgeCounters::max(&shard.edge().handoff_queue_max, n);
        // ICMP errors are not messages: `udp_icmp_handed_over` counts them on the sender.
        let mut errors = 0;
        for item in batch.drain(..) {
            match item {
                Handoff::Inbound { from, bytes } => {
                    debug_assert!(
                        {
                            let limits = &shard.settings.core.limits;
                            let r = core::route(&bytes, shard.settings.shards, limits);
                            r == Route::Local || r == Route::Shard(shard.id)
                        },
                        "shard {} received a message it does not own",
                        shard.id.0
                    );
                    shard.handle_local(from, &bytes);
                }
                Handoff::Outbound { dst, bytes } => tcp::send_local(&shard, dst, &bytes),
                Handoff::ConnClosed(c) => shard.core.borrow_mut().handle_conn_closed(c),
                Handoff::Refused { dst, sent } => {
                    errors += 1;
                    shard.handle_refused(dst, &sent);
                }
            }
        }
        EdgeCounters::add(&shard.edge().handoff_in, n - errors);
        shard.flush(&mut out).await;
        if !shard.settings.coalesce.is_zero() {
            // While this task sleeps it is not waiting on the channel, so senders queue
            // without waking this shard; one wake-up takes all. Unlike `udp::recv_loop`, it
            // pauses after every batch: this task wakes only when hand-offs came.
            glommio::timer::sleep(shard.settings.coalesce).await;
        }
    }
}

async fn timer_loop(shard: Rc<Shard>, wake: LocalReceiver<()>) {
    let mut out = Outbox::new();
    let mut input_seen = shard.input_count();
    let mut last_share = Duration::ZERO;
    loop {
        let deadline = shard.core.borrow().poll_timeout();
        shard.armed.set(deadline);
        let wait = match deadline {
            // Already due: at once. Otherwise a little late on purpose, so that one wake-up
            // serves every deadline in the window (and the stale entries cancelled timers
            // leave in the core's heap) instead of one wake-up per millisecond under load.
            Some(d) => match shard.clock.until(d) {
                w if w.is_zero() => w,
                w => w + TIMER_SLACK,
            },
            None => Duration::from_secs(3600),
        };
        let backlog = shard.core.borrow().has_background();
        if backlog {
            // Timer output left over: its next share after a pause in which the executor
            // reads its sockets. Not woken early: every flush that leaves a backlog sends a
            // wake-up, and answering those at once would write the backlog back to back.
            let input = shard.input_count();
            let pause = if input != input_seen {
                last_share.max(BACKGROUND_PAUSE)
            } else {
                BACKGROUND_PAUSE
            };
            input_seen = input;
            glommio::timer::sleep(wait.min(pause)).await;
        } else if !wait.is_zero() {
            let woken = futures_lite::future::or(
                async {
                    glommio::timer::sleep(wait).await;
                    false
                },
                async { wake.recv().await.is_some() },
            )
            .await;
            if woken {
                continue;
            }
        }
        let now = shard.clock.now();
        let due = deadline.is_some_and(|d| d <= now);
        if due {
            EdgeCounters::inc(&shard.edge().timer_fires);
            shard.core.borrow_mut().handle_timeout(now);
        }
        if due || backlog {
            let started = std::time::Instant::now();
            shard.flush_within(&mut out, BACKGROUND_PER_FLUSH).await;
            last_share = started.elapsed();
        }
    }
}
