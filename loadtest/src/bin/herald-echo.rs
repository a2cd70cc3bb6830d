//! herald-echo: plain UDP SIP request/response server measuring the ceiling (see `loadtest::echo`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use loadtest::echo::{self, EchoCounters, EchoOptions};

/// Answers every SIP request with a minimal 200 (UDP, SO_REUSEPORT, one socket per thread).
#[derive(Parser, Debug)]
#[command(name = "herald-echo", version)]
struct Args {
    /// Address to listen on (loopback only; port 0 picks one, printed on stdout)
    #[arg(long, default_value = "127.0.0.1:5099")]
    listen: std::net::SocketAddr,
    /// Threads, each with its own SO_REUSEPORT socket
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Also send a NOTIFY for every SUBSCRIBE
    #[arg(long)]
    notify: bool,
    /// Exit by itself after this many seconds
    #[arg(long, default_value_t = 600)]
    exit_after: u64,
}

fn main() {
    let a = Args::parse();
    if !a.listen.ip().is_loopback() {
        eprintln!("herald-echo: --listen must be a loopback address");
        std::process::exit(2);
    }
    if a.threads == 0 || a.threads > 64 {
        eprintln!("herald-echo: --threads must be 1..=64");
        std::process::exit(2);
    }
    let opts = EchoOptions {
        listen: a.listen,
        threads: a.threads,
        notify: a.notify,
        exit_after: Duration::from_secs(a.exit_after),
    };
    let (addr, socks) = match echo::bind(&opts) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("herald-echo: cannot bind {}: {e}", a.listen);
            std::process::exit(1);
        }
    };
    println!("herald-echo listening on {addr}");
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(EchoCounters::default());
    echo::serve(&opts, socks, addr, stop, counters.clone());
    eprintln!(
        "herald-echo: received {}, answered {}",
        counters.received.load(Ordering::Relaxed),
        counters.answered.load(Ordering::Relaxed)
    );
}
