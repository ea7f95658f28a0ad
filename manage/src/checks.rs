//! Double-checking: a share of the completed ranges is computed again by another compute and
//! the checksums are compared; a disagreement is settled by a third compute, by majority.
//!
//! **Selection.** Each eligible result (a full result of an ordinary lease that counted at least
//! one number) adds `share` to a running credit, kept in millionths; when the credit reaches
//! one, that result is checked and the credit drops by one. So of the first k eligible results
//! exactly ⌊k · share⌋ are checked (share rounded to a millionth), evenly spread: with 1%, the
//! 100th, 200th, ...; with 0, none. Deterministic on purpose, for tests and logs; a compute
//! cannot see the credit, which moves with every compute's results.
//!
//! **Life of a check.**
//!
//! ```text
//!   one opinion ── handed out ──> in flight ── full result, same checksum ──> passed (closed)
//!        ^                           │    └──── full result, other checksum ─> two opinions
//!        └─ expired, compute left, ──┘                                         (mismatch recorded)
//!           partial or empty result
//!
//!   two opinions ── handed out ──> in flight ── full result ──> equals one: the other is wrong
//!                                                         └──> equals neither: no majority
//! ```
//!
//! A check that goes back keeps its place in line (oldest first).
//!
//! **Who computes it.** A compute whose identity (host and pid) is none of the check's earlier
//! opinions; and one on the same host as an earlier opinion only when no connected compute on
//! another host could take it (on a one-host cluster, another process is the best there is).
//!
//! **Memory.** At most `capacity` checks are open (waiting or in flight). Opening one more drops
//! the oldest waiting one-opinion check, else the oldest waiting check; when every open check is
//! in flight the new one is not opened. Either way [`CheckStats::dropped`] counts it. The last
//! `mismatch_memory` mismatches are kept for the status document.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::registry::Identity;
use crate::{ComputeId, LeaseId, Millis};

const MILLION: u64 = 1_000_000;

/// One compute's checksum of a range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opinion {
    /// The compute that reported it.
    pub compute: ComputeId,
    /// Its host and pid.
    pub identity: Identity,
    /// Its checksum of the whole range.
    pub checksum: u64,
}

/// Where a mismatch stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Waiting for the third computation.
    Open,
    /// The third agreed with the second: the first was wrong.
    FirstWrong,
    /// The third agreed with the first: the second was wrong.
    SecondWrong,
    /// Three different checksums: nobody was flagged.
    NoMajority,
    /// The check was dropped (memory cap) before a third computation.
    Abandoned,
}

/// Two computes disagreed about a range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The range.
    pub lo: u64,
    /// Its end (exclusive).
    pub hi: u64,
    /// The result that was checked.
    pub first: Opinion,
    /// The check that disagreed.
    pub second: Opinion,
    /// The tie-breaker, once it reported.
    pub third: Option<Opinion>,
    /// Where it stands.
    pub verdict: Verdict,
    /// When the disagreement was found.
    pub found_ms: Millis,
}

/// Counters for the status document.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckStats {
    /// Results selected for checking.
    pub selected: u64,
    /// Checks whose second computation agreed.
    pub passed: u64,
    /// Checks whose second computation disagreed.
    pub mismatches: u64,
    /// Mismatches settled by a third computation's majority.
    pub decided: u64,
    /// Mismatches where all three disagreed.
    pub no_majority: u64,
    /// Checks dropped, or never opened, because of the memory cap.
    pub dropped: u64,
    /// Open checks waiting for a compute.
    pub pending: usize,
    /// Open checks held by a live lease.
    pub in_flight: usize,
}

/// What a check result did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckOutcome {
    /// (On an ordinary result.) It was selected: another compute will compute it again.
    /// `dropped` is the range of a check dropped for room (possibly this one), to log.
    Selected {
        /// A check dropped because of the memory cap.
        dropped: Option<(u64, u64)>,
    },
    /// The same checksum as the first computation: passed.
    Passed {
        /// The compute whose result was confirmed.
        first: ComputeId,
    },
    /// A different checksum: a third computation will decide.
    Mismatch {
        /// The result it disagrees with.
        first: Opinion,
    },
    /// The third computation agreed with one of two: the other one is wrong.
    Decided {
        /// The wrong one.
        wrong: Opinion,
        /// The one this result agreed with.
        right: Opinion,
    },
    /// The third computation agreed with neither: no majority, nobody is flagged.
    NoMajority,
    /// A partial or empty result for a check: the check goes back to wait for a compute.
    Requeued,
    /// A late result for a check lease (the check went back when the lease ended): ignored.
    Ignored,
}

#[derive(Clone, Debug)]
struct OpenCheck {
    lo: u64,
    hi: u64,
    /// One or two, never equal checksums.
    opinions: Vec<Opinion>,
    lease: Option<LeaseId>,
    /// Sequence number of its mismatch record, once it has two opinions.
    mismatch: Option<u64>,
}

/// The open checks, the selection credit and the mismatch log. See the module docs.
#[derive(Clone, Debug)]
pub struct CheckBook {
    share_ppm: u64,
    credit_ppm: u64,
    capacity: usize,
    open: BTreeMap<u64, OpenCheck>,
    next_id: u64,
    by_lease: BTreeMap<LeaseId, u64>,
    mismatches: VecDeque<(u64, Mismatch)>,
    mismatch_capacity: usize,
    next_mismatch: u64,
    stats: CheckStats,
}

impl CheckBook {
    /// A book checking `share` (clamped into [0, 1]; NaN reads as 0) of eligible results, with
    /// at most `capacity` open checks and the last `mismatch_capacity` mismatches kept.
    pub fn new(share: f64, capacity: usize, mismatch_capacity: usize) -> CheckBook {
        let share = if share.is_nan() {
            0.0
        } else {
            share.clamp(0.0, 1.0)
        };
        CheckBook {
            // In [0, 1e6]: `as` cannot overflow.
            share_ppm: (share * MILLION as f64).round() as u64,
            credit_ppm: 0,
            capacity,
            open: BTreeMap::new(),
            next_id: 0,
            by_lease: BTreeMap::new(),
            mismatches: VecDeque::new(),
            mismatch_capacity,
            next_mismatch: 0,
            stats: CheckStats::default(),
        }
    }

    /// Called once per eligible result: true when this one is to be checked.
    pub fn select(&mut self) -> bool {
        if self.share_ppm == 0 {
            return false;
        }
        self.credit_ppm += self.share_ppm;
        if self.credit_ppm >= MILLION {
            self.credit_ppm -= MILLION;
            true
        } else {
            false
        }
    }

    /// Opens a check of `[lo, hi)` against `first`. Returns the range of a check dropped for
    /// room (this one, if none could be).
    pub fn open(&mut self, lo: u64, hi: u64, first: Opinion) -> Option<(u64, u64)> {
        self.stats.selected += 1;
        let mut dropped = None;
        if self.open.len() >= self.capacity {
            let waiting = |check: &&OpenCheck| check.lease.is_none();
            let victim = self
                .open
                .iter()
                .find(|(_, check)| waiting(check) && check.opinions.len() == 1)
                .or_else(|| self.open.iter().find(|(_, check)| waiting(check)))
                .map(|(&id, _)| id);
            self.stats.dropped += 1;
            match victim {
                Some(id) => {
                    if let Some(check) = self.open.remove(&id) {
                        self.set_verdict(check.mismatch, None, Verdict::Abandoned);
                        dropped = Some((check.lo, check.hi));
                    }
                }
                // Every open check is in flight (or the capacity is 0): not opened.
                None => return Some((lo, hi)),
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.open.insert(
            id,
            OpenCheck {
                lo,
                hi,
                opinions: vec![first],
                lease: None,
                mismatch: None,
            },
        );
        dropped
    }

    /// True when some check waits for a compute.
    pub fn has_pending(&self) -> bool {
        self.open.len() > self.by_lease.len()
    }

    /// The oldest waiting check that `identity` may compute, as (check, lo, hi). `hosts` are the
    /// hosts of the computes that could take checks now (for the other-host preference).
    pub fn next_for(&self, identity: &Identity, hosts: &BTreeSet<&str>) -> Option<(u64, u64, u64)> {
        self.open
            .iter()
            .filter(|(_, check)| check.lease.is_none())
            .find(|(_, check)| {
                if check.opinions.iter().any(|o| o.identity == *identity) {
                    return false;
                }
                let seen = |host: &str| check.opinions.iter().any(|o| o.identity.host == host);
                !seen(&identity.host) || hosts.iter().all(|host| seen(host))
            })
            .map(|(&id, check)| (id, check.lo, check.hi))
    }

    /// Check `id` is now held by `lease`.
    pub fn assign(&mut self, id: u64, lease: LeaseId) {
        if let Some(check) = self.open.get_mut(&id) {
            check.lease = Some(lease);
            self.by_lease.insert(lease, id);
        }
    }

    /// The check lease `lease` ended without a full result: the check waits again. False when
    /// `lease` held no open check.
    pub fn requeue(&mut self, lease: LeaseId) -> bool {
        let Some(id) = self.by_lease.remove(&lease) else {
            return false;
        };
        if let Some(check) = self.open.get_mut(&id) {
            check.lease = None;
        }
        true
    }

    /// A full result for the live check lease `lease`.
    pub fn answer(&mut self, lease: LeaseId, opinion: Opinion, now: Millis) -> CheckOutcome {
        let Some(id) = self.by_lease.remove(&lease) else {
            return CheckOutcome::Ignored;
        };
        let Some(mut check) = self.open.remove(&id) else {
            return CheckOutcome::Ignored;
        };
        check.lease = None;
        match check.opinions.as_slice() {
            [first] if first.checksum == opinion.checksum => {
                self.stats.passed += 1;
                CheckOutcome::Passed {
                    first: first.compute,
                }
            }
            [first] => {
                let first = first.clone();
                self.stats.mismatches += 1;
                let seq = self.next_mismatch;
                self.next_mismatch += 1;
                if self.mismatch_capacity > 0 {
                    while self.mismatches.len() >= self.mismatch_capacity {
                        self.mismatches.pop_front();
                    }
                    self.mismatches.push_back((
                        seq,
                        Mismatch {
                            lo: check.lo,
                            hi: check.hi,
                            first: first.clone(),
                            second: opinion.clone(),
                            third: None,
                            verdict: Verdict::Open,
                            found_ms: now,
                        },
                    ));
                }
                check.mismatch = Some(seq);
                check.opinions.push(opinion);
                self.open.insert(id, check);
                CheckOutcome::Mismatch { first }
            }
            [first, second] => {
                let (verdict, outcome) = if opinion.checksum == first.checksum {
                    (
                        Verdict::SecondWrong,
                        CheckOutcome::Decided {
                            wrong: second.clone(),
                            right: first.clone(),
                        },
                    )
                } else if opinion.checksum == second.checksum {
                    (
                        Verdict::FirstWrong,
                        CheckOutcome::Decided {
                            wrong: first.clone(),
                            right: second.clone(),
                        },
                    )
                } else {
                    (Verdict::NoMajority, CheckOutcome::NoMajority)
                };
                if verdict == Verdict::NoMajority {
                    self.stats.no_majority += 1;
                } else {
                    self.stats.decided += 1;
                }
                self.set_verdict(check.mismatch, Some(opinion), verdict);
                outcome
            }
            // Never built: a check has one or two opinions.
            _ => CheckOutcome::Ignored,
        }
    }

    fn set_verdict(&mut self, seq: Option<u64>, third: Option<Opinion>, verdict: Verdict) {
        let Some(seq) = seq else { return };
        if let Some((_, mismatch)) = self.mismatches.iter_mut().find(|(s, _)| *s == seq) {
            mismatch.third = third;
            mismatch.verdict = verdict;
        }
    }

    /// The counters, with the current numbers of waiting and in-flight checks.
    pub fn stats(&self) -> CheckStats {
        CheckStats {
            pending: self.open.len() - self.by_lease.len(),
            in_flight: self.by_lease.len(),
            ..self.stats
        }
    }

    /// The remembered mismatches, oldest first.
    pub fn mismatches(&self) -> impl Iterator<Item = &Mismatch> {
        self.mismatches.iter().map(|(_, mismatch)| mismatch)
    }

    /// The open checks as (lo, hi, in flight), oldest first; for tests and logs.
    pub fn open_checks(&self) -> impl Iterator<Item = (u64, u64, bool)> + '_ {
        self.open
            .values()
            .map(|check| (check.lo, check.hi, check.lease.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opinion(compute: u64, host: &str, pid: u32, checksum: u64) -> Opinion {
        Opinion {
            compute: ComputeId(compute),
            identity: Identity {
                host: host.into(),
                pid,
            },
            checksum,
        }
    }

    fn hosts<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
        names.iter().copied().collect()
    }

    #[test]
    fn selection_is_an_even_running_share() {
        let picks = |share: f64, n: usize| {
            let mut book = CheckBook::new(share, 10, 10);
            (1..=n).filter(|_| book.select()).collect::<Vec<_>>()
        };
        assert_eq!(picks(0.01, 300), [100, 200, 300]);
        assert_eq!(picks(0.25, 12), [4, 8, 12]);
        assert_eq!(picks(1.0, 3), [1, 2, 3]);
        assert!(picks(0.0, 1000).is_empty());
        assert!(picks(f64::NAN, 1000).is_empty());
        assert_eq!(picks(7.0, 2), [1, 2]);
    }

    #[test]
    fn pass_mismatch_and_majority() {
        let mut book = CheckBook::new(1.0, 10, 10);
        let a = opinion(1, "a", 1, 100);
        book.open(1, 50, a.clone());
        assert!(book.has_pending());
        // Not for a itself; a reconnected a (same pid) neither.
        assert_eq!(book.next_for(&a.identity, &hosts(&["a", "b"])), None);
        let b = opinion(2, "b", 1, 999);
        let (id, lo, hi) = book.next_for(&b.identity, &hosts(&["a", "b"])).unwrap();
        assert_eq!((lo, hi), (1, 50));
        book.assign(id, LeaseId(7));
        assert!(!book.has_pending());
        assert_eq!(
            book.answer(LeaseId(7), b.clone(), 5),
            CheckOutcome::Mismatch { first: a.clone() }
        );
        let stats = book.stats();
        assert_eq!(
            (stats.mismatches, stats.pending, stats.in_flight),
            (1, 1, 0)
        );
        // The third may be neither a nor b.
        assert_eq!(book.next_for(&b.identity, &hosts(&["a", "b", "c"])), None);
        let c = opinion(3, "c", 1, 100);
        let (id, _, _) = book
            .next_for(&c.identity, &hosts(&["a", "b", "c"]))
            .unwrap();
        book.assign(id, LeaseId(8));
        assert_eq!(
            book.answer(LeaseId(8), c.clone(), 9),
            CheckOutcome::Decided {
                wrong: b.clone(),
                right: a.clone()
            }
        );
        let mismatch = book.mismatches().next().unwrap();
        assert_eq!(mismatch.verdict, Verdict::SecondWrong);
        assert_eq!(mismatch.third.as_ref(), Some(&c));
        assert_eq!((mismatch.lo, mismatch.hi, mismatch.found_ms), (1, 50, 5));
        // A check that agrees passes.
        book.open(50, 60, a.clone());
        let (id, _, _) = book.next_for(&c.identity, &hosts(&["c"])).unwrap();
        book.assign(id, LeaseId(9));
        assert_eq!(
            book.answer(LeaseId(9), c, 10),
            CheckOutcome::Passed { first: a.compute }
        );
        let stats = book.stats();
        assert_eq!(
            (stats.selected, stats.passed, stats.decided, stats.pending),
            (2, 1, 1, 0)
        );
        assert_eq!(book.answer(LeaseId(9), b, 11), CheckOutcome::Ignored);
    }

    #[test]
    fn three_different_checksums_have_no_majority() {
        let mut book = CheckBook::new(1.0, 10, 10);
        book.open(1, 2, opinion(1, "a", 1, 1));
        for (lease, (compute, checksum)) in [(2u64, 2u64), (3, 3)].into_iter().enumerate() {
            let o = opinion(compute, "x", compute as u32, checksum);
            let (id, _, _) = book.next_for(&o.identity, &hosts(&["a", "x"])).unwrap();
            book.assign(id, LeaseId(lease as u64));
            book.answer(LeaseId(lease as u64), o, 0);
        }
        assert_eq!(book.stats().no_majority, 1);
        assert_eq!(
            book.mismatches().next().unwrap().verdict,
            Verdict::NoMajority
        );
        assert_eq!(book.stats().pending, 0);
    }

    #[test]
    fn same_host_only_when_no_other_host_can() {
        let mut book = CheckBook::new(1.0, 10, 10);
        book.open(1, 2, opinion(1, "a", 1, 1));
        let sibling = Identity {
            host: "a".into(),
            pid: 2,
        };
        assert!(book.next_for(&sibling, &hosts(&["a", "b"])).is_none());
        assert!(book.next_for(&sibling, &hosts(&["a"])).is_some());
        assert!(book.next_for(&sibling, &hosts(&[])).is_some());
    }

    #[test]
    fn requeued_checks_keep_their_place_and_the_cap_drops_the_oldest_waiting() {
        let mut book = CheckBook::new(1.0, 2, 1);
        let other = Identity {
            host: "z".into(),
            pid: 1,
        };
        assert_eq!(book.open(1, 2, opinion(1, "a", 1, 1)), None);
        assert_eq!(book.open(2, 3, opinion(1, "a", 1, 1)), None);
        let (first, _, _) = book.next_for(&other, &hosts(&[])).unwrap();
        book.assign(first, LeaseId(1));
        assert_eq!(book.next_for(&other, &hosts(&[])).map(|c| c.1), Some(2));
        assert!(book.requeue(LeaseId(1)));
        assert!(!book.requeue(LeaseId(1)));
        assert_eq!(book.next_for(&other, &hosts(&[])).map(|c| c.1), Some(1));
        // Full: the oldest waiting one goes.
        assert_eq!(book.open(3, 4, opinion(1, "a", 1, 1)), Some((1, 2)));
        let open: Vec<_> = book.open_checks().collect();
        assert_eq!(open, [(2, 3, false), (3, 4, false)]);
        // Every check in flight: the new one is not opened.
        for lease in [10, 11] {
            let (id, _, _) = book.next_for(&other, &hosts(&[])).unwrap();
            book.assign(id, LeaseId(lease));
        }
        assert_eq!(book.open(4, 5, opinion(1, "a", 1, 1)), Some((4, 5)));
        assert_eq!(book.stats().dropped, 2);
        assert_eq!(book.stats().in_flight, 2);
        let mut none = CheckBook::new(1.0, 0, 0);
        assert_eq!(none.open(1, 2, opinion(1, "a", 1, 1)), Some((1, 2)));
        assert!(!none.has_pending());
    }
}
