//! Raw IP sockets of the SYN scan: probes out (IPv6) and answers in, TCP answers kept to the
//! scan's source port by a classic BPF filter, read in batches with `recvmmsg`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use super::{BATCH, bpf, last};

/// A non-blocking raw socket of one IP protocol (TCP for probes and answers, ICMP or ICMPv6
/// for errors), used by the SYN scan. Needs root or CAP_NET_RAW.
pub struct RawSock {
    pub(super) sock: socket2::Socket,
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

/// Room for a received packet: an ICMP error quotes the probe (IPv6: 40 + 8 + 40 + 24 bytes),
/// anything longer is cut (the kernel truncates, the parsers see a prefix).
const RX_LEN: usize = 512;

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
