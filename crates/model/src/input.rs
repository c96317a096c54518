//! The one way Portolan's readers open a file a user names (rule sets, policies and their
//! includes, scans, target lists, batches): bounded by the bytes actually read, not by what the
//! file's metadata claims, so that `/dev/zero`, `/dev/urandom` or a file growing while it is
//! read ends in a clear error instead of exhausting memory; and never blocked by a FIFO nobody
//! writes to. A pipe that is being written (`fw show <(iptables-save)`) is read to its end as
//! usual. This is the only I/O in the model crate.

use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Opening or reading failed. (The reason is part of the message and not a separate
    /// source, so that an error chain does not print it twice.)
    #[error("cannot read {}: {reason}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: io::Error,
    },
    /// A directory, socket or similar where a file was wanted.
    #[error("{} is a {kind}, not a file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// More bytes than the reader accepts (a device such as /dev/zero gets here too).
    #[error("{} is larger than {} ({size} bytes{}); is it the right file?", path.display(), show_size(*limit), if *regular { "" } else { " read before stopping" })]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// A regular file's size, or the bytes read from anything else before giving up.
        size: u64,
        /// The limit.
        limit: u64,
        /// A regular file (refused by its size, before reading).
        regular: bool,
    },
}

fn show_size(b: u64) -> String {
    if b >= 1 << 30 && b.is_multiple_of(1 << 30) {
        format!("{} GiB", b >> 30)
    } else if b >= 1 << 20 {
        format!("{} MiB", b >> 20)
    } else {
        format!("{b} bytes")
    }
}

/// O_NONBLOCK: opening a FIFO for reading does not wait for a writer.
const O_NONBLOCK: i32 = 0o4000;

/// How long a pipe may stay silent before the read gives up: a writer that has not written
/// or closed in this long is not coming.
const PIPE_SILENCE: Duration = Duration::from_secs(60);

/// Opens `path` without waiting for a FIFO's writer, refusing directories and sockets (and
/// devices, unless `devices`): the file and its type.
fn open_checked(path: &Path, devices: bool) -> Result<(std::fs::File, std::fs::FileType), InputError> {
    let io_err = |reason| InputError::Io { path: path.to_path_buf(), reason };
    let file = std::fs::OpenOptions::new().read(true).custom_flags(O_NONBLOCK).open(path).map_err(io_err)?;
    let ft = file.metadata().map_err(io_err)?.file_type();
    let kind = if ft.is_dir() {
        Some("directory")
    } else if ft.is_socket() {
        Some("socket")
    } else if !devices && (ft.is_char_device() || ft.is_block_device()) {
        Some("device")
    } else {
        None
    };
    match kind {
        Some(kind) => Err(InputError::NotAFile { path: path.to_path_buf(), kind }),
        None => Ok((file, ft)),
    }
}

/// Reads all of `path`, at most `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    let io_err = |reason| InputError::Io { path: path.to_path_buf(), reason };
    // a device is read up to the limit (and then refused as too large)
    let (file, ft) = open_checked(path, true)?;
    let mut bytes = Vec::new();
    if ft.is_file() {
        let size = file.metadata().map_err(io_err)?.len();
        if size > limit {
            return Err(InputError::TooLarge { path: path.to_path_buf(), size, limit, regular: true });
        }
        bytes.reserve(size as usize);
    }
    let mut reader = file.take(limit + 1);
    let mut buf = vec![0u8; 64 * 1024];
    let mut silent = Duration::ZERO;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                silent = Duration::ZERO;
                bytes.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // a pipe whose writer has not written yet
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if silent >= PIPE_SILENCE {
                    return Err(io_err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the pipe stayed silent for 60 s",
                    )));
                }
                let step = Duration::from_millis(5);
                std::thread::sleep(step);
                silent += step;
            }
            Err(e) => return Err(io_err(e)),
        }
        // a file that grows while it is read, a device, a pipe: bounded by what was read
        if bytes.len() as u64 > limit {
            let size = bytes.len() as u64;
            return Err(InputError::TooLarge {
                path: path.to_path_buf(),
                size,
                limit,
                regular: ft.is_file(),
            });
        }
    }
    Ok(bytes)
}

/// Opens `path` for streaming (captures and logs far larger than memory): a regular file or a
/// pipe; directories, sockets and devices (which never end) are refused.
pub fn open_stream(path: &Path) -> Result<std::fs::File, InputError> {
    let io_err = |reason| InputError::Io { path: path.to_path_buf(), reason };
    let (file, ft) = open_checked(path, false)?;
    if ft.is_fifo() {
        // block from here on: a pipe is read as it is written
        clear_nonblock(&file).map_err(io_err)?;
    }
    Ok(file)
}

fn clear_nonblock(file: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function's caller owns; F_GETFL/F_SETFL touch only
    // its status flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads all of `path` as UTF-8 text, at most `limit` bytes; invalid UTF-8 is an error naming
/// the line and column of the first bad byte.
pub fn read_text(path: &Path, limit: u64) -> Result<String, TextError> {
    let bytes = read_bounded(path, limit)?;
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|b| **b == b'\n').count() + 1;
        let column = good.len() - good.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1) + 1;
        TextError::NotUtf8 { path: path.to_path_buf(), line, column }
    })
}

/// Why a text file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// The file could not be read.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A byte that is not UTF-8.
    #[error("{}:{line}:{column}: not UTF-8 text", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Line of the first bad byte (from 1).
        line: usize,
        /// Its column in bytes (from 1).
        column: usize,
    },
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn devices_are_bounded_by_what_is_read() {
        let e = read_bounded(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(
            matches!(e, InputError::TooLarge { size, regular: false, .. } if size == (1 << 20) + 1),
            "{e}"
        );
        assert!(e.to_string().contains("larger than 1 MiB"), "{e}");
        assert!(read_bounded(Path::new("/dev/null"), 10).unwrap().is_empty());
    }

    #[test]
    fn directories_are_not_files() {
        let e = read_bounded(Path::new("/"), 10).unwrap_err();
        assert_eq!(e.to_string(), "/ is a directory, not a file");
    }

    #[test]
    fn text_errors_name_line_and_column() {
        let dir = std::env::temp_dir().join(format!("portolan-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("t.txt");
        std::fs::write(&f, b"ok\nab\xffc\n").unwrap();
        let e = read_text(&f, 100).unwrap_err();
        assert!(e.to_string().ends_with("t.txt:2:3: not UTF-8 text"), "{e}");
        std::fs::write(&f, b"fine\n").unwrap();
        assert_eq!(read_text(&f, 100).unwrap(), "fine\n");
        assert!(matches!(read_text(&f, 2), Err(TextError::Input(InputError::TooLarge { .. }))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
