//! Wakes a shard whose executor stopped making progress.
//!
//! Why: in closed-loop load runs (about one run in ten of `perf/durability`'s PUBLISH
//! scenario on this project's 2-core VM, kernel 6.18) a shard's executor went to sleep in
//! `io_uring_enter` and stayed there: its 50 ms housekeeping timer and the datagrams
//! queueing on its socket (dropped once the buffer filled) did not wake it, its CPU time
//! stood still, and its watchers' requests timed out for as long as the run lasted. The
//! same kind of wedge is reported for other io_uring runtimes that sleep on a timeout
//! (timeouts completed but the waiter not woken). A signal interrupts the wait
//! (`EINTR`, which glommio treats as "look again"), and the executor then finds its
//! completions. So every shard beats a heartbeat on each batch it sends and from a timer
//! task spawned first thing, and the main thread signals a shard whose heartbeat is older
//! than [`WEDGED_AFTER`] and whose thread sleeps, logging it and counting it
//! (`watchdog_nudges` in `/stats`). Start-up and the drain at stop are watched too: with a
//! 1 ms preempt timer the wedge struck while shards connected their mesh.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

use super::stats::{EdgeCounters, ShardStats};

/// A shard whose heartbeat is older than this is nudged. An idle shard beats every
/// [`BEAT_EVERY`] from a timer task; a busy one also beats on every batch it sends (a
/// saturated receive loop may hold its executor until glommio's 100 ms preemption, but it
/// beats meanwhile); a stopped one misses four timer beats. The bound is what a wedge
/// costs: 200 ms before (a 216 ms stall cost a 4 s rate step of `perf/compare` 7% of its
/// rate), now under a retransmission interval (T1 = 500 ms) with room to spare. Nudging a
/// shard that is merely slow is harmless: its interrupted system calls are retried.
pub const WEDGED_AFTER: Duration = Duration::from_millis(80);

/// How often a shard's heartbeat task beats, and the main thread checks.
pub const BEAT_EVERY: Duration = Duration::from_millis(20);

/// `beat_ms` while the shard runs deliberate synchronous work (loading its partition,
/// the final commit): not a wedge, and a signal would not shorten it.
const PAUSED: u64 = u64::MAX;

/// The signal that interrupts a shard's wait. Its handler does nothing.
const NUDGE_SIGNAL: libc::c_int = libc::SIGUSR2;

/// Whether [`install`] succeeded: without the handler the signal would end the process.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// One shard's liveness, written by the shard, read by the main thread.
#[derive(Debug, Default)]
pub struct Heartbeat {
    /// Kernel thread id of the shard's executor (0 until it runs).
    tid: AtomicI32,
    /// Set when the shard's executor has returned (or unwound): the main thread stops
    /// watching it and joins it.
    finished: AtomicBool,
    /// [`now_ms`] at the last beat.
    beat_ms: AtomicU64,
}

/// Milliseconds of `CLOCK_MONOTONIC_COARSE`: the receive path beats on every batch, and
/// this clock costs a few nanoseconds (no TSC read); its tick (1–4 ms) is far below
/// [`WEDGED_AFTER`].
fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given; this clock id always exists
    // on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

impl Heartbeat {
    /// Called from the shard's own thread: records it and beats.
    pub fn start(&self) {
        // SAFETY: gettid has no preconditions.
        self.tid.store(unsafe { libc::gettid() }, Ordering::Relaxed);
        self.beat();
    }

    pub fn beat(&self) {
        self.beat_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Called from the shard's thread before synchronous work that keeps its executor
    /// busy for long (no timer task runs meanwhile); the next [`Heartbeat::beat`] ends it.
    pub fn pause(&self) {
        self.beat_ms.store(PAUSED, Ordering::Relaxed);
    }

    /// A guard that marks the shard finished when dropped, also when its thread unwinds,
    /// so the main thread never waits on a shard that will not beat again.
    pub fn finish_on_drop(&self) -> FinishGuard<'_> {
        FinishGuard(self)
    }

    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// The last beat ([`now_ms`]): tells one silence
    /// from the next, so each is logged once however often it is nudged.
    fn last_beat(&self) -> u64 {
        self.beat_ms.load(Ordering::Relaxed)
    }

    /// Called by the main thread: signals the shard if its last beat is older than
    /// `after`. Returns how long it had been silent when it was nudged.
    pub fn nudge_if_silent(&self, after: Duration, nudges: &AtomicU64) -> Option<Duration> {
        let tid = self.tid.load(Ordering::Relaxed);
        if tid == 0 || self.is_finished() || !INSTALLED.load(Ordering::Relaxed) {
            return None;
        }
        let last = self.beat_ms.load(Ordering::Relaxed);
        if last == PAUSED {
            return None;
        }
        let silent = Duration::from_millis(now_ms().saturating_sub(last));
        if silent < after || !asleep(tid) {
            // A silent shard that is running (or waiting for a core) is slow or starved,
            // not wedged: a signal would not help it.
            return None;
        }
        // SAFETY: signals a thread of this process with a signal whose handler
        // (`install`) does nothing; a thread that exited makes it fail with ESRCH.
        let rc = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, NUDGE_SIGNAL) };
        if rc != 0 {
            return None;
        }
        EdgeCounters::inc(nudges);
        Some(silent)
    }
}

/// Whether thread `tid` of this process sleeps interruptibly (state `S` in
/// `/proc/self/task/<tid>/stat`), as a wedged executor does in `io_uring_enter`. Read only
/// for a shard already silent past [`WEDGED_AFTER`], so its cost does not matter.
fn asleep(tid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
        .ok()
        .and_then(|st| {
            let after_comm = &st[st.rfind(')')? + 1..];
            after_comm.split_whitespace().next().map(|s| s == "S")
        })
        .unwrap_or(false)
}

/// Marks its shard finished when dropped: [`Heartbeat::finish_on_drop`].
pub struct FinishGuard<'a>(&'a Heartbeat);

impl Drop for FinishGuard<'_> {
    fn drop(&mut self) {
        self.0.finished.store(true, Ordering::Release);
    }
}

/// Beats `hb` every [`BEAT_EVERY`] for as long as the executor runs. Spawned first
/// thing on each shard, so the watchdog covers start-up (mesh connects, the
/// persistence driver) and the drain at stop as well as serving.
pub async fn beat_forever(hb: std::sync::Arc<ShardStats>) {
    loop {
        glommio::timer::sleep(BEAT_EVERY).await;
        hb.heartbeat.beat();
        // Counted by glommio per thread: this task runs on the shard's own.
        hb.edge
            .sleep_link_misses
            .store(glommio::herald_link_wake_misses(), Ordering::Relaxed);
    }
}

/// The main thread's side: nudges every silent shard, logging each silence once (a shard
/// that stays silent is nudged every round).
pub struct Watch {
    /// Per shard, the beat its logged silence started from.
    logged: Vec<Option<u64>>,
}

impl Watch {
    pub fn new(shards: usize) -> Watch {
        Watch {
            logged: vec![None; shards],
        }
    }

    pub fn check(&mut self, shards: &[std::sync::Arc<ShardStats>]) {
        for (i, (sh, logged)) in shards.iter().zip(&mut self.logged).enumerate() {
            let beat = sh.heartbeat.last_beat();
            let Some(silent) = sh
                .heartbeat
                .nudge_if_silent(WEDGED_AFTER, &sh.edge.watchdog_nudges)
            else {
                continue;
            };
            if *logged != Some(beat) {
                *logged = Some(beat);
                tracing::warn!(
                    shard = i,
                    silent_ms = silent.as_millis() as u64,
                    "shard made no progress; interrupted its executor's wait"
                );
            }
        }
    }
}

extern "C" fn ignore(_: libc::c_int) {}

/// Installs the do-nothing handler of [`NUDGE_SIGNAL`] (without `SA_RESTART`, so the
/// signal interrupts a sleeping `io_uring_enter`). Call once, before the shards start.
pub fn install() -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction with a plain handler and an empty mask is valid; the
    // handler is async-signal-safe (it does nothing).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = ignore as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = 0;
        if libc::sigaction(NUDGE_SIGNAL, &sa, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    INSTALLED.store(true, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Deliberate synchronous work (`pause`), a running thread and a finished shard are
    /// never nudged.
    #[test]
    fn paused_and_finished_shards_are_left_alone() {
        install().unwrap();
        let hb = Heartbeat::default();
        let nudges = AtomicU64::new(0);
        hb.start();
        hb.pause();
        assert_eq!(hb.nudge_if_silent(Duration::ZERO, &nudges), None);
        hb.beat();
        // This thread is running, not asleep: slow or starved, not wedged.
        assert_eq!(hb.nudge_if_silent(Duration::ZERO, &nudges), None);
        drop(hb.finish_on_drop());
        assert!(hb.is_finished());
        assert_eq!(hb.nudge_if_silent(Duration::ZERO, &nudges), None);
        assert_eq!(nudges.load(Ordering::Relaxed), 0);
    }

    /// A thread asleep in a system call (here `poll` with a 20 s timeout, like an executor
    /// parked in `io_uring_enter`) is woken by the nudge with `EINTR`, and the nudge is
    /// counted; a thread that beat recently is left alone.
    #[test]
    fn a_silent_thread_is_interrupted_and_counted() {
        install().unwrap();
        let hb = Arc::new(Heartbeat::default());
        let nudges = AtomicU64::new(0);
        let (tx, rx) = std::sync::mpsc::channel();
        let sleeper = {
            let hb = hb.clone();
            std::thread::spawn(move || {
                hb.start();
                tx.send(()).unwrap();
                let started = std::time::Instant::now();
                // SAFETY: poll with no descriptors is a plain sleep.
                let rc = unsafe { libc::poll(std::ptr::null_mut(), 0, 20_000) };
                let err = std::io::Error::last_os_error().raw_os_error();
                (rc, err, started.elapsed())
            })
        };
        rx.recv().unwrap();
        assert_eq!(hb.nudge_if_silent(Duration::from_secs(60), &nudges), None);
        assert_eq!(nudges.load(Ordering::Relaxed), 0);
        let mut woke = None;
        for _ in 0..200 {
            std::thread::sleep(Duration::from_millis(20));
            hb.nudge_if_silent(Duration::ZERO, &nudges);
            std::thread::sleep(Duration::from_millis(20));
            if sleeper.is_finished() {
                woke = Some(sleeper.join().unwrap());
                break;
            }
        }
        let (rc, err, slept) = woke.expect("the sleeping thread was not woken");
        assert_eq!((rc, err), (-1, Some(libc::EINTR)));
        assert!(slept < Duration::from_secs(20));
        assert!(nudges.load(Ordering::Relaxed) >= 1);
    }
}
