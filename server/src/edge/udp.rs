//! UDP: one socket per shard per address, all bound with SO_REUSEPORT. The kernel picks the
//! shard with the steering program (`core::steer`: the owner, for most datagrams) or by
//! 4-tuple hash; whichever shard gets one routes it, and hands off what is not its own.
//!
//! Batching, because a parked executor costs far more to wake (membarrier, io_uring enter,
//! timer re-arm: tens of µs on this machine) than a datagram costs to handle:
//! - receive: one non-blocking `recvmmsg` takes everything queued (up to [`RECV_BATCH`]); all
//!   of it goes through the core and the output is flushed once. Only when that call came
//!   back short (the queue was empty a moment ago) does the task wait, with a 1-byte
//!   `MSG_PEEK` through io_uring, so no datagram is copied twice.
//! - coalescing (`--coalesce-us`): after a batch, the task sleeps that long before the next
//!   `recvmmsg` instead of waking per datagram; an idle socket still wakes the shard at once.
//! - send: a flush's UDP datagrams leave in one non-blocking `sendmmsg` (up to
//!   [`SEND_BATCH`] per call); only when the kernel pushes back (EAGAIN) does one datagram
//!   wait for the socket through glommio's awaited `send_to`.

use std::cell::RefCell;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use glommio::net::UdpSocket;
use socket2::{Domain, Protocol, Socket, Type};

use super::coalesce::Coalesce;
use super::shard::{Outbox, Shard};
use super::stats::EdgeCounters;
use crate::core::{Peer, Transport};

/// Socket buffers asked of the kernel (it may clamp to net.core.rmem_max / wmem_max).
const SOCKET_BUFFER_BYTES: usize = 8 << 20;
/// Largest UDP payload: receive slots never need more.
const MAX_DATAGRAM: usize = 65_535;
/// Most datagrams taken from the socket by one `recvmmsg` before the output is flushed.
pub const RECV_BATCH: usize = 32;
/// Most datagrams handed to the kernel by one `sendmmsg`.
pub const SEND_BATCH: usize = 64;
/// Pause after an unexpected socket error, so a persistent one cannot spin the shard.
const ERROR_BACKOFF: Duration = Duration::from_millis(1);

/// Most ICMP errors read from a socket's error queue at once; the kernel flags the socket
/// again (the next receive fails) while its queue holds more.
const MAX_REFUSALS_PER_READ: usize = 256;
/// Bytes kept of a refused datagram: a NOTIFY's request line and Via come first.
const REFUSED_PREFIX: usize = 1024;
/// Times one datagram is offered again after its send failed on a pending ICMP error (the
/// error was about an earlier datagram; the kernel reports it on the next call).
const MAX_SENDS_PAST_ERRORS: usize = 4;

/// Creates and binds one shard's UDP socket (called on the main thread, before executors).
/// `icmp_errors` (`--udp-icmp-errors`): ask for ICMP errors about what it sends
/// (`IP_RECVERR`), read by [`read_refusals`]. The kernel otherwise drops them for an
/// unconnected socket.
pub fn bind(addr: SocketAddr, icmp_errors: bool) -> std::io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    if addr.is_ipv6() {
        let _ = sock.set_only_v6(true);
    }
    if icmp_errors {
        let (level, name) = match addr {
            SocketAddr::V4(_) => (libc::SOL_IP, libc::IP_RECVERR),
            SocketAddr::V6(_) => (libc::SOL_IPV6, libc::IPV6_RECVERR),
        };
        set_option(&sock, level, name, &1 as &libc::c_int)?;
    }
    let _ = sock.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = sock.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    sock.bind(&addr.into())?;
    Ok(sock)
}

/// `setsockopt` with a plain value (an int, a `sock_fprog`) the kernel copies.
fn set_option<T>(sock: &Socket, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` points at a live `T` for the call and its size is passed; the kernel
    // copies what it needs (for a `sock_fprog`, the program it points at too).
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether a socket call failed on an error the kernel recorded from an ICMP message about
/// an earlier datagram (`IP_RECVERR` sets it for unconnected sockets too): the call itself
/// did nothing wrong, and the error queue has the details ([`read_refusals`]).
pub fn is_icmp_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::ENOPROTOOPT
                | libc::EPROTO
                | libc::EOPNOTSUPP
                | libc::EACCES
                | libc::EMSGSIZE
        )
    )
}

/// [`is_icmp_error`] for an error of glommio's own calls (the receive loop's wait).
fn is_icmp_wait_error(e: &glommio::GlommioError<()>) -> bool {
    match e {
        glommio::GlommioError::IoError(e) => is_icmp_error(e),
        glommio::GlommioError::EnhancedIoError { source, .. } => is_icmp_error(source),
        _ => false,
    }
}

/// Whether an ICMP error says the destination cannot be reached, the errors RFC 3261 §18.4
/// says to report as a failure to send: network, host, protocol or port unreachable, and
/// parameter problem. Not "fragmentation needed" (path MTU), not local errors.
fn is_refusal(ee: &libc::sock_extended_err) -> bool {
    match ee.ee_origin {
        libc::SO_EE_ORIGIN_ICMP => matches!((ee.ee_type, ee.ee_code), (3, 0..=3) | (12, _)),
        // ICMPv6: destination unreachable (no route, address, port), parameter problem.
        libc::SO_EE_ORIGIN_ICMP6 => matches!((ee.ee_type, ee.ee_code), (1, 0 | 3 | 4) | (4, _)),
        _ => false,
    }
}

/// Error-queue entries taken by one `recvmmsg`: a wave of expiring dialogs whose watchers
/// left brings one ICMP error per NOTIFY, and each entry holds room in the socket's receive
/// buffer until read, room new requests need.
const ERRORS_PER_CALL: usize = 32;

/// Receive slots for error-queue reads, reused by every read of the shard thread.
struct ErrorScratch {
    bufs: Vec<u8>,
    /// `u64` for cmsghdr alignment; room for one extended error and its offender address.
    controls: Vec<[u64; 16]>,
    names: Vec<libc::sockaddr_storage>,
}

thread_local! {
    static ERROR_SCRATCH: RefCell<ErrorScratch> = RefCell::new(ErrorScratch {
        bufs: vec![0; ERRORS_PER_CALL * REFUSED_PREFIX],
        controls: vec![[0; 16]; ERRORS_PER_CALL],
        // SAFETY: plain old data; all-zero is valid.
        names: vec![unsafe { std::mem::zeroed() }; ERRORS_PER_CALL],
    });
}

/// Reads the ICMP errors queued on `fd` (at most [`MAX_REFUSALS_PER_READ`], up to
/// [`ERRORS_PER_CALL`] per `recvmmsg`) and gives `refused` each one that says the
/// destination cannot be reached: that destination, and the start of the datagram the
/// network refused. Returns how many errors it read.
pub fn read_refusals(fd: RawFd, mut refused: impl FnMut(SocketAddr, &[u8])) -> usize {
    ERROR_SCRATCH.with(|s| {
        let s = &mut *s.borrow_mut();
        let mut read = 0;
        while read < MAX_REFUSALS_PER_READ {
            let mut iovs = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; ERRORS_PER_CALL];
            // SAFETY: mmsghdr is plain old data; all-zero is a valid (empty) header.
            let mut hdrs: [libc::mmsghdr; ERRORS_PER_CALL] = unsafe { std::mem::zeroed() };
            for (i, chunk) in s.bufs.chunks_exact_mut(REFUSED_PREFIX).enumerate() {
                iovs[i].iov_base = chunk.as_mut_ptr().cast();
                iovs[i].iov_len = chunk.len();
                let h = &mut hdrs[i].msg_hdr;
                h.msg_name = (&mut s.names[i] as *mut libc::sockaddr_storage).cast();
                h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                h.msg_iov = &mut iovs[i];
                h.msg_iovlen = 1;
                h.msg_control = s.controls[i].as_mut_ptr().cast();
                h.msg_controllen = std::mem::size_of::<[u64; 16]>();
            }
            // SAFETY: every header points at live buffers of the stated sizes.
            let r = unsafe {
                libc::recvmmsg(
                    fd,
                    hdrs.as_mut_ptr(),
                    ERRORS_PER_CALL as libc::c_uint,
                    libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if r <= 0 {
                // EAGAIN: the queue is empty. Anything else: try again at the next error.
                break;
            }
            let n = r as usize;
            read += n;
            for (i, h) in hdrs.iter().take(n).enumerate() {
                let len = (h.msg_len as usize).min(REFUSED_PREFIX);
                let Some(dst) = from_storage(&s.names[i]) else {
                    continue;
                };
                if extended_error(&h.msg_hdr).is_some_and(|ee| is_refusal(&ee)) {
                    let start = i * REFUSED_PREFIX;
                    refused(dst, &s.bufs[start..start + len]);
                }
            }
            if n < ERRORS_PER_CALL {
                break;
            }
        }
        read
    })
}

/// The `IP_RECVERR` / `IPV6_RECVERR` control message of an error-queue read.
fn extended_error(msg: &libc::msghdr) -> Option<libc::sock_extended_err> {
    // SAFETY: `msg` was filled by a successful recvmsg; the CMSG macros stay within
    // msg_control / msg_controllen, and the data of a RECVERR message starts with a
    // sock_extended_err (read unaligned, as the kernel gives no alignment promise).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            let (level, kind) = ((*c).cmsg_level, (*c).cmsg_type);
            let data_len = ((*c).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
            if ((level, kind) == (libc::SOL_IP, libc::IP_RECVERR)
                || (level, kind) == (libc::SOL_IPV6, libc::IPV6_RECVERR))
                && data_len >= std::mem::size_of::<libc::sock_extended_err>()
            {
                let p = libc::CMSG_DATA(c).cast::<libc::sock_extended_err>();
                return Some(std::ptr::read_unaligned(p));
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

/// `SO_ATTACH_REUSEPORT_CBPF` (the asm-generic value, x86-64 and arm64 included; the libc
/// crate does not export it for glibc targets).
const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;

/// Attaches a classic BPF program choosing the socket of `sock`'s reuseport group
/// (`core::steer`).
pub fn attach_steering(sock: &Socket, prog: &[crate::core::steer::asm::Insn]) -> io::Result<()> {
    let mut filter: Vec<libc::sock_filter> = prog
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let fprog = libc::sock_fprog {
        len: u16::try_from(filter.len())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        filter: filter.as_mut_ptr(),
    };
    // `fprog` points at `filter`, alive for the call; the kernel copies the program.
    set_option(sock, libc::SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog)
}

/// Hands a bound socket to the current executor's reactor.
pub fn adopt(sock: Socket) -> UdpSocket {
    // SAFETY: the fd comes from a live socket2::Socket whose ownership we give up here.
    unsafe { UdpSocket::from_raw_fd(sock.into_raw_fd()) }
}

/// Receive loop of one socket on one shard.
pub async fn recv_loop(shard: Rc<Shard>, sock: Rc<UdpSocket>) {
    // One slot more than the largest accepted message, so an oversized datagram shows up as
    // truncated (MSG_TRUNC) instead of being silently cut to an acceptable length.
    let slot = (shard.settings.core.limits.max_message_len + 1).min(MAX_DATAGRAM);
    let mut batch = RecvBatch::new(slot);
    let mut out = Outbox::new();
    let mut probe = [0u8; 1];
    let mut coalesce = Coalesce::new(shard.settings.coalesce);
    let fd = sock.as_raw_fd();
    loop {
        let n = match batch.recv(fd) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_icmp_error(&e) => {
                take_refusals(&shard, fd);
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "UDP receive failed");
                glommio::timer::sleep(ERROR_BACKOFF).await;
                continue;
            }
        };
        // Every batch counts towards the arrival rate, full ones too.
        let pause = if n > 0 {
            coalesce.after_batch(std::time::Instant::now(), n)
        } else {
            None
        };
        if n > 0 {
            EdgeCounters::add(&shard.edge().udp_in, n as u64);
            EdgeCounters::inc(&shard.edge().udp_recv_batches);
            for i in 0..n {
                let Some((addr, bytes)) = batch.get(i) else {
                    EdgeCounters::inc(&shard.edge().dropped_oversize);
                    continue;
                };
                let from = Peer {
                    transport: Transport::Udp,
                    addr,
                    conn: None,
                };
                shard.deliver(from, bytes, &mut out);
            }
            shard.flush(&mut out).await;
        }
        if n == RECV_BATCH {
            // Probably more queued: take it, but let the shard's other tasks run first if
            // this one has had the CPU for its share.
            glommio::yield_if_needed().await;
            continue;
        }
        if let Some(pause) = pause {
            // Traffic is flowing fast enough: let the next datagrams gather for a moment
            // and take them with one wake-up. If none came, the next round waits for one
            // below. Slower traffic goes straight to that wait (`coalesce.rs`).
            glommio::timer::sleep(pause).await;
            continue;
        }
        // The queue was empty when recvmmsg returned: wait until a datagram is there.
        // A peek with a source address, not glommio's `peek`: that one is for connected
        // sockets and fails at once with ENOTCONN on ours, which turned this wait into a
        // 1 ms poll (the error back-off): ~0.5 ms added to every reply and a wake-up per ms
        // on an idle shard. `peek_from_ring`, not `peek_from`: the latter first tries a
        // non-blocking `recvmsg`, a syscall that fails here every time since `recvmmsg`
        // just found the queue empty (vendor/glommio/HERALD.md, patch 5).
        match sock.peek_from_ring(&mut probe).await {
            Ok(_) => {}
            // An ICMP error arrived (it ends the wait): read it, then wait again.
            Err(e) if is_icmp_wait_error(&e) => {
                take_refusals(&shard, fd);
            }
            Err(e) => {
                tracing::debug!(error = %e, "UDP wait failed");
                glommio::timer::sleep(ERROR_BACKOFF).await;
            }
        }
    }
}

/// Reads the ICMP errors queued on this shard's socket `fd` and hands each refusal to the
/// shard ([`Shard::refused`]).
pub fn take_refusals(shard: &Shard, fd: RawFd) {
    read_refusals(fd, |dst, sent| shard.refused(dst, sent));
}

/// Receive slots for one `recvmmsg` call (headers are rebuilt per call, so nothing here
/// points into itself).
struct RecvBatch {
    slot: usize,
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    lens: Vec<u32>,
    flags: Vec<i32>,
    taken: usize,
}

impl RecvBatch {
    fn new(slot: usize) -> Self {
        RecvBatch {
            slot,
            // Zeroed pages are mapped lazily: only the bytes datagrams land in use memory.
            bufs: vec![0; slot * RECV_BATCH],
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
            addrs: vec![unsafe { std::mem::zeroed() }; RECV_BATCH],
            lens: vec![0; RECV_BATCH],
            flags: vec![0; RECV_BATCH],
            taken: 0,
        }
    }

    /// Takes up to [`RECV_BATCH`] queued datagrams without waiting.
    fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.taken = 0;
        let mut iovs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; RECV_BATCH];
        // SAFETY: mmsghdr is plain old data; all-zero is a valid (empty) header.
        let mut hdrs: [libc::mmsghdr; RECV_BATCH] = unsafe { std::mem::zeroed() };
        let base = self.bufs.as_mut_ptr();
        for i in 0..RECV_BATCH {
            // SAFETY: i * slot + slot <= bufs.len() by construction.
            iovs[i].iov_base = unsafe { base.add(i * self.slot) }.cast();
            iovs[i].iov_len = self.slot;
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: every header points at live buffers of the stated sizes for the call.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                RECV_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = r as usize;
        for (i, h) in hdrs.iter().enumerate().take(n) {
            self.lens[i] = h.msg_len;
            self.flags[i] = h.msg_hdr.msg_flags;
        }
        self.taken = n;
        Ok(n)
    }

    /// Datagram `i` of the last call: sender and bytes; None if it was truncated or its
    /// sender is not an IP address.
    fn get(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        if i >= self.taken || self.flags[i] & libc::MSG_TRUNC != 0 {
            return None;
        }
        let len = (self.lens[i] as usize).min(self.slot);
        let start = i * self.slot;
        Some((
            from_storage(&self.addrs[i])?,
            &self.bufs[start..start + len],
        ))
    }
}

fn from_storage(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(ss as *const libc::sockaddr_storage).cast() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(ss as *const libc::sockaddr_storage).cast() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                u32::from_be(a.sin6_flowinfo),
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn to_storage(addr: SocketAddr, ss: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
            let s: &mut libc::sockaddr_in =
                unsafe { &mut *(ss as *mut libc::sockaddr_storage).cast() };
            s.sin_family = libc::AF_INET as libc::sa_family_t;
            s.sin_port = a.port().to_be();
            s.sin_addr = libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            };
            s.sin_zero = [0; 8];
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above.
            let s: &mut libc::sockaddr_in6 =
                unsafe { &mut *(ss as *mut libc::sockaddr_storage).cast() };
            s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            s.sin6_port = a.port().to_be();
            s.sin6_flowinfo = a.flowinfo().to_be();
            s.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            s.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Destination sockaddrs of one `sendmmsg` call, reused by every flush of the shard thread.
struct SendScratch {
    addrs: Vec<libc::sockaddr_storage>,
}

thread_local! {
    static SEND_SCRATCH: RefCell<SendScratch> = RefCell::new(SendScratch {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        addrs: vec![unsafe { std::mem::zeroed() }; SEND_BATCH],
    });
}

/// Hands up to [`SEND_BATCH`] datagrams to the kernel without waiting. Returns how many it
/// took (a prefix of `msgs`); an error means it took none: the first one failed.
fn send_now(fd: RawFd, msgs: &[(SocketAddr, &[u8])]) -> io::Result<usize> {
    let n = msgs.len().min(SEND_BATCH);
    if n == 0 {
        return Ok(0);
    }
    SEND_SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let mut iovs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; SEND_BATCH];
        // SAFETY: mmsghdr is plain old data; all-zero is a valid (empty) header.
        let mut hdrs: [libc::mmsghdr; SEND_BATCH] = unsafe { std::mem::zeroed() };
        for (i, (dst, bytes)) in msgs.iter().take(n).enumerate() {
            let namelen = to_storage(*dst, &mut s.addrs[i]);
            // The kernel only reads through iov_base for a send.
            iovs[i].iov_base = bytes.as_ptr() as *mut libc::c_void;
            iovs[i].iov_len = bytes.len();
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&mut s.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = namelen;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: the first n headers point at live buffers of the stated sizes.
        let r =
            unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as usize)
        }
    })
}

/// Sends every datagram of `msgs` on `sock`, batched; counts what was sent and what failed.
/// Waits (through glommio) only for a datagram the kernel refused with EAGAIN. Returns
/// whether ICMP errors may wait in the socket's error queue: a send failed on one (see
/// [`is_icmp_error`]; that datagram is offered again), or a batch was cut short, which is
/// how `sendmmsg` reports an error past its first datagram.
pub async fn send_all(edge: &EdgeCounters, sock: &UdpSocket, msgs: &[(SocketAddr, &[u8])]) -> bool {
    let fd = sock.as_raw_fd();
    let mut i = 0;
    let mut errors_waiting = false;
    let mut past_errors = 0;
    while i < msgs.len() {
        match send_now(fd, &msgs[i..]) {
            Ok(0) => {
                // Nothing taken and no error: should not happen; do not loop on it.
                send_one(edge, sock, msgs[i]).await;
                i += 1;
            }
            Ok(k) => {
                EdgeCounters::add(&edge.udp_out, k as u64);
                EdgeCounters::inc(&edge.udp_send_batches);
                errors_waiting |= k < (msgs.len() - i).min(SEND_BATCH);
                i += k;
                past_errors = 0;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Socket buffer full: wait for room with this one, then batch again.
                send_one(edge, sock, msgs[i]).await;
                i += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_icmp_error(&e) && past_errors < MAX_SENDS_PAST_ERRORS => {
                // The kernel reported an ICMP error about an earlier datagram and sent
                // nothing: the same datagram again.
                errors_waiting = true;
                past_errors += 1;
            }
            Err(e) => {
                EdgeCounters::inc(&edge.udp_send_errors);
                tracing::debug!(dst = %msgs[i].0, error = %e, "UDP send failed");
                i += 1;
                past_errors = 0;
            }
        }
    }
    errors_waiting
}

async fn send_one(edge: &EdgeCounters, sock: &UdpSocket, (dst, bytes): (SocketAddr, &[u8])) {
    match sock.send_to(bytes, dst).await {
        Ok(_) => EdgeCounters::inc(&edge.udp_out),
        Err(e) => {
            EdgeCounters::inc(&edge.udp_send_errors);
            tracing::debug!(dst = %dst, error = %e, "UDP send failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel accepts the steering program and delivers by it: each SUBSCRIBE reaches
    /// the socket of its presentity's owner, whatever port it comes from.
    #[test]
    fn kernel_steers_requests_to_their_owner() {
        let shards = 3u16;
        let first = bind("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let addr = first.local_addr().unwrap().as_socket().unwrap();
        let mut socks = vec![first];
        for _ in 1..shards {
            socks.push(bind(addr, true).unwrap());
        }
        let prog = crate::core::steer::program(shards).unwrap();
        attach_steering(&socks[0], &prog).expect("kernel accepts the program");
        let socks: Vec<std::net::UdpSocket> = socks.into_iter().map(Into::into).collect();
        for s in &socks {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        }
        for i in 0..24 {
            let aor = format!("sip:user{i}@example.com");
            let owner =
                crate::core::shard_for(&sip_parser::Aor::from_normalised(aor.as_bytes()), shards);
            let msg = format!(
                "SUBSCRIBE {aor} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx{i}\r\n\r\n"
            );
            // A new source port each time: the 4-tuple hash alone would scatter them.
            let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            client.send_to(msg.as_bytes(), addr).unwrap();
            let mut buf = [0u8; 512];
            let (n, _) = socks[usize::from(owner.0)].recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], msg.as_bytes(), "{aor} reached shard {}", owner.0);
        }
    }

    #[test]
    fn sockaddr_round_trip() {
        for a in [
            "127.0.0.1:5060".parse::<SocketAddr>().unwrap(),
            "[::1]:5061".parse().unwrap(),
            "[fe80::1%2]:7".parse().unwrap(),
        ] {
            // SAFETY: all-zero sockaddr_storage is valid.
            let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            to_storage(a, &mut ss);
            assert_eq!(from_storage(&ss), Some(a));
        }
    }

    /// An executor as a shard's (1 MiB of I/O memory), on the test's thread.
    fn executor() -> glommio::LocalExecutor {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(1 << 20)
            .make()
            .unwrap()
    }

    /// The receive loop's wait must work on an unconnected socket: glommio's `peek` does not
    /// (ENOTCONN at once, which made the loop poll every `ERROR_BACKOFF`), `peek_from_ring`
    /// does, waits for a datagram that is not there yet, and leaves it queued for the next
    /// `recvmmsg`.
    #[test]
    fn wait_for_datagram_on_unconnected_socket() {
        executor().run(async {
            let sock = adopt(bind("127.0.0.1:0".parse().unwrap(), false).unwrap());
            let dst = sock.local_addr().unwrap();
            let mut probe = [0u8; 1];
            let e = sock.peek(&mut probe).await.unwrap_err();
            assert!(e.to_string().contains("connected"), "{e}");
            let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let txa = tx.local_addr().unwrap();
            tx.send_to(b"hello", dst).unwrap();
            let (n, from) = sock.peek_from_ring(&mut probe).await.unwrap();
            assert_eq!((n, from), (1, txa));
            // Sent 50 ms on, when the peek is most likely waiting in the ring: the wait ends
            // on its arrival.
            let sender = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                tx.send_to(b"later", dst).unwrap();
            });
            let mut batch = RecvBatch::new(16);
            assert_eq!(batch.recv(sock.as_raw_fd()).unwrap(), 1);
            assert_eq!(batch.get(0).unwrap().1, b"hello");
            let (n, from) = sock.peek_from_ring(&mut probe).await.unwrap();
            assert_eq!((n, from), (1, txa));
            sender.join().unwrap();
            assert_eq!(batch.recv(sock.as_raw_fd()).unwrap(), 1);
            assert_eq!(batch.get(0).unwrap().1, b"later");
        });
    }

    #[test]
    fn batch_send_and_receive_on_loopback() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dst = rx.local_addr().unwrap();
        let payloads: Vec<Vec<u8>> = (0..5).map(|i| vec![b'a' + i as u8; 10 + i]).collect();
        let msgs: Vec<(SocketAddr, &[u8])> = payloads.iter().map(|p| (dst, &p[..])).collect();
        assert_eq!(send_now(tx.as_raw_fd(), &msgs).unwrap(), 5);
        let mut batch = RecvBatch::new(12);
        // Loopback delivery is synchronous with the send: everything is queued already.
        let n = batch.recv(rx.as_raw_fd()).unwrap();
        assert_eq!(n, 5);
        for (i, p) in payloads.iter().enumerate() {
            let got = batch.get(i);
            if p.len() > 12 {
                assert!(
                    got.is_none(),
                    "datagram {i} is truncated and must be refused"
                );
            } else {
                let (from, bytes) = got.unwrap();
                assert_eq!(from, tx.local_addr().unwrap());
                assert_eq!(bytes, &p[..]);
            }
        }
        let e = batch.recv(rx.as_raw_fd()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    /// With `--udp-icmp-errors`, a datagram to a closed port comes back as a refusal naming
    /// its destination and its start; the next send, which the kernel fails with that
    /// pending error, is offered again and leaves; and the wait of the receive loop ends on
    /// the error instead of sleeping through it.
    #[test]
    fn icmp_port_unreachable_is_read_and_the_next_send_still_leaves() {
        executor().run(async {
            let sock = adopt(bind("127.0.0.1:0".parse().unwrap(), true).unwrap());
            let fd = sock.as_raw_fd();
            let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let gone = closed.local_addr().unwrap();
            drop(closed);
            let open = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let notify = [
                b"NOTIFY sip:w@h SIP/2.0\r\nVia: x\r\n".as_slice(),
                &[b'x'; 2000],
            ]
            .concat();
            let edge = EdgeCounters::default();
            assert!(!send_all(&edge, &sock, &[(gone, &notify)]).await);
            // Loopback answers at once; the wait ends with the pending error.
            let mut probe = [0u8; 1];
            let e = sock.peek_from_ring(&mut probe).await.unwrap_err();
            assert!(is_icmp_wait_error(&e), "{e}");
            // The error is set again by the next ICMP: provoke one, then send elsewhere.
            assert!(!send_all(&edge, &sock, &[(gone, b"second")]).await);
            std::thread::sleep(Duration::from_millis(20));
            assert!(send_all(&edge, &sock, &[(open.local_addr().unwrap(), b"hello")]).await);
            let mut buf = [0u8; 16];
            let (n, _) = open.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"hello", "the send past the error left");
            assert_eq!(
                edge.udp_send_errors
                    .load(std::sync::atomic::Ordering::Relaxed),
                0
            );
            let mut refused = Vec::new();
            let read = read_refusals(fd, |dst, sent| refused.push((dst, sent.to_vec())));
            assert_eq!(read, 2);
            assert_eq!(refused.len(), 2);
            assert_eq!(refused[0].0, gone);
            assert!(refused[0]
                .1
                .starts_with(b"NOTIFY sip:w@h SIP/2.0\r\nVia: x\r\n"));
            assert!(refused[0].1.len() >= 400 && refused[0].1.len() <= REFUSED_PREFIX);
            assert_eq!(refused[1], (gone, b"second".to_vec()));
            assert_eq!(read_refusals(fd, |_, _| panic!("queue is empty")), 0);
        });
    }

    #[test]
    fn only_unreachable_errors_are_refusals() {
        let ee = |origin, t, code| libc::sock_extended_err {
            ee_errno: 0,
            ee_origin: origin,
            ee_type: t,
            ee_code: code,
            ee_pad: 0,
            ee_info: 0,
            ee_data: 0,
        };
        let icmp = libc::SO_EE_ORIGIN_ICMP;
        let icmp6 = libc::SO_EE_ORIGIN_ICMP6;
        for (e, want) in [
            (ee(icmp, 3, 3), true),   // port unreachable
            (ee(icmp, 3, 1), true),   // host unreachable
            (ee(icmp, 3, 4), false),  // fragmentation needed: path MTU, not a refusal
            (ee(icmp, 11, 0), false), // time exceeded
            (ee(icmp, 12, 0), true),  // parameter problem
            (ee(icmp6, 1, 4), true),
            (ee(icmp6, 2, 0), false), // packet too big
            (ee(libc::SO_EE_ORIGIN_LOCAL, 0, 0), false),
        ] {
            assert_eq!(
                is_refusal(&e),
                want,
                "{:?}",
                (e.ee_origin, e.ee_type, e.ee_code)
            );
        }
    }
}
