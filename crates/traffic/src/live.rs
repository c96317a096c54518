//! Live capture from a network interface (an `AF_PACKET` socket, as tcpdump uses): frames as
//! they arrive, through the same decoder and flow table as a capture file. Needs root or
//! CAP_NET_RAW.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use portolan_model::Event;

use crate::flows::Flows;
use crate::packet::{decode, linktype};

/// Why an interface cannot be captured on.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// No such interface.
    #[error("no network interface named {0:?} (see `ip link`)")]
    NoInterface(String),
    /// Raw sockets need a privilege.
    #[error(
        "capturing on {iface} needs root or CAP_NET_RAW (read a capture file instead: tcpdump -w FILE, then watch FILE)"
    )]
    Privilege {
        /// The interface.
        iface: String,
    },
    /// The socket failed.
    #[error("capturing on {iface}: {source}")]
    Socket {
        /// The interface.
        iface: String,
        /// The failure.
        source: io::Error,
    },
}

/// A capture socket bound to one interface.
pub struct Live {
    fd: OwnedFd,
    iface: String,
}

const ETH_P_ALL: u16 = 0x0003;

impl Live {
    /// Opens a capture of every frame on `iface`.
    pub fn open(iface: &str) -> Result<Live, LiveError> {
        let name = CString::new(iface).map_err(|_| LiveError::NoInterface(iface.to_string()))?;
        // SAFETY: if_nametoindex reads a NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(LiveError::NoInterface(iface.to_string()));
        }
        // SAFETY: socket(2) with constant arguments; the result is checked.
        let raw = unsafe {
            libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(ETH_P_ALL.to_be()))
        };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EPERM) {
                LiveError::Privilege { iface: iface.to_string() }
            } else {
                LiveError::Socket { iface: iface.to_string(), source: e }
            });
        }
        // SAFETY: raw is a descriptor this function just opened and owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = index as i32;
        // SAFETY: bind with a sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(LiveError::Socket { iface: iface.to_string(), source: io::Error::last_os_error() });
        }
        // wake every 200 ms to look at the stop flag and the clock
        let tv = libc::timeval { tv_sec: 0, tv_usec: 200_000 };
        // SAFETY: setsockopt with a timeval of the size given.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        // a large receive buffer: a scan's burst waits here, not in the kernel's drops
        let size: libc::c_int = 16 << 20;
        // SAFETY: setsockopt with an int of the size given.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        Ok(Live { fd, iface: iface.to_string() })
    }

    /// Reads frames until `stop`, numbering them from 1 (the evidence is `IFACE#n`), sending
    /// each ended connection to `out`; connections still open at the end are sent too.
    pub fn run(
        &self,
        source: u32,
        max_flows: usize,
        stop: &Arc<AtomicBool>,
        out: &mut impl FnMut(Event),
    ) -> io::Result<u64> {
        let mut flows = Flows::new(source, max_flows);
        let mut buf = vec![0u8; 65536];
        let mut n: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            // SAFETY: recv into a buffer of the length given.
            let got = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            let now = jiff::Timestamp::now().as_microsecond();
            if got < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => {
                        flows.advance(now, out);
                        continue;
                    }
                    _ => return Err(io::Error::new(e.kind(), format!("capturing on {}: {e}", self.iface))),
                }
            }
            n += 1;
            if let Some(p) = decode(linktype::ETHERNET, &buf[..got as usize]) {
                flows.packet(&p, now, n, out);
            }
        }
        flows.finish(out);
        Ok(n)
    }
}
