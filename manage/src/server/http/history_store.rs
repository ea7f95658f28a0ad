//! The dashboard's history table, in the state database, so the charts survive a restart; and
//! the read-only look at the job event log the dashboard shows. A connection of its own (WAL
//! lets it read and write beside the store's), used only between event batches, never inside
//! the store's transaction.

use std::path::Path;
use std::time::Duration;

use manage::Millis;
use rusqlite::{params, Connection};

use super::history::{History, Sample};

/// One row per kept sample; `tier` is the history's tier (0 is the finest).
const HISTORY_TABLE: &str = "
CREATE TABLE IF NOT EXISTS history (
    tier     INTEGER NOT NULL,
    at_ms    INTEGER NOT NULL,
    tested   INTEGER NOT NULL,
    frontier INTEGER NOT NULL,
    rate     REAL NOT NULL,
    computes INTEGER NOT NULL,
    PRIMARY KEY (tier, at_ms)
);
";

/// A job as the dashboard lists it: its latest event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRow {
    pub id: u64,
    /// The latest event's name (`queued`, `sent`, `finished`, `failed`, ...).
    pub status: String,
    pub compute: Option<u64>,
    /// When it was first seen, and its latest event.
    pub first_ms: Millis,
    pub last_ms: Millis,
}

/// How many jobs the dashboard lists.
const RECENT_JOBS: usize = 12;
/// Events read back to find them (a job has a handful of events).
const RECENT_EVENTS: i64 = 400;

pub struct HistoryStore {
    connection: Connection,
}

fn to_sql(value: u64) -> i64 {
    value as i64
}

fn from_sql(value: i64) -> u64 {
    value as u64
}

impl HistoryStore {
    /// Opens the history table in the state database at `path` (creating it), and reads the
    /// history back.
    pub fn open(path: &Path) -> rusqlite::Result<(HistoryStore, History)> {
        let connection = Connection::open(path)?;
        // The reactor must not wait on the database for a chart: a busy database skips the
        // sample. Losing the last samples to a power cut is fine: NORMAL, not FULL.
        connection.busy_timeout(Duration::from_millis(50))?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.execute_batch(HISTORY_TABLE)?;
        let mut history = History::new();
        {
            let mut rows = connection.prepare(
                "SELECT tier, at_ms, tested, frontier, rate, computes FROM history
                 ORDER BY tier, at_ms",
            )?;
            let samples = rows.query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    Sample {
                        at_ms: from_sql(row.get(1)?),
                        tested: from_sql(row.get(2)?),
                        frontier: from_sql(row.get(3)?),
                        rate: row.get(4)?,
                        computes: from_sql(row.get(5)?),
                    },
                ))
            })?;
            for row in samples {
                let (tier, sample) = row?;
                history.restore(usize::try_from(tier).unwrap_or(usize::MAX), sample);
            }
        }
        Ok((HistoryStore { connection }, history))
    }

    /// Writes a sample into the tiers that took it and trims each below its oldest kept time.
    pub fn save(&mut self, sample: &Sample, taken: &[(usize, Millis)]) -> rusqlite::Result<()> {
        let transaction = self.connection.transaction()?;
        for &(tier, oldest) in taken {
            transaction
                .prepare_cached(
                    "INSERT OR REPLACE INTO history (tier, at_ms, tested, frontier, rate, computes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    tier as i64,
                    to_sql(sample.at_ms),
                    to_sql(sample.tested),
                    to_sql(sample.frontier),
                    sample.rate,
                    to_sql(sample.computes)
                ])?;
            transaction
                .prepare_cached("DELETE FROM history WHERE tier = ?1 AND at_ms < ?2")?
                .execute(params![tier as i64, to_sql(oldest)])?;
        }
        transaction.commit()
    }

    /// The most recent jobs, newest first, from the job event log (absent in a state without
    /// jobs yet: then none).
    pub fn recent_jobs(&self) -> rusqlite::Result<Vec<JobRow>> {
        let mut statement = self.connection.prepare_cached(
            "SELECT job_id, at_ms, event, compute_id FROM jobs ORDER BY event_id DESC LIMIT ?1",
        )?;
        let events = statement.query_map([RECENT_EVENTS], |row| {
            Ok((
                from_sql(row.get(0)?),
                from_sql(row.get(1)?),
                row.get::<_, String>(2)?,
                row.get::<_, Option<i64>>(3)?.map(from_sql),
            ))
        })?;
        let mut jobs: Vec<JobRow> = Vec::new();
        // Newest event first: a job's first row here is its latest event; later rows only
        // move its first-seen time back.
        for event in events {
            let (id, at_ms, event, compute) = event?;
            if let Some(job) = jobs.iter_mut().find(|j| j.id == id) {
                job.first_ms = job.first_ms.min(at_ms);
                if job.compute.is_none() {
                    job.compute = compute;
                }
            } else if jobs.len() < RECENT_JOBS {
                jobs.push(JobRow {
                    id,
                    status: event,
                    compute,
                    first_ms: at_ms,
                    last_ms: at_ms,
                });
            }
        }
        Ok(jobs)
    }

    /// How many jobs ended each way, over the whole log: (event, count) for the final events.
    pub fn finished_jobs(&self) -> rusqlite::Result<Vec<(String, u64)>> {
        let mut statement = self.connection.prepare_cached(
            "SELECT event, count(*) FROM jobs
             WHERE event IN ('finished', 'failed', 'rejected', 'orphaned', 'dropped')
             GROUP BY event ORDER BY event",
        )?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, from_sql(row.get(1)?))))?;
        rows.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sigma.db");
        let (mut store, mut history) = HistoryStore::open(&path).unwrap();
        for at_ms in [0, 5_000, 10_000, 60_000] {
            let sample = Sample {
                at_ms,
                tested: at_ms * 2,
                frontier: at_ms,
                rate: 1.5,
                computes: 2,
            };
            let taken = history.record(sample);
            store.save(&sample, &taken).unwrap();
        }
        drop(store);
        let (_, reopened) = HistoryStore::open(&path).unwrap();
        assert_eq!(reopened.series(), history.series());
        assert_eq!(reopened.len(), history.len());
    }
}
