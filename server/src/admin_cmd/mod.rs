//! `herald store …`: the OpenSIPS presence MI commands (`pres_phtable_list`,
//! `subs_phtable_list`, `cleanup`) plus `check`, on a data directory.
//!
//! `list` and `check` open the shards read-only (`store::admin::open_data_dir_read_only`),
//! so they are safe on a running server and never delay or block it: LMDB read
//! transactions only, no lock file but LMDB's reader slot (a server starting meanwhile is
//! not refused), nothing replayed; they read the write-ahead log's frames not yet
//! checkpointed too (`store::live`), so they show everything the server acknowledged (or a
//! crashed one left in its log). `cleanup` writes on a stopped server (holding the
//! directory's lock while it runs); on a running one, which deletes expired records itself,
//! it reports how many are past their expiry and writes nothing.

pub mod user;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use server::cli::{ListWhat, StoreCommand};
use server::persist::owner_fn;
use store::admin;
use store::{StoreOptions, UnixMillis};

fn now_ms() -> UnixMillis {
    UnixMillis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    )
}

/// Options for opening an existing directory: never shrink or grow the map beyond what the
/// server uses (LMDB adopts the file's current map size when it is larger).
fn opts(max: usize) -> StoreOptions {
    StoreOptions {
        initial_map_size: 1 << 20,
        max_map_size: max,
        ..StoreOptions::default()
    }
}

fn pick(dir: &Option<PathBuf>, default: &Path) -> PathBuf {
    dir.clone().unwrap_or_else(|| default.to_path_buf())
}

/// Runs one `herald user` command.
pub fn run_user(cmd: &server::cli::UserCommand, run: &server::cli::RunArgs) -> ExitCode {
    use server::cli::UserCommand;
    let dir = match cmd {
        UserCommand::Add { dir, .. }
        | UserCommand::Import { dir, .. }
        | UserCommand::Del { dir, .. }
        | UserCommand::List { dir } => pick(&dir.data_dir, &run.data_dir),
    };
    match user::run(cmd, &dir, run.shard_count(), &opts(run.map_size_max)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald user: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one `herald store` command; prints to stdout, errors to stderr.
pub fn run(cmd: &StoreCommand, default_dir: &Path, map_size_max: usize) -> ExitCode {
    match run_inner(cmd, default_dir, map_size_max) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("herald store: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A listing skipped `n` records that cannot be read: say so (on stderr, after the rows).
fn note_unreadable(n: u64) {
    if n > 0 {
        eprintln!("herald store: {}", admin::unreadable_note(n));
    }
}

fn run_inner(
    cmd: &StoreCommand,
    default_dir: &Path,
    map_size_max: usize,
) -> Result<ExitCode, store::StoreError> {
    let now = now_ms();
    match cmd {
        StoreCommand::List { what } => match what {
            ListWhat::Presentities { dir, filter } => {
                let d = admin::open_data_dir_read_only(
                    &pick(&dir.data_dir, default_dir),
                    &opts(map_size_max),
                )?;
                let mut unreadable = 0;
                let rows = admin::list_presentities_counting(
                    &d.stores,
                    filter.event.as_deref(),
                    filter.presentity.as_deref(),
                    &mut unreadable,
                )?;
                print!("{}", admin::render_presentities(&rows, now));
                note_unreadable(unreadable);
            }
            ListWhat::Subscriptions { dir, filter } => {
                let d = admin::open_data_dir_read_only(
                    &pick(&dir.data_dir, default_dir),
                    &opts(map_size_max),
                )?;
                let mut unreadable = 0;
                let rows = admin::list_subscriptions_counting(
                    &d.stores,
                    filter.event.as_deref(),
                    filter.presentity.as_deref(),
                    &mut unreadable,
                )?;
                print!("{}", admin::render_subscriptions(&rows, now));
                note_unreadable(unreadable);
            }
        },
        StoreCommand::Cleanup { dir, unreadable } => {
            let data_dir = pick(&dir.data_dir, default_dir);
            match admin::open_data_dir_exclusive(&data_dir, &opts(map_size_max))? {
                Some((_lock, stores)) if *unreadable => {
                    println!("{}", admin::delete_unreadable(&stores)?)
                }
                Some((_lock, stores)) => println!("{}", admin::cleanup(&stores, now)?),
                None if *unreadable => {
                    eprintln!(
                        "herald store: a running herald holds {}: stop it first to delete \
                         unreadable records (it skipped them when it loaded; nothing written)",
                        data_dir.display()
                    );
                    return Ok(ExitCode::FAILURE);
                }
                None => {
                    // A running server deletes what expires itself (its expiry timers
                    // emit the deletes, which its log and checkpoint carry to LMDB), so
                    // there is nothing for a second writer to do: report, write nothing.
                    let d = admin::open_data_dir_read_only(&data_dir, &opts(map_size_max))?;
                    let rep = admin::count_expired(&d.stores, now)?;
                    println!(
                        "a running herald holds {}: it deletes expired records itself as they \
                         expire; {} publication(s) and {} subscription(s) are past their expiry \
                         in the store now and go with its next expiry sweep (nothing written)",
                        data_dir.display(),
                        rep.presentities,
                        rep.subscriptions
                    );
                    note_unreadable(rep.unreadable);
                }
            }
        }
        StoreCommand::Check { dir } => {
            let d = admin::open_data_dir_read_only(
                &pick(&dir.data_dir, default_dir),
                &opts(map_size_max),
            )?;
            let owner = owner_fn((d.stores.len() + d.empty.len()) as u16);
            let rep = admin::check_read_only(&d, Some(&owner))?;
            println!("{rep}");
            if !rep.ok() {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
