//! Run configuration (built from the command line by `cli`).

use std::net::SocketAddr;
use std::time::Duration;

/// What each call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// OPTIONS → 200: the request/response ceiling (use against `herald-echo`).
    Options,
    /// SUBSCRIBE → 2xx + NOTIFY (answered). The subscription is left to expire.
    Subscribe,
    /// PUBLISH (PIDF) → 200; later PUBLISHes of a user modify its publication (SIP-If-Match).
    Publish,
    /// M presentities × W watchers subscribed first; then PUBLISHes, each fanned out to W
    /// NOTIFYs whose PUBLISH→NOTIFY delay is measured; then the watchers unsubscribe.
    Fanout,
    /// SUBSCRIBE → refresh (in-dialog) → unsubscribe (Expires: 0), each with its NOTIFY.
    Churn,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Options => "options",
            Scenario::Subscribe => "subscribe",
            Scenario::Publish => "publish",
            Scenario::Fanout => "fanout",
            Scenario::Churn => "churn",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub target: SocketAddr,
    pub scenario: Scenario,
    pub threads: usize,
    /// Sockets in total (spread over threads), each its own source port.
    pub sockets: usize,
    /// Open loop: calls started per second (all threads). `None`: closed loop.
    pub rate: Option<f64>,
    /// Closed loop: calls outstanding at once. Open loop: cap on outstanding calls (beyond
    /// it scheduled calls are skipped and counted, so memory stays bounded).
    pub max_outstanding: usize,
    /// Bounds: calls started in the measured phase, and its duration.
    pub count: u64,
    pub duration: Duration,
    /// Users `<prefix>0 .. <prefix>(users-1)` at `domain`.
    pub users: u64,
    pub user_prefix: String,
    pub domain: String,
    pub expires: u32,
    /// Timer E starts at T1 and doubles up to T2; a transaction times out (Timer F) after `timeout`.
    pub t1: Duration,
    pub t2: Duration,
    pub timeout: Duration,
    /// How long a subscriber waits for the NOTIFY after the 2xx (and for fan-out NOTIFYs after the last PUBLISH).
    pub notify_timeout: Duration,
    /// Fan-out: presentities and watchers per presentity; outstanding SUBSCRIBEs during setup/teardown.
    pub presentities: u64,
    pub watchers: u64,
    pub setup_outstanding: usize,
    pub setup_timeout: Duration,
    /// Fan-out: unsubscribe every watcher at the end.
    pub unsubscribe: bool,
    /// Shortest sleep between open-loop sending rounds (batches sends).
    pub tick: Duration,
}

impl Config {
    /// A small closed-loop configuration, handy for tests.
    pub fn new(target: SocketAddr, scenario: Scenario) -> Config {
        Config {
            target,
            scenario,
            threads: 2,
            sockets: 8,
            rate: None,
            max_outstanding: 256,
            count: 1_000,
            duration: Duration::from_secs(10),
            users: 10_000,
            user_prefix: "user".into(),
            domain: "example.com".into(),
            expires: 600,
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            timeout: Duration::from_secs(8),
            notify_timeout: Duration::from_secs(4),
            presentities: 100,
            watchers: 10,
            setup_outstanding: 512,
            setup_timeout: Duration::from_secs(60),
            unsubscribe: true,
            tick: Duration::from_micros(200),
        }
    }

    /// Refuses anything but loopback targets and inconsistent bounds.
    pub fn validate(&self) -> Result<(), String> {
        if !self.target.ip().is_loopback() {
            return Err(format!(
                "target {} is not a loopback address: herald-load only drives 127.0.0.0/8 or ::1",
                self.target
            ));
        }
        if self.threads == 0 || self.threads > 64 {
            return Err("--threads must be 1..=64".into());
        }
        if self.sockets < self.threads || self.sockets > 4096 {
            return Err("--sockets must be at least --threads and at most 4096".into());
        }
        if self.count == 0 {
            return Err("--count must be at least 1".into());
        }
        if self.duration.is_zero() || self.duration > Duration::from_secs(24 * 3600) {
            return Err("--duration must be between 1 ms and 24 h".into());
        }
        if let Some(r) = self.rate {
            if !(r > 0.0 && r.is_finite()) {
                return Err("--rate must be positive".into());
            }
        }
        if self.max_outstanding == 0 {
            return Err("--max must be at least 1".into());
        }
        if self.users == 0 {
            return Err("--users must be at least 1".into());
        }
        if self.scenario == Scenario::Fanout && (self.presentities == 0 || self.watchers == 0) {
            return Err("--presentities and --watchers must be at least 1".into());
        }
        if self.t1.is_zero() || self.t2 < self.t1 || self.timeout.is_zero() {
            return Err("need 0 < --t1 <= --t2 and --timeout > 0".into());
        }
        Ok(())
    }
}
