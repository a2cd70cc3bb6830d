//! Command line of the `herald` binary.
//!
//! `herald [run flags]` runs the server; subcommands (`herald store …`, `herald user …`) are
//! added by later issues without changing how a bare `herald` behaves. Every flag has a
//! default so that `herald` alone serves 127.0.0.1:5060 over UDP and TCP.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use crate::persist::Durability;

use clap::{Parser, Subcommand, ValueEnum};

/// Default `--commit-interval-us` (see there).
pub const DEFAULT_COMMIT_INTERVAL_US: u64 = 0;

/// Default `--coalesce-us`: 250 µs. A glommio park and wake-up costs ~45 µs of CPU, so waking
/// per datagram dominates a shard's CPU at moderate rates. Measured on 2 shards (fresh server
/// per run, `herald-load -s subscribe -r R`): CPU per 1,000 SUBSCRIBE 118 → 93 ms at 4k/s and
/// 56–69 → 31–35 ms at 16k/s (0 → 250); fan-out PUBLISH→NOTIFY at 48k NOTIFY/s p50 0.10 → 0.29
/// ms, p99 1.2–2.0 ms either way (4 runs each, within this VM's noise). A 1 ms window saves
/// more CPU but moved p99 to 2.2 ms (0.94 with 0); 0 takes every datagram at once. Since
/// session 25 the pause applies only while it is expected to gather a datagram
/// (`edge::coalesce`): at 1,000 SUBSCRIBE/s it cost a second wake-up per datagram.
pub const DEFAULT_COALESCE_US: u64 = 250;

/// `--udp-steering`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UdpSteering {
    Bpf,
    Hash,
}

/// herald: thread-per-core SIP presence and event server.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub run: RunArgs,
    /// Optional subcommand; without one, herald runs the server.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands. The server itself is the default (no subcommand).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the effective configuration and exit (useful to check flags).
    ShowConfig,
    /// Inspect or maintain the data directory (works on a stopped or a running server).
    #[command(subcommand)]
    Store(StoreCommand),
    /// XCAP users (the `subscriber` table: user, domain, HA1), like OpenXCAP's.
    #[command(subcommand)]
    User(UserCommand),
    /// Time the sans-IO core on this machine, one thread, no sockets: initial SUBSCRIBEs in,
    /// each one's 200 and first NOTIFY out. Prints the median ns per pair on a fresh core and
    /// on a steady one (tables sized by an earlier batch). What one shard can do at most
    /// before the kernel's UDP costs; run it on an idle machine.
    BenchCore {
        /// SUBSCRIBEs per timed batch (each batch's messages are held in memory, ~300 B each).
        #[arg(long, default_value_t = crate::core_speed::DEFAULT_PAIRS as u64,
              value_parser = clap::value_parser!(u64).range(1..=crate::core_speed::MAX_PAIRS as u64))]
        pairs: u64,
        /// Batches timed (the median is printed).
        #[arg(long, default_value_t = crate::core_speed::DEFAULT_ROUNDS as u64,
              value_parser = clap::value_parser!(u64).range(1..=crate::core_speed::MAX_ROUNDS as u64))]
        rounds: u64,
    },
}

/// `herald user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add or replace a user, e.g. `herald user add alice@example.com --password s3cret`.
    Add {
        /// `user@domain`.
        user: String,
        /// Password (default: read one line from stdin).
        #[arg(long, conflicts_with = "ha1")]
        password: Option<String>,
        /// The user's existing MD5 HA1 (32 hex digits: MD5(user:realm:password), the `ha1`
        /// column of an OpenSIPS/Kamailio `subscriber` table) instead of a password. Only MD5
        /// digest then works for this user: SHA-256 needs the password.
        #[arg(long)]
        ha1: Option<String>,
        /// Digest realm (default: the user's domain).
        #[arg(long)]
        realm: Option<String>,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Add or replace many users at once (one commit per shard), e.g. migrated from an
    /// OpenSIPS/Kamailio `subscriber` table. One user per line: `user@domain`, then a tab,
    /// comma or spaces, then either the password or `ha1=<32 hex digits>` (MD5 HA1).
    /// Empty lines and lines starting with `#` are skipped.
    Import {
        /// File to read (default: stdin).
        file: Option<std::path::PathBuf>,
        /// Digest realm of every user (default: each user's domain). An imported HA1 must
        /// have been computed with this realm.
        #[arg(long)]
        realm: Option<String>,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Delete a user.
    Del {
        /// `user@domain`.
        user: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// List users.
    List {
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// `herald store …`, like the OpenSIPS presence MI commands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// List stored records (`pres_phtable_list` / `subs_phtable_list`).
    List {
        #[command(subcommand)]
        what: ListWhat,
    },
    /// Delete every expired publication and subscription (OpenSIPS `cleanup`) on a stopped
    /// server; on a running one (which deletes them itself as they expire) report how many
    /// are past their expiry, writing nothing.
    Cleanup {
        #[command(flatten)]
        dir: DataDirArg,
        /// Instead, delete the records that cannot be read (malformed key, or a value that
        /// fails validation), of any table: the server skips them, `herald store check` names
        /// them. Stopped server only.
        #[arg(long)]
        unreadable: bool,
    },
    /// Verify that every record decodes and the indexes agree; exit 1 if not.
    Check {
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// What `herald store list` shows.
#[derive(Debug, Subcommand)]
pub enum ListWhat {
    /// Publications (presentity, event, ETag, expiry, content type, body size).
    Presentities {
        #[command(flatten)]
        dir: DataDirArg,
        #[command(flatten)]
        filter: ListFilter,
    },
    /// Subscription dialogs (presentity, watcher, event, Call-ID, tags, CSeq, contact, expiry).
    Subscriptions {
        #[command(flatten)]
        dir: DataDirArg,
        #[command(flatten)]
        filter: ListFilter,
    },
}

/// `--data-dir` of a `herald store` command (defaults to the server's `--data-dir`).
#[derive(Debug, Clone, clap::Args)]
pub struct DataDirArg {
    /// Data directory of the server (default: the top-level `--data-dir`, `./data`).
    #[arg(long = "data-dir")]
    pub data_dir: Option<PathBuf>,
}

/// Filters of `herald store list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListFilter {
    /// Only this event package (e.g. `presence`).
    #[arg(long)]
    pub event: Option<String>,
    /// Only presentities whose AoR matches this regular expression.
    #[arg(long)]
    pub presentity: Option<String>,
}

/// Flags of the server run.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Number of shards (one glommio executor per shard). Default: online CPUs.
    #[arg(long, env = "HERALD_SHARDS")]
    pub shards: Option<u16>,

    /// CPUs to pin shards to, e.g. `0,1` or `0-3`; shard i goes to the i-th CPU of the list.
    /// Default: shard i on CPU i when shards <= CPUs.
    #[arg(long, value_parser = parse_cpu_list)]
    pub cpus: Option<CpuList>,

    /// Do not pin shards to CPUs.
    #[arg(long)]
    pub no_pin: bool,

    /// Address to listen on: `udp:IP:PORT`, `tcp:IP:PORT`, or `IP:PORT` for both. Repeatable.
    #[arg(long = "listen", value_parser = parse_listen, default_value = "127.0.0.1:5060")]
    pub listen: Vec<Listen>,

    /// SIP URI used as Contact in 2xx and NOTIFY. Default: `sip:IP:PORT` of the first listen address.
    #[arg(long)]
    pub server_address: Option<String>,

    /// Local domain (repeatable). When given, SUBSCRIBE/PUBLISH for other domains get 403;
    /// when absent, every domain is served.
    #[arg(long = "domain")]
    pub domains: Vec<String>,

    /// Comma-separated CIDRs allowed to send requests; others get 403.
    #[arg(long, value_delimiter = ',', value_parser = parse_cidr, default_value = "127.0.0.0/8,::1/128")]
    pub trusted_peers: Vec<Cidr>,

    /// Largest Expires granted to a SUBSCRIBE (seconds); larger values are clamped.
    #[arg(long, default_value_t = 3600)]
    pub max_expires_subscribe: u32,

    /// Largest Expires granted to a PUBLISH (seconds); larger values are clamped.
    #[arg(long, default_value_t = 3600)]
    pub max_expires_publish: u32,

    /// Smallest non-zero Expires accepted (seconds); below it the answer is 423 with Min-Expires.
    #[arg(long, default_value_t = 60)]
    pub min_expires: u32,

    /// Extra seconds a record is kept after it expires (OpenSIPS expires_offset).
    #[arg(long, default_value_t = 0)]
    pub expires_offset: u32,

    /// Accepted for OpenSIPS/Kamailio configs (clean_period) and ignored: herald expires each
    /// subscription and publication on its own timer, to the second, so there is no sweep.
    #[arg(long, default_value_t = 100)]
    pub clean_period: u32,

    /// Report presentities without a publication as `closed` in NOTIFY bodies.
    #[arg(long)]
    pub notify_offline_body: bool,

    /// End a subscription when a NOTIFY times out (408 or Timer F). `--end-sub-on-timeout=false` to keep it.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    pub end_sub_on_timeout: bool,

    /// Answer 406 to a SUBSCRIBE whose Accept does not admit application/pidf+xml (RFC 3856
    /// §6.2). `--check-accept=false` serves it PIDF anyway, as Kamailio and OpenSIPS do.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    pub check_accept: bool,

    /// SIP timer T1 (RTT estimate) in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub t1_ms: u64,

    /// SIP timer T2 (max retransmit interval for non-INVITE) in milliseconds.
    #[arg(long, default_value_t = 4000)]
    pub t2_ms: u64,

    /// SIP timer T4 (max time a message stays in the network) in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub t4_ms: u64,

    /// Largest SIP message accepted (bytes), for UDP datagrams and TCP frames.
    #[arg(long, default_value_t = 65_535)]
    pub max_message_size: usize,

    /// Largest number of live subscriptions per shard.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_subscriptions: usize,

    /// Largest number of subscriptions to one presentity.
    #[arg(long, default_value_t = 1_000)]
    pub max_subs_per_presentity: usize,

    /// Largest number of presentities per shard.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_presentities: usize,

    /// Largest number of publications per shard.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_publications: usize,

    /// Depth of each cross-shard hand-off queue; when full, requests get 503 + Retry-After.
    #[arg(long, default_value_t = 4096)]
    pub handoff_queue: usize,

    /// Busy-poll this many microseconds before an idle shard parks (0 = park at once).
    #[arg(long, default_value_t = 0)]
    pub spin_before_park_us: u64,

    /// How the kernel picks the shard for a UDP datagram. `bpf`: a classic BPF program on
    /// the SO_REUSEPORT group sends SUBSCRIBE/PUBLISH to the shard owning their Request-URI
    /// and responses to the shard that sent the NOTIFY, so they need no hand-off (what it
    /// cannot decide goes by hash). `hash`: the kernel's 4-tuple hash; about (N-1)/N of the
    /// requests then take a hand-off to their owner.
    #[arg(long, value_enum, default_value_t = UdpSteering::Bpf)]
    pub udp_steering: UdpSteering,

    /// After a shard handled a batch of datagrams (or hand-offs), it waits this many
    /// microseconds before taking the next batch, so that under steady load one wake-up
    /// serves many messages instead of one each. It pauses only while datagrams arrive at
    /// least once per pause on average (measured over 10 ms); slower traffic and an idle
    /// shard are answered at once. Bounds the extra delay per hop; 0 = take every message
    /// at once.
    #[arg(long, default_value_t = DEFAULT_COALESCE_US)]
    pub coalesce_us: u64,

    /// Act on ICMP errors for UDP NOTIFYs (RFC 3261 §18.4): when a watcher's host answers a
    /// NOTIFY with port, host, network or protocol unreachable, its transaction ends at once
    /// (as Timer F would end it 32 s later), instead of being retransmitted ten times.
    /// `--udp-icmp-errors=false` ignores them, as the kernel does by default.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    pub udp_icmp_errors: bool,

    /// Let the kernel back the heap with transparent huge pages (its THP policy decides).
    /// Off by default: with huge pages every touched 2 MiB region stays resident whole, which
    /// raised RSS per held subscription by ~55% on the core bench (549 vs 347 B); on large
    /// tables huge pages can save TLB misses.
    #[arg(long)]
    pub transparent_huge_pages: bool,

    /// Milliseconds a heap page freed by a shard waits before its memory goes back to the
    /// kernel. Each shard also releases expired free pages once a second, so an idle server
    /// gives a burst's memory back within about this delay plus a second. 0 returns pages
    /// at once, which re-faults them when they are needed again: the core bench, which
    /// frees and allocates in bursts, took ~1.4× the time per SUBSCRIBE (no difference
    /// under steady load).
    #[arg(long, default_value_t = crate::edge::memory::DEFAULT_PURGE_DELAY_MS)]
    pub heap_purge_delay_ms: u64,

    /// Close TCP connections idle for this many seconds.
    #[arg(long, default_value_t = 300)]
    pub tcp_idle_timeout: u64,

    /// Largest number of TCP connections per shard (more are refused).
    #[arg(long, default_value_t = 10_000)]
    pub max_tcp_connections: usize,

    /// Depth of each TCP connection's outgoing queue (messages); a full queue drops the message.
    /// Must exceed one burst (a 16 KiB read plus a 256-item hand-off batch, both answered
    /// with a response and a NOTIFY each) for proxies that multiplex many users on one connection.
    #[arg(long, default_value_t = 4096)]
    pub tcp_write_queue: usize,

    /// Statistics listener (plain HTTP/1.0: `GET /stats`, `GET /stats.json`, `GET /metrics` for
    /// Prometheus). `off` disables it.
    #[arg(long, default_value = "127.0.0.1:5080")]
    pub admin_listen: String,

    /// Seconds to send Retry-After with 503 when overloaded.
    #[arg(long, default_value_t = 5)]
    pub retry_after: u32,

    /// Directory of the LMDB state (one environment per shard, `shard-NNN/`). Two servers
    /// must never share one.
    #[arg(long, default_value = "./data")]
    pub data_dir: PathBuf,

    /// `sync` (2xx only after commit), `periodic=<ms>` or `periodic=<seconds>s` (write-behind,
    /// like OpenSIPS db_update_period: a crash loses at most that much; up to 3600 s) or
    /// `none` (memory only).
    #[arg(long, default_value = "sync")]
    pub durability: Durability,

    /// `--durability sync`: under a steady stream of state changes a shard starts at most one
    /// commit (log append + flush) per this many µs, so each batch is bigger. Every commit
    /// costs ~0.1 ms of CPU whatever its size (the flush syscall, the thread hand-off, the
    /// wake-up that releases its replies): 2000 took 7% less server CPU per SUBSCRIBE at
    /// 8,000/s, but up to 2 ms more reply latency cost clients that wait for each reply
    /// (closed-loop fan-out publishers: 0.90 -> 0.77 of memory-only throughput). A request
    /// arriving after a quiet spell is committed at once. 0 (default): a commit starts as
    /// soon as the last one ends (a busy shard still gathers ~one commit duration).
    #[arg(long, default_value_t = DEFAULT_COMMIT_INTERVAL_US)]
    pub commit_interval_us: u64,

    /// Largest LMDB map size per shard (bytes; suffix K, M, G allowed). The map grows up to
    /// it; when full, state-changing requests get 500 until space is freed by expiry.
    #[arg(long, value_parser = parse_size, default_value = "16G")]
    pub map_size_max: usize,

    /// Initial LMDB map size per shard (bytes; suffix K, M, G allowed); doubles on demand.
    #[arg(long, value_parser = parse_size, default_value = "64M")]
    pub map_size_initial: usize,

    /// Testing only: with `--durability sync`, checkpoints of the write-ahead log into LMDB
    /// start only when the log reaches its size trigger or the server stops (not when a
    /// shard is idle or its log a second old), so a test can see state only the log holds.
    #[arg(long, hide = true)]
    pub debug_hold_checkpoints: bool,

    // ---- XCAP server (issue 6) -------------------------------------------------------
    /// XCAP (HTTP) listen address `IP:PORT`, served by every shard; `none` disables XCAP.
    #[arg(long, value_parser = parse_xcap_listen, default_value = "127.0.0.1:8080")]
    pub xcap_listen: XcapListen,

    /// XCAP root URI clients are configured with. Default: `http://<xcap-listen>/xcap-root`
    /// (`https://` when `--tls-cert` is given). `http://xcap.example.com@example.com/…`
    /// style roots (realm after `@`) are understood as OpenXCAP does.
    #[arg(long)]
    pub xcap_root: Option<String>,

    /// Digest realm (and domain of bare XUIs) when neither the XUI nor the root names one.
    /// Default: the first `--domain`, else `localhost`.
    #[arg(long)]
    pub default_realm: Option<String>,

    /// Comma-separated CIDRs whose XCAP requests skip authentication (e.g. a provisioning
    /// host). Default: none.
    #[arg(long, value_delimiter = ',', value_parser = parse_cidr)]
    pub xcap_trusted_peers: Vec<Cidr>,

    /// Largest XCAP request body (bytes; suffix K, M, G allowed); larger gets 413.
    #[arg(long, value_parser = parse_body_size, default_value = "1M")]
    pub xcap_max_body: usize,

    /// Largest number of open XCAP connections per shard (more are closed at once).
    #[arg(long, default_value_t = 4096)]
    pub xcap_max_connections: usize,

    /// Close an XCAP connection idle (no request) for this many seconds.
    #[arg(long, default_value_t = 30)]
    pub xcap_idle_timeout: u64,

    /// Longest time (seconds) from the first byte of an XCAP request to its last (408 after).
    #[arg(long, default_value_t = 60)]
    pub xcap_request_timeout: u64,

    /// Depth of each cross-shard XCAP hand-off queue; when full, requests get 503 + Retry-After.
    #[arg(long, default_value_t = 1024)]
    pub xcap_queue: usize,

    /// Lifetime (seconds) of a Digest nonce; an older one gets a `stale=true` challenge.
    #[arg(long, default_value_t = 300)]
    pub xcap_nonce_ttl: u64,

    /// PEM certificate chain for an https XCAP root (with `--tls-key`).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    // ---- end XCAP --------------------------------------------------------------------
    /// Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or `server=debug`.
    #[arg(long = "log", env = "HERALD_LOG", default_value = "info")]
    pub log: String,
}

impl RunArgs {
    /// Number of shards after applying the default.
    pub fn shard_count(&self) -> u16 {
        self.shards
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get().min(u16::MAX as usize) as u16)
                    .unwrap_or(1)
            })
            .max(1)
    }

    /// CPU for each shard, or None for "unbound".
    pub fn placement(&self) -> Vec<Option<usize>> {
        let n = self.shard_count() as usize;
        if self.no_pin {
            return vec![None; n];
        }
        if let Some(list) = &self.cpus {
            return (0..n)
                .map(|i| list.0.get(i % list.0.len()).copied())
                .collect();
        }
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        if n <= cpus {
            (0..n).map(Some).collect()
        } else {
            vec![None; n]
        }
    }

    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.listen
            .iter()
            .filter(|l| l.udp)
            .map(|l| l.addr)
            .collect()
    }

    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.listen
            .iter()
            .filter(|l| l.tcp)
            .map(|l| l.addr)
            .collect()
    }

    /// `--server-address`, or `sip:IP:PORT` of the first listen address.
    pub fn server_address(&self) -> String {
        if let Some(s) = &self.server_address {
            return s.clone();
        }
        match self.listen.first().map(|l| l.addr) {
            Some(SocketAddr::V4(a)) => format!("sip:{}:{}", a.ip(), a.port()),
            Some(SocketAddr::V6(a)) => format!("sip:[{}]:{}", a.ip(), a.port()),
            None => "sip:127.0.0.1:5060".to_string(),
        }
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        if self.admin_listen.eq_ignore_ascii_case("off") {
            None
        } else {
            self.admin_listen.parse().ok()
        }
    }

    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_peers.iter().any(|c| c.contains(ip))
    }

    /// LMDB sizing from the flags.
    pub fn store_options(&self) -> store::StoreOptions {
        store::StoreOptions {
            initial_map_size: self.map_size_initial.min(self.map_size_max),
            max_map_size: self.map_size_max,
            ..store::StoreOptions::default()
        }
    }
}

// ---- XCAP helpers (issue 6) ----------------------------------------------------------

/// `--xcap-listen`: an address, or `None` when XCAP is disabled (`none`/`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XcapListen(pub Option<SocketAddr>);

fn parse_xcap_listen(s: &str) -> Result<XcapListen, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("none") || t.eq_ignore_ascii_case("off") {
        return Ok(XcapListen(None));
    }
    t.parse::<SocketAddr>()
        .map(|a| XcapListen(Some(a)))
        .map_err(|e| format!("`{s}`: expected IP:PORT or `none` ({e})"))
}

/// A byte size: `4096`, `64K`, `512M`, `16G`.
fn parse_body_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: usize = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("bad size `{s}`: suffix must be K, M or G")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    num.trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("bad size `{s}`: expected e.g. 65536, 64K, 1M"))
}

impl RunArgs {
    /// The XCAP root URI (flag or derived from the listen address).
    pub fn xcap_root_uri(&self) -> String {
        if let Some(r) = &self.xcap_root {
            return r.clone();
        }
        let scheme = if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        let addr = self
            .xcap_listen
            .0
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        format!("{scheme}://{addr}/xcap-root")
    }

    /// `--default-realm`, else the first `--domain`, else `localhost`.
    pub fn xcap_default_realm(&self) -> String {
        self.default_realm
            .clone()
            .or_else(|| self.domains.first().cloned())
            .unwrap_or_else(|| "localhost".to_string())
            .to_ascii_lowercase()
    }
}
// ---- end XCAP helpers ----------------------------------------------------------------

/// A database size: like `parse_body_size`, at least 1M (LMDB needs room for its own pages).
fn parse_size(s: &str) -> Result<usize, String> {
    let v = parse_body_size(s)?;
    if v < 1 << 20 {
        return Err(format!("bad size `{s}`: must be at least 1M"));
    }
    Ok(v)
}

/// One listen address and the transports on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    pub addr: SocketAddr,
    pub udp: bool,
    pub tcp: bool,
}

fn parse_listen(s: &str) -> Result<Listen, String> {
    let (udp, tcp, rest) = if let Some(r) = s.strip_prefix("udp:") {
        (true, false, r)
    } else if let Some(r) = s.strip_prefix("tcp:") {
        (false, true, r)
    } else {
        (true, true, s)
    };
    let addr = rest
        .parse::<SocketAddr>()
        .map_err(|e| format!("`{s}`: expected [udp:|tcp:]IP:PORT ({e})"))?;
    Ok(Listen { addr, udp, tcp })
}

/// List of CPU indices, from `0,1` / `0-3` / `0-1,4`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

fn parse_cpu_list(s: &str) -> Result<CpuList, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let a: usize = a.trim().parse().map_err(|_| format!("bad CPU `{a}`"))?;
            let b: usize = b.trim().parse().map_err(|_| format!("bad CPU `{b}`"))?;
            if a > b || b - a > 4096 {
                return Err(format!("bad CPU range `{part}`"));
            }
            out.extend(a..=b);
        } else {
            out.push(part.parse().map_err(|_| format!("bad CPU `{part}`"))?);
        }
    }
    if out.is_empty() {
        return Err("empty CPU list".into());
    }
    Ok(CpuList(out))
}

/// An IP network, `10.0.0.0/8` or `::1/128` (a bare IP means a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub net: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix as u32)
                };
                (u32::from(n) & mask) == (u32::from(a) & mask)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix as u32)
                };
                (u128::from(n) & mask) == (u128::from(a) & mask)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_cidr(s)
    }
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let s = s.trim();
    let (ip, prefix) = match s.split_once('/') {
        Some((ip, p)) => (ip, Some(p)),
        None => (s, None),
    };
    let net: IpAddr = ip.parse().map_err(|_| format!("bad IP in `{s}`"))?;
    let max = if net.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => p
            .parse::<u8>()
            .map_err(|_| format!("bad prefix in `{s}`"))?,
        None => max,
    };
    if prefix > max {
        return Err(format!("prefix too long in `{s}`"));
    }
    Ok(Cidr { net, prefix })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let cli = Cli::parse_from(["herald"]);
        let r = &cli.run;
        assert!(cli.command.is_none());
        assert_eq!(r.listen.len(), 1);
        assert!(r.listen[0].udp && r.listen[0].tcp);
        assert_eq!(r.server_address(), "sip:127.0.0.1:5060");
        assert!(r.end_sub_on_timeout);
        assert!(r.check_accept);
        assert!(
            !Cli::parse_from(["herald", "--check-accept=false"])
                .run
                .check_accept
        );
        assert!(r.is_trusted("127.0.0.1".parse().unwrap()));
        assert!(r.is_trusted("::1".parse().unwrap()));
        assert!(!r.is_trusted("10.0.0.1".parse().unwrap()));
        assert_eq!(r.min_expires, 60);
        assert_eq!(r.durability, Durability::Sync);
        assert_eq!(r.data_dir, PathBuf::from("./data"));
        assert_eq!(r.map_size_max, 16 << 30);
    }

    #[test]
    fn durability_and_store_flags() {
        let cli = Cli::parse_from([
            "herald",
            "--durability",
            "periodic=250",
            "--map-size-max",
            "512M",
            "--data-dir",
            "/tmp/x",
        ]);
        assert_eq!(
            cli.run.durability,
            Durability::Periodic(std::time::Duration::from_millis(250))
        );
        assert_eq!(cli.run.store_options().max_map_size, 512 << 20);
        assert!(Cli::try_parse_from(["herald", "--durability", "fast"]).is_err());
        assert!(Cli::try_parse_from(["herald", "--map-size-max", "12X"]).is_err());
        let cli = Cli::parse_from([
            "herald",
            "store",
            "list",
            "subscriptions",
            "--event",
            "presence",
            "--presentity",
            "^sip:a",
            "--data-dir",
            "/d",
        ]);
        match cli.command {
            Some(Command::Store(StoreCommand::List {
                what: ListWhat::Subscriptions { dir, filter },
            })) => {
                assert_eq!(dir.data_dir, Some(PathBuf::from("/d")));
                assert_eq!(filter.event.as_deref(), Some("presence"));
                assert_eq!(filter.presentity.as_deref(), Some("^sip:a"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags() {
        let cli = Cli::parse_from([
            "herald",
            "--shards",
            "2",
            "--cpus",
            "0-1",
            "--listen",
            "udp:127.0.0.1:7000",
            "--listen",
            "tcp:127.0.0.1:7001",
            "--end-sub-on-timeout=false",
            "--trusted-peers",
            "10.0.0.0/8,192.168.1.1",
        ]);
        let r = &cli.run;
        assert_eq!(r.shard_count(), 2);
        assert_eq!(r.placement(), vec![Some(0), Some(1)]);
        assert_eq!(
            r.udp_addrs(),
            vec!["127.0.0.1:7000".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            r.tcp_addrs(),
            vec!["127.0.0.1:7001".parse::<SocketAddr>().unwrap()]
        );
        assert!(!r.end_sub_on_timeout);
        assert!(r.is_trusted("10.1.2.3".parse().unwrap()));
        assert!(r.is_trusted("192.168.1.1".parse().unwrap()));
        assert!(!r.is_trusted("192.168.1.2".parse().unwrap()));
        assert!(!r.is_trusted("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn xcap_flags() {
        let r = Cli::parse_from(["herald"]).run;
        assert_eq!(r.xcap_listen.0, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(r.xcap_root_uri(), "http://127.0.0.1:8080/xcap-root");
        assert_eq!(r.xcap_default_realm(), "localhost");
        assert!(r.xcap_trusted_peers.is_empty());
        assert_eq!(r.xcap_max_body, 1 << 20);
        let r = Cli::parse_from([
            "herald",
            "--xcap-listen",
            "none",
            "--domain",
            "Example.com",
            "--xcap-trusted-peers",
            "10.0.0.0/8",
            "--xcap-max-body",
            "64K",
        ])
        .run;
        assert_eq!(r.xcap_listen.0, None);
        assert_eq!(r.xcap_default_realm(), "example.com");
        assert!(r.xcap_trusted_peers[0].contains("10.1.1.1".parse().unwrap()));
        assert_eq!(r.xcap_max_body, 64 << 10);
        let r = Cli::parse_from([
            "herald",
            "--xcap-listen",
            "127.0.0.1:8443",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ])
        .run;
        assert_eq!(r.xcap_root_uri(), "https://127.0.0.1:8443/xcap-root");
        assert!(Cli::try_parse_from(["herald", "--tls-cert", "c.pem"]).is_err());
        assert!(Cli::try_parse_from(["herald", "--xcap-listen", "8080"]).is_err());
    }

    #[test]
    fn cpu_list() {
        assert_eq!(parse_cpu_list("0-1,4").unwrap().0, vec![0, 1, 4]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("").is_err());
    }

    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
