//! Durability end to end: state survives a restart (graceful and `kill -9`), and the
//! `herald store` commands work on a running server's and a stopped server's data.

mod common;

use common::*;

fn ok(m: &Msg) -> bool {
    m.code.is_some_and(|c| (200..300).contains(&c))
}

#[test]
fn state_survives_kill9_and_store_commands_work() {
    let dir = fresh_data_dir();
    let p = "sip:carol@example.com";
    let mut s = Server::start_in(&dir, &[]);

    // A watcher (its socket lives across the restart) and a publication.
    let mut w = Client::udp(s.sip);
    let mut d = Dialog::new("sip:watcher@example.com", p);
    assert!(ok(&d.send_subscribe(&mut w, 600)));
    w.expect_notify("initial");
    let mut pubc = Client::udp(s.sip);
    let etag = publish_ok(&mut pubc, p, "before-crash");
    w.expect_notify_where("first publication", |n| {
        n.body_str().contains("before-crash")
    });

    // Commands on the running server (read-only: an LMDB read transaction plus the
    // write-ahead log's frames no checkpoint has applied yet): what was acknowledged shows
    // at once.
    let (okp, out) = s.store_cmd(&["list", "presentities"]);
    assert!(okp && out.contains(p) && out.contains(&etag), "{out}");
    let (oks, out) = s.store_cmd(&[
        "list",
        "subscriptions",
        "--event",
        "presence",
        "--presentity",
        "carol@",
    ]);
    assert!(oks && out.contains(p) && out.contains(&d.call_id), "{out}");
    let (_, out) = s.store_cmd(&["list", "subscriptions", "--presentity", "^nobody$"]);
    assert!(out.contains("0 subscription(s)"), "{out}");
    let (okc, out) = s.store_cmd(&["check"]);
    assert!(okc && out.contains("check OK"), "{out}");
    // `cleanup` on a running server: the server deletes what expires itself; the command
    // reports and writes nothing (it must not wait for or race the server's writer).
    let (okc, out) = s.store_cmd(&["cleanup"]);
    assert!(
        okc && out.contains("a running herald holds") && out.contains("nothing written"),
        "{out}"
    );

    // Crash, restart on the same data dir with fresh ports.
    s.kill9();
    let s2 = Server::start_in(&dir, &[]);
    s2.wait_stats("state reloaded", |st| {
        st.get("core.subscriptions").copied().unwrap_or(0) >= 1
    });

    // The old ETag still refreshes the publication (with a new body).
    let mut pubc2 = Client::udp(s2.sip);
    let r = pubc2.request(&publish(
        &pubc2,
        p,
        600,
        Some(&etag),
        Some(&pidf(p, "t1", "open", "after-crash")),
    ));
    assert_eq!(
        r.code,
        Some(200),
        "ETag from before the crash: {}",
        r.text()
    );

    // The old subscription still gets NOTIFYs, on its old socket (server port changed:
    // answers go wherever the NOTIFY came from).
    w.server = s2.sip;
    w.expect_notify_where("NOTIFY after restart", |n| {
        n.call_id() == d.call_id && n.body_str().contains("after-crash")
    });

    // A new watcher sees the publication.
    let mut w2 = Client::udp(s2.sip);
    let mut d2 = Dialog::new("sip:late@example.com", p);
    assert!(ok(&d2.send_subscribe(&mut w2, 600)));
    w2.expect_notify_where("restored publication", |n| {
        n.body_str().contains("after-crash")
    });

    drop(s2);
    // Stopped server: cleanup and check still work.
    let (okc, out) = herald_store(&dir, &["cleanup"]);
    assert!(okc && out.contains("deleted"), "{out}");
    let (okc, out) = herald_store(&dir, &["check"]);
    assert!(okc && out.contains("check OK"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 4: `herald store list` on a running server shows everything acknowledged, also
/// what only the write-ahead log holds yet. `--debug-hold-checkpoints` keeps the shard's
/// checkpoints back, so the listed state is in the log alone (no checkpoint ran); without
/// the log overlay the listing would be empty.
#[test]
fn store_list_on_a_running_server_shows_what_only_the_log_holds() {
    let dir = fresh_data_dir();
    let mut s = Server::start_in(&dir, &["--shards", "1", "--debug-hold-checkpoints"]);
    let (kept, removed) = ("sip:erin@example.com", "sip:frank@example.com");
    let mut c = Client::udp(s.sip);
    let etags = [kept, removed].map(|p| publish_ok(&mut c, p, "held"));
    // Removed again (Expires: 0): a delete in the log hides the put before it.
    let r = c.request(&publish(&c, removed, 0, Some(&etags[1]), None));
    assert_eq!(r.code, Some(200), "{}", r.text());
    let mut w = Client::udp(s.sip);
    let mut d = Dialog::new("sip:watcher@example.com", kept);
    assert!(ok(&d.send_subscribe(&mut w, 600)));
    w.expect_notify("initial");

    // Every acknowledged op committed (to the log), none checkpointed into LMDB.
    s.wait_stats("ops committed", |st| {
        st.get("core.persist_ops_committed").copied().unwrap_or(0) >= 4
    });
    assert_eq!(
        s.stat("core.persist_checkpoints"),
        0,
        "checkpoints held back"
    );

    let (okp, out) = s.store_cmd(&["list", "presentities"]);
    assert!(
        okp && out.contains(kept) && out.contains(&etags[0]),
        "{out}"
    );
    assert!(
        !out.contains(removed) && out.contains("1 publication(s)"),
        "{out}"
    );
    let (oks, out) = s.store_cmd(&["list", "subscriptions", "--presentity", "erin@"]);
    assert!(oks && out.contains(&d.call_id), "{out}");
    let (okc, out) = s.store_cmd(&["check"]);
    assert!(
        okc && out.contains("1 publication(s), 1 subscription(s)"),
        "{out}"
    );

    // A clean stop checkpoints the log; the stopped server's data lists the same.
    assert!(s.stop().is_some_and(|st| st.success()), "clean stop");
    let (okp, out) = herald_store(&dir, &["list", "presentities"]);
    assert!(
        okp && out.contains(&etags[0]) && out.contains("1 publication(s)"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn durability_none_writes_nothing() {
    let s = Server::start(&["--durability", "none"]);
    let p = "sip:dave@example.com";
    let mut c = Client::udp(s.sip);
    publish_ok(&mut c, p, "x");
    let (ok, out) = s.store_cmd(&["list", "presentities"]);
    assert!(!ok, "no environment in none mode: {out}");
}

#[test]
fn store_command_on_missing_dir_fails_clearly() {
    let dir = fresh_data_dir();
    let (ok, out) = herald_store(&dir, &["check"]);
    assert!(!ok && out.contains("no shard environments"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fetch (SUBSCRIBE, Expires 0) of each of `aors` on `s` gets a NOTIFY whose body holds
/// the note `<prefix><index>` it was published with.
fn expect_notes(s: &Server, aors: &[String], prefix: &str) {
    let mut c = Client::udp(s.sip);
    for (i, p) in aors.iter().enumerate() {
        let mut d = Dialog::new("sip:checker@example.com", p);
        assert!(ok(&d.send_subscribe(&mut c, 0)));
        let n = c.expect_notify_where(p, |n| n.call_id() == d.call_id);
        assert!(
            n.body_str().contains(&format!("{prefix}{i}<")),
            "{p} after the restart: {}",
            n.text()
        );
    }
}

#[test]
fn changing_shard_count_keeps_everything() {
    let dir = fresh_data_dir();
    let mut s = Server::start_in(&dir, &["--shards", "2"]);
    let mut c = Client::udp(s.sip);
    let mut aors = Vec::new();
    for i in 0..12 {
        let p = format!("sip:reshard{i}@example.com");
        let r = c.request(&publish(
            &c,
            &p,
            600,
            None,
            Some(&pidf(&p, "t1", "open", &format!("n{i}"))),
        ));
        assert_eq!(r.code, Some(200), "{}", r.text());
        aors.push(p);
    }
    let st = s.stop();
    assert!(st.is_some_and(|x| x.success()), "clean stop");
    let s3 = Server::start_in(&dir, &["--shards", "3"]);
    expect_notes(&s3, &aors, "n");
    let (okc, out) = s3.store_cmd(&["check"]);
    assert!(okc && out.contains("3 shard(s)"), "{out}");
    drop(s3);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--durability periodic` with a long period: what was acknowledged before a clean stop
/// (SIGTERM) is there after the restart, though no period ever ended (the stop's final
/// commit writes what waits).
#[test]
fn periodic_mode_keeps_everything_over_a_clean_stop() {
    let dir = fresh_data_dir();
    let mut s = Server::start_in(&dir, &["--durability", "periodic=600s"]);
    let mut c = Client::udp(s.sip);
    let aors: Vec<String> = (0..6).map(|i| format!("sip:per{i}@example.com")).collect();
    for (i, p) in aors.iter().enumerate() {
        publish_ok(&mut c, p, &format!("p{i}"));
    }
    let st = s.stop();
    assert!(st.is_some_and(|x| x.success()), "clean stop");
    let s2 = Server::start_in(&dir, &["--durability", "periodic=600s"]);
    expect_notes(&s2, &aors, "p");
    drop(s2);
    let _ = std::fs::remove_dir_all(&dir);
}

fn herald(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run herald");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn user_add_list_del() {
    let s = Server::start(&[]);
    let d = s.data_dir.to_str().unwrap().to_string();
    let (ok, out) = herald(&[
        "user",
        "add",
        "alice@example.com",
        "--password",
        "pw",
        "--data-dir",
        &d,
    ]);
    assert!(ok && out.contains("added"), "{out}");
    let (ok, out) = herald(&[
        "user",
        "add",
        "nodomain",
        "--password",
        "pw",
        "--data-dir",
        &d,
    ]);
    assert!(!ok && out.contains("user@domain"), "{out}");
    let (ok, out) = herald(&["user", "list", "--data-dir", &d]);
    assert!(
        ok && out.contains("alice@example.com") && out.contains("1 user(s)"),
        "{out}"
    );
    let (ok, out) = s.store_cmd(&["check"]);
    assert!(ok && out.contains("1 subscriber(s)"), "{out}");
    let (ok, out) = herald(&["user", "del", "alice@example.com", "--data-dir", &d]);
    assert!(ok, "{out}");
    let (ok, out) = herald(&["user", "del", "alice@example.com", "--data-dir", &d]);
    assert!(!ok && out.contains("no user"), "{out}");
    let (_, out) = herald(&["user", "list", "--data-dir", &d]);
    assert!(out.contains("0 user(s)"), "{out}");
}

/// Issue 4: "when [the map] is full, requests get 500 and a clear log line, the server does
/// not crash, and space comes back as state expires". A 1 MiB map fills after a few dozen
/// large publications (5 s expiry); the refused ones get `500 Store full` and are not kept
/// in memory (refused long-lived ones would outlive the rest); once the accepted ones
/// expire, publishing works again.
#[test]
fn full_map_answers_500_and_space_returns_on_expiry() {
    let s = Server::start(&[
        "--shards",
        "1",
        "--map-size-max",
        "1M",
        "--map-size-initial",
        "1M",
        "--min-expires",
        "1",
    ]);
    let mut c = Client::udp(s.sip);
    let big_note = "x".repeat(6_000);
    let send = |c: &mut Client, name: String, expires: u32| {
        let p = format!("sip:{name}@example.com");
        let req = publish(
            c,
            &p,
            expires,
            None,
            Some(&pidf(&p, "t1", "open", &big_note)),
        );
        c.request(&req)
    };
    let is_store_full = |r: &Msg| {
        r.code == Some(500)
            && r.text().contains("Store full")
            && r.has_header("Retry-After")
            && !r.has_header("SIP-ETag")
    };
    let mut filled = false;
    for i in 0..400 {
        let r = send(&mut c, format!("fill{i}"), 5);
        match r.code {
            Some(200) => {}
            _ if is_store_full(&r) => {
                filled = true;
                break;
            }
            other => panic!("unexpected {other:?}: {}", r.text()),
        }
    }
    assert!(filled, "the 1 MiB map never filled");
    // Long-lived publications while full: refused, and must not linger in memory.
    let mut long_accepted = 0;
    let mut refused = 1;
    for i in 0..3 {
        let r = send(&mut c, format!("long{i}"), 3600);
        if is_store_full(&r) {
            refused += 1;
        } else {
            assert_eq!(r.code, Some(200), "{}", r.text());
            long_accepted += 1; // an expiry freed space meanwhile
        }
    }
    // Still serving.
    let r = c.request(&options(&c, "sip:ping@example.com"));
    assert_eq!(r.code, Some(200));
    s.wait_stats("refusals counted", |st| {
        st.get("core.persist_ops_refused").copied().unwrap_or(0) >= refused
    });
    assert!(
        s.log_text().contains("store full"),
        "clear log line: {}",
        s.log_text()
    );
    // The 5 s publications expire; their deletion frees the map.
    s.wait_stats("publications expired", |st| {
        st.get("core.publications").copied() == Some(long_accepted)
    });
    let mut ok_again = false;
    for i in 0..20 {
        if send(&mut c, format!("after{i}"), 60).code == Some(200) {
            ok_again = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        ok_again,
        "space came back after expiry: {:?}\n{}",
        s.stats()
            .into_iter()
            .filter(|(k, _)| k.contains("persist") || k.contains("publications"))
            .collect::<Vec<_>>(),
        s.log_text()
    );
    let (okc, out) = s.store_cmd(&["check"]);
    assert!(okc && out.contains("check OK"), "{out}");
}

/// A second herald on a data directory in use exits with a clear error (the directory is
/// locked) before touching it, even with another shard count (which would redistribute the
/// records); the first keeps serving.
#[test]
fn second_server_on_the_same_data_dir_refuses_to_start() {
    let s = Server::start(&["--shards", "1"]);
    let d = s.data_dir.to_str().unwrap().to_string();
    let port = free_port_udp_tcp();
    let admin = free_tcp_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "--shards",
            "3",
            "--data-dir",
            &d,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
            "--xcap-listen",
            "none",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run herald");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the second herald kept running on a data directory in use");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!status.success(), "{text}");
    assert!(text.contains("in use by another herald"), "{text}");
    let mut c = Client::udp(s.sip);
    let r = c.request(&options(&c, "sip:ping@example.com"));
    assert_eq!(r.code, Some(200), "the first server still serves");
}

/// A damaged record in the store (garbage under a publication's key, a key without its
/// parts) costs that record, not the server: herald starts and serves everything else,
/// logs what it skipped, and the store commands name the record and delete it on request.
#[test]
fn a_damaged_record_costs_that_record_not_the_server() {
    use store::{ExpiringTable, PresentityKey, RecordKey, Store, StoreOptions};
    let dir = fresh_data_dir();
    let mut s = Server::start_in(&dir, &[]);
    let aors: Vec<String> = (0..4).map(|i| format!("sip:dmg{i}@example.com")).collect();
    let mut c = Client::udp(s.sip);
    for (i, p) in aors.iter().enumerate() {
        publish_ok(&mut c, p, &format!("d{i}"));
    }
    assert!(s.stop().is_some_and(|x| x.success()), "clean stop");
    {
        let st = Store::open(&store::layout::shard_dir(&dir, 0), &StoreOptions::default()).unwrap();
        let bad = PresentityKey {
            presentity: b"sip:dmg-bad@example.com",
            event: b"presence",
            pub_id: b"x",
        };
        st.write(|s, w| {
            s.debug_put_raw(
                w,
                ExpiringTable::Presentity,
                &bad.to_vec()?,
                b"not a record",
            )?;
            s.debug_put_raw(w, ExpiringTable::ActiveWatchers, b"no-separators", b"x")
        })
        .unwrap();
    }

    let mut s2 = Server::start_in(&dir, &[]);
    expect_notes(&s2, &aors, "d");
    let log = s2.log_text();
    assert!(log.contains("cannot be read"), "{log}");
    let (okc, out) = s2.store_cmd(&["check"]);
    assert!(
        !okc && out.contains("dmg-bad") && out.contains("no-separators"),
        "{out}"
    );
    let (okl, out) = s2.store_cmd(&["list", "presentities"]);
    assert!(
        okl && out.contains("sip:dmg3@example.com") && out.contains("1 record(s) cannot be read"),
        "{out}"
    );
    let (oku, out) = s2.store_cmd(&["cleanup", "--unreadable"]);
    assert!(!oku && out.contains("stop it first"), "{out}");
    assert!(s2.stop().is_some_and(|x| x.success()), "clean stop");

    let (oku, out) = herald_store(&dir, &["cleanup", "--unreadable"]);
    assert!(
        oku && out.contains("deleted 2 unreadable record(s)"),
        "{out}"
    );
    let (okc, out) = herald_store(&dir, &["check"]);
    assert!(okc && out.contains("check OK"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
