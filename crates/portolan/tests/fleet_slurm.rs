//! A fleet scan on a real Slurm cluster: `scripts/slurm.sh` starts munged, slurmctld and slurmd
//! (one node: this machine) in a temporary directory; the script `portolan fleet slurm` prints
//! is submitted as a job array of 4 tasks, each scanning its shard of the namespace lab (from
//! the lab's scanner namespace) into a fresh PostgreSQL database. The merged run must equal the
//! same scan run unsharded, no (host, port) may be saved twice, and a task cancelled before it
//! ran, then submitted again alone, must complete the run; submitting it once more must not
//! duplicate anything. A connect scan, then a SYN scan. The cluster is stopped by pid, whatever happens.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use portolan_testkit::{Lab, TempDir, require_root, require_tool};

const TARGETS: [&str; 5] = ["198.18.1.2", "198.18.2.2", "198.18.3.2", "198.18.4.2", "198.18.6.2"];
const PORTS: &str = "1-1000";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The cluster, stopped on drop.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let o = Command::new("timeout")
            .args(["120", "bash"])
            .arg(repo().join("scripts/slurm.sh"))
            .arg("start")
            .arg(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "slurm.sh start: {}", String::from_utf8_lossy(&o.stderr));
        Cluster { dir: dir.to_path_buf(), conf: dir.join("slurm.conf") }
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// sbatch SCRIPT with these extra options; the job id.
    fn submit(&self, script: &Path, db: &str, extra: &[&str]) -> String {
        let o = self
            .cmd("sbatch")
            .arg("--parsable")
            .arg(format!("--chdir={}", self.dir.display()))
            .args(extra)
            .arg(script)
            .env("PORTOLAN_DB", db)
            .output()
            .unwrap();
        assert!(o.status.success(), "sbatch: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().split(';').next().unwrap().to_string()
    }

    /// Waits until no task of `job` is pending or running (at most 300 s).
    fn wait(&self, job: &str) {
        let t0 = Instant::now();
        loop {
            let o = self.cmd("squeue").args(["-h", "-j", job, "-o", "%i %T"]).output().unwrap();
            let left = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if left.is_empty() {
                return;
            }
            assert!(t0.elapsed() < Duration::from_secs(300), "job {job} still queued after 300 s: {left}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn ok(&self, program: &str, args: &[&str]) {
        let o = self.cmd(program).args(args).output().unwrap();
        assert!(o.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(repo().join("scripts/slurm.sh")).arg("stop").arg(&self.dir).status();
    }
}

fn portolan(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portolan"))
        .args(args)
        .env("PORTOLAN_DB", db)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A fresh database on the test server: its URL by the server's Unix socket (the shards run in
/// the lab's scanner namespace, whose loopback is not this one's), and a client of it.
fn fresh_db(test: &str) -> Option<(String, postgres::Client)> {
    let admin = match std::env::var("PORTOLAN_TEST_POSTGRES") {
        Ok(a) if !a.is_empty() => a,
        _ => {
            portolan_testkit::prerequisite_missing(
                test,
                "a PostgreSQL server in PORTOLAN_TEST_POSTGRES",
                "run `bash scripts/test.sh`, which starts a throwaway one",
            );
            return None;
        }
    };
    let name = format!("ptl_fleet_{}", std::process::id());
    let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).unwrap();
    c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let client =
        postgres::Client::connect(&format!("{}/{name}", admin.rsplit_once('/').unwrap().0), postgres::NoTls)
            .unwrap();
    let socket = std::env::var("PORTOLAN_TEST_POSTGRES_SOCKET")
        .expect("scripts/pg.sh exports PORTOLAN_TEST_POSTGRES_SOCKET");
    Some((format!("{}/{name}", socket.rsplit_once('/').unwrap().0), client))
}

/// Port observations saved in the run's shards, and in the plain snapshots.
fn saved_ports(c: &mut postgres::Client) -> (i64, i64) {
    let shards: i64 = c
        .query_one(
            "SELECT COALESCE(SUM(port_count), 0)::BIGINT FROM snapshot WHERE id IN (SELECT snapshot_id FROM run_shard)",
            &[],
        )
        .unwrap()
        .get(0);
    let plain: i64 = c
        .query_one(
            "SELECT COALESCE(SUM(port_count), 0)::BIGINT FROM snapshot WHERE id NOT IN (SELECT snapshot_id FROM run_shard)",
            &[],
        )
        .unwrap()
        .get(0);
    (shards, plain)
}

/// `portolan fleet slurm` for 4 shards of TARGETS with these scan arguments, each task in the
/// lab's scanner namespace: its output.
fn fleet_script(db: &str, run: &str, seed: &str, scan: &[&str]) -> Output {
    let mut args = vec![
        "fleet",
        "slurm",
        "--shards",
        "4",
        "--run",
        run,
        "--seed",
        seed,
        "--bin",
        env!("CARGO_BIN_EXE_portolan"),
        "--launcher",
        "ip netns exec ptl-scan",
        "--",
    ];
    args.extend(scan);
    args.extend(TARGETS);
    let o = portolan(db, &args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

fn run_state(db: &str) -> serde_json::Value {
    let o = portolan(db, &["snapshots", "--runs", "-o", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v[0].clone()
}

#[test]
fn a_slurm_job_array_scans_the_lab_as_one_run() {
    const T: &str = "a_slurm_job_array_scans_the_lab_as_one_run";
    if !require_root(T) || !require_tool(T, "sbatch") || !require_tool(T, "munged") {
        return;
    }
    let Some((db, mut pg)) = fresh_db(T) else { return };
    let lab = Lab::up(&repo());
    let dir = TempDir::new("fleet-slurm");
    let cluster = Cluster::start(dir.path());

    let bin = env!("CARGO_BIN_EXE_portolan");
    let o = fleet_script(&db, "lab", "11", &["-p", PORTS, "-sT"]);
    let script_text = String::from_utf8(o.stdout).unwrap();
    assert!(
        !script_text.contains(&db) && !script_text.contains("127.0.0.1:"),
        "the URL reached the script:\n{script_text}"
    );
    let script = dir.join("fleet.sbatch");
    std::fs::write(&script, &script_text).unwrap();

    // task 1 (shard 2) is cancelled before it can run: the run is missing shard 2
    let job = cluster.submit(&script, &db, &["--hold"]);
    cluster.ok("scancel", &[&format!("{job}_1")]);
    cluster.ok("scontrol", &["release", &job]);
    cluster.wait(&job);
    let state = run_state(&db);
    assert_eq!(state["done"], serde_json::json!([1, 3, 4]), "{state}");
    assert_eq!(state["shards"], 4);

    // that one index again, alone: the run is complete
    let again = cluster.submit(&script, &db, &["--array=1"]);
    cluster.wait(&again);
    assert_eq!(run_state(&db)["done"], serde_json::json!([1, 2, 3, 4]));

    // the same scan unsharded, from the same namespace
    let mut whole = lab.in_scanner(bin);
    whole
        .args(["scan", "-p", PORTS, "-sT", "--save", "-q", "-o", "json"])
        .args(TARGETS)
        .env("PORTOLAN_DB", &db);
    let o = whole.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // no (host, port) saved twice: the shards hold exactly the unsharded scan's observations
    let (in_shards, plain) = saved_ports(&mut pg);
    assert_eq!(plain, (TARGETS.len() * 1000) as i64);
    assert_eq!(in_shards, plain, "shards hold {in_shards} port observations, the whole scan {plain}");
    // the merged run is the unsharded scan: diff finds nothing, on hosts, ports, states, reasons
    let d = portolan(&db, &["diff", "run:lab", "last", "-o", "json"]);
    let text = String::from_utf8_lossy(&d.stdout);
    assert_eq!(d.status.code(), Some(0), "the merged run differs from the unsharded scan:\n{text}");
    let merged = portolan(&db, &["snapshots", "--show", "run:lab"]);
    let merged: serde_json::Value = serde_json::from_slice(&merged.stdout).unwrap();
    let whole: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ports = |v: &serde_json::Value| -> Vec<(String, u64, String, String)> {
        let mut out = Vec::new();
        for h in v["hosts"].as_array().unwrap() {
            for p in h["ports"].as_array().unwrap() {
                out.push((
                    h["address"].as_str().unwrap().to_string(),
                    p["port"].as_u64().unwrap(),
                    p["state"].as_str().unwrap().to_string(),
                    p["reason"].as_str().unwrap().to_string(),
                ));
            }
        }
        out.sort();
        out
    };
    assert_eq!(ports(&merged["scan"]), ports(&whole), "host, port, state and reason");
    // the merged run as nmap XML, valid against nmap's DTD
    let xml = portolan(&db, &["snapshots", "--show", "run:lab", "--xml"]);
    assert!(xml.status.success(), "{}", String::from_utf8_lossy(&xml.stderr));
    let xml_file = dir.join("merged.xml");
    std::fs::write(&xml_file, &xml.stdout).unwrap();
    if require_tool(T, "xmllint") {
        let v = Command::new("xmllint")
            .args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd"])
            .arg(&xml_file)
            .output()
            .unwrap();
        assert!(v.status.success(), "the merged XML is not valid: {}", String::from_utf8_lossy(&v.stderr));
    }

    // audit and report see the run as they see the unsharded scan
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, "[[allow]]\nports = 22\nowner = \"o\"\npurpose = \"p\"\n").unwrap();
    let audit = |r: &str| -> serde_json::Value {
        let o =
            portolan(&db, &["audit", "--policy", policy.to_str().unwrap(), "--snapshot", r, "-o", "json"]);
        assert!(matches!(o.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        // a scan lists hosts as they finish, the merged run in address order: the same
        // findings, compared in one order
        let mut findings = v["findings"].as_array().unwrap().clone();
        findings.sort_by_key(|f| f.to_string());
        serde_json::json!({"findings": findings, "summary": v["summary"], "hosts": v["hosts"]})
    };
    let (a_run, a_whole) = (audit("run:lab"), audit("last"));
    assert!(a_run["findings"].as_array().is_some_and(|f| !f.is_empty()), "{a_run}");
    assert_eq!(a_run, a_whole, "audit of the run differs from the unsharded scan's");
    let report = |r: &str| -> String {
        let page = dir.join(&format!("{}.html", r.replace(':', "-")));
        let o = portolan(&db, &["report", r, "-o", page.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = String::from_utf8_lossy(&o.stderr).into_owned();
        text[text.find("KiB): ").unwrap()..].to_string()
    };
    assert_eq!(report("run:lab"), report("last"), "the report's numbers differ");

    // a shard submitted once more replaces itself
    let third = cluster.submit(&script, &db, &["--array=1"]);
    cluster.wait(&third);
    assert_eq!(saved_ports(&mut pg).0, plain, "a re-run shard was saved twice");
    assert_eq!(portolan(&db, &["diff", "run:lab", "last"]).status.code(), Some(0));

    // the same with a SYN scan: raw sockets in every task
    let o = fleet_script(&db, "lab-syn", "12", &["-p", PORTS, "-sS"]);
    let syn_script = dir.join("fleet-syn.sbatch");
    std::fs::write(&syn_script, &o.stdout).unwrap();
    let job = cluster.submit(&syn_script, &db, &[]);
    cluster.wait(&job);
    let mut whole = lab.in_scanner(bin);
    whole.args(["scan", "-p", PORTS, "-sS", "--save", "-q"]).args(TARGETS).env("PORTOLAN_DB", &db);
    let o = whole.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let per_run: i64 = pg
        .query_one(
            "SELECT COALESCE(SUM(n.port_count), 0)::BIGINT FROM run_shard s JOIN run r ON r.id = s.run_id
             JOIN snapshot n ON n.id = s.snapshot_id WHERE r.name = 'lab-syn'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(per_run, plain, "the SYN run's shards hold {per_run} port observations");
    let d = portolan(&db, &["diff", "run:lab-syn", "last"]);
    assert_eq!(d.status.code(), Some(0), "{}", String::from_utf8_lossy(&d.stdout));

    // a task stopped while it runs (scancel sends SIGTERM) is recorded as failed in its run
    let o = fleet_script(&db, "lab-stopped", "13", &["-p", PORTS, "-sT", "--max-rate", "20"]);
    let slow = dir.join("fleet-slow.sbatch");
    std::fs::write(&slow, &o.stdout).unwrap();
    let job = cluster.submit(&slow, &db, &["--array=0"]);
    let t0 = Instant::now();
    loop {
        let o = cluster.cmd("squeue").args(["-h", "-j", &job, "-o", "%T"]).output().unwrap();
        if String::from_utf8_lossy(&o.stdout).trim() == "RUNNING" {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "the slow task never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    cluster.ok("scancel", &[&format!("{job}_0")]);
    cluster.wait(&job);
    let t0 = Instant::now();
    let failed = loop {
        let o = portolan(&db, &["snapshots", "--runs", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let run = v.as_array().unwrap().iter().find(|r| r["name"] == "lab-stopped").cloned();
        if let Some(r) = run
            && !r["failed"].is_null()
        {
            break r;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "the stopped shard was not recorded: {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(failed["done"], serde_json::json!([]), "{failed}");
    assert_eq!(failed["failed"][0][0], 1, "{failed}");
    assert!(failed["failed"][0][1].as_str().unwrap().contains("signal"), "{failed}");
    drop(cluster);
    drop(lab);
}
