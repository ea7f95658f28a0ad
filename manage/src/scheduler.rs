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

use std::collections::BTreeMap;
use std::fmt;

use crate::leases::{Lease, LeaseLookup, LeaseTable, ProgressError};
use crate::pool::WorkPool;
use crate::ranges::RangeSet;
use crate::registry::{ComputeInfo, Registry};
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
}

impl SchedulerConfig {
    /// The defaults for the search `[start, until]`: target 15 s, deadline 3x the prediction
    /// (at least 30 s, at most a day), waits of 0.25 to 2 s, 16384 ended leases remembered.
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
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::StartIsZero => "the search must start at 1 or above",
            ConfigError::UntilBelowStart => "the search ends before it starts",
            ConfigError::UntilTooLarge => "the search can end at u64::MAX - 1 at most",
            ConfigError::SnapshotMismatch => "the saved state is for a different search",
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
    /// When it joined.
    pub since_ms: Millis,
    /// When it last sent anything.
    pub last_heard_ms: Millis,
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
}

/// What survives a restart: the done numbers, the perfect numbers and the lease numbering.
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
        Ok(Scheduler {
            pool: WorkPool::new(config.start, config.until + 1),
            leases: LeaseTable::new(config.ended_lease_memory),
            registry: Registry::new(),
            perfect: BTreeMap::new(),
            config,
            cost,
        })
    }

    /// A scheduler that resumes the search saved in `snapshot` (same start and until).
    /// Leases are not saved: what was leased is simply handed out again.
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

    /// A compute asks for work: a range sized to take the target time on it (a shorter probe
    /// while its speed is unmeasured), or a wait when nothing is unleased.
    pub fn request(
        &mut self,
        compute: ComputeId,
        now: Millis,
    ) -> Result<RequestOutcome, SchedError> {
        self.heard(compute, now)?;
        let Some(record) = self.registry.get(compute) else {
            return Err(SchedError::UnknownCompute(compute));
        };
        if let Some(lease) = record.lease.filter(|&id| self.leases.live(id).is_some()) {
            return Err(SchedError::LeaseOutstanding(lease));
        }
        let Some(lo) = self.pool.next_lo() else {
            return Ok(RequestOutcome::Wait {
                ms: self.wait_ms(now),
            });
        };
        let sizing = &self.config.sizing;
        let algorithm = &record.info.algorithm;
        let cost = |a: u64, b: u64| self.cost.ops(algorithm, a, b);
        let len = range_len(
            cost,
            lo,
            sizing.max_len,
            record.rate.next_budget_ops(sizing),
        );
        let Some((lo, hi)) = self.pool.take(len) else {
            return Ok(RequestOutcome::Wait {
                ms: self.wait_ms(now),
            });
        };
        let target_ms = record.rate.next_target_ms(sizing);
        let predicted_ms = record.rate.predict_ms(cost(lo, hi), target_ms);
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
        let deadline_ms = now.saturating_add(allowed);
        let identity = record.info.identity.clone();
        let lease = self
            .leases
            .issue(compute, identity, lo, hi, now, deadline_ms, predicted_ms);
        if let Some(record) = self.registry.get_mut(compute) {
            record.lease = Some(lease);
        }
        Ok(RequestOutcome::Assign(Assignment {
            lease,
            lo,
            hi,
            deadline_ms,
            predicted_ms,
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
        let newly_counted = self.pool.complete(lo, hi);
        let mut returned = None;
        if late {
            self.leases.note_late_result(lease, hi);
        } else {
            self.leases.finish(lease, hi, now);
            self.pool.release(held.lo, held.hi);
            returned = (hi < held.hi).then_some((hi, held.hi));
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
        })
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
    /// the pool (its reported progress is not a result). Returns the leases released.
    pub fn leave(&mut self, compute: ComputeId, now: Millis) -> Result<Vec<Lease>, SchedError> {
        if self.registry.remove(compute).is_none() {
            return Err(SchedError::UnknownCompute(compute));
        }
        let released = self.leases.release_compute(compute, now);
        for lease in &released {
            self.pool.release(lease.lo, lease.hi);
        }
        Ok(released)
    }

    /// Ends every lease whose deadline is `<= now`: its unfinished range goes back to the pool
    /// at once, and its compute's rate estimate drops (to the rate its progress shows, else by
    /// 4x) with a probe range next. Its compute may still send a late result.
    pub fn expire(&mut self, now: Millis) -> Vec<ExpiredLease> {
        let expired = self.leases.expire(now);
        let mut report = Vec::with_capacity(expired.len());
        for lease in expired {
            self.pool.release(lease.lo, lease.hi);
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
                    }),
                tested: record.tested,
                results: record.results,
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Identity;

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
        let first = assign(&mut restored, b, 30);
        // Leases are not saved: the in-flight range is handed out again, under a new id.
        assert_eq!(first.lo, 101);
        assert!(first.lease > in_flight.lease);
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
                deadline_ms: work.deadline_ms
            })
        );
    }
}
