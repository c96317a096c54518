//! The corpus: rule sets written to look like real ones (docker, ufw, firewalld, fail2ban,
//! kube-proxy, NAT gateways, IPv6, nftables sets and maps, AWS security groups), each with
//! the exposure and lint results expected from reading its rules (`NAME.exposure`,
//! `NAME.lint`; format in the README of the directory).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use portolan_firewall::analysis::{Analysis, Exposure, Outcome, View, standard_classes};
use portolan_firewall::dd::{Kind, NONE};
use portolan_firewall::lint::{self, Listener};
use portolan_firewall::{Family, LoadOptions, Ruleset};
use portolan_model::Transport;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// The rule files of the corpus.
pub fn rule_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.ends_with(".rules")
                || n.ends_with(".rules6")
                || n.ends_with(".nft.json")
                || n.ends_with(".aws.json")
        })
        .collect();
    v.sort();
    v
}

fn stem(p: &Path) -> String {
    let n = p.file_name().unwrap().to_string_lossy().into_owned();
    for ext in [".rules6", ".rules", ".nft.json", ".aws.json"] {
        if let Some(s) = n.strip_suffix(ext) {
            return s.to_string();
        }
    }
    n
}

fn load(p: &Path) -> Ruleset {
    let ipset = corpus().join(format!("{}.ipset", stem(p)));
    let ipsets = ipset.exists().then(|| portolan_firewall::load_ipsets(&ipset).unwrap());
    portolan_firewall::load(p, None, &LoadOptions { family: None, ipsets })
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Ports as `22,80,1000-2000` (or `-`).
fn port_list(v: &[(u16, u16)]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let mut merged: Vec<(u16, u16)> = Vec::new();
    for &(a, b) in v {
        if let Some(l) = merged.last_mut()
            && u32::from(l.1) + 1 >= u32::from(a)
        {
            l.1 = l.1.max(b);
            continue;
        }
        merged.push((a, b));
    }
    merged
        .iter()
        .map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
        .collect::<Vec<_>>()
        .join(",")
}

fn norm_ports(s: &str) -> String {
    if s == "-" {
        return s.into();
    }
    if s == "all" {
        return "0-65535".into();
    }
    let mut v: Vec<(u16, u16)> = s
        .split(',')
        .map(|p| {
            let (a, b) = p.split_once('-').unwrap_or((p, p));
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    v.sort();
    port_list(&v)
}

struct Computed {
    /// (scope, family, proto, class, open|partial) -> ports
    sets: BTreeMap<(String, String, String, String, String), String>,
    exps: Vec<Exposure>,
}

fn compute(a: &mut Analysis, iif: &[String]) -> Computed {
    let classes = standard_classes();
    let exps = a.exposure(&classes, None, false, iif).unwrap();
    let mut sets = BTreeMap::new();
    for e in &exps {
        if e.view != View::Input {
            continue;
        }
        for (ci, cname) in e.classes.iter().enumerate() {
            for proto in [6u8, 17] {
                let mut open = Vec::new();
                let mut partial = Vec::new();
                for r in &e.rows {
                    if r.proto != (proto, proto) {
                        continue;
                    }
                    let Some(p) = r.ports else { continue };
                    let o = &r.classes[ci];
                    if o.all_accept() {
                        open.push(p);
                    } else if o.any_accept() {
                        partial.push(p);
                    }
                }
                let pn = if proto == 6 { "tcp" } else { "udp" };
                for (kind, v) in [("open", open), ("partial", partial)] {
                    sets.insert(
                        (
                            e.scope.clone(),
                            e.family.as_str().to_string(),
                            pn.to_string(),
                            cname.clone(),
                            kind.to_string(),
                        ),
                        port_list(&v),
                    );
                }
            }
        }
    }
    Computed { sets, exps }
}

fn outcome<'e>(
    c: &'e Computed,
    scope: &str,
    fam: &str,
    proto: u8,
    port: u16,
    class: &str,
) -> Option<&'e Outcome> {
    let e = c.exps.iter().find(|e| e.scope == scope && e.family.as_str() == fam && e.view == View::Input)?;
    let ci = e.classes.iter().position(|n| n == class)?;
    let r = e
        .rows
        .iter()
        .find(|r| r.proto == (proto, proto) && r.ports.is_some_and(|p| p.0 <= port && port <= p.1))?;
    Some(&r.classes[ci])
}

fn check_exposure(file: &Path, rs: &Ruleset, a: &mut Analysis) -> Vec<String> {
    let exp_path = corpus().join(format!("{}.exposure", stem(file)));
    let text =
        std::fs::read_to_string(&exp_path).unwrap_or_else(|_| panic!("missing {}", exp_path.display()));
    // `iif NAME...`: the interfaces internet traffic arrives on
    let iif: Vec<String> = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("iif "))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let c = compute(a, &iif);
    let mut errors = Vec::new();
    let mut expected: BTreeMap<(String, String, String, String, String), String> = BTreeMap::new();
    for key in c.sets.keys() {
        expected.insert(key.clone(), "-".into());
    }
    let mut scope = String::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        if w[0] == "iif" {
            continue;
        }
        if w[0] == "scope" {
            scope = w[1..].join(" ");
            continue;
        }
        let at = format!("{}:{}", exp_path.display(), n + 1);
        match w.as_slice() {
            [fam, proto, class, kind @ ("open" | "partial"), ports] => {
                let key =
                    (scope.clone(), fam.to_string(), proto.to_string(), class.to_string(), kind.to_string());
                if !c.sets.contains_key(&key) {
                    errors.push(format!("{at}: no such exposure ({key:?})"));
                }
                expected.insert(key, norm_ports(ports));
            }
            [fam, proto, port, class, verdict, rest @ ..] => {
                let pn: u8 = if *proto == "tcp" { 6 } else { 17 };
                let port: u16 = port.parse().unwrap();
                let Some(o) = outcome(&c, &scope, fam, pn, port, class) else {
                    errors.push(format!("{at}: no row for {fam} {proto} {port} {class}"));
                    continue;
                };
                let kinds: BTreeSet<Kind> = o.all().map(|(t, _)| t.kind).collect();
                let published = o.all().any(|(t, _)| t.via != NONE);
                let ok = match *verdict {
                    "accept" => kinds == BTreeSet::from([Kind::Accept]) && !published,
                    "published" => kinds == BTreeSet::from([Kind::Accept]) && published,
                    "drop" => kinds == BTreeSet::from([Kind::Drop]),
                    "reject" => kinds == BTreeSet::from([Kind::Reject]),
                    "deny" => !kinds.contains(&Kind::Accept),
                    "partial" => kinds.contains(&Kind::Accept) && kinds.len() > 1,
                    v => panic!("{at}: unknown verdict {v}"),
                };
                if !ok {
                    errors.push(format!("{at}: {fam} {proto} {port} from {class}: expected {verdict}, got {kinds:?} (published: {published})"));
                }
                if let Some(line_s) = rest.first() {
                    let want: u32 = line_s.parse().unwrap();
                    let lines: Vec<u32> = o
                        .all()
                        .filter(|(t, _)| t.rule != NONE)
                        .map(|(t, _)| a.location(a.refs[t.rule as usize]).line)
                        .collect();
                    if !lines.contains(&want) {
                        errors.push(format!("{at}: {fam} {proto} {port} from {class}: expected deciding line {want}, got {lines:?}"));
                    }
                }
            }
            _ => errors.push(format!("{at}: cannot read expectation {line:?}")),
        }
    }
    for (key, want) in &expected {
        let got = c.sets.get(key).cloned().unwrap_or_else(|| "-".into());
        if &got != want {
            errors.push(format!(
                "{}: {} {} {} {} from {}: expected {want}, computed {got}",
                rs.file,
                if key.0.is_empty() { "" } else { key.0.as_str() },
                key.1,
                key.2,
                key.4,
                key.3
            ));
        }
    }
    errors
}

fn detail(f: &portolan_model::Finding) -> String {
    match f.rule.as_str() {
        "fw.exposed-service" | "fw.unintended-exposure" => f
            .target
            .as_ref()
            .map(|t| format!("{}/{}", t.port.unwrap_or(0), t.transport.map_or("?", Transport::as_str)))
            .unwrap_or_default(),
        "fw.all-ports-open" => {
            f.target.as_ref().and_then(|t| t.transport).map_or("?", Transport::as_str).to_string()
        }
        "fw.no-default-deny" => {
            if f.title.contains("forward path") {
                "forward".into()
            } else {
                "input".into()
            }
        }
        _ => String::new(),
    }
}

fn read_listeners(p: &Path) -> Option<Vec<Listener>> {
    let text = std::fs::read_to_string(p).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (t, port) = l.trim().split_once(' ').unwrap();
                Listener { transport: t.parse().unwrap(), port: port.trim().parse().unwrap(), address: None }
            })
            .collect(),
    )
}

fn check_lint(file: &Path, a: &mut Analysis) -> Vec<String> {
    let lint_path = corpus().join(format!("{}.lint", stem(file)));
    let text =
        std::fs::read_to_string(&lint_path).unwrap_or_else(|_| panic!("missing {}", lint_path.display()));
    let listeners = read_listeners(&corpus().join(format!("{}.listeners", stem(file))));
    let findings = lint::lint(a, &lint::Options { listeners }).unwrap();
    let got: Vec<(String, u32, String)> = findings
        .iter()
        .map(|f| (f.rule.clone(), f.location.as_ref().map_or(0, |l| l.line), detail(f)))
        .collect();
    let mut ignore = BTreeSet::new();
    let mut want: Vec<(String, u32, String)> = Vec::new();
    let mut has: Vec<(String, u32, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["ignore", r] => {
                ignore.insert(r.to_string());
            }
            ["has", r, l, rest @ ..] => has.push((r.to_string(), l.parse().unwrap(), rest.join(" "))),
            [r, l, rest @ ..] => want.push((r.to_string(), l.parse().unwrap(), rest.join(" "))),
            _ => panic!("{}: cannot read {line:?}", lint_path.display()),
        }
    }
    let mut errors = Vec::new();
    let mut got_cmp: Vec<_> = got.iter().filter(|g| !ignore.contains(&g.0)).cloned().collect();
    got_cmp.sort();
    want.sort();
    if got_cmp != want {
        let extra: Vec<_> = got_cmp.iter().filter(|g| !want.contains(g)).collect();
        let missing: Vec<_> = want.iter().filter(|g| !got_cmp.contains(g)).collect();
        errors.push(format!(
            "{}: lint differs\n  unexpected: {extra:?}\n  missing:    {missing:?}\n  all: {}",
            lint_path.display(),
            findings
                .iter()
                .map(|f| format!(
                    "\n    {} {} {}",
                    f.rule,
                    f.location.as_ref().map_or(0, |l| l.line),
                    f.title
                ))
                .collect::<String>()
        ));
    }
    for h in has {
        if !got.contains(&h) {
            errors.push(format!("{}: expected finding {h:?}", lint_path.display()));
        }
    }
    errors
}

#[test]
fn corpus_is_large_and_complete() {
    let files = rule_files();
    assert!(files.len() >= 20, "the corpus has {} rule sets, fewer than 20", files.len());
    for f in &files {
        for ext in ["exposure", "lint"] {
            let p = corpus().join(format!("{}.{ext}", stem(f)));
            assert!(p.exists(), "{} has no {}", f.display(), p.display());
        }
    }
}

#[test]
fn corpus_exposure_and_lint_match_the_expectations() {
    let mut errors = Vec::new();
    for f in rule_files() {
        let rs = load(&f);
        let mut a = Analysis::new(&[&rs]).unwrap();
        errors.extend(check_exposure(&f, &rs, &mut a));
        errors.extend(check_lint(&f, &mut a));
    }
    assert!(errors.is_empty(), "{} mismatches:\n{}", errors.len(), errors.join("\n"));
}

/// The diagrams and a rule-by-rule walk of the chains agree on many packets of every rule
/// set (two independent evaluations of the same rules).
#[test]
fn diagrams_agree_with_walking_the_chains() {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for f in rule_files() {
        let rs = load(&f);
        let a = Analysis::new(&[&rs]).unwrap();
        // the diagram-less outline answers single questions by walking: it must name the same
        // verdict, deciding rule and translation as the diagrams
        let outline = Analysis::outline(&[&rs]);
        // addresses and ports the rules mention, and random ones
        let mut ports: Vec<u16> = vec![0, 1, 22, 80, 443, 8080, 65535];
        let mut v4: Vec<u128> = vec![0x5102_4507, 0x0a00_0001, 0xc0a8_0101];
        let mut v6: Vec<u128> = vec![0x2a01_04f8_0c17_0000_0000_0000_0000_0001];
        for (_, _, r) in rs.rules() {
            for (fam, cubes) in [(Family::V4, &r.v4), (Family::V6, &r.v6)] {
                for c in cubes.iter() {
                    if let Some(d) = &c.dport {
                        for &(lo, hi) in d.intervals() {
                            ports.extend([
                                lo as u16,
                                hi as u16,
                                (lo as u16).wrapping_sub(1),
                                (hi as u16).wrapping_add(1),
                            ]);
                        }
                    }
                    if let Some(s) = &c.src {
                        for &(lo, hi) in s.intervals() {
                            let l = if fam == Family::V4 { &mut v4 } else { &mut v6 };
                            l.extend([lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)]);
                        }
                    }
                }
            }
        }
        let ifaces: Vec<Option<String>> = a
            .ifaces
            .atoms
            .iter()
            .enumerate()
            .map(|(i, _)| Some(a.ifaces.sample_name(i as u128)))
            .chain([None])
            .collect();
        for scope in 0..a.scopes.len() {
            for fam in Family::BOTH {
                if a.scopes[scope].fams[fam as usize].is_none() {
                    continue;
                }
                for _ in 0..3000 {
                    let pick = |v: &[u128], r: u64| v[(r % v.len() as u64) as usize];
                    let src = if fam == Family::V4 {
                        std::net::IpAddr::V4(std::net::Ipv4Addr::from(if next() % 4 == 0 {
                            next() as u32
                        } else {
                            pick(&v4, next()) as u32
                        }))
                    } else {
                        std::net::IpAddr::V6(std::net::Ipv6Addr::from(if next() % 4 == 0 {
                            u128::from(next()) << 64
                        } else {
                            pick(&v6, next())
                        }))
                    };
                    let dst = if fam == Family::V4 {
                        "192.0.2.10".parse().unwrap()
                    } else {
                        "2001:db8::10".parse().unwrap()
                    };
                    let proto = [6u8, 17, 1, 58, 47][(next() % 5) as usize];
                    let dport = if next() % 3 == 0 {
                        next() as u16
                    } else {
                        ports[(next() % ports.len() as u64) as usize]
                    };
                    let iif = ifaces[(next() % ifaces.len() as u64) as usize].clone();
                    let p = portolan_firewall::model::Packet {
                        src,
                        dst,
                        proto,
                        dport,
                        sport: 40000,
                        iif,
                        oif: None,
                    };
                    let diagram = a.verdict(scope, &p).unwrap();
                    if scope == 0 {
                        let key = |v: Vec<portolan_firewall::analysis::Answer>| {
                            v.into_iter().map(|x| (x.scope, x.kind, x.rule, x.via)).collect::<Vec<_>>()
                        };
                        for forward in [false, true] {
                            assert_eq!(
                                key(outline.query_walk(&p, forward)),
                                key(a.query(&p, forward)),
                                "{}: {p:?} (forward {forward}): the walk and the diagrams name different deciding rules",
                                f.display()
                            );
                        }
                    }
                    let mut path = Vec::new();
                    let (walked, _) = a.walk(scope, fam, &p, false, &mut path);
                    assert_eq!(
                        diagram.kind,
                        walked,
                        "{}: {p:?}: diagram {diagram:?} walk {walked:?} path {path:?}",
                        f.display()
                    );
                }
            }
        }
    }
}
