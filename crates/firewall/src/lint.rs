//! Lint: what is wrong or risky in a rule set, as the shared model's [`Finding`]s, each with
//! the rule's place in the file.
//!
//! | rule | what |
//! |---|---|
//! | `fw.any-to-any` | an accept rule that matches every source, protocol and port |
//! | `fw.exposed-service` | a knowledge-base service (risky ports) reachable from the internet |
//! | `fw.all-ports-open` | every port of a transport reachable from the internet: one finding (naming the risky services among them) instead of one per service |
//! | `fw.broad-source` | an accept rule for specific ports whose sources span more than a /16 (IPv4) or /32 (IPv6) of public addresses |
//! | `fw.shadowed` | a rule no packet reaches: earlier rules decide everything it matches |
//! | `fw.redundant` | a rule whose removal changes no verdict |
//! | `fw.never-matches` | a rule that cannot match the first packet of a connection |
//! | `fw.no-default-deny` | the input (or forward) path accepts what no rule accepts |
//! | `fw.unfiltered-family` | no chain filters one address family at all |
//! | `fw.unrestricted-egress` | every new outbound connection to the internet is accepted |
//! | `fw.published-port` | a DNAT rule publishes a port to another address |
//! | `fw.stateful-rule` | a rule depends on state the analysis does not see |
//! | `fw.unresolved-source` | a source that is not an address (security group, prefix list) |
//! | `fw.no-listener` | an allow rule with no listener behind its ports |
//! | `fw.unintended-exposure` | a listener reachable from the internet through a rule that does not name its port |

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use portolan_kb::Reach;
use portolan_model::{Finding, FindingTarget, Severity, Transport};

use crate::analysis::{Analysis, Class, Exposure, View, public_v4, public_v6, standard_classes};
use crate::dd::{Kind, NONE};
use crate::flow::RuleReach;
use crate::model::*;
use crate::sets::cidrs;

/// A listening socket observed on the machine (or an open port seen by a scan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Transport.
    pub transport: Transport,
    /// Port.
    pub port: u16,
    /// Bound address (`None`: unknown, e.g. from a scan).
    pub address: Option<IpAddr>,
}

/// What lint knows beyond the rule set.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Observed listeners (`None`: not joined).
    pub listeners: Option<Vec<Listener>>,
}

const NIST: &str = "NIST SP 800-41 Rev. 1, Guidelines on Firewalls and Firewall Policy";

fn finding(
    rule: &str,
    severity: Severity,
    title: String,
    loc: &Location,
    evidence: Vec<String>,
    remediation: &str,
) -> Finding {
    let mut evidence = evidence;
    if let Some(p) = &loc.path {
        evidence.push(format!("at {p}"));
    }
    Finding {
        rule: rule.to_string(),
        severity,
        title,
        target: None,
        evidence,
        remediation: remediation.to_string(),
        references: vec![NIST.to_string()],
        attack: Vec::new(),
        location: Some(loc.without_path()),
    }
}

fn transport_of(p: u8) -> Option<Transport> {
    match p {
        6 => Some(Transport::Tcp),
        17 => Some(Transport::Udp),
        _ => None,
    }
}

fn scope_prefix(scope: &str, f: Family) -> String {
    if scope.is_empty() { format!("{}: ", f.as_str()) } else { format!("{scope} {}: ", f.as_str()) }
}

/// Lints rule set 0 of an analysis ([`Analysis::outline`] is enough: lint computes what it
/// needs by first-match propagation, without the decision diagrams). A chain that jumps back
/// into itself is an error, as for every command.
pub fn lint(a: &mut Analysis, opts: &Options) -> crate::Result<Vec<Finding>> {
    crate::analysis::check_jumps(a.sets[0])?;
    let mut out = Vec::new();
    rule_checks(a, &mut out)?;
    let classes: Vec<Class> = standard_classes();
    let exposures = a.exposure(&classes, None, false, &[])?;
    exposure_checks(a, &exposures, opts, &mut out);
    path_checks(a, &mut out)?;
    out.sort_by(|x, y| {
        let lx = x.location.as_ref().map(|l| (l.line, l.column));
        let ly = y.location.as_ref().map(|l| (l.line, l.column));
        y.severity.cmp(&x.severity).then(lx.cmp(&ly)).then(x.rule.cmp(&y.rule)).then(x.title.cmp(&y.title))
    });
    out.dedup();
    Ok(out)
}

/// Chains reachable (by jumps) from base chains on these hooks.
fn reachable(rs: &Ruleset, ti: usize, hooks: &[Hook]) -> HashSet<usize> {
    let t = &rs.tables[ti];
    let mut seen = HashSet::new();
    let mut stack: Vec<usize> = t
        .chains
        .iter()
        .enumerate()
        .filter(|(_, c)| c.hook.is_some_and(|h| hooks.contains(&h)))
        .map(|(i, _)| i)
        .collect();
    while let Some(c) = stack.pop() {
        if !seen.insert(c) {
            continue;
        }
        for r in &t.chains[c].rules {
            if let Action::Jump(n) | Action::Goto(n) = r.action {
                stack.push(n);
            }
        }
    }
    seen
}

fn open_cube(c: &Cube, f: Family) -> bool {
    c.src.as_ref().is_none_or(|s| s.is_full(crate::sets::addr_max(f.is_v6())))
        && c.proto.is_none()
        && c.dport.is_none()
        && c.sport.is_none()
        && c.dst.is_none()
}

/// Chains every packet can enter: base chains, and user chains whose every caller is such a
/// chain jumping without conditions (so that an accept-all rule there accepts all).
fn entered_by_all(t: &Table, f: Family) -> HashSet<usize> {
    let mut out: HashSet<usize> =
        t.chains.iter().enumerate().filter(|(_, c)| c.hook.is_some()).map(|(i, _)| i).collect();
    loop {
        let mut grew = false;
        for (ci, _) in t.chains.iter().enumerate() {
            if out.contains(&ci) {
                continue;
            }
            let callers: Vec<(usize, &Rule)> = t
                .chains
                .iter()
                .enumerate()
                .flat_map(|(k, c)| c.rules.iter().map(move |r| (k, r)))
                .filter(|(_, r)| matches!(r.action, Action::Jump(n) | Action::Goto(n) if n == ci))
                .collect();
            if !callers.is_empty()
                && callers.iter().all(|(k, r)| {
                    out.contains(k) && r.stateful.is_empty() && r.cubes(f).iter().any(|c| open_cube(c, f))
                })
            {
                out.insert(ci);
                grew = true;
            }
        }
        if !grew {
            return out;
        }
    }
}

fn rule_checks(a: &mut Analysis, out: &mut Vec<Finding>) -> crate::Result<()> {
    let rs = a.sets[0];
    let lo_only = |c: &Cube| {
        c.iif.iter().any(|m| !m.negated && m.any_of.iter().all(|p| *p == IfacePattern::Exact("lo".into())))
    };
    for (ti, t) in rs.tables.iter().enumerate() {
        let inbound = reachable(rs, ti, &[Hook::Input, Hook::Prerouting]);
        let forward = reachable(rs, ti, &[Hook::Forward]);
        for (ci, c) in t.chains.iter().enumerate() {
            for r in &c.rules {
                // stateful and unresolved conditions
                for s in &r.stateful {
                    if s.starts_with("source ") {
                        out.push(finding(
                            "fw.unresolved-source",
                            Severity::Info,
                            format!("{}: {s}", t.name),
                            &r.location,
                            vec![format!("rule: {}", r.text)],
                            "The analysis cannot tell which addresses this source holds; it counts for neither the internet nor private ranges. Check what the group or list contains.",
                        ));
                    } else {
                        let how = "resolved in favour of the packet: the rule takes effect where that lets the packet through";
                        out.push(finding(
                            "fw.stateful-rule",
                            Severity::Info,
                            format!(
                                "{} {}: rule depends on state the analysis does not see ({s})",
                                t.name, c.name
                            ),
                            &r.location,
                            vec![format!("rule: {}", r.text), how.to_string()],
                            "Nothing to fix; know that its effect depends on rates, marks or history.",
                        ));
                    }
                }
                if c.kind != ChainKind::Filter || r.action != Action::Accept || !r.stateful.is_empty() {
                    continue;
                }
                let _ = ci;
                let in_path = inbound.contains(&ci);
                let fwd_path = forward.contains(&ci);
                if !in_path && !fwd_path {
                    continue;
                }
                for f in &t.families {
                    let entered = entered_by_all(t, *f);
                    for cube in r.cubes(*f) {
                        let open = open_cube(cube, *f) && entered.contains(&ci);
                        if open && !lo_only(cube) && (in_path || cube.iif.is_empty()) {
                            let on_iface = !cube.iif.is_empty();
                            let sev = if in_path && !on_iface { Severity::High } else { Severity::Medium };
                            let ifs: Vec<String> = cube
                                .iif
                                .iter()
                                .map(|m| {
                                    format!(
                                        "{}{}",
                                        if m.negated { "not " } else { "" },
                                        m.any_of.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("|")
                                    )
                                })
                                .collect();
                            out.push(finding(
                                "fw.any-to-any",
                                sev,
                                format!(
                                    "{} {}: accepts any source, any protocol, any port{}",
                                    t.name,
                                    c.name,
                                    if on_iface { format!(" on interface {}", ifs.join(", ")) } else { String::new() }
                                ),
                                &r.location,
                                vec![format!("rule: {}", r.text), format!("family: {}", f.as_str())],
                                "A rule that allows any to any is not policy, it is exposure: name the sources, protocols and ports this traffic needs and drop the rest.",
                            ));
                            break;
                        }
                        if let Some(src) = &cube.src {
                            let public = if f.is_v6() { public_v6() } else { public_v4() };
                            let n = src.intersect(&public).count();
                            let broad = if f.is_v6() { 1u128 << 96 } else { 1u128 << 16 };
                            if n > broad && !src.contains_set(&public) {
                                out.push(finding(
                                    "fw.broad-source",
                                    Severity::Medium,
                                    format!(
                                        "{} {}: accepts from a broad source range ({} public addresses)",
                                        t.name, c.name, n
                                    ),
                                    &r.location,
                                    vec![
                                        format!("rule: {}", r.text),
                                        format!("sources: {}", cidrs(src, f.is_v6(), 6).join(", ")),
                                    ],
                                    "Narrow the source to the networks that need this service.",
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    // shadowed, redundant and never-matching rules, chain by chain
    let nscopes = a.scopes.len();
    for si in 0..nscopes {
        if a.scopes[si].set != 0 {
            continue;
        }
        for f in Family::BOTH {
            let tables = a.scopes[si].tables.clone();
            for ti in tables {
                if !rs.tables[ti].families.contains(&f) {
                    continue;
                }
                for ci in 0..rs.tables[ti].chains.len() {
                    chain_checks(a, si, ti, ci, f, out)?;
                }
            }
        }
    }
    Ok(())
}

fn chain_checks(
    a: &mut Analysis,
    si: usize,
    ti: usize,
    ci: usize,
    f: Family,
    out: &mut Vec<Finding>,
) -> crate::Result<()> {
    let rs = a.sets[0];
    let chain = &rs.tables[ti].chains[ci];
    if chain.rules.is_empty() {
        return Ok(());
    }
    let set = a.scopes[si].set;
    let facts = a.chain_reach(set, ti, ci, f)?;
    for (i, (r, fact)) in chain.rules.iter().zip(facts).enumerate() {
        if r.v4.is_empty()
            && r.v6.is_empty()
            && !r.state_only
            && r.stateful.is_empty()
            && rs.tables[ti].families.contains(&f)
            && f == rs.tables[ti].families[0]
            && !matches!(r.action, Action::Continue)
        {
            out.push(finding(
                "fw.never-matches",
                Severity::Low,
                format!("{} {}: rule {} can never match the first packet of a connection", rs.tables[ti].name, chain.name, i + 1),
                &r.location,
                vec![format!("rule: {}", r.text)],
                "Its conditions contradict each other or exclude new connections (e.g. ! --syn, -f); remove it or fix the conditions.",
            ));
        }
        match fact {
            RuleReach::Skipped => {}
            RuleReach::Shadowed(deciders) => {
                let by: Vec<String> = deciders
                    .iter()
                    .map(|&j| format!("rule {} ({})", j + 1, chain.rules[j].location))
                    .collect();
                out.push(finding(
                    "fw.shadowed",
                    Severity::Medium,
                    format!(
                        "{} {} {}: rule {} is shadowed: no packet reaches it",
                        rs.tables[ti].name,
                        chain.name,
                        f.as_str(),
                        i + 1
                    ),
                    &r.location,
                    vec![
                        format!("rule: {}", r.text),
                        format!("earlier rules decide every packet it matches: {}", by.join(", ")),
                    ],
                    "Remove it, or move it above the rules that shadow it if it was meant to take effect.",
                ));
            }
            RuleReach::Reached { redundant: true } => {
                out.push(finding(
                    "fw.redundant",
                    Severity::Low,
                    format!(
                        "{} {} {}: rule {} is redundant: later rules or the policy give the same verdict",
                        rs.tables[ti].name,
                        chain.name,
                        f.as_str(),
                        i + 1
                    ),
                    &r.location,
                    vec![format!("rule: {}", r.text)],
                    "Remove it: the rule set means the same without it.",
                ));
            }
            RuleReach::Reached { redundant: false } => {}
        }
    }
    Ok(())
}

/// Ports of a transport open to the internet from which lint reports "nearly every port is
/// open" once instead of each risky service: all but 1,024.
const WIDE_OPEN: u32 = 65_536 - 1_024;

fn ports_text(p: (u16, u16)) -> String {
    if p.0 == p.1 { p.0.to_string() } else { format!("{}-{}", p.0, p.1) }
}

fn exposure_checks(a: &mut Analysis, exps: &[Exposure], opts: &Options, out: &mut Vec<Finding>) {
    let mut seen: HashSet<(String, Family, &'static str)> = HashSet::new();
    let mut published: BTreeMap<(String, Family, u32), Vec<(u8, (u16, u16), bool)>> = BTreeMap::new();
    for e in exps {
        if e.view != View::Input {
            continue;
        }
        let total_public = if e.family.is_v6() { public_v6() } else { public_v4() };
        // ports of each protocol accepted from some of the internet; a protocol with all but
        // a few of its ports open is one finding
        let mut open_ports: BTreeMap<u8, u32> = BTreeMap::new();
        for row in &e.rows {
            if let (Some(ports), Some(_)) = (row.ports, transport_of(row.proto.0))
                && row.classes[0].any_accept()
            {
                *open_ports.entry(row.proto.0).or_default() += u32::from(ports.1 - ports.0) + 1;
            }
        }
        let wide: HashSet<u8> =
            open_ports.iter().filter(|(_, n)| **n >= WIDE_OPEN).map(|(p, _)| *p).collect();
        for row in &e.rows {
            let (Some(ports), Some(tr)) = (row.ports, transport_of(row.proto.0)) else { continue };
            let inet = &row.classes[0];
            for (t, _) in inet.all() {
                if t.via != NONE {
                    published.entry((e.scope.clone(), e.family, t.via)).or_default().push((
                        row.proto.0,
                        ports,
                        t.kind == Kind::Accept,
                    ));
                }
            }
            if !inet.any_accept() {
                continue;
            }
            let accepted = inet.accepted();
            let limited = accepted.count() < total_public.count();
            // the accepting rule that comes first in the file (untranslated before translated)
            let decider =
                inet.all().filter(|(t, _)| t.kind == Kind::Accept).map(|(t, _)| *t).min_by_key(|t| {
                    let at = if t.rule == NONE {
                        (0, 0)
                    } else {
                        let l = a.location(a.refs[t.rule as usize]);
                        (l.line, l.column)
                    };
                    (at, t.via != NONE, t.via)
                });
            // (nearly) every port of the transport open: one finding that names the risky
            // services it includes, not one per service (~110 for `-p tcp -j ACCEPT`)
            if wide.contains(&row.proto.0) {
                if !seen.insert((
                    e.scope.clone(),
                    e.family,
                    if tr == Transport::Udp { "*udp" } else { "*tcp" },
                )) {
                    continue;
                }
                let open = open_ports.get(&row.proto.0).copied().unwrap_or(0);
                let risky: Vec<String> = portolan_kb::all()
                    .iter()
                    .filter(|entry| entry.ports.iter().any(|s| s.transport == tr))
                    .map(|entry| entry.name.to_string())
                    .collect();
                let mut evidence = vec![format!(
                    "{open} of 65536 {tr} ports accepted; {} services of the knowledge base among them, such as {}",
                    risky.len(),
                    risky.iter().take(6).cloned().collect::<Vec<_>>().join(", ")
                )];
                let mut severity = Severity::Critical;
                if limited {
                    severity = severity.lower();
                    evidence.insert(
                        0,
                        format!(
                            "accepted only from {} public addresses: {}",
                            accepted.count(),
                            cidrs(&accepted, e.family.is_v6(), 6).join(", ")
                        ),
                    );
                }
                let every = if open == 65_536 { "every" } else { "nearly every" };
                let mut fd = Finding {
                    rule: "fw.all-ports-open".into(),
                    severity,
                    title: format!(
                        "{}{every} {tr} port is open to the internet",
                        scope_prefix(&e.scope, e.family)
                    ),
                    target: Some(FindingTarget { address: None, port: None, transport: Some(tr) }),
                    evidence,
                    remediation: format!(
                        "Accept only the {tr} ports this host serves (and from the sources that need them), then drop the rest with a default-deny policy."
                    ),
                    references: vec!["NIST SP 800-41 Rev. 1".into(), "CIS Controls v8 4.4, 4.5".into()],
                    attack: vec!["T1190".into()],
                    location: None,
                };
                if let Some(t) = decider
                    && t.rule != NONE
                {
                    let r = a.refs[t.rule as usize];
                    fd.location = Some(a.location(r).without_path());
                    fd.evidence.insert(0, format!("accepted by {}", a.describe(r)));
                }
                out.push(fd);
                continue;
            }
            for entry in portolan_kb::all() {
                for span in entry.ports {
                    if span.transport != tr || span.hi < ports.0 || span.lo > ports.1 {
                        continue;
                    }
                    if !seen.insert((e.scope.clone(), e.family, entry.id)) {
                        continue;
                    }
                    let port = span.lo.max(ports.0);
                    let mut fd = entry.exposure_finding(Reach::Internet, None, port, tr);
                    fd.rule = "fw.exposed-service".into();
                    fd.title = format!(
                        "{}{} ({port}/{tr}) is open to the internet",
                        scope_prefix(&e.scope, e.family),
                        entry.name
                    );
                    if limited {
                        fd.severity = fd.severity.lower();
                        fd.evidence.insert(
                            0,
                            format!(
                                "accepted only from {} public addresses: {}",
                                accepted.count(),
                                cidrs(&accepted, e.family.is_v6(), 6).join(", ")
                            ),
                        );
                    }
                    // a rule set shows what could be reached; a listener behind the port (joined
                    // from this machine or a scan) shows that something is: only then does the
                    // finding carry the service's full risk
                    let listening = opts.listeners.as_ref().is_some_and(|ls| {
                        ls.iter().any(|l| l.transport == tr && (span.lo..=span.hi).contains(&l.port))
                    });
                    if !listening {
                        fd.severity = fd.severity.lower();
                        fd.evidence.push(if opts.listeners.is_some() {
                            "nothing listens on it now: reachable if a service starts there".to_string()
                        } else {
                            "no listener joined to confirm that something answers there".to_string()
                        });
                    }
                    if let Some(t) = decider {
                        if t.rule != NONE {
                            let r = a.refs[t.rule as usize];
                            fd.location = Some(a.location(r).without_path());
                            fd.evidence.insert(0, format!("accepted by {}", a.describe(r)));
                        }
                        if t.via != NONE {
                            fd.evidence
                                .push(format!("published by DNAT: {}", a.describe(a.refs[t.via as usize])));
                        }
                    }
                    out.push(fd);
                }
            }
        }
        if let Some(ls) = &opts.listeners {
            listener_checks(a, e, ls, out);
        }
    }
    for ((scope, f, via), rows) in published {
        let r = a.refs[via as usize];
        let Some(rule) = a.rule(r) else { continue };
        let accepted: Vec<String> = rows
            .iter()
            .filter(|x| x.2)
            .map(|(p, ports, _)| format!("{}/{}", ports_text(*ports), proto_name(*p)))
            .collect();
        let all: Vec<String> =
            rows.iter().map(|(p, ports, _)| format!("{}/{}", ports_text(*ports), proto_name(*p))).collect();
        let target = match &rule.action {
            Action::Dnat { to, ports } => format!(
                "{}{}",
                to.map_or("this machine".to_string(), |a| a.to_string()),
                ports.map_or(String::new(), |p| format!(":{}", p.0))
            ),
            Action::Redirect { ports } => {
                format!("local port {}", ports.map_or("?".to_string(), |p| p.0.to_string()))
            }
            _ => String::new(),
        };
        let mut all_d = all.clone();
        all_d.dedup();
        out.push(finding(
            "fw.published-port",
            if accepted.is_empty() { Severity::Info } else { Severity::Medium },
            format!(
                "{}{} from the internet is translated to {target}",
                scope_prefix(&scope, f),
                all_d.join(", ")
            ),
            a.location(r),
            vec![
                format!("rule: {}", rule.text),
                if accepted.is_empty() {
                    "the forward path drops the translated traffic".to_string()
                } else {
                    format!("the translated traffic is accepted: {}", accepted.join(", "))
                },
            ],
            "Publish only what must be reachable from outside, and restrict the sources where possible.",
        ));
    }
}

fn listener_checks(a: &Analysis, e: &Exposure, ls: &[Listener], out: &mut Vec<Finding>) {
    let relevant = |l: &Listener| match l.address {
        None => true,
        Some(IpAddr::V4(x)) => !x.is_loopback() && !e.family.is_v6(),
        Some(IpAddr::V6(x)) => !x.is_loopback() && (e.family.is_v6() || x.is_unspecified()),
    };
    let listening = |tr: Transport, p: (u16, u16)| {
        ls.iter().any(|l| relevant(l) && l.transport == tr && (p.0..=p.1).contains(&l.port))
    };
    // allow rules with no listener behind them
    let mut by_rule: BTreeMap<u32, Vec<(Transport, (u16, u16))>> = BTreeMap::new();
    for row in &e.rows {
        let (Some(ports), Some(tr)) = (row.ports, transport_of(row.proto.0)) else { continue };
        for class in &row.classes {
            for (t, _) in class.all() {
                if t.kind == Kind::Accept && t.rule != NONE && t.via == NONE {
                    by_rule.entry(t.rule).or_default().push((tr, ports));
                }
            }
        }
    }
    for (rule_id, spans) in by_rule {
        let r = a.refs[rule_id as usize];
        let Some(rule) = a.rule(r) else { continue };
        let specific =
            rule.cubes(e.family).iter().all(|c| c.dport.as_ref().is_some_and(|d| d.count() <= 1024));
        if !specific || rule.cubes(e.family).is_empty() {
            continue;
        }
        let mut spans = spans;
        spans.sort();
        spans.dedup();
        if spans.iter().any(|(tr, p)| listening(*tr, *p)) {
            continue;
        }
        let what: Vec<String> = spans.iter().map(|(tr, p)| format!("{}/{tr}", ports_text(*p))).collect();
        out.push(finding(
            "fw.no-listener",
            Severity::Low,
            format!("{}allow rule for {} has no listener behind it", scope_prefix(&e.scope, e.family), what.join(", ")),
            &rule.location,
            vec![format!("rule: {}", rule.text), "no observed listener on these ports".into()],
            "Remove the rule if the service is gone; an open hole waits for the next thing that listens there.",
        ));
    }
    // listeners the rule set exposes without naming their port
    let mut done = HashSet::new();
    for l in ls {
        if !relevant(l) || !done.insert((l.transport, l.port)) {
            continue;
        }
        let proto = match l.transport {
            Transport::Tcp => 6,
            Transport::Udp => 17,
            _ => continue,
        };
        let Some(row) = e
            .rows
            .iter()
            .find(|r| r.proto.0 == proto && r.ports.is_some_and(|p| (p.0..=p.1).contains(&l.port)))
        else {
            continue;
        };
        let inet = &row.classes[0];
        // the accepting rules (untranslated), in file order: the first that does not name the
        // port is the one the finding names (no chain at all comes first)
        let mut accepting: Vec<u32> = inet
            .all()
            .filter(|(t, _)| t.kind == Kind::Accept && t.via == NONE)
            .map(|(t, _)| t.rule)
            .collect();
        accepting.sort_by_key(|&rule| {
            if rule == NONE {
                (0, 0)
            } else {
                let l = a.location(a.refs[rule as usize]);
                (l.line, l.column)
            }
        });
        accepting.dedup();
        let judged = accepting.iter().map(|&rule| {
            if rule == NONE {
                (false, None, "no chain filters this traffic".to_string())
            } else {
                let r = a.refs[rule as usize];
                match a.rule(r) {
                    Some(rule) => (
                        rule.cubes(e.family)
                            .iter()
                            .all(|c| c.dport.as_ref().is_some_and(|d| d.count() <= 16)),
                        Some(rule.location.clone()),
                        format!("accepted by {}", a.describe(r)),
                    ),
                    None => (false, Some(a.location(r).clone()), format!("accepted by {}", a.describe(r))),
                }
            }
        });
        let Some((_, loc, why)) = judged.into_iter().find(|(names_port, _, _)| !names_port) else {
            continue;
        };
        let kb = portolan_kb::for_port(l.port, l.transport).next();
        let severity = kb.map_or(Severity::Medium, |k| k.risk(Reach::Internet).max(Severity::Medium));
        let mut fd = Finding {
            rule: "fw.unintended-exposure".into(),
            severity,
            title: format!(
                "{}listener on {}/{}{} is reachable from the internet through a rule that does not name its port",
                scope_prefix(&e.scope, e.family),
                l.port,
                l.transport,
                kb.map_or(String::new(), |k| format!(" ({})", k.name))
            ),
            target: Some(FindingTarget {
                address: l.address,
                port: Some(l.port),
                transport: Some(l.transport),
            }),
            evidence: vec![why],
            remediation:
                "Allow only the ports that are meant to be public, by number, and drop the rest by default."
                    .into(),
            references: vec![NIST.to_string()],
            attack: kb.map(|k| k.attack.iter().map(|s| s.to_string()).collect()).unwrap_or_default(),
            location: loc.map(|l| l.without_path()),
        };
        if fd.location.is_none() {
            fd.evidence.push("the rule set has no chain on the input hook for this family".into());
        }
        out.push(fd);
    }
}

fn path_checks(a: &mut Analysis, out: &mut Vec<Finding>) -> crate::Result<()> {
    let not_lo = a.ifaces.external(&[]);
    for si in 0..a.scopes.len() {
        if a.scopes[si].set != 0 {
            continue;
        }
        let scope = a.scopes[si].name.clone();
        let rs = a.sets[0];
        let has_family: Vec<Family> = Family::BOTH
            .into_iter()
            .filter(|f| a.scopes[si].tables.iter().any(|&t| rs.tables[t].families.contains(f)))
            .collect();
        // a host rule set that filters only one family
        if scope.is_empty() && has_family.len() == 1 && a.sets[0].format == Format::NftJson {
            let missing = if has_family[0] == Family::V4 { Family::V6 } else { Family::V4 };
            let loc = Location { file: a.sets[0].file.as_str().into(), line: 1, column: 1, path: None };
            out.push(finding(
                "fw.unfiltered-family",
                Severity::High,
                format!(
                    "no table filters {}: every {} packet is accepted",
                    missing.as_str(),
                    missing.as_str()
                ),
                &loc,
                vec![format!(
                    "tables: {}",
                    a.sets[0].tables.iter().map(|t| t.name.clone()).collect::<Vec<_>>().join(", ")
                )],
                "Use an inet table (both families) or add the same policy for the other family.",
            ));
        }
        for f in has_family {
            let forward_used = crate::analysis::forward_used(rs, &a.scopes[si].tables, f);
            for (hooks, hook, sev) in [
                (
                    [(Hook::Prerouting, ChainKind::Filter), (Hook::Input, ChainKind::Filter)],
                    "input",
                    Severity::High,
                ),
                (
                    [(Hook::Prerouting, ChainKind::Filter), (Hook::Forward, ChainKind::Filter)],
                    "forward",
                    if forward_used { Severity::Medium } else { Severity::Low },
                ),
            ] {
                if hook == "forward" && a.sets[0].format == Format::Aws {
                    continue;
                }
                // what the path accepts from external interfaces without a rule: a policy, or
                // no chain at all (only the last chain's policy can be the final word)
                for t in a.hook_verdicts(si, f, &hooks, Some(not_lo.clone()), None)? {
                    if t.kind != Kind::Accept {
                        continue;
                    }
                    let policy = t.rule != NONE && a.refs[t.rule as usize].rule.is_none();
                    if !(policy || t.rule == NONE) {
                        continue;
                    }
                    let (loc, why) = if t.rule == NONE {
                        (
                            Location { file: a.sets[0].file.as_str().into(), line: 1, column: 1, path: None },
                            format!("no chain on the {hook} hook"),
                        )
                    } else {
                        let r = a.refs[t.rule as usize];
                        (a.location(r).clone(), format!("{} has policy accept", a.chain(r).name))
                    };
                    out.push(finding(
                        "fw.no-default-deny",
                        sev,
                        format!("{}the {hook} path accepts packets no rule accepts ({why})", scope_prefix(&scope, f)),
                        &loc,
                        vec![if hook == "forward" {
                            "matters when this machine routes (net.ipv4.ip_forward=1)".to_string()
                        } else {
                            "anything that starts listening is reachable at once".to_string()
                        }],
                        "Set the policy to drop (or end the chain with a drop rule) and accept only what is needed.",
                    ));
                    break;
                }
            }
            // egress
            if a.sets[0].format != Format::Aws || !scope.is_empty() {
                let public = if f.is_v6() { public_v6() } else { public_v4() };
                let hooks = [(Hook::Output, ChainKind::Filter), (Hook::Postrouting, ChainKind::Filter)];
                let terms = a.hook_verdicts(si, f, &hooks, None, Some(public))?;
                if terms.iter().all(|t| t.kind == Kind::Accept) {
                    let loc = terms
                        .iter()
                        .filter(|t| t.rule != NONE)
                        .map(|t| a.location(a.refs[t.rule as usize]).clone())
                        .min_by_key(|l| (l.line, l.column))
                        .unwrap_or_else(|| Location {
                            file: a.sets[0].file.as_str().into(),
                            line: 1,
                            column: 1,
                            path: None,
                        });
                    out.push(finding(
                        "fw.unrestricted-egress",
                        Severity::Low,
                        format!("{}every new outbound connection to the internet is accepted", scope_prefix(&scope, f)),
                        &loc,
                        vec!["malware and data exfiltration leave as easily as updates".into()],
                        "Restrict outbound traffic to the destinations and ports the machine needs (package mirrors, DNS, NTP, ...).",
                    ));
                }
            }
        }
    }
    Ok(())
}
