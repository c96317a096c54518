//! Backends for the store tests: a fresh SQLite file, and a fresh PostgreSQL database when
//! `PORTOLAN_TEST_POSTGRES` is set (an admin URL; each test creates its own database).

#![allow(clippy::unwrap_used, dead_code)]

use portolan_store::Store;
use portolan_testkit::TempDir;

pub struct Backend {
    pub name: &'static str,
    pub location: String,
    /// The SQLite file's directory, removed with the backend.
    _dir: Option<TempDir>,
}

impl Backend {
    pub fn open(&self) -> Store {
        Store::open(&self.location).unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// Runs SQL on the database directly (to damage it, or to fake a newer schema).
    pub fn raw(&self, sql: &str) {
        if self.name == "sqlite" {
            let c = rusqlite::Connection::open(&self.location).unwrap();
            c.execute_batch(sql).unwrap();
        } else {
            let mut c = postgres::Client::connect(&self.location, postgres::NoTls).unwrap();
            c.batch_execute(sql).unwrap();
        }
    }
}

pub fn temp_dir(name: &str) -> TempDir {
    TempDir::new(&format!("store-{name}"))
}

/// The backends to run a test on, each empty.
pub fn backends(test: &str) -> Vec<Backend> {
    let dir = temp_dir(test);
    let mut v = vec![Backend {
        name: "sqlite",
        location: dir.path().join("portolan.db").to_string_lossy().into_owned(),
        _dir: Some(dir),
    }];
    match std::env::var("PORTOLAN_TEST_POSTGRES") {
        Ok(admin) if !admin.is_empty() => {
            let db = format!("ptl_{}_{}", test.to_ascii_lowercase(), std::process::id());
            let mut c = postgres::Client::connect(&admin, postgres::NoTls)
                .unwrap_or_else(|e| panic!("PORTOLAN_TEST_POSTGRES={admin}: {e}"));
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {db}")).unwrap();
            c.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
            let location = match admin.rsplit_once('/') {
                Some((base, _)) => format!("{base}/{db}"),
                None => panic!("PORTOLAN_TEST_POSTGRES must end in /DATABASE"),
            };
            v.push(Backend { name: "postgres", location, _dir: None });
        }
        _ => {
            portolan_testkit::prerequisite_missing(
                &format!("postgres backend of {test}"),
                "a PostgreSQL server in PORTOLAN_TEST_POSTGRES",
                "run `bash scripts/test.sh`, which starts a throwaway one",
            );
        }
    }
    v
}
