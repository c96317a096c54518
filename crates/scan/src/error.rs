use thiserror::Error;

/// Errors of target and port specifications and of the scan itself.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A target that is not an address, CIDR, range or resolvable name.
    #[error("bad target {spec:?}: {reason}")]
    BadTarget {
        /// The target as given.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// A `HOST:PORT` endpoint that is not one.
    #[error("{given:?}: {reason}")]
    BadEndpoint {
        /// What was given.
        given: String,
        /// What is wrong.
        reason: String,
    },
    /// A host name that does not resolve.
    #[error("unknown host name {name:?}: it does not resolve ({reason})")]
    UnknownHost {
        /// The name.
        name: String,
        /// The resolver's answer.
        reason: String,
    },
    /// A target file that could not be read.
    #[error(transparent)]
    TargetInput(#[from] portolan_model::input::TextError),
    /// A target file with a bad line.
    #[error("{path}:{line}: {message}")]
    TargetFile {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// No targets after exclusions.
    #[error("no targets to scan{}", if *.excluded { " (every target is excluded)" } else { "" })]
    NoTargets {
        /// Whether exclusions removed them all.
        excluded: bool,
    },
    /// More hosts than the safety bound, without the caller's consent.
    #[error("{count} hosts to scan: more than {limit}; check the targets")]
    TooManyHosts {
        /// Hosts in the target list.
        count: u128,
        /// The bound.
        limit: u128,
    },
    /// A bad port specification.
    #[error("bad port specification {spec:?}: {reason}")]
    BadPorts {
        /// The token that is wrong.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// This machine has no route to a target.
    #[error("no route to {addr}: this machine cannot reach it (check the address and the routing table)")]
    NoRoute {
        /// The target.
        addr: std::net::IpAddr,
    },
    /// Every target is an address no probe can reach from here (a broadcast address, or one
    /// the kernel refuses to send to).
    #[error("{addr} cannot be probed: {why}")]
    Unprobeable {
        /// The (first) target.
        addr: std::net::IpAddr,
        /// Why: `broadcast address`, `sending is prohibited by a route`.
        why: &'static str,
    },
    /// A `--shard` that is not `I/N` with 1 ≤ I ≤ N, or a space too large to shard.
    #[error(
        "bad shard {given:?}: expected I/N with 1 <= I <= N (e.g. 2/3), and the same seed on every shard"
    )]
    BadShard {
        /// What was given.
        given: String,
    },
    /// A SYN scan without the privilege to open raw sockets.
    #[error("the SYN scan (-sS) needs root or CAP_NET_RAW; run it with sudo, or use -sT (connect scan)")]
    NeedsRawSockets,
    /// The scan engine could not start (runtime, sockets).
    #[error("scan engine: {0}")]
    Engine(#[source] std::io::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
