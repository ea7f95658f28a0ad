//! The scheduler: the work pool, the leases, sizing and the registry together. The reactor
//! calls one method per message (and [`Scheduler::expire`] when a deadline passes) and sends
//! what it returns. No I/O, no clock: `now` is always a parameter.
//!
//! Every method validates its whole input before changing anything, so a rejected message
//! (an `Err`) leaves the state as it was, apart from the sender's "last heard" time.
//!
//! Counting rule: a result counts exactly the numbers of its range that were not done before
//! it. A late result (its lease expired, or its compute reconnected) is accepted for whatever
//! part nobody finished; if part of its range was leased again meanwhile, that new lease keeps
//! running and its own result later counts only what is still not done.
//!
//! What a request gets, in order: numbers given back (they hold the frontier back), then a
//! waiting double-check the compute may take (see [`crate::checks`]; not while the compute's
//! speed is still being probed, unless nothing else is left), then fresh numbers. A check is
//! an ordinary lease flagged [`Assignment::check`]: its range is done already, its result
//! counts nothing and only its checksum matters. A compute flagged
//! [`SchedulerConfig::refuse_after`] times (false perfect-number claims, lost double-checks;
//! see [`crate::flags`]) is refused: [`SchedError::Refused`] for its requests and results.
//!
//! Restarts: [`Snapshot`] carries the done numbers, the perfect numbers, both id counters and
//! the leases live at the stop; [`Scheduler::restore`] puts those leases' numbers back (they
//! are not done) and remembers the leases as ended, so their computes (same host and pid) can
//! still deliver their results, as late results.

use std::collections::BTreeMap;
use std::fmt;

use std::collections::BTreeSet;

use crate::checks::{CheckBook, CheckOutcome, CheckStats, Mismatch, Opinion};
use crate::flags::{Flagged, Flags, Offence};
use crate::leases::{Lease, LeaseLookup, LeaseTable, ProgressError};
use crate::pool::WorkPool;
use crate::ranges::RangeSet;
use crate::registry::{ComputeInfo, Identity, Registry};
use crate::sizing::{range_len, CostModel, Observation, RateModel, SizingConfig};
use crate::{ComputeId, LeaseId, Millis};

/// The search and the tuning of the scheduler.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerConfig {
    /// First number of the search (>= 1).
    pub start: u64,
    /// Last number of the search, inclusive (>= start, <= u64::MAX - 1).
    pub until: u64,
    /// Range sizing.
    pub sizing: SizingConfig,
    /// A lease's deadline is `deadline_factor` times its predicted time after it is issued...
    pub deadline_factor: f64,
    /// ...but never less than this, in ms...
    pub deadline_floor_ms: Millis,
    /// ...nor more than this.
    pub deadline_ceiling_ms: Millis,
    /// Longest wait told to a compute when nothing is left to lease, in ms.
    pub wait_ms: Millis,
    /// Shortest such wait, in ms.
    pub min_wait_ms: Millis,
    /// How many ended leases are remembered for late results.
    pub ended_lease_memory: usize,
    /// Share of full results computed again by another compute to compare checksums, in
    /// [0, 1]; 0 disables double-checking. See [`crate::checks`] for which ones.
    pub double_check: f64,
    /// Most double-checks open at once (waiting or in flight).
    pub check_memory: usize,
    /// How many recent checksum mismatches the status document shows.
    pub mismatch_memory: usize,
    /// Offences (refuted claims, lost checks) after which a compute is refused; 0: never.
    pub refuse_after: u32,
}

impl SchedulerConfig {
    /// The defaults for the search `[start, until]`: target 15 s, deadline 3x the prediction
    /// (at least 30 s, at most a day), waits of 0.25 to 2 s, 16384 ended leases remembered,
    /// 1% of results double-checked (at most 1024 checks open, the last 64 mismatches shown),
    /// a compute refused at its third offence.
    pub fn new(start: u64, until: u64) -> SchedulerConfig {
        SchedulerConfig {
            start,
            until,
            sizing: SizingConfig::default(),
            deadline_factor: 3.0,
            deadline_floor_ms: 30_000,
            deadline_ceiling_ms: 86_400_000,
            wait_ms: 2_000,
            min_wait_ms: 250,
            ended_lease_memory: 16_384,
            double_check: 0.01,
            check_memory: 1024,
            mismatch_memory: 64,
            refuse_after: 3,
        }
    }
}

/// A configuration the scheduler cannot run with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `start` is 0.
    StartIsZero,
    /// `until` is below `start`.
    UntilBelowStart,
    /// `until` is u64::MAX, which no half-open u64 range can reach.
    UntilTooLarge,
    /// A snapshot is for a different search.
    SnapshotMismatch,
    /// `double_check` is not a share in [0, 1].
    DoubleCheckShare,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::StartIsZero => "the search must start at 1 or above",
            ConfigError::UntilBelowStart => "the search ends before it starts",
            ConfigError::UntilTooLarge => "the search can end at u64::MAX - 1 at most",
            ConfigError::SnapshotMismatch => "the saved state is for a different search",
            ConfigError::DoubleCheckShare => "the double-check share must be between 0 and 1",
        })
    }
}

impl std::error::Error for ConfigError {}

/// A message the scheduler refuses; the reactor answers it with an `<error>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchedError {
    /// No connected compute has this id (it never said hello, or it left).
    UnknownCompute(ComputeId),
    /// No lease has this id (never issued, or ended so long ago it was forgotten).
    UnknownLease(LeaseId),
    /// The lease belongs to another compute (not this one, nor one with its host and pid).
    LeaseNotYours {
        /// The lease.
        lease: LeaseId,
        /// Who holds (or held) it.
        owner: ComputeId,
    },
    /// Progress for a lease that is no longer live (it expired, or a result ended it). Not
    /// fatal: the compute may still send its result, which is accepted as a late one.
    LeaseEnded(LeaseId),
    /// A request from a compute that still holds a live lease.
    LeaseOutstanding(LeaseId),
    /// A result whose range does not start where its lease does, or ends past it (or before
    /// its start).
    RangeOutsideLease {
        /// The lease.
        lease: LeaseId,
        /// The result's range.
        lo: u64,
        /// The result's range end.
        hi: u64,
        /// The lease's range.
        lease_lo: u64,
        /// The lease's range end.
        lease_hi: u64,
    },
    /// Progress outside `[lo, hi]` of its lease.
    ProgressOutsideLease {
        /// The lease.
        lease: LeaseId,
        /// The reported progress.
        done: u64,
    },
    /// Progress below what was reported before.
    ProgressBackwards {
        /// The lease.
        lease: LeaseId,
        /// What was reported before.
        previous: u64,
        /// What was reported now.
        done: u64,
    },
    /// A claimed perfect number outside the result's range.
    ClaimOutsideRange {
        /// The claim.
        n: u64,
    },
    /// Claimed perfect numbers not strictly increasing.
    ClaimsNotIncreasing,
    /// The compute's host and pid were flagged too often (false perfect-number claims, lost
    /// double-checks): no more work, no results taken. The reactor should close it.
    Refused {
        /// The compute.
        compute: ComputeId,
        /// Its offences.
        flags: u32,
    },
}

impl fmt::Display for SchedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchedError::UnknownCompute(id) => write!(f, "unknown {id}"),
            SchedError::UnknownLease(id) => write!(f, "unknown {id}"),
            SchedError::LeaseNotYours { lease, owner } => write!(f, "{lease} belongs to {owner}"),
            SchedError::LeaseEnded(id) => write!(f, "{id} is no longer live"),
            SchedError::LeaseOutstanding(id) => write!(f, "{id} is still live: send its result first"),
            SchedError::RangeOutsideLease { lease, lo, hi, lease_lo, lease_hi } => write!(
                f,
                "result [{lo}, {hi}) does not fit {lease} [{lease_lo}, {lease_hi}): it must start at {lease_lo} and end by {lease_hi}"
            ),
            SchedError::ProgressOutsideLease { lease, done } => {
                write!(f, "progress {done} is outside {lease}")
            }
            SchedError::ProgressBackwards { lease, previous, done } => {
                write!(f, "progress {done} on {lease} is below the earlier {previous}")
            }
            SchedError::ClaimOutsideRange { n } => {
                write!(f, "claimed perfect number {n} is outside the result's range")
            }
            SchedError::ClaimsNotIncreasing => {
                f.write_str("claimed perfect numbers are not strictly increasing")
            }
            SchedError::Refused { compute, flags } => write!(
                f,
                "{compute} is refused: {flags} offences (false perfect numbers or lost double-checks)"
            ),
        }
    }
}

impl std::error::Error for SchedError {}

/// A range handed to a compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The lease to quote in progress and result.
    pub lease: LeaseId,
    /// First number.
    pub lo: u64,
    /// End (exclusive); `lo < hi`.
    pub hi: u64,
    /// When the lease expires.
    pub deadline_ms: Millis,
    /// How long it should take on this compute.
    pub predicted_ms: Millis,
    /// True for a double-check: `[lo, hi)` is done already and another compute's checksum of
    /// it will be compared. The compute need not know; the reactor may log it.
    pub check: bool,
}

/// The answer to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Work.
    Assign(Assignment),
    /// Nothing unleased right now (or the search is done: check [`Scheduler::is_done`]): ask
    /// again in `ms`.
    Wait {
        /// How long to wait, in ms.
        ms: Millis,
    },
}

/// What an accepted result did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultOutcome {
    /// The lease it was for.
    pub lease: LeaseId,
    /// Its range.
    pub lo: u64,
    /// Its range end.
    pub hi: u64,
    /// Numbers of `[lo, hi)` not done before: what it added to `tested`.
    pub newly_counted: u64,
    /// True when the lease was no longer live (a late result).
    pub late: bool,
    /// The compute's checksum, passed through for logs and cross-checks.
    pub checksum: u64,
    /// The claimed perfect numbers not recorded yet, increasing: verify each off the reactor
    /// thread, then call [`Scheduler::record_perfect`].
    pub claims: Vec<u64>,
    /// The unfinished rest of a live lease that went back to the pool (`None` for a full or a
    /// late result).
    pub returned: Option<(u64, u64)>,
    /// What the timing did to the compute's rate estimate (`None` when not used: a late result
    /// from a reconnected compute, or an empty result).
    pub observation: Option<Observation>,
    /// Double-checking: for an ordinary result, `Some(Selected)` when it will be checked; for a
    /// check lease's result, what the comparison found. None otherwise.
    pub check: Option<CheckOutcome>,
    /// A compute flagged by this result (the loser of a decided double-check), to log; the
    /// reactor closes it if `refused` and it is connected (its next request is refused anyway).
    pub flagged: Option<Flagged>,
}

/// A lease that expired; its unfinished numbers are back in the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpiredLease {
    /// The lease.
    pub lease: LeaseId,
    /// Who held it (it may still send a late result; the reactor may also tell it to stop).
    pub compute: ComputeId,
    /// Its range.
    pub lo: u64,
    /// Its range end.
    pub hi: u64,
    /// The last progress its compute reported.
    pub progress: u64,
    /// True for a double-check lease (its check waits for another compute again).
    pub check: bool,
}

/// A verified perfect number and who found it first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerfectFinding {
    /// The number.
    pub n: u64,
    /// The compute that found it.
    pub compute: ComputeId,
    /// Its host.
    pub host: String,
    /// When it was found.
    pub found_ms: Millis,
}

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
    /// The compute id that committed it.
    pub last_compute: ComputeId,
    /// When.
    pub last_ms: Millis,
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
    /// Numbers given back, waiting to be handed out again.
    pub returned: u64,
    /// Sum of the computes' measured numbers per second.
    pub numbers_per_sec: f64,
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

/// A lease that was live when manage stopped: restored as an ended lease whose result is still
/// taken from the same host and pid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoredLease {
    /// The lease.
    pub id: LeaseId,
    /// The compute that held it.
    pub compute: ComputeId,
    /// That compute's host and pid.
    pub identity: Identity,
    /// First number.
    pub lo: u64,
    /// End (exclusive).
    pub hi: u64,
}

/// What survives a restart: the done numbers, the perfect numbers, the id numbering and the
/// leases live at the stop. Double-checks and flags are not kept (a restart forgets them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// First number of the search.
    pub start: u64,
    /// Last number of the search (inclusive).
    pub until: u64,
    /// The done spans, half-open, increasing, disjoint.
    pub done: Vec<(u64, u64)>,
    /// The verified perfect numbers.
    pub perfect: Vec<PerfectFinding>,
    /// The id the next lease gets.
    pub next_lease: LeaseId,
    /// The id the next compute gets.
    pub next_compute: ComputeId,
    /// The leases live when the state was saved.
    pub outstanding: Vec<RestoredLease>,
}

/// The I/O-free core of manage. See the module docs.
#[derive(Debug)]
pub struct Scheduler<C: CostModel> {
    config: SchedulerConfig,
    cost: C,
    pool: WorkPool,
    leases: LeaseTable,
    registry: Registry<C::Algorithm>,
    perfect: BTreeMap<u64, PerfectFinding>,
    checks: CheckBook,
    flags: Flags,
}

impl<C: CostModel> Scheduler<C> {
    /// A scheduler for a new search.
    pub fn new(config: SchedulerConfig, cost: C) -> Result<Scheduler<C>, ConfigError> {
        if config.start == 0 {
            return Err(ConfigError::StartIsZero);
        }
        if config.until < config.start {
            return Err(ConfigError::UntilBelowStart);
        }
        if config.until == u64::MAX {
            return Err(ConfigError::UntilTooLarge);
        }
        if !(0.0..=1.0).contains(&config.double_check) {
            return Err(ConfigError::DoubleCheckShare);
        }
        Ok(Scheduler {
            pool: WorkPool::new(config.start, config.until + 1),
            leases: LeaseTable::new(config.ended_lease_memory),
            registry: Registry::new(),
            perfect: BTreeMap::new(),
            checks: CheckBook::new(
                config.double_check,
                config.check_memory,
                config.mismatch_memory,
            ),
            flags: Flags::new(config.refuse_after),
            config,
            cost,
        })
    }

    /// A scheduler that resumes the search saved in `snapshot` (same start and until).
    ///
    /// Ids continue: lease and compute ids start at the snapshot's counters (or past any
    /// outstanding lease's ids, whichever is higher). The outstanding leases' numbers are not
    /// done, so they are handed out again; the leases themselves are remembered as ended
    /// (within `ended_lease_memory`, the newest kept), so a compute with the same host and pid
    /// that delivers one's result after the restart has it accepted as a late result, counting
    /// only what is not done by then. A compute with another identity is refused.
    pub fn restore(
        config: SchedulerConfig,
        cost: C,
        snapshot: &Snapshot,
    ) -> Result<Scheduler<C>, ConfigError> {
        if (snapshot.start, snapshot.until) != (config.start, config.until) {
            return Err(ConfigError::SnapshotMismatch);
        }
        let mut scheduler = Scheduler::new(config, cost)?;
        let mut done = RangeSet::new();
        for &(lo, hi) in &snapshot.done {
            done.insert(lo, hi);
        }
        scheduler.pool = WorkPool::resume(scheduler.pool.start(), scheduler.pool.end(), &done);
        scheduler.leases =
            LeaseTable::starting_at(scheduler.config.ended_lease_memory, snapshot.next_lease);
        let mut next_compute = snapshot.next_compute;
        for lease in &snapshot.outstanding {
            if lease.lo > lease.hi {
                continue;
            }
            next_compute = next_compute.max(ComputeId(lease.compute.0.saturating_add(1)));
            scheduler.leases.remember_interrupted(
                Lease {
                    id: lease.id,
                    compute: lease.compute,
                    identity: lease.identity.clone(),
                    lo: lease.lo,
                    hi: lease.hi,
                    progress: lease.lo,
                    issued_ms: 0,
                    deadline_ms: 0,
                    predicted_ms: 0,
                    check: false,
                },
                0,
            );
        }
        scheduler.registry = Registry::starting_at(next_compute);
        for finding in &snapshot.perfect {
            scheduler.record_perfect(
                finding.n,
                finding.compute,
                finding.host.clone(),
                finding.found_ms,
            );
        }
        Ok(scheduler)
    }

    /// What to save so a restart resumes here.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            start: self.config.start,
            until: self.config.until,
            done: self.pool.done().iter().collect(),
            perfect: self.perfect.values().cloned().collect(),
            next_lease: self.leases.next_id(),
            next_compute: self.registry.next_id(),
            outstanding: self
                .leases
                .iter_live()
                .map(|lease| RestoredLease {
                    id: lease.id,
                    compute: lease.compute,
                    identity: lease.identity.clone(),
                    lo: lease.lo,
                    hi: lease.hi,
                })
                .collect(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// The work pool (read only).
    pub fn pool(&self) -> &WorkPool {
        &self.pool
    }

    /// The lease table (read only).
    pub fn leases(&self) -> &LeaseTable {
        &self.leases
    }

    /// The connected computes (read only).
    pub fn registry(&self) -> &Registry<C::Algorithm> {
        &self.registry
    }

    /// True when every number of the search is done.
    pub fn is_done(&self) -> bool {
        self.pool.is_done()
    }

    /// The nearest lease deadline: poll no longer than until then, then call
    /// [`expire`](Self::expire).
    pub fn next_deadline(&self) -> Option<Millis> {
        self.leases.next_deadline()
    }

    /// A compute said hello. Its benchmark figure is clamped, never refused.
    pub fn join(&mut self, info: ComputeInfo<C::Algorithm>, now: Millis) -> ComputeId {
        let rate = RateModel::from_benchmark(info.ops_per_sec, &self.config.sizing);
        self.registry.join(info, rate, now)
    }

    fn heard(&mut self, compute: ComputeId, now: Millis) -> Result<(), SchedError> {
        let record = self
            .registry
            .get_mut(compute)
            .ok_or(SchedError::UnknownCompute(compute))?;
        record.last_heard_ms = record.last_heard_ms.max(now);
        Ok(())
    }

    fn wait_ms(&self, now: Millis) -> Millis {
        let until_deadline = self
            .next_deadline()
            .map_or(self.config.wait_ms, |deadline| deadline.saturating_sub(now));
        until_deadline
            .min(self.config.wait_ms)
            .max(self.config.min_wait_ms)
    }

    /// The deadline of a lease predicted to take `predicted_ms`, issued at `now`.
    fn deadline(&self, predicted_ms: Millis, now: Millis) -> Millis {
        let allowed = (predicted_ms as f64 * self.config.deadline_factor).ceil();
        let allowed = if allowed.is_finite() && allowed >= 0.0 {
            allowed as u64
        } else {
            self.config.deadline_ceiling_ms
        };
        let allowed = allowed.max(self.config.deadline_floor_ms).min(
            self.config
                .deadline_ceiling_ms
                .max(self.config.deadline_floor_ms),
        );
        now.saturating_add(allowed)
    }

    /// The refusal for `compute`, if its host and pid were flagged too often.
    fn refusal(&self, compute: ComputeId) -> Result<(), SchedError> {
        let Some(record) = self.registry.get(compute) else {
            return Err(SchedError::UnknownCompute(compute));
        };
        let identity = &record.info.identity;
        if self.flags.is_refused(identity) {
            return Err(SchedError::Refused {
                compute,
                flags: self.flags.flags(identity),
            });
        }
        Ok(())
    }

    /// A waiting double-check that `compute` may take now, as (check, lo, hi).
    fn check_for(&self, compute: ComputeId) -> Option<(u64, u64, u64)> {
        if !self.checks.has_pending() || !self.pool.returned().is_empty() {
            return None;
        }
        let record = self.registry.get(compute)?;
        // A compute still being probed gets its short probe first, unless nothing else is left.
        if record.rate.probing() && self.pool.has_available() {
            return None;
        }
        // Hosts of the computes that could take a check (for the other-host preference).
        let hosts: BTreeSet<&str> = self
            .registry
            .iter()
            .filter(|r| !self.flags.is_refused(&r.info.identity))
            .map(|r| r.info.identity.host.as_str())
            .collect();
        self.checks.next_for(&record.info.identity, &hosts)
    }

    /// A compute asks for work: numbers given back first, then a double-check it may take,
    /// then fresh numbers (see the module docs); a range sized to take the target time on it (a
    /// shorter probe while its speed is unmeasured), or a wait when there is nothing for it.
    /// A refused compute gets [`SchedError::Refused`].
    pub fn request(
        &mut self,
        compute: ComputeId,
        now: Millis,
    ) -> Result<RequestOutcome, SchedError> {
        self.heard(compute, now)?;
        self.refusal(compute)?;
        let Some(record) = self.registry.get(compute) else {
            return Err(SchedError::UnknownCompute(compute));
        };
        if let Some(lease) = record.lease.filter(|&id| self.leases.live(id).is_some()) {
            return Err(SchedError::LeaseOutstanding(lease));
        }
        let sizing = &self.config.sizing;
        let algorithm = &record.info.algorithm;
        let cost = |a: u64, b: u64| self.cost.ops(algorithm, a, b);
        let check = self.check_for(compute);
        let (lo, hi) = match check {
            // A check is the whole range of the result it checks: checksums cover a range.
            Some((_, lo, hi)) => (lo, hi),
            None => {
                let Some(lo) = self.pool.next_lo() else {
                    return Ok(RequestOutcome::Wait {
                        ms: self.wait_ms(now),
                    });
                };
                let len = range_len(
                    cost,
                    lo,
                    sizing.max_len,
                    record.rate.next_budget_ops(sizing),
                );
                let Some(range) = self.pool.take(len) else {
                    return Ok(RequestOutcome::Wait {
                        ms: self.wait_ms(now),
                    });
                };
                range
            }
        };
        let target_ms = record.rate.next_target_ms(sizing);
        let predicted_ms = record.rate.predict_ms(cost(lo, hi), target_ms);
        let deadline_ms = self.deadline(predicted_ms, now);
        let identity = record.info.identity.clone();
        let lease = self.leases.issue(
            compute,
            identity,
            lo,
            hi,
            now,
            deadline_ms,
            predicted_ms,
            check.is_some(),
        );
        if let Some((id, _, _)) = check {
            self.checks.assign(id, lease);
        }
        if let Some(record) = self.registry.get_mut(compute) {
            record.lease = Some(lease);
        }
        Ok(RequestOutcome::Assign(Assignment {
            lease,
            lo,
            hi,
            deadline_ms,
            predicted_ms,
            check: check.is_some(),
        }))
    }

    /// A compute reports that its lease is done up to `done` (in `[lo, hi]`, never backwards).
    /// Informative only: nothing counts until a result.
    pub fn progress(
        &mut self,
        compute: ComputeId,
        lease: LeaseId,
        done: u64,
        now: Millis,
    ) -> Result<(), SchedError> {
        self.heard(compute, now)?;
        match self.leases.lookup(lease) {
            LeaseLookup::Unknown => return Err(SchedError::UnknownLease(lease)),
            LeaseLookup::Ended(ended) => {
                return Err(if self.may_report(compute, &ended.lease) {
                    SchedError::LeaseEnded(lease)
                } else {
                    SchedError::LeaseNotYours {
                        lease,
                        owner: ended.lease.compute,
                    }
                });
            }
            LeaseLookup::Live(live) => {
                if live.compute != compute {
                    return Err(SchedError::LeaseNotYours {
                        lease,
                        owner: live.compute,
                    });
                }
            }
        }
        self.leases
            .progress(lease, done)
            .map_err(|error| match error {
                ProgressError::NotLive => SchedError::LeaseEnded(lease),
                ProgressError::OutsideLease => SchedError::ProgressOutsideLease { lease, done },
                ProgressError::Backwards { previous } => SchedError::ProgressBackwards {
                    lease,
                    previous,
                    done,
                },
            })
    }

    /// The lease's holder, or a compute with the same host and pid (it reconnected).
    fn may_report(&self, compute: ComputeId, lease: &Lease) -> bool {
        lease.compute == compute
            || self
                .registry
                .get(compute)
                .is_some_and(|record| record.info.identity == lease.identity)
    }

    /// A compute reports a result for `[lo, hi)` of `lease`, which took it `elapsed_ms`.
    ///
    /// Accepted when the lease is live or remembered, was held by this compute (or one with the
    /// same host and pid), `lo` is the lease's start and `lo <= hi <= lease hi`, and the claims
    /// are strictly increasing within `[lo, hi)`. `hi == lo` is a compute giving its lease up
    /// with nothing done. For a live lease the lease ends and `[hi, lease hi)` goes back to the
    /// pool; a late result only adds what is not done yet. Timing from the lease's own compute
    /// updates its rate estimate; `elapsed_ms` is trusted only between a quarter of and the
    /// time the server saw between issuing the lease and now.
    ///
    /// A refused compute gets [`SchedError::Refused`]. A full result that counted something may
    /// be selected for a double-check (`check: Some(Selected)`). For a check lease nothing
    /// counts and the pool is untouched: a full result is compared (pass, mismatch, or a
    /// majority that flags the loser, in `flagged`), a partial one puts the check back, a late
    /// one is ignored; its claims still pass through for verification.
    #[allow(clippy::too_many_arguments)]
    pub fn result(
        &mut self,
        compute: ComputeId,
        lease: LeaseId,
        lo: u64,
        hi: u64,
        elapsed_ms: Millis,
        checksum: u64,
        perfect: &[u64],
        now: Millis,
    ) -> Result<ResultOutcome, SchedError> {
        self.heard(compute, now)?;
        self.refusal(compute)?;
        let (held, late) = match self.leases.lookup(lease) {
            LeaseLookup::Unknown => return Err(SchedError::UnknownLease(lease)),
            LeaseLookup::Live(live) => (live.clone(), false),
            LeaseLookup::Ended(ended) => (ended.lease.clone(), true),
        };
        if !self.may_report(compute, &held) {
            return Err(SchedError::LeaseNotYours {
                lease,
                owner: held.compute,
            });
        }
        if lo != held.lo || hi < lo || hi > held.hi {
            return Err(SchedError::RangeOutsideLease {
                lease,
                lo,
                hi,
                lease_lo: held.lo,
                lease_hi: held.hi,
            });
        }
        let mut previous = None;
        for &n in perfect {
            if n < lo || n >= hi {
                return Err(SchedError::ClaimOutsideRange { n });
            }
            if previous.is_some_and(|p| p >= n) {
                return Err(SchedError::ClaimsNotIncreasing);
            }
            previous = Some(n);
        }

        // Valid: from here on, change the state.
        let full = hi == held.hi && hi > lo;
        let mut check = None;
        let mut flagged = None;
        let mut newly_counted = 0;
        let mut returned = None;
        if held.check {
            // A check's numbers are done already and were never in the pool's leased set: the
            // pool is not touched, and nothing counts. Only the checksum matters.
            if late {
                self.leases.note_late_result(lease, hi);
                check = Some(CheckOutcome::Ignored);
            } else {
                self.leases.finish(lease, hi, now);
                let opinion = Opinion {
                    compute,
                    identity: held.identity.clone(),
                    checksum,
                };
                check = Some(if full {
                    self.checks.answer(lease, opinion, now)
                } else {
                    self.checks.requeue(lease);
                    CheckOutcome::Requeued
                });
            }
            if let Some(CheckOutcome::Decided { wrong, .. }) = &check {
                flagged = Some(self.flags.offend(
                    wrong.identity.clone(),
                    wrong.compute,
                    Offence::LostCheck { lo, hi },
                    now,
                ));
            }
        } else {
            newly_counted = self.pool.complete(lo, hi);
            if late {
                self.leases.note_late_result(lease, hi);
            } else {
                self.leases.finish(lease, hi, now);
                self.pool.release(held.lo, held.hi);
                returned = (hi < held.hi).then_some((hi, held.hi));
            }
            // Only a full result that counted something is worth checking: a duplicate, or a
            // result of a range others finished, was decided already.
            if full && newly_counted > 0 && self.checks.select() {
                let first = Opinion {
                    compute,
                    identity: held.identity.clone(),
                    checksum,
                };
                let dropped = self.checks.open(lo, hi, first);
                check = Some(CheckOutcome::Selected { dropped });
            }
        }
        if !late {
            if let Some(owner) = self.registry.get_mut(held.compute) {
                if owner.lease == Some(lease) {
                    owner.lease = None;
                }
            }
        }
        let mut observation = None;
        if let Some(record) = self.registry.get_mut(compute) {
            record.tested = record.tested.saturating_add(newly_counted);
            record.results = record.results.saturating_add(1);
            if held.check {
                record.checks = record.checks.saturating_add(1);
            }
            if held.compute == compute && hi > lo {
                let seen_ms = now.saturating_sub(held.issued_ms);
                let trusted_ms = elapsed_ms.min(seen_ms).max(seen_ms / 4);
                let ops = self.cost.ops(&record.info.algorithm, lo, hi);
                let sizing = &self.config.sizing;
                observation = Some(record.rate.observe(ops, trusted_ms, sizing));
                record.observe_numbers(hi - lo, trusted_ms, sizing.min_elapsed_ms);
            }
        }
        let claims = perfect
            .iter()
            .copied()
            .filter(|n| !self.perfect.contains_key(n))
            .collect();
        Ok(ResultOutcome {
            lease,
            lo,
            hi,
            newly_counted,
            late,
            checksum,
            claims,
            returned,
            observation,
            check,
            flagged,
        })
    }

    /// The reactor's verifier found that `n`, claimed perfect by `compute`, is not: its host and
    /// pid get a flag (and are refused at [`SchedulerConfig::refuse_after`] flags). Works after
    /// the compute left as long as a remembered lease names it; None when its identity is
    /// unknown (e.g. a claim left unchecked by the previous run).
    pub fn claim_refuted(&mut self, compute: ComputeId, n: u64, now: Millis) -> Option<Flagged> {
        let identity = match self.registry.get(compute) {
            Some(record) => record.info.identity.clone(),
            None => self.leases.identity_of(compute)?.clone(),
        };
        Some(
            self.flags
                .offend(identity, compute, Offence::FalseClaim { n }, now),
        )
    }

    /// The double-checks (read only).
    pub fn checks(&self) -> &CheckBook {
        &self.checks
    }

    /// The flags (read only).
    pub fn flags(&self) -> &Flags {
        &self.flags
    }

    /// Records a verified perfect number (outside the search: ignored). The first finder is
    /// kept; returns true when `n` was not recorded before.
    pub fn record_perfect(
        &mut self,
        n: u64,
        compute: ComputeId,
        host: String,
        found_ms: Millis,
    ) -> bool {
        if n < self.pool.start() || n >= self.pool.end() || self.perfect.contains_key(&n) {
            return false;
        }
        self.perfect.insert(
            n,
            PerfectFinding {
                n,
                compute,
                host,
                found_ms,
            },
        );
        true
    }

    /// The verified perfect numbers, increasing.
    pub fn perfect(&self) -> impl Iterator<Item = &PerfectFinding> {
        self.perfect.values()
    }

    /// A compute disconnected: its live lease ends and all of its unfinished range goes back to
    /// the pool (its reported progress is not a result); a double-check waits for another
    /// compute again. Returns the leases released.
    pub fn leave(&mut self, compute: ComputeId, now: Millis) -> Result<Vec<Lease>, SchedError> {
        if self.registry.remove(compute).is_none() {
            return Err(SchedError::UnknownCompute(compute));
        }
        let released = self.leases.release_compute(compute, now);
        for lease in &released {
            if lease.check {
                self.checks.requeue(lease.id);
            } else {
                self.pool.release(lease.lo, lease.hi);
            }
        }
        Ok(released)
    }

    /// Ends every lease whose deadline is `<= now`: its unfinished range goes back to the pool
    /// at once, and its compute's rate estimate drops (to the rate its progress shows, else by
    /// 4x) with a probe range next. Its compute may still send a late result. An expired
    /// double-check waits for a compute again.
    pub fn expire(&mut self, now: Millis) -> Vec<ExpiredLease> {
        let expired = self.leases.expire(now);
        let mut report = Vec::with_capacity(expired.len());
        for lease in expired {
            if lease.check {
                self.checks.requeue(lease.id);
            } else {
                self.pool.release(lease.lo, lease.hi);
            }
            if let Some(record) = self.registry.get_mut(lease.compute) {
                if record.lease == Some(lease.id) {
                    record.lease = None;
                }
                let progress = (lease.progress > lease.lo).then(|| {
                    let ops = self
                        .cost
                        .ops(&record.info.algorithm, lease.lo, lease.progress);
                    (ops, now.saturating_sub(lease.issued_ms))
                });
                record.rate.expired(progress, &self.config.sizing);
            }
            report.push(ExpiredLease {
                lease: lease.id,
                compute: lease.compute,
                lo: lease.lo,
                hi: lease.hi,
                progress: lease.progress,
                check: lease.check,
            });
        }
        report
    }

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
        StatusView {
            now_ms: now,
            start: self.config.start,
            until: self.config.until,
            size: self.pool.size(),
            tested: self.pool.tested(),
            frontier: self.pool.frontier(),
            done: self.pool.is_done(),
            leased: self.pool.leased().len(),
            returned: self.pool.returned().len(),
            numbers_per_sec: computes.iter().map(|row| row.numbers_per_sec).sum(),
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
                    last_compute: record.last_compute,
                    last_ms: record.last_ms,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Verdict;

    /// Per-number cost 1 + ln(n) for `Sieve`, 10x that for `Trial`.
    #[derive(Debug)]
    struct LogCost;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Algo {
        Sieve,
        Trial,
    }

    impl CostModel for LogCost {
        type Algorithm = Algo;
        fn ops(&self, algorithm: &Algo, lo: u64, hi: u64) -> f64 {
            let antiderivative = |x: f64| x * x.ln();
            let ops = antiderivative(hi as f64) - antiderivative(lo as f64);
            match algorithm {
                Algo::Sieve => ops,
                Algo::Trial => 10.0 * ops,
            }
        }
    }

    fn info(host: &str, pid: u32, ops_per_sec: u64) -> ComputeInfo<Algo> {
        ComputeInfo {
            identity: Identity {
                host: host.into(),
                pid,
            },
            peer: "10.0.0.2:40000".into(),
            threads: 8,
            algorithm: Algo::Sieve,
            ops_per_sec,
        }
    }

    fn scheduler(start: u64, until: u64) -> Scheduler<LogCost> {
        Scheduler::new(SchedulerConfig::new(start, until), LogCost).unwrap()
    }

    fn assign(scheduler: &mut Scheduler<LogCost>, compute: ComputeId, now: Millis) -> Assignment {
        match scheduler.request(compute, now).unwrap() {
            RequestOutcome::Assign(assignment) => assignment,
            other => panic!("expected work, got {other:?}"),
        }
    }

    fn finish(
        scheduler: &mut Scheduler<LogCost>,
        compute: ComputeId,
        work: &Assignment,
        upto: u64,
        now: Millis,
    ) -> ResultOutcome {
        scheduler
            .result(compute, work.lease, work.lo, upto, 1000, 0, &[], now)
            .unwrap()
    }

    #[test]
    fn config_is_checked() {
        let config = |start, until| SchedulerConfig::new(start, until);
        assert_eq!(
            Scheduler::new(config(0, 5), LogCost).err(),
            Some(ConfigError::StartIsZero)
        );
        assert_eq!(
            Scheduler::new(config(6, 5), LogCost).err(),
            Some(ConfigError::UntilBelowStart)
        );
        assert_eq!(
            Scheduler::new(config(1, u64::MAX), LogCost).err(),
            Some(ConfigError::UntilTooLarge)
        );
        let whole = Scheduler::new(config(1, u64::MAX - 1), LogCost).unwrap();
        assert_eq!(whole.pool().size(), u64::MAX - 1);
        let single = Scheduler::new(config(7, 7), LogCost).unwrap();
        assert_eq!(single.pool().size(), 1);
    }

    #[test]
    fn a_first_probe_then_ranges_on_target_through_the_scheduler() {
        // A compute whose true speed is 3e8 ops/s, with a benchmark 3x too optimistic.
        let mut scheduler = scheduler(1, u64::MAX - 1);
        let compute = scheduler.join(info("a", 1, 900_000_000), 0);
        let true_rate = 3e8;
        let mut now = 0;
        let mut durations = Vec::new();
        for _ in 0..8 {
            let work = assign(&mut scheduler, compute, now);
            let seconds = LogCost.ops(&Algo::Sieve, work.lo, work.hi) / true_rate;
            let elapsed = (seconds * 1000.0).round() as u64;
            now += elapsed;
            let outcome = scheduler
                .result(compute, work.lease, work.lo, work.hi, elapsed, 0, &[], now)
                .unwrap();
            assert_eq!(outcome.newly_counted, work.hi - work.lo);
            durations.push(seconds);
        }
        // The probe aims at 15/8 s by the benchmark: 5.6 s at the true speed.
        assert!((durations[0] - 5.625).abs() < 0.1, "{durations:?}");
        for &seconds in &durations[1..] {
            assert!((seconds - 15.0).abs() < 0.15, "{durations:?}");
        }
        let status = scheduler.status(now);
        assert_eq!(status.tested, status.frontier - 1);
        let row = &status.computes[0];
        assert!((row.estimate_ops_per_sec / true_rate - 1.0).abs() < 0.01);
        assert!(row.numbers_per_sec > 0.0);
        assert_eq!(row.tested, status.tested);
        assert_eq!(row.results, 8);
    }

    #[test]
    fn deadlines_are_a_multiple_of_the_prediction_with_a_floor() {
        let mut scheduler = scheduler(1, u64::MAX - 1);
        let compute = scheduler.join(info("a", 1, 1_000_000_000), 1000);
        let probe = assign(&mut scheduler, compute, 1000);
        assert!(probe.predicted_ms.abs_diff(1875) <= 2, "{probe:?}");
        assert_eq!(probe.deadline_ms, 1000 + 30_000);
        assert_eq!(scheduler.next_deadline(), Some(31_000));
        scheduler
            .result(compute, probe.lease, probe.lo, probe.hi, 1875, 0, &[], 2875)
            .unwrap();
        let work = assign(&mut scheduler, compute, 3000);
        assert!(work.predicted_ms.abs_diff(15_000) <= 20, "{work:?}");
        assert_eq!(work.deadline_ms, 3000 + 3 * work.predicted_ms);
    }

    #[test]
    fn requests_wait_when_everything_is_leased_and_when_done() {
        let mut scheduler = scheduler(1, 100);
        let a = scheduler.join(info("a", 1, 1_000_000_000), 0);
        let b = scheduler.join(info("b", 2, 1_000_000_000), 0);
        let work = assign(&mut scheduler, a, 0);
        assert_eq!((work.lo, work.hi), (1, 101));
        assert_eq!(
            scheduler.request(a, 10),
            Err(SchedError::LeaseOutstanding(work.lease))
        );
        assert_eq!(
            scheduler.request(b, 10),
            Ok(RequestOutcome::Wait { ms: 2000 })
        );
        // Close to the deadline, the wait shrinks to it (but not below the minimum).
        assert_eq!(
            scheduler.request(b, work.deadline_ms - 500),
            Ok(RequestOutcome::Wait { ms: 500 })
        );
        assert_eq!(
            scheduler.request(b, work.deadline_ms - 10),
            Ok(RequestOutcome::Wait { ms: 250 })
        );
        finish(&mut scheduler, a, &work, 101, 20);
        assert!(scheduler.is_done());
        assert_eq!(
            scheduler.request(b, 30),
            Ok(RequestOutcome::Wait { ms: 2000 })
        );
        let status = scheduler.status(40);
        assert_eq!(
            (status.tested, status.frontier, status.done),
            (100, 101, true)
        );
    }

    #[test]
    fn partial_results_and_disconnects_give_back_the_rest_first() {
        let mut scheduler = scheduler(1, 1_000_000);
        let a = scheduler.join(info("a", 1, 1_000_000), 0);
        let b = scheduler.join(info("b", 2, 1_000_000), 0);
        let first = assign(&mut scheduler, a, 0);
        let second = assign(&mut scheduler, b, 0);
        assert_eq!(second.lo, first.hi);
        // a stops halfway: the rest comes back and is handed out before fresh numbers.
        let half = first.lo + (first.hi - first.lo) / 2;
        let outcome = finish(&mut scheduler, a, &first, half, 1000);
        assert_eq!(outcome.returned, Some((half, first.hi)));
        assert_eq!(outcome.newly_counted, half - first.lo);
        // b reported progress, then disconnected: all of its lease comes back.
        scheduler
            .progress(b, second.lease, second.hi - 1, 1000)
            .unwrap();
        let released = scheduler.leave(b, 1000).unwrap();
        assert_eq!(released.len(), 1);
        assert_eq!(
            scheduler.pool().returned().len(),
            (first.hi - half) + (second.hi - second.lo)
        );
        // (The two returned spans touch, so they merged into one.)
        let again = assign(&mut scheduler, a, 2000);
        assert_eq!(again.lo, half);
        assert!(again.hi <= second.hi);
        assert_eq!(scheduler.leave(b, 3000), Err(SchedError::UnknownCompute(b)));
        assert_eq!(
            scheduler.request(b, 3000),
            Err(SchedError::UnknownCompute(b))
        );
        scheduler.pool().check_invariants().unwrap();
    }

    #[test]
    fn bad_messages_are_refused_and_change_nothing() {
        let mut scheduler = scheduler(1, 1_000_000);
        let a = scheduler.join(info("a", 1, 1_000_000), 0);
        let b = scheduler.join(info("b", 2, 1_000_000), 0);
        let work = assign(&mut scheduler, a, 0);
        let (lo, hi, lease) = (work.lo, work.hi, work.lease);
        let before = scheduler.status(5);
        let ghost = ComputeId(99);
        let refusals = [
            (
                scheduler.progress(ghost, lease, lo, 5),
                SchedError::UnknownCompute(ghost),
            ),
            (
                scheduler.progress(a, LeaseId(77), lo, 5),
                SchedError::UnknownLease(LeaseId(77)),
            ),
            (
                scheduler.progress(b, lease, lo, 5),
                SchedError::LeaseNotYours { lease, owner: a },
            ),
            (
                scheduler.progress(a, lease, hi + 1, 5),
                SchedError::ProgressOutsideLease {
                    lease,
                    done: hi + 1,
                },
            ),
            (
                scheduler.progress(a, lease, lo - 1, 5),
                SchedError::ProgressOutsideLease {
                    lease,
                    done: lo - 1,
                },
            ),
        ];
        for (got, expected) in refusals {
            assert_eq!(got, Err(expected));
        }
        let results = [
            (
                scheduler.result(b, lease, lo, hi, 5, 0, &[], 5),
                SchedError::LeaseNotYours { lease, owner: a },
            ),
            (
                scheduler.result(a, LeaseId(0), lo, hi, 5, 0, &[], 5),
                SchedError::UnknownLease(LeaseId(0)),
            ),
            (
                scheduler.result(a, lease, lo + 1, hi, 5, 0, &[], 5),
                SchedError::RangeOutsideLease {
                    lease,
                    lo: lo + 1,
                    hi,
                    lease_lo: lo,
                    lease_hi: hi,
                },
            ),
            (
                scheduler.result(a, lease, lo, hi + 1, 5, 0, &[], 5),
                SchedError::RangeOutsideLease {
                    lease,
                    lo,
                    hi: hi + 1,
                    lease_lo: lo,
                    lease_hi: hi,
                },
            ),
            (
                scheduler.result(a, lease, lo, lo + 5, 5, 0, &[lo + 5], 5),
                SchedError::ClaimOutsideRange { n: lo + 5 },
            ),
            (
                scheduler.result(a, lease, lo, lo + 9, 5, 0, &[lo + 3, lo + 3], 5),
                SchedError::ClaimsNotIncreasing,
            ),
        ];
        for (got, expected) in results {
            assert_eq!(got, Err(expected));
        }
        // Only the senders' "last heard" moved.
        let mut after = scheduler.status(5);
        for (row, old) in after.computes.iter_mut().zip(&before.computes) {
            assert_eq!(row.last_heard_ms, 5);
            row.last_heard_ms = old.last_heard_ms;
        }
        assert_eq!(after, before);
        scheduler.progress(a, lease, lo + 10, 6).unwrap();
        assert_eq!(
            scheduler.progress(a, lease, lo + 9, 7),
            Err(SchedError::ProgressBackwards {
                lease,
                previous: lo + 10,
                done: lo + 9
            })
        );
        assert_eq!(scheduler.status(8).computes[0].lease.unwrap().done, lo + 10);
        scheduler.pool().check_invariants().unwrap();
    }

    #[test]
    fn an_expired_lease_comes_back_and_its_late_result_counts_once() {
        let mut scheduler = scheduler(1, 1_000_000_000);
        let slow = scheduler.join(info("slow", 1, 1_000_000), 0);
        let other = scheduler.join(info("other", 2, 500_000), 0);
        let work = assign(&mut scheduler, slow, 0);
        let len = work.hi - work.lo;
        scheduler
            .progress(slow, work.lease, work.lo + len / 10, 29_000)
            .unwrap();
        assert!(scheduler.expire(work.deadline_ms - 1).is_empty());
        let expired = scheduler.expire(work.deadline_ms);
        assert_eq!(expired.len(), 1);
        assert_eq!(
            (expired[0].lo, expired[0].hi, expired[0].compute),
            (work.lo, work.hi, slow)
        );
        assert_eq!(scheduler.next_deadline(), None);
        // Its estimate dropped to what its progress showed, and it probes again.
        let record = scheduler.registry().get(slow).unwrap();
        assert!(record.rate.probing());
        assert!(record.rate.ops_per_sec() < 1_000_000.0);
        assert_eq!(
            scheduler.progress(slow, work.lease, work.hi, 30_001),
            Err(SchedError::LeaseEnded(work.lease))
        );
        // The range goes to the other (slower) compute, whose probe is shorter.
        let reissued = assign(&mut scheduler, other, 30_000);
        assert_eq!(reissued.lo, work.lo);
        assert!(reissued.hi < work.hi);
        // The late result for all of it arrives and counts all of it, once.
        let late = scheduler
            .result(slow, work.lease, work.lo, work.hi, 40_000, 7, &[], 40_000)
            .unwrap();
        assert!(late.late);
        assert_eq!(late.newly_counted, len);
        assert_eq!(late.returned, None);
        assert_eq!(late.checksum, 7);
        assert!(scheduler.pool().returned().is_empty());
        // The reissued lease finishes: nothing new. A duplicate late result: nothing new.
        let outcome = finish(&mut scheduler, other, &reissued, reissued.hi, 41_000);
        assert_eq!(outcome.newly_counted, 0);
        let duplicate = scheduler
            .result(slow, work.lease, work.lo, work.hi, 40_000, 7, &[], 42_000)
            .unwrap();
        assert_eq!(duplicate.newly_counted, 0);
        assert_eq!(scheduler.pool().tested(), len);
        assert_eq!(scheduler.pool().leased().len(), 0);
        scheduler.pool().check_invariants().unwrap();
    }

    #[test]
    fn a_reconnected_compute_may_deliver_its_late_result_others_may_not() {
        let mut scheduler = scheduler(1, 1_000_000);
        let first = scheduler.join(info("h", 42, 1_000_000), 0);
        let work = assign(&mut scheduler, first, 0);
        scheduler.leave(first, 10).unwrap();
        let stranger = scheduler.join(info("h", 43, 1_000_000), 20);
        assert_eq!(
            scheduler.result(stranger, work.lease, work.lo, work.hi, 5, 0, &[], 30),
            Err(SchedError::LeaseNotYours {
                lease: work.lease,
                owner: first
            })
        );
        let again = scheduler.join(info("h", 42, 1_000_000), 20);
        let outcome = scheduler
            .result(again, work.lease, work.lo, work.hi, 5, 0, &[], 30)
            .unwrap();
        assert!(outcome.late);
        assert_eq!(outcome.newly_counted, work.hi - work.lo);
        // Its timing belongs to the old connection's lease: not used for the new estimate.
        assert_eq!(outcome.observation, None);
        assert_eq!(
            scheduler.registry().get(again).unwrap().tested,
            work.hi - work.lo
        );
    }

    #[test]
    fn perfect_numbers_sorted_unique_first_finder_kept() {
        let mut scheduler = scheduler(1, 10_000);
        let a = scheduler.join(info("a", 1, 1_000_000), 0);
        let work = assign(&mut scheduler, a, 0);
        assert!(work.hi > 8129);
        let outcome = scheduler
            .result(
                a,
                work.lease,
                work.lo,
                work.hi,
                1000,
                0,
                &[6, 28, 496, 8128],
                10,
            )
            .unwrap();
        assert_eq!(outcome.claims, [6, 28, 496, 8128]);
        assert!(scheduler.record_perfect(496, a, "a".into(), 11));
        assert!(scheduler.record_perfect(6, a, "a".into(), 12));
        assert!(!scheduler.record_perfect(6, ComputeId(9), "z".into(), 13));
        assert!(!scheduler.record_perfect(20_000, a, "a".into(), 13));
        let found: Vec<_> = scheduler.perfect().map(|p| (p.n, p.found_ms)).collect();
        assert_eq!(found, [(6, 12), (496, 11)]);
        // A duplicate result only passes back the claims not yet recorded.
        let again = scheduler
            .result(a, work.lease, work.lo, work.hi, 1000, 0, &[6, 28], 20)
            .unwrap();
        assert_eq!(again.claims, [28]);
    }

    #[test]
    fn snapshot_and_restore() {
        let mut scheduler = scheduler(1, 1_000_000);
        let a = scheduler.join(info("a", 1, 1_000_000), 0);
        let work = assign(&mut scheduler, a, 0);
        finish(&mut scheduler, a, &work, work.lo + 100, 10);
        scheduler.record_perfect(28, a, "a".into(), 10);
        let in_flight = assign(&mut scheduler, a, 20);
        let snapshot = scheduler.snapshot();
        assert_eq!(snapshot.done, [(1, 101)]);
        let mut restored =
            Scheduler::restore(SchedulerConfig::new(1, 1_000_000), LogCost, &snapshot).unwrap();
        assert_eq!(restored.pool().tested(), 100);
        assert_eq!(restored.perfect().count(), 1);
        let b = restored.join(info("b", 2, 1_000_000), 30);
        assert!(b > a);
        let first = assign(&mut restored, b, 30);
        // The in-flight range is not done: it is handed out again, under a new id.
        assert_eq!(first.lo, 101);
        assert!(first.lease > in_flight.lease);
        assert_eq!(snapshot.outstanding.len(), 1);
        assert_eq!(
            Scheduler::restore(SchedulerConfig::new(2, 1_000_000), LogCost, &snapshot).err(),
            Some(ConfigError::SnapshotMismatch)
        );
    }

    #[test]
    fn garbage_timing_never_breaks_sizing() {
        let mut scheduler = scheduler(1, u64::MAX - 1);
        let a = scheduler.join(info("a", 1, u64::MAX), 0);
        let b = scheduler.join(info("b", 2, 0), 0);
        for (compute, elapsed) in [(a, 0), (a, u64::MAX), (b, 0), (b, u64::MAX), (a, 1), (b, 1)] {
            let work = assign(&mut scheduler, compute, 1_000);
            assert!(work.lo < work.hi && work.hi - work.lo <= 1 << 40);
            assert!(work.deadline_ms >= 1_000 + 30_000 && work.deadline_ms <= 1_000 + 86_400_000);
            scheduler
                .result(
                    compute,
                    work.lease,
                    work.lo,
                    work.hi,
                    elapsed,
                    0,
                    &[],
                    2_000,
                )
                .unwrap();
        }
        scheduler.pool().check_invariants().unwrap();
    }

    #[test]
    fn an_empty_result_gives_the_lease_up() {
        let mut scheduler = scheduler(1, 1_000);
        let a = scheduler.join(info("a", 1, 1_000_000), 0);
        let work = assign(&mut scheduler, a, 0);
        let outcome = finish(&mut scheduler, a, &work, work.lo, 10);
        assert_eq!(outcome.newly_counted, 0);
        assert_eq!(outcome.returned, Some((work.lo, work.hi)));
        assert_eq!(outcome.observation, None);
        assert_eq!(assign(&mut scheduler, a, 20).lo, work.lo);
    }

    #[test]
    fn status_rows() {
        let mut scheduler = scheduler(5, 1_000_000);
        let mut trial = info("t", 3, 2_000_000);
        trial.algorithm = Algo::Trial;
        let a = scheduler.join(trial, 100);
        let work = assign(&mut scheduler, a, 200);
        scheduler.progress(a, work.lease, work.lo + 3, 300).unwrap();
        let status = scheduler.status(400);
        assert_eq!(
            (status.start, status.until, status.size),
            (5, 1_000_000, 999_996)
        );
        assert_eq!((status.tested, status.frontier, status.done), (0, 5, false));
        assert_eq!(status.leased, work.hi - work.lo);
        let row = &status.computes[0];
        assert_eq!(
            (row.id, row.host.as_str(), row.pid, row.threads),
            (a, "t", 3, 8)
        );
        assert_eq!(row.algorithm, Algo::Trial);
        assert_eq!(row.benchmark_ops_per_sec, 2_000_000);
        assert_eq!((row.since_ms, row.last_heard_ms), (100, 300));
        assert_eq!(
            row.lease,
            Some(LeaseRow {
                id: work.lease,
                lo: work.lo,
                hi: work.hi,
                done: work.lo + 3,
                deadline_ms: work.deadline_ms,
                check: false,
            })
        );
    }

    fn scheduler_with(
        start: u64,
        until: u64,
        tune: impl FnOnce(&mut SchedulerConfig),
    ) -> Scheduler<LogCost> {
        let mut config = SchedulerConfig::new(start, until);
        tune(&mut config);
        Scheduler::new(config, LogCost).unwrap()
    }

    /// A full result with `checksum`, timed (1 s) so the compute's speed is measured.
    fn full(
        scheduler: &mut Scheduler<LogCost>,
        compute: ComputeId,
        work: &Assignment,
        checksum: u64,
        now: Millis,
    ) -> ResultOutcome {
        scheduler
            .result(
                compute,
                work.lease,
                work.lo,
                work.hi,
                1000,
                checksum,
                &[],
                now,
            )
            .unwrap()
    }

    #[test]
    fn restore_accepts_late_results_of_outstanding_leases_from_the_same_process() {
        let mut before = scheduler(1, 1_000_000);
        let a = before.join(info("h", 42, 1_000_000), 0);
        let b = before.join(info("h", 43, 1_000_000), 0);
        let work = assign(&mut before, a, 0);
        let other = assign(&mut before, b, 0);
        let snapshot = before.snapshot();
        assert_eq!(snapshot.next_compute, ComputeId(3));
        assert_eq!(snapshot.outstanding.len(), 2);
        assert_eq!(
            snapshot.outstanding[0],
            RestoredLease {
                id: work.lease,
                compute: a,
                identity: Identity {
                    host: "h".into(),
                    pid: 42
                },
                lo: work.lo,
                hi: work.hi,
            }
        );

        let mut after =
            Scheduler::restore(SchedulerConfig::new(1, 1_000_000), LogCost, &snapshot).unwrap();
        assert_eq!(after.pool().tested(), 0);
        assert!(matches!(
            after.leases().lookup(work.lease),
            LeaseLookup::Ended(_)
        ));
        // Ids continue: no compute or lease id from before names a new one.
        let stranger = after.join(info("h", 44, 500_000), 10);
        assert_eq!(stranger, ComputeId(3));
        let again = after.join(info("h", 42, 1_000_000), 10);
        // The outstanding numbers are handed out again (here a part of a's range).
        let reissued = assign(&mut after, stranger, 10);
        assert!(reissued.lease > other.lease);
        assert_eq!(reissued.lo, work.lo);
        assert!(reissued.hi < work.hi);
        finish(&mut after, stranger, &reissued, reissued.hi, 20);
        // Another process may not deliver a's result...
        assert_eq!(
            after.result(stranger, work.lease, work.lo, work.hi, 5, 0, &[], 30),
            Err(SchedError::LeaseNotYours {
                lease: work.lease,
                owner: a
            })
        );
        // ...a's own process, reconnected, may: a late result counting what is not done yet.
        let late = after
            .result(again, work.lease, work.lo, work.hi, 5, 0, &[], 30)
            .unwrap();
        assert!(late.late);
        assert_eq!(late.newly_counted, work.hi - reissued.hi);
        assert_eq!(after.pool().tested(), work.hi - work.lo);
        after.pool().check_invariants().unwrap();
        // A restore with a stale counter still moves past the outstanding ids.
        let mut stale = snapshot.clone();
        stale.next_compute = ComputeId(1);
        stale.next_lease = LeaseId(1);
        let mut resumed =
            Scheduler::restore(SchedulerConfig::new(1, 1_000_000), LogCost, &stale).unwrap();
        assert_eq!(resumed.join(info("x", 1, 1), 0), ComputeId(3));
        assert!(assign(&mut resumed, ComputeId(3), 0).lease > other.lease);
    }

    #[test]
    fn the_double_check_share_is_validated() {
        for bad in [-0.1, 1.5, f64::NAN] {
            let mut config = SchedulerConfig::new(1, 10);
            config.double_check = bad;
            assert_eq!(
                Scheduler::new(config, LogCost).err(),
                Some(ConfigError::DoubleCheckShare)
            );
        }
    }

    #[test]
    fn checks_pass_or_a_third_compute_decides_and_the_loser_is_flagged() {
        let mut scheduler = scheduler_with(1, 100_000_000, |c| c.double_check = 1.0);
        let a = scheduler.join(info("a", 1, 1_000_000), 0);
        let b = scheduler.join(info("b", 1, 1_000_000), 0);
        let wa = assign(&mut scheduler, a, 0);
        let wb = assign(&mut scheduler, b, 0);
        assert!(!wa.check && !wb.check);
        let outcome = full(&mut scheduler, a, &wa, 11, 1000);
        assert_eq!(
            outcome.check,
            Some(CheckOutcome::Selected { dropped: None })
        );
        full(&mut scheduler, b, &wb, 22, 1000);
        assert_eq!(scheduler.status(1000).checks.pending, 2);
        // Each checks the other's range, never its own.
        let ca = assign(&mut scheduler, a, 1100);
        assert!(ca.check);
        assert_eq!((ca.lo, ca.hi), (wb.lo, wb.hi));
        let cb = assign(&mut scheduler, b, 1100);
        assert!(cb.check);
        assert_eq!((cb.lo, cb.hi), (wa.lo, wa.hi));
        let status = scheduler.status(1100);
        assert_eq!((status.checks.pending, status.checks.in_flight), (0, 2));
        assert!(status.computes[0].lease.unwrap().check);
        let tested = scheduler.pool().tested();
        // a agrees with b: passed. No numbers counted, nothing given back.
        let passed = full(&mut scheduler, a, &ca, 22, 2000);
        assert_eq!(passed.check, Some(CheckOutcome::Passed { first: b }));
        assert_eq!((passed.newly_counted, passed.returned), (0, None));
        // b disagrees with a: a third computation is needed.
        let mismatch = full(&mut scheduler, b, &cb, 99, 2000);
        assert!(
            matches!(mismatch.check, Some(CheckOutcome::Mismatch { ref first }) if first.compute == a && first.checksum == 11)
        );
        assert_eq!(scheduler.pool().tested(), tested);
        let status = scheduler.status(2000);
        assert_eq!((status.checks.passed, status.checks.mismatches), (1, 1));
        assert_eq!(status.mismatches.len(), 1);
        assert_eq!(status.mismatches[0].verdict, Verdict::Open);
        assert_eq!(
            (status.mismatches[0].lo, status.mismatches[0].hi),
            (wa.lo, wa.hi)
        );
        assert_eq!(
            (
                status.mismatches[0].first.compute,
                status.mismatches[0].second.compute
            ),
            (a, b)
        );
        // Neither a nor b may be the third: they get fresh numbers.
        let fresh_a = assign(&mut scheduler, a, 2100);
        assert!(!fresh_a.check);
        assert!(fresh_a.lo >= wb.hi);
        // c's speed is unmeasured: its probe first, then the check.
        let c = scheduler.join(info("c", 1, 1_000_000), 2100);
        let probe = assign(&mut scheduler, c, 2100);
        assert!(!probe.check);
        full(&mut scheduler, c, &probe, 33, 3100);
        let third = assign(&mut scheduler, c, 3200);
        assert!(third.check);
        assert_eq!((third.lo, third.hi), (wa.lo, wa.hi));
        let decided = full(&mut scheduler, c, &third, 11, 4200);
        assert!(
            matches!(decided.check, Some(CheckOutcome::Decided { ref wrong, ref right }) if wrong.compute == b && right.compute == a)
        );
        let flagged = decided.flagged.unwrap();
        assert_eq!(
            (flagged.compute, flagged.flags, flagged.refused),
            (b, 1, false)
        );
        assert_eq!(
            flagged.offence,
            Offence::LostCheck {
                lo: wa.lo,
                hi: wa.hi
            }
        );
        let status = scheduler.status(4200);
        assert_eq!(status.checks.decided, 1);
        assert_eq!(status.mismatches[0].verdict, Verdict::SecondWrong);
        assert_eq!(status.mismatches[0].third.as_ref().unwrap().compute, c);
        let flags: Vec<_> = status.computes.iter().map(|r| (r.id, r.flags)).collect();
        assert_eq!(flags, [(a, 0), (b, 1), (c, 0)]);
        assert_eq!(status.flagged.len(), 1);
        assert_eq!(
            (
                status.flagged[0].host.as_str(),
                status.flagged[0].pid,
                status.flagged[0].refused
            ),
            ("b", 1, false)
        );
        let checks: Vec<_> = status.computes.iter().map(|r| r.checks).collect();
        assert_eq!(checks, [1, 1, 1]);
        assert_eq!(status.tested, scheduler.pool().tested());
        scheduler.pool().check_invariants().unwrap();
    }

    #[test]
    fn returned_numbers_then_checks_then_fresh_numbers() {
        let mut scheduler = scheduler_with(1, 100_000_000, |c| c.double_check = 0.5);
        let a = scheduler.join(info("a", 1, 1_000_000), 0);
        let b = scheduler.join(info("b", 1, 1_000_000), 0);
        let first = assign(&mut scheduler, a, 0);
        let second = assign(&mut scheduler, b, 0);
        // a's result is not selected (the first of every two), b's is.
        assert_eq!(full(&mut scheduler, a, &first, 1, 1000).check, None);
        // b's next lease comes back a tenth done, so that the rest fits in a's next range
        // (whose length is solved only to within 1/1024).
        assert_eq!(
            full(&mut scheduler, b, &second, 2, 1000).check,
            Some(CheckOutcome::Selected { dropped: None })
        );
        let third = assign(&mut scheduler, b, 1000);
        scheduler
            .result(
                b,
                third.lease,
                third.lo,
                third.lo + (third.hi - third.lo) / 10,
                1000,
                0,
                &[],
                2000,
            )
            .unwrap();
        let returned = assign(&mut scheduler, a, 2000);
        assert!(!returned.check);
        assert!(returned.lo > third.lo && returned.lo < third.hi);
        finish(&mut scheduler, a, &returned, returned.hi, 2500);
        let check = assign(&mut scheduler, a, 3000);
        assert!(check.check);
        assert_eq!((check.lo, check.hi), (second.lo, second.hi));
        // A partial check result puts the check back; nothing counts.
        let tested = scheduler.pool().tested();
        let partial = scheduler
            .result(a, check.lease, check.lo, check.lo + 1, 10, 0, &[], 3100)
            .unwrap();
        assert_eq!(partial.check, Some(CheckOutcome::Requeued));
        assert_eq!((partial.newly_counted, partial.returned), (0, None));
        assert_eq!(scheduler.pool().tested(), tested);
        assert_eq!(scheduler.checks().stats().pending, 1);
        // Its lease expires: back again; a late result for it is taken and ignored.
        let check = assign(&mut scheduler, a, 3200);
        assert!(check.check);
        let expired = scheduler.expire(check.deadline_ms);
        assert_eq!(expired.len(), 1);
        assert!(expired[0].check);
        assert_eq!(scheduler.checks().stats().pending, 1);
        assert!(scheduler.pool().returned().is_empty());
        let late = full(&mut scheduler, a, &check, 2, check.deadline_ms + 1);
        assert_eq!(late.check, Some(CheckOutcome::Ignored));
        assert_eq!(late.newly_counted, 0);
        assert_eq!(scheduler.checks().stats().passed, 0);
        // A compute that leaves with a check: the check waits again.
        let c = scheduler.join(info("c", 1, 1_000_000), 0);
        let cp = assign(&mut scheduler, c, check.deadline_ms);
        full(&mut scheduler, c, &cp, 0, check.deadline_ms + 1000);
        let held = assign(&mut scheduler, c, check.deadline_ms + 1000);
        assert!(held.check);
        let tested = scheduler.pool().tested();
        assert_eq!(scheduler.checks().stats().in_flight, 1);
        let released = scheduler.leave(c, check.deadline_ms + 1100).unwrap();
        assert!(released[0].check);
        assert_eq!(scheduler.checks().stats().in_flight, 0);
        assert!(scheduler.checks().stats().pending >= 1);
        assert!(scheduler.pool().returned().is_empty());
        assert_eq!(scheduler.pool().tested(), tested);
        scheduler.pool().check_invariants().unwrap();
    }

    #[test]
    fn a_compute_with_too_many_offences_is_refused() {
        let mut scheduler = scheduler_with(1, 1_000_000, |c| {
            c.double_check = 0.0;
            c.refuse_after = 2;
        });
        let a = scheduler.join(info("a", 1, 1_000_000), 0);
        let work = assign(&mut scheduler, a, 0);
        let first = scheduler.claim_refuted(a, 6, 5).unwrap();
        assert_eq!((first.flags, first.refused), (1, false));
        assert_eq!(first.offence, Offence::FalseClaim { n: 6 });
        let second = scheduler.claim_refuted(a, 28, 6).unwrap();
        assert_eq!((second.flags, second.refused), (2, true));
        let refused = SchedError::Refused {
            compute: a,
            flags: 2,
        };
        assert_eq!(scheduler.request(a, 7), Err(refused.clone()));
        assert_eq!(
            scheduler.result(a, work.lease, work.lo, work.hi, 5, 0, &[], 7),
            Err(refused)
        );
        assert_eq!(scheduler.pool().tested(), 0);
        // Reconnecting does not help; another process is fine.
        scheduler.leave(a, 8).unwrap();
        let again = scheduler.join(info("a", 1, 1_000_000), 9);
        assert!(matches!(
            scheduler.request(again, 9),
            Err(SchedError::Refused { flags: 2, .. })
        ));
        let other = scheduler.join(info("a", 2, 1_000_000), 9);
        assert_eq!(assign(&mut scheduler, other, 9).lo, work.lo);
        // A verdict for a compute that left is still charged (its lease is remembered).
        assert_eq!(scheduler.claim_refuted(a, 496, 10).unwrap().flags, 3);
        assert_eq!(scheduler.claim_refuted(ComputeId(999), 6, 10), None);
        let status = scheduler.status(10);
        assert_eq!(status.flagged.len(), 1);
        assert!(status.flagged[0].refused);
        assert_eq!(status.flagged[0].last, Offence::FalseClaim { n: 496 });
        assert_eq!(status.computes[0].flags, 3);
        assert_eq!(status.computes[1].flags, 0);
    }
}
