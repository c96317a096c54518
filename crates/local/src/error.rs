use thiserror::Error;

/// Errors of the local inventory.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A sock_diag operation failed.
    #[error("sock_diag {op}: {source}")]
    SockDiag {
        /// The operation (`socket`, `send`, `recv`, `dump`, `decode`).
        op: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// A line of `/proc/net/*` could not be parsed.
    #[error("{path}: line {line}: {message}")]
    ProcNet {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A network namespace could not be entered.
    #[error("cannot enter network namespace {path}: {source} (needs root or CAP_SYS_ADMIN)")]
    Setns {
        /// The namespace file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
