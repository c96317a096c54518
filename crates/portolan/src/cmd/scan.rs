use std::process::ExitCode;

use anyhow::bail;
use portolan_scan::resume::ResumeFile;
use portolan_session::Resumed;
use portolan_session::scan::{Keeping, resume_path};

use super::Context;
use crate::cli::{Cli, Command, ScanArgs, ScanType};

pub fn run(args: ScanArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    // --resume FILE: the interrupted run's own arguments, and what it finished
    let (args, resumed, argv) = match &args.resume {
        Some(path) => {
            let sp = &args.spec;
            if sp.targets.is_empty()
                && sp.input_list.is_none()
                && sp.ports.is_none()
                && sp.scan_type.is_none()
                && !sp.udp
            {
            } else {
                bail!("--resume takes no targets, ports or scan type: they come from the resume file");
            }
            let file = ResumeFile::read(path)?;
            let line =
                std::iter::once("portolan".into()).chain(file.args.iter().map(std::ffi::OsString::from));
            let cli = <Cli as clap::Parser>::try_parse_from(crate::cli::rewrite_nmap_output_flags(line))
                .map_err(|e| anyhow::anyhow!("{}: its arguments no longer parse: {e}", path.display()))?;
            let Some(Command::Scan(mut original)) = cli.command else {
                bail!("{}: not the resume file of a scan", path.display());
            };
            original.resume_file = args.resume_file.clone().or(Some(path.clone()));
            (*original, Resumed { done: file.done, hosts: file.hosts }, file.args)
        }
        None => (args, Resumed::default(), std::env::args().skip(1).collect()),
    };
    // an explicit -sS without the privilege fails before any output file is created
    if args.spec.scan_type == Some(ScanType::Syn)
        && !portolan_scan::syn::privileged(false)
        && !portolan_scan::syn::privileged(true)
    {
        return Err(portolan_scan::Error::NeedsRawSockets.into());
    }
    let request = args.spec.request()?;
    // a bad --db, or a shard that does not belong to its run, fails before any packet is sent
    let mut store = if args.store.save { Some(super::open_store(args.store.db.as_deref())?) } else { None };
    let run = match (&args.run, store.as_mut()) {
        (Some(name), Some(st)) => {
            let (spec, index) = request.run_spec(name)?;
            st.check_shard(&spec, index)?;
            Some((spec, index))
        }
        _ => None,
    };
    let sinks =
        portolan_output::scan::open(args.format, &args.files.files(), args.show.options(false), ctx.color)?;
    let keeping = Keeping {
        store: store.as_mut(),
        resume_path: args.resume_file.clone().unwrap_or_else(|| resume_path(run.as_ref())),
        run,
        argv,
        version: super::VERSION,
    };
    let mut console = ctx.console(args.show.verbose);
    let interrupted = portolan_session::scan::scan(&request, sinks, resumed, keeping, &mut console)?;
    Ok(interrupted.map_or(ExitCode::SUCCESS, ExitCode::from))
}
