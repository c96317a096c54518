//! A hand-written `NETLINK_SOCK_DIAG` client for TCP and UDP over IPv4 and IPv6.
//!
//! Why not the `netlink-packet-sock-diag` crate: it has no `INET_DIAG_CGROUP_ID` attribute
//! and no `TCPF_BOUND_INACTIVE` state, and it allocates a message and an attribute vector per
//! socket. Here one 32 KiB buffer is reused for the whole dump and each reply is decoded in
//! place (72 bytes of `inet_diag_msg` plus two attributes), which keeps a 100k-socket dump
//! near the kernel's own cost.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, OwnedFd};

use portolan_model::Transport;

use crate::Error;
use crate::sys;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const INET_DIAG_SKV6ONLY: u16 = 11;
const INET_DIAG_CGROUP_ID: u16 = 21;

/// TCP states as the kernel numbers them.
pub mod state {
    /// Connected.
    pub const ESTABLISHED: u8 = 1;
    /// Closed (for UDP: unconnected).
    pub const CLOSE: u8 = 7;
    /// Listening.
    pub const LISTEN: u8 = 10;
    /// Bound, never listened (kernel 6.x).
    pub const BOUND_INACTIVE: u8 = 13;
}

/// Bit mask of a state for `idiag_states`.
pub const fn mask(s: u8) -> u32 {
    1 << s
}

/// Every state from ESTABLISHED to NEW_SYN_RECV, without BOUND_INACTIVE.
pub const ALL_CONNECTION_STATES: u32 = 0x1ffe;

/// One socket as the kernel reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSocket {
    /// TCP or UDP.
    pub transport: Transport,
    /// Kernel state number.
    pub state: u8,
    /// Local address.
    pub src: IpAddr,
    /// Local port.
    pub sport: u16,
    /// Peer address.
    pub dst: IpAddr,
    /// Peer port.
    pub dport: u16,
    /// Bound device index, 0 for none.
    pub ifindex: u32,
    /// Socket uid.
    pub uid: u32,
    /// Socket inode.
    pub inode: u64,
    /// `IPV6_V6ONLY`, for IPv6 sockets.
    pub v6only: Option<bool>,
    /// cgroup id of the creator.
    pub cgroup_id: Option<u64>,
    /// True when the socket came from the bound-but-inactive walk.
    pub bound_inactive: bool,
}

/// An open `NETLINK_SOCK_DIAG` socket with its receive buffer.
pub struct Diag {
    fd: OwnedFd,
    buf: Vec<u8>,
    seq: u32,
}

impl Diag {
    /// Opens a sock_diag socket in the calling thread's network namespace.
    pub fn open() -> Result<Diag, Error> {
        let fd = sys::netlink_socket(libc::NETLINK_SOCK_DIAG)
            .map_err(|source| Error::SockDiag { op: "socket", source })?;
        Ok(Diag { fd, buf: vec![0u8; 32 * 1024], seq: 0 })
    }

    /// Dumps sockets of one transport and family whose state is in `states`, appending them.
    pub fn dump(
        &mut self,
        transport: Transport,
        ipv6: bool,
        states: u32,
        out: &mut Vec<RawSocket>,
    ) -> Result<(), Error> {
        self.dump_with(transport, ipv6, states, &mut |s| out.push(s))
    }

    /// Dumps sockets of one transport and family whose state is in `states`, handing each to
    /// `f` as it is decoded (nothing is buffered beyond one netlink datagram).
    pub fn dump_with(
        &mut self,
        transport: Transport,
        ipv6: bool,
        states: u32,
        f: &mut dyn FnMut(RawSocket),
    ) -> Result<(), Error> {
        self.seq = self.seq.wrapping_add(1);
        let mut req = [0u8; 16 + 56];
        let total = req.len() as u32;
        req[0..4].copy_from_slice(&total.to_ne_bytes());
        req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        req[16] = if ipv6 { libc::AF_INET6 as u8 } else { libc::AF_INET as u8 };
        req[17] = match transport {
            Transport::Udp => libc::IPPROTO_UDP as u8,
            _ => libc::IPPROTO_TCP as u8,
        };
        req[20..24].copy_from_slice(&states.to_ne_bytes());
        sys::netlink_send(self.fd.as_fd(), &req).map_err(|source| Error::SockDiag { op: "send", source })?;
        let bound_walk = states & mask(state::BOUND_INACTIVE) != 0;
        loop {
            let n = sys::recv(self.fd.as_fd(), &mut self.buf)
                .map_err(|source| Error::SockDiag { op: "recv", source })?;
            if n == 0 {
                return Err(Error::SockDiag {
                    op: "recv",
                    source: io::Error::new(io::ErrorKind::UnexpectedEof, "netlink closed"),
                });
            }
            if parse_batch(&self.buf[..n], transport, ipv6, bound_walk, f)? {
                return Ok(());
            }
        }
    }
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_ne_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// Decodes one datagram of netlink messages; returns true at NLMSG_DONE.
fn parse_batch(
    mut b: &[u8],
    transport: Transport,
    ipv6: bool,
    bound_walk: bool,
    out: &mut dyn FnMut(RawSocket),
) -> Result<bool, Error> {
    let truncated = || Error::SockDiag {
        op: "decode",
        source: io::Error::new(io::ErrorKind::InvalidData, "truncated netlink message"),
    };
    while b.len() >= 16 {
        let len = u32_at(b, 0) as usize;
        let kind = u16_at(b, 4);
        if len < 16 || len > b.len() {
            return Err(truncated());
        }
        let payload = &b[16..len];
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let code = if payload.len() >= 4 { u32_at(payload, 0) as i32 } else { -libc::EIO };
                if code != 0 {
                    return Err(Error::SockDiag { op: "dump", source: io::Error::from_raw_os_error(-code) });
                }
            }
            SOCK_DIAG_BY_FAMILY => {
                if payload.len() < 72 {
                    return Err(truncated());
                }
                out(decode(payload, transport, ipv6, bound_walk));
            }
            _ => {}
        }
        let step = (len + 3) & !3;
        b = b.get(step..).unwrap_or(&[]);
    }
    Ok(false)
}

fn addr(bytes: &[u8], ipv6: bool) -> IpAddr {
    if ipv6 {
        let mut a = [0u8; 16];
        a.copy_from_slice(&bytes[..16]);
        IpAddr::V6(Ipv6Addr::from(a))
    } else {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    }
}

/// Decodes an `inet_diag_msg` (at least 72 bytes) and its attributes.
fn decode(p: &[u8], transport: Transport, ipv6_req: bool, bound_walk: bool) -> RawSocket {
    let family = p[0];
    let ipv6 = if family == libc::AF_INET6 as u8 {
        true
    } else if family == libc::AF_INET as u8 {
        false
    } else {
        ipv6_req
    };
    // inet_diag_sockid at offset 4: sport(be16) dport(be16) src[16] dst[16] if(u32) cookie[8]
    let sport = u16::from_be_bytes([p[4], p[5]]);
    let dport = u16::from_be_bytes([p[6], p[7]]);
    let src = addr(&p[8..24], ipv6);
    let dst = addr(&p[24..40], ipv6);
    let ifindex = u32_at(p, 40);
    let uid = u32_at(p, 64);
    let inode = u64::from(u32_at(p, 68));
    let mut v6only = None;
    let mut cgroup_id = None;
    let mut a = &p[72..];
    while a.len() >= 4 {
        let alen = u16_at(a, 0) as usize;
        let atype = u16_at(a, 2) & 0x3fff;
        if alen < 4 || alen > a.len() {
            break;
        }
        let data = &a[4..alen];
        match atype {
            INET_DIAG_SKV6ONLY if !data.is_empty() => v6only = Some(data[0] != 0),
            INET_DIAG_CGROUP_ID if data.len() >= 8 => {
                let mut v = [0u8; 8];
                v.copy_from_slice(&data[..8]);
                cgroup_id = Some(u64::from_ne_bytes(v));
            }
            _ => {}
        }
        a = a.get((alen + 3) & !3..).unwrap_or(&[]);
    }
    let state = p[1];
    RawSocket {
        transport,
        state,
        src,
        sport,
        dst,
        dport,
        ifindex,
        uid,
        inode,
        v6only,
        cgroup_id,
        bound_inactive: bound_walk && transport == Transport::Tcp && state == state::CLOSE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, failure_persistence: None, ..Default::default() })]

        /// A netlink datagram of any bytes (a kernel this code has not met, or garbage) is
        /// decoded or refused as truncated, never a panic; a message that claims a valid
        /// length reaches the socket decoder whatever its attributes say.
        #[test]
        fn arbitrary_netlink_never_panics(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            len_ok in proptest::prelude::any::<bool>(),
        ) {
            let mut b = body.clone();
            if len_ok && b.len() >= 16 + 72 {
                // a well-framed SOCK_DIAG_BY_FAMILY message around arbitrary content
                let n = b.len() as u32;
                b[0..4].copy_from_slice(&n.to_ne_bytes());
                b[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
            }
            for v6 in [false, true] {
                let _ = parse_batch(&b, Transport::Tcp, v6, false, &mut |_| {});
            }
        }
    }

    #[test]
    fn finds_a_listener_of_our_own_with_its_attributes() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut d = Diag::open().unwrap();
        let mut out = Vec::new();
        d.dump(Transport::Tcp, false, mask(state::LISTEN), &mut out).unwrap();
        let me = out.iter().find(|s| s.sport == port).expect("our listener");
        assert_eq!(me.state, state::LISTEN);
        assert_eq!(me.src, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(me.uid, crate::sys::geteuid());
        assert!(me.inode > 0);
        assert!(me.cgroup_id.is_some());
    }

    #[test]
    fn truncated_replies_are_errors_not_panics() {
        let mut out = Vec::new();
        let mut msg = vec![0u8; 40];
        msg[0..4].copy_from_slice(&40u32.to_ne_bytes());
        msg[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        let mut push = |s| out.push(s);
        assert!(parse_batch(&msg, Transport::Tcp, false, false, &mut push).is_err());
        msg[0..4].copy_from_slice(&400u32.to_ne_bytes());
        assert!(parse_batch(&msg, Transport::Tcp, false, false, &mut push).is_err());
        assert!(!parse_batch(&[1, 2, 3], Transport::Tcp, false, false, &mut push).unwrap());
    }
}
