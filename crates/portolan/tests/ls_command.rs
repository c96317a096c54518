//! `portolan ls` against `ss` in the same run, on real sockets the test makes (loopback and a
//! namespace the test creates), with one test per case an inventory must get right.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portolan_testkit::{TempDir, require_root, require_tool, run, stderr, stdout};
use serde_json::Value;

const SOCKLOAD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/sockload.py");

fn portolan() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_portolan"));
    c.env("NO_COLOR", "1");
    c
}

/// Zoos bind fixed addresses (127.4.0.x) and pick free ports: one at a time.
static ZOO_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A running sockload.py; stopped (by pid) on drop.
struct Zoo {
    child: Child,
    ready: Value,
    _dir: TempDir,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl Zoo {
    fn start(args: &[&str]) -> Zoo {
        let lock = ZOO_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = TempDir::new("zoo");
        let ready = dir.join("ready.json");
        let child = Command::new("python3")
            .arg(SOCKLOAD)
            .arg("--ready")
            .arg(&ready)
            .args(["--timeout", "300"])
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut child = child;
        while !ready.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("sockload exited before it was ready: {status}");
            }
            assert!(Instant::now() < deadline, "sockload did not get ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        let ready: Value = serde_json::from_str(&std::fs::read_to_string(&ready).unwrap()).unwrap();
        Zoo { child, ready, _dir: dir, _lock: lock }
    }

    fn pids(&self) -> BTreeSet<u64> {
        let mut p: BTreeSet<u64> =
            self.ready["children"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        p.insert(self.ready["parent"].as_u64().unwrap());
        p
    }

    fn extra(&self, name: &str) -> &Value {
        &self.ready["extras"][name]
    }
}

impl Drop for Zoo {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

type Key = (String, IpAddr, u16, u64);

/// `(transport, address, port, inode) → owner pids` from `ss -H <flags>`.
fn ss_sockets(flags: &str) -> BTreeMap<Key, BTreeSet<u64>> {
    let o = run(Command::new("ss").args(["-H", flags]));
    assert!(o.status.success(), "ss: {}", stderr(&o));
    let mut out = BTreeMap::new();
    for line in stdout(&o).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 {
            continue;
        }
        let local = f[4];
        let (host, port) = local.rsplit_once(':').unwrap();
        let host = host.split('%').next().unwrap().trim_start_matches('[').trim_end_matches(']');
        let host = if host == "*" { "::" } else { host };
        let Ok(addr) = host.parse::<IpAddr>() else { continue };
        let ino =
            line.split("ino:").nth(1).and_then(|s| s.split_whitespace().next()).and_then(|s| s.parse().ok());
        let Some(ino) = ino else { continue };
        let pids: BTreeSet<u64> = line
            .split("pid=")
            .skip(1)
            .filter_map(|s| s.split(',').next())
            .filter_map(|s| s.parse().ok())
            .collect();
        out.insert((f[0].to_string(), addr, port.parse().unwrap(), ino), pids);
    }
    out
}

fn ls_json(args: &[&str]) -> Value {
    let o = run(portolan().arg("ls").args(args).args(["-o", "json"]));
    assert!(o.status.success(), "portolan ls: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn portolan_sockets(inv: &Value) -> BTreeMap<Key, BTreeSet<u64>> {
    inv["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let key = (
                s["transport"].as_str().unwrap().to_string(),
                s["local_address"].as_str().unwrap().parse().unwrap(),
                s["local_port"].as_u64().unwrap() as u16,
                s["inode"].as_u64().unwrap(),
            );
            let pids = s["owners"].as_array().unwrap().iter().map(|o| o["pid"].as_u64().unwrap()).collect();
            (key, pids)
        })
        .collect()
}

fn only_zoo(m: BTreeMap<Key, BTreeSet<u64>>, zoo: &BTreeSet<u64>) -> BTreeMap<Key, BTreeSet<u64>> {
    m.into_iter().filter(|(_, pids)| pids.iter().any(|p| zoo.contains(p))).collect()
}

fn find<'a>(inv: &'a Value, transport: &str, port: u64) -> Vec<&'a Value> {
    inv["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["transport"] == transport && s["local_port"] == port)
        .collect()
}

#[test]
fn listeners_and_owners_match_ss() {
    let t = "listeners_and_owners_match_ss";
    if !require_tool(t, "ss") || !require_tool(t, "python3") {
        return;
    }
    let zoo = Zoo::start(&["--tcp-listen", "60", "--udp", "30", "--conns", "40", "--procs", "4", "--extras"]);
    let pids = zoo.pids();
    // listeners: ss -tulpen against portolan ls
    let theirs = only_zoo(ss_sockets("-tulpen"), &pids);
    let ours = only_zoo(portolan_sockets(&ls_json(&[])), &pids);
    assert!(theirs.len() >= 60 + 30 + 4, "ss saw only {} zoo sockets", theirs.len());
    assert_eq!(ours, theirs, "listener sets or owner pids differ");
    // all states: ss -tuapen against portolan ls -a
    let theirs = only_zoo(ss_sockets("-tuapen"), &pids);
    let ours = only_zoo(portolan_sockets(&ls_json(&["-a"])), &pids);
    assert!(theirs.keys().filter(|k| k.0 == "tcp").count() > 80, "connections missing from ss");
    assert_eq!(ours, theirs, "socket sets or owner pids differ with -a");
    // the /proc/net fallback finds the same listeners
    let fallback = only_zoo(portolan_sockets(&ls_json(&["--procfs"])), &pids);
    let listeners = only_zoo(portolan_sockets(&ls_json(&[])), &pids);
    assert_eq!(fallback, listeners);
}

#[test]
fn a_listener_shared_by_four_processes_lists_every_owner() {
    if !require_tool("shared", "python3") {
        return;
    }
    let zoo = Zoo::start(&["--procs", "4", "--extras"]);
    let e = zoo.extra("shared");
    let inv = ls_json(&["--port", &e["port"].to_string()]);
    let s = find(&inv, "tcp", e["port"].as_u64().unwrap());
    assert_eq!(s.len(), 1, "one socket");
    assert_eq!(s[0]["inode"], e["inode"]);
    let owners: BTreeSet<u64> =
        s[0]["owners"].as_array().unwrap().iter().map(|o| o["pid"].as_u64().unwrap()).collect();
    let children: BTreeSet<u64> =
        zoo.ready["children"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(owners, children);
    assert!(
        s[0]["owners"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["comm"].as_str().unwrap().starts_with("sockload-"))
    );
    // the table shows them on one row
    let o = run(portolan().args(["ls", "--port", &e["port"].to_string()]));
    let text = stdout(&o);
    assert_eq!(text.lines().filter(|l| l.contains("127.4.0.1:")).count(), 1, "{text}");
    // two names and a count: a socket shared by many differently named processes keeps the
    // row readable (one was 438 characters wide)
    assert!(text.contains("sockload-00[") && text.contains("+2 more (2 names)"), "{text}");
    let row = text.lines().find(|l| l.contains("127.4.0.1:")).unwrap();
    assert!(row.chars().count() < 120, "{} characters: {row}", row.chars().count());
}

#[test]
fn a_reuseport_group_is_recognised() {
    if !require_tool("reuseport", "python3") {
        return;
    }
    let zoo = Zoo::start(&["--extras"]);
    let e = zoo.extra("reuseport");
    let inv = ls_json(&["--port", &e["port"].to_string()]);
    let s = find(&inv, "tcp", e["port"].as_u64().unwrap());
    assert_eq!(s.len(), 3);
    let inodes: BTreeSet<u64> = s.iter().map(|x| x["inode"].as_u64().unwrap()).collect();
    let want: BTreeSet<u64> = e["inodes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(inodes, want);
    assert!(s.iter().all(|x| x["reuseport_group"] == 3));
    // a lone listener is not a group
    let shared = zoo.extra("dual_stack");
    let inv = ls_json(&["--port", &shared["port"].to_string()]);
    assert!(find(&inv, "tcp", shared["port"].as_u64().unwrap())[0].get("reuseport_group").is_none());
}

#[test]
fn a_socket_bound_to_a_device_shows_the_device() {
    if !require_tool("device", "python3") {
        return;
    }
    let zoo = Zoo::start(&["--extras"]);
    for (name, transport) in [("device", "tcp"), ("device_udp", "udp")] {
        let e = zoo.extra(name);
        let inv = ls_json(&["--port", &e["port"].to_string()]);
        let s = find(&inv, transport, e["port"].as_u64().unwrap());
        assert_eq!(s.len(), 1, "{name}");
        assert_eq!(s[0]["device"], "lo");
        assert_eq!(s[0]["scope"], "loopback");
    }
    let o = run(portolan().args(["ls", "--port", &zoo.extra("device")["port"].to_string()]));
    assert!(stdout(&o).contains("127.4.0.3%lo:"), "{}", stdout(&o));
}

#[test]
fn ipv4_mapped_dual_stack_and_v6_only_listeners() {
    if !require_tool("families", "python3") {
        return;
    }
    let zoo = Zoo::start(&["--extras"]);
    let port = |n: &str| zoo.extra(n)["port"].as_u64().unwrap();
    let inv = ls_json(&[]);
    let mapped = find(&inv, "tcp", port("mapped"));
    assert_eq!(mapped[0]["local_address"], "::ffff:127.4.0.4");
    assert_eq!(mapped[0]["ipv4_mapped"], true);
    assert_eq!(mapped[0]["scope"], "loopback");
    let dual = find(&inv, "tcp", port("dual_stack"));
    assert_eq!(dual[0]["dual_stack"], true);
    assert_eq!(dual[0]["v6only"], false);
    assert_eq!(dual[0]["scope"], "all-interfaces");
    let v6 = find(&inv, "tcp", port("v6only"));
    assert_eq!(v6[0]["dual_stack"], false);
    assert_eq!(v6[0]["v6only"], true);
    // -4 and -6 filter by family: the mapped socket is IPv6 family
    let inv4 = ls_json(&["-4"]);
    assert!(find(&inv4, "tcp", port("mapped")).is_empty());
    let inv6 = ls_json(&["-6"]);
    assert_eq!(find(&inv6, "tcp", port("mapped")).len(), 1);
}

#[test]
fn a_bound_but_not_listening_socket_is_shown_on_request() {
    if !require_tool("bound", "python3") {
        return;
    }
    let zoo = Zoo::start(&["--extras"]);
    let e = zoo.extra("bound_only");
    let port = e["port"].as_u64().unwrap();
    assert!(find(&ls_json(&[]), "tcp", port).is_empty(), "not a listener");
    let inv = ls_json(&["--bound"]);
    let s = find(&inv, "tcp", port);
    assert_eq!(s.len(), 1, "bound-only socket not found");
    assert_eq!(s[0]["state"], "BOUND");
    assert_eq!(s[0]["inode"], e["inode"]);
    assert_eq!(s[0]["owners"][0]["pid"], zoo.ready["parent"]);
}

#[test]
fn a_connected_udp_socket_appears_with_its_peer_under_all() {
    if !require_tool("udp", "python3") {
        return;
    }
    let zoo = Zoo::start(&["--extras"]);
    let e = zoo.extra("connected_udp");
    let port = e["port"].as_u64().unwrap();
    assert!(find(&ls_json(&[]), "udp", port).is_empty(), "connected UDP is not a listener");
    let inv = ls_json(&["-a", "-u"]);
    let s = find(&inv, "udp", port);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["state"], "ESTAB");
    assert_eq!(s[0]["peer_address"], "127.4.0.6");
    assert!(inv["sockets"].as_array().unwrap().iter().all(|x| x["transport"] == "udp"));
}

/// A network namespace made by the test, deleted on drop; stale ones of dead test runs are
/// removed first.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        if let Ok(dir) = std::fs::read_dir("/run/netns") {
            for e in dir.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = n
                    .strip_prefix("ptl-")
                    .and_then(|r| r.split('-').next())
                    .and_then(|p| p.parse::<u32>().ok())
                    && !Path::new(&format!("/proc/{pid}")).exists()
                {
                    let _ = Command::new("ip").args(["netns", "del", &n]).status();
                }
            }
        }
        let name = format!("ptl-{}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
        assert!(Command::new("ip").args(["netns", "add", &name]).status().unwrap().success());
        assert!(
            Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]).status().unwrap().success()
        );
        Netns { name }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

#[test]
fn a_listener_in_a_namespace_is_found_and_named() {
    let t = "a_listener_in_a_namespace_is_found_and_named";
    if !require_root(t) || !require_tool(t, "ip") {
        return;
    }
    let ns = Netns::new("ls");
    let dir = TempDir::new("netns");
    let ready = dir.join("ready.json");
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "python3",
            SOCKLOAD,
            "--timeout",
            "120",
            "--tcp-listen",
            "2",
            "--udp",
            "1",
            "--ready",
        ])
        .arg(&ready)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let info: Value = serde_json::from_str(&std::fs::read_to_string(&ready).unwrap()).unwrap();
    let pid = info["children"][0].as_u64().unwrap();
    let ns_inode = std::fs::metadata(format!("/run/netns/{}", ns.name))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    // not visible without --all-netns
    let here = ls_json(&[]);
    assert!(here["sockets"].as_array().unwrap().iter().all(|s| s["netns"] != ns_inode));
    let inv = ls_json(&["--all-netns"]);
    let nsinfo = inv["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["inode"] == ns_inode)
        .expect("namespace listed");
    assert_eq!(nsinfo["name"], ns.name.as_str());
    let mine: Vec<&Value> =
        inv["sockets"].as_array().unwrap().iter().filter(|s| s["netns"] == ns_inode).collect();
    assert_eq!(mine.len(), 3, "{mine:?}");
    assert!(mine.iter().all(|s| s["owners"][0]["pid"] == pid));
    // the table names the namespace
    let o = run(portolan().args(["ls", "--all-netns"]));
    assert!(stdout(&o).contains(&ns.name), "{}", stdout(&o));
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}

#[test]
fn owners_in_another_pid_namespace_are_not_visible_but_listed() {
    let t = "owners_in_another_pid_namespace_are_not_visible_but_listed";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    // a new pid namespace with its own /proc: our process is not in it
    let o = run(Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(env!("CARGO_BIN_EXE_portolan"))
        .args(["ls", "--port", &port.to_string(), "-o", "json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let inv: Value = serde_json::from_slice(&o.stdout).unwrap();
    let s = find(&inv, "tcp", u64::from(port));
    assert_eq!(s.len(), 1, "socket must be listed even without an owner");
    assert_eq!(s[0]["owner_visible"], false);
    assert_eq!(s[0]["owners"].as_array().unwrap().len(), 0);
    let o = run(Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(env!("CARGO_BIN_EXE_portolan"))
        .args(["ls", "--port", &port.to_string()]));
    assert!(stdout(&o).contains("(not visible)"), "{}", stdout(&o));
    drop(l);
}

fn world_readable_copy(dir: &TempDir) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.join("portolan");
    std::fs::copy(env!("CARGO_BIN_EXE_portolan"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn as_non_root_other_owners_are_hidden_with_one_note() {
    let t = "as_non_root_other_owners_are_hidden_with_one_note";
    if !require_root(t) || !require_tool(t, "setpriv") {
        return;
    }
    let dir = TempDir::new("nonroot");
    let bin = world_readable_copy(&dir);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap(); // owned by root
    let port = l.local_addr().unwrap().port();
    let o = run(Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["ls", "-o", "json"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let inv: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(inv["privileged"], false);
    let s = find(&inv, "tcp", u64::from(port));
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["owner_visible"], false);
    let err = stderr(&o);
    let notes: Vec<&str> = err.lines().filter(|l| l.contains("root")).collect();
    assert_eq!(notes.len(), 1, "{err}");
    assert!(notes[0].contains("not visible"), "{err}");
    drop(l);
}

#[test]
fn risk_is_weighted_by_scope() {
    if !require_tool("risk", "python3") {
        return;
    }
    // telnet's port on loopback: informational; no finding
    let l = std::net::TcpListener::bind("127.0.0.1:23");
    let Ok(l) = l else {
        eprintln!("SKIPPED risk_is_weighted_by_scope: 127.0.0.1:23 is in use");
        return;
    };
    let inv = ls_json(&["--port", "23"]);
    let s = find(&inv, "tcp", 23);
    assert_eq!(s[0]["kb_id"], "telnet");
    assert_eq!(s[0]["risk"], "info");
    assert!(inv["findings"].as_array().unwrap().is_empty());
    drop(l);
    // redis's port on every interface: the full risk (critical), and a finding
    let Ok(l) = std::net::TcpListener::bind("0.0.0.0:6379") else {
        eprintln!("SKIPPED risk_is_weighted_by_scope (part 2): 0.0.0.0:6379 is in use");
        return;
    };
    let inv = ls_json(&["--port", "6379"]);
    let s = find(&inv, "tcp", 6379);
    assert_eq!(s[0]["scope"], "all-interfaces");
    assert_eq!(s[0]["risk"], "critical");
    let f = &inv["findings"][0];
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["target"]["port"], 6379);
    assert!(f["evidence"].as_array().unwrap().iter().any(|e| e.as_str().unwrap().contains("pid")));
    drop(l);
}

#[test]
fn bad_flags_exit_2() {
    let o = run(portolan().args(["ls", "--port", "70000"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("70000"));
    let o = run(portolan().args(["ls", "-4", "-6"]));
    assert_eq!(o.status.code(), Some(2));
}
