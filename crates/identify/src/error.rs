use thiserror::Error;

/// What can go wrong before identification starts. Once it runs, every per-port problem
/// (refused, timed out, reset) is part of that port's result, not an error.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum Error {
    /// The probe data file is invalid.
    #[error("{file}:{line}:{column}: {field}: {message}")]
    Data {
        /// The file.
        file: String,
        /// Line, from 1.
        line: usize,
        /// Column, from 1.
        column: usize,
        /// The field at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// An intensity out of range.
    #[error("intensity {given}: expected 0 (light) to 9 (all probes)")]
    Intensity {
        /// The value given.
        given: u8,
    },
    /// A target that is not HOST:PORT.
    #[error("{given:?}: {reason}")]
    Target {
        /// The text given.
        given: String,
        /// What is wrong and what to write instead.
        reason: String,
    },
    /// TLS could not be set up.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The async runtime could not start.
    #[error("cannot start the identification runtime: {0}")]
    Runtime(String),
}

/// Result with this crate's error.
pub type Result<T> = std::result::Result<T, Error>;
