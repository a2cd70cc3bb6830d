//! Model-based test: random transactions of put / delete / cleanup (and aborted
//! transactions, and reopening the environment) against an in-memory BTreeMap model.
//! After every step the store's tables equal the model and `check` finds nothing.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use proptest::prelude::*;
use store::*;

const AORS: [&str; 3] = [
    "sip:alice@example.com",
    "sip:bob@example.com",
    "sip:alice@example.co",
];
const EVENTS: [&str; 2] = ["presence", "dialog"];
const ETAGS: [&str; 3] = ["a1", "b2", "c3"];
const DIALOGS: [&str; 4] = [
    "0000000000000001",
    "0000000000000002",
    "0000000000000003",
    "04",
];

#[derive(Clone, Debug)]
enum Op {
    PutPres {
        aor: usize,
        event: usize,
        etag: usize,
        expires: u64,
        body: u8,
    },
    DelPres {
        aor: usize,
        event: usize,
        etag: usize,
    },
    PutSub {
        aor: usize,
        dialog: usize,
        expires: u64,
        cseq: u32,
    },
    DelSub {
        aor: usize,
        dialog: usize,
    },
    Cleanup {
        now: u64,
    },
}

#[derive(Clone, Debug)]
enum Step {
    /// One write transaction, committed.
    Commit(Vec<Op>),
    /// One write transaction that fails at the end: nothing of it may stay.
    Abort(Vec<Op>),
    /// Close and reopen the environment: committed state survives.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize, 0..2usize, 0..3usize, 0..20u64, any::<u8>()).prop_map(
            |(aor, event, etag, expires, body)| Op::PutPres {
                aor,
                event,
                etag,
                expires,
                body
            }
        ),
        (0..3usize, 0..2usize, 0..3usize).prop_map(|(aor, event, etag)| Op::DelPres {
            aor,
            event,
            etag
        }),
        (0..3usize, 0..4usize, 0..20u64, any::<u32>()).prop_map(|(aor, dialog, expires, cseq)| {
            Op::PutSub {
                aor,
                dialog,
                expires,
                cseq,
            }
        }),
        (0..3usize, 0..4usize).prop_map(|(aor, dialog)| Op::DelSub { aor, dialog }),
        (0..20u64).prop_map(|now| Op::Cleanup { now }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => proptest::collection::vec(op(), 1..6).prop_map(Step::Commit),
        1 => proptest::collection::vec(op(), 1..4).prop_map(Step::Abort),
        1 => Just(Step::Reopen),
    ]
}

type PresModel = BTreeMap<(usize, usize, usize), PresentityRecord>;
type SubModel = BTreeMap<(usize, usize), SubscriptionRecord>;

/// A publication whose current ETag is its key's (unique per presentity and event, as
/// `check` requires).
fn pres_of(etag: usize, expires: u64, body: u8) -> PresentityRecord {
    PresentityRecord {
        etag: ETAGS[etag].as_bytes().to_vec(),
        ..pres(expires, &[body])
    }
}

fn pkey(aor: usize, event: usize, etag: usize) -> PresentityKey<'static> {
    PresentityKey {
        presentity: AORS[aor].as_bytes(),
        event: EVENTS[event].as_bytes(),
        pub_id: ETAGS[etag].as_bytes(),
    }
}

fn skey(aor: usize, dialog: usize) -> SubscriptionKey<'static> {
    SubscriptionKey {
        presentity: AORS[aor].as_bytes(),
        dialog_id: DIALOGS[dialog].as_bytes(),
    }
}

fn apply_model(ops: &[Op], p: &mut PresModel, s: &mut SubModel) {
    for op in ops {
        match *op {
            Op::PutPres {
                aor,
                event,
                etag,
                expires,
                body,
            } => {
                p.insert((aor, event, etag), pres_of(etag, expires, body));
            }
            Op::DelPres { aor, event, etag } => {
                p.remove(&(aor, event, etag));
            }
            Op::PutSub {
                aor,
                dialog,
                expires,
                cseq,
            } => {
                s.insert((aor, dialog), sub(expires, cseq));
            }
            Op::DelSub { aor, dialog } => {
                s.remove(&(aor, dialog));
            }
            Op::Cleanup { now } => {
                p.retain(|_, r| r.expires_at.0 > now);
                s.retain(|_, r| r.expires_at.0 > now);
            }
        }
    }
}

fn apply_store(st: &Store, w: &mut RwTxn, ops: &[Op]) -> store::Result<()> {
    for op in ops {
        match *op {
            Op::PutPres {
                aor,
                event,
                etag,
                expires,
                body,
            } => st.put_presentity(w, pkey(aor, event, etag), &pres_of(etag, expires, body))?,
            Op::DelPres { aor, event, etag } => {
                st.delete_presentity(w, pkey(aor, event, etag))?;
            }
            Op::PutSub {
                aor,
                dialog,
                expires,
                cseq,
            } => st.put_subscription(w, skey(aor, dialog), &sub(expires, cseq))?,
            Op::DelSub { aor, dialog } => {
                st.delete_subscription(w, skey(aor, dialog))?;
            }
            Op::Cleanup { now } => {
                for e in st.find_expired(w, UnixMillis(now))?.expired {
                    st.delete_if_expired(w, &e)?;
                }
            }
        }
    }
    Ok(())
}

fn assert_agrees(st: &Arc<Store>, p: &PresModel, s: &SubModel) -> Result<(), TestCaseError> {
    let r = st.read_txn().unwrap();
    let mut got_p = BTreeMap::new();
    for item in st.iter_presentities(&r).unwrap() {
        let (k, v) = item.unwrap();
        let aor = AORS
            .iter()
            .position(|a| a.as_bytes() == k.presentity)
            .unwrap();
        let ev = EVENTS.iter().position(|a| a.as_bytes() == k.event).unwrap();
        let et = ETAGS.iter().position(|a| a.as_bytes() == k.pub_id).unwrap();
        got_p.insert((aor, ev, et), v.to_owned_record());
    }
    prop_assert_eq!(&got_p, p);
    let mut got_s = BTreeMap::new();
    for item in st.iter_subscriptions(&r).unwrap() {
        let (k, v) = item.unwrap();
        let aor = AORS
            .iter()
            .position(|a| a.as_bytes() == k.presentity)
            .unwrap();
        let d = DIALOGS
            .iter()
            .position(|a| a.as_bytes() == k.dialog_id)
            .unwrap();
        got_s.insert((aor, d), v.to_owned_record());
    }
    prop_assert_eq!(&got_s, s);
    // Prefix scans see exactly the model's records of each presentity.
    for (i, aor) in AORS.iter().enumerate() {
        let n = st.presentities_of(&r, aor.as_bytes()).unwrap().count();
        prop_assert_eq!(n, p.keys().filter(|k| k.0 == i).count());
        let n = st.subscriptions_of(&r, aor.as_bytes()).unwrap().count();
        prop_assert_eq!(n, s.keys().filter(|k| k.0 == i).count());
    }
    let c = st.counts(&r).unwrap();
    prop_assert_eq!(c.presentity, p.len() as u64);
    prop_assert_eq!(c.active_watchers, s.len() as u64);
    drop(r);
    let rep = store::admin::check(&[(0, st.clone())], None).unwrap();
    // The layout is only recorded by `layout::open_shards`; here one bare env.
    prop_assert_eq!(rep.problem_count, 1, "{}", rep);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(48)))]

    #[test]
    fn store_agrees_with_model(steps in proptest::collection::vec(step(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        let mut st = Arc::new(Store::open(dir.path(), &opts()).unwrap());
        let (mut p, mut s) = (PresModel::new(), SubModel::new());
        for step in &steps {
            match step {
                Step::Commit(ops) => {
                    st.write(|st, w| apply_store(st, w, ops)).unwrap();
                    apply_model(ops, &mut p, &mut s);
                }
                Step::Abort(ops) => {
                    let r = st.write(|st, w| {
                        apply_store(st, w, ops)?;
                        Err::<(), _>(StoreError::InvalidArgument("abort".into()))
                    });
                    prop_assert!(r.is_err());
                }
                Step::Reopen => {
                    drop(st);
                    st = Arc::new(Store::open(dir.path(), &opts()).unwrap());
                }
            }
            assert_agrees(&st, &p, &s)?;
        }
        drop(st);
        let st = Arc::new(Store::open(dir.path(), &opts()).unwrap());
        assert_agrees(&st, &p, &s)?;
    }
}
