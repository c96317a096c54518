//! Kernel LOG lines (iptables `LOG`, nftables `log`) and sshd's authentication failures, in the
//! envelopes they reach a file in: `dmesg` (`[ 1471.211] …`), syslog (RFC 3164 and 5424),
//! ISO-stamped lines (`journalctl -o short-iso`, rsyslog's high-precision format) and
//! `journalctl -o json`.
//!
//! A LOG line is believed only from the kernel (a `kernel:` tag, a journal entry from the
//! kernel transport, or a `dmesg` line), and an sshd line only from an `sshd` tag, so that text
//! another program logs (a user name chosen by an attacker) cannot forge events. sshd's address
//! is read from the end of the line for the same reason.

use std::net::IpAddr;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use memchr::memmem;
use portolan_model::Event;
use portolan_model::traffic::{Clock, Evidence, Outcome, Proto, Shape, tcp_flags};

/// What one line holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A packet the firewall logged, or a failed login.
    Event(Event),
    /// A line of another kind (not an error: logs hold everything).
    Other,
}

/// Reads lines of one log. Keeps what it needs across lines (the year of RFC 3164 stamps).
#[derive(Debug)]
pub struct LogReader {
    source: u32,
    year: i16,
    tz: TimeZone,
}

/// A line's time and the message after the envelope, with who logged it.
struct Envelope<'a> {
    ts_us: i64,
    clock: Clock,
    /// `kernel`, `sshd`, or another program's tag.
    tag: Tag,
    msg: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Kernel,
    Sshd,
    Other,
}

impl LogReader {
    /// A reader for the input numbered `source`; `year` dates RFC 3164 stamps (which carry
    /// none), read in the time zone `tz`.
    pub fn new(source: u32, year: i16, tz: TimeZone) -> LogReader {
        LogReader { source, year, tz }
    }

    /// One line (without its newline), numbered `line` from 1.
    pub fn line(&self, text: &[u8], line: u64) -> Line {
        let owned;
        let env = if text.first() == Some(&b'{') {
            match journal_json(text) {
                Some((ts_us, tag, msg)) => {
                    owned = msg;
                    Envelope { ts_us, clock: Clock::Wall, tag, msg: &owned }
                }
                None => return Line::Other,
            }
        } else {
            match self.envelope(text) {
                Some(e) => e,
                None => return Line::Other,
            }
        };
        let evidence = Evidence { source: self.source, at: line };
        let ev = match env.tag {
            Tag::Kernel => kernel_packet(env.msg, env.ts_us, env.clock, evidence),
            Tag::Sshd => sshd_failure(env.msg, env.ts_us, env.clock, evidence),
            Tag::Other => None,
        };
        ev.map_or(Line::Other, Line::Event)
    }

    fn envelope<'a>(&self, text: &'a [u8]) -> Option<Envelope<'a>> {
        let mut t = text;
        // <PRI>
        if t.first() == Some(&b'<')
            && let Some(end) = t.iter().take(6).position(|&b| b == b'>')
        {
            t = &t[end + 1..];
        }
        // dmesg: [ 1471.211000] MSG
        if t.first() == Some(&b'[') {
            let (secs, rest) = bracket_time(t)?;
            return Some(Envelope { ts_us: secs, clock: Clock::Boot, tag: Tag::Kernel, msg: rest });
        }
        // RFC 5424: 1 2026-12-05T12:00:00.123Z HOST APP PROCID MSGID SD MSG
        if t.starts_with(b"1 ") {
            let mut f = Fields(&t[2..]);
            let ts = iso_time(f.next()?)?;
            let _host = f.next()?;
            let app = f.next()?;
            let _procid = f.next()?;
            let _msgid = f.next()?;
            let rest = f.rest();
            let msg = skip_structured_data(rest);
            let tag = tag_of(app);
            let msg = strip_dmesg_time(msg);
            return Some(Envelope { ts_us: ts, clock: Clock::Wall, tag, msg });
        }
        // ISO: 2026-12-05T12:00:00+0000 HOST TAG: MSG
        let (ts, rest) = if t.first().is_some_and(u8::is_ascii_digit) {
            let mut f = Fields(t);
            let stamp = f.next()?;
            let ts = iso_time(stamp)?;
            // `dmesg --time-format iso`: a comma before the fraction, and no host or tag
            if stamp.get(19) == Some(&b',') {
                return Some(Envelope { ts_us: ts, clock: Clock::Wall, tag: Tag::Kernel, msg: f.rest() });
            }
            (ts, f.rest())
        } else {
            // RFC 3164: Mmm dd hh:mm:ss HOST TAG: MSG
            let (ts, rest) = self.bsd_time(t)?;
            (ts, rest)
        };
        let mut f = Fields(rest);
        let _host = f.next()?;
        let rest = f.rest();
        let colon = memchr::memchr(b':', rest)?;
        let tag = tag_of(&rest[..colon]);
        let msg = rest.get(colon + 1..)?.strip_prefix(b" ").unwrap_or(&rest[colon + 1..]);
        let msg = if tag == Tag::Kernel { strip_dmesg_time(msg) } else { msg };
        Some(Envelope { ts_us: ts, clock: Clock::Wall, tag, msg })
    }

    fn bsd_time<'a>(&self, t: &'a [u8]) -> Option<(i64, &'a [u8])> {
        // "Dec  5 12:00:00 " is 16 bytes
        let head = t.get(..15)?;
        let month = match head.get(..3)? {
            b"Jan" => 1,
            b"Feb" => 2,
            b"Mar" => 3,
            b"Apr" => 4,
            b"May" => 5,
            b"Jun" => 6,
            b"Jul" => 7,
            b"Aug" => 8,
            b"Sep" => 9,
            b"Oct" => 10,
            b"Nov" => 11,
            b"Dec" => 12,
            _ => return None,
        };
        let day = num(head.get(4..6)?.trim_ascii_start())?;
        let (h, m, s) = (num(head.get(7..9)?)?, num(head.get(10..12)?)?, num(head.get(13..15)?)?);
        if head.get(3) != Some(&b' ') || head.get(9) != Some(&b':') || head.get(12) != Some(&b':') {
            return None;
        }
        let dt = DateTime::new(self.year, month, day as i8, h as i8, m as i8, s as i8, 0).ok()?;
        let ts = self.tz.to_ambiguous_zoned_datetime(dt).compatible().ok()?.timestamp();
        Some((ts.as_microsecond(), t.get(16..)?))
    }
}

fn num(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')))
}

/// `[ 1471.211000] rest` → microseconds since boot.
fn bracket_time(t: &[u8]) -> Option<(i64, &[u8])> {
    let end = memchr::memchr(b']', t)?;
    let inner = t[1..end].trim_ascii();
    let (s, frac) = match memchr::memchr(b'.', inner) {
        Some(p) => (&inner[..p], &inner[p + 1..]),
        None => (inner, &b""[..]),
    };
    let secs = i64::from(num(s)?);
    let mut us = 0i64;
    for i in 0..6 {
        us = us * 10 + frac.get(i).filter(|b| b.is_ascii_digit()).map_or(0, |&d| i64::from(d - b'0'));
    }
    let rest = t.get(end + 1..)?;
    Some((secs * 1_000_000 + us, rest.strip_prefix(b" ").unwrap_or(rest)))
}

/// A kernel message inside syslog may still carry dmesg's `[ 1471.21] `.
fn strip_dmesg_time(msg: &[u8]) -> &[u8] {
    if msg.first() == Some(&b'[')
        && let Some((_, rest)) = bracket_time(msg)
    {
        return rest;
    }
    msg
}

fn iso_time(b: &[u8]) -> Option<i64> {
    let owned;
    let s = std::str::from_utf8(b).ok()?;
    let s = if s.as_bytes().get(19) == Some(&b',') {
        owned = s.replacen(',', ".", 1);
        owned.as_str()
    } else {
        s
    };
    // jiff wants `+00:00` or `Z`; journalctl's short-iso writes `+0000`
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Some(ts.as_microsecond());
    }
    let n = s.len();
    if n > 5 && matches!(s.as_bytes()[n - 5], b'+' | b'-') {
        let fixed = format!("{}:{}", &s[..n - 2], &s[n - 2..]);
        return fixed.parse::<jiff::Timestamp>().ok().map(|t| t.as_microsecond());
    }
    None
}

fn tag_of(tag: &[u8]) -> Tag {
    let name = match memchr::memchr(b'[', tag) {
        Some(p) => &tag[..p],
        None => tag,
    };
    match name {
        b"kernel" => Tag::Kernel,
        b"sshd" | b"sshd-session" => Tag::Sshd,
        _ => Tag::Other,
    }
}

fn skip_structured_data(t: &[u8]) -> &[u8] {
    if let Some(rest) = t.strip_prefix(b"- ") {
        return rest;
    }
    if t == b"-" {
        return b"";
    }
    // [id k="v"]... : skip to the last `] ` of the elements (values may hold escaped `]`)
    let mut i = 0;
    let mut in_quote = false;
    while i < t.len() {
        match t[i] {
            b'\\' => i += 1,
            b'"' => in_quote = !in_quote,
            b']' if !in_quote && t.get(i + 1) != Some(&b'[') => {
                return t.get(i + 1..).map(|r| r.strip_prefix(b" ").unwrap_or(r)).unwrap_or(b"");
            }
            _ => {}
        }
        i += 1;
    }
    b""
}

/// Space-separated fields, with the rest of the line after them.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn next(&mut self) -> Option<&'a [u8]> {
        let t = self.0.trim_ascii_start();
        if t.is_empty() {
            return None;
        }
        let end = memchr::memchr(b' ', t).unwrap_or(t.len());
        self.0 = &t[end..];
        Some(&t[..end])
    }
    fn rest(&self) -> &'a [u8] {
        self.0.strip_prefix(b" ").unwrap_or(self.0)
    }
}

/// `{"MESSAGE": "...", "__REALTIME_TIMESTAMP": "...", "_TRANSPORT": "kernel", ...}`.
fn journal_json(text: &[u8]) -> Option<(i64, Tag, Vec<u8>)> {
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(rename = "MESSAGE")]
        message: Option<Message>,
        #[serde(rename = "__REALTIME_TIMESTAMP")]
        realtime: Option<String>,
        #[serde(rename = "_TRANSPORT")]
        transport: Option<String>,
        #[serde(rename = "SYSLOG_IDENTIFIER")]
        ident: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Message {
        Text(String),
        // journald writes a message that is not valid UTF-8 as an array of bytes
        Bytes(Vec<u8>),
    }
    let e: Entry = serde_json::from_slice(text).ok()?;
    let ts = e.realtime?.parse::<i64>().ok()?;
    let tag = if e.transport.as_deref() == Some("kernel") {
        Tag::Kernel
    } else {
        match e.ident.as_deref() {
            Some("sshd") | Some("sshd-session") => Tag::Sshd,
            _ => Tag::Other,
        }
    };
    let msg = match e.message? {
        Message::Text(s) => s.into_bytes(),
        Message::Bytes(b) => b,
    };
    Some((ts, tag, msg))
}

/// `PREFIX IN=eth0 OUT= MAC=… SRC=198.18.0.9 DST=198.18.0.2 LEN=44 TOS=0x00 PREC=0x00 TTL=52
/// ID=38215 PROTO=TCP SPT=41234 DPT=22 WINDOW=1024 RES=0x00 SYN URGP=0 OPT (020405B4)`.
pub fn kernel_packet(msg: &[u8], ts_us: i64, clock: Clock, evidence: Evidence) -> Option<Event> {
    let start = memmem::find(msg, b"IN=")?;
    if start > 0 && msg[start - 1] != b' ' {
        return None;
    }
    let mut src = None;
    let mut dst = None;
    let mut proto = None;
    let (mut sport, mut dport) = (0u16, 0u16);
    let mut shape = Shape::default();
    let mut icmp_type = None;
    let mut words = msg[start..].split(|&b| b == b' ').filter(|w| !w.is_empty()).peekable();
    // the first PROTO= is the packet's; an ICMP error quotes the offending packet after it in
    // brackets, which must not overwrite the fields
    let mut in_quote = false;
    while let Some(w) = words.next() {
        if w.first() == Some(&b'[') {
            in_quote = true;
        }
        if in_quote {
            if w.last() == Some(&b']') {
                in_quote = false;
            }
            continue;
        }
        let Some(eq) = memchr::memchr(b'=', w) else {
            match w {
                b"SYN" => shape.flags |= tcp_flags::SYN,
                b"ACK" => shape.flags |= tcp_flags::ACK,
                b"FIN" => shape.flags |= tcp_flags::FIN,
                b"RST" => shape.flags |= tcp_flags::RST,
                b"PSH" => shape.flags |= tcp_flags::PSH,
                b"URG" => shape.flags |= tcp_flags::URG,
                b"OPT" => {
                    if let Some(hex) =
                        words.peek().and_then(|n| n.strip_prefix(b"(")).and_then(|n| n.strip_suffix(b")"))
                    {
                        let bytes = decode_hex(hex);
                        shape.options_len = Some(bytes.len().min(255) as u8);
                        shape.mss = mss_of(&bytes);
                        words.next();
                    }
                }
                _ => {}
            }
            continue;
        };
        let (k, v) = (&w[..eq], &w[eq + 1..]);
        match k {
            b"SRC" => src = parse_ip(v),
            b"DST" => dst = parse_ip(v),
            b"TTL" | b"HOPLIMIT" => shape.ttl = num(v).map_or(0, |n| n.min(255) as u8),
            b"ID" if proto.is_none() => shape.ip_id = num(v).and_then(|n| u16::try_from(n).ok()),
            b"PROTO" => {
                proto = Some(match v {
                    b"TCP" => Proto::Tcp,
                    b"UDP" | b"UDPLITE" => Proto::Udp,
                    b"SCTP" => Proto::Sctp,
                    b"ICMP" => Proto::Icmp,
                    b"ICMPv6" => Proto::Icmpv6,
                    _ => Proto::Other,
                })
            }
            b"SPT" => sport = num(v).and_then(|n| u16::try_from(n).ok()).unwrap_or(0),
            b"DPT" => dport = num(v).and_then(|n| u16::try_from(n).ok()).unwrap_or(0),
            b"WINDOW" => shape.window = num(v).and_then(|n| u16::try_from(n).ok()),
            b"SEQ" => shape.seq = num_u64(v).and_then(|n| u32::try_from(n).ok()),
            b"TYPE" if icmp_type.is_none() => icmp_type = num(v).and_then(|n| u16::try_from(n).ok()),
            _ => {}
        }
    }
    let proto = proto?;
    if matches!(proto, Proto::Icmp | Proto::Icmpv6) {
        dport = icmp_type.unwrap_or(0);
    }
    if proto != Proto::Tcp {
        shape.window = None;
    }
    Some(Event {
        ts_us,
        duration_us: 0,
        clock,
        src: src?,
        dst: Some(dst?),
        proto,
        sport,
        dport,
        outcome: Outcome::Logged,
        bytes: 0,
        shape: Some(shape),
        evidence,
    })
}

fn num_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

fn parse_ip(b: &[u8]) -> Option<IpAddr> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn decode_hex(h: &[u8]) -> Vec<u8> {
    let val = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    h.chunks_exact(2).map_while(|p| Some(val(p[0])? << 4 | val(p[1])?)).collect()
}

/// The MSS option (kind 2, length 4) in TCP options.
pub fn mss_of(opts: &[u8]) -> Option<u16> {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return None,
            1 => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1)?);
                if len < 2 {
                    return None;
                }
                if kind == 2 && len == 4 {
                    return Some(u16::from_be_bytes([*opts.get(i + 2)?, *opts.get(i + 3)?]));
                }
                i += len;
            }
        }
    }
    None
}

/// `Failed password for [invalid user] NAME from ADDR port N ssh2`, `Invalid user NAME from
/// ADDR port N`, `… authentication failure; … rhost=ADDR …`.
pub fn sshd_failure(msg: &[u8], ts_us: i64, clock: Clock, evidence: Evidence) -> Option<Event> {
    let addr = if msg.starts_with(b"Failed ") || msg.starts_with(b"Invalid user ") {
        // the address sshd appends is the last " from "; a user name cannot move it
        let p = memmem::rfind(msg, b" from ")?;
        let rest = &msg[p + 6..];
        let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
        parse_ip(&rest[..end])?
    } else if memmem::find(msg, b"authentication failure;").is_some() {
        let p = memmem::rfind(msg, b" rhost=")?;
        let rest = &msg[p + 7..];
        let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
        parse_ip(&rest[..end])?
    } else {
        return None;
    };
    Some(Event {
        ts_us,
        duration_us: 0,
        clock,
        src: addr,
        dst: None,
        proto: Proto::Tcp,
        sport: 0,
        dport: 22,
        outcome: Outcome::AuthFailure,
        bytes: 0,
        shape: None,
        evidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> LogReader {
        LogReader::new(0, 2026, TimeZone::UTC)
    }

    fn ev(l: Line) -> Event {
        match l {
            Line::Event(e) => e,
            Line::Other => panic!("no event"),
        }
    }

    #[test]
    fn syslog_iptables_syn() {
        let l = b"Dec  5 12:00:01 victim kernel: [ 1471.211000] PTL-DROP IN=veth0 OUT= MAC=aa:bb:cc:dd:ee:ff:11:22:33:44:55:66:08:00 SRC=198.18.0.9 DST=198.18.0.2 LEN=44 TOS=0x00 PREC=0x00 TTL=52 ID=38215 PROTO=TCP SPT=41234 DPT=22 WINDOW=1024 RES=0x00 SYN URGP=0 OPT (020405B4)";
        let e = ev(reader().line(l, 7));
        assert_eq!(e.src.to_string(), "198.18.0.9");
        assert_eq!(e.dst.map(|d| d.to_string()).as_deref(), Some("198.18.0.2"));
        assert_eq!((e.proto, e.sport, e.dport), (Proto::Tcp, 41234, 22));
        let s = e.shape.unwrap_or_default();
        assert_eq!((s.flags, s.ttl, s.ip_id, s.window), (tcp_flags::SYN, 52, Some(38215), Some(1024)));
        assert_eq!((s.options_len, s.mss), (Some(4), Some(1460)));
        assert_eq!(e.clock, Clock::Wall);
        assert_eq!(e.evidence.at, 7);
        let want: jiff::Timestamp = "2026-12-05T12:00:01Z".parse().unwrap_or_default();
        assert_eq!(e.ts_us, want.as_microsecond());
    }

    #[test]
    fn dmesg_rfc5424_iso_and_journal() {
        let body = "IN=eth0 OUT= SRC=2001:db8::9 DST=2001:db8::2 LEN=60 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=5000 DPT=161 LEN=20";
        let d = ev(reader().line(format!("[ 12.5] nft-log {body}").as_bytes(), 1));
        assert_eq!((d.clock, d.ts_us, d.proto, d.dport), (Clock::Boot, 12_500_000, Proto::Udp, 161));
        let r =
            ev(reader()
                .line(format!("<4>1 2026-12-05T12:00:00.5Z victim kernel - - - {body}").as_bytes(), 2));
        assert_eq!((r.clock, r.dport), (Clock::Wall, 161));
        let i = ev(reader().line(format!("2026-12-05T12:00:00+0000 victim kernel: {body}").as_bytes(), 3));
        assert_eq!(i.ts_us, r.ts_us - 500_000);
        let d = ev(reader().line(format!("2026-12-05T12:00:00,500000+00:00 {body}").as_bytes(), 3));
        assert_eq!(d.ts_us, r.ts_us);
        let j = format!(
            r#"{{"__REALTIME_TIMESTAMP":"1764936000000000","_TRANSPORT":"kernel","MESSAGE":"{body}"}}"#
        );
        assert_eq!(ev(reader().line(j.as_bytes(), 4)).ts_us, 1_764_936_000_000_000);
    }

    #[test]
    fn only_the_kernel_logs_packets_and_only_sshd_logs_failures() {
        let forged = b"Dec  5 12:00:01 victim sshd[99]: Invalid user IN= SRC=203.0.113.1 DST=1.1.1.1 PROTO=TCP SPT=1 DPT=2 from 198.18.0.7 port 4000";
        let e = ev(reader().line(forged, 1));
        assert_eq!((e.outcome, e.src.to_string().as_str()), (Outcome::AuthFailure, "198.18.0.7"));
        let other =
            b"Dec  5 12:00:01 victim myapp: IN=eth0 SRC=198.18.0.9 DST=198.18.0.2 PROTO=TCP SPT=1 DPT=2";
        assert_eq!(reader().line(other, 1), Line::Other);
        let framed = b"Dec  5 12:00:01 victim sshd[1]: Failed password for invalid user x from 203.0.113.5 port 1 from 198.18.0.8 port 2 ssh2";
        assert_eq!(ev(reader().line(framed, 1)).src.to_string(), "198.18.0.8");
        let pam = b"Dec  5 12:00:01 victim sshd[1]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.18.0.3  user=root";
        assert_eq!(ev(reader().line(pam, 1)).src.to_string(), "198.18.0.3");
    }

    #[test]
    fn icmp_errors_keep_the_outer_packet() {
        let l = b"[ 1.0] x IN=eth0 OUT= SRC=198.18.0.1 DST=198.18.0.9 LEN=72 TTL=64 ID=5 PROTO=ICMP TYPE=3 CODE=3 [SRC=198.18.0.9 DST=198.18.0.1 LEN=44 TTL=50 ID=9 PROTO=UDP SPT=5 DPT=53 LEN=24 ]";
        let e = ev(reader().line(l, 1));
        assert_eq!((e.proto, e.dport, e.src.to_string().as_str()), (Proto::Icmp, 3, "198.18.0.1"));
        assert_eq!(e.shape.and_then(|s| s.ip_id), Some(5));
    }

    #[test]
    fn garbage_is_other() {
        for l in [
            &b""[..],
            b"[",
            b"<",
            b"<13>",
            b"1 ",
            b"Dec",
            b"Dec  5 12:00:01",
            b"{",
            b"\x00\xff IN= PROTO=TCP",
        ] {
            assert_eq!(reader().line(l, 1), Line::Other);
        }
    }
}
