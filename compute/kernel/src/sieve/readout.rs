//! Reading a segment out (checksum and perfect numbers), the correction of squares, and the
//! checksum in closed form that the u32 sums are checked against.

#![forbid(unsafe_code)]

use super::sums::Accumulator;
use crate::tally::BlockTally;
use crate::{isqrt, proper_divisor_sum};

/// Adds the segment's sums (starting at `first`) to the checksum and records its perfect
/// numbers. Eight numbers at a time, without a branch per number, so that it vectorises.
pub(super) fn read_out<S: Accumulator>(segment: &[S], first: u64, tally: &mut BlockTally) {
    const LANES: usize = 8;
    let mut checksum = tally.checksum;
    let mut chunks = segment.chunks_exact(LANES);
    let mut n = first;
    for chunk in &mut chunks {
        let mut any = false;
        for (sum, n) in chunk.iter().zip(n..) {
            checksum = checksum.wrapping_add(sum.low_bits());
            any |= sum.is(n);
        }
        if any {
            record_perfect(chunk, n, tally);
        }
        n += LANES as u64;
    }
    let rest = chunks.remainder();
    for sum in rest {
        checksum = checksum.wrapping_add(sum.low_bits());
    }
    record_perfect(rest, n, tally);
    tally.checksum = checksum;
}

/// Records the perfect numbers among `sums`, the sums of `first`, `first + 1`, ...
#[cold]
fn record_perfect<S: Accumulator>(sums: &[S], first: u64, tally: &mut BlockTally) {
    for (sum, n) in sums.iter().zip(first..) {
        if sum.is(n) && (S::EXACT || confirmed_perfect(n)) {
            tally.perfect.push(n);
        }
    }
}

/// Whether n is perfect, by trial division up to its square root: for the candidates of u32
/// sums (s(n) = n mod 2^32), which below [`COMPACT_SUMS_UP_TO`] take at most 2^20 divisions
/// and come about once in 2^32 numbers.
#[inline(never)]
pub(super) fn confirmed_perfect(n: u64) -> bool {
    n >= 2 && proper_divisor_sum(n) == u128::from(n)
}

/// The wrapping sum of s(n) over `[start, end)` (1 <= start), the checksum, without sieving:
/// s(n) = 1 + sum of (d + n / d) over the divisors 2 <= d <= sqrt(n), minus d for a square
/// n = d * d (the pair (d, d) is the divisor d once). So each d from 2 to isqrt(end - 1) adds,
/// over its multiples n = k * d in the range with k >= d (k from k0 to k1), d + k: an
/// arithmetic series; minus d when its square is in the range (k0 = d). Two divisions per
/// divisor (one for those whose square is in the range).
pub(crate) fn checksum_in_closed_form(start: u64, end: u64) -> u64 {
    if start >= end {
        return 0;
    }
    // The 1 of every n >= 2.
    let mut total = end - start.max(2).min(end);
    let last = end - 1;
    for d in 2..=isqrt(last) {
        let k1 = last / d;
        let k0 = if d * d >= start { d } else { start.div_ceil(d) };
        if k0 > k1 {
            continue;
        }
        let count = u128::from(k1 - k0 + 1);
        let mut sum = count * u128::from(d) + (u128::from(k0) + u128::from(k1)) * count / 2;
        if k0 == d {
            sum -= u128::from(d);
        }
        // Truncation is the definition: the checksum is mod 2^64.
        total = total.wrapping_add(sum as u64);
    }
    total
}

/// Every square r * r (r >= 2) in the segment got the pair (r, r) as 2r; it has r once.
pub(super) fn correct_squares<S: Accumulator>(segment: &mut [S], first: u64) {
    let mut root = isqrt(first - 1) + 1;
    while let Some(square) = root.checked_mul(root) {
        let Some(sum) = segment.get_mut((square - first) as usize) else {
            break;
        };
        if root >= 2 {
            sum.subtract(root);
        }
        root += 1;
    }
}
