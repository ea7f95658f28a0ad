//! A randomized simulation of the scheduler against a plain model of what it must do.
//!
//! Random sequences of joins (including reconnects with the same host and pid), requests,
//! progress reports, results (full, partial, empty, late, and malformed), disconnects and
//! expiries run against a small search. After every step the model checks:
//!
//! * the scheduler accepted exactly the messages the model says are valid, and a refused
//!   message changed nothing;
//! * live leases are exactly the model's, pairwise disjoint, inside the search;
//! * a new lease never overlaps a done number, starts at the lowest returned number when there
//!   is one, else at the lowest fresh one, and is at most `max_len` long;
//! * a live lease overlaps done numbers only where a late result for another lease landed
//!   after it was issued (the one way the two may meet);
//! * every result counted exactly its numbers not done before, so the sum of the counts is the
//!   number of distinct done numbers, which is `tested`; and `frontier` is the first gap;
//! * the pool's own invariants (nothing below the cursor lost, returned numbers neither done
//!   nor leased).
//!
//! Double-checks and flags run against the model too: every result carries a checksum (a fixed
//! function of the range; two identities lie, each in its own way), the model keeps its own
//! open checks (selection credit, memory cap, who may take which, in which order) and flags,
//! and checks that:
//!
//! * a request gets returned numbers first, then the oldest check the compute may take (never
//!   one it already computed; the same host only when no other host could), then fresh ones;
//!   a refused compute gets `Refused`, for its results too;
//! * a check's range is entirely done, and its result never changes `tested`;
//! * pass, mismatch, majority, no majority, requeue and ignore happen exactly when the model
//!   says, and the loser of a majority (or a refuted claimer) is flagged, refused at the limit;
//! * the status counters of pending and in-flight checks match.
//!
//! Then every compute is driven to the end: all numbers done, no gap, counted once.

use std::collections::{BTreeMap, BTreeSet};

use manage::checks::CheckOutcome;
use manage::flags::Offence;
use manage::leases::LeaseLookup;
use manage::registry::{ComputeInfo, Identity};
use manage::scheduler::{
    Assignment, RequestOutcome, ResultReport, SchedError, Scheduler, SchedulerConfig,
};
use manage::sizing::{CostModel, SizingConfig};
use manage::{ComputeId, LeaseId, Millis};
use proptest::prelude::*;

/// One operation per number.
struct Linear;

impl CostModel for Linear {
    type Algorithm = ();
    fn ops(&self, _: &(), lo: u64, hi: u64) -> f64 {
        hi.saturating_sub(lo) as f64
    }
}

const MAX_LEN: u64 = 16;
/// Most open checks in the randomized runs: small, so the cap is exercised.
const CHECK_MEMORY: usize = 3;

/// The true checksum of a range (any fixed function will do).
fn truth(lo: u64, hi: u64) -> u64 {
    lo.wrapping_mul(31).wrapping_add(hi)
}

/// What a compute of this identity reports: (host 2, pid 1) and (host 1, pid 1) lie, each
/// differently, so majorities and three-way disagreements both happen.
fn checksum_of(identity: (u8, u8), lo: u64, hi: u64) -> u64 {
    match identity {
        (2, 1) => truth(lo, hi) ^ 1,
        (1, 1) => truth(lo, hi) ^ 2,
        _ => truth(lo, hi),
    }
}

#[derive(Clone, Debug)]
enum Action {
    /// A hello; host and pid small so reconnects with the same identity happen.
    Join {
        host: u8,
        pid: u8,
        benchmark: u64,
    },
    Request {
        who: usize,
    },
    Progress {
        who: usize,
        fraction: u8,
        any_lease: Option<u64>,
    },
    /// A result: for the compute's live lease, or (`late`) the latest ended lease of its
    /// identity, or (`any_lease`) any id; `fraction` of the range, `skew` moves lo or hi off.
    Result {
        who: usize,
        fraction: u8,
        late: bool,
        any_lease: Option<u64>,
        skew: i8,
        elapsed: u16,
    },
    Leave {
        who: usize,
    },
    /// The verifier refutes a claim of this compute (connected or not).
    RefuteClaim {
        who: usize,
    },
    Advance {
        ms: u16,
    },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        2 => (0..3u8, 0..2u8, prop_oneof![Just(0u64), 1_000..200_000u64, Just(u64::MAX)])
            .prop_map(|(host, pid, benchmark)| Action::Join { host, pid, benchmark }),
        6 => any::<usize>().prop_map(|who| Action::Request { who }),
        2 => (any::<usize>(), any::<u8>(), prop::option::weighted(0.1, 0..40u64))
            .prop_map(|(who, fraction, any_lease)| Action::Progress { who, fraction, any_lease }),
        6 => (
            any::<usize>(),
            // Half of the results are full (255/255 of the range).
            prop_oneof![Just(255u8), any::<u8>()],
            prop::bool::weighted(0.25),
            prop::option::weighted(0.1, 0..40u64),
            prop_oneof![8 => Just(0i8), 1 => -2..3i8],
            any::<u16>(),
        )
            .prop_map(|(who, fraction, late, any_lease, skew, elapsed)| Action::Result {
                who,
                fraction,
                late,
                any_lease,
                skew,
                elapsed,
            }),
        1 => any::<usize>().prop_map(|who| Action::Leave { who }),
        1 => any::<usize>().prop_map(|who| Action::RefuteClaim { who }),
        2 => (0..300u16).prop_map(|ms| Action::Advance { ms }),
    ]
}

#[derive(Clone, Debug)]
struct ModelLease {
    compute: ComputeId,
    identity: (u8, u8),
    lo: u64,
    hi: u64,
    progress: u64,
    deadline: Millis,
    issued_step: usize,
    live: bool,
    /// The model check it is for, when it is a check lease.
    check: Option<u64>,
}

#[derive(Clone, Debug)]
struct ModelCheck {
    lo: u64,
    hi: u64,
    /// (compute, identity, checksum), one or two.
    opinions: Vec<(ComputeId, (u8, u8), u64)>,
    lease: Option<LeaseId>,
}

#[derive(Clone, Debug)]
struct ModelCompute {
    id: ComputeId,
    identity: (u8, u8),
    connected: bool,
    lease: Option<LeaseId>,
}

struct Sim {
    scheduler: Scheduler<Linear>,
    start: u64,
    end: u64,
    now: Millis,
    step: usize,
    computes: Vec<ModelCompute>,
    leases: BTreeMap<LeaseId, ModelLease>,
    /// Ended leases the scheduler still remembers (it forgets the lowest ids first).
    remembered: BTreeSet<LeaseId>,
    memory: usize,
    /// Per number of the search: None, or Some((step, by a late result)) of its first result.
    done: Vec<Option<(usize, bool)>>,
    /// Everything below was handed out at least once.
    cursor: u64,
    counted: u64,
    /// Selection credit in millionths, and the share.
    credit: u64,
    share_ppm: u64,
    checks: BTreeMap<u64, ModelCheck>,
    next_check: u64,
    flags: BTreeMap<(u8, u8), u32>,
    refuse_after: u32,
    check_memory: usize,
    /// Checks that ended each way, to see that the simulation exercises them.
    tally: BTreeMap<&'static str, u64>,
}

impl Sim {
    fn new(start: u64, size: u64, memory: usize) -> Sim {
        Sim::with_checks(start, size, memory, 0.0, 3, CHECK_MEMORY)
    }

    fn with_checks(
        start: u64,
        size: u64,
        memory: usize,
        share: f64,
        refuse_after: u32,
        check_memory: usize,
    ) -> Sim {
        let until = start + size - 1;
        let mut config = SchedulerConfig::new(start, until);
        config.sizing = SizingConfig {
            target_ms: 80,
            max_len: MAX_LEN,
            min_elapsed_ms: 1,
            ..SizingConfig::default()
        };
        config.deadline_floor_ms = 50;
        config.deadline_ceiling_ms = 1_000;
        config.ended_lease_memory = memory;
        config.double_check = share;
        config.check_memory = check_memory;
        config.refuse_after = refuse_after;
        Sim {
            scheduler: Scheduler::new(config, Linear).unwrap(),
            start,
            end: until + 1,
            now: 0,
            step: 0,
            computes: Vec::new(),
            leases: BTreeMap::new(),
            remembered: BTreeSet::new(),
            memory,
            done: vec![None; size as usize],
            cursor: start,
            counted: 0,
            credit: 0,
            share_ppm: (share * 1e6).round() as u64,
            checks: BTreeMap::new(),
            next_check: 0,
            flags: BTreeMap::new(),
            refuse_after,
            check_memory,
            tally: BTreeMap::new(),
        }
    }

    fn refused(&self, identity: (u8, u8)) -> bool {
        self.refuse_after > 0
            && self.flags.get(&identity).copied().unwrap_or(0) >= self.refuse_after
    }

    fn flag(&mut self, identity: (u8, u8)) -> u32 {
        let flags = self.flags.entry(identity).or_insert(0);
        *flags += 1;
        *flags
    }

    /// The model's choice of check for `compute`, as in the scheduler's docs.
    fn expected_check(&self, compute: &ModelCompute, others_available: bool) -> Option<u64> {
        let record = self.scheduler.registry().get(compute.id)?;
        if record.rate.probing() && others_available {
            return None;
        }
        let hosts: BTreeSet<u8> = self
            .computes
            .iter()
            .filter(|c| c.connected && !self.refused(c.identity))
            .map(|c| c.identity.0)
            .collect();
        self.checks
            .iter()
            .filter(|(_, check)| check.lease.is_none())
            .find(|(_, check)| {
                if check.opinions.iter().any(|o| o.1 == compute.identity) {
                    return false;
                }
                let seen = |host: u8| check.opinions.iter().any(|o| o.1 .0 == host);
                !seen(compute.identity.0) || hosts.iter().all(|&h| seen(h))
            })
            .map(|(&id, _)| id)
    }

    /// Opens a model check; returns the range dropped for room, as the scheduler documents.
    fn open_check(
        &mut self,
        lo: u64,
        hi: u64,
        first: (ComputeId, (u8, u8), u64),
    ) -> Option<(u64, u64)> {
        let mut dropped = None;
        if self.checks.len() >= self.check_memory {
            let victim = self
                .checks
                .iter()
                .find(|(_, c)| c.lease.is_none() && c.opinions.len() == 1)
                .or_else(|| self.checks.iter().find(|(_, c)| c.lease.is_none()))
                .map(|(&id, _)| id);
            match victim {
                Some(id) => {
                    let check = self.checks.remove(&id).unwrap();
                    dropped = Some((check.lo, check.hi));
                }
                None => return Some((lo, hi)),
            }
        }
        self.checks.insert(
            self.next_check,
            ModelCheck {
                lo,
                hi,
                opinions: vec![first],
                lease: None,
            },
        );
        self.next_check += 1;
        dropped
    }

    fn requeue(&mut self, lease: LeaseId) {
        if let Some(check) = self.leases[&lease].check {
            if let Some(check) = self.checks.get_mut(&check) {
                check.lease = None;
            }
        }
    }

    fn is_done(&self, n: u64) -> bool {
        self.done[(n - self.start) as usize].is_some()
    }

    /// Per number of the search: inside a live lease.
    fn leased_mask(&self) -> Vec<bool> {
        let mut mask = vec![false; self.done.len()];
        for lease in self.leases.values().filter(|l| l.live && l.check.is_none()) {
            for n in lease.lo..lease.hi {
                mask[(n - self.start) as usize] = true;
            }
        }
        mask
    }

    fn end_lease(&mut self, id: LeaseId) {
        let lease = self.leases.get_mut(&id).unwrap();
        assert!(lease.live);
        lease.live = false;
        let compute = lease.compute;
        self.requeue(id);
        if let Some(c) = self.computes.iter_mut().find(|c| c.id == compute) {
            if c.lease == Some(id) {
                c.lease = None;
            }
        }
        if self.memory > 0 {
            while self.remembered.len() >= self.memory {
                self.remembered.pop_first();
            }
            self.remembered.insert(id);
        }
    }

    /// The compute a `who` index names: any compute ever joined, connected or not, plus one
    /// id that never existed.
    fn pick(&self, who: usize) -> ComputeId {
        let choices = self.computes.len() + 1;
        match self.computes.get(who % choices) {
            Some(c) => c.id,
            None => ComputeId(10_000),
        }
    }

    fn model_compute(&self, id: ComputeId) -> Option<&ModelCompute> {
        self.computes.iter().find(|c| c.id == id && c.connected)
    }

    fn run(&mut self, action: &Action) -> Result<(), TestCaseError> {
        self.step += 1;
        self.now += 1;
        let now = self.now;
        match *action {
            Action::Join {
                host,
                pid,
                benchmark,
            } => {
                let info = ComputeInfo {
                    identity: Identity {
                        host: format!("host{host}"),
                        pid: pid.into(),
                    },
                    peer: "peer".into(),
                    threads: 1,
                    algorithm: (),
                    ops_per_sec: benchmark,
                };
                let id = self.scheduler.join(info, now);
                prop_assert!(self.computes.iter().all(|c| c.id < id), "ids increase");
                self.computes.push(ModelCompute {
                    id,
                    identity: (host, pid),
                    connected: true,
                    lease: None,
                });
            }
            Action::Request { who } => {
                let id = self.pick(who);
                let got = self.scheduler.request(id, now);
                let Some(compute) = self.model_compute(id).cloned() else {
                    prop_assert_eq!(got, Err(SchedError::UnknownCompute(id)));
                    return Ok(());
                };
                if self.refused(compute.identity) {
                    let flags = self.flags[&compute.identity];
                    prop_assert_eq!(got, Err(SchedError::Refused { compute: id, flags }));
                    return Ok(());
                }
                if let Some(lease) = compute.lease {
                    prop_assert_eq!(got, Err(SchedError::LeaseOutstanding(lease)));
                    return Ok(());
                }
                let leased = self.leased_mask();
                let lowest_returned = (self.start..self.cursor)
                    .find(|&n| !self.is_done(n) && !leased[(n - self.start) as usize]);
                let lowest_fresh = (self.cursor..self.end).find(|&n| !self.is_done(n));
                let expected_check = match lowest_returned {
                    Some(_) => None,
                    None => self.expected_check(&compute, lowest_fresh.is_some()),
                };
                match (got, expected_check, lowest_returned.or(lowest_fresh)) {
                    (Ok(RequestOutcome::Assign(work)), Some(check), _) => {
                        prop_assert!(work.check, "a check was due: {:?}", work);
                        let model = &self.checks[&check];
                        prop_assert_eq!((work.lo, work.hi), (model.lo, model.hi));
                        for n in work.lo..work.hi {
                            prop_assert!(self.is_done(n), "check of {} which is not done", n);
                        }
                        prop_assert!(self.leases.keys().all(|&id| id < work.lease));
                        self.checks.get_mut(&check).unwrap().lease = Some(work.lease);
                        self.new_lease(&compute, &work, Some(check));
                    }
                    (Ok(RequestOutcome::Wait { .. }), None, None) => {}
                    (Ok(RequestOutcome::Assign(work)), None, Some(expected_lo)) => {
                        prop_assert!(!work.check);
                        self.check_assignment(&work, expected_lo, compute.id)?;
                        self.cursor = self.cursor.max(work.hi);
                        self.new_lease(&compute, &work, None);
                    }
                    (got, check, expected) => {
                        prop_assert!(
                            false,
                            "request got {:?}, expected check {:?} or lo {:?}",
                            got,
                            check,
                            expected
                        )
                    }
                }
            }
            Action::Progress {
                who,
                fraction,
                any_lease,
            } => {
                let id = self.pick(who);
                let own = self.model_compute(id).and_then(|c| c.lease);
                let lease_id = match any_lease {
                    Some(any) => LeaseId(any),
                    None => own.unwrap_or(LeaseId(0)),
                };
                let (lo, hi) = self.leases.get(&lease_id).map_or((0, 40), |l| (l.lo, l.hi));
                let done = lo + (hi - lo) * u64::from(fraction) / 255;
                let got = self.scheduler.progress(id, lease_id, done, now);
                let expected = self.expected_progress(id, lease_id, done);
                prop_assert_eq!(got.is_ok(), expected, "progress {:?}", got);
                if expected {
                    self.leases.get_mut(&lease_id).unwrap().progress = done;
                }
            }
            Action::Result {
                who,
                fraction,
                late,
                any_lease,
                skew,
                elapsed,
            } => {
                let id = self.pick(who);
                let identity = self
                    .computes
                    .iter()
                    .find(|c| c.id == id)
                    .map(|c| c.identity);
                let own_live = self.model_compute(id).and_then(|c| c.lease);
                let own_ended = self
                    .leases
                    .iter()
                    .rev()
                    .find(|(_, l)| !l.live && Some(l.identity) == identity)
                    .map(|(&lease, _)| lease);
                let lease_id = match any_lease {
                    Some(any) => LeaseId(any),
                    None if late => own_ended.or(own_live).unwrap_or(LeaseId(0)),
                    None => own_live.or(own_ended).unwrap_or(LeaseId(0)),
                };
                let (lease_lo, lease_hi) =
                    self.leases.get(&lease_id).map_or((1, 20), |l| (l.lo, l.hi));
                let mut lo = lease_lo;
                let mut hi = lease_lo + (lease_hi - lease_lo) * u64::from(fraction) / 255;
                match skew {
                    -2 => lo = lo.saturating_sub(1),
                    -1 => lo += 1,
                    1 => hi += 1,
                    2 => hi = lo.saturating_sub(1),
                    _ => {}
                }
                let claims: Vec<u64> = if hi > lo { vec![lo] } else { Vec::new() };
                self.result(id, lease_id, lo, hi, elapsed.into(), &claims)?;
            }
            Action::Leave { who } => {
                let id = self.pick(who);
                let got = self.scheduler.leave(id, now);
                match self.model_compute(id).cloned() {
                    None => prop_assert_eq!(got, Err(SchedError::UnknownCompute(id))),
                    Some(compute) => {
                        let released: Vec<LeaseId> = got.unwrap().iter().map(|l| l.id).collect();
                        prop_assert_eq!(&released, &compute.lease.into_iter().collect::<Vec<_>>());
                        for lease in released {
                            self.end_lease(lease);
                        }
                        self.computes
                            .iter_mut()
                            .find(|c| c.id == id)
                            .unwrap()
                            .connected = false;
                    }
                }
            }
            Action::RefuteClaim { who } => {
                let id = self.pick(who);
                self.refute(id)?;
            }
            Action::Advance { ms } => {
                self.now += Millis::from(ms);
                self.expire()?;
            }
        }
        self.check()
    }

    fn new_lease(&mut self, compute: &ModelCompute, work: &Assignment, check: Option<u64>) {
        self.leases.insert(
            work.lease,
            ModelLease {
                compute: compute.id,
                identity: compute.identity,
                lo: work.lo,
                hi: work.hi,
                progress: work.lo,
                deadline: work.deadline_ms,
                issued_step: self.step,
                live: true,
                check,
            },
        );
        let c = self
            .computes
            .iter_mut()
            .find(|c| c.id == compute.id)
            .unwrap();
        c.lease = Some(work.lease);
    }

    fn refute(&mut self, id: ComputeId) -> Result<(), TestCaseError> {
        let got = self.scheduler.claim_refuted(id, 6, self.now);
        let identity = match self.model_compute(id) {
            Some(c) => Some(c.identity),
            None => self
                .leases
                .iter()
                .find(|(lease, l)| l.compute == id && (l.live || self.remembered.contains(lease)))
                .map(|(_, l)| l.identity),
        };
        match (got, identity) {
            (None, None) => {}
            (Some(flagged), Some(identity)) => {
                let flags = self.flag(identity);
                prop_assert_eq!(flagged.flags, flags);
                prop_assert_eq!(flagged.refused, self.refused(identity));
                prop_assert_eq!(flagged.offence, Offence::FalseClaim { n: 6 });
            }
            (got, identity) => prop_assert!(false, "refuted {:?}, expected {:?}", got, identity),
        }
        Ok(())
    }

    fn expire(&mut self) -> Result<(), TestCaseError> {
        let now = self.now;
        let expired: BTreeSet<LeaseId> =
            self.scheduler.expire(now).iter().map(|e| e.lease).collect();
        let expected: BTreeSet<LeaseId> = self
            .leases
            .iter()
            .filter(|(_, l)| l.live && l.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        prop_assert_eq!(&expired, &expected);
        for id in expired {
            self.end_lease(id);
        }
        Ok(())
    }

    fn check_assignment(
        &self,
        work: &Assignment,
        expected_lo: u64,
        compute: ComputeId,
    ) -> Result<(), TestCaseError> {
        prop_assert_eq!(work.lo, expected_lo, "returned numbers first, lowest first");
        prop_assert!(work.lo < work.hi && work.hi <= self.end);
        prop_assert!(work.hi - work.lo <= MAX_LEN);
        prop_assert!(work.deadline_ms > self.now);
        prop_assert!(
            !self.leases.contains_key(&work.lease),
            "lease ids are never reused"
        );
        prop_assert!(
            self.leases.keys().all(|&id| id < work.lease),
            "lease ids increase"
        );
        let leased = self.leased_mask();
        for n in work.lo..work.hi {
            prop_assert!(!self.is_done(n), "{} is done but leased to {}", n, compute);
            prop_assert!(!leased[(n - self.start) as usize], "{} is leased twice", n);
        }
        Ok(())
    }

    fn may_report(&self, compute: ComputeId, lease: &ModelLease) -> bool {
        lease.compute == compute
            || self
                .model_compute(compute)
                .is_some_and(|c| c.identity == lease.identity)
    }

    /// None when the lease is unknown to the scheduler; else whether `compute` may report it.
    fn known_lease(&self, compute: ComputeId, lease: LeaseId) -> Option<(&ModelLease, bool)> {
        let model = self.leases.get(&lease)?;
        if !model.live && !self.remembered.contains(&lease) {
            return None;
        }
        Some((model, self.may_report(compute, model)))
    }

    fn expected_progress(&self, compute: ComputeId, lease: LeaseId, done: u64) -> bool {
        if self.model_compute(compute).is_none() {
            return false;
        }
        match self.known_lease(compute, lease) {
            Some((l, _)) if l.live => {
                l.compute == compute && l.lo <= done && done <= l.hi && done >= l.progress
            }
            _ => false,
        }
    }

    fn result(
        &mut self,
        compute: ComputeId,
        lease: LeaseId,
        lo: u64,
        hi: u64,
        elapsed: Millis,
        claims: &[u64],
    ) -> Result<(), TestCaseError> {
        let now = self.now;
        let before = (
            self.scheduler.pool().tested(),
            self.scheduler.leases().live_count(),
        );
        let reporter = self
            .computes
            .iter()
            .find(|c| c.id == compute)
            .map(|c| c.identity);
        let checksum = reporter.map_or(0, |identity| checksum_of(identity, lo, hi));
        let got = self.scheduler.result(
            &ResultReport {
                compute,
                lease,
                lo,
                hi,
                elapsed_ms: elapsed,
                checksum,
                perfect: claims,
            },
            now,
        );
        if let Some(c) = self.model_compute(compute) {
            if self.refused(c.identity) {
                let flags = self.flags[&c.identity];
                prop_assert_eq!(got, Err(SchedError::Refused { compute, flags }));
                let after = (
                    self.scheduler.pool().tested(),
                    self.scheduler.leases().live_count(),
                );
                prop_assert_eq!(before, after, "a refused result changed nothing");
                return Ok(());
            }
        }
        let valid = self.model_compute(compute).is_some()
            && match self.known_lease(compute, lease) {
                Some((l, allowed)) => allowed && lo == l.lo && lo <= hi && hi <= l.hi,
                None => false,
            };
        prop_assert_eq!(got.is_ok(), valid, "result {:?}", got);
        let Ok(outcome) = got else {
            let after = (
                self.scheduler.pool().tested(),
                self.scheduler.leases().live_count(),
            );
            prop_assert_eq!(before, after, "a refused result changed nothing");
            return Ok(());
        };
        let held = self.leases[&lease].clone();
        let late = !held.live;
        prop_assert_eq!(outcome.late, late);
        let full = hi == held.hi && hi > lo;
        if let Some(check) = held.check {
            prop_assert_eq!(outcome.newly_counted, 0, "a check counts nothing");
            prop_assert_eq!(outcome.returned, None);
            prop_assert_eq!(
                self.scheduler.pool().tested(),
                before.0,
                "a check never changes tested"
            );
            if late {
                prop_assert_eq!(outcome.check, Some(CheckOutcome::Ignored));
                self.tally("ignored");
                return Ok(());
            }
            self.end_lease(lease);
            if !full {
                prop_assert_eq!(outcome.check, Some(CheckOutcome::Requeued));
                self.tally("requeued");
                return Ok(());
            }
            // In-flight checks are never dropped.
            let mut model = self.checks.remove(&check).unwrap();
            let mine = (compute, held.identity, checksum);
            let mut loser = None;
            match (model.opinions.as_slice(), &outcome.check) {
                ([first], Some(CheckOutcome::Passed { first: who })) if first.2 == checksum => {
                    prop_assert_eq!(*who, first.0);
                    self.tally("passed");
                }
                ([first], Some(CheckOutcome::Mismatch { first: opinion }))
                    if first.2 != checksum =>
                {
                    prop_assert_eq!((opinion.compute, opinion.checksum), (first.0, first.2));
                    model.opinions.push(mine);
                    self.checks.insert(check, model);
                    self.tally("mismatch");
                }
                ([a, b], Some(CheckOutcome::Decided { wrong, right })) => {
                    let (w, r) = if checksum == a.2 { (b, a) } else { (a, b) };
                    prop_assert!(checksum == a.2 || checksum == b.2);
                    prop_assert_eq!((wrong.compute, wrong.checksum), (w.0, w.2));
                    prop_assert_eq!(right.compute, r.0);
                    loser = Some(w.1);
                    self.tally("decided");
                }
                ([a, b], Some(CheckOutcome::NoMajority)) => {
                    prop_assert!(checksum != a.2 && checksum != b.2);
                    self.tally("no majority");
                }
                (opinions, got) => prop_assert!(
                    false,
                    "{:?} against {:?} gave {:?}",
                    checksum,
                    opinions,
                    got
                ),
            }
            match (loser, outcome.flagged) {
                (None, None) => {}
                (Some(identity), Some(flagged)) => {
                    let flags = self.flag(identity);
                    prop_assert_eq!(flagged.flags, flags);
                    prop_assert_eq!(flagged.refused, self.refused(identity));
                }
                (loser, flagged) => {
                    prop_assert!(false, "flagged {:?}, expected {:?}", flagged, loser)
                }
            }
            return Ok(());
        }
        let expected_new = (lo..hi).filter(|&n| !self.is_done(n)).count() as u64;
        prop_assert_eq!(
            outcome.newly_counted,
            expected_new,
            "counts only what was not done"
        );
        for n in lo..hi {
            let slot = &mut self.done[(n - self.start) as usize];
            if slot.is_none() {
                *slot = Some((self.step, late));
            }
        }
        self.counted += outcome.newly_counted;
        if !late {
            self.end_lease(lease);
        }
        let mut selected = false;
        if full && expected_new > 0 && self.share_ppm > 0 {
            self.credit += self.share_ppm;
            if self.credit >= 1_000_000 {
                self.credit -= 1_000_000;
                selected = true;
            }
        }
        if selected {
            let dropped = self.open_check(lo, hi, (compute, held.identity, checksum));
            prop_assert_eq!(outcome.check, Some(CheckOutcome::Selected { dropped }));
            self.tally("selected");
        } else {
            prop_assert_eq!(outcome.check, None);
        }
        prop_assert_eq!(outcome.flagged, None);
        Ok(())
    }

    fn tally(&mut self, what: &'static str) {
        *self.tally.entry(what).or_insert(0) += 1;
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let scheduler = &self.scheduler;
        scheduler
            .pool()
            .check_invariants()
            .map_err(TestCaseError::fail)?;
        // Live leases: exactly the model's, disjoint, inside the search.
        let live: Vec<_> = scheduler
            .leases()
            .iter_live()
            .map(|l| (l.id, l.lo, l.hi))
            .collect();
        let model_live: Vec<_> = self
            .leases
            .iter()
            .filter(|(_, l)| l.live)
            .map(|(&id, l)| (id, l.lo, l.hi))
            .collect();
        prop_assert_eq!(&live, &model_live);
        let mut spans: Vec<_> = scheduler
            .leases()
            .iter_live()
            .filter(|l| !l.check)
            .map(|l| (l.lo, l.hi))
            .collect();
        spans.sort_unstable();
        for pair in spans.windows(2) {
            prop_assert!(pair[0].1 <= pair[1].0, "live leases overlap: {:?}", pair);
        }
        // Done numbers inside a live lease came from a late result after it was issued.
        for lease in self.leases.values().filter(|l| l.live) {
            if lease.check.is_some() {
                for n in lease.lo..lease.hi {
                    prop_assert!(
                        self.is_done(n),
                        "a check lease over {} which is not done",
                        n
                    );
                }
                continue;
            }
            for n in lease.lo..lease.hi {
                if let Some((step, by_late)) = self.done[(n - self.start) as usize] {
                    prop_assert!(
                        by_late && step > lease.issued_step,
                        "{} done inside {:?}",
                        n,
                        lease
                    );
                }
            }
        }
        // Forgotten and remembered leases.
        for (&id, lease) in &self.leases {
            let known = match scheduler.leases().lookup(id) {
                LeaseLookup::Live(_) => lease.live,
                LeaseLookup::Ended(_) => !lease.live && self.remembered.contains(&id),
                LeaseLookup::Unknown => !lease.live && !self.remembered.contains(&id),
            };
            prop_assert!(known, "{} is misremembered", id);
        }
        // Counting.
        let distinct = self.done.iter().filter(|d| d.is_some()).count() as u64;
        prop_assert_eq!(scheduler.pool().tested(), distinct);
        prop_assert_eq!(self.counted, distinct, "no number counted twice");
        let frontier = (self.start..self.end)
            .find(|&n| !self.is_done(n))
            .unwrap_or(self.end);
        prop_assert_eq!(scheduler.pool().frontier(), frontier);
        let status = scheduler.status(self.now);
        let row_total: u64 = status.computes.iter().map(|r| r.tested).sum();
        prop_assert!(row_total <= status.tested);
        // Checks: the model's waiting and in-flight ones, in order; flags per row.
        let open: Vec<_> = scheduler.checks().open_checks().collect();
        let model_open: Vec<_> = self
            .checks
            .values()
            .map(|c| (c.lo, c.hi, c.lease.is_some()))
            .collect();
        prop_assert_eq!(open, model_open);
        let in_flight = self.checks.values().filter(|c| c.lease.is_some()).count();
        prop_assert_eq!(status.checks.in_flight, in_flight);
        prop_assert_eq!(status.checks.pending, self.checks.len() - in_flight);
        for row in &status.computes {
            let identity = self
                .computes
                .iter()
                .find(|c| c.id == row.id)
                .unwrap()
                .identity;
            prop_assert_eq!(row.flags, self.flags.get(&identity).copied().unwrap_or(0));
        }
        Ok(())
    }

    /// Runs every compute (joining one if none is left) until the search is done.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..10_000 {
            if self.scheduler.is_done() {
                break;
            }
            // The reactor closes refused computes.
            let refused: Vec<usize> = (0..self.computes.len())
                .filter(|&i| self.computes[i].connected && self.refused(self.computes[i].identity))
                .collect();
            for who in refused {
                self.run(&Action::Leave { who })?;
            }
            if !self.computes.iter().any(|c| c.connected) {
                self.run(&Action::Join {
                    host: 9,
                    pid: 9,
                    benchmark: 50_000,
                })?;
            }
            let connected: Vec<ModelCompute> = self
                .computes
                .iter()
                .filter(|c| c.connected)
                .cloned()
                .collect();
            for compute in connected {
                let lease = self
                    .computes
                    .iter()
                    .find(|c| c.id == compute.id)
                    .unwrap()
                    .lease;
                match lease {
                    Some(lease) => {
                        let (lo, hi) = (self.leases[&lease].lo, self.leases[&lease].hi);
                        self.step += 1;
                        self.result(compute.id, lease, lo, hi, 10, &[])?;
                        if !self
                            .computes
                            .iter()
                            .any(|c| c.id == compute.id && c.connected)
                        {
                            continue;
                        }
                    }
                    None => {
                        let who = self
                            .computes
                            .iter()
                            .position(|c| c.id == compute.id)
                            .unwrap();
                        self.run(&Action::Request { who })?;
                    }
                }
                self.check()?;
            }
            // Time moves on a little, so leases taken in this round are not expired before
            // their results arrive in the next.
            self.now += 1;
            self.expire()?;
        }
        let size = self.end - self.start;
        prop_assert!(self.scheduler.is_done());
        prop_assert_eq!(self.scheduler.pool().tested(), size);
        prop_assert_eq!(self.counted, size, "the counts add up to the search, once");
        prop_assert_eq!(self.scheduler.pool().frontier(), self.end);
        let done: Vec<_> = self.scheduler.pool().done().iter().collect();
        prop_assert_eq!(done, vec![(self.start, self.end)]);
        let status = self.scheduler.status(self.now);
        prop_assert!(status.done && status.tested == size && status.frontier == status.until + 1);
        Ok(())
    }

    /// After the search: every connected compute keeps asking and answering until no check is
    /// left that one of them may take. Nothing it does may change what is done.
    fn drain_checks(&mut self) -> Result<(), TestCaseError> {
        let done: Vec<_> = self.scheduler.pool().done().iter().collect();
        for _ in 0..1_000 {
            let mut busy = false;
            for who in 0..self.computes.len() {
                let compute = self.computes[who].clone();
                if !compute.connected {
                    continue;
                }
                if self.refused(compute.identity) {
                    self.run(&Action::Leave { who })?;
                    continue;
                }
                match compute.lease {
                    Some(lease) => {
                        let (lo, hi) = (self.leases[&lease].lo, self.leases[&lease].hi);
                        self.step += 1;
                        self.result(compute.id, lease, lo, hi, 10, &[])?;
                        self.check()?;
                        busy = true;
                    }
                    None => self.run(&Action::Request { who })?,
                }
            }
            self.now += 1;
            self.expire()?;
            if !busy && self.checks.values().all(|c| c.lease.is_none()) {
                break;
            }
        }
        let after: Vec<_> = self.scheduler.pool().done().iter().collect();
        prop_assert_eq!(done, after, "checks changed what is done");
        prop_assert_eq!(self.counted, self.end - self.start);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn scheduler_against_the_model(
        start in prop_oneof![Just(1u64), 2..1_000u64, Just(u64::MAX - 300)],
        size in 1..300u64,
        memory in prop_oneof![Just(0usize), 1..4usize, Just(100_000)],
        share in prop_oneof![Just(0.0), Just(0.3), Just(1.0)],
        refuse_after in 0..4u32,
        actions in prop::collection::vec(action(), 1..150),
    ) {
        let mut sim = Sim::with_checks(start, size, memory, share, refuse_after, CHECK_MEMORY);
        for action in &actions {
            sim.run(action)?;
        }
        sim.finish()?;
        sim.drain_checks()?;
    }
}

/// A compute's lease expires and is reissued in two pieces to two slower computes; its late
/// result then covers all of one piece and part of the other: no double count, nothing skipped.
#[test]
fn late_result_over_two_reissued_leases() {
    let mut sim = Sim::new(1, 64, 100);
    let join = |host, benchmark| Action::Join {
        host,
        pid: 0,
        benchmark,
    };
    sim.run(&join(0, 1_000_000)).unwrap();
    sim.run(&join(1, 0)).unwrap();
    sim.run(&join(2, 0)).unwrap();
    sim.run(&Action::Request { who: 0 }).unwrap();
    let first = *sim.leases.keys().next().unwrap();
    assert_eq!((sim.leases[&first].lo, sim.leases[&first].hi), (1, 17));
    sim.run(&Action::Advance { ms: 300 }).unwrap();
    assert!(!sim.leases[&first].live);
    // The slow computes probe 10 numbers at a time (1e3 ops/s for 10 ms).
    sim.run(&Action::Request { who: 1 }).unwrap();
    sim.run(&Action::Request { who: 2 }).unwrap();
    let pieces: Vec<_> = sim
        .leases
        .values()
        .filter(|l| l.live)
        .map(|l| (l.lo, l.hi))
        .collect();
    assert_eq!(pieces, [(1, 11), (11, 17)]);
    let id = sim.computes[0].id;
    sim.step += 1;
    sim.result(id, first, 1, 14, 250, &[]).unwrap();
    sim.check().unwrap();
    assert_eq!(sim.counted, 13);
    // The reissued pieces finish: only [14, 17) is new.
    let later: Vec<_> = sim
        .leases
        .iter()
        .filter(|(_, l)| l.live)
        .map(|(&id, l)| (id, l.compute, l.lo, l.hi))
        .collect();
    for (lease, compute, lo, hi) in later {
        sim.step += 1;
        sim.result(compute, lease, lo, hi, 10, &[]).unwrap();
    }
    sim.check().unwrap();
    assert_eq!(sim.counted, 16);
    sim.finish().unwrap();
}

/// Every result is checked, two of four computes lie (differently): the checks pass, find
/// mismatches, settle them by majority or find none, and the liars end up refused.
#[test]
fn checks_catch_the_liars() {
    let mut sim = Sim::with_checks(1, 600, 100_000, 1.0, 2, 10_000);
    for (host, pid) in [(0, 0), (2, 1), (1, 1), (3, 0), (0, 1)] {
        sim.run(&Action::Join {
            host,
            pid,
            benchmark: 50_000,
        })
        .unwrap();
    }
    sim.finish().unwrap();
    sim.drain_checks().unwrap();
    for what in ["selected", "passed", "mismatch", "decided"] {
        assert!(sim.tally.contains_key(what), "no {what}: {:?}", sim.tally);
    }
    assert!(
        sim.refused((2, 1)) && sim.refused((1, 1)),
        "{:?}",
        sim.flags
    );
    assert!(!sim.refused((0, 0)) && !sim.refused((3, 0)) && !sim.refused((0, 1)));
    let status = sim.scheduler.status(sim.now);
    assert_eq!(status.tested, 600);
    assert!(status
        .flagged
        .iter()
        .all(|row| row.host == "host2" || row.host == "host1"));
    assert!(status.checks.mismatches >= status.checks.decided);
    assert!(!status.mismatches.is_empty());
}
