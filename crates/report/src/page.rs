//! The page: maud templates, the stylesheet and script inlined, and the Content-Security-Policy
//! that lets the page load nothing from anywhere.

use base64::Engine as _;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use portolan_model::{Finding, Severity};
use sha2::Digest as _;

use crate::svg::{self, Bar, Column};
use crate::{Exposure, Report};

const CSS: &str = include_str!("../assets/report.css");
const JS: &str = include_str!("../assets/report.js");

/// Rows of a table drawn into the page itself; the rest wait in its JSON block for the
/// script, which pages through all of them (a 200,000-row table would take the browser
/// seconds to lay out).
pub const HTML_ROWS: usize = 200;

fn csp_hash(text: &str) -> String {
    let digest = sha2::Sha256::digest(text.as_bytes());
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest))
}

/// The policy: nothing may be fetched, framed, posted or connected to; only the page's own
/// style and script (by hash) run; images only as data.
fn csp() -> String {
    format!(
        "default-src 'none'; style-src {}; script-src {}; img-src data:; base-uri 'none'; form-action 'none'",
        csp_hash(CSS),
        csp_hash(JS)
    )
}

fn sev_class(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "sev-critical",
        Severity::High => "sev-high",
        Severity::Medium => "sev-medium",
        Severity::Low => "sev-low",
        Severity::Info => "sev-info",
    }
}

/// JSON for a `<script type="application/json">` block: no `<` can end the block early.
fn inert_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v)
        .unwrap_or_else(|_| "[]".to_string())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// A table that the script pages, sorts and filters: the first [`HTML_ROWS`] rows are in the
/// page (what a reader without script sees), all of them in its JSON block.
fn paged(id: &str, heads: &[&str], rows: &[Vec<String>], sev_col: Option<usize>) -> Markup {
    let data_id = format!("{id}-data");
    html! {
        div.paged id=(id) data-src=(data_id) data-rows=(rows.len()) data-sev=[sev_col] {
            div.controls hidden {
                input type="search" placeholder="Filter rows…" aria-label="Filter rows";
                button.prev type="button" { "‹ Previous" }
                button.next type="button" { "Next ›" }
                span.info {}
            }
            table {
                thead { tr { @for h in heads { th scope="col" { (h) } } } }
                tbody {
                    @for r in rows.iter().take(HTML_ROWS) {
                        tr {
                            @for (i, c) in r.iter().enumerate() {
                                @if Some(i) == sev_col && !c.is_empty() {
                                    td class=(format!("sev sev-{c}")) { (c) }
                                } @else {
                                    td { (c) }
                                }
                            }
                        }
                    }
                }
            }
            @if rows.len() > HTML_ROWS {
                p.more.note { "The first " (HTML_ROWS) " of " (rows.len()) " rows; with scripts enabled all of them can be paged, sorted and filtered." }
            }
            script type="application/json" id=(data_id) { (PreEscaped(inert_json(&rows))) }
        }
    }
}

fn finding_rows(findings: &[&Finding]) -> Vec<Vec<String>> {
    findings
        .iter()
        .map(|f| {
            let t = f.target.as_ref();
            let target = match t {
                Some(t) => {
                    let mut s = t.address.map(|a| a.to_string()).unwrap_or_default();
                    if let Some(p) = t.port {
                        s.push_str(&format!(
                            "{}{p}/{}",
                            if s.is_empty() { "" } else { " " },
                            t.transport.map_or("?", |x| x.as_str())
                        ));
                    }
                    s
                }
                None => String::new(),
            };
            vec![
                f.severity.as_str().to_string(),
                f.rule.clone(),
                target,
                f.title.clone(),
                f.location.as_ref().map(|l| format!("{}:{}", l.file, l.line)).unwrap_or_default(),
                f.evidence.join("; "),
                f.remediation.clone(),
            ]
        })
        .collect()
}

fn when(t: Option<jiff::Timestamp>) -> String {
    t.map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_default()
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let sum = r.summary();
    let findings = r.all_findings();
    let rows: Vec<Vec<String>> = r
        .host_rows()
        .into_iter()
        .map(|h| {
            vec![
                h.host.to_string(),
                h.name,
                h.port.to_string(),
                h.transport.as_str().to_string(),
                h.state.as_str().to_string(),
                h.service,
                h.product,
                h.details,
                h.findings.to_string(),
                h.worst.map(|s| s.as_str().to_string()).unwrap_or_default(),
            ]
        })
        .collect();
    let title = format!("Portolan report — {}", r.machine);
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(csp());
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                meta name="generator" content=(format!("portolan {}", r.tool_version));
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    h1 { "Portolan report" }
                    p.meta { "Made on " (r.machine) " at " (when(r.generated_at)) " by portolan " (r.tool_version) "." }
                    nav {
                        a href="#summary" { "Summary" } a href="#charts" { "Charts" } a href="#hosts" { "Hosts" }
                        a href="#listeners" { "This machine" } a href="#findings" { "Findings" }
                        a href="#firewall" { "Firewall" } a href="#changes" { "Changes" } a href="#watch" { "Attacks" }
                        a href="#metadata" { "About" }
                    }
                }
                main {
                    (summary(r, &sum))
                    (charts(r, &sum))
                    section #hosts {
                        h2 { "Hosts and ports" }
                        @if rows.is_empty() {
                            p.empty { "No scan in this report: run " code { "portolan scan --save" } " or pass an nmap XML file." }
                        } @else {
                            p.note { (sum.hosts) " hosts up, " (rows.len()) " ports that answer (open, open|filtered or unfiltered; closed and filtered ports are counted in the scans' metadata)." }
                            (paged("host-table", &["Host", "Name", "Port", "Proto", "State", "Service", "Product / version", "Details", "Findings", "Worst"], &rows, Some(9)))
                        }
                    }
                    (listeners(r))
                    section #findings {
                        h2 { "Findings" }
                        @if findings.is_empty() {
                            p.empty { "No findings." @if r.policy.is_empty() { " No policy was applied: pass " code { "--policy FILE" } "." } }
                        } @else {
                            @if !r.policy.is_empty() { p.note { "Judged against " (r.policy.join(", ")) "." } }
                            (paged("finding-table", &["Severity", "Rule", "Target", "Finding", "Policy or rule line", "Evidence", "What to do"], &finding_rows(&findings), Some(0)))
                        }
                    }
                    (firewall(r))
                    (changes(r))
                    (watch(r))
                    (metadata(r))
                }
                footer { "Portolan " (r.tool_version) ". This file loads nothing from the network; it reads without scripts and prints." }
                script { (PreEscaped(JS)) }
            }
        }
    };
    page.into_string()
}

fn summary(r: &Report, sum: &crate::Summary) -> Markup {
    let fix = r.fix_first();
    html! {
        section #summary {
            h2 { "Summary" }
            div.tiles {
                div.tile data-what="hosts" data-count=(sum.hosts) { span.n { (sum.hosts) } span.what { "hosts up" } }
                div.tile data-what="open-ports" data-count=(sum.open_ports) { span.n { (sum.open_ports) } span.what { "open ports" } }
                div.tile data-what="listeners" data-count=(sum.listeners) { span.n { (sum.listeners) } span.what { "listeners on this machine" } }
                @for (s, n) in &sum.by_severity {
                    div.tile data-what=(format!("findings-{}", s.as_str())) data-count=(n) {
                        span.n { (n) } span.what { span class=(format!("swatch {}", sev_class(*s))) {} (s.as_str()) " findings" }
                    }
                }
                div.tile data-what="detections" data-count=(sum.detections) { span.n { (sum.detections) } span.what { "attack detections" } }
            }
            h3 { "Fix first" }
            @if fix.is_empty() {
                p.empty { "Nothing above informational." }
            } @else {
                ol.fix {
                    @for f in &fix {
                        li data-rule=(f.rule) {
                            span class=(format!("swatch {}", sev_class(f.severity))) {}
                            strong { (f.severity.as_str()) ": " (f.title) }
                            @if f.count > 1 { " (and " (f.count - 1) " more like it)" }
                            br; (f.remediation)
                        }
                    }
                }
            }
        }
    }
}

fn charts(r: &Report, sum: &crate::Summary) -> Markup {
    let sev: Vec<Bar> = sum
        .by_severity
        .iter()
        .map(|(s, n)| Bar { label: s.as_str().to_string(), value: *n, class: sev_class(*s) })
        .collect();
    let services: Vec<Bar> =
        r.open_by_service(12).into_iter().map(|(label, value)| Bar { label, value, class: "c0" }).collect();
    let ranges: Vec<Bar> = r
        .open_by_range()
        .iter()
        .filter(|_| sum.open_ports > 0)
        .map(|(l, n)| Bar { label: l.to_string(), value: *n, class: "c0" })
        .collect();
    let exposure: Vec<Bar> = r
        .exposure()
        .into_iter()
        .take(30)
        .map(|(label, value, e)| Bar {
            label,
            value,
            class: match e {
                Exposure::Internet => "exp-internet",
                Exposure::Private => "exp-private",
                Exposure::Closed => "exp-closed",
            },
        })
        .collect();
    let drift: Vec<Column> =
        r.history.iter().map(|d| Column { label: d.label.clone(), up: d.opened, down: d.closed }).collect();
    let (over_time, sources) = r.detections_over_time();
    html! {
        section #charts {
            h2 { "Charts" }
            div.charts {
                (svg::bars("chart-severity", "Findings by severity", &sev, &[]))
                (svg::bars("chart-services", "Open ports by service", &services, &[]))
                (svg::bars("chart-ranges", "Open ports by range", &ranges, &[]))
                @if r.firewall.is_some() {
                    (svg::bars("chart-exposure", "Open ports by firewall exposure (hosts per port)", &exposure,
                        &[("exp-internet", "accepted from the internet"), ("exp-private", "private sources only"), ("exp-closed", "closed by the firewall")]))
                }
                @if r.history.len() > 1 {
                    (svg::columns("chart-drift", "Drift: ports opened and closed per scan", &drift, ("opened", "up"), Some(("closed", "down"))))
                }
                @if r.watch.is_some() {
                    (svg::columns("chart-detections", "Detections over time", &over_time.iter().map(|(l, n)| Column { label: l.clone(), up: *n, down: 0 }).collect::<Vec<_>>(), ("detections", "sev-high"), None))
                    (svg::bars("chart-sources", "Top attacking sources (detections)", &sources.into_iter().map(|(label, value)| Bar { label, value, class: "sev-high" }).collect::<Vec<_>>(), &[]))
                }
            }
        }
    }
}

fn listeners(r: &Report) -> Markup {
    let inv = r.local.as_ref().and_then(|s| s.local.as_ref());
    html! {
        section #listeners {
            h2 { "This machine's listeners" }
            @if let Some(inv) = inv {
                @let ls = sorted_listeners(inv);
                p.note { (ls.len()) " listening sockets on " (inv.machine) " at " (when(Some(inv.taken_at))) "." }
                (paged("listener-table", &["Reach", "Proto", "Address", "Port", "Service", "Process", "User", "Risk"],
                    &ls.iter().map(|s| {
                        let fw = r.firewall.as_ref().and_then(|f| f.exposure(s.transport, s.local_port, s.local_address.is_ipv6()));
                        let reach = portolan_kb::Reach::of(s.scope, s.local_address);
                        let mut reach = reach_word(reach).to_string();
                        if let Some(e) = fw && reach_rank(s) < 2 { reach.push_str(&format!(" (firewall: {})", e.as_str())); }
                        vec![
                            reach,
                            s.transport.as_str().to_string(),
                            s.local_address.to_string(),
                            s.local_port.to_string(),
                            s.service.as_deref().unwrap_or("").to_string(),
                            s.owners.first().map(|o| format!("{} ({})", o.comm, o.pid)).unwrap_or_default(),
                            s.user.as_deref().unwrap_or("").to_string(),
                            s.risk.map(|x| x.as_str().to_string()).unwrap_or_default(),
                        ]
                    }).collect::<Vec<_>>(), Some(7)))
            } @else {
                p.empty { "No inventory of this machine in this report: run " code { "portolan ls --save" } "." }
            }
        }
    }
}

/// Listeners, the widest reach first.
fn sorted_listeners(inv: &portolan_model::LocalInventory) -> Vec<&portolan_model::LocalSocket> {
    let mut ls: Vec<_> = crate::listening(inv).collect();
    ls.sort_by_key(|s| (reach_rank(s), s.local_port));
    ls
}

fn reach_rank(s: &portolan_model::LocalSocket) -> u8 {
    match portolan_kb::Reach::of(s.scope, s.local_address) {
        portolan_kb::Reach::Internet | portolan_kb::Reach::AllInterfaces => 0,
        portolan_kb::Reach::LocalNetwork => 1,
        portolan_kb::Reach::Loopback => 2,
    }
}

fn reach_word(r: portolan_kb::Reach) -> &'static str {
    match r {
        portolan_kb::Reach::Internet => "internet-facing",
        portolan_kb::Reach::AllInterfaces => "all interfaces",
        portolan_kb::Reach::LocalNetwork => "local network",
        portolan_kb::Reach::Loopback => "loopback",
    }
}

fn firewall(r: &Report) -> Markup {
    html! {
        section #firewall {
            h2 { "Firewall" }
            @if let Some(fw) = &r.firewall {
                @let open: Vec<_> = fw.rows.iter().filter(|x| !(closed(&x.internet) && closed(&x.private))).collect();
                p.note { (fw.file) " (" (fw.format) ", " (fw.rules) " rules): " (open.len()) " of " (fw.rows.len())
                    " protocol and port ranges accept new connections from somewhere; " (fw.lint.len()) " lint findings (listed under Findings)." }
                (paged("firewall-table", &["Family", "Scope", "Proto", "Ports", "Service", "Internet", "Private", "Decided by"],
                    &open.iter().map(|x| vec![
                        x.family.clone(), x.scope.clone(), x.protocol.clone(),
                        x.ports.map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).unwrap_or_default(),
                        x.service.clone(), x.internet.clone(), x.private.clone(), x.decided_by.clone(),
                    ]).collect::<Vec<_>>(), None))
            } @else {
                p.empty { "No rule set in this report: pass " code { "--rules FILE" } " (iptables-save, nft -j list ruleset or AWS security groups)." }
            }
        }
    }
}

fn closed(v: &str) -> bool {
    v == "drop" || v == "reject"
}

fn changes(r: &Report) -> Markup {
    html! {
        section #changes {
            h2 { "Changes" }
            @if let Some(c) = &r.changes {
                @let rows: Vec<Vec<String>> = c.diff.hosts.iter().flat_map(|h| h.ports.iter().map(move |p| {
                    let side = |s: &Option<portolan_diff::PortSide>| s.as_ref().map(|s| {
                        let mut t = s.state.as_str().to_string();
                        if let Some(svc) = &s.service {
                            t.push(' ');
                            t.push_str(&svc.name);
                            for x in [&svc.product, &svc.version].into_iter().flatten() { t.push(' '); t.push_str(x); }
                        }
                        t
                    }).unwrap_or_else(|| "—".to_string());
                    vec![h.address.to_string(), format!("{}/{}", p.port, p.transport.as_str()), change_word(p.change).to_string(), side(&p.a), side(&p.b)]
                })).collect();
                p.note { "From " (c.from) " to " (c.to) ": " (rows.len()) " port changes on " (c.diff.hosts.iter().filter(|h| !h.ports.is_empty()).count()) " hosts." }
                (paged("change-table", &["Host", "Port", "Change", "Before", "After"], &rows, None))
            } @else {
                p.empty { "One scan only: nothing to compare. Save scans with " code { "--save" } " to see drift." }
            }
        }
    }
}

fn change_word(c: portolan_diff::Change) -> &'static str {
    match c {
        portolan_diff::Change::Opened => "opened",
        portolan_diff::Change::NoLongerOpen => "no longer open",
        portolan_diff::Change::StateChanged => "state changed",
        portolan_diff::Change::ServiceChanged => "service changed",
    }
}

fn watch(r: &Report) -> Markup {
    html! {
        section #watch {
            h2 { "Attacks seen in logs and traffic" }
            @if let Some(w) = &r.watch {
                p.note { (w.detections.len()) " detections from " (w.inputs.iter().map(|i| format!("{} ({}, {} records)", i.path, i.format, i.records)).collect::<Vec<_>>().join(", ")) "." }
                (paged("detection-table", &["Severity", "Kind", "Source", "Targets", "Ports", "Type", "Tool", "First", "Last", "Events", "Evidence"],
                    &w.detections.iter().map(|d| vec![
                        d.severity.as_str().to_string(), d.kind.as_str().to_string(),
                        d.src.map_or_else(|| format!("{} sources", d.srcs.len()), |s| s.to_string()),
                        d.target_count.to_string(), d.ports.clone(),
                        d.scan_type.map(|t| t.as_str().to_string()).unwrap_or_default(),
                        d.tool.as_str().to_string(),
                        d.first_seen.clone(), d.last_seen.clone(), d.events.to_string(), d.evidence.join(" "),
                    ]).collect::<Vec<_>>(), Some(0)))
            } @else {
                p.empty { "No logs or captures in this report: pass " code { "--watch FILE" } "." }
            }
        }
    }
}

fn metadata(r: &Report) -> Markup {
    html! {
        section #metadata {
            h2 { "About this report" }
            table {
                tbody {
                    tr { th scope="row" { "Command" } td { code { (r.command) } } }
                    tr { th scope="row" { "Made" } td { (when(r.generated_at)) " on " (r.machine) } }
                    tr { th scope="row" { "Portolan" } td { (r.tool_version) } }
                    @if !r.policy.is_empty() { tr { th scope="row" { "Policy" } td { (r.policy.join(", ")) } } }
                }
            }
            @if !r.scans.is_empty() {
                h3 { "Scans" }
                table #scan-table {
                    thead { tr { th { "Snapshot" } th { "Kind" } th { "Taken" } th { "Scanner" } th { "Command" } th.num { "Hosts" } th.num { "Seconds" } } }
                    tbody {
                        @for s in &r.scans {
                            @if let Some(run) = &s.scan {
                                tr {
                                    td { (s.id.map_or_else(|| "file".to_string(), |i| format!("#{i}"))) }
                                    td { (s.source.as_str()) }
                                    td { (when(Some(run.start))) }
                                    td { (run.scanner) " " (run.scanner_version) }
                                    td { code { (run.args) } }
                                    td.num { (run.hosts.len()) }
                                    td.num { (format!("{:.1}", run.stats.elapsed_secs)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
