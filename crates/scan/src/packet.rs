//! The packets of the SYN scan: a TCP SYN built from a fixed template (patched per probe, no
//! allocation), the keyed cookie that ties an answer to its probe without a table of probes,
//! and parsers for the answers (TCP from IPv4 raw sockets with their IP header, TCP from IPv6
//! raw sockets without one, ICMP and ICMPv6 errors quoting a probe).

use std::net::IpAddr;

/// TCP header length of a probe: 20 bytes and the MSS option (as nmap sends).
pub const SYN_LEN: usize = 24;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// A keyed 32-bit cookie of a probe's addresses and ports: SipHash-1-3 (the `siphasher`
/// crate, a keyed pseudo-random function) under a 128-bit key, its 64 bits folded (the two
/// halves XORed) to the 32 bits of a sequence number. An answer carrying it answers that probe; a host that never saw the probe
/// can forge one only by guessing 32 bits, since the key (from the kernel's random source,
/// [`Cookie::random`]) is never sent.
#[derive(Debug, Clone, Copy)]
pub struct Cookie {
    k0: u64,
    k1: u64,
}

impl Cookie {
    /// A cookie generator with a key.
    pub fn new(k0: u64, k1: u64) -> Cookie {
        Cookie { k0, k1 }
    }

    /// A cookie generator with a key from the kernel (`getrandom`); if that fails, from the
    /// clock and the process id (unpredictable only to someone who cannot see the machine).
    pub fn random() -> Cookie {
        let mut key = [0u8; 16];
        // SAFETY: key is valid for 16 bytes; getrandom writes at most that many.
        let n = unsafe { libc::getrandom(key.as_mut_ptr().cast(), key.len(), 0) };
        if n != 16 {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            key = (t ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
        }
        let (a, b) = key.split_at(8);
        let word = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or_default());
        Cookie::new(word(a), word(b))
    }

    /// The cookie of a probe from `src:sport` to `dst:dport`.
    pub fn of(&self, src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> u32 {
        // the message whole, of a fixed length, in one call: feeding the hasher piece by piece
        // through `Hasher::write` took 37 ns per IPv4 probe, this 22 ns
        let key = siphasher::sip::SipHasher13::new_with_keys(self.k0, self.k1);
        let ports = (u32::from(sport) << 16 | u32::from(dport)).to_be_bytes();
        let v = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut message = [0u8; 12];
                message[..4].copy_from_slice(&s.octets());
                message[4..8].copy_from_slice(&d.octets());
                message[8..].copy_from_slice(&ports);
                key.hash(&message)
            }
            _ => {
                let octets = |ip: IpAddr| match ip {
                    IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
                    IpAddr::V6(a) => a.octets(),
                };
                let mut message = [0u8; 36];
                message[..16].copy_from_slice(&octets(src));
                message[16..32].copy_from_slice(&octets(dst));
                message[32..].copy_from_slice(&ports);
                key.hash(&message)
            }
        };
        (v ^ (v >> 32)) as u32
    }
}

/// One's-complement sum of 16-bit words.
fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*last) << 8);
    }
    acc
}

fn finish(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The TCP checksum of `segment` (header and payload) between `src` and `dst`.
pub fn tcp_checksum(src: IpAddr, dst: IpAddr, segment: &[u8]) -> u16 {
    let mut acc = 0u32;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            acc = sum16(acc, &s.octets());
            acc = sum16(acc, &d.octets());
            acc = acc.wrapping_add(6).wrapping_add(segment.len() as u32);
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V6(a) => a.octets(),
                IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            };
            acc = sum16(acc, &v6(s));
            acc = sum16(acc, &v6(d));
            acc = acc.wrapping_add(segment.len() as u32).wrapping_add(6);
        }
    }
    finish(sum16(acc, segment))
}

/// Writes a SYN probe into `buf`: ports, the cookie as sequence number, window 1024, MSS 1460,
/// and the checksum.
pub fn write_syn(buf: &mut [u8; SYN_LEN], src: IpAddr, dst: IpAddr, sport: u16, dport: u16, seq: u32) {
    write_tcp(buf, src, dst, sport, dport, seq, 0, SYN);
}

/// Writes an ACK probe (host discovery's ACK to port 80) with the cookie as acknowledgement
/// number: the reset it draws carries it back as its sequence number (RFC 9293 3.10.7.1).
pub fn write_ack(buf: &mut [u8; SYN_LEN], src: IpAddr, dst: IpAddr, sport: u16, dport: u16, ack: u32) {
    write_tcp(buf, src, dst, sport, dport, 0, ack, ACK);
}

#[allow(clippy::too_many_arguments)]
fn write_tcp(
    buf: &mut [u8; SYN_LEN],
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
) {
    buf[0..2].copy_from_slice(&sport.to_be_bytes());
    buf[2..4].copy_from_slice(&dport.to_be_bytes());
    buf[4..8].copy_from_slice(&seq.to_be_bytes());
    buf[8..12].copy_from_slice(&ack.to_be_bytes());
    buf[12] = ((SYN_LEN / 4) as u8) << 4;
    buf[13] = flags;
    buf[14..16].copy_from_slice(&1024u16.to_be_bytes());
    buf[16..18].fill(0);
    buf[18..20].fill(0);
    buf[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]);
    let c = tcp_checksum(src, dst, &buf[..]);
    buf[16..18].copy_from_slice(&c.to_be_bytes());
}

/// What a TCP answer says about its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// SYN-ACK: open.
    SynAck,
    /// RST: closed.
    Reset,
}

/// A TCP segment that answers a probe: who sent it, from which port to which, its ack number
/// (the probe's cookie + 1) and the TTL or hop limit it arrived with (0 when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpReply {
    /// The target that answered.
    pub from: IpAddr,
    /// Its port (the probe's destination port).
    pub sport: u16,
    /// Our port (the probe's source port).
    pub dport: u16,
    /// Acknowledgement number.
    pub ack: u32,
    /// Sequence number (an ACK probe's cookie, in the reset it draws).
    pub seq: u32,
    /// SYN-ACK or RST.
    pub answer: Answer,
    /// TTL (IPv4) or 0.
    pub ttl: u8,
}

fn tcp_reply(from: IpAddr, ttl: u8, t: &[u8]) -> Option<TcpReply> {
    if t.len() < 20 {
        return None;
    }
    let flags = t[13];
    let answer = if flags & (SYN | ACK) == SYN | ACK && flags & (RST | FIN) == 0 {
        Answer::SynAck
    } else if flags & RST != 0 {
        Answer::Reset
    } else {
        return None;
    };
    Some(TcpReply {
        from,
        sport: u16::from_be_bytes([t[0], t[1]]),
        dport: u16::from_be_bytes([t[2], t[3]]),
        ack: u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        answer,
        ttl,
    })
}

/// A TCP answer read from an IPv4 raw socket (the datagram starts with its IP header).
pub fn parse_tcp_v4(pkt: &[u8]) -> Option<TcpReply> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 || pkt[9] != 6 {
        return None;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let from = IpAddr::from([pkt[12], pkt[13], pkt[14], pkt[15]]);
    tcp_reply(from, pkt[8], pkt.get(ihl..)?)
}

/// A TCP answer read from an IPv6 raw socket (no IP header; the sender comes from recvfrom).
pub fn parse_tcp_v6(from: IpAddr, seg: &[u8]) -> Option<TcpReply> {
    tcp_reply(from, 0, seg)
}

/// An ICMP destination-unreachable error that quotes one of our probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpError {
    /// The router or host that sent the error.
    pub reporter: IpAddr,
    /// The probe's destination (the target).
    pub target: IpAddr,
    /// The probe's source port.
    pub sport: u16,
    /// The probe's destination port.
    pub dport: u16,
    /// The probe's sequence number (its cookie).
    pub seq: u32,
    /// ICMP type and code.
    pub kind: u8,
    /// Code.
    pub code: u8,
}

/// An ICMP error from an IPv4 raw ICMP socket (with the outer IP header), quoting a TCP probe.
pub fn parse_icmp_v4(pkt: &[u8]) -> Option<IcmpError> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 || pkt[9] != 1 {
        return None;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let icmp = pkt.get(ihl..)?;
    if icmp.len() < 8 || icmp[0] != 3 {
        return None;
    }
    let inner = &icmp[8..];
    if inner.len() < 20 || inner[0] >> 4 != 4 || inner[9] != 6 {
        return None;
    }
    let iihl = usize::from(inner[0] & 0x0f) * 4;
    let t = inner.get(iihl..iihl + 8)?;
    Some(IcmpError {
        reporter: IpAddr::from([pkt[12], pkt[13], pkt[14], pkt[15]]),
        target: IpAddr::from([inner[16], inner[17], inner[18], inner[19]]),
        sport: u16::from_be_bytes([t[0], t[1]]),
        dport: u16::from_be_bytes([t[2], t[3]]),
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        kind: icmp[0],
        code: icmp[1],
    })
}

/// An ICMPv6 error from an IPv6 raw ICMPv6 socket (no outer header), quoting a TCP probe.
pub fn parse_icmp_v6(reporter: IpAddr, icmp: &[u8]) -> Option<IcmpError> {
    if icmp.len() < 8 || icmp[0] != 1 {
        return None;
    }
    let inner = &icmp[8..];
    if inner.len() < 48 || inner[0] >> 4 != 6 || inner[6] != 6 {
        return None;
    }
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&inner[24..40]);
    let t = &inner[40..48];
    Some(IcmpError {
        reporter,
        target: IpAddr::from(dst),
        sport: u16::from_be_bytes([t[0], t[1]]),
        dport: u16::from_be_bytes([t[2], t[3]]),
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        kind: icmp[0],
        code: icmp[1],
    })
}

/// ICMP echo request (IPv4 type 8, IPv6 type 128).
pub const ECHO: u8 = 8;
/// ICMP timestamp request (IPv4 only).
pub const TIMESTAMP: u8 = 13;
/// Length of the ICMP discovery probes written by [`write_icmp_query`].
pub const ICMP_QUERY_LEN: usize = 20;

/// Writes an ICMP echo or timestamp request (IPv4, checksummed) or an ICMPv6 echo request
/// (the kernel fills its checksum) with the cookie as identifier and sequence number.
pub fn write_icmp_query(buf: &mut [u8; ICMP_QUERY_LEN], v6: bool, kind: u8, cookie: u32) -> usize {
    buf.fill(0);
    buf[0] = if v6 { 128 } else { kind };
    buf[4..8].copy_from_slice(&cookie.to_be_bytes());
    let len = if kind == TIMESTAMP && !v6 { 20 } else { 8 };
    if !v6 {
        let c = finish(sum16(0, &buf[..len]));
        buf[2..4].copy_from_slice(&c.to_be_bytes());
    }
    len
}

/// An ICMP echo or timestamp reply: who sent it, its type (IPv4 0 or 14, IPv6 129) and the
/// identifier and sequence number (our cookie).
pub fn parse_icmp_reply(v6: bool, from: IpAddr, pkt: &[u8]) -> Option<(IpAddr, u8, u32)> {
    let (from, icmp) = if v6 {
        (from, pkt)
    } else {
        if pkt.len() < 20 || pkt[0] >> 4 != 4 || pkt[9] != 1 {
            return None;
        }
        let ihl = usize::from(pkt[0] & 0x0f) * 4;
        (IpAddr::from([pkt[12], pkt[13], pkt[14], pkt[15]]), pkt.get(ihl..)?)
    };
    if icmp.len() < 8 || !matches!((v6, icmp[0]), (false, 0 | 14) | (true, 129)) {
        return None;
    }
    Some((from, icmp[0], u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]])))
}

/// The target address of an ICMPv6 neighbour advertisement (type 136).
pub fn parse_neighbour_advert(icmp: &[u8]) -> Option<IpAddr> {
    if icmp.len() < 24 || icmp[0] != 136 {
        return None;
    }
    let mut t = [0u8; 16];
    t.copy_from_slice(&icmp[8..24]);
    Some(IpAddr::from(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_known_segment() {
        // 198.18.0.1:40000 -> 198.18.1.2:22, seq 1 (the kernels in the lab tests accept these
        // checksums; here the one's-complement identity is checked)
        let src: IpAddr = "198.18.0.1".parse().unwrap();
        let dst: IpAddr = "198.18.1.2".parse().unwrap();
        let mut b = [0u8; SYN_LEN];
        write_syn(&mut b, src, dst, 40000, 22, 1);
        // verifying: the checksum over a segment that includes its checksum is zero
        let mut acc = 0u32;
        acc = sum16(acc, &[198, 18, 0, 1, 198, 18, 1, 2]);
        acc = acc.wrapping_add(6 + SYN_LEN as u32);
        assert_eq!(finish(sum16(acc, &b)), 0);
        assert_eq!(&b[0..4], &[0x9c, 0x40, 0, 22]);
        assert_eq!(b[13], SYN);
    }

    #[test]
    fn cookies_depend_on_every_field_and_the_key() {
        let c = Cookie::new(1, 2);
        let a: IpAddr = "198.18.1.2".parse().unwrap();
        let b: IpAddr = "198.18.1.3".parse().unwrap();
        let x = c.of(a, b, 40000, 22);
        assert_eq!(x, c.of(a, b, 40000, 22));
        assert_ne!(x, c.of(a, b, 40000, 23));
        assert_ne!(x, c.of(a, b, 40001, 22));
        assert_ne!(x, c.of(b, a, 40000, 22));
        assert_ne!(x, Cookie::new(1, 3).of(a, b, 40000, 22));
        // SipHash-1-3 of src, dst, sport, dport (all big-endian), folded to 32 bits; IPv6 (or
        // mixed families, as IPv4-mapped addresses) the same with 16-byte addresses
        let v = siphasher::sip::SipHasher13::new_with_keys(1, 2)
            .hash(&[198, 18, 1, 2, 198, 18, 1, 3, 0x9c, 0x40, 0, 22]);
        assert_eq!(x, (v ^ (v >> 32)) as u32);
        let (a6, b6): (IpAddr, IpAddr) = ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap());
        let mut message = [0u8; 36];
        message[..16].copy_from_slice(&"2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        message[16..32].copy_from_slice(&"::ffff:198.18.1.3".parse::<std::net::Ipv6Addr>().unwrap().octets());
        message[32..].copy_from_slice(&[0x9c, 0x40, 0, 22]);
        let v = siphasher::sip::SipHasher13::new_with_keys(1, 2).hash(&message);
        assert_eq!(c.of(a6, b, 40000, 22), (v ^ (v >> 32)) as u32);
        assert_ne!(c.of(a6, b6, 40000, 22), c.of(b6, a6, 40000, 22));
        // keys from the kernel differ run to run
        let (r1, r2) = (Cookie::random(), Cookie::random());
        assert_ne!(r1.of(a, b, 40000, 22), r2.of(a, b, 40000, 22));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, failure_persistence: None, ..Default::default() })]

        /// Every answer parser reads any bytes (a hostile or broken packet) without a panic.
        #[test]
        fn answer_parsers_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120)) {
            let from: IpAddr = "2001:db8::1".parse().unwrap();
            let _ = parse_tcp_v4(&b);
            let _ = parse_tcp_v6(from, &b);
            let _ = parse_icmp_v4(&b);
            let _ = parse_icmp_v6(from, &b);
            let _ = parse_icmp_reply(false, "198.18.0.1".parse().unwrap(), &b);
            let _ = parse_icmp_reply(true, from, &b);
            let _ = parse_neighbour_advert(&b);
        }
    }

    #[test]
    fn replies_parse_and_garbage_does_not() {
        let mut ip = vec![0x45, 0, 0, 44, 0, 0, 0, 0, 61, 6, 0, 0, 198, 18, 1, 2, 198, 18, 0, 1];
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&22u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&40000u16.to_be_bytes());
        tcp[8..12].copy_from_slice(&7u32.to_be_bytes());
        tcp[13] = SYN | ACK;
        ip.extend_from_slice(&tcp);
        let r = parse_tcp_v4(&ip).unwrap();
        assert_eq!((r.sport, r.dport, r.ack, r.answer, r.ttl), (22, 40000, 7, Answer::SynAck, 61));
        ip[20 + 13] = RST | ACK;
        assert_eq!(parse_tcp_v4(&ip).unwrap().answer, Answer::Reset);
        ip[20 + 13] = ACK;
        assert_eq!(parse_tcp_v4(&ip), None);
        for n in 0..ip.len() {
            let _ = parse_tcp_v4(&ip[..n]);
            let _ = parse_icmp_v4(&ip[..n]);
            let _ = parse_icmp_v6(ip_v6(), &ip[..n]);
        }
    }

    fn ip_v6() -> IpAddr {
        "2001:db8::1".parse().unwrap()
    }
}
