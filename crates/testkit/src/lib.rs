//! Shared helpers for Portolan's integration tests.
//!
//! Tests that need an outside tool (nmap, xmllint, ndiff, ...), a privilege or a server call
//! [`require_tool`], [`require_root`] or [`prerequisite_missing`]. A missing prerequisite
//! **fails** the test, with the command that provides it, so that no test reports `ok` without
//! having run. Skipping is an explicit opt-in: with `PORTOLAN_SKIP_MISSING=1` such a test prints
//! `SKIPPED` and returns, and each skip is appended to the file `PORTOLAN_SKIP_LOG` names, so
//! that `scripts/test-skipping.sh` can say how many were skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Whether a missing prerequisite may skip a test (`PORTOLAN_SKIP_MISSING=1`).
pub fn skipping_allowed() -> bool {
    std::env::var_os("PORTOLAN_SKIP_MISSING").is_some_and(|v| v == "1")
}

/// A prerequisite of `test` is missing: panics, saying what and how to get it, unless skipping
/// is allowed; then prints `SKIPPED`, records the skip and returns `false` (so that a test can
/// `return` on it).
pub fn prerequisite_missing(test: &str, what: &str, how: &str) -> bool {
    if !skipping_allowed() {
        panic!("{test}: needs {what}; {how} (or set PORTOLAN_SKIP_MISSING=1 to skip such tests)");
    }
    eprintln!("SKIPPED {test}: needs {what}");
    if let Some(log) = std::env::var_os("PORTOLAN_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
            let _ = writeln!(f, "{test}: {what}");
        }
    }
    false
}

/// True when `tool` is on PATH (or is an existing absolute path). Otherwise see
/// [`prerequisite_missing`].
pub fn require_tool(test: &str, tool: &str) -> bool {
    let found = if tool.starts_with('/') {
        Path::new(tool).is_file()
    } else {
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
    };
    found
        || prerequisite_missing(
            test,
            &format!("`{tool}`"),
            "run `bash scripts/install-test-deps.sh` as root, which installs every tool the tests use",
        )
}

/// True when running as root. Otherwise see [`prerequisite_missing`].
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc_geteuid() } == 0;
    root || prerequisite_missing(
        test,
        "root (network namespaces, raw sockets, kernel firewalls)",
        "run the tests as root (`sudo -E bash scripts/test.sh`)",
    )
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// A temporary directory removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new directory under the system temp dir, named after the test.
    pub fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!("portolan-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Runs a command and returns its output, panicking with the command line if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs `cmd` with no standard input, bounded at `limit` (killed and panicking past it):
/// (exit code, stdout, stderr).
pub fn run_bounded(cmd: &mut Command, limit: std::time::Duration) -> (Option<i32>, String, String) {
    use std::process::Stdio;
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = std::time::Instant::now() + limit;
    let out = loop {
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} ran over {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A lab held across processes: an exclusive `flock` on `/tmp/portolan-NAME.lock`, released
/// when dropped (or when the holder dies). The labs are single-instance (fixed namespace
/// names), so a test run and a benchmark, or two test runs, take turns instead of tearing
/// down each other's lab. Waiting is bounded (`wait`); then the test fails and says so.
pub struct HostLock {
    _file: std::fs::File,
}

/// Takes the machine-wide lock of lab `name`, waiting at most `wait`.
pub fn host_lock(name: &str, wait: std::time::Duration) -> HostLock {
    let path = std::env::temp_dir().join(format!("portolan-{name}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    let t0 = std::time::Instant::now();
    let mut said = false;
    loop {
        match file.try_lock() {
            Ok(()) => return HostLock { _file: file },
            Err(std::fs::TryLockError::WouldBlock) if t0.elapsed() < wait => {
                if !said {
                    eprintln!("waiting for the {name} lab (held by another run: {})", path.display());
                    said = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            Err(e) => panic!("the {name} lab stayed busy for {:?} ({}): {e}", wait, path.display()),
        }
    }
}

/// The project's network lab (`scripts/lab.sh`): namespaces with addresses in 198.18.0.0/15
/// and 2001:db8::/32. One test at a time holds it (in this process by a mutex, across
/// processes by [`host_lock`]); it is torn down when the guard drops.
pub struct Lab {
    script: PathBuf,
    _lock: std::sync::MutexGuard<'static, ()>,
    _host: HostLock,
}

static LAB_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Lab {
    /// Brings the lab up (removing leftovers of a crashed run first). `repo` is the
    /// repository root.
    pub fn up(repo: &Path) -> Lab {
        let lock = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let host = host_lock("lab", std::time::Duration::from_secs(1800));
        let script = repo.join("scripts/lab.sh");
        let o = run(Command::new("bash").arg(&script).arg("up"));
        assert!(o.status.success(), "lab.sh up failed:\n{}{}", stdout(&o), stderr(&o));
        Lab { script, _lock: lock, _host: host }
    }

    /// Drops `pct` % of the packets the scanner sends (`None`: no loss).
    pub fn loss(&self, pct: Option<f64>) {
        let arg = pct.map_or("off".to_string(), |p| p.to_string());
        let o = run(Command::new("bash").arg(&self.script).arg("loss").arg(&arg));
        assert!(o.status.success(), "lab.sh loss {arg}: {}", stderr(&o));
    }

    /// Holds every packet ptl-h6 sends for `ms` milliseconds (`None`: no delay): a path with a
    /// round-trip time (`lab.sh delay`).
    pub fn delay(&self, ms: Option<u32>) {
        let arg = ms.map_or("off".to_string(), |m| m.to_string());
        let o = run(Command::new("bash").arg(&self.script).arg("delay").arg(&arg));
        assert!(o.status.success(), "lab.sh delay {arg}: {}", stderr(&o));
    }

    /// The hosts' ICMP error rate limit per peer, in milliseconds (Linux's default is 1000; 0
    /// turns it off).
    pub fn icmp_ratelimit(&self, ms: u32) {
        let o = run(Command::new("bash").arg(&self.script).arg("icmp-ratelimit").arg(ms.to_string()));
        assert!(o.status.success(), "lab.sh icmp-ratelimit {ms}: {}", stderr(&o));
    }

    /// A command that runs `program` inside the scanner namespace.
    pub fn in_scanner(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", "ptl-scan"]).arg(program);
        c
    }
}

/// A tcpdump capture in the scanner namespace, written to a pcap file; stopped (and the file
/// flushed) by [`Capture::stop`] or when dropped.
pub struct Capture {
    child: Option<std::process::Child>,
}

impl Lab {
    /// Starts `tcpdump -i any` in the scanner namespace with a BPF `filter`, and returns once
    /// it writes (bounded: 5 s).
    pub fn capture(&self, pcap: &Path, filter: &str) -> Capture {
        let child = self
            .in_scanner("tcpdump")
            // immediate mode: libpcap's ring otherwise hands a block over only when it fills or
            // after its 1 s timeout, and tcpdump stopped before that writes none of it (a test
            // then read an empty capture: "32 packets received by filter, 0 captured")
            .args(["--immediate-mode", "-i", "any", "-nn", "-U", "-B", "16384", "-w"])
            .arg(pcap)
            .arg(filter)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tcpdump: {e}"));
        let t0 = std::time::Instant::now();
        while !pcap.exists() && t0.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        Capture { child: Some(child) }
    }
}

impl Capture {
    /// Lets the last packets in, then stops tcpdump with SIGINT so that it flushes the file.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(mut c) = self.child.take() {
            std::thread::sleep(std::time::Duration::from_millis(300));
            let _ = Command::new("kill").arg("-INT").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(&self.script).arg("down").status();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_held_lab_makes_the_next_holder_wait() {
        let name = format!("selftest-{}", std::process::id());
        let first = host_lock(&name, Duration::from_secs(1));
        // a second holder (another open file, as another process would have) waits, then fails
        let n = name.clone();
        let t0 = std::time::Instant::now();
        let second = std::thread::spawn(move || host_lock(&n, Duration::from_millis(700))).join();
        assert!(second.is_err(), "the lock was taken twice");
        assert!(t0.elapsed() >= Duration::from_millis(700));
        drop(first);
        let third = host_lock(&name, Duration::from_secs(1));
        drop(third);
        let _ = std::fs::remove_file(std::env::temp_dir().join(format!("portolan-{name}.lock")));
    }
}
