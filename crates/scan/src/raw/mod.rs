//! The system calls of the scan engine, as safe wrappers; every `unsafe` of the engine's I/O
//! is under this module, one file per concern:
//!
//! - [`epoll`]: an epoll instance (the connect workers' loop) and `ppoll` on a few descriptors
//!   (the packet worker's wait).
//! - [`tcp`]: the connect scan's non-blocking TCP socket (connect, outcome, reset for reuse,
//!   ICMP details from its error queue).
//! - [`socket`]: raw IP sockets of the SYN scan, with their BPF filter, read in `recvmmsg`
//!   batches.
//! - [`ring`]: the `AF_PACKET` `TPACKET_V3` receive ring of a large IPv4 sweep.
//! - [`send`]: the sender threads that hand SYN batches to the kernel with `sendmmsg`.
//! - [`route`]: the source address and port of probes, and the addresses no probe can reach.
//! - [`link`]: directly connected Ethernet links, ARP and IPv6 neighbour solicitation.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

mod bpf;
pub mod epoll;
pub mod link;
pub mod ring;
pub mod route;
pub mod send;
pub mod socket;
pub mod tcp;

pub use epoll::{Epoll, poll_readable};
pub use link::{ArpSock, Link, neighbour_solicit, on_link};
pub use ring::RxRing;
pub(crate) use route::RouteCheck;
pub use route::{reserve_port, source_for};
pub use send::{Transmitter, TxBatch, lost_packet};
pub use socket::{RawSock, RxBatch};
pub(crate) use tcp::icmp_from_errqueue;
pub use tcp::{Sock, Start};

/// Packets in one batch at most: what one `sendmmsg` or `recvmmsg` moves.
pub const BATCH: usize = 64;

fn last() -> io::Error {
    io::Error::last_os_error()
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

/// `setsockopt` with a value of plain data (an int, a filter program, a ring request).
fn set_opt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, val: &T) -> io::Result<()> {
    let len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` is a live reference to `len` readable bytes for the call.
    if unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, (val as *const T).cast(), len) } < 0 {
        return Err(last());
    }
    Ok(())
}
