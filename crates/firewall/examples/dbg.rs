#![allow(missing_docs, clippy::unwrap_used)]
//! Times the phases of an analysis: `cargo run --release --example dbg -- FILE`.
use portolan_firewall::analysis::{Analysis, standard_classes};
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
    let t = Instant::now();
    let e = a.exposure(&standard_classes(), None, true);
    eprintln!("exposure {:?} rows {}", t.elapsed(), e.iter().map(|x| x.rows.len()).sum::<usize>());
}
