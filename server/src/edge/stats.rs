//! Edge statistics: per-shard counters written only by their shard (relaxed atomics, so the
//! request path never takes a lock or contends a cache line with another shard), for the SIP
//! edge and the XCAP front, plus a periodic snapshot of the core's own counters. The admin
//! listener reads and sums them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

macro_rules! counters {
    ($(#[$meta:meta])* $ty:ident { $($name:ident : $doc:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Default, Debug)]
        pub struct $ty {
            $(#[doc = $doc] pub $name: AtomicU64,)*
        }
        impl $ty {
            /// (name, description) of every counter, in declaration order.
            pub const DOCS: &'static [(&'static str, &'static str)] =
                &[$((stringify!($name), $doc),)*];
            /// (name, value) of every counter, in declaration order.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    /// Counters of one shard's edge. Only the owning shard writes; anyone may read.
    EdgeCounters {
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
}

counters! {
    /// Counters of one shard's XCAP front (`xcap.*` in /stats): the connections it accepted
    /// and the requests it answered, by method and by status. Only the owning shard writes.
    XcapCounters {
    connections_accepted: "XCAP connections accepted",
    connections_refused: "XCAP connections closed at once because --xcap-max-connections were open",
    connections_open: "XCAP connections currently open on this shard (gauge)",
    tls_handshake_failures: "XCAP connections whose TLS handshake failed",
    requests_get: "XCAP GET requests answered",
    requests_put: "XCAP PUT requests answered",
    requests_delete: "XCAP DELETE requests answered",
    requests_other: "XCAP requests with another method answered (HEAD, OPTIONS...)",
    responses_2xx: "XCAP responses 200-299",
    responses_304: "XCAP responses 304 (If-None-Match matched)",
    responses_401: "XCAP responses 401 (a challenge: no or wrong credentials, or a stale nonce)",
    responses_403: "XCAP responses 403",
    responses_404: "XCAP responses 404",
    responses_409: "XCAP responses 409 (schema, uniqueness or well-formedness conflicts)",
    responses_412: "XCAP responses 412 (ETag precondition failed)",
    responses_4xx_other: "XCAP responses 400-499 not counted above",
    responses_5xx: "XCAP responses 500-599 (503: the owner shard's queue was full)",
    http_errors: "XCAP requests that could not be framed or exceeded a limit (answered 400/413/431... then closed)",
    request_timeouts: "XCAP requests answered 408 because they arrived slower than --xcap-request-timeout",
    }
}

impl XcapCounters {
    /// Counts one response by status.
    pub fn response(&self, status: u16) {
        let c = match status {
            200..=299 => &self.responses_2xx,
            304 => &self.responses_304,
            401 => &self.responses_401,
            403 => &self.responses_403,
            404 => &self.responses_404,
            409 => &self.responses_409,
            412 => &self.responses_412,
            400..=499 => &self.responses_4xx_other,
            500..=599 => &self.responses_5xx,
            _ => return,
        };
        EdgeCounters::inc(c);
    }

    /// Counts one answered request by method.
    pub fn request(&self, method: &str) {
        EdgeCounters::inc(match method {
            "GET" => &self.requests_get,
            "PUT" => &self.requests_put,
            "DELETE" => &self.requests_delete,
            _ => &self.requests_other,
        });
    }
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
    /// Shared with this shard's XCAP front (its `FrontConfig`).
    pub xcap: Arc<XcapCounters>,
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
            for (name, v) in s.xcap.snapshot() {
                push(&mut rows, &format!("xcap.{name}"), i, v);
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

/// Rows of /stats that are levels, not running totals: Prometheus must not `rate()` them.
const GAUGES: &[&str] = &[
    "edge.tcp_open",
    "edge.handoff_queue_max",
    "xcap.connections_open",
    "core.subscriptions",
    "core.presentities",
    "core.publications",
    "core.pending_transmits",
    "core.pending_persist",
    "core.persist_last_commit_us",
    "core.persist_max_commit_us",
    "core.persist_last_checkpoint_us",
    "core.persist_max_checkpoint_us",
    "core.persist_wal_pending_bytes",
    "core.persist_driver_phase",
    "core.persist_driver_phase_ms",
];

impl StatsRegistry {
    /// The Prometheus text exposition format (version 0.0.4): `herald_<row>{shard="N"}` per
    /// shard, with HELP from the counters' descriptions and TYPE counter or gauge. Why: it is
    /// what the OpenSIPS `prometheus` and Kamailio `xhttp_prom` modules give the operators
    /// who scrape them; sums over shards are left to PromQL (`sum without (shard)`).
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP herald_shards Shards (executors) serving.");
        let _ = writeln!(out, "# TYPE herald_shards gauge");
        let _ = writeln!(out, "herald_shards {}", self.shards.len());
        let docs = |name: &str| -> Option<&'static str> {
            let (group, field) = name.split_once('.')?;
            let table = match group {
                "edge" => EdgeCounters::DOCS,
                "xcap" => XcapCounters::DOCS,
                _ => return None,
            };
            table.iter().find(|(n, _)| *n == field).map(|(_, d)| *d)
        };
        for (name, per, _) in self.rows() {
            let metric = format!(
                "herald_{}",
                name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
            );
            if let Some(d) = docs(&name) {
                // HELP text escapes only backslash and line feed.
                let d = d.replace('\\', "\\\\").replace('\n', "\\n");
                let _ = writeln!(out, "# HELP {metric} {d}");
            }
            let kind = if GAUGES.contains(&name.as_str()) {
                "gauge"
            } else {
                "counter"
            };
            let _ = writeln!(out, "# TYPE {metric} {kind}");
            for (shard, v) in per.iter().enumerate() {
                let _ = writeln!(out, "{metric}{{shard=\"{shard}\"}} {v}");
            }
        }
        out
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
        reg.shards[1].xcap.response(409);
        reg.shards[1].xcap.response(201);
        reg.shards[0].xcap.request("PUT");
        assert_eq!(reg.total("xcap.responses_409"), Some(1));
        assert_eq!(reg.total("xcap.responses_2xx"), Some(1));
        assert_eq!(reg.total("xcap.requests_put"), Some(1));
        let prom = reg.render_prometheus();
        for line in [
            "herald_shards 2",
            "# HELP herald_edge_udp_in UDP datagrams received",
            "# TYPE herald_edge_udp_in counter",
            "herald_edge_udp_in{shard=\"0\"} 3",
            "herald_edge_udp_in{shard=\"1\"} 4",
            "# TYPE herald_core_subscriptions gauge",
            "herald_core_subscriptions{shard=\"1\"} 7",
            "# TYPE herald_xcap_connections_open gauge",
            "herald_xcap_responses_409{shard=\"1\"} 1",
        ] {
            assert!(prom.lines().any(|l| l == line), "{line} in\n{prom}");
        }
        // Every sample line is `name{shard="N"} value` with a legal metric name.
        for l in prom.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{l}"
            );
        }
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
