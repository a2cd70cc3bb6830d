//! Measures the layout decision documented in `store/src/lib.rs`: two writer threads doing
//! durable commits, either into one shared LMDB environment (LMDB serialises its writers) or
//! into one environment each. Bounded: `COMMITS` commits per thread.
//!
//! `cargo run --release -p store --example layout -- [batch] [commits] [dir]`
use std::time::Instant;

use heed::types::Bytes;
use heed::{Database, EnvOpenOptions};

type Db = Database<'static, Bytes, Bytes>;

fn open(path: &std::path::Path) -> (heed::Env<heed::WithoutTls>, Db) {
    std::fs::create_dir_all(path).unwrap();
    let mut opts = EnvOpenOptions::new().read_txn_without_tls();
    opts.map_size(1 << 30).max_dbs(4);
    // SAFETY: the directory is private to this example.
    let env = unsafe { opts.open(path) }.unwrap();
    let w = env.write_txn().unwrap();
    let db = env
        .create_databases_and_commit(w, |o, w| {
            o.create_database::<Bytes, Bytes>(w, Some("t"))
                .map(heed::CommitOrAbort::<_, ()>::Commit)
        })
        .unwrap()
        .unwrap_commit();
    (env, db)
}

fn writer(env: &heed::Env<heed::WithoutTls>, db: Db, t: u32, batch: u32, commits: u32) {
    let val = [7u8; 200];
    for c in 0..commits {
        let mut w = env.write_txn().unwrap();
        for i in 0..batch {
            let key = format!("sip:user{t}-{c}-{i}@example.com");
            db.put(&mut w, key.as_bytes(), &val).unwrap();
        }
        w.commit().unwrap();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let batch: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let commits: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(500);
    let base = args
        .get(3)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("herald-layout"));
    let _ = std::fs::remove_dir_all(&base);

    // One shared env, two writer threads.
    let shared_dir = base.join("shared");
    let (env, db) = open(&shared_dir);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2 {
            let env = env.clone();
            s.spawn(move || writer(&env, db, t, batch, commits));
        }
    });
    let shared = t0.elapsed();

    // One env per writer thread.
    let dirs: Vec<_> = (0..2).map(|t| base.join(format!("shard-{t}"))).collect();
    let envs: Vec<_> = dirs.iter().map(|d| open(d)).collect();
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for (t, (env, db)) in envs.iter().enumerate() {
            let db = *db;
            s.spawn(move || writer(env, db, t as u32, batch, commits));
        }
    });
    let per_shard = t0.elapsed();

    let total = 2.0 * commits as f64;
    println!(
        "batch={batch} commits/thread={commits}: shared env {:.0} commits/s ({:.0} puts/s); per-shard envs {:.0} commits/s ({:.0} puts/s)",
        total / shared.as_secs_f64(),
        total * batch as f64 / shared.as_secs_f64(),
        total / per_shard.as_secs_f64(),
        total * batch as f64 / per_shard.as_secs_f64(),
    );
    let _ = std::fs::remove_dir_all(&base);
}
