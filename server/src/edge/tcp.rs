//! TCP: listeners per shard (SO_REUSEPORT), one reader task and one writer task per
//! connection, and a per-shard registry of live connections for NOTIFY reuse.
//!
//! Each connection writes through its own bounded queue drained by its own task, so a slow or
//! dead watcher only ever fills (and then loses from) its own queue: NOTIFYs to everyone else
//! leave at once. A [`ConnId`] carries the shard that holds the connection in its top 16
//! bits, so any shard can send on any connection by handing the bytes to that shard.
//!
//! When a connection goes, the cores hear of it (`Core::handle_conn_closed` on every shard,
//! `Core::handle_tcp_target_lost` on this one for sends that named only its address) and
//! resend the NOTIFYs it still carried on a fresh connection (see `core::conn_lost`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use sip_parser::{Framing, Header, Status};
use socket2::{Domain, Protocol, Socket, Type};

use super::reject;
use super::shard::{Outbox, Shard};
use super::stats::EdgeCounters;
use crate::core::conn_lost::ConnLoss;
use crate::core::{ConnId, Peer, ShardId, Transport};

/// Listen backlog per shard socket.
const LISTEN_BACKLOG: i32 = 1024;
/// How long dialling a watcher for a NOTIFY may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(3);
/// Bytes read per `read` call.
const READ_CHUNK: usize = 16 * 1024;
/// Bytes gathered from a connection's queue into one write.
const WRITE_COALESCE_BYTES: usize = 64 * 1024;
/// Header slots for framing (the parser's own limit applies too).
const MAX_FRAMING_HEADERS: usize = 128;

/// Shard that holds a connection.
pub fn conn_shard(c: ConnId) -> ShardId {
    ShardId((c.0 >> 48) as u16)
}

fn make_conn_id(shard: ShardId, seq: u64) -> ConnId {
    ConnId(((shard.0 as u64) << 48) | (seq & ((1 << 48) - 1)))
}

pub fn bind(addr: SocketAddr) -> std::io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    if addr.is_ipv6() {
        let _ = sock.set_only_v6(true);
    }
    sock.bind(&addr.into())?;
    sock.listen(LISTEN_BACKLOG)?;
    Ok(sock)
}

pub fn adopt_listener(sock: Socket) -> TcpListener {
    // SAFETY: the fd comes from a live, listening socket2::Socket we give up here.
    unsafe { TcpListener::from_raw_fd(sock.into_raw_fd()) }
}

struct ConnHandle {
    addr: SocketAddr,
    tx: LocalSender<Box<[u8]>>,
}

/// A connection just taken out of the registry.
struct Removed {
    addr: SocketAddr,
    /// It was the latest connection to `addr`: sends naming no connection went to it.
    addressed: bool,
}

/// Live connections of one shard, by id and by remote address (latest wins).
pub struct Registry {
    shard: ShardId,
    next: Cell<u64>,
    conns: RefCell<HashMap<u64, ConnHandle>>,
    by_addr: RefCell<HashMap<SocketAddr, u64>>,
}

impl Registry {
    pub fn new(shard: ShardId) -> Self {
        Registry {
            shard,
            next: Cell::new(1),
            conns: RefCell::new(HashMap::new()),
            by_addr: RefCell::new(HashMap::new()),
        }
    }

    pub fn len(&self) -> usize {
        self.conns.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn register(&self, addr: SocketAddr, depth: usize) -> (ConnId, LocalReceiver<Box<[u8]>>) {
        let seq = self.next.get();
        self.next.set(seq + 1);
        let id = make_conn_id(self.shard, seq);
        let (tx, rx) = local_channel::new_bounded(depth);
        self.conns
            .borrow_mut()
            .insert(id.0, ConnHandle { addr, tx });
        self.by_addr.borrow_mut().insert(addr, id.0);
        (id, rx)
    }

    fn remove(&self, id: ConnId) -> Option<Removed> {
        let h = self.conns.borrow_mut().remove(&id.0)?;
        let mut by_addr = self.by_addr.borrow_mut();
        let addressed = by_addr.get(&h.addr) == Some(&id.0);
        if addressed {
            by_addr.remove(&h.addr);
        }
        Some(Removed {
            addr: h.addr,
            addressed,
        })
    }

    /// Queues bytes on a connection; Err(true) when the queue is full, Err(false) when gone.
    fn queue(&self, id: u64, bytes: &[u8]) -> Result<(), bool> {
        let conns = self.conns.borrow();
        let Some(h) = conns.get(&id) else {
            return Err(false);
        };
        h.tx.try_send(bytes.into()).map_err(|_| true)
    }

    fn by_addr(&self, addr: SocketAddr) -> Option<u64> {
        self.by_addr.borrow().get(&addr).copied()
    }
}

pub async fn accept_loop(shard: Rc<Shard>, listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "TCP accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if shard.tcp.len() >= shard.settings.max_tcp_connections {
            EdgeCounters::inc(&shard.edge().tcp_refused);
            drop(stream);
            continue;
        }
        let Ok(addr) = stream.peer_addr() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        EdgeCounters::inc(&shard.edge().tcp_accepted);
        let (id, rx) = shard.tcp.register(addr, shard.settings.tcp_write_queue);
        start_connection(&shard, stream, id, addr, rx);
    }
}

/// Second handle on the same socket so reading and writing run as independent tasks.
fn dup_stream(stream: &TcpStream) -> std::io::Result<TcpStream> {
    // SAFETY: the fd is owned by `stream`, alive for this call; we duplicate it.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) }.try_clone_to_owned()?;
    // SAFETY: `fd` is a fresh, owned duplicate of a connected TCP socket.
    Ok(unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) })
}

fn start_connection(
    shard: &Rc<Shard>,
    stream: TcpStream,
    id: ConnId,
    addr: SocketAddr,
    rx: LocalReceiver<Box<[u8]>>,
) {
    EdgeCounters::inc(&shard.edge().tcp_open);
    match dup_stream(&stream) {
        Ok(writer) => {
            // A write that makes no progress for the idle timeout ends the connection: a
            // watcher that stopped reading cannot hold the writer (nor, after a garbage close,
            // the socket) forever.
            let _ = writer.set_write_timeout(Some(shard.settings.tcp_idle_timeout));
            glommio::spawn_local(write_loop(writer, rx)).detach();
            glommio::spawn_local(read_loop(shard.clone(), stream, id, addr)).detach();
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot duplicate TCP socket");
            close(shard, id, ConnLoss::Closed);
        }
    }
}

/// Forgets a connection and tells the cores, whose NOTIFYs still unanswered on it are
/// resent on a fresh connection (or fail like Timer F when it never connected).
fn close(shard: &Rc<Shard>, id: ConnId, loss: ConnLoss) {
    let Some(gone) = shard.tcp.remove(id) else {
        return;
    };
    // A dial that failed was never counted open.
    if loss == ConnLoss::Closed {
        EdgeCounters::dec(&shard.edge().tcp_open);
        EdgeCounters::inc(&shard.edge().tcp_closed);
    }
    shard.conn_closed(id);
    if gone.addressed {
        target_lost(shard, gone.addr, loss);
    }
    flush_soon(shard);
}

/// The connection sends to `addr` (naming no connection) went to is gone or was never had.
fn target_lost(shard: &Rc<Shard>, addr: SocketAddr, loss: ConnLoss) {
    shard.core.borrow_mut().handle_tcp_target_lost(addr, loss);
}

/// Sends what the core queued outside of any task's own flush (resends after a loss).
fn flush_soon(shard: &Rc<Shard>) {
    let shard = shard.clone();
    glommio::spawn_local(async move { shard.flush(&mut Outbox::default()).await }).detach();
}

async fn write_loop(mut stream: TcpStream, rx: LocalReceiver<Box<[u8]>>) {
    let mut batch: Vec<u8> = Vec::with_capacity(WRITE_COALESCE_BYTES);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    while let Some(bytes) = rx.recv().await {
        // Coalesce what is already queued into one write: one syscall per burst.
        batch.clear();
        batch.extend_from_slice(&bytes);
        while batch.len() < WRITE_COALESCE_BYTES {
            let next = std::pin::pin!(rx.recv());
            match std::future::Future::poll(next, &mut cx) {
                std::task::Poll::Ready(Some(more)) => batch.extend_from_slice(&more),
                _ => break,
            }
        }
        if stream.write_all(&batch).await.is_err() {
            break;
        }
    }
    // Queue dropped (connection removed) or write failed: wake the reader too.
    let _ = stream.shutdown(std::net::Shutdown::Both).await;
}

async fn read_loop(shard: Rc<Shard>, mut stream: TcpStream, id: ConnId, addr: SocketAddr) {
    let _ = stream.set_read_timeout(Some(shard.settings.tcp_idle_timeout));
    let limits = shard.settings.core.limits;
    let from = Peer {
        transport: Transport::Tcp,
        addr,
        conn: Some(id),
    };
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut out = Outbox::new();
    let nslots = MAX_FRAMING_HEADERS.min(limits.max_headers.max(1));
    // Closed for unframeable input: the writer still sends what is queued (answers to the
    // messages before it, and the 400/513 for it), then shuts the socket.
    let mut garbage = false;
    'conn: loop {
        // Frame and deliver every complete message already buffered.
        let mut start = 0;
        loop {
            // CRLF keep-alives (RFC 5626 §3.5.1): a double CRLF ping gets a single CRLF pong.
            let ws = buf[start..]
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            if ws >= 4 && &buf[start..start + 4] == b"\r\n\r\n" {
                let _ = shard.tcp.queue(id.0, b"\r\n");
            }
            start += ws;
            if start >= buf.len() {
                break;
            }
            // Slots borrow from `buf`, so they live only for this one framing step.
            let mut slots = [Header::EMPTY; MAX_FRAMING_HEADERS];
            match sip_parser::parse(
                &buf[start..],
                &mut slots[..nslots],
                Framing::Stream,
                &limits,
            ) {
                Ok(Status::Complete(m)) => {
                    let len = m.len.max(1);
                    EdgeCounters::inc(&shard.edge().tcp_in);
                    shard.deliver(from, &buf[start..start + len], &mut out);
                    start += len;
                }
                Ok(Status::Partial) => {
                    if buf.len() - start >= limits.max_message_len {
                        EdgeCounters::inc(&shard.edge().tcp_garbage);
                        garbage = true;
                        break 'conn;
                    }
                    break;
                }
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "unframeable TCP input: closing");
                    EdgeCounters::inc(&shard.edge().tcp_garbage);
                    shard.flush(&mut out).await;
                    // After the answers to what came before it, on the same queue.
                    let mut answer = Vec::new();
                    if reject::broken_framing(&buf[start..], e, &mut answer, &limits).is_some()
                        && shard.tcp.queue(id.0, &answer).is_ok()
                    {
                        EdgeCounters::inc(&shard.edge().tcp_garbage_answered);
                    }
                    garbage = true;
                    break 'conn;
                }
            }
        }
        buf.drain(..start);
        shard.flush(&mut out).await;
        let old = buf.len();
        buf.resize(old + READ_CHUNK, 0);
        match stream.read(&mut buf[old..]).await {
            Ok(0) => break,
            Ok(n) => buf.truncate(old + n),
            Err(e) => {
                if e.kind() == std::io::ErrorKind::TimedOut
                    || e.kind() == std::io::ErrorKind::WouldBlock
                {
                    EdgeCounters::inc(&shard.edge().tcp_idle_closed);
                }
                break;
            }
        }
    }
    if !garbage {
        let _ = stream.shutdown(std::net::Shutdown::Both).await;
    }
    // Dropping the queue's sender ends the writer once it has sent what is queued.
    close(&shard, id, ConnLoss::Closed);
}

/// Sends on TCP from any shard: bytes for a connection held elsewhere go to that shard.
pub fn send(shard: &Rc<Shard>, dst: Peer, bytes: &[u8]) {
    if let Some(c) = dst.conn {
        let owner = conn_shard(c);
        if owner != shard.id && (owner.0 as usize) < shard.settings.shards as usize {
            if !shard.hand_over_outbound(owner, dst, bytes) {
                EdgeCounters::inc(&shard.edge().tcp_queue_full);
            }
            return;
        }
    }
    send_local(shard, dst, bytes);
}

/// Sends on a connection held by this shard: the named one, else any to that address,
/// else a new one dialled now.
pub fn send_local(shard: &Rc<Shard>, dst: Peer, bytes: &[u8]) {
    let reg = &shard.tcp;
    let mut target = dst
        .conn
        .filter(|c| conn_shard(*c) == shard.id)
        .map(|c| c.0)
        .filter(|c| reg.conns.borrow().contains_key(c));
    if target.is_none() {
        target = reg.by_addr(dst.addr);
    }
    let id = match target {
        Some(id) => id,
        None => match dial(shard, dst.addr) {
            Some(id) => id.0,
            None => {
                EdgeCounters::inc(&shard.edge().tcp_no_route);
                target_lost(shard, dst.addr, ConnLoss::DialFailed);
                flush_soon(shard);
                return;
            }
        },
    };
    match reg.queue(id, bytes) {
        Ok(()) => EdgeCounters::inc(&shard.edge().tcp_out),
        Err(true) => EdgeCounters::inc(&shard.edge().tcp_queue_full),
        Err(false) => EdgeCounters::inc(&shard.edge().tcp_no_route),
    }
}

/// Registers a connection to `addr` at once (so messages queue behind the dial) and
/// connects in the background.
fn dial(shard: &Rc<Shard>, addr: SocketAddr) -> Option<ConnId> {
    if shard.tcp.len() >= shard.settings.max_tcp_connections {
        EdgeCounters::inc(&shard.edge().tcp_refused);
        return None;
    }
    let (id, rx) = shard.tcp.register(addr, shard.settings.tcp_write_queue);
    EdgeCounters::inc(&shard.edge().tcp_dialed);
    let shard2 = shard.clone();
    glommio::spawn_local(async move {
        match TcpStream::connect_timeout(addr, DIAL_TIMEOUT).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                start_connection(&shard2, stream, id, addr, rx);
            }
            Err(e) => {
                tracing::debug!(%addr, error = %e, "TCP dial failed");
                EdgeCounters::inc(&shard2.edge().tcp_dial_failures);
                close(&shard2, id, ConnLoss::DialFailed);
            }
        }
    })
    .detach();
    Some(id)
}
