//! Non-INVITE client transaction for our NOTIFYs (RFC 3261 §17.1.2).
//!
//! At most one per subscription dialog, so it lives inside the subscription; its Via
//! branch encodes the dialog id and CSeq, so a response finds it without a lookup table.
//! Timer E retransmits over UDP (T1 doubling to T2; T2 once Proceeding), Timer F (64·T1)
//! gives up on both transports. Timer K is implicit: once a final response arrives the
//! transaction is gone and late retransmitted responses no longer match the branch's
//! CSeq, so they are absorbed (counted as stray) without holding the dialog's next NOTIFY
//! back for T4.

use crate::core::subscription::TermReason;
use crate::core::Instant;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxState {
    Trying,
    Proceeding,
}

/// What the single timer of a transaction does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxFire {
    /// Timer E: send the stored request again; re-arm at the returned instant.
    Retransmit(Instant),
    /// Early wake-up (the schedule moved): just re-arm at the returned instant.
    Rearm(Instant),
    /// Timer F: the transaction timed out.
    Timeout,
}

/// The `Subscription-State` a NOTIFY carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateLine {
    Active { expires: u32 },
    Pending { expires: u32 },
    Terminated(TermReason),
}

/// What a NOTIFY said beyond its dialog's fixed strings, so that Timer E and a lost
/// connection send it again byte for byte (`notify::write_notify` of the dialog and this)
/// without a copy of every NOTIFY in flight: that copy cost ~500 B of fresh memory, an
/// allocation and a memcpy per NOTIFY, 7–10% of a SUBSCRIBE pair in the core bench, and
/// one per watcher on a fan-out, where the shared body is now one reference count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyContent {
    pub state: StateLine,
    /// The body as it was (a later PUBLISH replaces the presentity's, not this).
    pub body: Option<Arc<[u8]>>,
    /// The Request-URI it was sent to, kept only when a target refresh moved the dialog's
    /// Contact while it was in flight: a retransmission is the same request.
    pub old_contact: Option<Box<[u8]>>,
}

#[derive(Debug)]
pub struct NotifyTx {
    pub cseq: u32,
    pub state: TxState,
    /// Current Timer E interval; 0 = reliable transport, no retransmission.
    pub interval_ms: u64,
    pub next_e: Instant,
    pub deadline_f: Instant,
    /// What the NOTIFY said: it is written again from this for Timer E over UDP, and when
    /// its TCP connection drops (`core::conn_lost`).
    pub content: NotifyContent,
    /// This NOTIFY says `terminated`: the dialog ends with this transaction.
    pub is_final: bool,
    /// A Timer E retransmission of it waits in the core's background queue, not yet
    /// written: the next Timer E finds it there and does not queue another (see
    /// `Core::on_notify_timer`).
    pub resend_queued: bool,
}

impl NotifyTx {
    pub fn new(
        now: Instant,
        cseq: u32,
        reliable: bool,
        t1_ms: u64,
        content: NotifyContent,
        is_final: bool,
    ) -> NotifyTx {
        let interval_ms = if reliable { 0 } else { t1_ms.max(1) };
        NotifyTx {
            cseq,
            state: TxState::Trying,
            interval_ms,
            next_e: now.add_millis(interval_ms),
            deadline_f: now.add_millis(64 * t1_ms.max(1)),
            content,
            is_final,
            resend_queued: false,
        }
    }

    /// Over a reliable transport (TCP): no Timer E, and the NOTIFY's Via says TCP.
    pub fn reliable(&self) -> bool {
        self.interval_ms == 0
    }

    /// When the transaction's one timer must fire next.
    pub fn deadline(&self) -> Instant {
        if self.interval_ms == 0 {
            self.deadline_f
        } else {
            self.next_e.min(self.deadline_f)
        }
    }

    /// A provisional response: Timer E continues at T2 (§17.1.2.2).
    pub fn on_provisional(&mut self, now: Instant, t2_ms: u64) {
        if self.state == TxState::Trying && self.interval_ms != 0 {
            self.interval_ms = t2_ms;
            self.next_e = now.add_millis(t2_ms);
        }
        self.state = TxState::Proceeding;
    }

    /// The timer fired at `now`.
    pub fn on_timer(&mut self, now: Instant, t2_ms: u64) -> TxFire {
        if now >= self.deadline_f {
            return TxFire::Timeout;
        }
        if self.interval_ms == 0 || now < self.next_e {
            return TxFire::Rearm(self.deadline());
        }
        self.interval_ms = match self.state {
            TxState::Trying => (self.interval_ms * 2).min(t2_ms),
            TxState::Proceeding => t2_ms,
        };
        self.next_e = now.add_millis(self.interval_ms);
        TxFire::Retransmit(self.deadline())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content() -> NotifyContent {
        NotifyContent {
            state: StateLine::Terminated(TermReason::Timeout),
            body: None,
            old_contact: None,
        }
    }

    #[test]
    fn udp_timer_e_doubles_to_t2_then_f() {
        let mut tx = NotifyTx::new(Instant(0), 1, false, 500, content(), false);
        let mut at = tx.deadline();
        let mut sends = Vec::new();
        loop {
            match tx.on_timer(at, 4000) {
                TxFire::Retransmit(next) => {
                    sends.push(at.0);
                    at = next;
                }
                TxFire::Rearm(_) => panic!("no early wake-ups here"),
                TxFire::Timeout => break,
            }
        }
        assert_eq!(at, Instant(32_000));
        assert_eq!(&sends[..6], &[500, 1500, 3500, 7500, 11_500, 15_500]);
        assert_eq!(*sends.last().unwrap(), 31_500);
    }

    #[test]
    fn tcp_never_retransmits() {
        let mut tx = NotifyTx::new(Instant(0), 1, true, 500, content(), false);
        assert_eq!(tx.deadline(), Instant(32_000));
        assert_eq!(tx.on_timer(Instant(32_000), 4000), TxFire::Timeout);
    }

    #[test]
    fn provisional_switches_to_t2() {
        let mut tx = NotifyTx::new(Instant(0), 1, false, 500, content(), false);
        tx.on_provisional(Instant(100), 4000);
        assert_eq!(tx.deadline(), Instant(4100));
        assert_eq!(
            tx.on_timer(Instant(500), 4000),
            TxFire::Rearm(Instant(4100))
        );
        assert_eq!(
            tx.on_timer(Instant(4100), 4000),
            TxFire::Retransmit(Instant(8100))
        );
    }
}
