//! The few system calls the local inventory needs, as safe functions.
//!
//! Everything `unsafe` in this crate is here. Each wrapper checks its buffer lengths and turns
//! `-1` into `io::Error`; callers never touch raw pointers.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

fn cvt_size(ret: isize) -> io::Result<usize> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret as usize) }
}

/// `openat(dirfd, name, O_RDONLY|O_DIRECTORY|O_CLOEXEC)`; `None` for `dirfd` means the cwd.
pub fn open_dir_at(dirfd: Option<BorrowedFd<'_>>, name: &CStr) -> io::Result<OwnedFd> {
    let d = dirfd.map_or(libc::AT_FDCWD, |f| f.as_raw_fd());
    // SAFETY: name is a valid NUL-terminated string; the returned fd is owned by us.
    let fd =
        cvt(unsafe { libc::openat(d, name.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) })?;
    // SAFETY: fd was just returned by openat and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat(dirfd, name, O_RDONLY|O_CLOEXEC)` for a plain file.
pub fn open_at(dirfd: Option<BorrowedFd<'_>>, name: &CStr) -> io::Result<OwnedFd> {
    let d = dirfd.map_or(libc::AT_FDCWD, |f| f.as_raw_fd());
    // SAFETY: as in open_dir_at.
    let fd = cvt(unsafe { libc::openat(d, name.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })?;
    // SAFETY: as in open_dir_at.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads a whole small file relative to `dirfd` into `buf` (cleared first), at most `limit`
/// bytes.
pub fn read_at(dirfd: BorrowedFd<'_>, name: &CStr, buf: &mut Vec<u8>, limit: usize) -> io::Result<()> {
    let fd = open_at(Some(dirfd), name)?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    while buf.len() < limit {
        // SAFETY: chunk is a valid writable buffer of chunk.len() bytes.
        let n = cvt_size(unsafe { libc::read(fd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) })?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n.min(limit - buf.len())]);
    }
    Ok(())
}

/// One `getdents64` call into `buf`; returns the bytes filled (0 at the end).
pub fn getdents(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes; the kernel writes at most that many.
    let n = unsafe { libc::syscall(libc::SYS_getdents64, fd.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    cvt_size(n as isize)
}

/// Iterates the names in a buffer filled by [`getdents`] (skipping `.` and `..`).
pub fn dirent_names(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        loop {
            // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
            let head = buf.get(off..off + 19)?;
            let reclen = u16::from_ne_bytes([head[16], head[17]]) as usize;
            if reclen < 19 {
                return None;
            }
            let rec = buf.get(off + 19..off + reclen)?;
            off += reclen;
            let end = rec.iter().position(|&b| b == 0).unwrap_or(rec.len());
            let name = &rec[..end];
            if name != b"." && name != b".." {
                return Some(name);
            }
        }
    })
}

/// `readlinkat(dirfd, name)` into `buf`; returns the link's length (possibly truncated to the
/// buffer).
pub fn readlink_at(dirfd: BorrowedFd<'_>, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: name is NUL-terminated; buf is valid for buf.len() bytes.
    let n = unsafe { libc::readlinkat(dirfd.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    cvt_size(n)
}

/// `setns(fd, CLONE_NEWNET)` for the calling thread.
pub fn setns_net(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fd is a valid descriptor; setns only changes this thread's namespace.
    cvt(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) }).map(|_| ())
}

/// The effective uid.
pub fn geteuid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() }
}

/// Whether the process has an effective capability (from /proc/self/status, CapEff).
pub fn has_capability(bit: u32) -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return false };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1u64 << bit) != 0)
}

/// Interface name of an index, in the calling thread's network namespace.
pub fn if_name(index: u32) -> Option<String> {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: buf is IF_NAMESIZE bytes as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr().cast()) };
    if p.is_null() {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// A netlink socket of `protocol` (close-on-exec).
pub fn netlink_socket(protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call.
    let fd = cvt(unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, protocol) })?;
    // SAFETY: fd was just created and is ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends one datagram to the kernel (netlink pid 0).
pub fn netlink_send(fd: BorrowedFd<'_>, msg: &[u8]) -> io::Result<()> {
    // SAFETY: sockaddr_nl is plain data; zeroed is a valid value (pid 0 = kernel).
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: msg and addr are valid for their lengths.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    let sent = cvt_size(n)?;
    if sent != msg.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short netlink send"));
    }
    Ok(())
}

/// Receives one datagram into `buf`, retrying on EINTR.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        match cvt_size(n) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Writes `n` as decimal into `buf` with a trailing NUL and returns it as a C string.
pub fn decimal_cstr(n: u32, buf: &mut [u8; 12]) -> &CStr {
    let mut i = buf.len() - 1;
    buf[i] = 0;
    let mut v = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // The slice holds digits then exactly one NUL at the end.
    CStr::from_bytes_with_nul(&buf[i..]).unwrap_or(c"0")
}

/// Keeps every thread on the main malloc arena. The owner scan's workers allocate little (a
/// batch of fd numbers per 1,400 fds), and a private arena per worker would add resident
/// memory for no speed.
pub fn one_malloc_arena() {
    // SAFETY: mallopt only sets an allocator tunable.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_names() {
        let mut b = [0u8; 12];
        assert_eq!(decimal_cstr(0, &mut b).to_bytes(), b"0");
        assert_eq!(decimal_cstr(4_294_967_295, &mut b).to_bytes(), b"4294967295");
        assert_eq!(decimal_cstr(1234, &mut b).to_bytes(), b"1234");
    }

    #[test]
    fn getdents_lists_a_directory() {
        let d = open_dir_at(None, c"/proc/self/fd").unwrap();
        let mut buf = vec![0u8; 4096];
        let n = getdents(d.as_fd(), &mut buf).unwrap();
        let names: Vec<&[u8]> = dirent_names(&buf[..n]).collect();
        assert!(names.contains(&&b"0"[..]) || !names.is_empty());
        assert!(!names.iter().any(|n| *n == b"." || *n == b".."));
    }
    use std::os::fd::AsFd;
}
