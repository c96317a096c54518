//! The `portolan` command: parses arguments and hands the work to the library crates.

mod cli;
mod cmd;
mod outputs;

use std::io::{self, IsTerminal};
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::rewrite_nmap_output_flags(std::env::args_os());
    if let Some((flag, what)) =
        cli::UNSUPPORTED_SCAN_TYPES.iter().find(|(f, _)| args.iter().any(|a| a.to_str() == Some(f)))
    {
        eprintln!(
            "portolan: error: {flag} ({what}) is not available in this version; use -sT (TCP connect scan)"
        );
        return ExitCode::from(2);
    }
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let ctx = cmd::Context {
        color: cli.color.choice().enabled(io::stdout().is_terminal()),
        quiet: cli.quiet,
        progress: !cli.quiet
            && io::stderr().is_terminal()
            && !std::env::var_os("CI").is_some_and(|v| v == "true" || v == "1"),
    };
    match cmd::run(cli.command, &ctx) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("portolan: error: {}", portolan_output::escape::terminal(&format!("{err:#}")));
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe))
}
