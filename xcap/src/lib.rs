//! XCAP (RFC 4825) server logic for herald, sans-IO.
//!
//! The server hands `Xcap::handle` one framed HTTP request (see `http` for the codec), the
//! current time, a `DocumentStore` and a `WatchersSource`; it gets back the response to write
//! and the `Effect`s to route to the presence core. Nothing here does IO or keeps per-request
//! state between calls, so every rule is tested without sockets.
//!
//! Request path, in order: auth (`auth`) → URI (`uri`) → application usage (`usage`) →
//! access → preconditions (`etag`) → node selector (`selector`, `select`) → splice
//! (`splice`) → hostile-XML bounds (`xml`) → schema (`schema`) → usage constraints → store.

pub mod auth;
pub mod error;
pub mod etag;
pub mod fuzz_checks;
mod handler;
pub mod http;
pub mod schema;
pub mod select;
pub mod selector;
pub mod splice;
pub mod store;
pub mod uri;
pub mod usage;
pub mod xml;

pub use handler::{Config, Outcome, Request, Response, Xcap};

use uri::UserId;

/// Something the presence core must act on after a successful write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The user's pidf-manipulation document changed: recompose the presentity's state and
    /// NOTIFY its watchers.
    PidfManipulationChanged { user: UserId },
    /// The user's (OMA) pres-rules changed: refresh authorization of their watchers.
    PresRulesChanged { user: UserId },
    /// The user's resource-lists changed (RLS lists may reference them).
    ResourceListsChanged { user: UserId },
    /// The user's rls-services changed: the RLS service table must be reloaded.
    RlsServicesChanged { user: UserId },
}
