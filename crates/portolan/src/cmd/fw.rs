//! `portolan fw`: firewall rule sets — exposure, queries, diffs, lint and kernel verification.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::rc::Rc;

use anyhow::{Context as _, bail};
use jiff::Timestamp;
use portolan_firewall::analysis::{self, Analysis, Class, Exposure, Outcome, View};
use portolan_firewall::dd::{Kind, NONE, Term};
use portolan_firewall::lint::{self, Listener};
use portolan_firewall::model::{Packet, proto_name, proto_number};
use portolan_firewall::sets::cidrs;
use portolan_firewall::{Family, Format, LoadOptions, Ruleset};
use portolan_model::{AuditReport, AuditSummary, FindingTarget, PortState, Transport};
use portolan_output::audit as render;
use portolan_output::escape::terminal;
use portolan_output::records;
use portolan_output::table::{Cell, Style, Table};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Value, json};

use super::Context;
use crate::cli::{AuditFormat, FwAction, FwArgs, FwFormat, FwInput, FwOutput};

pub fn run(args: FwArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    match args.action {
        FwAction::Show(a) => {
            let t0 = std::time::Instant::now();
            let rs = load(&a.file, &a.input)?;
            let t1 = std::time::Instant::now();
            // the addresses between internet and private (shared, documentation, link-local,
            // ...) are shown where something is accepted from them that the internet column
            // does not already say: first as one class, split only when it tells something
            let special = analysis::special_classes();
            let n_special = special.len();
            if a.from.len() > 62 - n_special {
                bail!(
                    "--from is given {} times; at most {} source classes can be shown at once",
                    a.from.len(),
                    62 - n_special
                );
            }
            let from: Vec<Class> = a
                .from
                .iter()
                .map(|f| analysis::named_class(f))
                .collect::<Result<_, _>>()
                .map_err(anyhow::Error::msg)?;
            let with = |middle: Vec<Class>| -> Vec<Class> {
                let mut c = analysis::standard_classes();
                c.extend(middle);
                c.extend(from.iter().cloned());
                c
            };
            // by propagation: the diagrams are not needed for the exposure
            let mut an = Analysis::outline(&[&rs]);
            let (exps, classes) = if analysis::names_special_sources(&rs) {
                let classes = with(special);
                let mut exps = an.exposure_flow(&classes, a.dst, true, &a.iif)?;
                let classes = keep_telling_classes(&mut exps, classes, 2..2 + n_special);
                (exps, classes)
            } else {
                let classes = with(Vec::new());
                (an.exposure_flow(&classes, a.dst, true, &a.iif)?, classes)
            };
            let t2 = std::time::Instant::now();
            let mut out = super::stdout();
            match a.output {
                FwOutput::Json => records::json(&mut out, &show_json(&an, &rs, &exps, a.open))?,
                FwOutput::Table => show_table(&mut out, &an, &rs, &exps, &classes, a.open, ctx.color)?,
            }
            out.flush()?;
            if std::env::var_os("PORTOLAN_TIMING").is_some() {
                let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
                eprintln!(
                    "timing: parse {:.1} ms, exposure {:.1} ms, output {:.1} ms",
                    ms(t1 - t0),
                    ms(t2 - t1),
                    ms(t2.elapsed())
                );
            }
            // the process ends here: freeing a large analysis piece by piece would only cost time
            std::mem::forget(exps);
            std::mem::forget(an);
            std::mem::forget(rs);
            Ok(ExitCode::SUCCESS)
        }
        FwAction::Query(a) => {
            let rs = load(&a.file, &a.input)?;
            if let Some(batch) = &a.batch {
                return query_batch(&rs, batch);
            }
            let (Some(src), Some(dst)) = (a.src, a.dst) else {
                bail!("--src and --dst are needed (or --batch FILE)")
            };
            if src.is_ipv6() != dst.is_ipv6() {
                bail!("--src and --dst must both be IPv4 or both IPv6");
            }
            let proto = proto_number(&a.proto)
                .with_context(|| format!("-p {:?}: a protocol name or number", a.proto))?;
            let p = Packet {
                src,
                dst,
                proto,
                dport: a.dport,
                sport: a.sport,
                iif: a.iif.clone(),
                oif: a.oif.clone(),
            };
            // one question: walk the chains, build no diagram (the same answers, a test holds),
            // after the same check of loops and nesting as every other command
            analysis::check_jumps(&rs)?;
            let an = Analysis::outline(&[&rs]);
            let answers = an.query_walk(&p, a.forward);
            if answers.is_empty() {
                bail!(
                    "{}: no table filters {} packets",
                    rs.file,
                    if src.is_ipv6() { "IPv6" } else { "IPv4" }
                );
            }
            let mut out = super::stdout();
            match a.output {
                FwOutput::Json => {
                    let v: Vec<Value> = answers
                        .iter()
                        .map(|ans| {
                            json!({
                                "scope": ans.scope,
                                "verdict": kind_word(ans.kind),
                                "rule": ans.rule.map(|r| an.describe(r)),
                                "location": ans.rule.map(|r| an.location(r).to_string()),
                                "translated_by": ans.via.map(|r| an.describe(r)),
                                "path": ans.path.iter().map(|s| json!({"rule": an.describe(s.rule), "what": s.what})).collect::<Vec<_>>(),
                            })
                        })
                        .collect();
                    records::json(&mut out, &v)?;
                }
                FwOutput::Table => {
                    for ans in &answers {
                        let head =
                            if ans.scope.is_empty() { String::new() } else { format!("{}: ", ans.scope) };
                        writeln!(
                            out,
                            "{}{} {} -> {} {}/{}: {}",
                            terminal(&head),
                            if a.forward { "forwarded" } else { "to this machine" },
                            src,
                            dst,
                            a.dport,
                            proto_name(proto),
                            paint_kind(ans.kind, ctx.color)
                        )?;
                        match ans.rule {
                            Some(r) => writeln!(out, "  decided by {}", terminal(&an.describe(r)))?,
                            None => writeln!(out, "  decided by: no chain on this hook (accepted)")?,
                        }
                        if let Some(v) = ans.via {
                            writeln!(out, "  translated by {}", terminal(&an.describe(v)))?;
                        }
                        writeln!(out, "  path:")?;
                        for s in &ans.path {
                            let text = an.rule(s.rule).map_or(String::new(), |r| format!("  {}", r.text));
                            writeln!(
                                out,
                                "    {} -> {}{}",
                                terminal(&an.describe(s.rule)),
                                s.what,
                                terminal(&text)
                            )?;
                        }
                    }
                }
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        FwAction::Diff(a) => {
            let old = load(&a.old, &a.input)?;
            let new = load(&a.new, &a.input)?;
            let mut an = Analysis::new(&[&old, &new])?;
            let changes = an.diff(10_000)?;
            let mut out = super::stdout();
            match a.output {
                FwOutput::Json => {
                    let v: Vec<Value> = changes
                        .iter()
                        .map(|c| {
                            json!({
                                "scope": c.scope,
                                "family": c.family.as_str(),
                                "protocol": proto_text(c.proto),
                                "ports": ports_text(c.ports),
                                // every source, as CIDRs: a machine reads no "+N more"
                                "sources": cidrs(&c.sources, c.family.is_v6(), usize::MAX),
                                "in_interfaces": c.iif,
                                "old": term_json(&an, c.old),
                                "new": term_json(&an, c.new),
                            })
                        })
                        .collect();
                    records::json(&mut out, &v)?;
                }
                FwOutput::Table => {
                    if changes.is_empty() {
                        writeln!(out, "No packet changes verdict.")?;
                    } else {
                        // the interface says where: a change on -i lo is not one from the internet
                        let mut t = Table::new(["FAMILY", "IIF", "PROTO", "PORTS", "SOURCES", "OLD", "NEW"]);
                        for c in &changes {
                            let iif = match c.iif.len() {
                                0 => "*".to_string(),
                                1..=3 => c.iif.join(","),
                                n => format!("{},+{} more", c.iif[..2].join(","), n - 2),
                            };
                            t.row(vec![
                                Cell::new(c.family.as_str()),
                                Cell::new(terminal(&iif)),
                                Cell::new(proto_text(c.proto)),
                                Cell::new(ports_text(c.ports)),
                                Cell::new(terminal(&source_text(&c.sources, c.family, 3).join(" "))),
                                Cell::new(terminal(&term_text(&an, c.old))),
                                Cell::new(terminal(&term_text(&an, c.new))),
                            ]);
                        }
                        t.render(&mut out, ctx.color)?;
                        writeln!(
                            out,
                            "{} packet class{} changed verdict",
                            changes.len(),
                            if changes.len() == 1 { "" } else { "es" }
                        )?;
                    }
                }
            }
            out.flush()?;
            Ok(if changes.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        FwAction::Lint(a) => lint_cmd(a, ctx),
        FwAction::Verify(a) => verify_cmd(a, ctx),
    }
}

/// `fw query --batch`: one packet per line, answered from the decision diagrams.
fn query_batch(rs: &Ruleset, batch: &std::path::Path) -> anyhow::Result<ExitCode> {
    let text = portolan_model::input::read_text(batch, portolan_firewall::MAX_RULE_FILE)?;
    let mut packets = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.is_empty() || w[0].starts_with('#') {
            continue;
        }
        let at = || format!("{}:{}", batch.display(), n + 1);
        if w.len() < 4 {
            bail!("{}: expected `SRC DST PROTO DPORT [IIF]`", at());
        }
        let src: std::net::IpAddr =
            w[0].parse().with_context(|| format!("{}: bad source {:?}", at(), w[0]))?;
        let dst: std::net::IpAddr =
            w[1].parse().with_context(|| format!("{}: bad destination {:?}", at(), w[1]))?;
        let proto = proto_number(w[2]).with_context(|| format!("{}: bad protocol {:?}", at(), w[2]))?;
        let dport: u16 = w[3].parse().with_context(|| format!("{}: bad port {:?}", at(), w[3]))?;
        packets.push(Packet {
            src,
            dst,
            proto,
            dport,
            sport: 40000,
            iif: w.get(4).map(|s| s.to_string()),
            oif: None,
        });
    }
    let an = Analysis::new(&[rs])?;
    let t0 = std::time::Instant::now();
    let verdicts: Vec<Option<Term>> = packets.iter().map(|p| an.verdict(0, p)).collect();
    let elapsed = t0.elapsed();
    let mut out = super::stdout();
    for (p, v) in packets.iter().zip(&verdicts) {
        match v {
            Some(t) => {
                let loc = if t.rule == NONE {
                    "-".to_string()
                } else {
                    an.location(an.refs[t.rule as usize]).to_string()
                };
                writeln!(
                    out,
                    "{} {} {} {} {} {}",
                    p.src,
                    p.dst,
                    proto_name(p.proto),
                    p.dport,
                    kind_word(t.kind),
                    terminal(&loc)
                )?;
            }
            None => writeln!(out, "{} {} {} {} unfiltered -", p.src, p.dst, proto_name(p.proto), p.dport)?,
        }
    }
    out.flush()?;
    if std::env::var_os("PORTOLAN_TIMING").is_some() {
        eprintln!(
            "timing: {} queries in {:.3} ms ({:.0} queries/s)",
            packets.len(),
            elapsed.as_secs_f64() * 1e3,
            packets.len() as f64 / elapsed.as_secs_f64().max(1e-9)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn load(path: &std::path::Path, input: &FwInput) -> anyhow::Result<Ruleset> {
    let format = match input.format {
        FwFormat::Auto => None,
        FwFormat::Iptables => Some(Format::Iptables),
        FwFormat::Nft => Some(Format::NftJson),
        FwFormat::Aws => Some(Format::Aws),
    };
    let family = match input.family {
        None => None,
        Some(4) => Some(Family::V4),
        Some(6) => Some(Family::V6),
        Some(n) => bail!("--family {n}: 4 or 6"),
    };
    let ipsets = match &input.ipset {
        Some(p) => Some(portolan_firewall::load_ipsets(p)?),
        None => None,
    };
    Ok(portolan_firewall::load(path, format, &LoadOptions { family, ipsets })?)
}

fn kind_word(k: Kind) -> &'static str {
    match k {
        Kind::Accept => "accept",
        Kind::Drop => "drop",
        Kind::Reject => "reject",
        Kind::Nat => "translate",
        Kind::Continue => "continue",
        Kind::Changed => "changed",
        Kind::Hole => "-",
        Kind::True | Kind::False => "-",
    }
}

fn paint_kind(k: Kind, color: bool) -> String {
    let style = match k {
        Kind::Accept => Style::Red,
        Kind::Drop | Kind::Reject => Style::Green,
        _ => Style::Dim,
    };
    style.paint(kind_word(k), color)
}

fn proto_text(p: (u8, u8)) -> String {
    if p.0 == p.1 {
        proto_name(p.0)
    } else if p == (0, 255) {
        "any".into()
    } else {
        format!("{}..{}", proto_name(p.0), proto_name(p.1))
    }
}

fn ports_text(p: (u16, u16)) -> String {
    if p.0 == p.1 { p.0.to_string() } else { format!("{}-{}", p.0, p.1) }
}

/// A source set for people: CIDR blocks (at most `limit`, then `+N more`), or, for a set
/// holding most of the internet, `internet` with the public blocks it lacks
/// (`except 192.0.2.7/32`) and the other blocks it has.
fn source_text(s: &portolan_firewall::sets::IntervalSet, f: Family, limit: usize) -> Vec<String> {
    if s.is_full(portolan_firewall::sets::addr_max(f.is_v6())) {
        return vec!["any".to_string()];
    }
    let publ = if f.is_v6() { analysis::public_v6() } else { analysis::public_v4() };
    let inside = s.intersect(&publ);
    if inside.count() > publ.count() / 2 {
        let mut v = vec!["internet".to_string()];
        for c in cidrs(&publ.without(&inside), f.is_v6(), limit) {
            v.push(match c.strip_prefix('+') {
                Some(more) => format!("+{more} exceptions"),
                None => format!("except {c}"),
            });
        }
        v.extend(cidrs(&s.without(&publ), f.is_v6(), limit));
        return v;
    }
    cidrs(s, f.is_v6(), limit)
}

fn term_text(an: &Analysis, t: Term) -> String {
    let mut s = kind_word(t.kind).to_string();
    if t.rule != NONE {
        s.push_str(&format!(" ({})", an.location(an.refs[t.rule as usize])));
    }
    if t.via != NONE {
        s.push_str(&format!(" via DNAT {}", an.location(an.refs[t.via as usize])));
    }
    s
}

fn term_json(an: &Analysis, t: Term) -> Value {
    json!({
        "verdict": kind_word(t.kind),
        "rule": (t.rule != NONE).then(|| an.describe(an.refs[t.rule as usize])),
        "location": (t.rule != NONE).then(|| an.location(an.refs[t.rule as usize]).to_string()),
        "dnat": (t.via != NONE).then(|| an.describe(an.refs[t.via as usize])),
    })
}

/// A class's outcome in a word: accept, drop, reject, or partial.
fn outcome_word(o: &Outcome) -> String {
    const KINDS: [Kind; 9] = [
        Kind::False,
        Kind::True,
        Kind::Continue,
        Kind::Accept,
        Kind::Drop,
        Kind::Reject,
        Kind::Nat,
        Kind::Changed,
        Kind::Hole,
    ];
    // the set of verdicts, as a bit per kind (in the kinds' order)
    let mask = o.kinds() & ((1 << KINDS.len()) - 1);
    // the parts shown once for every row never come from a translation
    let published = o.parts.iter().any(|(t, _)| t.via != NONE && t.kind == Kind::Accept);
    let w = match mask.count_ones() {
        0 => "-",
        1 => kind_word(KINDS[mask.trailing_zeros() as usize]),
        _ if o.any_accept() => "partial",
        _ => "deny",
    };
    if published { format!("{w} (published)") } else { w.to_string() }
}

fn service(proto: (u8, u8), ports: Option<(u16, u16)>) -> String {
    let (Some((lo, hi)), Some(tr)) = (
        ports,
        match proto.0 {
            6 => Some(Transport::Tcp),
            17 => Some(Transport::Udp),
            _ => None,
        },
    ) else {
        return String::new();
    };
    if lo != hi {
        return String::new();
    }
    let kb = portolan_kb::for_port(lo, tr).next();
    match (portolan_registry::service_name(lo, tr), kb) {
        (Some(n), Some(k)) if k.id != n => format!("{n} / {}", k.id),
        (Some(n), _) => n.to_string(),
        (None, Some(k)) => k.id.to_string(),
        (None, None) => String::new(),
    }
}

/// `line N` for a rule, `CHAIN policy` for a policy, `no chain` for none.
fn rule_label(an: &Analysis, t: Term) -> String {
    if t.rule == NONE {
        return "no chain".to_string();
    }
    let r = an.refs[t.rule as usize];
    match (r.rule, an.rule(r)) {
        // nft -j writes one line: a rule is named by its chain and handle (or position)
        (Some(ri), Some(rule)) if an.ruleset(r).format == portolan_firewall::Format::NftJson => {
            match rule.handle {
                Some(h) => format!("{} handle {h}", an.chain(r).name),
                None => format!("{} rule {}", an.chain(r).name, ri + 1),
            }
        }
        (Some(_), _) => format!("line {}", an.location(r).line),
        (None, _) => format!("{} policy", an.chain(r).name),
    }
}

/// The rules of a list of terminals for people: each line when few, else a count and the
/// span of lines.
fn rules_text(an: &Analysis, terms: &[Term]) -> String {
    // distinct rules in order of appearance (a row can name thousands: no quadratic search)
    let mut seen = std::collections::HashSet::new();
    let uniq: Vec<Term> = terms.iter().filter(|t| seen.insert(t.rule)).copied().collect();
    if uniq.len() <= 6 {
        let mut labels: Vec<String> = Vec::new();
        for t in &uniq {
            let s = rule_label(an, *t);
            if !labels.contains(&s) {
                labels.push(s);
            }
        }
        return labels.join(", ");
    }
    let lines = uniq.iter().filter(|t| t.rule != NONE).map(|t| an.location(an.refs[t.rule as usize]).line);
    let (lo, hi) = lines.fold((u32::MAX, 0), |(lo, hi), l| (lo.min(l), hi.max(l)));
    if lo >= hi {
        // no span (or one line, as nft -j writes the whole rule set): the count alone
        return format!("{} rules", uniq.len());
    }
    format!("{} rules, lines {lo}-{hi}", uniq.len())
}

/// The verdicts each class gets whatever the protocol and port (source blocklists, trusted
/// networks), once per exposure rather than on every row.
fn everywhere_table(out: &mut dyn Write, an: &Analysis, e: &Exposure, color: bool) -> anyhow::Result<()> {
    if e.everywhere.iter().all(|p| p.is_empty()) {
        return Ok(());
    }
    writeln!(out, "decided by source alone, for every protocol and port:")?;
    let mut t = Table::new(["CLASS", "VERDICT", "SOURCES", "DECIDED BY"]);
    for (name, parts) in e.classes.iter().zip(&e.everywhere) {
        // per verdict: the deciding terminals and their sources' intervals
        type Gathered = (Vec<Term>, Vec<(u128, u128)>);
        let mut by_kind: std::collections::BTreeMap<Kind, Gathered> = std::collections::BTreeMap::new();
        for (tm, srcs) in parts.iter() {
            let k = by_kind.entry(tm.kind).or_default();
            k.0.push(*tm);
            k.1.extend_from_slice(srcs.intervals());
        }
        for (kind, (terms, ivs)) in by_kind {
            let set = portolan_firewall::sets::IntervalSet::from_intervals(ivs);
            let mut src = source_text(&set, e.family, 3);
            let n = cidrs(&set, e.family.is_v6(), usize::MAX).len();
            if n > 3 {
                src.truncate(3);
                src.push(format!("... ({n} blocks)"));
            }
            t.row(vec![
                Cell::new(name.clone()),
                Cell::new(kind_word(kind)),
                Cell::new(terminal(&src.join(", "))),
                Cell::new(terminal(&rules_text(an, &terms))),
            ]);
        }
    }
    t.render(out, color)?;
    writeln!(out, "per protocol and port (rules above not repeated):")?;
    Ok(())
}

/// Whether class `c` of the exposure has a source accepted by a rule that accepts nothing from
/// the internet (class 0) in that row.
fn telling(exps: &[Exposure], c: usize) -> bool {
    let accepting = |o: &Outcome| -> Vec<Term> {
        o.parts.iter().map(|(t, _)| *t).filter(|t| t.kind == portolan_firewall::dd::Kind::Accept).collect()
    };
    exps.iter().any(|e| {
        e.rows.iter().any(|r| {
            let inet = accepting(&r.classes[0]);
            accepting(&r.classes[c]).iter().any(|t| !inet.contains(t))
        })
    })
}

/// Drops the candidate classes (`special`) that tell nothing the internet column does not: a
/// class stays when some row accepts some of its sources by a rule that accepts nothing from
/// the internet there. (An accept from 100.64.0.0/10 stays, in its own column; a rule open to
/// every source, or a blocklist in front of one, adds no column.)
fn keep_telling_classes(
    exps: &mut [Exposure],
    classes: Vec<Class>,
    special: std::ops::Range<usize>,
) -> Vec<Class> {
    let keep: Vec<bool> = (0..classes.len()).map(|c| !special.contains(&c) || telling(exps, c)).collect();
    fn kept<T>(v: &mut Vec<T>, keep: &[bool]) {
        let mut flags = keep.iter();
        v.retain(|_| flags.next().copied().unwrap_or(true));
    }
    for e in exps.iter_mut() {
        kept(&mut e.classes, &keep);
        kept(&mut e.everywhere, &keep);
        for r in &mut e.rows {
            kept(&mut r.classes, &keep);
        }
    }
    classes.into_iter().zip(keep).filter(|(_, k)| *k).map(|(c, _)| c).collect()
}

fn show_table(
    out: &mut dyn Write,
    an: &Analysis,
    rs: &Ruleset,
    exps: &[Exposure],
    classes: &[Class],
    open_only: bool,
    color: bool,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "Exposure of {} ({}, {} rules), first packets of new connections:",
        terminal(&rs.file),
        rs.format.as_str(),
        rs.rule_count()
    )?;
    for n in &rs.notes {
        writeln!(out, "note: {}", terminal(n))?;
    }
    for e in exps {
        writeln!(out)?;
        let scope = if e.scope.is_empty() { String::new() } else { format!("{} ", e.scope) };
        writeln!(
            out,
            "{}{} {}:",
            terminal(&scope),
            e.family.as_str(),
            match e.view {
                View::Input => "to this machine",
                View::Forward => "routed through this machine",
            }
        )?;
        everywhere_table(out, an, e, color)?;
        let mut headers = vec!["PROTO".to_string(), "PORTS".into(), "SERVICE".into()];
        headers.extend(classes.iter().map(|c| c.name.to_uppercase()));
        headers.push("DECIDED BY".into());
        let mut t = Table::new(headers);
        let rows: Vec<&analysis::Row> =
            e.rows.iter().filter(|row| !open_only || row.classes.iter().any(Outcome::any_accept)).collect();
        let cells = |row: &analysis::Row| -> Vec<Cell> {
            let mut cells = vec![
                Cell::new(proto_text(row.proto)),
                Cell::new(row.ports.map_or("-".to_string(), ports_text)),
                Cell::new(service(row.proto, row.ports)),
            ];
            for o in &row.classes {
                let w = outcome_word(o);
                let style = if o.all_accept() {
                    Style::Red
                } else if o.any_accept() {
                    Style::Yellow
                } else {
                    Style::Plain
                };
                cells.push(Cell::styled(w, style));
            }
            // the rules that decide this row, internet first
            let terms: Vec<Term> =
                row.classes.iter().flat_map(|o| o.parts.iter().map(|(tm, _)| *tm)).collect();
            cells.push(Cell::new(terminal(&rules_text(an, &terms))));
            cells
        };
        // a large table's cells are made on two threads, then laid out in order
        if rows.len() >= 4096 {
            let (a, b) = rows.split_at(rows.len() / 2);
            let (first, second) = std::thread::scope(|sc| {
                let h = sc.spawn(|| b.iter().map(|r| cells(r)).collect::<Vec<_>>());
                (a.iter().map(|r| cells(r)).collect::<Vec<_>>(), h.join())
            });
            let second = second.unwrap_or_else(|_| b.iter().map(|r| cells(r)).collect());
            for c in first.into_iter().chain(second) {
                t.row(c);
            }
        } else {
            for r in rows {
                t.row(cells(r));
            }
        }
        t.render(out, color)?;
    }
    Ok(())
}

/// `fw show -o json`, written as it is serialised: one row's JSON at a time, so a large rule
/// set's answer is never held in memory whole (the keys keep serde_json's sorted order).
struct ShowJson<'a> {
    an: &'a Analysis<'a>,
    rs: &'a Ruleset,
    exps: &'a [Exposure],
    open_only: bool,
    // a shared source set and a terminal are rendered once per exposure, not once per row
    sources: RefCell<HashMap<*const portolan_firewall::sets::LazySet, Rc<Value>>>,
    terms: RefCell<HashMap<Term, Rc<Value>>>,
}

/// One part: the terminal's fields and the sources (keys in sorted order).
struct PartJson(Rc<Value>, Rc<Value>);

impl Serialize for PartJson {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(5))?;
        m.serialize_entry("dnat", &self.0["dnat"])?;
        m.serialize_entry("location", &self.0["location"])?;
        m.serialize_entry("rule", &self.0["rule"])?;
        m.serialize_entry("sources", &*self.1)?;
        m.serialize_entry("verdict", &self.0["verdict"])?;
        m.end()
    }
}

struct ClassJson(Vec<PartJson>, String);

impl Serialize for ClassJson {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(2))?;
        m.serialize_entry("parts", &self.0)?;
        m.serialize_entry("verdict", &self.1)?;
        m.end()
    }
}

/// A row (keys in sorted order, classes by name).
struct RowJson<'a>(std::collections::BTreeMap<&'a str, ClassJson>, &'a analysis::Row);

impl Serialize for RowJson<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let r = self.1;
        let mut m = ser.serialize_map(Some(4))?;
        m.serialize_entry("classes", &self.0)?;
        m.serialize_entry("ports", &r.ports.map(ports_text))?;
        m.serialize_entry("protocol", &proto_text(r.proto))?;
        m.serialize_entry("service", &service(r.proto, r.ports))?;
        m.end()
    }
}

impl ShowJson<'_> {
    fn part(&self, e: &Exposure, t: &Term, s: &analysis::Sources) -> PartJson {
        let term =
            self.terms.borrow_mut().entry(*t).or_insert_with(|| Rc::new(term_json(self.an, *t))).clone();
        let src = self
            .sources
            .borrow_mut()
            .entry(std::sync::Arc::as_ptr(s))
            // a set with holes is made whole for this only, not kept whole
            .or_insert_with(|| Rc::new(json!(source_text(&s.read(), e.family, 16))))
            .clone();
        PartJson(term, src)
    }

    fn row<'e>(&self, e: &'e Exposure, r: &'e analysis::Row) -> RowJson<'e> {
        let classes = e
            .classes
            .iter()
            .zip(&r.classes)
            .map(|(name, o)| {
                let parts = o.parts.iter().map(|(t, s)| self.part(e, t, s)).collect();
                (name.as_str(), ClassJson(parts, outcome_word(o)))
            })
            .collect();
        RowJson(classes, r)
    }
}

struct ExposureJson<'a>(&'a ShowJson<'a>, &'a Exposure);
struct RowsJson<'a>(&'a ShowJson<'a>, &'a Exposure);
struct ExposuresJson<'a>(&'a ShowJson<'a>);

impl Serialize for RowsJson<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let (sj, e) = (self.0, self.1);
        let mut seq = ser.serialize_seq(None)?;
        for r in e.rows.iter().filter(|r| !sj.open_only || r.classes.iter().any(Outcome::any_accept)) {
            seq.serialize_element(&sj.row(e, r))?;
        }
        seq.end()
    }
}

impl Serialize for ExposureJson<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let (sj, e) = (self.0, self.1);
        sj.sources.borrow_mut().clear();
        let mut everywhere = serde_json::Map::new();
        for (name, parts) in e.classes.iter().zip(&e.everywhere) {
            let v: Vec<Value> = parts
                .iter()
                .map(|(t, s)| serde_json::to_value(sj.part(e, t, s)).unwrap_or(Value::Null))
                .collect();
            everywhere.insert(name.clone(), json!(v));
        }
        let mut m = ser.serialize_map(Some(5))?;
        m.serialize_entry("everywhere", &everywhere)?;
        m.serialize_entry("family", e.family.as_str())?;
        m.serialize_entry("rows", &RowsJson(sj, e))?;
        m.serialize_entry("scope", &e.scope)?;
        m.serialize_entry(
            "view",
            match e.view {
                View::Input => "input",
                View::Forward => "forward",
            },
        )?;
        m.end()
    }
}

impl Serialize for ExposuresJson<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut seq = ser.serialize_seq(Some(self.0.exps.len()))?;
        for e in self.0.exps {
            seq.serialize_element(&ExposureJson(self.0, e))?;
        }
        seq.end()
    }
}

impl Serialize for ShowJson<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(5))?;
        m.serialize_entry("exposure", &ExposuresJson(self))?;
        m.serialize_entry("file", &self.rs.file)?;
        m.serialize_entry("format", self.rs.format.as_str())?;
        m.serialize_entry("notes", &self.rs.notes)?;
        m.serialize_entry("rules", &self.rs.rule_count())?;
        m.end()
    }
}

fn show_json<'a>(
    an: &'a Analysis<'a>,
    rs: &'a Ruleset,
    exps: &'a [Exposure],
    open_only: bool,
) -> ShowJson<'a> {
    ShowJson { an, rs, exps, open_only, sources: RefCell::default(), terms: RefCell::default() }
}

fn lint_cmd(a: crate::cli::FwLintArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let threshold = a.fail_on.0;
    let rs = load(&a.file, &a.input)?;
    let (listeners, source) = if a.listeners {
        let inv = portolan_local::inventory(&portolan_local::Options::default())?;
        let ls: Vec<Listener> = inv
            .sockets
            .iter()
            .filter(|s| s.state == portolan_model::SocketState::Listen || s.transport == Transport::Udp)
            .map(|s| Listener { transport: s.transport, port: s.local_port, address: Some(s.local_address) })
            .collect();
        (Some(ls), format!("firewall rule set {} with the listeners of {}", rs.file, inv.machine))
    } else if let Some(x) = &a.xml {
        let name = x.to_string_lossy().into_owned();
        let run = super::diff::read_file(&name)?;
        let ls: Vec<Listener> = run
            .hosts
            .iter()
            .flat_map(|h| h.ports.iter())
            .filter(|p| p.state == PortState::Open)
            .map(|p| Listener { transport: p.transport, port: p.number, address: None })
            .collect();
        (Some(ls), format!("firewall rule set {} with the open ports of {name}", rs.file))
    } else {
        (None, format!("firewall rule set {}", rs.file))
    };
    let mut an = Analysis::new(&[&rs])?;
    let findings = lint::lint(&mut an, &lint::Options { listeners: listeners.clone() });
    let report = AuditReport {
        format_version: portolan_model::FORMAT_VERSION,
        taken_at: Timestamp::now(),
        machine: portolan_local::hostname(),
        tool_version: super::VERSION.to_string(),
        policy: vec![rs.file.clone()],
        source,
        hosts: u32::from(listeners.is_some()),
        observed: listeners
            .unwrap_or_default()
            .iter()
            .map(|l| FindingTarget { address: l.address, port: Some(l.port), transport: Some(l.transport) })
            .collect(),
        summary: AuditSummary::of(&findings),
        findings,
    };
    let mut out = super::stdout();
    match a.output {
        AuditFormat::Table => render::write_lint_human(&mut out, &report, ctx.color)?,
        AuditFormat::Json => records::json(&mut out, &report)?,
        AuditFormat::Ndjson => records::ndjson(&mut out, &report.findings)?,
        AuditFormat::Csv => records::csv(&mut out, &render::CSV_HEADER, render::csv_rows(&report))?,
        AuditFormat::Sarif => render::sarif(&mut out, &report)?,
        AuditFormat::Junit => render::junit(&mut out, &report)?,
    }
    out.flush().context("writing to standard output")?;
    let failing = threshold.is_some_and(|t| report.findings.iter().any(|f| f.severity >= t));
    Ok(if failing { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn verify_cmd(a: crate::cli::FwVerifyArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let rs = load(&a.file, &a.input)?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("fw verify makes network namespaces and loads kernel firewall rules: run it as root");
    }
    let read = |p: &std::path::Path| portolan_model::input::read_text(p, portolan_firewall::MAX_RULE_FILE);
    let text = read(&a.file)?;
    let ipset_text = a.input.ipset.as_deref().map(read).transpose()?;
    let opts = portolan_firewall::verify::Options { samples: a.samples, seed: a.seed, ..Default::default() };
    let report = portolan_firewall::verify::run(&rs, &text, ipset_text.as_deref(), &opts)?;
    let bad: Vec<_> = report.disagreements().collect();
    let mut out = super::stdout();
    match a.output {
        FwOutput::Json => {
            let checks: Vec<Value> = report
                .checks
                .iter()
                .map(|c| {
                    json!({
                        "family": c.family.as_str(), "interface": c.iif, "source": c.src.to_string(),
                        "protocol": proto_name(c.proto), "port": c.port, "expected": kind_word(c.expected),
                        "rule": c.rule, "observed": kind_word(c.observed), "detail": c.detail,
                        "agree": c.expected == c.observed,
                    })
                })
                .collect();
            records::json(
                &mut out,
                &json!({"file": rs.file, "loads": report.loads, "checks": checks, "disagreements": bad.len(),
                        "skipped": report.skipped, "elapsed_secs": report.elapsed.as_secs_f64()}),
            )?;
        }
        FwOutput::Table => {
            if !bad.is_empty() {
                let mut t = Table::new(["FAMILY", "IFACE", "SOURCE", "PORT", "COMPUTED", "OBSERVED", "RULE"]);
                for c in &bad {
                    t.row(vec![
                        Cell::new(c.family.as_str()),
                        Cell::new(terminal(&c.iif)),
                        Cell::new(c.src.to_string()),
                        Cell::new(format!("{}/{}", c.port, proto_name(c.proto))),
                        Cell::new(kind_word(c.expected)),
                        Cell::styled(format!("{} ({})", kind_word(c.observed), c.detail), Style::Red),
                        Cell::new(terminal(&c.rule)),
                    ]);
                }
                t.render(&mut out, ctx.color)?;
            }
            let agree = report.checks.len() - bad.len();
            writeln!(
                out,
                "{}: {} of {} checks agree with the kernel ({} rule set loads, {:.1} s){}",
                terminal(&rs.file),
                agree,
                report.checks.len(),
                report.loads,
                report.elapsed.as_secs_f64(),
                if report.skipped.is_empty() {
                    String::new()
                } else {
                    format!("; {} not verified (translated)", report.skipped.len())
                }
            )?;
        }
    }
    out.flush()?;
    Ok(if bad.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
