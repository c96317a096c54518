//! AWS VPC flow logs: version 2's default format (`version account-id interface-id srcaddr
//! dstaddr srcport dstport protocol packets bytes start end action log-status`), and custom
//! formats read from their header line (the field names, space separated, as flow logs
//! delivered to S3 begin; `${field}` as in the format string is accepted too).
//!
//! A record sums one direction of a flow over an aggregation interval (1 or 10 minutes), so the
//! outcome is read from its counters: `REJECT` (a security group or network ACL refused it) is an
//! attempt nobody answered; an accepted record of at most 2 packets and 120 bytes whose
//! `tcp-flags` (custom formats; AWS reports only FIN, SYN, RST and SYN-ACK there, never a plain
//! ACK) hold SYN alone or nothing, or that has no flags field, is a probe; SYN with RST in so few
//! packets is a half-open probe (the client reset the answer); anything larger is a session. A
//! record from a lower port to an ephemeral one (32768 and up) is a server's answer, not a
//! connection of its own, and gives no event. `NODATA` and `SKIPDATA` records give none.

use std::net::IpAddr;

use portolan_model::traffic::{Clock, Evidence, Outcome};
use portolan_model::{Event, Proto};

/// The version 2 default format, used when a file has no header line.
pub const DEFAULT_FIELDS: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";

/// Column positions of the fields this reader uses.
#[derive(Debug, Clone)]
pub struct Columns {
    srcaddr: usize,
    dstaddr: usize,
    srcport: usize,
    dstport: usize,
    protocol: usize,
    start: usize,
    end: Option<usize>,
    packets: Option<usize>,
    bytes: Option<usize>,
    action: Option<usize>,
    log_status: Option<usize>,
    tcp_flags: Option<usize>,
    width: usize,
}

/// Fields a flow record cannot do without.
const REQUIRED: [&str; 6] = ["srcaddr", "dstaddr", "srcport", "dstport", "protocol", "start"];

fn names(line: &str) -> Vec<String> {
    line.split_ascii_whitespace()
        .map(|w| w.trim_start_matches("${").trim_end_matches('}').replace('_', "-").to_ascii_lowercase())
        .collect()
}

impl Columns {
    /// From a header line; `None` when a required field is missing (see [`Columns::missing`]).
    pub fn from_header(line: &str) -> Option<Columns> {
        let n = names(line);
        let at = |f: &str| n.iter().position(|x| x == f);
        Some(Columns {
            srcaddr: at("srcaddr")?,
            dstaddr: at("dstaddr")?,
            srcport: at("srcport")?,
            dstport: at("dstport")?,
            protocol: at("protocol")?,
            start: at("start")?,
            end: at("end"),
            packets: at("packets"),
            bytes: at("bytes"),
            action: at("action"),
            log_status: at("log-status"),
            tcp_flags: at("tcp-flags"),
            width: n.len(),
        })
    }

    /// The required fields a header lacks.
    pub fn missing(line: &str) -> Vec<&'static str> {
        let n = names(line);
        REQUIRED.iter().copied().filter(|f| !n.iter().any(|x| x == f)).collect()
    }

    /// The default format's columns.
    pub fn default_v2() -> Columns {
        // DEFAULT_FIELDS names every required field
        Columns::from_header(DEFAULT_FIELDS).unwrap_or(Columns {
            srcaddr: 3,
            dstaddr: 4,
            srcport: 5,
            dstport: 6,
            protocol: 7,
            start: 10,
            end: Some(11),
            packets: Some(8),
            bytes: Some(9),
            action: Some(12),
            log_status: Some(13),
            tcp_flags: None,
            width: 14,
        })
    }
}

/// Whether a line is a flow log header (field names, not values).
pub fn is_header(line: &str) -> bool {
    let n = names(line);
    n.iter().any(|x| x == "srcaddr") && n.iter().any(|x| x == "dstaddr")
}

/// Whether a line looks like a default-format record (`2 123456789012 eni-… …`).
pub fn is_record(line: &str) -> bool {
    let w: Vec<&str> = line.split_ascii_whitespace().collect();
    w.len() == 14 && w[0].bytes().all(|b| b.is_ascii_digit()) && (w[2].starts_with("eni-") || w[2] == "-")
}

/// What is wrong with a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub what: String,
}

/// TCP flag bits as flow logs report them (`tcp-flags`: the OR of the interval's packets).
mod flag {
    pub const SYN: u32 = 2;
    pub const RST: u32 = 4;
}

/// A record → an event; `Ok(None)` for records with no flow (`NODATA`, `SKIPDATA`, `-`) and for
/// a server's answers.
pub fn row(c: &Columns, line: &str, source: u32, at: u64) -> Result<Option<Event>, RowError> {
    let w: Vec<&str> = line.split_ascii_whitespace().collect();
    if w.len() != c.width {
        return Err(RowError {
            field: "line",
            what: format!("{} fields where the format has {}", w.len(), c.width),
        });
    }
    let get = |i: usize| w.get(i).copied().unwrap_or("-");
    if let Some(s) = c.log_status.map(get)
        && s != "OK"
    {
        return Ok(None);
    }
    if get(c.srcaddr) == "-" || get(c.start) == "-" {
        return Ok(None);
    }
    let bad = |field: &'static str, v: &str| RowError { field, what: format!("{v:?} is not valid") };
    let src: IpAddr = get(c.srcaddr).parse().map_err(|_| bad("srcaddr", get(c.srcaddr)))?;
    let dst: IpAddr = get(c.dstaddr).parse().map_err(|_| bad("dstaddr", get(c.dstaddr)))?;
    let port = |f: &'static str, i: usize| -> Result<u16, RowError> {
        match get(i) {
            "-" => Ok(0),
            v => v.parse().map_err(|_| bad(f, v)),
        }
    };
    let sport = port("srcport", c.srcport)?;
    let dport = port("dstport", c.dstport)?;
    let number: u8 = get(c.protocol).parse().map_err(|_| bad("protocol", get(c.protocol)))?;
    let proto = match number {
        6 => Proto::Tcp,
        17 => Proto::Udp,
        1 => Proto::Icmp,
        58 => Proto::Icmpv6,
        _ => Proto::Other,
    };
    // seconds within what a timestamp can hold (about the years -9999 to 9999)
    let secs = |f: &'static str, i: usize| -> Result<i64, RowError> {
        match get(i).parse::<i64>() {
            Ok(s) if (-250_000_000_000..=250_000_000_000).contains(&s) => Ok(s * 1_000_000),
            _ => Err(bad(f, get(i))),
        }
    };
    let start = secs("start", c.start)?;
    let end = match c.end {
        Some(i) if get(i) != "-" => secs("end", i)?,
        _ => start,
    };
    let count = |i: Option<usize>| i.map(get).and_then(|v| v.parse::<u64>().ok());
    let packets = count(c.packets);
    let bytes = count(c.bytes).unwrap_or(0);
    let flags = c.tcp_flags.map(get).and_then(|v| v.parse::<u32>().ok());
    let reject = c.action.map(get) == Some("REJECT");
    // a server's answer: from a lower port to an ephemeral one
    if matches!(proto, Proto::Tcp | Proto::Udp) && !reject && dport >= 32768 && sport < dport && sport < 32768
    {
        return Ok(None);
    }
    let small = packets.is_none_or(|p| p <= 2) && bytes <= 120;
    let outcome = match (proto, flags) {
        _ if reject => Outcome::Attempt,
        (Proto::Tcp, Some(f)) if small && f & flag::SYN != 0 && f & flag::RST != 0 => Outcome::HalfOpen,
        (Proto::Tcp, Some(f)) if small && (f == flag::SYN || f == 0) => Outcome::Attempt,
        (Proto::Tcp, Some(_)) => Outcome::Session,
        _ if small => Outcome::Attempt,
        _ => Outcome::Session,
    };
    Ok(Some(Event {
        ts_us: start,
        duration_us: end.saturating_sub(start).max(0),
        clock: Clock::Wall,
        src,
        dst: Some(dst),
        proto,
        sport,
        dport,
        outcome,
        bytes,
        shape: None,
        evidence: Evidence { source, at },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    // records in the form of AWS's documentation examples, addresses in 198.18.0.0/15
    #[test]
    fn default_format_records() {
        let c = Columns::default_v2();
        let accepted = "2 123456789010 eni-1235b8ca123456789 198.18.16.139 198.18.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";
        let e = row(&c, accepted, 0, 1).unwrap().unwrap();
        assert_eq!(
            (e.src.to_string(), e.dport, e.proto, e.outcome),
            ("198.18.16.139".into(), 22, Proto::Tcp, Outcome::Session)
        );
        assert_eq!((e.ts_us, e.duration_us, e.bytes), (1_418_530_010_000_000, 60_000_000, 4249));
        let rejected = "2 123456789010 eni-1235b8ca123456789 198.18.39.30 198.18.1.2 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK";
        assert_eq!(row(&c, rejected, 0, 2).unwrap().unwrap().outcome, Outcome::Attempt);
        let nodata = "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA";
        assert_eq!(row(&c, nodata, 0, 3).unwrap(), None);
        let answer = "2 123456789010 eni-1235b8ca123456789 198.18.16.21 198.18.16.139 22 40641 6 20 4249 1418530010 1418530070 ACCEPT OK";
        assert_eq!(row(&c, answer, 0, 4).unwrap(), None);
        let probe = "2 123456789010 eni-1235b8ca123456789 198.18.39.30 198.18.1.2 61000 8080 6 1 44 1418530010 1418530070 ACCEPT OK";
        assert_eq!(row(&c, probe, 0, 5).unwrap().unwrap().outcome, Outcome::Attempt);
        let short = "2 123456789010 eni-1 198.18.1.1";
        assert_eq!(row(&c, short, 0, 6).unwrap_err().field, "line");
        let bad = "2 123456789010 eni-1235b8ca123456789 198.18.16.139 not-an-ip 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";
        assert_eq!(row(&c, bad, 0, 7).unwrap_err().field, "dstaddr");
        assert!(is_record(accepted) && !is_record("Dec  5 sshd[1]: x"));
    }

    #[test]
    fn custom_format_with_tcp_flags() {
        let h = "version vpc-id subnet-id instance-id interface-id account-id type srcaddr dstaddr srcport dstport pkt-srcaddr pkt-dstaddr protocol bytes packets start end action tcp-flags log-status";
        assert!(is_header(h));
        let c = Columns::from_header(h).unwrap();
        let syn_only = "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 198.18.52.81 198.18.0.185 7256 22 198.18.52.81 198.18.0.185 6 44 1 1566848875 1566848933 ACCEPT 2 OK";
        assert_eq!(row(&c, syn_only, 0, 2).unwrap().unwrap().outcome, Outcome::Attempt);
        let reset = syn_only.replace(" 44 1 ", " 84 2 ").replace(" ACCEPT 2 OK", " ACCEPT 6 OK");
        assert_eq!(row(&c, &reset, 0, 3).unwrap().unwrap().outcome, Outcome::HalfOpen);
        // a session's later interval: no SYN or FIN, so flags 0, and many packets
        let later = syn_only.replace(" 44 1 ", " 52000 40 ").replace(" ACCEPT 2 OK", " ACCEPT 0 OK");
        assert_eq!(row(&c, &later, 0, 4).unwrap().unwrap().outcome, Outcome::Session);
        let opened = syn_only.replace(" 44 1 ", " 6200 9 ");
        assert_eq!(row(&c, &opened, 0, 5).unwrap().unwrap().outcome, Outcome::Session);
        // a database's answers (from 5432 to an ephemeral port) are not connections
        let answer = syn_only.replace(" 7256 22 ", " 5432 50211 ");
        assert_eq!(row(&c, &answer, 0, 6).unwrap(), None);
        // times beyond what a timestamp holds
        let far = syn_only.replace("1566848875", "9223372036854");
        assert_eq!(row(&c, &far, 0, 7).unwrap_err().field, "start");
        assert_eq!(
            Columns::missing("version srcaddr"),
            ["dstaddr", "srcport", "dstport", "protocol", "start"]
        );
        assert!(
            Columns::from_header(
                "${version} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${start}"
            )
            .is_some()
        );
    }
}
