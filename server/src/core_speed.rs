//! The sans-IO core's speed on this machine: initial SUBSCRIBEs in, each one's 200 and first
//! NOTIFY out, no sockets and no clock reads inside the core.
//!
//! One copy of the loop serves both the criterion bench (`benches/benches/core.rs`) and
//! `herald bench-core`. In the `herald` binary it runs the code the server runs, built the
//! way the server was built: a profile-guided build (`scripts/build-pgo`, trained on
//! herald-load traffic) only applies to the symbols it was recorded under, and the bench
//! executable's copy of the core is a different build of the same code (cargo builds a
//! bench's dependencies with panic=unwind, so under other symbol names).

use crate::core::{Config, Core, Instant, Peer, ShardId, Transport};
use sip_parser::{parse, Framing, Header, Limits, ResponseWriter, Status};
use std::hint::black_box;
use std::net::SocketAddr;

/// SUBSCRIBEs per timed batch unless told otherwise: enough that tables and buffers reach
/// their working size, few enough to stay in the caches a shard would have.
pub const DEFAULT_PAIRS: usize = 20_000;
/// Batches timed unless told otherwise (the median is reported).
pub const DEFAULT_ROUNDS: usize = 15;
/// Most pairs per batch `herald bench-core` accepts: the batch's SUBSCRIBEs, and the
/// subscriptions they make, are all held at once.
pub const MAX_PAIRS: usize = 1_000_000;
/// Most batches `herald bench-core` accepts.
pub const MAX_ROUNDS: usize = 1_000;
/// Presentities the watchers of a batch subscribe to (20 watchers each at the default).
pub const PRESENTITIES: usize = 1000;

/// The source of watcher `i`.
pub fn peer(i: usize) -> Peer {
    let addr = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 5060));
    Peer {
        transport: Transport::Udp,
        addr,
        conn: None,
    }
}

/// Watcher `i`'s initial SUBSCRIBE to presentity `i % presentities`, shaped as softphones
/// send it (11 headers, no body).
pub fn subscribe(i: usize, presentities: usize) -> Vec<u8> {
    format!(
        "SUBSCRIBE sip:p{p}@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKb{i}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:w{i}@example.com>;tag=f{i}\r\nTo: <sip:p{p}@example.com>\r\n\
         Call-ID: c{i}@bench\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:w{i}@10.0.0.1:5060>\r\nEvent: presence\r\n\
         Expires: 3600\r\nAccept: application/pidf+xml\r\nContent-Length: 0\r\n\r\n",
        p = i % presentities
    )
    .into_bytes()
}

/// Server defaults, with room for `n` answered transactions so no batch evicts any.
pub fn batch_config(n: usize) -> Config {
    Config {
        max_server_transactions: n + 1,
        max_pending_transmits: 1 << 20,
        ..Config::default()
    }
}

/// The 200 a watcher sends for `notify`.
pub fn answer(notify: &[u8], out: &mut Vec<u8>) {
    let mut slots = [Header::EMPTY; 32];
    let Ok(Status::Complete(m)) = parse(notify, &mut slots, Framing::Datagram, &Limits::default())
    else {
        panic!("core sent an unparseable NOTIFY")
    };
    ResponseWriter::new(out, &m, 200, "OK", None).finish();
}

/// Answers every NOTIFY the core sends until it has nothing more to say.
pub fn settle(core: &mut Core, now: Instant, out: &mut Vec<u8>, resp: &mut Vec<u8>) {
    loop {
        out.clear();
        let mut sent = Vec::new();
        while let Some(t) = core.poll_transmit(out) {
            sent.push(t);
        }
        if sent.is_empty() {
            return;
        }
        for t in sent {
            let m = &out[t.offset..t.offset + t.len];
            if m.starts_with(b"NOTIFY") {
                answer(m, resp);
                core.handle_message(now, t.dst, resp);
            }
        }
    }
}

/// `msgs`' pairs: each SUBSCRIBE in, its 200 and NOTIFY out. Never inlined, so
/// `valgrind --tool=callgrind --toggle-collect='*run_pairs*'` counts exactly this loop.
#[inline(never)]
pub fn run_pairs(core: &mut Core, now: Instant, msgs: &[Vec<u8>], out: &mut Vec<u8>) {
    for (i, m) in msgs.iter().enumerate() {
        core.handle_message(now, peer(i), m);
        out.clear();
        let a = core.poll_transmit(out);
        let b = core.poll_transmit(out);
        black_box((a, b));
    }
}

/// [`run_pairs`] under another name, so callgrind's `--toggle-collect` leaves it out.
#[inline(never)]
fn warm_up(core: &mut Core, now: Instant, msgs: &[Vec<u8>], out: &mut Vec<u8>) {
    for (i, m) in msgs.iter().enumerate() {
        core.handle_message(now, peer(i), m);
        out.clear();
        while core.poll_transmit(out).is_some() {}
    }
}

/// A core to run `msgs` on, and its time: fresh, or (`steady`) one that has held and
/// retired them once, as a long-running shard has.
pub fn core_for(msgs: &[Vec<u8>], steady: bool, out: &mut Vec<u8>) -> (Core, Instant) {
    let now = Instant(1_000_000);
    let mut core = Core::new(batch_config(msgs.len()), ShardId(0), 1, 7, now);
    if !steady {
        return (core, now);
    }
    warm_up(&mut core, now, msgs, out);
    let now = retire_all(&mut core, now, out);
    (core, now)
}

/// Ends every subscription of `core` the way a running server sees them go (expiry, the
/// final NOTIFYs answered, Timer J retiring the transactions) and returns the new time, so
/// the next batch finds the slabs, free lists and buffers a long-running shard has.
pub fn retire_all(core: &mut Core, now: Instant, out: &mut Vec<u8>) -> Instant {
    let mut resp = Vec::new();
    let later = Instant(now.0 + 3_700_000);
    core.handle_timeout(later);
    settle(core, later, out, &mut resp);
    let done = Instant(later.0 + 40_000);
    core.handle_timeout(done);
    assert_eq!(core.stats().subscriptions, 0, "{}", core.stats());
    done
}

/// Median nanoseconds per pair over `rounds` batches of `n`: on a fresh core each time
/// (`steady == false`) or on one core whose previous batch has been retired.
pub fn time_pairs(n: usize, rounds: usize, steady: bool) -> f64 {
    let msgs: Vec<Vec<u8>> = (0..n).map(|i| subscribe(i, PRESENTITIES)).collect();
    let mut out = Vec::with_capacity(4096);
    let (mut core, mut now) = core_for(&msgs, steady, &mut out);
    let mut per_pair = Vec::new();
    for _ in 0..rounds.max(1) {
        if !steady {
            core = Core::new(batch_config(n), ShardId(0), 1, 7, now);
        }
        let start = std::time::Instant::now();
        run_pairs(&mut core, now, &msgs, &mut out);
        per_pair.push(start.elapsed().as_nanos() as f64 / n.max(1) as f64);
        assert_eq!(core.stats().subscriptions, n as u64);
        if steady {
            now = retire_all(&mut core, now, &mut out);
        }
    }
    per_pair.sort_by(f64::total_cmp);
    per_pair[per_pair.len() / 2]
}

/// The report line of `CORE_TIME` and `herald bench-core`: fresh and steady medians.
pub fn report(n: usize, rounds: usize) -> String {
    let fresh = time_pairs(n, rounds, false);
    let steady = time_pairs(n, rounds, true);
    format!(
        "{n} pairs × {rounds}: fresh core {fresh:.0} ns/pair ({:.0}k/s), steady core {steady:.0} ns/pair ({:.0}k/s)",
        1e6 / fresh,
        1e6 / steady
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_is_a_200_and_a_notify() {
        let msgs: Vec<Vec<u8>> = (0..50).map(|i| subscribe(i, 7)).collect();
        let mut out = Vec::new();
        for steady in [false, true] {
            let (mut core, now) = core_for(&msgs, steady, &mut out);
            for (i, m) in msgs.iter().enumerate() {
                core.handle_message(now, peer(i), m);
                out.clear();
                let ok = core.poll_transmit(&mut out).expect("a 200");
                assert!(out[ok.offset..].starts_with(b"SIP/2.0 200"));
                let n = core.poll_transmit(&mut out).expect("a NOTIFY");
                assert!(out[n.offset..].starts_with(b"NOTIFY "));
            }
            assert_eq!(core.stats().subscriptions, 50);
        }
        assert!(time_pairs(50, 3, true) > 0.0);
    }
}
