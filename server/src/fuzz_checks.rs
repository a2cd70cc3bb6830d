//! The checks behind the cargo-fuzz targets in `server/fuzz`, here so that the targets
//! and `tests/fuzz_regressions.rs` (which replays every seed and past crash in CI, without
//! libFuzzer) run the same code. Each function panics on a bug and returns quietly on
//! input that is merely refused.

use crate::core::pidf::{aggregate, validate, ChildKind, PidfIndex};
use crate::core::steer::{interp, program, BRANCH_FROM, FALLBACK};
use crate::core::{route, Config, ConnId, Core, Instant, Peer, Route, ShardId, Transport};
use quick_xml::events::Event;
use quick_xml::Reader;
use sip_parser::{parse, Framing, Header, Limits, ResponseWriter, Status};
use std::net::SocketAddr;
use std::sync::OnceLock;

/// Up to four published bodies (split at NUL bytes) through the PIDF validator; the ones it
/// accepts aggregated newest first. The aggregate of accepted bodies must itself be accepted
/// with all their top-level children, and every element in it must resolve to the
/// namespace it had in its own body.
pub fn pidf_bodies(data: &[u8]) {
    let bodies: Vec<&[u8]> = data.split(|&b| b == 0).take(4).collect();
    let accepted: Vec<(&[u8], PidfIndex)> = bodies
        .iter()
        .filter_map(|b| validate(b).ok().map(|i| (*b, i)))
        .collect();
    if accepted.is_empty() {
        return;
    }
    let docs: Vec<(&[u8], &PidfIndex)> = accepted.iter().map(|(b, i)| (*b, i)).collect();
    let mut out = Vec::new();
    aggregate(&docs, &mut out);
    let agg = match validate(&out) {
        Ok(i) => i,
        Err(e) => panic!("aggregate refused ({e}): {}", String::from_utf8_lossy(&out)),
    };
    let children: usize = accepted.iter().map(|(_, i)| i.children.len()).sum();
    if docs.len() > 1 {
        assert_eq!(agg.children.len(), children);
    }
    // Meaning is only defined where every prefix is bound in the sources.
    if let Some(want) = expected_element_names(&docs) {
        assert_eq!(
            element_names(&out),
            Some(want),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
}

/// A whole exchange through the sans-IO core: the input is split at `\0\0\0` into up to 32
/// datagrams or TCP messages (the first byte of each picks the peer and the time step).
/// Every NOTIFY the core sends is answered (200, 481 or not at all, by its CSeq), every
/// state change is made durable (as `--durability sync` does), timers fire, the core's
/// invariants are checked after every step, and every NOTIFY it sends must parse.
pub fn core_exchange(data: &[u8]) {
    let cfg = Config {
        persist: true,
        durability_gate: true,
        ..Config::default()
    };
    let mut now = Instant(1_000_000);
    let mut core = Core::new(cfg, ShardId(0), 1, 7, now);
    let mut out = Vec::new();
    let mut answers = Vec::new();
    let mut rest = data;
    for _ in 0..32 {
        if rest.is_empty() {
            break;
        }
        let (msg, next) = match rest.windows(3).position(|w| w == b"\0\0\0") {
            Some(i) => (&rest[..i], &rest[i + 3..]),
            None => (rest, &[][..]),
        };
        rest = next;
        let Some((&sel, msg)) = msg.split_first() else {
            continue;
        };
        core.handle_message(now, peer(sel), msg);
        settle(&mut core, now, &mut out, &mut answers);
        now = now.add_millis(u64::from(sel >> 3) * 250);
        core.handle_timeout(now);
        settle(&mut core, now, &mut out, &mut answers);
    }
    // Let every timer run out: expiries, retransmissions, Timer F, transaction ends.
    for _ in 0..64 {
        let Some(next) = core.poll_timeout() else {
            break;
        };
        now = next.max(now);
        core.handle_timeout(now);
        settle(&mut core, now, &mut out, &mut answers);
    }
}

/// The kernel steering program (`SO_ATTACH_REUSEPORT_CBPF`) against `route`, on any bytes:
/// the first byte picks 2–9 shards, the rest is the datagram. `route` answers any bytes
/// with a shard in range, the program with a shard or the fallback, and wherever both name
/// a shard it must be the same one: otherwise every such message would cost the hand-off
/// the program exists to avoid (the shard it reaches routes it again, so it is never lost).
pub fn steer_agrees(data: &[u8]) {
    static PROGRAMS: OnceLock<Vec<Vec<crate::core::steer::asm::Insn>>> = OnceLock::new();
    let Some((&sel, msg)) = data.split_first() else {
        return;
    };
    let shards = 2 + u16::from(sel % 8);
    let programs =
        PROGRAMS.get_or_init(|| (2..10).map(|n| program(n).expect("2+ shards")).collect());
    // `route` runs on every datagram a shard receives: on any bytes it must answer.
    let routed = route(msg, shards, &Limits::default());
    if let Route::Shard(owner) = routed {
        assert!(owner.0 < shards, "owner {owner:?} of {shards}");
    }
    let got = interp::run(&programs[usize::from(shards - 2)], msg);
    assert!(got == FALLBACK || got < u32::from(shards), "answer {got}");
    if got == FALLBACK {
        return;
    }
    if msg.starts_with(b"SIP/2.0 ") && !first_cookie_is_top_branch(msg) {
        // Documented limit (steer module docs): the first `z9hG` is trusted.
        return;
    }
    if let Route::Shard(owner) = routed {
        assert_eq!(got, u32::from(owner.0), "{}", String::from_utf8_lossy(msg));
    }
}

/// Whether the first `z9hG` the steering program would find in a response is where the
/// top Via's branch starts.
fn first_cookie_is_top_branch(msg: &[u8]) -> bool {
    let from = BRANCH_FROM as usize;
    let Some(at) = msg
        .get(from..)
        .and_then(|m| m.windows(4).position(|w| w == b"z9hG"))
    else {
        return false;
    };
    let mut slots = [Header::EMPTY; 64];
    let Ok(Status::Complete(m)) = parse(msg, &mut slots, Framing::Datagram, &Limits::default())
    else {
        return false;
    };
    m.via().is_ok_and(|v| {
        v.branch
            .is_some_and(|b| b.as_ptr() as usize == msg.as_ptr() as usize + from + at)
    })
}

fn peer(sel: u8) -> Peer {
    let tcp = sel & 4 != 0;
    Peer {
        transport: if tcp { Transport::Tcp } else { Transport::Udp },
        addr: SocketAddr::from(([10, 0, 0, 1 + (sel & 3)], 5060)),
        conn: tcp.then_some(ConnId(u64::from(sel & 3))),
    }
}

/// Runs the core until it has nothing more to send or write, answering its NOTIFYs.
fn settle(core: &mut Core, now: Instant, out: &mut Vec<u8>, answers: &mut Vec<(Peer, Vec<u8>)>) {
    for _ in 0..64 {
        let mut busy = false;
        let mut last = None;
        while let Some(op) = core.poll_persist() {
            last = Some(op.seq());
            busy = true;
        }
        if let Some(seq) = last {
            core.handle_persisted(now, seq);
        }
        out.clear();
        while let Some(t) = core.poll_transmit(out) {
            busy = true;
            let msg = &out[t.offset..t.offset + t.len];
            if msg.starts_with(b"NOTIFY ") {
                if let Some(a) = answer(msg) {
                    answers.push((t.dst, a));
                }
            }
        }
        core.check_invariants().unwrap();
        for (p, a) in answers.drain(..) {
            core.handle_message(now, p, &a);
            busy = true;
        }
        if !busy {
            return;
        }
    }
}

/// 200 to most NOTIFYs, 481 to some, silence to others (their Timer F then fires).
fn answer(notify: &[u8]) -> Option<Vec<u8>> {
    let mut slots = [Header::EMPTY; 64];
    let Ok(Status::Complete(m)) = parse(notify, &mut slots, Framing::Datagram, &Limits::default())
    else {
        panic!(
            "core sent an unparseable NOTIFY: {}",
            String::from_utf8_lossy(notify)
        )
    };
    let cseq = m.cseq().map(|c| c.seq).unwrap_or(0);
    let (code, reason) = match cseq % 7 {
        5 => (481, "Call/Transaction Does Not Exist"),
        6 => return None,
        _ => (200, "OK"),
    };
    let mut out = Vec::new();
    ResponseWriter::new(&mut out, &m, code, reason, None).finish();
    Some(out)
}

/// What a PIDF document means (for the pidf fuzz target and `core::pidf`'s tests), whatever prefixes it
/// uses: the resolved (namespace, local name) of every element below the root, in document
/// order. `None` when a name's prefix is not bound (the validator does not resolve
/// namespaces, so such documents pass it and their meaning is undefined).
pub fn element_names(doc: &[u8]) -> Option<Vec<(String, String)>> {
    use quick_xml::name::ResolveResult;
    let mut r = quick_xml::NsReader::from_reader(doc);
    let mut out = Vec::new();
    let mut depth = 0usize;
    loop {
        let (ns, ev) = r.read_resolved_event().ok()?;
        let ns = match ns {
            ResolveResult::Bound(n) => String::from_utf8_lossy(n.into_inner()).into_owned(),
            ResolveResult::Unbound => String::new(),
            ResolveResult::Unknown(_) => return None,
        };
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                if depth > 0 {
                    out.push((
                        ns,
                        String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                    ));
                }
                if matches!(ev, Event::Start(_)) {
                    depth += 1;
                }
            }
            Event::End(_) => depth = depth.checked_sub(1)?,
            Event::Eof => return Some(out),
            _ => {}
        }
    }
}

/// What [`aggregate`] of `docs` must mean ([`element_names`]): one document itself; of
/// several, each document's top-level children, tuples first, then notes, then the rest,
/// newest document first, each read in its own document's scope.
pub fn expected_element_names(docs: &[(&[u8], &PidfIndex)]) -> Option<Vec<(String, String)>> {
    if let [(doc, _)] = docs {
        return element_names(doc);
    }
    let mut want = Vec::new();
    for kind in [ChildKind::Tuple, ChildKind::Note, ChildKind::Other] {
        for (doc, idx) in docs {
            for (k, r) in &idx.children {
                if *k == kind {
                    // The child alone under its document's own root start tag.
                    let mut one = doc[..idx.children[0].1.start as usize].to_vec();
                    one.extend_from_slice(&doc[r.start as usize..r.end as usize]);
                    one.extend_from_slice(b"</");
                    one.extend_from_slice(&root_name(doc)?);
                    one.push(b'>');
                    want.extend(element_names(&one)?);
                }
            }
        }
    }
    Some(want)
}

fn root_name(doc: &[u8]) -> Option<Vec<u8>> {
    let mut r = Reader::from_reader(doc);
    loop {
        match r.read_event().ok()? {
            Event::Start(e) => return Some(e.name().as_ref().to_vec()),
            Event::Eof => return None,
            _ => {}
        }
    }
}
