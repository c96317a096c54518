//! `portolan fw`: firewall rule sets — exposure, queries, diffs, lint and kernel verification.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use portolan_firewall::analysis::Analysis;
use portolan_firewall::model::Packet;
use portolan_output::firewall as render;
use portolan_output::records;
use portolan_session::firewall::{self as fw, Behind};

use super::Context;
use crate::cli::{FwAction, FwArgs, FwOutput};

pub fn run(args: FwArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let timing = std::env::var_os("PORTOLAN_TIMING").is_some();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let mut out = super::stdout();
    let code = match args.action {
        FwAction::Show(a) => {
            let t0 = std::time::Instant::now();
            let rs = fw::load(&a.file, &a.input.reading())?;
            let t1 = std::time::Instant::now();
            let shown = fw::show(&rs, &a.from, a.dst, &a.iif).map_err(with_flag)?;
            let t2 = std::time::Instant::now();
            let (analysis, exps) = (&shown.analysis, &shown.exposures);
            match a.output {
                FwOutput::Json => records::json(&mut out, &render::show_json(analysis, &rs, exps, a.open))?,
                FwOutput::Table => {
                    render::show_table(&mut out, analysis, &rs, exps, &shown.classes, a.open, ctx.color)?
                }
            }
            out.flush()?;
            if timing {
                let (parse, exposure, output) = (ms(t1 - t0), ms(t2 - t1), ms(t2.elapsed()));
                eprintln!("timing: parse {parse:.1} ms, exposure {exposure:.1} ms, output {output:.1} ms");
            }
            // the process ends here: freeing a large analysis piece by piece would only cost time
            std::mem::forget(shown);
            std::mem::forget(rs);
            ExitCode::SUCCESS
        }
        FwAction::Query(a) => {
            let rs = fw::load(&a.file, &a.input.reading())?;
            if let Some(file) = &a.batch {
                let b = fw::query_batch(&rs, file)?;
                render::write_batch(&mut out, &b.analysis, &b.packets, &b.verdicts)?;
                out.flush()?;
                if timing {
                    let n = b.packets.len();
                    let rate = n as f64 / b.elapsed.as_secs_f64().max(1e-9);
                    eprintln!("timing: {n} queries in {:.3} ms ({rate:.0} queries/s)", ms(b.elapsed));
                }
                return Ok(ExitCode::SUCCESS);
            }
            let (Some(src), Some(dst)) = (a.src, a.dst) else {
                bail!("--src and --dst are needed (or --batch FILE)")
            };
            if src.is_ipv6() != dst.is_ipv6() {
                bail!("--src and --dst must both be IPv4 or both IPv6");
            }
            let (iif, oif) = (a.iif.clone(), a.oif.clone());
            let p = Packet { src, dst, proto: a.proto, dport: a.dport, sport: a.sport, iif, oif };
            let (analysis, answers) = fw::query(&rs, &p, a.forward)?;
            match a.output {
                FwOutput::Json => records::json(&mut out, &render::query_json(&analysis, &answers))?,
                FwOutput::Table => {
                    render::write_query(&mut out, &analysis, &answers, &p, a.forward, ctx.color)?
                }
            }
            ExitCode::SUCCESS
        }
        FwAction::Diff(a) => {
            let old = fw::load(&a.old, &a.input.reading())?;
            let new = fw::load(&a.new, &a.input.reading())?;
            let mut analysis = Analysis::new(&[&old, &new])?;
            let changes = analysis.diff(10_000)?;
            match a.output {
                FwOutput::Json => records::json(&mut out, &render::diff_json(&analysis, &changes))?,
                FwOutput::Table => render::write_diff(&mut out, &analysis, &changes, ctx.color)?,
            }
            ExitCode::from(u8::from(!changes.is_empty()))
        }
        FwAction::Lint(a) => {
            let rs = fw::load(&a.file, &a.input.reading())?;
            let behind = match (&a.xml, a.listeners) {
                (_, true) => Behind::Listeners,
                (Some(x), false) => Behind::Scan(x),
                (None, false) => Behind::Nothing,
            };
            let report = fw::lint(&rs, behind, super::VERSION)?;
            portolan_output::audit::write(&mut out, a.output, &report, true, ctx.color)?;
            ExitCode::from(u8::from(a.fail_on.fails_any(&report.findings)))
        }
        FwAction::Verify(a) => {
            let rs = fw::load(&a.file, &a.input.reading())?;
            let opts = portolan_verify::Options { samples: a.samples, seed: a.seed, ..Default::default() };
            let report = fw::verify(&rs, &a.file, a.input.ipset.as_deref(), &opts)?;
            match a.output {
                FwOutput::Json => records::json(&mut out, &render::verify_json(&rs.file, &report))?,
                FwOutput::Table => render::write_verify(&mut out, &rs.file, &report, ctx.color)?,
            }
            ExitCode::from(u8::from(report.disagreements().next().is_some()))
        }
    };
    out.flush().context("writing to standard output")?;
    Ok(code)
}

/// `fw show`'s errors in the words of its flags.
fn with_flag(e: fw::FirewallError) -> anyhow::Error {
    match e {
        fw::FirewallError::TooManyClasses { given, max } => {
            anyhow::anyhow!(
                "--from is given {given} times; at most {max} source classes can be shown at once"
            )
        }
        fw::FirewallError::BadClass { name, source } => anyhow::anyhow!("--from {name}: {source}"),
        e => e.into(),
    }
}
