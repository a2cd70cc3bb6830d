//! Map growth and its limit, shard redistribution, and the admin commands.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use store::layout::{open_shards, shard_dir};
use store::*;

fn fnv(aor: &[u8]) -> u64 {
    aor.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

#[test]
fn map_grows_then_full_is_a_clean_error_and_space_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let o = StoreOptions {
        initial_map_size: 256 << 10,
        max_map_size: 1 << 20,
        no_sync: true,
        ..Default::default()
    };
    let st = Store::open(dir.path(), &o).unwrap();
    let body = vec![b'x'; 3000];
    let mut written = Vec::new();
    let mut err = None;
    for i in 0..10_000u32 {
        let aor = format!("sip:u{i}@example.com");
        let r = st.write(|s, w| {
            s.put_presentity(
                w,
                PresentityKey {
                    presentity: aor.as_bytes(),
                    event: b"presence",
                    pub_id: b"e",
                },
                &pres(10, &body),
            )
        });
        match r {
            Ok(()) => written.push(aor),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let err = err.expect("a 1 MiB map must fill up");
    assert!(err.is_map_full(), "{err}");
    assert!(err.to_string().contains("maximum"), "{err}");
    assert_eq!(
        st.map_size(),
        st.max_map_size(),
        "the map grew to its maximum first"
    );
    assert!(written.len() > 100, "only {} records fit", written.len());
    // Everything committed is intact and consistent.
    let stores = vec![(0u16, Arc::new(st))];
    let rep = admin::check(&stores, None).unwrap();
    assert_eq!(rep.presentities, written.len() as u64);
    // Expiry frees space: clean up everything, then writing works again.
    let c = admin::cleanup(&stores, UnixMillis(10)).unwrap();
    assert_eq!(c.presentities, written.len() as u64);
    let st = &stores[0].1;
    for i in 0..50u32 {
        let aor = format!("sip:again{i}@example.com");
        st.write(|s, w| {
            s.put_presentity(
                w,
                PresentityKey {
                    presentity: aor.as_bytes(),
                    event: b"presence",
                    pub_id: b"e",
                },
                &pres(99, &body),
            )
        })
        .unwrap();
    }
}

fn fill(stores: &[Arc<Store>], n: u16, count: u32) -> BTreeSet<String> {
    let owner = |aor: &[u8]| (fnv(aor) % n as u64) as usize;
    let mut expect = BTreeSet::new();
    for i in 0..count {
        let aor = format!("sip:user{i}@example.com");
        let user = format!("user{i}");
        let st = &stores[owner(aor.as_bytes())];
        st.write(|s, w| {
            s.put_presentity(
                w,
                PresentityKey {
                    presentity: aor.as_bytes(),
                    event: b"presence",
                    pub_id: b"e1",
                },
                &pres(1000 + i as u64, b"<x/>"),
            )?;
            s.put_subscription(
                w,
                SubscriptionKey {
                    presentity: aor.as_bytes(),
                    dialog_id: b"d1",
                },
                &sub(2000 + i as u64, i),
            )?;
            s.put_watcher(
                w,
                WatcherKey {
                    presentity: aor.as_bytes(),
                    event: b"presence",
                    watcher: b"sip:w@example.com",
                },
                &WatcherRecord {
                    status: SubStatus::Active,
                    reason: vec![],
                    inserted_at: UnixMillis(5),
                },
            )?;
            s.put_xcap(
                w,
                XcapKey {
                    user: aor.as_bytes(),
                    auid: b"pres-rules",
                    document: b"index",
                },
                &XcapRecord {
                    etag: b"x1".to_vec(),
                    doc: b"<ruleset/>".to_vec(),
                    updated_at: UnixMillis(7),
                },
            )
        })
        .unwrap();
        // The subscriber's owner AoR is sip:user@domain: it may live elsewhere.
        let sub_aor = format!("sip:{user}@example.com");
        stores[owner(sub_aor.as_bytes())]
            .write(|s, w| {
                s.put_subscriber(
                    w,
                    SubscriberKey {
                        user: user.as_bytes(),
                        domain: b"example.com",
                    },
                    &SubscriberRecord {
                        ha1_md5: format!("{i:032x}"),
                        ha1_sha256: String::new(),
                    },
                )
            })
            .unwrap();
        expect.insert(aor);
    }
    expect
}

fn verify(data: &std::path::Path, stores: &[Arc<Store>], n: u16, expect: &BTreeSet<String>) {
    let owner = move |aor: &[u8]| (fnv(aor) % n as u64) as u16;
    let pairs: Vec<(u16, Arc<Store>)> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| (i as u16, s.clone()))
        .collect();
    let rep = admin::check(&pairs, Some(&owner)).unwrap();
    assert!(rep.ok(), "{rep}");
    assert_eq!(rep.presentities, expect.len() as u64);
    assert_eq!(rep.subscriptions, expect.len() as u64);
    assert_eq!(rep.watchers, expect.len() as u64);
    assert_eq!(rep.xcap_documents, expect.len() as u64);
    assert_eq!(rep.subscribers, expect.len() as u64);
    let rows = admin::list_presentities(&pairs, None, None).unwrap();
    let got: BTreeSet<String> = rows.iter().map(|r| r.presentity.clone()).collect();
    assert_eq!(&got, expect);
    for aor in expect {
        let st = &stores[owner(aor.as_bytes()) as usize];
        let r = st.read_txn().unwrap();
        let subs: Vec<_> = st.subscriptions_of(&r, aor.as_bytes()).unwrap().collect();
        assert_eq!(subs.len(), 1);
    }
    for i in n..5 {
        assert!(!shard_dir(data, i).exists(), "shard dir {i} removed");
    }
}

#[test]
fn changing_the_shard_count_moves_every_record_to_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let own = |n: u16| move |aor: &[u8]| (fnv(aor) % n as u64) as u16;
    let (stores, rep) = open_shards(data, 3, &opts(), &own(3)).unwrap();
    assert_eq!(rep.moved, 0);
    let expect = fill(&stores, 3, 300);
    verify(data, &stores, 3, &expect);
    drop(stores);

    let (stores, rep) = open_shards(data, 2, &opts(), &own(2)).unwrap();
    assert_eq!(rep.previous_shards, Some(3));
    assert!(rep.moved > 0);
    assert_eq!(rep.removed.len(), 1);
    verify(data, &stores, 2, &expect);
    drop(stores);

    let (stores, rep) = open_shards(data, 4, &opts(), &own(4)).unwrap();
    assert_eq!(rep.previous_shards, Some(2));
    verify(data, &stores, 4, &expect);
    drop(stores);

    // Same count again: nothing to do.
    let (stores, rep) = open_shards(data, 4, &opts(), &own(4)).unwrap();
    assert_eq!(rep.moved, 0);
    verify(data, &stores, 4, &expect);
}

#[test]
fn admin_lists_filters_cleans_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (stores, _) = open_shards(dir.path(), 1, &opts(), &|_| 0).unwrap();
    let st = &stores[0];
    st.write(|s, w| {
        s.put_presentity(
            w,
            PresentityKey {
                presentity: b"sip:alice@a.com",
                event: b"presence",
                pub_id: b"1",
            },
            &pres(100, b"x"),
        )?;
        s.put_presentity(
            w,
            PresentityKey {
                presentity: b"sip:bob@b.com",
                event: b"dialog",
                pub_id: b"2",
            },
            &pres(300, b"y"),
        )?;
        s.put_subscription(
            w,
            SubscriptionKey {
                presentity: b"sip:alice@a.com",
                dialog_id: b"1",
            },
            &sub(100, 1),
        )?;
        s.put_subscription(
            w,
            SubscriptionKey {
                presentity: b"sip:bob@b.com",
                dialog_id: b"2",
            },
            &sub(300, 2),
        )
    })
    .unwrap();
    let pairs = vec![(0u16, stores[0].clone())];
    assert_eq!(
        admin::list_presentities(&pairs, None, None).unwrap().len(),
        2
    );
    assert_eq!(
        admin::list_presentities(&pairs, Some("dialog"), None)
            .unwrap()
            .len(),
        1
    );
    let subs = admin::list_subscriptions(&pairs, Some("presence"), Some("^sip:alice@")).unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].presentity, "sip:alice@a.com");
    let text = admin::render_subscriptions(&subs, UnixMillis(50));
    assert!(
        text.contains("sip:alice@a.com") && text.contains("1 subscription(s)"),
        "{text}"
    );
    assert!(
        admin::list_subscriptions(&pairs, None, Some("(")).is_err(),
        "bad regex is an error"
    );
    let rows = admin::list_presentities(&pairs, None, None).unwrap();
    assert!(admin::render_presentities(&rows, UnixMillis(200)).contains("expired"));

    let c = admin::cleanup(&pairs, UnixMillis(200)).unwrap();
    assert_eq!((c.presentities, c.subscriptions), (1, 1));
    let rep = admin::check(&pairs, Some(&|_| 0)).unwrap();
    assert!(rep.ok(), "{rep}");
    assert_eq!((rep.presentities, rep.subscriptions), (1, 1));
    // A second handle in another "process" view: read-only commands while the store is open.
    drop(pairs);
    drop(stores);
    let opened = admin::open_data_dir(dir.path(), &opts()).unwrap();
    assert_eq!(
        admin::list_presentities(&opened, None, None).unwrap().len(),
        1
    );
}

#[test]
fn schema_mismatch_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let st = Store::open(dir.path(), &opts()).unwrap();
        // Simulate data written by a future version.
        st.write(|s, w| s.debug_set_schema(w, SCHEMA_VERSION + 1))
            .unwrap();
    }
    let err = Store::open(dir.path(), &opts()).err().expect("mismatch");
    assert!(
        matches!(err, StoreError::SchemaMismatch { found, expected, .. } if found == SCHEMA_VERSION + 1 && expected == SCHEMA_VERSION)
    );
    assert!(err.to_string().contains("schema version"));
}

/// One damaged record (a value that fails validation, a key without its parts) costs that
/// record only: listings, cleanup and redistribution skip and count it, `check` names it,
/// and `delete_unreadable` removes it and nothing else.
#[test]
fn unreadable_records_are_skipped_counted_and_deleted_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let (stores, _) = open_shards(dir.path(), 1, &opts(), &|_: &[u8]| 0).unwrap();
    let st = stores[0].clone();
    st.write(|s, w| {
        s.put_presentity(w, key("sip:live@x"), &pres(1_000, b"<live/>"))?;
        s.put_presentity(w, key("sip:old@x"), &pres(5, b"<old/>"))?;
        s.put_subscription(
            w,
            SubscriptionKey {
                presentity: b"sip:live@x",
                dialog_id: b"d1",
            },
            &sub(1_000, 3),
        )?;
        // A valid key over garbage, and garbage under a key without separators.
        s.debug_put_raw(
            w,
            ExpiringTable::Presentity,
            &key("sip:bad@x").to_vec()?,
            b"not an archived record",
        )?;
        s.debug_put_raw(w, ExpiringTable::ActiveWatchers, b"no-separators", b"x")?;
        // An XCAP document too: served as absent, deleted on request like the others.
        s.debug_put_raw_xcap(
            w,
            XcapKey {
                user: b"sip:live@x",
                auid: b"resource-lists",
                document: b"index",
            },
            b"damaged",
        )
    })
    .unwrap();
    let stores = vec![(0u16, st.clone())];

    let mut unreadable = 0;
    let rows = admin::list_presentities_counting(&stores, None, None, &mut unreadable).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(unreadable, 1);
    let subs = admin::list_subscriptions_counting(&stores, None, None, &mut unreadable).unwrap();
    assert_eq!((subs.len(), unreadable), (1, 2));

    let rep = admin::check(&stores, None).unwrap();
    assert!(!rep.ok());
    assert_eq!((rep.problem_count, rep.unreadable), (3, 3), "{rep}");
    assert!(rep.to_string().contains("sip:bad@x"), "{rep}");
    assert!(rep.to_string().contains("cleanup --unreadable"), "{rep}");

    // Cleanup deletes what expired, leaves what it cannot read, and says so.
    let c = admin::cleanup(&stores, UnixMillis(10)).unwrap();
    assert_eq!((c.presentities, c.subscriptions, c.unreadable), (1, 0, 2));
    assert!(c.to_string().contains("--unreadable"), "{c}");

    let d = admin::delete_unreadable(&stores).unwrap();
    assert_eq!(d.deleted.len(), 3, "{d}");
    assert!(d.to_string().contains("unreadable xcap record"), "{d}");
    assert!(d.to_string().contains("no-separators"), "{d}");
    let rep = admin::check(&stores, None).unwrap();
    assert!(rep.ok(), "{rep}");
    assert_eq!((rep.presentities, rep.subscriptions), (1, 1));
    assert_eq!(admin::delete_unreadable(&stores).unwrap().deleted.len(), 0);

    // A good record written over a damaged one's key is not deleted with it.
    let bad = Unreadable {
        table: "presentity",
        key: key("sip:live@x").to_vec().unwrap(),
        detail: String::new(),
    };
    assert!(!st.write(|s, w| s.delete_if_unreadable(w, &bad)).unwrap());
}

/// A record whose key names no owner stays where it is when the shard count changes; the
/// move of everything else completes.
#[test]
fn redistribution_leaves_a_malformed_key_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let owner = |aor: &[u8]| (fnv(aor) % 2) as u16;
    {
        let (stores, _) = open_shards(dir.path(), 1, &opts(), &|_: &[u8]| 0).unwrap();
        stores[0]
            .write(|s, w| {
                for i in 0..20 {
                    let aor = format!("sip:u{i}@x");
                    s.put_presentity(w, key(&aor), &pres(1_000, b"<p/>"))?;
                }
                s.debug_put_raw(w, ExpiringTable::Presentity, b"broken", b"x")
            })
            .unwrap();
    }
    let (stores, rep) = open_shards(dir.path(), 2, &opts(), &owner).unwrap();
    assert!(rep.moved > 0);
    let pairs: Vec<(u16, Arc<Store>)> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| (i as u16, s.clone()))
        .collect();
    let mut unreadable = 0;
    let rows = admin::list_presentities_counting(&pairs, None, None, &mut unreadable).unwrap();
    assert_eq!((rows.len(), unreadable), (20, 1));
    for r in rows {
        assert_eq!(r.shard, owner(r.presentity.as_bytes()));
    }
}
