//! Directly connected Ethernet links: which link a target is on, ARP requests and replies
//! (IPv4) and neighbour solicitations (IPv6), for host discovery as root.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use super::last;

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
