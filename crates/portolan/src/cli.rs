//! Command-line definitions (clap derive). Validation of values happens in the libraries.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use portolan_output::ColorChoice;

/// Chart a network's ports: what listens, what answers, what should be there.
#[derive(Debug, Parser)]
#[command(name = "portolan", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// When to use colour: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    pub color: Color,
    /// No progress or notes on stderr (progress is also off when CI=true or stderr is not a terminal).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// `--color` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Color {
    /// On a terminal unless NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl Color {
    pub fn choice(self) -> ColorChoice {
        match self {
            Color::Auto => ColorChoice::Auto,
            Color::Always => ColorChoice::Always,
            Color::Never => ColorChoice::Never,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Look up ports and services in the IANA registry and the security knowledge base.
    ///
    /// QUERY is a port (3389), a range (6000-6010), a service name (ssh), or either with a
    /// transport (53/udp, ssh/tcp).
    Port(PortArgs),
    /// Read an nmap XML file (from nmap, masscan or Portolan) and print it in any format.
    Import(ImportArgs),
    /// List this machine's listening sockets with their owners, scope and risk (like ss -tulpen).
    Ls(LsArgs),
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// TCP sockets (default: TCP and UDP).
    #[arg(short = 't', long)]
    pub tcp: bool,
    /// UDP sockets (default: TCP and UDP).
    #[arg(short = 'u', long)]
    pub udp: bool,
    /// Listening sockets only (the default).
    #[arg(short = 'l', long)]
    pub listening: bool,
    /// Listening sockets and connections.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Also TCP sockets that are bound but not listening (they hold a port; no other tool shows them).
    #[arg(long)]
    pub bound: bool,
    /// IPv4 only.
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// IPv6 only.
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
    /// Numeric output, as in ss (Portolan never resolves names; accepted for habit).
    #[arg(short = 'n', long)]
    pub numeric: bool,
    /// Show owning processes (the default; accepted for habit).
    #[arg(short = 'p', long, conflicts_with = "no_process")]
    pub processes: bool,
    /// Skip the owner scan (much faster on busy hosts).
    #[arg(long)]
    pub no_process: bool,
    /// Only these local ports (comma separated or repeated).
    #[arg(long, value_name = "PORT", value_delimiter = ',')]
    pub port: Vec<u16>,
    /// Only sockets held by a process whose name or command line contains NAME.
    #[arg(long, value_name = "NAME")]
    pub process: Option<String>,
    /// Every network namespace (named ones, containers, other processes'), not just this one.
    #[arg(long)]
    pub all_netns: bool,
    /// Read /proc/net instead of sock_diag (the fallback; for comparison).
    #[arg(long, hide = true)]
    pub procfs: bool,
    /// Worker threads for the owner scan.
    #[arg(long, hide = true)]
    pub threads: Option<usize>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = RecordFormat::Table)]
    pub format: RecordFormat,
}

/// Formats for records (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RecordFormat {
    /// Aligned table for people.
    Table,
    /// One JSON document.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// CSV with a header row.
    Csv,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    /// Ports, ranges or service names.
    #[arg(value_name = "QUERY", required_unless_present_any = ["search", "top"])]
    pub queries: Vec<String>,
    /// Search names, descriptions and notes for all of these words instead.
    #[arg(short, long, value_name = "TEXT", conflicts_with_all = ["queries", "top"])]
    pub search: Option<String>,
    /// List the N ports `--top-ports N` scans: nmap's ranking when nmap is installed,
    /// Portolan's own otherwise.
    #[arg(long, value_name = "N", conflicts_with = "queries")]
    pub top: Option<usize>,
    /// Transport for --top.
    #[arg(long, value_enum, default_value_t = TopTransport::Tcp, requires = "top")]
    pub transport: TopTransport,
    /// With --top: use Portolan's own ranking even when nmap's is installed.
    #[arg(long, requires = "top")]
    pub builtin_ranking: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = RecordFormat::Table)]
    pub format: RecordFormat,
}

/// Transports that have a ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TopTransport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// Formats for scan results on standard output (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScanFormat {
    /// nmap-like report with colour on a terminal.
    Table,
    /// nmap normal output.
    Normal,
    /// nmap grepable output.
    Grepable,
    /// nmap XML.
    Xml,
    /// One JSON document (docs/schema/scan-run.schema.json).
    Json,
    /// One host per line as JSON.
    Ndjson,
    /// One port per line as CSV.
    Csv,
}

/// nmap's output-file flags, shared by every command that produces scan results.
#[derive(Debug, Args, Default)]
pub struct OutputFiles {
    /// Write nmap normal output to FILE (-oN FILE).
    #[arg(long = "output-normal", value_name = "FILE", visible_alias = "oN")]
    pub normal: Option<PathBuf>,
    /// Write nmap XML to FILE (-oX FILE).
    #[arg(long = "output-xml", value_name = "FILE", visible_alias = "oX")]
    pub xml: Option<PathBuf>,
    /// Write grepable output to FILE (-oG FILE).
    #[arg(long = "output-grepable", value_name = "FILE", visible_alias = "oG")]
    pub grepable: Option<PathBuf>,
    /// Write JSON to FILE (-oJ FILE).
    #[arg(long = "output-json", value_name = "FILE", visible_alias = "oJ")]
    pub json: Option<PathBuf>,
    /// Write BASE.nmap, BASE.xml, BASE.gnmap and BASE.json (-oA BASE).
    #[arg(long = "output-all", value_name = "BASE", visible_alias = "oA")]
    pub all: Option<PathBuf>,
}

/// What to show, as in nmap.
#[derive(Debug, Args, Default)]
pub struct ShowArgs {
    /// Show only ports that may be open.
    #[arg(long)]
    pub open: bool,
    /// Show why each port is in its state.
    #[arg(long)]
    pub reason: bool,
    /// More detail (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The nmap XML file.
    pub file: PathBuf,
    /// Format on standard output.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ScanFormat::Table)]
    pub format: ScanFormat,
    #[command(flatten)]
    pub files: OutputFiles,
    #[command(flatten)]
    pub show: ShowArgs,
}

/// Turns nmap's `-oN FILE`, `-oXFILE`, ... into `--output-normal FILE`, ... so that the flags
/// nmap users type work unchanged. Everything else passes through.
pub fn rewrite_nmap_output_flags(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let map = [
        ("-oN", "--output-normal"),
        ("-oX", "--output-xml"),
        ("-oG", "--output-grepable"),
        ("-oJ", "--output-json"),
        ("-oA", "--output-all"),
    ];
    let mut out = Vec::new();
    let mut passthrough = false;
    for a in args {
        if passthrough {
            out.push(a);
            continue;
        }
        if a == "--" {
            passthrough = true;
            out.push(a);
            continue;
        }
        let s = a.to_string_lossy();
        if let Some((short, long)) = map.iter().find(|(s2, _)| s.starts_with(s2)) {
            let rest = &s[short.len()..];
            if rest.is_empty() {
                out.push(OsString::from(long));
            } else {
                out.push(OsString::from(format!("{long}={rest}")));
            }
            continue;
        }
        out.push(a);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nmap_output_flags_are_rewritten() {
        let v: Vec<String> = rewrite_nmap_output_flags(
            ["portolan", "import", "-oX", "a.xml", "-oNb.txt", "-o", "json", "--", "-oX"].map(OsString::from),
        )
        .into_iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
        assert_eq!(
            v,
            [
                "portolan",
                "import",
                "--output-xml",
                "a.xml",
                "--output-normal=b.txt",
                "-o",
                "json",
                "--",
                "-oX"
            ]
        );
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
