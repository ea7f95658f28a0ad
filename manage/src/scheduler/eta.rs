//! How far along the search is and when it ends: the numbers not yet done, priced by the cost
//! model, over the cluster's measured rate. Numbers get dearer as they grow, so pricing the
//! work left (not counting it) keeps the ETA honest late in a search.

use crate::ranges::RangeSet;
use crate::sizing::CostModel;

/// Gaps priced one by one; past this many, the rest is priced as if nothing in it were done
/// (an over-estimate). Done numbers sit almost all below the frontier, so the gaps above it
/// are few: live leases and returned ranges.
const MAX_PRICED_GAPS: usize = 256;

/// Progress toward a goal: the search's last number, or with no `--until` the next power of
/// ten above the frontier.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// The last number the ETA counts to (inclusive).
    pub goal: u64,
    /// Share of the numbers in `[start, goal]` done, in parts per million.
    pub done_ppm: u64,
    /// Milliseconds until every number up to `goal` is done at the measured rates; None
    /// without a compute to go by.
    pub eta_ms: Option<u64>,
}

/// The goal of a search `[start, until]`: `until` when it was set (anything below u64's last
/// number, the default end, counts as set); otherwise the next power of ten above `frontier`.
pub fn goal(until: u64, frontier: u64) -> u64 {
    if until < u64::MAX - 1 {
        return until;
    }
    let mut power: u64 = 10;
    while power <= frontier {
        match power.checked_mul(10) {
            Some(next) => power = next,
            None => return until,
        }
    }
    power.min(until)
}

/// Progress of the search `[start, until]` with `done` done, `frontier` its first undone
/// number, and `computes` the algorithm and measured ops/s of each compute.
pub fn progress<C: CostModel>(
    cost: &C,
    done: &RangeSet,
    start: u64,
    until: u64,
    frontier: u64,
    computes: &[(C::Algorithm, f64)],
) -> Progress {
    let goal = goal(until, frontier);
    let end = goal.saturating_add(1);
    let size = end.saturating_sub(start);
    let done_in_goal: u64 = done.intersection(start, end).map(|(lo, hi)| hi - lo).sum();
    let done_ppm = if size == 0 {
        1_000_000
    } else {
        (u128::from(done_in_goal) * 1_000_000 / u128::from(size)) as u64
    };
    let gaps = undone(done, frontier.max(start), end);
    // Each compute alone would take ops_left(algorithm) / rate seconds; together they finish
    // the work at the sum of the shares each does a second.
    let mut share_per_sec = 0.0;
    for (algorithm, rate) in computes {
        let ops_left: f64 = gaps
            .iter()
            .map(|&(lo, hi)| cost.ops(algorithm, lo, hi))
            .sum();
        if ops_left <= 0.0 {
            return Progress {
                goal,
                done_ppm,
                eta_ms: Some(0),
            };
        }
        if rate.is_finite() && *rate > 0.0 {
            share_per_sec += rate / ops_left;
        }
    }
    let eta_ms = if gaps.is_empty() {
        Some(0)
    } else if share_per_sec > 0.0 {
        Some((1000.0 / share_per_sec).round().min(u64::MAX as f64) as u64)
    } else {
        None
    };
    Progress {
        goal,
        done_ppm,
        eta_ms,
    }
}

/// The gaps of `done` in `[lo, hi)`, at most `MAX_PRICED_GAPS` of them, the last reaching `hi`
/// when there were more.
fn undone(done: &RangeSet, lo: u64, hi: u64) -> Vec<(u64, u64)> {
    let mut gaps = Vec::new();
    let mut cursor = lo;
    for (span_lo, span_hi) in done.intersection(lo, hi) {
        if gaps.len() == MAX_PRICED_GAPS - 1 {
            break;
        }
        if span_lo > cursor {
            gaps.push((cursor, span_lo));
        }
        cursor = cursor.max(span_hi);
    }
    if cursor < hi {
        gaps.push((cursor, hi));
    }
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each number n costs n operations, so dearer numbers show.
    struct Linear;

    impl CostModel for Linear {
        type Algorithm = u32;
        fn ops(&self, weight: &u32, lo: u64, hi: u64) -> f64 {
            let sum = |x: u64| (x as f64) * (x as f64 - 1.0) / 2.0;
            f64::from(*weight) * (sum(hi) - sum(lo))
        }
    }

    fn set(spans: &[(u64, u64)]) -> RangeSet {
        let mut set = RangeSet::new();
        for &(lo, hi) in spans {
            set.insert(lo, hi);
        }
        set
    }

    #[test]
    fn the_goal_is_until_or_the_next_power_of_ten() {
        assert_eq!(goal(500, 7), 500);
        assert_eq!(goal(u64::MAX - 1, 1), 10);
        assert_eq!(goal(u64::MAX - 1, 10), 100);
        assert_eq!(goal(u64::MAX - 1, 12_345), 100_000);
        assert_eq!(goal(u64::MAX - 1, u64::MAX - 5), u64::MAX - 1);
    }

    #[test]
    fn the_eta_prices_the_numbers_left_not_counts_them() {
        // [1, 100] with [1, 51) done: 50 numbers left, summing to 3775 operations.
        let done = set(&[(1, 51)]);
        let p = progress(&Linear, &done, 1, 100, 51, &[(1, 1000.0)]);
        assert_eq!(p.goal, 100);
        assert_eq!(p.done_ppm, 500_000);
        assert_eq!(p.eta_ms, Some(3775));
        // The first half, at the same rate, would have taken a third of that.
        let p = progress(&Linear, &set(&[(51, 101)]), 1, 100, 1, &[(1, 1000.0)]);
        assert_eq!(p.eta_ms, Some(1275));
    }

    #[test]
    fn computes_add_their_shares_of_the_work() {
        let done = set(&[(1, 51)]);
        // Two computes with the cost of 3775 operations each: twice as fast together.
        let p = progress(&Linear, &done, 1, 100, 51, &[(1, 1000.0), (1, 1000.0)]);
        assert_eq!(p.eta_ms, Some(1887));
        // A compute whose algorithm costs twice as much does half the share.
        let p = progress(&Linear, &done, 1, 100, 51, &[(1, 1000.0), (2, 1000.0)]);
        assert_eq!(p.eta_ms, Some(2517));
    }

    #[test]
    fn gaps_above_the_frontier_are_priced_and_done_spans_are_not() {
        // Done: [1, 51) and [61, 101): only [51, 61) is left, 555 operations.
        let done = set(&[(1, 51), (61, 101)]);
        let p = progress(&Linear, &done, 1, 100, 51, &[(1, 1000.0)]);
        assert_eq!(p.eta_ms, Some(555));
        assert_eq!(p.done_ppm, 900_000);
    }

    #[test]
    fn no_compute_no_eta_and_nothing_left_is_zero() {
        let p = progress(&Linear, &set(&[(1, 51)]), 1, 100, 51, &[]);
        assert_eq!(p.eta_ms, None);
        let p = progress(&Linear, &set(&[(1, 101)]), 1, 100, 101, &[]);
        assert_eq!((p.done_ppm, p.eta_ms), (1_000_000, Some(0)));
    }

    #[test]
    fn with_no_until_the_eta_runs_to_the_next_power_of_ten() {
        let p = progress(
            &Linear,
            &set(&[(1, 51)]),
            1,
            u64::MAX - 1,
            51,
            &[(1, 1000.0)],
        );
        assert_eq!(p.goal, 100);
        assert_eq!(p.done_ppm, 500_000);
        // The same work as a search that ends at 100.
        assert_eq!(p.eta_ms, Some(3775));
    }

    #[test]
    fn many_gaps_are_priced_as_one_past_the_bound() {
        let spans: Vec<(u64, u64)> = (0..1000).map(|i| (10 + 2 * i, 11 + 2 * i)).collect();
        let gaps = undone(&set(&spans), 1, 5000);
        assert_eq!(gaps.len(), MAX_PRICED_GAPS);
        assert_eq!(gaps.last().unwrap().1, 5000);
    }
}
