//! `--save`, `portolan snapshots` and `portolan diff` on snapshots, driving the built binary:
//! real listeners, real nmap-style files, SQLite and (when scripts/test.sh started one)
//! PostgreSQL. Crash safety: a save killed with SIGKILL in the middle of its transaction leaves
//! earlier snapshots intact and no partial one; two processes saving at once both succeed.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use portolan_testkit::{TempDir, require_tool, run, stderr, stdout};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn p(db: &str, args: &[&str]) -> Output {
    run(Command::new(BIN).args(args).arg("--db").arg(db).env_remove("PORTOLAN_DB"))
}

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// Databases to run on: a SQLite file, and a fresh PostgreSQL database when available.
fn databases(dir: &TempDir, test: &str) -> Vec<String> {
    let mut v = vec![dir.join("p.db").to_string_lossy().into_owned()];
    match std::env::var("PORTOLAN_TEST_POSTGRES") {
        Ok(admin) if !admin.is_empty() => {
            let db = format!("ptl_cli_{test}_{}", std::process::id());
            let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {db}")).unwrap();
            c.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
            v.push(format!("{}/{db}", admin.rsplit_once('/').unwrap().0));
        }
        _ => {
            portolan_testkit::prerequisite_missing(
                &format!("postgres half of {test}"),
                "a PostgreSQL server in PORTOLAN_TEST_POSTGRES",
                "run `bash scripts/test.sh`, which starts a throwaway one",
            );
        }
    }
    v
}

fn nmap_xml(path: &Path, hosts: u32, ports: u32, variant: u32) {
    let f = std::fs::File::create(path).unwrap();
    let o = Command::new("python3")
        .arg(repo().join("bench/nmapxml.py"))
        .args([
            "--hosts",
            &hosts.to_string(),
            "--ports",
            &ports.to_string(),
            "--variant",
            &variant.to_string(),
        ])
        .stdout(f)
        .output()
        .unwrap();
    assert!(o.status.success(), "nmapxml.py: {}", String::from_utf8_lossy(&o.stderr));
}

/// A listener held by a program named `comm` (python3 or ncat), killed on drop.
struct Listener(Child);

impl Listener {
    fn python(port: u16) -> Listener {
        let code = format!(
            "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('127.0.0.1',{port}))\ns.listen()\nprint('up',flush=True)\ntime.sleep(60)"
        );
        let mut c = Command::new("python3").args(["-c", &code]).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(c.stdout.take().unwrap()), &mut line)
            .unwrap();
        Listener(c)
    }

    fn ncat(port: u16) -> Listener {
        let c = Command::new("ncat")
            .args(["-l", "-k", "127.0.0.1", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let l = Listener(c);
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(10), "ncat did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        l
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn local_snapshots_show_new_listeners_and_new_owners() {
    if !require_tool("local_snapshots", "ncat") {
        return;
    }
    let dir = TempDir::new("store-local");
    for db in databases(&dir, "local") {
        let port = free_port();
        let ls = |db: &str| {
            let o = p(db, &["ls", "-t", "--port", &port.to_string(), "--save", "-o", "json"]);
            assert!(o.status.success(), "{}", stderr(&o));
            assert!(stderr(&o).contains("saved snapshot"), "{}", stderr(&o));
        };
        ls(&db);
        let py = Listener::python(port);
        ls(&db);
        let o = p(&db, &["diff", "last~1", "last", "-o", "json"]);
        assert_eq!(o.status.code(), Some(1), "{db}: {}", stderr(&o));
        let d: Value = serde_json::from_slice(&o.stdout).unwrap();
        let l = &d["listeners"][0];
        assert_eq!(
            (l["port"].as_u64(), l["change"].as_str()),
            (Some(u64::from(port)), Some("opened")),
            "{d}"
        );
        assert_eq!(l["owners_b"][0]["process"], "python3");
        // the same port, another program: new owners
        drop(py);
        let _nc = Listener::ncat(port);
        ls(&db);
        let o = p(&db, &["diff", "last~1", "last"]);
        assert_eq!(o.status.code(), Some(1));
        let text = stdout(&o);
        assert!(text.contains("owners") && text.contains("python3") && text.contains("ncat"), "{text}");
        // nothing changed: exit 0
        ls(&db);
        let o = p(&db, &["diff", "last~1", "last"]);
        assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
        // a local inventory and a scan are not compared
        let xml = dir.join("one.xml");
        nmap_xml(&xml, 1, 10, 0);
        assert!(p(&db, &["import", xml.to_str().unwrap(), "--save", "-o", "json"]).status.success());
        let o = p(&db, &["diff", "last~1", "last"]);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("different kinds"), "{}", stderr(&o));
    }
}

#[test]
fn scan_and_import_snapshots_list_show_and_diff() {
    let dir = TempDir::new("store-scan");
    for db in databases(&dir, "scan") {
        let (a, b) = (dir.join("a.xml"), dir.join("b.xml"));
        nmap_xml(&a, 3, 200, 0);
        nmap_xml(&b, 3, 200, 20);
        assert!(p(&db, &["import", a.to_str().unwrap(), "--save", "-o", "json"]).status.success());
        assert!(p(&db, &["import", b.to_str().unwrap(), "--save", "-o", "json"]).status.success());
        // a live scan of loopback, saved
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port().to_string();
        let o = p(&db, &["scan", "-sT", "-Pn", "127.0.0.1", "-p", &port, "--save", "-o", "json"]);
        assert!(o.status.success(), "{}", stderr(&o));

        let list = json(&p(&db, &["snapshots", "-o", "json"]));
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 3, "{db}");
        assert_eq!(list[0]["source"], "scan");
        assert_eq!((list[0]["hosts"].as_i64(), list[0]["open"].as_i64()), (Some(1), Some(1)));
        assert_eq!(list[1]["source"], "import");
        assert_eq!(list[1]["ports"].as_i64(), Some(600));

        // a stored import diffs exactly like the files it came from
        let files = p(&db, &["diff", a.to_str().unwrap(), b.to_str().unwrap(), "-o", "json"]);
        let snaps = p(&db, &["diff", "last~2", "last~1", "-o", "json"]);
        assert_eq!(files.status.code(), Some(1));
        assert_eq!(snaps.status.code(), Some(1));
        assert_eq!(json_of(&files)["hosts"], json_of(&snaps)["hosts"], "{db}");
        // and a snapshot against a file
        let mixed = p(&db, &["diff", "last~2", b.to_str().unwrap(), "-o", "json"]);
        assert_eq!(json_of(&mixed)["hosts"], json_of(&files)["hosts"]);

        let shown = json(&p(&db, &["snapshots", "--show", "last"]));
        assert_eq!(shown["source"], "scan");
        assert_eq!(shown["scan"]["hosts"][0]["ports"][0]["state"], "open");

        // retention
        let o = p(&db, &["snapshots", "--keep", "1", "-o", "json"]);
        assert_eq!(json(&o).as_array().unwrap().len(), 1);
        let o = p(&db, &["snapshots", "--delete", "last"]);
        assert!(o.status.success());
        let o = p(&db, &["diff", "last~1", "last"]);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("no snapshots yet"), "{}", stderr(&o));
    }
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(o)))
}

#[test]
fn bad_database_and_reference_errors_are_clear() {
    let dir = TempDir::new("store-bad");
    std::fs::write(dir.join("file"), "x").unwrap();
    let under_file = dir.join("file/p.db");
    let o = p(under_file.to_str().unwrap(), &["snapshots"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot open the snapshot database") && stderr(&o).contains("--db"),
        "{}",
        stderr(&o)
    );

    let notdb = dir.join("garbage.db");
    std::fs::write(&notdb, vec![b'z'; 8192]).unwrap();
    let o = p(notdb.to_str().unwrap(), &["snapshots"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("garbage.db"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));

    let db = dir.join("p.db");
    let db = db.to_str().unwrap();
    for (args, want) in [
        (vec!["snapshots", "--show", "last~x"], "not a snapshot reference"),
        (vec!["snapshots", "--older-than", "3 fortnights"], "unknown unit"),
        (vec!["diff", "nosuchfile.xml", "last"], "no such file, and not a snapshot reference"),
        (vec!["snapshots", "--show", "7"], "no snapshot 7"),
    ] {
        let o = p(db, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    let o = p("postgres://nobody@127.0.0.1:1/none", &["snapshots"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("postgres://nobody@127.0.0.1:1/none"), "{}", stderr(&o));
}

/// Whether a writer is inside its save transaction right now.
fn writer_busy(db: &str) -> bool {
    if db.starts_with("postgres") {
        let mut c = postgres::Client::connect(db, postgres::NoTls).unwrap();
        let rows = c
            .query(
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
                 AND (query LIKE 'COPY host%' OR query LIKE 'INSERT INTO snapshot%') AND state <> 'idle'",
                &[],
            )
            .unwrap();
        !rows.is_empty()
    } else {
        let c = rusqlite::Connection::open(db).unwrap();
        c.busy_timeout(Duration::ZERO).unwrap();
        match c.execute_batch("BEGIN IMMEDIATE; ROLLBACK;") {
            Ok(()) => false,
            Err(e) => e.to_string().contains("locked") || e.to_string().contains("busy"),
        }
    }
}

#[test]
fn a_save_killed_midway_leaves_no_trace_and_concurrent_saves_succeed() {
    let dir = TempDir::new("store-crash");
    let small = dir.join("small.xml");
    let big = dir.join("big.xml");
    nmap_xml(&small, 2, 50, 0);
    nmap_xml(&big, 100, 1000, 0); // 100,000 port observations
    for db in databases(&dir, "crash") {
        for _ in 0..2 {
            assert!(p(&db, &["import", small.to_str().unwrap(), "--save", "-o", "json"]).status.success());
        }
        let before = json(&p(&db, &["snapshots", "-o", "json"]));
        let shown_before = stdout(&p(&db, &["snapshots", "--show", "last"]));

        // kill the saver while it holds its transaction open
        let mut child = Command::new(BIN)
            .args(["import", big.to_str().unwrap(), "--save", "--db", &db, "-o", "json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let mut killed_midway = false;
        while t0.elapsed() < Duration::from_secs(120) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if writer_busy(&db) {
                child.kill().unwrap(); // SIGKILL
                killed_midway = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.wait();
        assert!(killed_midway, "{db}: the save finished before it could be caught mid-transaction");

        // the database opens, the earlier snapshots are intact, the partial one is invisible
        let after = json(&p(&db, &["snapshots", "-o", "json"]));
        assert_eq!(after, before, "{db}");
        assert_eq!(stdout(&p(&db, &["snapshots", "--show", "last"])), shown_before);
        if !db.starts_with("postgres") {
            let c = rusqlite::Connection::open(&db).unwrap();
            let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
            assert_eq!(ok, "ok");
            let hosts: i64 = c.query_row("SELECT COUNT(*) FROM host", [], |r| r.get(0)).unwrap();
            assert_eq!(hosts, 4, "rows of the killed save are visible");
        } else {
            let mut c = postgres::Client::connect(&db, postgres::NoTls).unwrap();
            let hosts: i64 = c.query_one("SELECT COUNT(*) FROM host", &[]).unwrap().get(0);
            assert_eq!(hosts, 4, "rows of the killed save are visible");
        }

        // two processes saving the large snapshot at once: both succeed, both whole
        let spawn = || {
            Command::new(BIN)
                .args(["import", big.to_str().unwrap(), "--save", "--db", &db, "-o", "json"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (x, y) = (spawn(), spawn());
        for c in [x, y] {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{db}: {}", String::from_utf8_lossy(&o.stderr));
        }
        let list = json(&p(&db, &["snapshots", "-o", "json"]));
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 4, "{db}");
        for s in &list[..2] {
            assert_eq!(s["ports"].as_i64(), Some(100_000), "{db}: {s}");
            let id = s["id"].to_string();
            let shown = json(&p(&db, &["snapshots", "--show", &id]));
            let n: usize = shown["scan"]["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["ports"].as_array().unwrap().len())
                .sum();
            assert_eq!(n, 100_000);
        }
    }
}
