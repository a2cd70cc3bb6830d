//! herald-echo: the ceiling. Answers every SIP request with a minimal 200 (its Via, From,
//! To, Call-ID and CSeq copied, as a real server would), with the same batched I/O and
//! `SO_REUSEPORT` sockets (one per thread) a fast server would use. No state, no parsing
//! beyond the header lines: whatever rate the generator reaches against it is the most any
//! server can show on this machine with this generator.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::msg;
use crate::net::{self, RecvBatch, SendQueue};

pub struct EchoOptions {
    pub listen: SocketAddr,
    pub threads: usize,
    /// Also send a NOTIFY for each SUBSCRIBE (lets the subscribe scenario run against echo).
    pub notify: bool,
    /// Stop by itself after this long.
    pub exit_after: Duration,
}

#[derive(Default)]
pub struct EchoCounters {
    pub received: AtomicU64,
    pub answered: AtomicU64,
}

/// Binds every thread's socket (same port); returns the bound address and the sockets.
pub fn bind(opts: &EchoOptions) -> io::Result<(SocketAddr, Vec<std::net::UdpSocket>)> {
    let first = net::udp_socket(opts.listen, true, false)?;
    let addr = first.local_addr()?;
    let mut socks = vec![first];
    for _ in 1..opts.threads.max(1) {
        socks.push(net::udp_socket(addr, true, false)?);
    }
    for s in &socks {
        s.set_read_timeout(Some(Duration::from_millis(100)))?;
    }
    Ok((addr, socks))
}

fn is_method(buf: &[u8], m: &[u8]) -> bool {
    buf.len() > m.len() && buf.starts_with(m) && buf[m.len()] == b' '
}

fn serve_socket(
    sock: std::net::UdpSocket,
    addr: SocketAddr,
    notify: bool,
    deadline: Instant,
    stop: &AtomicBool,
    counters: &EchoCounters,
) {
    let fd = net::raw_fd(&sock);
    let mut rx = RecvBatch::new();
    let mut tx = SendQueue::default();
    let mut tag = Vec::with_capacity(16);
    let mut n_tag: u64 = 0;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        let n = rx.recv(fd, true).unwrap_or(0);
        let mut answered = 0;
        for i in 0..n {
            let (buf, src) = rx.get(i);
            let Some(src) = src else { continue };
            if buf.starts_with(b"SIP/2.0 ") || is_method(buf, b"ACK") {
                continue;
            }
            tag.clear();
            tag.extend_from_slice(b"e");
            msg::push_u64(&mut tag, n_tag);
            n_tag += 1;
            let mut ok = false;
            tx.push_with(src, |b| {
                ok = msg::write_response(b, buf, 200, b"OK", Some(&tag))
            });
            if !ok {
                continue;
            }
            answered += 1;
            if notify && is_method(buf, b"SUBSCRIBE") {
                tx.push_with(src, |b| {
                    msg::write_notify_for(b, buf, &addr, &src, &tag);
                });
            }
        }
        if tx.pending() > 0 {
            let _ = tx.flush(fd);
        }
        counters.received.fetch_add(n as u64, Ordering::Relaxed);
        counters.answered.fetch_add(answered, Ordering::Relaxed);
    }
}

/// Serves until `exit_after` passes or `stop` is set.
pub fn serve(
    opts: &EchoOptions,
    socks: Vec<std::net::UdpSocket>,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    counters: Arc<EchoCounters>,
) {
    let deadline = Instant::now() + opts.exit_after;
    let handles: Vec<_> = socks
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let stop = stop.clone();
            let counters = counters.clone();
            let notify = opts.notify;
            std::thread::Builder::new()
                .name(format!("echo-{i}"))
                .spawn(move || serve_socket(s, addr, notify, deadline, &stop, &counters))
                .expect("spawn echo thread")
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}
