//! The direct band: divisors past the buckets, found by one division per segment.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};

use super::sums::{first_hit, Accumulator};
use super::DIVISIONS_PER_STOP_CHECK;
use crate::isqrt;

/// Adds the pairs of every divisor from `low` up to the segment's square root, finding each
/// one's first multiple by division. Returns false when stopped part-way.
#[inline(never)]
pub(super) fn sieve_directly<S: Accumulator>(
    segment: &mut [S],
    first: u64,
    low: u64,
    stop: &AtomicBool,
) -> bool {
    let last = first + (segment.len() as u64 - 1);
    let high = isqrt(last);
    let mut d = low;
    while d <= high {
        let chunk_end = high.min(d + DIVISIONS_PER_STOP_CHECK - 1);
        for divisor in d..=chunk_end {
            let (offset, mut add) = first_hit(first, divisor);
            let mut offset = offset as usize;
            while let Some(sum) = segment.get_mut(offset) {
                sum.add(add);
                offset += divisor as usize;
                add += 1;
            }
        }
        d = chunk_end + 1;
        if d <= high && stop.load(Ordering::Relaxed) {
            return false;
        }
    }
    true
}
