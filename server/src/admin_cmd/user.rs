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

/// A user ready to store: where it goes and its credentials.
struct Account<'a> {
    name: &'a str,
    domain: &'a str,
    rec: SubscriberRecord,
}

/// Credentials from a password (both digests) or from an existing MD5 HA1 (migrated
/// accounts whose password is not known; SHA-256 digest then cannot work for them).
fn credentials(
    name: &str,
    realm: &str,
    secret: Secret<'_>,
) -> Result<SubscriberRecord, StoreError> {
    match secret {
        Secret::Password("") => Err(StoreError::InvalidArgument("empty password".into())),
        Secret::Password(p) => Ok(SubscriberRecord {
            ha1_md5: xcap::auth::ha1_md5(name, realm, p),
            ha1_sha256: xcap::auth::ha1_sha256(name, realm, p),
        }),
        Secret::Ha1(h) => {
            if h.len() != 32 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(StoreError::InvalidArgument(format!(
                    "bad HA1 {h:?}: expected 32 hex digits (MD5)"
                )));
            }
            Ok(SubscriberRecord {
                ha1_md5: h.to_ascii_lowercase(),
                ha1_sha256: String::new(),
            })
        }
    }
}

#[derive(Clone, Copy)]
enum Secret<'a> {
    Password(&'a str),
    Ha1(&'a str),
}

/// One line of `herald user import`: `user@domain`, a separator (tab, comma or spaces),
/// then the password or `ha1=<hex>`. `None` for a blank or `#` line.
fn parse_import_line(line: &str) -> Result<Option<(&str, Secret<'_>)>, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() || line.trim_start().starts_with('#') {
        return Ok(None);
    }
    let line = line.trim_start();
    let Some(cut) = line.find(['\t', ',', ' ']) else {
        return Err("expected `user@domain<tab|,|space>password` or `… ha1=<hex>`".into());
    };
    let user = &line[..cut];
    let rest = line[cut..].trim_start_matches(['\t', ',', ' ']);
    if rest.is_empty() {
        return Err(format!("no password or ha1= for {user}"));
    }
    Ok(Some(match rest.strip_prefix("ha1=") {
        Some(h) => (user, Secret::Ha1(h.trim())),
        None => (user, Secret::Password(rest)),
    }))
}

/// Stores `accounts`, one write transaction per owning shard.
fn put_accounts(
    stores: &[(u16, Arc<Store>)],
    accounts: &[Account<'_>],
) -> Result<Vec<u16>, StoreError> {
    let owner = owner_fn(stores.len() as u16);
    let owners: Vec<u16> = accounts
        .iter()
        .map(|a| owner(format!("sip:{}@{}", a.name, a.domain).as_bytes()))
        .collect();
    if let Some(o) = owners.iter().find(|o| !stores.iter().any(|(i, _)| i == *o)) {
        return Err(StoreError::InvalidArgument(format!("no shard {o}")));
    }
    for (shard, st) in stores {
        let mine: Vec<&Account<'_>> = accounts
            .iter()
            .zip(&owners)
            .filter(|(_, o)| *o == shard)
            .map(|(a, _)| a)
            .collect();
        if mine.is_empty() {
            continue;
        }
        st.write(|s, w| {
            for a in &mine {
                let key = SubscriberKey {
                    user: a.name.as_bytes(),
                    domain: a.domain.as_bytes(),
                };
                s.put_subscriber(w, key, &a.rec)?;
            }
            Ok(())
        })?;
    }
    Ok(owners)
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
            ha1,
            realm,
            ..
        } => {
            let (name, domain) = split_user(user)?;
            let typed;
            let secret = match (password, ha1) {
                (_, Some(h)) => Secret::Ha1(h),
                (Some(p), None) => Secret::Password(p),
                (None, None) => {
                    eprint!("password for {user}: ");
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line).map_err(|e| {
                        StoreError::InvalidArgument(format!("reading password: {e}"))
                    })?;
                    typed = line.trim_end_matches(['\r', '\n']).to_string();
                    Secret::Password(&typed)
                }
            };
            let realm = realm.as_deref().unwrap_or(domain);
            let rec = credentials(name, realm, secret)?;
            let stores = open(dir, shards, opts)?;
            let owners = put_accounts(&stores, &[Account { name, domain, rec }])?;
            println!(
                "user {name}@{domain} added (realm {realm}, shard {})",
                owners[0]
            );
        }
        UserCommand::Import { file, realm, .. } => {
            let text = match file {
                Some(f) => std::fs::read_to_string(f).map_err(|e| {
                    StoreError::InvalidArgument(format!("reading {}: {e}", f.display()))
                })?,
                None => std::io::read_to_string(std::io::stdin().lock())
                    .map_err(|e| StoreError::InvalidArgument(format!("reading stdin: {e}")))?,
            };
            let mut accounts = Vec::new();
            let mut ha1_only = 0usize;
            for (i, line) in text.lines().enumerate() {
                let at = |e: String| StoreError::InvalidArgument(format!("line {}: {e}", i + 1));
                let Some((user, secret)) = parse_import_line(line).map_err(at)? else {
                    continue;
                };
                let (name, domain) = split_user(user).map_err(|e| at(e.to_string()))?;
                let realm = realm.as_deref().unwrap_or(domain);
                let rec = credentials(name, realm, secret).map_err(|e| at(e.to_string()))?;
                ha1_only += usize::from(rec.ha1_sha256.is_empty());
                accounts.push(Account { name, domain, rec });
            }
            let stores = open(dir, shards, opts)?;
            put_accounts(&stores, &accounts)?;
            println!(
                "{} user(s) imported ({ha1_only} from an MD5 HA1: MD5 digest only)",
                accounts.len()
            );
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
                    let (k, _) = match item {
                        Ok(kv) => kv,
                        Err(e) if e.is_unreadable_record() => {
                            // Named by `herald store check`; `herald user add` rewrites it.
                            eprintln!("herald user: shard {shard}: {e}");
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_lines() {
        let p = |l| match parse_import_line(l) {
            Ok(Some((u, Secret::Password(p)))) => format!("{u} pw {p}"),
            Ok(Some((u, Secret::Ha1(h)))) => format!("{u} ha1 {h}"),
            Ok(None) => "skip".into(),
            Err(_) => "error".into(),
        };
        assert_eq!(
            p("alice@example.com\ts3cret"),
            "alice@example.com pw s3cret"
        );
        assert_eq!(
            p("bob@example.com,pass word"),
            "bob@example.com pw pass word"
        );
        assert_eq!(p("  carol@example.com   x\r"), "carol@example.com pw x");
        assert_eq!(
            p("dave@example.com ha1=0123456789ABCDEF0123456789abcdef"),
            "dave@example.com ha1 0123456789ABCDEF0123456789abcdef"
        );
        assert_eq!(p(""), "skip");
        assert_eq!(p("   "), "skip");
        assert_eq!(p("# exported 2026-11-23"), "skip");
        assert_eq!(p("erin@example.com"), "error");
        assert_eq!(p("erin@example.com ,\t"), "error");
    }

    #[test]
    fn an_imported_ha1_is_checked_and_kept() {
        let h = xcap::auth::ha1_md5("alice", "example.com", "s3cret");
        let rec = credentials("alice", "example.com", Secret::Ha1(&h.to_uppercase())).unwrap();
        assert_eq!(rec.ha1_md5, h);
        assert!(rec.ha1_sha256.is_empty());
        assert!(credentials("a", "b", Secret::Ha1("xyz")).is_err());
        assert!(credentials("a", "b", Secret::Ha1(&"g".repeat(32))).is_err());
        assert!(credentials("a", "b", Secret::Password("")).is_err());
        let both = credentials("alice", "example.com", Secret::Password("s3cret")).unwrap();
        assert_eq!(both.ha1_md5, h);
        assert_eq!(both.ha1_sha256.len(), 64);
    }
}
