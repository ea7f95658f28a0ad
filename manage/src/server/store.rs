//! Durable state in SQLite (WAL): what manage must not lose.
//!
//! The reactor stays single-threaded: the changes of one loop iteration are written into one
//! open transaction, committed once at the end of the iteration (group commit), and only then
//! are the iteration's replies sent. So a compute never receives the ack of a result that is not
//! on disk, and a crash at any point loses nothing acknowledged.
//!
//! u64 values are stored in SQLite's signed 64-bit INTEGER by reinterpreting the bits: numbers
//! below 2^63 (every number any search will reach for centuries) read as themselves in sqlite3.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use manage::registry::Identity;
use manage::scheduler::{PerfectFinding, RestoredLease};
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
-- One row per job event (received, routed, sent, finished, failed-over, failed, rejected).
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

/// A lease that was outstanding when manage stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLease {
    /// The lease.
    pub id: LeaseId,
    /// The compute that held it.
    pub compute: ComputeId,
    /// That compute's host and pid: a result from the same process is still taken after a
    /// restart.
    pub host: String,
    /// That compute's pid.
    pub pid: u32,
    /// First number.
    pub lo: u64,
    /// One past the last number.
    pub hi: u64,
}

impl From<&StoredLease> for RestoredLease {
    fn from(stored: &StoredLease) -> RestoredLease {
        RestoredLease {
            id: stored.id,
            compute: stored.compute,
            identity: Identity {
                host: stored.host.clone(),
                pid: stored.pid,
            },
            lo: stored.lo,
            hi: stored.hi,
        }
    }
}

/// Everything read back at start.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    /// First number of the search.
    pub start: u64,
    /// Last number of the search (inclusive).
    pub until: u64,
    /// Completed ranges, increasing and disjoint.
    pub done: Vec<(u64, u64)>,
    /// Verified perfect numbers.
    pub perfect: Vec<PerfectFinding>,
    /// Claims stored but not yet checked.
    pub claims: Vec<PerfectFinding>,
    /// Leases outstanding at the last stop.
    pub leases: Vec<StoredLease>,
    /// The next lease id (ids are never reused, across restarts too).
    pub next_lease: u64,
    /// The next compute id.
    pub next_compute: u64,
    /// True when the state folder was new.
    pub fresh: bool,
}

/// A compute as stored in the `computes` table.
#[derive(Clone, Debug)]
pub struct ComputeRow<'a> {
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

/// A store error: a sentence for the log.
pub type StoreResult<T> = Result<T, String>;

fn sql_error<'p>(what: &str, path: &'p Path) -> impl Fn(rusqlite::Error) -> String + 'p {
    let what = what.to_string();
    move |e| format!("{what} ({}): {e}", path.display())
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
                .map_err(|e| format!("cannot create the state folder {}: {e}", dir.display()))?;
        } else if !dir.is_dir() {
            return Err(format!("{} is not a folder", dir.display()));
        }
        let path = dir.join(DATABASE_FILE);
        let fresh = !path.exists();
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
                start,
                until,
                next_lease: 1,
                next_compute: 1,
                fresh: true,
                ..Recovered::default()
            }
        } else {
            let recovered = store.read()?;
            if start.is_some_and(|s| s != recovered.start)
                || until.is_some_and(|u| u != recovered.until)
            {
                return Err(format!(
                    "the state in {} is for the search {}..={}; give the same bounds (or none), or another --state",
                    dir.display(),
                    recovered.start,
                    recovered.until
                ));
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
            .map_err(|e| {
                format!(
                    "{} is not a sigma state database, or is damaged: {e}",
                    self.path.display()
                )
            })?
            .ok_or_else(|| {
                format!(
                    "{} has no {key}: not a sigma state database",
                    self.path.display()
                )
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
            return Err(format!(
                "{} has schema version {version}; this manage reads version {SCHEMA_VERSION}",
                self.path.display()
            ));
        }
        let check: String = self
            .connection
            .query_row("PRAGMA quick_check", [], |row| row.get(0))
            .map_err(sql_error("the state database is damaged", &self.path))?;
        if check != "ok" {
            return Err(format!("{} is damaged: {check}", self.path.display()));
        }
        let error = sql_error("cannot read the state", &self.path);
        let mut recovered = Recovered {
            start: from_sql(self.meta("start")?),
            until: from_sql(self.meta("until")?),
            next_lease: from_sql(self.meta("next_lease")?),
            next_compute: from_sql(self.meta("next_compute")?),
            ..Recovered::default()
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
            match recovered.done.last_mut() {
                Some(last) if last.1 == lo => last.1 = hi,
                _ => recovered.done.push((lo, hi)),
            }
        }
        for (table, into) in [
            ("perfect", &mut recovered.perfect),
            ("claims", &mut recovered.claims),
        ] {
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
                Ok(StoredLease {
                    id: LeaseId(from_sql(row.get(0)?)),
                    compute: ComputeId(from_sql(row.get(1)?)),
                    host: row.get(2)?,
                    pid: row.get(3)?,
                    lo: from_sql(row.get(4)?),
                    hi: from_sql(row.get(5)?),
                })
            })
            .map_err(&error)?;
        for row in rows {
            recovered.leases.push(row.map_err(&error)?);
        }
        Ok(recovered)
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
    pub fn compute_joined(&mut self, row: &ComputeRow<'_>) -> StoreResult<()> {
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
    #[allow(clippy::too_many_arguments)]
    pub fn lease_issued(
        &mut self,
        lease: &StoredLease,
        issued_ms: Millis,
        deadline_ms: Millis,
    ) -> StoreResult<()> {
        self.change(
            "INSERT INTO leases (id, compute_id, host, pid, lo, hi, issued_ms, deadline_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                to_sql(lease.id.0),
                to_sql(lease.compute.0),
                lease.host,
                lease.pid,
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

    /// Newly completed pieces of a result (disjoint from everything stored before).
    #[allow(clippy::too_many_arguments)]
    pub fn ranges_done(
        &mut self,
        pieces: &[(u64, u64)],
        compute: ComputeId,
        host: &str,
        elapsed_ms: Millis,
        whole_checksum: Option<u64>,
        finished_ms: Millis,
    ) -> StoreResult<()> {
        for &(lo, hi) in pieces {
            self.change(
                "INSERT INTO ranges (lo, hi, compute_id, host, elapsed_ms, checksum, finished_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    to_sql(lo),
                    to_sql(hi),
                    to_sql(compute.0),
                    host,
                    to_sql(elapsed_ms),
                    whole_checksum.map(to_sql),
                    to_sql(finished_ms)
                ],
            )?;
        }
        Ok(())
    }

    /// A claimed perfect number, stored until it is checked.
    pub fn claim(&mut self, claim: &PerfectFinding) -> StoreResult<()> {
        self.change(
            "INSERT OR IGNORE INTO claims (n, host, compute_id, found_ms) VALUES (?1, ?2, ?3, ?4)",
            params![
                to_sql(claim.n),
                claim.host,
                to_sql(claim.compute.0),
                to_sql(claim.found_ms)
            ],
        )
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

/// Reads the shared secret from `path`, or, when `create` is set and the file does not exist,
/// makes a new random one there with mode 0600. The token is 64 hex digits.
pub fn load_or_create_token(path: &Path, create: bool) -> StoreResult<String> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim().to_string();
            if token.len() < 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "{} does not hold a hex token of 32+ digits",
                    path.display()
                ));
            }
            let mode = fs::metadata(path)
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            if mode & 0o077 != 0 {
                log::warn!(
                    "{} can be read by other users (mode {:o})",
                    path.display(),
                    mode & 0o777
                );
            }
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let mut bytes = [0u8; 32];
            fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
                .map_err(|e| format!("cannot read random bytes for a token: {e}"))?;
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            std::io::Write::write_all(&mut file, format!("{token}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(token)
        }
        Err(e) => Err(format!(
            "cannot read the token file {}: {e}",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(n: u64) -> PerfectFinding {
        PerfectFinding {
            n,
            compute: ComputeId(3),
            host: "node-3".into(),
            found_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn a_stored_lease_converts_to_the_schedulers_as_is() {
        let stored = StoredLease {
            id: LeaseId(1),
            compute: ComputeId(2),
            host: "h".into(),
            pid: 42,
            lo: 1,
            hi: 100,
        };
        assert_eq!(
            RestoredLease::from(&stored),
            RestoredLease {
                id: LeaseId(1),
                compute: ComputeId(2),
                identity: Identity {
                    host: "h".into(),
                    pid: 42
                },
                lo: 1,
                hi: 100,
            }
        );
    }

    #[test]
    fn a_new_state_takes_the_bounds_and_an_old_one_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let (_, recovered) = Store::open(dir.path(), Some(5), Some(1000), u64::MAX - 1).unwrap();
        assert!(recovered.fresh);
        assert_eq!((recovered.start, recovered.until), (5, 1000));
        let (_, again) = Store::open(dir.path(), None, None, u64::MAX - 1).unwrap();
        assert!(!again.fresh);
        assert_eq!((again.start, again.until), (5, 1000));
        let error = Store::open(dir.path(), None, Some(2000), u64::MAX - 1)
            .err()
            .unwrap();
        assert!(error.contains("5..=1000"), "{error}");
    }

    #[test]
    fn committed_changes_come_back_and_uncommitted_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut store, _) = Store::open(dir.path(), None, Some(10_000), 0).unwrap();
            let lease = StoredLease {
                id: LeaseId(7),
                compute: ComputeId(3),
                host: "node-3".into(),
                pid: 42,
                lo: 100,
                hi: 200,
            };
            store.lease_issued(&lease, 1, 2).unwrap();
            store
                .ranges_done(
                    &[(1, 50), (50, 100)],
                    ComputeId(3),
                    "node-3",
                    10,
                    Some(9),
                    5,
                )
                .unwrap();
            store.claim(&finding(6)).unwrap();
            store.claim(&finding(28)).unwrap();
            store.claim_checked(&finding(28), true).unwrap();
            store.commit().unwrap();
            // Not committed: a crash here loses it, and nothing was acknowledged for it.
            store
                .ranges_done(&[(200, 300)], ComputeId(3), "node-3", 10, None, 6)
                .unwrap();
        }
        let (_, recovered) = Store::open(dir.path(), None, None, 0).unwrap();
        assert_eq!(recovered.done, vec![(1, 100)]);
        assert_eq!(recovered.leases.len(), 1);
        assert_eq!(recovered.leases[0].id, LeaseId(7));
        assert_eq!(recovered.next_lease, 8);
        assert_eq!(
            recovered.claims.iter().map(|c| c.n).collect::<Vec<_>>(),
            [6]
        );
        assert_eq!(
            recovered.perfect.iter().map(|c| c.n).collect::<Vec<_>>(),
            [28]
        );
    }

    #[test]
    fn big_numbers_survive_the_signed_column() {
        let dir = tempfile::tempdir().unwrap();
        let top = u64::MAX - 1;
        {
            let (mut store, _) = Store::open(dir.path(), Some(top - 10), Some(top), 0).unwrap();
            store
                .ranges_done(&[(top - 10, top)], ComputeId(1), "h", 1, Some(u64::MAX), 1)
                .unwrap();
            store.commit().unwrap();
        }
        let (_, recovered) = Store::open(dir.path(), None, None, 0).unwrap();
        assert_eq!((recovered.start, recovered.until), (top - 10, top));
        assert_eq!(recovered.done, vec![(top - 10, top)]);
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
        let error = Store::open(dir.path(), None, None, 0).err().unwrap();
        assert!(error.contains("sigma.db"), "{error}");
        assert_eq!(fs::read(&path).unwrap(), before);

        let other = tempfile::tempdir().unwrap();
        let connection = Connection::open(other.path().join(DATABASE_FILE)).unwrap();
        connection
            .execute_batch("CREATE TABLE something (x INTEGER)")
            .unwrap();
        drop(connection);
        let error = Store::open(other.path(), None, None, 0).err().unwrap();
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
        let error = Store::open(dir.path(), None, None, 0).err().unwrap();
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
        assert_eq!(recovered.until, 10);
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

    #[test]
    fn tokens_are_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        assert!(load_or_create_token(&path, false).is_err());
        let token = load_or_create_token(&path, true).unwrap();
        assert_eq!(token.len(), 64);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create_token(&path, false).unwrap(), token);
        fs::write(&path, "short").unwrap();
        assert!(load_or_create_token(&path, false).is_err());
    }
}
