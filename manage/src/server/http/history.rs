//! The history behind the dashboard's charts, without I/O: samples of the search taken every
//! few seconds, kept in tiers that get coarser as they age (5 s for the last hour, 1 min for
//! the last day, 15 min for the last month), each tier a bounded ring. Tested and frontier
//! only grow, so a coarse tier keeps one sample per step rather than an average; the rate is
//! the one measured at that moment.

use std::collections::VecDeque;

use manage::Millis;

/// One moment of the search.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub at_ms: Millis,
    /// Distinct numbers tested.
    pub tested: u64,
    /// Every number below it is tested.
    pub frontier: u64,
    /// The cluster's numbers per second.
    pub rate: f64,
    /// Computes connected.
    pub computes: u64,
}

/// How often a sample is taken.
pub const SAMPLE_INTERVAL_MS: Millis = 5_000;

/// A tier: one sample per `step_ms` at most, the newest `capacity` kept.
#[derive(Clone, Copy, Debug)]
pub struct TierSpec {
    pub step_ms: Millis,
    pub capacity: usize,
}

/// The tiers, finest first: 5 s for an hour, 1 min for a day, 15 min for 30 days (at most
/// 720 + 1,440 + 2,880 samples, about 5,000 rows in all).
pub const TIERS: [TierSpec; 3] = [
    TierSpec {
        step_ms: SAMPLE_INTERVAL_MS,
        capacity: 720,
    },
    TierSpec {
        step_ms: 60_000,
        capacity: 1_440,
    },
    TierSpec {
        step_ms: 900_000,
        capacity: 2_880,
    },
];

/// The sampled history in its tiers.
#[derive(Debug)]
pub struct History {
    tiers: Vec<VecDeque<Sample>>,
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

impl History {
    pub fn new() -> History {
        History {
            tiers: TIERS
                .iter()
                .map(|t| VecDeque::with_capacity(t.capacity))
                .collect(),
        }
    }

    /// Puts a sample read back from the database into its tier (oldest first), as [`record`]
    /// once did, without the step check: the rows are what that check let through.
    ///
    /// [`record`]: History::record
    pub fn restore(&mut self, tier: usize, sample: Sample) {
        if let Some(ring) = self.tiers.get_mut(tier) {
            if ring.back().is_some_and(|last| last.at_ms >= sample.at_ms) {
                return;
            }
            if ring.len() == TIERS[tier].capacity {
                ring.pop_front();
            }
            ring.push_back(sample);
        }
    }

    /// Adds a sample to every tier whose step has passed since its newest sample. Returns the
    /// tiers that took it, and for each the oldest time it still keeps (to trim the database).
    pub fn record(&mut self, sample: Sample) -> Vec<(usize, Millis)> {
        let mut taken = Vec::new();
        for (index, (ring, spec)) in self.tiers.iter_mut().zip(TIERS.iter()).enumerate() {
            // A little slack, so a sample taken a little early (the reactor's timers are not
            // exact) still counts for the step.
            let due = ring.back().is_none_or(|last| {
                sample.at_ms + SAMPLE_INTERVAL_MS / 2 >= last.at_ms + spec.step_ms
            });
            if !due {
                continue;
            }
            if ring.len() == spec.capacity {
                ring.pop_front();
            }
            ring.push_back(sample);
            let oldest = ring.front().map_or(sample.at_ms, |s| s.at_ms);
            taken.push((index, oldest));
        }
        taken
    }

    /// Every sample, oldest first, each from the finest tier that covers its time: the coarse
    /// tiers only before the finer ones begin.
    pub fn series(&self) -> Vec<Sample> {
        let mut points = Vec::new();
        let mut covered_from = Millis::MAX;
        for ring in &self.tiers {
            let older: Vec<Sample> = ring
                .iter()
                .filter(|s| s.at_ms < covered_from)
                .copied()
                .collect();
            if let Some(first) = ring.front() {
                covered_from = covered_from.min(first.at_ms);
            }
            points.push(older);
        }
        points.into_iter().rev().flatten().collect()
    }

    /// Samples kept, over all tiers.
    pub fn len(&self) -> usize {
        self.tiers.iter().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: Millis) -> Sample {
        Sample {
            at_ms,
            tested: at_ms,
            frontier: at_ms,
            rate: 1.0,
            computes: 1,
        }
    }

    #[test]
    fn every_tier_is_bounded_and_coarser_tiers_keep_older_times() {
        let mut history = History::new();
        // 40 days of samples every 5 s.
        let end = 40 * 86_400_000;
        let mut at = 0;
        while at <= end {
            history.record(sample(at));
            at += SAMPLE_INTERVAL_MS;
        }
        let bound: usize = TIERS.iter().map(|t| t.capacity).sum();
        assert_eq!(history.len(), bound);
        let series = history.series();
        assert!(series.windows(2).all(|w| w[0].at_ms < w[1].at_ms));
        assert_eq!(series.last().unwrap().at_ms, end);
        // The last hour at 5 s, and the oldest point about 30 days back.
        let recent = series.iter().filter(|s| s.at_ms > end - 3_600_000).count();
        assert_eq!(recent, 720);
        let oldest = series.first().unwrap().at_ms;
        assert!(end - oldest >= 29 * 86_400_000, "oldest {oldest}");
    }

    #[test]
    fn a_tier_takes_a_sample_only_once_its_step_passed() {
        let mut history = History::new();
        assert_eq!(history.record(sample(0)), vec![(0, 0), (1, 0), (2, 0)]);
        assert_eq!(history.record(sample(5_000)), vec![(0, 0)]);
        assert_eq!(history.record(sample(60_000)), vec![(0, 0), (1, 0)]);
        assert_eq!(history.len(), 6);
    }

    #[test]
    fn restored_samples_come_back_in_the_series() {
        let mut history = History::new();
        history.restore(2, sample(0));
        history.restore(1, sample(900_000));
        history.restore(0, sample(960_000));
        history.restore(0, sample(960_000)); // a duplicate is ignored
        let times: Vec<Millis> = history.series().iter().map(|s| s.at_ms).collect();
        assert_eq!(times, vec![0, 900_000, 960_000]);
    }
}
