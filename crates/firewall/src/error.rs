//! Errors, each naming the place in the file and what to do.

use crate::model::Location;

/// Why a rule file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not a rule set this parser understands, at a place.
    #[error("{location}: {message}")]
    Syntax {
        /// Where.
        location: Location,
        /// What is wrong, with the offending token, and what to do.
        message: String,
    },
    /// A file could not be read (or is not a file, or is too large).
    #[error(transparent)]
    Input(#[from] portolan_model::input::InputError),
    /// The format could not be recognised.
    #[error(
        "{file}: not an iptables-save file, nftables JSON (nft -j list ruleset) or AWS describe-security-groups JSON; name the format with --format iptables|nft|aws"
    )]
    UnknownFormat {
        /// The file.
        file: String,
    },
    /// The analysis would exceed a bound (a rule expanding into too many alternatives).
    #[error("{location}: {message}")]
    TooLarge {
        /// Where.
        location: Location,
        /// What.
        message: String,
    },
}

impl Error {
    /// A syntax error at a place.
    pub fn at(location: Location, message: impl Into<String>) -> Error {
        Error::Syntax { location, message: message.into() }
    }
    /// Where the error is, when it is about a place in a file.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Error::Syntax { location, .. } | Error::TooLarge { location, .. } => Some(location),
            _ => None,
        }
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
