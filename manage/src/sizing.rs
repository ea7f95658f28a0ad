//! Sizing: how fast each compute is, and how many numbers take it the target time.
//!
//! A compute's speed is kept in kernel operations per second (the unit of its benchmark figure
//! and of the cost model), so one figure holds across magnitudes of n even though the time per
//! number grows. For a range starting at `lo`, the length is the largest `len` with
//! `cost(lo, lo + len) <= rate * target`, found by exponential search and bisection.
//!
//! The benchmark figure is only a prior: it is clamped into a sane band, the first range is a
//! small probe (target / 8 by default) so a real measurement arrives quickly, and the first
//! measurement replaces the prior outright. After that each measurement is folded in with an
//! exponential moving average, and one step may change the estimate by at most 2x either way, so
//! one noisy result cannot wreck a good estimate. Two results in a row that both miss the
//! estimate by more than `shift_threshold` on the same side mean the compute's speed really
//! changed (another load started or stopped): then the newest one is taken outright (still
//! within the step limit), so a compute is back on target after two ranges instead of five.

use crate::Millis;

/// Predicted kernel operations for a range, per algorithm: the reactor plugs in
/// `sigma_kernel::cost::ops`. It should grow with the length of the range (and, for a fixed length,
/// with lo); sizing stays within bounds even when it does not, or returns NaN or infinities.
pub trait CostModel {
    /// The algorithms a compute may run.
    type Algorithm: Clone + std::fmt::Debug;

    /// Predicted kernel operations to scan `[lo, hi)` with `algorithm`.
    fn ops(&self, algorithm: &Self::Algorithm, lo: u64, hi: u64) -> f64;
}

/// Tuning of the sizing. The defaults suit the real cluster; tests shrink them.
#[derive(Clone, Debug, PartialEq)]
pub struct SizingConfig {
    /// How long a range should take, in ms.
    pub target_ms: Millis,
    /// A compute's first range (and the first after an expiry) aims at `target_ms / probe_divisor`.
    pub probe_divisor: u64,
    /// Lowest credible rate, ops/s: benchmark figures and measurements below are raised to it.
    pub min_ops_per_sec: f64,
    /// Highest credible rate, ops/s: figures and measurements above are lowered to it.
    pub max_ops_per_sec: f64,
    /// No range is longer than this many numbers.
    pub max_len: u64,
    /// Weight of a new measurement in the moving average, in (0, 1].
    pub smoothing: f64,
    /// One measurement changes the estimate by at most this factor either way (>= 1).
    pub max_step: f64,
    /// A result that took less than this is "too quick to time": the overheads (thread start,
    /// clock granularity) dominate, so it only serves as a lower bound on the rate.
    pub min_elapsed_ms: Millis,
    /// A measurement off the estimate by more than this share is a miss; a second miss in a
    /// row on the same side replaces the estimate instead of being averaged in.
    pub shift_threshold: f64,
}

impl Default for SizingConfig {
    fn default() -> SizingConfig {
        SizingConfig {
            target_ms: 15_000,
            probe_divisor: 8,
            min_ops_per_sec: 1e3,
            max_ops_per_sec: 1e13,
            max_len: 1 << 40,
            smoothing: 0.5,
            max_step: 2.0,
            min_elapsed_ms: 100,
            shift_threshold: 0.10,
        }
    }
}

impl SizingConfig {
    fn clamp_rate(&self, rate: f64) -> f64 {
        if rate.is_nan() {
            return self.min_ops_per_sec;
        }
        rate.clamp(
            self.min_ops_per_sec,
            self.max_ops_per_sec.max(self.min_ops_per_sec),
        )
    }

    fn step(&self) -> f64 {
        if self.max_step.is_finite() && self.max_step >= 1.0 {
            self.max_step
        } else {
            2.0
        }
    }
}

/// What a measurement did to the estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observation {
    /// The first real measurement: it replaced the benchmark prior.
    Replaced,
    /// Folded into the moving average (within the step limit).
    Folded,
    /// Too quick to time (under `min_elapsed_ms`): used only as a lower bound on the rate.
    LowerBound,
    /// No work measured (zero or non-finite predicted operations): ignored.
    Ignored,
}

/// One compute's speed estimate, in kernel operations per second.
#[derive(Clone, Debug, PartialEq)]
pub struct RateModel {
    ops_per_sec: f64,
    measured: bool,
    probe_next: bool,
    /// The side the previous measurement missed the estimate on: -1 slower, 1 faster, 0 a hit.
    last_miss: i8,
}

impl RateModel {
    /// A model from the compute's benchmark figure, clamped into the credible band (a zero
    /// figure becomes the minimum: tiny ranges that grow 2x per result until timed).
    pub fn from_benchmark(figure: u64, config: &SizingConfig) -> RateModel {
        RateModel {
            ops_per_sec: config.clamp_rate(figure as f64),
            measured: false,
            probe_next: true,
            last_miss: 0,
        }
    }

    /// The current estimate, ops/s.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops_per_sec
    }

    /// True once a result has been timed.
    pub fn is_measured(&self) -> bool {
        self.measured
    }

    /// True when the next range should be a short probe.
    pub fn probing(&self) -> bool {
        self.probe_next
    }

    /// How long the next range should take, in ms: the target, or a probe's share of it.
    pub fn next_target_ms(&self, config: &SizingConfig) -> Millis {
        if self.probe_next {
            (config.target_ms / config.probe_divisor.max(1)).max(1)
        } else {
            config.target_ms
        }
    }

    /// The operations the next range should need.
    pub fn next_budget_ops(&self, config: &SizingConfig) -> f64 {
        self.ops_per_sec * self.next_target_ms(config) as f64 / 1000.0
    }

    /// Predicted time for `ops` operations at the current estimate, in ms (saturating; a
    /// non-finite or negative prediction reads as `fallback`).
    pub fn predict_ms(&self, ops: f64, fallback: Millis) -> Millis {
        let ms = ops / self.ops_per_sec * 1000.0;
        if ms.is_finite() && ms >= 0.0 {
            // `as` saturates at u64::MAX.
            ms.ceil() as u64
        } else {
            fallback
        }
    }

    /// Folds in a result: `ops` predicted operations done in `elapsed_ms`.
    pub fn observe(&mut self, ops: f64, elapsed_ms: Millis, config: &SizingConfig) -> Observation {
        if !(ops.is_finite() && ops > 0.0) {
            return Observation::Ignored;
        }
        if elapsed_ms < config.min_elapsed_ms.max(1) {
            // The compute is at least this fast: raise the estimate to that bound (never lower
            // it), and keep probing. The step limit does not apply: it guards an estimate
            // against a noisy sample, and this is a bound, not a sample.
            let at_least = ops / (config.min_elapsed_ms.max(1) as f64 / 1000.0);
            if at_least > self.ops_per_sec {
                self.ops_per_sec = config.clamp_rate(at_least);
            }
            return Observation::LowerBound;
        }
        let step = config.step();
        let measured = config.clamp_rate(ops / (elapsed_ms as f64 / 1000.0));
        self.probe_next = false;
        if !self.measured {
            self.measured = true;
            self.ops_per_sec = measured;
            return Observation::Replaced;
        }
        let miss = if measured > self.ops_per_sec * (1.0 + config.shift_threshold) {
            1
        } else if measured < self.ops_per_sec * (1.0 - config.shift_threshold) {
            -1
        } else {
            0
        };
        let confirmed_shift = miss != 0 && miss == self.last_miss;
        self.last_miss = miss;
        let weight = if confirmed_shift {
            1.0
        } else if config.smoothing > 0.0 && config.smoothing <= 1.0 {
            config.smoothing
        } else {
            0.5
        };
        let blended = self.ops_per_sec + weight * (measured - self.ops_per_sec);
        let limited = blended.clamp(self.ops_per_sec / step, self.ops_per_sec * step);
        self.ops_per_sec = config.clamp_rate(limited);
        Observation::Folded
    }

    /// A lease of this compute expired: the estimate was too high (or the compute stalled).
    /// `progress` is the predicted operations it reported done and the ms since the lease was
    /// issued, when it reported any: then that rate, if lower, becomes the estimate; otherwise
    /// the estimate drops by a factor of 4. The next range is a probe again.
    pub fn expired(&mut self, progress: Option<(f64, Millis)>, config: &SizingConfig) {
        let seen = progress
            .filter(|&(ops, ms)| ops.is_finite() && ops > 0.0 && ms > 0)
            .map(|(ops, ms)| ops / (ms as f64 / 1000.0));
        self.ops_per_sec = config.clamp_rate(match seen {
            Some(rate) => rate.min(self.ops_per_sec),
            None => self.ops_per_sec / 4.0,
        });
        self.probe_next = true;
    }
}

/// The largest `len` in `[1, max_len]` with `cost(lo, lo + len) <= budget_ops`, or 1 when even
/// one number is over budget; 0 only when `max_len` is 0. `cost` must grow with `len`; if it
/// does not, the answer is still within bounds. A non-finite cost counts as over budget.
/// The answer is within 1/1024 of the exact one.
///
/// It runs on the reactor for every assignment, and the cost model takes logarithms, so it
/// guesses and interpolates instead of doubling from 1 and bisecting (some 45 evaluations): costs
/// are nearly proportional to length, so scaling each probe by budget / cost brackets the
/// answer within 2x in a few steps, and the secant through the bracket's ends then lands close
/// to it. A secant step that does not halve the bracket is followed by a bisection, so a
/// cost the secant models badly still converges: the bracketing takes at most ~40 steps (each
/// at least doubles or halves), the rest at most ~25.
pub fn range_len(cost: impl Fn(u64, u64) -> f64, lo: u64, max_len: u64, budget_ops: f64) -> u64 {
    let max_len = max_len.min(u64::MAX - lo);
    if max_len == 0 {
        return 0;
    }
    let ops_of = |len: u64| {
        let ops = cost(lo, lo + len);
        if ops.is_finite() {
            ops
        } else {
            f64::INFINITY
        }
    };
    let top = ops_of(max_len);
    if top <= budget_ops {
        return max_len;
    }
    // Invariant: `good` fits (or is 0, which costs nothing), `bad` does not.
    let (mut good, mut good_ops) = (0u64, 0.0f64);
    let (mut bad, mut bad_ops) = (max_len, top);
    // Bracket within a factor of 2: scale each probe by budget / cost (as if cost were
    // proportional to length), a hair further so that the ends straddle the answer, by at
    // least 2x a step (so this takes at most ~40 steps) and at most 1024x.
    let mut probe = max_len;
    let mut ops = top;
    while bad - good > 1 && bad > good.saturating_mul(2) {
        let scale = budget_ops / ops;
        let scale = if ops <= budget_ops {
            (scale * 1.002).clamp(2.0, 1024.0)
        } else {
            (scale * 0.998).clamp(1.0 / 1024.0, 0.5)
        };
        // `as` saturates, and NaN becomes 0, which the clamp lifts.
        let proportional = ((probe as f64 * scale) as u64).clamp(good + 1, bad - 1);
        // Once both ends are real, the line through them: a cost with a fixed part (a block's
        // set-up, which dwarfs short ranges far up) is far from proportional, but nearly
        // affine. Kept within [2 good, bad / 2] (or between them when they cross), so that a
        // step still doubles good or halves bad, or ends the bracketing.
        probe = if good > 0 && bad_ops.is_finite() && bad_ops > good_ops {
            let share = (budget_ops - good_ops) / (bad_ops - good_ops);
            let estimate = good as f64 + share * (bad - good) as f64 * 1.002;
            let (a, b) = (good.saturating_mul(2), bad / 2);
            (estimate as u64)
                .clamp(a.min(b), a.max(b))
                .clamp(good + 1, bad - 1)
        } else {
            proportional
        };
        ops = ops_of(probe);
        if ops <= budget_ops {
            (good, good_ops) = (probe, ops);
        } else {
            (bad, bad_ops) = (probe, ops);
        }
    }
    // Then the secant, which is accurate over a factor of 2, each probe a hair past its estimate
    // towards the end that the last secant step did not move (a bisection in between says
    // nothing about which side the secant falls on); a step that does not halve the bracket is
    // followed by a bisection.
    let mut bisect_next = false;
    let mut good_moved_last = true;
    while bad - good > 1 && bad - good > good / 1024 {
        let span = bad - good;
        let probe = if bisect_next || !(bad_ops.is_finite() && bad_ops > good_ops) {
            good + span / 2
        } else {
            let share = (budget_ops - good_ops) / (bad_ops - good_ops);
            let estimate = good as f64 + share * span as f64;
            let nudge = (estimate / 2048.0).max(1.0);
            let aimed = if good_moved_last {
                estimate + nudge
            } else {
                estimate - nudge
            };
            // `as` saturates, and NaN becomes 0, which the clamp lifts.
            (aimed as u64).clamp(good + 1, bad - 1)
        };
        let secant = !bisect_next && bad_ops.is_finite() && bad_ops > good_ops;
        let ops = ops_of(probe);
        let good_moved = ops <= budget_ops;
        if secant {
            good_moved_last = good_moved;
        }
        if good_moved {
            (good, good_ops) = (probe, ops);
        } else {
            (bad, bad_ops) = (probe, ops);
        }
        bisect_next = !bisect_next && bad - good > span / 2;
    }
    good.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cost per number grows like ln(n): sum over [lo, hi) of (1 + ln n), integrated.
    fn log_cost(lo: u64, hi: u64) -> f64 {
        let antiderivative = |x: f64| x * x.ln();
        let (a, b) = (lo as f64, hi as f64);
        antiderivative(b) - antiderivative(a)
    }

    /// Cost per number grows like sqrt(n) (trial division to the square root).
    fn sqrt_cost(lo: u64, hi: u64) -> f64 {
        let antiderivative = |x: f64| 2.0 / 3.0 * x * x.sqrt();
        antiderivative(hi as f64) - antiderivative(lo as f64)
    }

    #[test]
    fn range_len_solves_the_budget() {
        for lo in [1u64, 1000, 1 << 30, 1 << 50, u64::MAX / 2] {
            for budget in [10.0, 1e6, 1e9, 1e12] {
                let len = range_len(sqrt_cost, lo, u64::MAX, budget);
                assert!(len >= 1);
                let ops = sqrt_cost(lo, lo + len);
                // Within budget, and one more 1/1024th would be over it (unless len == 1).
                if len > 1 {
                    assert!(ops <= budget, "lo {lo} budget {budget} len {len} ops {ops}");
                    let longer = len + len / 512 + 1;
                    assert!(sqrt_cost(lo, lo + longer) > budget * 0.999);
                }
            }
        }
    }

    #[test]
    fn range_len_respects_bounds_and_broken_models() {
        assert_eq!(range_len(|_, _| 0.0, 10, 500, 1.0), 500);
        assert_eq!(range_len(|_, _| f64::NAN, 10, 500, 1.0), 1);
        assert_eq!(range_len(|_, _| f64::INFINITY, 10, 500, 1e300), 1);
        assert_eq!(range_len(|_, _| 5.0, 10, 0, 1e300), 0);
        assert_eq!(
            range_len(|lo, hi| (hi - lo) as f64, u64::MAX - 3, u64::MAX, 1e300),
            3
        );
        assert_eq!(
            range_len(|lo, hi| (hi - lo) as f64, 1, u64::MAX, 1000.0),
            1000
        );
        // A model that shrinks with len still yields something in bounds.
        let len = range_len(|lo, hi| 1e9 / (hi - lo) as f64, 1, 1 << 20, 1e3);
        assert!((1..=1 << 20).contains(&len));
    }

    /// Evaluations of `cost` that `range_len` makes, and its answer.
    fn counted(cost: impl Fn(u64, u64) -> f64, lo: u64, max_len: u64, budget: f64) -> (usize, u64) {
        let calls = std::cell::Cell::new(0);
        let len = range_len(
            |a, b| {
                calls.set(calls.get() + 1);
                cost(a, b)
            },
            lo,
            max_len,
            budget,
        );
        (calls.get(), len)
    }

    #[test]
    fn range_len_needs_few_evaluations_of_the_real_cost_model() {
        let sieve =
            |lo: u64, hi: u64| sigma_kernel::cost::ops(sigma_kernel::Algorithm::Sieve, lo, hi);
        let mut all = Vec::new();
        for lo in [1u64, 1_000_000, 1_000_000_000, 1_000_000_000_000, 1 << 50] {
            // From a probe's budget to 15 s of a fast multi-core compute.
            for budget in [1e7, 1e9, 1e11, 1e12] {
                let (calls, len) = counted(sieve, lo, 1 << 40, budget);
                all.push(calls);
                // Doubling from 1 and bisecting took 30 to 45.
                assert!(calls <= 24, "lo {lo} budget {budget}: {calls} evaluations");
                if len > 1 && len < 1 << 40 {
                    assert!(sieve(lo, lo + len) <= budget);
                    assert!(
                        sieve(lo, lo + len + len / 512 + 1) > budget,
                        "lo {lo} budget {budget}"
                    );
                }
            }
        }
        all.sort_unstable();
        eprintln!("evaluations: {all:?}");
        assert!(all[all.len() / 2] <= 12, "median {}", all[all.len() / 2]);
    }

    #[test]
    fn range_len_converges_where_the_secant_is_poor() {
        // A step: cheap, then suddenly far dearer; and a cost flat in places.
        let step = |lo: u64, hi: u64| {
            let len = (hi - lo) as f64;
            if hi - lo < 1_000_000 {
                len
            } else {
                len * 1e6
            }
        };
        let (calls, len) = counted(step, 5, 1 << 40, 5e5);
        assert!((499_500..=500_000).contains(&len), "{len}");
        assert!(calls <= 70, "{calls}");
        let (calls, len) = counted(step, 5, 1 << 40, 2e12);
        assert!((1_999_000..=2_000_000).contains(&len), "{len}");
        assert!(calls <= 70, "{calls}");
        // Flat just over the budget at every length: one number, quickly.
        let (calls, len) = counted(|_, _| 1.001e9, 5, 1 << 40, 1e9);
        assert_eq!(len, 1);
        assert!(calls <= 50, "{calls}");
        let stairs = |lo: u64, hi: u64| ((hi - lo) / 4096 * 4096) as f64;
        let (calls, len) = counted(stairs, 1, 1 << 40, 1e9);
        assert!((999_000_000..=1_000_005_000).contains(&len), "{len}");
        assert!(calls <= 70, "{calls}");
    }

    #[test]
    fn benchmark_figures_are_clamped() {
        let config = SizingConfig::default();
        assert_eq!(RateModel::from_benchmark(0, &config).ops_per_sec(), 1e3);
        assert_eq!(
            RateModel::from_benchmark(u64::MAX, &config).ops_per_sec(),
            1e13
        );
        assert_eq!(
            RateModel::from_benchmark(5_000_000, &config).ops_per_sec(),
            5e6
        );
    }

    #[test]
    fn observations() {
        let config = SizingConfig::default();
        let mut model = RateModel::from_benchmark(1_000_000, &config);
        assert!(model.probing());
        assert_eq!(model.next_target_ms(&config), 1875);
        assert_eq!(model.observe(0.0, 1000, &config), Observation::Ignored);
        assert_eq!(model.observe(f64::NAN, 1000, &config), Observation::Ignored);
        // Too quick to time: only a lower bound (1e5 ops in under 100 ms), still probing.
        assert_eq!(model.observe(1e5, 10, &config), Observation::LowerBound);
        assert_eq!(model.ops_per_sec(), 1e6);
        assert_eq!(model.observe(1e6, 10, &config), Observation::LowerBound);
        assert_eq!(model.ops_per_sec(), 1e7);
        assert!(model.probing());
        // The first timed result replaces the prior, even when it is far off.
        assert_eq!(model.observe(8e6, 1000, &config), Observation::Replaced);
        assert_eq!(model.ops_per_sec(), 8e6);
        assert!(!model.probing());
        // Then a moving average, each step limited to 2x.
        assert_eq!(model.observe(1e7, 1000, &config), Observation::Folded);
        assert_eq!(model.ops_per_sec(), 9e6);
        model.observe(1e12, 1000, &config);
        assert_eq!(model.ops_per_sec(), 18e6);
        // A measurement below the credible band counts as the band's minimum.
        model.observe(1.0, 1000, &config);
        assert_eq!(model.ops_per_sec(), 9_000_500.0);
        // Absurd measurements stay inside the band.
        model.observe(1e300, 100_000, &config);
        assert!(model.ops_per_sec() <= 1e13);
    }

    #[test]
    fn expiry_lowers_the_estimate_and_probes_again() {
        let config = SizingConfig::default();
        let mut model = RateModel::from_benchmark(1_000_000_000, &config);
        model.observe(1e10, 10_000, &config);
        model.expired(Some((3e7, 30_000)), &config);
        assert_eq!(model.ops_per_sec(), 1e6);
        assert!(model.probing());
        model.expired(None, &config);
        assert_eq!(model.ops_per_sec(), 2.5e5);
        model.expired(Some((f64::INFINITY, 0)), &config);
        assert_eq!(model.ops_per_sec(), 62_500.0);
    }

    /// A simulated compute whose true speed is `true_rate(range index)` ops/s under `cost`: it
    /// takes exactly cost / rate seconds. Returns the duration of each range, in seconds.
    fn simulate(
        cost: fn(u64, u64) -> f64,
        benchmark: u64,
        true_rate: impl Fn(usize) -> f64,
        start: u64,
        ranges: usize,
    ) -> Vec<f64> {
        let config = SizingConfig::default();
        let mut model = RateModel::from_benchmark(benchmark, &config);
        let mut lo = start;
        let mut durations = Vec::new();
        for index in 0..ranges {
            let len = range_len(cost, lo, config.max_len, model.next_budget_ops(&config));
            let ops = cost(lo, lo + len);
            let seconds = ops / true_rate(index);
            durations.push(seconds);
            model.observe(ops, (seconds * 1000.0).round() as u64, &config);
            lo += len;
        }
        durations
    }

    fn assert_on_target(durations: &[f64], from: usize, tolerance: f64) {
        for (index, &seconds) in durations.iter().enumerate().skip(from) {
            assert!(
                (seconds - 15.0).abs() <= 15.0 * tolerance,
                "range {index} took {seconds:.2} s: {durations:.2?}"
            );
        }
    }

    #[test]
    fn converges_from_the_second_range_with_an_accurate_benchmark() {
        let durations = simulate(log_cost, 200_000_000, |_| 2e8, 1, 12);
        assert!((durations[0] - 15.0 / 8.0).abs() < 0.05, "{durations:?}");
        assert_on_target(&durations, 1, 0.01);
    }

    #[test]
    fn converges_from_the_second_range_with_a_benchmark_too_high() {
        // The figure is 20x too high: the probe takes 20x its 1.9 s, then the real rate rules.
        let durations = simulate(sqrt_cost, 4_000_000_000, |_| 2e8, 1 << 40, 10);
        assert!((durations[0] - 37.5).abs() < 0.5, "{durations:?}");
        assert_on_target(&durations, 1, 0.01);
    }

    #[test]
    fn a_benchmark_far_too_low_costs_one_more_short_probe() {
        // 50x too low: the probe takes 40 ms, too quick to time, which still proves a rate of
        // at least 0.375x the truth; the second probe is timed; the third range is on target.
        let durations = simulate(sqrt_cost, 4_000_000, |_| 2e8, 1 << 40, 10);
        assert!(durations[0] < 0.1 && durations[1] < 2.0, "{durations:?}");
        assert_on_target(&durations, 2, 0.01);
    }

    #[test]
    fn zero_benchmark_ramps_up_in_quick_ranges() {
        // From 1e3 ops/s (the band's floor) to 1e9: each quick probe proves ~19x more.
        let durations = simulate(log_cost, 0, |_| 1e9, 1, 20);
        let ramp = durations.iter().position(|&s| s > 0.1).unwrap();
        let ramp_seconds: f64 = durations[..ramp].iter().sum();
        assert!(ramp <= 6 && ramp_seconds < 0.5, "{durations:?}");
        assert_on_target(&durations, ramp + 1, 0.01);
    }

    #[test]
    fn follows_a_compute_that_slows_down_by_half() {
        let durations = simulate(
            sqrt_cost,
            1_000_000_000,
            |i| if i < 6 { 1e9 } else { 5e8 },
            1,
            16,
        );
        assert_on_target(&durations[..6], 1, 0.01);
        // The first range at half speed takes twice the target; then the average closes in:
        // 1.5x, 1.25x, 1.125x, within 10% from the fourth range on.
        assert!((durations[6] - 30.0).abs() < 1.0, "{durations:?}");
        // The first miss is averaged in (1.5x), the second confirms the shift and is taken
        // outright: on target from the third range at the new speed.
        assert!((durations[7] - 22.5).abs() < 1.0, "{durations:?}");
        assert_on_target(&durations, 8, 0.01);
    }

    #[test]
    fn follows_a_compute_that_speeds_up_by_half() {
        let durations = simulate(
            sqrt_cost,
            1_000_000_000,
            |i| if i < 6 { 1e9 } else { 1.5e9 },
            1,
            12,
        );
        assert!((durations[6] - 10.0).abs() < 0.5, "{durations:?}");
        assert_on_target(&durations, 8, 0.01);
    }

    #[test]
    fn noise_on_both_sides_is_averaged_not_followed() {
        // True speed alternates 20% above and below 1e9: misses on alternating sides never
        // confirm a shift, so the estimate stays near the mean instead of chasing each sample.
        let config = SizingConfig::default();
        let mut model = RateModel::from_benchmark(1_000_000_000, &config);
        model.observe(1e10, 10_000, &config);
        for i in 0..20 {
            let rate = if i % 2 == 0 { 1.2e9 } else { 0.8e9 };
            model.observe(rate * 10.0, 10_000, &config);
            let estimate = model.ops_per_sec();
            assert!(
                (0.85e9..=1.15e9).contains(&estimate),
                "step {i}: {estimate}"
            );
        }
        // Small misses on one side (within the threshold) are averaged too.
        let mut steady = RateModel::from_benchmark(1_000_000_000, &config);
        steady.observe(1e10, 10_000, &config);
        steady.observe(0.95e10, 10_000, &config);
        steady.observe(0.95e10, 10_000, &config);
        assert!((steady.ops_per_sec() - 0.9625e9).abs() < 1e3);
    }
}
