use std::path::PathBuf;

use thiserror::Error;

/// Errors of reading an nmap XML file. Every parse error carries the file, line and column.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read (or is not a file).
    #[error(transparent)]
    Input(portolan_model::input::InputError),
    /// A JSON file that is not a Portolan scan document (`-oJ`).
    #[error("{}: not a Portolan JSON scan document: {reason}", path.display())]
    NotScanJson {
        /// The file.
        path: PathBuf,
        /// What the JSON reader said.
        reason: String,
    },
    /// The file is larger than the import limit.
    #[error("{}: {size} bytes is more than the import limit of {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The file is not well-formed XML, or not UTF-8.
    #[error("{}:{line}:{column}: malformed XML: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// Well-formed XML that is not a valid nmap document (a missing or bad attribute, an
    /// element where it cannot be).
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
