//! The UDP scan's probes and socket.
//!
//! A UDP port answers only when the datagram means something to the service behind it, so the
//! common services get a request of their own protocol (written here from the protocols'
//! specifications: RFC 1035, RFC 5905, RFC 1157, RFC 1002, UPnP's SSDP, RFC 6762, RFC 1350,
//! RFC 2408, RFC 5531, RFC 3261); every other port gets an empty datagram, as nmap sends.
//!
//! No raw socket is needed: one UDP socket per address family, bound to a reserved port, sends
//! every probe and receives every reply, and with `IP_RECVERR`/`IPV6_RECVERR` the kernel
//! queues each ICMP error on it with the destination (address and port) of the datagram that
//! caused it. So `-sU` works without root, and a reply can only be matched to a probe that
//! this socket sent.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

/// The request sent to a UDP port: a protocol payload for the services that need one, else
/// empty.
pub fn payload(port: u16) -> &'static [u8] {
    match port {
        53 => DNS_VERSION_BIND,
        5353 => MDNS,
        69 => TFTP_READ,
        111 | 2049 => RPC_NULL_PORTMAP,
        123 => NTP_CLIENT,
        137 => NBNS_STATUS,
        161 => SNMP_V1_GET,
        500 => IKE_SA_INIT,
        1900 => SSDP_MSEARCH,
        5060 => SIP_OPTIONS,
        11211 => MEMCACHED_STATS,
        _ => &[],
    }
}

/// A DNS query (RFC 1035) for `version.bind` TXT in class CHAOS: every DNS server answers it,
/// if only with an error.
const DNS_VERSION_BIND: &[u8] = &[
    0x70, 0x6c, // id
    0x01, 0x00, // standard query, recursion desired
    0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 1 question
    7, b'v', b'e', b'r', b's', b'i', b'o', b'n', 4, b'b', b'i', b'n', b'd', 0, //
    0x00, 0x10, // TXT
    0x00, 0x03, // CH
];

/// An mDNS query (RFC 6762) for the DNS-SD service list, asking for a unicast answer.
const MDNS: &[u8] = &[
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    9, b'_', b's', b'e', b'r', b'v', b'i', b'c', b'e', b's', 7, b'_', b'd', b'n', b's', b'-', b's', b'd', 4,
    b'_', b'u', b'd', b'p', 5, b'l', b'o', b'c', b'a', b'l', 0, //
    0x00, 0x0c, // PTR
    0x80, 0x01, // IN, unicast response wanted
];

/// A TFTP read request (RFC 1350) for a file that does not exist: a server answers with an
/// error packet.
const TFTP_READ: &[u8] = b"\x00\x01portolan-probe\x00octet\x00";

/// An ONC RPC (RFC 5531) call of procedure 0 (NULL) of the portmapper, program 100000
/// version 2: portmappers answer it, and NFS servers answer with a program mismatch.
const RPC_NULL_PORTMAP: &[u8] = &[
    0x50, 0x54, 0x4c, 0x01, // xid
    0, 0, 0, 0, // call
    0, 0, 0, 2, // RPC version 2
    0, 1, 0x86, 0xa0, // program 100000
    0, 0, 0, 2, // version 2
    0, 0, 0, 0, // procedure 0
    0, 0, 0, 0, 0, 0, 0, 0, // AUTH_NULL credentials
    0, 0, 0, 0, 0, 0, 0, 0, // AUTH_NULL verifier
];

/// An NTP client request (RFC 5905): version 4, mode 3, the rest zero.
const NTP_CLIENT: &[u8] = &[
    0x23, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// A NetBIOS name service node status request (RFC 1002) for the wildcard name `*`.
const NBNS_STATUS: &[u8] = &[
    0x50, 0x54, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    0x20, b'C', b'K', b'A', b'A', b'A', b'A', b'A', b'A', b'A', b'A', b'A', b'A', b'A', b'A', b'A', b'A',
    b'A', b'A', b'A', b'A', b'A', b'A', b'A', b'A', b'A', b'A', b'A', b'A', b'A', b'A', b'A', b'A',
    0x00, //
    0x00, 0x21, // NBSTAT
    0x00, 0x01, // IN
];

/// An SNMPv1 GetRequest (RFC 1157) for sysDescr.0 with the community `public`.
const SNMP_V1_GET: &[u8] = &[
    0x30, 0x29, // SEQUENCE
    0x02, 0x01, 0x00, // version 1 (0)
    0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c', // community
    0xa0, 0x1c, // GetRequest PDU
    0x02, 0x04, 0x50, 0x54, 0x4c, 0x01, // request id
    0x02, 0x01, 0x00, // error status
    0x02, 0x01, 0x00, // error index
    0x30, 0x0e, 0x30, 0x0c, // varbind list, varbind
    0x06, 0x08, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x01, 0x01, 0x00, // 1.3.6.1.2.1.1.1.0
    0x05, 0x00, // NULL
];

/// An ISAKMP (RFC 2408) Main Mode header with one SA proposal: an IKE daemon answers with its
/// own proposal or a notification.
const IKE_SA_INIT: &[u8] = &[
    0x50, 0x4f, 0x52, 0x54, 0x4f, 0x4c, 0x41, 0x4e, // initiator cookie
    0, 0, 0, 0, 0, 0, 0, 0,    // responder cookie
    0x01, // next payload: SA
    0x10, // version 1.0
    0x02, // exchange: identity protection (main mode)
    0x00, // flags
    0, 0, 0, 0, // message id
    0, 0, 0, 0x50, // length 80
    // SA payload
    0x00, 0x00, 0x00, 0x34, // last payload, length 52
    0, 0, 0, 1, // DOI IPsec
    0, 0, 0, 1, // situation: identity only
    // proposal
    0x00, 0x00, 0x00, 0x28, 0x01, 0x01, 0x00, 0x01, // last, len 40, #1, ISAKMP, spi 0, 1 transform
    // transform
    0x00, 0x00, 0x00, 0x20, 0x01, 0x01, 0x00, 0x00, // last, len 32, #1, KEY_IKE
    0x80, 0x01, 0x00, 0x07, // encryption: AES-CBC
    0x80, 0x0e, 0x00, 0x80, // key length 128
    0x80, 0x02, 0x00, 0x02, // hash: SHA1
    0x80, 0x03, 0x00, 0x01, // auth: pre-shared key
    0x80, 0x04, 0x00, 0x02, // group 2
    0x80, 0x0b, 0x00, 0x01, // life type: seconds
    0x80, 0x0c, 0x0e, 0x10, // 3600
];

/// An SSDP discovery request (UPnP Device Architecture).
const SSDP_MSEARCH: &[u8] =
    b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n";

/// A SIP OPTIONS request (RFC 3261).
const SIP_OPTIONS: &[u8] = b"OPTIONS sip:nm SIP/2.0\r\nVia: SIP/2.0/UDP nm;branch=z9hG4bKportolan\r\nFrom: <sip:nm@nm>;tag=ptl\r\nTo: <sip:nm2@nm2>\r\nCall-ID: 50000\r\nCSeq: 42 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\nContact: <sip:nm@nm>\r\nAccept: application/sdp\r\n\r\n";

/// memcached's UDP frame header and a `stats` command.
const MEMCACHED_STATS: &[u8] = b"\x50\x54\x00\x00\x00\x01\x00\x00stats\r\n";

/// What the error queue said about one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpError {
    /// The probe's destination.
    pub target: SocketAddr,
    /// Who sent the ICMP error.
    pub reporter: Option<IpAddr>,
    /// ICMP (or ICMPv6) type and code.
    pub kind: u8,
    /// Code.
    pub code: u8,
}

/// One UDP socket of one address family for all UDP probes, errors queued.
pub struct UdpSock {
    sock: socket2::Socket,
    v6: bool,
}

impl UdpSock {
    /// A non-blocking socket on an ephemeral port of the wildcard address, with ICMP errors
    /// queued (`IP_RECVERR`) and large buffers.
    pub fn open(v6: bool) -> io::Result<UdpSock> {
        use socket2::{Domain, Socket, Type};
        let sock = Socket::new(if v6 { Domain::IPV6 } else { Domain::IPV4 }, Type::DGRAM, None)?;
        if v6 {
            sock.set_only_v6(true)?;
        }
        sock.set_nonblocking(true)?;
        let any: SocketAddr =
            if v6 { (Ipv6Addr::UNSPECIFIED, 0).into() } else { (Ipv4Addr::UNSPECIFIED, 0).into() };
        sock.bind(&any.into())?;
        let _ = sock.set_recv_buffer_size(4 << 20);
        let one: libc::c_int = 1;
        let (level, opt) =
            if v6 { (libc::SOL_IPV6, libc::IPV6_RECVERR) } else { (libc::SOL_IP, libc::IP_RECVERR) };
        // SAFETY: setsockopt with a valid int for its length.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                level,
                opt,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(UdpSock { sock, v6 })
    }

    /// The local port.
    pub fn port(&self) -> u16 {
        self.sock.local_addr().ok().and_then(|a| a.as_socket()).map_or(0, |a| a.port())
    }

    /// Sends one probe.
    pub fn send_to(&self, data: &[u8], dst: SocketAddr) -> io::Result<()> {
        self.sock.send_to(data, &dst.into()).map(|_| ())
    }

    /// One reply and its sender, `None` when none is waiting. An error queued meanwhile makes
    /// the kernel fail a plain receive with the error; that is not a failure of the scan.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<Option<(usize, SocketAddr)>> {
        // SAFETY: an initialised byte buffer is a valid MaybeUninit buffer; recv only writes.
        let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) };
        loop {
            match self.sock.recv_from(uninit) {
                Ok((n, from)) => match from.as_socket() {
                    Some(a) => return Ok(Some((n, a))),
                    None => continue,
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // the pending ICMP error of an earlier probe (ECONNREFUSED, EHOSTUNREACH, ...):
                // its details are read from the error queue
                Err(e) if e.raw_os_error().is_some() => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// One ICMP error from the error queue, `None` when the queue is empty. Errors the local
    /// stack raised (no route, for instance) come back with no reporter and type 0.
    pub fn recv_error(&self) -> Option<UdpError> {
        let mut data = [0u8; 16];
        let mut control = [0u64; 64];
        // SAFETY: sockaddr_storage is plain data.
        let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
        // SAFETY: msghdr is plain data; its fields point at buffers that outlive the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: msg points at valid buffers.
        let n = unsafe {
            libc::recvmsg(self.sock.as_raw_fd(), &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT)
        };
        if n < 0 {
            return None;
        }
        let target = sockaddr_to_std(&name)?;
        let (level, kind) =
            if self.v6 { (libc::SOL_IPV6, libc::IPV6_RECVERR) } else { (libc::SOL_IP, libc::IP_RECVERR) };
        let origin = if self.v6 { libc::SO_EE_ORIGIN_ICMP6 } else { libc::SO_EE_ORIGIN_ICMP };
        // SAFETY: the CMSG macros walk the control data the kernel wrote, within
        // msg_controllen; the offender address follows the sock_extended_err.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == level && (*c).cmsg_type == kind {
                    let data = libc::CMSG_DATA(c);
                    let ee = std::ptr::read_unaligned(data as *const libc::sock_extended_err);
                    if ee.ee_origin != origin {
                        return Some(UdpError { target, reporter: None, kind: 0, code: 0 });
                    }
                    let off = data.add(std::mem::size_of::<libc::sock_extended_err>());
                    let off = std::ptr::read_unaligned(off as *const libc::sockaddr_storage);
                    return Some(UdpError {
                        target,
                        reporter: sockaddr_to_std(&off).map(|a| a.ip()),
                        kind: ee.ee_type,
                        code: ee.ee_code,
                    });
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Some(UdpError { target, reporter: None, kind: 0, code: 0 })
    }

    /// The descriptor, for poll.
    pub fn fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }
}

fn sockaddr_to_std(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a = unsafe { &*(s as *const libc::sockaddr_storage as *const libc::sockaddr_in) };
            Some(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))),
                u16::from_be(a.sin_port),
            ))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage as *const libc::sockaddr_in6) };
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)), u16::from_be(a.sin6_port)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn payload_lengths_agree_with_their_headers() {
        // SNMP: the outer SEQUENCE length covers the rest
        assert_eq!(usize::from(SNMP_V1_GET[1]) + 2, SNMP_V1_GET.len());
        // ISAKMP: the header's length field is the datagram's length
        let len = u32::from_be_bytes([IKE_SA_INIT[24], IKE_SA_INIT[25], IKE_SA_INIT[26], IKE_SA_INIT[27]]);
        assert_eq!(len as usize, IKE_SA_INIT.len());
        assert_eq!(u16::from_be_bytes([IKE_SA_INIT[30], IKE_SA_INIT[31]]) as usize, IKE_SA_INIT.len() - 28);
        // NTP: 48 bytes, client mode
        assert_eq!(NTP_CLIENT.len(), 48);
        assert_eq!(NTP_CLIENT[0] & 7, 3);
        // NetBIOS: the encoded name is 32 characters
        assert_eq!(NBNS_STATUS[12], 32);
        assert_eq!(payload(5353), MDNS);
        assert_eq!(payload(53), DNS_VERSION_BIND);
        assert!(payload(40000).is_empty());
    }

    #[test]
    fn a_closed_loopback_port_is_reported_by_the_error_queue() {
        // a port that was just bound and released is closed; loopback is not rate-limited
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let s = UdpSock::open(false).unwrap();
        let dst: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
        s.send_to(b"", dst).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut got = None;
        while got.is_none() && std::time::Instant::now() < deadline {
            let mut buf = [0u8; 64];
            let _ = s.recv_from(&mut buf);
            got = s.recv_error();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let e = got.expect("an ICMP port unreachable");
        assert_eq!(e.target, dst);
        assert_eq!((e.kind, e.code), (3, 3));
        assert_eq!(e.reporter, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }

    #[test]
    fn an_answering_loopback_port_replies() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dst = server.local_addr().unwrap();
        let s = UdpSock::open(false).unwrap();
        s.send_to(payload(53), dst).unwrap();
        let mut buf = [0u8; 512];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], payload(53));
        server.send_to(b"answer", from).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            if let Some((n, from)) = s.recv_from(&mut buf).unwrap() {
                assert_eq!((&buf[..n], from), (&b"answer"[..], dst));
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no reply");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
