//! `portolan watch` on real traffic: Zeek's own traces, and a corpus made in network
//! namespaces by real tools (nmap, masscan, ssh against a real sshd, curl) and captured at
//! once by tcpdump, the kernel log and sshd's log (`scripts/watch-corpus.sh`); and on hostile
//! input (truncated and damaged captures, escape sequences, huge lines, a gzip bomb).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use portolan_testkit::{TempDir, host_lock, require_root, require_tool};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn zeek(name: &str) -> String {
    repo().join("crates/traffic/tests/zeek").join(name).display().to_string()
}

/// Runs portolan, bounded at 120 s: (exit code, stdout, stderr).
fn portolan(args: &[&str]) -> (Option<i32>, String, String) {
    portolan_testkit::run_bounded(
        Command::new(env!("CARGO_BIN_EXE_portolan")).args(args).env("NO_COLOR", "1"),
        Duration::from_secs(120),
    )
}

fn json(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let (code, out, err) = portolan(args);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}\n{out}\n{err}"));
    (code, v)
}

#[test]
fn zeek_traces_brute_force_and_nothing_else() {
    let (code, v) = json(&["watch", "-o", "json", &zeek("sshguess.pcap")]);
    assert_eq!(code, Some(1));
    let d = &v["detections"];
    assert_eq!(d.as_array().map(Vec::len), Some(1), "{v:#}");
    assert_eq!(d[0]["kind"], "brute_force");
    assert_eq!(d[0]["src"], "192.168.56.1");
    assert_eq!(d[0]["attack"], serde_json::json!(["T1110", "T1110.001"]));
    // (one run each: ssh.pcap and its client-side half are the same sessions, twice)
    for f in
        ["wikipedia.pcap", "ssh.pcap", "ssh.client-side-half-duplex.pcap", "pcapng-multi-interface.pcapng"]
    {
        let (code, out, _) = portolan(&["watch", &zeek(f)]);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("No scans, sweeps or brute force found."), "{out}");
    }
    let (_, out, _) = portolan(&["watch", &zeek("pcapng-multi-interface.pcapng")]);
    assert!(out.contains("pcapng-multi-interface.pcapng (pcap): 6 packets, 3 events"), "{out}");
    // SARIF, for code-scanning dashboards: one result per detection, located in the input
    let (code, v) = json(&["watch", "-o", "sarif", &zeek("sshguess.pcap")]);
    assert_eq!(code, Some(1));
    let r = &v["runs"][0]["results"][0];
    assert_eq!(
        (r["ruleId"].as_str(), r["level"].as_str()),
        (Some("watch.brute_force"), Some("error")),
        "{v:#}"
    );
    assert!(
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("sshguess.pcap")
    );
    assert_eq!(v["runs"][0]["tool"]["driver"]["rules"][0]["shortDescription"]["text"], "Password guessing");
    // an allowed scanner is reported, as info, and does not fail the run
    let (code, v) =
        json(&["watch", "-o", "json", "--allow-source", "192.168.56.0/24", &zeek("sshguess.pcap")]);
    assert_eq!(code, Some(0));
    assert_eq!(v["detections"][0]["severity"], "info");
    assert_eq!(v["detections"][0]["allowed"], true);
}

/// What the corpus says each attack was: (sources, kind, scan type, tool).
fn truth(dir: &Path) -> Vec<(BTreeSet<String>, String, String, String)> {
    std::fs::read_to_string(dir.join("truth.tsv"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].split(',').map(str::to_string).collect(),
                f[1].to_string(),
                f[2].to_string(),
                f[3].to_string(),
            )
        })
        .collect()
}

fn found(v: &serde_json::Value) -> Vec<(BTreeSet<String>, String, String, String)> {
    v["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let srcs: BTreeSet<String> = match d["src"].as_str() {
                Some(s) => [s.to_string()].into(),
                None => {
                    d["srcs"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
                }
            };
            let st = d["scan_type"].as_str().unwrap_or("-").to_string();
            (srcs, d["kind"].as_str().unwrap().to_string(), st, d["tool"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn the_corpus_made_by_real_tools() {
    let t = "the_corpus_made_by_real_tools";
    if !require_root(t) {
        return;
    }
    for tool in [
        "nmap",
        "masscan",
        "tcpdump",
        "nft",
        "ssh",
        "sshpass",
        "curl",
        "/usr/sbin/sshd",
        "psad",
        "fail2ban-regex",
        "editcap",
    ] {
        if !require_tool(t, tool) {
            return;
        }
    }
    let _lock = host_lock("watch-corpus", Duration::from_secs(600));
    let dir = TempDir::new("watch-corpus");
    let o =
        Command::new("bash").arg(repo().join("scripts/watch-corpus.sh")).arg(dir.path()).output().unwrap();
    assert!(o.status.success(), "watch-corpus.sh failed:\n{}", String::from_utf8_lossy(&o.stderr));
    let want = truth(dir.path());
    assert_eq!(want.len(), 11);
    let benign = "198.18.40.30".to_string();
    for file in [
        "corpus.pcap",
        "corpus.pcapng",
        "kern.log",
        "kern-iso.log",
        "kern-syslog.log",
        "auth.log",
        "kern-iptables.log",
        "nflog.pcap",
    ] {
        let path = dir.join(file);
        let (code, v) = json(&["watch", "-o", "json", path.to_str().unwrap()]);
        assert_eq!(code, Some(1), "{file}");
        let got = found(&v);
        assert!(
            got.iter().all(|g| !g.0.contains(&benign)),
            "{file}: the benign source was detected: {got:?}"
        );
        // what each source can see (docs/watch.md): LOG lines log only the first packet of a
        // connection, so a brute force of one port is no scan there; sshd's log has only logins
        let visible: Vec<_> = want
            .iter()
            .filter(|w| match file {
                "auth.log" => w.1 == "brute_force",
                // iptables LOG logs only the SYNs to 3389: the sweep is all it can see
                "kern-iptables.log" => w.1 == "horizontal_sweep",
                "corpus.pcap" | "corpus.pcapng" => true,
                _ => w.1 != "brute_force",
            })
            .cloned()
            .collect();
        let mut g = got.clone();
        let mut w = visible.clone();
        g.sort();
        w.sort();
        assert_eq!(
            g, w,
            "{file}: detections (sources, kind, scan type, tool) differ from how the corpus was made"
        );
    }
}

#[test]
fn hostile_captures_and_logs() {
    let dir = TempDir::new("watch-hostile");
    let pcap = std::fs::read(zeek("sshguess.pcap")).unwrap();
    // truncated inside a record: located error, exit 2, what was read is still judged
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &pcap[..pcap.len() - 30]).unwrap();
    let (code, out, err) = portolan(&["watch", cut.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("cut.pcap: at byte") && err.contains("truncated"), "{err}");
    assert!(out.contains("brute_force"), "{out}");
    // a record whose length lies
    let mut lie = pcap.clone();
    lie[24 + 8..24 + 12].copy_from_slice(&0x0fff_ffffu32.to_le_bytes());
    let liar = dir.join("lie.pcap");
    std::fs::write(&liar, &lie).unwrap();
    let (code, _, err) = portolan(&["watch", liar.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("lie.pcap: at byte 24:") && err.contains("length field is damaged"), "{err}");
    // not a capture at all, forced
    let (code, _, err) = portolan(&["watch", "--format", "pcap", &zeek("README.md")]);
    assert_eq!(code, Some(2));
    assert!(err.contains("not a pcap or pcapng capture"), "{err}");
    // escape sequences, NUL and a 2 MiB line in a log: escaped, skipped and counted
    let log = dir.join("auth.log");
    let mut f = std::fs::File::create(&log).unwrap();
    for i in 0..6 {
        writeln!(f, "Dec  5 12:00:0{i} victim sshd[7]: Invalid user \x1b]0;pwned\x07\x1b[31m\0x from 198.18.40.66 port {i}").unwrap();
    }
    f.write_all(&vec![b'A'; 2 << 20]).unwrap();
    writeln!(f).unwrap();
    drop(f);
    let (code, out, err) = portolan(&["watch", log.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        !out.contains('\x1b') && !err.contains('\x1b') && !out.contains('\0'),
        "raw escape reached the terminal"
    );
    assert!(out.contains("198.18.40.66 tried 6 logins"), "{out}");
    assert!(out.contains("1 skipped") && err.contains("a line longer than 1 MiB"), "{out}{err}");
    // a gzip bomb: refused, bounded
    let bomb = dir.join("bomb.log.gz");
    let py = format!(
        "import gzip\nwith gzip.open({:?}, 'wb', compresslevel=9) as f:\n    z = bytes(1 << 20)\n    for _ in range(400): f.write(z)\n",
        bomb.to_str().unwrap()
    );
    assert!(Command::new("python3").arg("-c").arg(py).status().unwrap().success());
    let t0 = Instant::now();
    let (code, _, err) = portolan(&["watch", bomb.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("decompression bomb"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(60));
    // gzip of a real capture reads as the capture
    let gz = dir.join("sshguess.pcap.gz");
    let py = format!(
        "import gzip,shutil\nwith open({:?},'rb') as i, gzip.open({:?},'wb') as o: shutil.copyfileobj(i,o)\n",
        zeek("sshguess.pcap"),
        gz.to_str().unwrap()
    );
    assert!(Command::new("python3").arg("-c").arg(py).status().unwrap().success());
    let (code, v) = json(&["watch", "-o", "json", gz.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert_eq!(v["detections"][0]["kind"], "brute_force");
    assert!(v["detections"][0]["evidence"][0].as_str().unwrap().contains("sshguess.pcap.gz#"), "{v:#}");
    // a directory, a device, a missing file: one clear error each
    for (p, says) in [
        (dir.path().to_str().unwrap(), "is a directory"),
        ("/dev/zero", "is a device"),
        ("/nonexistent/x.pcap", "cannot read"),
    ] {
        let (code, _, err) = portolan(&["watch", p]);
        assert_eq!(code, Some(2), "{p}");
        assert!(err.contains(says), "{p}: {err}");
    }
}

#[test]
fn follow_reports_as_it_happens_across_rotation() {
    use std::io::BufRead;
    let dir = TempDir::new("watch-follow");
    let log = dir.join("auth.log");
    std::fs::write(&log, "").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portolan"))
        .args(["watch", "--follow", "-o", "ndjson", log.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).unwrap());
        }
    });
    let append = |p: &Path, src: &str, n: usize| {
        let mut f = std::fs::OpenOptions::new().append(true).create(true).open(p).unwrap();
        for i in 0..n {
            writeln!(
                f,
                "Dec  5 12:00:{i:02} victim sshd[7]: Failed password for root from {src} port {i} ssh2"
            )
            .unwrap();
        }
    };
    std::thread::sleep(Duration::from_millis(500));
    append(&log, "198.18.40.66", 6);
    let t0 = Instant::now();
    let first = rx.recv_timeout(Duration::from_secs(2)).expect("a detection within 2 s of the fifth failure");
    assert_eq!(
        (first["kind"].as_str(), first["src"].as_str(), first["open"].as_bool()),
        (Some("brute_force"), Some("198.18.40.66"), Some(true))
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
    // logrotate: the name moves, the old file gets a last line, a new file takes the name
    std::fs::rename(&log, dir.join("auth.log.1")).unwrap();
    append(&dir.join("auth.log.1"), "198.18.40.66", 1);
    append(&log, "198.18.40.67", 5);
    let second = rx.recv_timeout(Duration::from_secs(3)).expect("the new file is followed");
    assert_eq!(second["src"], "198.18.40.67");
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "watch --follow did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1));
    let finals: Vec<serde_json::Value> = rx.try_iter().collect();
    let of = |src: &str| {
        finals
            .iter()
            .find(|d| d["src"] == src)
            .unwrap_or_else(|| panic!("no final report for {src}: {finals:?}"))
    };
    // the old file's last line counted: no line lost across the rotation
    assert_eq!(of("198.18.40.66")["events"], 7);
    assert_eq!(of("198.18.40.67")["events"], 5);
    assert!(finals.iter().all(|d| d.get("open").is_none()));
}

/// A lab of two namespaces joined by a veth (198.18.42.0/24), removed when dropped.
struct Veth;

impl Veth {
    fn up() -> Veth {
        let sh = |c: &str| {
            let o = Command::new("sh").arg("-c").arg(c).output().unwrap();
            assert!(o.status.success(), "{c}: {}", String::from_utf8_lossy(&o.stderr));
        };
        Veth::down();
        sh("ip netns add ptwi-a && ip netns add ptwi-v");
        sh("ip link add ptwi-a0 netns ptwi-a type veth peer name ptwi-v0 netns ptwi-v");
        sh(
            "ip -n ptwi-a addr add 198.18.42.1/24 dev ptwi-a0 && ip -n ptwi-v addr add 198.18.42.2/24 dev ptwi-v0",
        );
        sh(
            "ip -n ptwi-a link set ptwi-a0 up && ip -n ptwi-v link set ptwi-v0 up && ip -n ptwi-a link set lo up && ip -n ptwi-v link set lo up",
        );
        Veth
    }
    fn down() {
        for ns in ["ptwi-a", "ptwi-v"] {
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!("for p in $(ip netns pids {ns} 2>/dev/null); do kill -9 $p; done; ip netns del {ns} 2>/dev/null"))
                .status();
        }
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        Veth::down();
    }
}

#[test]
fn live_capture_sees_a_scan_within_two_seconds() {
    let t = "live_capture_sees_a_scan_within_two_seconds";
    if !require_root(t) || !require_tool(t, "nmap") {
        return;
    }
    let _lock = host_lock("watch-live", Duration::from_secs(600));
    let _lab = Veth::up();
    let (mut child, rx) = ndjson(
        Command::new("ip")
            .args(["netns", "exec", "ptwi-v", "timeout", "60", env!("CARGO_BIN_EXE_portolan")])
            .args(["watch", "--interface", "ptwi-v0", "-o", "ndjson"]),
    );
    let d = nmap_is_seen(&rx, "-p1-300", "the live capture");
    assert_eq!(d["scan_type"], "syn");
    assert!(d["evidence"][0].as_str().unwrap().starts_with("ptwi-v0#"), "{d}");
    let _ = Command::new("ip")
        .args(["netns", "exec", "ptwi-v", "pkill", "-TERM", "-f", "portolan watch --interface"])
        .status();
    let _ = child.wait();
    // without the privilege, or without the interface: one clear line, exit 2
    let o = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_portolan"),
            "watch",
            "-i",
            "lo",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs root or CAP_NET_RAW"));
    let (code, _, err) = portolan(&["watch", "-i", "ptwi-nosuch0"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no network interface named"), "{err}");
}

#[test]
fn a_new_listener_is_reported_within_a_second_with_its_process() {
    let (mut child, rx) =
        ndjson(Command::new(env!("CARGO_BIN_EXE_portolan")).args(["watch", "--listeners", "-o", "ndjson"]));
    // the baseline is taken at the start
    std::thread::sleep(Duration::from_millis(1500));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let opened = Instant::now();
    let me = format!("(pid {})", std::process::id());
    let found = loop {
        let left = Duration::from_secs(3).saturating_sub(opened.elapsed());
        let (at, d) = rx.recv_timeout(left).unwrap_or_else(|_| panic!("no new_service for port {port}"));
        // other tests open listeners too: only this one counts
        if d["ports"].as_str() == Some(port.to_string().as_str()) {
            break (at, d);
        }
    };
    assert!(found.0 - opened < Duration::from_secs(1), "reported after {:?}", found.0 - opened);
    assert_eq!(found.1["kind"], "new_service");
    assert!(found.1["evidence"][0].as_str().unwrap().contains(&me), "{}", found.1);
    assert!(
        found.1["summary"]
            .as_str()
            .unwrap()
            .starts_with(&format!("a new listener on 127.0.0.1:{port}/tcp, held by"))
    );
    drop(listener);
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
}

#[test]
fn with_a_policy_only_an_unapproved_listener_is_reported() {
    let dir = TempDir::new("watch-listeners-policy");
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let approved = free();
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, format!("[[allow]]\nports = {approved}\nowner = \"o\"\npurpose = \"p\"\n"))
        .unwrap();
    let (mut child, rx) = ndjson(Command::new(env!("CARGO_BIN_EXE_portolan")).args([
        "watch",
        "--listeners",
        "--policy",
        policy.to_str().unwrap(),
        "-o",
        "ndjson",
    ]));
    std::thread::sleep(Duration::from_millis(1500));
    // an approved listener first: nothing to report
    let ok = std::net::TcpListener::bind(("127.0.0.1", approved)).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let bad = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = bad.local_addr().unwrap().port();
    let opened = Instant::now();
    let found = loop {
        let left = Duration::from_secs(3).saturating_sub(opened.elapsed());
        let (at, d) = rx.recv_timeout(left).unwrap_or_else(|_| panic!("no new_service for port {port}"));
        assert_ne!(
            d["ports"].as_str(),
            Some(approved.to_string().as_str()),
            "an approved listener was reported: {d}"
        );
        if d["ports"].as_str() == Some(port.to_string().as_str()) {
            break (at, d);
        }
    };
    assert!(found.0 - opened < Duration::from_secs(1), "reported after {:?}", found.0 - opened);
    let summary = found.1["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("policy {}", policy.display())) && summary.contains("not approved"),
        "{summary}"
    );
    assert!(found.1["evidence"][0].as_str().unwrap().contains(&format!("(pid {})", std::process::id())));
    drop((ok, bad));
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
}

/// `--listeners --baseline SNAPSHOT`: the saved inventory is the baseline, not the start: a
/// listener opened after the inventory was saved is reported at the first look, one in the
/// inventory is not.
#[test]
fn with_a_saved_inventory_as_baseline_a_listener_it_lacks_is_reported() {
    use std::io::BufRead;
    let dir = TempDir::new("watch-listeners-baseline");
    let db = dir.join("b.db");
    let known = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let known_port = known.local_addr().unwrap().port();
    let (code, _, err) = portolan(&["ls", "--save", "--db", db.to_str().unwrap(), "-q"]);
    assert_eq!(code, Some(0), "{err}");
    let later = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let later_port = later.local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portolan"))
        .args(["watch", "--listeners", "--baseline", "last", "--db", db.to_str().unwrap(), "-o", "ndjson"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).unwrap());
        }
    });
    let t0 = Instant::now();
    let found = loop {
        let left = Duration::from_secs(4).saturating_sub(t0.elapsed());
        let d = rx.recv_timeout(left).unwrap_or_else(|_| panic!("no new_service for port {later_port}"));
        assert_ne!(
            d["ports"].as_str(),
            Some(known_port.to_string().as_str()),
            "a listener the inventory has: {d}"
        );
        if d["ports"].as_str() == Some(later_port.to_string().as_str()) {
            break d;
        }
    };
    assert!(found["summary"].as_str().unwrap().contains("a new listener"), "{found}");
    drop((known, later));
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
    // a scan snapshot has no listeners to compare with
    let xml = dir.join("s.xml");
    std::fs::write(&xml, r#"<?xml version="1.0"?><nmaprun scanner="nmap" args="nmap" start="1" version="7.93" xmloutputversion="1.05"><runstats><finished time="2" timestr="x" elapsed="1" summary="x" exit="success"/><hosts up="0" down="0" total="0"/></runstats></nmaprun>"#).unwrap();
    let (code, _, err) =
        portolan(&["import", xml.to_str().unwrap(), "--save", "--db", db.to_str().unwrap(), "-q"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) =
        portolan(&["watch", "--listeners", "--baseline", "last", "--db", db.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("ls --save"), "{err}");
}

#[test]
fn alerts_reach_a_command_and_an_http_endpoint() {
    use std::io::BufRead;
    let dir = TempDir::new("watch-alerts");
    let posted = dir.join("posted.json");
    // a loopback HTTP server that keeps the body of one POST
    let server = format!(
        "import http.server, sys\n\
         class H(http.server.BaseHTTPRequestHandler):\n\
         \x20   def do_POST(self):\n\
         \x20       body = self.rfile.read(int(self.headers['Content-Length']))\n\
         \x20       open({:?}, 'wb').write(body)\n\
         \x20       self.send_response(204); self.end_headers()\n\
         \x20   def log_message(self, *a): pass\n\
         s = http.server.HTTPServer(('127.0.0.1', 0), H)\n\
         print(s.server_address[1], flush=True)\n\
         s.timeout = 30\n\
         s.handle_request()\n",
        posted.to_str().unwrap()
    );
    let mut py = Command::new("python3").arg("-c").arg(server).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(py.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port: u16 = line.trim().parse().unwrap();
    let piped = dir.join("piped.json");
    let (code, _, err) = portolan(&[
        "watch",
        "--alert-exec",
        &format!("cat > {}", piped.display()),
        "--alert-url",
        &format!("http://127.0.0.1:{port}/hook"),
        &zeek("sshguess.pcap"),
    ]);
    let _ = py.wait();
    assert_eq!(code, Some(1), "{err}");
    for f in [&piped, &posted] {
        let d: serde_json::Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        assert_eq!(
            (d["kind"].as_str(), d["src"].as_str()),
            (Some("brute_force"), Some("192.168.56.1")),
            "{}",
            f.display()
        );
    }
    let (code, _, err) =
        portolan(&["watch", "--alert-url", "https://example.invalid/", &zeek("sshguess.pcap")]);
    assert_eq!(code, Some(2));
    assert!(err.contains("is not an http://"), "{err}");
}

#[test]
fn nflog_sees_a_scan_within_two_seconds() {
    let t = "nflog_sees_a_scan_within_two_seconds";
    if !require_root(t) || !require_tool(t, "nmap") || !require_tool(t, "nft") {
        return;
    }
    let _lock = host_lock("watch-live", Duration::from_secs(600));
    let _lab = Veth::up();
    let rules = "table inet ptwi {\n chain input {\n  type filter hook input priority 0; policy accept;\n  ct state established,related accept\n  iif \"lo\" accept\n  log group 7\n  meta l4proto tcp reject with tcp reset\n }\n}\n";
    let mut nft = Command::new("ip")
        .args(["netns", "exec", "ptwi-v", "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    nft.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
    assert!(nft.wait().unwrap().success());
    let (mut child, rx) = ndjson(
        Command::new("ip")
            .args(["netns", "exec", "ptwi-v", "timeout", "60", env!("CARGO_BIN_EXE_portolan")])
            .args(["watch", "--nflog", "7", "-o", "ndjson"]),
    );
    let d = nmap_is_seen(&rx, "-p1-200", "the NFLOG group");
    assert!(d["evidence"][0].as_str().unwrap().starts_with("nflog:7#"), "{d}");
    let _ = Command::new("ip")
        .args(["netns", "exec", "ptwi-v", "pkill", "-TERM", "-f", "portolan watch --nflog"])
        .status();
    let _ = child.wait();
}

#[test]
fn a_service_the_baseline_does_not_know_is_new() {
    let dir = TempDir::new("watch-baseline");
    let db = dir.join("b.db");
    let xml = |port: u16| {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<nmaprun scanner="nmap" args="nmap -p{port} 192.168.56.103" start="1427726600" version="7.93" xmloutputversion="1.05">
<host starttime="1427726600" endtime="1427726601"><status state="up" reason="syn-ack" reason_ttl="64"/>
<address addr="192.168.56.103" addrtype="ipv4"/>
<ports><port protocol="tcp" portid="{port}"><state state="open" reason="syn-ack" reason_ttl="64"/></port></ports>
</host>
<runstats><finished time="1427726601" timestr="x" elapsed="1.00" summary="x" exit="success"/><hosts up="1" down="0" total="1"/></runstats>
</nmaprun>
"#
        )
    };
    let new_services = |port: u16| {
        let f = dir.join(&format!("scan-{port}.xml"));
        std::fs::write(&f, xml(port)).unwrap();
        let (code, _, err) =
            portolan(&["import", f.to_str().unwrap(), "--save", "--db", db.to_str().unwrap(), "-o", "json"]);
        assert_eq!(code, Some(0), "{err}");
        let (_, v) = json(&[
            "watch",
            "-o",
            "json",
            "--baseline",
            "last",
            "--db",
            db.to_str().unwrap(),
            &zeek("sshguess.pcap"),
        ]);
        v["detections"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"] == "new_service")
            .cloned()
            .collect::<Vec<_>>()
    };
    // the baseline knows ssh on .103: nothing new
    assert!(new_services(22).is_empty());
    // a baseline that knows another port: ssh answering is new
    let found = new_services(2222);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0]["targets"][0].as_str(), found[0]["ports"].as_str()),
        (Some("192.168.56.103"), Some("22"))
    );
    assert!(found[0]["summary"].as_str().unwrap().contains("which snapshot 2 does not know"));
    // a reference that does not exist: one clear error
    let (code, _, err) =
        portolan(&["watch", "--baseline", "last~9", "--db", db.to_str().unwrap(), &zeek("sshguess.pcap")]);
    assert_eq!(code, Some(2), "{err}");

    // a policy as the baseline: ssh approved on that host, nothing new; approved elsewhere
    // only, ssh answering on .103 is new
    let by_policy = |text: &str| {
        let policy = dir.join("policy.toml");
        std::fs::write(&policy, text).unwrap();
        let (_, v) =
            json(&["watch", "-o", "json", "--policy", policy.to_str().unwrap(), &zeek("sshguess.pcap")]);
        v["detections"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"] == "new_service")
            .cloned()
            .collect::<Vec<_>>()
    };
    let allow = |hosts: &str| {
        format!("[[allow]]\nhosts = [\"{hosts}\"]\nports = 22\nowner = \"o\"\npurpose = \"p\"\n")
    };
    assert!(by_policy(&allow("192.168.56.103")).is_empty());
    let found = by_policy(&allow("198.18.9.9"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["ports"].as_str(), Some("22"));
    assert!(found[0]["summary"].as_str().unwrap().contains("which policy "), "{}", found[0]);
}

/// AWS VPC flow logs (no AWS here: records written in the documented default format, with a
/// header as S3 delivery writes it): a sweep and a port scan refused by the security group are
/// found, sessions to a web server and the server's answers are not.
#[test]
fn vpc_flow_logs_show_sweeps_and_scans() {
    let dir = TempDir::new("watch-vpc");
    let mut text = String::from(
        "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n",
    );
    let rec = |src: &str, dst: &str, sp: u16, dp: u16, pk: u32, by: u32, t: u64, action: &str| {
        format!(
            "2 123456789010 eni-0a1b2c3d4e5f67890 {src} {dst} {sp} {dp} 6 {pk} {by} {t} {} {action} OK\n",
            t + 60
        )
    };
    let t0 = 1_790_000_000u64;
    // a sweep of 22 and 3389 across 30 hosts
    for h in 1..=30u16 {
        for p in [22u16, 3389] {
            text.push_str(&rec(
                "198.18.99.7",
                &format!("198.18.20.{h}"),
                40000 + h,
                p,
                1,
                44,
                t0 + u64::from(h),
                "REJECT",
            ));
        }
    }
    // 40 ports of one host
    for p in 1000..1040u16 {
        text.push_str(&rec("198.18.99.8", "198.18.20.5", 51000, p, 1, 40, t0 + 100, "REJECT"));
    }
    // a web client's sessions, and the server's answers
    for i in 0..50u16 {
        text.push_str(&rec(
            "198.18.5.5",
            "198.18.20.9",
            50000 + i,
            443,
            12,
            5200,
            t0 + 200 + u64::from(i),
            "ACCEPT",
        ));
        text.push_str(&rec(
            "198.18.20.9",
            "198.18.5.5",
            443,
            50000 + i,
            10,
            90000,
            t0 + 200 + u64::from(i),
            "ACCEPT",
        ));
    }
    text.push_str("2 123456789010 eni-0a1b2c3d4e5f67890 - - - - - - - 1790000900 1790000960 - NODATA\n");
    let log = dir.join("flows.log");
    std::fs::write(&log, &text).unwrap();
    let (code, v) = json(&["watch", "-o", "json", log.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["inputs"][0]["format"], "vpc");
    let found: BTreeSet<(String, String)> = v["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["kind"].as_str().unwrap().to_string(), d["src"].as_str().unwrap_or("").to_string()))
        .collect();
    assert_eq!(
        found,
        BTreeSet::from([
            ("horizontal_sweep".to_string(), "198.18.99.7".to_string()),
            ("vertical_scan".to_string(), "198.18.99.8".to_string()),
        ]),
        "{v}"
    );
    assert!(v["detections"][0]["evidence"][0].as_str().unwrap().contains("flows.log:"), "{v}");
    // a header without the fields a flow needs: one located error
    let bad = dir.join("bad.log");
    std::fs::write(&bad, "version srcaddr dstaddr action\n").unwrap();
    let (code, _, err) = portolan(&["watch", "--format", "vpc", bad.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.log:1") && err.contains("srcport"), "{err}");
}

/// `watch --save`: the detections as a snapshot of findings that `snapshots` lists and
/// `report` shows.
#[test]
fn saved_detections_reach_snapshots_and_the_report() {
    let dir = TempDir::new("watch-save");
    let db = dir.join("w.db");
    let (code, _, err) =
        portolan(&["watch", "--save", "--db", db.to_str().unwrap(), "-q", &zeek("sshguess.pcap")]);
    assert_eq!(code, Some(1), "{err}");
    let (_, list) = json(&["snapshots", "--db", db.to_str().unwrap(), "-o", "json"]);
    assert_eq!(list[0]["source"], "watch", "{list}");
    assert_eq!(list[0]["findings"], 1, "{list}");
    let (_, snap) = json(&["snapshots", "--db", db.to_str().unwrap(), "--show", "last"]);
    assert_eq!(snap["findings"][0]["rule"], "watch.brute_force", "{snap}");
    let page = dir.join("r.html");
    let (code, _, err) = portolan(&["report", "--db", db.to_str().unwrap(), "-o", page.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(std::fs::read_to_string(&page).unwrap().contains("watch.brute_force"));
    // --db alone names nothing to use it for; --save reads files only
    let (code, _, err) = portolan(&["watch", "--db", db.to_str().unwrap(), &zeek("sshguess.pcap")]);
    assert_eq!(code, Some(2), "{err}");
    let (code, _, _) = portolan(&["watch", "--save", "-f", &zeek("sshguess.pcap")]);
    assert_eq!(code, Some(2));
}

/// `watch --journal`: journal files written by systemd's own `systemd-journal-remote` (no
/// journald runs here), followed through journalctl; failed sshd logins appended while the
/// watch runs are a brute force within seconds, those written before the start are not read.
#[test]
fn the_journal_is_followed() {
    use std::io::BufRead;
    const T: &str = "the_journal_is_followed";
    let remote = "/lib/systemd/systemd-journal-remote";
    if !require_tool(T, "journalctl") || !require_tool(T, remote) {
        return;
    }
    let dir = TempDir::new("watch-journal");
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap().trim().replace('-', "");
    let append = |from: &str, n: u32, first: u32| {
        let now = jiff::Timestamp::now().as_microsecond();
        let mut text = String::new();
        for i in 0..n {
            let t = now + i64::from(i) * 1000;
            text.push_str(&format!(
                "__CURSOR=s=0;i={}\n__REALTIME_TIMESTAMP={t}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID={boot}\n_TRANSPORT=syslog\nSYSLOG_IDENTIFIER=sshd\n_COMM=sshd\n_PID=77\n_HOSTNAME=victim\nMESSAGE=Failed password for root from {from} port {} ssh2\n\n",
                first + i,
                t / 1000,
                7000 + i
            ));
        }
        let mut child = Command::new(remote)
            .arg(format!("--output={}", dir.join("remote.journal").display()))
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
    };
    // before the watch: not read (the journal is followed from its end)
    append("198.18.40.20", 6, 1);
    let mut child = Command::new(env!("CARGO_BIN_EXE_portolan"))
        .args(["watch", "--journal", "--journal-directory", dir.path().to_str().unwrap(), "-o", "ndjson"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).unwrap());
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    append("198.18.40.21", 6, 100);
    let d = rx.recv_timeout(Duration::from_secs(5)).expect("no detection from the journal");
    assert_eq!((d["kind"].as_str(), d["src"].as_str()), (Some("brute_force"), Some("198.18.40.21")), "{d}");
    assert!(d["evidence"][0].as_str().unwrap().starts_with("journal:"), "{d}");
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
    // nothing about the entries written before the start
    while let Ok(d) = rx.try_recv() {
        assert_ne!(d["src"].as_str(), Some("198.18.40.20"), "{d}");
    }
}

/// Spawns a watch (or what runs one) whose standard output is NDJSON, and a thread that hands
/// each parsed line over with the moment it came.
fn ndjson(
    cmd: &mut Command,
) -> (std::process::Child, std::sync::mpsc::Receiver<(Instant, serde_json::Value)>) {
    use std::io::BufRead;
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send((Instant::now(), serde_json::from_str(&line).unwrap()));
        }
    });
    (child, rx)
}

/// nmap `-sS` from the attacker namespace of the live lab against the victim (198.18.42.2),
/// then the watch's first detection: a vertical scan by nmap from 198.18.42.1, within 2 s of
/// nmap's end.
fn nmap_is_seen(
    rx: &std::sync::mpsc::Receiver<(Instant, serde_json::Value)>,
    ports: &str,
    what: &str,
) -> serde_json::Value {
    std::thread::sleep(Duration::from_millis(700));
    let o = Command::new("ip")
        .args(["netns", "exec", "ptwi-a", "timeout", "60", "nmap", "-n", "-Pn", "-sS", ports])
        .args(["--max-retries", "1", "198.18.42.2"])
        .output()
        .unwrap();
    let scan_end = Instant::now();
    assert!(o.status.success(), "nmap: {}", String::from_utf8_lossy(&o.stderr));
    let (at, d) =
        rx.recv_timeout(Duration::from_secs(5)).unwrap_or_else(|_| panic!("no detection from {what}"));
    assert!(
        at.saturating_duration_since(scan_end) < Duration::from_secs(2),
        "the detection came {:?} after the scan",
        at - scan_end
    );
    assert_eq!(
        (d["kind"].as_str(), d["src"].as_str(), d["tool"].as_str()),
        (Some("vertical_scan"), Some("198.18.42.1"), Some("nmap"))
    );
    d
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn http_get(url_path: &str, port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {url_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut out);
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

#[test]
fn prometheus_scrapes_the_metrics() {
    use std::io::BufRead;
    let t = "prometheus_scrapes_the_metrics";
    if !require_tool(t, "prometheus") || !require_tool(t, "promtool") {
        return;
    }
    let dir = TempDir::new("watch-metrics");
    let log = dir.join("auth.log");
    std::fs::write(&log, "").unwrap();
    let port = free_port();
    let mut watch = Command::new(env!("CARGO_BIN_EXE_portolan"))
        .args([
            "watch",
            "-f",
            "-o",
            "ndjson",
            "--metrics",
            &format!("127.0.0.1:{port}"),
            log.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    std::thread::sleep(Duration::from_millis(500));
    {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        for i in 0..6 {
            writeln!(
                f,
                "Dec  5 12:00:0{i} victim sshd[7]: Failed password for root from 198.18.40.66 port {i} ssh2"
            )
            .unwrap();
        }
    }
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("brute_force"), "{first}");
    std::thread::sleep(Duration::from_millis(1200));
    // the exposition is valid for Prometheus's own checker
    let text = http_get("/metrics", port);
    assert!(
        text.contains("portolan_watch_detections_total{kind=\"brute_force\",severity=\"high\"} 1"),
        "{text}"
    );
    assert!(text.contains("portolan_watch_lines_total{source="), "{text}");
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let o = check.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // a real Prometheus server, on loopback, scrapes it and answers a query for the counter
    let prom_port = free_port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: portolan\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"),
    )
    .unwrap();
    let mut prom = Command::new("timeout")
        .args(["60", "prometheus"])
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let value = loop {
        std::thread::sleep(Duration::from_millis(500));
        let body = std::net::TcpStream::connect(("127.0.0.1", prom_port))
            .ok()
            .map(|_| http_get("/api/v1/query?query=portolan_watch_detections_total", prom_port))
            .unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(body.trim())
            && let Some(r) = v["data"]["result"].as_array().and_then(|r| r.first())
        {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "Prometheus did not scrape the metrics in 30 s");
    };
    let _ = prom.kill();
    let _ = prom.wait();
    assert_eq!(value["metric"]["kind"], "brute_force");
    assert_eq!(value["value"][1], "1");
    let _ = Command::new("kill").arg("-TERM").arg(watch.id().to_string()).status();
    let _ = watch.wait();
}
