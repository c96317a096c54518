//! One module per command: each turns parsed arguments into library calls.

mod check;
mod diff;
mod import;
mod ls;
mod port;
mod scan;

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
pub fn run(command: Command, ctx: &Context) -> anyhow::Result<ExitCode> {
    match command {
        Command::Port(a) => port::run(a, ctx),
        Command::Import(a) => import::run(a, ctx),
        Command::Ls(a) => ls::run(a, ctx),
        Command::Scan(a) => scan::run(*a, ctx),
        Command::Check(a) => check::run(a, ctx),
        Command::Diff(a) => diff::run(a, ctx),
    }
}
