//! Command-line definitions (clap derive). Every value is parsed to its type and range here
//! ([`crate::values`]); what the values mean is decided in the libraries.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use portolan_output::ColorChoice;
use portolan_output::audit::Format as AuditFormat;
use portolan_output::scan::Format as ScanFormat;
use portolan_scan::shard::Shard;
use portolan_store::SnapshotRef;

use portolan_model::values::{self, FailOn, ValueError};

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
    /// Without a command: this machine in one screen (listeners by reach, the firewall's and
    /// the policy's verdict on each, findings, changes, what to run next). It sends nothing.
    #[command(subcommand)]
    pub command: Option<Command>,
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
    /// Scan hosts' TCP ports, SYN (-sS, as root) or connect() (-sT): targets, ports and timing
    /// as in nmap; -sV identifies the service on every open port.
    Scan(Box<ScanArgs>),
    /// Is HOST:PORT open? The nc -vz answer with reason, latency, service and first bytes.
    Check(CheckArgs),
    /// What changed between two scans or snapshots (as nmap's ndiff): hosts up/down, ports
    /// opened/closed, services and versions, owners of local listeners. Exit 0: no change; 1:
    /// changes.
    Diff(DiffArgs),
    /// List, show, delete and prune the snapshots saved with --save.
    Snapshots(SnapshotsArgs),
    /// Judge what is observed against an approved-port policy: this machine's listeners (the
    /// default), a live scan (TARGETs and scan flags), an nmap XML file or a snapshot. Exit 0:
    /// clean; 1: findings at or above --fail-on; 2: error.
    Audit(Box<AuditArgs>),
    /// Write a starting policy from what is observed now (init), or validate one (check).
    Policy(PolicyArgs),
    /// Which application really answers on HOST:PORT: service, product and version (banner,
    /// probes, TLS inspection), and whether it is the one the port promises.
    Identify(IdentifyArgs),
    /// Firewall rule sets (iptables-save, nft -j list ruleset, AWS security groups): exact
    /// exposure (show), one packet (query), changes (diff), problems (lint), and proof on a
    /// kernel firewall in a network namespace (verify).
    Fw(FwArgs),
    /// Find port scans, sweeps, slow and distributed scans and brute force in captures (pcap,
    /// pcapng), Zeek conn.log, firewall LOG lines and sshd's log, naming the scan type and the
    /// tool. Exit 0: nothing at or above --fail-on; 1: detections; 2: unreadable input.
    Watch(WatchArgs),
    /// One self-contained HTML page charting hosts and ports, this machine's listeners,
    /// findings, the firewall's exposure, drift between saved scans and attacks in logs: from
    /// the snapshot store (the newest scan and inventory) or from files. It loads nothing
    /// from the network and opens anywhere, offline.
    Report(Box<ReportArgs>),
    /// A sharded scan as a job for the scheduler that runs the fleet: a Slurm job array
    /// (slurm) whose task i scans shard i+1 of N into one run of the shared database.
    Fleet(FleetArgs),
    /// Shell completions on standard output: `portolan completions bash >
    /// /etc/bash_completion.d/portolan` (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The manual page (roff) on standard output (`portolan man | man -l -`), or with --dir
    /// one page per command (portolan.1, portolan-scan.1, ...) into a directory.
    Man {
        /// Write every command's page into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct FleetArgs {
    #[command(subcommand)]
    pub scheduler: FleetScheduler,
}

#[derive(Debug, Subcommand)]
pub enum FleetScheduler {
    /// Print an sbatch script: a job array of --shards tasks, task i running `portolan scan
    /// SCAN-ARGS --shard i+1/N --seed S --save --run NAME`, the database URL from the task's
    /// environment (or a file), never written into the script.
    Slurm(FleetSlurmArgs),
    /// Print (YAML) a Kubernetes Indexed Job: completions N, the pod of index i running shard
    /// i+1 of N, the database URL from a Secret, NET_RAW only for a SYN scan (else a non-root
    /// user with no capabilities), a retry budget per index.
    K8s(FleetK8sArgs),
}

#[derive(Debug, Args)]
pub struct FleetK8sArgs {
    #[command(flatten)]
    pub common: FleetCommon,
    /// The container image with portolan (and /bin/sh) in it.
    #[arg(long, value_name = "IMAGE", default_value = "portolan:latest")]
    pub image: String,
    /// The Secret that holds the database URL.
    #[arg(long, value_name = "NAME", default_value = "portolan-db")]
    pub secret: String,
    /// The key of the Secret that holds it.
    #[arg(long, value_name = "KEY", default_value = "url")]
    pub secret_key: String,
    /// Pods at once (default: every shard).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub parallelism: Option<i32>,
    /// Retries of a failed index (backoffLimitPerIndex).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(i32).range(0..))]
    pub retries: i32,
    /// Namespace of the Job.
    #[arg(long, value_name = "NAME")]
    pub namespace: Option<String>,
    /// CPU request per pod.
    #[arg(long, value_name = "CPU", default_value = "250m")]
    pub cpu: String,
    /// Memory request and limit per pod.
    #[arg(long, value_name = "BYTES", default_value = "256Mi")]
    pub memory: String,
}

#[derive(Debug, Args)]
pub struct FleetSlurmArgs {
    #[command(flatten)]
    pub common: FleetCommon,
    /// Partition (#SBATCH --partition).
    #[arg(long, value_name = "NAME")]
    pub partition: Option<String>,
    /// Time limit per task (#SBATCH --time, Slurm's form: 30, 1:00:00).
    #[arg(long, value_name = "TIME")]
    pub time: Option<String>,
    /// At most N tasks at once (--array=0-K%N).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub parallel: Option<u32>,
    /// Each task's log (#SBATCH --output; default portolan-RUN-%A_%a.out).
    #[arg(long = "log", value_name = "PATTERN")]
    pub log: Option<String>,
}

#[derive(Debug, Args)]
pub struct FleetCommon {
    /// How many shards (tasks).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub shards: u32,
    /// The run the shards are saved into (see `portolan snapshots --runs`).
    #[arg(long, value_name = "NAME", value_parser = run_name)]
    pub run: String,
    /// The seed every shard shares (default: a random one, written into the job).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// The task reads the database URL from this environment variable (default PORTOLAN_DB;
    /// sbatch exports the submitting shell's environment).
    #[arg(long, value_name = "VAR", conflicts_with = "db_file")]
    pub db_env: Option<String>,
    /// The task reads the database URL from this file on the node.
    #[arg(long, value_name = "FILE")]
    pub db_file: Option<String>,
    /// The portolan binary on the nodes.
    #[arg(long, value_name = "PATH", default_value = "portolan")]
    pub bin: String,
    /// Words to run the binary with on each task (`ip netns exec lab`, `srun`, a container
    /// runner), split on spaces.
    #[arg(long, value_name = "WORDS")]
    pub launcher: Option<String>,
    /// The scan's arguments, after `--`: targets, ports, scan type (not --shard, --seed,
    /// --save, --run or --db: the job sets them).
    #[arg(last = true, value_name = "SCAN-ARGS", required = true)]
    pub scan_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Snapshots (an id, last, last~N) or scan files (nmap XML, Portolan JSON) to chart;
    /// none: the newest scan and the newest inventory of the store, and the changes since the
    /// scan before.
    #[arg(value_name = "SNAPSHOT|FILE")]
    pub inputs: Vec<String>,
    /// Where to write the page (written whole or not at all).
    #[arg(short = 'o', long = "output", value_name = "FILE", default_value = "portolan-report.html")]
    pub output: PathBuf,
    /// Chart the drift across the scans saved in this last AGE (30d, 12h, 2w).
    #[arg(long, value_name = "AGE", value_parser = values::age)]
    pub since: Option<jiff::SignedDuration>,
    /// Judge the observations against this policy.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Follow policy includes outside the policy's directory.
    #[arg(long)]
    pub include_anywhere: bool,
    /// A firewall rule set (iptables-save, nft -j list ruleset, AWS security groups): its
    /// exposure per port and its lint.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Logs, flows and captures to look for scans and brute force in, as `watch` reads them
    /// (repeatable).
    #[arg(long, value_name = "FILE")]
    pub watch: Vec<PathBuf>,
    /// Snapshot database (default: $PORTOLAN_DB, else ~/.local/share/portolan/portolan.db).
    #[arg(long, value_name = "PATH|URL")]
    pub db: Option<String>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Captures and logs to read (`-` for standard input); gzip is unpacked. The format is
    /// recognised from the content.
    #[arg(value_name = "FILE", required_unless_present_any = ["interface", "listeners", "nflog", "journal"])]
    pub files: Vec<PathBuf>,
    /// Capture live on this interface (repeatable; needs root or CAP_NET_RAW); implies
    /// --follow.
    #[arg(long, short = 'i', value_name = "IF")]
    pub interface: Vec<String>,
    /// Watch this machine's listening sockets (as `ls` sees them): one that appears after
    /// the start, or whose owner changes, is reported as new_service with its process within
    /// a second; implies --follow.
    #[arg(long)]
    pub listeners: bool,
    /// Follow the systemd journal (kernel LOG lines, sshd) through `journalctl --follow
    /// --output=json`; implies --follow.
    #[arg(long)]
    pub journal: bool,
    /// With --journal: the journal files in this directory instead of this machine's.
    #[arg(long, value_name = "DIR", requires = "journal")]
    pub journal_directory: Option<PathBuf>,
    /// Read the firewall's own log from NFLOG group N (nft `log group N`, iptables `-j NFLOG
    /// --nflog-group N`), repeatable; needs root; implies --follow.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16))]
    pub nflog: Vec<u16>,
    /// A saved snapshot (last, last~1, or an id; see `portolan snapshots`) of what is supposed
    /// to answer: a host that answers a handshake on anything else is reported as new_service.
    #[arg(long, value_name = "SNAPSHOT", value_parser = snapshot_ref)]
    pub baseline: Option<SnapshotRef>,
    /// What the policy approves is what is supposed to answer: a host answering a handshake
    /// on a port it does not approve is a new_service; with --listeners, a listener that
    /// appears or changes owner is reported only when the policy does not approve it.
    #[arg(long, value_name = "FILE", conflicts_with = "baseline")]
    pub policy: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics while following: lines and events
    /// by source, detections by kind and severity, tracked sources, evictions, lag.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<std::net::SocketAddr>,
    /// The snapshot database for --baseline (default: the one --save uses).
    #[arg(long, value_name = "PATH")]
    pub db: Option<String>,
    /// Save the detections (as findings, rules watch.<kind>) as a snapshot in the database, for
    /// `snapshots`, `report` and `audit`-style tooling; reading files only.
    #[arg(long, conflicts_with_all = ["follow", "interface", "listeners", "nflog", "journal", "events"])]
    pub save: bool,
    /// Run CMD (with sh -c) for each detection, the detection as JSON on its standard input
    /// (repeatable); live, once when a detection starts. At most 10 s each.
    #[arg(long, value_name = "CMD")]
    pub alert_exec: Vec<String>,
    /// POST each detection as JSON to http://HOST[:PORT]/PATH (repeatable); live, once when a
    /// detection starts. At most 10 s each.
    #[arg(long, value_name = "URL")]
    pub alert_url: Vec<String>,
    /// Read every FILE as this format instead of recognising it.
    #[arg(long, value_enum, default_value_t = WatchFormat::Auto)]
    pub format: WatchFormat,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = WatchOutput::Table)]
    pub output: WatchOutput,
    /// Exit 1 when a detection is at or above SEVERITY: info, low (the default), medium, high,
    /// critical; any; or never. Allowed scanners are info.
    #[arg(long, value_name = "SEVERITY", default_value = "low", value_parser = values::fail_on)]
    pub fail_on: FailOn,
    /// A scanner of your own (ADDR or CIDR, repeatable): its detections are reported as info.
    #[arg(long = "allow-source", value_name = "CIDR", value_parser = values::cidr)]
    pub allow_source: Vec<(std::net::IpAddr, u8)>,
    /// Distinct ports of one host within --window that make a vertical scan (Zeek: 15).
    #[arg(long, value_name = "N", default_value_t = 15, value_parser = values::count(2, 65536))]
    pub ports: usize,
    /// Distinct hosts on one port within --window that make a sweep (Zeek: 25).
    #[arg(long, value_name = "N", default_value_t = 25, value_parser = values::count(2, 1 << 24))]
    pub hosts: usize,
    /// The counting window for scans and sweeps (Zeek: 5 minutes).
    #[arg(long, value_name = "TIME", default_value = "5m", value_parser = values::time(std::time::Duration::from_secs(86_400)))]
    pub window: std::time::Duration,
    /// The window for slow scans (psad's scan timeout: 1 hour).
    #[arg(long, value_name = "TIME", default_value = "1h", value_parser = values::time(std::time::Duration::from_secs(30 * 86_400)))]
    pub slow_window: std::time::Duration,
    /// Failed logins from one source within 10 minutes that make brute force (fail2ban: 5).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = values::count(1, 1_000_000))]
    pub logins: usize,
    /// Short sessions from one source to one login service within 10 minutes that make brute
    /// force (10).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = values::count(2, 1_000_000))]
    pub sessions: usize,
    /// Sources tracked at most; beyond, the quietest are dropped and counted.
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = values::count(16, 100_000_000))]
    pub max_sources: usize,
    /// Connections a capture tracks at once at most; beyond, the one due soonest ends early
    /// (counted).
    #[arg(long, value_name = "N", default_value_t = 200_000, value_parser = values::count(16, 100_000_000))]
    pub max_flows: usize,
    /// The year of syslog time stamps, which carry none (default: this year).
    #[arg(long, value_name = "YEAR", value_parser = values::count(1970, 9999))]
    pub year: Option<usize>,
    /// Print the events read (connections, logged packets, failed logins) as NDJSON instead
    /// of detections.
    #[arg(long)]
    pub events: bool,
    /// Keep reading the logs as they grow (as tail -F: across rotation and truncation), and
    /// report each detection when it starts and again when it ends; stop with Ctrl-C or
    /// SIGTERM. Logs and Zeek conn.log only; -o table or ndjson.
    #[arg(long, short = 'f', conflicts_with = "events")]
    pub follow: bool,
    /// With --follow: read each file from its start, not only what is written from now.
    #[arg(long, requires = "follow")]
    pub from_start: bool,
}

/// `watch --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WatchFormat {
    /// Recognised from the content.
    Auto,
    /// pcap or pcapng.
    Pcap,
    /// Zeek conn.log (TSV or JSON).
    Zeek,
    /// Kernel LOG lines and sshd's log (dmesg, syslog, journalctl).
    Log,
    /// AWS VPC flow logs (default format, or custom with its header line).
    Vpc,
}

/// `watch -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WatchOutput {
    /// Detections for people.
    Table,
    /// One JSON document (docs/schema/watch-report.schema.json).
    Json,
    /// One detection per line (docs/schema/detection.schema.json).
    Ndjson,
    /// SARIF 2.1.0 (rules watch.<kind>), for code-scanning dashboards.
    Sarif,
}

#[derive(Debug, Args)]
pub struct FwArgs {
    #[command(subcommand)]
    pub action: FwAction,
}

/// How to read a rule file.
#[derive(Debug, Args)]
pub struct FwInput {
    /// Format: auto (detected from the content), iptables (iptables-save / ip6tables-save),
    /// nft (nft -j list ruleset), aws (aws ec2 describe-security-groups).
    #[arg(long, value_enum, default_value_t = FwFormat::Auto)]
    pub format: FwFormat,
    /// iptables-save files: the address family (default: from the header or the addresses).
    #[arg(long, value_name = "4|6", value_parser = clap::builder::PossibleValuesParser::new(["4", "6"]).map(|s| if s == "6" { 6u8 } else { 4u8 }))]
    pub family: Option<u8>,
    /// iptables-save files: the `ipset save` output that -m set rules refer to.
    #[arg(long, value_name = "FILE")]
    pub ipset: Option<PathBuf>,
}

/// `--format` of `fw`.
impl FwInput {
    /// How to read the rule set, as the session library takes it.
    pub fn reading(&self) -> portolan_session::firewall::Reading {
        use portolan_firewall::{Family, Format};
        portolan_session::firewall::Reading {
            format: match self.format {
                FwFormat::Auto => None,
                FwFormat::Iptables => Some(Format::Iptables),
                FwFormat::Nft => Some(Format::NftJson),
                FwFormat::Aws => Some(Format::Aws),
            },
            family: self.family.map(|n| if n == 6 { Family::V6 } else { Family::V4 }),
            ipset: self.ipset.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FwFormat {
    /// Detect.
    Auto,
    /// iptables-save text.
    Iptables,
    /// nftables JSON.
    Nft,
    /// AWS security groups JSON.
    Aws,
}

/// Output of `fw show`, `query`, `diff`, `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FwOutput {
    /// A table for people.
    Table,
    /// JSON.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum FwAction {
    /// The exposure of every port: the verdict for traffic from the internet, from private
    /// ranges and from --from sources, with the deciding rule, computed exactly.
    Show(FwShowArgs),
    /// The verdict for one packet, the rule that decides it and the chain path.
    Query(FwQueryArgs),
    /// The packet classes whose verdict differs between two rule sets. Exit 0: none; 1: some.
    Diff(FwDiffArgs),
    /// Problems: any-to-any, risky services open to the internet, shadowed and redundant
    /// rules, no default deny, ...; joined with listeners (--listeners, --xml). Exit codes as
    /// audit.
    Lint(FwLintArgs),
    /// Load the rule set into a kernel firewall in a fresh network namespace (root), scan it
    /// from a peer namespace, and compare what answers with the computed verdicts.
    Verify(FwVerifyArgs),
}

#[derive(Debug, Args)]
pub struct FwShowArgs {
    /// The rule file.
    pub file: PathBuf,
    #[command(flatten)]
    pub input: FwInput,
    /// Also show the verdict for these sources (CIDR, address or A-B; repeatable).
    #[arg(long, value_name = "SOURCES")]
    pub from: Vec<String>,
    /// Only traffic to this destination address.
    #[arg(long, value_name = "ADDR")]
    pub dst: Option<std::net::IpAddr>,
    /// The interfaces internet traffic arrives on (repeatable; default: every interface but
    /// loopback and container bridges such as docker0, br-*, veth*, cni*).
    #[arg(long, value_name = "NAME")]
    pub iif: Vec<String>,
    /// Only rows where some source is accepted.
    #[arg(long)]
    pub open: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = FwOutput::Table)]
    pub output: FwOutput,
}

#[derive(Debug, Args)]
pub struct FwQueryArgs {
    /// The rule file.
    pub file: PathBuf,
    #[command(flatten)]
    pub input: FwInput,
    /// Source address.
    #[arg(long, required_unless_present = "batch")]
    pub src: Option<std::net::IpAddr>,
    /// Destination address.
    #[arg(long, required_unless_present = "batch")]
    pub dst: Option<std::net::IpAddr>,
    /// Many packets, one per line: `SRC DST PROTO DPORT [IIF]`; prints one verdict and
    /// deciding rule per line (no path).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["src", "dst"])]
    pub batch: Option<PathBuf>,
    /// Protocol (tcp, udp, icmp, a number).
    #[arg(short = 'p', long = "proto", value_name = "PROTO", default_value = "tcp", value_parser = protocol)]
    pub proto: u8,
    /// Destination port (ICMP: the type).
    #[arg(long, default_value_t = 0)]
    pub dport: u16,
    /// Source port.
    #[arg(long, default_value_t = 40000)]
    pub sport: u16,
    /// Input interface.
    #[arg(long)]
    pub iif: Option<String>,
    /// Output interface (with --forward).
    #[arg(long)]
    pub oif: Option<String>,
    /// A routed packet (the forward path) instead of one to this machine.
    #[arg(long)]
    pub forward: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = FwOutput::Table)]
    pub output: FwOutput,
}

#[derive(Debug, Args)]
pub struct FwDiffArgs {
    /// The rule set before.
    pub old: PathBuf,
    /// The rule set after.
    pub new: PathBuf,
    #[command(flatten)]
    pub input: FwInput,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = FwOutput::Table)]
    pub output: FwOutput,
}

#[derive(Debug, Args)]
pub struct FwLintArgs {
    /// The rule file.
    pub file: PathBuf,
    #[command(flatten)]
    pub input: FwInput,
    /// Join with this machine's listening sockets (as `portolan ls` sees them).
    #[arg(long, conflicts_with = "xml")]
    pub listeners: bool,
    /// Join with the open ports of a scan (nmap XML or Portolan JSON).
    #[arg(long, value_name = "FILE")]
    pub xml: Option<PathBuf>,
    /// Exit 1 when a finding is at or above SEVERITY: info, low, medium (the default, as for
    /// audit), high, critical; any; or never.
    #[arg(long, value_name = "SEVERITY", default_value = values::FAIL_ON_DEFAULT, value_parser = values::fail_on)]
    pub fail_on: FailOn,
    /// Output format.
    #[arg(short = 'o', long = "output", value_name = "FORMAT", default_value = "table", value_parser = choice(AuditFormat::CHOICES))]
    pub output: AuditFormat,
}

#[derive(Debug, Args)]
pub struct FwVerifyArgs {
    /// The rule file (iptables-save or nftables JSON).
    pub file: PathBuf,
    #[command(flatten)]
    pub input: FwInput,
    /// Ports sampled at random per protocol, besides every range's boundaries.
    #[arg(long, default_value = "24", value_parser = values::count(0, 65_535))]
    pub samples: usize,
    /// Seed of the sampling.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = FwOutput::Table)]
    pub output: FwOutput,
}

#[derive(Debug, Args)]
pub struct IdentifyArgs {
    /// HOST:PORT, [IPv6]:PORT or NAME:PORT; add /udp for UDP (198.18.0.1:53/udp).
    #[arg(value_name = "HOST:PORT", required = true)]
    pub endpoints: Vec<String>,
    #[command(flatten)]
    pub version: VersionArgs,
    /// Do not upgrade SMTP, IMAP, POP3 or FTP sessions with STARTTLS to read their certificate.
    #[arg(long)]
    pub no_starttls: bool,
    /// Exit 1 when a finding is at or above SEVERITY (info, low, medium, high, critical).
    #[arg(long, value_name = "SEVERITY", value_parser = values::fail_on)]
    pub fail_on: Option<FailOn>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = RecordFormat::Table)]
    pub format: RecordFormat,
}

/// Version detection (`-sV`) and its bounds.
#[derive(Debug, Args, Default, Clone)]
pub struct VersionArgs {
    /// Identify the service on every open port (-sV): banner, probes, TLS inspection.
    #[arg(long = "service-version")]
    pub enabled: bool,
    /// 0 (only the probes likeliest for the port) to 9 (every probe); default 7.
    #[arg(long, value_name = "0-9", value_parser = clap::value_parser!(u8).range(0..=9))]
    pub version_intensity: Option<u8>,
    /// Time budget of one port, all probes included (TIME: 6s, 500ms).
    #[arg(long, value_name = "TIME", value_parser = values::time(values::HOUR))]
    pub version_timeout: Option<Duration>,
}

impl VersionArgs {
    /// The identification options of `--version-intensity` and `--version-timeout`.
    pub fn options(&self) -> anyhow::Result<portolan_identify::Options> {
        let mut o = portolan_identify::Options::default();
        if let Some(i) = self.version_intensity {
            o.intensity = i;
        }
        if let Some(d) = self.version_timeout {
            if d.is_zero() {
                anyhow::bail!("--version-timeout must be above 0");
            }
            o.timeout = d;
        }
        Ok(o)
    }
}

/// Where `audit` and `policy init` get their observations: this machine's listeners unless a
/// file, a snapshot or scan targets are given.
#[derive(Debug, Args)]
pub struct ObserveArgs {
    /// An nmap XML file (nmap, masscan, Portolan) or a Portolan JSON scan (-oJ).
    #[arg(long, value_name = "FILE", conflicts_with = "snapshot")]
    pub xml: Option<PathBuf>,
    /// A stored snapshot: an id, last, last~N (see `portolan snapshots`).
    #[arg(long, value_name = "REF", value_parser = snapshot_ref)]
    pub snapshot: Option<SnapshotRef>,
    /// Snapshot database (for --snapshot and --save; default: $PORTOLAN_DB, else
    /// ~/.local/share/portolan/portolan.db) or a postgres:// URL.
    #[arg(long, value_name = "PATH|URL")]
    pub db: Option<String>,
    #[command(flatten)]
    pub scan: ScanSpec,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The policy (TOML; see docs/policy.md).
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// Follow the policy's includes outside its own directory (by default they must lie in
    /// it or below it).
    #[arg(long)]
    pub include_anywhere: bool,
    #[command(flatten)]
    pub from: ObserveArgs,
    /// Exit 1 when a finding is at or above SEVERITY: info, low, medium (the default, as for
    /// fw lint), high, critical; any; or never.
    #[arg(long, value_name = "SEVERITY", default_value = values::FAIL_ON_DEFAULT, value_parser = values::fail_on)]
    pub fail_on: FailOn,
    /// Output format.
    #[arg(short = 'o', long = "output", value_name = "FORMAT", default_value = "table", value_parser = choice(AuditFormat::CHOICES))]
    pub format: AuditFormat,
    /// Record the observations and findings as a snapshot (see `portolan snapshots`).
    #[arg(long)]
    pub save: bool,
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub action: PolicyAction,
}

#[derive(Debug, Subcommand)]
pub enum PolicyAction {
    /// Validate a policy and its includes: exit 0 when valid (warnings on stderr), 2 with every
    /// problem as FILE:LINE:COL: FIELD: message.
    Check(PolicyCheckArgs),
    /// Write a starting policy that approves what is observed now (this machine's listeners
    /// unless --xml, --snapshot or scan targets are given), owners and purposes left TODO.
    Init(Box<PolicyInitArgs>),
}

#[derive(Debug, Args)]
pub struct PolicyCheckArgs {
    /// The policy file.
    pub file: PathBuf,
    /// The previous version of the policy: only entries not in it must have dates from today on
    /// (without it, every entry must).
    #[arg(long, value_name = "FILE")]
    pub base: Option<PathBuf>,
    /// Follow includes outside the policy's own directory.
    #[arg(long)]
    pub include_anywhere: bool,
}

#[derive(Debug, Args)]
pub struct PolicyInitArgs {
    #[command(flatten)]
    pub from: ObserveArgs,
    /// Write the policy to FILE instead of standard output (never over an existing file unless
    /// --force).
    #[arg(long = "write", short = 'w', value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Replace FILE if it exists.
    #[arg(long, requires = "write")]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The earlier side: an nmap XML file, a JSON scan (`portolan scan -oJ`), or a snapshot
    /// (an id, last, last~N; see `portolan snapshots`).
    #[arg(value_name = "A")]
    pub a: String,
    /// The later side.
    #[arg(value_name = "B")]
    pub b: String,
    /// Snapshot database, for snapshot references.
    #[arg(long, value_name = "PATH|URL")]
    pub db: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = DiffFormat::Text)]
    pub format: DiffFormat,
}

/// Formats of `diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    /// ndiff-like text: `-` the earlier scan, `+` the later.
    Text,
    /// One JSON document (docs/schema/run-diff.schema.json).
    Json,
}

/// `--scan-type` values (`-sT` on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScanType {
    /// TCP connect() scan, unprivileged (-sT).
    Connect,
    /// TCP SYN scan with raw sockets: root or CAP_NET_RAW (-sS).
    Syn,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    #[command(flatten)]
    pub spec: ScanSpec,
    /// Continue an interrupted scan from the resume file it wrote (Ctrl-C writes one): the
    /// same options, the finished hosts not scanned again, the output complete.
    #[arg(long, value_name = "FILE")]
    pub resume: Option<PathBuf>,
    /// Where an interrupted scan writes its resume file (default: portolan.resume.json).
    #[arg(long, value_name = "FILE")]
    pub resume_file: Option<PathBuf>,
    /// Format on standard output.
    #[arg(short = 'o', long = "output", value_name = "FORMAT", default_value = "table", value_parser = choice(ScanFormat::CHOICES))]
    pub format: ScanFormat,
    #[command(flatten)]
    pub files: OutputFiles,
    #[command(flatten)]
    pub show: ShowArgs,
    #[command(flatten)]
    pub store: SaveArgs,
    /// With --save: save this scan as shard I of the named run (--shard I/N; without it,
    /// shard 1 of 1). Saving a shard again replaces it; a shard whose targets, ports, seed or
    /// shard count differ from the run's is refused. diff, audit, report and snapshots take
    /// run:NAME as one scan.
    #[arg(long, value_name = "NAME", requires = "save", value_parser = run_name)]
    pub run: Option<String>,
}

/// What to scan and how fast: shared by `scan`, `audit` and `policy init`.
#[derive(Debug, Args)]
pub struct ScanSpec {
    /// Targets: addresses, CIDRs (198.18.0.0/24, 2001:db8::/120), ranges (198.18.0.1-20,
    /// 198.18.0-3.1) and host names.
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Read targets from FILE (-iL FILE), one or more per line, # comments.
    #[arg(long = "input-list", value_name = "FILE")]
    pub input_list: Option<PathBuf>,
    /// Leave these targets out (comma separated).
    #[arg(long, value_name = "LIST")]
    pub exclude: Option<String>,
    /// Leave out the targets listed in FILE.
    #[arg(long, value_name = "FILE")]
    pub excludefile: Option<PathBuf>,
    /// Ports: 22,80,1000-2000 / - (all) / T:22,U:53 / service names (default: the top 1,000).
    #[arg(short = 'p', long = "ports", value_name = "PORTS", allow_hyphen_values = true)]
    pub ports: Option<String>,
    /// Scan the N most common ports (nmap's ranking when installed).
    #[arg(long, value_name = "N", conflicts_with = "ports", value_parser = values::count(1, 65_536))]
    pub top_ports: Option<usize>,
    /// Fast: the 100 most common ports.
    #[arg(short = 'F', long = "fast", conflicts_with_all = ["ports", "top_ports"])]
    pub fast: bool,
    /// Ports to leave out.
    #[arg(long, value_name = "PORTS")]
    pub exclude_ports: Option<String>,
    /// Scan type: -sS (SYN, needs root or CAP_NET_RAW) or -sT (connect). Default: -sS when
    /// privileged, else -sT.
    #[arg(long = "scan-type", value_enum)]
    pub scan_type: Option<ScanType>,
    /// UDP scan (-sU): protocol payloads for the common services; no root needed. Alone it
    /// scans UDP only; with -sS or -sT, both.
    #[arg(long)]
    pub udp: bool,
    /// Host discovery only (-sn): which hosts are up, no port scan.
    #[arg(long = "ping-only", conflicts_with_all = ["ports", "top_ports", "fast", "udp", "scan_type"])]
    pub ping_only: bool,
    /// Treat every host as up; skip discovery (-Pn).
    #[arg(long = "skip-discovery")]
    pub skip_discovery: bool,
    /// No reverse DNS (Portolan never does it; accepted for habit).
    #[arg(short = 'n')]
    pub no_dns: bool,
    /// IPv6 (nmap's -6): names resolve to their IPv6 address; IPv4 targets are an error.
    /// (IPv6 addresses and networks are scanned without it.)
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Timing template 0-5 (-T0 paranoid .. -T5 insane; default 3).
    #[arg(short = 'T', value_name = "0-5", default_value_t = 3, value_parser = clap::value_parser!(u8).range(0..=5))]
    pub timing: u8,
    /// Send at least N probes a second.
    #[arg(long, value_name = "N", value_parser = values::rate)]
    pub min_rate: Option<f64>,
    /// Send at most N probes a second (a hard cap).
    #[arg(long, value_name = "N", value_parser = values::rate)]
    pub max_rate: Option<f64>,
    /// Retransmit an unanswered probe at most N times.
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u8>,
    /// Give up a host after TIME (30s, 5m, 500ms).
    #[arg(long, value_name = "TIME", value_parser = values::time(values::WEEK))]
    pub host_timeout: Option<Duration>,
    /// Wait at least TIME between probes to a host.
    #[arg(long, value_name = "TIME", value_parser = values::time(values::HOUR))]
    pub scan_delay: Option<Duration>,
    /// Probe timeout floor.
    #[arg(long, value_name = "TIME", value_parser = values::time(values::HOUR))]
    pub min_rtt_timeout: Option<Duration>,
    /// Probe timeout ceiling.
    #[arg(long, value_name = "TIME", value_parser = values::time(values::HOUR))]
    pub max_rtt_timeout: Option<Duration>,
    /// Probe timeout before the first RTT measurement.
    #[arg(long, value_name = "TIME", value_parser = values::time(values::HOUR))]
    pub initial_rtt_timeout: Option<Duration>,
    /// Probes in flight at most.
    #[arg(long, value_name = "N", value_parser = values::count(1, 1_000_000))]
    pub max_parallelism: Option<usize>,
    /// Seed of the random port order (same seed, same order), and of the --shard split.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Scan only shard I of N of the target x port space (a keyed permutation: N machines
    /// with the same targets, ports and --seed cover it exactly once).
    #[arg(long, value_name = "I/N", value_parser = shard)]
    pub shard: Option<Shard>,
    /// Scan more than 65,536 hosts.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub version: VersionArgs,
}

impl ScanSpec {
    /// The scan as the session library takes it.
    pub fn request(&self) -> anyhow::Result<portolan_session::scan::ScanRequest> {
        use portolan_session::scan::{ScanRequest, TimingRequest};
        Ok(ScanRequest {
            targets: self.targets.clone(),
            input_list: self.input_list.clone(),
            exclude: self.exclude.clone(),
            excludefile: self.excludefile.clone(),
            ports: self.ports.clone(),
            top_ports: self.top_ports,
            fast: self.fast,
            exclude_ports: self.exclude_ports.clone(),
            probe: self.scan_type.map(|t| match t {
                ScanType::Connect => portolan_scan::Probe::Connect,
                ScanType::Syn => portolan_scan::Probe::Syn,
            }),
            udp: self.udp,
            ping_only: self.ping_only,
            skip_discovery: self.skip_discovery,
            ipv6: self.ipv6,
            yes: self.yes,
            timing: TimingRequest {
                template: self.timing,
                min_rate: self.min_rate,
                max_rate: self.max_rate,
                max_retries: self.max_retries,
                host_timeout: self.host_timeout,
                scan_delay: self.scan_delay,
                min_rtt: self.min_rtt_timeout,
                max_rtt: self.max_rtt_timeout,
                initial_rtt: self.initial_rtt_timeout,
                max_parallelism: self.max_parallelism,
            },
            seed: self.seed,
            shard: self.shard,
            identify: if self.version.enabled { Some(self.version.options()?) } else { None },
        })
    }
}

impl ObserveArgs {
    /// What to judge, as the session library takes it.
    pub fn sources(&self) -> anyhow::Result<portolan_session::gather::Sources> {
        let s = &self.scan;
        Ok(portolan_session::gather::Sources {
            xml: self.xml.clone(),
            snapshot: self.snapshot.clone(),
            db: self.db.clone(),
            scan: s.request()?,
            scan_options: s.ports.is_some()
                || s.top_ports.is_some()
                || s.fast
                || s.exclude.is_some()
                || s.excludefile.is_some()
                || s.exclude_ports.is_some(),
        })
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// HOST:PORT, [IPv6]:PORT or NAME:PORT.
    #[arg(value_name = "HOST:PORT", required = true)]
    pub endpoints: Vec<String>,
    /// Connect timeout (TIME: 3s, 500ms).
    #[arg(long, value_name = "TIME", default_value = "3s", value_parser = values::time(values::HOUR))]
    pub timeout: Duration,
    /// How long to wait for the service to speak first.
    #[arg(long, value_name = "TIME", default_value = "1s", value_parser = values::time(values::HOUR))]
    pub banner_wait: Duration,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = RecordFormat::Table)]
    pub format: RecordFormat,
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
    #[arg(long, hide = true, value_parser = values::count(1, 1024))]
    pub threads: Option<usize>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = RecordFormat::Table)]
    pub format: RecordFormat,
    #[command(flatten)]
    pub store: SaveArgs,
}

impl LsArgs {
    /// What to list, as the inventory library takes it.
    pub fn options(&self) -> portolan_local::Options {
        use portolan_local::Options;
        let either_transport = !self.tcp && !self.udp;
        let either_family = !self.ipv4 && !self.ipv6;
        Options {
            tcp: self.tcp || either_transport,
            udp: self.udp || either_transport,
            ipv4: self.ipv4 || either_family,
            ipv6: self.ipv6 || either_family,
            listening: self.listening || self.all || !self.bound,
            connected: self.all,
            bound_inactive: self.bound,
            processes: !self.no_process,
            all_netns: self.all_netns,
            ports: self.port.clone(),
            process: self.process.clone(),
            force_procfs: self.procfs,
            threads: self.threads,
        }
    }
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

impl From<RecordFormat> for portolan_output::records::Format {
    fn from(f: RecordFormat) -> Self {
        use portolan_output::records::Format;
        match f {
            RecordFormat::Table => Format::Table,
            RecordFormat::Json => Format::Json,
            RecordFormat::Ndjson => Format::Ndjson,
            RecordFormat::Csv => Format::Csv,
        }
    }
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
    #[arg(long, value_name = "N", conflicts_with = "queries", value_parser = values::count(1, 65_536))]
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

impl OutputFiles {
    /// The files as the output library takes them.
    pub fn files(&self) -> portolan_output::scan::Files {
        portolan_output::scan::Files {
            normal: self.normal.clone(),
            xml: self.xml.clone(),
            grepable: self.grepable.clone(),
            json: self.json.clone(),
            all: self.all.clone(),
        }
    }
}

impl ShowArgs {
    /// What to show, as the output library takes it.
    pub fn options(&self, keep_listed: bool) -> portolan_output::scan::ShowOptions {
        portolan_output::scan::ShowOptions {
            verbose: self.verbose,
            open_only: self.open,
            reason: self.reason,
            keep_listed,
        }
    }
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The nmap XML file.
    pub file: PathBuf,
    /// Format on standard output.
    #[arg(short = 'o', long = "output", value_name = "FORMAT", default_value = "table", value_parser = choice(ScanFormat::CHOICES))]
    pub format: ScanFormat,
    #[command(flatten)]
    pub files: OutputFiles,
    #[command(flatten)]
    pub show: ShowArgs,
    #[command(flatten)]
    pub store: SaveArgs,
}

/// `--save` and `--db`, on every command that observes.
#[derive(Debug, Args, Default)]
pub struct SaveArgs {
    /// Record what was observed as a snapshot in the database (see `portolan snapshots`).
    #[arg(long)]
    pub save: bool,
    /// Snapshot database: a file (default: $PORTOLAN_DB, else ~/.local/share/portolan/portolan.db)
    /// or a postgres:// URL.
    #[arg(long, value_name = "PATH|URL")]
    pub db: Option<String>,
}

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// Snapshot database (default: $PORTOLAN_DB, else ~/.local/share/portolan/portolan.db).
    #[arg(long, value_name = "PATH|URL")]
    pub db: Option<String>,
    /// List the sharded runs (scan --run) with their shards' progress: done and missing.
    #[arg(long, conflicts_with_all = ["show", "delete", "keep", "older_than"])]
    pub runs: bool,
    /// With --show: the scan as nmap XML (valid against nmap.dtd) instead of Portolan's JSON.
    #[arg(long, requires = "show")]
    pub xml: bool,
    /// Print one snapshot in full (an id, last, last~N, or run:NAME merged) instead of the list.
    #[arg(long, value_name = "REF", conflicts_with_all = ["delete", "keep", "older_than"], value_parser = snapshot_ref)]
    pub show: Option<SnapshotRef>,
    /// Delete these snapshots (ids, last, last~N).
    #[arg(long, value_name = "REF", num_args = 1.., conflicts_with_all = ["keep", "older_than"], value_parser = snapshot_ref)]
    pub delete: Vec<SnapshotRef>,
    /// Retention: keep only the N newest snapshots, deleting the rest.
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// Retention: delete snapshots older than AGE (90d, 12h, 2w).
    #[arg(long, value_name = "AGE", value_parser = values::age)]
    pub older_than: Option<jiff::SignedDuration>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = RecordFormat::Table)]
    pub format: RecordFormat,
}

/// nmap flags Portolan does not implement, each with what it is and what to use instead: they
/// get one line, not a parser error. A flag ending in `*` matches with a value glued on
/// (`-PS22,80`).
pub const UNSUPPORTED_FLAGS: [(&str, &str, &str); 20] = [
    ("-sA", "ACK scan", "use -sS (SYN) or -sT (connect)"),
    ("-sN", "NULL scan", "use -sS (SYN) or -sT (connect)"),
    ("-sF", "FIN scan", "use -sS (SYN) or -sT (connect)"),
    ("-sX", "Xmas scan", "use -sS (SYN) or -sT (connect)"),
    ("-sW", "window scan", "use -sS (SYN) or -sT (connect)"),
    ("-sM", "Maimon scan", "use -sS (SYN) or -sT (connect)"),
    ("-sY", "SCTP INIT scan", "use -sS (SYN) or -sT (connect)"),
    ("-sO", "IP protocol scan", "use -sS (SYN), -sT (connect) or -sU (UDP)"),
    ("-sC", "NSE scripts", "use -sV to identify services (TLS, HTTP and certificate facts included)"),
    ("-A", "OS detection, scripts and traceroute", "use -sV to identify services"),
    ("-O", "OS detection", "use -sV: identified services often name the OS"),
    ("--traceroute", "traceroute", "use traceroute or mtr"),
    (
        "-PS*",
        "TCP SYN ping with chosen ports",
        "discovery sends nmap's defaults (echo, SYN 443, ACK 80, timestamp; ARP on a local link); -Pn skips it",
    ),
    (
        "-PA*",
        "TCP ACK ping with chosen ports",
        "discovery sends nmap's defaults (echo, SYN 443, ACK 80, timestamp; ARP on a local link); -Pn skips it",
    ),
    (
        "-PU*",
        "UDP ping",
        "discovery sends nmap's defaults (echo, SYN 443, ACK 80, timestamp; ARP on a local link); -Pn skips it",
    ),
    ("-PY*", "SCTP ping", "discovery sends nmap's defaults; -Pn skips it"),
    ("-PO*", "IP protocol ping", "discovery sends nmap's defaults; -Pn skips it"),
    ("-PE", "ICMP echo ping alone", "discovery sends echo among nmap's defaults; -Pn skips it"),
    ("-PP", "ICMP timestamp ping alone", "discovery sends timestamp among nmap's defaults; -Pn skips it"),
    ("-PM", "ICMP netmask ping", "discovery sends nmap's defaults; -Pn skips it"),
];

/// The first unsupported nmap flag among `args` (up to `--`), with its entry.
pub fn unsupported_flag(args: &[OsString]) -> Option<(String, &'static str, &'static str)> {
    args.iter().skip(1).take_while(|a| *a != "--").find_map(|a| {
        let a = a.to_str()?;
        UNSUPPORTED_FLAGS.iter().find_map(|(flag, what, instead)| {
            let hit = match flag.strip_suffix('*') {
                Some(prefix) => a.starts_with(prefix),
                None => a == *flag,
            };
            hit.then(|| (a.to_string(), *what, *instead))
        })
    })
}

/// Turns nmap's multi-letter short flags into long ones so that what nmap users type works:
/// `-oN FILE` → `--output-normal FILE`, `-sT`/`-sS` → `--scan-type=connect|syn`, `-Pn` →
/// `--skip-discovery`, `-iL FILE` → `--input-list FILE`, `-p-` → `--ports=-`.
pub fn rewrite_nmap_output_flags(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let map = [
        ("-oN", "--output-normal"),
        ("-oX", "--output-xml"),
        ("-oG", "--output-grepable"),
        ("-oJ", "--output-json"),
        ("-oA", "--output-all"),
        ("-iL", "--input-list"),
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
        match s.as_ref() {
            "-sT" => {
                out.push(OsString::from("--scan-type=connect"));
                continue;
            }
            "-sS" => {
                out.push(OsString::from("--scan-type=syn"));
                continue;
            }
            "-sU" => {
                out.push(OsString::from("--udp"));
                continue;
            }
            "-sn" | "-sP" => {
                out.push(OsString::from("--ping-only"));
                continue;
            }
            "-Pn" => {
                out.push(OsString::from("--skip-discovery"));
                continue;
            }
            "-sV" => {
                out.push(OsString::from("--service-version"));
                continue;
            }
            // nmap's shorthands for the extremes of --version-intensity
            "--version-all" => {
                out.push(OsString::from("--version-intensity=9"));
                continue;
            }
            "--version-light" => {
                out.push(OsString::from("--version-intensity=2"));
                continue;
            }
            "-p-" => {
                out.push(OsString::from("--ports=-"));
                continue;
            }
            _ => {}
        }
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

/// A value parser over a library's named choices (name, help, value); `--help` lists them.
fn choice<T: Copy + Send + Sync + 'static>(
    choices: &'static [(&'static str, &'static str, T)],
) -> impl clap::builder::TypedValueParser<Value = T> {
    let names = choices.iter().map(|(name, help, _)| clap::builder::PossibleValue::new(name).help(help));
    // the possible values have checked the name: the fallback is never taken
    clap::builder::PossibleValuesParser::new(names)
        .map(move |s| choices.iter().find(|c| c.0 == s).map_or(choices[0].2, |c| c.2))
}

/// A snapshot reference (`12`, `last`, `last~2`, `run:NAME`).
fn snapshot_ref(s: &str) -> Result<SnapshotRef, portolan_store::Error> {
    s.parse()
}

/// A protocol by name or number (`tcp`, `udp`, `icmp`, `47`).
fn protocol(s: &str) -> Result<u8, &'static str> {
    portolan_firewall::model::proto_number(s)
        .ok_or("expected a protocol name (tcp, udp, icmp, ...) or number")
}

/// A run name (`--run`): letters, digits, `.`, `_`, `-`.
fn run_name(s: &str) -> Result<String, ValueError> {
    if portolan_store::valid_run_name(s) { Ok(s.to_string()) } else { Err(ValueError::RunName) }
}

/// `--shard I/N`.
fn shard(s: &str) -> Result<Shard, ValueError> {
    s.parse().map_err(|_| ValueError::Shard)
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
