//! Inputs that are not what they claim: devices, FIFOs and directories named as files, policy
//! includes that reach outside the policy, and untrusted text (from an imported file, from a
//! process name any local user can set) on its way to CSV and the terminal. Each is a clear
//! error or escaped text — never a hang, an unbounded read, a raw control byte or a formula.

#![allow(clippy::unwrap_used)]

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portolan_testkit::{TempDir, require_tool};

fn portolan(args: &[&str]) -> (Option<i32>, String, String, Duration) {
    let t0 = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portolan"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // bounded: a hang is a failure, not a stuck test run
    let deadline = t0 + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{args:?} did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr), t0.elapsed())
}

#[test]
fn devices_fifos_and_directories_are_clear_errors() {
    let dir = TempDir::new("hostile-inputs");
    let fifo = dir.join("fifo");
    let o = Command::new("mkfifo").arg(&fifo).output().unwrap();
    assert!(o.status.success());
    let fifo = fifo.to_str().unwrap();
    let d = dir.path().to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["fw", "show", "/dev/zero"], "larger than 256 MiB"),
        (vec!["fw", "lint", "/dev/zero"], "larger than 256 MiB"),
        (vec!["fw", "show", fifo], "not an iptables-save file"),
        (vec!["fw", "show", d], "is a directory, not a file"),
        (
            vec!["fw", "show", "--format", "iptables", "--ipset", "/dev/zero", "/dev/null"],
            "larger than 256 MiB",
        ),
        (vec!["import", fifo], "not an nmap XML file"),
        (vec!["import", d], "is a directory, not a file"),
        (vec!["diff", fifo, fifo], "not an nmap XML file"),
        (vec!["scan", "-sT", "-iL", "/dev/zero"], "larger than 256 MiB"),
        (vec!["scan", "-sT", "-iL", fifo], "no targets"),
        (vec!["policy", "check", "/dev/zero"], "larger than 16 MiB"),
    ];
    for (args, want) in &cases {
        let (code, _, err, took) = portolan(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: wanted {want:?} in {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(took < Duration::from_secs(30), "{args:?} took {took:?}");
    }
    // a FIFO nobody writes to reads as empty, at once (an empty policy approves nothing)
    let (code, _, err, took) = portolan(&["policy", "check", fifo]);
    assert_eq!(code, Some(0), "{err}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn policy_includes_stay_in_the_policy_directory() {
    let dir = TempDir::new("policy-include");
    let inner = dir.join("policy");
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::write(dir.join("outside.toml"), "version = 1\n").unwrap();
    let main = inner.join("main.toml");
    for (include, want) in [
        ("/dev/zero", "/dev/zero is outside the policy's directory"),
        ("../outside.toml", "outside.toml is outside the policy's directory"),
    ] {
        std::fs::write(&main, format!("version = 1\ninclude = [\"{include}\"]\n")).unwrap();
        let (code, _, err, _) = portolan(&["policy", "check", main.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{include}: {err}");
        assert!(err.contains("main.toml:2:") && err.contains(want), "{include}: {err}");
        assert!(err.contains("--include-anywhere"), "the binary names the flag: {err}");
    }
    // allowed, the outside file is read, and /dev/zero is still bounded by what is read
    std::fs::write(&main, "version = 1\ninclude = [\"../outside.toml\"]\n").unwrap();
    let (code, _, err, _) = portolan(&["policy", "check", "--include-anywhere", main.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    std::fs::write(&main, "version = 1\ninclude = [\"/dev/zero\"]\n").unwrap();
    let (code, _, err, _) = portolan(&["policy", "check", "--include-anywhere", main.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("larger than 16 MiB"), "{err}");
}

/// Control bytes and formulas in CSV cells: from an imported file's service fields.
#[test]
fn csv_from_an_imported_file_has_no_control_bytes_or_formulas() {
    let dir = TempDir::new("csv-import");
    let xml = dir.join("hostile.xml");
    std::fs::write(
        &xml,
        r#"<?xml version="1.0"?>
<nmaprun scanner="nmap" args="nmap" start="1700000000" version="7.94" xmloutputversion="1.05">
<host><status state="up" reason="syn-ack"/><address addr="198.18.0.1" addrtype="ipv4"/>
<hostnames><hostname name="=HYPERLINK(&quot;http://x&quot;)" type="user"/></hostnames>
<ports><port protocol="tcp" portid="80"><state state="open" reason="syn-ack"/>
<service name="http" product="evil&#x1b;]0;owned&#x7;" version="@SUM(1+1)" extrainfo="+cmd"/></port></ports>
</host><runstats><finished time="1700000001"/><hosts up="1" down="0" total="1"/></runstats></nmaprun>
"#,
    )
    .unwrap();
    let (code, out, err, _) = portolan(&["import", xml.to_str().unwrap(), "-o", "csv"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.bytes().any(|b| b == 0x1b || b == 0x07), "raw control bytes: {out:?}");
    assert!(out.contains("evil\\x1b]0;owned\\x07"), "{out}");
    assert!(out.contains("\"'=HYPERLINK(\"\"http://x\"\")\""), "{out}");
    assert!(out.contains(",'@SUM(1+1),'+cmd"), "{out}");
    // the terminal table escapes the same text once
    let (_, table, _, _) = portolan(&["import", xml.to_str().unwrap()]);
    assert!(table.contains("evil\\x1b]0;owned\\x07") && !table.contains("\\\\x1b"), "{table}");
}

/// A listener whose process sets its own name (prctl PR_SET_NAME): what root's `ls` prints.
struct Named {
    child: Child,
    port: u16,
}

impl Named {
    fn start(name: &[u8]) -> Named {
        let hex: String = name.iter().map(|b| format!("{b:02x}")).collect();
        let script = format!(
            "import ctypes, socket, sys, time\n\
             ctypes.CDLL(None).prctl(15, ctypes.c_char_p(bytes.fromhex('{hex}')), 0, 0, 0)\n\
             s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n\
             print(s.getsockname()[1], flush=True)\n\
             time.sleep(60)\n"
        );
        let mut child = Command::new("python3").args(["-c", &script]).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap();
        Named { child, port }
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn csv_of_process_names_has_no_control_bytes_or_formulas() {
    if !require_tool("csv_of_process_names_has_no_control_bytes_or_formulas", "python3") {
        return;
    }
    let escape = Named::start(b"\x1b]0;pwn\x07\x1b[2J");
    let formula = Named::start(b"=HYPERLINK(1)");
    let ports = format!("{},{}", escape.port, formula.port);
    let (code, out, err, _) = portolan(&["ls", "-t", "--port", &ports, "-o", "csv"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.bytes().any(|b| b == 0x1b || b == 0x07), "raw control bytes: {out:?}");
    assert!(out.contains("\\x1b]0;pwn\\x07\\x1b[2J"), "{out}");
    assert!(out.contains(",'=HYPERLINK(1),"), "{out}");
    let (_, table, _, _) = portolan(&["ls", "-t", "--port", &ports]);
    assert!(!table.bytes().any(|b| b == 0x1b || b == 0x07), "raw control bytes: {table:?}");
}
