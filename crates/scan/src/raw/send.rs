//! Sending SYN probes: batches of segments handed to sender threads, which write them to raw
//! sockets with `sendmmsg` (IPv4 with the IP header written here, on `IPPROTO_RAW`).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use super::socket::RawSock;
use super::{BATCH, last, sockaddr};

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
