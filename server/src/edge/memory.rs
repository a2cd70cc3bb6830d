//! Giving freed heap back to the kernel, and keeping what is resident close to what is live.
//!
//! Why: every SUBSCRIBE leaves a server transaction alive for Timer J (32 s over UDP) next
//! to the subscription it created. After a burst, those transactions end together, but
//! mimalloc (the global allocator of the `herald` binary) only purges pages that became free
//! when the owning thread calls into it again, after `purge_delay`; a shard that went quiet
//! never does, so the process keeps the burst's peak RSS for ever. [`release_freed`], called
//! by each shard once a second, makes that shard's thread heap hand back the free pages
//! whose purge delay ([`configure`], `--heap-purge-delay-ms`) has passed. The delay is not
//! 0: pages freed and needed again within it are reused without a page fault.
//! [`configure`] also turns transparent huge pages off (unless `--transparent-huge-pages`):
//! with them, RSS counts whole 2 MiB pages around a few live objects (see `disable_thp`).
//!
//! Option numbers are those of mimalloc v3 (`mi_option_e` in `mimalloc.h`), which
//! libmimalloc-sys 0.1.49 builds by default but does not name; the `v2` feature is off.

use std::os::raw::c_long;

/// `mi_option_purge_delay`: ms a free page waits before its memory is returned (default 10;
/// 0 = at once, on the next allocator call of its thread).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// `mi_option_arena_purge_mult`: multiplier of `purge_delay` for arena pages (default 10).
const MI_OPTION_ARENA_PURGE_MULT: libmimalloc_sys::mi_option_t = 24;

/// Default of `--heap-purge-delay-ms`: how long a freed page stays mapped for reuse.
///
/// Not 0: purging at once (what herald did before) re-faulted and re-zeroed the pages on
/// the next allocations, since the shards allocate and free on every request: the core
/// bench under herald's allocator settings took 1.29–1.45× the time per SUBSCRIBE→NOTIFY
/// pair (`CORE_TIME=20000,9`, purge delay 0 vs 1,000 ms: ~1,550 vs ~1,190 ns), whose
/// batches free and allocate in bursts. At 100 ms it still took ~1,260 ns. Under steady
/// load (`perf/steps none subscribe 40000`, `80000`) the server's CPU per request was the
/// same either way. A burst's memory still goes back once the shard's periodic
/// [`release_freed`] runs after the delay.
pub const DEFAULT_PURGE_DELAY_MS: u64 = 1000;

/// Sets the allocator options; call once at start, before the shards run.
/// `huge_pages`: leave transparent huge pages to the kernel's policy instead of turning
/// them off for the process. `purge_delay_ms`: see [`DEFAULT_PURGE_DELAY_MS`].
pub fn configure(huge_pages: bool, purge_delay_ms: u64) {
    let delay = c_long::try_from(purge_delay_ms).unwrap_or(c_long::MAX);
    // SAFETY: plain setters of mimalloc's global options, valid at any time.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, delay);
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_PURGE_MULT, 1);
    }
    if !huge_pages {
        disable_thp();
    }
}

/// Turns transparent huge pages off for this process.
///
/// Why: mimalloc advises its arena for huge pages, so the kernel backs a region in 2 MiB
/// pages as soon as it is touched, and a table that grows or a burst that is freed leaves
/// whole huge pages resident around a few live objects. Measured with the core bench
/// (`CORE_MEM=50000`, what one of two shards holds in `perf/compare`): 549 B of RSS per
/// held subscription with huge pages, 347 B without, against 356 B of live heap. mimalloc's
/// own `allow_thp` option is read when its arena is reserved, before `main`, so the
/// process-wide switch is used.
fn disable_thp() {
    // SAFETY: prctl with PR_SET_THP_DISABLE takes integer arguments only and changes a flag
    // of this process; it cannot touch memory.
    let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if r != 0 {
        tracing::warn!(
            "cannot turn transparent huge pages off: {}; memory per subscription will be higher",
            std::io::Error::last_os_error()
        );
    }
}

/// Returns the calling thread's free heap pages to the kernel (cheap when there are none).
/// Harmless when mimalloc is not the global allocator: its heap for this thread is empty.
pub fn release_freed() {
    // SAFETY: `mi_collect` only walks the calling thread's own heap.
    unsafe { libmimalloc_sys::mi_collect(false) }
}
