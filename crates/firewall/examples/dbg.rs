#![allow(missing_docs, clippy::unwrap_used)]
use portolan_firewall::analysis::Analysis;
fn main() {
    let f = std::env::args().nth(1).unwrap();
    let rs = portolan_firewall::load(std::path::Path::new(&f), None, &Default::default()).unwrap();
    let a = Analysis::new(&[&rs]).unwrap();
    let ff = a.scopes[0].fams[0].as_ref().unwrap();
    for t in ff.dd.terminals(ff.output) {
        let t = ff.dd.term_of(t);
        println!(
            "{:?} {}",
            t.kind,
            if t.rule == u32::MAX { "-".into() } else { a.describe(a.refs[t.rule as usize]) }
        );
    }
}
