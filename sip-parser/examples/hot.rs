//! Instruction-count harness for the parser hot path, for callgrind / `perf stat`:
//! wall-clock benches are too noisy on a shared machine, instruction counts are repeatable.
//!
//!   cargo build --release -p sip-parser --example hot
//!   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//!       $CARGO_TARGET_DIR/release/examples/hot sub 10000
//!
//! Modes: `index` (parse only, as the `index_headers/subscribe` bench), `sub` (parse + the
//! accessors a SUBSCRIBE needs on the rsip-compatible SUBSCRIBE, as the herald side of
//! `subscribe_parse_and_accessors`), `blink` (same on the unmodified Blink SUBSCRIBE).

use std::hint::black_box;

use sip_parser::{parse, Aor, Framing, Header, Limits, Status, Uri};

#[path = "../../benches/src/messages.rs"]
#[allow(dead_code)]
mod messages;

/// Exactly the herald side of the bench (`herald_subscribe` in `benches/benches/parse.rs`).
fn subscribe<'b>(buf: &'b [u8], slots: &mut [Header<'b>], limits: &Limits) -> usize {
    let Ok(Status::Complete(m)) = parse(buf, slots, Framing::Datagram, limits) else {
        unreachable!()
    };
    let _method = m.method().unwrap();
    let aor = Aor::from_uri(&Uri::parse(m.request_uri().unwrap()).unwrap());
    let via = m.via().unwrap();
    let from = m.from().unwrap();
    let to = m.to().unwrap();
    let call_id = m.call_id().unwrap();
    let cseq = m.cseq().unwrap();
    let expires = m.expires().unwrap().unwrap();
    let event = m.event().unwrap().unwrap();
    let contact = m.contact().unwrap().unwrap();
    let accepts = m
        .accept()
        .filter(|a| a.as_ref().is_ok_and(|a| a.matches(b"application/pidf+xml")))
        .count();
    aor.as_bytes().len()
        + via.branch.unwrap().len()
        + from.tag().unwrap().len()
        + usize::from(to.tag().is_some())
        + call_id.len()
        + cseq.seq as usize
        + expires as usize
        + event.full_name().len()
        + contact.addr.uri.len()
        + accepts
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "sub".into());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let limits = Limits::default();
    let compat = messages::subscribe_rsip_compatible();
    let mut acc = 0usize;
    // Slots are reused across iterations, as in the bench.
    let mut slots = [Header::EMPTY; 64];
    let mut compat_slots = [Header::EMPTY; 64];
    for _ in 0..n {
        match mode.as_str() {
            "index" => {
                let r = parse(
                    black_box(messages::SUBSCRIBE),
                    &mut slots,
                    Framing::Datagram,
                    &limits,
                );
                match r {
                    Ok(Status::Complete(m)) => acc += black_box(m.len),
                    _ => unreachable!(),
                }
            }
            "sub" => acc += black_box(subscribe(black_box(&compat), &mut compat_slots, &limits)),
            "blink" => {
                acc += black_box(subscribe(
                    black_box(messages::SUBSCRIBE),
                    &mut slots,
                    &limits,
                ))
            }
            _ => panic!("mode: index | sub | blink"),
        }
    }
    println!("{acc}");
}
