//! Every record: encode → store → validate in place (rkyv access) → compare field by field
//! (via deserialisation of the archived view) — also through LMDB's 2-byte-aligned values.

mod common;

use common::*;
use proptest::prelude::*;
use store::*;

fn archive_round_trip<T>(v: &T) -> T
where
    T: store::Encode + rkyv::Archive,
    T::Archived: store::Decode
        + rkyv::Deserialize<T, rkyv::rancor::Strategy<rkyv::de::Pool, rkyv::rancor::Error>>,
{
    let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(v).unwrap();
    // Misalign on purpose: LMDB only guarantees 2-byte alignment.
    let mut shifted = vec![0u8; bytes.len() + 1];
    shifted[1..].copy_from_slice(&bytes);
    let a = rkyv::access::<T::Archived, rkyv::rancor::Error>(&shifted[1..]).unwrap();
    rkyv::deserialize::<T, rkyv::rancor::Error>(a).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn records_round_trip_in_memory(
        p in presentity_record(), s in subscription_record(), w in watcher_record(),
        x in xcap_record(), u in subscriber_record(),
    ) {
        prop_assert_eq!(archive_round_trip(&p), p);
        prop_assert_eq!(archive_round_trip(&s), s);
        prop_assert_eq!(archive_round_trip(&w), w);
        prop_assert_eq!(archive_round_trip(&x), x);
        prop_assert_eq!(archive_round_trip(&u), u);
    }

    #[test]
    fn keys_round_trip(
        aor in "sip:[a-z0-9.+_-]{1,20}@[a-z0-9.-]{1,20}", event in "[a-z.-]{1,12}",
        etag in "[A-Za-z0-9]{1,20}", dialog in proptest::collection::vec(1u8..=255, 1..30),
    ) {
        let k = PresentityKey { presentity: aor.as_bytes(), event: event.as_bytes(), pub_id: etag.as_bytes() };
        { let v = k.to_vec().unwrap(); prop_assert_eq!(PresentityKey::decode(&v), Some(k)); }
        let k = SubscriptionKey { presentity: aor.as_bytes(), dialog_id: &dialog };
        { let v = k.to_vec().unwrap(); prop_assert_eq!(SubscriptionKey::decode(&v), Some(k)); }
        let k = WatcherKey { presentity: aor.as_bytes(), event: event.as_bytes(), watcher: etag.as_bytes() };
        { let v = k.to_vec().unwrap(); prop_assert_eq!(WatcherKey::decode(&v), Some(k)); }
        let k = XcapKey { user: aor.as_bytes(), auid: event.as_bytes(), document: etag.as_bytes() };
        { let v = k.to_vec().unwrap(); prop_assert_eq!(XcapKey::decode(&v), Some(k)); }
        let k = SubscriberKey { user: etag.as_bytes(), domain: event.as_bytes() };
        { let v = k.to_vec().unwrap(); prop_assert_eq!(SubscriberKey::decode(&v), Some(k)); }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(32)))]

    /// Through LMDB: put, read back in place, compare.
    #[test]
    fn records_round_trip_through_lmdb(
        p in presentity_record(), s in subscription_record(), w in watcher_record(),
        x in xcap_record(), u in subscriber_record(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let st = Store::open(dir.path(), &opts()).unwrap();
        let pk = PresentityKey { presentity: b"sip:a@x", event: b"presence", pub_id: b"e1" };
        let sk = SubscriptionKey { presentity: b"sip:a@x", dialog_id: b"0000000000000001" };
        let wk = WatcherKey { presentity: b"sip:a@x", event: b"presence", watcher: b"sip:w@x" };
        let xk = XcapKey { user: b"sip:a@x", auid: b"pres-rules", document: b"index" };
        let uk = SubscriberKey { user: b"a", domain: b"x" };
        st.write(|st, w_| {
            st.put_presentity(w_, pk, &p)?;
            st.put_subscription(w_, sk, &s)?;
            st.put_watcher(w_, wk, &w)?;
            st.put_xcap(w_, xk, &x)?;
            st.put_subscriber(w_, uk, &u)
        }).unwrap();
        let r = st.read_txn().unwrap();
        prop_assert_eq!(st.get_presentity(&r, pk).unwrap().unwrap().to_owned_record(), p);
        prop_assert_eq!(st.get_subscription(&r, sk).unwrap().unwrap().to_owned_record(), s);
        prop_assert_eq!(st.get_watcher(&r, wk).unwrap().unwrap().to_owned_record(), w);
        prop_assert_eq!(st.get_xcap(&r, xk).unwrap().unwrap().to_owned_record(), x);
        prop_assert_eq!(st.get_subscriber(&r, uk).unwrap().unwrap().to_owned_record(), u);
    }
}

#[test]
fn corrupt_value_is_an_error_not_a_panic() {
    let bytes = [0xffu8; 7];
    assert!(rkyv::access::<ArchivedPresentityRecord, rkyv::rancor::Error>(&bytes).is_err());
}
