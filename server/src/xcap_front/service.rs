//! What the connection loop calls for each request.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;

use xcap::store::DocumentStore;
use xcap::usage::WatchersSource;
use xcap::{Effect, Outcome, Request, Xcap};

/// Serves one XCAP request. Async so an implementation can hand the request to the shard
/// that owns the user and await its answer; the request borrows the receive buffer, which
/// stays untouched until the future completes.
pub trait XcapService {
    fn handle<'a>(
        &'a self,
        req: Request<'a>,
        now: u64,
    ) -> Pin<Box<dyn Future<Output = Outcome> + 'a>>;
}

/// `Xcap` on this shard's store, effects passed to `on_effect` (e.g. to the presence core).
pub struct LocalXcap<S, W> {
    pub xcap: RefCell<Xcap>,
    pub store: RefCell<S>,
    pub watchers: W,
    pub on_effect: Box<dyn Fn(&Effect)>,
}

impl<S: DocumentStore, W: WatchersSource> LocalXcap<S, W> {
    pub fn new(xcap: Xcap, store: S, watchers: W, on_effect: Box<dyn Fn(&Effect)>) -> Self {
        LocalXcap {
            xcap: RefCell::new(xcap),
            store: RefCell::new(store),
            watchers,
            on_effect,
        }
    }

    /// Synchronous form, for callers already on the owning shard.
    pub fn handle_now(&self, req: &Request<'_>, now: u64) -> Outcome {
        let outcome =
            self.xcap
                .borrow_mut()
                .handle(req, now, &mut *self.store.borrow_mut(), &self.watchers);
        for e in &outcome.effects {
            (self.on_effect)(e);
        }
        outcome
    }
}

impl<S: DocumentStore, W: WatchersSource> XcapService for LocalXcap<S, W> {
    fn handle<'a>(
        &'a self,
        req: Request<'a>,
        now: u64,
    ) -> Pin<Box<dyn Future<Output = Outcome> + 'a>> {
        let out = self.handle_now(&req, now);
        Box::pin(std::future::ready(out))
    }
}
