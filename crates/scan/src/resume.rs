//! The resume file of an interrupted scan (`--resume-file`, read back by `--resume`): the
//! run's arguments and every host it finished, so that the resumed run scans only the rest
//! and re-emits the finished hosts. JSON, written atomically (a temporary file renamed over
//! the old one), with a version marker.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use portolan_model::Host;

/// The format version this build reads and writes.
pub const VERSION: u32 = 1;

/// The largest resume file read (a finished /16 of hosts with every port is far less).
const MAX_FILE: u64 = 1 << 30;

/// What an interrupted scan leaves for `--resume`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ResumeFile {
    /// Format marker ([`VERSION`]).
    pub portolan_resume: u32,
    /// The interrupted run's arguments (after the program name).
    pub args: Vec<String>,
    /// Every host it finished, up or down.
    pub done: Vec<IpAddr>,
    /// The finished hosts it reported, re-emitted by the resumed run.
    pub hosts: Vec<Host>,
}

/// Why a resume file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// The file could not be read.
    #[error(transparent)]
    Input(#[from] portolan_model::input::TextError),
    /// It is not a resume file.
    #[error("{}: not a Portolan resume file (written when a scan is interrupted): {reason}", path.display())]
    NotResume {
        /// The file.
        path: PathBuf,
        /// What the JSON reader said.
        reason: String,
    },
    /// A resume file of another format version.
    #[error("{}: resume file version {found} (this Portolan reads {VERSION})", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
    /// Writing failed.
    #[error("cannot write {}: {reason}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: std::io::Error,
    },
}

impl ResumeFile {
    /// A resume file for a run with these arguments.
    pub fn new(args: Vec<String>, done: Vec<IpAddr>, hosts: Vec<Host>) -> ResumeFile {
        ResumeFile { portolan_resume: VERSION, args, done, hosts }
    }

    /// Reads and checks a resume file.
    pub fn read(path: &Path) -> Result<ResumeFile, ResumeError> {
        let text = portolan_model::input::read_text(path, MAX_FILE)?;
        let r: ResumeFile = serde_json::from_str(&text)
            .map_err(|e| ResumeError::NotResume { path: path.to_path_buf(), reason: e.to_string() })?;
        if r.portolan_resume != VERSION {
            return Err(ResumeError::Version { path: path.to_path_buf(), found: r.portolan_resume });
        }
        Ok(r)
    }

    /// Writes the file whole or not at all ([`portolan_model::atomic::write`]).
    pub fn write(&self, path: &Path) -> Result<(), ResumeError> {
        let err = |reason| ResumeError::Write { path: path.to_path_buf(), reason };
        let json = serde_json::to_vec(self).map_err(|e| err(std::io::Error::other(e)))?;
        portolan_model::atomic::write(path, &json).map_err(err)
    }
}
