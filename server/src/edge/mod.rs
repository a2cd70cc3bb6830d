//! The glommio edge: executors, sockets, timers, the cross-shard hand-off mesh, TCP and
//! statistics. It moves bytes, time and timer wake-ups in and out of the sans-IO
//! [`crate::core::Core`]; it makes no protocol decision of its own except the stateless ones
//! a proxy's front does (403 to untrusted peers, 503 when the owner's queue is full).
//!
//! Message path: `udp.rs` / `tcp.rs` receive → `shard.rs` (`Shard::deliver`: trust check,
//! `core::route`) → local `Core::handle_message`, or `handoff.rs` to the owning shard →
//! `Shard::flush` drains `Core::poll_transmit` → UDP socket or the TCP connection's queue
//! (possibly on the shard that owns that connection).

pub mod admin;
pub mod coalesce;
pub mod handoff;
pub mod memory;
pub mod reject;
pub mod shard;
pub mod stats;
pub mod tcp;
pub mod udp;
pub mod watchdog;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{Cidr, RunArgs, UdpSteering};
use crate::core::{Config, ShardId};
use crate::persist::Durability;

/// How long start-up waits for every shard to load its partition and report ready.
const READY_WITHIN: Duration = Duration::from_secs(120);

/// Process-wide clock giving `core::Instant` as Unix-epoch milliseconds: the wall clock read
/// once at start, advanced by the monotonic clock (so a wall-clock step never moves timers).
/// Unix time because instants are persisted (expiry) and must mean the same after a restart.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: std::time::Instant,
    epoch_unix_ms: u64,
}

impl Clock {
    pub fn new() -> Self {
        let epoch_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Clock {
            epoch: std::time::Instant::now(),
            epoch_unix_ms,
        }
    }
    pub fn now(&self) -> crate::core::Instant {
        crate::core::Instant(self.epoch_unix_ms + self.epoch.elapsed().as_millis() as u64)
    }
    /// Real time still to wait until `at`.
    pub fn until(&self, at: crate::core::Instant) -> Duration {
        Duration::from_millis(at.0.saturating_sub(self.now().0))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Everything a shard needs from the command line, owned and `Send`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub shards: u16,
    pub placement: Vec<Option<usize>>,
    pub udp_addrs: Vec<SocketAddr>,
    pub tcp_addrs: Vec<SocketAddr>,
    pub trusted: Vec<Cidr>,
    pub core: Config,
    pub handoff_queue: usize,
    pub spin_before_park: Duration,
    pub udp_steering: UdpSteering,
    /// `--coalesce-us`: pause between batches under load (see `udp::recv_loop`).
    pub coalesce: Duration,
    /// `--udp-icmp-errors`: read ICMP errors for our datagrams (see `udp::bind`).
    pub udp_icmp_errors: bool,
    pub tcp_idle_timeout: Duration,
    pub max_tcp_connections: usize,
    pub tcp_write_queue: usize,
    pub retry_after: u32,
    /// LMDB state directory (unused with `Durability::None`).
    pub data_dir: std::path::PathBuf,
    pub durability: Durability,
    /// `--commit-interval-us`: least time between the starts of two sync commits.
    pub commit_interval: Duration,
    /// `--debug-hold-checkpoints` (tests only).
    pub hold_checkpoints: bool,
    pub store: store::StoreOptions,
    /// XCAP front (`--xcap-*`).
    pub xcap: crate::xcap_front::XcapSettings,
}

impl Settings {
    pub fn from_args(a: &RunArgs) -> Self {
        let limits = sip_parser::Limits {
            max_message_len: a.max_message_size,
            ..sip_parser::Limits::default()
        };
        let core = Config {
            server_address: a.server_address().into_bytes(),
            local_domains: a.domains.iter().map(|d| d.as_bytes().to_vec()).collect(),
            max_expires_subscribe: a.max_expires_subscribe,
            max_expires_publish: a.max_expires_publish,
            min_expires: a.min_expires,
            expires_offset: a.expires_offset,
            clean_period: a.clean_period,
            notify_offline_body: a.notify_offline_body,
            end_sub_on_timeout: a.end_sub_on_timeout,
            check_accept: a.check_accept,
            t1_ms: a.t1_ms,
            t2_ms: a.t2_ms,
            t4_ms: a.t4_ms,
            max_subscriptions_per_presentity: a.max_subs_per_presentity,
            max_subscriptions: a.max_subscriptions,
            max_presentities: a.max_presentities,
            max_publications: a.max_publications,
            limits,
            durability_gate: a.durability.gates_replies(),
            persist: a.durability.writes(),
            ..Config::default()
        };
        Settings {
            shards: a.shard_count(),
            placement: a.placement(),
            udp_addrs: a.udp_addrs(),
            tcp_addrs: a.tcp_addrs(),
            trusted: a.trusted_peers.clone(),
            core,
            handoff_queue: a.handoff_queue.max(1),
            spin_before_park: Duration::from_micros(a.spin_before_park_us),
            udp_steering: a.udp_steering,
            coalesce: Duration::from_micros(a.coalesce_us),
            udp_icmp_errors: a.udp_icmp_errors,
            tcp_idle_timeout: Duration::from_secs(a.tcp_idle_timeout.max(1)),
            max_tcp_connections: a.max_tcp_connections.max(1),
            tcp_write_queue: a.tcp_write_queue.max(1),
            retry_after: a.retry_after,
            data_dir: a.data_dir.clone(),
            durability: a.durability,
            hold_checkpoints: a.debug_hold_checkpoints,
            commit_interval: Duration::from_micros(a.commit_interval_us),
            store: a.store_options(),
            xcap: crate::xcap_front::XcapSettings::from_args(a),
        }
    }

    pub fn is_trusted(&self, ip: std::net::IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }
}

/// Errors that stop the server from starting.
#[derive(Debug)]
pub enum StartError {
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    Executor {
        shard: u16,
        message: String,
    },
    NoListener,
    Store(crate::persist::StoreError),
    Xcap(crate::xcap_front::XcapStartError),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Bind { what, addr, source } => {
                write!(f, "cannot bind {what} socket on {addr}: {source}")
            }
            StartError::Executor { shard, message } => {
                write!(f, "cannot start executor for shard {shard}: {message}")
            }
            StartError::NoListener => write!(f, "no --listen address given"),
            StartError::Store(e) => write!(f, "cannot open the data directory: {e}"),
            StartError::Xcap(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Attaches the steering program to each UDP address's reuseport group (through shard 0's
/// socket: the group shares it). The sockets were bound in shard order, so a group index is
/// a shard number. A kernel that refuses it leaves the 4-tuple hash: slower, same results.
fn steer_udp(settings: &Settings, sockets: &[(Vec<socket2::Socket>, Vec<socket2::Socket>)]) {
    let Some(prog) = crate::core::steer::program(settings.shards) else {
        return;
    };
    let Some((first, _)) = sockets.first() else {
        return;
    };
    for (sock, addr) in first.iter().zip(&settings.udp_addrs) {
        match udp::attach_steering(sock, &prog) {
            Ok(()) => {
                tracing::info!(%addr, instructions = prog.len(), "UDP steering program attached")
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "UDP steering program refused; datagrams go by hash")
            }
        }
    }
}

/// Runs the server until `stop` becomes true (set by SIGINT/SIGTERM in `main`).
/// Returns the final statistics text.
pub fn run(
    settings: Settings,
    admin: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
) -> Result<String, StartError> {
    if settings.udp_addrs.is_empty() && settings.tcp_addrs.is_empty() {
        return Err(StartError::NoListener);
    }
    let n = settings.shards as usize;
    let stats = stats::StatsRegistry::new(n);
    let clock = Clock::new();
    // Bind every shard's sockets up front so a bad address fails before anything runs.
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let mut udp = Vec::new();
        for &addr in &settings.udp_addrs {
            udp.push(udp::bind(addr, settings.udp_icmp_errors).map_err(|source| {
                StartError::Bind {
                    what: "UDP",
                    addr,
                    source,
                }
            })?);
        }
        let mut tcp_l = Vec::new();
        for &addr in &settings.tcp_addrs {
            tcp_l.push(tcp::bind(addr).map_err(|source| StartError::Bind {
                what: "TCP",
                addr,
                source,
            })?);
        }
        sockets.push((udp, tcp_l));
    }
    if settings.udp_steering == UdpSteering::Bpf {
        steer_udp(&settings, &sockets);
    }
    // One server per data directory: locked before anything in it is opened, upgraded or
    // moved, held until `run` returns.
    let _data_dir_lock = if settings.durability.writes() {
        Some(store::layout::lock_data_dir(&settings.data_dir).map_err(StartError::Store)?)
    } else {
        None
    };
    // Open (and, if --shards changed, redistribute) the data directory before any shard
    // runs: each shard then loads its own environment before serving.
    let mut stores: Vec<Option<Arc<crate::persist::Store>>> = if settings.durability.writes() {
        crate::persist::open_data_dir(&settings.data_dir, settings.shards, &settings.store)
            .map_err(StartError::Store)?
            .into_iter()
            .map(Some)
            .collect()
    } else {
        vec![None; n]
    };
    assert_eq!(stores.len(), n, "one store per shard");
    let mut xcap_inits =
        crate::xcap_front::prepare(&settings, &stores).map_err(StartError::Xcap)?;
    if let Err(e) = watchdog::install() {
        tracing::warn!(error = %e, "no shard watchdog: its signal handler could not be installed");
    }
    let mesh = handoff::Mesh::new(n, settings.handoff_queue);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<u16>();
    let mut handles = Vec::with_capacity(n);
    for (i, ((udp_socks, tcp_socks), ends)) in sockets.into_iter().zip(mesh.into_ends()).enumerate()
    {
        let mut builder = match settings.placement.get(i).copied().flatten() {
            Some(cpu) => glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(cpu)),
            None => glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound),
        }
        .io_memory(1 << 20)
        // The blocking pool runs LMDB commits (rkyv encoding + fsync). Pinned to the shard's
        // own CPU (glommio's default for a fixed placement) it would steal that shard's time;
        // unbound, the kernel runs it wherever a core is free.
        .blocking_thread_pool_placement(glommio::PoolPlacement::Unbound(1))
        .name(&format!("shard-{i}"));
        if !settings.spin_before_park.is_zero() {
            builder = builder.spin_before_park(settings.spin_before_park);
        }
        let settings = settings.clone();
        let shard_stats = stats.shards[i].clone();
        let stop = stop.clone();
        let ready_tx = ready_tx.clone();
        let store_i = stores[i].take();
        let xcap_i = xcap_inits[i].take();
        let h = builder
            .spawn(move || {
                shard::run_shard(shard::ShardInit {
                    id: ShardId(i as u16),
                    settings,
                    clock,
                    stats: shard_stats,
                    udp: udp_socks,
                    tcp: tcp_socks,
                    handoff: ends,
                    stop,
                    ready: ready_tx,
                    store: store_i,
                    xcap: xcap_i,
                })
            })
            .map_err(|e| StartError::Executor {
                shard: i as u16,
                message: e.to_string(),
            })?;
        handles.push(h);
    }
    drop(ready_tx);
    // Watched from their start: a shard can wedge while it connects the mesh.
    let mut watch = watchdog::Watch::new(stats.shards.len());
    let mut ready = 0;
    // Loading a big partition takes a while: allow for it.
    let ready_by = std::time::Instant::now() + READY_WITHIN;
    while ready < n {
        match ready_rx.recv_timeout(watchdog::BEAT_EVERY) {
            Ok(_) => ready += 1,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                if std::time::Instant::now() < ready_by =>
            {
                watch.check(&stats.shards)
            }
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                return Err(StartError::Executor {
                    shard: ready as u16,
                    message: "shard did not become ready".into(),
                });
            }
        }
    }
    let admin_thread = match admin {
        Some(addr) => match admin::spawn(addr, stats.clone(), stop.clone()) {
            Ok((local, h)) => {
                tracing::info!(%local, "admin statistics listener (GET /stats, /stats.json)");
                Some(h)
            }
            Err(source) => {
                stop.store(true, Ordering::Relaxed);
                for h in handles {
                    let _ = h.join();
                }
                return Err(StartError::Bind {
                    what: "admin",
                    addr,
                    source,
                });
            }
        },
        None => None,
    };
    tracing::info!(
        shards = n,
        udp = ?settings.udp_addrs,
        tcp = ?settings.tcp_addrs,
        xcap = ?settings.xcap.listen,
        xcap_root = %settings.xcap.root,
        "herald ready"
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(watchdog::BEAT_EVERY);
        watch.check(&stats.shards);
    }
    tracing::info!("stopping: draining shards");
    // The drain (final commits, sync mode's last batch) is watched too.
    while !stats.shards.iter().all(|s| s.heartbeat.is_finished()) {
        std::thread::sleep(watchdog::BEAT_EVERY);
        watch.check(&stats.shards);
    }
    for h in handles {
        let _ = h.join();
    }
    if let Some(h) = admin_thread {
        let _ = h.join();
    }
    Ok(stats.render_text())
}
