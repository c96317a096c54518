//! Property tests: arbitrary and mutated bytes through every reader end in an event, a
//! skipped line or a located error — never a panic, and in bounded time.

use std::io::Cursor;

use portolan_traffic::packet::{decode, linktype};
use portolan_traffic::{Format, Options, Stats, TextParser};
use proptest::prelude::*;

fn opts() -> Options {
    Options { format: None, max_flows: 64, year: 2026, tz: jiff::tz::TimeZone::UTC }
}

const SYSLOG: &str = "Dec  5 12:00:01 victim kernel: [ 1471.211000] PTW IN=veth0 OUT= MAC=aa:bb:cc:dd:ee:ff:11:22:33:44:55:66:08:00 SRC=198.18.0.9 DST=198.18.0.2 LEN=44 TOS=0x00 PREC=0x00 TTL=52 ID=38215 PROTO=TCP SPT=41234 DPT=22 SEQ=1 ACK=0 WINDOW=1024 RES=0x00 SYN URGP=0 OPT (020405B4)";
const CONN: &str = "1300475167.096535\tC1\t198.18.0.1\t5353\t198.18.0.2\t22\ttcp\t-\t0.1\t0\t0\tS0\tF\tT\t0\tS\t1\t60\t0\t0\t-";
const FIELDS: &str = "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents";

fn mutate(base: &[u8], edits: &[(usize, u8)]) -> Vec<u8> {
    let mut v = base.to_vec();
    for &(i, b) in edits {
        if !v.is_empty() {
            let n = v.len();
            v[i % n] = b;
        }
    }
    v
}

/// A pcap file with one Ethernet frame holding `payload` after a valid IPv4+TCP header.
fn pcap_with(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut f = Vec::new();
    for (m, v) in [(0xa1b2c3d4u32, 2u16), (0, 4)] {
        if m != 0 {
            f.extend_from_slice(&m.to_le_bytes());
            f.extend_from_slice(&v.to_le_bytes());
        } else {
            f.extend_from_slice(&v.to_le_bytes());
        }
    }
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&linktype::ETHERNET.to_le_bytes());
    for (i, fr) in frames.iter().enumerate() {
        f.extend_from_slice(&(i as u32).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(fr.len() as u32).to_le_bytes());
        f.extend_from_slice(&(fr.len() as u32).to_le_bytes());
        f.extend_from_slice(fr);
    }
    f
}

fn syn_frame() -> Vec<u8> {
    let mut v = hex(concat!(
        "020000000002020000000001",
        "0800",
        "45000028abcd0000340600000c6212095c612002",
        "a0120016000000010000000050020400d0e00000"
    ));
    v.truncate(54);
    v
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0)).collect()
}

const FLOW: &str = "2 123456789010 eni-1235b8ca123456789 198.18.16.139 198.18.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";
const FLOW_HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn log_lines_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400),
                             edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..12)) {
        let mut p = TextParser::new(Format::Log, 0, &opts());
        let _ = p.line(&bytes, 1);
        let _ = p.line(&mutate(SYSLOG.as_bytes(), &edits), 2);
    }

    #[test]
    fn conn_log_rows_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300),
                                 edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..12)) {
        let mut p = TextParser::new(Format::Zeek, 0, &opts());
        let _ = p.line(FIELDS.as_bytes(), 1);
        let _ = p.line(&bytes, 2);
        let _ = p.line(&mutate(CONN.as_bytes(), &edits), 3);
        let _ = p.line(&mutate(FIELDS.as_bytes(), &edits), 4);
    }

    #[test]
    fn flow_log_rows_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300),
                                 edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..12)) {
        let mut p = TextParser::new(Format::Vpc, 0, &opts());
        let _ = p.line(&bytes, 1);
        let _ = p.line(&mutate(FLOW.as_bytes(), &edits), 2);
        let mut p = TextParser::new(Format::Vpc, 0, &opts());
        let _ = p.line(&mutate(FLOW_HEADER.as_bytes(), &edits), 1);
        let _ = p.line(FLOW.as_bytes(), 2);
        let _ = p.line(&bytes, 3);
    }

    #[test]
    fn frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                          edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..16)) {
        for lt in [0, 1, 12, 14, 101, 113, 228, 229, 276] {
            let _ = decode(lt, &bytes);
            let _ = decode(lt, &mutate(&syn_frame(), &edits));
        }
    }

    #[test]
    fn captures_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..24),
                            cut in any::<usize>()) {
        let file = pcap_with(&[syn_frame(), syn_frame(), syn_frame()]);
        let mut damaged = mutate(&file, &edits);
        damaged.truncate(cut % (file.len() + 1));
        let mut stats = Stats::default();
        let mut n = 0u32;
        let _ = portolan_traffic::capture::read(Cursor::new(damaged), "x.pcap", 0, 64, &mut stats, &mut |_| n += 1);
    }
}

#[test]
fn the_seed_frame_decodes() {
    let p = decode(linktype::ETHERNET, &syn_frame());
    assert!(p.is_some_and(|p| p.dport == 22 && p.flags == 0x02), "{p:?}");
    let mut stats = Stats::default();
    let mut n = 0;
    let r = portolan_traffic::capture::read(
        Cursor::new(pcap_with(&[syn_frame()])),
        "x.pcap",
        0,
        64,
        &mut stats,
        &mut |_| n += 1,
    );
    assert!(r.is_ok(), "{r:?}");
    assert_eq!((stats.records, n), (1, 1));
}
