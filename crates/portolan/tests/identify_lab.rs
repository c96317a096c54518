//! Identification against real Debian daemons (scripts/idlab.sh), side by side with `nmap -sV`
//! on the same ports in the same run. Ground truth is the lab's manifest, written from its own
//! configuration and the daemons' --version output, never from either scanner.
//!
//! Acceptance (issue 7): Portolan's service name is right on at least 95 % of the ports and
//! never wrong where nmap is right; product (and version where the daemon reveals it) right on
//! at least 90 % of the ports where nmap names a product; every service on another service's
//! port yields the wrong-application finding; the -sV XML is valid against nmap.dtd.
//!
//! UDP (issue 24): every UDP port of the lab is named by a probe's answer (`method="probed"`)
//! and right, on at least as many ports as `nmap -sU -sV` names by probe, in under half its
//! time (the two scans are timed apart from TCP).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use portolan_model::{ScanRun, Service, Tunnel};
use portolan_testkit::{TempDir, require_root, require_tool, run, stderr, stdout};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct IdLab {
    script: PathBuf,
    dir: PathBuf,
    _host: portolan_testkit::HostLock,
}

impl IdLab {
    fn up(dir: &Path) -> IdLab {
        let host = portolan_testkit::host_lock("idlab", Duration::from_secs(1800));
        let script = repo().join("scripts/idlab.sh");
        let t0 = Instant::now();
        let o = run(Command::new("bash")
            .arg(&script)
            .arg("up")
            .env("IDLAB_DIR", dir)
            .env("IDLAB_LIFETIME", "900"));
        assert!(o.status.success(), "idlab.sh up failed:\n{}{}", stdout(&o), stderr(&o));
        eprintln!("lab up in {:.1} s", t0.elapsed().as_secs_f64());
        IdLab { script, dir: dir.to_path_buf(), _host: host }
    }
}

impl Drop for IdLab {
    fn drop(&mut self) {
        let _ = run(Command::new("bash").arg(&self.script).arg("down").env("IDLAB_DIR", &self.dir));
    }
}

#[derive(Debug, Clone)]
struct Truth {
    addr: String,
    port: u16,
    udp: bool,
    service: String,
    tls: bool,
    product: Option<String>,
    version: Option<String>,
    nonstandard: bool,
}

fn manifest(path: &Path) -> Vec<Truth> {
    let text = std::fs::read_to_string(path).unwrap();
    let dash = |s: &str| (s != "-" && !s.is_empty()).then(|| s.to_string());
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 8, "manifest line {l:?}");
            Truth {
                addr: f[0].into(),
                port: f[1].parse().unwrap(),
                udp: f[2] == "udp",
                service: f[3].into(),
                tls: f[4] == "yes",
                product: dash(f[5]),
                version: dash(f[6]),
                nonstandard: f[7] == "yes",
            }
        })
        .collect()
}

type Key = (String, u16, bool);

fn services(run: &ScanRun) -> HashMap<Key, Service> {
    let mut out = HashMap::new();
    for h in &run.hosts {
        for p in &h.ports {
            if let Some(s) = &p.service {
                let udp = p.transport == portolan_model::Transport::Udp;
                out.insert((h.address.to_string(), p.number, udp), (**s).clone());
            }
        }
    }
    out
}

fn name_right(t: &Truth, s: Option<&Service>) -> bool {
    s.is_some_and(|s| s.name == t.service && (s.tunnel == Some(Tunnel::Ssl)) == t.tls)
}

fn product_right(t: &Truth, s: Option<&Service>) -> bool {
    let Some(s) = s else { return false };
    let p_ok = match &t.product {
        Some(p) => {
            s.product.as_deref().is_some_and(|x| x.to_ascii_lowercase().contains(&p.to_ascii_lowercase()))
        }
        None => false,
    };
    let v_ok = match &t.version {
        Some(v) => s.version.as_deref().is_some_and(|x| x.starts_with(v.as_str())),
        None => true,
    };
    p_ok && v_ok
}

fn ports_of(truth: &[Truth], addr: &str, udp: bool) -> String {
    truth
        .iter()
        .filter(|t| t.addr == addr && t.udp == udp)
        .map(|t| t.port.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn identification_matches_the_lab_and_beats_nmap() {
    if !require_root("identification_matches_the_lab_and_beats_nmap")
        || !require_tool("identification_matches_the_lab_and_beats_nmap", "nmap")
    {
        return;
    }
    let tmp = TempDir::new("idlab");
    let dir = tmp.join("lab");
    let _lab = IdLab::up(&dir);
    let truth = manifest(&dir.join("manifest.tsv"));
    assert!(truth.len() >= 25, "the lab has {} ports", truth.len());
    let bin = env!("CARGO_BIN_EXE_portolan");
    let hosts: Vec<String> = {
        let mut h: Vec<String> = truth.iter().map(|t| t.addr.clone()).collect();
        h.dedup();
        h
    };

    // nmap -sV and portolan scan -sV on the same ports, each host with its own ports, TCP
    // (SYN) and UDP apart so that each is timed on its own
    let (mut nmap, mut ours): (HashMap<Key, Service>, HashMap<Key, Service>) = Default::default();
    let (mut nmap_secs, mut ours_secs, mut nmap_udp_secs, mut ours_udp_secs) = (0.0, 0.0, 0.0, 0.0);
    for udp in [false, true] {
        let (flag, tag) = if udp { ("-sU", "udp") } else { ("-sS", "tcp") };
        for h in &hosts {
            let ports = ports_of(&truth, h, udp);
            if ports.is_empty() {
                continue;
            }
            let xml = tmp.join(&format!("nmap-{h}-{tag}.xml"));
            let t0 = Instant::now();
            let o =
                run(Command::new("nmap").args(["-sV", flag, "-Pn", "-n", "-p", &ports, h, "-oX"]).arg(&xml));
            let secs = t0.elapsed().as_secs_f64();
            *(if udp { &mut nmap_udp_secs } else { &mut nmap_secs }) += secs;
            assert!(o.status.success(), "nmap: {}", stderr(&o));
            nmap.extend(services(&portolan_import::read_file(&xml).unwrap()));

            let xml = tmp.join(&format!("portolan-{h}-{tag}.xml"));
            let t0 = Instant::now();
            let o =
                run(Command::new(bin).args(["scan", "-sV", flag, "-Pn", "-p", &ports, h, "-oX"]).arg(&xml));
            let secs = t0.elapsed().as_secs_f64();
            *(if udp { &mut ours_udp_secs } else { &mut ours_secs }) += secs;
            assert!(o.status.success(), "portolan scan -sV: {}", stderr(&o));
            let dtd = run(Command::new("xmllint")
                .args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd"])
                .arg(&xml));
            assert!(dtd.status.success(), "-sV XML is not valid against nmap.dtd: {}", stderr(&dtd));
            let text = std::fs::read_to_string(&xml).unwrap();
            assert!(text.contains("method=\"probed\""), "no probed service in {text}");
            ours.extend(services(&portolan_import::read_file(&xml).unwrap()));
        }
    }

    // the comparison, printed for the record
    let show = |s: Option<&Service>| {
        s.map_or("-".to_string(), |s| {
            format!(
                "{}{} {} {}",
                if s.tunnel == Some(Tunnel::Ssl) { "ssl/" } else { "" },
                s.name,
                s.product.as_deref().unwrap_or("-"),
                s.version.as_deref().unwrap_or("-")
            )
        })
    };
    let (mut right, mut wrong_where_nmap_right, mut nmap_right) = (0, Vec::new(), 0);
    let (mut prod_n, mut prod_right, mut no_truth) = (0, 0, Vec::new());
    for t in &truth {
        let key = (t.addr.clone(), t.port, t.udp);
        let (n, p) = (nmap.get(&key), ours.get(&key));
        let (nr, pr) = (name_right(t, n), name_right(t, p));
        right += usize::from(pr);
        nmap_right += usize::from(nr);
        if nr && !pr {
            wrong_where_nmap_right.push(format!("{}:{}", t.addr, t.port));
        }
        // every port where nmap names a product counts; the manifest must then name it too
        // (a port without a product in the truth cannot be judged, so it fails the test)
        let counted = n.is_some_and(|s| s.product.is_some());
        if counted && t.product.is_none() {
            no_truth.push(format!("{}:{}/{}", t.addr, t.port, if t.udp { "udp" } else { "tcp" }));
        }
        if counted {
            prod_n += 1;
            prod_right += usize::from(product_right(t, p));
        }
        eprintln!(
            "{:>15}:{:<5}{} truth {}{} {} {} | nmap {} {} | portolan {} {}{}",
            t.addr,
            t.port,
            if t.udp { "u" } else { "t" },
            if t.tls { "ssl/" } else { "" },
            t.service,
            t.product.as_deref().unwrap_or("-"),
            t.version.as_deref().unwrap_or("-"),
            show(n),
            if nr { "ok" } else { "WRONG" },
            show(p),
            if pr { "ok" } else { "WRONG" },
            if counted && !product_right(t, p) { " (product/version wrong)" } else { "" },
        );
    }
    let share = right as f64 / truth.len() as f64;
    let prod_share = if prod_n == 0 { 1.0 } else { prod_right as f64 / prod_n as f64 };
    eprintln!(
        "service right: portolan {right}/{} ({:.1} %), nmap {nmap_right}/{}; product/version right where nmap names \
         one: {prod_right}/{prod_n} ({:.1} %); TCP time: nmap {nmap_secs:.1} s, portolan {ours_secs:.1} s",
        truth.len(),
        share * 100.0,
        truth.len(),
        prod_share * 100.0
    );
    assert!(no_truth.is_empty(), "nmap names a product where the manifest names none: {no_truth:?}");

    // UDP: every port named from its answer, at least where nmap's probes name one, faster
    let udp: Vec<&Truth> = truth.iter().filter(|t| t.udp).collect();
    assert!(udp.len() >= 10, "the lab has {} UDP ports", udp.len());
    let probed_right = |t: &Truth, s: Option<&Service>| {
        name_right(t, s) && s.is_some_and(|s| s.method == portolan_model::ServiceMethod::Probed)
    };
    let key = |t: &Truth| (t.addr.clone(), t.port, t.udp);
    let ours_udp: Vec<u16> =
        udp.iter().filter(|t| probed_right(t, ours.get(&key(t)))).map(|t| t.port).collect();
    let nmap_udp: Vec<u16> =
        udp.iter().filter(|t| probed_right(t, nmap.get(&key(t)))).map(|t| t.port).collect();
    eprintln!(
        "UDP: named by probe and right: portolan {}/{} {ours_udp:?}, nmap {}/{} {nmap_udp:?}; time: nmap \
         {nmap_udp_secs:.1} s, portolan {ours_udp_secs:.1} s ({:.3} of nmap's)",
        ours_udp.len(),
        udp.len(),
        nmap_udp.len(),
        udp.len(),
        ours_udp_secs / nmap_udp_secs
    );
    let missed: Vec<u16> = udp.iter().map(|t| t.port).filter(|p| !ours_udp.contains(p)).collect();
    assert!(missed.is_empty(), "UDP ports not named right by a probe: {missed:?}");
    assert!(
        ours_udp_secs < nmap_udp_secs / 2.0,
        "UDP -sV took {ours_udp_secs:.1} s, nmap {nmap_udp_secs:.1} s"
    );
    assert!(share >= 0.95, "service name right on only {:.1} % of ports", share * 100.0);
    assert!(wrong_where_nmap_right.is_empty(), "wrong where nmap is right: {wrong_where_nmap_right:?}");
    assert!(
        prod_share >= 0.90,
        "product right on only {:.1} % of the ports where nmap names one",
        prod_share * 100.0
    );

    // every service on another's port is called out
    let odd: Vec<String> = truth
        .iter()
        .filter(|t| t.nonstandard)
        .map(|t| format!("{}:{}/{}", t.addr, t.port, if t.udp { "udp" } else { "tcp" }))
        .collect();
    assert!(odd.len() >= 3);
    let o = run(Command::new(bin).arg("identify").args(&odd).args(["-o", "json"]));
    assert!(o.status.success(), "identify: {}", stderr(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    for r in &rows {
        let rules: Vec<&str> = r["findings"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f["rule"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            rules.contains(&"identify.wrong-service"),
            "{}: no wrong-application finding: {r}",
            r["target"]
        );
    }
    // services that serve anyone are called out (Xvnc with security type None, Redis without
    // requirepass, Mosquitto with anonymous clients)
    let open_doors: Vec<String> = truth
        .iter()
        .filter(|t| !t.udp && !t.nonstandard && matches!(t.service.as_str(), "vnc" | "redis" | "mqtt"))
        .map(|t| format!("{}:{}", t.addr, t.port))
        .collect();
    assert!(open_doors.len() >= 5, "{open_doors:?}");
    let o = run(Command::new(bin).arg("identify").args(&open_doors).args(["-o", "json"]));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    for r in &rows {
        let rules: Vec<&str> = r["findings"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f["rule"].as_str()).collect())
            .unwrap_or_default();
        assert!(rules.contains(&"identify.no-authentication"), "{}: {rules:?}", r["target"]);
    }
    // and the human table says it too, escaped
    let o = run(Command::new(bin).arg("identify").args(&odd));
    let table = stdout(&o);
    assert!(table.contains("wrong application on 443/tcp: ssh answers where http is expected"), "{table}");
    assert!(!table.bytes().any(|b| b == 0x1b), "raw escape in {table}");
}
