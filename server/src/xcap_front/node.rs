//! One shard's XCAP service in the running server: routes each request to the shard that
//! owns the user (`shard_for` of the XUI's AoR; global documents on shard 0), runs
//! `Xcap::handle` there against that shard's documents, commits the writes durably before
//! answering, and feeds the effects to that shard's presence core (the user's SIP state lives
//! on the same shard, so a pidf-manipulation change NOTIFYs watchers without another hop).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};
use xcap::store::{DocKey, DocumentStore};
use xcap::uri::{Scope, UserId, XcapRoot, XcapUri};
use xcap::usage::{Watcher, WatchersSource};
use xcap::{Effect, Outcome, Request, Response, Xcap};

use super::commit::{CommitResult, Committer};
use super::docs::{user_key, ShardDocs};
use super::mesh::{OwnedRequest, PendingReplies, XcapMsg};
use super::service::XcapService;
use crate::core::ShardId;
use crate::edge::shard::{Outbox, Shard};

/// Document whose content becomes the user's presence (RFC 4827: the one document `index`).
pub const PIDF_MANIPULATION_DOC: &str = "index";

pub struct XcapNode {
    pub shard: Rc<Shard>,
    xcap: RefCell<Xcap>,
    docs: ShardDocs,
    /// Present when documents are on LMDB.
    committer: Option<Committer>,
    root: XcapRoot,
    default_realm: String,
    retry_after: u32,
    senders: RefCell<Vec<Option<Rc<ConnectedSender<XcapMsg>>>>>,
    pending: PendingReplies,
}

/// The watcher list of `org.openxcap.watchers`, read from this shard's presence core.
struct CoreWatchers<'a>(&'a Shard);

impl WatchersSource for CoreWatchers<'_> {
    fn watchers(&self, user: &UserId) -> Vec<Watcher> {
        let Ok(aor) = sip_parser::Aor::parse(&user_key(user)) else {
            return Vec::new();
        };
        self.0
            .core
            .borrow()
            .xcap_watchers(&aor)
            .into_iter()
            .map(|(uri, status)| Watcher {
                uri: String::from_utf8_lossy(&uri).into_owned(),
                status: status.to_string(),
            })
            .collect()
    }
}

fn empty(status: u16) -> Response {
    Response {
        status,
        headers: Vec::new(),
        body: Vec::new(),
    }
}

impl XcapNode {
    pub fn new(
        shard: Rc<Shard>,
        xcap: Xcap,
        docs: ShardDocs,
        committer: Option<Committer>,
        retry_after: u32,
    ) -> Self {
        let root = xcap.config().root.clone();
        let default_realm = xcap.config().default_realm.clone();
        XcapNode {
            shard,
            xcap: RefCell::new(xcap),
            docs,
            committer,
            root,
            default_realm,
            retry_after,
            senders: RefCell::new(Vec::new()),
            pending: PendingReplies::default(),
        }
    }

    pub fn set_senders(&self, senders: Vec<Option<ConnectedSender<XcapMsg>>>) {
        *self.senders.borrow_mut() = senders.into_iter().map(|s| s.map(Rc::new)).collect();
    }

    fn id(&self) -> ShardId {
        self.shard.id
    }

    /// The shard that owns the documents `target` names. A target that is not an XCAP URI
    /// is answered (after authentication) where it arrived.
    pub fn owner_of(&self, target: &str) -> ShardId {
        let shards = self.shard.settings.shards;
        match XcapUri::parse(target, &self.root) {
            Ok(mut u) => {
                u.resolve_user(&self.default_realm);
                match &u.scope {
                    Scope::Global => ShardId(0),
                    Scope::User(user) => ShardId(crate::persist::owner_fn(shards)(&user_key(user))),
                }
            }
            Err(_) => self.id(),
        }
    }

    fn overloaded(&self) -> Response {
        let mut r = empty(503);
        r.headers
            .push(("Retry-After", self.retry_after.max(1).to_string()));
        r
    }

    /// Runs a request this shard owns; answers only once its writes are durable.
    pub async fn serve(&self, req: &Request<'_>, now: u64) -> Response {
        let (outcome, staged) = {
            let mut view = self.docs.view();
            let watchers = CoreWatchers(&self.shard);
            let o = self
                .xcap
                .borrow_mut()
                .handle(req, now, &mut view, &watchers);
            (o, view.staged)
        };
        let Outcome { response, effects } = outcome;
        if !staged.is_empty() {
            let Some(c) = &self.committer else {
                // Staging only happens on the LMDB backend, which always has a committer.
                return empty(500);
            };
            match c.commit(&self.docs, staged).await {
                CommitResult::Committed => {}
                CommitResult::Changed => return empty(412),
                CommitResult::Failed(e) => {
                    tracing::warn!(shard = self.id().0, error = %e, "XCAP write not stored");
                    return self.overloaded();
                }
            }
        }
        if !effects.is_empty() {
            self.apply_effects(&effects).await;
        }
        response
    }

    async fn serve_owned(&self, req: OwnedRequest) -> Response {
        let headers: Vec<(&str, &[u8])> = req
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        let r = Request {
            method: &req.method,
            target: &req.target,
            headers: &headers,
            body: &req.body,
            trusted: req.trusted,
        };
        self.serve(&r, req.now).await
    }

    /// Hands the request to its owner and waits for the answer; 503 when its queue is full.
    async fn forward(&self, owner: ShardId, req: &Request<'_>, now: u64) -> Response {
        let tx = self
            .senders
            .borrow()
            .get(owner.0 as usize)
            .cloned()
            .flatten();
        let Some(tx) = tx else {
            return self.overloaded();
        };
        let id = self.pending.register();
        let job = XcapMsg::Job {
            id,
            req: Box::new(OwnedRequest::from_request(req, now)),
        };
        if tx.try_send(job).is_err() {
            self.pending.cancel(id);
            return self.overloaded();
        }
        self.pending.wait(id).await
    }

    /// Passes document changes to the presence core of this (the owning) shard, then sends
    /// what the core produced (NOTIFYs).
    async fn apply_effects(&self, effects: &[Effect]) {
        let now = self.shard.clock.now();
        for e in effects {
            match e {
                Effect::PidfManipulationChanged { user } => {
                    let Ok(aor) = sip_parser::Aor::parse(&user_key(user)) else {
                        continue;
                    };
                    let key = DocKey {
                        auid: "pidf-manipulation".to_string(),
                        scope: Scope::User(user.clone()),
                        path: PIDF_MANIPULATION_DOC.to_string(),
                    };
                    let doc = self.docs.view().get(&key).ok().flatten();
                    let r = self.shard.core.borrow_mut().handle_xcap_pidf(
                        now,
                        &aor,
                        doc.as_ref().map(|d| d.bytes.as_slice()),
                    );
                    if let Err(e) = r {
                        tracing::warn!(user = %user, error = %e, "pidf-manipulation not applied to the presentity");
                    }
                }
                Effect::PresRulesChanged { user } => {
                    if let Ok(aor) = sip_parser::Aor::parse(&user_key(user)) {
                        self.shard
                            .core
                            .borrow_mut()
                            .handle_xcap_pres_rules(now, &aor);
                    }
                }
                Effect::ResourceListsChanged { .. } | Effect::RlsServicesChanged { .. } => {}
            }
        }
        let mut out = Outbox::new();
        self.shard.flush(&mut out).await;
    }

    /// Serves the XCAP queue from shard `from`: jobs run here, replies complete waiters.
    pub async fn receive_loop(self: Rc<Self>, from: usize, rx: ConnectedReceiver<XcapMsg>) {
        while let Some(msg) = rx.recv().await {
            match msg {
                XcapMsg::Job { id, req } => {
                    let node = self.clone();
                    glommio::spawn_local(async move {
                        let resp = node.serve_owned(*req).await;
                        let tx = node.senders.borrow().get(from).cloned().flatten();
                        if let Some(tx) = tx {
                            let _ = tx
                                .send(XcapMsg::Reply {
                                    id,
                                    resp: Box::new(resp),
                                })
                                .await;
                        }
                    })
                    .detach();
                }
                XcapMsg::Reply { id, resp } => self.pending.complete(id, *resp),
            }
        }
    }
}

impl XcapService for XcapNode {
    fn handle<'a>(
        &'a self,
        req: Request<'a>,
        now: u64,
    ) -> Pin<Box<dyn Future<Output = Outcome> + 'a>> {
        Box::pin(async move {
            let owner = self.owner_of(req.target);
            let response = if owner == self.id() {
                self.serve(&req, now).await
            } else {
                self.forward(owner, &req, now).await
            };
            Outcome {
                response,
                effects: Vec::new(),
            }
        })
    }
}
