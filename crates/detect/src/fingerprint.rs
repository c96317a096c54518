//! What the packets of a probe say about how and with what it was made.
//!
//! Fingerprints (facts from the tools' sources, cited in `docs/watch.md`): nmap's raw SYN
//! probes carry a window of 1024 (or 2048, 3072, 4096) and a lone MSS option of 1460, and its
//! FIN/NULL/Xmas/ACK probes the same windows without options; masscan sets the IP ID to
//! (destination address ^ destination port ^ sequence number) & 0xffff; ZMap before 4.1 sends
//! IP ID 54321. A kernel's own SYN (a connect scan, any client) carries 20 bytes of options.

use std::net::IpAddr;

use portolan_model::traffic::{Outcome, ScanTechnique, Tool, tcp_flags};
use portolan_model::{Event, Proto};

const NMAP_WINDOWS: [u16; 4] = [1024, 2048, 3072, 4096];

/// The scan technique one event shows, if it shows one.
pub fn technique(e: &Event) -> Option<ScanTechnique> {
    match e.proto {
        Proto::Udp => return Some(ScanTechnique::Udp),
        Proto::Tcp => {}
        _ => return None,
    }
    match e.outcome {
        Outcome::Accepted => return Some(ScanTechnique::Connect),
        Outcome::HalfOpen => return Some(ScanTechnique::Syn),
        _ => {}
    }
    let s = e.shape?;
    let f = s.flags
        & (tcp_flags::FIN
            | tcp_flags::SYN
            | tcp_flags::RST
            | tcp_flags::PSH
            | tcp_flags::ACK
            | tcp_flags::URG);
    Some(match f {
        tcp_flags::SYN => match s.options_len {
            // the kernel's SYN (MSS, SACK, timestamps, window scale)
            Some(n) if n >= 12 => ScanTechnique::Connect,
            Some(_) => ScanTechnique::Syn,
            // options not shown (a LOG line without them): masscan and ZMap send only raw SYNs
            None if matches!(tool_of(e), Tool::Masscan | Tool::Zmap) => ScanTechnique::Syn,
            None => return None,
        },
        tcp_flags::FIN => ScanTechnique::Fin,
        0 => ScanTechnique::Null,
        x if x == tcp_flags::FIN | tcp_flags::PSH | tcp_flags::URG => ScanTechnique::Xmas,
        tcp_flags::ACK => ScanTechnique::Ack,
        _ => return None,
    })
}

/// The tool one event's first packet points to.
pub fn tool_of(e: &Event) -> Tool {
    let Some(s) = e.shape else { return Tool::Unknown };
    if e.proto != Proto::Tcp {
        return Tool::Unknown;
    }
    if let (Some(id), Some(seq), Some(IpAddr::V4(dst))) = (s.ip_id, s.seq, e.dst) {
        let want = (u32::from(dst) ^ u32::from(e.dport) ^ seq) & 0xffff;
        if u32::from(id) == want && s.window == Some(1024) {
            return Tool::Masscan;
        }
    }
    if s.ip_id == Some(54321) {
        return Tool::Zmap;
    }
    let Some(win) = s.window else { return Tool::Unknown };
    if !NMAP_WINDOWS.contains(&win) {
        return Tool::Unknown;
    }
    let syn = s.flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN;
    let stealth = !syn && s.flags & tcp_flags::ACK == 0 || s.flags == tcp_flags::ACK;
    match (syn, s.options_len) {
        (true, Some(4)) if s.mss == Some(1460) => Tool::Nmap,
        // a bare FIN, NULL, Xmas or ACK with nmap's window: no stack sends that on its own
        // (a LOG line shows no OPT for it, whether or not options are logged)
        (false, Some(0) | None) if stealth => Tool::Nmap,
        _ => Tool::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_model::traffic::{Clock, Evidence, Shape};

    fn syn(shape: Shape, dport: u16) -> Event {
        Event {
            ts_us: 0,
            duration_us: 0,
            clock: Clock::Wall,
            src: IpAddr::from([198, 18, 0, 9]),
            dst: Some(IpAddr::from([198, 18, 0, 2])),
            proto: Proto::Tcp,
            sport: 40000,
            dport,
            outcome: Outcome::Attempt,
            bytes: 0,
            shape: Some(shape),
            evidence: Evidence { source: 0, at: 1 },
        }
    }

    #[test]
    fn tools() {
        let nmap = Shape {
            flags: tcp_flags::SYN,
            ttl: 45,
            ip_id: Some(7),
            window: Some(1024),
            seq: Some(1),
            options_len: Some(4),
            mss: Some(1460),
        };
        assert_eq!(tool_of(&syn(nmap, 22)), Tool::Nmap);
        assert_eq!(technique(&syn(nmap, 22)), Some(ScanTechnique::Syn));
        let dst = u32::from(std::net::Ipv4Addr::new(198, 18, 0, 2));
        let seq = 0x1234_5678u32;
        let id = ((dst ^ 80 ^ seq) & 0xffff) as u16;
        let masscan = Shape {
            flags: tcp_flags::SYN,
            ttl: 254,
            ip_id: Some(id),
            window: Some(1024),
            seq: Some(seq),
            options_len: Some(0),
            mss: None,
        };
        assert_eq!(tool_of(&syn(masscan, 80)), Tool::Masscan);
        let zmap = Shape {
            flags: tcp_flags::SYN,
            ttl: 63,
            ip_id: Some(54321),
            window: Some(65535),
            seq: Some(1),
            options_len: Some(0),
            mss: None,
        };
        assert_eq!(tool_of(&syn(zmap, 80)), Tool::Zmap);
        let kernel = Shape {
            flags: tcp_flags::SYN,
            ttl: 64,
            ip_id: Some(1),
            window: Some(64240),
            seq: Some(1),
            options_len: Some(20),
            mss: Some(1460),
        };
        assert_eq!(tool_of(&syn(kernel, 80)), Tool::Unknown);
        assert_eq!(technique(&syn(kernel, 80)), Some(ScanTechnique::Connect));
        let xmas = Shape {
            flags: tcp_flags::FIN | tcp_flags::PSH | tcp_flags::URG,
            window: Some(1024),
            options_len: Some(0),
            ..Shape::default()
        };
        assert_eq!(
            (tool_of(&syn(xmas, 1)), technique(&syn(xmas, 1))),
            (Tool::Nmap, Some(ScanTechnique::Xmas))
        );
    }
}
