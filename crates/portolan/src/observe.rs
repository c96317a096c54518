//! Where `audit` and `policy init` get what they judge: this machine's listeners, a scan, an
//! nmap XML file or a snapshot; and reading the policy, its problems and warnings on stderr.

use std::process::ExitCode;

use anyhow::bail;
use jiff::Timestamp;
use portolan_model::{Snapshot, Source};
use portolan_output::escape::terminal;
use portolan_policy::{Observations, Policy, PolicyError};
use portolan_store::SnapshotRef;

use crate::cli::ObserveArgs;
use crate::cmd::Context;

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
        let run = portolan_import::read_scan(std::path::Path::new(&name))?;
        return Ok(Gathered {
            obs: Observations::from_run(&run),
            source: format!("nmap XML {name}"),
            snapshot: Snapshot::of_scan(Source::Import, run, &machine, crate::cmd::VERSION),
        });
    }
    if let Some(r) = &from.snapshot {
        let reference: SnapshotRef = r.parse()?;
        let mut store = crate::cmd::open_store(from.db.as_deref())?;
        let snap = store.load_ref(&reference)?;
        let id = snap.id.map_or_else(|| reference.to_string(), |i| i.to_string());
        let obs = match (&snap.scan, &snap.local) {
            (Some(run), _) => Observations::from_run(run),
            (None, Some(inv)) => Observations::from_local(inv),
            (None, None) => bail!("snapshot {id} holds no observations"),
        };
        return Ok(Gathered { obs, source: format!("snapshot {id} ({})", snap.source), snapshot: snap });
    }
    if scanning {
        let run = crate::scanning::observe(spec, ctx)?;
        let mut what: Vec<String> = spec.targets.clone();
        if let Some(f) = &spec.input_list {
            what.push(format!("-iL {}", f.display()));
        }
        return Ok(Gathered {
            obs: Observations::from_run(&run),
            source: format!("scan of {}", what.join(" ")),
            snapshot: Snapshot::of_scan(Source::Scan, run, &machine, crate::cmd::VERSION),
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
        snapshot: Snapshot::of_local(inv, crate::cmd::VERSION),
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
