//! When the UDP receive loop pauses for `--coalesce-us` after a batch.
//!
//! The pause lets the next datagrams gather so one wake-up takes several. It pays only if
//! datagrams come at least about once per pause: a pause that ends on an empty socket is a
//! wake-up spent for nothing, and the loop then waits for the next datagram anyway. At
//! 1,000 SUBSCRIBE/s on 2 shards (~1,000 datagrams a second per shard, 0.25 per 250 µs
//! pause) every datagram cost two wake-ups that way, and the shard used more CPU per call
//! than with `--coalesce-us 0`. So the loop pauses only while the measured arrival rate
//! puts at least [`MIN_EXPECTED_PER_PAUSE`] datagram in a pause; below it, it waits for the
//! next datagram directly, as with `--coalesce-us 0`.

use std::time::{Duration, Instant};

/// How long arrivals are counted before the rate is judged again: short enough to follow a
/// change of load within a few milliseconds, long enough to hold tens of datagrams at the
/// rates where the pause matters.
pub const RATE_WINDOW: Duration = Duration::from_millis(10);

/// Datagrams a pause must be expected to gather, at the measured rate, for the loop to
/// pause: one, i.e. the pause is no longer than the mean gap between arrivals.
pub const MIN_EXPECTED_PER_PAUSE: u32 = 1;

/// Arrival-rate judge of one receive loop.
#[derive(Debug)]
pub struct Coalesce {
    pause: Duration,
    since: Option<Instant>,
    arrived: u64,
    dense: bool,
}

impl Coalesce {
    /// `pause` is `--coalesce-us`; zero never pauses.
    pub fn new(pause: Duration) -> Coalesce {
        Coalesce {
            pause,
            since: None,
            arrived: 0,
            dense: false,
        }
    }

    /// Records a batch of `n` datagrams taken at `now` and says whether to pause before the
    /// next read. The verdict of a window holds for the whole next window.
    pub fn after_batch(&mut self, now: Instant, n: usize) -> Option<Duration> {
        if self.pause.is_zero() {
            return None;
        }
        self.arrived += n as u64;
        match self.since {
            None => self.since = Some(now),
            Some(since) => {
                let elapsed = now.saturating_duration_since(since);
                if elapsed >= RATE_WINDOW {
                    // arrived / elapsed ≥ MIN / pause, without division.
                    self.dense = u128::from(self.arrived) * self.pause.as_nanos()
                        >= u128::from(MIN_EXPECTED_PER_PAUSE) * elapsed.as_nanos();
                    self.since = Some(now);
                    self.arrived = 0;
                }
            }
        }
        self.dense.then_some(self.pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAUSE: Duration = Duration::from_micros(250);

    /// Feeds a batch of `per_batch` datagrams every `gap` for 50 ms from `start` and returns
    /// the last verdict.
    fn steady(
        c: &mut Coalesce,
        start: Instant,
        gap: Duration,
        per_batch: usize,
    ) -> Option<Duration> {
        let mut t = start;
        let mut last = None;
        while t <= start + Duration::from_millis(50) {
            last = c.after_batch(t, per_batch);
            t += gap;
        }
        last
    }

    #[test]
    fn pauses_only_while_a_pause_gathers_a_datagram() {
        let t0 = Instant::now();
        let mut c = Coalesce::new(PAUSE);
        // Cold: no verdict yet, so no pause.
        assert_eq!(c.after_batch(t0, 1), None);
        // 1,000 datagrams/s: 0.25 per pause.
        assert_eq!(steady(&mut c, t0, Duration::from_millis(1), 1), None);
        // 5,000/s: 1.25 per pause.
        let t1 = t0 + Duration::from_millis(60);
        assert_eq!(
            steady(&mut c, t1, Duration::from_micros(200), 1),
            Some(PAUSE)
        );
        // Load drops: within a window or two the loop stops pausing.
        let t2 = t1 + Duration::from_millis(60);
        assert_eq!(steady(&mut c, t2, Duration::from_millis(2), 1), None);
    }

    #[test]
    fn batches_count_every_datagram() {
        let mut c = Coalesce::new(PAUSE);
        // 4 datagrams per batch, a batch per ms: 4,000/s, one per pause.
        assert_eq!(
            steady(&mut c, Instant::now(), Duration::from_millis(1), 4),
            Some(PAUSE)
        );
    }

    #[test]
    fn zero_never_pauses() {
        let mut c = Coalesce::new(Duration::ZERO);
        let t0 = Instant::now();
        for i in 0..100u64 {
            assert_eq!(c.after_batch(t0 + Duration::from_micros(i), 32), None);
        }
    }
}
