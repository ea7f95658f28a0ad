//! The status view: the whole state as plain data, for the status document.

use crate::checks::{CheckStats, Mismatch};
use crate::flags::Offence;
use crate::sizing::CostModel;
use crate::{ComputeId, LeaseId, Millis};

use super::eta::{self, Progress};
use super::{PerfectFinding, Scheduler};

/// A compute's live lease, for the status document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseRow {
    /// The lease.
    pub id: LeaseId,
    /// Its range.
    pub lo: u64,
    /// Its range end.
    pub hi: u64,
    /// The last progress reported.
    pub done: u64,
    /// When it expires.
    pub deadline_ms: Millis,
    /// True for a double-check.
    pub check: bool,
}

/// One compute in the status document.
#[derive(Clone, Debug, PartialEq)]
pub struct ComputeRow<A> {
    /// Its id.
    pub id: ComputeId,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Peer address.
    pub peer: String,
    /// Threads.
    pub threads: u32,
    /// Algorithm.
    pub algorithm: A,
    /// The benchmark figure it reported, ops/s.
    pub benchmark_ops_per_sec: u64,
    /// The current estimate used for sizing, ops/s.
    pub estimate_ops_per_sec: f64,
    /// Measured numbers per second (0 until a timed result).
    pub numbers_per_sec: f64,
    /// Its live lease.
    pub lease: Option<LeaseRow>,
    /// Numbers its results newly counted.
    pub tested: u64,
    /// Results accepted from it.
    pub results: u64,
    /// Of those, double-check results (they count no numbers).
    pub checks: u64,
    /// Offences of its host and pid (refuted claims, lost double-checks).
    pub flags: u32,
    /// When it joined.
    pub since_ms: Millis,
    /// When it last sent anything.
    pub last_heard_ms: Millis,
}

/// A flagged host and pid in the status document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlaggedRow {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Its offences.
    pub flags: u32,
    /// True when it gets no more work.
    pub refused: bool,
    /// The latest offence.
    pub last: Offence,
}

/// The whole state, as plain data for the status document.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusView<A> {
    /// The time of the view.
    pub now_ms: Millis,
    /// First number of the search.
    pub start: u64,
    /// Last number of the search (inclusive).
    pub until: u64,
    /// How many numbers the search has.
    pub size: u64,
    /// Distinct numbers done.
    pub tested: u64,
    /// Every number in `[start, frontier)` is done; `until + 1` when all are.
    pub frontier: u64,
    /// True when every number is done.
    pub done: bool,
    /// Numbers in live leases.
    pub leased: u64,
    /// Sum of the computes' measured numbers per second.
    pub numbers_per_sec: f64,
    /// Share done and the ETA from the cost model, toward `until` or the next power of ten.
    pub progress: Progress,
    /// Verified perfect numbers, increasing.
    pub perfect: Vec<PerfectFinding>,
    /// Connected computes, by id.
    pub computes: Vec<ComputeRow<A>>,
    /// Double-checking counters: checks done (passed, mismatches, decided), pending, in flight.
    pub checks: CheckStats,
    /// The most recent checksum mismatches, oldest first: the range, the two computes (and
    /// the third, once it reported) and the verdict.
    pub mismatches: Vec<Mismatch>,
    /// Flagged hosts and pids, ordered by host and pid.
    pub flagged: Vec<FlaggedRow>,
}

impl<C: CostModel> Scheduler<C> {
    /// Everything the status document shows.
    pub fn status(&self, now: Millis) -> StatusView<C::Algorithm> {
        let computes: Vec<ComputeRow<C::Algorithm>> = self
            .registry
            .iter()
            .map(|record| ComputeRow {
                id: record.id,
                host: record.info.identity.host.clone(),
                pid: record.info.identity.pid,
                peer: record.info.peer.clone(),
                threads: record.info.threads,
                algorithm: record.info.algorithm.clone(),
                benchmark_ops_per_sec: record.info.ops_per_sec,
                estimate_ops_per_sec: record.rate.ops_per_sec(),
                numbers_per_sec: record.numbers_per_sec,
                lease: record
                    .lease
                    .and_then(|id| self.leases.live(id))
                    .map(|lease| LeaseRow {
                        id: lease.id,
                        lo: lease.lo,
                        hi: lease.hi,
                        done: lease.progress,
                        deadline_ms: lease.deadline_ms,
                        check: lease.check,
                    }),
                tested: record.tested,
                results: record.results,
                checks: record.checks,
                flags: self.flags.flags(&record.info.identity),
                since_ms: record.connected_ms,
                last_heard_ms: record.last_heard_ms,
            })
            .collect();
        let rates: Vec<(C::Algorithm, f64)> = computes
            .iter()
            .map(|row| (row.algorithm.clone(), row.estimate_ops_per_sec))
            .collect();
        let progress = eta::progress(
            &self.cost,
            self.pool.done(),
            self.config.start,
            self.config.until,
            self.pool.frontier(),
            &rates,
        );
        StatusView {
            now_ms: now,
            start: self.config.start,
            until: self.config.until,
            size: self.pool.size(),
            tested: self.pool.tested(),
            frontier: self.pool.frontier(),
            done: self.pool.is_done(),
            leased: self.pool.leased().len(),
            numbers_per_sec: computes.iter().map(|row| row.numbers_per_sec).sum(),
            progress,
            perfect: self.perfect.values().cloned().collect(),
            computes,
            checks: self.checks.stats(),
            mismatches: self.checks.mismatches().cloned().collect(),
            flagged: self
                .flags
                .iter()
                .map(|(identity, record)| FlaggedRow {
                    host: identity.host.clone(),
                    pid: identity.pid,
                    flags: record.flags,
                    refused: self.flags.is_refused(identity),
                    last: record.last,
                })
                .collect(),
        }
    }
}
