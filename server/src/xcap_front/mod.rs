//! The XCAP front: HTTP/1.1 (optionally TLS) over glommio TCP, feeding the sans-IO `xcap`
//! crate, wired into the `herald` binary.
//!
//! One listener per shard (SO_REUSEPORT, like the SIP TCP edge); each accepted connection is
//! served by a task on the accepting shard (`conn`). Bytes go through `xcap::http::decode`
//! (framing, limits, `Expect: 100-continue`, pipelining, keep-alive) and each complete request
//! is handed to an [`XcapService`]. In the server that is [`node::XcapNode`]: it sends the
//! request over the XCAP hand-off mesh (`mesh`) to the shard that owns the user, which runs
//! `Xcap::handle` on its documents (`docs`: LMDB plus an overlay of uncommitted writes),
//! commits the writes off the executor (`commit`) and only then answers, and passes the
//! effects to its presence core. [`LocalXcap`] is the in-shard implementation over any
//! `DocumentStore` (tests, tools).
//!
//! Responses of pipelined requests are written in order, batched into one write when
//! several requests arrived together.

pub mod commit;
mod conn;
pub mod docs;
pub mod mesh;
pub mod node;
mod service;
pub mod tls;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

pub use conn::{accept_loop, adopt, bind, bind_socket, serve_connection, FrontConfig};
pub use service::{LocalXcap, XcapService};

use crate::cli::{Cidr, RunArgs};
use crate::edge::shard::Shard;
use store::Store;

/// The nonce secret: random per process, shared by every shard (a nonce issued by one shard
/// verifies on another). Not printed.
#[derive(Clone)]
pub struct Secret(pub [u8; 32]);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// 32 bytes from the OS (`/dev/urandom`), falling back to time, pid and ASLR entropy.
    pub fn random() -> Secret {
        let mut b = [0u8; 32];
        let read = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
        if read.is_err() {
            use std::hash::{BuildHasher, Hasher};
            for (i, chunk) in b.chunks_mut(8).enumerate() {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u128(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos())
                        .unwrap_or(0),
                );
                h.write_u32(std::process::id());
                h.write_usize(i);
                chunk.copy_from_slice(&h.finish().to_le_bytes());
            }
        }
        Secret(b)
    }
}

/// XCAP settings from the command line (`--xcap-*`, `--default-realm`, `--tls-*`).
#[derive(Clone, Debug)]
pub struct XcapSettings {
    /// None: XCAP disabled.
    pub listen: Option<SocketAddr>,
    pub root: String,
    pub default_realm: String,
    pub trusted: Vec<Cidr>,
    pub max_body: usize,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub queue: usize,
    pub nonce_ttl: u64,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub secret: Secret,
}

impl XcapSettings {
    pub fn from_args(a: &RunArgs) -> Self {
        XcapSettings {
            listen: a.xcap_listen.0,
            root: a.xcap_root_uri(),
            default_realm: a.xcap_default_realm(),
            trusted: a.xcap_trusted_peers.clone(),
            max_body: a.xcap_max_body,
            max_connections: a.xcap_max_connections.max(1),
            idle_timeout: Duration::from_secs(a.xcap_idle_timeout.max(1)),
            request_timeout: Duration::from_secs(a.xcap_request_timeout.max(1)),
            queue: a.xcap_queue.max(1),
            nonce_ttl: a.xcap_nonce_ttl.max(1),
            tls_cert: a.tls_cert.clone(),
            tls_key: a.tls_key.clone(),
            secret: Secret::random(),
        }
    }

    fn front(&self) -> FrontConfig {
        FrontConfig {
            limits: xcap::http::Limits {
                max_body: self.max_body,
                ..xcap::http::Limits::default()
            },
            idle_timeout: self.idle_timeout,
            request_timeout: self.request_timeout,
            max_connections: self.max_connections,
            trusted_peers: self.trusted.clone(),
            counters: Default::default(),
        }
    }
}

/// Everything one shard needs to serve XCAP (all `Send`).
pub struct ShardXcapInit {
    listener: socket2::Socket,
    ends: mesh::XcapEnds,
    /// This shard's environment (None: documents in memory).
    own: Option<Arc<Store>>,
    /// Every shard's environment, index = shard (credentials); empty without a data dir.
    all: Vec<Arc<Store>>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// Why XCAP cannot start.
#[derive(Debug)]
pub enum XcapStartError {
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    Tls(tls::TlsError),
    Root(String),
}

impl fmt::Display for XcapStartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XcapStartError::Bind { addr, source } => {
                write!(f, "cannot bind XCAP socket on {addr}: {source} (--xcap-listen none disables XCAP)")
            }
            XcapStartError::Tls(e) => write!(f, "XCAP TLS: {e}"),
            XcapStartError::Root(e) => write!(f, "bad --xcap-root: {e}"),
        }
    }
}

impl std::error::Error for XcapStartError {}

/// Before the shards start: binds one XCAP socket per shard, loads TLS, builds the XCAP
/// mesh and collects the stores. `stores[i]` is shard i's environment (None with
/// `--durability none`; then an existing data directory is still opened for credentials).
pub fn prepare(
    settings: &crate::edge::Settings,
    stores: &[Option<Arc<Store>>],
) -> Result<Vec<Option<ShardXcapInit>>, XcapStartError> {
    let n = settings.shards as usize;
    let x = &settings.xcap;
    let Some(addr) = x.listen else {
        return Ok((0..n).map(|_| None).collect());
    };
    xcap::uri::XcapRoot::parse(&x.root).map_err(|e| XcapStartError::Root(e.to_string()))?;
    let tls = match (&x.tls_cert, &x.tls_key) {
        (Some(c), Some(k)) => Some(tls::load_server_config(c, k).map_err(XcapStartError::Tls)?),
        _ => None,
    };
    let all: Vec<Arc<Store>> = if stores.iter().all(Option::is_some) {
        stores.iter().flatten().cloned().collect()
    } else {
        credentials_only(settings)
    };
    let mut listeners = Vec::with_capacity(n);
    for _ in 0..n {
        listeners.push(bind_socket(addr).map_err(|source| XcapStartError::Bind { addr, source })?);
    }
    let inits = listeners
        .into_iter()
        .zip(mesh::mesh(n, x.queue))
        .enumerate()
        .map(|(i, (listener, ends))| {
            Some(ShardXcapInit {
                listener,
                ends,
                own: stores.get(i).cloned().flatten(),
                all: all.clone(),
                tls: tls.clone(),
            })
        })
        .collect();
    Ok(inits)
}

/// `--durability none`: documents stay in memory, but users added with `herald user add`
/// in an existing data directory can still log in (read-only use of that directory).
fn credentials_only(settings: &crate::edge::Settings) -> Vec<Arc<Store>> {
    let dir = &settings.data_dir;
    match store::layout::existing_shards(dir) {
        Ok(v) if !v.is_empty() => {}
        _ => return Vec::new(),
    }
    match store::admin::open_data_dir(dir, &settings.store) {
        Ok(list) => {
            let by_index: BTreeMap<u16, Arc<Store>> = list.into_iter().collect();
            by_index.into_values().collect()
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "XCAP: cannot read users from the data directory");
            Vec::new()
        }
    }
}

/// On shard `shard`: starts the XCAP accept loop and the mesh receivers.
pub fn spawn(shard: Rc<Shard>, init: ShardXcapInit) {
    let x = shard.settings.xcap.clone();
    let id = shard.id;
    let boot = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut cfg = match xcap::Config::new(&x.root, &x.default_realm, &x.secret.0) {
        Ok(c) => c,
        Err(e) => {
            // `prepare` validated the root already.
            tracing::error!(error = %e, "bad XCAP root; XCAP disabled on this shard");
            return;
        }
    };
    cfg.auth.nonce_ttl = x.nonce_ttl;
    // Unique across shards and boots: an ETag handed out before a restart never matches
    // a document written after it.
    cfg.etag_prefix = format!("{}s{}", boot_tag(boot), id.0);
    let xc = xcap::Xcap::new(cfg);
    let (backend, committer) = match &init.own {
        Some(st) => (
            docs::Backend::Lmdb(st.clone()),
            Some(commit::Committer::new(st.clone())),
        ),
        None => (docs::Backend::Memory(Default::default()), None),
    };
    let docs = docs::ShardDocs::new(backend, init.all);
    let retry_after = shard.settings.retry_after;
    let front = Rc::new(FrontConfig {
        counters: shard.stats.xcap.clone(),
        ..x.front()
    });
    let node = Rc::new(node::XcapNode::new(shard, xc, docs, committer, retry_after));
    let ShardXcapInit {
        listener,
        ends,
        tls,
        ..
    } = init;
    glommio::spawn_local(async move {
        // Connect the XCAP mesh first (each connect waits for its peer), then serve.
        let senders: Vec<_> = ends
            .senders
            .into_iter()
            .map(|s| s.map(|s| glommio::spawn_local(s.connect())))
            .collect();
        let receivers: Vec<_> = ends
            .receivers
            .into_iter()
            .map(|(from, r)| (from, glommio::spawn_local(r.connect())))
            .collect();
        let mut connected = Vec::with_capacity(senders.len());
        for s in senders {
            connected.push(match s {
                Some(t) => Some(t.await),
                None => None,
            });
        }
        node.set_senders(connected);
        for (from, t) in receivers {
            let rx = t.await;
            glommio::spawn_local(node.clone().receive_loop(from, rx)).detach();
        }
        tracing::debug!(shard = id.0, "XCAP serving");
        accept_loop(adopt(listener), node, front, tls).await;
    })
    .detach();
}

/// Boot time in base 36 (short ETag prefixes).
fn boot_tag(mut v: u64) -> String {
    const D: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    while v > 0 {
        s.push(D[(v % 36) as usize]);
        v /= 36;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}
