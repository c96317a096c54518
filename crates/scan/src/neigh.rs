//! The kernel's neighbour table (ARP for IPv4, neighbour discovery for IPv6): the hardware
//! address of every on-link host the kernel has resolved — which it did for every host on a
//! directly connected Ethernet the scan sent to. A scan reports it as nmap does ("MAC
//! Address"), so that the two tools' reports of a local host agree. Read with one
//! `RTM_GETNEIGH` netlink dump; no packet is sent.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const NLMSG_DONE: u16 = 3;
const NLMSG_ERROR: u16 = 2;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
/// Entries still being resolved, or whose resolution failed, carry no usable address.
const NUD_INCOMPLETE: u16 = 0x01;
const NUD_FAILED: u16 = 0x20;

/// How long a read of the table is reused before it is read again.
const FRESH: Duration = Duration::from_millis(100);

/// A cached view of the neighbour table.
#[derive(Default)]
pub(crate) struct Neighbours {
    map: HashMap<IpAddr, [u8; 6]>,
    read_at: Option<Instant>,
}

impl Neighbours {
    /// The hardware address of `addr`, if the kernel has resolved it.
    pub(crate) fn lookup(&mut self, addr: IpAddr) -> Option<[u8; 6]> {
        if let Some(m) = self.map.get(&addr) {
            return Some(*m);
        }
        if self.read_at.is_none_or(|t| t.elapsed() >= FRESH) {
            self.map = dump().unwrap_or_default();
            self.read_at = Some(Instant::now());
        }
        self.map.get(&addr).copied()
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Every resolved entry of the table, IPv4 and IPv6.
fn dump() -> io::Result<HashMap<IpAddr, [u8; 6]>> {
    // SAFETY: a plain socket call; the descriptor is owned below.
    let fd =
        unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // nlmsghdr (16 bytes) + ndmsg (12 bytes), family AF_UNSPEC: both tables
    let mut req = [0u8; 28];
    req[0..4].copy_from_slice(&28u32.to_ne_bytes());
    req[4..6].copy_from_slice(&RTM_GETNEIGH.to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    req[6..8].copy_from_slice(&flags.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // SAFETY: req is valid for its length.
    let sent = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = HashMap::new();
    let mut buf = vec![0u8; 64 * 1024];
    // bounded: a dump ends with NLMSG_DONE; a table of a million entries is ~100 MiB of reads
    for _ in 0..100_000 {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let msgs = &buf[..n as usize];
        let mut at = 0;
        while at + 16 <= msgs.len() {
            let len = u32::from_ne_bytes([msgs[at], msgs[at + 1], msgs[at + 2], msgs[at + 3]]) as usize;
            let kind = u16::from_ne_bytes([msgs[at + 4], msgs[at + 5]]);
            if len < 16 || at + len > msgs.len() {
                return Ok(out);
            }
            match kind {
                NLMSG_DONE | NLMSG_ERROR => return Ok(out),
                RTM_NEWNEIGH => {
                    if let Some((ip, mac)) = entry(&msgs[at + 16..at + len]) {
                        out.insert(ip, mac);
                    }
                }
                _ => {}
            }
            at += align4(len);
        }
    }
    Ok(out)
}

/// One `ndmsg` and its attributes: the address and hardware address of a resolved entry.
fn entry(m: &[u8]) -> Option<(IpAddr, [u8; 6])> {
    let head = m.get(..12)?;
    let state = u16::from_ne_bytes([head[8], head[9]]);
    if state & (NUD_INCOMPLETE | NUD_FAILED) != 0 || state == 0 {
        return None;
    }
    let (mut dst, mut mac) = (None, None);
    let mut at = 12;
    while at + 4 <= m.len() {
        let len = usize::from(u16::from_ne_bytes([m[at], m[at + 1]]));
        let kind = u16::from_ne_bytes([m[at + 2], m[at + 3]]);
        if len < 4 || at + len > m.len() {
            break;
        }
        let value = &m[at + 4..at + len];
        match (kind, value.len()) {
            (NDA_DST, 4) => dst = <[u8; 4]>::try_from(value).ok().map(IpAddr::from),
            (NDA_DST, 16) => dst = <[u8; 16]>::try_from(value).ok().map(IpAddr::from),
            (NDA_LLADDR, 6) => mac = <[u8; 6]>::try_from(value).ok(),
            _ => {}
        }
        at += align4(len);
    }
    Some((dst?, mac?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_read_without_error() {
        // whatever this machine's table holds, the dump parses and ends
        assert!(dump().is_ok());
    }

    #[test]
    fn entries_need_an_address_and_a_resolved_state() {
        let mut m = vec![0u8; 12];
        m[8..10].copy_from_slice(&0x02u16.to_ne_bytes()); // NUD_REACHABLE
        let attr = |kind: u16, v: &[u8]| {
            let mut a = ((4 + v.len()) as u16).to_ne_bytes().to_vec();
            a.extend(kind.to_ne_bytes());
            a.extend(v);
            a.resize(align4(a.len()), 0);
            a
        };
        m.extend(attr(NDA_DST, &[198, 18, 1, 2]));
        m.extend(attr(NDA_LLADDR, &[2, 0, 0, 0, 0, 1]));
        assert_eq!(entry(&m), Some((IpAddr::from([198, 18, 1, 2]), [2, 0, 0, 0, 0, 1])));
        m[8..10].copy_from_slice(&NUD_FAILED.to_ne_bytes());
        assert_eq!(entry(&m), None);
        assert_eq!(entry(&m[..5]), None);
    }
}
