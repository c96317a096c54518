#![allow(missing_docs, clippy::unwrap_used)]
//! Times the phases of an analysis: `cargo run --release --example dbg -- FILE [exposure]`.
use portolan_firewall::analysis::{Analysis, standard_classes};
use portolan_firewall::model::Packet;
use std::time::Instant;
fn main() {
    let f = std::env::args().nth(1).unwrap();
    let t = Instant::now();
    let rs = portolan_firewall::load(std::path::Path::new(&f), None, &Default::default()).unwrap();
    eprintln!("parse {:?} ({} rules)", t.elapsed(), rs.rule_count());
    let t = Instant::now();
    let mut a = Analysis::new(&[&rs]).unwrap();
    eprintln!(
        "compile {:?} nodes {:?}",
        t.elapsed(),
        a.scopes
            .iter()
            .map(|s| s.fams.iter().flatten().map(|f| f.dd.size()).sum::<usize>())
            .collect::<Vec<_>>()
    );
    let mut x = 7u64;
    let pkts: Vec<Packet> = (0..100_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Packet {
                src: std::net::IpAddr::V4(std::net::Ipv4Addr::from(x as u32)),
                dst: "192.0.2.1".parse().unwrap(),
                proto: if x & 1 == 0 { 6 } else { 17 },
                dport: (x >> 32) as u16,
                sport: 40000,
                iif: Some("eth0".into()),
                oif: None,
            }
        })
        .collect();
    let t = Instant::now();
    let n = pkts.iter().filter(|p| a.verdict(0, p).is_some()).count();
    let el = t.elapsed();
    eprintln!("queries {n} in {el:?}: {:.0}/s", n as f64 / el.as_secs_f64());
    if std::env::args().nth(2).is_some() {
        let t = Instant::now();
        let e = a.exposure(&standard_classes(), None, true, &[]).unwrap();
        eprintln!("exposure {:?} rows {}", t.elapsed(), e.iter().map(|x| x.rows.len()).sum::<usize>());
    }
}
