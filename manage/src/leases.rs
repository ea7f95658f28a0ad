//! Leases: which compute holds which range, how far it says it got, and until when.
//!
//! A lease is live from [`LeaseTable::issue`] until it is finished (a result), released (its
//! compute left) or expired (its deadline passed). Ended leases are remembered, up to a bound,
//! so a late result can still be matched to the range it is for. Moving numbers in and out of
//! the work pool is the caller's job: every method here returns the lease it ended.

use std::collections::{BTreeMap, BTreeSet};

use crate::registry::Identity;
use crate::{ComputeId, LeaseId, Millis};

/// One range held by one compute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Its id.
    pub id: LeaseId,
    /// The compute holding it.
    pub compute: ComputeId,
    /// That compute's host and pid, to accept its late result after a reconnect.
    pub identity: Identity,
    /// First number.
    pub lo: u64,
    /// End (exclusive).
    pub hi: u64,
    /// What the compute last reported as done up to (`lo` until it reports). Progress is
    /// informative only: it is not a result, so none of it counts until a result arrives.
    pub progress: u64,
    /// When it was issued.
    pub issued_ms: Millis,
    /// When it expires.
    pub deadline_ms: Millis,
    /// How long it was predicted to take.
    pub predicted_ms: Millis,
    /// True for a double-check: a range already done, computed again by another compute to
    /// compare checksums. Its numbers are not in the work pool's `leased` set, so it may
    /// overlap other leases; its result never counts numbers.
    pub check: bool,
}

/// Why a lease ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseEnd {
    /// A result for `[lo, upto)` arrived while it was live.
    Finished {
        /// End of the result.
        upto: u64,
    },
    /// Its deadline passed.
    Expired,
    /// Its compute left.
    Released,
    /// It was live when manage stopped; remembered after the restart so its compute (same
    /// host and pid) can still deliver its result.
    Interrupted,
}

/// A lease that is no longer live, kept to match late results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndedLease {
    /// The lease as it was when it ended.
    pub lease: Lease,
    /// Why it ended.
    pub end: LeaseEnd,
    /// When.
    pub ended_ms: Millis,
}

/// What a lease id refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseLookup<'a> {
    /// A live lease.
    Live(&'a Lease),
    /// A lease that ended and is still remembered.
    Ended(&'a EndedLease),
    /// Never issued, or ended so long ago it was forgotten.
    Unknown,
}

/// A progress report that cannot be accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressError {
    /// No live lease has this id.
    NotLive,
    /// Outside `[lo, hi]` of the lease.
    OutsideLease,
    /// Below what was reported before.
    Backwards {
        /// What was reported before.
        previous: u64,
    },
}

/// The live leases and the recently ended ones.
#[derive(Clone, Debug)]
pub struct LeaseTable {
    live: BTreeMap<LeaseId, Lease>,
    /// (deadline, id) of every live lease, nearest first.
    deadlines: BTreeSet<(Millis, LeaseId)>,
    ended: BTreeMap<LeaseId, EndedLease>,
    /// How many ended leases are remembered; the oldest are forgotten first.
    ended_capacity: usize,
    next_id: u64,
}

impl LeaseTable {
    /// An empty table remembering up to `ended_capacity` ended leases. Ids start at 1.
    pub fn new(ended_capacity: usize) -> LeaseTable {
        LeaseTable::starting_at(ended_capacity, LeaseId(1))
    }

    /// An empty table whose first lease is `first` (at least 1): a resumed run continues the
    /// numbering of the previous one, so an id from before a restart never names a new lease.
    pub fn starting_at(ended_capacity: usize, first: LeaseId) -> LeaseTable {
        LeaseTable {
            live: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            ended: BTreeMap::new(),
            ended_capacity,
            next_id: first.0.max(1),
        }
    }

    /// The id the next lease will get.
    pub fn next_id(&self) -> LeaseId {
        LeaseId(self.next_id)
    }

    /// Issues a lease of `[lo, hi)` to `compute` and returns its id (`check`: a double-check).
    #[allow(clippy::too_many_arguments)]
    pub fn issue(
        &mut self,
        compute: ComputeId,
        identity: Identity,
        lo: u64,
        hi: u64,
        now: Millis,
        deadline_ms: Millis,
        predicted_ms: Millis,
        check: bool,
    ) -> LeaseId {
        let id = LeaseId(self.next_id);
        // 2^64 leases cannot happen; saturating keeps this panic-free regardless.
        self.next_id = self.next_id.saturating_add(1);
        self.deadlines.insert((deadline_ms, id));
        self.live.insert(
            id,
            Lease {
                id,
                compute,
                identity,
                lo,
                hi,
                progress: lo,
                issued_ms: now,
                deadline_ms,
                predicted_ms,
                check,
            },
        );
        id
    }

    /// Remembers a lease from before a restart as ended ([`LeaseEnd::Interrupted`]), so a late
    /// result for it is matched. Its id must be below [`next_id`](Self::next_id) (the numbering
    /// moves past it if not), and a live lease with the same id is left alone.
    pub fn remember_interrupted(&mut self, lease: Lease, now: Millis) {
        if self.live.contains_key(&lease.id) || self.ended_capacity == 0 {
            return;
        }
        self.next_id = self.next_id.max(lease.id.0.saturating_add(1));
        self.remember(lease, LeaseEnd::Interrupted, now);
    }

    fn remember(&mut self, lease: Lease, end: LeaseEnd, now: Millis) {
        if self.ended_capacity == 0 {
            return;
        }
        while self.ended.len() >= self.ended_capacity {
            self.ended.pop_first();
        }
        self.ended.insert(
            lease.id,
            EndedLease {
                lease,
                end,
                ended_ms: now,
            },
        );
    }

    /// The identity of `compute`, if a remembered ended lease names it (most recent first):
    /// for offences reported after the compute left. O(remembered leases).
    pub fn identity_of(&self, compute: ComputeId) -> Option<&Identity> {
        self.live
            .values()
            .rev()
            .find(|lease| lease.compute == compute)
            .or_else(|| {
                self.ended
                    .values()
                    .rev()
                    .map(|ended| &ended.lease)
                    .find(|lease| lease.compute == compute)
            })
            .map(|lease| &lease.identity)
    }

    /// What `id` refers to.
    pub fn lookup(&self, id: LeaseId) -> LeaseLookup<'_> {
        if let Some(lease) = self.live.get(&id) {
            LeaseLookup::Live(lease)
        } else if let Some(ended) = self.ended.get(&id) {
            LeaseLookup::Ended(ended)
        } else {
            LeaseLookup::Unknown
        }
    }

    /// The live lease `id`.
    pub fn live(&self, id: LeaseId) -> Option<&Lease> {
        self.live.get(&id)
    }

    /// Every live lease, by increasing id.
    pub fn iter_live(&self) -> impl Iterator<Item = &Lease> {
        self.live.values()
    }

    /// How many leases are live.
    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    /// Records that the holder of `id` is done up to `done`: it must lie in `[lo, hi]` and not
    /// below the previous report (an equal report is accepted and changes nothing).
    pub fn progress(&mut self, id: LeaseId, done: u64) -> Result<(), ProgressError> {
        let lease = self.live.get_mut(&id).ok_or(ProgressError::NotLive)?;
        if done < lease.lo || done > lease.hi {
            return Err(ProgressError::OutsideLease);
        }
        if done < lease.progress {
            return Err(ProgressError::Backwards {
                previous: lease.progress,
            });
        }
        lease.progress = done;
        Ok(())
    }

    /// Ends the live lease `id` with a result for `[lo, upto)`. Its numbers past `upto` are the
    /// caller's to give back. None when it is not live.
    pub fn finish(&mut self, id: LeaseId, upto: u64, now: Millis) -> Option<Lease> {
        self.end(id, LeaseEnd::Finished { upto }, now)
    }

    /// Ends the live lease `id` without a result (its compute left). None when it is not live.
    pub fn release(&mut self, id: LeaseId, now: Millis) -> Option<Lease> {
        self.end(id, LeaseEnd::Released, now)
    }

    /// Ends every live lease of `compute` without a result, lowest id first.
    pub fn release_compute(&mut self, compute: ComputeId, now: Millis) -> Vec<Lease> {
        let ids: Vec<LeaseId> = self
            .live
            .values()
            .filter(|lease| lease.compute == compute)
            .map(|lease| lease.id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.release(id, now))
            .collect()
    }

    /// Ends every live lease whose deadline is `<= now`, nearest deadline first.
    pub fn expire(&mut self, now: Millis) -> Vec<Lease> {
        let mut expired = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            match self.end(id, LeaseEnd::Expired, now) {
                Some(lease) => expired.push(lease),
                // Unreachable while `deadlines` mirrors `live`; never loop on it regardless.
                None => {
                    self.deadlines.remove(&(deadline, id));
                }
            }
        }
        expired
    }

    /// The nearest deadline of a live lease: the reactor's poll timeout.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.deadlines.first().map(|&(deadline, _)| deadline)
    }

    /// Notes that a late result for `[lo, upto)` arrived for the ended lease `id`, so a later
    /// duplicate reads as such in logs. Does nothing if `id` is not an ended lease.
    pub fn note_late_result(&mut self, id: LeaseId, upto: u64) {
        if let Some(ended) = self.ended.get_mut(&id) {
            let previous = match ended.end {
                LeaseEnd::Finished { upto } => upto,
                _ => ended.lease.lo,
            };
            ended.end = LeaseEnd::Finished {
                upto: previous.max(upto),
            };
        }
    }

    fn end(&mut self, id: LeaseId, end: LeaseEnd, now: Millis) -> Option<Lease> {
        let lease = self.live.remove(&id)?;
        self.deadlines.remove(&(lease.deadline_ms, id));
        self.remember(lease.clone(), end, now);
        Some(lease)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            host: "h".into(),
            pid: 1,
        }
    }

    #[test]
    fn lifecycle() {
        let mut table = LeaseTable::new(2);
        let c = ComputeId(1);
        let a = table.issue(c, identity(), 10, 20, 0, 300, 100, false);
        let b = table.issue(c, identity(), 20, 30, 0, 200, 100, false);
        assert!(b > a);
        assert_eq!(table.next_deadline(), Some(200));
        assert_eq!(table.progress(a, 9), Err(ProgressError::OutsideLease));
        assert_eq!(table.progress(a, 21), Err(ProgressError::OutsideLease));
        assert_eq!(table.progress(a, 15), Ok(()));
        assert_eq!(table.progress(a, 15), Ok(()));
        assert_eq!(
            table.progress(a, 14),
            Err(ProgressError::Backwards { previous: 15 })
        );
        assert_eq!(table.progress(a, 20), Ok(()));
        assert!(table.expire(199).is_empty());
        let expired = table.expire(200);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].id, b);
        assert_eq!(table.progress(b, 25), Err(ProgressError::NotLive));
        assert!(matches!(table.lookup(b), LeaseLookup::Ended(e) if e.end == LeaseEnd::Expired));
        let finished = table.finish(a, 17, 250).unwrap();
        assert_eq!(finished.progress, 20);
        assert!(table.finish(a, 17, 250).is_none());
        assert_eq!(table.next_deadline(), None);
        assert!(
            matches!(table.lookup(a), LeaseLookup::Ended(e) if e.end == LeaseEnd::Finished { upto: 17 })
        );
        assert_eq!(table.lookup(LeaseId(99)), LeaseLookup::Unknown);
    }

    #[test]
    fn ended_leases_are_forgotten_oldest_first() {
        let mut table = LeaseTable::new(2);
        let c = ComputeId(3);
        let ids: Vec<_> = (0..3)
            .map(|i| table.issue(c, identity(), i * 10 + 1, i * 10 + 11, 0, 50, 10, false))
            .collect();
        let released = table.release_compute(c, 5);
        assert_eq!(released.len(), 3);
        assert_eq!(table.lookup(ids[0]), LeaseLookup::Unknown);
        assert!(matches!(table.lookup(ids[1]), LeaseLookup::Ended(_)));
        assert!(matches!(table.lookup(ids[2]), LeaseLookup::Ended(_)));
        assert!(table.expire(u64::MAX).is_empty());
        let mut forgetful = LeaseTable::new(0);
        let id = forgetful.issue(c, identity(), 1, 2, 0, 1, 1, false);
        forgetful.expire(1);
        assert_eq!(forgetful.lookup(id), LeaseLookup::Unknown);
    }

    #[test]
    fn late_results_are_noted() {
        let mut table = LeaseTable::new(4);
        let id = table.issue(ComputeId(1), identity(), 1, 100, 0, 10, 5, false);
        table.expire(10);
        table.note_late_result(id, 40);
        table.note_late_result(id, 30);
        assert!(
            matches!(table.lookup(id), LeaseLookup::Ended(e) if e.end == LeaseEnd::Finished { upto: 40 })
        );
    }

    #[test]
    fn interrupted_leases_are_remembered_and_the_numbering_moves_past_them() {
        let mut table = LeaseTable::starting_at(4, LeaseId(5));
        let lease = Lease {
            id: LeaseId(7),
            compute: ComputeId(3),
            identity: identity(),
            lo: 1,
            hi: 9,
            progress: 1,
            issued_ms: 0,
            deadline_ms: 0,
            predicted_ms: 0,
            check: false,
        };
        table.remember_interrupted(lease.clone(), 0);
        assert!(
            matches!(table.lookup(LeaseId(7)), LeaseLookup::Ended(e) if e.end == LeaseEnd::Interrupted && e.lease == lease)
        );
        assert_eq!(table.next_id(), LeaseId(8));
        assert_eq!(table.identity_of(ComputeId(3)), Some(&identity()));
        assert_eq!(table.identity_of(ComputeId(4)), None);
        assert_eq!(table.next_deadline(), None);
    }
}
