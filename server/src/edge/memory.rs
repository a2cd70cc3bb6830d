//! Giving freed heap back to the kernel.
//!
//! Why: every SUBSCRIBE leaves a server transaction alive for Timer J (32 s over UDP) next
//! to the subscription it created. After a burst, those transactions end together, but
//! mimalloc (the global allocator of the `herald` binary) only purges pages that became free
//! when the owning thread calls into it again, after `purge_delay`; a shard that went quiet
//! never does, so the process keeps the burst's peak RSS for ever. [`configure`] purges at
//! once, and [`release_freed`], called by each idle shard now and then, makes that shard's
//! thread heap hand its free pages back.
//!
//! Option numbers are those of mimalloc v3 (`mi_option_e` in `mimalloc.h`), which
//! libmimalloc-sys 0.1.49 builds by default but does not name; the `v2` feature is off.

use std::os::raw::c_long;

/// `mi_option_purge_delay`: ms a free page waits before its memory is returned (default 10;
/// 0 = at once, on the next allocator call of its thread).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// `mi_option_arena_purge_mult`: multiplier of `purge_delay` for arena pages (default 10).
const MI_OPTION_ARENA_PURGE_MULT: libmimalloc_sys::mi_option_t = 24;

/// Purge free pages on the owning thread's next allocator call instead of 10–100 ms later:
/// the shards allocate and free on every request, so waiting buys little reuse.
const PURGE_DELAY_MS: c_long = 0;

/// Sets the allocator options; call once at start, before the shards run.
pub fn configure() {
    // SAFETY: plain setters of mimalloc's global options, valid at any time.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_PURGE_MULT, 1);
    }
}

/// Returns the calling thread's free heap pages to the kernel (cheap when there are none).
/// Harmless when mimalloc is not the global allocator: its heap for this thread is empty.
pub fn release_freed() {
    // SAFETY: `mi_collect` only walks the calling thread's own heap.
    unsafe { libmimalloc_sys::mi_collect(false) }
}
