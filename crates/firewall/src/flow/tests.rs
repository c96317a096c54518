//! The first-match propagation against the decision diagrams on every rule set of the corpus
//! (`tests/corpus`): the diagrams' exposure is crate-internal, so the comparison lives here.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::analysis::{Analysis, Exposure, standard_classes};
use crate::dd::Term;
use crate::{LoadOptions, Ruleset};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn rule_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            [".rules", ".rules6", ".nft.json", ".aws.json"].iter().any(|x| n.ends_with(x))
        })
        .collect();
    v.sort();
    v
}

fn load(p: &Path) -> Ruleset {
    let n = p.file_name().unwrap().to_string_lossy().into_owned();
    let stem =
        [".rules6", ".rules", ".nft.json", ".aws.json"].iter().find_map(|x| n.strip_suffix(x)).unwrap_or(&n);
    let ipset = corpus().join(format!("{stem}.ipset"));
    let ipsets = ipset.exists().then(|| crate::load_ipsets(&ipset).unwrap());
    crate::load(p, None, &LoadOptions { family: None, ipsets })
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every (protocol, port) segment of an exposure with, per class, each verdict's sources
/// (the row's own parts and those shown once for every row, together).
fn segments(e: &Exposure) -> BTreeMap<(u8, u16), Vec<BTreeMap<Term, crate::sets::IntervalSet>>> {
    let mut out = BTreeMap::new();
    for r in &e.rows {
        let cls: Vec<BTreeMap<Term, crate::sets::IntervalSet>> = r
            .classes
            .iter()
            .map(|o| {
                let mut m: BTreeMap<Term, crate::sets::IntervalSet> = BTreeMap::new();
                for (t, s) in o.all() {
                    let e = m.entry(*t).or_default();
                    *e = e.union(s);
                }
                m
            })
            .collect();
        for p in r.proto.0..=r.proto.1 {
            match r.ports {
                // tcp and udp: per port boundary
                Some((lo, _)) => {
                    out.insert((p, lo), cls.clone());
                }
                None => {
                    out.insert((p, 0), cls.clone());
                }
            }
        }
    }
    out
}

fn lookup<V: Clone>(m: &BTreeMap<(u8, u16), V>, k: (u8, u16)) -> V {
    m.range(..=k).next_back().map(|x| x.1.clone()).unwrap()
}

/// `fw show`'s propagation engine and the diagrams give the same exposure for every rule set
/// of the corpus: per protocol and port, per class, the same verdicts from the same rules
/// for the same sources (ports of protocols without ports: the same verdicts and rules).
#[test]
fn propagation_agrees_with_the_diagrams() {
    let mut classes = standard_classes();
    classes.push(crate::analysis::named_class("81.2.69.0/24").unwrap());
    let mut errors = Vec::new();
    let mut followed = 0;
    for f in rule_files() {
        let rs = load(&f);
        for iif in [vec![], vec!["eth0".to_string()]] {
            for dst in [None, Some("192.0.2.1".parse().unwrap())] {
                let mut a = Analysis::new(&[&rs]).unwrap();
                let dd = a.exposure_by_diagrams(&classes, dst, true, &iif);
                let fl =
                    a.exposure(&classes, dst, true, &iif).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                followed += 1;
                if dd.len() != fl.len() {
                    errors.push(format!("{}: {} exposures vs {}", f.display(), dd.len(), fl.len()));
                    continue;
                }
                for (x, y) in dd.iter().zip(&fl) {
                    let at = format!(
                        "{} {:?} {} {:?} iif {iif:?} dst {dst:?}",
                        f.display(),
                        x.scope,
                        x.family.as_str(),
                        x.view
                    );
                    if (&x.scope, x.family, x.view) != (&y.scope, y.family, y.view) {
                        errors.push(format!("{at}: different exposures"));
                        continue;
                    }
                    let (sx, sy) = (segments(x), segments(y));
                    let keys: BTreeSet<(u8, u16)> = sx.keys().chain(sy.keys()).copied().collect();
                    for k in keys {
                        let (vx, vy) = (lookup(&sx, k), lookup(&sy, k));
                        let port_proto = k.0 == 6 || k.0 == 17;
                        for (ci, (cx, cy)) in vx.iter().zip(&vy).enumerate() {
                            let same = if port_proto {
                                cx == cy
                            } else {
                                cx.keys().collect::<Vec<_>>() == cy.keys().collect::<Vec<_>>()
                            };
                            if !same {
                                errors.push(format!(
                                    "{at}: proto {} port {} class {}: diagrams {:?} / propagation {:?}",
                                    k.0, k.1, classes[ci].name, cx, cy
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    errors.truncate(40);
    assert!(errors.is_empty(), "{} mismatches:\n{}", errors.len(), errors.join("\n"));
    assert_eq!(followed, 4 * rule_files().len());
}

/// A base chain judged alone: what falls off its end behind a jump with an unseen condition
/// meets the policy (drop here), so the drop before the jump changes no verdict. (The first
/// propagation took it as a return and missed the redundancy; 1,400 random rule sets against
/// the diagrams found it.)
#[test]
fn what_falls_off_a_base_chain_behind_an_unseen_condition_meets_its_policy() {
    let text = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\n:u3 - [0:0]\n\
                -A OUTPUT -d 192.0.2.1 -p tcp -m tcp --dport 53 -j DROP\n\
                -A OUTPUT -s 81.2.69.5 -d 192.0.2.1 -p tcp -m limit --limit 5/min -j u3\n\
                -A u3 -i eth1 -j LOG\nCOMMIT\n";
    let rs = crate::parse_str(text, "t.rules", None, &LoadOptions::default()).unwrap();
    let mut a = Analysis::outline(&[&rs]);
    let findings = crate::lint::lint(&mut a, &crate::lint::Options::default()).unwrap();
    let redundant: Vec<u32> = findings
        .iter()
        .filter(|f| f.rule == "fw.redundant")
        .filter_map(|f| f.location.as_ref().map(|l| l.line))
        .collect();
    assert_eq!(redundant, vec![6]);
}
