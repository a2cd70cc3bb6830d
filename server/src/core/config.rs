//! Tunables of one shard's core. Defaults match the CLI defaults (and OpenSIPS presence).

use sip_parser::Limits;

/// Every bound and knob of the core, each a CLI flag at the edge.
#[derive(Clone, Debug)]
pub struct Config {
    /// Contact in 2xx and NOTIFY, e.g. `sip:127.0.0.1:5060` (OpenSIPS `server_address`).
    pub server_address: Vec<u8>,
    /// Empty = serve every domain; otherwise SUBSCRIBE/PUBLISH for other domains get 403.
    pub local_domains: Vec<Vec<u8>>,
    pub max_expires_subscribe: u32,
    pub max_expires_publish: u32,
    /// 423 + Min-Expires below it (Expires: 0 is always allowed: fetch / unsubscribe / remove).
    pub min_expires: u32,
    /// Extra seconds a record is kept after it expires (OpenSIPS `expires_offset`).
    pub expires_offset: u32,
    /// Seconds between expiry sweeps. Kept for CLI compatibility: the core arms one timer per
    /// record instead of sweeping, so this is not needed for correctness.
    pub clean_period: u32,
    /// Report a presentity without publication as `closed` instead of sending no body.
    pub notify_offline_body: bool,
    /// A 408 or Timer F on a NOTIFY ends the subscription.
    pub end_sub_on_timeout: bool,
    /// A SUBSCRIBE whose Accept does not admit the package's body type gets 406.
    pub check_accept: bool,
    pub t1_ms: u64,
    pub t2_ms: u64,
    pub t4_ms: u64,
    pub max_subscriptions_per_presentity: usize,
    pub max_subscriptions: usize,
    pub max_presentities: usize,
    pub max_publications: usize,
    pub limits: Limits,
    /// 2xx to PUBLISH/SUBSCRIBE (and the NOTIFYs they cause) are held until
    /// [`super::Core::handle_persisted`] confirms their [`super::PersistOp`] (issue 4).
    pub durability_gate: bool,
    /// Produce [`super::PersistOp`]s at all (false: memory only, `poll_persist` yields nothing).
    pub persist: bool,
    /// Server transactions remembered to absorb retransmissions (Timer J window), oldest
    /// evicted first when full.
    pub max_server_transactions: usize,
    /// Outgoing messages queued before requests are refused with 503.
    pub max_pending_transmits: usize,
    /// Persist ops not yet drained by the edge before state-changing requests get 500.
    pub max_pending_persist: usize,
    /// A restored subscription gets a NOTIFY with the current state, so a change whose
    /// NOTIFY was lost in a crash still reaches the watcher (like OpenSIPS refreshWatchers).
    pub notify_on_restore: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server_address: b"sip:127.0.0.1:5060".to_vec(),
            local_domains: Vec::new(),
            max_expires_subscribe: 3600,
            max_expires_publish: 3600,
            min_expires: 60,
            expires_offset: 0,
            clean_period: 100,
            notify_offline_body: false,
            end_sub_on_timeout: true,
            check_accept: true,
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            max_subscriptions_per_presentity: 1024,
            max_subscriptions: 1 << 20,
            max_presentities: 1 << 20,
            max_publications: 1 << 20,
            limits: Limits::default(),
            durability_gate: false,
            persist: false,
            max_server_transactions: 1 << 17,
            max_pending_transmits: 1 << 16,
            max_pending_persist: 1 << 16,
            notify_on_restore: true,
        }
    }
}
