//! The vendored glommio's sleep path (`vendor/glommio/HERALD.md`, patches 2 to 4), tested
//! through glommio's public API on real rings: an idle executor's wait is bounded by its
//! next timer (`IORING_ENTER_EXT_ARG`) and really sleeps until then; a datagram still wakes
//! it at once through the ring link, long before a far timer; a signal (herald's watchdog
//! nudge) ends a wait without being counted as a lost wake-up; a busy task is still
//! preempted, again after every yield, now that the preemption timer stays armed. Every
//! bound below is a liveness bound, seconds wide, not a performance figure: what fails is a
//! shard that spins, never wakes, wakes only at its timer, or is never preempted.

use std::net::UdpSocket as StdUdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};

/// CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `f` on a fresh executor (as herald's shards are built: 1 MiB of I/O memory) on its
/// own thread and returns its result.
fn on_executor<T, F, Fut>(f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    on(LocalExecutorBuilder::new(Placement::Unbound), f)
}

/// [`on_executor`] with the caller's builder.
fn on<T, F, Fut>(builder: LocalExecutorBuilder, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    builder
        .io_memory(1 << 20)
        .spawn(f)
        .expect("executor")
        .join()
        .expect("executor thread")
}

/// With nothing but a timer pending, each wait ends at the timer (not before it, and not
/// seconds after it), and the thread sleeps meanwhile instead of polling its rings.
#[test]
fn an_idle_executor_sleeps_until_its_next_timer() {
    let (slept, cpu, misses) = on_executor(|| async {
        let cpu0 = thread_cpu();
        let mut slept = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            glommio::timer::sleep(Duration::from_millis(10)).await;
            slept.push(t.elapsed());
        }
        (
            slept,
            thread_cpu() - cpu0,
            glommio::herald_link_wake_misses(),
        )
    });
    for s in &slept {
        assert!(
            *s >= Duration::from_millis(10),
            "woke before its timer: {s:?}"
        );
        assert!(
            *s < Duration::from_secs(2),
            "woke long after its timer: {s:?}"
        );
    }
    let wall: Duration = slept.iter().sum();
    // 200 ms of timers: a thread that waited in the kernel used a few ms of CPU; one that
    // spun on a zero bound would use about all of it.
    assert!(
        cpu < wall / 2,
        "executor used {cpu:?} CPU over {wall:?} of sleeps"
    );
    assert_eq!(misses, 0);
}

/// A datagram reaches an executor asleep with its next timer 30 s away at once: the ring
/// link (the main ring's poll of the latency ring) woke it, not the bound.
#[test]
fn a_datagram_wakes_an_executor_whose_timer_is_far() {
    let (addr_tx, addr_rx) = mpsc::channel();
    let sender = std::thread::spawn(move || {
        let to: std::net::SocketAddr = addr_rx.recv().expect("executor's address");
        // Long enough for the executor to have gone to sleep.
        std::thread::sleep(Duration::from_millis(200));
        let sock = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let sent = Instant::now();
        sock.send_to(b"wake", to).unwrap();
        sent
    });
    let (received, misses) = on_executor(move || async move {
        glommio::spawn_local(glommio::timer::sleep(Duration::from_secs(30))).detach();
        let sock = glommio::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        addr_tx.send(sock.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = sock.recv_from(&mut buf).await.expect("recv");
        assert_eq!(&buf[..n], b"wake");
        (Instant::now(), glommio::herald_link_wake_misses())
    });
    let sent = sender.join().unwrap();
    let took = received.saturating_duration_since(sent);
    assert!(
        took < Duration::from_secs(5),
        "datagram took {took:?} to wake the executor"
    );
    assert_eq!(misses, 0);
}

extern "C" fn ignore(_: libc::c_int) {}

/// A signal (herald's watchdog sends SIGUSR2) ends the executor's wait early; the executor
/// goes back to sleep, its timer still fires on time, and nothing counts as a lost
/// wake-up, since no completion was waiting.
#[test]
fn a_signal_ends_a_wait_without_counting_a_lost_wake_up() {
    // SAFETY: a zeroed sigaction with a do-nothing handler and an empty mask is valid.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = ignore as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut()), 0);
    }
    let (tid_tx, tid_rx) = mpsc::channel();
    let signalled = Arc::new(AtomicBool::new(false));
    let signaller = {
        let signalled = signalled.clone();
        std::thread::spawn(move || {
            let thread: libc::pthread_t = tid_rx.recv().expect("executor's thread");
            for _ in 0..5 {
                std::thread::sleep(Duration::from_millis(100));
                // SAFETY: the executor thread stays alive until `signalled` is set, and
                // SIGUSR2 has a handler.
                assert_eq!(unsafe { libc::pthread_kill(thread, libc::SIGUSR2) }, 0);
            }
            signalled.store(true, Ordering::SeqCst);
        })
    };
    let (slept, misses) = on_executor(move || async move {
        // SAFETY: pthread_self has no preconditions.
        tid_tx.send(unsafe { libc::pthread_self() }).unwrap();
        let t = Instant::now();
        glommio::timer::sleep(Duration::from_secs(1)).await;
        let slept = t.elapsed();
        // Outlive the signals however slowly the signaller runs.
        while !signalled.load(Ordering::SeqCst) {
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        (slept, glommio::herald_link_wake_misses())
    });
    signaller.join().unwrap();
    assert!(
        slept >= Duration::from_secs(1),
        "timer fired early: {slept:?}"
    );
    assert!(
        slept < Duration::from_secs(5),
        "timer fired late: {slept:?}"
    );
    assert_eq!(misses, 0);
}

/// A task that never awaits anything on its own is still told to yield
/// (`need_preempt`) once the executor's preemption timer fires, and told again after each
/// yield. Patch 4 keeps that timer armed across the executor's loop and arms a new one only
/// once it has fired: if a fired timer were taken for one still armed, the second round
/// would spin until its bound.
#[test]
fn a_busy_task_is_preempted_again_after_each_yield() {
    let builder =
        LocalExecutorBuilder::new(Placement::Unbound).preempt_timer(Duration::from_millis(20));
    let waits = on(builder, || async {
        let mut waits = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            while !glommio::executor().need_preempt() && t.elapsed() < Duration::from_secs(5) {
                std::hint::spin_loop();
            }
            waits.push(t.elapsed());
            glommio::yield_if_needed().await;
        }
        waits
    });
    for (round, w) in waits.iter().enumerate() {
        assert!(
            *w < Duration::from_secs(5),
            "round {round}: not preempted within {w:?} (timer 20 ms): {waits:?}"
        );
    }
}
