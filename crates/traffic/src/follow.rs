//! Following a log as it is written (`tail -F`): lines appended are read as they come; when
//! the file is renamed away and a new one takes its name (logrotate's default), the rest of
//! the old file is read to its end first and then the new one from its start; when it is
//! truncated in place (`copytruncate`), reading starts again from the top. No line is lost
//! across either, and none is read twice.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::MAX_LINE;

/// How often a quiet file is looked at again.
const POLL: Duration = Duration::from_millis(100);

/// A followed file.
pub struct Follower {
    path: PathBuf,
    reader: Option<BufReader<File>>,
    inode: u64,
    pos: u64,
    line: u64,
    partial: Vec<u8>,
}

impl Follower {
    /// Follows `path` from its current end (`from_start`: from its first line). A file that
    /// does not exist yet is waited for.
    pub fn new(path: &Path, from_start: bool) -> io::Result<Follower> {
        let mut f = Follower {
            path: path.to_path_buf(),
            reader: None,
            inode: 0,
            pos: 0,
            line: 0,
            partial: Vec::new(),
        };
        if path.exists() {
            f.open(!from_start)?;
        }
        Ok(f)
    }

    fn open(&mut self, at_end: bool) -> io::Result<()> {
        let file = crate::open_follow(&self.path)?;
        let meta = file.metadata()?;
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        self.pos = if at_end { reader.seek(SeekFrom::End(0))? } else { 0 };
        self.inode = meta.ino();
        self.reader = Some(reader);
        self.partial.clear();
        Ok(())
    }

    /// Calls `f` with each complete line (and its number in the current file) until `stop` is
    /// set. Lines longer than [`MAX_LINE`] are passed cut to that length.
    pub fn run(&mut self, stop: &Arc<AtomicBool>, mut f: impl FnMut(&[u8], u64)) -> io::Result<()> {
        while !stop.load(Ordering::Relaxed) {
            let got = self.drain(&mut f)?;
            if got {
                continue;
            }
            // quiet: has the name moved to another file, or has the file shrunk?
            match std::fs::metadata(&self.path) {
                Ok(m) if self.reader.is_none() || m.ino() != self.inode => {
                    // rotated: the old file's last lines first (drain read to its end), then
                    // the new file from the top
                    if self.reader.is_some() {
                        self.drain(&mut f)?;
                        self.flush_partial(&mut f);
                    }
                    self.line = 0;
                    self.open(false)?;
                    continue;
                }
                Ok(m) if m.len() < self.pos => {
                    // truncated in place
                    self.flush_partial(&mut f);
                    self.line = 0;
                    self.open(false)?;
                    continue;
                }
                _ => {}
            }
            std::thread::sleep(POLL);
        }
        Ok(())
    }

    /// Reads what is there; true if anything was.
    fn drain(&mut self, f: &mut impl FnMut(&[u8], u64)) -> io::Result<bool> {
        let Some(reader) = self.reader.as_mut() else { return Ok(false) };
        let mut any = false;
        loop {
            let buf = reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(any);
            }
            any = true;
            let len = buf.len();
            let mut start = 0;
            while let Some(p) = memchr::memchr(b'\n', &buf[start..]) {
                let end = start + p;
                self.line += 1;
                if self.partial.is_empty() {
                    f(trim(&buf[start..end]), self.line);
                } else {
                    let room = MAX_LINE.saturating_sub(self.partial.len());
                    self.partial.extend_from_slice(&buf[start..end][..(end - start).min(room)]);
                    f(trim(&self.partial), self.line);
                    self.partial.clear();
                }
                start = end + 1;
            }
            let room = MAX_LINE.saturating_sub(self.partial.len());
            self.partial.extend_from_slice(&buf[start..][..(len - start).min(room)]);
            reader.consume(len);
            self.pos += len as u64;
        }
    }

    /// A last line without its newline, when its file is left behind.
    fn flush_partial(&mut self, f: &mut impl FnMut(&[u8], u64)) {
        if !self.partial.is_empty() {
            self.line += 1;
            f(trim(&self.partial), self.line);
            self.partial.clear();
        }
    }
}

fn trim(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r").unwrap_or(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn rotation_and_truncation_lose_no_line() {
        let dir = std::env::temp_dir().join(format!("portolan-follow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let log = dir.join("a.log");
        std::fs::write(&log, "old\n").unwrap_or_default();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let (s2, seen2, log2) = (stop.clone(), seen.clone(), log.clone());
        let h = std::thread::spawn(move || {
            let mut f = Follower::new(&log2, false).unwrap_or_else(|e| panic!("{e}"));
            let _ = f.run(&s2, |l, _| {
                if let Ok(mut v) = seen2.lock() {
                    v.push(String::from_utf8_lossy(l).into_owned());
                }
            });
        });
        std::thread::sleep(Duration::from_millis(300));
        let append = |p: &Path, s: &str| {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(p)
                .unwrap_or_else(|e| panic!("{e}"));
            f.write_all(s.as_bytes()).unwrap_or_default();
        };
        append(&log, "one\ntw");
        std::thread::sleep(Duration::from_millis(300));
        append(&log, "o\n");
        // logrotate: rename, then a line into the old file, then a new file
        std::fs::rename(&log, dir.join("a.log.1")).unwrap_or_default();
        append(&dir.join("a.log.1"), "three\n");
        append(&log, "four\n");
        std::thread::sleep(Duration::from_millis(500));
        // copytruncate
        std::fs::write(&log, "").unwrap_or_default();
        std::thread::sleep(Duration::from_millis(300));
        append(&log, "five\n");
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        let _ = h.join();
        let v = seen.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(v, ["one", "two", "three", "four", "five"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
