//! Deterministic simulation of the sans-IO core: simulated clock, lossy / duplicating /
//! reordering network, simulated watchers and publishers, one or two shards.
//!
//! Invariants asserted for every seed: no NOTIFY after `terminated` (or after our 481) in a
//! dialog, NOTIFY CSeq strictly increasing per dialog (a repeated CSeq is a byte-identical
//! retransmission), every live subscription has exactly one expiry timer and the core's
//! indexes agree (`Core::check_invariants`), and after settling every watcher still
//! subscribed was told exactly the live publications (converges to the last accepted
//! PUBLISH of each publisher). Watchers that leave for good get ICMP errors back for what
//! the server sends them: one that ends a NOTIFY in flight must free that dialog at once, and
//! one quoting a NOTIFY must always be read and routed as ours.
//!
//! `SIM_SEEDS=n` runs n seeds from `SIM_FIRST` (defaults 5000 and 0: what CI runs, a few
//! seconds); for long runs past those, in release: `SIM_FIRST=5000 SIM_SEEDS=1000000 cargo
//! test --release -p server --test sim`. `SIM_SEED=s` replays one seed.

#[path = "sim/mod.rs"]
mod sim;

use std::panic::{catch_unwind, AssertUnwindSafe};

fn run_seed(seed: u64) -> Result<sim::Outcome, String> {
    match catch_unwind(AssertUnwindSafe(|| sim::World::new(seed).run())) {
        Ok(r) => r,
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panicked: {msg}"))
        }
    }
}

#[test]
fn simulation_many_seeds() {
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED=<u64>")],
        Err(_) => {
            let var = |name, default| {
                std::env::var(name)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(default)
            };
            let (first, n) = (var("SIM_FIRST", 0u64), var("SIM_SEEDS", 5000u64));
            (first..first.saturating_add(n)).collect()
        }
    };
    let n_seeds = seeds.len();
    let mut total = sim::Outcome::default();
    for seed in seeds {
        match run_seed(seed) {
            Ok(o) => {
                total.packets += o.packets;
                total.lost += o.lost;
                total.notifies += o.notifies;
                total.converged_checks += o.converged_checks;
                total.crashes += o.crashes;
                total.refusals += o.refusals;
                total.refusals_ended += o.refusals_ended;
            }
            Err(e) => panic!("simulation seed {seed} failed: {e}\nreplay: SIM_SEED={seed} cargo test -p server --test sim"),
        }
    }
    eprintln!("simulation: {total:?}");
    assert!(total.notifies > 0, "the simulation exercised nothing");
    if n_seeds >= 100 {
        assert!(
            total.refusals_ended > 0,
            "no ICMP error ended a NOTIFY: departures are not exercised"
        );
    }
}
