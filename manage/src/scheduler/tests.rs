//! The scheduler's unit tests: one behaviour each, on a small cost model.

use super::*;
use crate::checks::Verdict;
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
        .result(
            &ResultReport {
                compute,
                lease: work.lease,
                lo: work.lo,
                hi: upto,
                elapsed_ms: 1000,
                checksum: 0,
                perfect: &[],
            },
            now,
        )
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
            .result(
                &ResultReport {
                    compute,
                    lease: work.lease,
                    lo: work.lo,
                    hi: work.hi,
                    elapsed_ms: elapsed,
                    checksum: 0,
                    perfect: &[],
                },
                now,
            )
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
        .result(
            &ResultReport {
                compute,
                lease: probe.lease,
                lo: probe.lo,
                hi: probe.hi,
                elapsed_ms: 1875,
                checksum: 0,
                perfect: &[],
            },
            2875,
        )
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
            scheduler.result(
                &ResultReport {
                    compute: b,
                    lease,
                    lo,
                    hi,
                    elapsed_ms: 5,
                    checksum: 0,
                    perfect: &[],
                },
                5,
            ),
            SchedError::LeaseNotYours { lease, owner: a },
        ),
        (
            scheduler.result(
                &ResultReport {
                    compute: a,
                    lease: LeaseId(0),
                    lo,
                    hi,
                    elapsed_ms: 5,
                    checksum: 0,
                    perfect: &[],
                },
                5,
            ),
            SchedError::UnknownLease(LeaseId(0)),
        ),
        (
            scheduler.result(
                &ResultReport {
                    compute: a,
                    lease,
                    lo: lo + 1,
                    hi,
                    elapsed_ms: 5,
                    checksum: 0,
                    perfect: &[],
                },
                5,
            ),
            SchedError::RangeOutsideLease {
                lease,
                lo: lo + 1,
                hi,
                lease_lo: lo,
                lease_hi: hi,
            },
        ),
        (
            scheduler.result(
                &ResultReport {
                    compute: a,
                    lease,
                    lo,
                    hi: hi + 1,
                    elapsed_ms: 5,
                    checksum: 0,
                    perfect: &[],
                },
                5,
            ),
            SchedError::RangeOutsideLease {
                lease,
                lo,
                hi: hi + 1,
                lease_lo: lo,
                lease_hi: hi,
            },
        ),
        (
            scheduler.result(
                &ResultReport {
                    compute: a,
                    lease,
                    lo,
                    hi: lo + 5,
                    elapsed_ms: 5,
                    checksum: 0,
                    perfect: &[lo + 5],
                },
                5,
            ),
            SchedError::ClaimOutsideRange { n: lo + 5 },
        ),
        (
            scheduler.result(
                &ResultReport {
                    compute: a,
                    lease,
                    lo,
                    hi: lo + 9,
                    elapsed_ms: 5,
                    checksum: 0,
                    perfect: &[lo + 3, lo + 3],
                },
                5,
            ),
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
        .result(
            &ResultReport {
                compute: slow,
                lease: work.lease,
                lo: work.lo,
                hi: work.hi,
                elapsed_ms: 40_000,
                checksum: 7,
                perfect: &[],
            },
            40_000,
        )
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
        .result(
            &ResultReport {
                compute: slow,
                lease: work.lease,
                lo: work.lo,
                hi: work.hi,
                elapsed_ms: 40_000,
                checksum: 7,
                perfect: &[],
            },
            42_000,
        )
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
        scheduler.result(
            &ResultReport {
                compute: stranger,
                lease: work.lease,
                lo: work.lo,
                hi: work.hi,
                elapsed_ms: 5,
                checksum: 0,
                perfect: &[]
            },
            30
        ),
        Err(SchedError::LeaseNotYours {
            lease: work.lease,
            owner: first
        })
    );
    let again = scheduler.join(info("h", 42, 1_000_000), 20);
    let outcome = scheduler
        .result(
            &ResultReport {
                compute: again,
                lease: work.lease,
                lo: work.lo,
                hi: work.hi,
                elapsed_ms: 5,
                checksum: 0,
                perfect: &[],
            },
            30,
        )
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
            &ResultReport {
                compute: a,
                lease: work.lease,
                lo: work.lo,
                hi: work.hi,
                elapsed_ms: 1000,
                checksum: 0,
                perfect: &[6, 28, 496, 8128],
            },
            10,
        )
        .unwrap();
    assert_eq!(claimed(&outcome), [6, 28, 496, 8128]);
    assert!(scheduler.record_perfect(PerfectFinding {
        n: 496,
        compute: a,
        host: "a".into(),
        found_ms: 11
    }));
    assert!(scheduler.record_perfect(PerfectFinding {
        n: 6,
        compute: a,
        host: "a".into(),
        found_ms: 12
    }));
    assert!(!scheduler.record_perfect(PerfectFinding {
        n: 6,
        compute: ComputeId(9),
        host: "z".into(),
        found_ms: 13
    }));
    assert!(!scheduler.record_perfect(PerfectFinding {
        n: 20_000,
        compute: a,
        host: "a".into(),
        found_ms: 13
    }));
    let found: Vec<_> = scheduler.perfect().map(|p| (p.n, p.found_ms)).collect();
    assert_eq!(found, [(6, 12), (496, 11)]);
    // A duplicate result only passes back the claims not yet recorded.
    let again = scheduler
        .result(
            &ResultReport {
                compute: a,
                lease: work.lease,
                lo: work.lo,
                hi: work.hi,
                elapsed_ms: 1000,
                checksum: 0,
                perfect: &[6, 28],
            },
            20,
        )
        .unwrap();
    assert_eq!(claimed(&again), [28]);
}

#[test]
fn snapshot_and_restore() {
    let mut scheduler = scheduler(1, 1_000_000);
    let a = scheduler.join(info("a", 1, 1_000_000), 0);
    let work = assign(&mut scheduler, a, 0);
    finish(&mut scheduler, a, &work, work.lo + 100, 10);
    scheduler.record_perfect(PerfectFinding {
        n: 28,
        compute: a,
        host: "a".into(),
        found_ms: 10,
    });
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
                &ResultReport {
                    compute,
                    lease: work.lease,
                    lo: work.lo,
                    hi: work.hi,
                    elapsed_ms: elapsed,
                    checksum: 0,
                    perfect: &[],
                },
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
            &ResultReport {
                compute,
                lease: work.lease,
                lo: work.lo,
                hi: work.hi,
                elapsed_ms: 1000,
                checksum,
                perfect: &[],
            },
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
        OutstandingLease {
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
        after.result(
            &ResultReport {
                compute: stranger,
                lease: work.lease,
                lo: work.lo,
                hi: work.hi,
                elapsed_ms: 5,
                checksum: 0,
                perfect: &[]
            },
            30
        ),
        Err(SchedError::LeaseNotYours {
            lease: work.lease,
            owner: a
        })
    );
    // ...a's own process, reconnected, may: a late result counting what is not done yet.
    let late = after
        .result(
            &ResultReport {
                compute: again,
                lease: work.lease,
                lo: work.lo,
                hi: work.hi,
                elapsed_ms: 5,
                checksum: 0,
                perfect: &[],
            },
            30,
        )
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
            &ResultReport {
                compute: b,
                lease: third.lease,
                lo: third.lo,
                hi: third.lo + (third.hi - third.lo) / 10,
                elapsed_ms: 1000,
                checksum: 0,
                perfect: &[],
            },
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
        .result(
            &ResultReport {
                compute: a,
                lease: check.lease,
                lo: check.lo,
                hi: check.lo + 1,
                elapsed_ms: 10,
                checksum: 0,
                perfect: &[],
            },
            3100,
        )
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
        scheduler.result(
            &ResultReport {
                compute: a,
                lease: work.lease,
                lo: work.lo,
                hi: work.hi,
                elapsed_ms: 5,
                checksum: 0,
                perfect: &[]
            },
            7
        ),
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

/// The numbers a result's claims are for.
fn claimed(outcome: &ResultOutcome) -> Vec<u64> {
    outcome.record.claims.iter().map(|claim| claim.n).collect()
}
