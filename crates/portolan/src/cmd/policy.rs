use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use portolan_output::escape::terminal;
use portolan_policy::{InitOptions, Policy};

use super::Context;
use super::{load_policy, report_problems, today};
use crate::cli::{PolicyAction, PolicyArgs, PolicyCheckArgs, PolicyInitArgs};

pub fn run(args: PolicyArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    match args.action {
        PolicyAction::Check(a) => check(a, ctx),
        PolicyAction::Init(a) => init(*a, ctx),
    }
}

fn check(args: PolicyCheckArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let policy = match load_policy(&args.file, args.include_anywhere, false, ctx) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let base = match &args.base {
        Some(b) => match Policy::load_with(
            b,
            &portolan_policy::LoadOptions { includes_anywhere: args.include_anywhere },
        ) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!(
                    "portolan: error: the base policy {} cannot be read:",
                    terminal(&b.display().to_string())
                );
                report_problems(&e);
                return Ok(ExitCode::from(2));
            }
        },
        None => None,
    };
    let past = policy.past_dates(base.as_ref(), today());
    if !past.is_empty() {
        report_problems(&portolan_policy::PolicyError { problems: past });
        return Ok(ExitCode::from(2));
    }
    println!(
        "{}: valid: {} entr{}, {} group{}, {} file{}",
        terminal(&args.file.display().to_string()),
        policy.entries.len(),
        if policy.entries.len() == 1 { "y" } else { "ies" },
        policy.groups.len(),
        if policy.groups.len() == 1 { "" } else { "s" },
        policy.files.len(),
        if policy.files.len() == 1 { "" } else { "s" },
    );
    Ok(ExitCode::SUCCESS)
}

fn init(args: PolicyInitArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.write
        && path.exists()
        && !args.force
    {
        bail!("{} exists; pass --force to replace it", path.display());
    }
    let g = portolan_session::gather::gather(&args.from.sources()?, super::VERSION, &mut ctx.console(0))?;
    let text = portolan_policy::init(&g.obs, &InitOptions { today: today(), source: g.source });
    // what init writes must read back: a policy that fails its own check is a bug, not output
    if let Err(e) = Policy::parse_str("(generated policy)", &text) {
        bail!("the generated policy does not validate (a bug): {e}");
    }
    match &args.write {
        None => {
            let mut out = super::stdout();
            out.write_all(text.as_bytes()).context("writing to standard output")?;
            out.flush().context("writing to standard output")?;
        }
        Some(path) => {
            // never a half-written policy
            portolan_model::atomic::write(path, text.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            if !ctx.quiet {
                eprintln!(
                    "portolan: wrote {} ({} entr{}); fill in each owner and purpose",
                    terminal(&path.display().to_string()),
                    g.obs.ports.len(),
                    if g.obs.ports.len() == 1 { "y" } else { "ies" }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
