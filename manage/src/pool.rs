//! The work pool: the state of every number of the search.
//!
//! Every number of `[start, end)` is in at least one of four places:
//!
//! ```text
//!   start                                   cursor                   end
//!   |  done  | leased | returned | done ...  |  fresh (never handed out) |
//! ```
//!
//! * `done`: a result covered it. Counted once, whatever arrives later.
//! * `leased`: inside a live lease (the union of the live leases; the lease table knows which).
//! * `returned`: handed out once and given back unfinished; handed out again before fresh ones.
//! * fresh: `>= cursor`, never handed out.
//!
//! `returned` never meets `done` or `leased`, and both lie below `cursor`. `done` and `leased` may
//! meet: a late result (for a lease that expired) is accepted for whatever part is not done yet,
//! and part of that may have been leased again meanwhile. The new lease keeps its range; when it
//! ends, only its part not done counts (see [`WorkPool::complete`]).

use crate::ranges::RangeSet;

/// The numbers of one search and where each one stands. See the module docs.
#[derive(Clone, Debug)]
pub struct WorkPool {
    start: u64,
    end: u64,
    done: RangeSet,
    leased: RangeSet,
    returned: RangeSet,
    cursor: u64,
}

impl WorkPool {
    /// A pool for the half-open search `[start, end)`; `end < start` is read as an empty search.
    pub fn new(start: u64, end: u64) -> WorkPool {
        WorkPool {
            start,
            end: end.max(start),
            done: RangeSet::new(),
            leased: RangeSet::new(),
            returned: RangeSet::new(),
            cursor: start,
        }
    }

    /// A pool that resumes a search: `done` (clipped to the bounds) is already done, and every
    /// other number is fresh. Fresh numbers inside `done` are skipped when handed out.
    pub fn resume(start: u64, end: u64, done: &RangeSet) -> WorkPool {
        let mut pool = WorkPool::new(start, end);
        for (lo, hi) in done.intersection(pool.start, pool.end) {
            pool.done.insert(lo, hi);
        }
        pool
    }

    /// First number of the search.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// End of the search (exclusive).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// How many numbers the search has.
    pub fn size(&self) -> u64 {
        self.end - self.start
    }

    /// The done numbers.
    pub fn done(&self) -> &RangeSet {
        &self.done
    }

    /// The numbers inside live leases.
    pub fn leased(&self) -> &RangeSet {
        &self.leased
    }

    /// The numbers given back and waiting to be handed out again.
    pub fn returned(&self) -> &RangeSet {
        &self.returned
    }

    /// Numbers below it have been handed out at least once (or were done when resuming).
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// How many distinct numbers are done.
    pub fn tested(&self) -> u64 {
        self.done.len()
    }

    /// The smallest number of the search not yet done (`end` when all are): every number in
    /// `[start, frontier)` is done.
    pub fn frontier(&self) -> u64 {
        self.done.first_gap(self.start).min(self.end)
    }

    /// True when every number of the search is done.
    pub fn is_done(&self) -> bool {
        self.done.len() == self.size()
    }

    /// Where the next [`take`](Self::take) would start, or None when nothing is unleased.
    pub fn next_lo(&self) -> Option<u64> {
        if let Some((lo, _)) = self.returned.first() {
            return Some(lo);
        }
        let lo = self.done.first_gap(self.cursor);
        (lo < self.end).then_some(lo)
    }

    /// True when a [`take`](Self::take) would hand something out.
    pub fn has_available(&self) -> bool {
        self.next_lo().is_some()
    }

    /// Hands out at most `max_len` numbers, as one range, and marks them leased: the lowest
    /// returned span first, else fresh numbers from the cursor (skipping any already done).
    /// None when `max_len` is 0 or nothing is unleased.
    pub fn take(&mut self, max_len: u64) -> Option<(u64, u64)> {
        if max_len == 0 {
            return None;
        }
        let range = match self.returned.pop_front(max_len) {
            Some(range) => range,
            None => {
                let lo = self.done.first_gap(self.cursor);
                if lo >= self.end {
                    self.cursor = self.end;
                    return None;
                }
                let mut hi = self.end.min(lo.saturating_add(max_len));
                if let Some((next_done, _)) = self.done.next_span_after(lo) {
                    hi = hi.min(next_done);
                }
                self.cursor = hi;
                (lo, hi)
            }
        };
        self.leased.insert(range.0, range.1);
        Some(range)
    }

    /// Marks `[lo, hi)` (clipped to the search) done and returns how many of its numbers were not
    /// done before: the only ones a result may count. Leases are not touched: the caller ends
    /// the lease with [`release`](Self::release).
    pub fn complete(&mut self, lo: u64, hi: u64) -> u64 {
        let (lo, hi) = (lo.max(self.start), hi.min(self.end));
        if lo >= hi {
            return 0;
        }
        let newly = (hi - lo) - self.done.covered_len(lo, hi);
        self.done.insert(lo, hi);
        self.returned.remove(lo, hi);
        newly
    }

    /// Ends a lease of `[lo, hi)`: its numbers are no longer leased, and those not done go back
    /// to be handed out again. Call it exactly once per lease, with the lease's whole range.
    pub fn release(&mut self, lo: u64, hi: u64) {
        self.leased.remove(lo, hi);
        self.give_back(lo, hi);
    }

    /// Puts the numbers of `[lo, hi)` that were handed out and are neither done nor leased back
    /// to be handed out again. Anything else in the range (fresh, done, leased, outside the
    /// search) is left as it is, so calling it twice or with a wrong range is harmless.
    pub fn give_back(&mut self, lo: u64, hi: u64) {
        let (lo, hi) = (lo.max(self.start), hi.min(self.cursor));
        for (a, b) in self.done.gaps(lo, hi) {
            for (x, y) in self.leased.gaps(a, b) {
                self.returned.insert(x, y);
            }
        }
    }

    /// Checks the invariants of the module docs; O(spans), meant for tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        let inside = |set: &RangeSet, hi: u64| {
            set.first().is_none_or(|(lo, _)| lo >= self.start)
                && set.last().is_none_or(|(_, end)| end <= hi)
        };
        if !inside(&self.done, self.end) {
            return Err(format!("done outside the search: {:?}", self.done));
        }
        if !inside(&self.leased, self.cursor) || !inside(&self.returned, self.cursor) {
            return Err("leased or returned numbers at or above the cursor".into());
        }
        for (lo, hi) in self.returned.iter() {
            if self.done.overlaps(lo, hi) || self.leased.overlaps(lo, hi) {
                return Err(format!("returned [{lo}, {hi}) is also done or leased"));
            }
        }
        let mut handed_out = self.done.clone();
        for (lo, hi) in self.leased.iter().chain(self.returned.iter()) {
            handed_out.insert(lo, hi);
        }
        if let Some((lo, hi)) = handed_out.gaps(self.start, self.cursor).next() {
            return Err(format!(
                "[{lo}, {hi}) is below the cursor and nowhere: lost"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_numbers_in_order_never_past_the_end() {
        let mut pool = WorkPool::new(10, 35);
        assert_eq!(pool.take(10), Some((10, 20)));
        assert_eq!(pool.take(10), Some((20, 30)));
        assert_eq!(pool.take(10), Some((30, 35)));
        assert_eq!(pool.take(10), None);
        assert_eq!(pool.take(0), None);
        pool.check_invariants().unwrap();
    }

    #[test]
    fn returned_numbers_go_first_lowest_first() {
        let mut pool = WorkPool::new(1, 100);
        let a = pool.take(10).unwrap();
        let b = pool.take(10).unwrap();
        pool.release(b.0, b.1);
        pool.release(a.0, a.1);
        assert_eq!(pool.next_lo(), Some(1));
        assert_eq!(pool.take(4), Some((1, 5)));
        assert_eq!(pool.take(100), Some((5, 21)));
        assert_eq!(pool.take(5), Some((21, 26)));
        pool.check_invariants().unwrap();
    }

    #[test]
    fn partial_result_returns_the_rest() {
        let mut pool = WorkPool::new(1, 100);
        let (lo, hi) = pool.take(20).unwrap();
        assert_eq!(pool.complete(lo, 8), 7);
        pool.release(lo, hi);
        assert_eq!(pool.returned().iter().collect::<Vec<_>>(), [(8, 21)]);
        assert_eq!(pool.tested(), 7);
        assert_eq!(pool.frontier(), 8);
        pool.check_invariants().unwrap();
    }

    #[test]
    fn late_result_over_a_reissued_range_counts_once() {
        let mut pool = WorkPool::new(1, 101);
        let first = pool.take(50).unwrap();
        // The first lease expires; its range is leased again, in two parts.
        pool.release(first.0, first.1);
        let second = pool.take(20).unwrap();
        assert_eq!(second, (1, 21));
        // The late result of the first lease covers [1, 31): all of it counts once.
        assert_eq!(pool.complete(1, 31), 30);
        assert_eq!(pool.returned().iter().collect::<Vec<_>>(), [(31, 51)]);
        pool.check_invariants().unwrap();
        // The second lease finishes: nothing new.
        assert_eq!(pool.complete(second.0, second.1), 0);
        pool.release(second.0, second.1);
        assert_eq!(pool.returned().iter().collect::<Vec<_>>(), [(31, 51)]);
        assert_eq!(pool.tested(), 30);
        // Had it been given back instead, nothing done would go back either.
        pool.give_back(1, 51);
        assert_eq!(pool.returned().iter().collect::<Vec<_>>(), [(31, 51)]);
        pool.check_invariants().unwrap();
    }

    #[test]
    fn give_back_leaves_leased_fresh_and_outside_numbers_alone() {
        let mut pool = WorkPool::new(10, 100);
        let a = pool.take(10).unwrap();
        let _b = pool.take(10).unwrap();
        pool.give_back(0, 1000);
        assert!(pool.returned().is_empty());
        pool.release(a.0, a.1);
        pool.give_back(0, 1000);
        assert_eq!(pool.returned().iter().collect::<Vec<_>>(), [a]);
        pool.check_invariants().unwrap();
    }

    #[test]
    fn completion_to_the_end_and_the_frontier() {
        let mut pool = WorkPool::new(1, u64::MAX);
        assert_eq!(pool.size(), u64::MAX - 1);
        let top = pool.take(u64::MAX).unwrap();
        assert_eq!(top, (1, u64::MAX));
        assert_eq!(pool.complete(u64::MAX - 5, u64::MAX), 5);
        assert_eq!(pool.frontier(), 1);
        assert_eq!(pool.complete(1, u64::MAX - 5), u64::MAX - 6);
        pool.release(top.0, top.1);
        assert!(pool.is_done());
        assert_eq!(pool.frontier(), u64::MAX);
        assert_eq!(pool.take(1), None);
        pool.check_invariants().unwrap();
    }

    #[test]
    fn resume_skips_what_was_done() {
        let mut done = RangeSet::new();
        done.insert(0, 5);
        done.insert(8, 12);
        let mut pool = WorkPool::resume(1, 20, &done);
        assert_eq!(pool.tested(), 8);
        assert_eq!(pool.frontier(), 5);
        assert_eq!(pool.take(100), Some((5, 8)));
        assert_eq!(pool.take(100), Some((12, 20)));
        assert_eq!(pool.take(100), None);
        pool.check_invariants().unwrap();
    }

    #[test]
    fn results_outside_the_search_count_nothing() {
        let mut pool = WorkPool::new(10, 20);
        assert_eq!(pool.complete(0, 10), 0);
        assert_eq!(pool.complete(20, 30), 0);
        assert_eq!(pool.complete(15, 5), 0);
        assert_eq!(pool.tested(), 0);
    }
}
