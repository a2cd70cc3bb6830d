//! Model-based test of the write-ahead log: random batches of puts and deletes appended
//! to the log, checkpoints of random prefixes at random moments (some of them "crashing"
//! before their segments are retired), then a crash (the writer dropped, sometimes with a
//! torn frame at the end of the log) and a reopen. The reopened store must hold exactly the
//! state of every acknowledged batch applied in order: nothing acknowledged lost, nothing
//! unacknowledged (the torn frame) applied, old values never resurrected by a replay.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use store::wal::{Wal, WalBatch};
use store::*;

const AORS: [&str; 3] = [
    "sip:alice@example.com",
    "sip:bob@example.com",
    "sip:carol@example.com",
];
const IDS: [&str; 2] = ["p1", "p2"];

#[derive(Clone, Debug)]
enum Op {
    Put { aor: usize, id: usize, body: u8 },
    Del { aor: usize, id: usize },
}

#[derive(Clone, Debug)]
enum Step {
    /// One batch appended (acknowledged).
    Append(Vec<Op>),
    /// Checkpoint everything appended since the last checkpoint; `retire` false: a crash
    /// between the LMDB commit and the segments' removal (they are replayed again).
    Checkpoint { retire: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..AORS.len(), 0..IDS.len(), any::<u8>()).prop_map(|(aor, id, body)| Op::Put { aor, id, body }),
        1 => (0..AORS.len(), 0..IDS.len()).prop_map(|(aor, id)| Op::Del { aor, id }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => proptest::collection::vec(op(), 1..6).prop_map(Step::Append),
        1 => any::<bool>().prop_map(|retire| Step::Checkpoint { retire }),
    ]
}

fn key(aor: usize, id: usize) -> PresentityKey<'static> {
    PresentityKey {
        presentity: AORS[aor].as_bytes(),
        event: b"presence",
        pub_id: IDS[id].as_bytes(),
    }
}

fn record(body: u8) -> PresentityRecord {
    PresentityRecord {
        expires_at: UnixMillis(u64::MAX / 2),
        received_at: UnixMillis(1),
        order: u64::from(body),
        etag: b"etag".to_vec(),
        content_type: b"application/pidf+xml".to_vec(),
        body: vec![body; 1 + usize::from(body)],
    }
}

type Model = BTreeMap<(usize, usize), u8>;

fn encode(ops: &[Op], b: &mut WalBatch, model: &mut Model) {
    b.clear();
    for op in ops {
        match *op {
            Op::Put { aor, id, body } => {
                b.put_presentity(key(aor, id), &record(body)).unwrap();
                model.insert((aor, id), body);
            }
            Op::Del { aor, id } => {
                b.delete_presentity(key(aor, id)).unwrap();
                model.remove(&(aor, id));
            }
        }
    }
}

fn stored(st: &Store) -> Model {
    let r = st.read_txn().unwrap();
    let mut out = Model::new();
    for aor in 0..AORS.len() {
        for id in 0..IDS.len() {
            if let Some(v) = st.get_presentity(&r, key(aor, id)).unwrap() {
                out.insert((aor, id), v.order.to_native() as u8);
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    #[test]
    fn replay_restores_exactly_the_acknowledged_batches(
        steps in proptest::collection::vec(step(), 1..30),
        torn in proptest::option::of(proptest::collection::vec(op(), 1..4)),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let opts = small_opts();
        let mut model = Model::new();
        let mut with_torn: Option<Model> = None;
        {
            let st = Store::open(dir.path(), &opts).unwrap();
            let mut wal = Wal::open(&st).unwrap();
            let mut b = WalBatch::new();
            let mut pending: Vec<u8> = Vec::new();
            for s in &steps {
                match s {
                    Step::Append(ops) => {
                        encode(ops, &mut b, &mut model);
                        wal.append(&mut b).unwrap();
                        pending.extend_from_slice(b.payload());
                    }
                    Step::Checkpoint { retire } => {
                        let sealed = wal.seal();
                        st.checkpoint(&pending, sealed).unwrap();
                        pending.clear();
                        if *retire {
                            Wal::remove_through(wal.dir(), sealed).unwrap();
                        }
                    }
                }
            }
            if let Some(ops) = torn {
                // A batch whose write never finished: only part of its frame is on disk.
                let mut scratch = model.clone();
                encode(&ops, &mut b, &mut scratch);
                wal.debug_append_torn(&mut b).unwrap();
                with_torn = Some(scratch);
            }
            drop(wal); // crash: no final checkpoint
        }
        let st = Store::open(dir.path(), &opts).unwrap();
        // Every acknowledged batch is there. The unacknowledged one is all or nothing: in a
        // recycled segment file the half it did not write can hold the very bytes it would
        // have written (an earlier frame with the same key), and then the frame is whole on
        // disk and replays, like a batch that crashed after its write but before the reply.
        let got = stored(&st);
        prop_assert!(
            got == model || with_torn.as_ref() == Some(&got),
            "replayed {:?}, acknowledged {:?}, with the torn batch {:?}",
            got,
            model,
            with_torn
        );
        // Replayed and retired: a second open changes nothing.
        drop(st);
        let st = Store::open(dir.path(), &opts).unwrap();
        prop_assert_eq!(st.replayed_wal_ops(), 0);
    }
}

fn small_opts() -> StoreOptions {
    StoreOptions {
        initial_map_size: 1 << 20,
        max_map_size: 64 << 20,
        max_readers: 16,
        no_sync: true,
    }
}
