//! UDP: one socket per shard per address, all bound with SO_REUSEPORT so the kernel spreads
//! datagrams over the shards by 4-tuple hash; whichever shard gets one routes it.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::time::Duration;

use glommio::net::UdpSocket;
use socket2::{Domain, Protocol, Socket, Type};

use super::shard::{Outbox, Shard};
use super::stats::EdgeCounters;
use crate::core::{Peer, Transport};

/// Socket buffers asked of the kernel (it may clamp to net.core.rmem_max / wmem_max).
const SOCKET_BUFFER_BYTES: usize = 8 << 20;
/// Receive buffer: the largest UDP payload, so no datagram is ever truncated.
const RECV_BUFFER_BYTES: usize = 65_536;

/// Creates and binds one shard's UDP socket (called on the main thread, before executors).
pub fn bind(addr: SocketAddr) -> std::io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    if addr.is_ipv6() {
        let _ = sock.set_only_v6(true);
    }
    let _ = sock.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = sock.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    sock.bind(&addr.into())?;
    Ok(sock)
}

/// Hands a bound socket to the current executor's reactor.
pub fn adopt(sock: Socket) -> UdpSocket {
    // SAFETY: the fd comes from a live socket2::Socket whose ownership we give up here.
    unsafe { UdpSocket::from_raw_fd(sock.into_raw_fd()) }
}

/// Receive loop of one socket on one shard.
pub async fn recv_loop(shard: Rc<Shard>, sock: Rc<UdpSocket>) {
    let mut buf = vec![0u8; RECV_BUFFER_BYTES];
    let mut out = Outbox::new();
    loop {
        let (n, addr) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "UDP receive failed");
                glommio::timer::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        EdgeCounters::inc(&shard.edge().udp_in);
        let from = Peer {
            transport: Transport::Udp,
            addr,
            conn: None,
        };
        shard.deliver(from, &buf[..n], &mut out);
        shard.flush(&mut out).await;
    }
}
