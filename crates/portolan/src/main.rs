//! The `portolan` command: parses arguments and hands the work to the library crates.

mod cli;
mod cmd;

use std::io::{self, IsTerminal};
use std::process::ExitCode;

use clap::Parser;
use portolan_firewall::ErrorKind as FwKind;

fn main() -> ExitCode {
    let args = cli::rewrite_nmap_output_flags(std::env::args_os());
    if let Some((flag, what, instead)) = cli::unsupported_flag(&args) {
        eprintln!("portolan: error: {flag} ({what}) is not available in this version; {instead}");
        return ExitCode::from(2);
    }
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            // a bad value is one line: the flag, what was given, what is accepted
            if matches!(e.kind(), ErrorKind::ValueValidation | ErrorKind::InvalidValue) {
                let text = e.render().to_string();
                let first = text.lines().next().unwrap_or_default();
                eprintln!("portolan: error: {}", first.trim_start_matches("error: ").trim_end());
                return ExitCode::from(2);
            }
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
            let text = firewall_message(&err).unwrap_or_else(|| message(&err));
            eprintln!("portolan: error: {}{}", portolan_output::escape::terminal(&text), hint(&err));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, each cause once.
fn message(err: &anyhow::Error) -> String {
    portolan_session::error_chain(err.as_ref())
}

/// What to do, in the flags of this command line: the libraries' errors say what is wrong
/// and never name a flag.
fn hint(err: &anyhow::Error) -> &'static str {
    use portolan_session::gather::GatherError;
    use portolan_session::scan::RequestError as R;
    for cause in err.chain() {
        match cause.downcast_ref::<GatherError>() {
            Some(GatherError::TwoSources) => return " (targets, --xml, --snapshot)",
            Some(GatherError::OptionsWithoutTargets) => return " (-p, --top-ports, -F, --exclude...)",
            _ => {}
        }
        match cause.downcast_ref::<R>() {
            Some(R::RttOrder) => return " (--min-rtt-timeout is above --max-rtt-timeout)",
            Some(R::RateOrder { .. }) => return " (--min-rate, --max-rate)",
            Some(R::ShardWithoutSeed) => return ": add --seed N to every shard",
            Some(R::V4InV6Scan(_)) => return ": leave out -6, or give IPv6 targets",
            Some(R::NoTargets) => return " (-iL FILE)",
            Some(R::UdpPortsWithoutUdp) => return ": add -sU",
            Some(R::TcpPortsWithoutTcp) => return ": add -sS or -sT to -sU",
            _ => {}
        }
        if let Some(portolan_scan::Error::TooManyHosts { .. }) = cause.downcast_ref() {
            return ", or add --yes to scan that many";
        }
        if let Some(portolan_session::watching::WatchRunError::NoInventory(_)) = cause.downcast_ref() {
            return " (portolan ls --save)";
        }
        if let Some(portolan_session::report::ReportError::Empty(_)) = cause.downcast_ref() {
            return "; save one first (portolan scan --save, portolan ls --save) or name a scan file";
        }
        match cause.downcast_ref() {
            Some(portolan_store::Error::Open { .. }) => return " (choose another with --db PATH)",
            Some(portolan_store::Error::TooNew { .. }) => return " (--db PATH)",
            Some(portolan_store::Error::NotFound { hint, .. }) if hint.contains("no runs") => {
                return " (portolan scan --shard I/N --seed S --save --run NAME)";
            }
            Some(portolan_store::Error::NotFound { hint, .. }) if hint.contains("no snapshots") => {
                return " (portolan ls --save, scan --save, import --save)";
            }
            _ => {}
        }
        match cause.downcast_ref::<portolan_firewall::Error>().map(|e| (e, e.kind())) {
            Some((_, Some(FwKind::Set(portolan_firewall::ipset::SetError::Undefined(_))))) => {
                return "; pass it with --ipset FILE";
            }
            Some((portolan_firewall::Error::UnknownFormat { .. }, _)) => {
                return "; name the format with --format iptables|nft|aws";
            }
            _ => {}
        }
    }
    ""
}

/// A firewall error whose advice goes inside the message, before the token at fault.
fn firewall_message(err: &anyhow::Error) -> Option<String> {
    let e = err.chain().find_map(|c| c.downcast_ref::<portolan_firewall::Error>())?;
    match e.kind() {
        Some(FwKind::FamilyMismatch { address_v6, .. }) => {
            let (n, tool) = if *address_v6 { ("6", "ip6tables-save") } else { ("4", "iptables-save") };
            let advice = format!(" (use --family {n} if the file is {tool} output)");
            Some(message(err).replace(&e.to_string(), &e.display_with_advice(&advice)))
        }
        _ => None,
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe))
}
