//! Driver and load tests: a fake core on a real glommio executor, a real LMDB store.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use sip_parser::Aor;
use store::{Store, StoreOptions};

use super::*;
use crate::core::tags::Token;
use crate::core::{
    Instant, PersistOp, PublicationRecord, Refused, ShardId, SubStatus, SubscriptionRecord,
    Transport,
};

/// A private directory removed on drop (server has no tempfile dev-dependency).
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "herald-persist-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Default)]
struct FakeCore {
    queue: VecDeque<PersistOp>,
    persisted: Vec<u64>,
    /// For each handle_persisted: was the op with that seq durable (in LMDB or in the
    /// write-ahead log on disk)?
    store: Option<Arc<Store>>,
    violations: u32,
    refused: Vec<Refused>,
}

impl PersistCore for FakeCore {
    fn poll_persist(&mut self) -> Option<PersistOp> {
        self.queue.pop_front()
    }
    fn persist_queued(&self) -> usize {
        self.queue.len()
    }
    fn handle_persisted(&mut self, _now: Instant, up_to_seq: u64) {
        if let Some(st) = &self.store {
            // The publication with this seq must already be committed (readable).
            let aor = format!("sip:u{up_to_seq}@example.com");
            let r = st.read_txn().unwrap();
            let id = pub_id();
            let k = store::PresentityKey {
                presentity: aor.as_bytes(),
                event: b"presence",
                pub_id: id.as_bytes(),
            };
            let in_log = || {
                let log = store::wal::read_log(st).unwrap();
                let key = store::RecordKey::to_vec(&k).unwrap();
                store::wal::find_last(&log, store::wal::WalTable::Presentity, &key)
                    .is_some_and(|v| v.is_some())
            };
            if st.get_presentity(&r, k).unwrap().is_none() && !in_log() {
                self.violations += 1;
            }
        }
        self.persisted.push(up_to_seq);
    }
    fn handle_persist_failed(&mut self, _now: Instant, refused: &[Refused]) {
        self.refused.extend_from_slice(refused);
    }
}

/// The id of every test publication (they differ by presentity).
fn pub_id() -> Token {
    Token::new(1, 1)
}

fn publication(seq: u64, expires_at: u64) -> PersistOp {
    PersistOp::PutPublication {
        seq,
        rec: PublicationRecord {
            presentity: Aor::parse(format!("sip:u{seq}@example.com").as_bytes()).unwrap(),
            event: b"presence".to_vec().into(),
            id: pub_id(),
            etag: Token::new(1, 2),
            expires_at: Instant::from_millis(expires_at),
            content_type: b"application/pidf+xml"[..].into(),
            body: b"<presence/>"[..].into(),
            order: seq,
        },
    }
}

fn subscription(id: u64, expires_at: u64) -> SubscriptionRecord {
    SubscriptionRecord {
        id,
        presentity: Aor::parse(b"sip:p@example.com").unwrap(),
        event: b"presence".to_vec(),
        event_id: Some(b"7".to_vec()),
        call_id: b"c@h".to_vec(),
        from_tag: b"ft".to_vec(),
        to_tag: b"tt".to_vec(),
        from_uri: b"<sip:w@example.com>".to_vec(),
        to_uri: b"<sip:p@example.com>".to_vec(),
        remote_cseq: 4,
        local_cseq: 9,
        route_set: b"<sip:proxy;lr>".to_vec(),
        contact: b"sip:w@192.0.2.1".to_vec(),
        transport: Transport::Tcp,
        peer: "192.0.2.1:5070".parse().unwrap(),
        status: SubStatus::Active,
        reason: None,
        expires_at: Instant::from_millis(expires_at),
        version: 3,
    }
}

fn opts() -> StoreOptions {
    StoreOptions {
        initial_map_size: 1 << 20,
        max_map_size: 64 << 20,
        no_sync: true,
        ..Default::default()
    }
}

fn run_local<F: std::future::Future<Output = ()> + 'static>(
    f: impl FnOnce() -> F + Send + 'static,
) {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .spawn(move || async move { f().await })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn sync_driver_group_commits_and_acks_only_after_commit() {
    let dir = TempDir::new();
    let st = Arc::new(Store::open(dir.path(), &opts()).unwrap());
    let st2 = st.clone();
    let st2_for_count = st.clone();
    run_local(move || async move {
        let core = Rc::new(RefCell::new(FakeCore {
            store: Some(st2.clone()),
            ..Default::default()
        }));
        let driver = Rc::new(Driver::new(ShardId(0), Some(st2), Durability::Sync).unwrap());
        let kick = driver.kick();
        let (c, d) = (core.clone(), driver.clone());
        let task = glommio::spawn_local(async move {
            d.run(&c, || Instant::from_millis(1_000), || {}).await;
        });
        // Bursts of ops: while a commit runs the next ops queue up (group commit).
        let mut seq = 0;
        for _ in 0..20 {
            for _ in 0..10 {
                seq += 1;
                core.borrow_mut().queue.push_back(publication(seq, 10_000));
            }
            kick.notify();
            glommio::yield_if_needed().await;
            glommio::timer::sleep(Duration::from_micros(200)).await;
        }
        eventually(|| core.borrow().persisted.last() == Some(&seq)).await;
        {
            let c = core.borrow();
            assert_eq!(c.persisted.last(), Some(&seq), "every op acknowledged");
            assert!(c.persisted.windows(2).all(|w| w[0] < w[1]), "acks in order");
            assert_eq!(c.violations, 0, "no ack before its commit");
            let s = driver.stats();
            assert_eq!(s.ops_committed, seq);
            assert!(s.commits <= seq, "{s:?}");
        }
        // The idle shard's checkpoint brings LMDB up to date with the log (its counter
        // moves just after the commit becomes visible: wait for both).
        let st3 = st2_for_count.clone();
        assert!(
            eventually(|| {
                let r = st3.read_txn().unwrap();
                st3.counts(&r).unwrap().presentity == 200 && driver.stats().checkpoints >= 1
            })
            .await,
            "checkpointed: {:?}",
            driver.stats()
        );
        assert!(driver.stats().checkpoints >= 1);
        drop(task);
    });
    let r = st.read_txn().unwrap();
    assert_eq!(st.counts(&r).unwrap().presentity, 200);
}

/// Polls `f` for up to 2 s.
/// How long a test waits for a commit or the checkpoint thread. A flush took up to 0.5 s
/// on this shared disk beside builds, and the checkpoint runs at nice 10 in the idle I/O
/// class, so it can lag by seconds; a bound this generous only costs time when a test fails.
const CHECKPOINT_PATIENCE: Duration = Duration::from_secs(30);

async fn eventually(f: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + CHECKPOINT_PATIENCE;
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    f()
}

#[test]
fn none_mode_discards_and_acks() {
    run_local(|| async {
        let core = Rc::new(RefCell::new(FakeCore::default()));
        let driver = Rc::new(Driver::new(ShardId(0), None, Durability::None).unwrap());
        core.borrow_mut()
            .queue
            .extend([publication(1, 5), publication(2, 5)]);
        let (c, d) = (core.clone(), driver.clone());
        let _task =
            glommio::spawn_local(async move { d.run(&c, || Instant::from_millis(1), || {}).await });
        glommio::timer::sleep(Duration::from_millis(10)).await;
        assert_eq!(core.borrow().persisted, vec![2]);
        assert_eq!(driver.stats().ops_discarded, 2);
    });
}

#[test]
fn periodic_mode_writes_behind() {
    let dir = TempDir::new();
    let st = Arc::new(Store::open(dir.path(), &opts()).unwrap());
    let st2 = st.clone();
    run_local(move || async move {
        let core = Rc::new(RefCell::new(FakeCore::default()));
        let driver =
            Rc::new(Driver::new(ShardId(0), Some(st2), "periodic=20".parse().unwrap()).unwrap());
        core.borrow_mut()
            .queue
            .extend((1..=5).map(|s| publication(s, 50_000)));
        let (c, d) = (core.clone(), driver.clone());
        let _task =
            glommio::spawn_local(async move { d.run(&c, || Instant::from_millis(1), || {}).await });
        eventually(|| core.borrow().persisted.last() == Some(&5)).await;
        assert_eq!(core.borrow().persisted.last(), Some(&5));
    });
    let r = st.read_txn().unwrap();
    assert_eq!(st.counts(&r).unwrap().presentity, 5);
}

/// A long period (an hour) does not hold ops in memory for that long: the driver commits
/// once `PERIODIC_EARLY_OPS` wait in the core (it looks at each of the edge's kicks), so the
/// core's queue never reaches `max_pending_persist` (which would refuse requests).
#[test]
fn periodic_mode_commits_early_when_many_ops_wait() {
    let dir = TempDir::new();
    let st = Arc::new(Store::open(dir.path(), &opts()).unwrap());
    let st2 = st.clone();
    let n = driver::PERIODIC_EARLY_OPS as u64 + 100;
    run_local(move || async move {
        let core = Rc::new(RefCell::new(FakeCore::default()));
        let driver =
            Rc::new(Driver::new(ShardId(0), Some(st2), "periodic=3600s".parse().unwrap()).unwrap());
        let kick = driver.kick();
        let (c, d) = (core.clone(), driver.clone());
        let _task =
            glommio::spawn_local(async move { d.run(&c, || Instant::from_millis(1), || {}).await });
        // The edge queues ops in bursts and kicks after each, as its flush does.
        for burst in (1..=n).collect::<Vec<_>>().chunks(1000) {
            core.borrow_mut()
                .queue
                .extend(burst.iter().map(|&s| publication(s, 50_000)));
            kick.notify();
            glommio::timer::sleep(Duration::from_millis(1)).await;
            let queued = core.borrow().queue.len();
            assert!(
                queued <= driver::PERIODIC_EARLY_OPS + 1000,
                "{queued} queued"
            );
        }
        let early = driver::PERIODIC_EARLY_OPS as u64;
        eventually(|| core.borrow().persisted.last().is_some_and(|&s| s >= early)).await;
        let last = *core.borrow().persisted.last().expect("an early commit");
        // Within seconds of an hour-long period: the commit came early.
        assert!(last >= early && last <= n, "committed up to {last}");
    });
    let r = st.read_txn().unwrap();
    assert!(st.counts(&r).unwrap().presentity >= driver::PERIODIC_EARLY_OPS as u64);
}

#[test]
fn committed_ops_load_back_as_core_records_minus_expired_and_deleted() {
    let dir = TempDir::new();
    let st = Store::open(dir.path(), &opts()).unwrap();
    let live = subscription(42, 90_000);
    let ops = vec![
        publication(1, 90_000),
        publication(2, 1_000), // expired by load time
        publication(3, 90_000),
        PersistOp::DeletePublication {
            seq: 4,
            presentity: Aor::parse(b"sip:u3@example.com").unwrap(),
            event: b"presence".to_vec().into(),
            id: pub_id(),
        },
        PersistOp::PutSubscription {
            seq: 5,
            rec: live.clone(),
        },
        PersistOp::PutSubscription {
            seq: 6,
            rec: subscription(43, 90_000),
        },
        PersistOp::DeleteSubscription {
            seq: 7,
            id: 43,
            presentity: Aor::parse(b"sip:p@example.com").unwrap(),
            event: b"presence".to_vec(),
        },
    ];
    assert_eq!(
        driver::commit_batch(&st, &ops, store::UnixMillis(500)).unwrap(),
        0
    );
    let loaded = load_shard(&st, ShardId(0), Instant::from_millis(2_000)).unwrap();
    assert_eq!(loaded.expired.presentities, 1);
    assert_eq!(loaded.publications.len(), 1);
    let PersistOp::PutPublication { rec, .. } = &ops[0] else {
        unreachable!()
    };
    assert_eq!(&loaded.publications[0], rec);
    assert_eq!(loaded.subscriptions, vec![live]);
}

/// Records that cannot be read are skipped and counted; the rest of the partition loads.
#[test]
fn load_skips_unreadable_records() {
    use store::{ExpiringTable, PresentityKey, RecordKey};
    let dir = TempDir::new();
    let st = Store::open(dir.path(), &opts()).unwrap();
    let ops: Vec<PersistOp> = (1..=3).map(|s| publication(s, 90_000)).collect();
    driver::commit_batch(&st, &ops, store::UnixMillis(1)).unwrap();
    let bad = PresentityKey {
        presentity: b"sip:bad@example.com",
        event: b"presence",
        pub_id: b"x",
    };
    st.write(|s, w| {
        s.debug_put_raw(w, ExpiringTable::Presentity, &bad.to_vec()?, &[0xff; 7])?;
        s.debug_put_raw(w, ExpiringTable::ActiveWatchers, b"no-parts", b"")
    })
    .unwrap();
    let loaded = load_shard(&st, ShardId(0), Instant::from_millis(2)).unwrap();
    assert_eq!(loaded.publications.len(), 3);
    assert_eq!(loaded.unreadable, 2);
}

#[test]
fn open_data_dir_uses_the_core_shard_function() {
    let dir = TempDir::new();
    let stores = open_data_dir(dir.path(), 2, &opts()).unwrap();
    let ops: Vec<PersistOp> = (1..=40).map(|s| publication(s, 90_000)).collect();
    // Write everything to shard 0 on purpose; reopening with 3 shards must place each
    // record by core::shard_for.
    driver::commit_batch(&stores[0], &ops, store::UnixMillis(1)).unwrap();
    drop(stores);
    let stores = open_data_dir(dir.path(), 3, &opts()).unwrap();
    let mut total = 0;
    for (i, st) in stores.iter().enumerate() {
        let l = load_shard(st, ShardId(i as u16), Instant::from_millis(2)).unwrap();
        for p in &l.publications {
            assert_eq!(crate::core::shard_for(&p.presentity, 3), ShardId(i as u16));
        }
        total += l.publications.len();
    }
    assert_eq!(total, 40);
}

/// A store whose map cannot grow beyond 256 KiB.
fn small_store(dir: &TempDir) -> Arc<Store> {
    let small = StoreOptions {
        initial_map_size: 256 << 10,
        max_map_size: 256 << 10,
        no_sync: true,
        ..Default::default()
    };
    Arc::new(Store::open(dir.path(), &small).unwrap())
}

/// A sync driver running on `store` for the fake core (the task lives as long as the
/// returned handle).
fn spawn_sync_driver(store: Arc<Store>) -> (Rc<RefCell<FakeCore>>, Rc<Driver>, glommio::Task<()>) {
    let core = Rc::new(RefCell::new(FakeCore::default()));
    let driver = Rc::new(Driver::new(ShardId(0), Some(store), Durability::Sync).unwrap());
    let (c, d) = (core.clone(), driver.clone());
    let task = glommio::spawn_local(async move {
        d.run(&c, || Instant::from_millis(1_000), || {}).await;
    });
    (core, driver, task)
}

/// Queues `ops`, kicks the driver and waits until the core was told they are persisted.
async fn persist(
    core: &RefCell<FakeCore>,
    driver: &Driver,
    ops: impl IntoIterator<Item = PersistOp>,
) {
    let mut last = 0;
    for op in ops {
        last = op.seq();
        core.borrow_mut().queue.push_back(op);
    }
    driver.kick().notify();
    if !eventually(|| core.borrow().persisted.last() >= Some(&last)).await {
        panic!("seq {last} never reported");
    }
}

/// A subscription put with a 1.5 KB route set (fills a small map quickly).
fn big_subscription(seq: u64, id: u64) -> PersistOp {
    let mut rec = subscription(id, 90_000);
    rec.route_set = vec![b'r'; 1500];
    PersistOp::PutSubscription { seq, rec }
}

/// Puts big subscriptions, 20 per batch, after `seq` / dialog `id` until a batch is
/// refused; returns the last seq and id used.
async fn fill_map(
    core: &RefCell<FakeCore>,
    driver: &Driver,
    mut seq: u64,
    mut id: u64,
) -> (u64, u64) {
    while driver.stats().map_full_batches == 0 {
        assert!(seq < 5_000, "the map never filled");
        let batch: Vec<_> = (1..=20)
            .map(|i| big_subscription(seq + i, id + i))
            .collect();
        seq += 20;
        id += 20;
        persist(core, driver, batch).await;
    }
    (seq, id)
}

#[test]
fn map_full_refuses_puts_commits_deletes_and_recovers() {
    let dir = TempDir::new();
    let st = small_store(&dir);
    run_local(move || async move {
        let (core, driver, _task) = spawn_sync_driver(st);
        let (mut seq, id) = fill_map(&core, &driver, 0, 1).await;
        let refused = core.borrow().refused.len();
        assert!(refused > 0);
        assert!(core
            .borrow()
            .refused
            .iter()
            .all(|r| r.stored_expiry.is_none()));
        assert_eq!(driver.stats().ops_refused, refused as u64);
        // Deleting stored dialogs frees space: puts succeed again.
        let deletes: Vec<_> = (2..(id - refused as u64))
            .map(|del| {
                seq += 1;
                PersistOp::DeleteSubscription {
                    seq,
                    id: del,
                    presentity: Aor::parse(b"sip:p@example.com").unwrap(),
                    event: b"presence".to_vec(),
                }
            })
            .collect();
        persist(&core, &driver, deletes).await;
        // Once a checkpoint has applied the deletes, puts are accepted again.
        let mut accepted = false;
        let deadline = std::time::Instant::now() + CHECKPOINT_PATIENCE;
        for attempt in 0.. {
            if std::time::Instant::now() > deadline {
                break;
            }
            let before = driver.stats().ops_committed;
            seq += 1;
            persist(&core, &driver, [big_subscription(seq, 1_000_000 + attempt)]).await;
            if driver.stats().ops_committed == before + 1 {
                accepted = true;
                break;
            }
            glommio::timer::sleep(Duration::from_millis(20)).await;
        }
        assert!(accepted, "space came back: {:?}", driver.stats());
    });
}

/// A refused modification must not leave the older version on disk: the core forgets the
/// publication, so a restart would otherwise bring back state that memory no longer has.
#[test]
fn map_full_refused_modification_deletes_the_stored_version() {
    let dir = TempDir::new();
    let st = small_store(&dir);
    run_local(move || async move {
        let (core, driver, _task) = spawn_sync_driver(st.clone());
        persist(&core, &driver, [publication(1, 90_000)]).await;
        let id = pub_id();
        let key = store::PresentityKey {
            presentity: b"sip:u1@example.com",
            event: b"presence",
            pub_id: id.as_bytes(),
        };
        let stored = || {
            let r = st.read_txn().unwrap();
            st.get_presentity(&r, key).unwrap().is_some()
        };
        assert!(eventually(stored).await, "checkpointed");
        let (seq, _) = fill_map(&core, &driver, 1, 1).await;
        let refused_before = core.borrow().refused.len();
        let PersistOp::PutPublication { mut rec, .. } = publication(1, 90_000) else {
            unreachable!()
        };
        rec.etag = Token::new(1, 3);
        rec.body = vec![b' '; 60_000].into();
        persist(
            &core,
            &driver,
            [PersistOp::PutPublication { seq: seq + 1, rec }],
        )
        .await;
        assert_eq!(core.borrow().refused.len(), refused_before + 1);
        assert!(
            eventually(|| !stored()).await,
            "the refused publication's older version is gone"
        );
    });
}

/// A clean stop (`Driver::finish`) appends what the core still queues, checkpoints
/// everything into LMDB and leaves no log to replay.
#[test]
fn finish_checkpoints_everything_and_leaves_no_log() {
    let dir = TempDir::new();
    let st = Arc::new(Store::open(dir.path(), &opts()).unwrap());
    let st2 = st.clone();
    run_local(move || async move {
        let (core, driver, _task) = spawn_sync_driver(st2.clone());
        persist(&core, &driver, (1..=30).map(|s| publication(s, 90_000))).await;
        // Queued but never drained by `run`: `finish` must still write them.
        core.borrow_mut()
            .queue
            .extend((31..=40).map(|s| publication(s, 90_000)));
        driver.finish(&core, || Instant::from_millis(1_000)).await;
    });
    let r = st.read_txn().unwrap();
    assert_eq!(st.counts(&r).unwrap().presentity, 40);
    assert!(store::wal::read_log(&st).unwrap().is_empty());
}
