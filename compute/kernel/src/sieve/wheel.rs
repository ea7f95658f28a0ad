//! The wheel band: the divisors of 2520 up to the tiny limit, whose pairs come from a table.

#![forbid(unsafe_code)]

use super::sums::Accumulator;
use crate::isqrt;

/// The wheel's period: 2520 = lcm(1..=10). Its divisors up to [`TINY_DIVISOR_LIMIT`] (45 of
/// them, 2..=840) make 2.7 of the tiny band's 6.5 hits per number, and their pairs repeat
/// with the period: see [`Wheel`].
pub(crate) const WHEEL_PERIOD: u64 = 2520;

/// The pairs of the divisors d of [`WHEEL_PERIOD`] from 2 to `top`, by residue: they are periodic
/// but for a term that grows by one period's worth per period. For n = q * P + p (P the period,
/// 0 <= p < P) and d | P: d | n exactly when d | p, and then n / d = q * (P / d) + p / d. So
/// these divisors add to s(n), over d | p:
///
/// ```text
/// sum (d + n / d) = base[p] + q * step[p],  base[p] = sum (d + p / d),  step[p] = sum P / d
/// ```
///
/// (for p = 0 every d divides). Given d * d <= n, each is the pair (d, n / d) of the sieve. So
/// instead of 2.7 scattered updates per number, a block's segments start from a table: the
/// values for the next period are one vector addition away ([`WheelFill`]).
#[derive(Default)]
pub(crate) struct Wheel {
    /// The largest divisor in the tables (0: none built yet).
    top: u64,
    base: Vec<u64>,
    step: Vec<u64>,
}

impl Wheel {
    /// The largest wheel divisor a block starting at `start` can use, given that its tiny band
    /// ends at `tiny_top`: pairs (d, n / d) need d * d <= n for every n in the block.
    pub(crate) fn top_for(start: u64, tiny_top: u64) -> u64 {
        tiny_top.min(isqrt(start))
    }

    /// Whether the tables built for `top` sieve `d`.
    pub(crate) fn covers(top: u64, d: u64) -> bool {
        d >= 2 && d <= top && WHEEL_PERIOD.is_multiple_of(d)
    }

    /// Builds the tables for the divisors up to `top`, unless they are built already.
    pub(super) fn build(&mut self, top: u64) {
        if top == self.top && !self.base.is_empty() {
            return;
        }
        let period = WHEEL_PERIOD as usize;
        self.base.clear();
        self.base.resize(period, 0);
        self.step.clear();
        self.step.resize(period, 0);
        for d in (2..=top).filter(|&d| Wheel::covers(top, d)) {
            for p in (0..WHEEL_PERIOD).step_by(d as usize) {
                self.base[p as usize] += d + p / d;
                self.step[p as usize] += WHEEL_PERIOD / d;
            }
        }
        self.top = top;
    }
}

/// A block's wheel: for each residue p, 1 + the wheel's pairs of the next number n = p
/// (mod the period) still to be filled, and what they grow by per period.
#[derive(Default)]
pub(crate) struct WheelFill<S> {
    next: Vec<S>,
    advance: Vec<S>,
    /// The residue of the next number to be filled.
    cursor: usize,
}

impl<S: Accumulator> WheelFill<S> {
    /// Sets the fill up for a block starting at `start` from the tables of `wheel`.
    pub(super) fn reset(&mut self, wheel: &Wheel, start: u64) {
        let quotient = start / WHEEL_PERIOD;
        let cursor = (start % WHEEL_PERIOD) as usize;
        self.next.clear();
        // Residues before the cursor come next in the following period. In u64 this cannot
        // wrap below 2^59 (q * step < n * 2.7), and for u32 sums only its low bits matter.
        self.next.extend((0..WHEEL_PERIOD as usize).map(|p| {
            let q = quotient + u64::from(p < cursor);
            S::of((1 + wheel.base[p]).wrapping_add(q.wrapping_mul(wheel.step[p])))
        }));
        self.advance.clear();
        self.advance
            .extend(wheel.step.iter().map(|&step| S::of(step)));
        self.cursor = cursor;
    }

    /// Starts the next `segment` of the block: 1 (the divisor 1) plus the wheel's pairs for
    /// each of its numbers.
    pub(super) fn fill(&mut self, segment: &mut [S]) {
        let period = WHEEL_PERIOD as usize;
        let mut rest = segment;
        while !rest.is_empty() {
            let run = (period - self.cursor).min(rest.len());
            let (head, tail) = rest.split_at_mut(run);
            let next = &mut self.next[self.cursor..self.cursor + run];
            let advance = &self.advance[self.cursor..self.cursor + run];
            for ((sum, next), &advance) in head.iter_mut().zip(next.iter_mut()).zip(advance) {
                *sum = *next;
                // The steps are below 2^64, so low_bits is each one whole.
                next.add(advance.low_bits());
            }
            self.cursor = (self.cursor + run) % period;
            rest = tail;
        }
    }
}
