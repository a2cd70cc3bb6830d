//! Command line of `herald-load`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::config::{Config, Scenario};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ScenarioArg {
    /// OPTIONS → 200 (request/response ceiling)
    Options,
    /// same as options (use against herald-echo)
    Echo,
    /// SUBSCRIBE → 2xx + NOTIFY answered with 200
    Subscribe,
    /// PUBLISH PIDF → 200 (later ones modify with SIP-If-Match)
    Publish,
    /// M presentities × W watchers, then PUBLISH updates; measures PUBLISH→NOTIFY
    Fanout,
    /// SUBSCRIBE, refresh, unsubscribe (each with its NOTIFY)
    Churn,
}

/// SIP load generator for presence servers. Loopback targets only; every run is bounded by
/// --count and --duration.
#[derive(Parser, Debug)]
#[command(name = "herald-load", version)]
pub struct Args {
    /// Server address (loopback only), e.g. 127.0.0.1:5060
    #[arg(long, short = 't', default_value = "127.0.0.1:5060")]
    pub target: String,
    #[arg(long, short = 's', value_enum, default_value = "subscribe")]
    pub scenario: ScenarioArg,
    /// Open loop: calls started per second (all threads together)
    #[arg(long, short = 'r', conflicts_with = "max")]
    pub rate: Option<f64>,
    /// Closed loop: calls outstanding at once (default when --rate is not given: 256)
    #[arg(long, short = 'm')]
    pub max: Option<usize>,
    /// Open loop: cap on outstanding calls (beyond it, scheduled calls are skipped and counted)
    #[arg(long, default_value_t = 200_000)]
    pub max_outstanding: usize,
    /// Calls to start in the measured phase (fan-out: PUBLISHes)
    #[arg(long, short = 'n', default_value_t = 100_000)]
    pub count: u64,
    /// Longest time the measured phase starts calls, seconds (fractions allowed)
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,
    /// Generator threads
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Sockets (source ports) in total, spread over the threads
    #[arg(long, default_value_t = 16)]
    pub sockets: usize,
    /// Users <prefix>0..<prefix>N-1 (subscribe/churn: user i watches user i+1; publish: publishers)
    #[arg(long, default_value_t = 10_000)]
    pub users: u64,
    #[arg(long, default_value = "user")]
    pub user_prefix: String,
    #[arg(long, default_value = "example.com")]
    pub domain: String,
    /// Expires of SUBSCRIBE and PUBLISH, seconds
    #[arg(long, default_value_t = 600)]
    pub expires: u32,
    /// Timer E start (T1), ms; doubles up to T2
    #[arg(long, default_value_t = 500)]
    pub t1_ms: u64,
    #[arg(long, default_value_t = 4000)]
    pub t2_ms: u64,
    /// A transaction without final response after this many ms fails (Timer F; RFC: 32000)
    #[arg(long, default_value_t = 8000)]
    pub timeout_ms: u64,
    /// How long to wait for the NOTIFY after a 2xx (and for fan-out NOTIFYs at the end), ms
    #[arg(long, default_value_t = 4000)]
    pub notify_timeout_ms: u64,
    /// Fan-out: presentities
    #[arg(long, default_value_t = 100)]
    pub presentities: u64,
    /// Fan-out: watchers per presentity
    #[arg(long, default_value_t = 10)]
    pub watchers: u64,
    /// Fan-out: SUBSCRIBEs outstanding during setup and teardown
    #[arg(long, default_value_t = 512)]
    pub setup_max: usize,
    /// Fan-out: longest setup (and teardown), seconds
    #[arg(long, default_value_t = 60)]
    pub setup_timeout: u64,
    /// Fan-out: keep the watchers subscribed at the end (default: unsubscribe them)
    #[arg(long)]
    pub no_unsubscribe: bool,
    /// Open loop: length of one round, µs. Calls that fell due and datagrams that arrived
    /// during it are handled together (batched system calls); latencies use the kernel's
    /// arrival stamps, so they do not include this wait
    #[arg(long, default_value_t = 200)]
    pub tick_us: u64,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

impl Args {
    pub fn into_config(self) -> Result<Config, String> {
        let target: SocketAddr = self
            .target
            .to_socket_addrs()
            .map_err(|e| format!("bad --target {}: {e}", self.target))?
            .next()
            .ok_or_else(|| format!("bad --target {}", self.target))?;
        let scenario = match self.scenario {
            ScenarioArg::Options | ScenarioArg::Echo => Scenario::Options,
            ScenarioArg::Subscribe => Scenario::Subscribe,
            ScenarioArg::Publish => Scenario::Publish,
            ScenarioArg::Fanout => Scenario::Fanout,
            ScenarioArg::Churn => Scenario::Churn,
        };
        if !(self.duration > 0.0 && self.duration.is_finite()) {
            return Err("--duration must be positive".into());
        }
        let mut c = Config::new(target, scenario);
        c.threads = self.threads;
        c.sockets = self.sockets;
        c.rate = self.rate;
        c.max_outstanding = match (self.rate, self.max) {
            (Some(_), _) => self.max_outstanding,
            (None, Some(m)) => m,
            (None, None) => 256,
        };
        c.count = self.count;
        c.duration = Duration::from_secs_f64(self.duration.min(86_400.0));
        c.users = self.users;
        c.user_prefix = self.user_prefix;
        c.domain = self.domain;
        c.expires = self.expires;
        c.t1 = Duration::from_millis(self.t1_ms);
        c.t2 = Duration::from_millis(self.t2_ms);
        c.timeout = Duration::from_millis(self.timeout_ms);
        c.notify_timeout = Duration::from_millis(self.notify_timeout_ms);
        c.presentities = self.presentities;
        c.watchers = self.watchers;
        c.setup_outstanding = self.setup_max.max(1);
        c.setup_timeout = Duration::from_secs(self.setup_timeout.max(1));
        c.unsubscribe = !self.no_unsubscribe;
        c.tick = Duration::from_micros(self.tick_us);
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_loopback_targets() {
        let a = Args::parse_from(["herald-load", "--target", "10.1.2.3:5060"]);
        assert!(a.into_config().unwrap_err().contains("loopback"));
        let a = Args::parse_from(["herald-load", "--target", "127.0.0.1:5070", "-s", "fanout"]);
        assert_eq!(a.into_config().unwrap().scenario, Scenario::Fanout);
    }

    #[test]
    fn rate_and_max_are_exclusive() {
        assert!(Args::try_parse_from(["herald-load", "-r", "10", "-m", "5"]).is_err());
    }
}
