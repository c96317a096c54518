//! Routing questions asked of the kernel without sending a packet: the source address towards
//! a target, a source port reserved for the scan, and the targets no probe can reach.

use std::io;
use std::net::{IpAddr, SocketAddr};

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
