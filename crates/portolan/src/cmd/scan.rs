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
    let mut sinks = outputs::open(args.format, &args.files, &args.show, false, ctx)?;
    // a bad --db fails before any packet is sent
    let mut store = if args.store.save { Some(super::open_store(args.store.db.as_deref())?) } else { None };
    let resume_path = args.resume_file.clone().unwrap_or_else(|| "portolan.resume.json".into());
    let (run, interrupted, left) =
        execute_resumable(&args.spec, &mut sinks, store.is_some(), args.show.verbose, resumed, ctx)?;
    drop(sinks);
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
        super::save_snapshot(store, &snap, ctx)?;
    }
    Ok(interrupted.map_or(ExitCode::SUCCESS, ExitCode::from))
}
