//! callgrind driver: herald vs rsip on the same SUBSCRIBE, instruction counts.
//!
//! Wall-clock benches are noisy on a shared machine; instruction counts are not. Ratio =
//! (Ir(rsip, n) - Ir(rsip, 0)) / (Ir(herald, n) - Ir(herald, 0)):
//! `cargo build --release -p benches --example parse_cg`, then
//! `valgrind --tool=callgrind target/release/examples/parse_cg herald 2000` (and `rsip 2000`,
//! and both with `0`).
use benches::messages;
use benches::subscribe_facts::{herald_subscribe, rsip_subscribe};
use sip_parser::{Header, Limits};
use std::hint::black_box;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let buf = messages::subscribe_rsip_compatible();
    let limits = Limits::default();
    let mut slots = [Header::EMPTY; 64];
    let mut acc = 0usize;
    for _ in 0..n {
        let f = if mode == "rsip" {
            rsip_subscribe(black_box(&buf))
        } else {
            herald_subscribe(black_box(&buf), &mut slots, &limits)
        };
        acc += black_box(f).cseq as usize;
    }
    println!("{acc}");
}
