//! The timing loop and the cost model.
//!
//! predicted seconds = ops(algorithm, lo, hi) / ops_per_second, where ops_per_second comes from
//! the timing loop on this machine with this many threads.
//!
//! The model counts the work each algorithm really does, term by term, in one unit per
//! algorithm (so rates of different algorithms are not comparable):
//! * naive: one division for every d in 1..n, for every n; plus a per-number constant.
//! * trial: one division for every d in 2..=isqrt(n); the sum over the range has a closed form,
//!   sum isqrt(n) ~ (2/3)(hi^1.5 - lo^1.5), computed in a form that does not cancel.
//! * sieve: one unit per divisor-pair update from a small divisor (the sieve's inner loop),
//!   with the other kinds of work weighed against it: the per-number set-up and read-out, the
//!   small divisors' per-segment visits (sqrt(hi) of them per segment until that reaches the
//!   segment length: the "per-segment overhead ~ sqrt(hi)"), updates from bucketed divisors,
//!   and divisions (block set-up, and the direct band above ~7 * 10^13). The wheel's divisors
//!   cost nothing per update in a block whose start lets the wheel take them, and a fraction
//!   of an update in one that does not (from 1 to 1024^2). The updates per number
//!   are sum over 2 <= d <= sqrt(n) of 1/d ~ ln sqrt(n) - 0.42, so cost grows with ln n.
//!
//! The weights are ratios between kinds of work on one core, fitted once (non-negative, least
//! squared relative error) to one-thread runs at 10^4 to 10^13 (see `SIEVE_WEIGHTS`);
//! the absolute speed of a machine is never hard-coded: the timing loop measures it by timing
//! a fixed workload whose operations the same model counts.

#![forbid(unsafe_code)]

use std::sync::atomic::AtomicBool;
use std::thread;
use std::time::Instant;

use crate::plan::BlockPlan;
use crate::sieve::{self, Bands};
use crate::{isqrt, scan, Algorithm};

/// The work of a sieve scan, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SieveWork {
    /// Numbers scanned (each set up and read out once).
    pub numbers: f64,
    /// Divisor-pair updates from small divisors (kept in per-divisor state), but for the
    /// wheel's divisors in blocks whose wheel leaves them out.
    pub small_hits: f64,
    /// Divisor-pair updates from the wheel's divisors (those of its period, up to the tiny
    /// band's end) in blocks starting too low for the wheel to cover them: the tiny band sieves
    /// them, densely (d = 2, 3, 4, ... hit the same cache lines again and again).
    pub unwheeled_hits: f64,
    /// Visits of a small divisor to a segment (whether or not it hits).
    pub visits: f64,
    /// Divisor-pair updates from bucketed divisors.
    pub bucket_hits: f64,
    /// Divisor-pair updates from window divisors (past the segment length, kept in per-divisor
    /// state like the small ones, hitting a window of segments in L3).
    pub window_hits: f64,
    /// Updates from directly sieved divisors (each found by a division).
    pub direct_hits: f64,
    /// 64-bit divisions: a block's set-up, and the direct band's per-segment search.
    pub divisions: f64,
}

/// Weights of the sieve's kinds of work, in small-divisor updates: numbers, visits, bucketed
/// updates, direct updates, divisions, window updates, updates from the wheel's divisors where a
/// block has no wheel for them. Fitted (`examples/fit_cost_model.rs`:
/// on-CPU time, one thread, best of seven per magnitude, 10^4..3 * 10^12) on an AMD EPYC (Zen 4)
/// VM shared with other builds, in a quiet spell, with the wheel, 2^20-number windows below
/// 2^40 and blocks of whole windows: within 2.3% of measured from 10^4 to 3 * 10^12, 6.3%
/// optimistic near 10^13 (where the bucket pool spills out of the shared L3). A number's set-up
/// and read-out (the wheel's tables, vectorised, 4 bytes a number) fit as free next to its ~6
/// or more updates; a visit costs ~2.3 updates; a window update ~2.1 (the small band's loop,
/// but a read-modify-write in L3); a bucketed update ~4.9 (its 8-byte entry goes out to and
/// back from the bucket pool). Direct updates and divisions only matter past ~7 * 10^13,
/// outside the fit; their weights are estimates (a division ~ 7 updates, as the direct sweep's
/// rate showed). The wheel's divisors swept without the wheel (in blocks starting below
/// 1024^2: a search's first probe from 1) are mostly 2 to 10, whose updates hit the same cache
/// lines over and over: ~0.35 of an update each, from paired on-CPU timings (medians of 15) of
/// [1, L) against [L, 2L) for L = 1.4 * 10^7, 5.7 * 10^7 and 2 * 10^8 (0.35, 0.25, 0.43).
/// They are ratios: a faster or slower machine changes only the measured rate.
const SIEVE_WEIGHTS: [f64; 7] = [0.0, 2.32, 4.89, 2.0, 7.0, 2.11, 0.35];
const TRIAL_PER_NUMBER: f64 = 4.0;
const NAIVE_PER_NUMBER: f64 = 4.0;

/// Euler-Mascheroni constant.
const GAMMA: f64 = 0.577_215_664_901_532_9;

/// The harmonic number H(x) = sum_{d=1}^{x} 1/d (H(0) = 0), by its asymptotic expansion (exact
/// to about 1e-10 for x >= 8; summed directly below).
fn harmonic(x: u64) -> f64 {
    if x < 8 {
        return (1..=x).map(|d| 1.0 / d as f64).sum();
    }
    let x = x as f64;
    x.ln() + GAMMA + 1.0 / (2.0 * x) - 1.0 / (12.0 * x * x)
}

/// sum_{d=a+1}^{b} d, for a <= b.
fn sum_between(a: u64, b: u64) -> f64 {
    let (a, b) = (a as f64, b as f64);
    (b * (b + 1.0) - a * (a + 1.0)) / 2.0
}

/// Expected pair updates in `[lo, hi)` from divisors d in (a, b]: each d updates its multiples
/// n >= d * d, about (hi - max(lo, d^2)) / d of them.
fn pair_updates(lo: u64, hi: u64, a: u64, b: u64) -> f64 {
    if lo >= hi {
        return 0.0;
    }
    let numbers = (hi - lo) as f64;
    // Divisors up to `below` are active from lo on; those up to `top` become active in range.
    let below = isqrt(lo - 1);
    let top = isqrt(hi - 1);
    let mut updates = 0.0;
    let (a1, b1) = (a.min(below), b.min(below));
    if a1 < b1 {
        updates += numbers * (harmonic(b1) - harmonic(a1));
    }
    let (a2, b2) = (a.max(below), b.min(top));
    if a2 < b2 {
        updates += hi as f64 * (harmonic(b2) - harmonic(a2)) - sum_between(a2, b2);
    }
    updates.max(0.0)
}

/// The sieve's work for `[lo, hi)`, by kind, with the bands and block lengths a one-thread scan
/// uses.
pub fn sieve_work(lo: u64, hi: u64) -> SieveWork {
    if lo == 0 || lo >= hi {
        return SieveWork::default();
    }
    let plan = BlockPlan::new(Algorithm::Sieve, lo, hi, 1);
    let block_len = plan.block_len.min(hi - lo);
    // Bands of the last block, which uses every divisor the range needs. The bands' limits do
    // not depend on the block (below ~7 * 10^13), so a divisor is in the same band in every
    // block that uses it: taking the first block's bands instead would count the divisors
    // only later blocks use as directly sieved, a division per segment each, on long ranges.
    let bands = Bands::new(hi - block_len, hi);
    let numbers = (hi - lo) as f64;
    let blocks = numbers / block_len as f64;
    let segment_len = (1u64 << bands.log2_segment_len).min(block_len) as f64;
    let segments = numbers / segment_len;
    let max_divisor = bands.max_divisor;
    // A block uses the divisors up to its own square root: on average over the blocks, about
    // the mean square root over the range.
    let mean_root = sum_of_square_roots(lo, hi) / numbers;
    let tiny_top = bands.small_top.min(sieve::TINY_DIVISOR_LIMIT);
    let small_top = mean_root.min(bands.small_top as f64);
    // The wheel's divisors (those of the wheel's period whose square is below the block's
    // start, in the tiny band) cost nothing per pair: their pairs come with the numbers'
    // set-up. Each block's wheel is set by that block's own start.
    let wheel = if hi <= sieve::EXACT_IN_U64_BELOW {
        wheel_work(&plan, tiny_top)
    } else {
        WheelWork::default()
    };
    let small_hits =
        (pair_updates(lo, hi, 1, bands.small_top) - wheel.hits - wheel.unwheeled_hits).max(0.0);
    let window_hits = pair_updates(lo, hi, bands.small_top, bands.window_top);
    let bucket_hits = pair_updates(lo, hi, bands.window_top, bands.bucket_top);
    let window_len = (1u64 << bands.log2_window_len).min(block_len) as f64;
    let window_top = mean_root.min(bands.window_top as f64);
    let direct_hits = pair_updates(lo, hi, bands.bucket_top, max_divisor);
    let direct_divisors = max_divisor.saturating_sub(bands.bucket_top) as f64;
    SieveWork {
        numbers,
        small_hits,
        unwheeled_hits: wheel.unwheeled_hits,
        // Tiny divisors visit every L1-sized piece, the other small ones every segment.
        visits: (numbers * tiny_top.saturating_sub(1) as f64 - wheel.divisor_numbers)
            / bands.tiny_piece_len as f64
            + segments * (small_top - tiny_top as f64).max(0.0)
            + numbers / window_len * (window_top - bands.small_top as f64).max(0.0),
        bucket_hits,
        window_hits,
        direct_hits,
        // A block's set-up: one division for each of its small and bucketed divisors.
        divisions: blocks * mean_root.min(bands.bucket_top as f64) + segments * direct_divisors,
    }
}

/// What the wheel takes off the tiny band's work over a range.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct WheelWork {
    /// Pair updates that come with the numbers' set-up instead.
    hits: f64,
    /// Pair updates of the wheel's divisors that a block's wheel leaves out.
    unwheeled_hits: f64,
    /// Sum over the blocks of numbers * wheel divisors: the tiny band's visits saved, times its
    /// piece length.
    divisor_numbers: f64,
}

/// The wheel's share of the work of the blocks of `plan`, each with the wheel its own start
/// allows (the wheel divisors up to `tiny_top` whose square is at most the block's start).
/// Blocks starting at `tiny_top`^2 or later all have the whole wheel and are counted together;
/// the few before it (at most 2^20 / 2^15 of them), block by block. A range from 1 (the first
/// probe of a search) thus has its first block without the wheel and the rest with it, as
/// the sieve scans it: counted as of the range's start, the whole range was without it, and
/// the probe's pair updates were overcounted by a third near 10^8.
fn wheel_work(plan: &BlockPlan, tiny_top: u64) -> WheelWork {
    let divisors = |top: u64| (2..=top).filter(move |&d| sieve::Wheel::covers(top, d));
    let piece = |work: &mut WheelWork, start: u64, end: u64| {
        let top = sieve::Wheel::top_for(start, tiny_top);
        for d in divisors(tiny_top) {
            let hits = pair_updates(start, end, d - 1, d);
            if d <= top {
                work.hits += hits;
                work.divisor_numbers += (end - start) as f64;
            } else {
                work.unwheeled_hits += hits;
            }
        }
    };
    let mut work = WheelWork::default();
    let whole_from = tiny_top.saturating_mul(tiny_top);
    let mut index = 0;
    while index < plan.blocks() {
        let (start, end) = plan.bounds(index);
        if start >= whole_from {
            piece(&mut work, start, plan.hi);
            break;
        }
        piece(&mut work, start, end);
        index += 1;
    }
    work
}

impl SieveWork {
    /// The work in small-divisor updates.
    pub fn ops(&self) -> f64 {
        let [per_number, per_visit, per_bucket_hit, per_direct_hit, per_division, per_window_hit, per_unwheeled_hit] =
            SIEVE_WEIGHTS;
        self.small_hits
            + per_unwheeled_hit * self.unwheeled_hits
            + per_number * self.numbers
            + per_visit * self.visits
            + per_bucket_hit * self.bucket_hits
            + per_window_hit * self.window_hits
            + per_direct_hit * self.direct_hits
            + per_division * self.divisions
    }
}

/// sum_{n=lo}^{hi-1} sqrt(n) ~ (2/3)(hi^1.5 - lo^1.5), written as
/// (2/3)(hi - lo)(hi + sqrt(hi lo) + lo) / (sqrt(hi) + sqrt(lo)) so that short ranges of huge
/// numbers do not cancel.
fn sum_of_square_roots(lo: u64, hi: u64) -> f64 {
    let (lo, hi) = (lo as f64, hi as f64);
    let (root_lo, root_hi) = (lo.sqrt(), hi.sqrt());
    2.0 / 3.0 * (hi - lo) * (hi + root_hi * root_lo + lo) / (root_hi + root_lo)
}

/// Predicted kernel operations to scan `[lo, hi)` with `algorithm`.
pub fn ops(algorithm: Algorithm, lo: u64, hi: u64) -> f64 {
    if lo == 0 || lo >= hi {
        return 0.0;
    }
    let numbers = (hi - lo) as f64;
    match algorithm {
        // Divisions by 1..n-1 for each n: sum of (n - 1), plus the per-number constant.
        Algorithm::Naive => {
            numbers * ((lo as f64 + hi as f64 - 1.0) / 2.0 - 1.0) + NAIVE_PER_NUMBER * numbers
        }
        // Divisions by 2..=isqrt(n): about sqrt(n) - 1.5 each (isqrt is half a unit below).
        Algorithm::Trial => {
            (sum_of_square_roots(lo, hi) - 1.5 * numbers).max(0.0) + TRIAL_PER_NUMBER * numbers
        }
        Algorithm::Sieve => sieve_work(lo, hi).ops(),
    }
}

/// The timing loop's fixed workload for one thread: ranges whose operations the model counts,
/// chosen to take a fraction of a second and to mix every kind of work the algorithm does.
pub fn calibration_ranges(algorithm: Algorithm) -> &'static [(u64, u64)] {
    match algorithm {
        Algorithm::Naive => &[(10_000, 10_000 + 1_500), (1_000_000, 1_000_000 + 10)],
        Algorithm::Trial => &[
            (1_000_000, 1_000_000 + 8_000),
            (1_000_000_000_000, 1_000_000_000_000 + 24),
        ],
        Algorithm::Sieve => &[
            (1_000_000, 1_000_000 + (1 << 21)),
            (1_000_000_000, 1_000_000_000 + (1 << 22)),
            (1_000_000_000_000, 1_000_000_000_000 + (1 << 22)),
        ],
    }
}

/// Runs the timing loop: a short run of a known number of kernel operations on `threads`
/// threads, timed. Returns operations per second.
///
/// Each thread scans the whole calibration workload on its own (one-thread scans side by side),
/// so the figure includes what threads cost each other (shared cache, memory, turbo) without
/// depending on how a scan cuts short ranges into blocks. Never returns 0.
pub fn measure_ops_per_second(algorithm: Algorithm, threads: usize) -> u64 {
    let threads = threads.max(1);
    let ranges = calibration_ranges(algorithm);
    let ops_per_thread: f64 = ranges.iter().map(|&(lo, hi)| ops(algorithm, lo, hi)).sum();
    let never = AtomicBool::new(false);
    let run = || {
        for &(lo, hi) in ranges {
            // The ranges are valid by construction; a failure only makes the figure pessimistic.
            let _ = scan(algorithm, lo, hi, 1, &never, None);
        }
    };
    let started = Instant::now();
    thread::scope(|scope| {
        for _ in 1..threads {
            if thread::Builder::new().spawn_scoped(scope, run).is_err() {
                break;
            }
        }
        run();
    });
    let seconds = started.elapsed().as_secs_f64().max(1e-6);
    let rate = ops_per_thread * threads as f64 / seconds;
    (rate as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_pair_updates(lo: u64, hi: u64) -> u64 {
        (lo..hi)
            .map(|n| (2..=isqrt(n)).filter(|d| n % d == 0).count() as u64)
            .sum()
    }

    #[test]
    fn pair_updates_track_the_exact_count() {
        for (lo, hi) in [(1, 10_000), (1_000_000, 1_100_000), (5_000, 405_000)] {
            let exact = exact_pair_updates(lo, hi) as f64;
            let model = pair_updates(lo, hi, 1, isqrt(hi - 1));
            assert!(
                (model / exact - 1.0).abs() < 0.01,
                "{lo}..{hi}: {model} vs {exact}"
            );
        }
    }

    #[test]
    fn the_wheel_is_counted_block_by_block() {
        // A range from 1: its first block has no wheel (no divisor's square is below 1), the
        // others the whole one, so its small-divisor updates are all of the first block's
        // plus those of the rest counted as a range of its own (every block of which starts
        // past 1024^2, with the whole wheel).
        for hi in [20_000_000u64, 200_000_000, 2_000_000_000] {
            let plan = BlockPlan::new(Algorithm::Sieve, 1, hi, 1);
            let (_, first_end) = plan.bounds(0);
            let work = sieve_work(1, hi);
            let whole = work.small_hits + work.unwheeled_hits;
            let first = pair_updates(1, first_end, 1, isqrt(hi - 1));
            let rest_work = sieve_work(first_end, hi);
            assert_eq!(rest_work.unwheeled_hits, 0.0);
            let rest = rest_work.small_hits;
            let parts = first + rest;
            assert!(
                (whole / parts - 1.0).abs() < 0.01,
                "[1, {hi}): {whole} against {first} + {rest}"
            );
            // So a probe from 1 costs per number about what the numbers after it do, not a
            // third more (the wheel's 2.7 updates a number counted throughout).
            let per_number = |lo: u64, hi: u64| ops(Algorithm::Sieve, lo, hi) / (hi - lo) as f64;
            let ratio = per_number(1, hi) / per_number(hi, 2 * hi);
            assert!(ratio < 1.05, "[1, {hi}): {ratio}");
        }
    }

    #[test]
    fn trial_divisions_track_the_exact_count() {
        for (lo, hi) in [
            (2, 10_000),
            (1_000_000, 1_010_000),
            (1 << 40, (1 << 40) + 100),
        ] {
            let exact: u64 = (lo..hi).map(|n| isqrt(n) - 1).sum();
            let model = ops(Algorithm::Trial, lo, hi) - TRIAL_PER_NUMBER * (hi - lo) as f64;
            assert!((model / exact as f64 - 1.0).abs() < 0.01, "{lo}..{hi}");
        }
    }

    #[test]
    fn cost_grows_with_n_and_with_length() {
        for &algorithm in Algorithm::ALL {
            let near = |lo: u64| ops(algorithm, lo, lo + 1000);
            assert!(near(1_000) < near(1_000_000), "{algorithm}");
            assert!(near(1_000_000) < near(1_000_000_000_000), "{algorithm}");
            assert!(ops(algorithm, 1000, 2000) < ops(algorithm, 1000, 3000));
            assert_eq!(ops(algorithm, 5, 5), 0.0);
        }
        // Finite and positive all the way up.
        for &algorithm in Algorithm::ALL {
            let top = ops(algorithm, u64::MAX - 1000, u64::MAX);
            assert!(top.is_finite() && top > 0.0, "{algorithm}: {top}");
            let all = ops(algorithm, 1, u64::MAX);
            assert!(all.is_finite() && all > top, "{algorithm}: {all}");
        }
    }

    #[test]
    fn the_timing_loop_returns_a_positive_rate() {
        assert!(measure_ops_per_second(Algorithm::Trial, 1) > 0);
    }
}
