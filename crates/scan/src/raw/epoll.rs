//! Waiting for sockets: an epoll instance, which the connect workers arm once per connect,
//! and `ppoll` on the packet worker's few descriptors.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::last;
use super::tcp::Sock;

/// An epoll instance.
pub struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    /// A new instance with room for `batch` events per wait.
    pub fn new(batch: usize) -> io::Result<Epoll> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(last());
        }
        // SAFETY: fd was just created and is ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: epoll_event is plain data.
        let events = vec![unsafe { std::mem::zeroed() }; batch.max(1)];
        Ok(Epoll { fd, events })
    }

    /// Watches a socket once for writability (connect completion), tagged with `token`.
    /// One-shot: a socket that is reused is armed again for its next connect.
    pub fn arm(&self, sock: &mut Sock, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: (libc::EPOLLOUT | libc::EPOLLONESHOT) as u32, u64: token };
        let op = if sock.registered { libc::EPOLL_CTL_MOD } else { libc::EPOLL_CTL_ADD };
        // SAFETY: ev lives for the call; the socket is open and owned by the caller.
        if unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, sock.fd.as_raw_fd(), &mut ev) } < 0 {
            return Err(last());
        }
        sock.registered = true;
        Ok(())
    }

    /// Waits up to `timeout` and returns the (token, event flags) that are ready.
    pub fn wait(&mut self, timeout: Duration, out: &mut Vec<(u64, u32)>) -> io::Result<()> {
        out.clear();
        let ms = ceil_millis(timeout);
        // SAFETY: the events buffer is valid for its length.
        let n = unsafe {
            libc::epoll_wait(self.fd.as_raw_fd(), self.events.as_mut_ptr(), self.events.len() as i32, ms)
        };
        if n < 0 {
            let e = last();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e);
        }
        out.extend(self.events[..n as usize].iter().map(|e| (e.u64, e.events)));
        Ok(())
    }
}

/// A timeout in whole milliseconds for `epoll_wait`, rounded up: a wait shorter than a
/// millisecond is one millisecond, never zero (a zero timeout repeated until a sub-millisecond
/// wait has passed is a busy loop).
fn ceil_millis(timeout: Duration) -> i32 {
    timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
}

/// Waits until one of `fds` is readable or `timeout` passes.
pub fn poll_readable(fds: &[i32], timeout: Duration) -> io::Result<()> {
    let mut p: Vec<libc::pollfd> =
        fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    // ppoll takes the timeout to the nanosecond: a wait of 300 us is one, not a zero-timeout
    // poll repeated until the time passes (which burnt a CPU at a capped rate)
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: the pollfd array is valid for its length; ts outlives the call; no signal mask.
    let n = unsafe { libc::ppoll(p.as_mut_ptr(), p.len() as libc::nfds_t, &ts, std::ptr::null()) };
    if n < 0 {
        let e = last();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}
