use std::process::ExitCode;

use anyhow::bail;
use portolan_model::{Snapshot, Source};
use portolan_scan::resume::ResumeFile;
use portolan_session::Resumed;

use super::Context;
use crate::cli::ScanArgs;
use crate::outputs;
use crate::scanning::execute_resumable;

pub fn run(args: ScanArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    // --resume FILE: the interrupted run's own arguments, and what it finished
    let (args, resumed, argv) = match &args.resume {
        Some(path) => {
            let sp = &args.spec;
            if !sp.targets.is_empty()
                || sp.input_list.is_some()
                || sp.ports.is_some()
                || sp.scan_type.is_some()
                || sp.udp
            {
                bail!("--resume takes no targets, ports or scan type: they come from the resume file");
            }
            let file = ResumeFile::read(path)?;
            let mut line = vec![std::ffi::OsString::from("portolan")];
            line.extend(file.args.iter().map(std::ffi::OsString::from));
            let cli = <crate::cli::Cli as clap::Parser>::try_parse_from(
                crate::cli::rewrite_nmap_output_flags(line),
            )
            .map_err(|e| anyhow::anyhow!("{}: its arguments no longer parse: {e}", path.display()))?;
            let Some(crate::cli::Command::Scan(mut original)) = cli.command else {
                bail!("{}: not the resume file of a scan", path.display());
            };
            original.resume_file = args.resume_file.clone().or(Some(path.clone()));
            (*original, Resumed { done: file.done, hosts: file.hosts }, file.args)
        }
        None => (args, Resumed::default(), std::env::args().skip(1).collect()),
    };
    // an explicit -sS without the privilege fails before any output file is created
    if args.spec.scan_type == Some(crate::cli::ScanType::Syn)
        && !portolan_scan::syn::privileged(false)
        && !portolan_scan::syn::privileged(true)
    {
        return Err(portolan_scan::Error::NeedsRawSockets.into());
    }
    // a bad --db, or a shard that does not belong to its run, fails before any packet is sent
    let mut store = if args.store.save { Some(super::open_store(args.store.db.as_deref())?) } else { None };
    let shard = match (&args.run, store.as_mut()) {
        (Some(name), Some(st)) => Some(run_shard(name, &args.spec, st)?),
        _ => None,
    };
    let mut sinks = outputs::open(args.format, &args.files, &args.show, false, ctx)?;
    // the tasks of a job array share a directory: a shard's resume file is its own
    let resume_path = args.resume_file.clone().unwrap_or_else(|| match &shard {
        Some((spec, index)) => format!("portolan.resume.{}.{index}.json", spec.name).into(),
        None => "portolan.resume.json".into(),
    });
    let result = execute_resumable(&args.spec, &mut sinks, store.is_some(), args.show.verbose, resumed, ctx);
    drop(sinks);
    // a shard that fails or is stopped (scancel sends SIGTERM) is recorded as failed in its run
    let failure = match &result {
        Err(e) => Some(format!("{e:#}")),
        Ok((_, Some(code), _)) => Some(format!("stopped by a signal (exit {code})")),
        Ok(_) => None,
    };
    if let (Some(why), Some((spec, index)), Some(st)) = (failure, &shard, store.as_mut())
        && let Err(e) = st.mark_failed(spec, *index, &why)
        && !ctx.quiet
    {
        eprintln!(
            "portolan: warning: could not record the failed shard: {}",
            portolan_output::escape::terminal(&e.to_string())
        );
    }
    let (run, interrupted, left) = result?;
    if interrupted.is_some() {
        let file = ResumeFile::new(argv, left.done, left.hosts);
        file.write(&resume_path)?;
        if !ctx.quiet {
            eprintln!(
                "portolan: interrupted; {} hosts finished. Continue with: portolan scan --resume {}",
                file.done.len(),
                resume_path.display()
            );
        }
    }
    if let Some(store) = store.as_mut() {
        let snap = Snapshot::of_scan(Source::Scan, run, &portolan_local::hostname(), super::VERSION);
        match &shard {
            // a stopped shard is not done: it stays failed, to be run again
            Some(_) if interrupted.is_some() => {}
            Some((spec, index)) => {
                let id = store.save_shard(&snap, spec, *index)?;
                if !ctx.quiet {
                    eprintln!(
                        "portolan: saved shard {index}/{} of run {} (snapshot {id}) in {}",
                        spec.shards,
                        spec.name,
                        portolan_output::escape::terminal(store.location())
                    );
                }
            }
            None => {
                super::save_snapshot(store, &snap, ctx)?;
            }
        }
    }
    Ok(interrupted.map_or(ExitCode::SUCCESS, ExitCode::from))
}

/// The run a shard belongs to and its index, checked against the run as saved so far: a
/// shard with other targets, ports, seed or shard count is refused before it scans.
fn run_shard(
    name: &str,
    spec: &crate::cli::ScanSpec,
    store: &mut portolan_store::Store,
) -> anyhow::Result<(portolan_store::RunSpec, u32)> {
    let (index, count) = spec.shard.map_or((1, 1), |s| (s.index, s.count));
    let (Ok(index), Ok(shards)) = (u32::try_from(index), u32::try_from(count)) else {
        bail!("--shard {index}/{count}: at most 4294967295 shards");
    };
    let mut shared = vec![format!("targets={}", spec.targets.join(","))];
    let opt = |k: &str, v: Option<String>| v.map(|v| format!("{k}={v}"));
    shared.extend(
        [
            opt("input-list", spec.input_list.as_ref().map(|p| p.display().to_string())),
            opt("exclude", spec.exclude.clone()),
            opt("excludefile", spec.excludefile.as_ref().map(|p| p.display().to_string())),
            opt("ports", spec.ports.clone()),
            opt("top-ports", spec.top_ports.map(|n| n.to_string())),
            spec.fast.then(|| "fast".to_string()),
            opt("exclude-ports", spec.exclude_ports.clone()),
            opt("scan-type", spec.scan_type.map(|t| format!("{t:?}").to_lowercase())),
            spec.udp.then(|| "udp".to_string()),
            spec.ping_only.then(|| "ping-only".to_string()),
            spec.skip_discovery.then(|| "skip-discovery".to_string()),
            spec.ipv6.then(|| "ipv6".to_string()),
        ]
        .into_iter()
        .flatten(),
    );
    let run = portolan_store::RunSpec {
        name: name.to_string(),
        shards,
        seed: spec.seed.unwrap_or(0),
        spec: shared.join(" "),
    };
    store.check_shard(&run, index)?;
    Ok((run, index))
}
