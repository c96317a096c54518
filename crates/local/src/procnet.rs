//! Fallback socket table from `/proc/net/{tcp,tcp6,udp,udp6}`, for kernels without
//! sock_diag. It lacks bound devices, v6only and cgroup ids, and `/proc/net/udp` costs
//! quadratic time with many sockets (each read restarts the hash walk), so it is only used
//! when sock_diag cannot be opened.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use portolan_model::Transport;

use crate::Error;
use crate::diag::RawSocket;

fn hex_u32(s: &str) -> Option<u32> {
    u32::from_str_radix(s, 16).ok()
}

fn parse_addr(s: &str) -> Option<(IpAddr, u16)> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let ip = match a.len() {
        8 => IpAddr::V4(Ipv4Addr::from(hex_u32(a)?.to_ne_bytes())),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                let word = hex_u32(a.get(i * 8..i * 8 + 8)?)?;
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some((ip, port))
}

/// Parses the text of one `/proc/net/{tcp,udp}{,6}` file. `path` names it in errors.
pub fn parse(text: &str, transport: Transport, path: &str, out: &mut Vec<RawSocket>) -> Result<(), Error> {
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        let bad =
            |what: &str| Error::ProcNet { path: path.to_string(), line: i + 1, message: what.to_string() };
        if f.len() < 10 {
            return Err(bad("fewer than 10 columns"));
        }
        let (src, sport) = parse_addr(f[1]).ok_or_else(|| bad("bad local address"))?;
        let (dst, dport) = parse_addr(f[2]).ok_or_else(|| bad("bad remote address"))?;
        let state = u8::from_str_radix(f[3], 16).map_err(|_| bad("bad state"))?;
        let uid = f[7].parse().map_err(|_| bad("bad uid"))?;
        let inode = f[9].parse().map_err(|_| bad("bad inode"))?;
        out.push(RawSocket {
            transport,
            state,
            src,
            sport,
            dst,
            dport,
            ifindex: 0,
            uid,
            inode,
            v6only: None,
            cgroup_id: None,
            bound_inactive: false,
        });
    }
    Ok(())
}

/// Reads the four files of the current network namespace, keeping sockets whose state bit is
/// in the TCP or UDP mask.
pub fn read(
    tcp_states: u32,
    udp_states: u32,
    v4: bool,
    v6: bool,
    out: &mut dyn FnMut(RawSocket),
) -> Result<(), Error> {
    for (transport, name, ipv6, states) in [
        (Transport::Tcp, "/proc/net/tcp", false, tcp_states),
        (Transport::Tcp, "/proc/net/tcp6", true, tcp_states),
        (Transport::Udp, "/proc/net/udp", false, udp_states),
        (Transport::Udp, "/proc/net/udp6", true, udp_states),
    ] {
        if states == 0 || (ipv6 && !v6) || (!ipv6 && !v4) {
            continue;
        }
        let text = match std::fs::read_to_string(name) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && ipv6 => continue,
            Err(source) => return Err(Error::Read { path: name.into(), source }),
        };
        let mut all = Vec::new();
        parse(&text, transport, name, &mut all)?;
        for s in all.into_iter().filter(|s| states & (1u32 << s.state) != 0) {
            out(s);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_and_v6_lines() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:4690 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5256 1 0000000000000000 100 0 0 10 0\n";
        let mut out = Vec::new();
        parse(v4, Transport::Tcp, "tcp", &mut out).unwrap();
        assert_eq!(out[0].src, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(out[0].sport, 18064);
        assert_eq!(out[0].state, 10);
        assert_eq!(out[0].uid, 1000);
        assert_eq!(out[0].inode, 5256);
        let v6 = "header\n   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1\n";
        let mut out = Vec::new();
        parse(v6, Transport::Tcp, "tcp6", &mut out).unwrap();
        assert_eq!(out[0].src, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(out[0].sport, 22);
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let mut out = Vec::new();
        let e = parse("h\n 0: zz:1 00:00 0A 0 0 0 0 0 1\n", Transport::Tcp, "/proc/net/tcp", &mut out)
            .unwrap_err();
        assert!(e.to_string().contains("/proc/net/tcp") && e.to_string().contains("line 2"), "{e}");
    }
}
