//! Edge statistics: per-shard counters written only by their shard (relaxed atomics, so the
//! request path never takes a lock or contends a cache line with another shard), plus a
//! periodic snapshot of the core's own counters. The admin listener reads and sums them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

macro_rules! edge_counters {
    ($($name:ident : $doc:literal),* $(,)?) => {
        /// Counters of one shard's edge. Only the owning shard writes; anyone may read.
        #[derive(Default, Debug)]
        pub struct EdgeCounters {
            $(#[doc = $doc] pub $name: AtomicU64,)*
        }
        impl EdgeCounters {
            /// (name, value) of every counter, in declaration order.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

edge_counters! {
    udp_in: "UDP datagrams received",
    udp_out: "UDP datagrams sent",
    udp_send_errors: "UDP sends that failed",
    udp_recv_batches: "recvmmsg calls that returned datagrams (datagrams per call = udp_in / udp_recv_batches)",
    udp_icmp_errors: "ICMP errors read for datagrams this shard's sockets sent (--udp-icmp-errors); core.notify_unreachable counts the NOTIFYs they ended",
    udp_icmp_handed_over: "ICMP errors handed to the shard that sent the NOTIFY they name (the kernel picks the receiving socket by address hash); not counted in handoff_out",
    udp_send_batches: "sendmmsg calls that sent datagrams (datagrams per call = udp_out / udp_send_batches)",
    tcp_in: "SIP messages framed from TCP connections",
    tcp_out: "SIP messages queued to TCP connections",
    tcp_accepted: "TCP connections accepted",
    tcp_dialed: "TCP connections dialled to send a NOTIFY",
    tcp_dial_failures: "TCP dials that failed",
    tcp_open: "TCP connections currently open on this shard (gauge)",
    tcp_closed: "TCP connections closed",
    tcp_refused: "TCP connections refused (too many)",
    tcp_garbage: "TCP connections closed because of unframeable bytes",
    tcp_garbage_answered: "of tcp_garbage, requests answered 400 (Content-Length missing or not a number) or 513 (too large) before the close",
    tcp_idle_closed: "TCP connections closed for idleness",
    tcp_queue_full: "messages dropped because a TCP connection's write queue was full",
    tcp_no_route: "messages for a TCP connection that no longer exists and could not be re-dialled",
    dropped_unroutable: "messages dropped because route() could not place them",
    broken_framing_400: "UDP requests answered 400 statelessly because their Content-Length was larger than the datagram or not a number (RFC 3261 §18.3); not in dropped_unroutable",
    dropped_oversize: "messages dropped because they exceed --max-message-size",
    untrusted_403: "requests from untrusted peers answered 403 (responses from them dropped)",
    handoff_out: "messages handed to another shard",
    handoff_in: "messages received from another shard",
    handoff_full_503: "requests answered 503 because the owner's hand-off queue was full",
    handoff_full_dropped: "responses/ACKs dropped because the owner's hand-off queue was full",
    handoff_batches: "hand-off wake-ups (messages handled per wake-up = handoff_in / handoff_batches)",
    handoff_queue_max: "largest hand-off batch drained at once",
    timer_fires: "core timer wake-ups",
    core_transmits: "messages produced by the core",
    sleep_link_misses: "times this shard's executor slept until its next timer (or a signal) although network completions waited on its latency ring and its ring link never fired (a lost io_uring wake-up, now bounded by the timer; see vendor/glommio/HERALD.md)",
    watchdog_nudges: "times the main thread signalled this shard's executor after it made no progress for edge::watchdog::WEDGED_AFTER",
}

impl EdgeCounters {
    #[inline]
    pub fn inc(c: &AtomicU64) {
        // Single writer: load+store is cheaper than a locked RMW and still exact.
        c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }
    #[inline]
    pub fn add(c: &AtomicU64, n: u64) {
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
    #[inline]
    pub fn dec(c: &AtomicU64) {
        c.store(
            c.load(Ordering::Relaxed).saturating_sub(1),
            Ordering::Relaxed,
        );
    }
    #[inline]
    pub fn max(c: &AtomicU64, n: u64) {
        if n > c.load(Ordering::Relaxed) {
            c.store(n, Ordering::Relaxed);
        }
    }
}

/// What one shard publishes for the admin listener.
#[derive(Default, Debug)]
pub struct ShardStats {
    pub edge: EdgeCounters,
    /// Beaten by the shard, watched by the main thread (`edge::watchdog`).
    pub heartbeat: super::watchdog::Heartbeat,
    /// Core counters as (name, value), refreshed periodically by the shard (off the request
    /// path: only the publisher task and the admin thread touch this lock).
    pub core: Mutex<Vec<(String, u64)>>,
}

/// All shards' stats, shared with the admin listener.
#[derive(Clone, Debug)]
pub struct StatsRegistry {
    pub shards: Arc<[Arc<ShardStats>]>,
}

impl StatsRegistry {
    pub fn new(n: usize) -> Self {
        StatsRegistry {
            shards: (0..n).map(|_| Arc::new(ShardStats::default())).collect(),
        }
    }

    /// Per-shard rows and their total: `(name, per_shard_values, total)`, edge then core.
    fn rows(&self) -> Vec<(String, Vec<u64>, u64)> {
        let mut rows: Vec<(String, Vec<u64>, u64)> = Vec::new();
        let n = self.shards.len();
        let push = |rows: &mut Vec<(String, Vec<u64>, u64)>, name: &str, i: usize, v: u64| {
            let idx = match rows.iter().position(|r| r.0 == name) {
                Some(p) => p,
                None => {
                    rows.push((name.to_string(), vec![0; n], 0));
                    rows.len() - 1
                }
            };
            rows[idx].1[i] = v;
            rows[idx].2 = rows[idx].2.wrapping_add(v);
        };
        for (i, s) in self.shards.iter().enumerate() {
            for (name, v) in s.edge.snapshot() {
                push(&mut rows, &format!("edge.{name}"), i, v);
            }
        }
        for (i, s) in self.shards.iter().enumerate() {
            let core = s.core.lock().map(|g| g.clone()).unwrap_or_default();
            for (name, v) in core {
                push(&mut rows, &format!("core.{name}"), i, v);
            }
        }
        rows
    }

    /// `name total shard0 shard1 …` lines.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# herald statistics: name total per-shard...");
        let _ = writeln!(out, "shards {}", self.shards.len());
        for (name, per, total) in self.rows() {
            let _ = write!(out, "{name} {total}");
            for v in per {
                let _ = write!(out, " {v}");
            }
            out.push('\n');
        }
        out
    }

    /// `{"shards":N,"total":{name:v,..},"per_shard":[{name:v,..},..]}`.
    pub fn render_json(&self) -> String {
        let rows = self.rows();
        let mut out = String::new();
        let _ = write!(out, "{{\"shards\":{},\"total\":{{", self.shards.len());
        for (i, (name, _, total)) in rows.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "\"{}\":{}", json_escape(name), total);
        }
        out.push_str("},\"per_shard\":[");
        for s in 0..self.shards.len() {
            if s > 0 {
                out.push(',');
            }
            out.push('{');
            for (i, (name, per, _)) in rows.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "\"{}\":{}", json_escape(name), per[s]);
            }
            out.push('}');
        }
        out.push_str("]}");
        out
    }

    /// Total of one counter across shards (e.g. `edge.udp_in`, `core.subscriptions`).
    pub fn total(&self, name: &str) -> Option<u64> {
        self.rows().into_iter().find(|r| r.0 == name).map(|r| r.2)
    }
}

fn json_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if (c as u32) < 0x20 => vec!['?'],
            c => vec![c],
        })
        .collect()
}

/// Turns a `Display` rendering of the core's stats (`name value` / `name: value` /
/// `name=value` per line or space separated) into (name, value) pairs. Used only when the
/// core offers no structured view.
pub fn parse_display_counters(text: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let normalised = text.replace([':', '=', ',', '{', '}'], " ");
    let mut toks = normalised.split_whitespace().peekable();
    while let Some(t) = toks.next() {
        if let Some(next) = toks.peek() {
            if let Ok(v) = next.parse::<u64>() {
                if t.parse::<u64>().is_err() {
                    out.push((t.to_string(), v));
                    toks.next();
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate() {
        let reg = StatsRegistry::new(2);
        EdgeCounters::add(&reg.shards[0].edge.udp_in, 3);
        EdgeCounters::add(&reg.shards[1].edge.udp_in, 4);
        *reg.shards[1].core.lock().unwrap() = vec![("subscriptions".into(), 7)];
        assert_eq!(reg.total("edge.udp_in"), Some(7));
        assert_eq!(reg.total("core.subscriptions"), Some(7));
        let text = reg.render_text();
        assert!(text.contains("edge.udp_in 7 3 4"), "{text}");
        assert!(text.contains("core.subscriptions 7 0 7"), "{text}");
        let json = reg.render_json();
        assert!(json.contains("\"edge.udp_in\":7"), "{json}");
    }

    #[test]
    fn display_counters() {
        let v = parse_display_counters("subscribe_in: 3\nnotify_sent=4 presentities 2");
        assert_eq!(
            v,
            vec![
                ("subscribe_in".to_string(), 3),
                ("notify_sent".to_string(), 4),
                ("presentities".to_string(), 2)
            ]
        );
    }
}
