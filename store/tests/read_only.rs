//! Issue 4: the read-only `herald store` commands (`list`, `check`) open a data directory
//! with `admin::open_data_dir_read_only`: beside a running server they take no write
//! transaction (so a long one of the server's does not hold them up), no lock the server
//! needs (a server starting meanwhile is not refused), and on a stopped one they replay
//! nothing (the log is read, not applied).
//!
//! heed refuses to open one environment twice in a process (and LMDB forbids it), so the
//! tests that need the server and the command at the same time run the command in a child
//! process: this test binary again, running only [`ro_child`] with `HERALD_RO_CHILD` set.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{append, key, opts, rec};
use store::admin::{check_read_only, list_presentities, open_data_dir_read_only};
use store::layout::{lock_data_dir, open_shards, shard_dir};
use store::wal::{wal_dir, Wal};
use store::*;

/// How long a child may take for one step; it is only ever this slow if it waits for the
/// write transaction the test holds (which it never gives up).
const STEP: Duration = Duration::from_secs(60);

fn put(st: &Store, aor: &str) {
    st.write(|s, w| s.put_presentity(w, key(aor), &rec(aor, 1_000)))
        .unwrap();
}

fn one_shard(data: &Path) -> std::sync::Arc<Store> {
    open_shards(data, 1, &opts(), &|_| 0).unwrap().0.remove(0)
}

/// A stopped server's data directory (one shard) whose last run crashed: `sip:lmdb@x` in
/// LMDB, `sip:crashed@x` only in the log it left (no checkpoint ran).
fn crashed_server() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let st = one_shard(dir.path());
    put(&st, "sip:lmdb@x");
    let mut wal = Wal::open(&st).unwrap();
    append(&mut wal, &[("sip:crashed@x", Some("crashed"))]);
    dir
}

/// The child process: a `herald store` command. `list`: lists and checks, then exits.
/// `hold`: lists, then keeps the environments open until a line arrives on stdin, then
/// lists again. Output lines start with `@@` (libtest prints around them).
#[test]
fn ro_child() {
    let Ok(mode) = std::env::var("HERALD_RO_CHILD") else {
        return; // an ordinary test run
    };
    let data = PathBuf::from(std::env::var("HERALD_RO_DIR").unwrap());
    let d = open_data_dir_read_only(&data, &opts()).unwrap();
    let print = |tag: &str| {
        for r in list_presentities(&d.stores, None, None).unwrap() {
            println!("\n@@{tag} {} {}", r.presentity, r.etag);
        }
    };
    print("ROW");
    match mode.as_str() {
        "list" => {
            let rep = check_read_only(&d, None).unwrap();
            println!("\n@@CHECK {} {}", rep.ok(), rep.presentities);
        }
        "txn" => {
            // A listing that dies (kill -9) inside its read transaction.
            let txn = d.stores[0].1.read_txn().unwrap();
            println!("\n@@READY");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
            drop(txn);
        }
        "hold" => {
            println!("\n@@READY");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
            print("ROW2");
        }
        other => panic!("unknown child mode {other}"),
    }
    println!("\n@@DONE");
}

/// A running child (killed if the test ends first).
struct Child {
    proc: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Child {
    fn spawn(mode: &str, data: &Path) -> Child {
        let mut proc = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "ro_child", "--nocapture", "--test-threads=1"])
            .env("HERALD_RO_CHILD", mode)
            .env("HERALD_RO_DIR", data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = proc.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                if let Some(i) = line.find("@@") {
                    if tx.send(line[i + 2..].to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        Child { proc, lines }
    }

    /// The child's lines up to (without) `marker`; panics if it does not come within
    /// [`STEP`] (the child waits for something it must not wait for) or the child ends.
    fn until(&mut self, marker: &str) -> Vec<String> {
        let mut got = Vec::new();
        loop {
            match self.lines.recv_timeout(STEP) {
                Ok(l) if l == marker => return got,
                Ok(l) => got.push(l),
                Err(e) => panic!("child: no {marker} ({e:?}); it printed {got:?}"),
            }
        }
    }

    fn send_line(&mut self) {
        let stdin = self.proc.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }

    fn wait_ok(mut self) {
        let st = self.proc.wait().unwrap();
        assert!(st.success(), "child exited with {st}");
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

fn rows_tagged(lines: &[String], tag: &str) -> Vec<String> {
    let mut v: Vec<String> = lines
        .iter()
        .filter_map(|l| l.strip_prefix(tag).map(|r| r.trim().to_string()))
        .collect();
    v.sort();
    v
}

/// A running server: the data directory and log locked, a publication in LMDB, one only in
/// the log, one deleted in the log, and a long write transaction in progress (as a big
/// checkpoint's). The read-only listing completes while that transaction stays open (it
/// never asks for the writer lock), and shows exactly what the server acknowledged.
#[test]
fn listing_beside_a_writer_holding_the_log_and_a_long_write_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let _server = lock_data_dir(data).unwrap();
    let st = one_shard(data);
    put(&st, "sip:lmdb@x");
    put(&st, "sip:gone@x");
    let mut wal = Wal::open(&st).unwrap();
    append(
        &mut wal,
        &[("sip:log@x", Some("log")), ("sip:gone@x", None)],
    );

    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let writer = {
        let st = st.clone();
        std::thread::spawn(move || {
            st.write(|_, _| {
                started_tx.send(()).unwrap();
                let _ = release_rx.recv();
                Ok(())
            })
        })
    };
    started.recv().unwrap();

    let mut child = Child::spawn("list", data);
    let out = child.until("DONE");
    release.send(()).unwrap();
    writer.join().unwrap().unwrap();
    child.wait_ok();
    assert_eq!(
        rows_tagged(&out, "ROW"),
        ["sip:lmdb@x etag-sip:lmdb@x", "sip:log@x etag-log"]
    );
    assert!(out.contains(&"CHECK true 2".to_string()), "{out:?}");

    // The server carries on undisturbed: its log still appends and checkpoints.
    append(&mut wal, &[("sip:after@x", Some("after"))]);
    let sealed = wal.seal();
    st.checkpoint(&wal::read_log(&st).unwrap(), sealed).unwrap();
}

/// A `herald store list` on a stopped server (whose last run crashed, leaving its log)
/// holds the environment open while a server starts: the start is not refused (neither the
/// data directory's lock nor the log's is held by the listing), replays the log itself,
/// and the listing, still open, sees what the server writes next. Before the server
/// started, the listing showed the crashed log's frame without replaying it.
#[test]
fn a_server_starts_while_a_listing_holds_the_environment() {
    let dir = crashed_server();
    let data = dir.path();
    let wal_files = || {
        let mut v: Vec<_> = std::fs::read_dir(wal_dir(&shard_dir(data, 0)))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let before = wal_files();

    let mut child = Child::spawn("hold", data);
    let first = child.until("READY");
    assert_eq!(
        rows_tagged(&first, "ROW"),
        ["sip:crashed@x etag-crashed", "sip:lmdb@x etag-sip:lmdb@x"]
    );
    assert_eq!(wal_files(), before, "the listing replayed nothing");

    // The server starts beside the open listing.
    let _server = lock_data_dir(data).expect("not refused: the listing holds no LOCK");
    let st = one_shard(data);
    assert_eq!(
        st.replayed_wal_ops(),
        1,
        "the server replays the crashed log"
    );
    let mut wal = Wal::open(&st).expect("not refused: the log's LOCK is free");
    append(&mut wal, &[("sip:new@x", Some("new"))]);

    child.send_line();
    let second = child.until("DONE");
    child.wait_ok();
    assert_eq!(
        rows_tagged(&second, "ROW2"),
        [
            "sip:crashed@x etag-crashed",
            "sip:lmdb@x etag-sip:lmdb@x",
            "sip:new@x etag-new"
        ]
    );
}

/// A listing killed with `kill -9` inside its read transaction leaves its LMDB reader slot
/// (LMDB never notices on its own); the server's store clears it, so the pages it pinned
/// are reused instead of the map filling up. Writes do this every `STALE_READER_CHECK`.
#[test]
fn a_killed_listings_reader_slot_is_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let st = one_shard(data);
    put(&st, "sip:a@x");
    assert_eq!(st.clear_stale_readers().unwrap(), 0, "no reader yet");

    let mut child = Child::spawn("txn", data);
    child.until("READY");
    assert_eq!(
        st.clear_stale_readers().unwrap(),
        0,
        "a live reader's slot is kept"
    );
    child.proc.kill().unwrap(); // SIGKILL: no chance to end the transaction
    child.proc.wait().unwrap();
    assert_eq!(
        st.clear_stale_readers().unwrap(),
        1,
        "the dead reader's slot"
    );
    assert_eq!(st.clear_stale_readers().unwrap(), 0);
    assert_eq!(st.stale_readers_cleared(), 1);

    // A server starting after the listing died finds no stale slot (LMDB resets the reader
    // table for the first process to open the environment; the open clears it otherwise).
    drop(st);
    let mut child = Child::spawn("txn", data);
    child.until("READY");
    child.proc.kill().unwrap();
    child.proc.wait().unwrap();
    let st = one_shard(data);
    assert_eq!(
        st.clear_stale_readers().unwrap(),
        0,
        "no stale slot after the open"
    );
}

/// Every file under `dir` but LMDB's `lock.mdb` (the reader table a read-only open may
/// use): contents and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::metadata(&p).unwrap();
            if md.is_dir() {
                out.insert(p.clone(), (Vec::new(), md.modified().unwrap()));
                todo.push(p);
            } else if p.file_name().is_some_and(|n| n != "lock.mdb") {
                out.insert(
                    p.clone(),
                    (std::fs::read(&p).unwrap(), md.modified().unwrap()),
                );
            }
        }
    }
    out
}

/// The read-only open of a stopped server's data writes nothing and creates nothing (no
/// `LOCK` file, neither the data directory's nor the log's; the crashed log stays as it
/// is), yet lists the log's frames; writes through it are refused.
#[test]
fn read_only_open_writes_and_locks_nothing() {
    let dir = crashed_server();
    let data = dir.path();
    std::fs::remove_file(wal_dir(&shard_dir(data, 0)).join("LOCK")).unwrap();
    assert!(!data.join("LOCK").exists());
    let before = snapshot(data);

    let d = open_data_dir_read_only(data, &opts()).unwrap();
    assert!(d.empty.is_empty());
    let st = &d.stores[0].1;
    assert!(st.is_read_only());
    let rows: Vec<String> = list_presentities(&d.stores, None, None)
        .unwrap()
        .into_iter()
        .map(|r| format!("{} {}", r.presentity, r.etag))
        .collect();
    assert_eq!(
        rows,
        ["sip:crashed@x etag-crashed", "sip:lmdb@x etag-sip:lmdb@x"]
    );
    let rep = check_read_only(&d, None).unwrap();
    assert!(rep.ok() && rep.presentities == 2, "{rep}");
    let e = st.write(|s, w| s.put_presentity(w, key("sip:no@x"), &rec("no", 1_000)));
    assert!(e.unwrap_err().to_string().contains("read-only"));
    let e = Wal::open(st)
        .err()
        .expect("no log writer on a read-only store");
    assert!(e.to_string().contains("read-only"), "{e}");
    drop(d);

    assert_eq!(
        snapshot(data),
        before,
        "nothing under the data directory changed"
    );
    assert!(!data.join("LOCK").exists());
    assert!(!wal_dir(&shard_dir(data, 0)).join("LOCK").exists());
}

/// The schema check of the writable open, without its writes: a newer schema is refused,
/// an older one asks for the upgrade (which writes) to be done by the server or `cleanup`
/// and is left as it was.
#[test]
fn read_only_open_checks_the_schema_and_upgrades_nothing() {
    for (version, want) in [
        (SCHEMA_VERSION + 1, "migrate or move"),
        (SCHEMA_VERSION - 1, "herald store cleanup"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        {
            let st = one_shard(data);
            st.write(|s, w| s.debug_set_schema(w, version)).unwrap();
        }
        let e = open_data_dir_read_only(data, &opts())
            .err()
            .expect("refused");
        match (&e, version > SCHEMA_VERSION) {
            (StoreError::SchemaMismatch { found, .. }, true)
            | (StoreError::NeedsUpgrade { found, .. }, false) => assert_eq!(*found, version),
            _ => panic!("schema {version}: {e:?}"),
        }
        assert!(e.to_string().contains(want), "{e}");
        if version < SCHEMA_VERSION {
            let st = Store::open(&shard_dir(data, 0), &opts()).unwrap();
            assert_eq!(
                st.upgraded_from(),
                Some(version),
                "left for the writable open"
            );
        }
    }
}

/// Environments whose tables do not exist yet (a first open interrupted before it created
/// them, or before LMDB wrote its file's header) list as empty; `check` names them.
#[test]
fn environments_without_tables_read_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let s0 = shard_dir(data, 0);
    std::fs::create_dir_all(&s0).unwrap();
    // SAFETY: a fresh environment of this test's own.
    drop(unsafe { heed::EnvOpenOptions::new().open(&s0) }.unwrap());
    let s1 = shard_dir(data, 1);
    std::fs::create_dir_all(&s1).unwrap();
    std::fs::write(s1.join("data.mdb"), b"").unwrap();

    let d = open_data_dir_read_only(data, &opts()).unwrap();
    assert!(d.stores.is_empty());
    assert_eq!(d.empty, [0, 1]);
    assert!(list_presentities(&d.stores, None, None).unwrap().is_empty());
    let rep = check_read_only(&d, None).unwrap();
    assert_eq!((rep.shards, rep.problem_count), (2, 2), "{rep}");
    drop(d);
    // The server's open creates the tables as usual.
    let (stores, _) = open_shards(data, 2, &opts(), &|_| 0).unwrap();
    drop(stores);
    let d = open_data_dir_read_only(data, &opts()).unwrap();
    assert_eq!((d.stores.len(), d.empty.len()), (2, 0));
    assert!(check_read_only(&d, None).unwrap().ok());
}
