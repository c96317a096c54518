//! The receive ring of a large IPv4 sweep: an `AF_PACKET` socket with a memory-mapped
//! `TPACKET_V3` ring, read without a system call per batch.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::{bpf, last, set_opt};

/// A packet socket that receives the IPv4 TCP segments to one port into a memory-mapped
/// ring (`TPACKET_V3`), read without a system call per batch. The SYN scan reads the answers
/// of a large sweep from it: a raw socket costs the kernel a copy of every segment (`skb_clone`)
/// and the reader a `recvmmsg` per 64, about a tenth of the whole run on a full port range.
/// Setting up the ring and closing it each wait for an RCU grace period (10 to 40 ms here), so
/// [`RxRing::open`] belongs on a thread of its own and the ring is closed on one
/// ([`RxRing::close_in_background`]). Needs root or CAP_NET_RAW.
pub struct RxRing {
    fd: OwnedFd,
    map: *mut u8,
    /// The next block to read.
    next: usize,
}

// SAFETY: the mapping belongs to the ring alone and is only touched through `&mut self`.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Bytes in a block: about 450 answers, so that a block fills in a few milliseconds of a
    /// fast sweep and a slow one is handed over by the kernel's block timer.
    const BLOCK: usize = 1 << 16;
    /// Blocks in the ring (4 MiB, like the raw socket's receive buffer).
    const BLOCKS: usize = 64;
    /// The frame size the kernel checks the request against; frames are packed in a block.
    const FRAME: usize = 2048;

    /// A ring for the IPv4 TCP segments to `port`, on every interface. Blocks for a grace
    /// period.
    pub fn open(port: u16) -> io::Result<RxRing> {
        // protocol 0: nothing is received until the ring and its filter are in place (bind)
        // SAFETY: plain socket(2); the descriptor is owned below.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(last());
        }
        // SAFETY: raw was just created and is ours.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        set_opt(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &version)?;
        // a SOCK_DGRAM packet socket's filter sees the packet from its IP header: TCP (protocol
        // 6) to `port`, whole
        let prog = [
            libc::sock_filter { code: bpf::LD_B_ABS, jt: 0, jf: 0, k: 9 },
            libc::sock_filter { code: bpf::JEQ_K, jt: 0, jf: 4, k: libc::IPPROTO_TCP as u32 },
            libc::sock_filter { code: bpf::LDX_B_MSH, jt: 0, jf: 0, k: 0 },
            libc::sock_filter { code: bpf::LD_H_IND, jt: 0, jf: 0, k: 2 },
            libc::sock_filter { code: bpf::JEQ_K, jt: 0, jf: 1, k: u32::from(port) },
            libc::sock_filter { code: bpf::RET_K, jt: 0, jf: 0, k: 0xffff },
            libc::sock_filter { code: bpf::RET_K, jt: 0, jf: 0, k: 0 },
        ];
        let fprog =
            libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut libc::sock_filter };
        set_opt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)?;
        let req = libc::tpacket_req3 {
            tp_block_size: Self::BLOCK as u32,
            tp_block_nr: Self::BLOCKS as u32,
            tp_frame_size: Self::FRAME as u32,
            tp_frame_nr: (Self::BLOCK / Self::FRAME * Self::BLOCKS) as u32,
            tp_retire_blk_tov: 1,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        set_opt(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)?;
        // SAFETY: maps the ring the kernel just made for this socket, its whole length.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                Self::BLOCK * Self::BLOCKS,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(last());
        }
        let ring = RxRing { fd, map: map.cast(), next: 0 };
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
        // SAFETY: sll is a valid sockaddr_ll for the call.
        let r = unsafe {
            libc::bind(
                ring.fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(last());
        }
        Ok(ring)
    }

    /// The descriptor, for poll (readable when a block is ready).
    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Calls `f` with each packet received (from its IPv4 header) and the time it arrived
    /// (`CLOCK_REALTIME`, since the epoch), for up to `max_blocks` blocks the kernel has handed
    /// over; returns how many packets. Packets this host sent (seen on loopback) are skipped.
    pub fn drain(&mut self, max_blocks: usize, mut f: impl FnMut(&[u8], Duration)) -> usize {
        use std::sync::atomic::{AtomicU32, Ordering};
        let mut count = 0;
        for _ in 0..max_blocks {
            // SAFETY: `next` < BLOCKS, so the block lies inside the mapping.
            let block = unsafe { self.map.add(self.next * Self::BLOCK) };
            // SAFETY: the block descriptor starts the block; its status word is shared with the
            // kernel, so it is read and written atomically (u32, 4-aligned at the block start).
            let status = unsafe { AtomicU32::from_ptr(block.add(STATUS_AT).cast::<u32>()) };
            if status.load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: the block is ours until its status is given back; the kernel wrote a
            // valid descriptor and packet headers inside the block.
            unsafe {
                let desc = &*block.cast::<libc::tpacket_block_desc>();
                let num = desc.hdr.bh1.num_pkts as usize;
                let mut off = desc.hdr.bh1.offset_to_first_pkt as usize;
                for _ in 0..num {
                    if off + std::mem::size_of::<libc::tpacket3_hdr>() > Self::BLOCK {
                        break;
                    }
                    let h = &*block.add(off).cast::<libc::tpacket3_hdr>();
                    let ll = &*block.add(off + TPACKET3_ALIGNED).cast::<libc::sockaddr_ll>();
                    let start = off + usize::from(h.tp_net);
                    let len = h.tp_snaplen as usize;
                    if ll.sll_pkttype != libc::PACKET_OUTGOING && start + len <= Self::BLOCK {
                        let pkt = std::slice::from_raw_parts(block.add(start), len);
                        f(pkt, Duration::new(u64::from(h.tp_sec), h.tp_nsec));
                        count += 1;
                    }
                    if h.tp_next_offset == 0 {
                        break;
                    }
                    off += h.tp_next_offset as usize;
                }
            }
            status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.next = (self.next + 1) % Self::BLOCKS;
        }
        count
    }

    /// Closes the ring on a thread of its own, so that the grace period the kernel waits for
    /// delays no one (the process's exit still waits for it).
    pub fn close_in_background(self) {
        // without a thread, the closure and the ring in it are dropped here
        let _ = std::thread::Builder::new().name("ring-close".into()).spawn(move || drop(self));
    }
}

/// Where a block's status word is: `tpacket_block_desc.hdr.bh1.block_status`.
const STATUS_AT: usize = std::mem::offset_of!(libc::tpacket_block_desc, hdr);
/// Where a packet's link-layer address follows its `tpacket3_hdr` (TPACKET_ALIGN).
const TPACKET3_ALIGNED: usize = (std::mem::size_of::<libc::tpacket3_hdr>() + 15) & !15;

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `open` with this length and is not used after this.
        unsafe {
            libc::munmap(self.map.cast(), Self::BLOCK * Self::BLOCKS);
        }
    }
}
