use std::path::PathBuf;

/// Errors of the store. Every message names the database and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database file or its directory cannot be created or opened.
    #[error("cannot open the snapshot database {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// SQLite failed.
    #[error("snapshot database {location}: {source}")]
    Sqlite {
        /// The database.
        location: String,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// PostgreSQL failed (connection, authentication, a statement).
    #[error("snapshot database {location}: {}", pg_text(source))]
    Postgres {
        /// The database, without password.
        location: String,
        /// Why.
        #[source]
        source: postgres::Error,
    },
    /// The database was written by a newer Portolan.
    #[error(
        "snapshot database {location} has schema version {found}, newer than this Portolan knows ({known}); upgrade Portolan or use another database"
    )]
    TooNew {
        /// The database.
        location: String,
        /// Its schema version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// A snapshot reference names nothing.
    #[error("no snapshot {reference} in {location} ({hint})")]
    NotFound {
        /// What was asked for.
        reference: String,
        /// The database.
        location: String,
        /// What exists.
        hint: String,
    },
    /// A snapshot reference is not one.
    #[error(
        "{given:?} is not a snapshot reference: use an id (12), last, last~N (last~1 is the one before last) or run:NAME"
    )]
    BadReference {
        /// What was given.
        given: String,
    },
    /// A shard whose run was started with other arguments, seed or shard count.
    #[error(
        "run {run} in {location} was started with {existing}; this shard has {given}: a run's shards must share them (name another run)"
    )]
    RunMismatch {
        /// The run.
        run: String,
        /// The database.
        location: String,
        /// What the run has.
        existing: String,
        /// What the shard has.
        given: String,
    },
    /// A run of more shards than a store keeps.
    #[error("a run of {shards} shards: at most {max}")]
    TooManyShards {
        /// The count given.
        shards: u32,
        /// The most.
        max: u32,
    },
    /// A shard index outside the run.
    #[error("shard {shard} is outside 1..={shards}")]
    ShardOutOfRange {
        /// The index.
        shard: u32,
        /// The run's count.
        shards: u32,
    },
    /// A reference to a run where one snapshot is needed (deleting, a baseline id).
    #[error("{given} is a run of several shards, not one snapshot")]
    NotOneSnapshot {
        /// The reference.
        given: String,
    },
    /// A stored row cannot be read back (written by hand, or damaged).
    #[error("snapshot database {location}: snapshot {snapshot}: {what}")]
    Corrupt {
        /// The database.
        location: String,
        /// The snapshot.
        snapshot: i64,
        /// What is wrong.
        what: String,
    },
}

/// Result of the store.
pub type Result<T> = std::result::Result<T, Error>;

/// The server's own message when there is one (the driver's Display says only "db error").
fn pg_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        }
    }
}
