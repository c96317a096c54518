//! `portolan` with no arguments, on a machine state the test controls: a network namespace of
//! its own (so that its listeners are the only ones), with listeners on loopback, on every
//! interface and on one address of 198.18.46.0/24 (a veth pair inside it), an iptables rule set loaded in that
//! namespace's kernel firewall, a policy at the place `PORTOLAN_POLICY` names and a store of
//! its own. Each part of the screen is checked; then a listener is started after a saved
//! inventory and the screen must name it as new.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portolan_testkit::{TempDir, require_root, require_tool};

const NET: &str = "198.18.46.1";

/// The namespace and the processes started in it, removed on drop (also after a failure).
struct Ns {
    name: String,
    children: Vec<Child>,
}

impl Ns {
    fn new() -> Ns {
        // namespaces of earlier runs whose process is gone
        let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
        for line in String::from_utf8_lossy(&list.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            if let Some(pid) = name.strip_prefix("ptho-")
                && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = Command::new("ip").args(["netns", "del", name]).status();
            }
        }
        let name = format!("ptho-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let ns = Ns { name, children: Vec::new() };
        ns.ip(&["netns", "add", &ns.name]);
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        // a veth pair with both ends inside (no dummy module is needed)
        ns.exec_ok(&["ip", "link", "add", "ptho0", "type", "veth", "peer", "name", "ptho1"]);
        ns.exec_ok(&["ip", "addr", "add", &format!("{NET}/24"), "dev", "ptho0"]);
        ns.exec_ok(&["ip", "link", "set", "ptho0", "up"]);
        ns.exec_ok(&["ip", "link", "set", "ptho1", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let st = Command::new("ip").args(args).status().unwrap();
        assert!(st.success(), "ip {args:?}");
    }

    fn exec_ok(&self, args: &[&str]) {
        let st = Command::new("ip").args(["netns", "exec", &self.name]).args(args).status().unwrap();
        assert!(st.success(), "{args:?}");
    }

    /// Starts a listener process (python3) on these TCP addresses, bounded at 120 s.
    fn listen(&mut self, addrs: &[(&str, u16)]) {
        let code = format!(
            "import socket,time\nss=[]\nfor a,p in {addrs:?}:\n s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((a,p)); s.listen(8); ss.append(s)\nprint('ready', flush=True)\ntime.sleep(120)\n"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "python3", "-c", &code])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        self.children.push(child);
    }

    /// `portolan ARGS` in the namespace, with this policy and store, bounded at 60 s.
    fn portolan(&self, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String, Duration) {
        let t0 = Instant::now();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, env!("CARGO_BIN_EXE_portolan")]).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child =
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("portolan {args:?} ran over 60 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            t0.elapsed(),
        )
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// The line of the screen that lists this port.
fn row<'a>(screen: &'a str, addr: &str, port: u16) -> &'a str {
    screen
        .lines()
        .find(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() > 3 && w[1] == addr && w[2] == port.to_string()
        })
        .unwrap_or_else(|| panic!("no row for {addr}:{port} in\n{screen}"))
}

#[test]
fn home_screen_shows_listeners_firewall_policy_findings_and_changes() {
    const T: &str = "home_screen_shows_listeners_firewall_policy_findings_and_changes";
    if !require_root(T) || !require_tool(T, "iptables-restore") || !require_tool(T, "python3") {
        return;
    }
    let dir = TempDir::new("home");
    let mut ns = Ns::new();
    ns.listen(&[("127.0.0.1", 8081), ("0.0.0.0", 23), (NET, 5432)]);
    // the namespace's firewall: telnet accepted from anywhere, everything else dropped
    let rules = dir.join("rules.v4");
    std::fs::write(
        &rules,
        "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 23 -j ACCEPT\nCOMMIT\n",
    )
    .unwrap();
    ns.exec_ok(&["iptables-restore", rules.to_str().unwrap()]);
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "[[allow]]\nports = 8081\nowner = \"o\"\npurpose = \"p\"\n\n[[allow]]\nports = 5432\nowner = \"o\"\npurpose = \"p\"\n",
    )
    .unwrap();
    let db = dir.join("p.db");
    let env = [
        ("CI", "true"),
        ("PORTOLAN_POLICY", policy.to_str().unwrap()),
        ("PORTOLAN_DB", db.to_str().unwrap()),
    ];

    let (code, screen, err, _) = ns.portolan(&[], &env);
    assert_eq!(code, Some(0), "{err}");
    println!("{screen}");
    assert!(!screen.contains('\x1b'), "colour under CI=true:\n{screen}");
    assert!(!db.exists(), "the screen created the store");
    // listeners, grouped by reach, each group with its count
    assert!(screen.contains("LISTENING (3)"), "{screen}");
    assert!(screen.contains("Internet-facing (public address or all interfaces): 1"), "{screen}");
    assert!(screen.contains("Local network (one address or device): 1"), "{screen}");
    assert!(screen.contains("Loopback (this machine only): 1"), "{screen}");
    let telnet = row(&screen, "0.0.0.0", 23);
    let pg = row(&screen, NET, 5432);
    let lo = row(&screen, "127.0.0.1", 8081);
    let internet = screen.find("Internet-facing").unwrap();
    let local = screen.find("Local network").unwrap();
    let loopback = screen.find("Loopback (").unwrap();
    let at = |r: &str| screen.find(r).unwrap();
    assert!(
        internet < at(telnet)
            && at(telnet) < local
            && local < at(pg)
            && at(pg) < loopback
            && loopback < at(lo)
    );
    // the owner, the firewall's verdict and the policy's on each
    assert!(telnet.contains("python3 ("), "{telnet}");
    assert!(telnet.contains(" accept ") && telnet.contains("not approved"), "{telnet}");
    assert!(telnet.contains("critical"), "telnet on every interface: {telnet}");
    assert!(pg.contains(" drop ") && pg.contains(" approved"), "{pg}");
    assert!(lo.contains(" drop ") && lo.contains(" approved") && !lo.contains("not approved"), "{lo}");
    // the findings that matter, the firewall and the policy lines
    let findings =
        &screen[screen.find("FINDINGS THAT MATTER").unwrap()..screen.find("\nFIREWALL  ").unwrap()];
    assert!(
        findings.lines().any(|l| l.trim_start().starts_with("critical") && l.contains("23")),
        "{findings}"
    );
    assert!(findings.lines().any(|l| l.contains("23") && l.contains("not approved")), "{findings}");
    assert!(
        screen.contains("FIREWALL  iptables-save (1 rules): 1 internet-facing listener accepted"),
        "{screen}"
    );
    assert!(screen.contains(&format!("POLICY    {}: 1 listener not approved", policy.display())), "{screen}");
    assert!(screen.contains("CHANGES   no saved inventory to compare with"), "{screen}");
    assert!(screen.contains("NEXT") && screen.contains("portolan ls --save"), "{screen}");
    assert!(screen.contains(&format!("portolan audit --policy {}", policy.display())), "{screen}");

    // a saved inventory, then a new listener: named as new
    let (code, _, err, _) = ns.portolan(&["ls", "--save", "-q"], &env);
    assert_eq!(code, Some(0), "{err}");
    ns.listen(&[("127.0.0.1", 9090)]);
    let (code, screen, err, _) = ns.portolan(&[], &env);
    assert_eq!(code, Some(0), "{err}");
    assert!(screen.contains("CHANGES   since snapshot 1 (just now): 1"), "{screen}");
    assert!(
        screen.lines().any(|l| l.contains("new") && l.contains("tcp 127.0.0.1:9090 (python3)")),
        "{screen}"
    );
    assert!(!screen.contains("portolan ls --save "), "{screen}");

    // colour only when asked: the plain check above can fail
    let (_, coloured, _, _) = ns.portolan(&["--color", "always"], &env);
    assert!(coloured.contains('\x1b'), "{coloured}");
}
