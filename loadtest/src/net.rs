//! Batched UDP I/O: one `recvmmsg`/`sendmmsg` system call moves up to a batch of datagrams.
//!
//! Why: at 100k+ messages/s the per-datagram syscall cost of `recv_from`/`send_to` is what
//! limits a generator (SIPp sits near 20k calls/s here). Batching amortises it; several
//! sockets per thread spread the load over the server's `SO_REUSEPORT` sockets (the kernel
//! hashes the 4-tuple, so different source ports land on different server sockets).

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

/// Largest datagram we accept; SIP over UDP stays well below (RFC 3261 §18.1.1 MTU rule).
pub const MAX_DATAGRAM: usize = 9_000;

/// Most datagrams moved by one batched system call.
pub const MAX_BATCH: usize = 64;

/// Socket buffer size asked for (the kernel caps it at `net.core.{r,w}mem_max`).
pub const SOCKET_BUFFER: usize = 8 << 20;

/// Opens a UDP socket bound to `bind`. `reuse_port` lets several sockets (threads) share a port.
pub fn udp_socket(bind: SocketAddr, reuse_port: bool, nonblocking: bool) -> io::Result<UdpSocket> {
    let domain = if bind.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    // Best effort: a smaller buffer only means more drops under overload, which we count.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.set_nonblocking(nonblocking)?;
    s.bind(&bind.into())?;
    Ok(s.into())
}

/// Writes `addr` into a raw socket address; returns its length.
fn to_raw(addr: &SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr type.
            let sin =
                unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above.
            let sin6 =
                unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Reads a raw socket address filled in by the kernel.
fn from_raw(raw: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match raw.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: family says this is a sockaddr_in.
            let sin =
                unsafe { &*(raw as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: family says this is a sockaddr_in6.
            let sin6 =
                unsafe { &*(raw as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// `SO_TIMESTAMPNS` / `SCM_TIMESTAMPNS` (asm-generic and x86 value; not exported by the libc
/// crate for glibc targets).
const SO_TIMESTAMPNS: libc::c_int = 35;
/// Control bytes per received datagram: room for one `SCM_TIMESTAMPNS` message.
const CTRL_LEN: usize = 64;

/// Asks the kernel to stamp every datagram `fd` receives with its arrival time
/// (`RecvBatch::arrival_unix_ns`). Why: latencies are then measured from when the answer
/// reached the host, not from when this thread got around to reading it, so the generator
/// may batch its work (`--tick-us`) without adding its own delay to the figures.
pub fn enable_rx_timestamps(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: plain setsockopt with a c_int value that outlives the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Receive side: fixed slots, filled by one `recvmmsg`.
pub struct RecvBatch {
    data: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    lens: Vec<usize>,
    /// Control-message slots (`CTRL_LEN` bytes per datagram; u64s for cmsghdr alignment).
    ctrl: Vec<u64>,
    /// Kernel-facing descriptors, built once: they point into `data` and `addrs`, whose heap
    /// buffers never move (so moving the `RecvBatch` itself is fine).
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    n: usize,
}

// SAFETY: the raw pointers in `iov`/`hdrs` only point into buffers owned by the same value.
unsafe impl Send for RecvBatch {}

/// An empty placeholder (no buffers): lets the engine `mem::take` its batch cheaply.
impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            data: Vec::new(),
            addrs: Vec::new(),
            lens: Vec::new(),
            ctrl: Vec::new(),
            iov: Vec::new(),
            hdrs: Vec::new(),
            n: 0,
        }
    }
}

impl RecvBatch {
    pub fn new() -> Self {
        let mut b = RecvBatch {
            data: vec![0; MAX_BATCH * MAX_DATAGRAM],
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
            addrs: vec![unsafe { zeroed() }; MAX_BATCH],
            lens: vec![0; MAX_BATCH],
            ctrl: vec![0; MAX_BATCH * CTRL_LEN / 8],
            iov: Vec::with_capacity(MAX_BATCH),
            hdrs: Vec::with_capacity(MAX_BATCH),
            n: 0,
        };
        let base = b.data.as_mut_ptr();
        for i in 0..MAX_BATCH {
            b.iov.push(libc::iovec {
                // SAFETY: slot i lies inside `data` (MAX_BATCH * MAX_DATAGRAM bytes).
                iov_base: unsafe { base.add(i * MAX_DATAGRAM) }.cast(),
                iov_len: MAX_DATAGRAM,
            });
        }
        for i in 0..MAX_BATCH {
            // SAFETY: mmsghdr is plain old data.
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            h.msg_hdr.msg_iov = &mut b.iov[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_name = (&mut b.addrs[i] as *mut libc::sockaddr_storage).cast();
            // SAFETY: slot i of `ctrl` (CTRL_LEN bytes) lies inside it.
            h.msg_hdr.msg_control = unsafe { b.ctrl.as_mut_ptr().add(i * CTRL_LEN / 8) }.cast();
            b.hdrs.push(h);
        }
        b
    }

    /// Receives up to `MAX_BATCH` datagrams. `wait_one`: block until at least one arrives
    /// (honours `SO_RCVTIMEO`); otherwise return at once. Returns how many arrived (0 if none).
    pub fn recv(&mut self, fd: RawFd, wait_one: bool) -> io::Result<usize> {
        self.n = 0;
        if self.hdrs.is_empty() {
            // A `Default`-taken placeholder: nothing to receive into.
            return Ok(0);
        }
        for h in self.hdrs.iter_mut() {
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_controllen = CTRL_LEN as _;
        }
        let flags = if wait_one {
            libc::MSG_WAITFORONE
        } else {
            libc::MSG_DONTWAIT
        };
        // SAFETY: every header points at live buffers owned by self.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                MAX_BATCH as libc::c_uint,
                flags,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let n = r as usize;
        for (i, h) in self.hdrs.iter().enumerate().take(n) {
            self.lens[i] = h.msg_len as usize;
        }
        self.n = n;
        Ok(n)
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// When datagram `i` of the last batch reached the host (Unix-epoch ns), if its socket
    /// has `enable_rx_timestamps`.
    pub fn arrival_unix_ns(&self, i: usize) -> Option<u64> {
        debug_assert!(i < self.n);
        let hdr = &self.hdrs[i].msg_hdr;
        // SAFETY: the kernel filled `msg_control` (`msg_controllen` bytes) for this datagram;
        // the CMSG_* helpers stay within that length, and the timestamp is read unaligned.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(hdr);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == SO_TIMESTAMPNS {
                    let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                    return u64::try_from(ts.tv_sec)
                        .ok()
                        .map(|s| s * 1_000_000_000 + ts.tv_nsec as u64);
                }
                c = libc::CMSG_NXTHDR(hdr, c);
            }
        }
        None
    }

    /// Datagram `i` of the last batch and its source.
    pub fn get(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        debug_assert!(i < self.n);
        let start = i * MAX_DATAGRAM;
        (
            &self.data[start..start + self.lens[i]],
            from_raw(&self.addrs[i]),
        )
    }
}

/// Send side: datagrams are appended to one buffer and flushed with `sendmmsg`.
#[derive(Default)]
pub struct SendQueue {
    data: Vec<u8>,
    entries: Vec<(usize, usize, SocketAddr)>,
    /// First entry not yet sent (a partial flush leaves the rest for later).
    head: usize,
    /// Kernel-facing scratch, reused between flushes (allocated on first flush; every
    /// pointer in it is rewritten before each `sendmmsg`).
    addrs: Vec<libc::sockaddr_storage>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in the scratch vectors are rewritten before every use and only
// ever point into buffers owned by the same value.
unsafe impl Send for SendQueue {}

impl SendQueue {
    /// Queues one datagram built by `build` (which appends to the given buffer).
    pub fn push_with(&mut self, dst: SocketAddr, build: impl FnOnce(&mut Vec<u8>)) {
        let off = self.data.len();
        build(&mut self.data);
        let len = self.data.len() - off;
        // A builder that gave up wrote nothing: send nothing rather than an empty datagram.
        if len > 0 {
            self.entries.push((off, len, dst));
        }
    }

    /// Queues a copy of `bytes`.
    pub fn push(&mut self, dst: SocketAddr, bytes: &[u8]) {
        self.push_with(dst, |b| b.extend_from_slice(bytes));
    }

    pub fn pending(&self) -> usize {
        self.entries.len() - self.head
    }

    /// Sends as much as the socket takes. Returns datagrams sent; `Err` only on hard errors
    /// (the failed datagram is dropped and counted by the caller).
    pub fn flush(&mut self, fd: RawFd) -> io::Result<usize> {
        let mut sent_total = 0;
        while self.head < self.entries.len() {
            let n = (self.entries.len() - self.head).min(MAX_BATCH);
            if self.addrs.is_empty() {
                // SAFETY: plain old data; all-zero is valid.
                self.addrs = vec![unsafe { zeroed() }; MAX_BATCH];
                self.iov = vec![
                    libc::iovec {
                        iov_base: std::ptr::null_mut(),
                        iov_len: 0,
                    };
                    MAX_BATCH
                ];
                // SAFETY: as above.
                self.hdrs = vec![unsafe { zeroed() }; MAX_BATCH];
            }
            for i in 0..n {
                let (off, len, dst) = self.entries[self.head + i];
                // SAFETY: off..off+len lies inside `data`; the kernel only reads it.
                self.iov[i].iov_base = unsafe { self.data.as_mut_ptr().add(off) }.cast();
                self.iov[i].iov_len = len;
                let alen = to_raw(&dst, &mut self.addrs[i]);
                let h = &mut self.hdrs[i].msg_hdr;
                h.msg_iov = &mut self.iov[i];
                h.msg_iovlen = 1;
                h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
                h.msg_namelen = alen;
            }
            // SAFETY: headers point at buffers alive for the duration of the call.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs.as_mut_ptr(),
                    n as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => break,
                    _ => {
                        // Drop the datagram that failed so we make progress.
                        self.head += 1;
                        self.compact();
                        return Err(e);
                    }
                }
            }
            let r = r as usize;
            self.head += r;
            sent_total += r;
            if r < n {
                break;
            }
        }
        self.compact();
        Ok(sent_total)
    }

    fn compact(&mut self) {
        if self.head == self.entries.len() {
            self.entries.clear();
            self.data.clear();
            self.head = 0;
        }
    }
}

pub fn raw_fd(s: &UdpSocket) -> RawFd {
    s.as_raw_fd()
}

/// Waits until one of `fds` is readable or `timeout_ns` passes. Returns readable flags.
pub fn wait_readable(fds: &mut [libc::pollfd], timeout_ns: u64) -> io::Result<usize> {
    let ts = libc::timespec {
        tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
    };
    for f in fds.iter_mut() {
        f.revents = 0;
    }
    // SAFETY: fds is a valid slice of pollfd; ts lives across the call.
    let r = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(r as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_address_round_trip() {
        for a in ["127.0.0.1:5060", "[::1]:7000"] {
            let addr: SocketAddr = a.parse().unwrap();
            // SAFETY: plain old data.
            let mut raw: libc::sockaddr_storage = unsafe { zeroed() };
            to_raw(&addr, &mut raw);
            assert_eq!(from_raw(&raw), Some(addr));
        }
    }

    #[test]
    fn arrival_stamps_are_the_kernels() {
        let wall = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        };
        let a = udp_socket("127.0.0.1:0".parse().unwrap(), false, true).unwrap();
        let b = udp_socket("127.0.0.1:0".parse().unwrap(), false, true).unwrap();
        let plain = udp_socket("127.0.0.1:0".parse().unwrap(), false, true).unwrap();
        enable_rx_timestamps(raw_fd(&b)).unwrap();
        // The kernel turns its receive-path stamping on from a deferred work item.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let before = wall();
        let mut q = SendQueue::default();
        q.push(b.local_addr().unwrap(), b"stamped");
        q.push(plain.local_addr().unwrap(), b"plain");
        assert_eq!(q.flush(raw_fd(&a)).unwrap(), 2);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut rx = RecvBatch::new();
        assert_eq!(rx.recv(raw_fd(&b), false).unwrap(), 1);
        let at = rx.arrival_unix_ns(0).expect("stamp");
        // Arrived before it was read (20 ms later), after it was sent.
        assert!(at >= before && at + 10_000_000 < wall(), "{before} {at}");
        assert_eq!(rx.get(0).0, b"stamped");
        assert_eq!(rx.recv(raw_fd(&plain), false).unwrap(), 1);
        assert_eq!(rx.arrival_unix_ns(0), None);
    }

    #[test]
    fn batch_send_and_receive_on_loopback() {
        let a = udp_socket("127.0.0.1:0".parse().unwrap(), false, true).unwrap();
        let b = udp_socket("127.0.0.1:0".parse().unwrap(), false, true).unwrap();
        let b_addr = b.local_addr().unwrap();
        let mut q = SendQueue::default();
        for i in 0..10u8 {
            q.push(b_addr, &[i; 5]);
        }
        assert_eq!(q.flush(raw_fd(&a)).unwrap(), 10);
        assert_eq!(q.pending(), 0);
        let mut rx = RecvBatch::new();
        let mut got = 0;
        for _ in 0..100 {
            got += rx.recv(raw_fd(&b), false).unwrap();
            if got == 10 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(got, 10);
        let (d, src) = rx.get(0);
        assert_eq!(d.len(), 5);
        assert_eq!(src, Some(a.local_addr().unwrap()));
    }
}
