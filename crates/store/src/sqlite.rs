//! The embedded backend: one SQLite file in WAL mode. Writers take the write lock up front
//! (`BEGIN IMMEDIATE`) and wait for each other (busy timeout), so two processes saving at once
//! both succeed; a killed writer leaves no trace (the WAL is rolled back on next open).

use std::path::{Path, PathBuf};
use std::time::Duration;

use portolan_model::{Finding, Host, LocalInventory, LocalSocket, ScanRun, Snapshot, SnapshotInfo, Source};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::codec;
use crate::{Error, Result, RunInfo, RunSpec, SCHEMA_VERSION};

/// Schema migrations, in order; `MIGRATIONS[i]` brings the schema to version `i + 1`.
const MIGRATIONS: [&str; 2] = [
    r#"
CREATE TABLE snapshot (
    id INTEGER PRIMARY KEY,
    taken_at INTEGER NOT NULL,          -- nanoseconds since 1970-01-01 UTC
    source TEXT NOT NULL,               -- local | scan | import | audit
    machine TEXT NOT NULL,
    tool_version TEXT NOT NULL,
    scanner TEXT,
    scanner_version TEXT,
    args TEXT,
    host_count INTEGER NOT NULL,
    port_count INTEGER NOT NULL,
    open_count INTEGER NOT NULL,
    socket_count INTEGER NOT NULL,
    finding_count INTEGER NOT NULL,
    scan_meta TEXT,                     -- JSON: the ScanRun without hosts
    local_meta TEXT                     -- JSON: the LocalInventory without sockets
);
CREATE INDEX snapshot_taken_at ON snapshot (taken_at);
CREATE TABLE host (
    snapshot_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    address TEXT NOT NULL,
    state TEXT NOT NULL,
    hostname TEXT,
    open_count INTEGER NOT NULL,
    detail TEXT NOT NULL,               -- JSON: the Host without its ports
    ports TEXT NOT NULL,                -- JSON: [[number, transport, state, reason, reason_ttl, service?], ...]
    PRIMARY KEY (snapshot_id, seq)
) WITHOUT ROWID;
CREATE TABLE socket (
    snapshot_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    transport TEXT NOT NULL,
    state TEXT NOT NULL,
    address TEXT NOT NULL,
    port INTEGER NOT NULL,
    process TEXT,
    scope TEXT NOT NULL,
    detail TEXT NOT NULL,               -- JSON: the LocalSocket
    PRIMARY KEY (snapshot_id, seq)
) WITHOUT ROWID;
CREATE TABLE finding (
    snapshot_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    title TEXT NOT NULL,
    address TEXT,
    port INTEGER,
    transport TEXT,
    detail TEXT NOT NULL,               -- JSON: the Finding
    PRIMARY KEY (snapshot_id, seq)
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE run (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    shards INTEGER NOT NULL,
    seed TEXT NOT NULL,                 -- u64, as text
    spec TEXT NOT NULL                  -- the arguments every shard shares
);
CREATE TABLE run_shard (
    run_id INTEGER NOT NULL,
    shard INTEGER NOT NULL,             -- 1-based
    snapshot_id INTEGER NOT NULL UNIQUE,
    PRIMARY KEY (run_id, shard)
) WITHOUT ROWID;
CREATE TABLE run_failure (
    run_id INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    at INTEGER NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (run_id, shard)
) WITHOUT ROWID;
"#,
];

pub struct Db {
    conn: Connection,
    location: String,
}

impl Db {
    fn err(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        |source| Error::Sqlite { location: self.location.clone(), source }
    }

    pub fn open(location: &str) -> Result<Db> {
        let path = PathBuf::from(location);
        let open_err =
            |source: Box<dyn std::error::Error + Send + Sync>| Error::Open { path: path.clone(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(|e| open_err(Box::new(e)))?;
        }
        let existed = path.exists();
        let conn = Connection::open(&path).map_err(|e| open_err(Box::new(e)))?;
        if !existed {
            // the inventory of a network is sensitive: only the owner reads it
            set_private(&path);
        }
        let db = Db { conn, location: location.to_string() };
        db.conn.busy_timeout(Duration::from_secs(300)).map_err(db.err())?;
        let mode: String = db
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| open_err(Box::new(e)))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open_err(format!("cannot switch to WAL mode (got {mode})").into()));
        }
        db.conn
            .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -32768;")
            .map_err(db.err())?;
        let mut db = db;
        db.migrate()?;
        Ok(db)
    }

    /// An existing database at the current schema, opened read-only; `None` for one at another
    /// version (it is neither migrated nor refused).
    pub fn open_current(location: &str) -> Result<Option<Db>> {
        let path = PathBuf::from(location);
        let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| Error::Open { path: path.clone(), source: Box::new(e) })?;
        let db = Db { conn, location: location.to_string() };
        db.conn.busy_timeout(Duration::from_secs(5)).map_err(db.err())?;
        let current: Option<i64> = db
            .conn
            .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| r.get(0))
            .optional()
            .ok()
            .flatten()
            .flatten();
        Ok((current == Some(SCHEMA_VERSION)).then_some(db))
    }

    fn migrate(&mut self) -> Result<()> {
        let location = self.location.clone();
        let err = |source| Error::Sqlite { location: location.clone(), source };
        // a database already at this version is only read: opening never takes the write lock
        let current: Option<i64> = self
            .conn
            .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| r.get(0))
            .optional()
            .ok()
            .flatten()
            .flatten();
        if current == Some(SCHEMA_VERSION) {
            return Ok(());
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .map_err(err)?;
        let found: i64 = tx
            .query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))
            .map_err(err)?;
        if found > SCHEMA_VERSION {
            return Err(Error::TooNew { location, found, known: SCHEMA_VERSION });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.execute_batch(sql).map_err(err)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![i as i64 + 1, codec::nanos(jiff::Timestamp::now())],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    fn corrupt(&self, snapshot: i64, what: impl Into<String>) -> Error {
        Error::Corrupt { location: self.location.clone(), snapshot, what: what.into() }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

/// Writes a snapshot's rows in `tx`; returns its id.
fn insert(tx: &rusqlite::Transaction<'_>, s: &Snapshot) -> rusqlite::Result<i64> {
    {
        let counts = codec::counts(s);
        tx.execute(
            "INSERT INTO snapshot (taken_at, source, machine, tool_version, scanner, scanner_version, args,
                host_count, port_count, open_count, socket_count, finding_count, scan_meta, local_meta)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                codec::nanos(s.taken_at),
                s.source.as_str(),
                s.machine,
                s.tool_version,
                s.scan.as_ref().map(|r| r.scanner.as_str()),
                s.scan.as_ref().map(|r| r.scanner_version.as_str()),
                s.scan.as_ref().map(|r| r.args.as_str()),
                counts.hosts,
                counts.ports,
                counts.open,
                counts.sockets,
                counts.findings,
                s.scan.as_ref().map(codec::scan_meta),
                s.local.as_ref().map(codec::local_meta),
            ],
        )?;
        let id = tx.last_insert_rowid();
        if let Some(run) = &s.scan {
            let mut host = tx.prepare_cached(
                "INSERT INTO host (snapshot_id, seq, address, state, hostname, open_count, detail, ports)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut buf = Vec::new();
            for (seq, h) in run.hosts.iter().enumerate() {
                buf.clear();
                codec::ports_json(h, &mut buf);
                host.execute(params![
                    id,
                    seq as i64,
                    h.address.to_string(),
                    h.status.state.as_str(),
                    h.hostnames.first().map(|n| n.name.as_str()),
                    codec::open_count(h),
                    codec::host_detail(h),
                    std::str::from_utf8(&buf).unwrap_or("[]"),
                ])?;
            }
        }
        if let Some(inv) = &s.local {
            let mut sock = tx
                .prepare_cached(
                    "INSERT INTO socket (snapshot_id, seq, transport, state, address, port, process, scope, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
            for (seq, so) in inv.sockets.iter().enumerate() {
                sock.execute(params![
                    id,
                    seq as i64,
                    so.transport.as_str(),
                    so.state.as_str(),
                    so.local_address.to_string(),
                    i64::from(so.local_port),
                    so.owners.first().map(|o| &*o.comm),
                    so.scope.as_str(),
                    codec::socket_detail(so),
                ])?;
            }
        }
        {
            let mut fnd = tx
                .prepare_cached(
                    "INSERT INTO finding (snapshot_id, seq, rule, severity, title, address, port, transport, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
            for (seq, f) in s.findings.iter().enumerate() {
                let t = f.target.as_ref();
                fnd.execute(params![
                    id,
                    seq as i64,
                    f.rule,
                    f.severity.as_str(),
                    f.title,
                    t.and_then(|t| t.address).map(|a| a.to_string()),
                    t.and_then(|t| t.port).map(i64::from),
                    t.and_then(|t| t.transport).map(|x| x.as_str()),
                    codec::finding_detail(f),
                ])?;
            }
        }
        Ok(id)
    }
}

/// Deletes a snapshot's rows in `tx`; how many snapshot rows went.
fn remove(tx: &rusqlite::Transaction<'_>, id: i64) -> rusqlite::Result<usize> {
    for table in ["host", "socket", "finding"] {
        tx.execute(&format!("DELETE FROM {table} WHERE snapshot_id = ?1"), [id])?;
    }
    tx.execute("DELETE FROM run_shard WHERE snapshot_id = ?1", [id])?;
    tx.execute("DELETE FROM snapshot WHERE id = ?1", [id])
}

/// Snapshots that are shards of a run are listed with their runs, not on their own.
const NOT_A_SHARD: &str = "id NOT IN (SELECT snapshot_id FROM run_shard)";

impl crate::Backend for Db {
    fn save(&mut self, s: &Snapshot) -> Result<i64> {
        let location = self.location.clone();
        let err = |source| Error::Sqlite { location: location.clone(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        let id = insert(&tx, s).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(id)
    }

    fn save_shard(&mut self, s: &Snapshot, run: &RunSpec, shard: u32) -> Result<i64> {
        let location = self.location.clone();
        let err = |source| Error::Sqlite { location: location.clone(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        let existing: Option<(i64, i64, String, String)> = tx
            .query_row("SELECT id, shards, seed, spec FROM run WHERE name = ?1", [&run.name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
            .map_err(err)?;
        let run_id = match existing {
            Some((id, shards, seed, spec)) => {
                let have = (shards, seed, spec);
                let want = (i64::from(run.shards), run.seed.to_string(), run.spec.clone());
                if have != want {
                    return Err(Error::RunMismatch {
                        run: run.name.clone(),
                        location,
                        existing: format!("{} shards, seed {}, arguments \"{}\"", have.0, have.1, have.2),
                        given: format!("{} shards, seed {}, arguments \"{}\"", want.0, want.1, want.2),
                    });
                }
                id
            }
            None => {
                tx.execute(
                    "INSERT INTO run (name, created_at, shards, seed, spec) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        run.name,
                        codec::nanos(s.taken_at),
                        i64::from(run.shards),
                        run.seed.to_string(),
                        run.spec
                    ],
                )
                .map_err(err)?;
                tx.last_insert_rowid()
            }
        };
        let old: Option<i64> = tx
            .query_row(
                "SELECT snapshot_id FROM run_shard WHERE run_id = ?1 AND shard = ?2",
                params![run_id, shard],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?;
        if let Some(old) = old {
            remove(&tx, old).map_err(err)?;
        }
        let id = insert(&tx, s).map_err(err)?;
        tx.execute("DELETE FROM run_failure WHERE run_id = ?1 AND shard = ?2", params![run_id, shard])
            .map_err(err)?;
        tx.execute(
            "INSERT INTO run_shard (run_id, shard, snapshot_id) VALUES (?1, ?2, ?3)",
            params![run_id, shard, id],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(id)
    }

    fn runs(&mut self) -> Result<Vec<RunInfo>> {
        let err = self.err();
        let mut st = self
            .conn
            .prepare(
                "SELECT r.name, r.created_at, r.shards, r.seed, r.spec, s.shard, n.host_count, n.open_count
                 FROM run r LEFT JOIN run_shard s ON s.run_id = r.id LEFT JOIN snapshot n ON n.id = s.snapshot_id
                 ORDER BY r.id DESC, s.shard",
            )
            .map_err(&err)?;
        type Row = (String, i64, i64, String, String, Option<i64>, Option<i64>, Option<i64>);
        let rows = st
            .query_map([], |r| -> rusqlite::Result<Row> {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
            })
            .map_err(&err)?;
        let mut out: Vec<RunInfo> = Vec::new();
        for row in rows {
            let (name, created, shards, seed, spec, shard, hosts, open) = row.map_err(&err)?;
            if out.last().is_none_or(|r| r.name != name) {
                out.push(RunInfo {
                    name,
                    created_at: codec::from_nanos(created).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
                    shards: shards as u32,
                    seed: seed.parse().unwrap_or(0),
                    spec,
                    done: Vec::new(),
                    failed: Vec::new(),
                    hosts: 0,
                    open: 0,
                });
            }
            if let (Some(r), Some(shard)) = (out.last_mut(), shard) {
                r.done.push(shard as u32);
                r.hosts += hosts.unwrap_or(0);
                r.open += open.unwrap_or(0);
            }
        }
        Ok(out)
    }

    fn run_snapshots(&mut self, name: &str) -> Result<Option<(RunInfo, Vec<i64>)>> {
        let Some(info) = self.runs()?.into_iter().find(|r| r.name == name) else { return Ok(None) };
        let err = self.err();
        let mut st = self
            .conn
            .prepare(
                "SELECT s.snapshot_id FROM run_shard s JOIN run r ON r.id = s.run_id WHERE r.name = ?1 ORDER BY s.shard",
            )
            .map_err(&err)?;
        let ids = st.query_map([name], |r| r.get::<_, i64>(0)).map_err(&err)?;
        let ids: Vec<i64> = ids.collect::<rusqlite::Result<_>>().map_err(&err)?;
        Ok(Some((info, ids)))
    }

    fn mark_failed(&mut self, run: &RunSpec, shard: u32, at: i64, message: &str) -> Result<()> {
        let location = self.location.clone();
        let err = |source| Error::Sqlite { location: location.clone(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        tx.execute(
            "INSERT OR IGNORE INTO run (name, created_at, shards, seed, spec) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![run.name, at, i64::from(run.shards), run.seed.to_string(), run.spec],
        )
        .map_err(err)?;
        tx.execute(
            "INSERT OR REPLACE INTO run_failure (run_id, shard, at, message)
             SELECT id, ?2, ?3, ?4 FROM run WHERE name = ?1",
            params![run.name, shard, at, message],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    fn failures(&mut self) -> Result<Vec<(String, u32, String)>> {
        let err = self.err();
        let mut st = self
            .conn
            .prepare("SELECT r.name, f.shard, f.message FROM run_failure f JOIN run r ON r.id = f.run_id")
            .map_err(&err)?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u32, r.get::<_, String>(2)?))
            })
            .map_err(&err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(&err)
    }

    fn delete_run(&mut self, name: &str) -> Result<bool> {
        let location = self.location.clone();
        let err = |source| Error::Sqlite { location: location.clone(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        let id: Option<i64> = tx
            .query_row("SELECT id FROM run WHERE name = ?1", [name], |r| r.get(0))
            .optional()
            .map_err(err)?;
        let Some(id) = id else { return Ok(false) };
        let shards: Vec<i64> = {
            let mut st = tx.prepare("SELECT snapshot_id FROM run_shard WHERE run_id = ?1").map_err(err)?;
            let rows = st.query_map([id], |r| r.get(0)).map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)?
        };
        for s in shards {
            remove(&tx, s).map_err(err)?;
        }
        tx.execute("DELETE FROM run_failure WHERE run_id = ?1", [id]).map_err(err)?;
        tx.execute("DELETE FROM run WHERE id = ?1", [id]).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(true)
    }

    fn list(&mut self) -> Result<Vec<SnapshotInfo>> {
        let err = self.err();
        let mut st = self
            .conn
            .prepare(
                "SELECT id, taken_at, source, machine, tool_version, scanner, args, host_count, port_count,
                    open_count, socket_count, finding_count FROM snapshot WHERE id NOT IN (SELECT snapshot_id FROM run_shard)
                    ORDER BY id DESC",
            )
            .map_err(&err)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    SnapshotInfo {
                        id: r.get(0)?,
                        taken_at: jiff::Timestamp::UNIX_EPOCH,
                        source: Source::Scan,
                        machine: r.get(3)?,
                        tool_version: r.get(4)?,
                        scanner: r.get(5)?,
                        args: r.get(6)?,
                        hosts: r.get(7)?,
                        ports: r.get(8)?,
                        open: r.get(9)?,
                        sockets: r.get(10)?,
                        findings: r.get(11)?,
                    },
                ))
            })
            .map_err(&err)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, taken, source, mut info) = row.map_err(&err)?;
            info.taken_at =
                codec::from_nanos(taken).ok_or_else(|| self.corrupt(id, "taken_at out of range"))?;
            info.source = source.parse().map_err(|e| self.corrupt(id, format!("{e}")))?;
            out.push(info);
        }
        Ok(out)
    }

    fn nth_last(&mut self, n: u32) -> Result<Option<i64>> {
        self.conn
            .query_row(
                &format!("SELECT id FROM snapshot WHERE {NOT_A_SHARD} ORDER BY id DESC LIMIT 1 OFFSET ?1"),
                [i64::from(n)],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())
    }

    fn exists(&mut self, id: i64) -> Result<bool> {
        self.conn
            .query_row("SELECT 1 FROM snapshot WHERE id = ?1", [id], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
            .map_err(self.err())
    }

    fn load(&mut self, id: i64) -> Result<Snapshot> {
        let err = self.err();
        // one read transaction, so that the snapshot is read as one
        let tx = self.conn.unchecked_transaction().map_err(&err)?;
        type Head = (i64, String, String, String, Option<String>, Option<String>);
        let head: Option<Head> = tx
            .query_row(
                "SELECT taken_at, source, machine, tool_version, scan_meta, local_meta FROM snapshot WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()
            .map_err(&err)?;
        let Some((taken, source, machine, tool_version, scan_meta, local_meta)) = head else {
            return Err(Error::NotFound {
                reference: id.to_string(),
                location: self.location.clone(),
                hint: "see portolan snapshots".into(),
            });
        };
        let bad = |what: String| Error::Corrupt { location: self.location.clone(), snapshot: id, what };
        let mut scan: Option<ScanRun> = match scan_meta {
            Some(j) => Some(serde_json::from_str(&j).map_err(|e| bad(format!("scan_meta: {e}")))?),
            None => None,
        };
        if let Some(run) = scan.as_mut() {
            let mut st = tx
                .prepare("SELECT seq, detail, ports FROM host WHERE snapshot_id = ?1 ORDER BY seq")
                .map_err(&err)?;
            let mut rows = st.query([id]).map_err(&err)?;
            while let Some(r) = rows.next().map_err(&err)? {
                let seq: i64 = r.get(0).map_err(&err)?;
                // as_str checks UTF-8 once; from_str then skips serde_json's per-string check
                let detail =
                    r.get_ref(1).map_err(&err)?.as_str().map_err(|e| bad(format!("host {seq}: {e}")))?;
                let mut h: Host =
                    serde_json::from_str(detail).map_err(|e| bad(format!("host {seq}: {e}")))?;
                let ports =
                    r.get_ref(2).map_err(&err)?.as_str().map_err(|e| bad(format!("host {seq}: {e}")))?;
                h.ports = codec::ports_from_json(ports).map_err(|e| bad(format!("host {seq} ports: {e}")))?;
                if seq as usize != run.hosts.len() {
                    return Err(bad(format!("host {seq} out of sequence")));
                }
                run.hosts.push(h);
            }
        }
        let mut local: Option<LocalInventory> = match local_meta {
            Some(j) => Some(serde_json::from_str(&j).map_err(|e| bad(format!("local_meta: {e}")))?),
            None => None,
        };
        if let Some(inv) = local.as_mut() {
            let mut st = tx
                .prepare("SELECT seq, detail FROM socket WHERE snapshot_id = ?1 ORDER BY seq")
                .map_err(&err)?;
            let rows =
                st.query_map([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))).map_err(&err)?;
            for row in rows {
                let (seq, detail) = row.map_err(&err)?;
                let s: LocalSocket =
                    serde_json::from_str(&detail).map_err(|e| bad(format!("socket {seq}: {e}")))?;
                inv.sockets.push(s);
            }
        }
        let mut findings = Vec::new();
        {
            let mut st = tx
                .prepare("SELECT seq, detail FROM finding WHERE snapshot_id = ?1 ORDER BY seq")
                .map_err(&err)?;
            let rows =
                st.query_map([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))).map_err(&err)?;
            for row in rows {
                let (seq, detail) = row.map_err(&err)?;
                let f: Finding =
                    serde_json::from_str(&detail).map_err(|e| bad(format!("finding {seq}: {e}")))?;
                findings.push(f);
            }
        }
        tx.finish().map_err(&err)?;
        Ok(Snapshot {
            id: Some(id),
            taken_at: codec::from_nanos(taken).ok_or_else(|| bad("taken_at out of range".into()))?,
            source: source.parse().map_err(|e| bad(format!("{e}")))?,
            machine,
            tool_version,
            scan,
            local,
            findings,
        })
    }

    fn delete(&mut self, ids: &[i64]) -> Result<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let location = self.location.clone();
        let err = |source| Error::Sqlite { location: location.clone(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        let mut n = 0;
        for id in ids {
            n += remove(&tx, *id).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(n)
    }
}
