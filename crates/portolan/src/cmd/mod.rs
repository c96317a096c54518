//! One module per command: each turns parsed arguments into library calls.

mod audit;
mod check;
mod diff;
mod fleet;
mod fw;
mod home;
mod identify;
mod import;
mod ls;
mod policy;
mod port;
mod report;
mod scan;
mod snapshots;
mod watch;

use std::process::ExitCode;

use crate::cli::Command;

/// What every command needs to know about the terminal.
pub struct Context {
    /// Colour standard output.
    pub color: bool,
    /// `--quiet`: no notes on stderr (errors still appear).
    pub quiet: bool,
    /// Live progress on stderr: only on a terminal, never under `CI=true` or `--quiet`.
    pub progress: bool,
}

/// Runs a command; `Err` is reported by `main` with exit code 2.
pub fn run(command: Option<Command>, ctx: &Context) -> anyhow::Result<ExitCode> {
    let Some(command) = command else { return home::run(ctx) };
    match command {
        Command::Port(a) => port::run(a, ctx),
        Command::Import(a) => import::run(a, ctx),
        Command::Ls(a) => ls::run(a, ctx),
        Command::Scan(a) => scan::run(*a, ctx),
        Command::Check(a) => check::run(a, ctx),
        Command::Diff(a) => diff::run(a, ctx),
        Command::Snapshots(a) => snapshots::run(a, ctx),
        Command::Audit(a) => audit::run(*a, ctx),
        Command::Policy(a) => policy::run(a, ctx),
        Command::Identify(a) => identify::run(a, ctx),
        Command::Fw(a) => fw::run(a, ctx),
        Command::Watch(a) => watch::run(a, ctx),
        Command::Report(a) => report::run(*a, ctx),
        Command::Fleet(a) => fleet::run(a),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            let mut out = stdout();
            clap_complete::generate(shell, &mut crate::cli::Cli::command(), "portolan", &mut out);
            std::io::Write::flush(&mut out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => {
            use clap::CommandFactory as _;
            let cmd = crate::cli::Cli::command();
            match dir {
                Some(d) => clap_mangen::generate_to(cmd, &d)
                    .map_err(|e| anyhow::anyhow!("cannot write the pages into {}: {e}", d.display()))?,
                None => {
                    let mut out = stdout();
                    clap_mangen::Man::new(cmd).render(&mut out)?;
                    std::io::Write::flush(&mut out)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub use portolan_session::gather::{open_store, today};

impl Context {
    /// The console of a command: progress bar, notes and warnings on stderr.
    pub fn console(&self, verbose: u8) -> portolan_session::console::Console {
        portolan_session::console::Console::new(self.progress, self.quiet, verbose)
    }
}

/// Saves a snapshot and says where (unless `--quiet`).
pub fn save_snapshot(
    store: &mut portolan_store::Store,
    snapshot: &portolan_model::Snapshot,
    ctx: &Context,
) -> anyhow::Result<i64> {
    Ok(ctx.console(0).saved(store, snapshot)?)
}

/// Reads a policy, printing its warnings (each one, or with `summary` how many) or, when it
/// cannot be used, its problems (exit 2).
pub fn load_policy(
    path: &std::path::Path,
    includes_anywhere: bool,
    summary: bool,
    ctx: &Context,
) -> Result<portolan_policy::Policy, ExitCode> {
    match portolan_policy::Policy::load_with(path, &portolan_policy::LoadOptions { includes_anywhere }) {
        Ok(p) => {
            ctx.console(0).policy_warnings(&p, path, summary);
            Ok(p)
        }
        Err(e) => {
            report_problems(&e);
            Err(ExitCode::from(2))
        }
    }
}

/// Prints every problem of a policy that cannot be used, one per line.
pub fn report_problems(e: &portolan_policy::PolicyError) {
    for p in &e.problems {
        eprintln!("portolan: error: {}", portolan_output::escape::terminal(&p.to_string()));
    }
    if e.problems.iter().any(|p| p.message.contains("outside the policy's directory")) {
        eprintln!("portolan: hint: --include-anywhere follows includes outside the policy's directory");
    }
}

/// Standard output for a command's report: a reader that closes the pipe early does not
/// change the exit code ([`portolan_output::records::PipeSafe`]).
pub fn stdout() -> std::io::BufWriter<portolan_output::records::PipeSafe> {
    portolan_output::records::stdout()
}

/// Portolan's version, recorded in snapshots.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
