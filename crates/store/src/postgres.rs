//! The team backend: a PostgreSQL database shared by many machines, with the same schema and
//! behaviour as the SQLite file. Snapshots are written in one transaction with `COPY … FROM
//! STDIN (FORMAT binary)`, so a large snapshot is fast to save and all-or-nothing.

use std::str::FromStr;

use portolan_model::{Finding, Host, LocalInventory, LocalSocket, ScanRun, Snapshot, SnapshotInfo};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::{Client, Config, NoTls};

use crate::codec;
use crate::{Error, Result, RunInfo, RunSpec, SCHEMA_VERSION};

/// Serialises migrations between processes (an arbitrary constant: "portolan" in ASCII).
const MIGRATION_LOCK: i64 = 0x706f_7274_6f6c_616e;

const MIGRATIONS: [&str; 2] = [
    r#"
CREATE TABLE snapshot (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    taken_at BIGINT NOT NULL,
    source TEXT NOT NULL,
    machine TEXT NOT NULL,
    tool_version TEXT NOT NULL,
    scanner TEXT,
    scanner_version TEXT,
    args TEXT,
    host_count BIGINT NOT NULL,
    port_count BIGINT NOT NULL,
    open_count BIGINT NOT NULL,
    socket_count BIGINT NOT NULL,
    finding_count BIGINT NOT NULL,
    scan_meta TEXT,
    local_meta TEXT
);
CREATE INDEX snapshot_taken_at ON snapshot (taken_at);
CREATE TABLE host (
    snapshot_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    address TEXT NOT NULL,
    state TEXT NOT NULL,
    hostname TEXT,
    open_count BIGINT NOT NULL,
    detail TEXT NOT NULL,
    ports TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, seq)
);
CREATE TABLE socket (
    snapshot_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    transport TEXT NOT NULL,
    state TEXT NOT NULL,
    address TEXT NOT NULL,
    port BIGINT NOT NULL,
    process TEXT,
    scope TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, seq)
);
CREATE TABLE finding (
    snapshot_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    title TEXT NOT NULL,
    address TEXT,
    port BIGINT,
    transport TEXT,
    detail TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, seq)
);
"#,
    r#"
CREATE TABLE run (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    shards BIGINT NOT NULL,
    seed TEXT NOT NULL,
    spec TEXT NOT NULL
);
CREATE TABLE run_shard (
    run_id BIGINT NOT NULL,
    shard BIGINT NOT NULL,
    snapshot_id BIGINT NOT NULL UNIQUE,
    PRIMARY KEY (run_id, shard)
);
CREATE TABLE run_failure (
    run_id BIGINT NOT NULL,
    shard BIGINT NOT NULL,
    at BIGINT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (run_id, shard)
);
"#,
];

pub struct Db {
    client: Client,
    location: String,
}

/// `postgres://user@host:port/db`, without the password, for messages.
pub fn redact(url: &str) -> String {
    match Config::from_str(url) {
        Ok(c) => {
            let host = c
                .get_hosts()
                .first()
                .map(|h| match h {
                    postgres::config::Host::Tcp(s) => s.clone(),
                    postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .unwrap_or_default();
            let port = c.get_ports().first().map(|p| format!(":{p}")).unwrap_or_default();
            let user = c.get_user().map(|u| format!("{u}@")).unwrap_or_default();
            format!("postgres://{user}{host}{port}/{}", c.get_dbname().unwrap_or(""))
        }
        Err(_) => "postgres://(unparsable URL)".to_string(),
    }
}

impl Db {
    fn err(&self) -> impl Fn(postgres::Error) -> Error + '_ {
        |source| Error::Postgres { location: self.location.clone(), source }
    }

    pub fn open(url: &str) -> Result<Db> {
        let location = redact(url);
        let config =
            Config::from_str(url).map_err(|source| Error::Postgres { location: location.clone(), source })?;
        let client =
            config.connect(NoTls).map_err(|source| Error::Postgres { location: location.clone(), source })?;
        let mut db = Db { client, location };
        db.migrate()?;
        Ok(db)
    }

    fn migrate(&mut self) -> Result<()> {
        let location = self.location.clone();
        let err = |source| Error::Postgres { location: location.clone(), source };
        let mut tx = self.client.transaction().map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(err)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .map_err(err)?;
        let found: i64 = tx
            .query_one("SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations", &[])
            .map_err(err)?
            .get(0);
        if found > SCHEMA_VERSION {
            return Err(Error::TooNew { location, found, known: SCHEMA_VERSION });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.batch_execute(sql).map_err(err)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[&(i as i64 + 1), &codec::nanos(jiff::Timestamp::now())],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }
}

fn copy_rows(
    tx: &mut postgres::Transaction<'_>,
    sql: &str,
    types: &[Type],
    rows: &mut dyn Iterator<Item = Vec<Box<dyn ToSql + Sync>>>,
) -> std::result::Result<(), postgres::Error> {
    let sink = tx.copy_in(sql)?;
    let mut w = BinaryCopyInWriter::new(sink, types);
    for row in rows {
        let refs: Vec<&(dyn ToSql + Sync)> = row.iter().map(|b| b.as_ref()).collect();
        w.write(&refs)?;
    }
    w.finish()?;
    Ok(())
}

/// Writes a snapshot's rows in `tx`; returns its id.
fn insert(tx: &mut postgres::Transaction<'_>, s: &Snapshot) -> std::result::Result<i64, postgres::Error> {
    {
        let counts = codec::counts(s);
        let scan_meta = s.scan.as_ref().map(codec::scan_meta);
        let local_meta = s.local.as_ref().map(codec::local_meta);
        let id: i64 = tx
            .query_one(
                "INSERT INTO snapshot (taken_at, source, machine, tool_version, scanner, scanner_version, args,
                    host_count, port_count, open_count, socket_count, finding_count, scan_meta, local_meta)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
                &[
                    &codec::nanos(s.taken_at),
                    &s.source.as_str(),
                    &s.machine,
                    &s.tool_version,
                    &s.scan.as_ref().map(|r| r.scanner.as_str()),
                    &s.scan.as_ref().map(|r| r.scanner_version.as_str()),
                    &s.scan.as_ref().map(|r| r.args.as_str()),
                    &counts.hosts,
                    &counts.ports,
                    &counts.open,
                    &counts.sockets,
                    &counts.findings,
                    &scan_meta,
                    &local_meta,
                ],
            )?
            .get(0);
        if let Some(run) = &s.scan {
            let mut rows = run.hosts.iter().enumerate().map(|(seq, h)| -> Vec<Box<dyn ToSql + Sync>> {
                let mut buf = Vec::new();
                codec::ports_json(h, &mut buf);
                vec![
                    Box::new(id),
                    Box::new(seq as i64),
                    Box::new(h.address.to_string()),
                    Box::new(h.status.state.as_str()),
                    Box::new(h.hostnames.first().map(|n| n.name.clone())),
                    Box::new(codec::open_count(h)),
                    Box::new(codec::host_detail(h)),
                    Box::new(String::from_utf8(buf).unwrap_or_else(|_| "[]".into())),
                ]
            });
            copy_rows(
                tx,
                "COPY host (snapshot_id, seq, address, state, hostname, open_count, detail, ports) FROM STDIN (FORMAT binary)",
                &[
                    Type::INT8,
                    Type::INT8,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::INT8,
                    Type::TEXT,
                    Type::TEXT,
                ],
                &mut rows,
            )?;
        }
        if let Some(inv) = &s.local {
            let mut rows = inv.sockets.iter().enumerate().map(|(seq, so)| -> Vec<Box<dyn ToSql + Sync>> {
                vec![
                    Box::new(id),
                    Box::new(seq as i64),
                    Box::new(so.transport.as_str()),
                    Box::new(so.state.as_str()),
                    Box::new(so.local_address.to_string()),
                    Box::new(i64::from(so.local_port)),
                    Box::new(so.owners.first().map(|o| o.comm.to_string())),
                    Box::new(so.scope.as_str()),
                    Box::new(codec::socket_detail(so)),
                ]
            });
            copy_rows(
                tx,
                "COPY socket (snapshot_id, seq, transport, state, address, port, process, scope, detail) FROM STDIN (FORMAT binary)",
                &[
                    Type::INT8,
                    Type::INT8,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::INT8,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                ],
                &mut rows,
            )?;
        }
        if !s.findings.is_empty() {
            let mut rows = s.findings.iter().enumerate().map(|(seq, f)| -> Vec<Box<dyn ToSql + Sync>> {
                let t = f.target.as_ref();
                vec![
                    Box::new(id),
                    Box::new(seq as i64),
                    Box::new(f.rule.clone()),
                    Box::new(f.severity.as_str()),
                    Box::new(f.title.clone()),
                    Box::new(t.and_then(|t| t.address).map(|a| a.to_string())),
                    Box::new(t.and_then(|t| t.port).map(i64::from)),
                    Box::new(t.and_then(|t| t.transport).map(|x| x.as_str())),
                    Box::new(codec::finding_detail(f)),
                ]
            });
            copy_rows(
                tx,
                "COPY finding (snapshot_id, seq, rule, severity, title, address, port, transport, detail) FROM STDIN (FORMAT binary)",
                &[
                    Type::INT8,
                    Type::INT8,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::INT8,
                    Type::TEXT,
                    Type::TEXT,
                ],
                &mut rows,
            )?;
        }
        Ok(id)
    }
}

/// Deletes snapshots' rows in `tx`; how many snapshot rows went.
fn remove(tx: &mut postgres::Transaction<'_>, ids: &[i64]) -> std::result::Result<u64, postgres::Error> {
    let list: Vec<i64> = ids.to_vec();
    for table in ["host", "socket", "finding"] {
        tx.execute(&format!("DELETE FROM {table} WHERE snapshot_id = ANY($1)"), &[&list])?;
    }
    tx.execute("DELETE FROM run_shard WHERE snapshot_id = ANY($1)", &[&list])?;
    tx.execute("DELETE FROM snapshot WHERE id = ANY($1)", &[&list])
}

impl crate::Backend for Db {
    fn save(&mut self, s: &Snapshot) -> Result<i64> {
        let location = self.location.clone();
        let err = |source| Error::Postgres { location: location.clone(), source };
        let mut tx = self.client.transaction().map_err(err)?;
        let id = insert(&mut tx, s).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(id)
    }

    fn save_shard(&mut self, s: &Snapshot, run: &RunSpec, shard: u32) -> Result<i64> {
        let location = self.location.clone();
        let err = |source| Error::Postgres { location: location.clone(), source };
        let mut tx = self.client.transaction().map_err(err)?;
        // the run row, made once; its lock orders the shards of one run saved at once
        tx.execute(
            "INSERT INTO run (name, created_at, shards, seed, spec) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO NOTHING",
            &[&run.name, &codec::nanos(s.taken_at), &i64::from(run.shards), &run.seed.to_string(), &run.spec],
        )
        .map_err(err)?;
        let row = tx
            .query_one("SELECT id, shards, seed, spec FROM run WHERE name = $1 FOR UPDATE", &[&run.name])
            .map_err(err)?;
        let run_id: i64 = row.get(0);
        let have: (i64, String, String) = (row.get(1), row.get(2), row.get(3));
        let want = (i64::from(run.shards), run.seed.to_string(), run.spec.clone());
        if have != want {
            return Err(Error::RunMismatch {
                run: run.name.clone(),
                location,
                existing: format!("{} shards, seed {}, arguments \"{}\"", have.0, have.1, have.2),
                given: format!("{} shards, seed {}, arguments \"{}\"", want.0, want.1, want.2),
            });
        }
        let old = tx
            .query_opt(
                "SELECT snapshot_id FROM run_shard WHERE run_id = $1 AND shard = $2",
                &[&run_id, &i64::from(shard)],
            )
            .map_err(err)?;
        if let Some(old) = old {
            remove(&mut tx, &[old.get(0)]).map_err(err)?;
        }
        let id = insert(&mut tx, s).map_err(err)?;
        tx.execute("DELETE FROM run_failure WHERE run_id = $1 AND shard = $2", &[&run_id, &i64::from(shard)])
            .map_err(err)?;
        tx.execute(
            "INSERT INTO run_shard (run_id, shard, snapshot_id) VALUES ($1, $2, $3)",
            &[&run_id, &i64::from(shard), &id],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(id)
    }

    fn runs(&mut self) -> Result<Vec<RunInfo>> {
        let rows = self
            .client
            .query(
                "SELECT r.name, r.created_at, r.shards, r.seed, r.spec, s.shard, n.host_count, n.open_count
                 FROM run r LEFT JOIN run_shard s ON s.run_id = r.id LEFT JOIN snapshot n ON n.id = s.snapshot_id
                 ORDER BY r.id DESC, s.shard",
                &[],
            )
            .map_err(self.err())?;
        let mut out: Vec<RunInfo> = Vec::new();
        for r in rows {
            let name: String = r.get(0);
            if out.last().is_none_or(|x| x.name != name) {
                let seed: String = r.get(3);
                let shards: i64 = r.get(2);
                out.push(RunInfo {
                    name,
                    created_at: codec::from_nanos(r.get(1)).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
                    shards: shards as u32,
                    seed: seed.parse().unwrap_or(0),
                    spec: r.get(4),
                    done: Vec::new(),
                    failed: Vec::new(),
                    hosts: 0,
                    open: 0,
                });
            }
            let shard: Option<i64> = r.get(5);
            if let (Some(x), Some(shard)) = (out.last_mut(), shard) {
                x.done.push(shard as u32);
                x.hosts += r.get::<_, Option<i64>>(6).unwrap_or(0);
                x.open += r.get::<_, Option<i64>>(7).unwrap_or(0);
            }
        }
        Ok(out)
    }

    fn run_snapshots(&mut self, name: &str) -> Result<Option<(RunInfo, Vec<i64>)>> {
        let Some(info) = self.runs()?.into_iter().find(|r| r.name == name) else { return Ok(None) };
        let rows = self
            .client
            .query(
                "SELECT s.snapshot_id FROM run_shard s JOIN run r ON r.id = s.run_id WHERE r.name = $1 ORDER BY s.shard",
                &[&name],
            )
            .map_err(self.err())?;
        Ok(Some((info, rows.iter().map(|r| r.get(0)).collect())))
    }

    fn mark_failed(&mut self, run: &RunSpec, shard: u32, at: i64, message: &str) -> Result<()> {
        let location = self.location.clone();
        let err = |source| Error::Postgres { location: location.clone(), source };
        let mut tx = self.client.transaction().map_err(err)?;
        tx.execute(
            "INSERT INTO run (name, created_at, shards, seed, spec) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO NOTHING",
            &[&run.name, &at, &i64::from(run.shards), &run.seed.to_string(), &run.spec],
        )
        .map_err(err)?;
        tx.execute(
            "INSERT INTO run_failure (run_id, shard, at, message) SELECT id, $2, $3, $4 FROM run WHERE name = $1
             ON CONFLICT (run_id, shard) DO UPDATE SET at = EXCLUDED.at, message = EXCLUDED.message",
            &[&run.name, &i64::from(shard), &at, &message],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    fn failures(&mut self) -> Result<Vec<(String, u32, String)>> {
        let rows = self
            .client
            .query("SELECT r.name, f.shard, f.message FROM run_failure f JOIN run r ON r.id = f.run_id", &[])
            .map_err(self.err())?;
        Ok(rows.iter().map(|r| (r.get(0), r.get::<_, i64>(1) as u32, r.get(2))).collect())
    }

    fn delete_run(&mut self, name: &str) -> Result<bool> {
        let location = self.location.clone();
        let err = |source| Error::Postgres { location: location.clone(), source };
        let mut tx = self.client.transaction().map_err(err)?;
        let Some(row) =
            tx.query_opt("SELECT id FROM run WHERE name = $1 FOR UPDATE", &[&name]).map_err(err)?
        else {
            return Ok(false);
        };
        let id: i64 = row.get(0);
        let ids: Vec<i64> = tx
            .query("SELECT snapshot_id FROM run_shard WHERE run_id = $1", &[&id])
            .map_err(err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        remove(&mut tx, &ids).map_err(err)?;
        tx.execute("DELETE FROM run_failure WHERE run_id = $1", &[&id]).map_err(err)?;
        tx.execute("DELETE FROM run WHERE id = $1", &[&id]).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(true)
    }

    fn list(&mut self) -> Result<Vec<SnapshotInfo>> {
        let rows = self
            .client
            .query(
                "SELECT id, taken_at, source, machine, tool_version, scanner, args, host_count, port_count,
                    open_count, socket_count, finding_count FROM snapshot
                    WHERE id NOT IN (SELECT snapshot_id FROM run_shard) ORDER BY id DESC",
                &[],
            )
            .map_err(self.err())?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.get(0);
            let bad = |what: String| Error::Corrupt { location: self.location.clone(), snapshot: id, what };
            let source: String = r.get(2);
            out.push(SnapshotInfo {
                id,
                taken_at: codec::from_nanos(r.get(1)).ok_or_else(|| bad("taken_at out of range".into()))?,
                source: source.parse().map_err(|e| bad(format!("{e}")))?,
                machine: r.get(3),
                tool_version: r.get(4),
                scanner: r.get(5),
                args: r.get(6),
                hosts: r.get(7),
                ports: r.get(8),
                open: r.get(9),
                sockets: r.get(10),
                findings: r.get(11),
            });
        }
        Ok(out)
    }

    fn nth_last(&mut self, n: u32) -> Result<Option<i64>> {
        let row = self
            .client
            .query_opt(
                "SELECT id FROM snapshot WHERE id NOT IN (SELECT snapshot_id FROM run_shard)
                 ORDER BY id DESC LIMIT 1 OFFSET $1",
                &[&i64::from(n)],
            )
            .map_err(self.err())?;
        Ok(row.map(|r| r.get(0)))
    }

    fn exists(&mut self, id: i64) -> Result<bool> {
        let row =
            self.client.query_opt("SELECT 1 FROM snapshot WHERE id = $1", &[&id]).map_err(self.err())?;
        Ok(row.is_some())
    }

    fn load(&mut self, id: i64) -> Result<Snapshot> {
        let location = self.location.clone();
        let err = |source| Error::Postgres { location: location.clone(), source };
        let bad = |what: String| Error::Corrupt { location: location.clone(), snapshot: id, what };
        // one snapshot-isolated read, so that the snapshot is read as one
        let mut tx = self
            .client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(err)?;
        let head = tx
            .query_opt(
                "SELECT taken_at, source, machine, tool_version, scan_meta, local_meta FROM snapshot WHERE id = $1",
                &[&id],
            )
            .map_err(err)?;
        let Some(head) = head else {
            return Err(Error::NotFound {
                reference: id.to_string(),
                location: location.clone(),
                hint: "see portolan snapshots".into(),
            });
        };
        let scan_meta: Option<String> = head.get(4);
        let local_meta: Option<String> = head.get(5);
        let mut scan: Option<ScanRun> = match scan_meta {
            Some(j) => Some(serde_json::from_str(&j).map_err(|e| bad(format!("scan_meta: {e}")))?),
            None => None,
        };
        if let Some(run) = scan.as_mut() {
            let rows = tx
                .query("SELECT seq, detail, ports FROM host WHERE snapshot_id = $1 ORDER BY seq", &[&id])
                .map_err(err)?;
            for r in rows {
                let seq: i64 = r.get(0);
                let mut h: Host =
                    serde_json::from_str(r.get(1)).map_err(|e| bad(format!("host {seq}: {e}")))?;
                h.ports =
                    codec::ports_from_json(r.get(2)).map_err(|e| bad(format!("host {seq} ports: {e}")))?;
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
            let rows = tx
                .query("SELECT seq, detail FROM socket WHERE snapshot_id = $1 ORDER BY seq", &[&id])
                .map_err(err)?;
            for r in rows {
                let seq: i64 = r.get(0);
                let s: LocalSocket =
                    serde_json::from_str(r.get(1)).map_err(|e| bad(format!("socket {seq}: {e}")))?;
                inv.sockets.push(s);
            }
        }
        let rows = tx
            .query("SELECT seq, detail FROM finding WHERE snapshot_id = $1 ORDER BY seq", &[&id])
            .map_err(err)?;
        let mut findings = Vec::with_capacity(rows.len());
        for r in rows {
            let seq: i64 = r.get(0);
            let f: Finding =
                serde_json::from_str(r.get(1)).map_err(|e| bad(format!("finding {seq}: {e}")))?;
            findings.push(f);
        }
        tx.commit().map_err(err)?;
        let source: String = head.get(1);
        Ok(Snapshot {
            id: Some(id),
            taken_at: codec::from_nanos(head.get(0)).ok_or_else(|| bad("taken_at out of range".into()))?,
            source: source.parse().map_err(|e| bad(format!("{e}")))?,
            machine: head.get(2),
            tool_version: head.get(3),
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
        let err = |source| Error::Postgres { location: location.clone(), source };
        let mut tx = self.client.transaction().map_err(err)?;
        let n = remove(&mut tx, ids).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(n as usize)
    }
}
