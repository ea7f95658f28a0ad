//! Durable state in SQLite (WAL): what manage must not lose.
//!
//! The reactor stays single-threaded: the changes of one loop iteration are written into one
//! open transaction, committed once at the end of the iteration (group commit), and only then
//! are the iteration's replies sent. So a compute never receives the ack of a result that is not
//! on disk, and a crash at any point loses nothing acknowledged.
//!
//! u64 values are stored in SQLite's signed 64-bit INTEGER by reinterpreting the bits: numbers
//! below 2^63 (every number any search will reach for centuries) read as themselves in sqlite3.

use std::fmt;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use manage::registry::Identity;
use manage::scheduler::{OutstandingLease, PerfectFinding, ResultRecord, Snapshot};
use manage::{ComputeId, LeaseId, Millis};

/// The file name of the database inside the state folder.
pub const DATABASE_FILE: &str = "sigma.db";
/// The schema this build reads and writes.
pub const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
-- Completed ranges: disjoint, half-open [lo, hi); together they are every number tested.
CREATE TABLE ranges (
    lo          INTEGER NOT NULL PRIMARY KEY,
    hi          INTEGER NOT NULL,
    compute_id  INTEGER NOT NULL,
    host        TEXT NOT NULL,
    elapsed_ms  INTEGER NOT NULL,
    -- The compute's checksum of the whole reported range; NULL when only part of that range
    -- was new (the rest was done by someone else first).
    checksum    INTEGER,
    finished_ms INTEGER NOT NULL
);
CREATE TABLE perfect (
    n          INTEGER NOT NULL PRIMARY KEY,
    host       TEXT NOT NULL,
    compute_id INTEGER NOT NULL,
    found_ms   INTEGER NOT NULL
);
-- Claimed perfect numbers not yet checked: stored with the result that claims them, so a crash
-- before the check cannot lose a perfect number whose range is already done.
CREATE TABLE claims (
    n          INTEGER NOT NULL PRIMARY KEY,
    host       TEXT NOT NULL,
    compute_id INTEGER NOT NULL,
    found_ms   INTEGER NOT NULL
);
CREATE TABLE leases (
    id          INTEGER NOT NULL PRIMARY KEY,
    compute_id  INTEGER NOT NULL,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    lo          INTEGER NOT NULL,
    hi          INTEGER NOT NULL,
    issued_ms   INTEGER NOT NULL,
    deadline_ms INTEGER NOT NULL
);
CREATE TABLE computes (
    id          INTEGER NOT NULL PRIMARY KEY,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    address     TEXT NOT NULL,
    threads     INTEGER NOT NULL,
    algorithm   TEXT NOT NULL,
    ops_per_sec INTEGER NOT NULL,
    joined_ms   INTEGER NOT NULL,
    left_ms     INTEGER
);
";

/// Version 2's addition: the job event log. Also run, with `IF NOT EXISTS`, to bring a
/// version-1 state up to version 2.
const JOBS_TABLE: &str = "
-- One row per job event; `event` is one of: received, queued, rejected, sent, send-failed,
-- failed-over, finished, failed, orphaned, dropped (see docs/design.md).
CREATE TABLE IF NOT EXISTS jobs (
    event_id   INTEGER PRIMARY KEY,
    job_id     INTEGER NOT NULL,
    at_ms      INTEGER NOT NULL,
    event      TEXT NOT NULL,
    compute_id INTEGER,
    detail     TEXT NOT NULL
);
";

fn to_sql(value: u64) -> i64 {
    value as i64
}

fn from_sql(value: i64) -> u64 {
    value as u64
}

/// Why the state cannot be opened, read or written. Display gives the one-line message.
#[derive(Debug)]
pub enum StoreError {
    /// The state folder cannot be created.
    CreateFolder {
        /// The folder.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The state path exists and is not a folder.
    NotAFolder(PathBuf),
    /// The database file of a new state cannot be created in the folder.
    CreateFile {
        /// The database file.
        path: PathBuf,
        /// Why, as the OS says.
        source: std::io::Error,
    },
    /// SQLite refused an operation.
    Sql {
        /// What manage was doing, as "cannot ..." or "the state ... ".
        what: &'static str,
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file is no sigma state: unreadable as one, or a `meta` key is missing.
    NotSigma {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The state has a schema version this build does not read.
    SchemaVersion {
        /// The database file.
        path: PathBuf,
        /// The version it has.
        version: i64,
    },
    /// SQLite's integrity check failed.
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What the check said.
        check: String,
    },
    /// The state is for other bounds than the command line asks for.
    OtherSearch {
        /// The state folder.
        dir: PathBuf,
        /// The state's first number.
        start: u64,
        /// The state's last number.
        until: u64,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::CreateFolder { dir, source } => {
                write!(f, "cannot create the state folder {}: {source}", dir.display())
            }
            StoreError::NotAFolder(dir) => write!(f, "{} is not a folder", dir.display()),
            StoreError::CreateFile { path, source } => {
                write!(f, "cannot create the state {}: {source}", path.display())
            }
            StoreError::Sql { what, path, source } => {
                write!(f, "{what} ({}): {source}", path.display())
            }
            StoreError::NotSigma { path, detail } => write!(f, "{}{detail}", path.display()),
            StoreError::SchemaVersion { path, version } => write!(
                f,
                "{} has schema version {version}; this manage reads version {SCHEMA_VERSION}",
                path.display()
            ),
            StoreError::Damaged { path, check } => {
                write!(f, "{} is damaged: {check}", path.display())
            }
            StoreError::OtherSearch { dir, start, until } => write!(
                f,
                "the state in {} is for the search {start}..={until}; give the same bounds (or none), or another --state",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for StoreError {}

/// Everything read back at start.
#[derive(Clone, Debug)]
pub struct Recovered {
    /// The search as it stood at the last stop, for [`manage::scheduler::Scheduler::restore`].
    pub snapshot: Snapshot,
    /// Claims stored but not yet checked.
    pub claims: Vec<PerfectFinding>,
    /// True when the state folder was new.
    pub fresh: bool,
}

/// A compute as stored in the `computes` table.
#[derive(Clone, Debug)]
pub struct JoinedCompute<'a> {
    /// Its id.
    pub id: ComputeId,
    /// Host name, as it said.
    pub host: &'a str,
    /// Process id.
    pub pid: u32,
    /// Peer address.
    pub address: &'a str,
    /// Threads it scans with.
    pub threads: u32,
    /// Its algorithm's name.
    pub algorithm: &'a str,
    /// Its benchmark figure, as reported.
    pub ops_per_sec: u64,
    /// When it joined.
    pub joined_ms: Millis,
}

/// The open database, with the transaction of the current loop iteration.
pub struct Store {
    connection: Connection,
    path: PathBuf,
    in_transaction: bool,
}

/// A store operation's outcome.
pub type StoreResult<T> = Result<T, StoreError>;

fn sql_error<'p>(
    what: &'static str,
    path: &'p Path,
) -> impl Fn(rusqlite::Error) -> StoreError + 'p {
    move |source| StoreError::Sql {
        what,
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    /// Opens (or creates) the state in `dir`. `start` and `until` are the bounds asked for on
    /// the command line: a new state takes them (defaults where absent); an existing state must
    /// match any that are given. Anything unreadable, of another schema version, or for another
    /// search is an error; nothing is overwritten.
    pub fn open(
        dir: &Path,
        start: Option<u64>,
        until: Option<u64>,
        default_until: u64,
    ) -> StoreResult<(Store, Recovered)> {
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| StoreError::CreateFolder {
                    dir: dir.to_path_buf(),
                    source,
                })?;
        } else if !dir.is_dir() {
            return Err(StoreError::NotAFolder(dir.to_path_buf()));
        }
        let path = dir.join(DATABASE_FILE);
        let fresh = !path.exists();
        if fresh {
            // SQLite says only "unable to open database file" when it cannot create its file;
            // creating it here (an empty file is an empty database) gives the OS's reason.
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|source| StoreError::CreateFile {
                    path: path.clone(),
                    source,
                })?;
        }
        let connection =
            Connection::open(&path).map_err(sql_error("cannot open the state", &path))?;
        // WAL lets sqlite3 read the tables while manage runs; synchronous=FULL makes each commit
        // durable before any reply that depends on it is sent.
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .and_then(|()| connection.pragma_update(None, "synchronous", "FULL"))
            .and_then(|()| connection.pragma_update(None, "foreign_keys", "ON"))
            .map_err(sql_error("cannot set up the state database", &path))?;
        let mut store = Store {
            connection,
            path,
            in_transaction: false,
        };
        let recovered = if fresh || store.is_empty()? {
            let start = start.unwrap_or(1);
            let until = until.unwrap_or(default_until);
            store.create(start, until)?;
            Recovered {
                snapshot: Snapshot {
                    start,
                    until,
                    done: Vec::new(),
                    perfect: Vec::new(),
                    next_lease: LeaseId(1),
                    next_compute: ComputeId(1),
                    outstanding: Vec::new(),
                },
                claims: Vec::new(),
                fresh: true,
            }
        } else {
            let recovered = store.read()?;
            let saved = &recovered.snapshot;
            if start.is_some_and(|s| s != saved.start) || until.is_some_and(|u| u != saved.until) {
                return Err(StoreError::OtherSearch {
                    dir: dir.to_path_buf(),
                    start: saved.start,
                    until: saved.until,
                });
            }
            recovered
        };
        Ok((store, recovered))
    }

    /// The path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn is_empty(&self) -> StoreResult<bool> {
        let tables: i64 = self
            .connection
            .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
            .map_err(sql_error("the state database cannot be read", &self.path))?;
        Ok(tables == 0)
    }

    fn create(&mut self, start: u64, until: u64) -> StoreResult<()> {
        let transaction = self
            .connection
            .transaction()
            .map_err(sql_error("cannot create the state", &self.path))?;
        transaction
            .execute_batch(SCHEMA)
            .and_then(|()| transaction.execute_batch(JOBS_TABLE))
            .and_then(|()| {
                let mut insert =
                    transaction.prepare("INSERT INTO meta (key, value) VALUES (?1, ?2)")?;
                insert.execute(params!["schema_version", SCHEMA_VERSION])?;
                insert.execute(params!["start", to_sql(start)])?;
                insert.execute(params!["until", to_sql(until)])?;
                insert.execute(params!["next_lease", 1])?;
                insert.execute(params!["next_compute", 1])?;
                Ok(())
            })
            .map_err(sql_error("cannot create the state", &self.path))?;
        transaction
            .commit()
            .map_err(sql_error("cannot create the state", &self.path))
    }

    fn meta(&self, key: &str) -> StoreResult<i64> {
        self.connection
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .map_err(|e| StoreError::NotSigma {
                path: self.path.clone(),
                detail: format!(" is not a sigma state database, or is damaged: {e}"),
            })?
            .ok_or_else(|| StoreError::NotSigma {
                path: self.path.clone(),
                detail: format!(" has no {key}: not a sigma state database"),
            })
    }

    /// Brings a version-1 state to version 2 (adds the jobs table), in one transaction.
    fn migrate_from_1(&mut self) -> StoreResult<()> {
        let transaction = self
            .connection
            .transaction()
            .map_err(sql_error("cannot upgrade the state", &self.path))?;
        transaction
            .execute_batch(JOBS_TABLE)
            .and_then(|()| {
                transaction
                    .execute("UPDATE meta SET value = 2 WHERE key = 'schema_version'", [])
                    .map(|_| ())
            })
            .map_err(sql_error("cannot upgrade the state", &self.path))?;
        transaction
            .commit()
            .map_err(sql_error("cannot upgrade the state", &self.path))?;
        log::info!(
            "{}: schema version 1 upgraded to 2 (the jobs table)",
            self.path.display()
        );
        Ok(())
    }

    fn read(&mut self) -> StoreResult<Recovered> {
        let mut version = self.meta("schema_version")?;
        if version == 1 {
            self.migrate_from_1()?;
            version = self.meta("schema_version")?;
        }
        if version != SCHEMA_VERSION {
            return Err(StoreError::SchemaVersion {
                path: self.path.clone(),
                version,
            });
        }
        let check: String = self
            .connection
            .query_row("PRAGMA quick_check", [], |row| row.get(0))
            .map_err(sql_error("the state database is damaged", &self.path))?;
        if check != "ok" {
            return Err(StoreError::Damaged {
                path: self.path.clone(),
                check,
            });
        }
        let error = sql_error("cannot read the state", &self.path);
        let mut snapshot = Snapshot {
            start: from_sql(self.meta("start")?),
            until: from_sql(self.meta("until")?),
            done: Vec::new(),
            perfect: Vec::new(),
            next_lease: LeaseId(from_sql(self.meta("next_lease")?)),
            next_compute: ComputeId(from_sql(self.meta("next_compute")?)),
            outstanding: Vec::new(),
        };
        let mut ranges = self
            .connection
            .prepare("SELECT lo, hi FROM ranges ORDER BY lo")
            .map_err(&error)?;
        let rows = ranges
            .query_map([], |row| Ok((from_sql(row.get(0)?), from_sql(row.get(1)?))))
            .map_err(&error)?;
        for row in rows {
            let (lo, hi) = row.map_err(&error)?;
            // Stored ranges are disjoint; merging neighbours keeps the snapshot small.
            match snapshot.done.last_mut() {
                Some(last) if last.1 == lo => last.1 = hi,
                _ => snapshot.done.push((lo, hi)),
            }
        }
        let mut claims = Vec::new();
        for (table, into) in [("perfect", &mut snapshot.perfect), ("claims", &mut claims)] {
            let mut query = self
                .connection
                .prepare(&format!(
                    "SELECT n, host, compute_id, found_ms FROM {table} ORDER BY n"
                ))
                .map_err(&error)?;
            let rows = query
                .query_map([], |row| {
                    Ok(PerfectFinding {
                        n: from_sql(row.get(0)?),
                        host: row.get(1)?,
                        compute: ComputeId(from_sql(row.get(2)?)),
                        found_ms: from_sql(row.get(3)?),
                    })
                })
                .map_err(&error)?;
            for row in rows {
                into.push(row.map_err(&error)?);
            }
        }
        let mut leases = self
            .connection
            .prepare("SELECT id, compute_id, host, pid, lo, hi FROM leases ORDER BY id")
            .map_err(&error)?;
        let rows = leases
            .query_map([], |row| {
                Ok(OutstandingLease {
                    id: LeaseId(from_sql(row.get(0)?)),
                    compute: ComputeId(from_sql(row.get(1)?)),
                    identity: Identity {
                        host: row.get(2)?,
                        pid: row.get(3)?,
                    },
                    lo: from_sql(row.get(4)?),
                    hi: from_sql(row.get(5)?),
                })
            })
            .map_err(&error)?;
        for row in rows {
            snapshot.outstanding.push(row.map_err(&error)?);
        }
        Ok(Recovered {
            snapshot,
            claims,
            fresh: false,
        })
    }

    fn begin(&mut self) -> rusqlite::Result<()> {
        if !self.in_transaction {
            self.connection.execute_batch("BEGIN IMMEDIATE")?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Runs one change inside the iteration's transaction.
    fn change(&mut self, sql: &str, values: &[&dyn rusqlite::ToSql]) -> StoreResult<()> {
        self.begin()
            .and_then(|()| {
                self.connection
                    .prepare_cached(sql)?
                    .execute(values)
                    .map(|_| ())
            })
            .map_err(sql_error("cannot write the state", &self.path))
    }

    /// Whether the iteration changed anything (a commit will write).
    pub fn has_changes(&self) -> bool {
        self.in_transaction
    }

    /// Commits the iteration's changes, durably. Until this returns Ok, no reply that depends on
    /// them may be sent.
    pub fn commit(&mut self) -> StoreResult<()> {
        if !self.in_transaction {
            return Ok(());
        }
        self.in_transaction = false;
        self.connection
            .execute_batch("COMMIT")
            .map_err(sql_error("cannot commit the state", &self.path))
    }

    /// A compute joined.
    pub fn compute_joined(&mut self, row: &JoinedCompute<'_>) -> StoreResult<()> {
        self.change(
            "INSERT OR REPLACE INTO computes (id, host, pid, address, threads, algorithm, ops_per_sec, joined_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                to_sql(row.id.0),
                row.host,
                row.pid,
                row.address,
                row.threads,
                row.algorithm,
                to_sql(row.ops_per_sec),
                to_sql(row.joined_ms)
            ],
        )?;
        self.change(
            "UPDATE meta SET value = max(value, ?1) WHERE key = 'next_compute'",
            params![to_sql(row.id.0 + 1)],
        )
    }

    /// One job event, for the `jobs` table.
    pub fn job_event(
        &mut self,
        job: u64,
        at_ms: Millis,
        event: &str,
        compute: Option<u64>,
        detail: &str,
    ) -> StoreResult<()> {
        self.change(
            "INSERT INTO jobs (job_id, at_ms, event, compute_id, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![to_sql(job), to_sql(at_ms), event, compute.map(to_sql), detail],
        )
    }

    /// The first job id not in the event log (job ids are never reused, across restarts too).
    pub fn next_job_id(&self) -> StoreResult<u64> {
        self.connection
            .query_row("SELECT coalesce(max(job_id), 0) + 1 FROM jobs", [], |row| {
                row.get::<_, i64>(0)
            })
            .map(from_sql)
            .map_err(sql_error("cannot read the jobs table", &self.path))
    }

    /// A compute left.
    pub fn compute_left(&mut self, id: ComputeId, left_ms: Millis) -> StoreResult<()> {
        self.change(
            "UPDATE computes SET left_ms = ?2 WHERE id = ?1",
            params![to_sql(id.0), to_sql(left_ms)],
        )
    }

    /// A lease was issued.
    pub fn lease_issued(
        &mut self,
        lease: &OutstandingLease,
        issued_ms: Millis,
        deadline_ms: Millis,
    ) -> StoreResult<()> {
        self.change(
            "INSERT INTO leases (id, compute_id, host, pid, lo, hi, issued_ms, deadline_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                to_sql(lease.id.0),
                to_sql(lease.compute.0),
                lease.identity.host,
                lease.identity.pid,
                to_sql(lease.lo),
                to_sql(lease.hi),
                to_sql(issued_ms),
                to_sql(deadline_ms)
            ],
        )?;
        self.change(
            "UPDATE meta SET value = max(value, ?1) WHERE key = 'next_lease'",
            params![to_sql(lease.id.0 + 1)],
        )
    }

    /// A lease ended (result, expiry, disconnect): it is no longer outstanding.
    pub fn lease_ended(&mut self, id: LeaseId) -> StoreResult<()> {
        self.change("DELETE FROM leases WHERE id = ?1", params![to_sql(id.0)])
    }

    /// A taken result, as the scheduler describes it: its new pieces as done ranges (disjoint
    /// from everything stored before), its lease no longer outstanding, its claims pending.
    pub fn result_taken(&mut self, record: &ResultRecord) -> StoreResult<()> {
        for &(lo, hi) in &record.pieces {
            self.change(
                "INSERT INTO ranges (lo, hi, compute_id, host, elapsed_ms, checksum, finished_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    to_sql(lo),
                    to_sql(hi),
                    to_sql(record.compute.0),
                    record.host,
                    to_sql(record.elapsed_ms),
                    record.whole_checksum.map(to_sql),
                    to_sql(record.finished_ms)
                ],
            )?;
        }
        if let Some(lease) = record.ended_lease {
            self.lease_ended(lease)?;
        }
        for claim in &record.claims {
            self.change(
                "INSERT OR IGNORE INTO claims (n, host, compute_id, found_ms) VALUES (?1, ?2, ?3, ?4)",
                params![
                    to_sql(claim.n),
                    claim.host,
                    to_sql(claim.compute.0),
                    to_sql(claim.found_ms)
                ],
            )?;
        }
        Ok(())
    }

    /// A claim was checked: recorded as perfect when it is, and no longer pending either way.
    pub fn claim_checked(&mut self, claim: &PerfectFinding, perfect: bool) -> StoreResult<()> {
        if perfect {
            self.change(
                "INSERT OR IGNORE INTO perfect (n, host, compute_id, found_ms) VALUES (?1, ?2, ?3, ?4)",
                params![to_sql(claim.n), claim.host, to_sql(claim.compute.0), to_sql(claim.found_ms)],
            )?;
        }
        self.change("DELETE FROM claims WHERE n = ?1", params![to_sql(claim.n)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A result of compute 3 on node-3 that ends no lease and claims nothing.
    fn record(finished_ms: Millis) -> ResultRecord {
        ResultRecord {
            compute: ComputeId(3),
            host: "node-3".into(),
            pieces: Vec::new(),
            elapsed_ms: 10,
            whole_checksum: None,
            finished_ms,
            ended_lease: None,
            claims: Vec::new(),
        }
    }

    fn finding(n: u64) -> PerfectFinding {
        PerfectFinding {
            n,
            compute: ComputeId(3),
            host: "node-3".into(),
            found_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn a_new_state_takes_the_bounds_and_an_old_one_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let (_, recovered) = Store::open(dir.path(), Some(5), Some(1000), u64::MAX - 1).unwrap();
        assert!(recovered.fresh);
        let bounds = |r: &Recovered| (r.snapshot.start, r.snapshot.until);
        assert_eq!(bounds(&recovered), (5, 1000));
        let (_, again) = Store::open(dir.path(), None, None, u64::MAX - 1).unwrap();
        assert!(!again.fresh);
        assert_eq!(bounds(&again), (5, 1000));
        let error = Store::open(dir.path(), None, Some(2000), u64::MAX - 1)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("5..=1000"), "{error}");
    }

    #[test]
    fn committed_changes_come_back_and_uncommitted_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let lease = OutstandingLease {
            id: LeaseId(7),
            compute: ComputeId(3),
            identity: Identity {
                host: "node-3".into(),
                pid: 42,
            },
            lo: 100,
            hi: 200,
        };
        {
            let (mut store, _) = Store::open(dir.path(), None, Some(10_000), 0).unwrap();
            store.lease_issued(&lease, 1, 2).unwrap();
            store
                .result_taken(&ResultRecord {
                    pieces: vec![(1, 50), (50, 100)],
                    whole_checksum: Some(9),
                    claims: vec![finding(6), finding(28)],
                    ..record(5)
                })
                .unwrap();
            store.claim_checked(&finding(28), true).unwrap();
            store.commit().unwrap();
            // Not committed: a crash here loses it, and nothing was acknowledged for it.
            store
                .result_taken(&ResultRecord {
                    pieces: vec![(200, 300)],
                    ..record(6)
                })
                .unwrap();
        }
        let (_, recovered) = Store::open(dir.path(), None, None, 0).unwrap();
        let saved = &recovered.snapshot;
        assert_eq!(saved.done, vec![(1, 100)]);
        // The lease comes back as it was issued: the scheduler restores exactly this.
        assert_eq!(saved.outstanding, [lease]);
        assert_eq!(saved.next_lease, LeaseId(8));
        assert_eq!(
            recovered.claims.iter().map(|c| c.n).collect::<Vec<_>>(),
            [6]
        );
        assert_eq!(saved.perfect.iter().map(|c| c.n).collect::<Vec<_>>(), [28]);
    }

    #[test]
    fn big_numbers_survive_the_signed_column() {
        let dir = tempfile::tempdir().unwrap();
        let top = u64::MAX - 1;
        {
            let (mut store, _) = Store::open(dir.path(), Some(top - 10), Some(top), 0).unwrap();
            store
                .result_taken(&ResultRecord {
                    pieces: vec![(top - 10, top)],
                    whole_checksum: Some(u64::MAX),
                    ..record(1)
                })
                .unwrap();
            store.commit().unwrap();
        }
        let (_, recovered) = Store::open(dir.path(), None, None, 0).unwrap();
        let saved = &recovered.snapshot;
        assert_eq!((saved.start, saved.until), (top - 10, top));
        assert_eq!(saved.done, vec![(top - 10, top)]);
    }

    #[test]
    fn garbage_and_foreign_databases_are_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DATABASE_FILE);
        fs::write(
            &path,
            b"this is not a database at all, just some bytes ....",
        )
        .unwrap();
        let before = fs::read(&path).unwrap();
        let error = Store::open(dir.path(), None, None, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("sigma.db"), "{error}");
        assert_eq!(fs::read(&path).unwrap(), before);

        let other = tempfile::tempdir().unwrap();
        let connection = Connection::open(other.path().join(DATABASE_FILE)).unwrap();
        connection
            .execute_batch("CREATE TABLE something (x INTEGER)")
            .unwrap();
        drop(connection);
        let error = Store::open(other.path(), None, None, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("not a sigma state database"), "{error}");
    }

    #[test]
    fn another_schema_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), None, Some(10), 0).unwrap());
        let connection = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
        connection
            .execute(
                "UPDATE meta SET value = 99 WHERE key = 'schema_version'",
                [],
            )
            .unwrap();
        drop(connection);
        let error = Store::open(dir.path(), None, None, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("schema version 99"), "{error}");
    }

    #[test]
    fn a_version_1_state_gets_the_jobs_table() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), None, Some(10), 0).unwrap());
        // Make it what version 1 wrote: no jobs table, version 1.
        let connection = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
        connection
            .execute_batch(
                "DROP TABLE jobs; UPDATE meta SET value = 1 WHERE key = 'schema_version';",
            )
            .unwrap();
        drop(connection);
        let (mut store, recovered) = Store::open(dir.path(), None, None, 0).unwrap();
        assert_eq!(recovered.snapshot.until, 10);
        assert_eq!(store.meta("schema_version").unwrap(), 2);
        assert_eq!(store.next_job_id().unwrap(), 1);
        store
            .job_event(4, 100, "received", None, "hello.c")
            .unwrap();
        store.job_event(4, 101, "sent", Some(2), "").unwrap();
        store.commit().unwrap();
        drop(store);
        let (store, _) = Store::open(dir.path(), None, None, 0).unwrap();
        assert_eq!(store.next_job_id().unwrap(), 5);
    }
}
