//! `herald user add|del|list`: XCAP accounts in the `subscriber` table (user, domain, HA1),
//! stored on the shard that owns `sip:user@domain` (where XCAP requests of that user run).

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use server::cli::UserCommand;
use server::persist::owner_fn;
use store::{Store, StoreError, SubscriberKey, SubscriberRecord};

fn split_user(u: &str) -> Result<(&str, &str), StoreError> {
    match u.split_once('@') {
        Some((n, d)) if !n.is_empty() && !d.is_empty() && !d.contains('@') => Ok((n, d)),
        _ => Err(StoreError::InvalidArgument(format!(
            "bad user {u:?}: expected user@domain"
        ))),
    }
}

/// Opens the data dir without changing its layout; creates it (with `shards` shards) only if
/// it holds no environment yet.
fn open(
    dir: &Path,
    shards: u16,
    opts: &store::StoreOptions,
) -> Result<Vec<(u16, Arc<Store>)>, StoreError> {
    if store::layout::existing_shards(dir)
        .map(|v| v.is_empty())
        .unwrap_or(true)
    {
        let stores = server::persist::open_data_dir(dir, shards, opts)?;
        return Ok(stores
            .into_iter()
            .enumerate()
            .map(|(i, s)| (i as u16, s))
            .collect());
    }
    store::admin::open_data_dir(dir, opts)
}

pub fn run(
    cmd: &UserCommand,
    dir: &Path,
    shards: u16,
    opts: &store::StoreOptions,
) -> Result<(), StoreError> {
    match cmd {
        UserCommand::Add {
            user,
            password,
            realm,
            ..
        } => {
            let (name, domain) = split_user(user)?;
            let password = match password {
                Some(p) => p.clone(),
                None => {
                    eprint!("password for {user}: ");
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line).map_err(|e| {
                        StoreError::InvalidArgument(format!("reading password: {e}"))
                    })?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            if password.is_empty() {
                return Err(StoreError::InvalidArgument("empty password".into()));
            }
            let realm = realm.as_deref().unwrap_or(domain);
            let rec = SubscriberRecord {
                ha1_md5: xcap::auth::ha1_md5(name, realm, &password),
                ha1_sha256: xcap::auth::ha1_sha256(name, realm, &password),
            };
            let stores = open(dir, shards, opts)?;
            let owner = owner_fn(stores.len() as u16)(format!("sip:{name}@{domain}").as_bytes());
            let (_, st) = stores
                .iter()
                .find(|(i, _)| *i == owner)
                .ok_or_else(|| StoreError::InvalidArgument(format!("no shard {owner}")))?;
            let key = SubscriberKey {
                user: name.as_bytes(),
                domain: domain.as_bytes(),
            };
            st.write(|s, w| s.put_subscriber(w, key, &rec))?;
            println!("user {name}@{domain} added (realm {realm}, shard {owner})");
        }
        UserCommand::Del { user, .. } => {
            let (name, domain) = split_user(user)?;
            let key = SubscriberKey {
                user: name.as_bytes(),
                domain: domain.as_bytes(),
            };
            let mut found = false;
            // Every shard: a record left on a wrong shard (old layout) goes too.
            for (_, st) in store::admin::open_data_dir(dir, opts)? {
                found |= st.write(|s, w| s.delete_subscriber(w, key))?;
            }
            if !found {
                return Err(StoreError::InvalidArgument(format!(
                    "no user {name}@{domain}"
                )));
            }
            println!("user {name}@{domain} deleted");
        }
        UserCommand::List { .. } => {
            let mut n = 0;
            // Read-only: safe beside a running server (see `store::admin`).
            for (shard, st) in store::admin::open_data_dir_read_only(dir, opts)?.stores {
                let r = st.read_txn()?;
                for item in st.iter_subscribers(&r)? {
                    let (k, _) = item?;
                    println!(
                        "{}@{} shard={shard}",
                        String::from_utf8_lossy(k.user),
                        String::from_utf8_lossy(k.domain)
                    );
                    n += 1;
                }
            }
            println!("{n} user(s)");
        }
    }
    Ok(())
}
