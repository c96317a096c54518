//! Which processes hold which sockets: a parallel scan of `/proc/*/fd`.
//!
//! The kernel has no socket → pid index, so every fd of every process is looked at once:
//! `getdents64` on `/proc/PID/fd` and one `readlinkat` per fd relative to that directory's fd
//! (no absolute paths, no xattr calls). Workers share a queue of pids; a process with a huge
//! fd table is split into chunks that any worker can take, so one such process does not
//! serialize the scan. Processes that exit mid-scan, and fd tables we may not read, are
//! skipped and counted.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::sys;

/// A fast hasher for integer keys (inodes, packed socket keys): the splitmix64 finaliser,
/// which spreads every input bit into both the low bits (bucket index) and the high bits
/// (control byte) that hashbrown uses. No DoS concern: the keys come from the kernel.
#[derive(Default)]
pub struct InodeHasher(u64);

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Hasher for InodeHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = mix(self.0 ^ u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = mix(self.0 ^ n);
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = mix(self.0 ^ u64::from(n));
    }
}

/// A set of socket inodes.
pub type InodeSet = HashSet<u64, BuildHasherDefault<InodeHasher>>;
/// A map keyed by inode (or pid, or any integer).
pub type InodeMap<V> = HashMap<u64, V, BuildHasherDefault<InodeHasher>>;

/// The result of a scan: every socket fd of every visible process, as (inode, pid, fd) sorted
/// by inode — 16 bytes per fd and no allocation per socket.
#[derive(Debug, Default)]
pub struct Holders {
    entries: Vec<(u64, u32, u32)>,
    /// Processes whose fd table could not be read (no privilege).
    pub denied: usize,
    /// Processes scanned.
    pub processes: usize,
}

impl Holders {
    /// Every (inode, pid, fd) holding the socket with this inode, by pid.
    pub fn of(&self, inode: u64) -> &[(u64, u32, u32)] {
        let start = self.entries.partition_point(|e| e.0 < inode);
        let end = start + self.entries[start..].partition_point(|e| e.0 == inode);
        &self.entries[start..end]
    }

    /// Socket fds found.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no socket fd was found.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

enum Task {
    Chunk { pid: u32, dir: Arc<OwnedFd>, fds: Vec<u32> },
}

struct Shared<'a> {
    proc_dir: &'a OwnedFd,
    pids: Vec<u32>,
    next: AtomicUsize,
    chunks: Mutex<Vec<Task>>,
    listing: AtomicUsize,
}

fn list_pids(proc_dir: &OwnedFd) -> Vec<u32> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pids = Vec::new();
    while let Ok(n) = sys::getdents(proc_dir.as_fd(), &mut buf) {
        if n == 0 {
            break;
        }
        for name in sys::dirent_names(&buf[..n]) {
            if let Some(pid) = parse_u32(name) {
                pids.push(pid);
            }
        }
    }
    pids
}

fn parse_u32(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 10 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    u32::try_from(v).ok()
}

/// `socket:[12345]` → 12345.
fn socket_inode(link: &[u8]) -> Option<u64> {
    let rest = link.strip_prefix(b"socket:[")?;
    let digits = rest.strip_suffix(b"]")?;
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

fn check_fds(dir: &OwnedFd, pid: u32, fds: &[u32], found: &mut Vec<(u64, u32, u32)>) {
    let mut name = [0u8; 12];
    let mut link = [0u8; 64];
    for &fd in fds {
        let cname = sys::decimal_cstr(fd, &mut name);
        let Ok(n) = sys::readlink_at(dir.as_fd(), cname, &mut link) else { continue };
        if let Some(ino) = socket_inode(&link[..n.min(link.len())]) {
            found.push((ino, pid, fd));
        }
    }
}

fn worker(s: &Shared<'_>, found: &mut Vec<(u64, u32, u32)>, denied: &AtomicUsize) {
    // 8 KiB: ~350 names a call; a bigger buffer is resident memory in every worker
    let mut dents = vec![0u8; 8 * 1024];
    let mut pidname = [0u8; 12];
    loop {
        let task = s.chunks.lock().ok().and_then(|mut q| q.pop());
        if let Some(Task::Chunk { pid, dir, fds }) = task {
            check_fds(&dir, pid, &fds, found);
            continue;
        }
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if let Some(&pid) = s.pids.get(i) {
            s.listing.fetch_add(1, Ordering::AcqRel);
            let dir = {
                let p = sys::decimal_cstr(pid, &mut pidname);
                // "<pid>/fd" relative to /proc
                let mut path = Vec::with_capacity(16);
                path.extend_from_slice(p.to_bytes());
                path.extend_from_slice(b"/fd\0");
                match std::ffi::CStr::from_bytes_with_nul(&path) {
                    Ok(c) => sys::open_dir_at(Some(s.proc_dir.as_fd()), c),
                    Err(_) => Err(std::io::Error::from(std::io::ErrorKind::InvalidInput)),
                }
            };
            match dir {
                Ok(dir) => {
                    // Read the directory one getdents batch (~1,400 fds) at a time. The first
                    // batch is checked here; later ones (a huge fd table) go to the queue for any
                    // worker, so memory stays at a few batches and the work is shared.
                    let dir = Arc::new(dir);
                    let mut first: Option<Vec<u32>> = None;
                    while let Ok(n) = sys::getdents(dir.as_fd(), &mut dents) {
                        if n == 0 {
                            break;
                        }
                        let batch: Vec<u32> = sys::dirent_names(&dents[..n]).filter_map(parse_u32).collect();
                        if first.is_none() {
                            first = Some(batch);
                        } else if let Ok(mut q) = s.chunks.lock() {
                            q.push(Task::Chunk { pid, dir: Arc::clone(&dir), fds: batch });
                        }
                    }
                    s.listing.fetch_sub(1, Ordering::AcqRel);
                    if let Some(fds) = first {
                        check_fds(&dir, pid, &fds, found);
                    }
                }
                Err(e) => {
                    s.listing.fetch_sub(1, Ordering::AcqRel);
                    if e.raw_os_error() == Some(libc::EACCES) || e.raw_os_error() == Some(libc::EPERM) {
                        denied.fetch_add(1, Ordering::Relaxed);
                    }
                    // ENOENT/ESRCH: the process exited mid-scan; that is normal.
                }
            }
            continue;
        }
        // No pid left: leave once no one is still listing a directory that may add chunks.
        let queue_empty = s.chunks.lock().map(|q| q.is_empty()).unwrap_or(true);
        if queue_empty && s.listing.load(Ordering::Acquire) == 0 {
            break;
        }
        std::thread::yield_now();
    }
}

/// Scans every process for socket fds with `threads` workers.
pub fn scan(threads: usize) -> Holders {
    sys::one_malloc_arena();
    let Ok(proc_dir) = sys::open_dir_at(None, c"/proc") else { return Holders::default() };
    let pids = list_pids(&proc_dir);
    let shared = Shared {
        proc_dir: &proc_dir,
        pids,
        next: AtomicUsize::new(0),
        chunks: Mutex::new(Vec::new()),
        listing: AtomicUsize::new(0),
    };
    let denied = AtomicUsize::new(0);
    let threads = threads.clamp(1, 16);
    let mut results: Vec<Vec<(u64, u32, u32)>> = Vec::new();
    std::thread::scope(|sc| {
        let handles: Vec<_> = (1..threads)
            .map(|_| {
                sc.spawn(|| {
                    let mut found = Vec::new();
                    worker(&shared, &mut found, &denied);
                    found
                })
            })
            .collect();
        let mut mine = Vec::new();
        worker(&shared, &mut mine, &denied);
        results.push(mine);
        for h in handles {
            if let Ok(v) = h.join() {
                results.push(v);
            }
        }
    });
    let mut entries: Vec<(u64, u32, u32)> = Vec::with_capacity(results.iter().map(Vec::len).sum());
    for r in results {
        entries.extend(r);
    }
    entries.sort_unstable();
    Holders { entries, denied: denied.into_inner(), processes: shared.pids.len() }
}

/// What is known of an owning process (shared by every socket it holds).
#[derive(Debug, Clone)]
pub struct ProcInfo {
    /// `comm`.
    pub comm: Arc<str>,
    /// Command line, NULs as spaces.
    pub cmdline: Arc<str>,
    /// Real uid.
    pub uid: Option<u32>,
}

impl Default for ProcInfo {
    fn default() -> Self {
        ProcInfo { comm: Arc::from(""), cmdline: Arc::from(""), uid: None }
    }
}

/// comm, cmdline and uid of processes, read once per pid on first use.
pub struct ProcInfos {
    proc_dir: Option<OwnedFd>,
    cache: InodeMap<ProcInfo>,
}

impl Default for ProcInfos {
    fn default() -> Self {
        ProcInfos { proc_dir: sys::open_dir_at(None, c"/proc").ok(), cache: InodeMap::default() }
    }
}

impl ProcInfos {
    /// The process's info (empty fields for one that exited).
    pub fn get(&mut self, pid: u32) -> &ProcInfo {
        let dir = &self.proc_dir;
        self.cache.entry(u64::from(pid)).or_insert_with(|| {
            let mut pname = [0u8; 12];
            match dir {
                Some(d) => proc_info_in(d, sys::decimal_cstr(pid, &mut pname)),
                None => ProcInfo::default(),
            }
        })
    }
}

fn proc_info_in(proc_dir: &OwnedFd, p: &std::ffi::CStr) -> ProcInfo {
    let mut info = ProcInfo::default();
    let Ok(dir) = sys::open_dir_at(Some(proc_dir.as_fd()), p) else { return info };
    let mut buf = Vec::new();
    if sys::read_at(dir.as_fd(), c"comm", &mut buf, 64).is_ok() {
        info.comm = Arc::from(String::from_utf8_lossy(&buf).trim_end_matches('\n'));
    }
    if sys::read_at(dir.as_fd(), c"cmdline", &mut buf, 4096).is_ok() {
        while buf.last() == Some(&0) {
            buf.pop();
        }
        for b in &mut buf {
            if *b == 0 {
                *b = b' ';
            }
        }
        info.cmdline = Arc::from(String::from_utf8_lossy(&buf).as_ref());
    }
    if sys::read_at(dir.as_fd(), c"status", &mut buf, 8192).is_ok() {
        let text = String::from_utf8_lossy(&buf);
        info.uid = text
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok());
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_links_parse() {
        assert_eq!(socket_inode(b"socket:[12345]"), Some(12345));
        assert_eq!(socket_inode(b"pipe:[12345]"), None);
        assert_eq!(socket_inode(b"socket:[12a]"), None);
        assert_eq!(socket_inode(b"socket:[99999999999999999999999]"), None);
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"self"), None);
    }

    #[test]
    fn finds_our_own_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        use std::os::fd::AsRawFd;
        let fd = l.as_raw_fd() as u32;
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        let ino = socket_inode(link.to_string_lossy().as_bytes()).unwrap();
        let h = scan(2);
        let holders: Vec<(u32, u32)> = h.of(ino).iter().map(|e| (e.1, e.2)).collect();
        assert!(holders.contains(&(std::process::id(), fd)), "{holders:?}");
        let mut infos = ProcInfos::default();
        let me = infos.get(std::process::id()).clone();
        assert!(!me.cmdline.is_empty());
        assert_eq!(me.uid, Some(crate::sys::geteuid()));
    }
}
