//! The system calls of the scan engine's hot path, as safe wrappers: an epoll instance and a
//! non-blocking TCP socket that connects, reports its outcome and closes. Every `unsafe` of
//! the engine is here.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

fn last() -> io::Error {
    io::Error::last_os_error()
}

/// An epoll instance.
pub struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    /// A new instance with room for `batch` events per wait.
    pub fn new(batch: usize) -> io::Result<Epoll> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(last());
        }
        // SAFETY: fd was just created and is ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: epoll_event is plain data.
        let events = vec![unsafe { std::mem::zeroed() }; batch.max(1)];
        Ok(Epoll { fd, events })
    }

    /// Watches a socket once for writability (connect completion), tagged with `token`.
    /// One-shot: a socket that is reused is armed again for its next connect.
    pub fn arm(&self, sock: &mut Sock, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: (libc::EPOLLOUT | libc::EPOLLONESHOT) as u32, u64: token };
        let op = if sock.registered { libc::EPOLL_CTL_MOD } else { libc::EPOLL_CTL_ADD };
        // SAFETY: ev lives for the call; the socket is open and owned by the caller.
        if unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, sock.fd.as_raw_fd(), &mut ev) } < 0 {
            return Err(last());
        }
        sock.registered = true;
        Ok(())
    }

    /// Waits up to `timeout` and returns the (token, event flags) that are ready.
    pub fn wait(&mut self, timeout: Duration, out: &mut Vec<(u64, u32)>) -> io::Result<()> {
        out.clear();
        let ms = ceil_millis(timeout);
        // SAFETY: the events buffer is valid for its length.
        let n = unsafe {
            libc::epoll_wait(self.fd.as_raw_fd(), self.events.as_mut_ptr(), self.events.len() as i32, ms)
        };
        if n < 0 {
            let e = last();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e);
        }
        out.extend(self.events[..n as usize].iter().map(|e| (e.u64, e.events)));
        Ok(())
    }
}

/// A timeout in whole milliseconds for `epoll_wait`, rounded up: a wait shorter than a
/// millisecond is one millisecond, never zero (a zero timeout repeated until a sub-millisecond
/// wait has passed is a busy loop).
fn ceil_millis(timeout: Duration) -> i32 {
    timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
}

/// What starting a connect gave.
pub enum Start {
    /// Connected at once (loopback, usually).
    Open,
    /// In progress: wait for writability.
    Pending,
    /// Refused or unreachable at once (errno): see [`Sock::classify`].
    Failed(i32),
    /// No route: nothing was sent.
    NoRoute,
    /// Out of a local resource (descriptors, ephemeral ports): try again later.
    Again,
    /// Anything else.
    Fatal(io::Error),
}

/// A non-blocking TCP socket with `IP_RECVERR`/`IPV6_RECVERR` on, so that ICMP errors are
/// queued with their type and code ("administratively prohibited" and "host unreachable"
/// arrive as the same errno). After a refused connect it can be reset and connected again
/// ([`Sock::reset`]): reusing sockets saves their creation and teardown, which is most of the
/// kernel's cost of a probe (65,535 closed ports: 0.34 s against 0.57 s with fresh sockets).
pub struct Sock {
    fd: OwnedFd,
    v6: bool,
    registered: bool,
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; zeroed is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

impl Sock {
    /// A new socket of the family of `v6`.
    pub fn new(v6: bool) -> Result<Sock, Start> {
        let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
        // SAFETY: plain syscall; the result is checked.
        let fd =
            unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            let e = last();
            return Err(match e.raw_os_error() {
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => Start::Again,
                _ => Start::Fatal(e),
            });
        }
        // SAFETY: fd was just created and is ours.
        let sock = Sock { fd: unsafe { OwnedFd::from_raw_fd(fd) }, v6, registered: false };
        sock.set_int(
            if v6 { libc::SOL_IPV6 } else { libc::SOL_IP },
            if v6 { libc::IPV6_RECVERR } else { libc::IP_RECVERR },
            1,
        );
        Ok(sock)
    }

    /// Starts connecting to `addr`.
    pub fn start(&self, addr: SocketAddr) -> Start {
        let (ss, len) = sockaddr(addr);
        // SAFETY: ss holds a valid address of length len.
        let r =
            unsafe { libc::connect(self.fd.as_raw_fd(), (&ss as *const libc::sockaddr_storage).cast(), len) };
        if r == 0 {
            return Start::Open;
        }
        let e = last();
        match e.raw_os_error() {
            Some(libc::EINPROGRESS) => Start::Pending,
            Some(libc::ENETUNREACH) => Start::NoRoute,
            Some(libc::EADDRNOTAVAIL | libc::EAGAIN | libc::ENOBUFS | libc::ENOMEM) => Start::Again,
            Some(code) => Start::Failed(code),
            None => Start::Fatal(e),
        }
    }

    /// Returns a socket whose connect failed to the unconnected state (`connect(AF_UNSPEC)`),
    /// ready for [`Sock::start`] again. `false`: it cannot be reused; drop it.
    pub fn reset(&self) -> bool {
        // SAFETY: sockaddr is plain data; AF_UNSPEC dissolves the association.
        let mut un: libc::sockaddr = unsafe { std::mem::zeroed() };
        un.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
        // SAFETY: un is a valid sockaddr for the call.
        unsafe {
            libc::connect(self.fd.as_raw_fd(), &un, std::mem::size_of::<libc::sockaddr>() as libc::socklen_t)
                == 0
        }
    }

    fn set_int(&self, level: libc::c_int, name: libc::c_int, v: libc::c_int) {
        // SAFETY: setsockopt with an int value on our socket.
        unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }

    /// The connect's result once the socket is writable: `None` for connected, else errno.
    pub fn so_error(&self) -> io::Result<Option<i32>> {
        let mut err: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: err/len are valid for the call.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if r < 0 {
            return Err(last());
        }
        Ok((err != 0).then_some(err))
    }

    /// Linux queues the ICMP error of a TCP connect in `SYN_SENT` on the socket's error queue
    /// (with `IP_RECVERR` on every kernel, without it on recent ones): [`Sock::icmp_from_errqueue`]
    /// reads it, which also empties the queue before the socket is reused.
    /// Empties the error queue (an ICMP error left from an earlier connect of a reused socket).
    pub fn drain_errors(&self) {
        let _ = self.latest_icmp();
    }

    /// Empties the error queue and returns its newest ICMP error: older ones can only be left
    /// from earlier connects of a reused socket (a refusal by ICMP port-unreachable is not read).
    pub fn latest_icmp(&self) -> Option<(u8, u8)> {
        let mut last = None;
        for _ in 0..16 {
            match self.icmp_from_errqueue() {
                Some(e) => last = Some(e),
                None => break,
            }
        }
        last
    }

    /// Reads one ICMP error (type, code) from the error queue, if one is there.
    pub fn icmp_from_errqueue(&self) -> Option<(u8, u8)> {
        icmp_from_errqueue(self.fd.as_raw_fd(), self.v6)
    }

    /// Whether the socket connected to itself (a local port equal to the target, on loopback).
    pub fn is_self_connect(&self, addr: SocketAddr) -> bool {
        // SAFETY: sockaddr_storage is plain data.
        let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: ss/len are valid for the call.
        if unsafe {
            libc::getsockname(self.fd.as_raw_fd(), (&mut ss as *mut libc::sockaddr_storage).cast(), &mut len)
        } < 0
        {
            return false;
        }
        let (want, _) = sockaddr(addr);
        let n = len as usize;
        // compare family, port and address bytes
        // SAFETY: both are sockaddr_storage; we read n <= size_of bytes of each.
        unsafe {
            let a = std::slice::from_raw_parts((&ss as *const libc::sockaddr_storage).cast::<u8>(), n);
            let b = std::slice::from_raw_parts((&want as *const libc::sockaddr_storage).cast::<u8>(), n);
            a == b
        }
    }

    /// Closes with a reset (SO_LINGER 0) instead of a four-way close: for open ports.
    pub fn close_with_reset(self) {
        let l = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: setsockopt with a linger struct on our socket, then drop closes it.
        unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&l as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }
}

/// Reads one ICMP error (type, code) from the error queue of socket `fd`, if one is there.
pub(crate) fn icmp_from_errqueue(fd: std::os::fd::RawFd, v6: bool) -> Option<(u8, u8)> {
    let mut data = [0u8; 64];
    let mut control = [0u64; 64];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    // SAFETY: msghdr is plain data; the fields are set to buffers that outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: msg points at valid buffers.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
    if n < 0 {
        return None;
    }
    let (level, kind) =
        if v6 { (libc::SOL_IPV6, libc::IPV6_RECVERR) } else { (libc::SOL_IP, libc::IP_RECVERR) };
    let origin = if v6 { libc::SO_EE_ORIGIN_ICMP6 } else { libc::SO_EE_ORIGIN_ICMP };
    // SAFETY: the CMSG macros walk the control data the kernel wrote, within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == level && (*c).cmsg_type == kind {
                let ee = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::sock_extended_err);
                if ee.ee_origin == origin {
                    return Some((ee.ee_type, ee.ee_code));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    None
}

/// A non-blocking raw socket of one IP protocol (TCP for probes and answers, ICMP or ICMPv6
/// for errors), used by the SYN scan. Needs root or CAP_NET_RAW.
pub struct RawSock {
    sock: socket2::Socket,
}

/// Classic BPF opcodes (linux/filter.h).
mod bpf {
    pub const LD_B_ABS: u16 = 0x30;
    pub const LD_H_ABS: u16 = 0x28;
    pub const LD_H_IND: u16 = 0x48;
    pub const LDX_B_MSH: u16 = 0xb1;
    pub const JEQ_K: u16 = 0x15;
    pub const RET_K: u16 = 0x06;
}

impl RawSock {
    /// Opens a raw socket; `PermissionDenied` without the privilege.
    pub fn open(v6: bool, protocol: i32) -> io::Result<RawSock> {
        use socket2::{Domain, Protocol, Socket, Type};
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let sock = Socket::new(domain, Type::RAW, Some(Protocol::from(protocol)))?;
        sock.set_nonblocking(true)?;
        // answers arrive in bursts at high rates; a large buffer loses fewer (as root the
        // FORCE variant passes rmem_max)
        let want: libc::c_int = 8 << 20;
        // SAFETY: setsockopt with a valid int for its length; failure is harmless.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&want as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        Ok(RawSock { sock })
    }

    /// Keeps only TCP segments to `port` (IPv4 raw sockets see the IP header first).
    pub fn filter_tcp_dport(&self, v6: bool, port: u16) -> io::Result<()> {
        use socket2::SockFilter;
        let prog: Vec<SockFilter> = if v6 {
            vec![
                SockFilter::new(bpf::LD_H_ABS, 0, 0, 2),
                SockFilter::new(bpf::JEQ_K, 0, 1, u32::from(port)),
                SockFilter::new(bpf::RET_K, 0, 0, 0xffff),
                SockFilter::new(bpf::RET_K, 0, 0, 0),
            ]
        } else {
            vec![
                SockFilter::new(bpf::LDX_B_MSH, 0, 0, 0),
                SockFilter::new(bpf::LD_H_IND, 0, 0, 2),
                SockFilter::new(bpf::JEQ_K, 0, 1, u32::from(port)),
                SockFilter::new(bpf::RET_K, 0, 0, 0xffff),
                SockFilter::new(bpf::RET_K, 0, 0, 0),
            ]
        };
        self.sock.attach_filter(&prog)?;
        // what arrived before the filter was attached
        let mut buf = [0u8; 256];
        while let Ok(Some(_)) = self.recv_from(&mut buf) {}
        Ok(())
    }

    /// Sends one datagram (the kernel adds the IP header).
    pub fn send_to(&self, data: &[u8], dst: IpAddr) -> io::Result<()> {
        let addr = socket2::SockAddr::from(SocketAddr::new(dst, 0));
        self.sock.send_to(data, &addr).map(|_| ())
    }

    /// One datagram and its sender, `None` when there is none waiting.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<Option<(usize, IpAddr)>> {
        // SAFETY: an initialised byte buffer is a valid MaybeUninit buffer; recv only writes.
        let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) };
        match self.sock.recv_from(uninit) {
            Ok((n, from)) => Ok(from.as_socket().map(|a| (n, a.ip()))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads the datagrams waiting, up to [`BATCH`], in one `recvmmsg`; how many.
    pub fn recv_batch(&self, rx: &mut RxBatch) -> io::Result<usize> {
        let mut iovs: Vec<libc::iovec> = rx
            .bufs
            .iter_mut()
            .map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: RX_LEN })
            .collect();
        // SAFETY: mmsghdr is plain data; zeroed is a valid value.
        let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
        for (i, m) in msgs.iter_mut().enumerate() {
            m.msg_hdr.msg_name = (&mut rx.from[i] as *mut libc::sockaddr_storage).cast();
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            m.msg_hdr.msg_iov = &mut iovs[i];
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: the headers point at buffers of `rx` and iovecs that outlive the call.
        let r = unsafe {
            libc::recvmmsg(
                self.sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = last();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let n = r as usize;
        for (i, m) in msgs.iter().take(n).enumerate() {
            rx.lens[i] = m.msg_len as usize;
        }
        Ok(n)
    }

    /// The descriptor, for poll.
    pub fn fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }
}

/// A packet socket that receives the IPv4 TCP segments to one port into a memory-mapped
/// ring (`TPACKET_V3`), read without a system call per batch. The SYN scan reads the answers
/// of a large sweep from it: a raw socket costs the kernel a copy of every segment (`skb_clone`)
/// and the reader a `recvmmsg` per 64, about a tenth of the whole run on a full port range.
/// Setting up the ring and closing it each wait for an RCU grace period (10 to 40 ms here), so
/// [`RxRing::open`] belongs on a thread of its own and the ring is closed on one
/// ([`RxRing::close_in_background`]). Needs root or CAP_NET_RAW.
pub struct RxRing {
    fd: OwnedFd,
    map: *mut u8,
    /// The next block to read.
    next: usize,
}

// SAFETY: the mapping belongs to the ring alone and is only touched through `&mut self`.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Bytes in a block: about 450 answers, so that a block fills in a few milliseconds of a
    /// fast sweep and a slow one is handed over by the kernel's block timer.
    const BLOCK: usize = 1 << 16;
    /// Blocks in the ring (4 MiB, like the raw socket's receive buffer).
    const BLOCKS: usize = 64;
    /// The frame size the kernel checks the request against; frames are packed in a block.
    const FRAME: usize = 2048;

    /// A ring for the IPv4 TCP segments to `port`, on every interface. Blocks for a grace
    /// period.
    pub fn open(port: u16) -> io::Result<RxRing> {
        // protocol 0: nothing is received until the ring and its filter are in place (bind)
        // SAFETY: plain socket(2); the descriptor is owned below.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(last());
        }
        // SAFETY: raw was just created and is ours.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        set_opt(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &version)?;
        // a SOCK_DGRAM packet socket's filter sees the packet from its IP header: TCP (protocol
        // 6) to `port`, whole
        let prog = [
            libc::sock_filter { code: bpf::LD_B_ABS, jt: 0, jf: 0, k: 9 },
            libc::sock_filter { code: bpf::JEQ_K, jt: 0, jf: 4, k: libc::IPPROTO_TCP as u32 },
            libc::sock_filter { code: bpf::LDX_B_MSH, jt: 0, jf: 0, k: 0 },
            libc::sock_filter { code: bpf::LD_H_IND, jt: 0, jf: 0, k: 2 },
            libc::sock_filter { code: bpf::JEQ_K, jt: 0, jf: 1, k: u32::from(port) },
            libc::sock_filter { code: bpf::RET_K, jt: 0, jf: 0, k: 0xffff },
            libc::sock_filter { code: bpf::RET_K, jt: 0, jf: 0, k: 0 },
        ];
        let fprog =
            libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut libc::sock_filter };
        set_opt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)?;
        let req = libc::tpacket_req3 {
            tp_block_size: Self::BLOCK as u32,
            tp_block_nr: Self::BLOCKS as u32,
            tp_frame_size: Self::FRAME as u32,
            tp_frame_nr: (Self::BLOCK / Self::FRAME * Self::BLOCKS) as u32,
            tp_retire_blk_tov: 1,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        set_opt(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)?;
        // SAFETY: maps the ring the kernel just made for this socket, its whole length.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                Self::BLOCK * Self::BLOCKS,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(last());
        }
        let ring = RxRing { fd, map: map.cast(), next: 0 };
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
        // SAFETY: sll is a valid sockaddr_ll for the call.
        let r = unsafe {
            libc::bind(
                ring.fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(last());
        }
        Ok(ring)
    }

    /// The descriptor, for poll (readable when a block is ready).
    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Calls `f` with each packet received (from its IPv4 header) and the time it arrived
    /// (`CLOCK_REALTIME`, since the epoch), for up to `max_blocks` blocks the kernel has handed
    /// over; returns how many packets. Packets this host sent (seen on loopback) are skipped.
    pub fn drain(&mut self, max_blocks: usize, mut f: impl FnMut(&[u8], Duration)) -> usize {
        use std::sync::atomic::{AtomicU32, Ordering};
        let mut count = 0;
        for _ in 0..max_blocks {
            // SAFETY: `next` < BLOCKS, so the block lies inside the mapping.
            let block = unsafe { self.map.add(self.next * Self::BLOCK) };
            // SAFETY: the block descriptor starts the block; its status word is shared with the
            // kernel, so it is read and written atomically (u32, 4-aligned at the block start).
            let status = unsafe { AtomicU32::from_ptr(block.add(STATUS_AT).cast::<u32>()) };
            if status.load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: the block is ours until its status is given back; the kernel wrote a
            // valid descriptor and packet headers inside the block.
            unsafe {
                let desc = &*block.cast::<libc::tpacket_block_desc>();
                let num = desc.hdr.bh1.num_pkts as usize;
                let mut off = desc.hdr.bh1.offset_to_first_pkt as usize;
                for _ in 0..num {
                    if off + std::mem::size_of::<libc::tpacket3_hdr>() > Self::BLOCK {
                        break;
                    }
                    let h = &*block.add(off).cast::<libc::tpacket3_hdr>();
                    let ll = &*block.add(off + TPACKET3_ALIGNED).cast::<libc::sockaddr_ll>();
                    let start = off + usize::from(h.tp_net);
                    let len = h.tp_snaplen as usize;
                    if ll.sll_pkttype != libc::PACKET_OUTGOING && start + len <= Self::BLOCK {
                        let pkt = std::slice::from_raw_parts(block.add(start), len);
                        f(pkt, Duration::new(u64::from(h.tp_sec), h.tp_nsec));
                        count += 1;
                    }
                    if h.tp_next_offset == 0 {
                        break;
                    }
                    off += h.tp_next_offset as usize;
                }
            }
            status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.next = (self.next + 1) % Self::BLOCKS;
        }
        count
    }

    /// Closes the ring on a thread of its own, so that the grace period the kernel waits for
    /// delays no one (the process's exit still waits for it).
    pub fn close_in_background(self) {
        // without a thread, the closure and the ring in it are dropped here
        let _ = std::thread::Builder::new().name("ring-close".into()).spawn(move || drop(self));
    }
}

/// `setsockopt` with a value of plain data (an int, a filter program, a ring request).
fn set_opt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, val: &T) -> io::Result<()> {
    let len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` is a live reference to `len` readable bytes for the call.
    if unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, (val as *const T).cast(), len) } < 0 {
        return Err(last());
    }
    Ok(())
}

/// Where a block's status word is: `tpacket_block_desc.hdr.bh1.block_status`.
const STATUS_AT: usize = std::mem::offset_of!(libc::tpacket_block_desc, hdr);
/// Where a packet's link-layer address follows its `tpacket3_hdr` (TPACKET_ALIGN).
const TPACKET3_ALIGNED: usize = (std::mem::size_of::<libc::tpacket3_hdr>() + 15) & !15;

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `open` with this length and is not used after this.
        unsafe {
            libc::munmap(self.map.cast(), Self::BLOCK * Self::BLOCKS);
        }
    }
}

/// Packets in one batch at most: what one `sendmmsg` or `recvmmsg` moves.
pub const BATCH: usize = 64;

/// Room for a received packet: an ICMP error quotes the probe (IPv6: 40 + 8 + 40 + 24 bytes),
/// anything longer is cut (the kernel truncates, the parsers see a prefix).
const RX_LEN: usize = 512;

/// One probe: its TCP segment, source and destination.
type Seg = ([u8; crate::packet::SYN_LEN], IpAddr, IpAddr);

/// TCP segments waiting to go out on a raw socket, each with its addresses.
#[derive(Default)]
pub struct TxBatch {
    segs: Vec<Seg>,
}

impl TxBatch {
    /// Adds one segment from `src` to `dst`.
    pub fn push(&mut self, seg: [u8; crate::packet::SYN_LEN], src: IpAddr, dst: IpAddr) {
        self.segs.push((seg, src, dst));
    }

    /// Segments waiting.
    pub fn len(&self) -> usize {
        self.segs.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }
}

/// Threads that send batches of probes with `sendmmsg`.
///
/// On a virtual Ethernet (and on loopback) the kernel delivers a packet synchronously, in the
/// sender's context: the route, the receiving stack's TCP lookup and its reset, and the reset's
/// delivery to our raw socket all run inside the `sendmmsg` call, about three quarters of the
/// kernel's work of a closed port. Threads of their own for that leave the scan's thread free
/// to build probes and read answers, and spread that work over the CPUs. IPv4 threads each
/// send on a socket of their own with the IP header written here (`IPPROTO_RAW`): the kernel
/// sends those without the socket lock that serialises the senders of one ordinary raw socket
/// (taken around the whole transmission). IPv6 probes go out through one thread on the scan's
/// raw TCP socket.
///
/// The rate cap is kept by the caller: a probe enters a batch only with a token of the bucket,
/// batches go out at once, and the queue holds [`Transmitter::QUEUE`] batches at most, so the
/// wire never runs ahead of the tokens by more than that.
pub struct Transmitter {
    tx: Option<std::sync::mpsc::SyncSender<TxBatch>>,
    handles: Vec<std::thread::JoinHandle<()>>,
    failed: std::sync::Arc<std::sync::Mutex<Option<io::Error>>>,
}

impl Transmitter {
    /// Batches queued at most; a full queue makes [`Transmitter::send`] wait.
    pub const QUEUE: usize = 4;

    /// Starts the senders of one family: `threads` for IPv4, one for IPv6 (on a duplicate of
    /// `sock`'s descriptor).
    pub fn start(sock: &RawSock, v6: bool, threads: usize) -> io::Result<Transmitter> {
        use socket2::{Domain, Protocol, Socket, Type};
        let (tx, rx) = std::sync::mpsc::sync_channel::<TxBatch>(Self::QUEUE);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let failed = std::sync::Arc::new(std::sync::Mutex::new(None));
        let mut handles = Vec::new();
        let threads = if v6 { 1 } else { threads.max(1) };
        for k in 0..threads {
            // IPPROTO_RAW: send only (the kernel delivers nothing to it), IP header included
            let out = if v6 {
                sock.sock.try_clone()?
            } else {
                Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))?
            };
            let fail = std::sync::Arc::clone(&failed);
            let rx = std::sync::Arc::clone(&rx);
            let h = std::thread::Builder::new().name(format!("syn-tx-{k}")).spawn(move || {
                loop {
                    // the lock is held only while taking a batch
                    let next = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok(batch) = next else { return };
                    if let Err(e) = send_batch(out.as_raw_fd(), &batch.segs, !v6) {
                        if let Ok(mut f) = fail.lock() {
                            *f = Some(e);
                        }
                        return;
                    }
                }
            })?;
            handles.push(h);
        }
        Ok(Transmitter { tx: Some(tx), handles, failed })
    }

    /// Queues a batch (waits while the queue is full); the error of an earlier batch, if the
    /// thread stopped on one.
    pub fn send(&self, batch: TxBatch) -> io::Result<()> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        match self.tx.as_ref().map(|t| t.send(batch)) {
            Some(Ok(())) => Ok(()),
            _ => Err(self.failure().unwrap_or_else(|| io::Error::other("the packet sender stopped"))),
        }
    }

    /// The error the thread stopped on, if it did.
    pub fn failure(&self) -> Option<io::Error> {
        let f = self.failed.lock().ok()?;
        f.as_ref().map(|e| io::Error::new(e.kind(), e.to_string()))
    }
}

impl Drop for Transmitter {
    fn drop(&mut self) {
        // closing the queue ends the thread once it has sent what is queued
        self.tx = None;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// Whether a send error loses only that packet: a full buffer, a neighbour not resolved yet,
/// or a local firewall that dropped it (EPERM). The scan's rounds send it again.
pub fn lost_packet(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ENOBUFS
                | libc::EAGAIN
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EPERM
                | libc::EACCES
        )
    )
}

/// Length of a probe with its IPv4 header.
const V4_PROBE: usize = 20 + crate::packet::SYN_LEN;

/// Writes the IPv4 header of a probe; the kernel fills in the length, identification and
/// checksum of an `IPPROTO_RAW` packet.
fn ipv4_probe(seg: &[u8; crate::packet::SYN_LEN], src: IpAddr, dst: IpAddr) -> [u8; V4_PROBE] {
    let mut p = [0u8; V4_PROBE];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(V4_PROBE as u16).to_be_bytes());
    // an identification that varies, as nmap's does (the kernel leaves 0 on DF packets): the
    // upper half of the sequence number, itself a keyed cookie
    p[4..6].copy_from_slice(&seg[4..6]);
    p[6] = 0x40; // don't fragment, as the kernel sets on its own raw TCP packets
    p[8] = 64;
    p[9] = libc::IPPROTO_TCP as u8;
    if let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) {
        p[12..16].copy_from_slice(&s.octets());
        p[16..20].copy_from_slice(&d.octets());
    }
    p[20..].copy_from_slice(seg);
    p
}

/// Sends probes with as few `sendmmsg` calls as the kernel allows, with their IPv4 header
/// (`hdrincl`) or without; a packet that fails with a [`lost_packet`] error is skipped.
fn send_batch(fd: i32, segs: &[Seg], hdrincl: bool) -> io::Result<()> {
    for chunk in segs.chunks(BATCH) {
        let n = chunk.len();
        let mut addrs: Vec<(libc::sockaddr_storage, libc::socklen_t)> = Vec::with_capacity(n);
        let mut whole: Vec<[u8; V4_PROBE]> = Vec::with_capacity(if hdrincl { n } else { 0 });
        for (seg, src, dst) in chunk {
            addrs.push(sockaddr(SocketAddr::new(*dst, 0)));
            if hdrincl {
                whole.push(ipv4_probe(seg, *src, *dst));
            }
        }
        let mut iovs: Vec<libc::iovec> = if hdrincl {
            whole
                .iter()
                .map(|p| libc::iovec { iov_base: p.as_ptr() as *mut libc::c_void, iov_len: p.len() })
                .collect()
        } else {
            chunk
                .iter()
                .map(|(seg, _, _)| libc::iovec {
                    iov_base: seg.as_ptr() as *mut libc::c_void,
                    iov_len: seg.len(),
                })
                .collect()
        };
        // SAFETY: mmsghdr is plain data; zeroed is a valid value.
        let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; n];
        for (i, m) in msgs.iter_mut().enumerate() {
            m.msg_hdr.msg_name = (&mut addrs[i].0 as *mut libc::sockaddr_storage).cast();
            m.msg_hdr.msg_namelen = addrs[i].1;
            m.msg_hdr.msg_iov = &mut iovs[i];
            m.msg_hdr.msg_iovlen = 1;
        }
        let mut k = 0;
        while k < n {
            // SAFETY: every header points at an address and an iovec that live until the end
            // of this iteration; the packets they point at are only read.
            let r = unsafe { libc::sendmmsg(fd, msgs[k..].as_mut_ptr(), (n - k) as libc::c_uint, 0) };
            if r > 0 {
                k += r as usize;
                continue;
            }
            let e = last();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if !lost_packet(&e) {
                return Err(e);
            }
            k += 1;
        }
    }
    Ok(())
}

/// Buffers for one `recvmmsg`: up to [`BATCH`] packets and their senders.
pub struct RxBatch {
    bufs: Vec<[u8; RX_LEN]>,
    lens: Vec<usize>,
    from: Vec<libc::sockaddr_storage>,
}

impl Default for RxBatch {
    fn default() -> Self {
        // SAFETY: sockaddr_storage is plain data; zeroed is a valid value.
        let zero: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        RxBatch { bufs: vec![[0; RX_LEN]; BATCH], lens: vec![0; BATCH], from: vec![zero; BATCH] }
    }
}

impl RxBatch {
    /// Packet `i` and its sender (`None` for a sender of another family).
    pub fn get(&self, i: usize) -> (&[u8], Option<IpAddr>) {
        let pkt = &self.bufs[i][..self.lens[i].min(RX_LEN)];
        let ss = &self.from[i];
        let from = match i32::from(ss.ss_family) {
            libc::AF_INET => {
                // SAFETY: the kernel wrote a sockaddr_in (its family says so).
                let sin = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                Some(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, a sockaddr_in6.
                let sin6 = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                Some(IpAddr::from(sin6.sin6_addr.s6_addr))
            }
            _ => None,
        };
        (pkt, from)
    }
}

/// Waits until one of `fds` is readable or `timeout` passes.
pub fn poll_readable(fds: &[i32], timeout: Duration) -> io::Result<()> {
    let mut p: Vec<libc::pollfd> =
        fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    // ppoll takes the timeout to the nanosecond: a wait of 300 us is one, not a zero-timeout
    // poll repeated until the time passes (which burnt a CPU at a capped rate)
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: the pollfd array is valid for its length; ts outlives the call; no signal mask.
    let n = unsafe { libc::ppoll(p.as_mut_ptr(), p.len() as libc::nfds_t, &ts, std::ptr::null()) };
    if n < 0 {
        let e = last();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// A TCP port bound (not listening) on this host so that no local connection takes it while
/// the SYN scan uses it as its source port. The kernel answers SYN-ACKs to it with a reset.
pub fn reserve_port(v6: bool) -> io::Result<(socket2::Socket, u16)> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(if v6 { Domain::IPV6 } else { Domain::IPV4 }, Type::STREAM, None)?;
    if v6 {
        sock.set_only_v6(true)?;
    }
    let any: SocketAddr = if v6 {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    sock.bind(&any.into())?;
    let port = sock.local_addr()?.as_socket().map_or(0, |a| a.port());
    Ok((sock, port))
}

/// The source address the kernel would use towards `dst` (a connected UDP socket; nothing is
/// sent).
pub fn source_for(dst: IpAddr) -> io::Result<IpAddr> {
    let bind: SocketAddr = if dst.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(bind)?;
    s.connect(SocketAddr::new(dst, 9))?;
    Ok(s.local_addr()?.ip())
}

/// Finds the addresses that cannot be probed from this machine at all, before any probe: one
/// UDP socket per family is connected to each (a route lookup, no packet), as the kernel
/// would refuse a probe to a broadcast address (`EACCES`) or to an address it has no route to
/// (`ENETUNREACH`, `EHOSTUNREACH`). Such a host is reported down with the reason, as nmap
/// does, and the scan goes on.
#[derive(Default)]
pub(crate) struct RouteCheck {
    socks: [Option<std::net::UdpSocket>; 2],
    broadcasts: Option<Vec<IpAddr>>,
}

impl RouteCheck {
    /// Why `dst` cannot be probed, or `None` when it can.
    pub(crate) fn unprobeable(&mut self, dst: IpAddr) -> Option<portolan_model::Reason> {
        use portolan_model::Reason;
        let v6 = usize::from(dst.is_ipv6());
        if self.socks[v6].is_none() {
            let bind: SocketAddr = if v6 == 1 {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            };
            self.socks[v6] = std::net::UdpSocket::bind(bind).ok();
        }
        let sock = self.socks[v6].as_ref()?;
        let err = sock.connect(SocketAddr::new(dst, 9)).err()?;
        match err.raw_os_error() {
            Some(libc::ENETUNREACH | libc::EHOSTUNREACH) => Some(Reason::NoRoute),
            Some(libc::EACCES) => {
                let broadcasts = self.broadcasts.get_or_insert_with(broadcast_addresses);
                let limited = dst == IpAddr::V4(std::net::Ipv4Addr::BROADCAST);
                Some(if limited || broadcasts.contains(&dst) {
                    Reason::Broadcast
                } else {
                    Reason::NetProhibited
                })
            }
            _ => None,
        }
    }
}

/// The broadcast addresses of this machine's IPv4 subnets: each address's subnet with every
/// host bit set, as the kernel's local table has them (whether or not `brd` was given).
fn broadcast_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list that freeifaddrs releases below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let v4 = |sa: *const libc::sockaddr| -> Option<u32> {
        // SAFETY: a non-null sockaddr of the list; read as sockaddr_in only when AF_INET.
        let fam = i32::from(unsafe { (*sa).sa_family });
        (fam == libc::AF_INET).then(|| {
            // SAFETY: an AF_INET sockaddr is a sockaddr_in.
            u32::from_be(unsafe { (*sa.cast::<libc::sockaddr_in>()).sin_addr.s_addr })
        })
    };
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: cur is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null()
            && !ifa.ifa_netmask.is_null()
            && let (Some(a), Some(m)) = (v4(ifa.ifa_addr), v4(ifa.ifa_netmask))
            && m.leading_ones() < 31
        {
            out.push(IpAddr::V4(std::net::Ipv4Addr::from(a | !m)));
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: head came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// A directly connected Ethernet link towards a target: ARP (IPv4) or neighbour discovery
/// (IPv6) answer for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub ifindex: i32,
    /// Our hardware address on it.
    pub mac: [u8; 6],
    /// Our address on it in the target's subnet.
    pub src: IpAddr,
}

/// The Ethernet link whose subnet holds `dst`, if one does (not loopback, not point-to-point).
pub fn on_link(dst: IpAddr) -> Option<Link> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list that freeifaddrs releases below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return None;
    }
    let mut name: Option<(Vec<u8>, IpAddr)> = None;
    let mut macs: Vec<(Vec<u8>, i32, [u8; 6])> = Vec::new();
    let mut p = head;
    // SAFETY: walking the list getifaddrs returned; every pointer is checked for null and the
    // address structures are read per their family.
    unsafe {
        while !p.is_null() {
            let ifa = &*p;
            p = ifa.ifa_next;
            if ifa.ifa_addr.is_null() || ifa.ifa_flags & libc::IFF_LOOPBACK as u32 != 0 {
                continue;
            }
            let ifname = std::ffi::CStr::from_ptr(ifa.ifa_name).to_bytes().to_vec();
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_PACKET => {
                    let ll = &*(ifa.ifa_addr as *const libc::sockaddr_ll);
                    if ll.sll_hatype == 1 && ll.sll_halen == 6 {
                        let mut mac = [0u8; 6];
                        mac.copy_from_slice(&ll.sll_addr[..6]);
                        macs.push((ifname, ll.sll_ifindex, mac));
                    }
                }
                libc::AF_INET if !ifa.ifa_netmask.is_null() => {
                    let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
                    if let IpAddr::V4(d) = dst {
                        let (a, m) = (u32::from_be(a.sin_addr.s_addr), u32::from_be(m.sin_addr.s_addr));
                        if name.is_none() && a & m == u32::from(d) & m && u32::from(d) != a {
                            name = Some((ifname, IpAddr::V4(a.into())));
                        }
                    }
                }
                libc::AF_INET6 if !ifa.ifa_netmask.is_null() => {
                    let a = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in6);
                    if let IpAddr::V6(d) = dst {
                        let (a, m) = (
                            u128::from_be_bytes(a.sin6_addr.s6_addr),
                            u128::from_be_bytes(m.sin6_addr.s6_addr),
                        );
                        let link_local = a >> 118 == 0x3fa;
                        if name.is_none() && !link_local && a & m == u128::from(d) & m && u128::from(d) != a {
                            name = Some((ifname, IpAddr::V6(a.into())));
                        }
                    }
                }
                _ => {}
            }
        }
        libc::freeifaddrs(head);
    }
    let (ifname, src) = name?;
    let (_, ifindex, mac) = macs.into_iter().find(|(n, _, _)| *n == ifname)?;
    Some(Link { ifindex, mac, src })
}

/// A packet socket for ARP on every interface (root or CAP_NET_RAW).
pub struct ArpSock {
    fd: std::os::fd::OwnedFd,
}

const ETH_P_ARP: u16 = 0x0806;

impl ArpSock {
    /// Opens it, non-blocking.
    pub fn open() -> io::Result<ArpSock> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket(2); the descriptor is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_ARP.to_be()),
            )
        };
        if fd < 0 {
            return Err(last());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(ArpSock { fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) } })
    }

    /// Broadcasts "who has `target`" on `link`.
    pub fn request(&self, link: &Link, target: std::net::Ipv4Addr) -> io::Result<()> {
        let IpAddr::V4(src) = link.src else { return Ok(()) };
        let mut p = [0u8; 28];
        p[0..2].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
        p[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
        p[4] = 6;
        p[5] = 4;
        p[6..8].copy_from_slice(&1u16.to_be_bytes()); // request
        p[8..14].copy_from_slice(&link.mac);
        p[14..18].copy_from_slice(&src.octets());
        p[24..28].copy_from_slice(&target.octets());
        // SAFETY: sockaddr_ll is plain data.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_protocol = ETH_P_ARP.to_be();
        to.sll_ifindex = link.ifindex;
        to.sll_halen = 6;
        to.sll_addr[..6].fill(0xff);
        // SAFETY: buffer and address are valid for their lengths.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                p.as_ptr().cast(),
                p.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 { Err(last()) } else { Ok(()) }
    }

    /// The sender address of one ARP reply, `None` when none is waiting (other ARP traffic is
    /// skipped).
    pub fn reply(&self) -> Option<IpAddr> {
        let mut p = [0u8; 64];
        loop {
            // SAFETY: the buffer is valid for its length.
            let n = unsafe {
                libc::recv(self.fd.as_raw_fd(), p.as_mut_ptr().cast(), p.len(), libc::MSG_DONTWAIT)
            };
            if n < 28 {
                return None;
            }
            if p[0..2] == [0, 1] && p[2..4] == [8, 0] && p[6..8] == [0, 2] {
                return Some(IpAddr::from([p[14], p[15], p[16], p[17]]));
            }
        }
    }

    /// The descriptor, for poll.
    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// Sends an IPv6 neighbour solicitation for `target` on `link` through the raw ICMPv6
/// socket `fd` (to the target's solicited-node multicast group, hop limit 255, our hardware
/// address as option).
pub fn neighbour_solicit(fd: i32, link: &Link, target: std::net::Ipv6Addr) -> io::Result<()> {
    let t = target.octets();
    let group = std::net::Ipv6Addr::from([
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    ]);
    let mut p = [0u8; 32];
    p[0] = 135;
    p[8..24].copy_from_slice(&t);
    p[24] = 1; // source link-layer address option
    p[25] = 1;
    p[26..32].copy_from_slice(&link.mac);
    let hops: libc::c_int = 255;
    let ifindex: libc::c_int = link.ifindex;
    // SAFETY: setsockopt with ints for their lengths; sendto with valid buffers.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_MULTICAST_HOPS,
            (&hops as *const libc::c_int).cast(),
            4,
        );
        libc::setsockopt(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_MULTICAST_IF,
            (&ifindex as *const libc::c_int).cast(),
            4,
        );
        let to = socket2::SockAddr::from(SocketAddr::new(IpAddr::V6(group), 0));
        let n = libc::sendto(fd, p.as_ptr().cast(), p.len(), 0, to.as_ptr().cast(), to.len());
        if n < 0 {
            return Err(last());
        }
    }
    Ok(())
}
