//! The kernel firewall's own log: an NFLOG netlink group (`nft … log group N`, iptables
//! `-j NFLOG --nflog-group N`), read directly from the kernel with no syslog in between. Each
//! logged packet becomes a `logged` event with its header fields, as a LOG line would. Needs
//! root or CAP_NET_ADMIN; a group belongs to the network namespace the socket is opened in.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use portolan_model::Event;
use portolan_model::traffic::{Clock, Evidence, Outcome, Shape};

use crate::packet::{decode, linktype};

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULA_TIMESTAMP: u16 = 3;
const NFULA_PAYLOAD: u16 = 9;
const NLMSG_ERROR: u16 = 2;

/// Why an NFLOG group cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum NflogError {
    /// Netlink needs a privilege.
    #[error("reading NFLOG group {group} needs root or CAP_NET_ADMIN")]
    Privilege {
        /// The group.
        group: u16,
    },
    /// The kernel refused the group (another reader has it, or nfnetlink_log is missing).
    #[error("NFLOG group {group}: {source}")]
    Socket {
        /// The group.
        group: u16,
        /// The failure.
        source: io::Error,
    },
}

/// A socket bound to one NFLOG group.
pub struct Nflog {
    fd: OwnedFd,
    group: u16,
}

fn nlmsg(kind: u16, flags: u16, group: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = vec![0u8, 0, 0, 0];
    // nfgenmsg: family AF_UNSPEC, version 0, resource id = the group (big-endian)
    body[2..4].copy_from_slice(&group.to_be_bytes());
    for (t, v) in attrs {
        let len = 4 + v.len();
        body.extend_from_slice(&(len as u16).to_ne_bytes());
        body.extend_from_slice(&t.to_ne_bytes());
        body.extend_from_slice(v);
        while body.len() % 4 != 0 {
            body.push(0);
        }
    }
    let mut m = Vec::with_capacity(16 + body.len());
    m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&body);
    m
}

impl Nflog {
    /// Binds NFLOG group `group` in this network namespace.
    pub fn open(group: u16) -> Result<Nflog, NflogError> {
        let sock_err = |source| NflogError::Socket { group, source };
        // SAFETY: socket(2) with constant arguments; the result is checked.
        let raw =
            unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_NETFILTER) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EPERM) {
                NflogError::Privilege { group }
            } else {
                sock_err(e)
            });
        }
        // SAFETY: raw is a descriptor just opened and owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain data; zeroed is valid.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: bind with a sockaddr_nl of the size given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc != 0 {
            return Err(sock_err(io::Error::last_os_error()));
        }
        let tv = libc::timeval { tv_sec: 0, tv_usec: 200_000 };
        let size: libc::c_int = 8 << 20;
        // SAFETY: setsockopt with values of the sizes given.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            );
        }
        let me = Nflog { fd, group };
        let kind = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
        me.request(&nlmsg(kind, flags, group, &[(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND])]))
            .map_err(sock_err)?;
        // copy whole packets (up to 64 KiB)
        let mut mode = 0xffffu32.to_be_bytes().to_vec();
        mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
        me.request(&nlmsg(kind, flags, group, &[(NFULA_CFG_MODE, &mode)])).map_err(sock_err)?;
        Ok(me)
    }

    /// Sends a request and reads its acknowledgement.
    fn request(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: send of a buffer of the length given.
        if unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = [0u8; 4096];
        // SAFETY: recv into a buffer of the length given.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let b = &buf[..n as usize];
        if b.len() >= 20 && u16::from_ne_bytes([b[4], b[5]]) == NLMSG_ERROR {
            let code = i32::from_ne_bytes([b[16], b[17], b[18], b[19]]);
            if code != 0 {
                return Err(io::Error::from_raw_os_error(-code));
            }
        }
        Ok(())
    }

    /// Reads logged packets until `stop`, numbering them from 1, each a `logged` event of
    /// input `source`.
    pub fn run(&self, source: u32, stop: &Arc<AtomicBool>, out: &mut impl FnMut(Event)) -> io::Result<u64> {
        let mut buf = vec![0u8; 1 << 17];
        let mut n: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            // SAFETY: recv into a buffer of the length given.
            let got = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if got < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => {
                        continue;
                    }
                    // the kernel dropped messages (the buffer overran): go on with the next
                    _ if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
                    _ => return Err(io::Error::new(e.kind(), format!("NFLOG group {}: {e}", self.group))),
                }
            }
            let data = &buf[..got as usize];
            let mut off = 0;
            while off + 16 <= data.len() {
                let len =
                    u32::from_ne_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]]) as usize;
                if len < 16 || off + len > data.len() {
                    break;
                }
                let kind = u16::from_ne_bytes([data[off + 4], data[off + 5]]);
                if kind == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET {
                    n += 1;
                    if let Some(e) = packet(&data[off + 16..off + len], source, n) {
                        out(e);
                    }
                }
                off += len.div_ceil(4) * 4;
            }
        }
        Ok(n)
    }
}

/// One NFULNL_MSG_PACKET body (nfgenmsg, then attributes) → an event.
fn packet(body: &[u8], source: u32, n: u64) -> Option<Event> {
    let mut attrs = body.get(4..)?;
    let mut payload = None;
    let mut ts_us = None;
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            break;
        }
        let v = &attrs[4..len];
        match kind {
            NFULA_PAYLOAD => payload = Some(v),
            NFULA_TIMESTAMP if v.len() >= 16 => {
                let s = u64::from_be_bytes(v[..8].try_into().ok()?);
                let us = u64::from_be_bytes(v[8..16].try_into().ok()?);
                ts_us = Some((s as i64).saturating_mul(1_000_000).saturating_add(us as i64));
            }
            _ => {}
        }
        attrs = attrs.get(len.div_ceil(4) * 4..).unwrap_or(&[]);
    }
    let p = decode(linktype::RAW, payload?)?;
    let dst: IpAddr = p.dst;
    Some(Event {
        ts_us: ts_us.unwrap_or_else(|| jiff::Timestamp::now().as_microsecond()),
        duration_us: 0,
        clock: Clock::Wall,
        src: p.src,
        dst: Some(dst),
        proto: p.proto,
        sport: p.sport,
        dport: p.dport,
        outcome: Outcome::Logged,
        bytes: 0,
        shape: Some(Shape {
            flags: p.flags,
            ttl: p.ttl,
            ip_id: p.ip_id,
            window: (p.proto == portolan_model::Proto::Tcp).then_some(p.window),
            seq: (p.proto == portolan_model::Proto::Tcp).then_some(p.seq),
            options_len: (p.proto == portolan_model::Proto::Tcp).then_some(p.options_len),
            mss: p.mss,
        }),
        evidence: Evidence { source, at: n },
    })
}
