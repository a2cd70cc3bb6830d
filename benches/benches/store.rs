//! Store benchmarks (issue 4): durable commit batching, checkpoints of the write-ahead log,
//! point read, prefix scan, full load.
//!
//! `cargo bench -p benches --bench store` (bounded: small sample sizes; the data lives in a
//! tempdir under `$STORE_BENCH_DIR` or the current directory — not /tmp, which may be tmpfs
//! and would make fsync free).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use store::*;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(std::env::var("STORE_BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap()
}

fn opts() -> StoreOptions {
    StoreOptions {
        max_map_size: 4 << 30,
        ..Default::default()
    }
}

/// A store whose commits skip the flush (`no_sync`): for figures of CPU, not of the disk.
/// Keep the directory alive as long as the store.
fn unsynced_store() -> (tempfile::TempDir, Store) {
    let dir = tempdir();
    let st = Store::open(
        dir.path(),
        &StoreOptions {
            no_sync: true,
            ..opts()
        },
    )
    .unwrap();
    (dir, st)
}

fn publication(i: u64) -> PresentityRecord {
    PresentityRecord {
        expires_at: UnixMillis(u64::MAX / 2),
        received_at: UnixMillis(1),
        order: i,
        etag: b"e1".to_vec(),
        content_type: b"application/pidf+xml".to_vec(),
        body: br#"<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:u@example.com"><tuple id="t1"><status><basic>open</basic></status></tuple></presence>"#.to_vec(),
    }
}

fn subscription(i: u64) -> SubscriptionRecord {
    SubscriptionRecord {
        event: b"presence".to_vec(),
        event_id: None,
        call_id: format!("{i:x}-call@192.0.2.7").into_bytes(),
        from_tag: format!("ft{i}").into_bytes(),
        to_tag: format!("h0-{i:x}").into_bytes(),
        from_uri: format!("<sip:watcher{i}@example.com>").into_bytes(),
        to_uri: b"<sip:user@example.com>".to_vec(),
        local_cseq: 3,
        remote_cseq: 2,
        route_set: Vec::new(),
        contact: format!("sip:watcher{i}@192.0.2.7:5060").into_bytes(),
        transport: TransportKind::Udp,
        peer: "192.0.2.7:5060".parse().unwrap(),
        status: SubStatus::Active,
        reason: None,
        expires_at: UnixMillis(u64::MAX / 2),
        version: 1,
    }
}

fn put_batches(c: &mut Criterion) {
    let dir = tempdir();
    let st = Store::open(dir.path(), &opts()).unwrap();
    let mut g = c.benchmark_group("store_durable_commit");
    g.sample_size(10);
    let mut n = 0u64;
    for batch in [1u64, 1000] {
        g.throughput(Throughput::Elements(batch));
        g.bench_function(format!("put_{batch}_publications_per_commit"), |b| {
            b.iter(|| {
                st.write(|s, w| {
                    for _ in 0..batch {
                        n += 1;
                        let aor = format!("sip:user{n}@example.com");
                        s.put_presentity(
                            w,
                            PresentityKey {
                                presentity: aor.as_bytes(),
                                event: b"presence",
                                pub_id: b"e1",
                            },
                            &publication(n),
                        )?;
                    }
                    Ok(())
                })
                .unwrap()
            })
        });
    }
    g.finish();
}

/// What a sync-mode checkpoint does with a second of new SUBSCRIBEs: apply 20,000 new
/// dialogs (ids growing, as the shard's slab hands them out) to `active_watchers`, on a
/// store that already holds the ones before. Without the final flush (`no_sync`), so the
/// figure is the checkpoint thread's CPU, not this VM's disk.
fn checkpoints(c: &mut Criterion) {
    const BATCH: u64 = 20_000;
    let (_dir, st) = unsynced_store();
    let mut g = c.benchmark_group("store_checkpoint");
    g.sample_size(10);
    g.throughput(Throughput::Elements(BATCH));
    let mut next = 0u64;
    let mut seg = 0u64;
    g.bench_function("checkpoint_20k_new_subscriptions", |b| {
        b.iter_batched(
            || {
                let mut batch = wal::WalBatch::new();
                for _ in 0..BATCH {
                    next += 1;
                    let aor = format!("sip:user{}@example.com", next % 10_000);
                    let d = format!("{:016x}", next << 20);
                    batch
                        .put_subscription(
                            SubscriptionKey {
                                presentity: aor.as_bytes(),
                                dialog_id: d.as_bytes(),
                            },
                            &subscription(next),
                        )
                        .unwrap();
                }
                seg += 1;
                (batch.payload().to_vec(), wal::SealedThrough(seg))
            },
            |(payload, through)| st.checkpoint(&payload, through).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn reads(c: &mut Criterion) {
    let (_dir, st) = unsynced_store();
    const PRES: u64 = 10_000;
    const SUBS_PER: u64 = 50;
    st.write(|s, w| {
        for p in 0..PRES {
            let aor = format!("sip:user{p}@example.com");
            s.put_presentity(
                w,
                PresentityKey {
                    presentity: aor.as_bytes(),
                    event: b"presence",
                    pub_id: b"e1",
                },
                &publication(p),
            )?;
            if p < 200 {
                for i in 0..SUBS_PER {
                    let d = format!("{:016x}", p * SUBS_PER + i);
                    s.put_subscription(
                        w,
                        SubscriptionKey {
                            presentity: aor.as_bytes(),
                            dialog_id: d.as_bytes(),
                        },
                        &subscription(i),
                    )?;
                }
            }
        }
        Ok(())
    })
    .unwrap();
    let mut g = c.benchmark_group("store_read");
    g.sample_size(20);
    let mut i = 0u64;
    g.bench_function("point_read_publication", |b| {
        b.iter(|| {
            i = (i + 7919) % PRES;
            let aor = format!("sip:user{i}@example.com");
            let r = st.read_txn().unwrap();
            let v = st
                .get_presentity(
                    &r,
                    PresentityKey {
                        presentity: aor.as_bytes(),
                        event: b"presence",
                        pub_id: b"e1",
                    },
                )
                .unwrap();
            black_box(v.map(|v| v.body.len()))
        })
    });
    g.throughput(Throughput::Elements(SUBS_PER));
    g.bench_function("point_read_50_subscriptions_of_presentity", |b| {
        b.iter(|| {
            i = (i + 13) % 200;
            let aor = format!("sip:user{i}@example.com");
            let r = st.read_txn().unwrap();
            // Touch a field of every record so each value is really decoded. (The table is
            // ordered by dialog id, not by presentity: the server reads dialogs by key.)
            let mut cseq_sum = 0u64;
            for d in 0..SUBS_PER {
                let id = format!("{:016x}", i * SUBS_PER + d);
                let key = SubscriptionKey {
                    presentity: aor.as_bytes(),
                    dialog_id: id.as_bytes(),
                };
                let v = st.get_subscription(&r, key).unwrap().unwrap();
                cseq_sum += u64::from(v.local_cseq.to_native());
            }
            black_box(cseq_sum)
        })
    });
    g.finish();
}

fn full_load(c: &mut Criterion) {
    const N: u64 = 100_000;
    let (_dir, st) = unsynced_store();
    let st = Arc::new(st);
    st.write(|s, w| {
        for i in 0..N {
            let aor = format!("sip:user{}@example.com", i / 10);
            let d = format!("{i:016x}");
            s.put_subscription(
                w,
                SubscriptionKey {
                    presentity: aor.as_bytes(),
                    dialog_id: d.as_bytes(),
                },
                &subscription(i),
            )?;
        }
        Ok(())
    })
    .unwrap();
    let mut g = c.benchmark_group("store_load");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N));
    g.bench_function("load_100k_subscriptions_into_owned_vec", |b| {
        b.iter_batched(
            || (),
            |()| {
                let r = st.read_txn().unwrap();
                let v: Vec<SubscriptionRecord> = st
                    .iter_subscriptions(&r)
                    .unwrap()
                    .map(|e| e.unwrap().1.to_owned_record())
                    .collect();
                assert_eq!(v.len() as u64, N);
                v
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, put_batches, checkpoints, reads, full_load);
criterion_main!(benches);
