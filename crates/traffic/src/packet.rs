//! One captured frame → the fields the flow tracker needs. Link layers: Ethernet (with VLAN
//! tags), Linux cooked capture v1 and v2, raw IP, BSD loopback. Frames cut short by the
//! capture's snap length still give their headers; what cannot be decoded is `None`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use portolan_model::Proto;
use portolan_model::traffic::tcp_flags;

/// Link-layer header types (tcpdump.org's LINKTYPE_ values) this reader decodes.
pub mod linktype {
    /// BSD loopback: a 4-byte address family.
    pub const NULL: u32 = 0;
    /// Ethernet.
    pub const ETHERNET: u32 = 1;
    /// Raw IP (some systems write 12 or 14 for it).
    pub const RAW: u32 = 101;
    /// OpenBSD's raw IP number.
    pub const RAW_12: u32 = 12;
    /// Raw IP under another historical number.
    pub const RAW_14: u32 = 14;
    /// Linux cooked capture (`tcpdump -i any`).
    pub const LINUX_SLL: u32 = 113;
    /// Raw IPv4.
    pub const IPV4: u32 = 228;
    /// Raw IPv6.
    pub const IPV6: u32 = 229;
    /// Linux cooked capture v2 (`tcpdump -i any` since libpcap 1.10).
    pub const LINUX_SLL2: u32 = 276;
    /// Linux netfilter log messages (`tcpdump -i nflog:GROUP`): the packets a `log group`
    /// rule logged.
    pub const NFLOG: u32 = 239;
    /// Whether this reader decodes `lt`.
    pub fn supported(lt: u32) -> bool {
        matches!(lt, NULL | ETHERNET | RAW | RAW_12 | RAW_14 | LINUX_SLL | IPV4 | IPV6 | LINUX_SLL2 | NFLOG)
    }
}

/// The part of an ICMP error that names the packet it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    /// The quoted packet's source (the host that got the error).
    pub src: IpAddr,
    /// Its destination.
    pub dst: IpAddr,
    /// Its protocol.
    pub proto: Proto,
    /// Its ports (0 if cut off).
    pub sport: u16,
    /// Its destination port.
    pub dport: u16,
}

/// A decoded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pkt {
    /// Sender.
    pub src: IpAddr,
    /// Receiver.
    pub dst: IpAddr,
    /// Protocol.
    pub proto: Proto,
    /// Source port, or for ICMP echo the identifier.
    pub sport: u16,
    /// Destination port, or for ICMP the type.
    pub dport: u16,
    /// TCP flags.
    pub flags: u8,
    /// TTL or hop limit.
    pub ttl: u8,
    /// IPv4 identification.
    pub ip_id: Option<u16>,
    /// TCP window.
    pub window: u16,
    /// TCP sequence number.
    pub seq: u32,
    /// TCP options length.
    pub options_len: u8,
    /// MSS option.
    pub mss: Option<u16>,
    /// Payload bytes the IP header declares (not what the snap length kept).
    pub data_len: u32,
    /// ICMP: an echo request (true) or reply (false); None for other messages.
    pub echo_request: Option<bool>,
    /// ICMP error: the packet it is about.
    pub quoted: Option<Quoted>,
}

/// The logged packet of an NFLOG record: a 4-byte header (address family, version, group),
/// then type-length-value attributes, each padded to 4 bytes, whose length and type are in the
/// capturing host's byte order (little-endian read first, big-endian if that does not fit); the
/// payload attribute (type 9) holds the packet from its IP header.
fn nflog_payload(frame: &[u8]) -> Option<&[u8]> {
    const PAYLOAD: u16 = 9;
    for big in [false, true] {
        let mut at = 4usize;
        while at + 4 <= frame.len() {
            let (len, kind) = if big {
                (
                    u16::from_be_bytes([frame[at], frame[at + 1]]),
                    u16::from_be_bytes([frame[at + 2], frame[at + 3]]),
                )
            } else {
                (
                    u16::from_le_bytes([frame[at], frame[at + 1]]),
                    u16::from_le_bytes([frame[at + 2], frame[at + 3]]),
                )
            };
            let len = usize::from(len);
            if len < 4 || at + len > frame.len() {
                break;
            }
            if kind == PAYLOAD {
                return frame.get(at + 4..at + len);
            }
            at += len.div_ceil(4) * 4;
        }
    }
    None
}

/// Decodes one frame of link type `lt`.
pub fn decode(lt: u32, frame: &[u8]) -> Option<Pkt> {
    let sliced = match lt {
        linktype::ETHERNET => LaxSlicedPacket::from_ethernet(frame).ok()?,
        linktype::LINUX_SLL => {
            // 16 bytes: packet type, ARPHRD, address length, 8 address bytes, protocol
            let proto = u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]);
            LaxSlicedPacket::from_ether_type(EtherType(proto), frame.get(16..)?)
        }
        linktype::LINUX_SLL2 => {
            // 20 bytes: protocol first
            let proto = u16::from_be_bytes([*frame.first()?, *frame.get(1)?]);
            LaxSlicedPacket::from_ether_type(EtherType(proto), frame.get(20..)?)
        }
        linktype::NULL => LaxSlicedPacket::from_ip(frame.get(4..)?).ok()?,
        linktype::NFLOG => LaxSlicedPacket::from_ip(nflog_payload(frame)?).ok()?,
        linktype::RAW | linktype::RAW_12 | linktype::RAW_14 | linktype::IPV4 | linktype::IPV6 => {
            LaxSlicedPacket::from_ip(frame).ok()?
        }
        _ => return None,
    };
    let (src, dst, ttl, ip_id, ip_payload_len) = match sliced.net.as_ref()? {
        LaxNetSlice::Ipv4(v4) => {
            let h = v4.header();
            let hl = u32::from(h.ihl()) * 4;
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                h.ttl(),
                Some(h.identification()),
                u32::from(h.total_len()).saturating_sub(hl),
            )
        }
        LaxNetSlice::Ipv6(v6) => {
            let h = v6.header();
            let ext = v6.extensions().slice().len() as u32;
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                h.hop_limit(),
                None,
                u32::from(h.payload_length()).saturating_sub(ext),
            )
        }
        LaxNetSlice::Arp(_) => return None,
    };
    let mut p = Pkt {
        src,
        dst,
        proto: Proto::Other,
        sport: 0,
        dport: 0,
        flags: 0,
        ttl,
        ip_id,
        window: 0,
        seq: 0,
        options_len: 0,
        mss: None,
        data_len: 0,
        echo_request: None,
        quoted: None,
    };
    match sliced.transport.as_ref() {
        Some(TransportSlice::Tcp(t)) => {
            p.proto = Proto::Tcp;
            p.sport = t.source_port();
            p.dport = t.destination_port();
            p.flags = (t.fin() as u8 * tcp_flags::FIN)
                | (t.syn() as u8 * tcp_flags::SYN)
                | (t.rst() as u8 * tcp_flags::RST)
                | (t.psh() as u8 * tcp_flags::PSH)
                | (t.ack() as u8 * tcp_flags::ACK)
                | (t.urg() as u8 * tcp_flags::URG);
            p.window = t.window_size();
            p.seq = t.sequence_number();
            let opts = t.options();
            p.options_len = opts.len().min(255) as u8;
            p.mss = crate::logline::mss_of(opts);
            p.data_len = ip_payload_len.saturating_sub(u32::from(t.data_offset()) * 4);
        }
        Some(TransportSlice::Udp(u)) => {
            p.proto = Proto::Udp;
            p.sport = u.source_port();
            p.dport = u.destination_port();
            p.data_len = ip_payload_len.saturating_sub(8);
        }
        Some(TransportSlice::Icmpv4(i)) => {
            p.proto = Proto::Icmp;
            let ty = i.type_u8();
            p.dport = u16::from(ty);
            match ty {
                8 | 0 => {
                    let b = i.bytes5to8();
                    p.sport = u16::from_be_bytes([b[0], b[1]]);
                    p.echo_request = Some(ty == 8);
                }
                3 | 11 | 12 => p.quoted = quoted(i.payload()),
                _ => {}
            }
            p.data_len = ip_payload_len.saturating_sub(8);
        }
        Some(TransportSlice::Icmpv6(i)) => {
            p.proto = Proto::Icmpv6;
            let ty = i.type_u8();
            p.dport = u16::from(ty);
            match ty {
                128 | 129 => {
                    let b = i.bytes5to8();
                    p.sport = u16::from_be_bytes([b[0], b[1]]);
                    p.echo_request = Some(ty == 128);
                }
                1..=4 => p.quoted = quoted(i.payload()),
                _ => {}
            }
            p.data_len = ip_payload_len.saturating_sub(8);
        }
        _ => {
            // a fragment or a protocol without ports: the IP header is all there is
            let n = match sliced.net.as_ref()? {
                LaxNetSlice::Ipv4(v4) => v4.payload_ip_number().0,
                LaxNetSlice::Ipv6(v6) => v6.payload().ip_number.0,
                LaxNetSlice::Arp(_) => return None,
            };
            p.proto = Proto::from_number(n);
            if p.proto != Proto::Other {
                // a transport header cut off or fragmented: no ports to key a flow on
                return None;
            }
            p.data_len = ip_payload_len;
        }
    }
    Some(p)
}

/// The IP header and first transport bytes an ICMP error quotes.
fn quoted(b: &[u8]) -> Option<Quoted> {
    let version = b.first()? >> 4;
    let (src, dst, proto, rest) = match version {
        4 => {
            let ihl = usize::from(b[0] & 0x0f) * 4;
            let src = Ipv4Addr::new(*b.get(12)?, *b.get(13)?, *b.get(14)?, *b.get(15)?);
            let dst = Ipv4Addr::new(*b.get(16)?, *b.get(17)?, *b.get(18)?, *b.get(19)?);
            (IpAddr::V4(src), IpAddr::V4(dst), *b.get(9)?, b.get(ihl..).unwrap_or(&[]))
        }
        6 => {
            let a: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            let d: [u8; 16] = b.get(24..40)?.try_into().ok()?;
            (
                IpAddr::V6(Ipv6Addr::from(a)),
                IpAddr::V6(Ipv6Addr::from(d)),
                *b.get(6)?,
                b.get(40..).unwrap_or(&[]),
            )
        }
        _ => return None,
    };
    let port = |i: usize| rest.get(i..i + 2).map_or(0, |x| u16::from_be_bytes([x[0], x[1]]));
    Some(Quoted { src, dst, proto: Proto::from_number(proto), sport: port(0), dport: port(2) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    #[test]
    fn tcp_syn_over_ethernet_and_cooked() {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([198, 18, 0, 9], [198, 18, 0, 2], 52)
            .tcp(41234, 22, 7, 1024)
            .syn()
            .options(&[etherparse::TcpOptionElement::MaximumSegmentSize(1460)])
            .unwrap_or_else(|_| unreachable!());
        let mut frame = Vec::new();
        b.write(&mut frame, &[]).unwrap_or_default();
        let p = decode(linktype::ETHERNET, &frame).unwrap_or_else(|| panic!("decodes"));
        assert_eq!((p.proto, p.sport, p.dport, p.flags), (Proto::Tcp, 41234, 22, tcp_flags::SYN));
        assert_eq!((p.ttl, p.window, p.seq, p.options_len, p.mss), (52, 1024, 7, 4, Some(1460)));
        // the same IP packet in an SLL2 header
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0; 18]);
        sll2.extend_from_slice(&frame[14..]);
        assert_eq!(decode(linktype::LINUX_SLL2, &sll2), Some(p));
        // cut short by a snap length: headers still decode, payload length from the IP header
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([198, 18, 0, 9], [198, 18, 0, 2], 52)
            .tcp(1, 2, 3, 4);
        let mut long = Vec::new();
        b.write(&mut long, b"hello").unwrap_or_default();
        assert_eq!(decode(linktype::ETHERNET, &long[..long.len() - 3]).map(|p| p.data_len), Some(5));
    }

    #[test]
    fn icmp_unreachable_quotes_the_probe() {
        let probe = {
            let b = PacketBuilder::ipv4([198, 18, 0, 9], [198, 18, 0, 2], 64).udp(5000, 161);
            let mut v = Vec::new();
            b.write(&mut v, b"x").unwrap_or_default();
            v
        };
        let b = PacketBuilder::ipv4([198, 18, 0, 2], [198, 18, 0, 9], 64).icmpv4_raw(3, 3, [0; 4]);
        let mut v = Vec::new();
        b.write(&mut v, &probe).unwrap_or_default();
        let p = decode(linktype::RAW, &v).unwrap_or_else(|| panic!("decodes"));
        let q = p.quoted.unwrap_or_else(|| panic!("quotes"));
        assert_eq!((q.proto, q.sport, q.dport), (Proto::Udp, 5000, 161));
        assert_eq!(q.src.to_string(), "198.18.0.9");
    }

    #[test]
    fn junk_is_none() {
        for lt in [0, 1, 12, 101, 113, 228, 229, 276, 999] {
            for f in [&[][..], &[0x45], &[0x60, 0, 0], &[0xff; 64]] {
                let _ = decode(lt, f);
            }
        }
    }
}
