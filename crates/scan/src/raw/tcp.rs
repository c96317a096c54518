//! The connect scan's socket: a non-blocking TCP socket that connects, reports its outcome,
//! is reset for reuse after a refusal, and yields the ICMP details of its error queue.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{last, sockaddr};

/// What starting a connect gave.
pub enum Start {
    /// Connected at once (loopback, usually).
    Open,
    /// In progress: wait for writability.
    Pending,
    /// Refused or unreachable at once (errno; `probe::reason_for_errno` reads it).
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
    pub(super) fd: OwnedFd,
    v6: bool,
    /// Added to an epoll instance (`Epoll::arm` then modifies rather than adds).
    pub(super) registered: bool,
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

    /// Empties the error queue (an ICMP error left from an earlier connect of a reused socket).
    ///
    /// Linux queues the ICMP error of a TCP connect in `SYN_SENT` on the socket's error queue
    /// (with `IP_RECVERR` on every kernel, without it on recent ones): [`Sock::icmp_from_errqueue`]
    /// reads it, which also empties the queue before the socket is reused.
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
