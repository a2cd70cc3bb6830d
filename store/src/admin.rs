//! Management commands (OpenSIPS presence MI: `pres_phtable_list`, `subs_phtable_list`,
//! `pres_expose`, `cleanup`), plus `check`. Structured rows for programs, `render_*` for the
//! `herald store ...` text output.
//!
//! They work on a stopped server's data directory and on a running one. Listing and
//! checking open each shard read-only ([`open_data_dir_read_only`]): LMDB read transactions
//! only (readers never block the server's writer, nor wait for it), no lock file but LMDB's
//! reader slot, nothing replayed; they read through a [`LiveView`](crate::live::LiveView)
//! that lays the write-ahead log's not-yet-checkpointed frames over LMDB, so they show
//! everything the server acknowledged (or a crashed one left in its log), not only what its
//! last checkpoint applied. `cleanup` writes, so it runs on a stopped server only
//! ([`open_data_dir_exclusive`] refuses while a server holds the directory; a running
//! server deletes what expires itself): each pass takes the shard environment's write lock
//! for one transaction of at most [`CLEANUP_BATCH`] deletions.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use regex::bytes::Regex;

use crate::env::{Store, StoreOptions};
use crate::error::{Result, StoreError};
use crate::keys::{ExpiringTable, RecordKey};
use crate::layout::{existing_shards, shard_dir, try_lock_data_dir, DataDirLock, ShardFn};
use crate::records::{SubStatus, TransportKind, UnixMillis};
use crate::tables::{CleanupCounts, Expired};

/// Deletions per cleanup transaction.
pub const CLEANUP_BATCH: usize = 10_000;

/// Problems listed in a check report (the count is always complete).
pub const MAX_REPORTED_PROBLEMS: usize = 100;

/// Shard environments by shard index, as the commands take them.
pub type Shards = Vec<(u16, Arc<Store>)>;

/// Opens every shard environment found under `data_dir` for writing (no redistribution, no
/// layout change; a crashed server's log is replayed, an older schema upgraded). Errors if
/// there is none. Takes no lock of the data directory: see [`open_data_dir_exclusive`].
pub fn open_data_dir(data_dir: &Path, opts: &StoreOptions) -> Result<Shards> {
    existing(data_dir)?
        .into_iter()
        .map(|i| Ok((i, Arc::new(Store::open(&shard_dir(data_dir, i), opts)?))))
        .collect()
}

/// The shards under `data_dir`; an error if there is none.
fn existing(data_dir: &Path) -> Result<Vec<u16>> {
    let shards = existing_shards(data_dir)?;
    if shards.is_empty() {
        return Err(StoreError::InvalidArgument(format!(
            "no shard environments (shard-NNN/data.mdb) under {}",
            data_dir.display()
        )));
    }
    Ok(shards)
}

/// [`open_data_dir`] while holding the data directory's `LOCK`, the one a running server
/// holds: for commands that write (`herald store cleanup`). `None` at once if a server
/// holds it (instead of waiting for the server's writer, or racing its start); a server
/// started meanwhile refuses to start until the lock is dropped.
pub fn open_data_dir_exclusive(
    data_dir: &Path,
    opts: &StoreOptions,
) -> Result<Option<(DataDirLock, Shards)>> {
    existing(data_dir)?;
    let Some(lock) = try_lock_data_dir(data_dir)? else {
        return Ok(None);
    };
    Ok(Some((lock, open_data_dir(data_dir, opts)?)))
}

/// A scan item, or `None` (counted in `unreadable`) for a record that cannot be read; other
/// errors end the scan.
fn readable<T>(item: Result<T>, unreadable: &mut u64) -> Result<Option<T>> {
    match item {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.is_unreadable_record() => {
            *unreadable += 1;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Publications and subscriptions past their expiry at `now` in a read-only view (what a
/// `cleanup` would delete), counted through the live view like the listings.
pub fn count_expired(stores: &[(u16, Arc<Store>)], now: UnixMillis) -> Result<CleanupReport> {
    let mut rep = CleanupReport::default();
    for row in list_presentities_counting(stores, None, None, &mut rep.unreadable)? {
        rep.presentities += u64::from(row.expires_at <= now);
    }
    for row in list_subscriptions_counting(stores, None, None, &mut rep.unreadable)? {
        rep.subscriptions += u64::from(row.expires_at <= now);
    }
    Ok(rep)
}

/// A data directory opened read-only ([`open_data_dir_read_only`]).
pub struct ReadOnlyDataDir {
    /// The shards whose environment has its tables, by shard index.
    pub stores: Shards,
    /// Shards whose environment has no tables yet (the first open, which creates them,
    /// never finished): they hold nothing.
    pub empty: Vec<u16>,
}

/// Opens every shard environment under `data_dir` read-only ([`Store::open_read_only`]),
/// for `herald store list` and `check` on a running or stopped server: no write
/// transaction, no lock file (neither the data directory's nor the logs'), no replay of a
/// crashed server's log (read it through [`Store::live_view`], as the listings do). Errors
/// if there is no environment, or one needs a schema upgrade (which writes).
pub fn open_data_dir_read_only(data_dir: &Path, opts: &StoreOptions) -> Result<ReadOnlyDataDir> {
    let mut dir = ReadOnlyDataDir {
        stores: Vec::new(),
        empty: Vec::new(),
    };
    for i in existing(data_dir)? {
        match Store::open_read_only(&shard_dir(data_dir, i), opts)? {
            Some(s) => dir.stores.push((i, Arc::new(s))),
            None => dir.empty.push(i),
        }
    }
    Ok(dir)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn compile(re: Option<&str>) -> Result<Option<Regex>> {
    re.map(|r| {
        Regex::new(r).map_err(|e| StoreError::InvalidArgument(format!("bad regex {r:?}: {e}")))
    })
    .transpose()
}

/// One publication (`pres_phtable_list`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresentityRow {
    pub shard: u16,
    pub presentity: String,
    pub event: String,
    pub etag: String,
    pub expires_at: UnixMillis,
    pub received_at: UnixMillis,
    pub content_type: String,
    pub body_len: usize,
}

/// One subscription dialog (`subs_phtable_list`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionRow {
    pub shard: u16,
    pub presentity: String,
    pub dialog_id: String,
    /// From of the SUBSCRIBE (name-addr).
    pub watcher: String,
    pub event: String,
    pub event_id: Option<String>,
    pub call_id: String,
    pub from_tag: String,
    pub to_tag: String,
    pub local_cseq: u32,
    pub remote_cseq: u32,
    pub contact: String,
    pub transport: TransportKind,
    pub peer: std::net::SocketAddr,
    /// Bytes of the Route header value (0 = no route set).
    pub route_set_len: usize,
    pub status: SubStatus,
    pub reason: Option<String>,
    pub expires_at: UnixMillis,
    pub version: u64,
}

/// Every publication, optionally only of `event` and of presentities matching
/// `presentity_regex` (`pres_expose`).
pub fn list_presentities(
    stores: &[(u16, Arc<Store>)],
    event: Option<&str>,
    presentity_regex: Option<&str>,
) -> Result<Vec<PresentityRow>> {
    list_presentities_counting(stores, event, presentity_regex, &mut 0)
}

/// [`list_presentities`], adding to `unreadable` the records it skipped because they
/// cannot be read (`herald store check` names them).
pub fn list_presentities_counting(
    stores: &[(u16, Arc<Store>)],
    event: Option<&str>,
    presentity_regex: Option<&str>,
    unreadable: &mut u64,
) -> Result<Vec<PresentityRow>> {
    let re = compile(presentity_regex)?;
    let mut rows = Vec::new();
    for (shard, s) in stores {
        let view = s.live_view()?;
        for item in view.iter_presentities()? {
            let Some((k, v)) = readable(item, unreadable)? else {
                continue;
            };
            if event.is_some_and(|e| e.as_bytes() != k.event)
                || re.as_ref().is_some_and(|re| !re.is_match(k.presentity))
            {
                continue;
            }
            rows.push(PresentityRow {
                shard: *shard,
                presentity: text(k.presentity),
                event: text(k.event),
                etag: text(&v.etag),
                expires_at: v.expires_at.get(),
                received_at: v.received_at.get(),
                content_type: text(&v.content_type),
                body_len: v.body.len(),
            });
        }
    }
    Ok(rows)
}

/// Every subscription dialog, optionally only of `event` and of presentities matching
/// `presentity_regex`.
pub fn list_subscriptions(
    stores: &[(u16, Arc<Store>)],
    event: Option<&str>,
    presentity_regex: Option<&str>,
) -> Result<Vec<SubscriptionRow>> {
    list_subscriptions_counting(stores, event, presentity_regex, &mut 0)
}

/// [`list_subscriptions`], adding to `unreadable` the records it skipped.
pub fn list_subscriptions_counting(
    stores: &[(u16, Arc<Store>)],
    event: Option<&str>,
    presentity_regex: Option<&str>,
    unreadable: &mut u64,
) -> Result<Vec<SubscriptionRow>> {
    let re = compile(presentity_regex)?;
    let mut rows = Vec::new();
    for (shard, s) in stores {
        let view = s.live_view()?;
        for item in view.iter_subscriptions()? {
            let Some((k, v)) = readable(item, unreadable)? else {
                continue;
            };
            if event.is_some_and(|e| e.as_bytes() != v.event.as_slice())
                || re.as_ref().is_some_and(|re| !re.is_match(k.presentity))
            {
                continue;
            }
            rows.push(SubscriptionRow {
                shard: *shard,
                presentity: text(k.presentity),
                dialog_id: text(k.dialog_id),
                watcher: text(&v.from_uri),
                event: text(&v.event),
                event_id: v.event_id.as_ref().map(|b| text(b)),
                call_id: text(&v.call_id),
                from_tag: text(&v.from_tag),
                to_tag: text(&v.to_tag),
                local_cseq: v.local_cseq.to_native(),
                remote_cseq: v.remote_cseq.to_native(),
                contact: text(&v.contact),
                transport: v.transport.get(),
                peer: v.peer.as_socket_addr(),
                route_set_len: v.route_set.len(),
                status: v.status.get(),
                reason: v.reason.as_ref().map(|b| text(b)),
                expires_at: v.expires_at.get(),
                version: v.version.to_native(),
            });
        }
    }
    Ok(rows)
}

fn expires_in(at: UnixMillis, now: UnixMillis) -> String {
    if at <= now {
        "expired".into()
    } else {
        format!("{}s", (at.0 - now.0) / 1000)
    }
}

/// Text table of `list_presentities`, with expiry relative to `now`.
pub fn render_presentities(rows: &[PresentityRow], now: UnixMillis) -> String {
    let mut out = String::new();
    for r in rows {
        let _ = writeln!(
            out,
            "shard={} presentity={} event={} etag={} expires={} content_type={} body={}B",
            r.shard,
            r.presentity,
            r.event,
            r.etag,
            expires_in(r.expires_at, now),
            r.content_type,
            r.body_len
        );
    }
    let _ = writeln!(out, "{} publication(s)", rows.len());
    out
}

/// Text table of `list_subscriptions`.
pub fn render_subscriptions(rows: &[SubscriptionRow], now: UnixMillis) -> String {
    let mut out = String::new();
    for r in rows {
        let _ = writeln!(
            out,
            "shard={} presentity={} watcher={} event={}{} status={}{} expires={} call-id={} from-tag={} to-tag={} \
             cseq(local/remote)={}/{} contact={} via={:?}:{} route-bytes={} version={}",
            r.shard,
            r.presentity,
            r.watcher,
            r.event,
            r.event_id.as_ref().map(|i| format!(";id={i}")).unwrap_or_default(),
            r.status.as_str(),
            r.reason.as_ref().map(|i| format!(";reason={i}")).unwrap_or_default(),
            expires_in(r.expires_at, now),
            r.call_id,
            r.from_tag,
            r.to_tag,
            r.local_cseq,
            r.remote_cseq,
            r.contact,
            r.transport,
            r.peer,
            r.route_set_len,
            r.version
        );
    }
    let _ = writeln!(out, "{} subscription(s)", rows.len());
    out
}

/// What `cleanup` deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub presentities: u64,
    pub subscriptions: u64,
    /// Records whose value could not be read, so whose expiry is unknown: left in place.
    pub unreadable: u64,
}

impl std::fmt::Display for CleanupReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "deleted {} expired publication(s), {} expired subscription(s)",
            self.presentities, self.subscriptions
        )?;
        if self.unreadable > 0 {
            write!(f, "; {}", unreadable_note(self.unreadable))?;
        }
        Ok(())
    }
}

/// What to tell an operator about `n` records that cannot be read.
pub fn unreadable_note(n: u64) -> String {
    format!(
        "{n} record(s) cannot be read and were left as they are: `herald store check` names \
         them, `herald store cleanup --unreadable` on a stopped server deletes them"
    )
}

/// What `cleanup --unreadable` deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnreadableReport {
    /// `(shard, record)` of every deleted record.
    pub deleted: Vec<(u16, crate::tables::Unreadable)>,
}

impl std::fmt::Display for UnreadableReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (shard, u) in &self.deleted {
            writeln!(
                f,
                "shard {shard}: deleted unreadable {} record {} ({})",
                u.table,
                text(&u.key),
                u.detail
            )?;
        }
        write!(f, "deleted {} unreadable record(s)", self.deleted.len())
    }
}

/// Deletes every record, of any table, whose key or value cannot be read (`herald store
/// cleanup --unreadable`; a server skips such publications and dialogs when it loads and
/// serves such XCAP documents as absent: they hold nothing it could use). Found in a read
/// transaction, deleted in one write transaction per shard, each only if it still cannot be
/// read.
pub fn delete_unreadable(stores: &[(u16, Arc<Store>)]) -> Result<UnreadableReport> {
    let mut rep = UnreadableReport::default();
    for (shard, s) in stores {
        let found = {
            let r = s.read_txn()?;
            s.find_unreadable(&r)?
        };
        if found.is_empty() {
            continue;
        }
        let deleted = s.write(|s, w| {
            let mut deleted = Vec::new();
            for u in &found {
                if s.delete_if_unreadable(w, u)? {
                    deleted.push(u.clone());
                }
            }
            Ok(deleted)
        })?;
        rep.deleted.extend(deleted.into_iter().map(|u| (*shard, u)));
    }
    Ok(rep)
}

/// Deletes everything that expired at or before `now`, in transactions of at most
/// [`CLEANUP_BATCH`] deletions.
pub fn cleanup(stores: &[(u16, Arc<Store>)], now: UnixMillis) -> Result<CleanupReport> {
    let mut rep = CleanupReport::default();
    for (_, s) in stores {
        cleanup_store(s, now, &mut rep)?;
    }
    Ok(rep)
}

/// `cleanup` of one environment (also used at shard load): finds what expired by a scan in
/// a read transaction, then deletes it in write transactions of at most [`CLEANUP_BATCH`]
/// (each record only if it still carries the expiry it was found with).
///
/// Deleting also needs free pages (copy-on-write): on a full map a big batch can fail, so
/// the batch halves until it fits — this is how a full store gets its space back.
pub fn cleanup_store(s: &Store, now: UnixMillis, rep: &mut CleanupReport) -> Result<()> {
    let scan = {
        let r = s.read_txn()?;
        s.find_expired(&r, now)?
    };
    rep.unreadable += scan.unreadable;
    delete_expired(s, &scan.expired, rep)
}

/// The write half of [`cleanup_store`], for a caller that found `expired` in its own scan
/// (the shard load reads every record anyway).
pub fn delete_expired(s: &Store, expired: &[Expired], rep: &mut CleanupReport) -> Result<()> {
    let mut batch = CLEANUP_BATCH;
    let mut rest = expired;
    while !rest.is_empty() {
        let chunk = &rest[..batch.min(rest.len())];
        let c = s.write(|s, w| {
            let mut c = CleanupCounts::default();
            for e in chunk {
                if s.delete_if_expired(w, e)? {
                    match e.table {
                        ExpiringTable::Presentity => c.presentities += 1,
                        ExpiringTable::ActiveWatchers => c.subscriptions += 1,
                    }
                }
            }
            Ok(c)
        });
        match c {
            Ok(c) => {
                rep.presentities += c.presentities;
                rep.subscriptions += c.subscriptions;
                rest = &rest[chunk.len()..];
            }
            Err(e) if e.is_map_full() && batch > 1 => batch /= 2,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Result of `check`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub shards: usize,
    pub presentities: u64,
    pub subscriptions: u64,
    pub watchers: u64,
    pub xcap_documents: u64,
    pub subscribers: u64,
    /// Total number of problems found.
    pub problem_count: u64,
    /// Of them, records that cannot be read (the server skips them when it loads).
    pub unreadable: u64,
    /// The first [`MAX_REPORTED_PROBLEMS`] problems, human-readable.
    pub problems: Vec<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.problem_count == 0
    }
    fn problem(&mut self, msg: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_REPORTED_PROBLEMS {
            self.problems.push(msg);
        }
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} shard(s): {} publication(s), {} subscription(s), {} watcher(s), {} xcap document(s), {} subscriber(s)",
            self.shards, self.presentities, self.subscriptions, self.watchers, self.xcap_documents, self.subscribers
        )?;
        for p in &self.problems {
            writeln!(f, "PROBLEM: {p}")?;
        }
        if self.problem_count as usize > self.problems.len() {
            writeln!(
                f,
                "... and {} more",
                self.problem_count as usize - self.problems.len()
            )?;
        }
        if self.unreadable > 0 {
            writeln!(
                f,
                "{} record(s) cannot be read: the server skips them; `herald store cleanup \
                 --unreadable` on a stopped server deletes them",
                self.unreadable
            )?;
        }
        write!(
            f,
            "{}",
            if self.ok() {
                "check OK"
            } else {
                "check FAILED"
            }
        )
    }
}

/// Verifies every record decodes, no two publications of a presentity and event carry the
/// same ETag (a SIP-If-Match must name one), the recorded shard layout is consistent, and
/// (given the shard function) every record lives in its owner shard. Read-only; sees the
/// write-ahead log like the listings.
pub fn check(stores: &[(u16, Arc<Store>)], owner: Option<ShardFn<'_>>) -> Result<CheckReport> {
    check_shards(stores, &[], owner)
}

/// [`check`] of a data directory opened read-only: a shard without tables is a problem
/// (its first open was interrupted; the server creates them on its next start).
pub fn check_read_only(dir: &ReadOnlyDataDir, owner: Option<ShardFn<'_>>) -> Result<CheckReport> {
    check_shards(&dir.stores, &dir.empty, owner)
}

fn check_shards(
    stores: &[(u16, Arc<Store>)],
    empty: &[u16],
    owner: Option<ShardFn<'_>>,
) -> Result<CheckReport> {
    let mut rep = CheckReport {
        shards: stores.len() + empty.len(),
        ..Default::default()
    };
    let n = rep.shards as u16;
    for shard in empty {
        rep.problem(format!(
            "shard {shard}: no tables yet (its first open did not finish; the server \
             creates them on start)"
        ));
    }
    for (shard, s) in stores {
        let shard = *shard;
        let view = s.live_view()?;
        let r = view.txn();
        match s.shard_layout(r)? {
            Some((i, count)) if i == shard && count == n => {}
            other => rep.problem(format!(
                "shard {shard}: recorded layout {other:?}, expected ({shard}, {n})"
            )),
        }
        let place = |rep: &mut CheckReport, table: &str, aor: &[u8]| {
            if let Some(f) = owner {
                let o = f(aor);
                if o != shard {
                    rep.problem(format!(
                        "shard {shard}: {table} record of {} belongs to shard {o}",
                        text(aor)
                    ));
                }
            }
        };
        macro_rules! walk {
            ($iter:expr, $count:expr, $table:expr, |$k:ident, $v:ident| $body:block) => {
                for item in $iter {
                    match item {
                        Ok(($k, $v)) => {
                            $count += 1;
                            place(&mut rep, $table, &$k.owner_aor());
                            $body
                        }
                        Err(e) => {
                            rep.unreadable += u64::from(e.is_unreadable_record());
                            rep.problem(format!("shard {shard}: {e}"))
                        }
                    }
                }
            };
        }
        // Publications of one presentity and event are adjacent in key order.
        let mut group: (Vec<u8>, Vec<u8>) = Default::default();
        let mut etags: Vec<Vec<u8>> = Vec::new();
        walk!(
            view.iter_presentities()?,
            rep.presentities,
            "presentity",
            |k, v| {
                if group.0 != k.presentity || group.1 != k.event {
                    group = (k.presentity.to_vec(), k.event.to_vec());
                    etags.clear();
                }
                if etags.iter().any(|e| e[..] == v.etag[..]) {
                    rep.problem(format!(
                        "shard {shard}: two publications of {} {} carry ETag {}",
                        text(k.presentity),
                        text(k.event),
                        text(&v.etag)
                    ));
                }
                etags.push(v.etag.to_vec());
            }
        );
        walk!(
            view.iter_subscriptions()?,
            rep.subscriptions,
            "active_watchers",
            |_k, _v| {}
        );
        walk!(s.iter_watchers(r)?, rep.watchers, "watchers", |_k, _v| {});
        walk!(s.iter_xcap(r)?, rep.xcap_documents, "xcap", |k, v| {
            // Valid for rkyv but not a tag (a disk fault): the server serves it as absent.
            if v.etag_str().is_none() {
                rep.unreadable += 1;
                rep.problem(format!(
                    "shard {shard}: xcap document {} {} {} has a malformed ETag {:?}",
                    text(k.user),
                    text(k.auid),
                    text(k.document),
                    text(&v.etag)
                ));
            }
        });
        walk!(
            s.iter_subscribers(r)?,
            rep.subscribers,
            "subscriber",
            |_k, _v| {}
        );
    }
    Ok(rep)
}
