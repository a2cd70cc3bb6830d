//! `store::live`: what `herald store list`/`check` see on a running server, where
//! acknowledged batches may sit in the write-ahead log that no checkpoint has applied yet.
//! Each test keeps a `Wal` open (its lock held, as a running server does), so opening the
//! environment does not replay the log.

mod common;

use std::sync::Arc;

use common::{append, key, opts, rec};
use proptest::strategy::{Strategy, ValueTree};
use store::admin::{check, list_presentities, list_subscriptions, PresentityRow};
use store::wal::{read_log, Wal, WalBatch};
use store::*;

/// Checkpoints every frame in the log and records it, as the server's checkpoint thread
/// does; `retire`: then deletes the segments (a crash between the two leaves them).
fn checkpoint(st: &Store, wal: &mut Wal, retire: bool) {
    let sealed = wal.seal();
    let log = read_log(st).unwrap();
    st.checkpoint(&log, sealed).unwrap();
    if retire {
        Wal::remove_through(wal.dir(), sealed).unwrap();
    }
}

fn rows(st: &Arc<Store>) -> Vec<PresentityRow> {
    list_presentities(&[(0, st.clone())], None, None).unwrap()
}

/// `(presentity, etag)` of each listed publication, in listing order.
fn listed(st: &Arc<Store>) -> Vec<(String, String)> {
    rows(st)
        .into_iter()
        .map(|r| (r.presentity, r.etag))
        .collect()
}

fn pair(aor: &str, body: &str) -> (String, String) {
    (aor.to_string(), format!("etag-{body}"))
}

fn open() -> (tempfile::TempDir, Arc<Store>, Wal) {
    let dir = tempfile::tempdir().unwrap();
    let st = Arc::new(Store::open(dir.path(), &opts()).unwrap());
    let wal = Wal::open(&st).unwrap();
    (dir, st, wal)
}

#[test]
fn unapplied_frames_are_listed_over_lmdb_and_log_deletes_hide_records() {
    let (_dir, st, mut wal) = open();
    append(
        &mut wal,
        &[("sip:a@x", Some("a1")), ("sip:c@x", Some("c1"))],
    );
    append(&mut wal, &[("sip:d@x", Some("d1"))]);
    checkpoint(&st, &mut wal, true);
    // Acknowledged, not checkpointed: a newer a, a new b, c deleted, d deleted and put again.
    append(
        &mut wal,
        &[
            ("sip:b@x", Some("b1")),
            ("sip:c@x", None),
            ("sip:d@x", None),
        ],
    );
    append(
        &mut wal,
        &[("sip:a@x", Some("a2")), ("sip:d@x", Some("d2"))],
    );
    assert_eq!(
        listed(&st),
        vec![
            pair("sip:a@x", "a2"),
            pair("sip:b@x", "b1"),
            pair("sip:d@x", "d2")
        ],
        "key order, log over LMDB"
    );
    assert_eq!(st.live_view().unwrap().log_ops(), 5);
    // LMDB alone still lags: the overlay is what made the difference.
    let r = st.read_txn().unwrap();
    assert!(st.get_presentity(&r, key("sip:b@x")).unwrap().is_none());
    assert!(st.get_presentity(&r, key("sip:c@x")).unwrap().is_some());
}

#[test]
fn checkpointed_frames_left_in_the_log_are_not_listed_twice() {
    let (_dir, st, mut wal) = open();
    append(&mut wal, &[("sip:a@x", Some("a1"))]);
    append(&mut wal, &[("sip:b@x", Some("b1"))]);
    // Applied and recorded, but the segments stay (crash before retiring them).
    checkpoint(&st, &mut wal, false);
    assert!(!read_log(&st).unwrap().is_empty());
    // A later delete in the log: an overlay that replayed the old segment's put after it
    // would bring b back.
    append(&mut wal, &[("sip:b@x", None)]);
    let view = st.live_view().unwrap();
    assert_eq!(view.log_ops(), 1, "only the frame after the checkpoint");
    drop(view);
    assert_eq!(listed(&st), vec![pair("sip:a@x", "a1")]);
}

#[test]
fn torn_last_frame_is_not_listed() {
    let (_dir, st, mut wal) = open();
    append(&mut wal, &[("sip:a@x", Some("a1"))]);
    let mut b = WalBatch::new();
    b.put_presentity(key("sip:torn@x"), &rec("t", 1_000))
        .unwrap();
    wal.debug_append_torn(&mut b).unwrap();
    assert_eq!(listed(&st), vec![pair("sip:a@x", "a1")]);
}

/// A checkpoint that applies and retires segments after the view's LMDB transaction but
/// before its log read would make the view miss those frames; the view notices (the
/// recorded checkpoint moved) and reads again.
#[test]
fn checkpoint_between_the_lmdb_read_and_the_log_read_is_retried() {
    let (_dir, st, mut wal) = open();
    append(&mut wal, &[("sip:a@x", Some("a1"))]);
    append(&mut wal, &[("sip:b@x", Some("b1"))]);
    let wal = std::sync::Mutex::new(wal);
    let mut calls = 0;
    let view = st
        .debug_live_view(|| {
            calls += 1;
            if calls == 1 {
                // Another thread, as the server's checkpointer (this one holds a read txn).
                std::thread::scope(|s| {
                    s.spawn(|| checkpoint(&st, &mut wal.lock().unwrap(), true));
                });
                assert!(read_log(&st).unwrap().is_empty(), "segments retired");
            }
        })
        .unwrap();
    assert_eq!(calls, 2, "one retry");
    let keys: Vec<Vec<u8>> = view
        .iter_presentities()
        .unwrap()
        .map(|e| e.unwrap().0.presentity.to_vec())
        .collect();
    assert_eq!(keys, vec![b"sip:a@x".to_vec(), b"sip:b@x".to_vec()]);
}

/// Real threads: a writer appends one new key per frame and checkpoints and retires
/// segments often, as a loaded server does; every view must show at least every key
/// acknowledged before it was taken, and never an error.
#[test]
fn views_beside_a_checkpointing_writer_miss_nothing_acknowledged() {
    const FRAMES: usize = 600;
    let (_dir, st, mut wal) = open();
    let acked = std::sync::atomic::AtomicUsize::new(0);
    let aor = |i: usize| format!("sip:u{i:04}@x");
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..FRAMES {
                append(&mut wal, &[(&aor(i), Some("v"))]);
                acked.store(i + 1, std::sync::atomic::Ordering::Release);
                if i % 7 == 6 {
                    checkpoint(&st, &mut wal, true);
                }
            }
        });
        let mut views = 0;
        loop {
            let before = acked.load(std::sync::atomic::Ordering::Acquire);
            let n = rows(&st).len();
            assert!(
                n >= before,
                "view {views}: {n} listed, {before} acknowledged"
            );
            views += 1;
            if before == FRAMES {
                break;
            }
        }
    });
}

#[test]
fn subscriptions_and_check_see_the_log_too() {
    let (_dir, st, mut wal) = open();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut sub = common::subscription_record()
        .new_tree(&mut runner)
        .unwrap()
        .current();
    sub.event = b"presence".to_vec();
    let skey = SubscriptionKey {
        presentity: b"sip:a@x",
        dialog_id: b"dlg1",
    };
    let mut b = WalBatch::new();
    b.put_subscription(skey, &sub).unwrap();
    b.put_presentity(key("sip:a@x"), &rec("a1", 1_000)).unwrap();
    wal.append(&mut b).unwrap();
    let subs = list_subscriptions(&[(0, st.clone())], Some("presence"), Some("^sip:a@")).unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].dialog_id, "dlg1");
    let rep = check(&[(0, st.clone())], None).unwrap();
    assert_eq!((rep.presentities, rep.subscriptions), (1, 1), "{rep}");
    // A deleted dialog disappears from both.
    b.clear();
    b.delete_subscription(skey).unwrap();
    wal.append(&mut b).unwrap();
    assert!(list_subscriptions(&[(0, st.clone())], None, None)
        .unwrap()
        .is_empty());
    assert_eq!(check(&[(0, st.clone())], None).unwrap().subscriptions, 0);
}

/// A restart must number its segments above what LMDB records as checkpointed, or a live
/// view would skip the new segments as already applied.
#[test]
fn segments_after_a_restart_are_numbered_above_the_recorded_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let st = Arc::new(Store::open(dir.path(), &opts()).unwrap());
    {
        let mut wal = Wal::open(&st).unwrap();
        for i in 0..4 {
            append(&mut wal, &[("sip:a@x", Some(&format!("a{i}")))]);
            checkpoint(&st, &mut wal, false);
        }
    }
    // Clean stop that lost its free files and segments (e.g. removed by hand).
    for e in std::fs::read_dir(store::wal::wal_dir(dir.path())).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() != "LOCK" {
            std::fs::remove_file(p).unwrap();
        }
    }
    let mut wal = Wal::open(&st).unwrap();
    append(&mut wal, &[("sip:b@x", Some("b1"))]);
    assert_eq!(
        listed(&st),
        vec![pair("sip:a@x", "a3"), pair("sip:b@x", "b1")]
    );
}
