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

use std::collections::BTreeSet;

use crate::checks::{CheckBook, CheckOutcome, Opinion};
use crate::flags::{Flagged, Flags, Offence};
use crate::leases::{Lease, LeaseLookup, LeaseTable, ProgressError};
use crate::pool::WorkPool;
use crate::ranges::RangeSet;
use crate::registry::{ComputeInfo, Registry};
use crate::sizing::{range_len, CostModel, RateModel};
use crate::{ComputeId, LeaseId, Millis};

mod config;
mod eta;
mod messages;
mod status;
#[cfg(test)]
mod tests;

pub use config::{ConfigError, SchedulerConfig};
pub use eta::Progress;
pub use messages::{
    Assignment, ExpiredLease, OutstandingLease, PerfectFinding, RequestOutcome, ResultOutcome,
    ResultRecord, ResultReport, SchedError, Snapshot,
};
pub use status::{ComputeRow, FlaggedRow, LeaseRow, StatusView};

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
            scheduler.record_perfect(finding.clone());
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
                .map(OutstandingLease::from)
                .collect(),
        }
    }

    /// A live lease as it is stored (so a restart can take its late result); `None` when it is
    /// not live.
    pub fn outstanding(&self, lease: LeaseId) -> Option<OutstandingLease> {
        self.leases.live(lease).map(OutstandingLease::from)
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

    /// A compute reports a result for `[lo, hi)` of `lease`, which took it `elapsed_ms`. The
    /// outcome says what it did and, in [`ResultOutcome::record`], all the reactor stores.
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
    pub fn result(
        &mut self,
        report: &ResultReport<'_>,
        now: Millis,
    ) -> Result<ResultOutcome, SchedError> {
        let ResultReport {
            compute,
            lease,
            lo,
            hi,
            elapsed_ms,
            checksum,
            perfect,
        } = *report;
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
        let pieces: Vec<(u64, u64)> = self.pool.done().gaps(lo, hi).collect();
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
        let host = self
            .registry
            .get(compute)
            .map(|record| record.info.identity.host.clone())
            .unwrap_or_default();
        let claims = perfect
            .iter()
            .filter(|n| !self.perfect.contains_key(n))
            .map(|&n| PerfectFinding {
                n,
                compute,
                host: host.clone(),
                found_ms: now,
            })
            .collect();
        let whole = pieces == [(lo, hi)];
        let record = ResultRecord {
            compute,
            host,
            pieces,
            elapsed_ms,
            whole_checksum: whole.then_some(checksum),
            finished_ms: now,
            ended_lease: (!late).then_some(lease),
            claims,
        };
        Ok(ResultOutcome {
            lease,
            lo,
            hi,
            newly_counted,
            late,
            checksum,
            record,
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
    /// kept; returns true when the number was not recorded before.
    pub fn record_perfect(&mut self, finding: PerfectFinding) -> bool {
        let n = finding.n;
        if n < self.pool.start() || n >= self.pool.end() || self.perfect.contains_key(&n) {
            return false;
        }
        self.perfect.insert(n, finding);
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
}
