use thiserror::Error;

/// Errors of registry queries.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A port number outside 0-65535 (or not a number).
    #[error("port {given:?} is out of range: ports are 0 to 65535")]
    PortOutOfRange {
        /// The text given.
        given: String,
    },
    /// A range whose start is above its end.
    #[error("port range {given:?} is empty: the first port must not be above the last")]
    EmptyRange {
        /// The text given.
        given: String,
    },
    /// A transport that is not tcp, udp, sctp or dccp.
    #[error("unknown transport {given:?} in {query:?}: use tcp, udp, sctp or dccp (e.g. 53/udp)")]
    UnknownTransport {
        /// The transport text.
        given: String,
        /// The whole query.
        query: String,
    },
    /// A service name the registry does not have.
    #[error("no service named {name:?} in the IANA registry{}", did_you_mean(.suggestions))]
    UnknownService {
        /// The name given.
        name: String,
        /// Close names.
        suggestions: Vec<String>,
    },
    /// An empty query.
    #[error("empty query: give a port (3389), a range (6000-6010), a name (ssh) or port/transport (53/udp)")]
    Empty,
    /// nmap's services file was found but could not be read.
    #[error("{path}: {message}")]
    NmapServices {
        /// Path of the file.
        path: String,
        /// What went wrong (with line when known).
        message: String,
    },
}

fn did_you_mean(s: &[String]) -> String {
    if s.is_empty() { String::new() } else { format!("; did you mean {}?", s.join(", ")) }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
