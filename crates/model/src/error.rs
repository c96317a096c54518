use thiserror::Error;

/// Errors from parsing model values out of text.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A transport name that is not tcp, udp, sctp or dccp.
    #[error("unknown transport {given:?}: expected tcp, udp, sctp or dccp")]
    UnknownTransport {
        /// The text that was given.
        given: String,
    },
    /// A port state that nmap does not define.
    #[error(
        "unknown port state {given:?}: expected open, closed, filtered, unfiltered, open|filtered or closed|filtered"
    )]
    UnknownPortState {
        /// The text that was given.
        given: String,
    },
    /// A value of a closed set (severity, host state, scan type, ...) that is not in the set.
    #[error("unknown {what} {given:?}: expected one of {expected}")]
    UnknownValue {
        /// What kind of value it was.
        what: &'static str,
        /// The text that was given.
        given: String,
        /// The accepted values, comma separated.
        expected: &'static str,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
