//! Per-shard counters, plain integers so the edge can copy them out while running.

use std::fmt;

/// Counters of one shard's core. Cheap to copy; `Display` prints `name=value` pairs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub rx_requests: u64,
    pub rx_responses: u64,
    pub rx_subscribe: u64,
    pub rx_publish: u64,
    pub rx_notify: u64,
    pub rx_options: u64,
    pub rx_other: u64,
    pub rx_retransmissions: u64,
    pub rx_dropped: u64,
    pub rx_stray_responses: u64,
    pub tx_responses: u64,
    pub tx_2xx: u64,
    pub tx_4xx: u64,
    pub tx_5xx: u64,
    pub tx_6xx: u64,
    /// The refusals an operator looks for by code (each also counted in its class above):
    /// malformed requests, policy, negotiation, expiry bounds, stale dialogs and ETags,
    /// loops, unknown packages, full tables.
    pub tx_400: u64,
    pub tx_403: u64,
    pub tx_405: u64,
    pub tx_406: u64,
    pub tx_412: u64,
    pub tx_415: u64,
    pub tx_423: u64,
    pub tx_481: u64,
    pub tx_483: u64,
    pub tx_489: u64,
    pub tx_500: u64,
    pub tx_503: u64,
    pub notify_sent: u64,
    pub notify_retransmitted: u64,
    /// Timer E retransmissions not queued because the previous one had not been sent yet:
    /// the shard was behind on timer output (answers to requests go first).
    pub notify_retransmits_merged: u64,
    pub notify_failed: u64,
    pub notify_coalesced: u64,
    /// TCP NOTIFYs sent again on a fresh connection after theirs dropped (conn_lost.rs).
    pub notify_resent_after_conn_loss: u64,
    /// TCP NOTIFYs ended with 408 after a connection loss: the fresh connection could not
    /// be dialled, or the resends ran out.
    pub notify_failed_after_conn_loss: u64,
    /// UDP NOTIFYs ended at once by an ICMP error naming them (unreachable.rs) instead of
    /// retransmitted until Timer F.
    pub notify_unreachable: u64,
    pub subscriptions: u64,
    pub presentities: u64,
    pub publications: u64,
    pub subscriptions_expired: u64,
    pub publications_expired: u64,
    pub server_tx_evicted: u64,
    pub misrouted: u64,
    pub pending_transmits: u64,
    pub pending_persist: u64,
}

impl Stats {
    /// Counts a response sent with `code` in its class and, for the refusals that have one,
    /// in its own counter.
    pub fn count_code(&mut self, code: u16) {
        match code {
            200..=299 => self.tx_2xx += 1,
            400..=499 => self.tx_4xx += 1,
            500..=599 => self.tx_5xx += 1,
            600..=699 => self.tx_6xx += 1,
            _ => {}
        }
        let own = match code {
            400 => &mut self.tx_400,
            403 => &mut self.tx_403,
            405 => &mut self.tx_405,
            406 => &mut self.tx_406,
            412 => &mut self.tx_412,
            415 => &mut self.tx_415,
            423 => &mut self.tx_423,
            481 => &mut self.tx_481,
            483 => &mut self.tx_483,
            489 => &mut self.tx_489,
            500 => &mut self.tx_500,
            503 => &mut self.tx_503,
            _ => return,
        };
        *own += 1;
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        macro_rules! fields {
            ($($n:ident),*) => {{
                let mut first = true;
                $(
                    if !first { f.write_str(" ")?; }
                    first = false;
                    write!(f, concat!(stringify!($n), "={}"), self.$n)?;
                )*
                let _ = first;
                Ok(())
            }};
        }
        fields!(
            rx_requests,
            rx_responses,
            rx_subscribe,
            rx_publish,
            rx_notify,
            rx_options,
            rx_other,
            rx_retransmissions,
            rx_dropped,
            rx_stray_responses,
            tx_responses,
            tx_2xx,
            tx_4xx,
            tx_5xx,
            tx_6xx,
            tx_400,
            tx_403,
            tx_405,
            tx_406,
            tx_412,
            tx_415,
            tx_423,
            tx_481,
            tx_483,
            tx_489,
            tx_500,
            tx_503,
            notify_sent,
            notify_retransmitted,
            notify_retransmits_merged,
            notify_failed,
            notify_coalesced,
            notify_resent_after_conn_loss,
            notify_failed_after_conn_loss,
            notify_unreachable,
            subscriptions,
            presentities,
            publications,
            subscriptions_expired,
            publications_expired,
            server_tx_evicted,
            misrouted,
            pending_transmits,
            pending_persist
        )
    }
}
