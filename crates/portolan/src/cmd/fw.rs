//! `portolan fw`: firewall rule sets — exposure, queries, diffs, lint and kernel verification.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use jiff::Timestamp;
use portolan_firewall::analysis::{self, Analysis, Class};
use portolan_firewall::dd::Term;
use portolan_firewall::lint::{self, Listener};
use portolan_firewall::model::{Packet, proto_number};
use portolan_firewall::{Family, Format, LoadOptions, Ruleset};
use portolan_model::{AuditReport, AuditSummary, FindingTarget, PortState, Transport};
use portolan_output::audit as render;
use portolan_output::firewall::{
    diff_json, query_json, show_json, show_table, verify_json, write_batch, write_diff, write_query,
    write_verify,
};
use portolan_output::records;

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
                .map(|f| analysis::named_class(f).map_err(|e| anyhow::anyhow!("--from {f}: {e}")))
                .collect::<anyhow::Result<_>>()?;
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
                let mut exps = an.exposure(&classes, a.dst, true, &a.iif)?;
                let classes = analysis::keep_telling_classes(&mut exps, classes, 2..2 + n_special);
                (exps, classes)
            } else {
                let classes = with(Vec::new());
                (an.exposure(&classes, a.dst, true, &a.iif)?, classes)
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
                FwOutput::Json => records::json(&mut out, &query_json(&an, &answers))?,
                FwOutput::Table => write_query(&mut out, &an, &answers, &p, a.forward, ctx.color)?,
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
                FwOutput::Json => records::json(&mut out, &diff_json(&an, &changes))?,
                FwOutput::Table => write_diff(&mut out, &an, &changes, ctx.color)?,
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
    let packets = portolan_firewall::model::read_batch(&text, &batch.display().to_string())?;
    let an = Analysis::new(&[rs])?;
    let t0 = std::time::Instant::now();
    let verdicts: Vec<Option<Term>> = packets.iter().map(|p| an.verdict(0, p)).collect();
    let elapsed = t0.elapsed();
    let mut out = super::stdout();
    write_batch(&mut out, &an, &packets, &verdicts)?;
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
        let run = portolan_import::read_scan(std::path::Path::new(&name))?;
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
    let mut an = Analysis::outline(&[&rs]);
    let findings = lint::lint(&mut an, &lint::Options { listeners: listeners.clone() })?;
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
    let opts = portolan_verify::Options { samples: a.samples, seed: a.seed, ..Default::default() };
    let report = portolan_verify::run(&rs, &text, ipset_text.as_deref(), &opts)?;
    let mut out = super::stdout();
    match a.output {
        FwOutput::Json => records::json(&mut out, &verify_json(&rs.file, &report))?,
        FwOutput::Table => write_verify(&mut out, &rs.file, &report, ctx.color)?,
    }
    out.flush()?;
    Ok(if report.disagreements().next().is_none() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
