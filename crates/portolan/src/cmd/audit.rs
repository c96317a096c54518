use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use jiff::Timestamp;
use portolan_model::{AuditReport, AuditSummary, FindingTarget, Snapshot, Source};
use portolan_output::audit as render;
use portolan_output::escape::terminal;
use portolan_output::records;
use portolan_policy::{AuditOptions, Observations, Policy, PolicyError};
use portolan_store::SnapshotRef;

use super::Context;
use crate::cli::{AuditArgs, AuditFormat, ObserveArgs};

/// Observations to judge, what they came from, and the snapshot that records them.
pub struct Gathered {
    pub obs: Observations,
    pub source: String,
    pub snapshot: Snapshot,
}

/// This machine's listeners, a scan, an nmap XML file or a snapshot, as the flags say.
pub fn gather(from: &ObserveArgs, ctx: &Context) -> anyhow::Result<Gathered> {
    let spec = &from.scan;
    let scanning = !spec.targets.is_empty() || spec.input_list.is_some();
    let scan_flags = spec.ports.is_some()
        || spec.top_ports.is_some()
        || spec.fast
        || spec.exclude.is_some()
        || spec.excludefile.is_some()
        || spec.exclude_ports.is_some();
    if scanning && (from.xml.is_some() || from.snapshot.is_some()) {
        bail!("scan targets and --xml/--snapshot are two sources; give one");
    }
    if !scanning && scan_flags {
        bail!("scan options were given without targets: name the hosts to scan (or drop the options)");
    }
    let machine = portolan_local::hostname();
    if let Some(x) = &from.xml {
        let name = x.to_string_lossy().into_owned();
        let run = super::diff::read_file(&name)?;
        return Ok(Gathered {
            obs: Observations::from_run(&run),
            source: format!("nmap XML {name}"),
            snapshot: Snapshot::of_scan(Source::Import, run, &machine, super::VERSION),
        });
    }
    if let Some(r) = &from.snapshot {
        let reference: SnapshotRef = r.parse()?;
        let mut store = super::open_store(from.db.as_deref())?;
        let id = store.resolve(&reference)?;
        let snap = store.load(id)?;
        let obs = match (&snap.scan, &snap.local) {
            (Some(run), _) => Observations::from_run(run),
            (None, Some(inv)) => Observations::from_local(inv),
            (None, None) => bail!("snapshot {id} holds no observations"),
        };
        return Ok(Gathered { obs, source: format!("snapshot {id} ({})", snap.source), snapshot: snap });
    }
    if scanning {
        let run = super::scan::observe(spec, ctx)?;
        let mut what: Vec<String> = spec.targets.clone();
        if let Some(f) = &spec.input_list {
            what.push(format!("-iL {}", f.display()));
        }
        return Ok(Gathered {
            obs: Observations::from_run(&run),
            source: format!("scan of {}", what.join(" ")),
            snapshot: Snapshot::of_scan(Source::Scan, run, &machine, super::VERSION),
        });
    }
    let inv = portolan_local::inventory(&portolan_local::Options::default())?;
    if !ctx.quiet {
        for n in &inv.notes {
            eprintln!("portolan: note: {}", terminal(n));
        }
    }
    Ok(Gathered {
        obs: Observations::from_local(&inv),
        source: format!("local listeners of {}", inv.machine),
        snapshot: Snapshot::of_local(inv, super::VERSION),
    })
}

/// Prints every problem of a policy that cannot be used, one per line.
pub fn report_problems(e: &PolicyError) {
    for p in &e.problems {
        eprintln!("portolan: error: {}", terminal(&p.to_string()));
    }
    if e.problems.iter().any(|p| p.message.contains("outside the policy's directory")) {
        eprintln!("portolan: hint: --include-anywhere follows includes outside the policy's directory");
    }
}

/// Reads a policy, printing its problems (exit 2), and its warnings: each one, or with
/// `summary` just how many.
pub fn load_policy(
    path: &std::path::Path,
    includes_anywhere: bool,
    summary: bool,
    ctx: &Context,
) -> Result<Policy, ExitCode> {
    match Policy::load_with(path, &portolan_policy::LoadOptions { includes_anywhere }) {
        Ok(p) => {
            if ctx.quiet || p.warnings.is_empty() {
            } else if summary {
                eprintln!(
                    "portolan: warning: {} owner or purpose field{} of the policy {} still TODO (portolan policy check {} lists them)",
                    p.warnings.len(),
                    if p.warnings.len() == 1 { "" } else { "s" },
                    if p.warnings.len() == 1 { "is" } else { "are" },
                    terminal(&path.display().to_string())
                );
            } else {
                for w in &p.warnings {
                    eprintln!("portolan: warning: {}", terminal(&w.to_string()));
                }
            }
            Ok(p)
        }
        Err(e) => {
            report_problems(&e);
            Err(ExitCode::from(2))
        }
    }
}

pub fn today() -> jiff::civil::Date {
    Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::system()).date()
}

pub fn run(args: AuditArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let threshold = args.fail_on.0;
    let policy = match load_policy(&args.policy, args.include_anywhere, true, ctx) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    // a bad --db fails before anything is observed
    let mut store = if args.save { Some(super::open_store(args.from.db.as_deref())?) } else { None };
    let g = gather(&args.from, ctx)?;
    let findings = portolan_policy::audit(&policy, &g.obs, &AuditOptions { today: today() });
    let report = AuditReport {
        format_version: portolan_model::FORMAT_VERSION,
        taken_at: Timestamp::now(),
        machine: portolan_local::hostname(),
        tool_version: super::VERSION.to_string(),
        policy: policy.files.iter().map(|f| f.display().to_string()).collect(),
        source: g.source,
        hosts: g.obs.hosts.len() as u32,
        observed: g
            .obs
            .ports
            .iter()
            .map(|p| FindingTarget {
                address: Some(p.address),
                port: Some(p.port),
                transport: Some(p.transport),
            })
            .collect(),
        summary: AuditSummary::of(&findings),
        findings,
    };
    let mut out = super::stdout();
    match args.format {
        AuditFormat::Table => render::write_human(&mut out, &report, ctx.color)?,
        AuditFormat::Json => records::json(&mut out, &report)?,
        AuditFormat::Ndjson => records::ndjson(&mut out, &report.findings)?,
        AuditFormat::Csv => records::csv(&mut out, &render::CSV_HEADER, render::csv_rows(&report))?,
        AuditFormat::Sarif => render::sarif(&mut out, &report)?,
        AuditFormat::Junit => render::junit(&mut out, &report)?,
    }
    out.flush().context("writing to standard output")?;
    drop(out);
    if let Some(store) = store.as_mut() {
        let mut snap = g.snapshot;
        snap.id = None;
        snap.source = Source::Audit;
        snap.findings = report.findings.clone();
        super::save_snapshot(store, &snap, ctx)?;
    }
    let failing = threshold.is_some_and(|t| report.findings.iter().any(|f| f.severity >= t));
    Ok(if failing { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
