//! The sans-IO core alone (no sockets, no clock reads inside the core):
//! - `subscribe_200_notify`: one initial SUBSCRIBE in, its 200 and first NOTIFY out.
//!   Goal: ≥ 1M pairs/s per core.
//! - `publish_fanout_100`: one PUBLISH modifying a presentity watched by 100 dialogs, in;
//!   its 200 and the 100 NOTIFYs out (the watchers' 200s are fed back untimed, so every
//!   iteration notifies all 100 instead of coalescing).

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use server::core::{Config, Core, Instant, ShardId};
use server::core_speed::{
    answer, core_for, peer, retire_all, run_pairs, settle, subscribe, DEFAULT_PAIRS as BATCH,
    DEFAULT_ROUNDS, PRESENTITIES,
};
use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::Duration;

/// herald runs on mimalloc (see server/src/main.rs): measure with it too. The wrapper
/// counts live bytes only while `COUNTING` is set (the `CORE_MEM` mode below).
#[global_allocator]
static GLOBAL: Counting = Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: forwards every call unchanged to mimalloc; only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { mimalloc::MiMalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { mimalloc::MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { mimalloc::MiMalloc.realloc(p, l, new) }
    }
}

fn config() -> Config {
    Config {
        max_server_transactions: 1 << 16,
        max_pending_transmits: 1 << 20,
        ..Config::default()
    }
}

fn bench_subscribe(c: &mut Criterion) {
    let msgs: Vec<Vec<u8>> = (0..BATCH).map(|i| subscribe(i, PRESENTITIES)).collect();
    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(1));
    g.bench_function("subscribe_200_notify", |b| {
        b.iter_custom(|iters| {
            let mut out = Vec::with_capacity(4096);
            let mut total = Duration::ZERO;
            let mut done = 0u64;
            while done < iters {
                let mut core = Core::new(config(), ShardId(0), 1, 7, Instant(1_000_000));
                let n = ((iters - done) as usize).min(BATCH);
                let start = std::time::Instant::now();
                run_pairs(&mut core, Instant(1_000_000), &msgs[..n], &mut out);
                total += start.elapsed();
                assert_eq!(core.stats().notify_sent, n as u64);
                done += n as u64;
                drop(core);
            }
            total
        })
    });
    // The same pairs on a core that has held and retired a batch before (what a running
    // shard is): its slabs, free lists, timer lanes and arenas have their size, so this times
    // the pairs without the tables' first growth, which the fresh core above includes.
    g.bench_function("subscribe_200_notify_steady", |b| {
        let mut out = Vec::with_capacity(4096);
        let (mut core, mut now) = core_for(&msgs, true, &mut out);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0u64;
            while done < iters {
                let n = ((iters - done) as usize).min(BATCH);
                let start = std::time::Instant::now();
                run_pairs(&mut core, now, &msgs[..n], &mut out);
                total += start.elapsed();
                assert_eq!(core.stats().subscriptions, n as u64);
                now = retire_all(&mut core, now, &mut out);
                done += n as u64;
            }
            total
        })
    });
    g.finish();
}

fn pidf(n: u64) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
         xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" entity=\"sip:p0@example.com\">\n\
         <tuple id=\"t1\"><status><basic>open</basic></status><note>version {n}</note></tuple>\n\
         <dm:person id=\"p1\"><dm:note>available</dm:note></dm:person>\n</presence>\n"
    )
}

fn publish(n: u64, etag: Option<&str>) -> Vec<u8> {
    let body = pidf(n);
    let if_match = etag
        .map(|e| format!("SIP-If-Match: {e}\r\n"))
        .unwrap_or_default();
    format!(
        "PUBLISH sip:p0@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.9.1:5060;branch=z9hG4bKpub{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:p0@example.com>;tag=pt\r\nTo: <sip:p0@example.com>\r\n\
         Call-ID: pub{n}@bench\r\nCSeq: {n} PUBLISH\r\nEvent: presence\r\nExpires: 3600\r\n{if_match}\
         Content-Type: application/pidf+xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn etag_of(resp: &[u8]) -> String {
    let s = std::str::from_utf8(resp).unwrap();
    s.split("\r\n")
        .find_map(|l| l.strip_prefix("SIP-ETag: "))
        .expect("SIP-ETag")
        .to_string()
}

fn bench_fanout(c: &mut Criterion) {
    const WATCHERS: usize = 100;
    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(WATCHERS as u64));
    g.bench_with_input(
        BenchmarkId::new("publish_fanout", WATCHERS),
        &WATCHERS,
        |b, &watchers| {
            let now = Instant(1_000_000);
            let mut core = Core::new(config(), ShardId(0), 1, 7, now);
            let mut out = Vec::new();
            let mut resp = Vec::new();
            for i in 0..watchers {
                core.handle_message(now, peer(i), &subscribe(i, 1));
            }
            settle(&mut core, now, &mut out, &mut resp);
            let mut n = 1u64;
            core.handle_message(now, peer(9999), &publish(n, None));
            out.clear();
            let t = core.poll_transmit(&mut out).unwrap();
            let mut etag = etag_of(&out[t.offset..t.offset + t.len]);
            settle(&mut core, now, &mut out, &mut resp);
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let msg = publish(n, Some(&etag));
                    out.clear();
                    let start = std::time::Instant::now();
                    core.handle_message(now, peer(9999), &msg);
                    let mut sent = Vec::with_capacity(watchers + 1);
                    while let Some(t) = core.poll_transmit(&mut out) {
                        sent.push(t);
                    }
                    total += start.elapsed();
                    assert_eq!(sent.len(), watchers + 1);
                    etag = etag_of(&out[sent[0].offset..sent[0].offset + sent[0].len]);
                    for t in &sent[1..] {
                        answer(&out[t.offset..t.offset + t.len], &mut resp);
                        core.handle_message(now, t.dst, &resp);
                    }
                }
                total
            })
        },
    );
    g.finish();
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Holds `n` subscriptions (each NOTIFY answered, as a watcher would) on `presentities`
/// presentities and prints the live heap bytes and RSS they cost, per subscription.
fn hold(n: usize, presentities: usize, purge_ms: u64) {
    let start = Instant(1_000_000);
    let now = start;
    let cfg = Config {
        max_subscriptions: n + 1,
        max_presentities: n + 1,
        ..Config::default()
    };
    let mut core = Core::new(cfg, ShardId(0), 1, 7, start);
    let mut out = Vec::new();
    let mut resp = Vec::new();
    let rss0 = rss_kb();
    COUNTING.store(true, Ordering::Relaxed);
    let live0 = LIVE.load(Ordering::Relaxed);
    // One SUBSCRIBE per simulated millisecond (1,000/s), timers run as the edge would.
    let mut now = now;
    for i in 0..n {
        now = Instant(now.0 + 1);
        if core.poll_timeout().is_some_and(|t| t <= now) {
            core.handle_timeout(now);
        }
        let m = subscribe(i, presentities);
        core.handle_message(now, peer(i), &m);
        out.clear();
        let mut sent = [None, None];
        sent[0] = core.poll_transmit(&mut out);
        sent[1] = core.poll_transmit(&mut out);
        if let Some(t) = sent[1] {
            resp.clear();
            answer(&out[t.offset..t.offset + t.len], &mut resp);
            core.handle_message(now, t.dst, &resp);
        }
    }
    let live = LIVE.load(Ordering::Relaxed) - live0;
    let rss = rss_kb().saturating_sub(rss0) * 1024;
    // 40 s later: Timer J has retired every server transaction and the NOTIFY timers
    // have fired; what remains is what holding the subscriptions costs.
    core.handle_timeout(Instant(now.0 + 40_000));
    let held = LIVE.load(Ordering::Relaxed) - live0;
    COUNTING.store(false, Ordering::Relaxed);
    // Let mimalloc purge the pages the retired transactions freed (it does so on a later
    // call of this thread, after its purge delay, as each shard's periodic `release_freed`
    // does), then read what the process still holds.
    for _ in 0..(purge_ms / 20 + 20) {
        std::thread::sleep(Duration::from_millis(20));
        black_box(vec![0u8; 64]);
        server::edge::memory::release_freed();
    }
    let rss_held = rss_kb().saturating_sub(rss0) * 1024;
    assert_eq!(core.stats().subscriptions, n as u64, "{}", core.stats());
    println!(
        "held {n} subscriptions on {} presentities: heap {} B/sub right after \
         (RSS {} B/sub), {} B/sub once transactions and timers retired (RSS {} B/sub)",
        core.stats().presentities,
        live / n as isize,
        rss / n as u64,
        held / n as isize,
        rss_held / n as u64
    );
    black_box(&core);
}

criterion_group!(benches, bench_subscribe, bench_fanout);

fn main() {
    // The allocator set up as `herald` sets it up (no transparent huge pages, its purge
    // delay), for every mode: its settings changed the time per pair by up to 1.45×.
    // `CORE_PURGE_MS` overrides the purge delay, for an A/B of `--heap-purge-delay-ms`.
    let purge_ms = std::env::var("CORE_PURGE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(server::edge::memory::DEFAULT_PURGE_DELAY_MS);
    server::edge::memory::configure(false, purge_ms);
    // CORE_PAIRS=N: just run N pairs (for callgrind); CORE_MEM=N[,P]: hold N subscriptions
    // on P presentities (default N) and print bytes per subscription.
    // (`CORE_PAIRS=N,warm`: on a core whose first N subscriptions have been retired).
    if let Ok(v) = std::env::var("CORE_PAIRS") {
        let (n, warm) = match v.split_once(',') {
            Some((n, w)) => (n.parse().unwrap(), w == "warm"),
            None => (v.parse().unwrap(), false),
        };
        let msgs: Vec<Vec<u8>> = (0..n).map(|i| subscribe(i, PRESENTITIES)).collect();
        let mut out = Vec::with_capacity(4096);
        let (mut core, now) = core_for(&msgs, warm, &mut out);
        run_pairs(&mut core, now, &msgs, &mut out);
        assert_eq!(core.stats().notify_sent, n as u64);
        println!("{n} pairs");
        return;
    }
    // CORE_TIME=N[,R]: median ns per pair over R batches of N, fresh core vs retired-and-reused.
    if let Ok(v) = std::env::var("CORE_TIME") {
        let mut it = v.split(',').map(|x| x.parse::<usize>().unwrap());
        let n = it.next().unwrap_or(BATCH);
        let rounds = it.next().unwrap_or(DEFAULT_ROUNDS);
        println!("{}", server::core_speed::report(n, rounds));
        return;
    }
    if let Ok(v) = std::env::var("CORE_MEM") {
        let mut it = v.split(',').map(|x| x.parse::<usize>().unwrap());
        let n = it.next().unwrap_or(100_000);
        hold(n, it.next().unwrap_or(n), purge_ms);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
