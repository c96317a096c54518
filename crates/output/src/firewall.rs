//! `portolan fw` for people and machines: the exposure table and its streamed JSON, verdict
//! words, source sets, rule labels (an iptables line, an nftables chain and handle).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Write};
use std::rc::Rc;

use portolan_firewall::analysis::{self, Analysis, Class, Exposure, Outcome, View};
use portolan_firewall::dd::{Kind, NONE, Term};
use portolan_firewall::model::proto_name;
use portolan_firewall::sets::cidrs;
use portolan_firewall::{Family, Ruleset};
use portolan_model::Transport;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Value, json};

use crate::escape::terminal;
use crate::table::{Cell, Style, Table};

/// A verdict in a word (`accept`, `drop`, `reject`, ...).
pub fn kind_word(k: Kind) -> &'static str {
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

/// A verdict in a word, coloured on a terminal.
pub fn paint_kind(k: Kind, color: bool) -> String {
    let style = match k {
        Kind::Accept => Style::Red,
        Kind::Drop | Kind::Reject => Style::Green,
        _ => Style::Dim,
    };
    style.paint(kind_word(k), color)
}

/// A protocol range for people (`tcp`, `proto-7..proto-16`).
pub fn proto_text(p: (u8, u8)) -> String {
    if p.0 == p.1 {
        proto_name(p.0)
    } else if p == (0, 255) {
        "any".into()
    } else {
        format!("{}..{}", proto_name(p.0), proto_name(p.1))
    }
}

/// A port range (`22`, `8000-8100`).
pub fn ports_text(p: (u16, u16)) -> String {
    if p.0 == p.1 { p.0.to_string() } else { format!("{}-{}", p.0, p.1) }
}

/// A source set for people: CIDR blocks (at most `limit`, then `+N more`), or, for a set
/// holding most of the internet, `internet` with the public blocks it lacks
/// (`except 192.0.2.7/32`) and the other blocks it has.
pub fn source_text(s: &portolan_firewall::sets::IntervalSet, f: Family, limit: usize) -> Vec<String> {
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

/// A deciding terminal for people: the verdict and its rule's location.
pub fn term_text(analysis: &Analysis, t: Term) -> String {
    let mut s = kind_word(t.kind).to_string();
    if t.rule != NONE {
        s.push_str(&format!(" ({})", analysis.location(analysis.refs[t.rule as usize])));
    }
    if t.via != NONE {
        s.push_str(&format!(" via DNAT {}", analysis.location(analysis.refs[t.via as usize])));
    }
    s
}

/// A deciding terminal as JSON: verdict, rule, location, DNAT.
pub fn term_json(analysis: &Analysis, t: Term) -> Value {
    json!({
        "verdict": kind_word(t.kind),
        "rule": (t.rule != NONE).then(|| analysis.describe(analysis.refs[t.rule as usize])),
        "location": (t.rule != NONE).then(|| analysis.location(analysis.refs[t.rule as usize]).to_string()),
        "dnat": (t.via != NONE).then(|| analysis.describe(analysis.refs[t.via as usize])),
    })
}

/// A class's outcome in a word: accept, drop, reject, or partial.
pub fn outcome_word(o: &Outcome) -> String {
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

/// The registered service of a one-port row (nothing for ranges).
pub fn service(proto: (u8, u8), ports: Option<(u16, u16)>) -> String {
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
    match (portolan_registry::port_name(lo, tr), kb) {
        (Some(n), Some(k)) if k.id != n => format!("{n} / {}", k.id),
        (Some(n), _) => n.to_string(),
        (None, Some(k)) => k.id.to_string(),
        (None, None) => String::new(),
    }
}

/// `line N` for a rule, `CHAIN policy` for a policy, `no chain` for none.
pub fn rule_label(analysis: &Analysis, t: Term) -> String {
    if t.rule == NONE {
        return "no chain".to_string();
    }
    let r = analysis.refs[t.rule as usize];
    match (r.rule, analysis.rule(r)) {
        // nft -j writes one line: a rule is named by its chain and handle (or position)
        (Some(ri), Some(rule)) if analysis.ruleset(r).format == portolan_firewall::Format::NftJson => {
            match rule.handle {
                Some(h) => format!("{} handle {h}", analysis.chain(r).name),
                None => format!("{} rule {}", analysis.chain(r).name, ri + 1),
            }
        }
        (Some(_), _) => format!("line {}", analysis.location(r).line),
        (None, _) => format!("{} policy", analysis.chain(r).name),
    }
}

/// The rules of a list of terminals for people: each line when few, else a count and the
/// span of lines.
pub fn rules_text(analysis: &Analysis, terms: &[Term]) -> String {
    // distinct rules in order of appearance (a row can name thousands: no quadratic search)
    let mut seen = std::collections::HashSet::new();
    let uniq: Vec<Term> = terms.iter().filter(|t| seen.insert(t.rule)).copied().collect();
    if uniq.len() <= 6 {
        let mut labels: Vec<String> = Vec::new();
        for t in &uniq {
            let s = rule_label(analysis, *t);
            if !labels.contains(&s) {
                labels.push(s);
            }
        }
        return labels.join(", ");
    }
    let lines = uniq
        .iter()
        .filter(|t| t.rule != NONE)
        .map(|t| analysis.location(analysis.refs[t.rule as usize]).line);
    let (lo, hi) = lines.fold((u32::MAX, 0), |(lo, hi), l| (lo.min(l), hi.max(l)));
    if lo >= hi {
        // no span (or one line, as nft -j writes the whole rule set): the count alone
        return format!("{} rules", uniq.len());
    }
    format!("{} rules, lines {lo}-{hi}", uniq.len())
}

/// The verdicts each class gets whatever the protocol and port (source blocklists, trusted
/// networks), once per exposure rather than on every row.
pub fn everywhere_table(
    out: &mut dyn Write,
    analysis: &Analysis,
    e: &Exposure,
    color: bool,
) -> io::Result<()> {
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
                Cell::new(terminal(&rules_text(analysis, &terms))),
            ]);
        }
    }
    t.render(out, color)?;
    writeln!(out, "per protocol and port (rules above not repeated):")?;
    Ok(())
}

/// `fw show` for people: each scope and family's exposure table.
#[allow(clippy::too_many_arguments)]
pub fn show_table(
    out: &mut dyn Write,
    analysis: &Analysis,
    rs: &Ruleset,
    exps: &[Exposure],
    classes: &[Class],
    open_only: bool,
    color: bool,
) -> io::Result<()> {
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
        everywhere_table(out, analysis, e, color)?;
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
            cells.push(Cell::new(terminal(&rules_text(analysis, &terms))));
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
pub struct ShowJson<'a> {
    analysis: &'a Analysis<'a>,
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
        let term = self
            .terms
            .borrow_mut()
            .entry(*t)
            .or_insert_with(|| Rc::new(term_json(self.analysis, *t)))
            .clone();
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

/// `fw show -o json`, serialised row by row.
pub fn show_json<'a>(
    analysis: &'a Analysis<'a>,
    rs: &'a Ruleset,
    exps: &'a [Exposure],
    open_only: bool,
) -> ShowJson<'a> {
    ShowJson { analysis, rs, exps, open_only, sources: RefCell::default(), terms: RefCell::default() }
}

/// `fw query -o json`: per scope, the verdict, the deciding and translating rules and the path.
pub fn query_json(analysis: &Analysis, answers: &[analysis::Answer]) -> Vec<Value> {
    answers
        .iter()
        .map(|ans| {
            json!({
                "scope": ans.scope,
                "verdict": kind_word(ans.kind),
                "rule": ans.rule.map(|r| analysis.describe(r)),
                "location": ans.rule.map(|r| analysis.location(r).to_string()),
                "translated_by": ans.via.map(|r| analysis.describe(r)),
                "path": ans.path.iter().map(|s| json!({"rule": analysis.describe(s.rule), "what": s.what})).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// `fw query` for people: per scope, the verdict, the deciding rule and the path rule by rule.
pub fn write_query(
    out: &mut dyn Write,
    analysis: &Analysis,
    answers: &[analysis::Answer],
    p: &portolan_firewall::model::Packet,
    forward: bool,
    color: bool,
) -> io::Result<()> {
    for ans in answers {
        let head = if ans.scope.is_empty() { String::new() } else { format!("{}: ", ans.scope) };
        writeln!(
            out,
            "{}{} {} -> {} {}/{}: {}",
            terminal(&head),
            if forward { "forwarded" } else { "to this machine" },
            p.src,
            p.dst,
            p.dport,
            proto_name(p.proto),
            paint_kind(ans.kind, color)
        )?;
        match ans.rule {
            Some(r) => writeln!(out, "  decided by {}", terminal(&analysis.describe(r)))?,
            None => writeln!(out, "  decided by: no chain on this hook (accepted)")?,
        }
        if let Some(v) = ans.via {
            writeln!(out, "  translated by {}", terminal(&analysis.describe(v)))?;
        }
        writeln!(out, "  path:")?;
        for s in &ans.path {
            let text = analysis.rule(s.rule).map_or(String::new(), |r| format!("  {}", r.text));
            writeln!(out, "    {} -> {}{}", terminal(&analysis.describe(s.rule)), s.what, terminal(&text))?;
        }
    }
    Ok(())
}

/// `fw diff -o json`: every packet class whose verdict changed, sources as CIDRs (no summary).
pub fn diff_json(analysis: &Analysis, changes: &[analysis::Change]) -> Vec<Value> {
    changes
        .iter()
        .map(|c| {
            json!({
                "scope": c.scope,
                "family": c.family.as_str(),
                "protocol": proto_text(c.proto),
                "ports": ports_text(c.ports),
                "sources": cidrs(&c.sources, c.family.is_v6(), usize::MAX),
                "in_interfaces": c.iif,
                "old": term_json(analysis, c.old),
                "new": term_json(analysis, c.new),
            })
        })
        .collect()
}

/// `fw diff` for people: a table of the changed packet classes, the input interface first (a
/// change on `-i lo` is not one from the internet).
pub fn write_diff(
    out: &mut dyn Write,
    analysis: &Analysis,
    changes: &[analysis::Change],
    color: bool,
) -> io::Result<()> {
    if changes.is_empty() {
        return writeln!(out, "No packet changes verdict.");
    }
    let mut t = Table::new(["FAMILY", "IIF", "PROTO", "PORTS", "SOURCES", "OLD", "NEW"]);
    for c in changes {
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
            Cell::new(terminal(&term_text(analysis, c.old))),
            Cell::new(terminal(&term_text(analysis, c.new))),
        ]);
    }
    t.render(out, color)?;
    writeln!(
        out,
        "{} packet class{} changed verdict",
        changes.len(),
        if changes.len() == 1 { "" } else { "es" }
    )
}

/// `fw verify -o json`: every check, with what was computed and what the kernel did.
pub fn verify_json(file: &str, report: &portolan_verify::Report) -> Value {
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
    json!({"file": file, "loads": report.loads, "checks": checks, "disagreements": report.disagreements().count(),
            "skipped": report.skipped, "elapsed_secs": report.elapsed.as_secs_f64()})
}

/// `fw verify` for people: the disagreements, if any, then one line of totals.
pub fn write_verify(
    out: &mut dyn Write,
    file: &str,
    report: &portolan_verify::Report,
    color: bool,
) -> io::Result<()> {
    let bad: Vec<_> = report.disagreements().collect();
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
        t.render(out, color)?;
    }
    let agree = report.checks.len() - bad.len();
    writeln!(
        out,
        "{}: {} of {} checks agree with the kernel ({} rule set loads, {:.1} s){}",
        terminal(file),
        agree,
        report.checks.len(),
        report.loads,
        report.elapsed.as_secs_f64(),
        if report.skipped.is_empty() {
            String::new()
        } else {
            format!("; {} not verified (translated)", report.skipped.len())
        }
    )
}

/// `fw query --batch`: one line per packet, `SRC DST PROTO DPORT VERDICT LOCATION`.
pub fn write_batch(
    out: &mut dyn Write,
    analysis: &Analysis,
    packets: &[portolan_firewall::model::Packet],
    verdicts: &[Option<Term>],
) -> io::Result<()> {
    for (p, v) in packets.iter().zip(verdicts) {
        match v {
            Some(t) => {
                let loc = if t.rule == NONE {
                    "-".to_string()
                } else {
                    analysis.location(analysis.refs[t.rule as usize]).to_string()
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
    Ok(())
}
