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

/// Bytes of a refused datagram the kernel hands back with its ICMP error (about 520).
const ICMP_QUOTE: usize = 520;

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
/// Every NOTIFY the core sends is answered (200, 481, refused by the network as an ICMP
/// error would report it, or not at all, by its CSeq), every
/// state change is made durable (as `--durability sync` does), timers fire, the core's
/// invariants are checked after every step, and every NOTIFY it sends must parse.
pub fn core_exchange(data: &[u8]) {
    let cfg = Config {
        persist: true,
        durability_gate: true,
        ..Config::default()
    };
    let now = Instant(1_000_000);
    let core = Core::new(cfg, ShardId(0), 1, 7, now);
    exchange(core, now, data);
}

/// Start-up from a damaged or hostile store, then traffic: the input's records part (up to
/// the first `MSGS`) is read as up to 16 publication and subscription records, each built from
/// fuzzer-chosen fields (or taken as raw stored bytes), stored and read back the way the
/// store does it (`encode_record` / `decode_record`: a record the store wrote must read back),
/// converted as the shard load converts them and handed to `restore_publication` /
/// `restore_subscription`, which may refuse them but must not break the core. The rest is
/// an exchange as in [`core_exchange`] on that core: the restored dialogs' NOTIFYs (sent at
/// start-up when the first byte says so) and every later one must parse, and the core's
/// invariants hold throughout.
pub fn restore_then_exchange(data: &[u8]) {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let (records, messages) = match data.windows(4).position(|w| w == b"MSGS") {
        Some(i) => (&data[..i], &data[i + 4..]),
        None => (data, &[][..]),
    };
    let cfg = Config {
        persist: true,
        durability_gate: true,
        notify_on_restore: flags & 1 != 0,
        ..Config::default()
    };
    let now = Instant(1_000_000);
    let mut core = Core::new(cfg, ShardId(0), 1, 7, now);
    let mut r = Fields(records);
    for n in 0..16u64 {
        if r.0.is_empty() {
            break;
        }
        let kind = r.u8() % 4;
        let aor = r.aor();
        let Ok(parsed) = sip_parser::Aor::parse(&aor) else {
            continue;
        };
        let hash = crate::core::tags::aor_hash(parsed.as_bytes());
        match kind {
            0 | 2 => restore_publication_from(&mut core, &mut r, now, &aor, hash, n, kind == 2),
            _ => restore_dialog_from(&mut core, &mut r, now, &aor, hash, kind == 3),
        }
        core.check_invariants().unwrap();
    }
    exchange(core, now, messages);
}

/// Application usages a stored document of [`xcap_stored`] may belong to.
const STORED_AUIDS: [&str; 7] = [
    "resource-lists",
    "pres-rules",
    "org.openmobilealliance.pres-rules",
    "rls-services",
    "pidf-manipulation",
    "test-app",
    "org.openxcap.watchers",
];

/// XCAP documents and credentials as the store may hold them after a disk fault (LMDB has
/// no checksum) or as an older version wrote them, then requests. The input's records part
/// (up to the first `REQS`) is read as up to 8 records of alice's: documents of any usage
/// and her `subscriber` record, each built from fuzzer-chosen fields or taken as raw stored
/// bytes, validated the way every read validates (`decode_record`: a record the store
/// wrote must read back) and converted as the XCAP front converts them
/// (`xcap_front::docs::stored_doc` / `credentials_of`). The rest is pipelined requests, as
/// in the xcap crate's `service` target, on a store holding those records: no panic,
/// known statuses, one-line header fields, and no untrusted access beyond alice's
/// documents. A document the front serves must carry a tag an HTTP header can hold.
pub fn xcap_stored(data: &[u8]) {
    use crate::xcap_front::docs::{credentials_of, stored_doc};
    use store::{
        decode_record, encode_record, ArchivedSubscriberRecord, ArchivedXcapRecord,
        SubscriberRecord, XcapRecord,
    };
    use xcap::store::{DocKey, DocumentStore, Expect};
    use xcap::uri::{Scope, UserId};
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let (records, requests) = match data.windows(4).position(|w| w == b"REQS") {
        Some(i) => (&data[..i], &data[i + 4..]),
        None => (data, &[][..]),
    };
    let mut session = xcap::fuzz_checks::Session::new(flags);
    let alice = UserId {
        user: "alice".into(),
        domain: "example.com".into(),
    };
    let mut r = Fields(records);
    for _ in 0..8 {
        if r.0.is_empty() {
            break;
        }
        let kind = r.u8() % 4;
        let raw = kind & 1 == 1;
        if kind < 2 {
            let auid = STORED_AUIDS[usize::from(r.u8()) % STORED_AUIDS.len()];
            let document = String::from_utf8_lossy(&r.or(b"index")).into_owned();
            let stored = if raw {
                r.long_field().to_vec()
            } else {
                encode_record(&XcapRecord {
                    etag: r.or(b"e1"),
                    doc: r.long_field().to_vec(),
                    updated_at: store::UnixMillis(r.u64()),
                })
            };
            match decode_record::<ArchivedXcapRecord>("xcap", b"k", &stored) {
                Ok(rec) => {
                    let Some(doc) = stored_doc(rec) else { continue };
                    assert!(
                        !doc.etag.0.is_empty()
                            && doc
                                .etag
                                .0
                                .bytes()
                                .all(|b| b == b'!' || (b'#'..=b'~').contains(&b)),
                        "a served document's tag must fit a header: {:?}",
                        doc.etag
                    );
                    let key = DocKey {
                        auid: auid.to_string(),
                        scope: Scope::User(alice.clone()),
                        path: document,
                    };
                    let _ = session.store.put(&key, &Expect::Absent, doc);
                }
                Err(e) => assert!(raw, "a written record must read back: {e}"),
            }
        } else {
            let stored = if raw {
                r.long_field().to_vec()
            } else {
                // Alice's real HA1 by default, so the digest paths stay reachable.
                let text = |f: &[u8]| String::from_utf8_lossy(f).into_owned();
                encode_record(&SubscriberRecord {
                    ha1_md5: match r.field() {
                        [] => xcap::auth::ha1_md5("alice", "example.com", "secret"),
                        f => text(f),
                    },
                    ha1_sha256: match r.field() {
                        [] => xcap::auth::ha1_sha256("alice", "example.com", "secret"),
                        f => text(f),
                    },
                })
            };
            match decode_record::<ArchivedSubscriberRecord>("subscriber", b"k", &stored) {
                Ok(rec) => {
                    let creds = credentials_of(rec.to_owned_record());
                    session.store.add_credentials("alice", "example.com", creds);
                }
                Err(e) => assert!(raw, "a written record must read back: {e}"),
            }
        }
    }
    session.requests(requests);
}

/// One publication record of [`restore_then_exchange`] for presentity `aor` (its `hash`),
/// the `n`-th record: built from fields, or (`raw`) its stored bytes taken as they come.
fn restore_publication_from(
    core: &mut Core,
    r: &mut Fields<'_>,
    now: Instant,
    aor: &[u8],
    hash: u32,
    n: u64,
    raw: bool,
) {
    use crate::persist::convert::publication_from_store;
    use store::{decode_record, encode_record, ArchivedPresentityRecord, PresentityKey, RecordKey};
    let event = r.or(b"presence");
    let id = r.token(hash, 2 * n + 1);
    let etag = r.token(hash, 2 * n + 2);
    let content_type = r.or(b"application/pidf+xml");
    let body = match r.field() {
        [] => default_pidf(aor),
        b => b.to_vec(),
    };
    let stored = if raw {
        body
    } else {
        encode_record(&store::PresentityRecord {
            expires_at: store::UnixMillis(r.expiry(now)),
            received_at: store::UnixMillis(r.u64()),
            order: r.u64(),
            etag,
            content_type,
            body,
        })
    };
    let key = PresentityKey {
        presentity: aor,
        event: &event,
        pub_id: &id,
    };
    let Ok(key_bytes) = key.to_vec() else {
        return;
    };
    let Some(key) = PresentityKey::decode(&key_bytes) else {
        return;
    };
    match decode_record::<ArchivedPresentityRecord>("presentity", &key_bytes, &stored) {
        Ok(v) => {
            if let Some(rec) = publication_from_store(key, v) {
                let _ = core.restore_publication(now, rec);
            }
        }
        Err(e) => assert!(raw, "a written record must read back: {e}"),
    }
}

/// One subscription record of [`restore_then_exchange`] for presentity `aor` (its `hash`):
/// built from fields, or (`raw`) its stored bytes taken as they come.
fn restore_dialog_from(
    core: &mut Core,
    r: &mut Fields<'_>,
    now: Instant,
    aor: &[u8],
    hash: u32,
    raw: bool,
) {
    use crate::persist::convert::{dialog_id, subscription_from_store};
    use store::{
        decode_record, encode_record, ArchivedSubscriptionRecord, RecordKey, SubscriptionKey,
    };
    let id = r.u64();
    let key_id = if r.u8() & 1 == 0 {
        dialog_id(id).to_vec()
    } else {
        r.field().to_vec()
    };
    let stored = if raw {
        r.long_field().to_vec()
    } else {
        let opt = |r: &mut Fields<'_>| (r.u8() & 1 != 0).then(|| r.field().to_vec());
        encode_record(&store::SubscriptionRecord {
            event: r.or(b"presence"),
            event_id: opt(r),
            call_id: r.or(b"c@fuzz"),
            from_tag: r.or(b"ft"),
            to_tag: r.token(hash, id),
            from_uri: r.or(b"<sip:w@example.com>"),
            to_uri: r.or(aor),
            local_cseq: r.u64() as u32,
            remote_cseq: r.u64() as u32,
            route_set: r.field().to_vec(),
            contact: r.or(b"sip:w@10.0.0.1:5060"),
            transport: if r.u8() & 1 == 0 {
                store::TransportKind::Udp
            } else {
                store::TransportKind::Tcp
            },
            peer: SocketAddr::from(([10, 0, 0, 1 + (r.u8() & 3)], 5060)),
            status: match r.u8() % 4 {
                0 => store::SubStatus::Active,
                1 => store::SubStatus::Pending,
                2 => store::SubStatus::Terminated,
                _ => store::SubStatus::Rejected,
            },
            reason: opt(r),
            expires_at: store::UnixMillis(r.expiry(now)),
            version: r.u64(),
        })
    };
    let key = SubscriptionKey {
        presentity: aor,
        dialog_id: &key_id,
    };
    let Ok(key_bytes) = key.to_vec() else {
        return;
    };
    let Some(key) = SubscriptionKey::decode(&key_bytes) else {
        return;
    };
    match decode_record::<ArchivedSubscriptionRecord>("active_watchers", &key_bytes, &stored) {
        Ok(v) => {
            if let Some(rec) = subscription_from_store(key, v) {
                let _ = core.restore_subscription(now, rec);
            }
        }
        Err(e) => assert!(raw, "a written record must read back: {e}"),
    }
}

/// A PIDF document for `entity` (the default body of a fuzzed publication record).
fn default_pidf(entity: &[u8]) -> Vec<u8> {
    let mut b = b"<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\""
        .to_vec();
    b.extend(
        entity
            .iter()
            .filter(|&&c| c != b'"' && c != b'<' && c != b'&'),
    );
    b.extend_from_slice(
        b"\"><tuple id=\"t\"><status><basic>open</basic></status></tuple></presence>",
    );
    b
}

/// Reads record fields off fuzz input; past its end every read is empty or zero.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u64(&mut self) -> u64 {
        let head = self.take(8);
        let mut w = [0u8; 8];
        w[..head.len()].copy_from_slice(head);
        u64::from_le_bytes(w)
    }
    /// The next `n` bytes (fewer at the end).
    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
    /// A byte string of up to 255 bytes (its length first).
    fn field(&mut self) -> &[u8] {
        let n = usize::from(self.u8());
        self.take(n)
    }
    /// A byte string of up to 64 KiB (a 2-byte length first): raw stored values.
    fn long_field(&mut self) -> &[u8] {
        let n = usize::from(self.u8()) | usize::from(self.u8()) << 8;
        self.take(n)
    }
    /// A field, or `default` when it is empty.
    fn or(&mut self, default: &[u8]) -> Vec<u8> {
        match self.field() {
            [] => default.to_vec(),
            f => f.to_vec(),
        }
    }
    /// A presentity: one of four ordinary AoRs for a field of under three bytes (so that
    /// records and messages meet), else the field as it is.
    fn aor(&mut self) -> Vec<u8> {
        match self.field() {
            f if f.len() < 3 => {
                format!("sip:p{}@example.com", f.first().map_or(0, |b| b % 4)).into_bytes()
            }
            f => f.to_vec(),
        }
    }
    /// A token field, or (when empty) our valid token for `(hash, id)`.
    fn token(&mut self, hash: u32, id: u64) -> Vec<u8> {
        match self.field() {
            [] => crate::core::tags::Token::new(hash, id).as_bytes().to_vec(),
            f => f.to_vec(),
        }
    }
    /// An expiry in Unix ms: past, minutes ahead, far ahead, or any value.
    fn expiry(&mut self, now: Instant) -> u64 {
        match self.u8() {
            0 => now.as_millis().saturating_sub(1),
            255 => u64::MAX,
            254 => self.u64(),
            s => now.as_millis() + u64::from(s) * 10_000,
        }
    }
}

/// The message loop of [`core_exchange`] on `core` from `now`.
fn exchange(mut core: Core, mut now: Instant, data: &[u8]) {
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
    // So must the routing of an ICMP error's payload (the start of a datagram we sent).
    if let Route::Shard(owner) = crate::core::route_refused(msg, shards) {
        assert!(
            owner.0 < shards,
            "owner {owner:?} of {shards} for a refusal"
        );
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
        let mut refused = Vec::new();
        while let Some(t) = core.poll_transmit(out) {
            busy = true;
            let msg = &out[t.offset..t.offset + t.len];
            if msg.starts_with(b"NOTIFY ") {
                match answer(msg) {
                    Reply::Respond(a) => answers.push((t.dst, a)),
                    // What the kernel hands back of a refused datagram: its start.
                    Reply::Refuse => {
                        refused.push((t.dst, msg[..msg.len().min(ICMP_QUOTE)].to_vec()))
                    }
                    Reply::Nothing => {}
                }
            } else {
                response_parses(msg);
            }
        }
        core.check_invariants().unwrap();
        for (p, a) in answers.drain(..) {
            core.handle_message(now, p, &a);
            busy = true;
        }
        for (p, sent) in refused {
            core.handle_refused(now, p.addr, &sent);
            core.check_invariants().unwrap();
        }
        if !busy {
            return;
        }
    }
}

/// A response the core sent must be one SIP response, whole, with a real status: it is
/// built from request bytes (Via, From, To, Call-ID, CSeq copied, reason texts naming
/// headers), so a line break slipping through would split it or forge a header. Bounds
/// are generous: a response may be somewhat larger than the request it answers.
fn response_parses(msg: &[u8]) {
    let limits = Limits {
        max_message_len: 1 << 20,
        max_headers: 256,
        max_header_len: 1 << 20,
    };
    let mut slots = [Header::EMPTY; 256];
    let text = || String::from_utf8_lossy(msg).into_owned();
    let m = match parse(msg, &mut slots, Framing::Datagram, &limits) {
        Ok(Status::Complete(m)) => m,
        other => panic!("core sent an unparseable response ({other:?}): {}", text()),
    };
    assert!(
        m.status().is_some_and(|c| (100..700).contains(&c)),
        "core sent a message that is no response: {}",
        text()
    );
    assert_eq!(
        m.len,
        msg.len(),
        "core sent more than one message: {}",
        text()
    );
}

/// 200 to most NOTIFYs, 481 to some, silence to others (their Timer F then fires).
/// What the fuzzed watcher does with a NOTIFY.
enum Reply {
    Respond(Vec<u8>),
    /// Its port is closed: the network refuses the datagram (ICMP port unreachable).
    Refuse,
    Nothing,
}

fn answer(notify: &[u8]) -> Reply {
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
        4 => return Reply::Refuse,
        5 => (481, "Call/Transaction Does Not Exist"),
        6 => return Reply::Nothing,
        _ => (200, "OK"),
    };
    let mut out = Vec::new();
    ResponseWriter::new(&mut out, &m, code, reason, None).finish();
    Reply::Respond(out)
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
