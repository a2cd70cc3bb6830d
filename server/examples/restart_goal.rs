//! Issue 4's restart goal end to end: "1M subscriptions and 100k presentities loaded and
//! serving within 2 s".
//!
//! 1. Fills a data directory with the records the server itself writes (core records
//!    through `persist::commit_batch`, valid tags, ETags and PIDF bodies), `--shards
//!    FILL_SHARDS` layout.
//! 2. Starts the real `herald` on it and times spawn → every one of `PROBES` OPTIONS (from
//!    as many source ports, so every shard answers some) got its 200, then reads `/stats`
//!    to check that every record was restored.
//! 3. Restarts with another `--shards` (records are redistributed on start: timed
//!    separately), then once more with that count (a plain restart again).
//!
//! ```text
//! cargo build --release -p server --bin herald --example restart_goal
//! target/release/examples/restart_goal [subscriptions] [presentities] [fill_shards] [other_shards]
//! ```
//! Defaults: 1000000 100000 2 3. `HERALD_BIN` overrides the server binary (default: the
//! `herald` next to the examples directory); `RESTART_GOAL_DIR` keeps the data directory
//! there (default: a temporary directory under the system temp dir, removed at the end).
//! `RESTART_GOAL_COLD=1` empties the page cache before each start (`sync`, then
//! `/proc/sys/vm/drop_caches`; needs root), as after a reboot: the shards then read their
//! data from the disk.
//! Bounded: each start waits at most 120 s, every server is stopped before the next.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant as WallInstant};

use server::core::tags::{aor_hash, Token};
use server::core::{
    Instant, PersistOp, PublicationRecord, SubStatus, SubscriptionRecord, Transport,
};
use server::persist::{commit_batch, open_data_dir, StoreOptions};
use sip_parser::Aor;

const PROBES: usize = 8;
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Ops per fill transaction.
const FILL_BATCH: usize = 20_000;

fn pidf(entity: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
         entity=\"{entity}\">\r\n<tuple id=\"t1\"><status><basic>open</basic></status></tuple>\r\n</presence>\r\n"
    )
    .into_bytes()
}

fn fill(dir: &Path, subs: u64, pres: u64, shards: u16) {
    let opts = StoreOptions {
        initial_map_size: 1 << 30,
        max_map_size: 16 << 30,
        no_sync: true,
        ..Default::default()
    };
    let stores = open_data_dir(dir, shards, &opts).expect("open data dir");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let far = Instant::from_millis(now_ms + 3_600_000);
    let per = subs / pres.max(1);
    let t0 = WallInstant::now();
    std::thread::scope(|s| {
        for (i, st) in stores.iter().enumerate() {
            s.spawn(move || {
                let mut ops = Vec::with_capacity(FILL_BATCH);
                let mut seq = 0u64;
                let flush = |ops: &mut Vec<PersistOp>| {
                    commit_batch(st, ops, store::UnixMillis(now_ms)).expect("fill commit");
                    ops.clear();
                };
                for p in 0..pres {
                    let uri = format!("sip:user{p}@example.com");
                    let aor = Aor::parse(uri.as_bytes()).unwrap();
                    if server::core::shard_for(&aor, shards).0 as usize != i {
                        continue;
                    }
                    let hash = aor_hash(aor.as_bytes());
                    seq += 1;
                    ops.push(PersistOp::PutPublication {
                        seq,
                        rec: PublicationRecord {
                            presentity: aor.clone(),
                            event: b"presence"[..].into(),
                            id: Token::new(hash, p + 1),
                            etag: Token::new(hash, p + 1),
                            expires_at: far,
                            content_type: b"application/pidf+xml"[..].into(),
                            body: pidf(&uri).into(),
                            order: p + 1,
                        },
                    });
                    for w in 0..per {
                        let id = p * per + w + 1;
                        seq += 1;
                        ops.push(PersistOp::PutSubscription {
                            seq,
                            rec: SubscriptionRecord {
                                id,
                                presentity: aor.clone(),
                                event: b"presence".to_vec(),
                                event_id: None,
                                call_id: format!("{id:x}-call@192.0.2.7").into_bytes(),
                                from_tag: format!("ft{id}").into_bytes(),
                                to_tag: Token::new(hash, id).as_bytes().to_vec(),
                                from_uri: format!("<sip:watcher{w}@example.com>").into_bytes(),
                                to_uri: format!("<{uri}>").into_bytes(),
                                remote_cseq: 1,
                                local_cseq: 1,
                                route_set: Vec::new(),
                                contact: format!("sip:watcher{w}@192.0.2.7:5060").into_bytes(),
                                transport: Transport::Udp,
                                peer: "192.0.2.7:5060".parse().unwrap(),
                                status: SubStatus::Active,
                                reason: None,
                                expires_at: far,
                                version: 1,
                            },
                        });
                    }
                    if ops.len() >= FILL_BATCH {
                        flush(&mut ops);
                    }
                }
                flush(&mut ops);
            });
        }
    });
    for st in &stores {
        st.sync().expect("sync");
    }
    let bytes: u64 = stores
        .iter()
        .filter_map(|s| std::fs::metadata(s.path().join("data.mdb")).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "fill: {subs} subscriptions + {pres} publications, {shards} shard(s), {:.1} s, {} MiB",
        t0.elapsed().as_secs_f64(),
        bytes >> 20
    );
}

fn free_port() -> u16 {
    // Bind UDP and TCP on the same port (herald listens on both).
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn options(port: u16, local: SocketAddr, n: usize) -> Vec<u8> {
    format!(
        "OPTIONS sip:probe@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bKprobe{n}x{}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@example.com>;tag=p{n}\r\n\
         To: <sip:probe@127.0.0.1>\r\nCall-ID: probe{n}-{}@restart\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        std::process::id(),
        std::process::id(),
    )
    .into_bytes()
}

fn http_stats(admin: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", admin)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /stats HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// The total of a `/stats` line (`name total shard0 shard1 ...`).
fn total(stats: &str, name: &str) -> Option<u64> {
    stats
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// User + system CPU seconds of a process so far (Linux `/proc/<pid>/stat`): the load's
/// cost without the waiting a busy shared machine adds to wall time.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

fn stop(mut child: Child) {
    // SIGTERM: a clean stop (final commit), then wait.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = WallInstant::now() + Duration::from_secs(30);
    while WallInstant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Starts herald on `dir` and returns the seconds until every probe was answered.
/// Writes back dirty pages, then drops the clean ones (and dentries and inodes), so the next
/// start reads the data directory from the disk. Says so if it cannot (not root).
fn drop_page_cache() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    match std::fs::write("/proc/sys/vm/drop_caches", b"3\n") {
        Ok(()) => println!("page cache dropped"),
        Err(e) => println!("could not drop the page cache ({e}): this start is not cold"),
    }
}

fn start_and_time(bin: &Path, dir: &Path, shards: u16, label: &str, subs: u64, pres: u64) {
    let port = free_port();
    let admin = free_port();
    let log = std::env::temp_dir().join(format!(
        "herald-restart-goal-{label}-{}.log",
        std::process::id()
    ));
    let probes: Vec<UdpSocket> = (0..PROBES)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    if std::env::var_os("RESTART_GOAL_COLD").is_some_and(|v| v == "1") {
        drop_page_cache();
    }
    let t0 = WallInstant::now();
    let child = Command::new(bin)
        .args([
            "--shards",
            &shards.to_string(),
            "--no-pin",
            "--xcap-listen",
            "none",
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .args(["--log", "info", "--data-dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .expect("spawn herald");
    let target: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut answered = [None::<Duration>; PROBES];
    let mut buf = [0u8; 4096];
    let mut last_send = None::<WallInstant>;
    while answered.iter().any(Option::is_none) && t0.elapsed() < START_TIMEOUT {
        if last_send.is_none_or(|t| t.elapsed() >= Duration::from_millis(20)) {
            for (i, s) in probes.iter().enumerate() {
                if answered[i].is_none() {
                    let _ = s.send_to(&options(port, s.local_addr().unwrap(), i), target);
                }
            }
            last_send = Some(WallInstant::now());
        }
        for (i, s) in probes.iter().enumerate() {
            while let Ok((n, _)) = s.recv_from(&mut buf) {
                if buf[..n].starts_with(b"SIP/2.0 200") && answered[i].is_none() {
                    answered[i] = Some(t0.elapsed());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let cpu = cpu_secs(child.id());
    let first = answered.iter().flatten().min().copied();
    let all = answered.iter().all(Option::is_some);
    let last = answered.iter().flatten().max().copied();
    // Restored counts (the stats are published every 250 ms).
    let mut restored = (None, None);
    let deadline = WallInstant::now() + Duration::from_secs(10);
    while WallInstant::now() < deadline {
        if let Some(st) = http_stats(admin) {
            restored = (
                total(&st, "core.subscriptions"),
                total(&st, "core.publications"),
            );
            if restored.0 >= Some(subs) && restored.1 >= Some(pres) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(child);
    let secs =
        |d: Option<Duration>| d.map_or("n/a".to_string(), |d| format!("{:.2} s", d.as_secs_f64()));
    println!(
        "{label}: --shards {shards}: first OPTIONS 200 after {}, all {PROBES} probes answered: {} ({}), \
         herald CPU time by then {cpu:.2} s; restored subscriptions {:?} publications {:?} (log {})",
        secs(first),
        all,
        secs(last),
        restored.0,
        restored.1,
        log.display()
    );
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let subs = *args.first().unwrap_or(&1_000_000);
    let pres = *args.get(1).unwrap_or(&100_000);
    let fill_shards = *args.get(2).unwrap_or(&2) as u16;
    let other_shards = *args.get(3).unwrap_or(&3) as u16;
    let bin = std::env::var_os("HERALD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap();
            exe.parent().unwrap().parent().unwrap().join("herald")
        });
    assert!(bin.exists(), "herald binary not found at {}", bin.display());
    let kept = std::env::var_os("RESTART_GOAL_DIR").map(PathBuf::from);
    let dir = kept.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("herald-restart-goal-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    fill(&dir, subs, pres, fill_shards);
    start_and_time(&bin, &dir, fill_shards, "restart", subs, pres);
    start_and_time(&bin, &dir, other_shards, "reshard", subs, pres);
    start_and_time(
        &bin,
        &dir,
        other_shards,
        "restart-after-reshard",
        subs,
        pres,
    );
    if kept.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
