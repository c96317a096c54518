//! Zeek's conn.log: TSV (columns from its `#fields` header, in any order) and JSON lines.
//!
//! The outcome comes from `history` (Zeek's record of what each side did: upper case the
//! originator, lower case the responder), read the way the flow tracker reads packets, so a
//! capture and Zeek's log of it give the same events.

use std::net::IpAddr;

use portolan_model::traffic::{Clock, Evidence, Outcome};
use portolan_model::{Event, Proto};

/// Column positions of the fields this reader uses.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    ts: Option<usize>,
    orig_h: Option<usize>,
    orig_p: Option<usize>,
    resp_h: Option<usize>,
    resp_p: Option<usize>,
    proto: Option<usize>,
    duration: Option<usize>,
    orig_bytes: Option<usize>,
    resp_bytes: Option<usize>,
    conn_state: Option<usize>,
    history: Option<usize>,
}

impl Columns {
    /// From a `#fields\tts\tuid\t…` header line. `None` if the fields that name a connection
    /// are missing.
    pub fn from_header(line: &str) -> Option<Columns> {
        let names = line.strip_prefix("#fields")?.trim_start_matches(['\t', ' ']);
        let mut c = Columns::default();
        for (i, n) in names.split('\t').enumerate() {
            let slot = match n.trim() {
                "ts" => &mut c.ts,
                "id.orig_h" => &mut c.orig_h,
                "id.orig_p" => &mut c.orig_p,
                "id.resp_h" => &mut c.resp_h,
                "id.resp_p" => &mut c.resp_p,
                "proto" => &mut c.proto,
                "duration" => &mut c.duration,
                "orig_bytes" => &mut c.orig_bytes,
                "resp_bytes" => &mut c.resp_bytes,
                "conn_state" => &mut c.conn_state,
                "history" => &mut c.history,
                _ => continue,
            };
            *slot = Some(i);
        }
        (c.ts.is_some() && c.orig_h.is_some() && c.resp_h.is_some() && c.proto.is_some()).then_some(c)
    }

    /// The fields a connection needs that the header lacks.
    pub fn missing(line: &str) -> Vec<&'static str> {
        let names: Vec<&str> = line.split('\t').map(str::trim).collect();
        ["ts", "id.orig_h", "id.resp_h", "proto"].into_iter().filter(|n| !names.contains(n)).collect()
    }
}

/// One connection's fields, however they were written.
struct Row<'a> {
    ts: &'a str,
    orig_h: &'a str,
    orig_p: &'a str,
    resp_h: &'a str,
    resp_p: &'a str,
    proto: &'a str,
    duration: &'a str,
    orig_bytes: &'a str,
    resp_bytes: &'a str,
    conn_state: &'a str,
    history: &'a str,
}

/// Why a row is not a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub what: String,
}

/// A TSV data line → an event.
pub fn tsv_row(c: &Columns, line: &str, source: u32, at: u64) -> Result<Event, RowError> {
    let cols: Vec<&str> = line.split('\t').collect();
    let get = |i: Option<usize>| i.and_then(|i| cols.get(i).copied()).unwrap_or("-");
    let row = Row {
        ts: get(c.ts),
        orig_h: get(c.orig_h),
        orig_p: get(c.orig_p),
        resp_h: get(c.resp_h),
        resp_p: get(c.resp_p),
        proto: get(c.proto),
        duration: get(c.duration),
        orig_bytes: get(c.orig_bytes),
        resp_bytes: get(c.resp_bytes),
        conn_state: get(c.conn_state),
        history: get(c.history),
    };
    event(&row, source, at)
}

/// A JSON line (`{"ts":…,"id.orig_h":…}`) → an event.
pub fn json_row(line: &str, source: u32, at: u64) -> Result<Event, RowError> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| RowError { field: "line", what: format!("not JSON: {e}") })?;
    let text = |k: &str| -> String {
        match v.get(k) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => "-".to_string(),
        }
    };
    let (ts, orig_h, orig_p, resp_h, resp_p) =
        (text("ts"), text("id.orig_h"), text("id.orig_p"), text("id.resp_h"), text("id.resp_p"));
    let (proto, duration, ob, rb, cs, hist) = (
        text("proto"),
        text("duration"),
        text("orig_bytes"),
        text("resp_bytes"),
        text("conn_state"),
        text("history"),
    );
    let row = Row {
        ts: &ts,
        orig_h: &orig_h,
        orig_p: &orig_p,
        resp_h: &resp_h,
        resp_p: &resp_p,
        proto: &proto,
        duration: &duration,
        orig_bytes: &ob,
        resp_bytes: &rb,
        conn_state: &cs,
        history: &hist,
    };
    event(&row, source, at)
}

fn event(r: &Row<'_>, source: u32, at: u64) -> Result<Event, RowError> {
    let bad = |field: &'static str, v: &str| RowError { field, what: format!("{:?} is not valid", v) };
    let ts_us = seconds_us(r.ts).ok_or_else(|| bad("ts", r.ts))?;
    let src: IpAddr = r.orig_h.parse().map_err(|_| bad("id.orig_h", r.orig_h))?;
    let dst: IpAddr = r.resp_h.parse().map_err(|_| bad("id.resp_h", r.resp_h))?;
    let port = |f: &'static str, v: &str| -> Result<u16, RowError> {
        if v == "-" { Ok(0) } else { v.parse().map_err(|_| bad(f, v)) }
    };
    let proto = match r.proto {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        "icmp" => {
            if dst.is_ipv6() {
                Proto::Icmpv6
            } else {
                Proto::Icmp
            }
        }
        _ => Proto::Other,
    };
    let count = |v: &str| v.parse::<u64>().unwrap_or(0);
    Ok(Event {
        ts_us,
        duration_us: seconds_us(r.duration).unwrap_or(0),
        clock: Clock::Wall,
        src,
        dst: Some(dst),
        proto,
        sport: port("id.orig_p", r.orig_p)?,
        dport: port("id.resp_p", r.resp_p)?,
        outcome: outcome(proto, r.history, r.conn_state),
        bytes: count(r.orig_bytes) + count(r.resp_bytes),
        shape: None,
        evidence: Evidence { source, at },
    })
}

/// `1300475167.096535` or an RFC 3339 time → microseconds.
fn seconds_us(v: &str) -> Option<i64> {
    if v == "-" || v.is_empty() {
        return None;
    }
    if let Some((s, f)) = v.split_once('.') {
        if s.bytes().all(|b| b.is_ascii_digit()) && f.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
            let secs: i64 = s.parse().ok()?;
            let mut us = 0i64;
            for i in 0..6 {
                us = us * 10 + f.as_bytes().get(i).map_or(0, |&d| i64::from(d - b'0'));
            }
            return secs.checked_mul(1_000_000)?.checked_add(us);
        }
    } else if v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<i64>().ok()?.checked_mul(1_000_000);
    }
    v.parse::<jiff::Timestamp>().ok().map(|t| t.as_microsecond())
}

/// Zeek's history letters (S h A D d F f R r …) → the outcome the flow tracker would give.
pub fn outcome(proto: Proto, history: &str, conn_state: &str) -> Outcome {
    let h = if history == "-" { "" } else { history };
    let has = |c: char| h.contains(c);
    match proto {
        Proto::Tcp => {
            if has('D') || has('d') {
                Outcome::Session
            } else if has('S') {
                if has('h') {
                    if has('A') { Outcome::Accepted } else { Outcome::HalfOpen }
                } else if has('r') || conn_state == "REJ" {
                    Outcome::Rejected
                } else {
                    Outcome::Attempt
                }
            } else if has('r') {
                Outcome::Rejected
            } else if h.chars().any(|c| c.is_ascii_lowercase() && c != 'r') {
                Outcome::Session
            } else {
                Outcome::Attempt
            }
        }
        _ => {
            if has('d') {
                Outcome::Session
            } else if conn_state == "REJ" {
                Outcome::Rejected
            } else {
                Outcome::Attempt
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_to_outcome() {
        for (h, o) in [
            ("S", Outcome::Attempt),
            ("Sr", Outcome::Rejected),
            ("ShR", Outcome::HalfOpen),
            ("ShAFf", Outcome::Accepted),
            ("ShADadFf", Outcome::Session),
            ("SADF", Outcome::Session),
            ("DaFfA", Outcome::Session),
        ] {
            assert_eq!(outcome(Proto::Tcp, h, "-"), o, "{h}");
        }
        assert_eq!(outcome(Proto::Udp, "D", "S0"), Outcome::Attempt);
        assert_eq!(outcome(Proto::Udp, "Dd", "SF"), Outcome::Session);
    }

    #[test]
    fn tsv_with_any_column_order() {
        let c = Columns::from_header("#fields\tid.resp_p\tproto\tid.orig_h\tts\tid.resp_h\thistory")
            .unwrap_or_else(|| panic!("header"));
        let e = tsv_row(&c, "22\ttcp\t198.18.0.9\t1300475167.5\t198.18.0.2\tS", 0, 9)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((e.dport, e.outcome, e.ts_us), (22, Outcome::Attempt, 1_300_475_167_500_000));
        assert!(tsv_row(&c, "22\ttcp\tnot-an-ip\t1\t198.18.0.2\tS", 0, 1).is_err());
        assert_eq!(Columns::missing("#fields\tts\tproto"), vec!["id.orig_h", "id.resp_h"]);
    }

    #[test]
    fn json_lines() {
        let e = json_row(
            r#"{"ts":1300475167.5,"id.orig_h":"2001:db8::1","id.orig_p":5000,"id.resp_h":"2001:db8::2","id.resp_p":53,"proto":"udp","history":"Dd"}"#,
            0,
            1,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((e.proto, e.outcome, e.sport), (Proto::Udp, Outcome::Session, 5000));
        let iso = json_row(
            r#"{"ts":"2026-12-05T12:00:00.000000Z","id.orig_h":"198.18.0.1","id.resp_h":"198.18.0.2","proto":"tcp"}"#,
            0,
            1,
        );
        assert!(iso.is_ok());
    }
}
