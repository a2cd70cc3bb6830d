//! Counters and latency histograms, one set per thread, merged at the end.

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Latencies are recorded in microseconds, 1 µs .. 120 s, 3 significant digits.
const HIST_MAX_US: u64 = 120_000_000;

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid histogram bounds")
}

#[derive(Clone)]
pub struct Stats {
    /// Calls (scenario instances) started / finished well / failed.
    pub calls_started: u64,
    pub calls_ok: u64,
    pub calls_failed: u64,
    /// Calls the open-loop schedule wanted but could not start (outstanding cap or every
    /// user busy): the offered rate was not reached.
    pub calls_skipped: u64,
    /// Requests sent for the first time, and retransmissions (Timer E).
    pub requests: u64,
    pub retransmissions: u64,
    pub responses_2xx: u64,
    pub responses_provisional: u64,
    /// Final non-2xx responses, by class, and the first few codes seen.
    pub responses_3xx_6xx: u64,
    pub failure_codes: Vec<(u16, u64)>,
    /// Transactions that got no final response before the timeout (Timer F).
    pub timeouts: u64,
    /// Subscriptions whose 2xx came but whose NOTIFY did not, within the NOTIFY timeout.
    pub notify_timeouts: u64,
    pub notifies: u64,
    pub notifies_stray: u64,
    /// NOTIFYs carrying a PUBLISH stamp (fan-out).
    pub publish_notifies: u64,
    pub responses_stray: u64,
    pub unparseable: u64,
    pub send_errors: u64,
    pub datagrams_sent: u64,
    pub datagrams_received: u64,
    /// Fan-out: subscriptions established / failed during setup, and publishes that succeeded.
    pub watchers_established: u64,
    pub publishes_ok: u64,
    /// Request → final response (from the first transmission).
    pub rtt: Histogram<u64>,
    /// SUBSCRIBE sent → first NOTIFY received.
    pub sub_notify: Histogram<u64>,
    /// PUBLISH sent → NOTIFY received by each watcher (fan-out).
    pub pub_notify: Histogram<u64>,
    /// Time window of the measured phase, ns since epoch, and last completion seen.
    pub phase_start_ns: u64,
    pub phase_send_end_ns: u64,
    pub last_completion_ns: u64,
    pub end_ns: u64,
    /// When measured-phase calls (fan-out: publish NOTIFYs) completed, µs after the phase
    /// started: the pace of the bulk without the few calls a retransmission made late.
    pub completions: Histogram<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            calls_started: 0,
            calls_ok: 0,
            calls_failed: 0,
            calls_skipped: 0,
            requests: 0,
            retransmissions: 0,
            responses_2xx: 0,
            responses_provisional: 0,
            responses_3xx_6xx: 0,
            failure_codes: Vec::new(),
            timeouts: 0,
            notify_timeouts: 0,
            notifies: 0,
            notifies_stray: 0,
            publish_notifies: 0,
            responses_stray: 0,
            unparseable: 0,
            send_errors: 0,
            datagrams_sent: 0,
            datagrams_received: 0,
            watchers_established: 0,
            publishes_ok: 0,
            rtt: hist(),
            sub_notify: hist(),
            pub_notify: hist(),
            phase_start_ns: 0,
            phase_send_end_ns: 0,
            last_completion_ns: 0,
            end_ns: 0,
            completions: hist(),
        }
    }
}

pub fn record(h: &mut Histogram<u64>, ns: u64) {
    let us = (ns / 1_000).clamp(1, HIST_MAX_US);
    // Clamped into range, so this cannot fail.
    let _ = h.record(us);
}

impl Stats {
    /// A measured-phase completion at `now` (see `completions`).
    pub fn completed(&mut self, now: u64) {
        self.last_completion_ns = now;
        if self.phase_start_ns != 0 {
            record(
                &mut self.completions,
                now.saturating_sub(self.phase_start_ns),
            );
        }
    }

    pub fn failure_code(&mut self, code: u16) {
        self.responses_3xx_6xx += 1;
        if let Some(e) = self.failure_codes.iter_mut().find(|(c, _)| *c == code) {
            e.1 += 1;
        } else if self.failure_codes.len() < 16 {
            self.failure_codes.push((code, 1));
        }
    }

    pub fn merge(&mut self, o: &Stats) {
        self.calls_started += o.calls_started;
        self.calls_ok += o.calls_ok;
        self.calls_failed += o.calls_failed;
        self.calls_skipped += o.calls_skipped;
        self.requests += o.requests;
        self.retransmissions += o.retransmissions;
        self.responses_2xx += o.responses_2xx;
        self.responses_provisional += o.responses_provisional;
        self.responses_3xx_6xx += o.responses_3xx_6xx;
        for &(c, n) in &o.failure_codes {
            if let Some(e) = self.failure_codes.iter_mut().find(|(x, _)| *x == c) {
                e.1 += n;
            } else {
                self.failure_codes.push((c, n));
            }
        }
        self.timeouts += o.timeouts;
        self.notify_timeouts += o.notify_timeouts;
        self.notifies += o.notifies;
        self.notifies_stray += o.notifies_stray;
        self.publish_notifies += o.publish_notifies;
        self.responses_stray += o.responses_stray;
        self.unparseable += o.unparseable;
        self.send_errors += o.send_errors;
        self.datagrams_sent += o.datagrams_sent;
        self.datagrams_received += o.datagrams_received;
        self.watchers_established += o.watchers_established;
        self.publishes_ok += o.publishes_ok;
        let _ = self.rtt.add(&o.rtt);
        let _ = self.sub_notify.add(&o.sub_notify);
        let _ = self.pub_notify.add(&o.pub_notify);
        let _ = self.completions.add(&o.completions);
        self.phase_start_ns = match (self.phase_start_ns, o.phase_start_ns) {
            (0, x) | (x, 0) => x,
            (x, y) => x.min(y),
        };
        self.phase_send_end_ns = self.phase_send_end_ns.max(o.phase_send_end_ns);
        self.last_completion_ns = self.last_completion_ns.max(o.last_completion_ns);
        self.end_ns = self.end_ns.max(o.end_ns);
    }
}

/// Final figures of one run.
pub struct Report {
    pub scenario: String,
    pub target: String,
    pub threads: usize,
    pub sockets: usize,
    pub offered_rate: Option<f64>,
    pub max_outstanding: Option<usize>,
    pub watchers_per_presentity: u64,
    pub expected_publish_notifies: u64,
    pub stats: Stats,
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn pct(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return Value::Null;
    }
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    json!({
        "count": h.len(),
        "min_ms": h.min() as f64 / 1000.0,
        "p50_ms": q(0.50),
        "p90_ms": q(0.90),
        "p99_ms": q(0.99),
        "p999_ms": q(0.999),
        "max_ms": h.max() as f64 / 1000.0,
        "mean_ms": h.mean() / 1000.0,
    })
}

impl Report {
    /// Seconds during which calls were started.
    pub fn send_secs(&self) -> f64 {
        secs(
            self.stats
                .phase_send_end_ns
                .saturating_sub(self.stats.phase_start_ns),
        )
        .max(1e-9)
    }

    /// Seconds from the first call start to the last call completion.
    pub fn active_secs(&self) -> f64 {
        let end = self
            .stats
            .last_completion_ns
            .max(self.stats.phase_send_end_ns);
        secs(end.saturating_sub(self.stats.phase_start_ns)).max(1e-9)
    }

    /// Seconds from the first call start until 99% of the completions: like
    /// [`active_secs`](Self::active_secs), but a few calls that a lost datagram delayed by a
    /// retransmission interval (T1, 500 ms) do not stretch it.
    pub fn active_secs_p99(&self) -> f64 {
        let c = &self.stats.completions;
        if c.is_empty() {
            return self.active_secs();
        }
        (c.value_at_quantile(0.99) as f64 / 1e6).max(self.send_secs())
    }

    /// Failed share of finished calls (timeouts and missing NOTIFYs count as failed).
    pub fn failure_ratio(&self) -> f64 {
        let s = &self.stats;
        let done = s.calls_ok + s.calls_failed;
        let mut failed = s.calls_failed as f64;
        let mut total = done as f64;
        if self.expected_publish_notifies > 0 {
            let missing = self
                .expected_publish_notifies
                .saturating_sub(s.publish_notifies);
            failed += missing as f64;
            total += self.expected_publish_notifies as f64;
        }
        if total == 0.0 {
            0.0
        } else {
            failed / total
        }
    }

    pub fn to_json(&self) -> Value {
        let s = &self.stats;
        let active = self.active_secs();
        json!({
            "scenario": self.scenario,
            "target": self.target,
            "threads": self.threads,
            "sockets": self.sockets,
            "offered_rate": self.offered_rate,
            "max_outstanding": self.max_outstanding,
            "send_secs": self.send_secs(),
            "active_secs": active,
            "calls_started": s.calls_started,
            "calls_ok": s.calls_ok,
            "calls_failed": s.calls_failed,
            "calls_skipped": s.calls_skipped,
            "failure_ratio": self.failure_ratio(),
            "calls_per_sec": s.calls_ok as f64 / active,
            // The pace of 99% of the calls (see `active_secs_p99`).
            "active_secs_p99": self.active_secs_p99(),
            "calls_per_sec_p99": 0.99 * s.calls_ok as f64 / self.active_secs_p99(),
            "started_per_sec": s.calls_started as f64 / self.send_secs(),
            // Open-loop steps: completions over the sending window (≈ offered when keeping up).
            "calls_ok_per_send_sec": s.calls_ok as f64 / self.send_secs(),
            "publish_notifies_per_send_sec": s.publish_notifies as f64 / self.send_secs(),
            "requests": s.requests,
            "requests_per_sec": s.requests as f64 / active,
            "retransmissions": s.retransmissions,
            "responses_2xx": s.responses_2xx,
            "responses_provisional": s.responses_provisional,
            "responses_failed": s.responses_3xx_6xx,
            "failure_codes": s.failure_codes.iter().map(|(c, n)| json!([c, n])).collect::<Vec<_>>(),
            "timeouts": s.timeouts,
            "notify_timeouts": s.notify_timeouts,
            "notifies": s.notifies,
            "notifies_per_sec": s.notifies as f64 / active,
            "notifies_stray": s.notifies_stray,
            "publish_notifies": s.publish_notifies,
            "publish_notifies_per_sec": s.publish_notifies as f64 / active,
            "expected_publish_notifies": self.expected_publish_notifies,
            "watchers_per_presentity": self.watchers_per_presentity,
            "watchers_established": s.watchers_established,
            "publishes_ok": s.publishes_ok,
            "responses_stray": s.responses_stray,
            "unparseable": s.unparseable,
            "send_errors": s.send_errors,
            "datagrams_sent": s.datagrams_sent,
            "datagrams_received": s.datagrams_received,
            "datagrams_per_sec": (s.datagrams_sent + s.datagrams_received) as f64 / active,
            "latency_request_response": pct(&s.rtt),
            "latency_subscribe_notify": pct(&s.sub_notify),
            "latency_publish_notify": pct(&s.pub_notify),
        })
    }

    pub fn human(&self) -> String {
        use std::fmt::Write;
        let s = &self.stats;
        let active = self.active_secs();
        let mut o = String::new();
        let mode = match (self.offered_rate, self.max_outstanding) {
            (Some(r), _) => format!("open loop, {r:.0} calls/s offered"),
            (None, Some(m)) => format!("closed loop, {m} outstanding"),
            _ => "closed loop".into(),
        };
        let _ = writeln!(
            o,
            "herald-load: {} against {} ({mode}; {} threads, {} sockets)",
            self.scenario, self.target, self.threads, self.sockets
        );
        let _ = writeln!(
            o,
            "  calls      started {} ({:.0}/s over {:.2}s), ok {}, failed {} ({:.3}%), skipped {}",
            s.calls_started,
            s.calls_started as f64 / self.send_secs(),
            self.send_secs(),
            s.calls_ok,
            s.calls_failed,
            100.0 * self.failure_ratio(),
            s.calls_skipped
        );
        let _ = writeln!(
            o,
            "  throughput {:.0} calls/s, {:.0} requests/s, {:.0} NOTIFY/s, {:.0} datagrams/s (over {:.2}s)",
            s.calls_ok as f64 / active,
            s.requests as f64 / active,
            s.notifies as f64 / active,
            (s.datagrams_sent + s.datagrams_received) as f64 / active,
            active
        );
        let _ = writeln!(
            o,
            "  responses  2xx {}, provisional {}, failed {} {:?}, stray {}",
            s.responses_2xx,
            s.responses_provisional,
            s.responses_3xx_6xx,
            s.failure_codes,
            s.responses_stray
        );
        let _ = writeln!(
            o,
            "  problems   timeouts {}, NOTIFY timeouts {}, retransmissions {}, unparseable {}, send errors {}",
            s.timeouts, s.notify_timeouts, s.retransmissions, s.unparseable, s.send_errors
        );
        if self.expected_publish_notifies > 0 || s.publish_notifies > 0 {
            let _ = writeln!(
                o,
                "  fan-out    watchers {} ({} per presentity), publishes ok {}, publish NOTIFYs {}/{} expected ({:.0}/s)",
                s.watchers_established,
                self.watchers_per_presentity,
                s.publishes_ok,
                s.publish_notifies,
                self.expected_publish_notifies,
                s.publish_notifies as f64 / active
            );
        }
        for (name, h) in [
            ("request→response", &s.rtt),
            ("SUBSCRIBE→NOTIFY", &s.sub_notify),
            ("PUBLISH→NOTIFY", &s.pub_notify),
        ] {
            if h.is_empty() {
                continue;
            }
            let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
            let _ = writeln!(
                o,
                "  {name:<17} p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms (n={})",
                q(0.5),
                q(0.9),
                q(0.99),
                q(0.999),
                h.max() as f64 / 1000.0,
                h.len()
            );
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(stats: Stats) -> Report {
        Report {
            scenario: "publish".into(),
            target: "127.0.0.1:5060".into(),
            threads: 1,
            sockets: 1,
            offered_rate: Some(100.0),
            max_outstanding: None,
            watchers_per_presentity: 0,
            expected_publish_notifies: 0,
            stats,
        }
    }

    /// 400 calls started over 4 s; `late` of them complete `lag_ms` after the window.
    fn run(late: u64, lag_ms: u64) -> Report {
        let start = 1_000_000_000;
        let mut s = Stats {
            phase_start_ns: start,
            phase_send_end_ns: start + 4_000_000_000,
            ..Stats::default()
        };
        for i in 0..400u64 {
            s.calls_started += 1;
            s.calls_ok += 1;
            let at = if i < 400 - late {
                start + i * 10_000_000 + 1_000_000
            } else {
                start + 4_000_000_000 + lag_ms * 1_000_000
            };
            s.completed(at);
        }
        report(s)
    }

    /// (calls/s to the last completion, calls/s of the p99 pace, started/s) of [`run`].
    fn paces(late: u64, lag_ms: u64) -> (f64, f64, f64) {
        let j = run(late, lag_ms).to_json();
        let f = |k: &str| j[k].as_f64().unwrap_or(f64::NAN);
        (
            f("calls_per_sec"),
            f("calls_per_sec_p99"),
            f("started_per_sec"),
        )
    }

    #[test]
    fn one_late_call_stretches_the_last_completion_but_not_the_p99_pace() {
        let (to_last, p99, started) = paces(1, 500);
        // To the very last completion the step looks 11% slow; 99% of the calls kept pace.
        assert!(to_last < 0.9 * started);
        assert!(p99 >= 0.9 * started);
    }

    #[test]
    fn a_queueing_server_fails_the_p99_pace() {
        // 5% of the calls answered a second late: more than the 1% the pace ignores.
        let (_, p99, started) = paces(20, 1_000);
        assert!(p99 < 0.9 * started);
    }
}
