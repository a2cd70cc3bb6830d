//! Listener and per-connection loop.

use std::cell::Cell;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};
use xcap::http::{decode, write_continue, write_response, Decoded, HttpError, Limits, Version};
use xcap::Request;

use super::service::XcapService;
use crate::edge::stats::{EdgeCounters, XcapCounters};

/// Listen backlog of each shard's XCAP socket.
const LISTEN_BACKLOG: i32 = 1024;
/// Bytes read per `read` call.
const READ_CHUNK: usize = 16 * 1024;

/// Bounds and policy of the HTTP front (each a `herald` flag).
#[derive(Debug, Clone)]
pub struct FrontConfig {
    pub limits: Limits,
    /// A connection with no complete request for this long is closed (also the bound on a
    /// slow request: the read timeout applies to every read).
    pub idle_timeout: Duration,
    /// Longest time from the first byte of a request to its last (slow-client bound).
    pub request_timeout: Duration,
    /// Most open XCAP connections per shard; further accepts are closed at once.
    pub max_connections: usize,
    /// Peers that skip authentication (`--xcap-trusted-peers`).
    pub trusted_peers: Vec<crate::cli::Cidr>,
    /// Where this front counts connections and requests (the shard's `xcap.*` in /stats).
    pub counters: Arc<XcapCounters>,
}

impl FrontConfig {
    pub fn is_trusted(&self, ip: std::net::IpAddr) -> bool {
        self.trusted_peers.iter().any(|c| c.contains(ip))
    }
}

impl Default for FrontConfig {
    fn default() -> Self {
        FrontConfig {
            limits: Limits::default(),
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            max_connections: 4096,
            trusted_peers: Vec::new(),
            counters: Arc::default(),
        }
    }
}

/// Binds an XCAP listening socket with SO_REUSEPORT (one per shard, same address), as a
/// plain socket so it can be created before the shard threads start (fail fast) and moved.
pub fn bind_socket(addr: SocketAddr) -> std::io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    sock.bind(&addr.into())?;
    sock.listen(LISTEN_BACKLOG)?;
    Ok(sock)
}

/// Turns a listening socket from [`bind_socket`] into a glommio listener (on its shard).
pub fn adopt(sock: Socket) -> TcpListener {
    // SAFETY: the fd comes from a live, listening socket we give up here.
    unsafe { TcpListener::from_raw_fd(sock.into_raw_fd()) }
}

/// Binds and adopts in one step (tests, single-shard use).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    bind_socket(addr).map(adopt)
}

/// Accepts connections forever, serving each on this shard (over TLS when `tls` is set).
pub async fn accept_loop<S: XcapService + 'static>(
    listener: TcpListener,
    service: Rc<S>,
    cfg: Rc<FrontConfig>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let open = Rc::new(Cell::new(0usize));
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(_) => {
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let counters = &cfg.counters;
        if open.get() >= cfg.max_connections {
            EdgeCounters::inc(&counters.connections_refused);
            drop(stream);
            continue;
        }
        EdgeCounters::inc(&counters.connections_accepted);
        EdgeCounters::inc(&counters.connections_open);
        open.set(open.get() + 1);
        let (service, cfg, open, tls) = (service.clone(), cfg.clone(), open.clone(), tls.clone());
        glommio::spawn_local(async move {
            let trusted = stream
                .peer_addr()
                .map(|a| cfg.is_trusted(a.ip()))
                .unwrap_or(false);
            // The read timeout bounds idle keep-alive connections and slow requests; it
            // applies to the TCP reads under TLS too.
            let _ = stream.set_read_timeout(Some(cfg.idle_timeout));
            let _ = stream.set_nodelay(true);
            match tls {
                None => {
                    let _ = serve_connection(stream, trusted, &*service, &cfg).await;
                }
                Some(tls) => match super::tls::accept(tls, stream).await {
                    Ok(s) => {
                        let _ = serve_connection(s, trusted, &*service, &cfg).await;
                    }
                    Err(_) => EdgeCounters::inc(&cfg.counters.tls_handshake_failures),
                },
            }
            EdgeCounters::dec(&cfg.counters.connections_open);
            open.set(open.get() - 1);
        })
        .detach();
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Serves one connection until the peer closes, a request asks to close, a framing error,
/// or the idle timeout (set on the TCP socket by the caller). Generic over the stream so
/// plain TCP and TLS share it; `trusted` is the peer check done on the TCP address.
pub async fn serve_connection<T, S>(
    mut stream: T,
    trusted: bool,
    service: &S,
    cfg: &FrontConfig,
) -> std::io::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
    S: XcapService + ?Sized,
{
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut continue_sent = false;
    // When the first byte of the request now being received arrived.
    let mut request_started: Option<std::time::Instant> = None;
    loop {
        // Serve every complete request already buffered (pipelining), in order.
        let mut consumed_total = 0;
        let mut close = false;
        loop {
            match decode(&buf[consumed_total..], &cfg.limits) {
                Ok(Decoded::Partial { expect_continue }) => {
                    if expect_continue && !continue_sent {
                        write_continue(&mut out);
                        continue_sent = true;
                    }
                    break;
                }
                Ok(Decoded::Complete {
                    head,
                    body,
                    consumed,
                }) => {
                    continue_sent = false;
                    let req = Request {
                        method: head.method,
                        target: head.target,
                        headers: &head.headers,
                        body: &body,
                        trusted,
                    };
                    let outcome = service.handle(req, now_secs()).await;
                    let r = &outcome.response;
                    cfg.counters.request(head.method);
                    cfg.counters.response(r.status);
                    let headers: Vec<(&str, &[u8])> =
                        r.headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
                    write_response(
                        &mut out,
                        head.version,
                        r.status,
                        &headers,
                        &r.body,
                        head.keep_alive,
                        head.method == "HEAD",
                    );
                    consumed_total += consumed;
                    if !head.keep_alive {
                        close = true;
                        break;
                    }
                }
                Err(e) => {
                    EdgeCounters::inc(&cfg.counters.http_errors);
                    cfg.counters.response(e.status());
                    write_error(&mut out, &e);
                    close = true;
                    break;
                }
            }
        }
        buf.drain(..consumed_total);
        if buf.is_empty() {
            request_started = None;
        } else if consumed_total > 0 || request_started.is_none() {
            request_started = Some(std::time::Instant::now());
        }
        if !close && request_started.is_some_and(|t| t.elapsed() > cfg.request_timeout) {
            EdgeCounters::inc(&cfg.counters.request_timeouts);
            cfg.counters.response(408);
            write_response(&mut out, Version::Http11, 408, &[], b"", false, false);
            close = true;
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            stream.flush().await?;
            out.clear();
        }
        if close {
            let _ = stream.close().await;
            return Ok(());
        }
        let start = buf.len();
        buf.resize(start + READ_CHUNK, 0);
        let n = match stream.read(&mut buf[start..]).await {
            Ok(n) => n,
            Err(e) => {
                buf.truncate(start);
                // Timed out or reset: a request in progress gets 408, an idle one nothing.
                if start > 0 && e.kind() == std::io::ErrorKind::TimedOut {
                    EdgeCounters::inc(&cfg.counters.request_timeouts);
                    cfg.counters.response(408);
                    write_response(&mut out, Version::Http11, 408, &[], b"", false, false);
                    let _ = stream.write_all(&out).await;
                    let _ = stream.flush().await;
                }
                return Ok(());
            }
        };
        buf.truncate(start + n);
        if n == 0 {
            return Ok(());
        }
    }
}

fn write_error(out: &mut Vec<u8>, e: &HttpError) {
    write_response(out, Version::Http11, e.status(), &[], b"", false, false);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xcap_front::LocalXcap;
    use std::io::{Read, Write};
    use xcap::store::MemStore;
    use xcap::{Config, Xcap};

    fn run_server(cfg: FrontConfig) -> SocketAddr {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
                .io_memory(1 << 20)
                .make()
                .unwrap();
            ex.run(async move {
                let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let x = Xcap::new(
                    Config::new("http://127.0.0.1/xcap-root", "example.com", b"k").unwrap(),
                );
                let svc = Rc::new(LocalXcap::new(x, MemStore::new(), (), Box::new(|_| {})));
                accept_loop(listener, svc, Rc::new(cfg), None).await;
            });
        });
        rx.recv().unwrap()
    }

    fn talk(addr: SocketAddr, send: &[u8], until_close: bool) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(send).unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    got.extend_from_slice(&chunk[..n]);
                    if !until_close && got.windows(4).filter(|w| w == b"\r\n\r\n").count() >= 1 {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    #[test]
    fn http_front_end_to_end() {
        let addr = run_server(FrontConfig {
            trusted_peers: vec!["127.0.0.1".parse().unwrap()],
            idle_timeout: Duration::from_secs(2),
            ..FrontConfig::default()
        });
        let doc = "<root xmlns=\"t\"><a/></root>";
        // Chunked PUT, then two pipelined GETs, the last closing the connection.
        let req = format!(
            "PUT /xcap-root/test-app/users/sip:alice@example.com/index HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{doc}\r\n0\r\n\r\n\
             GET /xcap-root/test-app/users/sip:alice@example.com/index HTTP/1.1\r\nHost: h\r\n\r\n\
             GET /xcap-root/test-app/users/sip:alice@example.com/index/~~/root/a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            doc.len()
        );
        let got = talk(addr, req.as_bytes(), true);
        let statuses: Vec<&str> = got.matches("HTTP/1.1 ").collect();
        assert_eq!(statuses.len(), 3, "{got}");
        assert!(got.starts_with("HTTP/1.1 201 Created"), "{got}");
        assert!(got.contains(&format!("Content-Length: {}\r\n", doc.len())));
        assert!(got.ends_with("Connection: close\r\n\r\n<a/>"), "{got}");
        // Expect: 100-continue gets the interim response before the body is sent.
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"PUT /xcap-root/test-app/users/sip:alice@example.com/doc2 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 6\r\n\r\n").unwrap();
        let mut chunk = [0u8; 256];
        let n = s.read(&mut chunk).unwrap();
        assert_eq!(&chunk[..n], b"HTTP/1.1 100 Continue\r\n\r\n");
        s.write_all(b"<x/>\r\n").unwrap();
        let n = s.read(&mut chunk).unwrap();
        assert!(chunk[..n].starts_with(b"HTTP/1.1 201"));
        // Garbage → 400 and close.
        let got = talk(addr, b"\x01\x02 nonsense\r\n\r\n", true);
        assert!(got.starts_with("HTTP/1.1 400 Bad Request"), "{got}");
        // HTTP/1.0 without keep-alive closes after one response.
        let got = talk(
            addr,
            b"GET /xcap-root/xcap-caps/global/index HTTP/1.0\r\n\r\n",
            true,
        );
        assert!(got.starts_with("HTTP/1.0 200 OK") && got.contains("Connection: close"));
    }
}
